//! Vector's stateful transforms (dedupe, throttle, sample, reduce,
//! log_to_metric, aggregate) in a real `tapline` process, in a Kong
//! forwarding pipeline written as for Vector, fed Kong http-log batches over
//! HTTP; what comes out is read back from file sinks after a clean stop.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

const CONFIG: &str = r#"
[sources.kong_logs]
type = "http_server"
address = "127.0.0.1:PORT"
decoding.codec = "json"

[transforms.kong_remap]
type = "remap"
inputs = ["kong_logs"]
source = '''
. = {
  "timestamp": from_unix_timestamp!(.started_at, unit: "milliseconds"),
  "service": .service.name,
  "request_id": .request.id,
  "status": .response.status,
  "latency_ms": .latencies.request,
  "requests": 1
}
'''

[transforms.kong_dedupe]
type = "dedupe"
inputs = ["kong_remap"]
fields.match = ["request_id"]

[transforms.kong_throttle]
type = "throttle"
inputs = ["kong_dedupe"]
threshold = 3
window_secs = 3600
key_field = "{{ service }}"
exclude = '(to_int(.status) ?? 0) >= 500'

[transforms.kong_services]
type = "reduce"
inputs = ["kong_throttle"]
group_by = ["service"]
expire_after_ms = 3600000
merge_strategies.status = "flat_unique"
merge_strategies.request_id = "array"

[transforms.kong_metrics]
type = "log_to_metric"
inputs = ["kong_throttle"]

[[transforms.kong_metrics.metrics]]
type = "counter"
field = "status"
name = "requests_total"
namespace = "kong"
tags.service = "{{ service }}"
tags.status = "{{ status }}"

[[transforms.kong_metrics.metrics]]
type = "histogram"
field = "latency_ms"
name = "request_latency_ms"
namespace = "kong"
tags.service = "{{ service }}"

[[transforms.kong_metrics.metrics]]
type = "set"
field = "status"
name = "statuses"
namespace = "kong"
tags.service = "{{ service }}"

[transforms.kong_metrics_hourly]
type = "aggregate"
inputs = ["kong_metrics"]
interval_ms = 3600000

[transforms.kong_sample]
type = "sample"
inputs = ["kong_throttle"]
rate = 2
key_field = "request_id"

[sinks.services]
type = "file"
inputs = ["kong_services"]
path = "DIR/services.json"
encoding.codec = "json"

[sinks.metrics]
type = "file"
inputs = ["kong_metrics_hourly"]
path = "DIR/metrics.json"
encoding.codec = "json"

[sinks.sampled]
type = "file"
inputs = ["kong_sample"]
path = "DIR/sampled.json"
encoding.codec = "json"
"#;

/// 2024-11-26T09:23:20Z, in Kong's `started_at` milliseconds.
const T0: i64 = 1_732_613_000_000;

/// A Kong http-log entry; `n` seconds after T0.
fn entry(id: &str, service: &str, status: u16, latency: u64, n: i64) -> Value {
    json!({
        "request": {"id": id, "method": "GET", "uri": format!("/{service}/{id}"), "size": 120, "headers": {"host": "api.example.com"}},
        "response": {"status": status, "size": 900},
        "latencies": {"kong": 1, "proxy": latency - 1, "request": latency},
        "service": {"name": service},
        "route": {"name": format!("{service}-route")},
        "client_ip": "10.0.0.7",
        "started_at": T0 + n * 1000,
    })
}

fn time(n: i64) -> String {
    chrono::DateTime::from_timestamp_millis(T0 + n * 1000).unwrap().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[test]
fn vector_transforms_in_a_kong_pipeline() {
    let port = free_port();
    let mut pipeline = Pipeline::start(&CONFIG.replace("PORT", &port.to_string()));
    wait_for("the HTTP source to listen", Duration::from_secs(60), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    let o = |n: i64, status, latency| entry(&format!("o{n}"), "orders", status, latency, n);
    let u = |n: i64, status, latency| entry(&format!("u{n}"), "users", status, latency, n);
    // Kong's batches, in order: the second repeats part of the first (a retry).
    let batches = [
        json!([o(1, 200, 10), o(2, 200, 20), o(3, 500, 30), u(1, 200, 5)]),
        json!([o(1, 200, 10), o(2, 200, 20), u(1, 200, 5)]),
        json!([o(4, 200, 40), o(5, 404, 50), u(2, 503, 7), o(6, 200, 60)]),
    ];
    for batch in &batches {
        let answer = post(port, "/", batch.to_string().as_bytes(), &["Content-Type: application/json"]);
        assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    }
    let log = pipeline.stop();

    // dedupe: 11 in, the 3 repeats out. throttle: 3 cells per service; o3 (a
    // 500) is excluded and takes none, so o5 and o6 find the orders bucket empty.
    let counter = |component: &str, name: &str| totals(&log, component, name);
    assert_eq!(counter("kong_dedupe", "component_received_events_total"), 11);
    assert_eq!(counter("kong_dedupe", "component_sent_events_total"), 8);
    assert_eq!(counter("kong_dedupe", "dedupe_duplicates_total"), 3);
    assert_eq!(counter("kong_dedupe", "component_discarded_events_total"), 3);
    assert_eq!(counter("kong_throttle", "component_sent_events_total"), 6);
    assert_eq!(counter("kong_throttle", "throttle_discarded_events_total"), 2);
    assert_eq!(counter("kong_throttle", "component_discarded_events_total"), 2);
    assert_eq!(counter("kong_throttle", "component_errors_total"), 0);

    // reduce: one event per service, flushed at shutdown, in the order the groups began;
    // numbers summed, the first timestamp kept and the last added as `timestamp_end`.
    let services = read_json(&pipeline.path("services.json"));
    assert_eq!(
        services,
        [
            json!({"service": "orders", "requests": 4, "latency_ms": 100, "status": [200, 500],
                   "request_id": ["o1", "o2", "o3", "o4"], "timestamp": time(1), "timestamp_end": time(4)}),
            json!({"service": "users", "requests": 2, "latency_ms": 12, "status": [200, 503],
                   "request_id": ["u1", "u2"], "timestamp": time(1), "timestamp_end": time(2)}),
        ]
    );
    assert_eq!(counter("kong_services", "component_received_events_total"), 6);
    assert_eq!(counter("kong_services", "component_sent_events_total"), 2);

    // log_to_metric: three metrics per entry; aggregate: one per series, at shutdown.
    assert_eq!(counter("kong_metrics", "component_sent_events_total"), 18);
    assert_eq!(counter("kong_metrics", "component_errors_total"), 0);
    assert_eq!(counter("kong_metrics_hourly", "aggregate_events_recorded_total"), 18);
    assert_eq!(counter("kong_metrics_hourly", "aggregate_flushes_total"), 1);
    assert_eq!(counter("kong_metrics_hourly", "component_sent_events_total"), 8);
    let counted = |service: &str, status: &str, value: f64, last: i64| {
        json!({"name": "requests_total", "namespace": "kong", "tags": {"service": service, "status": status},
               "timestamp": time(last), "kind": "incremental", "value": {"counter": {"value": value}}})
    };
    let latencies = |service: &str, samples: &[f64], last: i64| {
        let samples: Vec<Value> = samples.iter().map(|s| json!([s, 1])).collect();
        json!({"name": "request_latency_ms", "namespace": "kong", "tags": {"service": service},
               "timestamp": time(last), "kind": "incremental", "value": {"distribution": {"samples": samples, "statistic": "histogram"}}})
    };
    // The statuses seen per service: the sets of each entry, united.
    let statuses = |service: &str, values: &[&str], last: i64| {
        json!({"name": "statuses", "namespace": "kong", "tags": {"service": service},
               "timestamp": time(last), "kind": "incremental", "value": {"set": {"values": values}}})
    };
    assert_eq!(
        read_json(&pipeline.path("metrics.json")),
        [
            counted("orders", "200", 3.0, 4),
            latencies("orders", &[10.0, 20.0, 30.0, 40.0], 4),
            statuses("orders", &["200", "500"], 4),
            counted("orders", "500", 1.0, 3),
            counted("users", "200", 1.0, 1),
            latencies("users", &[5.0, 7.0], 2),
            statuses("users", &["200", "503"], 2),
            counted("users", "503", 1.0, 2),
        ]
    );

    // sample: 1 in 2 by the seahash of the request id, as Vector decides.
    let passed = ["o1", "o2", "o3", "u1", "o4", "u2"];
    let kept: Vec<&str> = passed.iter().copied().filter(|id| seahash::hash(id.as_bytes()).is_multiple_of(2)).collect();
    let sampled = read_json(&pipeline.path("sampled.json"));
    let sampled_ids: Vec<&str> = sampled.iter().map(|e| e["request_id"].as_str().unwrap()).collect();
    assert_eq!(sampled_ids, kept);
    assert!(sampled.iter().all(|e| e["sample_rate"] == "2"));
    assert_eq!(counter("kong_sample", "sample_discarded_events_total"), (passed.len() - kept.len()) as u64);
}
