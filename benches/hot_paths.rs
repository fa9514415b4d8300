//! The per-event costs of the engine against the cost of decoding one Kong
//! log line: the engine's share should be a small fraction of the decode.
//!
//!   cargo bench --bench hot_paths

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tapline::component::buffer::{channel, BufferConfig};
use tapline::component::output::{Fanout, Target, TargetList};
use tapline::component::{TransformConfig, TransformOutput};
use tapline::event::{Event, EventBatch, Value};
use tapline::telemetry;
use tapline::transforms::remap::RemapConfig;

// The allocator the binary uses: the costs measured here are the ones it has.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Kong 3.x http-log entry, as the plugin sends it.
const KONG_LINE: &str = r#"{"request":{"id":"b7c1f0a2d4e64c0f9a1b2c3d4e5f6a7b","method":"GET","uri":"/orders/4711?expand=items","url":"https://api.example.com:443/orders/4711?expand=items","querystring":{"expand":"items"},"size":412,"headers":{"host":"api.example.com","user-agent":"okhttp/4.12.0","accept":"application/json","authorization":"REDACTED","x-request-id":"b7c1f0a2d4e64c0f9a1b2c3d4e5f6a7b"}},"upstream_uri":"/orders/4711?expand=items","upstream_status":"200","response":{"status":200,"size":2311,"headers":{"content-type":"application/json","content-length":"2311","x-kong-upstream-latency":"38","x-kong-proxy-latency":"2","via":"kong/3.6.1"}},"latencies":{"kong":2,"proxy":38,"request":41,"receive":1},"tries":[{"ip":"10.0.1.17","port":8080,"balancer_start":1732613000123,"balancer_latency":0}],"route":{"id":"5a7c0d7e-93a4-4d7b-9f51-0c4a1e2b3c4d","name":"orders-route","paths":["/orders"],"protocols":["http","https"],"strip_path":false,"preserve_host":false},"service":{"id":"0c7a2f6e-1b8d-4c3e-a5f4-9e8d7c6b5a41","name":"orders","host":"orders.default.svc.cluster.local","port":8080,"protocol":"http","path":"/","retries":5,"connect_timeout":60000},"consumer":{"id":"8f7e6d5c-4b3a-2918-0706-f5e4d3c2b1a0","username":"mobile-app"},"client_ip":"203.0.113.7","started_at":1732613000121,"source":"upstream","workspace":"9d8c7b6a-5f4e-3d2c-1b0a-99887766554f","workspace_name":"default","trace_id":{"w3c":"4bf92f3577b34da6a3ce929d0e0e4736"}}"#;

const BATCH: usize = 1000;

fn kong_batch() -> EventBatch {
    let value: Value = serde_json::from_str(KONG_LINE).unwrap();
    (0..BATCH).map(|_| Event::log(value.clone())).collect()
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    group.bench_function("kong_line_to_vrl_value", |b| b.iter(|| serde_json::from_str::<Value>(std::hint::black_box(KONG_LINE)).unwrap()));
    // The codec `http_server` uses: a Kong batch of 100 entries, strings shared with the text.
    let batch = format!("[{}]", vec![KONG_LINE; 100].join(","));
    let json = tapline::codec::Decoding { codec: tapline::codec::DecodingCodec::Json };
    group.throughput(Throughput::Elements(100));
    group.bench_function("kong_batch_json_codec", |b| b.iter(|| json.decode(std::hint::black_box(batch.as_bytes())).unwrap()));
    group.finish();
}

fn engine(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(BATCH as u64));
    // One batch: fan-out send into a bounded buffer, then taken by the consumer.
    let metrics = telemetry::component("bench", "sink", "bench");
    let (tx, mut rx) = channel(&BufferConfig { max_events: 10 * BATCH, ..Default::default() }, metrics.clone());
    let targets = Arc::new(TargetList::default());
    targets.set(vec![("sink".into(), Target::Buffer(tx))]);
    let fanout = Fanout { targets, metrics };
    group.bench_function("fanout_buffer_1000_events", |b| {
        b.iter_batched(
            kong_batch,
            |batch| {
                runtime.block_on(async {
                    fanout.send(batch).await;
                    rx.recv().await.unwrap()
                })
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn remap(c: &mut Criterion) {
    let config = RemapConfig {
        source: Some(
            r#". = { "service": .service.name, "status": .response.status, "latency_ms": .latencies.request, "request_id": .request.id }"#
                .into(),
        ),
        file: None,
        drop_on_error: false,
        drop_on_abort: true,
        reroute_dropped: false,
    };
    let mut transform = config.build().unwrap();
    let mut out = TransformOutput::new(&config.outputs(tapline::event::Kinds::LOG));
    let mut group = c.benchmark_group("remap");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("reshape_1000_events", |b| {
        b.iter_batched(
            kong_batch,
            |batch| {
                transform.transform(batch, &mut out);
                std::mem::take(&mut out.primary)
            },
            // The output is freed after each run (untimed), as a sink frees it: its memory is used again.
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// Kong entries: the bare typed parse, then the whole decode into a request record.
fn kong(c: &mut Criterion) {
    let entry = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kong/kong3_single.json")).unwrap();
    let mut group = c.benchmark_group("kong");
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare_parse_typed", |b| {
        b.iter(|| serde_json::from_str::<tapline::sources::kong::KongEntry>(std::hint::black_box(&entry)).unwrap())
    });
    group.bench_function("decode_to_record", |b| {
        b.iter(|| tapline::sources::kong::decode(std::hint::black_box(entry.as_bytes()), false).unwrap())
    });
    group.finish();
}

/// A request record as one ClickHouse row: JSONEachRow against RowBinary.
fn clickhouse(c: &mut Criterion) {
    let entry = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kong/kong3_single.json")).unwrap();
    let record = tapline::sources::kong::decode(&entry, false).unwrap().remove(0);
    let event = Event::record(record.clone());
    let mut group = c.benchmark_group("clickhouse");
    group.throughput(Throughput::Elements(1));
    group.bench_function("json_each_row_record", |b| {
        b.iter(|| {
            tapline::sinks::clickhouse::encode_row(
                std::hint::black_box(&event),
                tapline::sinks::clickhouse::schema::Server { datetime64: true, map: true },
            )
            .unwrap()
        })
    });
    let mut row = Vec::with_capacity(512);
    group.bench_function("row_binary_record", |b| {
        b.iter(|| {
            row.clear();
            tapline::sinks::clickhouse::schema::write_row_binary(
                std::hint::black_box(&record),
                tapline::sinks::clickhouse::schema::Server { datetime64: true, map: true },
                &mut row,
            );
            row.len()
        })
    });
    group.finish();
}

/// A request record as one Kafka message (JSON).
fn kafka(c: &mut Criterion) {
    let entry = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kong/kong3_single.json")).unwrap();
    let event = Event::record(tapline::sources::kong::decode(&entry, false).unwrap().remove(0));
    let json = tapline::codec::Encoding { codec: tapline::codec::EncodingCodec::Json };
    let mut message = Vec::with_capacity(1024);
    let mut group = c.benchmark_group("kafka");
    group.throughput(Throughput::Elements(1));
    group.bench_function("json_message_record", |b| {
        b.iter(|| {
            message.clear();
            json.encode_message(std::hint::black_box(&event), &mut message).unwrap();
            message.len()
        })
    });
    group.finish();
}

/// OTLP spans: protobuf → span events (the source), span events → protobuf
/// (the sink), and a Kong request record → span, per span.
fn otlp(c: &mut Criterion) {
    use prost::Message;
    use tapline::event::{Attributes, Span, SpanKind};
    use tapline::otlp::traces;
    let attributes: Attributes = [
        ("http.method", "GET"),
        ("http.url", "https://api.example.com/orders/4711"),
        ("http.route", "/orders"),
        ("kong.request.id", "b7c1f0a2d4e64c0f"),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), Value::from(v)))
    .chain([("http.status_code".into(), Value::Integer(200))])
    .collect();
    let resource: Attributes = [("service.name".into(), Value::from("kong"))].into_iter().collect();
    let events: EventBatch = (0..100u64)
        .map(|i| {
            Event::span(Span {
                trace_id: [0x4b; 16],
                span_id: (i + 1).to_be_bytes(),
                name: "kong".into(),
                kind: SpanKind::Server,
                attributes: attributes.clone(),
                resource: resource.clone(),
                ..Default::default()
            })
        })
        .collect();
    let bytes = traces::encode(&events).encode_to_vec();
    let entry = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kong/kong3_single.json")).unwrap();
    let record = tapline::sources::kong::decode(&entry, false).unwrap().remove(0);
    let mut group = c.benchmark_group("otlp");
    group.throughput(Throughput::Elements(100));
    group.bench_function("decode_100_spans", |b| {
        b.iter(|| {
            traces::decode(
                opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(std::hint::black_box(&bytes[..]))
                    .unwrap(),
            )
            .events
            .len()
        })
    });
    group.bench_function("encode_100_spans", |b| b.iter(|| traces::encode(std::hint::black_box(&events)).encode_to_vec().len()));
    group.throughput(Throughput::Elements(1));
    group.bench_function("record_to_span", |b| b.iter(|| Span::from_record(std::hint::black_box(&record))));
    group.finish();
}

/// A ring buffer record as `ebpf/socket_trace.h` lays it out: a server's read
/// (ingress) or write on 127.0.0.1:8080 ← 127.0.0.1:`client_port`.
fn ebpf_record(socket: u64, client_port: u16, ingress: bool, payload: &[u8]) -> Vec<u8> {
    let mut r = vec![0u8; tapline::sources::ebpf::event::HEADER_LEN];
    r[0..8].copy_from_slice(&1_000_000u64.to_le_bytes());
    r[8..16].copy_from_slice(&socket.to_le_bytes());
    r[24..28].copy_from_slice(&4242u32.to_le_bytes());
    r[28..32].copy_from_slice(&4242u32.to_le_bytes());
    r[36..40].copy_from_slice(&(socket as u32).to_le_bytes());
    r[40..44].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    r[44..48].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    r[48..50].copy_from_slice(&2u16.to_le_bytes());
    r[50..52].copy_from_slice(&8080u16.to_le_bytes());
    r[52..54].copy_from_slice(&client_port.to_le_bytes());
    r[54] = 1;
    r[55] = u8::from(ingress);
    r[58..62].copy_from_slice(&[127, 0, 0, 1]);
    r[74..78].copy_from_slice(&[127, 0, 0, 1]);
    r[90..95].copy_from_slice(b"nginx");
    r.extend_from_slice(payload);
    r
}

fn ebpf(c: &mut Criterion) {
    use tapline::sources::ebpf::event::Event as Captured;
    use tapline::sources::ebpf::session::Sessions;
    let request = b"GET /orders/4711?expand=items HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: okhttp/4.12.0\r\nAccept: application/json\r\nX-Request-ID: b7c1f0a2d4e64c0f9a1b2c3d4e5f6a7b\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n";
    let response = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 26 Nov 2026 19:00:00 GMT\r\nContent-Type: application/json\r\nContent-Length: 2311\r\nConnection: keep-alive\r\n\r\n{\"id\":4711}";
    // 500 connections, one request and one response each.
    let records: Vec<Vec<u8>> = (0..500u64)
        .flat_map(|i| {
            [ebpf_record(0xffff_0000 + i, 40000 + i as u16, true, request), ebpf_record(0xffff_0000 + i, 40000 + i as u16, false, response)]
        })
        .collect();
    let mut group = c.benchmark_group("ebpf");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("decode_and_pair_1000_events", |b| {
        b.iter(|| {
            let mut sessions = Sessions::default();
            let mut done = 0;
            for (i, raw) in records.iter().enumerate() {
                let event = Captured::decode(std::hint::black_box(raw)).unwrap();
                done += sessions.on_data(&event, 1_732_613_000_000_000_000 + i as u64 * 1000).len();
            }
            done
        })
    });
    // Steady state: 16 keep-alive connections, each answering request after request.
    let keep_alive: Vec<Vec<u8>> = (0..500u64)
        .flat_map(|i| {
            let (socket, port) = (0xffff_0000 + i % 16, 40000 + (i % 16) as u16);
            [ebpf_record(socket, port, true, request), ebpf_record(socket, port, false, response)]
        })
        .collect();
    let mut sessions = Sessions::default();
    group.bench_function("decode_and_pair_keep_alive_1000_events", |b| {
        b.iter(|| {
            let mut done = 0;
            for (i, raw) in keep_alive.iter().enumerate() {
                let event = Captured::decode(std::hint::black_box(raw)).unwrap();
                done += sessions.on_data(&event, 1_732_613_000_000_000_000 + i as u64 * 1000).len();
            }
            done
        })
    });
    group.finish();
}

/// `enrich` on Kong records: a 10 000-row file table by service, then a CIDR
/// table of 1 000 prefixes (/16 and /24) on the server IP.
fn enrich(c: &mut Criterion) {
    use tapline::transforms::enrich::cidr::CidrTableConfig;
    use tapline::transforms::enrich::file::{FileTableConfig, Key};
    use tapline::transforms::enrich::{EnrichConfig, TableConfig};
    let dir = tempfile::tempdir().unwrap();
    let services: String = std::iter::once("service,team,tier\n".to_string())
        .chain((0..10_000).map(|i| format!("service-{i},team-{},{}\n", i % 50, i % 3)))
        .collect();
    std::fs::write(dir.path().join("services.csv"), services).unwrap();
    let networks: String = std::iter::once("cidr,zone\n".to_string())
        .chain((0..100).map(|i| format!("10.{i}.0.0/16,zone-{i}\n")))
        .chain((0..900).map(|i| format!("10.{}.{}.0/24,rack-{i}\n", i / 9, i % 256)))
        .collect();
    std::fs::write(dir.path().join("networks.csv"), networks).unwrap();
    let config = EnrichConfig {
        reload_interval_secs: 5,
        tables: vec![
            TableConfig::File(FileTableConfig {
                path: dir.path().join("services.csv"),
                format: None,
                key: Key::Columns(vec!["service".into()]),
                columns: None,
                prefix: String::new(),
            }),
            TableConfig::Cidr(CidrTableConfig {
                path: dir.path().join("networks.csv"),
                format: None,
                cidr_column: "cidr".into(),
                field: "server_ip".into(),
                columns: None,
                prefix: String::new(),
            }),
        ],
    };
    let mut transform = config.build().unwrap();
    let mut out = TransformOutput::new(&config.outputs(tapline::event::Kinds::LOG));
    let entry = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kong/kong3_single.json")).unwrap();
    let record = tapline::sources::kong::decode(&entry, false).unwrap().remove(0);
    let records: Vec<_> = (0..BATCH)
        .map(|i| {
            let mut r = record.clone();
            r.service = Some(format!("service-{}", (i * 7919) % 10_000));
            r.server_ip = Some(format!("10.{}.{}.{}", i % 120, (i * 31) % 256, i % 250));
            r
        })
        .collect();
    let mut group = c.benchmark_group("enrich");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("file_10k_rows_and_cidr_1k_prefixes_1000_records", |b| {
        b.iter_batched(
            || records.iter().cloned().map(Event::record).collect::<EventBatch>(),
            |batch| {
                transform.transform(batch, &mut out);
                out.counts.clear();
                std::mem::take(&mut out.primary)
            },
            // The output is freed after each run (untimed), as a sink frees it: its memory is used again.
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// `red` on Kong records spread over 10 000 series (100 services × 100
/// routes): each batch of 10 000 records lands in a new window, and the
/// tick after it emits the previous one (40 000 metrics), so both the
/// per-record cost and the emission are in the measure.
fn red(c: &mut Criterion) {
    use tapline::transforms::red::RedConfig;
    const SERIES: usize = 10_000;
    let config: RedConfig = toml_edit::de::from_str("window_secs = 10\nallowed_lateness_secs = 0").unwrap();
    let mut transform = config.build().unwrap();
    let mut out = TransformOutput::new(&config.outputs(tapline::event::Kinds::LOG));
    let entry = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kong/kong3_single.json")).unwrap();
    let record = tapline::sources::kong::decode(&entry, false).unwrap().remove(0);
    let start = record.time;
    let records: Vec<_> = (0..SERIES)
        .map(|i| {
            let mut r = record.clone();
            r.service = Some(format!("service-{}", i % 100));
            r.route = Some(format!("route-{}", i / 100));
            r.duration_us = Some(1_000 + (i as u64 * 7919) % 2_000_000);
            r
        })
        .collect();
    let mut window = 0;
    let mut group = c.benchmark_group("red");
    group.throughput(Throughput::Elements(SERIES as u64));
    group.bench_function("10k_series_10k_records_per_window", |b| {
        b.iter_batched(
            || {
                window += 1;
                let time = start + chrono::Duration::seconds(10 * window);
                records.iter().cloned().map(|r| Event::record(tapline::event::RequestRecord { time, ..r })).collect::<EventBatch>()
            },
            |batch| {
                transform.transform(batch, &mut out);
                transform.tick(false, &mut out);
                out.counts.clear();
                std::mem::take(&mut out.primary)
            },
            // The output is freed after each run (untimed), as a sink frees it: its memory is used again.
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// One request as eBPF sees it through a proxy: curl → nginx (server, and its
/// call upstream, with the request id it injects) → a backend: four records.
fn proxied_request(n: u64) -> [tapline::event::RequestRecord; 4] {
    use tapline::event::{ObservationPoint as Point, RequestRecord, SignalSource};
    let t0 = chrono::DateTime::from_timestamp_millis(1_767_225_600_000).unwrap();
    let at = |us: u64| t0 + chrono::Duration::microseconds((n * 100 + us) as i64);
    let id = format!("{n:032x}");
    let record = |point, pid: u32, start_us: u64, duration_us: u64, seq: u64, syscalls: (u64, u64)| RequestRecord {
        time: at(start_us),
        observation_point: point,
        signal_source: SignalSource::Ebpf,
        protocol: "http".into(),
        method: Some("GET".into()),
        path: Some(format!("/orders/{}", n % 1000)),
        status: Some(200),
        duration_us: Some(duration_us),
        host_name: Some("node-1".into()),
        pid: Some(pid),
        thread_id: Some(pid),
        process_name: Some(["curl", "nginx", "orders"][(pid / 100 - 1) as usize].into()),
        tcp_seq_request: Some(seq as u32),
        tcp_seq_response: Some(seq as u32 + 7),
        syscall_trace_id_request: Some(syscalls.0),
        syscall_trace_id_response: Some(syscalls.1),
        ..RequestRecord::default()
    };
    let ids = |mut r: RequestRecord, request: bool, response: bool| {
        (r.request_id, r.response_request_id) = (request.then(|| id.clone()), response.then(|| id.clone()));
        r
    };
    [
        record(Point::ClientProcess, 100, 0, 10_000, n * 2, (n * 10, n * 10 + 1)),
        ids(record(Point::ServerProcess, 200, 100, 9_800, n * 2, (n * 10 + 2, n * 10 + 3)), false, true),
        ids(record(Point::ClientProcess, 200, 500, 9_000, n * 2 + 1, (n * 10 + 2, n * 10 + 3)), true, false),
        ids(record(Point::ServerProcess, 300, 600, 8_800, n * 2 + 1, (n * 10 + 5, n * 10 + 5)), true, false),
    ]
}

fn proxied_requests(from: u64, count: u64) -> EventBatch {
    (from..from + count).flat_map(proxied_request).map(Event::record).collect()
}

/// Resident memory of this process, in bytes.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4096
}

fn stitch(c: &mut Criterion) {
    use tapline::transforms::stitch::StitchConfig;
    const OPEN: u64 = 10_000;
    const REQUESTS: u64 = 1_000;
    // 10 000 traces held: past that the longest-idle one goes out as each new one comes.
    let config: StitchConfig = toml_edit::de::from_str(&format!("max_traces = {OPEN}")).unwrap();
    let mut transform = config.build().unwrap();
    let mut out = TransformOutput::new(&config.outputs(tapline::event::Kinds::LOG));
    transform.transform(proxied_requests(0, OPEN), &mut out);
    let mut next = OPEN;
    let mut group = c.benchmark_group("stitch");
    group.throughput(Throughput::Elements(REQUESTS * 4));
    group.bench_function("4k_records_with_10k_traces_open", |b| {
        b.iter_batched(
            || {
                next += REQUESTS;
                proxied_requests(next - REQUESTS, REQUESTS)
            },
            |batch| {
                transform.transform(batch, &mut out);
                out.counts.clear();
                out.gauges.clear();
                std::mem::take(&mut out.primary)
            },
            // The output is freed after each run (untimed), as a sink frees it: its memory is used again.
            BatchSize::PerIteration,
        )
    });
    group.finish();

    // Memory per held record: the resident growth while 100 000 records are held.
    const HELD: u64 = 25_000;
    let config: StitchConfig = toml_edit::de::from_str("late_cache_spans = 0").unwrap();
    let mut transform = config.build().unwrap();
    // The records are made after the first reading: what is held is them and stitch's own.
    let before = rss_bytes();
    for k in 0..HELD / 1000 {
        transform.transform(proxied_requests(k * 1000, 1000), &mut out);
    }
    let held = out.gauges.iter().rev().find(|(name, _)| *name == "stitch_spans_held").map(|(_, v)| *v).unwrap();
    eprintln!("stitch: {held} spans held ({} records): {} bytes resident per record", HELD * 4, (rss_bytes() - before) / (HELD * 4));

    // The same for Kong entries (each a gateway span and its call upstream),
    // each its own request, as scripts/bench-stitch.sh makes them.
    const KONG_HELD: u64 = 100_000;
    let entry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kong/kong3_single.json")).unwrap())
            .unwrap();
    let kong_entries = |from: u64| -> EventBatch {
        (from..from + 1000)
            .map(|i| {
                let mut entry = entry.clone();
                entry["request"]["id"] = format!("{i:032x}").into();
                entry["trace_id"]["w3c"] = format!("{:032x}", i + 1).into();
                entry["request"]["headers"]["traceparent"] = format!("00-{:032x}-{:016x}-01", i + 1, i + 1).into();
                entry["started_at"] = (1_732_613_000_121 + i / 10).into();
                let line = serde_json::to_vec(&entry).unwrap();
                Event::record(tapline::sources::kong::decode(&line, false).unwrap().remove(0))
            })
            .collect()
    };
    let mut transform = config.build().unwrap();
    let before = rss_bytes();
    for k in 0..KONG_HELD / 1000 {
        transform.transform(kong_entries(k * 1000), &mut out);
    }
    let held = out.gauges.iter().rev().find(|(name, _)| *name == "stitch_spans_held").map(|(_, v)| *v).unwrap();
    eprintln!("stitch: {held} spans held ({KONG_HELD} Kong entries): {} bytes resident per entry", (rss_bytes() - before) / KONG_HELD);
}

criterion_group!(benches, decode, engine, remap, kong, clickhouse, kafka, otlp, ebpf, enrich, red, stitch);
criterion_main!(benches);
