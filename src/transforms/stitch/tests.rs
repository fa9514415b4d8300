//! Every relation and tree rule, and the traps: a reused TCP seq, a constant
//! request id, two requests through one thread pool.

use chrono::{DateTime, Utc};

use super::*;
use crate::event::{Attributes, EventData, ObservationPoint, RequestRecord, SignalSource, Span, SpanKind};

/// 2026-01-01T00:00:00Z, in ms: every test's time 0.
const T0: i64 = 1_767_225_600_000;

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(T0 + ms).unwrap()
}

/// An eBPF record: (start ms, duration ms) on `host`/`pid`.
fn ebpf(point: ObservationPoint, pid: u32, start: i64, duration: i64) -> RequestRecord {
    RequestRecord {
        time: at(start),
        observation_point: point,
        signal_source: SignalSource::Ebpf,
        protocol: "http".into(),
        method: Some("GET".into()),
        path: Some("/orders".into()),
        status: Some(200),
        duration_us: Some(duration as u64 * 1000),
        host_name: Some("node-1".into()),
        pid: Some(pid),
        thread_id: Some(pid),
        ..RequestRecord::default()
    }
}

fn client(pid: u32, start: i64, duration: i64) -> RequestRecord {
    ebpf(ObservationPoint::ClientProcess, pid, start, duration)
}

fn server(pid: u32, start: i64, duration: i64) -> RequestRecord {
    ebpf(ObservationPoint::ServerProcess, pid, start, duration)
}

fn seq(mut record: RequestRecord, request: u32, response: u32) -> RequestRecord {
    (record.tcp_seq_request, record.tcp_seq_response) = (Some(request), Some(response));
    record
}

fn syscalls(mut record: RequestRecord, request: u64, response: u64) -> RequestRecord {
    (record.syscall_trace_id_request, record.syscall_trace_id_response) = (Some(request), Some(response));
    record
}

fn ids(mut record: RequestRecord, request: Option<&str>, response: Option<&str>) -> RequestRecord {
    record.request_id = request.map(String::from);
    record.response_request_id = response.map(String::from);
    record
}

fn named(mut record: RequestRecord, path: &str) -> RequestRecord {
    record.path = Some(path.into());
    record
}

/// An APM span: trace and span ids as small numbers.
fn apm(trace: u8, span: u8, parent: Option<u8>, kind: SpanKind, start: i64, duration: i64, name: &str) -> Span {
    let ns = |ms: i64| ((T0 + ms) * 1_000_000) as u64;
    Span {
        trace_id: [trace; 16],
        span_id: [span; 8],
        parent_span_id: parent.map(|p| [p; 8]),
        name: name.into(),
        kind,
        start_time_unix_nano: ns(start),
        end_time_unix_nano: ns(start + duration),
        attributes: Attributes::new(),
        ..Span::default()
    }
}

/// A Kong entry: 100 ms, 5 ms in Kong first, 90 ms upstream.
fn gateway_entry(request_id: &str) -> RequestRecord {
    RequestRecord {
        time: at(0),
        observation_point: ObservationPoint::Gateway,
        signal_source: SignalSource::Kong,
        protocol: "http".into(),
        method: Some("GET".into()),
        path: Some("/orders".into()),
        status: Some(200),
        duration_us: Some(100_000),
        gateway_us: Some(5_000),
        upstream_us: Some(90_000),
        request_id: Some(request_id.into()),
        service: Some("orders".into()),
        tries: 1,
        ..RequestRecord::default()
    }
}

fn traceparent(mut record: RequestRecord, trace: u8, span: u8) -> RequestRecord {
    record.trace_id = Some(const_hex::encode([trace; 16]));
    record.parent_span_id = Some(const_hex::encode([span; 8]));
    record
}

fn events(records: Vec<RequestRecord>, spans: Vec<Span>) -> EventBatch {
    records.into_iter().map(Event::record).chain(spans.into_iter().map(Event::span)).collect()
}

/// Run the events through `stitch` and flush: the spans, and the counters.
fn run_with(config: StitchConfig, batch: EventBatch) -> (Vec<Span>, Vec<(&'static str, u64)>) {
    let mut stitch = config.build().unwrap();
    let mut out = TransformOutput::default();
    stitch.transform(batch, &mut out);
    stitch.tick(true, &mut out);
    let spans = out.primary.into_iter().map(|e| match e.data {
        EventData::Span(span) => *span,
        other => panic!("not a span: {other:?}"),
    });
    (spans.collect(), out.counts)
}

fn run(batch: EventBatch) -> Vec<Span> {
    run_with(StitchConfig::default(), batch).0
}

fn counted(counts: &[(&'static str, u64)], name: &str) -> u64 {
    counts.iter().filter(|(n, _)| *n == name).map(|(_, v)| v).sum()
}

fn link(span: &Span) -> Option<String> {
    span.attributes.get("tapline.link").map(|v| v.to_string_lossy().into_owned())
}

/// The span of each record, in the order the records were given (matched by start and kind).
fn find<'a>(spans: &'a [Span], record: &RequestRecord) -> &'a Span {
    let start = record.time.timestamp_nanos_opt().unwrap() as u64;
    let kind = if record.observation_point == ObservationPoint::ClientProcess { SpanKind::Client } else { SpanKind::Server };
    let pid = record.pid.map(|p| Value::Integer(p.into()));
    spans
        .iter()
        .find(|s| s.start_time_unix_nano == start && s.kind == kind && s.resource.get("process.pid") == pid.as_ref())
        .unwrap_or_else(|| panic!("no span for {record:?} in {spans:#?}"))
}

fn is_child(child: &Span, parent: &Span, why: &str) -> bool {
    child.trace_id == parent.trace_id && child.parent_span_id == Some(parent.span_id) && link(child).as_deref() == Some(why)
}

fn traces(spans: &[Span]) -> usize {
    let mut ids: Vec<[u8; 16]> = spans.iter().map(|s| s.trace_id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

#[test]
fn tcp_seq_joins_the_two_ends_of_a_hop() {
    let (c, s) = (seq(client(1, 0, 100), 7, 9), seq(server(2, 3, 95), 7, 9));
    let spans = run(events(vec![c.clone(), s.clone()], vec![]));
    assert_eq!(traces(&spans), 1);
    assert!(is_child(find(&spans, &s), find(&spans, &c), "tcp_seq"), "{spans:#?}");
    // A busy server reads the request 80 ms late: the client's time still holds its record.
    let (c, s) = (seq(client(1, 0, 300), 8, 10), seq(server(2, 80, 200), 8, 10));
    let spans = run(events(vec![c.clone(), s.clone()], vec![]));
    assert!(is_child(find(&spans, &s), find(&spans, &c), "tcp_seq"), "{spans:#?}");
}

#[test]
fn a_tcp_seq_reused_later_or_with_other_fields_joins_nothing() {
    let first = seq(client(1, 0, 100), 7, 9);
    let later = seq(server(2, 5_000, 100), 7, 9);
    assert_eq!(traces(&run(events(vec![first.clone(), later], vec![]))), 2);
    // At the same time, but another request (the path differs): no join either.
    let other = named(seq(server(2, 2, 98), 7, 9), "/users");
    assert_eq!(traces(&run(events(vec![first, other], vec![]))), 2);
}

#[test]
fn syscall_ids_join_a_server_and_the_calls_it_made() {
    let s = syscalls(server(10, 0, 100), 100, 102);
    let (c1, c2) = (syscalls(client(10, 10, 20), 100, 101), syscalls(client(10, 40, 30), 101, 102));
    let spans = run(events(vec![s.clone(), c1.clone(), c2.clone()], vec![]));
    assert_eq!(traces(&spans), 1, "{spans:#?}");
    assert!(is_child(find(&spans, &c1), find(&spans, &s), "syscall"));
    assert!(is_child(find(&spans, &c2), find(&spans, &s), "syscall"));
}

#[test]
fn a_leaf_server_and_two_servers_join_nothing_by_syscall() {
    let leaf = syscalls(server(10, 0, 100), 200, 200);
    let call = syscalls(client(10, 10, 20), 200, 201);
    assert_eq!(traces(&run(events(vec![leaf, call], vec![]))), 2);
    let (a, b) = (syscalls(server(10, 0, 100), 300, 301), syscalls(server(10, 10, 20), 300, 302));
    assert_eq!(traces(&run(events(vec![a, b], vec![]))), 2);
}

#[test]
fn an_event_loop_sharing_syscall_ids_across_requests_is_told_apart_by_request_id() {
    // nginx: one thread reads two requests, then writes both upstream: one syscall id for all four.
    let (a, b) =
        (ids(syscalls(server(15, 0, 100), 100, 103), None, Some("a")), ids(syscalls(server(15, 1, 100), 100, 104), None, Some("b")));
    let (call_a, call_b) =
        (ids(syscalls(client(15, 5, 50), 100, 103), Some("a"), None), ids(syscalls(client(15, 6, 50), 100, 104), Some("b"), None));
    let spans = run(events(vec![a.clone(), b.clone(), call_a.clone(), call_b.clone()], vec![]));
    assert_eq!(traces(&spans), 2, "{spans:#?}");
    assert_eq!(find(&spans, &call_a).trace_id, find(&spans, &a).trace_id);
    assert_eq!(find(&spans, &call_b).trace_id, find(&spans, &b).trace_id);
}

#[test]
fn two_calls_in_a_row_on_one_thread_join_only_through_their_server() {
    // A pool thread: the first call's response read and the second call's write share an id.
    let (first, second) = (syscalls(client(16, 0, 10), 300, 301), syscalls(client(16, 20, 10), 301, 302));
    assert_eq!(traces(&run(events(vec![first.clone(), second.clone()], vec![]))), 2);
    let handler = syscalls(server(16, -5, 40), 300, 302);
    assert_eq!(traces(&run(events(vec![first, second, handler], vec![]))), 1);
}

#[test]
fn a_proxy_injecting_a_request_id_links_its_hops() {
    // nginx: answers the client with X-Request-ID it made, sends it upstream; the backend gets it.
    let front = ids(seq(server(20, 0, 100), 1, 2), None, Some("abc"));
    let call = ids(seq(client(20, 10, 80), 5, 6), Some("abc"), None);
    let backend = ids(seq(server(30, 12, 76), 5, 6), Some("abc"), None);
    let spans = run(events(vec![backend.clone(), front.clone(), call.clone()], vec![]));
    assert_eq!(traces(&spans), 1, "{spans:#?}");
    assert!(is_child(find(&spans, &call), find(&spans, &front), "x_request_id"), "{spans:#?}");
    assert!(is_child(find(&spans, &backend), find(&spans, &call), "tcp_seq"));
}

#[test]
fn a_constant_request_id_makes_no_mega_trace() {
    // 100 requests, each a client and a server end, all with the same header.
    let mut records = Vec::new();
    for i in 0..100u32 {
        let start = i64::from(i) * 3;
        records.push(ids(seq(client(1, start, 50), 1000 + i, 5000 + i), Some("constant"), None));
        records.push(ids(seq(server(2, start + 1, 48), 1000 + i, 5000 + i), Some("constant"), None));
    }
    let (spans, counts) = run_with(StitchConfig::default(), events(records, vec![]));
    assert_eq!(spans.len(), 200);
    assert_eq!(traces(&spans), 100, "requests were mixed");
    assert!(counted(&counts, KEYS_DROPPED) >= 1);
}

#[test]
fn two_requests_through_one_thread_pool_do_not_cross() {
    // One app thread-pool thread (pid 40) makes both outgoing calls; each carries its SDK span's traceparent.
    let mut records = Vec::new();
    let mut spans = Vec::new();
    for (n, (trace, root, call, start)) in [(1u8, 11u8, 12u8, 0i64), (2, 21, 22, 5)].into_iter().enumerate() {
        let n = n as u64;
        spans.push(apm(trace, root, None, SpanKind::Server, start, 100, "GET /checkout"));
        spans.push(apm(trace, call, Some(root), SpanKind::Client, start + 20, 40, "GET /stock"));
        // The pool thread's syscall ids chain the two calls together: a trap.
        records.push(traceparent(syscalls(seq(client(40, start + 21, 38), 60 + n as u32, 70 + n as u32), 500 + n, 501 + n), trace, call));
        records.push(traceparent(seq(server(50, start + 22, 36), 60 + n as u32, 70 + n as u32), trace, call));
    }
    let out = run(events(records.clone(), spans));
    assert_eq!(traces(&out), 2, "{out:#?}");
    for (n, trace) in [1u8, 2].into_iter().enumerate() {
        let (call, backend) = (find(&out, &records[2 * n]), find(&out, &records[2 * n + 1]));
        let sdk_call = out.iter().find(|s| s.span_id == [trace * 10 + 2; 8]).unwrap();
        assert_eq!(call.trace_id, [trace; 16]);
        assert!(is_child(call, sdk_call, "traceparent"), "{out:#?}");
        assert!(is_child(backend, call, "tcp_seq"));
    }
}

#[test]
fn an_application_root_goes_under_the_server_record_that_carried_it() {
    // The caller's traceparent names span 9: the server record and the SDK's root both saw it.
    let record = traceparent(seq(server(60, 0, 100), 3, 4), 7, 9);
    let root = apm(7, 70, Some(9), SpanKind::Server, 2, 95, "GET /pay");
    let child = apm(7, 71, Some(70), SpanKind::Internal, 10, 20, "charge");
    let spans = run(events(vec![record.clone()], vec![root, child]));
    let (server_span, root, child) =
        (find(&spans, &record), spans.iter().find(|s| s.name == "GET /pay").unwrap(), spans.iter().find(|s| s.name == "charge").unwrap());
    assert!(is_child(root, server_span, "span_id"), "{spans:#?}");
    assert_eq!(child.parent_span_id, Some(root.span_id));
    assert_eq!(link(child), None, "an SDK's own parent is not stitching's");
    // By request id (no traceparent): the SDK captured the header.
    let record = ids(server(61, 0, 100), Some("r-1"), None);
    let mut root = apm(8, 80, None, SpanKind::Server, 3, 90, "GET /ship");
    root.request_id = Some("r-1".into());
    let spans = run(events(vec![record.clone()], vec![root]));
    assert!(is_child(spans.iter().find(|s| s.name == "GET /ship").unwrap(), find(&spans, &record), "x_request_id"), "{spans:#?}");
}

#[test]
fn a_gateway_entry_is_two_spans_and_its_backend_joins_by_request_id() {
    let entry = gateway_entry("kong-1");
    let backend = ids(server(70, 6, 88), Some("kong-1"), None);
    let spans = run(events(vec![entry, backend.clone()], vec![]));
    assert_eq!((spans.len(), traces(&spans)), (3, 1), "{spans:#?}");
    let gateway = spans.iter().find(|s| s.kind == SpanKind::Server && !s.resource.contains_key("process.pid")).unwrap();
    let upstream = spans.iter().find(|s| s.name.ends_with("upstream")).unwrap();
    assert_eq!((upstream.parent_span_id, link(upstream)), (Some(gateway.span_id), None));
    assert!(is_child(find(&spans, &backend), upstream, "x_request_id"), "{spans:#?}");
    assert_eq!(upstream.end_time_unix_nano - upstream.start_time_unix_nano, 90_000_000);
}

/// Kong before 3.5 logs no request id, and without tracing no trace id: the
/// entry's two spans still make one trace, the call under the gateway's span.
#[test]
fn a_gateway_entry_without_ids_is_still_one_trace() {
    let mut entry = gateway_entry("unused");
    entry.request_id = None;
    let (spans, counts) = run_with(StitchConfig::default(), events(vec![entry], vec![]));
    assert_eq!((spans.len(), traces(&spans), counted(&counts, LATE_SPANS)), (2, 1, 0), "{spans:#?}");
    let upstream = spans.iter().find(|s| s.name.ends_with("upstream")).unwrap();
    let gateway = spans.iter().find(|s| !s.name.ends_with("upstream")).unwrap();
    assert_eq!(upstream.parent_span_id, Some(gateway.span_id));
}

/// An entry that carried its own span id (Kong tracing): the gateway span
/// keeps it, and the call upstream gets an id of its own, the same every time.
#[test]
fn a_gateway_entry_with_a_span_id_gives_its_call_upstream_another() {
    let mut entry = gateway_entry("kong-2");
    entry.trace_id = Some(const_hex::encode([3u8; 16]));
    entry.span_id = Some(const_hex::encode([4u8; 8]));
    let spans = run(events(vec![entry.clone()], vec![]));
    let second = run(events(vec![entry], vec![]));
    let upstream = |spans: &[Span]| spans.iter().find(|s| s.name.ends_with("upstream")).unwrap().span_id;
    let gateway = spans.iter().find(|s| !s.name.ends_with("upstream")).unwrap();
    assert_eq!(gateway.span_id, [4; 8]);
    assert!(![[0; 8], [4; 8]].contains(&upstream(&spans)), "{spans:#?}");
    assert_eq!(upstream(&spans), upstream(&second));
}

#[test]
fn one_w3c_trace_id_is_kept_else_one_is_made_and_the_originals_kept() {
    let record = traceparent(server(80, 0, 10), 5, 6);
    let spans = run(events(vec![record.clone()], vec![]));
    assert_eq!(spans[0].trace_id, [5; 16]);
    // A gateway that traced the request itself (trace 5) and an app that
    // started its own trace (6): joined by request id only when asked.
    let mut entry = gateway_entry("k-1");
    entry.trace_id = Some(const_hex::encode([5u8; 16]));
    let mut root = apm(6, 60, None, SpanKind::Server, 10, 80, "GET /orders");
    root.request_id = Some("k-1".into());
    let batch = || events(vec![entry.clone()], vec![root.clone()]);
    assert_eq!(traces(&run(batch())), 2);
    let config = StitchConfig { merge_disjoint_traces: true, ..StitchConfig::default() };
    let (spans, _) = run_with(config, batch());
    assert_eq!((spans.len(), traces(&spans)), (3, 1), "{spans:#?}");
    assert!(spans.iter().all(|s| s.trace_id != [5; 16] && s.trace_id != [6; 16]));
    let original = |s: &Span| s.attributes.get("tapline.original_trace_id").map(|v| v.to_string_lossy().into_owned());
    let originals: Vec<String> = spans.iter().filter_map(original).collect();
    assert_eq!(originals.len(), 3, "{spans:#?}");
    assert!(originals.contains(&const_hex::encode([5u8; 16])) && originals.contains(&const_hex::encode([6u8; 16])));
}

#[test]
fn a_record_span_id_is_the_same_every_time() {
    let record = seq(server(90, 0, 10), 11, 12);
    let first = run(events(vec![record.clone()], vec![]));
    let second = run(events(vec![record], vec![]));
    assert_eq!(first[0].span_id, second[0].span_id);
    assert_eq!(first[0].trace_id, second[0].trace_id);
}

#[test]
fn self_time_is_what_children_do_not_cover() {
    let s = syscalls(server(10, 0, 100), 100, 102);
    let (c1, c2) = (syscalls(client(10, 10, 30), 100, 101), syscalls(client(10, 30, 30), 101, 102));
    let spans = run(events(vec![s.clone(), c1, c2], vec![]));
    // Children cover 10..60 of 0..100.
    assert_eq!(find(&spans, &s).attributes.get("tapline.self_time_us"), Some(&Value::Integer(50_000)));
}

#[test]
fn a_span_arriving_after_its_trace_left_joins_it() {
    // A server whose caller left, by TCP seq; a call whose server left, by syscall ids.
    let cases = [
        (seq(client(1, 0, 100), 7, 9), seq(server(2, 3, 95), 7, 9), "tcp_seq"),
        (syscalls(server(2, 0, 100), 10, 11), syscalls(client(2, 20, 50), 10, 11), "syscall"),
    ];
    for (first, second, why) in cases {
        let mut stitch = StitchConfig::default().build().unwrap();
        let mut out = TransformOutput::default();
        stitch.transform(events(vec![first], vec![]), &mut out);
        stitch.tick(true, &mut out);
        let emitted = match &out.primary[0].data {
            EventData::Span(span) => (**span).clone(),
            _ => unreachable!(),
        };
        let mut late = TransformOutput::default();
        stitch.transform(events(vec![second], vec![]), &mut late);
        stitch.tick(true, &mut late);
        let EventData::Span(span) = &late.primary[0].data else { unreachable!() };
        assert!(is_child(span, &emitted, why), "{span:#?}");
        assert_eq!(counted(&late.counts, LATE_SPANS), 1);
    }
}

/// An APM span whose parent left: found by the span id its SDK gave it. A
/// span id stitching made up is named by nothing, so it is no key.
#[test]
fn a_late_span_finds_its_parent_by_a_given_span_id_only() {
    let mut stitch = StitchConfig::default().build().unwrap();
    let mut out = TransformOutput::default();
    stitch.transform(events(vec![client(1, 0, 100)], vec![apm(1, 10, None, SpanKind::Server, 0, 100, "GET /orders")]), &mut out);
    stitch.tick(true, &mut out);
    let spans: Vec<Span> = out.primary.drain(..).map(|e| if let EventData::Span(span) = e.data { *span } else { unreachable!() }).collect();
    let (parent, made_up) = (&spans.iter().find(|s| s.span_id == [10; 8]).unwrap(), spans.iter().find(|s| s.span_id != [10; 8]).unwrap());
    let child = apm(1, 11, Some(10), SpanKind::Internal, 10, 50, "work");
    let mut named_made_up = apm(2, 12, None, SpanKind::Internal, 10, 50, "other");
    named_made_up.parent_span_id = Some(made_up.span_id);
    stitch.transform(events(vec![], vec![child, named_made_up]), &mut out);
    stitch.tick(true, &mut out);
    let late: Vec<Span> = out.primary.drain(..).map(|e| if let EventData::Span(span) = e.data { *span } else { unreachable!() }).collect();
    let (child, other) = (late.iter().find(|s| s.span_id == [11; 8]).unwrap(), late.iter().find(|s| s.span_id == [12; 8]).unwrap());
    assert!(is_child(child, parent, "span_id"), "{child:#?}");
    assert_eq!((other.parent_span_id, link(other)), (Some(made_up.span_id), None), "{other:#?}");
    assert_eq!(counted(&out.counts, LATE_SPANS), 1);
}

/// A trace of more spans than `max_key_fanout` is still found by its trace id:
/// the late cache knows a trace by one of its spans, not by all of them.
#[test]
fn a_late_span_finds_a_trace_of_many_spans_by_its_trace_id() {
    let mut stitch = StitchConfig::default().build().unwrap();
    let mut out = TransformOutput::default();
    let spans: Vec<Span> = (1..=20).map(|span| apm(1, span, (span > 1).then_some(1), SpanKind::Internal, 0, 100, "work")).collect();
    stitch.transform(events(vec![], spans), &mut out);
    stitch.tick(true, &mut out);
    assert_eq!(out.primary.len(), 20);
    let mut late = TransformOutput::default();
    stitch.transform(events(vec![], vec![apm(1, 99, Some(98), SpanKind::Internal, 200, 10, "late")]), &mut late);
    stitch.tick(true, &mut late);
    let EventData::Span(span) = &late.primary[0].data else { unreachable!() };
    assert_eq!((span.trace_id, span.parent_span_id), ([1; 16], Some([98; 8])));
    assert_eq!(counted(&late.counts, LATE_SPANS), 1);
}

/// A key on more emitted spans than `max_key_fanout` (here a TCP seq every
/// connection reused) finds nothing late: no lookup walks a long list, and no
/// late span picks one of many at random.
#[test]
fn a_late_key_on_too_many_emitted_spans_joins_nothing() {
    for (emitted, joins) in [(3, true), (17, false)] {
        let mut stitch = StitchConfig::default().build().unwrap();
        let mut out = TransformOutput::default();
        let clients: Vec<RequestRecord> = (0..emitted).map(|i| seq(client(1, i * 1000, 100), 7, 9)).collect();
        stitch.transform(events(clients, vec![]), &mut out);
        stitch.tick(true, &mut out);
        let mut late = TransformOutput::default();
        stitch.transform(events(vec![seq(server(2, (emitted - 1) * 1000 + 3, 95), 7, 9)], vec![]), &mut late);
        stitch.tick(true, &mut late);
        let EventData::Span(span) = &late.primary[0].data else { unreachable!() };
        assert_eq!(span.parent_span_id.is_some(), joins, "{emitted} emitted: {span:#?}");
        assert_eq!(counted(&late.counts, LATE_SPANS), u64::from(joins), "{emitted} emitted");
    }
}

/// The late cache keeps `late_cache_spans` spans, and the keys of at most
/// twice as many (forgotten ones are swept in bulk).
#[test]
fn the_late_cache_stays_bounded() {
    let mut stitch = Stitch::new(StitchConfig { late_cache_spans: 100, ..StitchConfig::default() });
    let mut out = TransformOutput::default();
    for chunk in 0..100u32 {
        let records = (0..100).map(|i| seq(client(1, i64::from(chunk * 100 + i) * 1000, 10), chunk * 100 + i, 0)).collect();
        stitch.transform(events(records, vec![]), &mut out);
        stitch.tick(true, &mut out);
        // Each client span is found by its TCP seq only: its span id was made up here.
        assert!(stitch.late.len() <= 100 && stitch.late.keys_held() <= 2 * 100, "{} keys", stitch.late.keys_held());
    }
    assert_eq!(out.primary.len(), 10_000);
}

#[test]
fn held_traces_stay_under_max_traces_and_none_is_dropped() {
    let config = StitchConfig { max_traces: 100, ..StitchConfig::default() };
    let mut stitch = config.build().unwrap();
    let mut out = TransformOutput::default();
    let mut emitted = 0;
    for chunk in 0..50u32 {
        // Requests that never complete: server ends whose clients never come.
        let records: Vec<RequestRecord> = (0..100).map(|i| seq(server(5, i64::from(chunk * 100 + i), 10), chunk * 100 + i, 0)).collect();
        stitch.transform(events(records, vec![]), &mut out);
        let held = out.gauges.iter().find(|(n, _)| *n == TRACES_HELD).map(|(_, v)| *v).unwrap();
        assert!(held <= 100, "{held} traces held");
        emitted += out.primary.len();
        out.primary.clear();
    }
    stitch.tick(true, &mut out);
    emitted += out.primary.len();
    assert_eq!(emitted, 5000);
    assert_eq!(counted(&out.counts, "stitch_emitted_max_traces_total"), 4900);
}

#[test]
fn a_trace_at_max_spans_goes_at_once() {
    let config = StitchConfig { max_spans_per_trace: 3, ..StitchConfig::default() };
    let mut stitch = config.build().unwrap();
    let mut out = TransformOutput::default();
    let spans: Vec<Span> = (0..3).map(|i| apm(1, 10 + i, None, SpanKind::Internal, i64::from(i), 1, "work")).collect();
    stitch.transform(events(vec![], spans), &mut out);
    assert_eq!((out.primary.len(), counted(&out.counts, "stitch_emitted_max_spans_total")), (3, 1));
}

#[test]
fn plain_logs_are_counted_not_stitched() {
    let (spans, counts) = run_with(StitchConfig::default(), vec![Event::log(Value::from("hello"))]);
    assert!(spans.is_empty());
    assert_eq!(counted(&counts, NOT_STITCHED), 1);
}
