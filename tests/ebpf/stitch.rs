//! `stitch` on real processes, as root: curl → nginx (a gateway that injects
//! X-Request-ID upstream and in its answer, keep-alive connections upstream)
//! → an app instrumented with the OpenTelemetry Python SDK, which calls a
//! second service from a thread pool (scripts/otel_app.py) → that service,
//! with no SDK (scripts/http_backend.py). The app's spans reach tapline over
//! OTLP seconds after the eBPF records. Also a failing upstream (nginx's 502)
//! and a leaf service straight behind nginx. The traces go to a file, to
//! ClickHouse's span table and through the OTLP sink to an OTLP receiver: the
//! same trees in each. Then the same inputs replayed in shuffled order through
//! the transform: the same traces.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tapline::component::{TransformConfig, TransformOutput};
use tapline::event::{Event, EventData, RequestRecord, Span};
use tapline::transforms::stitch::StitchConfig;

use super::*;

const CHECKOUTS: usize = 100;
const FAILS: usize = 5;
const LEAVES: usize = 5;

/// What a span of the scenario is, from its attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Piece {
    Curl,
    NginxIn,
    NginxOut,
    AppIn,
    AppRoot,
    AppCall,
    AppOut,
    StockIn,
}

fn attribute<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

/// The piece a span is, and the request (`checkout/17`, `fail/3`, `leaf/2`) it belongs to.
fn classify(span: &Value, ports: &Ports) -> (Piece, String) {
    let apm = span["scope_name"] == "otel_app";
    let name = span["name"].as_str().unwrap_or_default();
    let path = if apm { name.trim_start_matches("GET ") } else { attribute(span, "url.path").as_str().unwrap_or_default() };
    let request = path.trim_start_matches("/stock").trim_start_matches('/').to_string();
    let client = span["kind"] == "client";
    let process = span["resource"]["process.executable.name"].as_str().unwrap_or_default();
    let port = attribute(span, "network.peer.port").as_u64().unwrap_or_default() as u16;
    let piece = match (apm, client, process) {
        (true, false, _) => Piece::AppRoot,
        (true, true, _) => Piece::AppCall,
        (false, true, "curl") => Piece::Curl,
        (false, false, "nginx") => Piece::NginxIn,
        (false, true, "nginx") => Piece::NginxOut,
        (false, false, _) if port == ports.app => Piece::AppIn,
        (false, true, _) if port == ports.stock => Piece::AppOut,
        (false, false, _) if port == ports.stock => Piece::StockIn,
        _ => panic!("a span the scenario did not make: {span:#}"),
    };
    (piece, request)
}

struct Ports {
    gateway: u16,
    app: u16,
    stock: u16,
}

/// The parent each piece must have, and the link that says why.
fn expected_parent(piece: Piece) -> Option<(Piece, &'static [&'static str])> {
    match piece {
        Piece::Curl => None,
        Piece::NginxIn => Some((Piece::Curl, &["tcp_seq"])),
        // One nginx thread serves every request: syscall ids, or the id it injected.
        Piece::NginxOut => Some((Piece::NginxIn, &["syscall", "x_request_id"])),
        Piece::AppIn => Some((Piece::NginxOut, &["tcp_seq"])),
        // The SDK's root recorded X-Request-ID: the handler thread is not the caller's.
        Piece::AppRoot => Some((Piece::AppIn, &["x_request_id"])),
        // The SDK's own parent: no link.
        Piece::AppCall => Some((Piece::AppRoot, &[])),
        // From a pool thread: only the traceparent the SDK wrote bridges it.
        Piece::AppOut => Some((Piece::AppCall, &["traceparent"])),
        Piece::StockIn => Some((Piece::AppOut, &["tcp_seq"])),
    }
}

/// One request through nginx to the stock service directly (a leaf), or to a closed port (502).
fn expected_pieces(request: &str) -> Vec<Piece> {
    use Piece::*;
    match request.split('/').next() {
        Some("checkout") => vec![Curl, NginxIn, NginxOut, AppIn, AppRoot, AppCall, AppOut, StockIn],
        Some("leaf") => vec![Curl, NginxIn, NginxOut, StockIn],
        Some("fail") => vec![Curl, NginxIn],
        _ => panic!("unknown request {request}"),
    }
}

fn expected_parent_in(request: &str, piece: Piece) -> Option<(Piece, &'static [&'static str])> {
    match (request.starts_with("leaf"), piece) {
        (true, Piece::StockIn) => Some((Piece::NginxOut, &["tcp_seq"])),
        _ => expected_parent(piece),
    }
}

fn spans_in(path: &std::path::Path) -> Vec<Value> {
    read_json(path)
}

#[test]
fn one_trace_per_request_across_gateway_ebpf_and_apm() {
    if !root() {
        return;
    }
    let ports = Ports { gateway: free_port(), app: free_port(), stock: free_port() };
    let (otlp, otlp_back, closed) = (free_port(), free_port(), free_port());
    let _stock = backend(ports.stock, None);
    // The traces in a real trace store too: ClickHouse's span table (a must in CI).
    let store = crate::clickhouse::clickhouse().map(|url| {
        let db = crate::clickhouse::database(&url, "stitched");
        (url, db)
    });
    let store_sink = store.as_ref().map_or(String::new(), |(url, db)| {
        format!(
            "[sinks.store]\ntype = \"clickhouse\"\ninputs = [\"traces\"]\nendpoint = \"{url}\"\ndatabase = \"{db}\"\n\
             table = \"spans\"\nschema = \"span\"\ncreate_table = true\n"
        )
    });
    let mut pipeline = capture(
        &[ports.gateway, ports.app, ports.stock],
        &format!(
            "[sources.otel]\ntype = \"opentelemetry\"\ngrpc.enabled = false\nhttp.address = \"127.0.0.1:{otlp}\"\n\
             [transforms.traces]\ntype = \"stitch\"\ninputs = [\"capture\", \"otel.traces\"]\n\
             [sinks.spans]\ntype = \"file\"\ninputs = [\"traces\"]\npath = \"DIR/spans.json\"\nencoding.codec = \"json\"\n\
             [sinks.inputs]\ntype = \"file\"\ninputs = [\"capture\", \"otel.traces\"]\npath = \"DIR/inputs.json\"\nencoding.codec = \"json\"\n\
             [transforms.red]\ntype = \"red\"\ninputs = [\"traces\"]\n\
             [sinks.metrics]\ntype = \"file\"\ninputs = [\"red\"]\npath = \"DIR/metrics.json\"\nencoding.codec = \"json\"\n\
             [sinks.otlp]\ntype = \"opentelemetry\"\ninputs = [\"traces\"]\nprotocol = \"grpc\"\nendpoint = \"http://127.0.0.1:{otlp_back}\"\n\
             [sources.back]\ntype = \"opentelemetry\"\ngrpc.address = \"127.0.0.1:{otlp_back}\"\nhttp.enabled = false\n\
             [sinks.exported]\ntype = \"file\"\ninputs = [\"back.traces\"]\npath = \"DIR/exported.json\"\nencoding.codec = \"json\"\n\
             {store_sink}"
        ),
    );
    wait_for("the OTLP receiver", Duration::from_secs(30), || TcpStream::connect(("127.0.0.1", otlp)).is_ok());
    // The app exports its spans every 4 s: they come seconds after the eBPF records.
    let mut app = Command::new("python3");
    app.arg(here("scripts/otel_app.py")).args([
        ports.app.to_string(),
        ports.stock.to_string(),
        format!("http://127.0.0.1:{otlp}"),
        "4000".into(),
    ]);
    let app = serve(&mut app, ports.app);
    let dir = tempfile::tempdir().unwrap();
    let inject = "proxy_set_header X-Request-ID $request_id; add_header X-Request-ID $request_id always;";
    let _nginx = nginx_with(
        dir.path(),
        ports.gateway,
        &format!("upstream app {{ server 127.0.0.1:{}; keepalive 16; }}", ports.app),
        &format!(
            "location /checkout/ {{ {inject} proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_pass http://app; }}\n\
             location /leaf/ {{ {inject} proxy_pass http://127.0.0.1:{}; }}\n\
             location /fail/ {{ {inject} proxy_pass http://127.0.0.1:{closed}; }}",
            ports.stock
        ),
    );

    // 100 requests at once, and the 502s and leaves beside them.
    let mut args: Vec<String> =
        ["-sS", "--max-time", "30", "-Z", "--parallel-max", "110", "--parallel-immediate", "-w", "%{http_code} %{url}\\n"]
            .map(String::from)
            .to_vec();
    let urls = (0..CHECKOUTS)
        .map(|i| format!("checkout/{i}"))
        .chain((0..FAILS).map(|i| format!("fail/{i}")))
        .chain((0..LEAVES).map(|i| format!("leaf/{i}")));
    for path in urls {
        args.extend(["-o".into(), "/dev/null".into(), format!("http://127.0.0.1:{}/{path}", ports.gateway)]);
    }
    let answers = Command::new("curl").args(&args).output().expect("curl must be installed");
    let answers = String::from_utf8_lossy(&answers.stdout).into_owned();
    assert_eq!(answers.lines().filter(|l| l.starts_with("200 ")).count(), CHECKOUTS + LEAVES, "{answers}");
    assert_eq!(answers.lines().filter(|l| l.starts_with("502 ")).count(), FAILS, "{answers}");

    // Every piece of every request, stitched: traces go out once idle 10 s (the defaults).
    let pieces: usize = CHECKOUTS * 8 + LEAVES * 4 + FAILS * 2;
    let spans_file = pipeline.path("spans.json");
    wait_for("every request's spans", Duration::from_secs(120), || spans_in(&spans_file).len() >= pieces);
    signal(&app.0, "TERM");
    let spans = spans_in(&spans_file);
    assert_eq!(spans.len(), pieces, "more spans than pieces: {:#?}", spans);
    // The same spans sent by the OTLP sink, as an OTLP receiver got them: the same trees.
    let exported_file = pipeline.path("exported.json");
    wait_for("the spans sent over OTLP", Duration::from_secs(60), || spans_in(&exported_file).len() >= pieces);
    let exported = spans_in(&exported_file);
    assert_eq!(exported.len(), pieces, "spans received over OTLP");
    assert_eq!(trees(&exported), trees(&spans), "the trees received over OTLP");

    // One trace per request, with every piece under its parent, for the reason expected.
    let mut traces: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for span in &spans {
        traces.entry(span["trace_id"].as_str().unwrap().to_string()).or_default().push(span);
    }
    assert_eq!(traces.len(), CHECKOUTS + FAILS + LEAVES, "traces: {:#?}", traces.values().map(|t| t.len()).collect::<Vec<_>>());
    let mut requests = BTreeSet::new();
    for (trace_id, trace) in &traces {
        let classified: Vec<(Piece, String)> = trace.iter().map(|s| classify(s, &ports)).collect();
        let request = classified[0].1.clone();
        assert!(classified.iter().all(|(_, r)| *r == request), "two requests in one trace: {classified:?}");
        let mut pieces: Vec<Piece> = classified.iter().map(|(p, _)| *p).collect();
        pieces.sort();
        assert_eq!(pieces, expected_pieces(&request), "trace {trace_id} of {request}");
        let by_piece: BTreeMap<Piece, &Value> = classified.iter().map(|(p, _)| *p).zip(trace.iter().copied()).collect();
        for (piece, span) in &by_piece {
            let link = attribute(span, "tapline.link").as_str();
            match expected_parent_in(&request, *piece) {
                None => assert!(span["parent_span_id"].is_null(), "{request}: {piece:?} should be the root: {span:#}"),
                Some((parent, links)) => {
                    assert_eq!(span["parent_span_id"], by_piece[&parent]["span_id"], "{request}: {piece:?} under {parent:?}: {span:#}");
                    match links {
                        [] => assert_eq!(link, None, "{request}: {piece:?}"),
                        links => {
                            assert!(link.is_some_and(|l| links.contains(&l)), "{request}: {piece:?} linked by {link:?}, not {links:?}")
                        }
                    }
                }
            }
        }
        if request.starts_with("checkout") {
            // The app's W3C trace id is the trace's.
            assert_eq!(by_piece[&Piece::AppRoot]["trace_id"].as_str(), Some(trace_id.as_str()));
        }
        if request.starts_with("fail") {
            assert_eq!(attribute(by_piece[&Piece::NginxIn], "http.response.status_code"), 502);
        }
        requests.insert(request);
    }
    assert_eq!(requests.len(), CHECKOUTS + FAILS + LEAVES);

    // RED per service from the stitched spans (flushed at shutdown): `http_` is the namespace.
    pipeline.stop();
    let metrics = read_json(&pipeline.path("metrics.json"));
    let total = |name: &str, service: &str| -> f64 {
        let of_servers = |m: &&Value| m["name"] == name && m["tags"]["service.name"] == service && m["tags"]["span.kind"] == "server";
        metrics.iter().filter(of_servers).map(|m| m["value"]["counter"]["value"].as_f64().unwrap()).sum()
    };
    assert_eq!(total("requests_total", "shop"), CHECKOUTS as f64, "{metrics:#?}");
    assert_eq!(total("requests_total", "nginx"), (CHECKOUTS + FAILS + LEAVES) as f64);
    assert_eq!(total("request_errors_total", "nginx"), FAILS as f64);

    // The same inputs in another order, through the transform: the same traces.
    let inputs: Vec<Event> = read_lines(&pipeline.path("inputs.json"))
        .iter()
        .map(|line| match serde_json::from_str::<Value>(line).unwrap().get("observation_point") {
            Some(_) => Event::record(serde_json::from_str::<RequestRecord>(line).unwrap()),
            None => Event::span(serde_json::from_str::<Span>(line).unwrap()),
        })
        .collect();
    let live = trees(&spans);
    for seed in [1u64, 7, 42] {
        let replayed = replay(shuffled(&inputs, seed));
        assert_eq!(replayed, live, "replayed in the order of seed {seed}");
    }

    // The trace store holds the same trees (sent before the pipeline stopped):
    // every span with its trace, parent and link, one root per trace.
    if let Some((url, db)) = &store {
        let text = |field: &str| if field.is_empty() { Value::Null } else { Value::from(field) };
        let rows =
            crate::clickhouse::query(url, &format!("SELECT span_id, trace_id, parent_span_id, link FROM {db}.spans FORMAT TabSeparated"));
        let stored: BTreeMap<String, (Value, Value, Value)> = rows
            .lines()
            .map(|row| {
                let fields: Vec<&str> = row.split('\t').collect();
                (fields[0].to_string(), (text(fields[1]), text(fields[2]), text(fields[3])))
            })
            .collect();
        assert_eq!(rows.lines().count(), live.len(), "rows in the span table");
        assert_eq!(stored, live, "the span table");
        let roots = format!(
            "SELECT count() FROM (SELECT trace_id, countIf(parent_span_id = '') AS roots FROM {db}.spans GROUP BY trace_id HAVING roots != 1)"
        );
        assert_eq!(crate::clickhouse::query(url, &roots), "0\n", "traces without exactly one root");
        crate::clickhouse::query(url, &format!("DROP DATABASE {db}"));
    }
}

/// Each span's trace, parent and link, by span id.
fn trees(spans: &[Value]) -> BTreeMap<String, (Value, Value, Value)> {
    spans
        .iter()
        .map(|s| {
            (
                s["span_id"].as_str().unwrap().to_string(),
                (s["trace_id"].clone(), s["parent_span_id"].clone(), attribute(s, "tapline.link").clone()),
            )
        })
        .collect()
}

/// The events in an order of their own (xorshift over `seed`).
fn shuffled(events: &[Event], seed: u64) -> Vec<Event> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut order: Vec<usize> = (0..events.len()).collect();
    for i in (1..order.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    order.into_iter().map(|i| events[i].clone()).collect()
}

/// Through `stitch` with its defaults, 50 events at a time with a tick between;
/// each span's (trace id, parent, link).
fn replay(events: Vec<Event>) -> BTreeMap<String, (Value, Value, Value)> {
    let config = StitchConfig::default();
    let mut stitch = config.build().unwrap();
    let mut out = TransformOutput::default();
    for chunk in events.chunks(50) {
        stitch.transform(chunk.to_vec(), &mut out);
        stitch.tick(false, &mut out);
    }
    stitch.tick(true, &mut out);
    let spans: Vec<Value> = out
        .primary
        .into_iter()
        .map(|event| match event.data {
            EventData::Span(span) => serde_json::to_value(&span).unwrap(),
            other => panic!("not a span: {other:?}"),
        })
        .collect();
    trees(&spans)
}
