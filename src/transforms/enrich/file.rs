//! `file` tables: rows read from a CSV file (a header row, then one row per
//! line) or a JSON file (an array of flat objects), found by the values of
//! their key columns. Also what every table read from a file shares: the
//! reading, the check for a newer version, the choice of columns to write.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustc_hash::FxHashMap;
use serde::Deserialize;

use super::{write, Refresh, Row, Table};
use crate::event::{Event, FieldPath};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTableConfig {
    /// Relative paths are taken from tapline's working directory.
    pub path: PathBuf,
    /// Default: `json` for a `.json` file, else `csv`.
    #[serde(default)]
    pub format: Option<Format>,
    /// The columns that identify a row.
    pub key: Key,
    /// The columns to add; default: every column not in the key.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Written before each column name to make the field's name.
    #[serde(default)]
    pub prefix: String,
}

/// Key columns, each matched with the event field of the same name, or a
/// map from column to event field.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Key {
    One(String),
    Columns(Vec<String>),
    Fields(BTreeMap<String, String>),
}

impl Key {
    /// (column, event field) pairs.
    fn pairs(&self) -> Result<Vec<(String, FieldPath)>, String> {
        let pairs: Vec<(&str, &str)> = match self {
            Key::One(column) => vec![(column, column)],
            Key::Columns(columns) => columns.iter().map(|c| (c.as_str(), c.as_str())).collect(),
            Key::Fields(map) => map.iter().map(|(c, f)| (c.as_str(), f.as_str())).collect(),
        };
        if pairs.is_empty() {
            return Err("`key` is empty: name at least one column".into());
        }
        pairs
            .into_iter()
            .map(|(column, field)| Ok((column.to_string(), FieldPath::parse(field).map_err(|e| format!("key `{column}`: {e}"))?)))
            .collect()
    }
}

impl FileTableConfig {
    pub fn build(&self) -> Result<FileTable, String> {
        let key = self.key.pairs()?;
        let key_columns: Vec<String> = key.iter().map(|(c, _)| c.clone()).collect();
        let key_fields = key.into_iter().map(|(_, f)| f).collect();
        let mut file = TableFile::new(&self.path, self.format);
        let table = file.load(|data| Keyed::new(data, &key_columns, self.columns.as_deref(), &self.prefix))?;
        Ok(FileTable {
            file,
            key_columns,
            key_fields,
            columns: self.columns.clone(),
            prefix: self.prefix.clone(),
            table,
            scratch: String::new(),
        })
    }
}

pub struct FileTable {
    file: TableFile,
    key_columns: Vec<String>,
    key_fields: Vec<FieldPath>,
    columns: Option<Vec<String>>,
    prefix: String,
    table: Keyed,
    /// A composite key, built here for each event without allocating.
    scratch: String,
}

/// Between the parts of a composite key.
const SEPARATOR: char = '\u{1f}';

/// Rows by key, and the fields their values go to.
struct Keyed {
    fields: Vec<FieldPath>,
    rows: FxHashMap<Box<str>, Row>,
}

impl Keyed {
    fn new(data: Data, key_columns: &[String], columns: Option<&[String]>, prefix: &str) -> Result<Keyed, String> {
        let key_at = key_columns.iter().map(|c| data.position(c, "key column")).collect::<Result<Vec<_>, _>>()?;
        let (value_at, fields) = data.select(columns, key_columns, prefix)?;
        let mut rows = FxHashMap::default();
        rows.reserve(data.rows.len());
        for row in data.rows {
            let mut key = String::new();
            for (n, &i) in key_at.iter().enumerate() {
                let part = row.cells[i].as_deref().ok_or_else(|| format!("{}: the key column `{}` is empty", row.at, key_columns[n]))?;
                if n > 0 {
                    key.push(SEPARATOR);
                }
                key.push_str(part);
            }
            // Duplicate keys: the last row wins.
            rows.insert(key.into_boxed_str(), row.take(&value_at));
        }
        Ok(Keyed { fields, rows })
    }
}

impl Table for FileTable {
    fn enrich(&mut self, event: &mut Event) -> bool {
        let row = if let [field] = self.key_fields.as_slice() {
            let Some(value) = field.get(event) else { return false };
            self.table.rows.get(&*value)
        } else {
            self.scratch.clear();
            for (n, field) in self.key_fields.iter().enumerate() {
                let Some(value) = field.get(event) else { return false };
                if n > 0 {
                    self.scratch.push(SEPARATOR);
                }
                self.scratch.push_str(&value);
            }
            self.table.rows.get(self.scratch.as_str())
        };
        let Some(row) = row else { return false };
        write(&self.table.fields, row, event);
        true
    }

    fn refresh(&mut self) -> Refresh {
        let (key_columns, columns, prefix) = (&self.key_columns, self.columns.as_deref(), self.prefix.as_str());
        self.file.refresh(&mut self.table, |data| Keyed::new(data, key_columns, columns, prefix))
    }

    fn refreshes(&self) -> bool {
        true
    }
}

/// A table's file, and what it looked like when last read.
pub struct TableFile {
    path: PathBuf,
    format: Format,
    seen: Seen,
    /// A hash of the bytes last read: the same bytes again are no new version.
    content: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Seen {
    /// Read too soon after it was written to trust its signature: read again.
    Unsure,
    Missing,
    At(Signature),
}

/// Modification time, size and inode: a change in any means a new version.
type Signature = (SystemTime, u64, u64);

/// A file modified less than this before it was read may change again
/// without its signature changing (coarse timestamps, same size).
const UNSURE: Duration = Duration::from_secs(2);

fn signature(path: &Path) -> std::io::Result<Signature> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.modified()?, meta.len(), meta.ino()))
}

impl TableFile {
    pub fn new(path: &Path, format: Option<Format>) -> TableFile {
        let format = format.unwrap_or_else(|| {
            if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
                Format::Json
            } else {
                Format::Csv
            }
        });
        TableFile { path: path.to_path_buf(), format, seen: Seen::Unsure, content: None }
    }

    /// Read and parse the file, then make a table of it with `index`.
    /// Errors name the file (and the line, where known).
    pub fn load<T>(&mut self, index: impl FnOnce(Data) -> Result<T, String>) -> Result<T, String> {
        self.content = None;
        let signature = signature(&self.path);
        self.read(signature, index).map(|table| table.expect("read once"))
    }

    /// `None`: the same bytes as last time.
    fn read<T>(
        &mut self,
        signature: std::io::Result<Signature>,
        index: impl FnOnce(Data) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        let path = self.path.display();
        // Taken before reading: a change while reading shows at the next check.
        self.seen = match &signature {
            Ok(s) if SystemTime::now().duration_since(s.0).is_ok_and(|age| age >= UNSURE) => Seen::At(*s),
            Ok(_) => Seen::Unsure,
            Err(_) => Seen::Missing,
        };
        signature.map_err(|e| format!("cannot read {path}: {e}"))?;
        let bytes = std::fs::read(&self.path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let mut hasher = std::hash::DefaultHasher::new();
        bytes.hash(&mut hasher);
        let hash = hasher.finish();
        if self.content.replace(hash) == Some(hash) {
            return Ok(None);
        }
        let data = match self.format {
            Format::Csv => Data::from_csv(&bytes),
            Format::Json => Data::from_json(&bytes),
        };
        data.and_then(index).map(Some).map_err(|e| format!("{path}: {e}"))
    }

    /// When the file changed since it was last read, load it into `table`;
    /// a version that does not load leaves `table` as it was (and is
    /// reported once).
    pub fn refresh<T>(&mut self, table: &mut T, index: impl FnOnce(Data) -> Result<T, String>) -> Refresh {
        let signature = signature(&self.path);
        match (&signature, self.seen) {
            (Err(_), Seen::Missing) => return Refresh::Unchanged,
            (Ok(now), Seen::At(then)) if *now == then => return Refresh::Unchanged,
            _ => {}
        }
        match self.read(signature, index) {
            Ok(None) => Refresh::Unchanged,
            Ok(Some(new)) => {
                *table = new;
                tracing::info!(path = %self.path.display(), "enrich: table reloaded");
                Refresh::Reloaded
            }
            Err(e) => Refresh::Failed(e),
        }
    }
}

/// A file's rows, each with a cell per column (`None`: empty or null).
pub struct Data {
    pub columns: Vec<String>,
    pub rows: Vec<DataRow>,
}

pub struct DataRow {
    pub at: At,
    pub cells: Vec<Option<Box<str>>>,
}

impl DataRow {
    /// The cells at `positions`, in that order.
    pub fn take(mut self, positions: &[usize]) -> Row {
        positions.iter().map(|&i| self.cells[i].take()).collect()
    }
}

/// Where a row is in its file, for messages.
#[derive(Debug, Clone, Copy)]
pub enum At {
    Line(u64),
    /// 1-based.
    Object(usize),
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Line(n) => write!(f, "line {n}"),
            At::Object(n) => write!(f, "object {n} of the array"),
        }
    }
}

fn cell(text: &str) -> Option<Box<str>> {
    (!text.is_empty()).then(|| text.into())
}

impl Data {
    /// A header row, then rows of as many fields; cells are trimmed; lines
    /// starting with `#` are comments.
    pub fn from_csv(bytes: &[u8]) -> Result<Data, String> {
        let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).comment(Some(b'#')).from_reader(bytes);
        let columns: Vec<String> = reader.headers().map_err(csv_error)?.iter().map(str::to_string).collect();
        if columns.is_empty() {
            return Err("the file is empty: a CSV table starts with a header row".into());
        }
        let mut seen = BTreeSet::new();
        for column in &columns {
            if column.is_empty() {
                return Err("the header row has an empty column name".into());
            }
            if !seen.insert(column.as_str()) {
                return Err(format!("the header row names column `{column}` twice"));
            }
        }
        let mut rows = Vec::new();
        let mut record = csv::StringRecord::new();
        while reader.read_record(&mut record).map_err(csv_error)? {
            let at = At::Line(record.position().map_or(0, |p| p.line()));
            rows.push(DataRow { at, cells: record.iter().map(cell).collect() });
        }
        Ok(Data { columns, rows })
    }

    /// An array of flat objects: the columns are every name used (sorted);
    /// values are strings, numbers, booleans or null.
    pub fn from_json(bytes: &[u8]) -> Result<Data, String> {
        let objects: Vec<BTreeMap<String, Cell>> = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => format!("{e} (a JSON table is an array of flat objects)"),
            _ => e.to_string(),
        })?;
        let columns: Vec<String> = objects.iter().flat_map(|o| o.keys()).collect::<BTreeSet<_>>().into_iter().cloned().collect();
        let rows = objects
            .into_iter()
            .enumerate()
            .map(|(n, mut object)| DataRow {
                at: At::Object(n + 1),
                cells: columns.iter().map(|c| object.remove(c).and_then(|v| v.0)).collect(),
            })
            .collect();
        Ok(Data { columns, rows })
    }

    /// Where a column is.
    pub fn position(&self, column: &str, what: &str) -> Result<usize, String> {
        self.columns
            .iter()
            .position(|c| c == column)
            .ok_or_else(|| format!("{what} `{column}` is not in the file (it has: {})", self.columns.join(", ")))
    }

    /// The columns to write (`wanted`, or every one not in `except`) and
    /// the fields they go to: the column's name after `prefix`.
    pub fn select(&self, wanted: Option<&[String]>, except: &[String], prefix: &str) -> Result<(Vec<usize>, Vec<FieldPath>), String> {
        let names: Vec<&String> = match wanted {
            Some(wanted) => wanted.iter().collect(),
            None => self.columns.iter().filter(|c| !except.contains(c)).collect(),
        };
        let mut positions = Vec::with_capacity(names.len());
        let mut fields = Vec::with_capacity(names.len());
        for name in names {
            positions.push(self.position(name, "column")?);
            fields.push(FieldPath::parse(&format!("{prefix}{name}")).map_err(|e| format!("column `{name}`: {e}"))?);
        }
        Ok((positions, fields))
    }
}

fn csv_error(e: csv::Error) -> String {
    let line = |pos: &Option<csv::Position>| pos.as_ref().map_or(0, |p| p.line());
    match e.kind() {
        csv::ErrorKind::UnequalLengths { pos, expected_len, len } => {
            format!("line {}: {len} fields where the header row has {expected_len}", line(pos))
        }
        csv::ErrorKind::Utf8 { pos, err } => format!("line {}: invalid UTF-8 in field {}", line(pos), err.field() + 1),
        _ => e.to_string(),
    }
}

/// A JSON scalar as text; null is no value.
pub struct Cell(Option<Box<str>>);

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Cell;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number, boolean or null")
            }
            fn visit_str<E>(self, v: &str) -> Result<Cell, E> {
                Ok(Cell(cell(v)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Cell, E> {
                Ok(Cell(Some(v.to_string().into())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Cell, E> {
                Ok(Cell(Some(v.to_string().into())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Cell, E> {
                Ok(Cell(Some(v.to_string().into())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Cell, E> {
                Ok(Cell(Some(v.to_string().into())))
            }
            fn visit_unit<E>(self) -> Result<Cell, E> {
                Ok(Cell(None))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{config, record, run, tags};
    use super::*;
    use crate::event::{EventData, RequestRecord};

    fn table(dir: &Path, name: &str, text: &str, options: &str) -> crate::component::Result<Box<dyn crate::component::Transform>> {
        use crate::component::TransformConfig;
        std::fs::write(dir.join(name), text).unwrap();
        config(&format!("[[tables]]\ntype = \"file\"\npath = \"{}/{name}\"\n{options}\n", dir.display())).build()
    }

    fn service(name: &str) -> Event {
        record(RequestRecord { service: Some(name.into()), ..Default::default() })
    }

    #[test]
    fn csv_rows_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let csv = "# owners\nservice, team ,tier\norders,payments,1\n\"users, eu\",identity,\ncart,shop,2\norders,payments-2,1\n";
        let mut t = table(dir.path(), "s.csv", csv, "key = [\"service\"]").unwrap();
        let (out, misses) =
            run(&mut t, vec![service("orders"), service("users, eu"), service("unknown"), record(RequestRecord::default())]);
        assert_eq!(tags(&out[0]), vec![("team".into(), "payments-2".into()), ("tier".into(), "1".into())], "the last duplicate wins");
        assert_eq!(tags(&out[1]), vec![("team".into(), "identity".into())], "an empty cell is not written");
        assert!(tags(&out[2]).is_empty() && tags(&out[3]).is_empty());
        assert_eq!(misses, 2);
    }

    #[test]
    fn json_rows_by_composite_key_with_prefix_and_columns() {
        let dir = tempfile::tempdir().unwrap();
        let json = r#"[
            {"service": "orders", "route": "r1", "team": "payments", "tier": 1, "paged": true, "note": null},
            {"service": "orders", "route": "r2", "team": "checkout", "tier": 2.5}
        ]"#;
        let mut t = table(
            dir.path(),
            "s.json",
            json,
            "key = [\"service\", \"route\"]\ncolumns = [\"team\", \"tier\", \"paged\", \"note\"]\nprefix = \"owner_\"",
        )
        .unwrap();
        let event = |route: &str| record(RequestRecord { service: Some("orders".into()), route: Some(route.into()), ..Default::default() });
        let (out, misses) = run(&mut t, vec![event("r1"), event("r2"), event("r3")]);
        assert_eq!(
            tags(&out[0]),
            vec![("owner_paged".into(), "true".into()), ("owner_team".into(), "payments".into()), ("owner_tier".into(), "1".into())]
        );
        assert_eq!(tags(&out[1]), vec![("owner_team".into(), "checkout".into()), ("owner_tier".into(), "2.5".into())]);
        assert_eq!(misses, 1);
    }

    #[test]
    fn key_columns_map_to_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = table(dir.path(), "s.csv", "svc,team\norders,payments\n", "key = { svc = \"tags.svc\" }\nprefix = \"tags.\"").unwrap();
        let tagged = record(RequestRecord { tags: [("svc".to_string(), "orders".to_string())].into(), ..Default::default() });
        let log = Event::log(serde_json::json!({"tags": {"svc": "orders"}}));
        let span = {
            let mut span = crate::event::Span::default();
            span.attributes.insert("svc".into(), "orders".into());
            Event::span(span)
        };
        let (out, misses) = run(&mut t, vec![tagged, service("orders"), log, span]);
        assert_eq!(tags(&out[0]), vec![("svc".into(), "orders".into()), ("team".into(), "payments".into())]);
        assert!(tags(&out[1]).is_empty(), "`service` is not the key field");
        assert_eq!(FieldPath::parse("tags.team").unwrap().get(&out[2]).as_deref(), Some("payments"));
        assert_eq!(FieldPath::parse("attributes.team").unwrap().get(&out[3]).as_deref(), Some("payments"));
        assert_eq!(misses, 1);
    }

    #[test]
    fn adds_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = table(dir.path(), "s.csv", "service,team,pod,route\norders,payments,web-1,/new\n", "key = \"service\"").unwrap();
        let event = record(RequestRecord {
            service: Some("orders".into()),
            route: Some("/old".into()),
            tags: [("team".to_string(), "mine".to_string())].into(),
            ..Default::default()
        });
        let (out, misses) = run(&mut t, vec![event]);
        let EventData::Record(r) = &out[0].data else { unreachable!() };
        assert_eq!(
            (r.route.as_deref(), r.pod.as_deref(), r.tags.get("team").map(String::as_str)),
            (Some("/old"), Some("web-1"), Some("mine"))
        );
        assert_eq!(misses, 0, "a row was found: a hit even if nothing was new");
    }

    #[test]
    fn load_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().display();
        let err = |name: &str, text: &str, options: &str| table(dir.path(), name, text, options).err().unwrap().to_string();
        assert_eq!(
            err("a.csv", "service,team\norders,a\nusers\n", "key = \"service\""),
            format!("table 1 (`file`): {path}/a.csv: line 3: 1 fields where the header row has 2")
        );
        assert_eq!(
            err("b.csv", "service,team\norders,a\n", "key = \"svc\""),
            format!("table 1 (`file`): {path}/b.csv: key column `svc` is not in the file (it has: service, team)")
        );
        assert_eq!(
            err("c.csv", "service,team\norders,a\n", "key = \"service\"\ncolumns = [\"tier\"]"),
            format!("table 1 (`file`): {path}/c.csv: column `tier` is not in the file (it has: service, team)")
        );
        assert_eq!(
            err("d.csv", "service,team\n,a\n", "key = \"service\""),
            format!("table 1 (`file`): {path}/d.csv: line 2: the key column `service` is empty")
        );
        assert_eq!(
            err("e.csv", "", "key = \"service\""),
            format!("table 1 (`file`): {path}/e.csv: the file is empty: a CSV table starts with a header row")
        );
        assert_eq!(err("f.csv", "a,a\n", "key = \"a\""), format!("table 1 (`file`): {path}/f.csv: the header row names column `a` twice"));
        let e = err("g.json", "[{\"service\": \"a\"},\n {\"service\": {\"nested\": 1}}]", "key = \"service\"");
        assert!(
            e.starts_with(&format!(
                "table 1 (`file`): {path}/g.json: invalid type: map, expected a string, number, boolean or null at line 2"
            )),
            "{e}"
        );
        let e = err("h.json", "[{\"service\": \"a\"},\n", "key = \"service\"");
        assert!(e.contains("h.json: EOF while parsing a value at line 2"), "{e}");
        assert_eq!(
            err("i.json", "[{\"team\": \"a\"}]", "key = \"service\""),
            format!("table 1 (`file`): {path}/i.json: key column `service` is not in the file (it has: team)")
        );
        assert_eq!(
            err("j.json", "[{\"service\": \"a\"}, {\"team\": \"b\"}]", "key = \"service\""),
            format!("table 1 (`file`): {path}/j.json: object 2 of the array: the key column `service` is empty")
        );
        assert_eq!(err("k.csv", "service\n", "key = []"), "table 1 (`file`): `key` is empty: name at least one column");
        let e = err("l.txt", "{\"service\": 1}", "key = \"service\"\nformat = \"json\"");
        assert!(e.contains("expected a sequence at line 1 column 0 (a JSON table is an array of flat objects)"), "{e}");
    }

    #[test]
    fn a_changed_file_is_reloaded_and_a_broken_one_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.csv");
        std::fs::write(&path, "service,team\norders,payments\n").unwrap();
        let mut table =
            FileTableConfig { path: path.clone(), format: None, key: Key::One("service".into()), columns: None, prefix: String::new() }
                .build()
                .unwrap();
        assert_eq!(table.refresh(), Refresh::Unchanged);
        std::fs::write(&path, "service,team\norders,checkout\n").unwrap();
        assert_eq!(table.refresh(), Refresh::Reloaded);
        assert_eq!(table.refresh(), Refresh::Unchanged);
        let mut event = service("orders");
        assert!(table.enrich(&mut event));
        assert_eq!(tags(&event), vec![("team".into(), "checkout".into())]);

        std::fs::write(&path, "service,team\norders\n").unwrap();
        let Refresh::Failed(e) = table.refresh() else { panic!() };
        assert_eq!(e, format!("{}: line 2: 1 fields where the header row has 2", path.display()));
        assert_eq!(table.refresh(), Refresh::Unchanged, "reported once");
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(table.refresh(), Refresh::Failed(e) if e.starts_with(&format!("cannot read {}: ", path.display()))));
        assert_eq!(table.refresh(), Refresh::Unchanged);
        let mut event = service("orders");
        assert!(table.enrich(&mut event), "the old table stays");
        assert_eq!(tags(&event), vec![("team".into(), "checkout".into())]);
    }
}
