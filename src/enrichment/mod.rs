//! Vector's enrichment tables (`[enrichment_tables.NAME]`): files of rows
//! loaded with the config, read by VRL's `get_enrichment_table_record` and
//! `find_enrichment_table_records`. Promises: a table is loaded whole before
//! any program compiles against it (a bad file is a config error naming the
//! line); cells are typed by the table's `schema` as Vector types them; a
//! lookup on exact fields goes through a hash index built when the program
//! compiles, not a scan.

pub mod vrl;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use ::vrl::value::{ObjectMap, Value};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;

/// One `[enrichment_tables.NAME]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TableConfig {
    File(FileTableConfig),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTableConfig {
    pub file: FileSettings,
    /// Column → type: `string`, `integer`, `float`, `boolean`, `date`,
    /// `date|FORMAT`, `timestamp`, `timestamp|FORMAT`. Other columns are strings.
    #[serde(default)]
    pub schema: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub path: PathBuf,
    #[serde(default)]
    pub encoding: Encoding,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Encoding {
    Csv {
        #[serde(default = "crate::defaults::yes")]
        include_headers: bool,
        #[serde(default = "comma")]
        delimiter: char,
    },
    /// tapline's own: an array of flat JSON objects (typed by JSON itself).
    Json,
}

impl Default for Encoding {
    fn default() -> Self {
        Encoding::Csv { include_headers: true, delimiter: comma() }
    }
}

fn comma() -> char {
    ','
}

/// A loaded table: column names and typed rows.
#[derive(Debug, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl TableConfig {
    pub fn load(&self) -> Result<Table, String> {
        let TableConfig::File(config) = self;
        let path = &config.file.path;
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let table = match config.file.encoding {
            Encoding::Csv { include_headers, delimiter } => {
                if !delimiter.is_ascii() {
                    return Err(format!("the delimiter `{delimiter}` is not one ASCII character"));
                }
                from_csv(&bytes, include_headers, delimiter as u8, &config.schema)
            }
            Encoding::Json => from_json(&bytes),
        };
        let table = table.map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(column) = config.schema.keys().find(|c| !table.columns.contains(c)) {
            return Err(format!("{}: the schema names column `{column}`, which the file does not have", path.display()));
        }
        Ok(table)
    }
}

fn from_csv(bytes: &[u8], include_headers: bool, delimiter: u8, schema: &BTreeMap<String, String>) -> Result<Table, String> {
    let mut reader = csv::ReaderBuilder::new().has_headers(include_headers).delimiter(delimiter).from_reader(bytes);
    let mut records = Vec::new();
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(|e| e.to_string())? {
        records.push(record.clone());
    }
    // Without a header row, columns are named by position, as Vector names them.
    let columns: Vec<String> = if include_headers {
        reader.headers().map_err(|e| e.to_string())?.iter().map(str::to_string).collect()
    } else {
        (0..records.first().map_or(0, csv::StringRecord::len)).map(|i| i.to_string()).collect()
    };
    let types: Vec<Option<&str>> = columns.iter().map(|c| schema.get(c).map(String::as_str)).collect();
    let mut rows = Vec::with_capacity(records.len());
    for record in records {
        let line = record.position().map_or(0, |p| p.line());
        let row = record
            .iter()
            .zip(&types)
            .zip(&columns)
            .map(|((cell, kind), column)| typed(cell, *kind).map_err(|e| format!("line {line}, column `{column}`: {e}")))
            .collect::<Result<Vec<Value>, String>>()?;
        rows.push(row);
    }
    Ok(Table { columns, rows })
}

/// A cell as its schema type says.
fn typed(cell: &str, kind: Option<&str>) -> Result<Value, String> {
    let Some(kind) = kind else { return Ok(Value::from(cell)) };
    let (name, format) = match kind.split_once('|') {
        Some((name, format)) => (name.trim(), Some(format.trim())),
        None => (kind.trim(), None),
    };
    let bad = || format!("`{cell}` is not of type {kind}");
    Ok(match (name, format) {
        ("string" | "bytes", None) => Value::from(cell),
        ("integer" | "int", None) => Value::Integer(cell.trim().parse().map_err(|_| bad())?),
        ("float", None) => Value::from_f64_or_zero(cell.trim().parse().map_err(|_| bad())?),
        ("boolean" | "bool", None) => Value::Boolean(match cell.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" => true,
            "false" | "f" | "no" | "n" | "0" => false,
            _ => return Err(bad()),
        }),
        ("date", format) => {
            let date = NaiveDate::parse_from_str(cell.trim(), format.unwrap_or("%Y-%m-%d")).map_err(|_| bad())?;
            Value::Timestamp(date.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc())
        }
        ("timestamp", None) => Value::Timestamp(DateTime::parse_from_rfc3339(cell.trim()).map_err(|_| bad())?.with_timezone(&Utc)),
        ("timestamp", Some(format)) => Value::Timestamp(match DateTime::parse_from_str(cell.trim(), format) {
            Ok(t) => t.with_timezone(&Utc),
            Err(_) => NaiveDateTime::parse_from_str(cell.trim(), format).map_err(|_| bad())?.and_utc(),
        }),
        _ => return Err(format!("unknown schema type `{kind}` (string, integer, float, boolean, date, timestamp)")),
    })
}

fn from_json(bytes: &[u8]) -> Result<Table, String> {
    let objects: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_slice(bytes).map_err(|e| format!("{e} (a JSON table is an array of objects)"))?;
    let mut columns: Vec<String> = Vec::new();
    for key in objects.iter().flat_map(|o| o.keys()) {
        if !columns.contains(key) {
            columns.push(key.clone());
        }
    }
    let rows = objects.into_iter().map(|mut o| columns.iter().map(|c| o.remove(c).map_or(Value::Null, Value::from)).collect()).collect();
    Ok(Table { columns, rows })
}

/// What a lookup asks of one column.
#[derive(Debug)]
pub enum Condition {
    Equals(Value),
    Between { from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>> },
}

/// A hash index over some columns of a table, for one case sensitivity.
#[derive(Debug)]
pub struct Index {
    columns: Vec<usize>,
    case_sensitive: bool,
    rows: HashMap<Vec<Key>, Vec<u32>>,
}

/// A cell as an index key: text folded to lower case when the lookup is not case sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Text(Box<[u8]>),
    Other(String),
}

fn key(value: &Value, case_sensitive: bool) -> Key {
    match value.as_bytes() {
        Some(text) if case_sensitive => Key::Text(text.to_vec().into()),
        Some(text) => Key::Text(String::from_utf8_lossy(text).to_lowercase().into_bytes().into()),
        None => Key::Other(format!("{value:?}")),
    }
}

impl Table {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// An index on `columns` (the exact-match fields of a program's condition).
    pub fn index(&self, columns: &[&str], case_sensitive: bool) -> Result<Index, String> {
        let positions = columns
            .iter()
            .map(|name| self.column(name).ok_or_else(|| format!("the table has no column `{name}` (it has: {})", self.columns.join(", "))))
            .collect::<Result<Vec<usize>, String>>()?;
        let mut rows: HashMap<Vec<Key>, Vec<u32>> = HashMap::new();
        for (n, row) in self.rows.iter().enumerate() {
            rows.entry(positions.iter().map(|&i| key(&row[i], case_sensitive)).collect()).or_default().push(n as u32);
        }
        Ok(Index { columns: positions, case_sensitive, rows })
    }

    /// The rows meeting every condition (by column), as objects of the
    /// `select`ed columns (all when `None`). `wildcard` also matches an exact
    /// field whose cell holds it. Conditions on columns the index does not
    /// cover are checked row by row.
    pub fn find(
        &self,
        index: &Index,
        conditions: &[(usize, Condition)],
        wildcard: Option<&Value>,
        select: Option<&[String]>,
    ) -> Vec<ObjectMap> {
        let wanted: Vec<&Value> = index
            .columns
            .iter()
            .map(|c| match conditions.iter().find(|(column, _)| column == c) {
                Some((_, Condition::Equals(value))) => value,
                _ => &Value::Null,
            })
            .collect();
        // Each exact field matches its value, or the wildcard: every combination is a key.
        let choices = if wildcard.is_some() { 1usize << wanted.len().min(16) } else { 1 };
        let mut found: Vec<u32> = Vec::new();
        for choice in 0..choices {
            let probe: Vec<Key> = wanted
                .iter()
                .enumerate()
                .map(|(i, value)| key(if choice & (1 << i) != 0 { wildcard.unwrap_or(value) } else { value }, index.case_sensitive))
                .collect();
            if let Some(rows) = index.rows.get(&probe) {
                found.extend(rows);
            }
        }
        if choices > 1 {
            found.sort_unstable();
            found.dedup();
        }
        found
            .into_iter()
            .map(|n| &self.rows[n as usize])
            .filter(|row| conditions.iter().all(|(column, condition)| matches(&row[*column], condition)))
            .map(|row| {
                self.columns
                    .iter()
                    .zip(row)
                    .filter(|(name, _)| select.is_none_or(|s| s.contains(name)))
                    .map(|(name, value)| (name.as_str().into(), value.clone()))
                    .collect()
            })
            .collect()
    }
}

/// A date condition on a cell (exact ones were met through the index).
fn matches(cell: &Value, condition: &Condition) -> bool {
    match condition {
        Condition::Equals(_) => true,
        Condition::Between { from, to } => match cell {
            Value::Timestamp(t) => from.is_none_or(|from| from <= *t) && to.is_none_or(|to| *t <= to),
            _ => false,
        },
    }
}

pub type Tables = BTreeMap<String, Arc<Table>>;

thread_local! {
    /// The tables of the config whose programs are being compiled on this thread.
    static IN_SCOPE: RefCell<Tables> = const { RefCell::new(BTreeMap::new()) };
}

/// Run `compile` with `tables` as the ones VRL programs compile against: a
/// config's transforms are built (synchronously) inside this, by whoever
/// builds them (validation, the topology, unit tests).
pub fn with_tables<T>(tables: &Tables, compile: impl FnOnce() -> T) -> T {
    let before = IN_SCOPE.with(|scope| std::mem::replace(&mut *scope.borrow_mut(), tables.clone()));
    let result = compile();
    IN_SCOPE.with(|scope| *scope.borrow_mut() = before);
    result
}

/// The tables in scope on this thread.
fn in_scope() -> Tables {
    IN_SCOPE.with(|scope| scope.borrow().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(csv: &str, schema: &[(&str, &str)]) -> Table {
        let schema = schema.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        from_csv(csv.as_bytes(), true, b',', &schema).unwrap()
    }

    fn ts(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn cells_are_typed_by_the_schema() {
        let t = table(
            "id,name,born,seen,ok,ratio\n1,Bob,1985-06-01,2024-01-02T03:04:05Z,true,0.5\n",
            &[("id", "integer"), ("born", "date"), ("seen", "timestamp"), ("ok", "boolean"), ("ratio", "float")],
        );
        assert_eq!(
            t.rows[0],
            vec![
                Value::Integer(1),
                Value::from("Bob"),
                Value::Timestamp(ts("1985-06-01T00:00:00Z")),
                Value::Timestamp(ts("2024-01-02T03:04:05Z")),
                Value::Boolean(true),
                Value::from_f64_or_zero(0.5)
            ]
        );
        let e = from_csv(b"id\nx\n", true, b',', &[("id".to_string(), "integer".to_string())].into()).unwrap_err();
        assert_eq!(e, "line 2, column `id`: `x` is not of type integer");
        let headless = from_csv(b"a;b\n", false, b';', &BTreeMap::new()).unwrap();
        assert_eq!(
            (headless.columns, headless.rows),
            (vec!["0".to_string(), "1".to_string()], vec![vec![Value::from("a"), Value::from("b")]])
        );
    }

    #[test]
    fn lookups_by_index_case_wildcard_and_dates() {
        let t = table(
            "id,first,last,born\n1,Bob,Smith,1985-06-01\n2,Jane,Smith,1990-01-01\n3,*,Jones,1970-01-01\n",
            &[("id", "integer"), ("born", "date")],
        );
        let last = t.column("last").unwrap();
        let born = t.column("born").unwrap();
        let index = t.index(&["last"], false).unwrap();
        let smith = [(last, Condition::Equals(Value::from("smith")))];
        assert_eq!(t.find(&index, &smith, None, Some(&["id".to_string()])).len(), 2);
        let in_1985 = [
            (last, Condition::Equals(Value::from("SMITH"))),
            (born, Condition::Between { from: Some(ts("1985-01-01T00:00:00Z")), to: Some(ts("1985-12-31T00:00:00Z")) }),
        ];
        let found = t.find(&index, &in_1985, None, Some(&["id".to_string()]));
        assert_eq!(found, vec![ObjectMap::from([("id".into(), Value::Integer(1))])]);
        let sensitive = t.index(&["last"], true).unwrap();
        assert!(t.find(&sensitive, &smith, None, None).is_empty());
        let first = t.column("first").unwrap();
        let by_first = t.index(&["first"], true).unwrap();
        let anyone = [(first, Condition::Equals(Value::from("Zed")))];
        let found = t.find(&by_first, &anyone, Some(&Value::from("*")), Some(&["last".to_string()]));
        assert_eq!(found, vec![ObjectMap::from([("last".into(), Value::from("Jones"))])]);
        assert!(t.index(&["nope"], true).unwrap_err().contains("no column `nope`"));
    }
}
