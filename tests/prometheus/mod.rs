//! The Prometheus components, against a real Prometheus (Debian's package,
//! started here on loopback): it remote-writes what it scrapes to tapline and
//! scrapes tapline's exporter; remote write 2.0 requests come from Google's
//! protobuf runtime (scripts/remote_write_v2.py).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

/// A Prometheus server with its own config and storage in a temp dir.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Start with `scrape_configs` and `remote_write` sections (YAML) of its
    /// config, where `SELF` stands for its own address.
    fn start(sections: &str) -> Prometheus {
        Prometheus::start_on(free_port(), sections, &[])
    }

    /// On a given port, with extra flags (`--web.enable-remote-write-receiver` …).
    fn start_on(port: u16, sections: &str, flags: &[&str]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let sections = sections.replace("SELF", &format!("127.0.0.1:{port}"));
        std::fs::write(&config, format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{sections}")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(flags)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus must be installed (scripts/install-test-deps.sh: Debian's `prometheus` package)");
        let prometheus = Prometheus { child, port, _dir: dir };
        wait_for("Prometheus to be ready", Duration::from_secs(60), || {
            http_get(port, "/-/ready").is_some_and(|r| r.starts_with("HTTP/1.1 200"))
        });
        prometheus
    }

    /// An instant query's result vector, at `time` (seconds) if given.
    fn query(&self, query: &str, time: Option<f64>) -> Vec<Value> {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "--fail-with-body",
            "-G",
            &format!("http://127.0.0.1:{}/api/v1/query", self.port),
            "--data-urlencode",
            &format!("query={query}"),
        ]);
        if let Some(time) = time {
            cmd.args(["--data-urlencode", &format!("time={time:.3}")]);
        }
        let out = cmd.output().unwrap();
        let answer: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{query}: {}", String::from_utf8_lossy(&out.stdout)));
        assert_eq!(answer["status"], "success", "{query}: {answer}");
        answer["data"]["result"].as_array().unwrap().clone()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn remote_write_source(port: u16) -> String {
    format!("[sources.rw]\ntype = \"prometheus_remote_write\"\naddress = \"127.0.0.1:{port}\"\n")
}

fn file_sink(input: &str) -> String {
    format!("[sinks.out]\ntype = \"file\"\ninputs = [\"{input}\"]\npath = \"DIR/out.jsonl\"\nencoding.codec = \"json\"\n")
}

fn listening(port: u16) {
    wait_for("tapline to listen", Duration::from_secs(30), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
}

/// A PromQL selector for a metric event: its name and every tag.
fn selector(metric: &Value) -> String {
    let tags = metric["tags"].as_object().unwrap();
    let matchers: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap())).collect();
    format!("{}{{{}}}", metric["name"].as_str().unwrap(), matchers.join(","))
}

fn sample_value(metric: &Value) -> f64 {
    let value = &metric["value"];
    value["gauge"]["value"].as_f64().or(value["counter"]["value"].as_f64()).unwrap()
}

#[test]
fn prometheus_remote_writes_what_it_scrapes_and_tapline_agrees() {
    let port = free_port();
    let mut pipeline = Pipeline::start(&(remote_write_source(port) + &file_sink("rw")));
    listening(port);
    // Prometheus scrapes itself and sends everything on, metadata included.
    let prometheus = Prometheus::start(&format!(
        "scrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['SELF']\n\
         remote_write:\n  - url: http://127.0.0.1:{port}/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n    metadata_config:\n      send_interval: 1s\n"
    ));
    let out = pipeline.path("out.jsonl");
    // Counters are known once the metadata has come.
    wait_for("samples typed by metadata", Duration::from_secs(90), || {
        read_json(&out).iter().any(|m| m["name"] == "prometheus_http_requests_total" && m["value"].get("counter").is_some())
    });
    let log = pipeline.stop();
    let metrics = read_json(&out);
    let names = ["up", "prometheus_build_info", "prometheus_http_requests_total", "prometheus_tsdb_head_series"];
    let checked: Vec<&Value> = metrics.iter().filter(|m| names.contains(&m["name"].as_str().unwrap())).collect();
    assert!(checked.len() >= 4, "{checked:?}");
    // Each sample as Prometheus itself stored it: same series, same value at the same time.
    for metric in &checked {
        let time = chrono::DateTime::parse_from_rfc3339(metric["timestamp"].as_str().unwrap()).unwrap().timestamp_millis() as f64 / 1000.0;
        let result = prometheus.query(&selector(metric), Some(time));
        assert_eq!(result.len(), 1, "{}: {result:?}", selector(metric));
        let theirs: f64 = result[0]["value"][1].as_str().unwrap().parse().unwrap();
        assert_eq!(theirs, sample_value(metric), "{}", selector(metric));
    }
    let up = checked.iter().find(|m| m["name"] == "up").unwrap();
    assert_eq!(up["tags"], json!({"instance": format!("127.0.0.1:{}", prometheus.port), "job": "self"}));
    assert_eq!(sample_value(up), 1.0);
    assert_eq!(totals(&log, "rw", "component_errors_total"), 0);
}

/// Summaries and classic histograms arrive series by series; the exporter
/// serves each as one family again, which promtool accepts.
#[test]
fn remote_written_summaries_and_histograms_are_served_as_families() {
    let (rw, exporter) = (free_port(), free_port());
    let mut pipeline = Pipeline::start(
        &(remote_write_source(rw)
            + &format!("[sinks.prom]\ntype = \"prometheus_exporter\"\ninputs = [\"rw\"]\naddress = \"127.0.0.1:{exporter}\"\nopenmetrics = false\n")),
    );
    listening(rw);
    let _prometheus = Prometheus::start(&format!(
        "scrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['SELF']\n\
         remote_write:\n  - url: http://127.0.0.1:{rw}/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n    metadata_config:\n      send_interval: 1s\n"
    ));
    let exposition =
        || http_get(exporter, "/metrics").and_then(|r| r.split_once("\r\n\r\n").map(|(_, body)| body.to_string())).unwrap_or_default();
    wait_for("the families", Duration::from_secs(90), || {
        let text = exposition();
        text.contains("# TYPE go_gc_duration_seconds summary") && text.contains("# TYPE prometheus_http_request_duration_seconds histogram")
    });
    let text = exposition();
    assert!(text.contains("go_gc_duration_seconds{") && text.contains("quantile=\"0.5\""), "{text}");
    assert!(text.lines().any(|l| l.starts_with("prometheus_http_request_duration_seconds_bucket{") && l.contains("le=\"+Inf\"")), "{text}");
    for orphan in ["# TYPE go_gc_duration_seconds_sum", "# TYPE prometheus_http_request_duration_seconds_bucket"] {
        assert!(!text.contains(orphan), "a part is served as a family of its own: {orphan}");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("metrics.txt"), &text).unwrap();
    let checked = Command::new("sh")
        .arg("-c")
        .arg(format!("promtool check metrics < {}", dir.path().join("metrics.txt").display()))
        .output()
        .unwrap();
    let problems = String::from_utf8_lossy(&checked.stdout).to_string() + &String::from_utf8_lossy(&checked.stderr);
    // What a part served on its own draws: `_sum`/`_count`/`_bucket` suffixes, `le` or `quantile` labels elsewhere.
    let misplaced: Vec<&str> = problems.lines().filter(|l| l.contains("non-histogram") || l.contains("non-summary")).collect();
    assert!(misplaced.is_empty(), "promtool: {misplaced:?}");
    assert_ne!(checked.status.code(), Some(1), "promtool refused the exposition:\n{problems}");
    pipeline.stop();
}

#[test]
fn remote_write_2_decodes_with_symbols_and_native_histograms() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("rw2.bin");
    let out = Command::new("python3").arg(here("scripts/remote_write_v2.py")).arg(&raw).output().unwrap();
    assert!(
        out.status.success(),
        "remote_write_v2.py (needs the protobuf module, installed with opentelemetry-exporter-otlp):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = snap::raw::Encoder::new().compress_vec(&std::fs::read(&raw).unwrap()).unwrap();
    let port = free_port();
    let mut pipeline = Pipeline::start(&(remote_write_source(port) + &file_sink("rw")));
    listening(port);
    let answer = post(
        port,
        "/api/v1/write",
        &body,
        &[
            "Content-Type: application/x-protobuf;proto=io.prometheus.write.v2.Request",
            "Content-Encoding: snappy",
            "X-Prometheus-Remote-Write-Version: 2.0.0",
        ],
    );
    assert_eq!(answer.status, 204, "{}", String::from_utf8_lossy(&answer.body));
    for (what, count) in [("samples", 3), ("histograms", 2), ("exemplars", 1)] {
        assert!(answer.headers.contains(&format!("x-prometheus-remote-write-{what}-written: {count}\r\n")), "{}", answer.headers);
    }
    let out = pipeline.path("out.jsonl");
    wait_for("the metrics", Duration::from_secs(30), || read_lines(&out).len() == 5);
    pipeline.stop();
    let metrics = read_json(&out);
    let job = json!({"job": "kong"});
    assert_eq!(
        metrics[0],
        json!({"name": "http_requests_total", "tags": {"code": "200", "job": "kong"}, "timestamp": "2024-11-26T09:23:20Z", "kind": "absolute", "value": {"counter": {"value": 1027.0}}})
    );
    assert_eq!(
        metrics[1],
        json!({"name": "http_requests_total", "tags": {"code": "200", "job": "kong"}, "timestamp": "2024-11-26T09:23:35Z", "kind": "absolute", "value": {"counter": {"value": 1031.0}},
               "exemplars": [{"value": 1.0, "timestamp": "2024-11-26T09:23:35Z", "labels": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}}]})
    );
    assert_eq!(
        metrics[2],
        json!({"name": "temperature", "tags": job, "timestamp": "2024-11-26T09:23:20Z", "kind": "absolute", "value": {"gauge": {"value": -3.5}}})
    );
    // Schema 0: (-1,-0.5] … then (1,2], (2,4], (8,16]; 2 + 1 + 3 + 4 + 2 = 12 = count.
    let buckets =
        |pairs: &[(Value, u64)]| pairs.iter().map(|(upper, count)| json!({"upper_limit": upper, "count": count})).collect::<Vec<_>>();
    assert_eq!(
        metrics[3]["value"],
        json!({"histogram": {"buckets": buckets(&[(json!(-0.5), 2), (json!(0.001), 1), (json!(2.0), 3), (json!(4.0), 4), (json!(16.0), 2), (Value::Null, 0)]), "count": 12, "sum": 50.0}})
    );
    assert_eq!(metrics[3]["name"], "kong_latency_ms");
    assert_eq!(
        metrics[4]["value"],
        json!({"histogram": {"buckets": buckets(&[(json!(0.1), 1), (json!(1.0), 3), (Value::Null, 1)]), "count": 5, "sum": 2.5}})
    );
}

#[test]
fn bad_remote_write_gets_the_right_status_and_the_server_goes_on() {
    use prost::Message;
    use tapline::prometheus::proto::{v1, Sample};
    let port = free_port();
    let mut pipeline =
        Pipeline::start(&(remote_write_source(port) + "max_body_bytes = 262144\nmax_decompressed_bytes = 1048576\n" + &file_sink("rw")));
    listening(port);
    let request = |labels: &[(&str, &str)]| {
        let labels = labels.iter().map(|(n, v)| v1::Label { name: n.to_string(), value: v.to_string() }).collect();
        let series = v1::TimeSeries { labels, samples: vec![Sample { value: 1.0, timestamp: 1_732_613_000_000 }], ..Default::default() };
        snap::raw::Encoder::new().compress_vec(&v1::WriteRequest { timeseries: vec![series], metadata: vec![] }.encode_to_vec()).unwrap()
    };
    let good = request(&[("__name__", "up"), ("job", "kong")]);
    let v1_headers = ["Content-Type: application/x-protobuf", "Content-Encoding: snappy", "X-Prometheus-Remote-Write-Version: 0.1.0"];
    let send = |body: &[u8], headers: &[&str]| {
        let answer = post(port, "/api/v1/write", body, headers);
        (answer.status, String::from_utf8_lossy(&answer.body).into_owned())
    };
    let (status, text) = send(b"this is not snappy at all", &v1_headers);
    assert_eq!(status, 400);
    assert!(text.contains("not snappy"), "{text}");
    let mut framed = b"\xff\x06\x00\x00sNaPpY".to_vec();
    framed.extend_from_slice(&good);
    let (status, text) = send(&framed, &v1_headers);
    assert_eq!(status, 400);
    assert!(text.contains("framed snappy"), "{text}");
    let garbage = snap::raw::Encoder::new().compress_vec(&[0xff; 64]).unwrap();
    let (status, text) = send(&garbage, &v1_headers);
    assert_eq!(status, 400);
    assert!(text.contains("invalid remote write 1.0 protobuf"), "{text}");
    let (status, text) = send(&request(&[("job", "kong"), ("__name__", "up")]), &v1_headers);
    assert_eq!(status, 400);
    assert!(text.contains("unsorted label `__name__`"), "{text}");
    let (status, text) = send(&request(&[("__name__", "up"), ("job", "a"), ("job", "b")]), &v1_headers);
    assert_eq!(status, 400);
    assert!(text.contains("duplicate label `job`"), "{text}");
    // Too large as sent, and as the snappy header announces (a bomb).
    assert_eq!(send(&vec![0u8; 300_000], &v1_headers).0, 413);
    let bomb = snap::raw::Encoder::new().compress_vec(&vec![0u8; 4 << 20]).unwrap();
    assert!(bomb.len() < 262_144, "the bomb must pass the size limit as sent");
    let (status, text) = send(&bomb, &v1_headers);
    assert_eq!(status, 413);
    assert!(text.contains("max_decompressed_bytes"), "{text}");
    // What it does not speak: 415.
    assert_eq!(send(&good, &["Content-Type: application/json", "Content-Encoding: snappy"]).0, 415);
    assert_eq!(
        send(&good, &["Content-Type: application/x-protobuf;proto=io.prometheus.write.v3.Request", "Content-Encoding: snappy"]).0,
        415
    );
    assert_eq!(send(&good, &["Content-Type: application/x-protobuf", "Content-Encoding: zstd"]).0, 415);
    assert_eq!(request_to(port, "/api/v1/query"), 404);
    // Still serving; DeepFlow's path too.
    assert_eq!(send(&good, &v1_headers).0, 204);
    assert_eq!(post(port, "/api/v1/prometheus", &good, &v1_headers).status, 204);
    let out = pipeline.path("out.jsonl");
    wait_for("the good samples", Duration::from_secs(30), || read_lines(&out).len() == 2);
    let log = pipeline.stop();
    assert_eq!(totals(&log, "rw", "component_errors_total"), 11, "{log}");
}

/// The OTLP metrics fixture, its times moved to now (Prometheus refuses old samples).
fn otlp_metrics_now() -> Vec<u8> {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap().to_string();
    std::fs::read_to_string(here("tests/fixtures/otlp/metrics.json"))
        .unwrap()
        .replace("1732613060000000000", &now)
        .replace("1732613000000000000", &now)
        .into_bytes()
}

fn otlp_to_remote_write(otlp: u16, endpoint: &str, extra: &str) -> String {
    format!(
        "[sources.otel]\ntype = \"opentelemetry\"\ngrpc.enabled = false\nhttp.address = \"127.0.0.1:{otlp}\"\n\
         [sinks.rw]\ntype = \"prometheus_remote_write\"\ninputs = [\"otel.metrics\"]\nendpoint = \"{endpoint}\"\nrequest.retry_initial_backoff_secs = 0.2\nrequest.retry_max_duration_secs = 1\n{extra}"
    )
}

#[test]
fn the_sink_writes_to_prometheus_which_answers_the_same_values() {
    let (otlp, port) = (free_port(), free_port());
    let mut pipeline =
        Pipeline::start(&otlp_to_remote_write(otlp, &format!("http://127.0.0.1:{port}/api/v1/write"), "batch.timeout_secs = 0.2\n"));
    listening(otlp);
    // Sent before Prometheus is up: the sink retries until it is.
    assert_eq!(post(otlp, "/v1/metrics", &otlp_metrics_now(), &["Content-Type: application/json"]).status, 200);
    std::thread::sleep(Duration::from_secs(1));
    let prometheus = Prometheus::start_on(port, "", &["--web.enable-remote-write-receiver"]);
    let value = |query: &str| -> Option<f64> { prometheus.query(query, None).first().and_then(|r| r["value"][1].as_str()?.parse().ok()) };
    wait_for("the samples in Prometheus", Duration::from_secs(60), || value("http_requests").is_some());
    assert_eq!(value(r#"http_requests{code="200",resource_service_name="orders",scope_name="orders.meter"}"#), Some(1500.0));
    assert_eq!(value("memory_used"), Some(1048576.0));
    assert_eq!(value("queue_delta"), Some(-2.5));
    // Histograms and summaries as their classic series.
    assert_eq!(value(r#"latency_bucket{le="10"}"#), Some(1.0));
    assert_eq!(value(r#"latency_bucket{le="100"}"#), Some(3.0));
    assert_eq!(value(r#"latency_bucket{le="+Inf"}"#), Some(6.0));
    assert_eq!((value("latency_count"), value("latency_sum")), (Some(6.0), Some(321.5)));
    assert_eq!(value(r#"payload_size_bucket{le="4"}"#), Some(4.0));
    assert_eq!(value(r#"rpc_duration{quantile="0.99"}"#), Some(4.5));
    assert_eq!(value("rpc_duration_count"), Some(10.0));
    let log = pipeline.stop();
    assert!(totals(&log, "rw", "component_errors_total") >= 1, "the first tries found no Prometheus");
    assert_eq!(totals(&log, "rw", "component_discarded_events_total"), 0);
}

#[test]
fn samples_prometheus_refuses_are_counted_not_retried() {
    let (otlp, port) = (free_port(), free_port());
    let _prometheus = Prometheus::start_on(port, "", &["--web.enable-remote-write-receiver"]);
    let mut pipeline = Pipeline::start(&otlp_to_remote_write(otlp, &format!("http://127.0.0.1:{port}/api/v1/write"), ""));
    listening(otlp);
    let value = |query: &str| -> Option<f64> { _prometheus.query(query, None).first().and_then(|r| r["value"][1].as_str()?.parse().ok()) };
    assert_eq!(post(otlp, "/v1/metrics", &otlp_metrics_now(), &["Content-Type: application/json"]).status, 200);
    wait_for("the samples in Prometheus", Duration::from_secs(60), || value("http_requests").is_some());
    // The same series from 2024: out of order for Prometheus, a 400.
    assert_eq!(
        post(otlp, "/v1/metrics", &std::fs::read(here("tests/fixtures/otlp/metrics.json")).unwrap(), &["Content-Type: application/json"])
            .status,
        200
    );
    std::thread::sleep(Duration::from_secs(3));
    let log = pipeline.stop();
    assert_eq!(totals(&log, "rw", "component_discarded_events_total"), 6, "{log}");
    assert_eq!(totals(&log, "rw", "component_errors_total"), 1, "one failure, no retry: {log}");
    assert!(log.contains("HTTP 400"), "{log}");
}

#[test]
fn prometheus_scrapes_the_exporter_and_reads_the_values_back() {
    let (otlp, exporter) = (free_port(), free_port());
    let mut pipeline = Pipeline::start(&format!(
        "[sources.otel]\ntype = \"opentelemetry\"\ngrpc.enabled = false\nhttp.address = \"127.0.0.1:{otlp}\"\n\
         [sinks.exporter]\ntype = \"prometheus_exporter\"\ninputs = [\"otel.metrics\"]\naddress = \"127.0.0.1:{exporter}\"\ndefault_namespace = \"shop\"\n\
         # The fixture's samples are from 2024: let Prometheus stamp them when it scrapes.\nsuppress_timestamp = true\n"
    ));
    listening(otlp);
    assert_eq!(
        post(otlp, "/v1/metrics", &std::fs::read(here("tests/fixtures/otlp/metrics.json")).unwrap(), &["Content-Type: application/json"])
            .status,
        200
    );
    let prometheus = Prometheus::start(&format!(
        "scrape_configs:\n  - job_name: tapline\n    static_configs:\n      - targets: ['127.0.0.1:{exporter}']\n"
    ));
    let value = |query: &str| -> Option<f64> { prometheus.query(query, None).first().and_then(|r| r["value"][1].as_str()?.parse().ok()) };
    // Prometheus asks for OpenMetrics: the counter's sample is `…_total`, bounds are written `10.0`.
    wait_for("Prometheus to scrape the exporter", Duration::from_secs(60), || value("shop_http_requests_total").is_some());
    assert_eq!(value(r#"up{job="tapline"}"#), Some(1.0));
    let series = prometheus.query("shop_http_requests_total", None);
    assert_eq!(
        series[0]["metric"],
        json!({"__name__": "shop_http_requests_total", "code": "200", "instance": format!("127.0.0.1:{exporter}"), "job": "tapline", "resource_service_name": "orders", "scope_name": "orders.meter", "scope_version": "2.0"})
    );
    assert_eq!(value("shop_http_requests_total"), Some(1500.0));
    assert_eq!(value("shop_memory_used"), Some(1048576.0));
    assert_eq!(value("shop_queue_delta"), Some(-2.5));
    assert_eq!(value(r#"shop_latency_bucket{le=~"10(\\.0)?"}"#), Some(1.0));
    assert_eq!(value(r#"shop_latency_bucket{le=~"100(\\.0)?"}"#), Some(3.0));
    assert_eq!(value(r#"shop_latency_bucket{le="+Inf"}"#), Some(6.0));
    assert_eq!((value("shop_latency_count"), value("shop_latency_sum")), (Some(6.0), Some(321.5)));
    assert_eq!(value(r#"shop_rpc_duration{quantile=~"0.99"}"#), Some(4.5));
    // Every sample of every family was taken: 1 + 5 + 1 + 6 + 1 + 4.
    assert_eq!(value(r#"scrape_samples_scraped{job="tapline"}"#), Some(18.0));
    pipeline.stop();
}

/// `log_to_metric`'s set, Vector's way to count distinct values: the exporter
/// unites the sets of a series and serves their size, which Prometheus reads.
#[test]
fn prometheus_reads_a_set_as_its_number_of_values() {
    let (http, exporter) = (free_port(), free_port());
    let mut pipeline = Pipeline::start(&format!(
        "[sources.kong]\ntype = \"http_server\"\naddress = \"127.0.0.1:{http}\"\ndecoding.codec = \"json\"\n\
         [transforms.clients]\ntype = \"log_to_metric\"\ninputs = [\"kong\"]\n\
         [[transforms.clients.metrics]]\ntype = \"set\"\nfield = \"client_ip\"\nname = \"clients\"\nnamespace = \"kong\"\ntags.service = \"{{{{ service.name }}}}\"\n\
         [sinks.exporter]\ntype = \"prometheus_exporter\"\ninputs = [\"clients\"]\naddress = \"127.0.0.1:{exporter}\"\n"
    ));
    listening(http);
    let entry = |ip: &str, service: &str| json!({"client_ip": ip, "service": {"name": service}, "response": {"status": 200}});
    let batches = [
        json!([entry("10.0.0.1", "orders"), entry("10.0.0.2", "orders"), entry("10.0.0.1", "orders"), entry("10.0.0.9", "users")]),
        json!([entry("10.0.0.2", "orders"), entry("10.0.0.3", "orders"), entry("10.0.0.9", "users")]),
    ];
    for batch in batches {
        assert_eq!(post(http, "/", batch.to_string().as_bytes(), &["Content-Type: application/json"]).status, 200);
    }
    let prometheus = Prometheus::start(&format!(
        "scrape_configs:\n  - job_name: tapline\n    static_configs:\n      - targets: ['127.0.0.1:{exporter}']\n"
    ));
    let value = |query: &str| -> Option<f64> { prometheus.query(query, None).first().and_then(|r| r["value"][1].as_str()?.parse().ok()) };
    wait_for("Prometheus to scrape the exporter", Duration::from_secs(60), || value("kong_clients").is_some());
    assert_eq!(value(r#"kong_clients{service="orders"}"#), Some(3.0));
    assert_eq!(value(r#"kong_clients{service="users"}"#), Some(1.0));
    let log = pipeline.stop();
    assert_eq!(totals(&log, "clients", "component_sent_events_total"), 7);
}

#[test]
fn the_sink_authenticates_and_a_refusal_is_final() {
    let (otlp, guarded) = (free_port(), free_port());
    let mut config =
        format!("[sources.guarded]\ntype = \"prometheus_remote_write\"\naddress = \"127.0.0.1:{guarded}\"\nauth.token = \"s3cret\"\n");
    config += &otlp_to_remote_write(
        otlp,
        &format!("http://127.0.0.1:{guarded}/api/v1/write"),
        "auth.strategy = \"bearer\"\nauth.token = \"s3cret\"\ntenant_id = \"kong\"\n",
    );
    config += &format!("[sinks.wrong]\ntype = \"prometheus_remote_write\"\ninputs = [\"otel.metrics\"]\nendpoint = \"http://127.0.0.1:{guarded}/api/v1/write\"\nauth.strategy = \"basic\"\nauth.user = \"kong\"\nauth.password = \"nope\"\n");
    config += &file_sink("guarded");
    let mut pipeline = Pipeline::start(&config);
    listening(otlp);
    listening(guarded);
    assert_eq!(post(otlp, "/v1/metrics", &otlp_metrics_now(), &["Content-Type: application/json"]).status, 200);
    let out = pipeline.path("out.jsonl");
    // Tapline to tapline: 6 metric events become 18 series (histograms and summaries as theirs).
    wait_for("the authenticated samples", Duration::from_secs(30), || read_lines(&out).len() == 18);
    std::thread::sleep(Duration::from_secs(1));
    let log = pipeline.stop();
    let metrics = read_json(&out);
    let bucket = find(&metrics, |m| m["name"] == "latency_bucket" && m["tags"]["le"] == "100");
    assert_eq!(bucket["value"], json!({"counter": {"value": 3.0}}), "typed by the metadata sent along");
    assert_eq!(totals(&log, "rw", "component_sent_events_total"), 6);
    assert_eq!(totals(&log, "wrong", "component_discarded_events_total"), 6);
    assert_eq!(totals(&log, "wrong", "component_errors_total"), 1, "a 401 is not retried");
    assert!(log.contains("HTTP 401"), "{log}");
}

#[test]
fn a_reloaded_exporter_takes_over_its_port() {
    let (otlp, exporter) = (free_port(), free_port());
    let config = |namespace: &str| {
        format!(
            "[sources.otel]\ntype = \"opentelemetry\"\ngrpc.enabled = false\nhttp.address = \"127.0.0.1:{otlp}\"\n\
             [sinks.exporter]\ntype = \"prometheus_exporter\"\ninputs = [\"otel.metrics\"]\naddress = \"127.0.0.1:{exporter}\"\ndefault_namespace = \"{namespace}\"\n"
        )
    };
    let mut pipeline = Pipeline::start(&config("before"));
    listening(otlp);
    let fixture = std::fs::read(here("tests/fixtures/otlp/metrics.json")).unwrap();
    let serves = |name: &str| http_get(exporter, "/metrics").is_some_and(|text| text.contains(name));
    assert_eq!(post(otlp, "/v1/metrics", &fixture, &["Content-Type: application/json"]).status, 200);
    wait_for("the first exporter", Duration::from_secs(30), || serves("before_http_requests"));
    // Same port, other options: the new exporter waits for the old one to let go.
    std::fs::write(pipeline.path("pipeline.toml"), format!("[api]\nenabled = false\n{}", config("after"))).unwrap();
    signal(pipeline.child.as_ref().unwrap(), "HUP");
    wait_for("the reload", Duration::from_secs(30), || std::fs::read_to_string(&pipeline.stderr).unwrap().contains("reloaded"));
    assert_eq!(post(otlp, "/v1/metrics", &fixture, &["Content-Type: application/json"]).status, 200);
    wait_for("the new exporter", Duration::from_secs(30), || serves("after_http_requests"));
    assert!(!serves("before_http_requests"));
    pipeline.stop();
}

fn find(items: &[Value], what: impl Fn(&Value) -> bool) -> &Value {
    items.iter().find(|i| what(i)).unwrap_or_else(|| panic!("not found among {} items", items.len()))
}

fn request_to(port: u16, path: &str) -> u16 {
    request(port, "POST", path, b"", &[]).status
}

/// Kong log entries through `red` with Kong's names, served by the exporter
/// and scraped by a real Prometheus: the series and labels of Kong's
/// Prometheus plugin, and the queries of its Grafana dashboard answer.
#[test]
fn red_serves_kong_plugin_metrics_that_kong_dashboard_queries_read() {
    let (http_log, exporter) = (free_port(), free_port());
    let mut pipeline = Pipeline::start(&format!(
        "[sources.kong]\ntype = \"kong_http_log\"\naddress = \"127.0.0.1:{http_log}\"\n\
         [transforms.red]\ntype = \"red\"\ninputs = [\"kong\"]\nnaming = \"kong\"\nwindow_secs = 1\nallowed_lateness_secs = 0\n\
         [sinks.exporter]\ntype = \"prometheus_exporter\"\ninputs = [\"red\"]\naddress = \"127.0.0.1:{exporter}\"\nopenmetrics = false\n"
    ));
    listening(http_log);
    let base: Value = serde_json::from_slice(&std::fs::read(here("tests/fixtures/kong/kong3_single.json")).unwrap()).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let entry = |service: &str, status: u16, request_ms: i64, proxy_ms: i64, source: &str| {
        let mut e = base.clone();
        e["service"]["name"] = json!(service);
        e["route"]["name"] = json!(format!("{service}-route"));
        e["response"]["status"] = json!(status);
        e["latencies"] = json!({"kong": 2, "proxy": proxy_ms, "request": request_ms, "receive": 0});
        e["source"] = json!(source);
        e["started_at"] = json!(now);
        e
    };
    let mut entries = vec![
        entry("orders", 200, 10, 8, "service"),
        entry("orders", 200, 30, 28, "service"),
        entry("orders", 200, 60, 58, "service"),
        entry("orders", 200, 90, 88, "service"),
        entry("orders", 500, 300, 298, "service"),
        entry("users", 401, 3, -1, "exit"),
    ];
    let mut unrouted = entry("orders", 404, 1, -1, "exit");
    unrouted.as_object_mut().unwrap().remove("route");
    entries.push(unrouted);
    assert_eq!(post(http_log, "/", &serde_json::to_vec(&entries).unwrap(), &["Content-Type: application/json"]).status, 200);

    let prometheus = Prometheus::start(&format!(
        "scrape_configs:\n  - job_name: kong\n    static_configs:\n      - targets: ['127.0.0.1:{exporter}']\n"
    ));
    let value = |query: &str| -> Option<f64> { prometheus.query(query, None).first().and_then(|r| r["value"][1].as_str()?.parse().ok()) };
    wait_for("Prometheus to scrape Kong's metrics", Duration::from_secs(60), || value("sum(kong_http_requests_total)") == Some(6.0));
    // The plugin's label set, exactly (plus Prometheus's job and instance).
    let labels = |name: &str| -> Vec<String> {
        let series = prometheus.query(name, None);
        assert!(!series.is_empty(), "{name}");
        let mut keys: Vec<String> = series[0]["metric"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !["__name__", "job", "instance", "le"].contains(&k.as_str()))
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(labels("kong_http_requests_total"), ["code", "consumer", "route", "service", "source", "workspace"]);
    for histogram in ["kong_request_latency_ms_bucket", "kong_upstream_latency_ms_bucket", "kong_kong_latency_ms_bucket"] {
        assert_eq!(labels(histogram), ["route", "service", "workspace"], "{histogram}");
    }
    assert_eq!(labels("kong_bandwidth_bytes"), ["consumer", "direction", "route", "service", "workspace"]);
    assert_eq!(
        value(
            r#"kong_http_requests_total{service="orders",route="orders-route",code="200",source="service",workspace="default",consumer="mobile-app"}"#
        ),
        Some(4.0)
    );
    assert_eq!(value(r#"kong_http_requests_total{service="users",code="401",source="kong"}"#), Some(1.0));
    // The dashboard's panels: error share, latency percentiles from the buckets, bandwidth.
    assert_eq!(value(r#"sum(kong_http_requests_total{code=~"5.."}) / sum(kong_http_requests_total)"#), Some(1.0 / 6.0));
    // Median of 10, 30, 60, 90, 300 ms over Kong's buckets: rank 2.5 falls in (50, 80], halfway.
    assert_eq!(value(r#"histogram_quantile(0.5, sum(kong_request_latency_ms_bucket{service="orders"}) by (le))"#), Some(65.0));
    assert_eq!(value(r#"kong_request_latency_ms_sum{service="orders"}"#), Some(490.0));
    assert_eq!(value(r#"kong_kong_latency_ms_bucket{service="orders",le=~"2(\\.0)?"}"#), Some(5.0));
    assert_eq!(value(r#"kong_upstream_latency_ms_count{service="orders"}"#), Some(5.0));
    assert_eq!(value(r#"kong_upstream_latency_ms_count{service="users"}"#), None, "no upstream latency when Kong answered alone");
    assert_eq!(value(r#"sum(kong_bandwidth_bytes{direction="egress",service="orders"})"#), Some(5.0 * 5120.0));
    assert_eq!(value(r#"sum(kong_bandwidth_bytes{direction="ingress"})"#), Some(6.0 * 1024.0));
    pipeline.stop();
}

/// `red`'s exemplars (the slowest request's trace id) reach Prometheus through
/// the exporter's OpenMetrics, on the bucket of their value.
#[test]
fn red_exemplars_reach_prometheus() {
    let (http_log, exporter) = (free_port(), free_port());
    let mut pipeline = Pipeline::start(&format!(
        "[sources.kong]\ntype = \"kong_http_log\"\naddress = \"127.0.0.1:{http_log}\"\n\
         [transforms.red]\ntype = \"red\"\ninputs = [\"kong\"]\ndimensions = [\"service\"]\nwindow_secs = 1\nallowed_lateness_secs = 0\n\
         [sinks.exporter]\ntype = \"prometheus_exporter\"\ninputs = [\"red\"]\naddress = \"127.0.0.1:{exporter}\"\nsuppress_timestamp = true\n"
    ));
    listening(http_log);
    let base: Value = serde_json::from_slice(&std::fs::read(here("tests/fixtures/kong/kong3_single.json")).unwrap()).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let entries: Vec<Value> =
        [(20, "0af7651916cd43dd8448eb211c80319c"), (450, "4bf92f3577b34da6a3ce929d0e0e4736"), (90, "00000000000000000000000000000abc")]
            .iter()
            .map(|(ms, trace)| {
                let mut e = base.clone();
                e["latencies"]["request"] = json!(ms);
                e["trace_id"] = json!({"w3c": trace});
                e["started_at"] = json!(now);
                e
            })
            .collect();
    assert_eq!(post(http_log, "/", &serde_json::to_vec(&entries).unwrap(), &["Content-Type: application/json"]).status, 200);
    let prometheus = Prometheus::start_on(
        free_port(),
        &format!("scrape_configs:\n  - job_name: red\n    static_configs:\n      - targets: ['127.0.0.1:{exporter}']\n"),
        &["--enable-feature=exemplar-storage"],
    );
    let exemplars = || -> Vec<Value> {
        let end = chrono::Utc::now().timestamp() + 60;
        let out = std::process::Command::new("curl")
            .args(["-sS", "-G", &format!("http://127.0.0.1:{}/api/v1/query_exemplars", prometheus.port)])
            .args([
                "--data-urlencode",
                "query=http_request_duration_seconds_bucket",
                "--data-urlencode",
                &format!("start={}", end - 600),
                "--data-urlencode",
                &format!("end={end}"),
            ])
            .output()
            .unwrap();
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        answer["data"].as_array().cloned().unwrap_or_default()
    };
    wait_for("an exemplar in Prometheus", Duration::from_secs(60), || !exemplars().is_empty());
    let series = &exemplars()[0];
    // The slowest of the three: 450 ms, in the bucket up to 0.7 s.
    assert_eq!(series["seriesLabels"]["le"], "0.7", "{series}");
    assert_eq!(series["seriesLabels"]["service"], "orders");
    assert_eq!(series["exemplars"][0]["labels"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(series["exemplars"][0]["value"], "0.45");
    pipeline.stop();
}
