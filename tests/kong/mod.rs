//! The Kong sources, run by the real binary and fed over loopback by curl,
//! the way Kong's http-log plugin posts.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;
use serde_json::Value;

const USER: &str = "kong";
const PASSWORD: &str = "s3cret";

/// POST (or another method) a body with curl; returns (status, response body).
fn send(port: u16, method: &str, path: &str, body: &[u8], headers: &[&str], credentials: &str) -> (u16, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    std::fs::write(&file, body).unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-X", method, "--data-binary"]).arg(format!("@{}", file.display()));
    cmd.args(["-w", "\n%{http_code}", "--max-time", "30"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    // Kong turns the userinfo of `http_endpoint` into a Basic header, as curl does.
    cmd.arg(format!("http://{credentials}127.0.0.1:{port}{path}"));
    let out = cmd.output().expect("curl must be installed (scripts/install-test-deps.sh)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn post(port: u16, body: &[u8], content_type: &str) -> (u16, String) {
    send(port, "POST", "/kong", body, &[&format!("Content-Type: {content_type}")], &format!("{USER}:{PASSWORD}@"))
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(here(&format!("tests/fixtures/kong/{name}"))).unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn start(config: &str, dir: &Path) -> Child {
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, config).unwrap();
    bin().args(["run", "--config"]).arg(&path).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

fn wait_listening(port: u16) {
    wait_for("the HTTP source to listen", Duration::from_secs(30), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
}

#[test]
fn http_log_takes_what_kong_sends_and_refuses_the_rest() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("records.jsonl");
    let child = start(
        &format!(
            "[api]\nenabled = false\n\
             [sources.kong]\ntype = \"kong_http_log\"\naddress = \"127.0.0.1:{port}\"\npath = \"/kong\"\n\
             max_body_bytes = 65536\nmax_decompressed_bytes = 1048576\nauth.username = \"{USER}\"\nauth.password = \"{PASSWORD}\"\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"kong\"]\npath = \"{}\"\nencoding.codec = \"json\"\n",
            out.display()
        ),
        dir.path(),
    );
    wait_listening(port);

    // What Kong sends: one object (max_batch_size 1), an array, with or without charset, gzip, PUT/PATCH.
    assert_eq!(post(port, &fixture("kong3_single.json"), "application/json"), (200, "{\"accepted\":1}".into()));
    assert_eq!(post(port, &fixture("kong3_array5.json"), "application/json; charset=utf-8"), (200, "{\"accepted\":5}".into()));
    let gz = gzip(&fixture("kong2_variants.json"));
    let auth = format!("{USER}:{PASSWORD}@");
    let (status, _) = send(port, "POST", "/kong", &gz, &["Content-Type: application/json", "Content-Encoding: gzip"], &auth);
    assert_eq!(status, 200);
    assert_eq!(send(port, "PUT", "/kong", &fixture("kong_stream.json"), &["Content-Type: application/json"], &auth).0, 200);
    assert_eq!(send(port, "PATCH", "/kong", &fixture("kong_no_service.json"), &["Content-Type: application/json"], &auth).0, 200);

    // What it refuses, each with its status and a reason.
    let (status, body) = post(port, b"{\"request\": {\"method\": \"GET\"", "application/json");
    assert_eq!(status, 400);
    assert!(body.starts_with("invalid JSON at line 1 column 28"), "{body}");
    let (status, body) = post(port, b"[{\"request\": {}}, 7]", "application/json");
    assert_eq!((status, body.trim()), (400, "entry 1 of the array: a Kong log entry must be a JSON object"));
    let (status, body) = post(port, &fixture("kong3_single.json"), "text/plain");
    assert_eq!(status, 415);
    assert!(body.contains("Content-Type must be application/json"), "{body}");
    let (status, body) = post(port, &vec![b' '; 100_000], "application/json");
    assert_eq!(status, 413);
    assert!(body.contains("max_body_bytes"), "{body}");
    let bomb = gzip(&vec![b' '; 20 << 20]);
    assert!(bomb.len() < 65536, "the bomb must pass the body limit");
    let (status, body) = send(port, "POST", "/kong", &bomb, &["Content-Type: application/json", "Content-Encoding: gzip"], &auth);
    assert_eq!(status, 413);
    assert!(body.contains("max_decompressed_bytes"), "{body}");
    let (status, _) = send(port, "POST", "/kong", &fixture("kong3_single.json"), &["Content-Type: application/json"], "kong:wrong@");
    assert_eq!(status, 401);
    let (status, _) = send(port, "POST", "/kong", &fixture("kong3_single.json"), &["Content-Type: application/json"], "");
    assert_eq!(status, 401);
    assert_eq!(send(port, "GET", "/kong", b"", &[], &auth).0, 405);
    assert_eq!(send(port, "POST", "/elsewhere", &fixture("kong3_single.json"), &["Content-Type: application/json"], &auth).0, 404);

    // Still serving.
    assert_eq!(post(port, &fixture("kong3_single.json"), "application/json").0, 200);

    signal(&child, "TERM");
    let output = wait(child, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let records = read_json(&out);
    assert_eq!(records.len(), 10, "{stderr}");
    assert_eq!(totals(&stderr, "kong", "component_received_events_total"), 10);
    // Nine refused requests, each counted.
    assert_eq!(totals(&stderr, "kong", "component_errors_total"), 9);
    let services: Vec<&str> = records.iter().map(|r| r["service"].as_str().unwrap_or("-")).collect();
    assert_eq!(services, ["orders", "catalog", "catalog", "cart", "cart", "health", "users.internal", "postgres", "-", "orders"]);
    let first = &records[0];
    assert_eq!(first["request_id"], "6c4b1f7e2a9d4c3b8e5f0a1b2c3d4e5f");
    assert_eq!(first["upstream_status"], "500, 200 : 200");
    assert_eq!(first["duration_us"], 125000);
    assert_eq!(first["observation_point"], "gateway");
    assert_eq!(first["signal_source"], "kong");
    assert_eq!(first["time"], "2024-11-26T09:23:20.121Z");
    // Secrets stay out: no header value is kept without keep_raw.
    assert!(!String::from_utf8_lossy(&std::fs::read(&out).unwrap()).contains("REDACTED"));
    assert!(!stderr.contains(PASSWORD));
    let by_protocol: Vec<&str> = records.iter().map(|r| r["protocol"].as_str().unwrap()).collect();
    assert_eq!(by_protocol[7], "tcp");
    assert_eq!(records[6]["request_size"], 312);
}

#[test]
fn http_log_answers_503_while_the_pipeline_is_full() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    // The console sink writes to a pipe nobody reads yet: it blocks, its buffer fills.
    let mut child = start(
        &format!(
            "[api]\nenabled = false\n\
             [sources.kong]\ntype = \"kong_http_log\"\naddress = \"127.0.0.1:{port}\"\n\
             [sinks.out]\ntype = \"console\"\ninputs = [\"kong\"]\nencoding.codec = \"json\"\nbuffer.max_events = 10\n"
        ),
        dir.path(),
    );
    wait_listening(port);
    let batch = fixture("kong3_array5.json");
    let mut accepted = 0;
    let mut refused = None;
    for _ in 0..500 {
        let (status, body) = send(port, "POST", "/", &batch, &["Content-Type: application/json"], "");
        match status {
            200 => accepted += 5,
            503 => {
                refused = Some(body);
                break;
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    let refused = refused.expect("the source never pushed back");
    assert!(refused.contains("pipeline is full"), "{refused}");
    let headers = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", "-H", "Content-Type: application/json", "--data-binary"])
        .arg(format!("@{}", here("tests/fixtures/kong/kong3_array5.json").display()))
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&headers.stdout).to_ascii_lowercase();
    assert!(headers.starts_with("http/1.1 503") && headers.contains("retry-after: 1"), "{headers}");
    // Drain: every accepted entry comes out, none of the refused ones.
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || BufReader::new(stdout).lines().count());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(send(port, "POST", "/", &batch, &["Content-Type: application/json"], "").0, 200);
    accepted += 5;
    signal(&child, "TERM");
    let output = wait(child, Duration::from_secs(60));
    assert!(output.status.success());
    assert_eq!(reader.join().unwrap(), accepted);
}

#[test]
fn http_log_with_acknowledgements_answers_after_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let run = |sink_path: &Path| -> (u16, String) {
        let port = free_port();
        let child = start(
            &format!(
                "acknowledgements = true\n[api]\nenabled = false\n\
                 [sources.kong]\ntype = \"kong_http_log\"\naddress = \"127.0.0.1:{port}\"\n\
                 [sinks.out]\ntype = \"file\"\ninputs = [\"kong\"]\npath = \"{}\"\nencoding.codec = \"json\"\n",
                sink_path.display()
            ),
            dir.path(),
        );
        wait_listening(port);
        let answer = send(port, "POST", "/", &fixture("kong3_array5.json"), &["Content-Type: application/json"], "");
        signal(&child, "TERM");
        assert!(wait(child, Duration::from_secs(60)).status.success());
        answer
    };
    let out = dir.path().join("out.jsonl");
    assert_eq!(run(&out).0, 200);
    // Delivered before the answer: the lines are there.
    assert_eq!(read_lines(&out).len(), 5);
    // A sink that cannot write: Kong is told to retry.
    let (status, body) = run(dir.path());
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not delivered"), "{body}");
}

#[test]
fn records_reach_remap_as_fields() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let child = start(
        &format!(
            "[api]\nenabled = false\n\
             [sources.kong]\ntype = \"kong_http_log\"\naddress = \"127.0.0.1:{port}\"\n\
             [transforms.slow]\ntype = \"filter\"\ninputs = [\"kong\"]\ncondition = '(int(.duration_us) ?? 0) > 20000'\n\
             [transforms.shape]\ntype = \"remap\"\ninputs = [\"slow\"]\nsource = '. = {{\"svc\": .service, \"ms\": int!(.duration_us) / 1000}}'\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"shape\"]\npath = \"{}\"\nencoding.codec = \"json\"\n",
            out.display()
        ),
        dir.path(),
    );
    wait_listening(port);
    assert_eq!(send(port, "POST", "/", &fixture("kong3_array5.json"), &["Content-Type: application/json"], "").0, 200);
    signal(&child, "TERM");
    assert!(wait(child, Duration::from_secs(60)).status.success());
    let got: Vec<Value> = read_json(&out);
    assert_eq!(got, [serde_json::json!({"svc": "catalog", "ms": 33.0})]);
}

// --- kong_file_log ---

fn file_log_config(dir: &Path, out: &Path, extra: &str) -> String {
    format!(
        "data_dir = \"{data}\"\n[api]\nenabled = false\n\
         [sources.kong]\ntype = \"kong_file_log\"\ninclude = [\"{logs}/access.log\"]\nglob_minimum_cooldown_ms = 100\nrotate_wait_secs = 1\n{extra}\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"kong\"]\npath = \"{out}\"\nencoding.codec = \"json\"\n",
        data = dir.join("data").display(),
        logs = dir.display(),
        out = out.display()
    )
}

/// The request ids written out, checked unique.
fn ids(out: &Path) -> std::collections::BTreeSet<usize> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let mut seen = std::collections::BTreeSet::new();
    for line in complete.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        let id = record["request_id"].as_str().unwrap().trim_start_matches("line-").parse().unwrap();
        assert!(seen.insert(id), "line {id} came out twice");
    }
    seen
}

fn wait_count(out: &Path, n: usize) {
    wait_for(&format!("{n} records"), Duration::from_secs(60), || ids(out).len() >= n);
}

#[test]
fn file_log_follows_rename_and_copytruncate_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let out = dir.path().join("out.jsonl");
    append(&log, 0..4000);
    let child = start(&file_log_config(dir.path(), &out, ""), dir.path());
    wait_count(&out, 1);
    // Rotation by rename: the old file is still read to its end, even lines
    // written to it after the rename (Kong without `reopen` keeps its descriptor).
    std::fs::rename(&log, dir.path().join("access.log.1")).unwrap();
    append(&log, 4000..7000);
    append(&dir.path().join("access.log.1"), 7000..7010);
    wait_count(&out, 7010);
    // Copytruncate: copied aside, emptied in place, written again.
    std::fs::copy(&log, dir.path().join("access.log.2")).unwrap();
    std::fs::OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
    append(&log, 7010..10000);
    wait_count(&out, 10000);
    // A partial last line waits for its newline.
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let line = kong_line(10000);
    file.write_all(&line.as_bytes()[..40]).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(ids(&out).len(), 10000);
    file.write_all(&line.as_bytes()[40..]).unwrap();
    wait_count(&out, 10001);
    signal(&child, "TERM");
    let output = wait(child, Duration::from_secs(60));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(ids(&out), (0..10001).collect());
    let records = read_json(&out);
    assert_eq!((records[0]["service"].as_str(), records[0]["request_size"].as_u64()), (Some("orders"), Some(120)));
}

#[test]
fn file_log_restarts_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let out = dir.path().join("out.jsonl");
    let config = file_log_config(dir.path(), &out, "");
    let run_until = |n: usize| {
        let child = start(&config, dir.path());
        wait_count(&out, n);
        std::thread::sleep(Duration::from_millis(300));
        signal(&child, "TERM");
        let output = wait(child, Duration::from_secs(60));
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    };
    append(&log, 0..1000);
    run_until(1000);
    // Written while tapline was down, ending in half a line.
    append(&log, 1000..1500);
    let line = kong_line(1500);
    std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(&line.as_bytes()[..30]).unwrap();
    run_until(1500);
    assert_eq!(ids(&out), (0..1500).collect());
    std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(&line.as_bytes()[30..]).unwrap();
    run_until(1501);
    // Exactly once each: nothing lost, nothing repeated across three runs.
    assert_eq!(ids(&out), (0..1501).collect());
}

#[test]
fn file_log_drops_and_counts_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let out = dir.path().join("out.jsonl");
    let mut text = kong_line(0);
    text.push_str(&format!("{{\"request\": {{\"uri\": \"/{}\"}}}}\n", "x".repeat(5000)));
    text.push_str("not json at all\n");
    text.push_str(&kong_line(1));
    std::fs::write(&log, text).unwrap();
    let child = start(&file_log_config(dir.path(), &out, "max_line_bytes = 2000"), dir.path());
    wait_count(&out, 2);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "TERM");
    let output = wait(child, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(ids(&out), [0, 1].into_iter().collect());
    assert_eq!(totals(&stderr, "kong", "component_discarded_events_total"), 2, "{stderr}");
    assert_eq!(totals(&stderr, "kong", "component_errors_total"), 2, "{stderr}");
    assert!(stderr.contains("line too long"), "{stderr}");
}

// --- Vector configs, unchanged ---

/// The same Vector config in each of Vector's formats (TOML, YAML, JSON).
#[test]
fn vector_http_server_config_runs_unchanged() {
    for format in ["toml", "yaml", "json"] {
        vector_http_server_config_runs(&format!("config/examples/vector-kong-http.{format}"));
    }
}

fn vector_http_server_config_runs(config: &str) {
    let port = free_port();
    let mut child = bin()
        .args(["run", "--config"])
        .arg(here(config))
        .env("HTTP_ADDRESS", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(port);
    assert_eq!(send(port, "POST", "/", &fixture("kong3_array5.json"), &["Content-Type: application/json"], "").0, 200);
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout).lines().map(|l| serde_json::from_str::<Value>(&l.unwrap()).unwrap()).collect::<Vec<_>>()
    });
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "TERM");
    let output = wait(child, Duration::from_secs(60));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let events = reader.join().unwrap();
    assert_eq!(events.len(), 5);
    let first = &events[0];
    assert_eq!(
        (first["service_name"].as_str(), first["route_name"].as_str(), first["status"].as_i64(), first["latency_ms"].as_i64()),
        (Some("catalog"), Some("catalog"), Some(200), Some(11))
    );
    assert_eq!(first["timestamp"], "2024-11-26T09:23:21Z");
    assert_eq!((first["source_type"].as_str(), first["path"].as_str()), (Some("http_server"), Some("/")));
    assert!(first["request"].get("headers").is_none() && first["request"]["id"] == "a1");
    let statuses: Vec<i64> = events.iter().map(|e| e["status"].as_i64().unwrap()).collect();
    assert_eq!(statuses, [200, 503, 401, 204, 200]);
}

#[test]
fn vector_file_config_runs_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("file.log");
    append(&log, 0..50);
    let mut child = bin()
        .args(["run", "--config"])
        .arg(here("config/examples/vector-kong-file.toml"))
        .env("DATA_DIR", dir.path())
        .env("KONG_LOG", &log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send(serde_json::from_str::<Value>(&line.unwrap()).unwrap());
        }
    });
    let events: Vec<Value> = (0..50).map(|_| rx.recv_timeout(Duration::from_secs(30)).expect("50 events")).collect();
    signal(&child, "TERM");
    assert!(wait(child, Duration::from_secs(60)).status.success());
    assert_eq!(events[0]["service_name"], "orders");
    assert_eq!(events[49]["request"]["id"], "line-49");
    assert_eq!(events[7]["status"], 200);
}

#[test]
fn http_server_ndjson_headers_and_query() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let child = start(
        &format!(
            "[api]\nenabled = false\n\
             [sources.in]\ntype = \"http\"\naddress = \"127.0.0.1:{port}\"\npath = \"/logs\"\nencoding = \"ndjson\"\nheaders = [\"x-tenant\", \"x-missing\"]\nquery_parameters = [\"env\"]\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"{}\"\nencoding.codec = \"json\"\n",
            out.display()
        ),
        dir.path(),
    );
    wait_listening(port);
    let body = b"{\"a\": 1}\n\n{\"a\": 2}\n";
    assert_eq!(send(port, "POST", "/logs?env=prod", body, &["Content-Type: application/json", "X-Tenant: acme"], "").0, 200);
    let (status, reason) = send(port, "POST", "/logs", b"{\"a\": 3}\nnope\n", &["Content-Type: application/json"], "");
    assert_eq!(status, 400);
    assert!(reason.starts_with("line 2: invalid JSON"), "{reason}");
    // As Vector, any Content-Type: the codec reads the body (curl's default form type here).
    assert_eq!(send(port, "POST", "/logs", b"{\"a\": 4}\n", &["Content-Type: application/x-www-form-urlencoded"], "").0, 200);
    signal(&child, "TERM");
    assert!(wait(child, Duration::from_secs(60)).status.success());
    let events = read_json(&out);
    assert_eq!(events.len(), 3);
    assert_eq!(events[2]["a"], 4);
    assert_eq!((events[1]["a"].as_i64(), events[1]["x-tenant"].as_str(), events[1]["env"].as_str()), (Some(2), Some("acme"), Some("prod")));
    assert!(events[0]["x-missing"].is_null() && events[0]["path"] == "/logs");
}

#[test]
fn http_log_over_tls() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let out = dir.path().join("out.jsonl");
    let child = start(
        &format!(
            "[api]\nenabled = false\n\
             [sources.kong]\ntype = \"kong_http_log\"\naddress = \"127.0.0.1:{port}\"\n\
             tls.enabled = true\ntls.crt_file = \"{}\"\ntls.key_file = \"{}\"\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"kong\"]\npath = \"{}\"\nencoding.codec = \"json\"\n",
            cert.display(),
            key.display(),
            out.display()
        ),
        dir.path(),
    );
    wait_listening(port);
    let over_tls = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}", "--cacert"])
        .arg(&cert)
        .args(["-H", "Content-Type: application/json", "--data-binary"])
        .arg(format!("@{}", here("tests/fixtures/kong/kong3_array5.json").display()))
        .arg(format!("https://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&over_tls.stdout);
    assert!(text.ends_with("\n200"), "{text}{}", String::from_utf8_lossy(&over_tls.stderr));
    // Plain HTTP to a TLS port gets no answer.
    let (status, _) = send(port, "POST", "/", &fixture("kong3_single.json"), &["Content-Type: application/json"], "");
    assert_ne!(status, 200);
    signal(&child, "TERM");
    assert!(wait(child, Duration::from_secs(60)).status.success());
    assert_eq!(read_json(&out).len(), 5);
}
