//! Load for `scripts/bench-otlp.sh`: one ExportTraceServiceRequest of SPANS
//! spans like those of Kong's OpenTelemetry plugin, sent again and again over
//! gRPC or HTTP/protobuf with CONCURRENCY requests in flight, for SECONDS.
//!
//!   cargo run --release --example otlp_load -- grpc|http HOST:PORT SECONDS [CONCURRENCY] [SPANS]
//!
//! Prints what was accepted and refused; refusals under load are backpressure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tapline::event::{ObjectMap, Span, SpanKind, Value};
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
    let attributes: ObjectMap = [
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
    let resource: ObjectMap = [("service.name".into(), Value::from("kong")), ("service.instance.id".into(), Value::from("kong-7f9c"))].into_iter().collect();
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

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [protocol, address, seconds, rest @ ..] = args.as_slice() else {
        eprintln!("usage: otlp_load grpc|http HOST:PORT SECONDS [CONCURRENCY] [SPANS]");
        std::process::exit(2);
    };
    let concurrency: usize = rest.first().map_or(8, |c| c.parse().unwrap());
    let spans: usize = rest.get(1).map_or(100, |s| s.parse().unwrap());
    let until = Instant::now() + Duration::from_secs(seconds.parse().unwrap());
    let body = Bytes::from(request(spans).encode_to_vec());
    let (ok, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (ok, refused, body) = (ok.clone(), refused.clone(), body.clone());
        let (protocol, address) = (protocol.clone(), address.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let url = format!("http://{address}/v1/traces");
            let mut grpc = match protocol.as_str() {
                "grpc" => Some(tonic::client::Grpc::new(tonic::transport::Endpoint::from_shared(format!("http://{address}")).unwrap().connect().await.expect("connect"))),
                _ => None,
            };
            let path = PathAndQuery::from_static("/opentelemetry.proto.collector.trace.v1.TraceService/Export");
            while Instant::now() < until {
                let accepted = match &mut grpc {
                    Some(client) => client.ready().await.is_ok() && client.unary(tonic::Request::new(body.clone()), path.clone(), RawCodec).await.is_ok(),
                    None => http.post(&url).header("content-type", "application/x-protobuf").body(body.clone()).send().await.is_ok_and(|r| r.status().is_success()),
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
    println!("protocol={protocol} requests_ok={ok} refused={refused} spans_ok={} bytes_per_request={} elapsed={:.2}", ok * spans as u64, body.len(), started.elapsed().as_secs_f64());
}
