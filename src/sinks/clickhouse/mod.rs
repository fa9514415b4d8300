//! `clickhouse`: rows over ClickHouse's HTTP interface, `JSONEachRow`.
//!
//! Events are batched per table (the table may be a template). A batch the
//! server refuses for its data (HTTP 400) is split in halves and resent, so
//! the good rows land and each bad row is found alone; bad rows go, with the
//! server's error text, to the dead-letter file, counted. Network errors and
//! 5xx are retried with backoff and jitter; unknown tables and bad credentials
//! are reported at once, not retried.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::component::{with_causes, BufferReceiver, Reporter, Result, SinkConfig, SinkContext, Task};
use crate::event::{Event, EventData, EventStatus, Kinds, RequestRecord, Value};
use crate::net::client::{
    gzip, http_client, redact_url, take_url_credentials, url_credentials_warning, Backoff, ClientAuth, Compression, RequestConfig,
};
use crate::net::tls::ClientTls;
use crate::sinks::util::{sleep_until, start, BatchConfig, BatchLimits, Healthcheck};
use crate::telemetry::ComponentMetrics;
use crate::template::Template;

pub mod schema;

use schema::Server;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// The HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub endpoint: String,
    #[serde(default = "default_database")]
    pub database: String,
    /// A table name, or a template such as `kong_{{ service }}`.
    pub table: String,
    pub auth: Option<ClientAuth>,
    #[serde(default)]
    pub format: Format,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub request: RequestConfig,
    /// Let ClickHouse ignore fields that have no column.
    #[serde(default)]
    pub skip_unknown_fields: bool,
    /// Where rows ClickHouse refuses are written, one JSON object per line with the error.
    pub dead_letter: Option<DeadLetter>,
    /// The built-in table layout the events follow (needed by `create_table`).
    pub schema: Option<Schema>,
    /// Create each table (of `schema`) before its first insert.
    #[serde(default)]
    pub create_table: bool,
    #[serde(default)]
    pub healthcheck: Healthcheck,
    #[serde(default)]
    pub tls: ClientTls,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Schema {
    /// The request record (Kong sources, later eBPF).
    RequestRecord,
    /// Span events (OTLP), one row per span.
    Span,
    /// Metric events, one row per metric.
    Metric,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    JsonEachRow,
    /// ClickHouse's binary row format: request records straight from the struct, with `schema`.
    RowBinary,
}

/// 10 000 rows or 10 MiB per insert, or 1 s: ClickHouse prefers few large inserts.
const BATCH_DEFAULTS: BatchLimits = BatchLimits { max_events: 10_000, max_bytes: Some(10 << 20), timeout: Duration::from_secs(1) };

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    pub path: String,
}

fn default_database() -> String {
    "default".into()
}

impl SinkConfig for ClickHouseConfig {
    fn input_kinds(&self) -> Kinds {
        match self.schema {
            Some(Schema::Span) => Kinds::SPAN,
            Some(Schema::Metric) => Kinds::METRIC,
            _ => Kinds::LOG,
        }
    }

    fn check(&self) -> Result<()> {
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return Err(format!("`endpoint` must be an http:// or https:// URL, not `{}`", redact_url(&self.endpoint)).into());
        }
        if matches!(self.auth, Some(ClientAuth::Bearer { .. })) {
            return Err("ClickHouse takes basic auth: `auth.user` and `auth.password`".into());
        }
        Template::parse(&self.table).map_err(|e| format!("`table`: {e}"))?;
        if self.format == Format::RowBinary && self.schema != Some(Schema::RequestRecord) {
            return Err("`format = \"row_binary\"` writes the built-in request-record table: set `schema = \"request_record\"`".into());
        }
        if self.create_table && self.schema.is_none() {
            return Err("`create_table` needs `schema` (the built-in layout to create): `request_record`, `span` or `metric`".into());
        }
        if self.request.concurrency == 0 {
            return Err("`request.concurrency` must be at least 1".into());
        }
        self.batch.limits(BATCH_DEFAULTS)?;
        Ok(())
    }

    fn warnings(&self) -> Vec<String> {
        url_credentials_warning("endpoint", &self.endpoint, self.auth.as_ref()).into_iter().collect()
    }

    fn build(&self, cx: SinkContext) -> Result<Task> {
        let table = Template::parse(&self.table).map_err(|e| format!("`table`: {e}"))?;
        let client = http_client(Duration::from_secs(self.request.timeout_secs.max(1)), self.tls.ca_pem()?.as_deref())?;
        let batch = self.batch.limits(BATCH_DEFAULTS)?;
        let (endpoint, auth) = take_url_credentials(&self.endpoint, self.auth.as_ref());
        let SinkContext { id, input, metrics } = cx;
        let writer = Writer {
            config: self.clone(),
            endpoint,
            auth,
            batch,
            client,
            report: Reporter { id, metrics },
            server: Server::default(),
            created: Default::default(),
        };
        Ok(Box::pin(run(writer, table, input)))
    }
}

/// What sends batches: shared by the inserts running at once (`request.concurrency`).
struct Writer {
    config: ClickHouseConfig,
    /// `endpoint` without credentials; those are in `auth` (see `take_url_credentials`).
    endpoint: String,
    auth: Option<ClientAuth>,
    batch: BatchLimits,
    client: reqwest::Client,
    report: Reporter,
    /// The types the server has, for the built-in tables (milliseconds with `DateTime64`).
    server: Server,
    /// Tables already created (with `create_table`).
    created: Mutex<HashSet<String>>,
}

/// Rows waiting for one table.
#[derive(Default)]
struct Pending {
    events: Vec<Event>,
    /// One JSON line per event.
    rows: Vec<Vec<u8>>,
    bytes: usize,
    since: Option<Instant>,
}

/// How an insert ended.
enum Outcome {
    Inserted,
    /// The data was refused (HTTP 400): a split may isolate it.
    BadData(String),
    /// Nothing in this batch can succeed: unknown table, credentials, retries exhausted.
    Failed(String),
}

/// Read events into per-table batches; send each full or due batch, up to
/// `request.concurrency` at once (at the limit, reading waits: backpressure).
async fn run(mut writer: Writer, table: Template, mut input: BufferReceiver) -> Result<()> {
    if writer.config.healthcheck.enabled {
        writer.healthcheck().await?;
    }
    if writer.config.schema.is_some() {
        let version = writer.statement("SELECT version()").await?;
        writer.server = Server::from_version(&version);
        tracing::info!(component = %writer.report.id, version = %version.trim(), datetime64 = writer.server.datetime64, map = writer.server.map, "ClickHouse server");
    }
    let writer = Arc::new(writer);
    let (timeout, limit) = (writer.batch.timeout, writer.config.request.concurrency.max(1));
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut inserting = FuturesUnordered::new();
    loop {
        let deadline = pending.values().filter_map(|p| p.since).min().map(|since| since + timeout);
        let (mut events, mut due) = (Vec::new(), Vec::new());
        tokio::select! {
            Some(()) = inserting.next(), if !inserting.is_empty() => continue,
            next = input.recv() => match next {
                Some(batch) => events = batch,
                None => break,
            },
            _ = sleep_until(deadline) => {
                due = pending.iter().filter(|(_, p)| p.since.is_some_and(|s| s.elapsed() >= timeout)).map(|(t, _)| t.clone()).collect();
            }
        }
        for event in events {
            if let Some(full) = writer.add(&table, event, &mut pending) {
                due.push(full);
            }
            // A full batch goes now, before the next event can grow it.
            for table in due.drain(..) {
                if let Some(p) = pending.remove(&table) {
                    start(&mut inserting, limit, writer.clone().flush(table, p)).await;
                }
            }
        }
        for table in due {
            if let Some(p) = pending.remove(&table) {
                start(&mut inserting, limit, writer.clone().flush(table, p)).await;
            }
        }
    }
    for (table, p) in pending {
        start(&mut inserting, limit, writer.clone().flush(table, p)).await;
    }
    while inserting.next().await.is_some() {}
    Ok(())
}

impl Writer {
    /// Put one event in its table's batch; the table's name when that batch is full.
    fn add(&self, template: &Template, event: Event, pending: &mut HashMap<String, Pending>) -> Option<String> {
        let table = match template.render(&event) {
            Ok(table) => table,
            Err(e) => {
                self.report.reject(&event, &format!("cannot render `table`: {e}"));
                return None;
            }
        };
        let row = match self.encode(&event) {
            Ok(row) => row,
            Err(e) => {
                self.report.reject(&event, &e);
                return None;
            }
        };
        let p = pending.entry(table.clone()).or_default();
        p.since.get_or_insert_with(Instant::now);
        p.bytes += row.len();
        p.rows.push(row);
        p.events.push(event);
        (p.events.len() >= self.batch.max_events || self.batch.max_bytes.is_some_and(|max| p.bytes >= max)).then_some(table)
    }

    /// One event as one row in the configured format.
    fn encode(&self, event: &Event) -> Result<Vec<u8>, String> {
        match (self.config.format, &event.data) {
            (Format::JsonEachRow, EventData::Span(span)) if self.config.schema == Some(Schema::Span) => {
                Ok(schema::span_row(span, self.server))
            }
            (Format::JsonEachRow, EventData::Metric(metric)) if self.config.schema == Some(Schema::Metric) => {
                Ok(schema::metric_row(metric, self.server))
            }
            (Format::JsonEachRow, _) => encode_row(event, self.server),
            (Format::RowBinary, EventData::Record(record)) => {
                let mut row = Vec::with_capacity(256);
                schema::write_row_binary(record, self.server, &mut row);
                Ok(row)
            }
            (Format::RowBinary, _) => Err("`row_binary` writes request records; this event is a plain log (use json_each_row)".into()),
        }
    }

    async fn healthcheck(&self) -> Result<(), String> {
        let request = self.authorized(self.client.get(format!("{}/?query=SELECT%201", self.endpoint.trim_end_matches('/'))));
        match request.send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                Err(format!("ClickHouse at {} answered {status} to `SELECT 1`: {}", self.endpoint, body.trim()))
            }
            Err(e) => Err(format!(
                "ClickHouse at {} is unreachable: {} (set healthcheck.enabled = false to start anyway)",
                self.endpoint,
                with_causes(&e)
            )),
        }
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Some(auth) => auth.apply(request),
            None => request,
        }
    }

    /// Run one statement; its answer, or why it failed.
    async fn statement(&self, sql: &str) -> Result<String, String> {
        let request = self.authorized(self.client.post(format!("{}/", self.endpoint.trim_end_matches('/')))).body(sql.to_string());
        let response = request.send().await.map_err(|e| format!("ClickHouse at {}: {e}", self.endpoint))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            Ok(text)
        } else {
            Err(format!("ClickHouse refused `{}`: HTTP {status}: {}", first_line(sql), first_line(&text)))
        }
    }

    /// A built-in table made by an older tapline lacks the newer columns (a
    /// request record's `tags`): add them where they belong, since inserts
    /// name no columns. `columns` are the definitions (`name Type`) in order.
    async fn add_missing_columns(&self, table: &str, columns: &[String]) -> Result<(), String> {
        let name = format!("{}.{}", quote_identifier(&self.config.database), quote_identifier(table));
        let described = self.statement(&format!("DESCRIBE TABLE {name} FORMAT TabSeparated")).await?;
        let present: std::collections::HashSet<&str> = described.lines().filter_map(|line| line.split('\t').next()).collect();
        let mut previous: Option<&str> = None;
        // An old server's map is two columns in one definition.
        for definition in columns.iter().flat_map(|c| c.split(",\n")).map(str::trim) {
            let column = definition.split(' ').next().unwrap_or_default();
            if !present.contains(column) {
                let after = previous.map(|p| format!(" AFTER {}", quote_identifier(p))).unwrap_or_default();
                self.statement(&format!("ALTER TABLE {name} ADD COLUMN {definition}{after}")).await?;
                tracing::info!(component = %self.report.id, table, column, "added a column the built-in table lacked");
            }
            previous = Some(column);
        }
        Ok(())
    }

    /// Insert a table's rows; split on bad data until each bad row stands alone.
    async fn flush(self: Arc<Self>, table: String, pending: Pending) {
        let table = table.as_str();
        if let (true, Some(schema)) = (self.config.create_table, self.config.schema) {
            let created = self.created.lock().unwrap_or_else(|e| e.into_inner()).contains(table);
            if !created {
                let create_database = format!("CREATE DATABASE IF NOT EXISTS {}", quote_identifier(&self.config.database));
                let (database, server) = (&self.config.database, self.server);
                let (ddl, columns) = match schema {
                    Schema::RequestRecord => {
                        (schema::request_record_table_sql(database, table, server), schema::request_record_columns(server))
                    }
                    Schema::Span => (schema::span_table_sql(database, table, server), schema::span_columns(server)),
                    Schema::Metric => (schema::metric_table_sql(database, table, server), schema::metric_columns(server)),
                };
                let made = async {
                    self.statement(&create_database).await?;
                    self.statement(&ddl).await?;
                    self.add_missing_columns(table, &columns).await
                };
                match made.await {
                    Ok(()) => {
                        self.created.lock().unwrap_or_else(|e| e.into_inner()).insert(table.to_string());
                    }
                    Err(e) => tracing::error!(component = %self.report.id, table, error = %e, "cannot create the table"),
                }
            }
        }
        let mut work = vec![(pending.events, pending.rows)];
        while let Some((events, rows)) = work.pop() {
            match self.insert(table, &rows).await {
                Outcome::Inserted => {
                    let bytes = rows.iter().map(Vec::len).sum();
                    self.report.settle(events.iter(), events.len(), Ok(bytes));
                }
                Outcome::BadData(_) if events.len() > 1 => {
                    let (mut events, mut rows) = (events, rows);
                    let half = events.len() / 2;
                    let (later_events, later_rows) = (events.split_off(half), rows.split_off(half));
                    // Pushed so that the first half is sent first: rows keep their order.
                    work.push((later_events, later_rows));
                    work.push((events, rows));
                }
                Outcome::BadData(error) => self.dead_letter(table, &events[0], &error).await,
                Outcome::Failed(error) => self.report.settle(events.iter(), events.len(), Err(format!("table {table}: {error}"))),
            }
        }
    }

    async fn insert(&self, table: &str, rows: &[Vec<u8>]) -> Outcome {
        let mut body = Vec::with_capacity(rows.iter().map(Vec::len).sum());
        for row in rows {
            body.extend_from_slice(row);
        }
        if self.config.compression == Compression::Gzip {
            body = gzip(&body);
        }
        let format = match self.config.format {
            Format::JsonEachRow => "JSONEachRow",
            Format::RowBinary => "RowBinary",
        };
        let query = format!("INSERT INTO {}.{} FORMAT {format}", quote_identifier(&self.config.database), quote_identifier(table));
        let mut url = format!("{}/?query={}", self.endpoint.trim_end_matches('/'), percent_encode(&query));
        if self.config.skip_unknown_fields {
            url.push_str("&input_format_skip_unknown_fields=1");
        }
        let mut backoff = Backoff::new(&self.config.request);
        let mut attempt: u64 = 0;
        loop {
            let mut request = self.authorized(self.client.post(&url)).body(body.clone());
            if self.config.compression == Compression::Gzip {
                request = request.header("Content-Encoding", "gzip");
            }
            let (retryable, error) = match request.send().await {
                Ok(response) if response.status().is_success() => return Outcome::Inserted,
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    let error = format!("HTTP {status}: {}", first_line(&text));
                    match classify(status.as_u16(), &text) {
                        Refusal::Data => return Outcome::BadData(error),
                        Refusal::Permanent => return Outcome::Failed(error),
                        Refusal::Transient => (true, error),
                    }
                }
                Err(e) => (true, format!("request failed: {e}")),
            };
            attempt += 1;
            if !retryable || attempt > self.config.request.retry_attempts {
                return Outcome::Failed(error);
            }
            ComponentMetrics::add(&self.report.metrics.errors, 1);
            tracing::warn!(component = %self.report.id, table, attempt, error, "insert failed; retrying");
            backoff.wait(None).await;
        }
    }

    /// A row ClickHouse refused: to the dead-letter file with the error, counted.
    async fn dead_letter(&self, table: &str, event: &Event, error: &str) {
        ComponentMetrics::add(&self.report.metrics.errors, 1);
        ComponentMetrics::add(&self.report.metrics.discarded_events, 1);
        event.finalizers.update_status(EventStatus::Rejected);
        tracing::error!(component = %self.report.id, table, error, "ClickHouse refused a row");
        let Some(dead_letter) = &self.config.dead_letter else { return };
        // The event as JSON, whatever format the row was sent in.
        let mut row = Vec::new();
        let row_json: serde_json::Value = match event.write_json(&mut row) {
            Ok(()) => serde_json::from_slice(&row).unwrap_or(serde_json::Value::Null),
            Err(_) => serde_json::Value::Null,
        };
        let mut line = serde_json::to_vec(&serde_json::json!({ "table": table, "error": error, "row": row_json })).unwrap_or_default();
        line.push(b'\n');
        let written = async {
            let mut file = tokio::fs::OpenOptions::new().create(true).append(true).open(&dead_letter.path).await?;
            file.write_all(&line).await?;
            file.flush().await
        };
        if let Err(e) = written.await {
            tracing::error!(component = %self.report.id, path = %dead_letter.path, error = %e, "cannot write the dead-letter file");
        }
    }
}

/// One event as a JSONEachRow line. Timestamps are written as ClickHouse's
/// `DateTime` reads them without settings: `YYYY-MM-DD hh:mm:ss`, UTC; with
/// milliseconds for the built-in tables' `DateTime64(3)`.
pub fn encode_row(event: &Event, server: schema::Server) -> Result<Vec<u8>, String> {
    let fractional_seconds = server.datetime64;
    let mut row = match &event.data {
        EventData::Log(v) => serde_json::to_vec(&ClickHouseJson(v, fractional_seconds)),
        EventData::Record(r) if !server.map && !r.tags.is_empty() => return record_row_without_map(r, fractional_seconds),
        EventData::Record(r) => return record_row(r, fractional_seconds),
        _ => return Err("only logs and request records go to ClickHouse".into()),
    }
    .map_err(|e| format!("cannot encode a row: {e}"))?;
    row.push(b'\n');
    Ok(row)
}

/// A request record serialized straight from its struct. Its first field,
/// `time`, comes out in RFC 3339, which `DateTime` does not read: that one
/// value is swapped for ClickHouse's form.
fn record_row(record: &RequestRecord, fractional_seconds: bool) -> Result<Vec<u8>, String> {
    const TIME_KEY: &[u8] = b"{\"time\":\"";
    let json = serde_json::to_vec(record).map_err(|e| format!("cannot encode a row: {e}"))?;
    let rest = json.strip_prefix(TIME_KEY).and_then(|rest| rest.iter().position(|&b| b == b'"').map(|end| &rest[end..]));
    let Some(rest) = rest else { return Err("a request record's JSON does not start with its time".into()) };
    let mut row = Vec::with_capacity(json.len() + 1);
    row.extend_from_slice(TIME_KEY);
    write!(row, "{}", clickhouse_time(&record.time, fractional_seconds)).map_err(|e| format!("cannot encode a row: {e}"))?;
    row.extend_from_slice(rest);
    row.push(b'\n');
    Ok(row)
}

/// A request record with tags for a server without `Map` (before 21.8): the
/// tags go as the `tags_keys` and `tags_values` arrays of the built-in table.
fn record_row_without_map(record: &RequestRecord, fractional_seconds: bool) -> Result<Vec<u8>, String> {
    let mut value = serde_json::to_value(record).map_err(|e| format!("cannot encode a row: {e}"))?;
    let row = value.as_object_mut().ok_or("a request record is an object")?;
    row.remove("tags");
    row.insert("tags_keys".into(), record.tags.keys().cloned().collect());
    row.insert("tags_values".into(), record.tags.values().cloned().collect());
    row.insert("time".into(), clickhouse_time(&record.time, fractional_seconds).to_string().into());
    let mut line = serde_json::to_vec(&value).map_err(|e| format!("cannot encode a row: {e}"))?;
    line.push(b'\n');
    Ok(line)
}

/// A time as ClickHouse's `DateTime` (or `DateTime64(3)`) reads it without settings, UTC.
fn clickhouse_time(t: &chrono::DateTime<chrono::Utc>, fractional_seconds: bool) -> impl std::fmt::Display {
    t.format(if fractional_seconds { "%Y-%m-%d %H:%M:%S%.3f" } else { "%Y-%m-%d %H:%M:%S" })
}

/// A VRL value serialized for ClickHouse: timestamps in its `DateTime` form.
struct ClickHouseJson<'a>(&'a Value, bool);

impl serde::Serialize for ClickHouseJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Timestamp(t) => s.collect_str(&clickhouse_time(t, self.1)),
            Value::Object(map) => {
                let mut m = s.serialize_map(Some(map.len()))?;
                for (k, v) in map {
                    m.serialize_entry(k.as_str(), &ClickHouseJson(v, self.1))?;
                }
                m.end()
            }
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(&ClickHouseJson(v, self.1))?;
                }
                seq.end()
            }
            other => other.serialize(s),
        }
    }
}

enum Refusal {
    /// The rows themselves (a split may isolate them).
    Data,
    /// The table, database or credentials: no retry can help.
    Permanent,
    /// Load, network, timeouts: retry.
    Transient,
}

/// ClickHouse's HTTP status is not enough (18.16 answers 500 to a row that
/// does not parse): the exception code in the body says what went wrong.
fn classify(status: u16, body: &str) -> Refusal {
    // Parse and conversion errors: CANNOT_PARSE_*, TYPE_MISMATCH, CANNOT_CONVERT_TYPE,
    // INCORRECT_DATA, NO_SUCH_COLUMN_IN_TABLE, CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN, …
    const DATA: &[u32] = &[6, 16, 25, 26, 27, 32, 38, 41, 53, 69, 70, 72, 117, 131, 349];
    // UNKNOWN_TABLE, UNKNOWN_DATABASE, UNKNOWN_USER, WRONG_PASSWORD, READONLY, ACCESS_DENIED, AUTHENTICATION_FAILED.
    const PERMANENT: &[u32] = &[60, 81, 164, 192, 193, 497, 516];
    let code = body
        .trim_start()
        .strip_prefix("Code: ")
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<u32>().ok());
    match (code, status) {
        (Some(c), _) if DATA.contains(&c) => Refusal::Data,
        (Some(c), _) if PERMANENT.contains(&c) => Refusal::Permanent,
        (_, 400) => Refusal::Data,
        (_, 401 | 403 | 404) => Refusal::Permanent,
        (_, s) if s >= 500 || s == 429 => Refusal::Transient,
        _ => Refusal::Permanent,
    }
}

fn quote_identifier(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn first_line(text: &str) -> String {
    text.trim().lines().next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_by_exception_code_then_status() {
        let parse = "Code: 27, e.displayText() = DB::Exception: Cannot parse input";
        assert!(matches!(classify(500, parse), Refusal::Data));
        assert!(matches!(classify(404, "Code: 60, e.displayText() = DB::Exception: Table x doesn't exist."), Refusal::Permanent));
        assert!(matches!(classify(500, "Code: 516. DB::Exception: default: Authentication failed"), Refusal::Permanent));
        assert!(matches!(classify(500, "Code: 252, Too many parts"), Refusal::Transient));
        assert!(matches!(classify(503, "overloaded"), Refusal::Transient));
        assert!(matches!(classify(400, "bad"), Refusal::Data));
    }

    const OLD: Server = Server { datetime64: false, map: false };
    const MODERN: Server = Server { datetime64: true, map: true };

    #[test]
    fn records_are_written_from_the_struct_with_clickhouse_time() {
        let (old, modern) = (OLD, MODERN);
        let record = RequestRecord {
            time: "2024-11-26T09:23:20.121Z".parse().unwrap(),
            service: Some("orders".into()),
            status: Some(200),
            ..Default::default()
        };
        let row = String::from_utf8(encode_row(&Event::record(record.clone()), modern).unwrap()).unwrap();
        assert!(row.starts_with("{\"time\":\"2024-11-26 09:23:20.121\",\"observation_point\":\"gateway\""), "{row}");
        let parsed: serde_json::Value = serde_json::from_str(&row).unwrap();
        let mut expected = serde_json::to_value(&record).unwrap();
        expected["time"] = "2024-11-26 09:23:20.121".into();
        assert_eq!(parsed, expected);
        assert!(String::from_utf8(encode_row(&Event::record(record.clone()), old).unwrap())
            .unwrap()
            .starts_with("{\"time\":\"2024-11-26 09:23:20\","));
        // Tags: a map where the server has `Map`, two arrays before.
        let tagged = Event::record(RequestRecord {
            tags: [("team".to_string(), "pay".to_string()), ("zone".to_string(), "a".to_string())].into(),
            ..record
        });
        let row: serde_json::Value = serde_json::from_slice(&encode_row(&tagged, modern).unwrap()).unwrap();
        assert_eq!(row["tags"], serde_json::json!({"team": "pay", "zone": "a"}));
        let row: serde_json::Value = serde_json::from_slice(&encode_row(&tagged, old).unwrap()).unwrap();
        assert_eq!(
            (&row["tags_keys"], &row["tags_values"], row.get("tags")),
            (&serde_json::json!(["team", "zone"]), &serde_json::json!(["pay", "a"]), None)
        );
        assert_eq!(row["time"], "2024-11-26 09:23:20");
    }

    #[test]
    fn rows_use_clickhouse_datetime_text() {
        let (old, modern) = (OLD, MODERN);
        let mut event = Event::log(Value::from(serde_json::json!({"a": 1})));
        if let EventData::Log(v) = &mut event.data {
            v.insert(vrl::path!("t"), Value::Timestamp("2024-11-26T09:23:20.121Z".parse().unwrap()));
        }
        assert_eq!(String::from_utf8(encode_row(&event, old).unwrap()).unwrap(), "{\"a\":1,\"t\":\"2024-11-26 09:23:20\"}\n");
        assert_eq!(String::from_utf8(encode_row(&event, modern).unwrap()).unwrap(), "{\"a\":1,\"t\":\"2024-11-26 09:23:20.121\"}\n");
        assert_eq!(Server::from_version("26.9.2.1\n"), Server { datetime64: true, map: true });
        assert_eq!(Server::from_version("21.3.1"), Server { datetime64: true, map: false });
        assert_eq!(Server::from_version("18.16.1"), Server { datetime64: false, map: false });
        assert_eq!(quote_identifier("kong`x"), "`kong\\`x`");
        assert_eq!(percent_encode("INSERT INTO `a`"), "INSERT%20INTO%20%60a%60");
    }
}
