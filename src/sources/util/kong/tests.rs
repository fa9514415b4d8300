//! Normalization of entries shaped like real Kong 2.x and 3.x logs, field by field.

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/kong/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn one(name: &str) -> RequestRecord {
    let mut records = decode(&fixture(name), false).unwrap();
    assert_eq!(records.len(), 1);
    records.remove(0)
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn kong3_entry_every_field() {
    let expected = RequestRecord {
        time: "2024-11-26T09:23:20.121Z".parse().unwrap(),
        observation_point: ObservationPoint::Gateway,
        signal_source: SignalSource::Kong,
        protocol: "https".into(),
        service: s("orders"),
        route: s("orders-route"),
        consumer: s("mobile-app"),
        workspace: s("default"),
        method: s("POST"),
        host: s("api.example.com"),
        path: s("/orders/checkout"),
        query: s("dry_run=1"),
        endpoint: s("/orders"),
        status: Some(200),
        upstream_status: s("500, 200 : 200"),
        duration_us: Some(125_000),
        gateway_us: Some(3_000),
        upstream_us: Some(120_000),
        receive_us: Some(2_000),
        request_size: Some(1024),
        response_size: Some(5120),
        trace_id: s("4bf92f3577b34da6a3ce929d0e0e4736"),
        span_id: None,
        parent_span_id: s("00f067aa0ba902b7"),
        request_id: s("6c4b1f7e2a9d4c3b8e5f0a1b2c3d4e5f"),
        client_ip: s("203.0.113.7"),
        client_port: None,
        server_ip: s("10.0.1.18"),
        server_port: Some(8081),
        tries: 2,
        response_source: s("upstream"),
        ..RequestRecord::default()
    };
    assert_eq!(one("kong3_single.json"), expected);
}

#[test]
fn kong2_variants_strings_arrays_and_flags() {
    let expected = RequestRecord {
        time: "2020-09-13T12:26:40Z".parse().unwrap(),
        protocol: "http".into(),
        // No names: the service's host and the route's id stand in.
        service: s("users.internal"),
        route: s("r-users"),
        consumer: None,
        workspace: None,
        method: s("GET"),
        // Header arrays: the first value.
        host: s("api.example.com"),
        path: s("/users/42"),
        query: s("verbose&fields=name"),
        endpoint: s("/users"),
        // Sizes and status sent as strings.
        status: Some(404),
        upstream_status: None,
        duration_us: Some(10_000),
        gateway_us: Some(1_000),
        upstream_us: Some(8_500),
        receive_us: None,
        request_size: Some(312),
        response_size: Some(97),
        trace_id: s("5e7a9c1d3f5b7d9e1a3c5e7f9b1d3f5a"),
        parent_span_id: s("1a2b3c4d5e6f7a8b"),
        request_id: s("req-aaa-111"),
        client_ip: s("198.51.100.23"),
        server_ip: s("10.0.2.5"),
        server_port: Some(3000),
        tries: 1,
        ..RequestRecord::default()
    };
    assert_eq!(one("kong2_variants.json"), expected);
}

#[test]
fn array_of_five() {
    let records = decode(&fixture("kong3_array5.json"), false).unwrap();
    let ids: Vec<_> = records.iter().map(|r| r.request_id.clone().unwrap()).collect();
    assert_eq!(ids, ["a1", "a2", "a3", "a4", "a5"]);
    let statuses: Vec<_> = records.iter().map(|r| r.status.unwrap()).collect();
    assert_eq!(statuses, [200, 503, 401, 204, 200]);
    let methods: Vec<_> = records.iter().map(|r| r.method.clone().unwrap()).collect();
    assert_eq!(methods, ["GET", "GET", "DELETE", "PUT", "GET"]);
    // Kong answered the 401 itself: no upstream time, no try, source `kong`.
    let rejected = &records[2];
    assert_eq!((rejected.upstream_us, rejected.tries, rejected.server_ip.as_deref()), (None, 0, None));
    assert_eq!(rejected.response_source.as_deref(), Some("kong"));
    assert_eq!(rejected.duration_us, Some(0));
    assert_eq!(records[1].upstream_status.as_deref(), Some("503"));
    assert_eq!(records[4].time, "2024-11-26T09:23:21.004Z".parse::<DateTime<Utc>>().unwrap());
    assert!(records.iter().all(|r| r.host.as_deref() == Some("shop.local") && r.protocol == "http"));
}

#[test]
fn stream_entry() {
    let expected = RequestRecord {
        time: "2024-11-26T09:23:22Z".parse().unwrap(),
        protocol: "tcp".into(),
        service: s("postgres"),
        route: s("postgres"),
        workspace: s("default"),
        status: Some(200),
        duration_us: Some(2_500_000),
        gateway_us: Some(0),
        request_size: Some(1500),
        response_size: Some(64000),
        client_ip: s("10.1.1.1"),
        server_ip: s("10.0.9.9"),
        server_port: Some(5432),
        tries: 1,
        ..RequestRecord::default()
    };
    assert_eq!(one("kong_stream.json"), expected);
}

#[test]
fn no_service_no_route() {
    let record = one("kong_no_service.json");
    assert_eq!((record.service.as_deref(), record.route.as_deref()), (None, None));
    assert_eq!(record.status, Some(404));
    assert_eq!(record.upstream_us, None);
    assert_eq!(record.tries, 0);
    assert_eq!(record.endpoint.as_deref(), Some("/nowhere"));
    // The id Kong generated (response header) comes before the correlation id.
    assert_eq!(record.request_id.as_deref(), Some("kong-generated-id"));
    // A datadog id is decimal: as 32 hex digits.
    assert_eq!(record.trace_id.as_deref(), Some("00000000000000000000011f71fb04cb"));
}

#[test]
fn raw_entry_kept_on_request() {
    let records = decode(&fixture("kong3_single.json"), true).unwrap();
    let raw = records[0].raw.as_ref().unwrap();
    assert_eq!(raw.get(vrl::path!("request", "headers", "authorization")), Some(&Value::from("REDACTED")));
    assert_eq!(raw.get(vrl::path!("tries")).and_then(|t| t.as_array()).map(|t| t.len()), Some(2));
    assert!(decode(&fixture("kong3_single.json"), false).unwrap()[0].raw.is_none());
}

#[test]
fn bad_bodies_are_refused_whole() {
    let e = decode(b"{\"request\": {\"method\": \"GET\"", false).unwrap_err();
    assert!(e.starts_with("invalid JSON at line 1 column 28: EOF while parsing"), "{e}");
    let e = decode(b"[{\"request\": {}}, 5]", false).unwrap_err();
    assert_eq!(e, "entry 1 of the array: a Kong log entry must be a JSON object");
    let e = decode(b"[{\"request\": {}}, {\"request\": 7}]", false).unwrap_err();
    assert!(e.starts_with("entry 1 of the array: invalid JSON at line 1 column"), "{e}");
    let e = decode(b"\"just a string\"", false).unwrap_err();
    assert_eq!(e, "a Kong log entry must be a JSON object");
}
