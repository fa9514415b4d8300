//! The `clickhouse` sink against a real ClickHouse server on loopback
//! (scripts/clickhouse.sh starts Debian's 18.16). In CI a missing server fails
//! the tests; elsewhere they are skipped with a message.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

pub(crate) fn clickhouse() -> Option<String> {
    let url = std::env::var("CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:18123".into());
    let up = Command::new("curl").args(["-sf", &format!("{url}/ping")]).output().map(|o| o.status.success()).unwrap_or(false);
    if up {
        return Some(url);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("ClickHouse is not answering at {url}: start it with scripts/clickhouse.sh start");
    }
    eprintln!("skipped: ClickHouse is not answering at {url} (scripts/clickhouse.sh start)");
    None
}

/// Run one statement; panics on a ClickHouse error.
pub(crate) fn query(url: &str, sql: &str) -> String {
    let out = Command::new("curl").args(["-sS", "--fail-with-body", &format!("{url}/"), "--data-binary", sql]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{sql}: {text}");
    text
}

fn rows(url: &str, sql: &str) -> Vec<Value> {
    query(url, &format!("{sql} FORMAT JSONEachRow")).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A fresh database per test, so tests can run side by side.
pub(crate) fn database(url: &str, name: &str) -> String {
    let db = format!("tapline_{name}_{}", std::process::id());
    query(url, &format!("DROP DATABASE IF EXISTS {db}"));
    query(url, &format!("CREATE DATABASE {db}"));
    db
}

/// Run a pipeline to its end with `input` on stdin; returns stderr.
fn run(config: &str, input: &str, dir: &Path) -> String {
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, config).unwrap();
    let mut child =
        bin().args(["run", "--config"]).arg(&path).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = wait(child, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    stderr
}

fn pipeline(url: &str, db: &str, table: &str, extra: &str) -> String {
    format!(
        "[api]\nenabled = false\n\
         [sources.in]\ntype = \"stdin\"\ndecoding.codec = \"json\"\n\
         [transforms.shape]\ntype = \"remap\"\ninputs = [\"in\"]\nsource = '.time = from_unix_timestamp!(.ts); del(.ts); del(.source_type); del(.timestamp)'\n\
         [sinks.ch]\ntype = \"clickhouse\"\ninputs = [\"shape\"]\nendpoint = \"{url}\"\ndatabase = \"{db}\"\ntable = \"{table}\"\n{extra}\n"
    )
}

/// Post one of the Kong fixtures to a `kong_http_log` source.
fn post_fixture(port: u16, fixture: &str) {
    let posted = Command::new("curl")
        .args(["-sf", "-H", "Content-Type: application/json", "--data-binary"])
        .arg(format!("@{}", here(&format!("tests/fixtures/kong/{fixture}")).display()))
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    assert!(posted.status.success(), "{fixture}");
}

const TABLE: &str =
    "(time DateTime, service String, status UInt16, latency_ms Float64, request_id String) ENGINE = MergeTree ORDER BY (service, time)";

fn line(i: usize, service: &str, status: Value) -> String {
    format!(
        "{}\n",
        json!({"ts": 1732613000 + i, "service": service, "status": status, "latency_ms": 10.5 + i as f64, "request_id": format!("r{i}")})
    )
}

#[test]
fn rows_arrive_with_their_types_and_values() {
    let Some(url) = clickhouse() else { return };
    let db = database(&url, "types");
    query(&url, &format!("CREATE TABLE {db}.requests {TABLE}"));
    let dir = tempfile::tempdir().unwrap();
    let input: String = (0..25).map(|i| line(i, "orders", json!(200 + i))).collect();
    run(&pipeline(&url, &db, "requests", "batch.max_events = 10"), &input, dir.path());
    let got = rows(&url, &format!("SELECT toString(time) AS time, service, status, latency_ms, request_id, toTypeName(status) AS t FROM {db}.requests ORDER BY time"));
    assert_eq!(got.len(), 25);
    assert_eq!(
        got[0],
        json!({"time": "2024-11-26 09:23:20", "service": "orders", "status": 200, "latency_ms": 10.5, "request_id": "r0", "t": "UInt16"})
    );
    assert_eq!(got[24]["request_id"], "r24");
    assert_eq!(got[24]["status"], 224);
}

#[test]
fn a_bad_row_goes_to_dead_letter_and_the_rest_lands() {
    let Some(url) = clickhouse() else { return };
    let db = database(&url, "deadletter");
    query(&url, &format!("CREATE TABLE {db}.requests {TABLE}"));
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let input: String = (0..10).map(|i| line(i, "orders", if i == 4 { json!("oops") } else { json!(200) })).collect();
    let stderr = run(&pipeline(&url, &db, "requests", &format!("dead_letter.path = \"{}\"", dead.display())), &input, dir.path());
    let landed: Vec<String> = rows(&url, &format!("SELECT request_id FROM {db}.requests ORDER BY time"))
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(landed, ["r0", "r1", "r2", "r3", "r5", "r6", "r7", "r8", "r9"]);
    let dead = read_json(&dead);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["row"]["request_id"], "r4");
    assert_eq!(dead[0]["table"], "requests");
    assert!(dead[0]["error"].as_str().unwrap().contains("Cannot parse"), "{}", dead[0]);
    assert_eq!(totals(&stderr, "ch", "component_discarded_events_total"), 1);
    assert_eq!(totals(&stderr, "ch", "component_sent_events_total"), 9);
}

#[test]
fn a_table_template_routes_rows_to_two_tables() {
    let Some(url) = clickhouse() else { return };
    let db = database(&url, "routing");
    query(&url, &format!("CREATE TABLE {db}.kong_orders {TABLE}"));
    query(&url, &format!("CREATE TABLE {db}.kong_users {TABLE}"));
    let dir = tempfile::tempdir().unwrap();
    let input: String = (0..9).map(|i| line(i, if i % 3 == 0 { "users" } else { "orders" }, json!(200))).collect();
    run(&pipeline(&url, &db, "kong_{{ service }}", ""), &input, dir.path());
    assert_eq!(query(&url, &format!("SELECT count() FROM {db}.kong_orders")).trim(), "6");
    assert_eq!(query(&url, &format!("SELECT count() FROM {db}.kong_users")).trim(), "3");
}

#[test]
fn an_unknown_table_is_reported_and_counted() {
    let Some(url) = clickhouse() else { return };
    let db = database(&url, "missing");
    let dir = tempfile::tempdir().unwrap();
    let stderr = run(&pipeline(&url, &db, "nope", ""), &line(0, "orders", json!(200)), dir.path());
    assert!(stderr.contains("doesn't exist"), "{stderr}");
    assert_eq!(totals(&stderr, "ch", "component_discarded_events_total"), 1);
}

#[test]
fn kong_records_go_straight_in() {
    let Some(url) = clickhouse() else { return };
    let db = database(&url, "records");
    query(
        &url,
        &format!("CREATE TABLE {db}.requests (time DateTime, service Nullable(String), status Nullable(UInt16), duration_us Nullable(UInt64), request_id Nullable(String)) ENGINE = MergeTree ORDER BY time"),
    );
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nenabled = false\n[sources.kong]\ntype = \"kong_http_log\"\naddress = \"127.0.0.1:{port}\"\n\
             [sinks.ch]\ntype = \"clickhouse\"\ninputs = [\"kong\"]\nendpoint = \"{url}\"\ndatabase = \"{db}\"\ntable = \"requests\"\nskip_unknown_fields = true\nbatch.timeout_secs = 0.2\n"
        ),
    )
    .unwrap();
    let child = bin().args(["run", "--config"]).arg(&config).stderr(Stdio::piped()).spawn().unwrap();
    wait_for("the HTTP source", Duration::from_secs(30), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    post_fixture(port, "kong3_array5.json");
    wait_for("5 rows", Duration::from_secs(30), || query(&url, &format!("SELECT count() FROM {db}.requests")).trim() == "5");
    signal(&child, "TERM");
    assert!(wait(child, Duration::from_secs(60)).status.success());
    let got = rows(
        &url,
        &format!("SELECT toString(time) AS time, service, status, duration_us, request_id FROM {db}.requests ORDER BY request_id"),
    );
    assert_eq!(
        got[0],
        json!({"time": "2024-11-26 09:23:21", "service": "catalog", "status": 200, "duration_us": "11000", "request_id": "a1"})
    );
    assert_eq!(got[2]["status"], 401);
}

/// Needs no server: a closed port is retried with backoff, then the events are counted as lost.
#[test]
fn an_unreachable_server_is_retried_then_counted() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}healthcheck.enabled = false\nrequest.retry_attempts = 2\nrequest.retry_initial_backoff_secs = 0.05\n",
        pipeline(&format!("http://127.0.0.1:{port}"), "default", "requests", "")
    );
    let stderr = run(&config, &line(0, "orders", json!(200)), dir.path());
    assert_eq!(stderr.matches("insert failed; retrying").count(), 2, "{stderr}");
    assert_eq!(totals(&stderr, "ch", "component_discarded_events_total"), 1);
}

#[test]
fn an_unreachable_server_fails_the_healthcheck_clearly() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, pipeline(&format!("http://127.0.0.1:{port}"), "default", "requests", "")).unwrap();
    let mut child = bin().args(["run", "--config"]).arg(&path).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdin.take());
    let output = wait(child, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("ClickHouse at http://127.0.0.1:{port} is unreachable")), "{stderr}");
}

/// Credentials in the endpoint and `auth` both set: `auth` is what is sent
/// (the URL's are dropped, with a warning), and no log carries the URL's password.
#[test]
fn auth_wins_over_credentials_in_the_endpoint() {
    let Some(url) = clickhouse() else { return };
    let db = database(&url, "urlauth");
    query(&url, &format!("CREATE TABLE {db}.requests {TABLE}"));
    let dir = tempfile::tempdir().unwrap();
    let with_userinfo = url.replacen("://", "://nosuchuser:wrongPassw0rd@", 1);
    let config = pipeline(&with_userinfo, &db, "requests", "auth.user = \"default\"\nauth.password = \"\"");
    let stderr = run(&config, &line(0, "orders", json!(200)), dir.path());
    assert_eq!(rows(&url, &format!("SELECT request_id FROM {db}.requests")).len(), 1, "{stderr}");
    assert!(stderr.contains("`endpoint` holds credentials and `auth` is set"), "{stderr}");
    assert!(!stderr.contains("wrongPassw0rd"), "{stderr}");
}

/// Over https, trusting the server's self-signed certificate through
/// `tls.ca_file` (scripts/clickhouse.sh makes both); without it, the
/// healthcheck says the certificate is the problem.
#[test]
fn https_with_a_ca_file() {
    let Some(url) = clickhouse() else { return };
    let https = std::env::var("CLICKHOUSE_HTTPS_URL").unwrap_or_else(|_| "https://127.0.0.1:18443".into());
    let ca = format!("{}/server.crt", std::env::var("CLICKHOUSE_DIR").unwrap_or_else(|_| "/tmp/tapline-clickhouse".into()));
    let db = database(&url, "https");
    query(&url, &format!("CREATE TABLE {db}.requests {TABLE}"));
    let dir = tempfile::tempdir().unwrap();
    let input: String = (0..5).map(|i| line(i, "orders", json!(200))).collect();
    run(&pipeline(&https, &db, "requests", &format!("tls.ca_file = \"{ca}\"")), &input, dir.path());
    let landed: Vec<Value> =
        rows(&url, &format!("SELECT request_id FROM {db}.requests ORDER BY time")).into_iter().map(|r| r["request_id"].clone()).collect();
    assert_eq!(landed, ["r0", "r1", "r2", "r3", "r4"]);

    let path = dir.path().join("untrusted.toml");
    std::fs::write(&path, pipeline(&https, &db, "requests", "")).unwrap();
    let mut child = bin().args(["run", "--config"]).arg(&path).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdin.take());
    let output = wait(child, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("ClickHouse at {https} is unreachable")) && stderr.contains("certificate"), "{stderr}");
}

/// chdb (the current ClickHouse engine, in-process) behind a small HTTP shim.
struct Chdb {
    url: String,
    process: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Chdb {
    fn start() -> Option<Chdb> {
        let importable = Command::new("python3").args(["-c", "import chdb"]).output().map(|o| o.status.success()).unwrap_or(false);
        if !importable {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("chdb is not installed: scripts/install-test-deps.sh installs it (pip install chdb)");
            }
            eprintln!("skipped: chdb is not installed (pip install chdb)");
            return None;
        }
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let process = Command::new("python3")
            .arg(here("scripts/chdb_http.py"))
            .arg(port.to_string())
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        wait_for("the chdb shim", Duration::from_secs(60), || {
            Command::new("curl").args(["-sf", &format!("{url}/?query=SELECT%201")]).output().is_ok_and(|o| o.status.success())
        });
        Some(Chdb { url, process, _dir: dir })
    }
}

impl Drop for Chdb {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The built-in request-record table, created by the sink on ClickHouse 18.16
/// and on current ClickHouse (chdb): the same records read back equal.
#[test]
fn request_records_read_back_equal_on_old_and_current_clickhouse() {
    let Some(old) = clickhouse() else { return };
    let Some(current) = Chdb::start() else { return };
    let db = format!("tapline_builtin_{}", std::process::id());
    query(&old, &format!("DROP DATABASE IF EXISTS {db}"));
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    // JSONEachRow into `requests`, RowBinary into `requests_rb`, on both servers.
    let sink = |id: &str, url: &str, format: &str, table: &str| {
        format!(
            "[sinks.{id}]\ntype = \"clickhouse\"\ninputs = [\"kong\"]\nendpoint = \"{url}\"\ndatabase = \"{db}\"\ntable = \"{table}\"\n\
             format = \"{format}\"\nschema = \"request_record\"\ncreate_table = true\nbatch.timeout_secs = 0.2\n"
        )
    };
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nenabled = false\n[sources.kong]\ntype = \"kong_http_log\"\naddress = \"127.0.0.1:{port}\"\n{}{}{}{}",
            sink("old", &old, "json_each_row", "requests"),
            sink("current", &current.url, "json_each_row", "requests"),
            sink("old_rb", &old, "row_binary", "requests_rb"),
            sink("current_rb", &current.url, "row_binary", "requests_rb")
        ),
    )
    .unwrap();
    let child = bin().args(["run", "--config"]).arg(&config).stderr(Stdio::piped()).spawn().unwrap();
    wait_for("the HTTP source", Duration::from_secs(30), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    for fixture in ["kong3_single.json", "kong3_array5.json", "kong2_variants.json", "kong_stream.json", "kong_no_service.json"] {
        post_fixture(port, fixture);
    }
    let count = |url: &str, table: &str| {
        let out = Command::new("curl")
            .args(["-s", &format!("{url}/"), "--data-binary", &format!("SELECT count() FROM {db}.{table}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "9"
    };
    wait_for("9 rows in all four tables", Duration::from_secs(60), || {
        count(&old, "requests") && count(&current.url, "requests") && count(&old, "requests_rb") && count(&current.url, "requests_rb")
    });
    signal(&child, "TERM");
    let output = wait(child, Duration::from_secs(60));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    // Every column, as text; time to the second (18.16 has no DateTime64).
    let columns = "toString(toDateTime(time)), observation_point, signal_source, protocol, service, route, consumer, workspace, method, host, path, query, \
                   endpoint, status, upstream_status, duration_us, gateway_us, upstream_us, receive_us, request_size, response_size, trace_id, span_id, \
                   parent_span_id, request_id, client_ip, client_port, server_ip, server_port, tries, response_source, pid, thread_id, process_name, \
                   container_id, pod, tcp_seq_request, tcp_seq_response, syscall_trace_id_request, syscall_trace_id_response";
    let select =
        |table: &str| format!("SELECT {columns} FROM {db}.{table} ORDER BY toDateTime(time), ifNull(request_id, '') FORMAT TabSeparated");
    let on_current = |sql: &str| {
        String::from_utf8(Command::new("curl").args(["-s", &format!("{}/", current.url), "--data-binary", sql]).output().unwrap().stdout)
            .unwrap()
    };
    let on_old = query(&old, &select("requests"));
    assert_eq!(on_old.lines().count(), 9);
    assert_eq!(on_old, on_current(&select("requests")));
    assert_eq!(on_old, query(&old, &select("requests_rb")));
    assert_eq!(on_old, on_current(&select("requests_rb")));
    assert!(on_old.contains("orders-route\tmobile-app\tdefault\tPOST\tapi.example.com\t/orders/checkout\tdry_run=1"), "{on_old}");
    // The better types where the server has them.
    let types = format!("SELECT toTypeName(time), toTypeName(protocol) FROM {db}.requests LIMIT 1 FORMAT TabSeparated");
    assert_eq!(query(&old, &types).trim(), "DateTime\tString");
    let current_types = String::from_utf8(
        Command::new("curl").args(["-s", &format!("{}/", current.url), "--data-binary", &types]).output().unwrap().stdout,
    )
    .unwrap();
    assert_eq!(current_types.trim(), "DateTime64(3)\tLowCardinality(String)");
    let millis = String::from_utf8(
        Command::new("curl")
            .args([
                "-s",
                &format!("{}/", current.url),
                "--data-binary",
                &format!("SELECT toString(time) FROM {db}.requests WHERE request_id = '6c4b1f7e2a9d4c3b8e5f0a1b2c3d4e5f'"),
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(millis.trim(), "2024-11-26 09:23:20.121");
    let millis_rb =
        on_current(&format!("SELECT toString(time) FROM {db}.requests_rb WHERE request_id = '6c4b1f7e2a9d4c3b8e5f0a1b2c3d4e5f'"));
    assert_eq!(millis_rb.trim(), "2024-11-26 09:23:20.121");
}

/// Batch sizes as the server saw them: a materialized view counts each insert's rows.
fn inserts_counted(url: &str, db: &str) {
    query(url, &format!("CREATE TABLE {db}.requests {TABLE}"));
    query(
        url,
        &format!("CREATE MATERIALIZED VIEW {db}.inserts ENGINE = MergeTree ORDER BY rows AS SELECT count() AS rows FROM {db}.requests"),
    );
}

fn insert_sizes(url: &str, db: &str) -> Vec<u64> {
    let mut sizes: Vec<u64> = query(url, &format!("SELECT rows FROM {db}.inserts")).lines().map(|l| l.parse().unwrap()).collect();
    sizes.sort();
    sizes
}

#[test]
fn batches_split_by_count_and_by_bytes() {
    let Some(url) = clickhouse() else { return };
    let dir = tempfile::tempdir().unwrap();
    let by_count = database(&url, "batch_count");
    inserts_counted(&url, &by_count);
    let input: String = (0..25).map(|i| line(i, "orders", json!(200))).collect();
    run(&pipeline(&url, &by_count, "requests", "batch.max_events = 10\nbatch.timeout_secs = 60"), &input, dir.path());
    assert_eq!(insert_sizes(&url, &by_count), [5, 10, 10]);

    // Every row is over 1 byte: each is sent alone.
    let by_bytes = database(&url, "batch_bytes");
    inserts_counted(&url, &by_bytes);
    run(
        &pipeline(&url, &by_bytes, "requests", "batch.max_bytes = 1\nbatch.timeout_secs = 60"),
        &input[..input.lines().take(4).map(|l| l.len() + 1).sum()],
        dir.path(),
    );
    assert_eq!(insert_sizes(&url, &by_bytes), [1, 1, 1, 1]);
}

#[test]
fn a_batch_is_sent_when_its_oldest_row_has_waited_timeout_secs() {
    let Some(url) = clickhouse() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = database(&url, "batch_time");
    inserts_counted(&url, &db);
    let path = dir.path().join("p.toml");
    std::fs::write(&path, pipeline(&url, &db, "requests", "batch.max_events = 1000\nbatch.timeout_secs = 0.3")).unwrap();
    let mut child =
        bin().args(["run", "--config"]).arg(&path).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all((0..3).map(|i| line(i, "orders", json!(200))).collect::<String>().as_bytes()).unwrap();
    stdin.flush().unwrap();
    // The first three rows go alone, on time, while the input is still open.
    wait_for("the first batch", Duration::from_secs(20), || insert_sizes(&url, &db) == [3]);
    stdin.write_all((3..5).map(|i| line(i, "orders", json!(200))).collect::<String>().as_bytes()).unwrap();
    drop(stdin);
    assert!(wait(child, Duration::from_secs(60)).status.success());
    assert_eq!(insert_sizes(&url, &db), [2, 3]);
}

/// A ClickHouse of this test's own (scripts/clickhouse.sh on other ports and a
/// directory of its own), so it can be stopped without disturbing other tests.
struct OwnClickHouse {
    env: Vec<(&'static str, String)>,
    url: String,
    _dir: tempfile::TempDir,
}

impl OwnClickHouse {
    fn start() -> OwnClickHouse {
        let dir = tempfile::tempdir().unwrap();
        let http = free_port();
        let env = vec![
            ("CLICKHOUSE_DIR", dir.path().display().to_string()),
            ("CLICKHOUSE_HTTP_PORT", http.to_string()),
            ("CLICKHOUSE_TCP_PORT", free_port().to_string()),
            // Its own HTTPS port too: two servers on one port (SO_REUSEPORT) share its clients.
            ("CLICKHOUSE_HTTPS_PORT", free_port().to_string()),
        ];
        let server = OwnClickHouse { env, url: format!("http://127.0.0.1:{http}"), _dir: dir };
        server.script("start");
        server
    }

    fn script(&self, action: &str) {
        let status =
            Command::new(here("scripts/clickhouse.sh")).arg(action).envs(self.env.iter().cloned()).stdout(Stdio::null()).status().unwrap();
        assert!(status.success(), "clickhouse.sh {action}");
    }

    fn up(&self) -> bool {
        Command::new("curl").args(["-sf", &format!("{}/ping", self.url)]).output().is_ok_and(|o| o.status.success())
    }

    fn stop(&self) {
        self.script("stop");
        wait_for("ClickHouse to stop", Duration::from_secs(60), || !self.up());
    }
}

impl Drop for OwnClickHouse {
    fn drop(&mut self) {
        self.script("stop");
    }
}

#[test]
fn clickhouse_stopped_mid_run_then_started_every_row_arrives_once() {
    if clickhouse().is_none() {
        return;
    }
    let server = OwnClickHouse::start();
    let url = server.url.clone();
    let db = database(&url, "restart");
    query(&url, &format!("CREATE TABLE {db}.requests {TABLE}"));
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let config = pipeline(
        &url,
        &db,
        "requests",
        "batch.max_events = 100\nbatch.timeout_secs = 0.2\nrequest.retry_initial_backoff_secs = 0.2\nrequest.retry_max_duration_secs = 1",
    )
    .replace("[api]\nenabled = false\n", &format!("[api]\naddress = \"127.0.0.1:{api}\"\n"));
    let (mut child, stderr_path) = spawn_logged(&config, dir.path());
    let mut stdin = child.stdin.take().unwrap();
    let sent = || metric(api, "component_sent_events_total", "ch").unwrap_or(0);

    stdin.write_all((0..300).map(|i| line(i, "orders", json!(200))).collect::<String>().as_bytes()).unwrap();
    wait_for("the first 300 rows", Duration::from_secs(60), || sent() == 300);

    server.stop();
    stdin.write_all((300..700).map(|i| line(i, "orders", json!(200))).collect::<String>().as_bytes()).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sent(), 300, "nothing lands while the server is down");

    server.script("start");
    wait_for("the 400 waiting rows", Duration::from_secs(90), || sent() == 700);
    drop(stdin);
    let output = wait(child, Duration::from_secs(60));
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("insert failed; retrying"), "{stderr}");
    assert_eq!(totals(&stderr, "ch", "component_discarded_events_total"), 0, "{stderr}");
    assert_eq!(query(&url, &format!("SELECT count(), uniqExact(request_id) FROM {db}.requests")).trim(), "700\t700");
}

/// The built-in metric table, created and filled by the sink on 18.16 and on
/// current ClickHouse (with `Map` there, parallel arrays on 18.16).
#[test]
fn metric_table_on_old_and_current_clickhouse() {
    let Some(old) = clickhouse() else { return };
    let Some(current) = Chdb::start() else { return };
    let db = format!("tapline_metrics_{}", std::process::id());
    query(&old, &format!("DROP DATABASE IF EXISTS {db}"));
    let dir = tempfile::tempdir().unwrap();
    let sink = |id: &str, url: &str| {
        format!(
            "[sinks.{id}]\ntype = \"clickhouse\"\ninputs = [\"own\"]\nendpoint = \"{url}\"\ndatabase = \"{db}\"\ntable = \"metrics\"\n\
             schema = \"metric\"\ncreate_table = true\nbatch.timeout_secs = 0.2\n"
        )
    };
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nenabled = false\n[sources.own]\ntype = \"internal_metrics\"\nscrape_interval_secs = 0.2\n{}{}",
            sink("old", &old),
            sink("current", &current.url)
        ),
    )
    .unwrap();
    let child = bin().args(["run", "--config"]).arg(&config).stderr(Stdio::piped()).spawn().unwrap();
    let on_current = |sql: &str| {
        String::from_utf8(Command::new("curl").args(["-s", &format!("{}/", current.url), "--data-binary", sql]).output().unwrap().stdout)
            .unwrap()
    };
    let sent = "SELECT max(value) FROM {db}.metrics WHERE name = 'component_sent_events_total' AND namespace = 'tapline' AND type = 'counter' AND kind = 'absolute' AND ";
    let old_sql = format!("{}tags_values[indexOf(tags_keys, 'component_id')] = 'own'", sent.replace("{db}", &db));
    let current_sql = format!("{}tags['component_id'] = 'own'", sent.replace("{db}", &db));
    // Until the sink has created the tables, the queries fail (and parse as nothing).
    let on_old = |sql: &str| {
        String::from_utf8(Command::new("curl").args(["-s", &format!("{old}/"), "--data-binary", sql]).output().unwrap().stdout).unwrap()
    };
    wait_for("the source's own counter in both tables", Duration::from_secs(60), || {
        on_old(&old_sql).trim().parse::<f64>().is_ok_and(|v| v > 0.0)
            && on_current(&current_sql).trim().parse::<f64>().is_ok_and(|v| v > 0.0)
    });
    signal(&child, "TERM");
    let output = wait(child, Duration::from_secs(60));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let types = |run: &dyn Fn(&str) -> String| {
        run(&format!("SELECT name, type FROM system.columns WHERE database = '{db}' AND table = 'metrics' AND name LIKE 'tags%' ORDER BY name FORMAT TabSeparated"))
    };
    assert_eq!(types(&|sql| query(&old, sql)), "tags_keys\tArray(String)\ntags_values\tArray(String)\n");
    assert_eq!(types(&on_current), "tags\tMap(LowCardinality(String), String)\n");
    let uptime =
        format!("SELECT type, kind, count() > 0 FROM {db}.metrics WHERE name = 'uptime_seconds' GROUP BY type, kind FORMAT TabSeparated");
    assert_eq!(query(&old, &uptime), "gauge\tabsolute\t1\n");
    assert_eq!(on_current(&uptime), "gauge\tabsolute\t1\n");
}

/// The built-in span table: DDL and rows from the sink's own functions, on
/// both servers, read back equal.
#[test]
fn span_table_on_old_and_current_clickhouse() {
    use tapline::event::{Span, SpanKind, SpanStatus, StatusCode, Value as VrlValue};
    use tapline::sinks::clickhouse::schema::{span_row, span_table_sql, Server};
    let Some(old) = clickhouse() else { return };
    let Some(current) = Chdb::start() else { return };
    let db = format!("tapline_spans_{}", std::process::id());
    let span = Span {
        trace_id: [0x4b; 16],
        span_id: [0x1a; 8],
        parent_span_id: Some([0x2c; 8]),
        name: "GET /orders/{id}".into(),
        kind: SpanKind::Server,
        start_time_unix_nano: 1_732_613_000_121_000_000,
        end_time_unix_nano: 1_732_613_000_154_500_000,
        status: SpanStatus { code: StatusCode::Error, message: "upstream 502".into() },
        attributes: [
            ("http.route".into(), VrlValue::from("/orders/{id}")),
            ("http.status_code".into(), VrlValue::Integer(502)),
            ("tapline.link".into(), VrlValue::from("tcp_seq")),
        ]
        .into_iter()
        .collect(),
        resource: [("service.name".into(), VrlValue::from("orders"))].into_iter().collect(),
        request_id: Some("c3127a5c".into()),
        ..Default::default()
    };
    let on_current = |sql: &str| {
        let out =
            Command::new("curl").args(["-sS", "--fail-with-body", &format!("{}/", current.url), "--data-binary", sql]).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success(), "{sql}: {text}");
        text
    };
    let insert = |url: &str, server: Server| {
        let sql = format!("INSERT INTO {db}.spans FORMAT JSONEachRow");
        let out = Command::new("curl")
            .args(["-sS", "--fail-with-body", &format!("{url}/?query={}", sql.replace(' ', "%20")), "--data-binary", "@-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                child.stdin.take().unwrap().write_all(&span_row(&span, server))?;
                child.wait_with_output()
            })
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    };
    let (old_server, current_server) =
        (Server::from_version(&query(&old, "SELECT version()")), Server::from_version(&on_current("SELECT version()")));
    assert!(!old_server.map && current_server.map);
    query(&old, &format!("DROP DATABASE IF EXISTS {db}"));
    query(&old, &format!("CREATE DATABASE {db}"));
    on_current(&format!("CREATE DATABASE IF NOT EXISTS {db}"));
    query(&old, &span_table_sql(&db, "spans", old_server));
    on_current(&span_table_sql(&db, "spans", current_server));
    insert(&old, old_server);
    insert(&current.url, current_server);
    let columns =
        "toString(toDateTime(time)), trace_id, span_id, parent_span_id, name, kind, service_name, duration_ns, status_code, status_message, request_id, link";
    let on_old = query(
        &old,
        &format!("SELECT {columns}, attributes_values[indexOf(attributes_keys, 'http.route')] FROM {db}.spans FORMAT TabSeparated"),
    );
    let expected = format!(
        "2024-11-26 09:23:20\t{}\t{}\t{}\tGET /orders/{{id}}\tserver\torders\t33500000\terror\tupstream 502\tc3127a5c\ttcp_seq\t/orders/{{id}}\n",
        "4b".repeat(16),
        "1a".repeat(8),
        "2c".repeat(8)
    );
    assert_eq!(on_old, expected);
    assert_eq!(on_current(&format!("SELECT {columns}, attributes['http.route'] FROM {db}.spans FORMAT TabSeparated")), expected);
    assert_eq!(on_current(&format!("SELECT toString(time) FROM {db}.spans FORMAT TabSeparated")), "2024-11-26 09:23:20.121\n");
}

/// `request.concurrency` inserts at once, seen in the server's own process
/// list: each insert is made slow by a materialized view that sleeps per row.
#[test]
fn inserts_run_up_to_request_concurrency_at_once() {
    let Some(url) = clickhouse() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input: String = (0..60).map(|i| line(i, "orders", json!(200))).collect();
    for (concurrency, expected) in [(1, 1..=1), (3, 2..=3)] {
        let db = database(&url, &format!("concurrency{concurrency}"));
        query(&url, &format!("CREATE TABLE {db}.requests {TABLE}"));
        query(
            &url,
            &format!(
                "CREATE MATERIALIZED VIEW {db}.slow ENGINE = MergeTree ORDER BY x AS SELECT sleepEachRow(0.05) AS x FROM {db}.requests"
            ),
        );
        let path = dir.path().join("p.toml");
        std::fs::write(&path, pipeline(&url, &db, "requests", &format!("batch.max_events = 10\nrequest.concurrency = {concurrency}")))
            .unwrap();
        let mut child =
            bin().args(["run", "--config"]).arg(&path).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let mut most = 0;
        while child.try_wait().unwrap().is_none() {
            let running = query(&url, &format!("SELECT count() FROM system.processes WHERE query LIKE 'INSERT INTO `{db}`%'"));
            most = most.max(running.trim().parse::<usize>().unwrap());
        }
        assert!(child.wait().unwrap().success());
        assert!(expected.contains(&most), "concurrency {concurrency}: {most} inserts seen at once");
        assert_eq!(query(&url, &format!("SELECT count() FROM {db}.requests")).trim(), "60");
    }
}

/// A request-record table made by an older tapline (no `tags` columns) gets
/// them added, in place; enriched records then land with their tags, in
/// RowBinary and in JSONEachRow (two arrays on a server without `Map`).
#[test]
fn an_older_record_table_gets_the_tags_columns() {
    let Some(url) = clickhouse() else { return };
    let db = database(&url, "tags");
    let server = tapline::sinks::clickhouse::schema::Server::from_version(&query(&url, "SELECT version()"));
    for table in ["requests_rb", "requests_json"] {
        query(&url, &tapline::sinks::clickhouse::schema::request_record_table_sql(&db, table, server));
        for column in if server.map { vec!["tags"] } else { vec!["tags_keys", "tags_values"] } {
            query(&url, &format!("ALTER TABLE {db}.{table} DROP COLUMN {column}"));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("teams.csv"), "service,team\norders,payments\n").unwrap();
    let port = free_port();
    let sink = |id: &str, format: &str, table: &str| {
        format!(
            "[sinks.{id}]\ntype = \"clickhouse\"\ninputs = [\"teams\"]\nendpoint = \"{url}\"\ndatabase = \"{db}\"\ntable = \"{table}\"\n\
             format = \"{format}\"\nschema = \"request_record\"\ncreate_table = true\nbatch.timeout_secs = 0.2\n"
        )
    };
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nenabled = false\n[sources.kong]\ntype = \"kong_http_log\"\naddress = \"127.0.0.1:{port}\"\n\
             [transforms.teams]\ntype = \"enrich\"\ninputs = [\"kong\"]\n[[transforms.teams.tables]]\ntype = \"file\"\npath = \"{}\"\nkey = \"service\"\n{}{}",
            dir.path().join("teams.csv").display(),
            sink("rb", "row_binary", "requests_rb"),
            sink("json", "json_each_row", "requests_json")
        ),
    )
    .unwrap();
    let child = bin().args(["run", "--config"]).arg(&config).stderr(Stdio::piped()).spawn().unwrap();
    wait_for("the HTTP source", Duration::from_secs(30), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    post_fixture(port, "kong3_single.json");
    let count = |table: &str| query(&url, &format!("SELECT count() FROM {db}.{table}")).trim() == "1";
    wait_for("a row in both tables", Duration::from_secs(60), || count("requests_rb") && count("requests_json"));
    signal(&child, "TERM");
    let output = wait(child, Duration::from_secs(60));
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("added a column the built-in table lacked"), "{log}");
    for table in ["requests_rb", "requests_json"] {
        let tags = if server.map { "tags['team']" } else { "tags_values[indexOf(tags_keys, 'team')]" };
        assert_eq!(query(&url, &format!("SELECT service, {tags} FROM {db}.{table} FORMAT TabSeparated")), "orders\tpayments\n", "{table}");
        // Where the older table had none: at the end, after `cmdline`.
        let columns =
            query(&url, &format!("SELECT name FROM system.columns WHERE database = '{db}' AND table = '{table}' FORMAT TabSeparated"));
        assert!(columns.trim_end().ends_with(if server.map { "cmdline\ntags" } else { "cmdline\ntags_keys\ntags_values" }), "{columns}");
    }
}
