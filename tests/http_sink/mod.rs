//! The `http` sink against real servers on loopback: ClickHouse's HTTP
//! interface (`INSERT … FORMAT JSONEachRow`, scripts/clickhouse.sh), and a
//! scripted HTTP/1.1 server in the test that answers what each test needs
//! (503s, 429 with `Retry-After`, 400, silence) and records every request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::clickhouse::{clickhouse, database, query};
use crate::common::*;

/// A request as the server read it.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    method: String,
    target: String,
    /// Names lowercased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as sent, uncompressed as its Content-Encoding says.
    fn decoded(&self) -> Vec<u8> {
        match self.header("content-encoding") {
            Some("gzip") => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&self.body[..]).read_to_end(&mut out).unwrap();
                out
            }
            Some("zstd") => zstd::decode_all(&self.body[..]).unwrap(),
            _ => self.body.clone(),
        }
    }

    /// The events of an NDJSON body.
    fn lines(&self) -> Vec<Value> {
        String::from_utf8(self.decoded()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

/// What the server does with the request.
enum Reply {
    Answer(u16, &'static [(&'static str, &'static str)], &'static str),
    /// Say nothing, until the client gives up.
    Hang,
}

/// An HTTP/1.1 server (keep-alive, Content-Length bodies) whose answer to
/// request `n` (from 0) `script` chooses.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn start(script: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (script, record) = (Arc::new(script), seen.clone());
        // Lives as long as the test binary: it only waits in accept.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (script, record) = (script.clone(), record.clone());
                std::thread::spawn(move || serve(stream, &*script, &record));
            }
        });
        Server { port, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn uri(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

fn serve(stream: TcpStream, script: &(dyn Fn(usize, &Seen) -> Reply + Send + Sync), record: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut words = line.split_whitespace();
        let (method, target) = (words.next().unwrap_or_default().to_string(), words.next().unwrap_or_default().to_string());
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let Some((name, value)) = header.trim_end().split_once(':') else { break };
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        let length = headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request = Seen { at: Instant::now(), method, target, headers, body };
        let n = {
            let mut seen = record.lock().unwrap();
            seen.push(request.clone());
            seen.len() - 1
        };
        match script(n, &request) {
            Reply::Hang => {
                // Read until the client hangs up: it timed out.
                let _ = reader.read_to_end(&mut Vec::new());
                return;
            }
            Reply::Answer(status, extra, text) => {
                let mut head = format!("HTTP/1.1 {status} Scripted\r\nContent-Length: {}\r\n", text.len());
                for (name, value) in extra {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                if writer.write_all(format!("{head}\r\n{text}").as_bytes()).is_err() {
                    return;
                }
            }
        }
    }
}

fn ok() -> Reply {
    Reply::Answer(200, &[], "")
}

/// `n` test events: `id`, `service` (every third is `users`), `status`.
fn events(n: usize) -> Vec<Value> {
    (0..n).map(|i| json!({"id": i, "service": if i % 3 == 0 { "users" } else { "orders" }, "status": 200 + i})).collect()
}

/// An `http` sink named `name`, fed by the pipeline of `run`.
fn sink(name: &str, options: &str) -> String {
    format!("[sinks.{name}]\ntype = \"http\"\ninputs = [\"shape\"]\n{options}\n")
}

/// Run `sinks` (fed by `shape`) on `input` (stdin, JSON lines, without the
/// fields stdin adds) to the end; returns tapline's log.
pub(crate) fn run(sinks: &str, input: &[Value]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[api]\nenabled = false\n\
         [sources.in]\ntype = \"stdin\"\ndecoding.codec = \"json\"\n\
         [transforms.shape]\ntype = \"remap\"\ninputs = [\"in\"]\nsource = 'del(.source_type); del(.timestamp)'\n{sinks}"
    );
    let (mut child, stderr) = spawn_logged(&config, dir.path());
    let text: String = input.iter().map(|e| format!("{e}\n")).collect();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let status = wait(child, Duration::from_secs(120)).status;
    let log = std::fs::read_to_string(stderr).unwrap();
    assert!(status.success(), "{log}");
    log
}

/// A counter from the totals tapline logs on exit; 0 when the component never counted it.
pub(crate) fn count(log: &str, component: &str, counter: &str) -> u64 {
    let line = log.lines().rfind(|l| l.contains("totals:") && l.contains(&format!(" {component} ("))).expect("totals in the log");
    line.split_whitespace().find_map(|w| w.strip_prefix(&format!("{counter}="))).map_or(0, |n| n.parse().unwrap())
}

/// Every event of `requests`' bodies, in id order.
fn by_id(requests: &[Seen]) -> Vec<Value> {
    let mut all: Vec<Value> = requests.iter().flat_map(Seen::lines).collect();
    all.sort_by_key(|e| e["id"].as_u64());
    all
}

#[test]
fn rows_reach_clickhouse_through_its_http_interface() {
    let Some(url) = clickhouse() else { return };
    let db = database(&url, "http_sink");
    query(&url, &format!("CREATE TABLE {db}.events (id UInt32, service String, status UInt16) ENGINE = MergeTree ORDER BY id"));
    let uri = format!("{url}/?query=INSERT%20INTO%20{db}.events%20FORMAT%20JSONEachRow");
    let input = events(25);
    let log = run(&sink("out", &format!("uri = \"{uri}\"\nencoding.codec = \"ndjson\"\nbatch.max_events = 10")), &input);
    let rows: Vec<Value> = query(&url, &format!("SELECT id, service, status FROM {db}.events ORDER BY id FORMAT JSONEachRow"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows, input);
    assert_eq!(query(&url, &format!("SELECT count() FROM {db}.events")).trim(), "25");
    assert_eq!((count(&log, "out", "component_sent_events_total"), count(&log, "out", "component_discarded_events_total")), (25, 0));
    query(&url, &format!("DROP DATABASE {db}"));
}

#[test]
fn failures_are_retried_until_delivered_once() {
    // Two 503s, a 429 asking for 1 s, then 200s.
    let server = Server::start(|n, _| match n {
        0 | 1 => Reply::Answer(503, &[], "overloaded"),
        2 => Reply::Answer(429, &[("Retry-After", "1")], "slow down"),
        _ => ok(),
    });
    let input = events(20);
    let options = format!("uri = \"{}\"\nencoding.codec = \"ndjson\"\nrequest.retry_initial_backoff_secs = 0.05", server.uri("/ingest"));
    let log = run(&sink("out", &options), &input);
    let seen = server.seen();
    // Each failed request was sent again, body for body; the 200s got every event once.
    assert!(seen.len() >= 4, "{seen:?}");
    assert_eq!(seen[1].body, seen[0].body);
    assert_eq!(seen[2].body, seen[0].body);
    assert_eq!(seen[3].body, seen[0].body);
    assert_eq!(by_id(&seen[3..]), input);
    // Retry-After: 1 was honoured (a lower bound, so no load makes this flaky).
    assert!(seen[3].at.duration_since(seen[2].at) >= Duration::from_secs(1));
    assert_eq!(count(&log, "out", "http_retries_total"), 3);
    assert_eq!(count(&log, "out", "component_errors_total"), 3);
    assert_eq!((count(&log, "out", "component_sent_events_total"), count(&log, "out", "component_discarded_events_total")), (20, 0));
    assert_eq!(log.matches("request failed; retrying").count(), 3, "{log}");
    assert!(log.contains("HTTP 429 Too Many Requests: slow down"), "{log}");
}

#[test]
fn a_400_refuses_the_events_without_retrying() {
    let server = Server::start(|_, _| Reply::Answer(400, &[], "bad payload: `status` must be a string"));
    let input = events(10);
    let log = run(&sink("out", &format!("uri = \"{}\"\nencoding.codec = \"ndjson\"", server.uri("/"))), &input);
    let seen = server.seen();
    // Each event was sent once, never again.
    assert_eq!(by_id(&seen), input);
    assert_eq!(count(&log, "out", "http_retries_total"), 0);
    assert_eq!((count(&log, "out", "component_sent_events_total"), count(&log, "out", "component_discarded_events_total")), (0, 10));
    assert_eq!(count(&log, "out", "component_errors_total"), seen.len() as u64);
    assert!(log.contains("HTTP 400 Bad Request: bad payload: `status` must be a string"), "{log}");
    assert!(log.contains("not retried"), "{log}");
}

/// A POST that reqwest redirected would arrive as a GET without its body:
/// as in Vector, a 3xx is not followed but refused.
#[test]
fn a_redirect_is_refused_not_followed() {
    let server = Server::start(|_, r| if r.target == "/" { Reply::Answer(302, &[("Location", "/moved")], "") } else { ok() });
    let log = run(&sink("out", &format!("uri = \"{}\"\nencoding.codec = \"ndjson\"", server.uri("/"))), &events(4));
    let seen = server.seen();
    assert!(seen.iter().all(|r| r.target == "/" && r.method == "POST"), "{seen:?}");
    assert_eq!((count(&log, "out", "component_sent_events_total"), count(&log, "out", "component_discarded_events_total")), (0, 4));
    assert!(log.contains("HTTP 302 Found"), "{log}");
}

/// The other sinks that POST over HTTP do not follow a redirect either: a
/// followed 302 would end as a GET that a 200 answers, counted as delivered.
#[test]
fn the_other_http_sinks_refuse_redirects_too() {
    let server =
        Server::start(|_, r| if r.target.starts_with("/moved") { ok() } else { Reply::Answer(302, &[("Location", "/moved")], "") });
    let retries = "request.retry_initial_backoff_secs = 0.05\nrequest.retry_max_duration_secs = 1";
    let sinks = format!(
        "[sinks.ch]\ntype = \"clickhouse\"\ninputs = [\"shape\"]\nendpoint = \"{uri}\"\ndatabase = \"db\"\ntable = \"t\"\nhealthcheck.enabled = false\nrequest.retry_attempts = 1\n\
         [sinks.otlp]\ntype = \"opentelemetry\"\ninputs = [\"shape\"]\nprotocol = \"http/protobuf\"\nendpoint = \"{uri}\"\n{retries}\n\
         [transforms.counted]\ntype = \"log_to_metric\"\ninputs = [\"shape\"]\n[[transforms.counted.metrics]]\ntype = \"counter\"\nfield = \"id\"\n\
         [sinks.rw]\ntype = \"prometheus_remote_write\"\ninputs = [\"counted\"]\nendpoint = \"{uri}/api/v1/write\"\n{retries}\n",
        uri = server.uri("")
    );
    let log = run(&sinks, &events(4));
    let seen = server.seen();
    assert!(seen.iter().all(|r| !r.target.starts_with("/moved") && r.method == "POST"), "{seen:?}");
    for sink in ["ch", "otlp", "rw"] {
        assert!(
            seen.iter().any(|r| r.target.contains(match sink {
                "ch" => "INSERT",
                "otlp" => "/v1/logs",
                _ => "/api/v1/write",
            })),
            "{sink}: {seen:?}"
        );
        assert_eq!(count(&log, sink, "component_sent_events_total"), 0, "{sink}: {log}");
        assert_eq!(count(&log, sink, "component_discarded_events_total"), 4, "{sink}: {log}");
    }
}

#[test]
fn a_server_that_hangs_is_timed_out_and_retried() {
    let server = Server::start(|n, _| if n == 0 { Reply::Hang } else { ok() });
    let input = events(5);
    let options = format!(
        "uri = \"{}\"\nencoding.codec = \"ndjson\"\nrequest.timeout_secs = 1\nrequest.retry_initial_backoff_secs = 0.05",
        server.uri("/")
    );
    let log = run(&sink("out", &options), &input);
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].body, seen[0].body);
    assert_eq!(by_id(&seen[1..]), input);
    assert_eq!(count(&log, "out", "http_retries_total"), 1);
    assert_eq!(count(&log, "out", "component_sent_events_total"), 5);
    assert!(log.contains("timed out"), "{log}");
}

#[test]
fn compressed_bodies_decode_to_the_events() {
    let server = Server::start(|_, _| ok());
    let input = events(30);
    let sinks = sink("gz", &format!("uri = \"{}\"\nencoding.codec = \"ndjson\"\ncompression = \"gzip\"", server.uri("/gzip")))
        + &sink("zs", &format!("uri = \"{}\"\nencoding.codec = \"ndjson\"\ncompression = \"zstd\"", server.uri("/zstd")));
    run(&sinks, &input);
    let seen = server.seen();
    for (path, encoding, magic) in [("/gzip", "gzip", &[0x1f, 0x8b][..]), ("/zstd", "zstd", &[0x28, 0xb5, 0x2f, 0xfd][..])] {
        let requests: Vec<Seen> = seen.iter().filter(|r| r.target == path).cloned().collect();
        assert!(!requests.is_empty(), "nothing reached {path}");
        for request in &requests {
            assert_eq!(request.header("content-encoding"), Some(encoding));
            assert_eq!(request.header("content-type"), Some("application/x-ndjson"));
            assert!(request.body.starts_with(magic), "{path}: not {encoding}");
        }
        assert_eq!(by_id(&requests), input, "{path}");
    }
}

#[test]
fn basic_and_bearer_credentials_reach_the_server() {
    let server = Server::start(|_, _| ok());
    let uri = server.uri("/basic");
    let with_userinfo = uri.replace("127.0.0.1", "kong:pa%40ss@127.0.0.1").replace("/basic", "/userinfo");
    let sinks = sink("basic", &format!("uri = \"{uri}\"\nencoding.codec = \"json\"\nauth.user = \"user\"\nauth.password = \"pass\""))
        + &sink(
            "bearer",
            &format!("uri = \"{}\"\nencoding.codec = \"json\"\nauth.strategy = \"bearer\"\nauth.token = \"s3cret\"", server.uri("/bearer")),
        )
        + &sink("userinfo", &format!("uri = \"{with_userinfo}\"\nencoding.codec = \"json\""));
    let log = run(&sinks, &events(3));
    let seen = server.seen();
    let authorization = |path: &str| {
        let requests: Vec<&Seen> = seen.iter().filter(|r| r.target == path).collect();
        assert!(!requests.is_empty(), "nothing reached {path}");
        requests.iter().map(|r| r.header("authorization").unwrap_or("none").to_string()).collect::<std::collections::BTreeSet<_>>()
    };
    // base64("user:pass"), base64("kong:pa@ss")
    assert_eq!(authorization("/basic"), ["Basic dXNlcjpwYXNz".to_string()].into());
    assert_eq!(authorization("/bearer"), ["Bearer s3cret".to_string()].into());
    assert_eq!(authorization("/userinfo"), ["Basic a29uZzpwYUBzcw==".to_string()].into());
    assert!(!log.contains("pa%40ss") && !log.contains("pa@ss"), "{log}");
}

#[test]
fn the_uri_template_splits_batches_by_field() {
    let server = Server::start(|_, _| ok());
    let mut input = events(9);
    input.push(json!({"id": 99, "status": 500}));
    let options = format!(
        "uri = \"{}\"\nmethod = \"put\"\nencoding.codec = \"json\"\nrequest.headers.X-Tenant = \"kong\"",
        server.uri("/ingest/{{ service }}")
    );
    let log = run(&sink("out", &options), &input);
    let seen = server.seen();
    for service in ["orders", "users"] {
        let requests: Vec<&Seen> = seen.iter().filter(|r| r.target == format!("/ingest/{service}")).collect();
        let mut got: Vec<Value> = Vec::new();
        for request in &requests {
            assert_eq!((request.method.as_str(), request.header("x-tenant")), ("PUT", Some("kong")));
            assert_eq!(request.header("content-type"), Some("application/json"));
            // `json` without framing: one JSON array per request.
            let Value::Array(batch) = serde_json::from_slice(&request.body).unwrap() else { panic!("not an array") };
            got.extend(batch);
        }
        got.sort_by_key(|e| e["id"].as_u64());
        let want: Vec<Value> = input.iter().filter(|e| e["service"] == service).cloned().collect();
        assert_eq!(got, want, "{service}");
    }
    assert_eq!(seen.len(), seen.iter().filter(|r| r.target.starts_with("/ingest/orders") || r.target.starts_with("/ingest/users")).count());
    // The event without a service could not be placed: dropped, counted, said.
    assert_eq!((count(&log, "out", "component_sent_events_total"), count(&log, "out", "component_discarded_events_total")), (9, 1));
    assert!(log.contains("cannot render `uri`: field `service` is missing"), "{log}");
}

#[test]
fn with_acknowledgements_a_refusal_reaches_the_sender() {
    let server =
        Server::start(|_, r| if String::from_utf8_lossy(&r.body).contains("reject-me") { Reply::Answer(400, &[], "no") } else { ok() });
    let port = free_port();
    let mut pipeline = Pipeline::start(&format!(
        "[sources.in]\ntype = \"http_server\"\naddress = \"127.0.0.1:{port}\"\ndecoding.codec = \"json\"\n\
         [sinks.out]\ntype = \"http\"\ninputs = [\"in\"]\nuri = \"{}\"\nencoding.codec = \"ndjson\"\nbatch.timeout_secs = 0.1\nacknowledgements = true\n",
        server.uri("/")
    ));
    wait_for("the http_server source", Duration::from_secs(30), || TcpStream::connect(("127.0.0.1", port)).is_ok());
    let json = ["Content-Type: application/json"];
    // Answered once the server took the events.
    assert_eq!(post(port, "/", br#"{"msg": "fine"}"#, &json).status, 200);
    assert_eq!(server.seen().len(), 1);
    // Refused for good: the sender is told so, not asked to retry.
    let refused = post(port, "/", br#"{"msg": "reject-me"}"#, &json);
    assert_eq!(refused.status, 500, "{}", String::from_utf8_lossy(&refused.body));
    let log = pipeline.stop();
    assert_eq!(server.seen().len(), 2);
    assert_eq!((count(&log, "out", "component_sent_events_total"), count(&log, "out", "component_discarded_events_total")), (1, 1));
}

/// config/examples/kong-to-http.toml as shipped (its table in a test database):
/// Kong's http-log posts land as rows, and Kong gets its 200 once they have.
#[test]
fn the_kong_example_fills_a_clickhouse_table() {
    let Some(url) = clickhouse() else { return };
    let db = database(&url, "http_example");
    query(
        &url,
        &format!(
            "CREATE TABLE {db}.requests (time DateTime, service Nullable(String), route Nullable(String), method Nullable(String), \
             path Nullable(String), status Nullable(UInt16), duration_us Nullable(UInt64), request_id Nullable(String)) \
             ENGINE = MergeTree ORDER BY time"
        ),
    );
    let example = std::fs::read_to_string(here("config/examples/kong-to-http.toml")).unwrap();
    assert!(example.contains("INSERT%20INTO%20kong.requests%20"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kong-to-http.toml");
    std::fs::write(&config, example.replace("kong.requests", &format!("{db}.requests"))).unwrap();
    let (port, stderr) = (free_port(), dir.path().join("stderr.log"));
    let child = bin()
        .env("CLICKHOUSE_URL", &url)
        .env("KONG_LOG_ADDRESS", format!("127.0.0.1:{port}"))
        .env("TAPLINE_API", format!("127.0.0.1:{}", free_port()))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    // Killed when dropped, should an assertion fail.
    let mut pipeline = Pipeline { child: Some(child), dir, stderr };
    wait_for("the kong_http_log source", Duration::from_secs(30), || TcpStream::connect(("127.0.0.1", port)).is_ok());
    let fixture = std::fs::read(here("tests/fixtures/kong/kong3_array5.json")).unwrap();
    let answer = post(port, "/", &fixture, &["Content-Type: application/json"]);
    // Acknowledgements: the 200 comes once ClickHouse took the rows.
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    let rows: Vec<Value> = query(&url, &format!("SELECT * FROM {db}.requests ORDER BY request_id FORMAT JSONEachRow"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let log = pipeline.stop();
    assert_eq!(count(&log, "clickhouse", "component_sent_events_total"), 5);
    // Every entry started in the same second; `duration_us` is Kong's request latency.
    let row = |service: &str, method: &str, path: &str, status: u16, us: &str, id: &str| {
        json!({"time": "2024-11-26 09:23:21", "service": service, "route": service, "method": method, "path": path,
               "status": status, "duration_us": us, "request_id": id})
    };
    let want = [
        row("catalog", "GET", "/catalog", 200, "11000", "a1"),
        row("catalog", "GET", "/catalog/9", 503, "33000", "a2"),
        row("cart", "DELETE", "/cart/1", 401, "0", "a3"),
        row("cart", "PUT", "/cart/2", 204, "6000", "a4"),
        row("health", "GET", "/health", 200, "1000", "a5"),
    ];
    assert_eq!(rows, want);
    query(&url, &format!("DROP DATABASE {db}"));
}
