//! The `opentelemetry` source and sink, run by the real binary: fed by the
//! OpenTelemetry Python SDK (gRPC and HTTP), by hand-made OTLP/JSON and
//! protobuf over curl, by raw gRPC calls (grpcio), and by tapline's own sink.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::{json, Value};
use tapline::otlp::rpc::RpcStatus;

fn otel_source(id: &str, grpc: u16, http: u16, extra: &str) -> String {
    format!("[sources.{id}]\ntype = \"opentelemetry\"\ngrpc.address = \"127.0.0.1:{grpc}\"\nhttp.address = \"127.0.0.1:{http}\"\n{extra}\n")
}

fn file_sink(id: &str, input: &str) -> String {
    format!("[sinks.{id}]\ntype = \"file\"\ninputs = [\"{input}\"]\npath = \"DIR/{id}.jsonl\"\nencoding.codec = \"json\"\n")
}

fn listening(ports: &[u16]) {
    for &port in ports {
        wait_for("the OTLP ports to listen", Duration::from_secs(30), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    }
}

const JSON: &str = "Content-Type: application/json";
const PROTOBUF: &str = "Content-Type: application/x-protobuf";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(here(&format!("tests/fixtures/otlp/{name}"))).unwrap()
}

/// The traces fixture as protobuf, encoded by the proto crate's own types.
fn traces_protobuf() -> Vec<u8> {
    let request: ExportTraceServiceRequest = serde_json::from_slice(&fixture("traces.json")).unwrap();
    request.encode_to_vec()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// Run the Python SDK sender; returns the ids it chose.
fn sdk(protocol: &str, endpoint: &str, gzip: bool) -> Value {
    let mut cmd = Command::new("python3");
    cmd.arg(here("scripts/otel_send.py")).args([protocol, endpoint]);
    if gzip {
        cmd.arg("--gzip");
    }
    let out = cmd.output().expect("python3 must be installed (scripts/install-test-deps.sh)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the OpenTelemetry SDK could not send ({protocol}); needs opentelemetry-sdk and opentelemetry-exporter-otlp (scripts/install-test-deps.sh):\n{stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A raw gRPC call (grpcio) with `body` as the message.
fn grpc_call(port: u16, signal: &str, body: &[u8], options: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    std::fs::write(&file, body).unwrap();
    let out = Command::new("python3")
        .arg(here("scripts/grpc_call.py"))
        .arg(format!("127.0.0.1:{port}"))
        .arg(signal)
        .arg(&file)
        .args(options)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "grpc_call.py failed (needs grpcio, installed with opentelemetry-exporter-otlp):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn spans_of<'a>(events: &'a [Value], trace_id: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["trace_id"] == trace_id && e.get("kind").is_some()).collect()
}

fn find(events: &[Value], what: impl Fn(&Value) -> bool) -> &Value {
    events.iter().find(|e| what(e)).unwrap_or_else(|| panic!("not found among {} events", events.len()))
}

#[test]
fn python_sdk_sends_spans_metrics_and_logs_over_grpc_and_http() {
    let (grpc, http) = (free_port(), free_port());
    let mut pipeline = Pipeline::start(&(otel_source("otel", grpc, http, "") + &file_sink("out", "otel.*")));
    listening(&[grpc, http]);
    let sent =
        [("grpc", sdk("grpc", &format!("127.0.0.1:{grpc}"), true)), ("http", sdk("http", &format!("http://127.0.0.1:{http}"), false))];
    let out = pipeline.path("out.jsonl");
    wait_for("the events to be written", Duration::from_secs(30), || read_lines(&out).len() >= 22);
    let log = pipeline.stop();
    let events = read_json(&out);

    for (protocol, ids) in &sent {
        let instance = format!("checkout-{protocol}");
        let spans = spans_of(&events, ids["trace_id"].as_str().unwrap());
        assert_eq!(spans.len(), 2, "{protocol}: {spans:#?}");
        let parent = find(&events, |e| e["span_id"] == ids["parent_span_id"] && e.get("kind").is_some());
        assert_eq!(parent["name"], "GET /orders/{id}");
        assert_eq!(parent["kind"], "server");
        assert_eq!(parent["parent_span_id"], Value::Null);
        assert_eq!(parent["status"], json!({"code": "unset", "message": ""}));
        assert_eq!(
            parent["attributes"],
            json!({"http.request.method": "GET", "http.route": "/orders/{id}", "http.response.status_code": 502, "retry": true, "ratio": 0.25, "tags": ["a", "b"]})
        );
        assert_eq!(parent["resource"]["service.name"], "checkout");
        assert_eq!(parent["resource"]["service.instance.id"], instance.as_str());
        assert_eq!(parent["resource"]["deployment.environment"], "test");
        assert_eq!(parent["resource"]["telemetry.sdk.language"], "python");
        assert_eq!((parent["scope_name"].as_str(), parent["scope_version"].as_str()), (Some("shop.checkout"), Some("1.4.2")));

        let child = find(&events, |e| e["span_id"] == ids["child_span_id"] && e.get("kind").is_some());
        assert_eq!(child["name"], "SELECT orders");
        assert_eq!(child["kind"], "client");
        assert_eq!(child["parent_span_id"], ids["parent_span_id"]);
        assert_eq!(child["status"], json!({"code": "error", "message": "connection reset"}));
        assert_eq!(child["events"][0]["name"], "retry");
        assert_eq!(child["events"][0]["attributes"], json!({"attempt": 2}));
        assert_eq!(child["links"][0]["span_id"], ids["parent_span_id"]);
        assert_eq!(child["links"][0]["attributes"], json!({"link.reason": "same request"}));
        assert!(child["end_time_unix_nano"].as_u64() > child["start_time_unix_nano"].as_u64());

        let record = find(&events, |e| e["message"] == "payment declined" && e["resources"]["service.instance.id"] == instance.as_str());
        assert_eq!(record["trace_id"], ids["trace_id"]);
        assert_eq!(record["span_id"], ids["child_span_id"]);
        assert_eq!((record["severity_text"].as_str(), record["severity_number"].as_i64()), (Some("WARN"), Some(13)));
        assert_eq!(record["attributes"]["order.id"], 1042);
        assert_eq!(record["attributes"]["card.brand"], "visa");
        assert_eq!(record["scope"]["name"], "shop.payments");
        assert_eq!(record["source_type"], "opentelemetry");

        let metric = |name: &str| find(&events, |e| e["name"] == name && e["tags"]["resource.service.instance.id"] == instance.as_str());
        let placed = metric("orders.placed");
        assert_eq!(placed["kind"], "absolute");
        assert_eq!(placed["value"], json!({"counter": {"value": 3.0}}));
        assert_eq!(placed["tags"]["region"], "eu");
        assert_eq!(placed["tags"]["scope.name"], "shop.metrics");
        assert_eq!(placed["tags"]["resource.service.name"], "checkout");
        assert_eq!(metric("carts.open")["value"], json!({"gauge": {"value": -2.0}}));
        assert_eq!(metric("queue.depth")["value"], json!({"gauge": {"value": 7.0}}));
        assert_eq!(metric("queue.depth")["tags"]["queue"], "emails");
        let latency = &metric("order.latency")["value"]["histogram"];
        assert_eq!((latency["count"].as_u64(), latency["sum"].as_f64()), (Some(3), Some(444.0)));
        let buckets = latency["buckets"].as_array().unwrap();
        assert_eq!(buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum::<u64>(), 3);
        // The SDK's default bounds: 4 lands in (0, 5], 40 in (25, 50], 400 in (250, 500].
        for (upper, count) in [(5.0, 1), (50.0, 1), (500.0, 1), (10.0, 0)] {
            assert_eq!(find(buckets, |b| b["upper_limit"] == upper)["count"], count, "bucket {upper}");
        }
    }
    assert_eq!(totals(&log, "otel", "component_errors_total"), 0);
    assert_eq!(totals(&log, "otel", "component_discarded_events_total"), 0);
}

/// What the traces fixture must decode to, field by field.
fn expected_fixture_spans() -> Vec<Value> {
    let resource = json!({"service.name": "kong", "host.cpu.count": 8});
    vec![
        json!({
            "trace_id": "5b8efff798038103d269b633813fc60c", "span_id": "eee19b7ec3c1b174", "parent_span_id": null, "trace_state": "vendor=1",
            "name": "kong", "kind": "server", "start_time_unix_nano": 1732613000121000000u64, "end_time_unix_nano": 1732613000154500000u64,
            "status": {"code": "error", "message": "upstream 502"},
            "attributes": {
                "http.method": "GET", "http.status_code": 502, "kong.request.id": "c3127a5c0f0e1a44", "retries": -2, "ratio": 0.5, "cached": false,
                "hops": ["edge", 3], "upstream": {"host": "orders"}, "digest": "\u{fffd}\u{fffd}\u{fffd}\u{fffd}", "empty": null
            },
            "resource": resource, "scope_name": "kong-internal", "scope_version": "0.1.0", "scope_attributes": {"scope.kind": "plugin"},
            "events": [{"time_unix_nano": 1732613000130000000u64, "name": "upstream retry", "attributes": {"try": 2}, "dropped_attributes_count": 3}],
            "links": [{"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331", "trace_state": "", "attributes": {}, "flags": 1, "dropped_attributes_count": 0}],
            "flags": 257, "dropped_attributes_count": 1, "dropped_events_count": 4, "dropped_links_count": 5, "request_id": "c3127a5c0f0e1a44"
        }),
        json!({
            "trace_id": "5b8efff798038103d269b633813fc60c", "span_id": "a1b2c3d4e5f60718", "parent_span_id": "eee19b7ec3c1b174", "trace_state": "",
            "name": "kong.balancer", "kind": "client", "start_time_unix_nano": 1732613000122000000u64, "end_time_unix_nano": 1732613000153000000u64,
            "status": {"code": "unset", "message": ""}, "attributes": {}, "resource": resource, "scope_name": "kong-internal", "scope_version": "0.1.0",
            "scope_attributes": {"scope.kind": "plugin"}, "events": [], "links": [], "flags": 0, "dropped_attributes_count": 0, "dropped_events_count": 0, "dropped_links_count": 0
        }),
    ]
}

#[test]
fn hand_made_otlp_json_and_deepflow_protobuf_decode_right() {
    let (grpc, http) = (free_port(), free_port());
    let mut pipeline = Pipeline::start(
        &(otel_source("otel", grpc, http, "")
            + &file_sink("traces", "otel.traces")
            + &file_sink("metrics", "otel.metrics")
            + &file_sink("logs", "otel.logs")),
    );
    listening(&[http]);

    // JSON in, JSON out: the response is an ExportTraceServiceResponse in JSON.
    let answer = post(http, "/v1/traces", &fixture("traces.json"), &[JSON]);
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    assert!(answer.headers.contains("content-type: application/json"), "{}", answer.headers);
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    assert!(body.get("partialSuccess").is_none_or(Value::is_null), "{body}");
    // Kong configured for DeepFlow: protobuf, gzip, on DeepFlow's path.
    let answer = post(http, "/api/v1/otel/trace", &gzip(&traces_protobuf()), &[PROTOBUF, "Content-Encoding: gzip"]);
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    assert!(answer.headers.contains("content-type: application/x-protobuf"), "{}", answer.headers);
    assert_eq!(post(http, "/v1/metrics", &fixture("metrics.json"), &[JSON]).status, 200);
    assert_eq!(post(http, "/v1/logs", &fixture("logs.json"), &[JSON]).status, 200);
    let (traces, metrics, logs) = (pipeline.path("traces.jsonl"), pipeline.path("metrics.jsonl"), pipeline.path("logs.jsonl"));
    wait_for("the events to be written", Duration::from_secs(30), || {
        read_lines(&traces).len() == 4 && read_lines(&metrics).len() == 6 && read_lines(&logs).len() == 2
    });
    let log = pipeline.stop();

    let spans = read_json(&traces);
    let expected = expected_fixture_spans();
    assert_eq!(spans[..2], expected[..], "from OTLP/JSON");
    assert_eq!(spans[2..], expected[..], "from protobuf on DeepFlow's path");

    let metrics = read_json(&metrics);
    let tags = |extra: Value| {
        let mut tags = json!({"resource.service.name": "orders", "scope.name": "orders.meter", "scope.version": "2.0"});
        tags.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        tags
    };
    let metric = |name: &str| find(&metrics, |m| m["name"] == name).clone();
    assert_eq!(
        metric("http.requests"),
        json!({"name": "http.requests", "tags": tags(json!({"code": "200"})), "timestamp": "2024-11-26T09:24:20Z", "kind": "absolute", "value": {"counter": {"value": 1500.0}}})
    );
    assert_eq!(metric("queue.delta")["kind"], "incremental");
    assert_eq!(metric("queue.delta")["value"], json!({"gauge": {"value": -2.5}}));
    assert_eq!(metric("memory.used")["value"], json!({"gauge": {"value": 1048576.0}}));
    assert_eq!(metric("latency")["kind"], "incremental");
    assert_eq!(
        metric("latency")["value"],
        json!({"histogram": {"buckets": [{"upper_limit": 10.0, "count": 1}, {"upper_limit": 100.0, "count": 2}, {"upper_limit": null, "count": 3}], "count": 6, "sum": 321.5}})
    );
    assert_eq!(
        metric("latency")["exemplars"],
        json!([{"value": 250.0, "timestamp": "2024-11-26T09:24:19.500Z", "labels": {"http.route": "/orders", "span_id": "eee19b7ec3c1b174", "trace_id": "5b8efff798038103d269b633813fc60c"}}])
    );
    // Scale 0, offset 1: (2, 4] and (4, 8], after the zero bucket.
    assert_eq!(
        metric("payload.size")["value"],
        json!({"histogram": {"buckets": [{"upper_limit": 0.0, "count": 1}, {"upper_limit": 4.0, "count": 3}, {"upper_limit": 8.0, "count": 4}, {"upper_limit": null, "count": 0}], "count": 8, "sum": 40.0}})
    );
    assert_eq!(
        metric("rpc.duration")["value"],
        json!({"summary": {"quantiles": [{"quantile": 0.5, "value": 1.0}, {"quantile": 0.99, "value": 4.5}], "count": 10, "sum": 12.5}})
    );

    let logs = read_json(&logs);
    assert_eq!(
        logs[0],
        json!({
            "message": "card declined", "attributes": {"order.id": 1042}, "resources": {"service.name": "payments"}, "scope": {"name": "payments.logger", "version": ""},
            "severity_text": "ERROR", "severity_number": 17, "trace_id": "5b8efff798038103d269b633813fc60c", "span_id": "eee19b7ec3c1b174", "flags": 1,
            "event_name": "payment.failed", "timestamp": "2024-11-26T09:23:20.125Z", "observed_timestamp": "2024-11-26T09:23:20.126Z", "source_type": "opentelemetry"
        })
    );
    assert_eq!(logs[1]["message"], json!({"structured": true}));
    assert_eq!(totals(&log, "otel", "component_received_events_total"), 12);
}

#[test]
fn invalid_items_are_refused_alone_with_partial_success() {
    let (grpc, http) = (free_port(), free_port());
    let mut pipeline = Pipeline::start(&(otel_source("otel", grpc, http, "") + &file_sink("out", "otel.*")));
    listening(&[grpc, http]);
    let traces = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "good"},
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7e", "name": "short id"},
        {"traceId": "00000000000000000000000000000000", "spanId": "eee19b7ec3c1b175", "name": "zero trace"}
    ]}]}]});
    let answer = post(http, "/v1/traces", traces.to_string().as_bytes(), &[JSON]);
    assert_eq!(answer.status, 200);
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    let partial = &body["partialSuccess"];
    assert_eq!(partial["rejectedSpans"].to_string().trim_matches('"'), "2", "{body}");
    assert!(partial["errorMessage"].as_str().unwrap().contains("span `short id`: span_id must be 8 bytes"), "{body}");
    let metrics = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "no.data"}, {"name": "ok", "gauge": {"dataPoints": [{"asInt": "1"}]}}]}]}]});
    let answer = post(http, "/v1/metrics", metrics.to_string().as_bytes(), &[JSON]);
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(body["partialSuccess"]["rejectedDataPoints"].to_string().trim_matches('"'), "1", "{body}");
    let out = pipeline.path("out.jsonl");
    wait_for("the good items", Duration::from_secs(30), || read_lines(&out).len() == 2);
    let log = pipeline.stop();
    assert_eq!(totals(&log, "otel", "component_discarded_events_total"), 3);
    assert!(log.contains("refused invalid items"), "{log}");
}

#[test]
fn bad_input_gets_the_right_status_and_the_server_goes_on() {
    let (grpc, http) = (free_port(), free_port());
    let limits = "max_decompressed_bytes = 1048576\nhttp.max_body_bytes = 65536";
    let mut pipeline = Pipeline::start(&(otel_source("otel", grpc, http, limits) + &file_sink("out", "otel.*")));
    listening(&[grpc, http]);
    let garbage: Vec<u8> = (0..400u32).map(|i| (i * 7919 % 251) as u8 ^ 0xa5).collect();
    let bomb = gzip(&vec![0u8; 50 << 20]);
    assert!(bomb.len() < 65536, "the bomb must pass the size limit as sent");

    // Garbage protobuf: 400 with a google.rpc.Status in protobuf.
    let answer = post(http, "/v1/traces", &garbage, &[PROTOBUF]);
    assert_eq!(answer.status, 400);
    assert!(answer.headers.contains("content-type: application/x-protobuf"), "{}", answer.headers);
    let status = RpcStatus::decode(&answer.body[..]).unwrap();
    assert_eq!(status.code, 3);
    assert!(status.message.starts_with("invalid OTLP protobuf"), "{}", status.message);
    // Broken JSON: 400 with the status in JSON, saying where.
    let answer = post(http, "/v1/logs", b"{\"resourceLogs\": [", &[JSON]);
    assert_eq!(answer.status, 400);
    let status: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(status["code"], 3);
    assert!(status["message"].as_str().unwrap().contains("line 1 column 18"), "{status}");
    // Wrong content type, unknown encoding, too large as sent, gzip bomb, broken gzip, wrong path and method.
    assert_eq!(post(http, "/v1/traces", &fixture("traces.json"), &["Content-Type: text/plain"]).status, 415);
    assert_eq!(post(http, "/v1/traces", &fixture("traces.json"), &[JSON, "Content-Encoding: br"]).status, 415);
    assert_eq!(post(http, "/v1/traces", &vec![b' '; 100_000], &[JSON]).status, 413);
    let answer = post(http, "/v1/traces", &bomb, &[PROTOBUF, "Content-Encoding: gzip"]);
    assert_eq!(answer.status, 413);
    assert!(RpcStatus::decode(&answer.body[..]).unwrap().message.contains("max_decompressed_bytes"));
    assert_eq!(post(http, "/v1/traces", b"\x1f\x8b\x08\x00garbage", &[PROTOBUF, "Content-Encoding: gzip"]).status, 400);
    assert_eq!(post(http, "/v2/traces", &traces_protobuf(), &[PROTOBUF]).status, 404);
    let answer = request(http, "GET", "/v1/traces", b"", &[]);
    assert_eq!(answer.status, 405);
    assert!(answer.headers.contains("allow: post"), "{}", answer.headers);

    // gRPC: garbage and a bomb are refused with codes an SDK does not retry.
    let refused = grpc_call(grpc, "traces", &garbage, &[]);
    assert!(!["OK", "UNAVAILABLE"].contains(&refused["code"].as_str().unwrap()), "{refused}");
    for options in [&["--gzip"][..], &[]] {
        let refused = grpc_call(grpc, "traces", &vec![0u8; 5 << 20], options);
        assert_eq!(refused["code"], "RESOURCE_EXHAUSTED", "{options:?}: {refused}");
        assert_eq!(refused["retry_delay_secs"], Value::Null);
    }

    // Still serving, both protocols.
    assert_eq!(post(http, "/v1/traces", &traces_protobuf(), &[PROTOBUF]).status, 200);
    assert_eq!(grpc_call(grpc, "traces", &traces_protobuf(), &["--gzip"])["code"], "OK");
    let out = pipeline.path("out.jsonl");
    wait_for("the good requests", Duration::from_secs(30), || read_lines(&out).len() == 4);
    let log = pipeline.stop();
    // 9 over HTTP, 3 over gRPC.
    assert_eq!(totals(&log, "otel", "component_errors_total"), 12, "{log}");
    assert!(log.contains("OTLP/gRPC call refused") && log.contains("code=ResourceExhausted"), "{log}");
    assert_eq!(totals(&log, "otel", "component_received_events_total"), 4);
}

#[test]
fn a_full_pipeline_answers_503_and_unavailable_with_a_retry_delay() {
    let (grpc, http) = (free_port(), free_port());
    let mut pipeline = blocked_receiver(grpc, http);
    let body = traces_protobuf();
    let mut accepted = 0;
    let refused = loop {
        let answer = post(http, "/v1/traces", &body, &[PROTOBUF]);
        match answer.status {
            200 => accepted += 2,
            503 => break answer,
            other => panic!("unexpected status {other}"),
        }
        assert!(accepted < 2000, "the source never pushed back");
    };
    assert!(refused.headers.contains("retry-after: 1"), "{}", refused.headers);
    assert!(RpcStatus::decode(&refused.body[..]).unwrap().message.contains("pipeline is full"));
    let answer = grpc_call(grpc, "traces", &body, &[]);
    assert_eq!(answer["code"], "UNAVAILABLE", "{answer}");
    assert_eq!(answer["retry_delay_secs"], 1.0);
    // Drain: every accepted span comes out, none of the refused ones.
    let stdout = pipeline.child.as_mut().and_then(|c| c.stdout.take()).unwrap();
    let reader = std::thread::spawn(move || BufReader::new(stdout).lines().count());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(grpc_call(grpc, "traces", &body, &[])["code"], "OK");
    accepted += 2;
    pipeline.stop();
    assert_eq!(reader.join().unwrap(), accepted);
}

/// A receiver whose sink writes to a pipe nobody reads (yet): the sink
/// blocks, its buffer of 10 fills, and the source pushes back.
fn blocked_receiver(grpc: u16, http: u16) -> Pipeline {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.toml");
    let config = format!("[api]\nenabled = false\n{}[sinks.out]\ntype = \"console\"\ninputs = [\"otel.traces\"]\nencoding.codec = \"json\"\nbuffer.max_events = 10\n", otel_source("otel", grpc, http, ""));
    std::fs::write(&path, config).unwrap();
    let stderr = dir.path().join("stderr.log");
    let child =
        bin().args(["run", "--config"]).arg(&path).stdout(Stdio::piped()).stderr(std::fs::File::create(&stderr).unwrap()).spawn().unwrap();
    listening(&[grpc, http]);
    Pipeline { child: Some(child), dir, stderr }
}

/// Every event as one canonical JSON line, for comparing sets.
fn lines(path: &Path) -> BTreeSet<String> {
    read_json(path).iter().map(Value::to_string).collect()
}

#[test]
fn round_trip_through_the_sink_keeps_every_field() {
    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
    let (a_grpc, a_http, b_grpc, c_http, d_http) = (ports[0], ports[1], ports[2], ports[3], ports[4]);
    let kong = free_port();
    let mut config = otel_source("a", a_grpc, a_http, "");
    config += &file_sink("seen", "a.*");
    // One sink per protocol, each to its own receiver.
    for (id, protocol, port, extra) in
        [("to_b", "grpc", b_grpc, ""), ("to_c", "http/protobuf", c_http, ""), ("to_d", "http/json", d_http, "compression = \"none\"\n")]
    {
        config += &format!("[sinks.{id}]\ntype = \"opentelemetry\"\ninputs = [\"a.*\"]\nprotocol = \"{protocol}\"\nendpoint = \"http://127.0.0.1:{port}\"\nbatch.max_events = 3\n{extra}");
    }
    config += &format!("[sources.b]\ntype = \"opentelemetry\"\ngrpc.address = \"127.0.0.1:{b_grpc}\"\nhttp.enabled = false\n");
    for (id, port) in [("c", c_http), ("d", d_http)] {
        config += &format!("[sources.{id}]\ntype = \"opentelemetry\"\ngrpc.enabled = false\nhttp.address = \"127.0.0.1:{port}\"\n");
    }
    config += &(file_sink("got_b", "b.*") + &file_sink("got_c", "c.*") + &file_sink("got_d", "d.*"));
    // Kong's records go out as spans.
    config += &format!("[sources.kong]\ntype = \"kong_http_log\"\naddress = \"127.0.0.1:{kong}\"\n[sinks.records]\ntype = \"opentelemetry\"\ninputs = [\"kong\"]\nprotocol = \"grpc\"\nendpoint = \"http://127.0.0.1:{b_grpc}\"\n");
    config += &file_sink("kong_seen", "kong");
    let mut pipeline = Pipeline::start(&config);
    listening(&[a_grpc, a_http, b_grpc, c_http, d_http, kong]);

    sdk("grpc", &format!("127.0.0.1:{a_grpc}"), false);
    for (path, name) in [("/v1/traces", "traces.json"), ("/v1/metrics", "metrics.json"), ("/v1/logs", "logs.json")] {
        assert_eq!(post(a_http, path, &fixture(name), &[JSON]).status, 200);
    }
    let kong_log = std::fs::read(here("tests/fixtures/kong/kong3_array5.json")).unwrap();
    assert_eq!(post(kong, "/", &kong_log, &[JSON]).status, 200);
    let seen = pipeline.path("seen.jsonl");
    let expected = 11 + 2 + 6 + 2;
    wait_for("the events to reach every receiver", Duration::from_secs(30), || {
        read_lines(&seen).len() == expected
            && ["got_c", "got_d"].iter().all(|f| read_lines(&pipeline.path(&format!("{f}.jsonl"))).len() == expected)
            && read_lines(&pipeline.path("got_b.jsonl")).len() == expected + 5
    });
    let (seen, got_b, got_c, got_d, records) = (
        lines(&seen),
        lines(&pipeline.path("got_b.jsonl")),
        lines(&pipeline.path("got_c.jsonl")),
        lines(&pipeline.path("got_d.jsonl")),
        read_json(&pipeline.path("kong_seen.jsonl")),
    );
    let log = pipeline.stop();
    assert_eq!(seen.len(), expected, "duplicates among the events");
    assert_eq!(got_c, seen, "over HTTP/protobuf");
    assert_eq!(got_d, seen, "over HTTP/JSON");
    let (from_records, rest): (BTreeSet<String>, BTreeSet<String>) =
        got_b.into_iter().partition(|line| line.contains("\"scope_name\":\"tapline\""));
    assert_eq!(rest, seen, "over gRPC");

    // Each Kong record arrived as the server span of the gateway.
    assert_eq!(from_records.len(), records.len());
    for record in &records {
        let span: Value = from_records
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|s| s["request_id"] == record["request_id"])
            .expect("a span per record");
        assert_eq!(span["kind"], "server");
        assert_eq!(span["resource"]["service.name"], "kong");
        assert_eq!(span["attributes"]["http.request.method"], record["method"]);
        assert_eq!(span["attributes"]["http.response.status_code"], record["status"]);
        assert_eq!(span["attributes"]["tapline.service"], record["service"]);
        assert_eq!(span["attributes"]["tapline.observation_point"], "gateway");
        let duration_us = span["end_time_unix_nano"].as_u64().unwrap() - span["start_time_unix_nano"].as_u64().unwrap();
        assert_eq!(Some(duration_us / 1000), record["duration_us"].as_u64());
        let error = record["status"].as_u64().unwrap() >= 500;
        assert_eq!(span["status"]["code"], if error { "error" } else { "unset" });
    }
    for sink in ["to_b", "to_c", "to_d", "records"] {
        assert_eq!(totals(&log, sink, "component_discarded_events_total"), 0, "{sink}");
    }
}

#[test]
fn the_sink_waits_for_its_receiver_and_sends_its_headers() {
    let (a_http, late, authed_grpc, authed_http) = (free_port(), free_port(), free_port(), free_port());
    let sink = |id: &str, protocol: &str, port: u16, extra: &str| {
        format!("[sinks.{id}]\ntype = \"opentelemetry\"\ninputs = [\"a.traces\"]\nprotocol = \"{protocol}\"\nendpoint = \"http://127.0.0.1:{port}\"\nrequest.retry_initial_backoff_secs = 0.2\nrequest.retry_max_duration_secs = 1\n{extra}")
    };
    let mut config = format!("[sources.a]\ntype = \"opentelemetry\"\ngrpc.enabled = false\nhttp.address = \"127.0.0.1:{a_http}\"\n");
    config += &sink("late", "http/protobuf", late, "");
    config += &sink("authed", "grpc", authed_grpc, "headers.authorization = \"Bearer t0ken\"\n");
    config += &sink("wrong", "http/protobuf", authed_http, "headers.authorization = \"Bearer nope\"\n");
    let mut sender = Pipeline::start(&config);
    listening(&[a_http]);
    assert_eq!(post(a_http, "/v1/traces", &fixture("traces.json"), &[JSON]).status, 200);
    // Nothing listens yet: the sinks retry.
    std::thread::sleep(Duration::from_secs(2));
    let mut config = otel_source("open", free_port(), late, "grpc.enabled = false");
    config += &otel_source("guarded", authed_grpc, authed_http, "auth.token = \"t0ken\"");
    config += &(file_sink("open_out", "open.*") + &file_sink("guarded_out", "guarded.*"));
    let mut receiver = Pipeline::start(&config);
    let (open_out, guarded_out) = (receiver.path("open_out.jsonl"), receiver.path("guarded_out.jsonl"));
    wait_for("the retried requests", Duration::from_secs(30), || read_lines(&open_out).len() == 2 && read_lines(&guarded_out).len() == 2);
    std::thread::sleep(Duration::from_millis(500));
    let sent = sender.stop();
    let received = receiver.stop();
    assert!(totals(&sent, "late", "component_errors_total") >= 1, "{sent}");
    assert_eq!(totals(&sent, "late", "component_sent_events_total"), 2);
    assert_eq!(totals(&sent, "authed", "component_sent_events_total"), 2);
    // A wrong token is final (401 is not retryable): counted, not lost silently.
    assert_eq!(totals(&sent, "wrong", "component_discarded_events_total"), 2);
    assert!(sent.contains("401"), "{sent}");
    assert_eq!(read_lines(&guarded_out).len(), 2);
    assert!(totals(&received, "guarded", "component_errors_total") >= 1);
}

#[test]
fn with_acknowledgements_the_answer_waits_for_delivery() {
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let mut config = otel_source("good", ports[0], ports[1], "") + &otel_source("bad", ports[2], ports[3], "");
    config += "[sinks.delivered]\ntype = \"file\"\ninputs = [\"good.*\"]\npath = \"DIR/out.jsonl\"\nencoding.codec = \"json\"\nacknowledgements.enabled = true\n";
    // A file sink whose path is a directory cannot write: delivery fails.
    config += "[sinks.failing]\ntype = \"file\"\ninputs = [\"bad.*\"]\npath = \"DIR\"\nencoding.codec = \"json\"\nacknowledgements.enabled = true\n";
    let mut pipeline = Pipeline::start(&config);
    listening(&ports);
    assert_eq!(post(ports[1], "/v1/traces", &traces_protobuf(), &[PROTOBUF]).status, 200);
    // Written before the answer came.
    assert_eq!(read_lines(&pipeline.path("out.jsonl")).len(), 2);
    assert_eq!(grpc_call(ports[0], "traces", &traces_protobuf(), &[])["code"], "OK");
    assert_eq!(read_lines(&pipeline.path("out.jsonl")).len(), 4);

    let answer = post(ports[3], "/v1/traces", &traces_protobuf(), &[PROTOBUF]);
    assert_eq!(answer.status, 503);
    assert!(RpcStatus::decode(&answer.body[..]).unwrap().message.contains("not delivered"));
    let answer = grpc_call(ports[2], "traces", &traces_protobuf(), &[]);
    assert_eq!((answer["code"].as_str(), answer["retry_delay_secs"].as_f64()), (Some("UNAVAILABLE"), Some(1.0)), "{answer}");
    let log = pipeline.stop();
    assert_eq!(totals(&log, "good", "component_acknowledged_events_total"), 4);
}

#[test]
fn the_sink_speaks_tls_to_an_https_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let (a_http, grpc, http) = (free_port(), free_port(), free_port());
    let tls = format!("tls.enabled = true\ntls.crt_file = \"{}\"\ntls.key_file = \"{}\"\n", cert.display(), key.display());
    let mut config = format!("[sources.a]\ntype = \"opentelemetry\"\ngrpc.enabled = false\nhttp.address = \"127.0.0.1:{a_http}\"\n");
    config +=
        &format!("[sources.secure]\ntype = \"opentelemetry\"\ngrpc.address = \"127.0.0.1:{grpc}\"\nhttp.address = \"127.0.0.1:{http}\"\n");
    config += &tls.lines().map(|l| format!("grpc.{l}\nhttp.{l}\n")).collect::<String>();
    for (id, protocol, port) in [("over_grpc", "grpc", grpc), ("over_http", "http/protobuf", http)] {
        config += &format!("[sinks.{id}]\ntype = \"opentelemetry\"\ninputs = [\"a.traces\"]\nprotocol = \"{protocol}\"\nendpoint = \"https://localhost:{port}\"\ntls.ca_file = \"{}\"\n", cert.display());
    }
    config += &file_sink("out", "secure.*");
    let mut pipeline = Pipeline::start(&config);
    listening(&[a_http, grpc, http]);
    assert_eq!(post(a_http, "/v1/traces", &fixture("traces.json"), &[JSON]).status, 200);
    let out = pipeline.path("out.jsonl");
    wait_for("the spans over TLS", Duration::from_secs(30), || read_lines(&out).len() == 4);
    let log = pipeline.stop();
    for sink in ["over_grpc", "over_http"] {
        assert_eq!(totals(&log, sink, "component_sent_events_total"), 2, "{log}");
        assert_eq!(totals(&log, sink, "component_errors_total"), 0, "{log}");
    }
}

#[test]
fn the_sink_waits_as_long_as_the_receiver_asks() {
    let (r_grpc, r_http) = (free_port(), free_port());
    // A full receiver: it answers 503 + Retry-After: 1 and UNAVAILABLE + RetryInfo (1 s).
    let receiver = blocked_receiver(r_grpc, r_http);
    while post(r_http, "/v1/traces", &traces_protobuf(), &[PROTOBUF]).status == 200 {}

    // Senders whose own backoff would retry every 50 ms.
    let (api, a_http) = (free_port(), free_port());
    let mut config = format!("[api]\naddress = \"127.0.0.1:{api}\"\n[sources.a]\ntype = \"opentelemetry\"\ngrpc.enabled = false\nhttp.address = \"127.0.0.1:{a_http}\"\n");
    for (id, protocol, port) in [("to_grpc", "grpc", r_grpc), ("to_http", "http/protobuf", r_http)] {
        config += &format!("[sinks.{id}]\ntype = \"opentelemetry\"\ninputs = [\"a.traces\"]\nprotocol = \"{protocol}\"\nendpoint = \"http://127.0.0.1:{port}\"\nrequest.retry_initial_backoff_secs = 0.01\nrequest.retry_max_duration_secs = 0.05\n");
    }
    let dir = tempfile::tempdir().unwrap();
    let (sender, _) = spawn_logged(&config, dir.path());
    let sender = Pipeline { child: Some(sender), dir, stderr: PathBuf::new() };
    listening(&[a_http, api]);
    assert_eq!(post(a_http, "/v1/traces", &traces_protobuf(), &[PROTOBUF]).status, 200);
    wait_for("the first refusals", Duration::from_secs(10), || {
        ["to_grpc", "to_http"].iter().all(|s| metric(api, "component_errors_total", s).unwrap_or(0) >= 1)
    });
    let first: Vec<u64> = ["to_grpc", "to_http"].iter().map(|s| metric(api, "component_errors_total", s).unwrap()).collect();
    std::thread::sleep(Duration::from_secs(3));
    for (sink, first) in ["to_grpc", "to_http"].iter().zip(first) {
        let tries = metric(api, "component_errors_total", sink).unwrap() - first;
        // About one try a second (at least a second apart); the sink's own backoff alone would have made dozens.
        assert!((1..=4).contains(&tries), "{sink}: {tries} tries in 3 s");
    }
    drop(sender);
    drop(receiver);
}

/// Spans from the real SDK through `red`: one series per service, span name,
/// kind and status, the client span's error counted, the trace id as exemplar.
#[test]
fn red_counts_the_sdks_spans() {
    let (grpc, http) = (free_port(), free_port());
    let red = "[transforms.red]\ntype = \"red\"\ninputs = [\"otel.traces\"]\nspan_dimensions = [\"service.name\", \"span.name\", \"span.kind\", \"status.code\", \"attributes.http.route\"]\n";
    let mut pipeline = Pipeline::start(&(otel_source("otel", grpc, http, "") + red + &file_sink("out", "red")));
    listening(&[grpc, http]);
    let ids = sdk("grpc", &format!("127.0.0.1:{grpc}"), false);
    // The SDK has its answers: the spans are in the pipeline, and the windows are flushed when tapline stops.
    pipeline.stop();
    let metrics = read_json(&pipeline.path("out.jsonl"));
    let value = |name: &str, span: &str| -> Vec<&Value> {
        metrics.iter().filter(|m| m["name"] == name && m["tags"]["span.name"] == span).collect()
    };
    let server = value("requests_total", "GET /orders/{id}");
    assert_eq!(server.len(), 1, "{metrics:#?}");
    assert_eq!(server[0]["value"]["counter"]["value"], 1.0);
    assert_eq!(
        server[0]["tags"],
        json!({"service.name": "checkout", "span.name": "GET /orders/{id}", "span.kind": "server", "status.code": "unset", "http.route": "/orders/{id}"})
    );
    assert!(value("request_errors_total", "GET /orders/{id}").is_empty(), "the server span did not fail");
    let errors = value("request_errors_total", "SELECT orders");
    assert_eq!(
        (errors.len(), &errors[0]["value"]["counter"]["value"], &errors[0]["tags"]["status.code"]),
        (1, &json!(1.0), &json!("error"))
    );
    let histogram = value("request_duration_seconds", "SELECT orders");
    assert_eq!(histogram[0]["value"]["histogram"]["count"], 1);
    assert_eq!(histogram[0]["exemplars"][0]["labels"]["trace_id"], ids["trace_id"]);
}
