//! HTTP/2 (RFC 9113) over cleartext or TLS plaintext, from the bytes one
//! process wrote and read on one connection: frames reassembled per
//! direction across reads, header blocks (HEADERS + CONTINUATION) decoded
//! with [`hpack`], and each stream's request and response paired into one
//! request record. gRPC calls (content-type `application/grpc…`) are
//! recorded with their `grpc-status`.
//!
//! Promises: bytes missed (a payload cut at `payload_size`, a record the
//! kernel dropped, a jump in the TCP sequence) inside a DATA frame cost
//! nothing; inside a header block they reset that direction's HPACK table
//! (counted); across a frame header they end the parsing of that direction
//! (counted), and its streams time out. Memory per connection is bounded:
//! [`MAX_STREAMS`] streams, header blocks of [`MAX_BLOCK`] bytes.

use percent_encoding::percent_decode_str;
use rustc_hash::FxHashMap;

use super::event::{Direction, Event};
use super::hpack::{self, Field};
use super::http;
use super::session::{given_up, Record, TIMEOUT};
use crate::event::RequestRecord;

/// What a client sends first on a connection it knows speaks HTTP/2.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Streams tracked per connection; beyond it the oldest is given up
/// (servers allow 100 to 128 concurrent streams by default).
pub const MAX_STREAMS: usize = 256;

/// Largest header block kept (HEADERS and its CONTINUATIONs); a larger one
/// is skipped and the HPACK table reset.
pub const MAX_BLOCK: usize = 64 * 1024;

const FRAME_HEADER: usize = 9;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const PUSH_PROMISE: u8 = 0x5;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// What went wrong, summed over all connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Header blocks that did not decode (the table was reset).
    pub header_block_errors: u64,
    /// Bytes missed inside a header block (the table was reset).
    pub header_block_gaps: u64,
    /// Directions whose framing was lost (bytes missed across a frame header).
    pub framing_lost: u64,
    /// Streams given up because the connection had [`MAX_STREAMS`] open.
    pub streams_given_up: u64,
    /// Responses on a stream with no request seen.
    pub unmatched_responses: u64,
}

/// What a connection's parser needs from the session around it.
pub struct Context<'a> {
    pub request_id_headers: &'a [String],
    pub counters: &'a mut Counters,
    /// A request's record with what the connection and the frame that
    /// started it say (process, addresses, time, sequence numbers).
    pub new_record: &'a mut dyn FnMut(At) -> Record,
    pub out: &'a mut Vec<Record>,
}

/// The payload starts with the client preface.
pub fn starts_with_preface(payload: &[u8]) -> bool {
    payload.starts_with(PREFACE)
}

/// One connection, as one process sees it.
#[derive(Debug)]
pub struct Connection {
    /// Indexed by [`Direction`]: egress, ingress.
    ways: [Way; 2],
    /// The way requests travel: egress for a client, ingress for a server.
    requests: Direction,
    streams: FxHashMap<u32, Stream>,
}

/// Where and when a frame started: what its record takes from the read or
/// write that held its first byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct At {
    pub wall_ns: u64,
    /// Of the frame's first byte; 0 when unknown (TLS plaintext).
    pub tcp_seq: u32,
    pub syscall_trace_id: u64,
    pub tid: u32,
}

#[derive(Debug, Default)]
struct Way {
    hpack: hpack::Decoder,
    /// Preface bytes still to pass over.
    preface_left: usize,
    /// The frame header being read.
    head: Vec<u8>,
    head_at: At,
    frame: Option<Frame>,
    /// A header block waiting for its CONTINUATION frames.
    block: Option<Block>,
    /// The TCP sequence number the next read or write should start at.
    next_seq: Option<u32>,
    /// Bytes were missed across a frame header: nothing more is read this way.
    lost: bool,
}

#[derive(Debug)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    len: usize,
    /// Payload bytes still to come.
    left: usize,
    /// Header-bearing frames keep their payload; the others are only counted.
    payload: Option<Vec<u8>>,
    /// Some payload bytes were missed.
    missed: bool,
    at: At,
}

#[derive(Debug)]
struct Block {
    stream: u32,
    fragments: Vec<u8>,
    end_stream: bool,
    push: bool,
    missed: bool,
    /// Bytes of its frames on the wire, headers included.
    wire: u64,
    at: At,
}

#[derive(Debug)]
struct Stream {
    record: Record,
    wall_ns: u64,
    grpc: bool,
    /// A final (not 1xx) response header block was seen.
    answered: bool,
}

impl Connection {
    /// A connection whose preface was seen going `requests`.
    pub fn new(requests: Direction) -> Connection {
        let mut ways = [Way::default(), Way::default()];
        ways[requests as usize].preface_left = PREFACE.len();
        Connection { ways, requests, streams: FxHashMap::default() }
    }

    /// A connection upgraded from HTTP/1.1 (h2c): the request that asked for
    /// it, with `record` begun at `wall_ns`, is stream 1 and is answered in
    /// HTTP/2; the client's preface comes next.
    pub fn upgraded(requests: Direction, mut record: Record, wall_ns: u64) -> Connection {
        let mut connection = Connection::new(requests);
        record.protocol = "http2".into();
        connection.streams.insert(1, Stream { record, wall_ns, grpc: false, answered: false });
        connection
    }

    /// No stream waits for its response.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// One read or write on the connection.
    pub fn on_data(&mut self, event: &Event, wall_ns: u64, cx: &mut Context) {
        let way = event.direction as usize;
        if self.ways[way].lost {
            return;
        }
        let seq = (!event.tls && event.tcp_seq != 0).then_some(event.tcp_seq);
        let mut payload = event.payload;
        let mut missing = (event.bytes as usize).saturating_sub(payload.len());
        if let (Some(expected), Some(seq)) = (self.ways[way].next_seq, seq) {
            let jump = seq.wrapping_sub(expected) as i32;
            if jump > 0 {
                // Bytes no record carried (dropped, or moved by a call not traced).
                self.skip(way, jump as usize, wall_ns, cx);
            } else if jump < 0 {
                // Bytes already seen (a read that peeked first): pass over them.
                let seen = jump.unsigned_abs() as usize;
                payload = payload.get(seen..).unwrap_or_default();
                missing = missing.saturating_sub(seen.saturating_sub(event.payload.len()));
            }
        }
        if let Some(seq) = seq {
            // Never back: a read wholly seen before ends before what is expected.
            let end = seq.wrapping_add(event.bytes);
            let w = &mut self.ways[way];
            if w.next_seq.is_none_or(|expected| end.wrapping_sub(expected) as i32 > 0) {
                w.next_seq = Some(end);
            }
        }
        let offset = event.payload.len() - payload.len();
        self.read(way, payload, offset, event, wall_ns, cx);
        if missing > 0 {
            self.skip(way, missing, wall_ns, cx);
        }
    }

    /// Bytes of this way, `offset` bytes into the event's payload.
    fn read(&mut self, way: usize, bytes: &[u8], offset: usize, event: &Event, wall_ns: u64, cx: &mut Context) {
        let mut at = 0;
        while at < bytes.len() && !self.ways[way].lost {
            let w = &mut self.ways[way];
            if w.preface_left > 0 {
                let n = w.preface_left.min(bytes.len() - at);
                w.preface_left -= n;
                at += n;
                continue;
            }
            match &mut w.frame {
                None => {
                    if w.head.is_empty() {
                        let seq = if event.tls || event.tcp_seq == 0 { 0 } else { event.tcp_seq.wrapping_add((offset + at) as u32) };
                        w.head_at = At { wall_ns, tcp_seq: seq, syscall_trace_id: event.syscall_trace_id, tid: event.tid };
                    }
                    let n = (FRAME_HEADER - w.head.len()).min(bytes.len() - at);
                    w.head.extend_from_slice(&bytes[at..at + n]);
                    at += n;
                    if w.head.len() == FRAME_HEADER {
                        let frame = frame_header(&w.head, w.head_at);
                        w.head.clear();
                        if frame.left == 0 {
                            self.finish(way, frame, wall_ns, cx);
                        } else {
                            self.ways[way].frame = Some(frame);
                        }
                    }
                }
                Some(frame) => {
                    let n = frame.left.min(bytes.len() - at);
                    if let Some(payload) = &mut frame.payload {
                        payload.extend_from_slice(&bytes[at..at + n]);
                    }
                    frame.left -= n;
                    at += n;
                    if frame.left == 0 {
                        if let Some(frame) = w.frame.take() {
                            self.finish(way, frame, wall_ns, cx);
                        }
                    }
                }
            }
        }
    }

    /// `n` bytes of this way were missed.
    fn skip(&mut self, way: usize, mut n: usize, wall_ns: u64, cx: &mut Context) {
        while n > 0 && !self.ways[way].lost {
            let w = &mut self.ways[way];
            if w.preface_left > 0 {
                let k = w.preface_left.min(n);
                w.preface_left -= k;
                n -= k;
                continue;
            }
            let Some(frame) = &mut w.frame else {
                // Inside a frame header: where frames start is no longer known.
                w.lost = true;
                cx.counters.framing_lost += 1;
                return;
            };
            let k = frame.left.min(n);
            frame.left -= k;
            n -= k;
            if frame.payload.is_some() {
                frame.missed = true;
            }
            if frame.left == 0 {
                if let Some(frame) = w.frame.take() {
                    self.finish(way, frame, wall_ns, cx);
                }
            }
        }
    }

    /// A whole frame has been read.
    fn finish(&mut self, way: usize, frame: Frame, wall_ns: u64, cx: &mut Context) {
        let wire = (FRAME_HEADER + frame.len) as u64;
        let waiting = self.ways[way].block.is_some();
        if waiting && frame.kind != CONTINUATION {
            // A block cut short: its fields, and what they added to the table, are lost.
            self.ways[way].block = None;
            self.header_block_lost(way, cx);
        }
        match frame.kind {
            DATA if frame.stream != 0 => {
                if let Some(stream) = self.streams.get_mut(&frame.stream) {
                    add(size_of(&mut stream.record, way == self.requests as usize), wire);
                }
                if frame.flags & END_STREAM != 0 {
                    self.end_stream(way, frame.stream, wall_ns, cx);
                }
            }
            HEADERS | PUSH_PROMISE => {
                let fragment = frame.payload.as_deref().and_then(|payload| fragment(frame.kind, frame.flags, payload));
                let block = Block {
                    stream: frame.stream,
                    fragments: fragment.map(<[u8]>::to_vec).unwrap_or_default(),
                    end_stream: frame.kind == HEADERS && frame.flags & END_STREAM != 0,
                    push: frame.kind == PUSH_PROMISE,
                    missed: frame.missed || fragment.is_none(),
                    wire,
                    at: frame.at,
                };
                self.ways[way].block = Some(block);
                if frame.flags & END_HEADERS != 0 {
                    self.decode_block(way, wall_ns, cx);
                }
            }
            CONTINUATION => {
                let Some(block) = &mut self.ways[way].block else {
                    // Its HEADERS was missed.
                    self.header_block_lost(way, cx);
                    return;
                };
                match &frame.payload {
                    Some(payload) if block.fragments.len() + payload.len() <= MAX_BLOCK && block.stream == frame.stream => {
                        block.fragments.extend_from_slice(payload)
                    }
                    _ => block.missed = true,
                }
                block.missed |= frame.missed;
                block.wire += wire;
                if frame.flags & END_HEADERS != 0 {
                    self.decode_block(way, wall_ns, cx);
                }
            }
            RST_STREAM => {
                if let Some(mut stream) = self.streams.remove(&frame.stream) {
                    let code = frame.payload.as_deref().filter(|_| !frame.missed).and_then(|p| p.get(..4));
                    let code = code.map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                    stream.record.error = Some(format!("stream reset: {}", code.map_or("unknown code".into(), reset_reason)));
                    stream.record.duration_us = Some(wall_ns.saturating_sub(stream.wall_ns) / 1000);
                    cx.out.push(stream.record);
                }
            }
            // SETTINGS, PING, GOAWAY, WINDOW_UPDATE, PRIORITY and extensions say nothing about a request.
            _ => {}
        }
    }

    /// The HPACK state of this way is unknown from here.
    fn header_block_lost(&mut self, way: usize, cx: &mut Context) {
        self.ways[way].hpack.reset();
        cx.counters.header_block_gaps += 1;
    }

    /// A whole header block: decoded, then applied to its stream. Its
    /// END_STREAM flag counts even when it cannot be decoded.
    fn decode_block(&mut self, way: usize, wall_ns: u64, cx: &mut Context) {
        let Some(block) = self.ways[way].block.take() else { return };
        if block.missed {
            self.header_block_lost(way, cx);
        } else {
            match self.ways[way].hpack.decode(&block.fragments) {
                // A promised request's headers matter only to the table, updated by decoding.
                Ok(_) if block.push => return,
                Ok(fields) => self.apply(way, &block, &fields, cx),
                Err(e) => {
                    cx.counters.header_block_errors += 1;
                    tracing::debug!("HTTP/2 header block not decoded: {e}");
                }
            }
        }
        if block.end_stream {
            self.end_stream(way, block.stream, wall_ns, cx);
        }
    }

    /// A decoded block opens a stream (a request), answers one (a response),
    /// or ends one (trailers).
    fn apply(&mut self, way: usize, block: &Block, fields: &[Field], cx: &mut Context) {
        if way == self.requests as usize {
            match self.streams.get_mut(&block.stream) {
                Some(stream) => add(&mut stream.record.request_size, block.wire),
                None => self.open(block, fields, cx),
            }
        } else {
            match self.streams.get_mut(&block.stream) {
                Some(stream) => respond(stream, block, fields, cx.request_id_headers),
                None => cx.counters.unmatched_responses += 1,
            }
        }
    }

    /// A request's header block opens its stream.
    fn open(&mut self, block: &Block, fields: &[Field], cx: &mut Context) {
        let pseudo = |name: &str| field(fields, name);
        let Some(method) = pseudo(":method") else { return };
        if self.streams.len() >= MAX_STREAMS {
            // Client stream ids grow: the lowest is the oldest.
            if let Some(oldest) = self.streams.keys().min().copied().and_then(|oldest| self.streams.remove(&oldest)) {
                cx.counters.streams_given_up += 1;
                cx.out.push(given_up(oldest.record, TIMEOUT, None));
            }
        }
        let (headers, host) = headers(fields, cx.request_id_headers);
        let (path, query) = pseudo(":path").map(|target| http::split_target(&target)).unzip();
        let grpc = field(fields, "content-type").is_some_and(|t| t.starts_with("application/grpc"));
        let mut record = (cx.new_record)(block.at);
        record.protocol = if grpc { "grpc" } else { "http2" }.into();
        record.method = Some(method);
        record.host = pseudo(":authority").or(host);
        record.endpoint.clone_from(&path);
        record.path = path;
        record.query = query.flatten();
        record.request_size = Some(block.wire);
        (record.trace_id, record.parent_span_id) = super::session::trace_of(&headers).unzip();
        record.request_id = headers.request_id;
        self.streams.insert(block.stream, Stream { record, wall_ns: block.at.wall_ns, grpc, answered: false });
    }

    /// The stream ends this way; a response that ends completes its record.
    fn end_stream(&mut self, way: usize, stream: u32, wall_ns: u64, cx: &mut Context) {
        if way == self.requests as usize {
            return;
        }
        if let Some(mut stream) = self.streams.remove(&stream) {
            stream.record.duration_us = Some(wall_ns.saturating_sub(stream.wall_ns) / 1000);
            if !stream.answered && stream.record.error.is_none() {
                stream.record.error = Some(NO_RESPONSE_HEADERS.into());
            }
            cx.out.push(stream.record);
        }
    }

    /// The connection closed: its open streams get `error` (measured up to `wall_ns`).
    pub fn close(self, wall_ns: u64, error: &str, out: &mut Vec<Record>) {
        let mut streams: Vec<(u32, Stream)> = self.streams.into_iter().collect();
        streams.sort_by_key(|(id, _)| *id);
        out.extend(streams.into_iter().map(|(_, stream)| {
            let duration_us = Some(wall_ns.saturating_sub(stream.wall_ns) / 1000);
            given_up(stream.record, error, duration_us)
        }));
    }

    /// Streams opened before `stale` says are given up as timed out.
    pub fn expire(&mut self, stale: impl Fn(u64) -> bool, out: &mut Vec<Record>) {
        let mut expired: Vec<u32> = self.streams.iter().filter(|(_, s)| stale(s.wall_ns)).map(|(id, _)| *id).collect();
        expired.sort_unstable();
        for id in expired {
            if let Some(stream) = self.streams.remove(&id) {
                out.push(given_up(stream.record, TIMEOUT, None));
            }
        }
    }
}

/// A response stream that ended with no final header block decoded.
const NO_RESPONSE_HEADERS: &str = "response headers not decoded";

/// The frame a complete 9-byte header announces (RFC 9113 §4.1).
fn frame_header(head: &[u8], at: At) -> Frame {
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let kind = head[3];
    let keep = matches!(kind, HEADERS | CONTINUATION | PUSH_PROMISE | RST_STREAM) && len <= MAX_BLOCK;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let too_large = matches!(kind, HEADERS | CONTINUATION | PUSH_PROMISE) && len > MAX_BLOCK;
    Frame { kind, flags: head[4], stream, len, left: len, payload: keep.then(|| Vec::with_capacity(len)), missed: too_large, at }
}

/// The header block fragment of a HEADERS or PUSH_PROMISE payload: without
/// its padding, priority fields or promised stream id. None when those do
/// not fit in the payload.
fn fragment(kind: u8, flags: u8, payload: &[u8]) -> Option<&[u8]> {
    let (pad, mut body) = if flags & PADDED != 0 { (usize::from(*payload.first()?), &payload[1..]) } else { (0, payload) };
    if kind == HEADERS && flags & PRIORITY != 0 {
        body = body.get(5..)?;
    }
    if kind == PUSH_PROMISE {
        body = body.get(4..)?;
    }
    body.get(..body.len().checked_sub(pad)?)
}

/// The first field of that name, as text.
fn field(fields: &[Field], name: &str) -> Option<String> {
    fields.iter().find(|(n, _)| n == name.as_bytes()).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

/// The headers the HTTP/1 path reads (trace context, request ids, host).
fn headers(fields: &[Field], request_id_headers: &[String]) -> (http::Headers, Option<String>) {
    let list: Vec<httparse::Header> =
        fields.iter().filter_map(|(name, value)| Some(httparse::Header { name: std::str::from_utf8(name).ok()?, value })).collect();
    http::extract(&list, None, request_id_headers)
}

/// A response header block (headers or trailers) on its stream.
fn respond(stream: &mut Stream, block: &Block, fields: &[Field], request_id_headers: &[String]) {
    let record = &mut stream.record;
    add(&mut record.response_size, block.wire);
    if let Some(status) = field(fields, ":status").and_then(|s| s.parse::<u16>().ok()) {
        // Interim responses (100 Continue, 103 Early Hints) do not answer the request.
        if (100..200).contains(&status) {
            return;
        }
        if !stream.answered {
            stream.answered = true;
            record.status = Some(status);
            record.tcp_seq_response = (block.at.tcp_seq != 0).then_some(block.at.tcp_seq);
            record.syscall_trace_id_response = (block.at.syscall_trace_id != 0).then_some(block.at.syscall_trace_id);
            record.response_request_id = headers(fields, request_id_headers).0.request_id;
        }
    }
    if !stream.grpc {
        return;
    }
    // Trailers, or the headers of a trailers-only response.
    if let Some(code) = field(fields, "grpc-status").and_then(|s| s.trim().parse::<u16>().ok()) {
        stream.answered = true;
        record.status = Some(code);
        record.error = (code != 0).then(|| {
            let name = grpc_status_name(code).map_or_else(|| format!("grpc-status {code}"), str::to_string);
            match field(fields, "grpc-message").filter(|m| !m.is_empty()) {
                Some(message) => format!("{name}: {}", percent_decode_str(&message).decode_utf8_lossy()),
                None => name,
            }
        });
    }
}

fn size_of(record: &mut RequestRecord, request: bool) -> &mut Option<u64> {
    if request {
        &mut record.request_size
    } else {
        &mut record.response_size
    }
}

fn add(size: &mut Option<u64>, bytes: u64) {
    *size = Some(size.unwrap_or(0).saturating_add(bytes));
}

/// The canonical names of gRPC status codes (grpc/doc/statuscodes.md).
fn grpc_status_name(code: u16) -> Option<&'static str> {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(usize::from(code)).copied()
}

/// RST_STREAM's error code, by its RFC 9113 §7 name.
fn reset_reason(code: u32) -> String {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    NAMES.get(code as usize).map_or_else(|| format!("code {code}"), |name| name.to_string())
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::super::session::testing::*;
    use super::*;
    use crate::event::{ObservationPoint, SignalSource};

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut bytes = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        bytes.extend_from_slice(&stream.to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    /// A literal field without indexing, plain strings (RFC 7541 §6.2.2).
    fn literal(name: &str, value: &str) -> Vec<u8> {
        [&[0x00, name.len() as u8][..], name.as_bytes(), &[value.len() as u8], value.as_bytes()].concat()
    }

    /// A literal field added to the dynamic table (§6.2.1).
    fn indexing(name: &str, value: &str) -> Vec<u8> {
        [&[0x40, name.len() as u8][..], name.as_bytes(), &[value.len() as u8], value.as_bytes()].concat()
    }

    fn block(fields: &[(&str, &str)]) -> Vec<u8> {
        fields.iter().flat_map(|(n, v)| literal(n, v)).collect()
    }

    fn settings() -> Vec<u8> {
        frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100])
    }

    /// curl's end of a connection to port 8443.
    fn curl() -> Peer {
        Peer { tid: 78, comm: "curl", ..Peer::new((40000, 8443)) }
    }

    fn summary(records: &[Record]) -> Vec<(String, Option<u16>, Option<String>)> {
        records.iter().map(|r| (r.path.clone().unwrap_or_default(), r.status, r.error.clone())).collect()
    }

    #[test]
    fn a_client_stream_over_prior_knowledge() {
        let mut peer = curl();
        let request_block = block(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/orders/7?verbose=1"),
            (":authority", "shop.local:8443"),
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("x-request-id", "req-9"),
        ]);
        let headers = frame(HEADERS, END_HEADERS | END_STREAM, 1, &request_block);
        // curl writes the preface and its SETTINGS, then the request.
        peer.send(&[PREFACE, &settings()].concat(), T0);
        peer.send(&headers, T0 + MS);
        let response_block = block(&[(":status", "200"), ("x-request-id", "resp-9")]);
        let response = [settings(), frame(HEADERS, END_HEADERS, 1, &response_block), frame(DATA, END_STREAM, 1, b"hello")].concat();
        peer.receive(&response, T0 + 4 * MS);
        let records = peer.take();
        let expected = RequestRecord {
            time: DateTime::from_timestamp_nanos((T0 + MS) as i64),
            observation_point: ObservationPoint::ClientProcess,
            signal_source: SignalSource::Ebpf,
            protocol: "http2".into(),
            method: Some("GET".into()),
            host: Some("shop.local:8443".into()),
            path: Some("/orders/7".into()),
            query: Some("verbose=1".into()),
            endpoint: Some("/orders/7".into()),
            status: Some(200),
            duration_us: Some(3000),
            request_size: Some(headers.len() as u64),
            response_size: Some((9 + response_block.len() + 9 + 5) as u64),
            trace_id: Some("0af7651916cd43dd8448eb211c80319c".into()),
            parent_span_id: Some("b7ad6b7169203331".into()),
            request_id: Some("req-9".into()),
            response_request_id: Some("resp-9".into()),
            client_ip: Some("127.0.0.1".into()),
            client_port: Some(40000),
            server_ip: Some("127.0.0.1".into()),
            server_port: Some(8443),
            pid: Some(PID),
            thread_id: Some(78),
            process_name: Some("curl".into()),
            // The first byte of each HEADERS frame: after the preface and SETTINGS, after the SETTINGS.
            tcp_seq_request: Some(OUT_SEQ + 24 + 15),
            tcp_seq_response: Some(IN_SEQ + 15),
            ..RequestRecord::default()
        };
        assert_eq!(records, [Box::new(expected)]);
        assert_eq!(peer.sessions.take_http2_counters(), Counters::default());
        // The connection is known as HTTP/2 until it closes.
        assert_eq!(peer.sessions.len(), 1);
    }

    /// An HTTP/1.1 request asking for h2c, and the server's answer: a 101, then
    /// HTTP/2 with that request's response on stream 1.
    fn upgrade() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let request = b"GET /up?x=1 HTTP/1.1\r\nHost: shop.local\r\nConnection: Upgrade, HTTP2-Settings\r\n\
                        Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nX-Request-ID: req-1\r\n\r\n";
        let switching = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
        let answer = [
            settings(),
            frame(HEADERS, END_HEADERS, 1, &block(&[(":status", "200"), ("x-request-id", "req-1")])),
            frame(DATA, END_STREAM, 1, b"hello"),
        ]
        .concat();
        (request.to_vec(), switching, answer)
    }

    #[test]
    fn an_upgrade_to_h2c_answers_its_request_on_stream_1() {
        let (request, switching, answer) = upgrade();
        let next = frame(HEADERS, END_HEADERS | END_STREAM, 3, &block(&[(":method", "GET"), (":path", "/next")]));
        let next_answer = frame(HEADERS, END_HEADERS | END_STREAM, 3, &block(&[(":status", "404")]));
        // The client: the 101 and the first frames in one read, then its preface and a second request.
        let mut client = curl();
        client.send(&request, T0);
        client.receive(&[&switching[..], &answer].concat(), T0 + 2 * MS);
        client.send(&[PREFACE, &settings(), &next].concat(), T0 + 3 * MS);
        client.receive(&next_answer, T0 + 4 * MS);
        // The server: the 101 and the frames in writes of their own.
        let mut server = Peer { tid: 90, comm: "h2c", ..Peer::new((8443, 40000)) };
        server.receive(&request, T0);
        server.send(&switching, T0 + MS);
        server.send(&answer, T0 + MS);
        server.receive(&[PREFACE, &settings(), &next].concat(), T0 + 3 * MS);
        server.send(&next_answer, T0 + 3 * MS);
        // (peer, each stream's latency in ms, the way its requests came)
        let ends = [(&mut client, (2, 1), (OUT_SEQ, IN_SEQ)), (&mut server, (1, 0), (IN_SEQ, OUT_SEQ))];
        for (peer, (first_ms, next_ms), (request_seq, response_seq)) in ends {
            let records = peer.take();
            let seen: Vec<_> = records
                .iter()
                .map(|r| (r.protocol.as_str(), r.method.as_deref(), r.path.as_deref(), r.query.as_deref(), r.status, r.duration_us))
                .collect();
            let (first_us, next_us) = (first_ms * 1000, next_ms * 1000);
            assert_eq!(
                seen,
                [
                    ("http2", Some("GET"), Some("/up"), Some("x=1"), Some(200), Some(first_us)),
                    ("http2", Some("GET"), Some("/next"), None, Some(404), Some(next_us))
                ]
            );
            let first = &records[0];
            assert_eq!((first.request_id.as_deref(), first.response_request_id.as_deref()), (Some("req-1"), Some("req-1")));
            assert_eq!(first.request_size, Some(request.len() as u64));
            assert_eq!(first.response_size, Some((switching.len() + answer.len() - settings().len()) as u64));
            // The request's first byte, and the response's HEADERS frame (as on prior knowledge).
            assert_eq!(first.tcp_seq_request, Some(request_seq));
            assert_eq!(first.tcp_seq_response, Some(response_seq + (switching.len() + settings().len()) as u32));
            assert_eq!(peer.sessions.take_http2_counters(), Counters::default());
            assert_eq!(peer.sessions.unmatched_responses, 0);
        }
        // A server that does not upgrade answers in HTTP/1.1: so the connection stays.
        let mut refused = curl();
        refused.send(&request, T0);
        refused.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", T0 + MS);
        refused.send(&request, T0 + 2 * MS);
        refused.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", T0 + 3 * MS);
        let records = refused.take();
        assert_eq!(records.iter().map(|r| (r.protocol.as_str(), r.status)).collect::<Vec<_>>(), [("http", Some(200)); 2]);
    }

    #[test]
    fn frames_cut_anywhere_continuation_padding_priority_and_the_dynamic_table() {
        // The same exchanges, after the preface, in reads of every size from 1 to 40 bytes.
        for piece in 1..=40 {
            let mut peer = curl();
            peer.send(PREFACE, T0);
            // First request: the authority goes into the dynamic table; the block is cut into
            // HEADERS (padded, with priority) and a CONTINUATION.
            let first =
                [literal(":method", "GET"), literal(":path", "/one"), indexing(":authority", "api.local"), literal("x-request-id", "id-1")]
                    .concat();
            let (a, b) = first.split_at(10);
            let mut headers = vec![3u8]; // pad length
            headers.extend_from_slice(&[0, 0, 0, 0, 16]); // priority: dependency and weight
            headers.extend_from_slice(a);
            headers.extend_from_slice(&[0, 0, 0]);
            let mut out = [settings(), frame(HEADERS, END_STREAM | PADDED | PRIORITY, 1, &headers)].concat();
            out.extend(frame(CONTINUATION, END_HEADERS, 1, b));
            // Second request: the authority by its dynamic index (62), a body in DATA.
            let second = [literal(":method", "POST"), literal(":path", "/two?x=y"), vec![0xbe]].concat();
            out.extend(frame(HEADERS, END_HEADERS, 3, &second));
            out.extend(frame(DATA, PADDED, 3, &[2, b'a', b'b', 0, 0]));
            out.extend(frame(DATA, END_STREAM, 3, b"cd"));
            // The responses, stream 3's first, its status by the static table (8: 200; 13: 404).
            let back = [
                settings(),
                frame(HEADERS, END_HEADERS, 3, &[0x88]),
                frame(DATA, END_STREAM, 3, b"{}"),
                frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0x8d]),
            ]
            .concat();
            for (n, chunk) in out.chunks(piece).enumerate() {
                peer.send(chunk, T0 + n as u64);
            }
            for chunk in back.chunks(piece) {
                peer.receive(chunk, T0 + 10 * MS);
            }
            let records = peer.take();
            assert_eq!(summary(&records), [("/two".into(), Some(200), None), ("/one".into(), Some(404), None)], "pieces of {piece}");
            assert_eq!(records[0].host.as_deref(), Some("api.local"));
            assert_eq!(records[0].query.as_deref(), Some("x=y"));
            assert_eq!(records[0].method.as_deref(), Some("POST"));
            assert_eq!(records[0].request_size, Some((9 + second.len() + 9 + 5 + 9 + 2) as u64));
            assert_eq!(records[1].request_id.as_deref(), Some("id-1"));
            assert_eq!(records[1].request_size, Some((9 + headers.len() + 9 + b.len()) as u64));
            assert_eq!(peer.sessions.take_http2_counters(), Counters::default());
        }
    }

    #[test]
    fn a_server_sees_requests_come_in() {
        let mut peer = curl();
        let request = block(&[(":method", "GET"), (":path", "/"), (":authority", "x")]);
        peer.receive(&[PREFACE, &settings(), &frame(HEADERS, END_HEADERS | END_STREAM, 1, &request)].concat(), T0);
        peer.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0x89]), T0 + 2 * MS);
        let records = peer.take();
        assert_eq!(summary(&records), [("/".into(), Some(204), None)]);
        assert_eq!(records[0].observation_point, ObservationPoint::ServerProcess);
        assert_eq!((records[0].server_port, records[0].client_port), (Some(40000), Some(8443)));
        assert_eq!(records[0].duration_us, Some(2000));
    }

    /// A gRPC call's request headers on `stream`.
    fn grpc_call(stream: u32, method: &str) -> Vec<u8> {
        let fields = block(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", method),
            (":authority", "localhost:50051"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]);
        [frame(HEADERS, END_HEADERS, stream, &fields), frame(DATA, END_STREAM, stream, &[0, 0, 0, 0, 2, 8, 1])].concat()
    }

    #[test]
    fn grpc_status_from_trailers() {
        let mut peer = curl();
        peer.send(&[PREFACE, &settings()].concat(), T0);
        peer.send(&grpc_call(1, "/shop.Catalog/GetItem"), T0);
        peer.send(&grpc_call(3, "/shop.Catalog/GetItem"), T0);
        peer.send(&grpc_call(5, "/shop.Catalog/Remove"), T0);
        let headers = block(&[(":status", "200"), ("content-type", "application/grpc")]);
        // Stream 1: a message, then trailers with status 0.
        peer.receive(&frame(HEADERS, END_HEADERS, 1, &headers), T0 + MS);
        peer.receive(&frame(DATA, 0, 1, &[0, 0, 0, 0, 1, 9]), T0 + MS);
        let ok = block(&[("grpc-status", "0")]);
        peer.receive(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &ok), T0 + 2 * MS);
        // Stream 3: NOT_FOUND with a percent-encoded message.
        peer.receive(&frame(HEADERS, END_HEADERS, 3, &headers), T0 + 3 * MS);
        let trailers = block(&[("grpc-status", "5"), ("grpc-message", "no item 7%3A gone")]);
        peer.receive(&frame(HEADERS, END_HEADERS | END_STREAM, 3, &trailers), T0 + 3 * MS);
        // Stream 5: trailers-only, UNIMPLEMENTED.
        let only = block(&[(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "12")]);
        peer.receive(&frame(HEADERS, END_HEADERS | END_STREAM, 5, &only), T0 + 4 * MS);
        let records = peer.take();
        assert_eq!(
            summary(&records),
            [
                ("/shop.Catalog/GetItem".into(), Some(0), None),
                ("/shop.Catalog/GetItem".into(), Some(5), Some("NOT_FOUND: no item 7: gone".into())),
                ("/shop.Catalog/Remove".into(), Some(12), Some("UNIMPLEMENTED".into())),
            ]
        );
        assert!(records.iter().all(|r| r.protocol == "grpc" && r.method.as_deref() == Some("POST")));
        assert_eq!(records.iter().map(|r| r.duration_us.unwrap()).collect::<Vec<_>>(), [2000, 3000, 4000]);
        assert_eq!(records[0].endpoint.as_deref(), Some("/shop.Catalog/GetItem"));
        assert_eq!(records[0].response_size, Some((9 + headers.len() + 9 + 6 + 9 + ok.len()) as u64));
    }

    #[test]
    fn a_reset_stream_and_a_closed_connection() {
        let mut peer = curl();
        let get = |path: &str| block(&[(":method", "GET"), (":path", path)]);
        peer.send(&[PREFACE, &settings()].concat(), T0);
        peer.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &get("/cancelled")), T0);
        peer.send(&frame(HEADERS, END_HEADERS | END_STREAM, 3, &get("/pending")), T0);
        peer.send(&frame(RST_STREAM, 0, 1, &8u32.to_be_bytes()), T0 + 5 * MS);
        let reset = peer.take();
        assert_eq!(summary(&reset), [("/cancelled".into(), None, Some("stream reset: CANCEL".into()))]);
        assert_eq!(reset[0].duration_us, Some(5000));
        let closed = peer.sessions.on_close(SOCKET, T0 + 7 * MS);
        assert_eq!(summary(&closed), [("/pending".into(), None, Some("connection closed before a response".into()))]);
        assert!(peer.sessions.is_empty());
    }

    #[test]
    fn expire_gives_up_on_streams_without_a_response() {
        let mut peer = curl();
        peer.send(&[PREFACE, &settings()].concat(), T0);
        peer.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block(&[(":method", "GET"), (":path", "/slow")])), T0);
        assert!(peer.sessions.expire(T0 + 4 * MS, 5 * MS).is_empty());
        assert_eq!(peer.sessions.len(), 1);
        let records = peer.sessions.expire(T0 + 6 * MS, 5 * MS);
        assert_eq!(summary(&records), [("/slow".into(), None, Some("timeout".into()))]);
        // Idle past the timeout with nothing open: forgotten.
        assert!(peer.sessions.is_empty());
    }

    #[test]
    fn bytes_missed_in_data_cost_nothing_across_a_frame_header_they_end_the_parsing() {
        let mut peer = curl();
        peer.send(&[PREFACE, &settings()].concat(), T0);
        let get = block(&[(":method", "GET"), (":path", "/big")]);
        peer.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &get), T0);
        peer.receive(&frame(HEADERS, END_HEADERS, 1, &[0x88]), T0 + MS);
        // A 10000-byte DATA frame of which the capture kept 100 bytes; END_STREAM in the next read.
        let data = frame(DATA, 0, 1, &[7; 10_000]);
        peer.call(Direction::Ingress, &data[..100], data.len(), T0 + 2 * MS);
        peer.receive(&frame(DATA, END_STREAM, 1, b"end"), T0 + 3 * MS);
        // A read the kernel dropped (a jump in the sequence numbers) inside a DATA frame.
        peer.send(&frame(HEADERS, END_HEADERS | END_STREAM, 3, &get), T0 + 4 * MS);
        peer.receive(&frame(HEADERS, END_HEADERS, 3, &[0x88]), T0 + 5 * MS);
        let data = frame(DATA, END_STREAM, 3, &[1; 3000]);
        peer.receive(&data[..1000], T0 + 6 * MS);
        peer.seq[1] += 1000;
        peer.receive(&data[2000..], T0 + 7 * MS);
        let records = peer.take();
        assert_eq!(summary(&records), [("/big".into(), Some(200), None), ("/big".into(), Some(200), None)]);
        assert_eq!(records.iter().map(|r| r.response_size.unwrap()).collect::<Vec<_>>(), [10 + 10_009 + 12, 10 + 3009]);
        assert_eq!(peer.sessions.take_http2_counters(), Counters::default());

        // Missed bytes that held a frame header: the responses are no longer read.
        peer.send(&frame(HEADERS, END_HEADERS | END_STREAM, 5, &get), T0 + 8 * MS);
        let two = [frame(DATA, 0, 0, &[0; 50]), frame(HEADERS, END_HEADERS | END_STREAM, 5, &[0x88])].concat();
        peer.call(Direction::Ingress, &two[..20], two.len(), T0 + 9 * MS);
        peer.receive(&frame(HEADERS, END_HEADERS | END_STREAM, 5, &[0x88]), T0 + 10 * MS);
        assert!(peer.take().is_empty());
        assert_eq!(peer.sessions.take_http2_counters(), Counters { framing_lost: 1, ..Counters::default() });
        let closed = peer.sessions.on_close(SOCKET, T0 + 11 * MS);
        assert_eq!(summary(&closed), [("/big".into(), None, Some("connection closed before a response".into()))]);
    }

    #[test]
    fn bytes_read_twice_are_parsed_once() {
        // A reader that peeks (MSG_PEEK) then reads: two events, one sequence number.
        let mut peer = curl();
        peer.send(&[PREFACE, &settings()].concat(), T0);
        peer.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block(&[(":method", "GET"), (":path", "/peek")])), T0);
        let response = [frame(HEADERS, END_HEADERS, 1, &[0x88]), frame(DATA, END_STREAM, 1, b"ok")].concat();
        peer.receive(&response[..12], T0 + MS);
        peer.seq[1] = IN_SEQ;
        peer.receive(&response, T0 + 2 * MS);
        let records = peer.take();
        assert_eq!(summary(&records), [("/peek".into(), Some(200), None)]);
        assert_eq!((records[0].response_size, records[0].duration_us), (Some(response.len() as u64), Some(2000)));
        assert_eq!(peer.sessions.take_http2_counters(), Counters::default());
    }

    #[test]
    fn a_header_block_with_bytes_missed_resets_the_table() {
        let mut peer = curl();
        peer.send(&[PREFACE, &settings()].concat(), T0);
        // The first request adds its authority to the table; the capture keeps only part of the frame.
        let first = [literal(":method", "GET"), literal(":path", "/a"), indexing(":authority", "lost.example")].concat();
        let headers = frame(HEADERS, END_HEADERS | END_STREAM, 1, &first);
        peer.call(Direction::Egress, &headers[..20], headers.len(), T0);
        // The second refers to it by index: the decoder must not guess.
        let second = [literal(":method", "GET"), literal(":path", "/b"), vec![0xbe]].concat();
        peer.send(&frame(HEADERS, END_HEADERS | END_STREAM, 3, &second), T0 + MS);
        // The third carries everything literally: decoded.
        let third = block(&[(":method", "GET"), (":path", "/c")]);
        peer.send(&frame(HEADERS, END_HEADERS | END_STREAM, 5, &third), T0 + 2 * MS);
        for stream in [1, 3, 5] {
            peer.receive(&frame(HEADERS, END_HEADERS | END_STREAM, stream, &[0x88]), T0 + 3 * MS);
        }
        assert_eq!(summary(&peer.take()), [("/c".into(), Some(200), None)]);
        let counters = peer.sessions.take_http2_counters();
        assert_eq!(counters, Counters { header_block_errors: 1, header_block_gaps: 1, unmatched_responses: 2, ..Counters::default() });
        // A response block with bytes missed still ends its stream (END_STREAM is in the frame header).
        peer.send(&frame(HEADERS, END_HEADERS | END_STREAM, 7, &third), T0 + 4 * MS);
        let response = frame(HEADERS, END_HEADERS | END_STREAM, 7, &block(&[(":status", "200"), ("server", "x")]));
        peer.call(Direction::Ingress, &response[..12], response.len(), T0 + 5 * MS);
        assert_eq!(summary(&peer.take()), [("/c".into(), None, Some("response headers not decoded".into()))]);
        assert_eq!(peer.sessions.take_http2_counters(), Counters { header_block_gaps: 1, ..Counters::default() });
    }

    #[test]
    fn too_many_streams() {
        let mut peer = curl();
        peer.send(&[PREFACE, &settings()].concat(), T0);
        for n in 0..MAX_STREAMS as u32 + 2 {
            let fields = block(&[(":method", "GET"), (":path", &format!("/{n}"))]);
            peer.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * n, &fields), T0);
        }
        assert_eq!(summary(&peer.take()), [("/0".into(), None, Some("timeout".into())), ("/1".into(), None, Some("timeout".into()))]);
        assert_eq!(peer.sessions.take_http2_counters().streams_given_up, 2);
    }

    #[test]
    fn http1_connections_are_unchanged_and_only_the_preface_starts_http2() {
        let mut peer = curl();
        peer.send(b"GET /plain HTTP/1.1\r\nHost: h\r\n\r\n", T0);
        peer.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", T0 + MS);
        let records = peer.take();
        assert_eq!((records[0].protocol.as_str(), records[0].path.as_deref()), ("http", Some("/plain")));
        // HTTP/2 frames without a preface are not parsed (the capture started mid-connection).
        let mut late = curl();
        late.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block(&[(":method", "GET"), (":path", "/")])), T0);
        late.receive(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0x88]), T0 + MS);
        assert!(late.take().is_empty());
        assert!(late.sessions.is_empty());
    }

    #[test]
    fn garbage_never_panics() {
        let mut next = xorshift();
        let pieces: [Vec<u8>; 5] = [
            frame(HEADERS, END_HEADERS, 1, &block(&[(":method", "GET"), (":path", "/")])),
            frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0x88]),
            frame(CONTINUATION, END_HEADERS, 1, &[0xbe]),
            frame(DATA, END_STREAM | PADDED, 1, &[9, 1]),
            frame(RST_STREAM, 0, 1, &[0, 0]),
        ];
        let mut peer = curl();
        peer.send(PREFACE, T0);
        for n in 0..20_000u64 {
            let mut payload = pieces[(next() % 5) as usize].clone();
            if next().is_multiple_of(3) {
                payload.extend((0..next() % 12).map(|_| next() as u8));
            }
            let direction = if next().is_multiple_of(2) { Direction::Egress } else { Direction::Ingress };
            let bytes = payload.len() + if next().is_multiple_of(10) { (next() % 50) as usize } else { 0 };
            peer.call(direction, &payload, bytes, T0 + n);
        }
        peer.sessions.expire(u64::MAX, 0);
        assert!(peer.sessions.is_empty());
    }
}
