//! Load for the bench scripts: one request, prepared once, sent again and
//! again with CONCURRENCY requests in flight for SECONDS:
//! - `grpc`, `http`: an OTLP ExportTraceServiceRequest of ITEMS spans like
//!   those of Kong's OpenTelemetry plugin (scripts/bench-otlp.sh);
//! - `remote-write`: a remote write 1.0 request of ITEMS samples like those of
//!   Kong's Prometheus plugin, snappy-compressed (scripts/bench-prometheus.sh).
//!
//!   cargo run --release --example load -- grpc|http|remote-write HOST:PORT SECONDS [CONCURRENCY] [ITEMS]
//!
//! Prints what was accepted and refused; refusals under load are backpressure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tapline::event::{Attributes, Span, SpanKind, Value};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::Status;

/// Sends prepared protobuf bytes as the gRPC message, so that the load costs
/// no encoding (tapline's decode is what is measured); ignores the answer.
#[derive(Clone, Copy)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = ();
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, Status> {
        src.advance(src.remaining());
        Ok(Some(()))
    }
}

fn request(spans: usize) -> ExportTraceServiceRequest {
    let attributes: Attributes = [
        ("http.method", Value::from("GET")),
        ("http.url", Value::from("https://api.example.com/orders/4711?expand=items")),
        ("http.host", Value::from("api.example.com")),
        ("http.scheme", Value::from("https")),
        ("http.status_code", Value::Integer(200)),
        ("http.route", Value::from("/orders")),
        ("kong.request.id", Value::from("b7c1f0a2d4e64c0f9a1b2c3d4e5f6a7b")),
        ("net.peer.ip", Value::from("203.0.113.7")),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v))
    .collect();
    let resource: Attributes =
        [("service.name".into(), Value::from("kong")), ("service.instance.id".into(), Value::from("kong-7f9c"))].into_iter().collect();
    let events: Vec<tapline::event::Event> = (0..spans)
        .map(|i| {
            tapline::event::Event::span(Span {
                trace_id: [0x4b; 16],
                span_id: (i as u64 + 1).to_be_bytes(),
                parent_span_id: (i % 4 != 0).then_some([0x1a; 8]),
                name: if i % 4 == 0 { "kong".into() } else { "kong.balancer".into() },
                kind: if i % 4 == 0 { SpanKind::Server } else { SpanKind::Client },
                start_time_unix_nano: 1_732_613_000_121_000_000 + i as u64 * 1000,
                end_time_unix_nano: 1_732_613_000_154_000_000 + i as u64 * 1000,
                attributes: attributes.clone(),
                resource: resource.clone(),
                scope_name: "kong-internal".into(),
                scope_version: "0.1.0".into(),
                ..Default::default()
            })
        })
        .collect();
    tapline::otlp::traces::encode(&events)
}

/// Kong's request counters: ITEMS series over services, routes and codes.
fn remote_write(samples: usize) -> Vec<u8> {
    use tapline::prometheus::proto::{v1, Sample};
    let now = chrono::Utc::now().timestamp_millis();
    let label = |name: &str, value: String| v1::Label { name: name.into(), value };
    let timeseries = (0..samples)
        .map(|i| v1::TimeSeries {
            labels: vec![
                label("__name__", "kong_http_requests_total".into()),
                label("code", ["200", "201", "404", "500", "502"][i % 5].into()),
                label("consumer", format!("consumer-{}", i % 7)),
                label("instance", "kong-7f9c:8100".into()),
                label("job", "kong".into()),
                label("route", format!("route-{}", i / 5 % 20)),
                label("service", format!("service-{}", i / 100)),
                label("source", "service".into()),
                label("workspace", "default".into()),
            ],
            samples: vec![Sample { value: (i * 17) as f64, timestamp: now }],
            ..Default::default()
        })
        .collect();
    snap::raw::Encoder::new().compress_vec(&v1::WriteRequest { timeseries, metadata: vec![] }.encode_to_vec()).unwrap()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [protocol, address, seconds, rest @ ..] = args.as_slice() else {
        eprintln!("usage: load grpc|http|remote-write HOST:PORT SECONDS [CONCURRENCY] [ITEMS]");
        std::process::exit(2);
    };
    let concurrency: usize = rest.first().map_or(8, |c| c.parse().unwrap());
    let items: usize = rest.get(1).map_or(100, |s| s.parse().unwrap());
    let until = Instant::now() + Duration::from_secs(seconds.parse().unwrap());
    let body = Bytes::from(if protocol == "remote-write" { remote_write(items) } else { request(items).encode_to_vec() });
    let (ok, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (ok, refused, body) = (ok.clone(), refused.clone(), body.clone());
        let (protocol, address) = (protocol.clone(), address.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (url, headers) = match protocol.as_str() {
                "remote-write" => {
                    (format!("http://{address}/api/v1/write"), [("content-type", "application/x-protobuf"), ("content-encoding", "snappy")])
                }
                _ => {
                    (format!("http://{address}/v1/traces"), [("content-type", "application/x-protobuf"), ("content-encoding", "identity")])
                }
            };
            let mut grpc = match protocol.as_str() {
                "grpc" => Some(tonic::client::Grpc::new(
                    tonic::transport::Endpoint::from_shared(format!("http://{address}")).unwrap().connect().await.expect("connect"),
                )),
                _ => None,
            };
            let path = PathAndQuery::from_static("/opentelemetry.proto.collector.trace.v1.TraceService/Export");
            while Instant::now() < until {
                let accepted = match &mut grpc {
                    Some(client) => {
                        client.ready().await.is_ok()
                            && client.unary(tonic::Request::new(body.clone()), path.clone(), RawCodec).await.is_ok()
                    }
                    None => http
                        .post(&url)
                        .header(headers[0].0, headers[0].1)
                        .header(headers[1].0, headers[1].1)
                        .body(body.clone())
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success()),
                };
                let counter = if accepted { &ok } else { &refused };
                counter.fetch_add(1, Ordering::Relaxed);
                if !accepted {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let (ok, refused) = (ok.load(Ordering::Relaxed), refused.load(Ordering::Relaxed));
    println!(
        "protocol={protocol} requests_ok={ok} refused={refused} items_ok={} bytes_per_request={} elapsed={:.2}",
        ok * items as u64,
        body.len(),
        started.elapsed().as_secs_f64()
    );
}
