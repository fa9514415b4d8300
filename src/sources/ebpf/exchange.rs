//! What the in-order request/response protocols (Redis, PostgreSQL, MySQL)
//! share: each direction's bytes cut into units (a line, a message, a
//! packet) across reads and writes, and requests paired FIFO with their
//! responses.
//!
//! Promises: a unit is handed to its protocol once, with at most
//! [`MAX_HEAD`] of its first bytes (the rest is passed over without being
//! kept, whether captured or not); a read that peeked first is not parsed
//! twice (TCP sequence numbers). Bytes missed where the parser needed them
//! (a record the kernel dropped, a reply larger than the capture with
//! nested parts, garbage) lose that direction's framing (counted). Requests
//! resume at the start of the next write or read, where clients almost
//! always start one. Responses cannot be told apart from the rest of a
//! large one: the requests waiting are answered with `error = "response not
//! parsed"`, and responses resume with the first read after a request sent
//! when none was waiting. At most [`MAX_PENDING`] requests wait for a
//! response per connection; beyond it the oldest is given up as timed out
//! (counted).

use std::collections::VecDeque;

use super::event::{Direction, Event};
use super::http2::At;
use super::session::TIMEOUT;
use super::session::{given_up, Record};

/// Requests waiting for their response on one connection.
pub const MAX_PENDING: usize = 128;

/// Most bytes of a unit kept to parse it (a line, a message's start).
pub const MAX_HEAD: usize = 4096;

/// The error of a request whose response was lost to the parsing.
pub const NOT_PARSED: &str = "response not parsed";

/// What a protocol's parsing gave up, summed over its connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Directions whose framing was lost (bytes missed, or not the protocol).
    pub framing_lost: u64,
    /// Requests given up because [`MAX_PENDING`] were waiting.
    pub requests_given_up: u64,
    /// Responses that came with no request pending.
    pub unmatched_responses: u64,
}

/// What a connection's parser needs from the session around it.
pub struct Context<'a> {
    pub counters: &'a mut Counters,
    /// A request's record with what the connection and the read or write
    /// that started it say (process, addresses, time, sequence numbers).
    pub new_record: &'a mut dyn FnMut(At) -> Record,
    pub out: &'a mut Vec<Record>,
}

/// How the bytes at the start of a unit frame it.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// More bytes are needed to tell.
    Need,
    /// A unit of `len` bytes in all; the parser wants its first `head` bytes.
    Unit { len: u64, head: usize },
    /// Not this protocol's bytes.
    Bad,
}

/// One protocol's parsing of one connection.
pub trait Parser {
    /// How the unit starting `bytes` frames (`bytes` may hold more than it).
    fn frame(&mut self, way: Direction, bytes: &[u8]) -> Frame;
    /// A whole unit of `len` bytes, its first bytes in `head`, started at
    /// `at`; false when it does not parse (the framing is lost).
    fn unit(&mut self, way: Direction, head: &[u8], len: u64, at: At, calls: &mut Calls, cx: &mut Context) -> bool;
    /// The framing of `way` was lost: what was in progress that way is over.
    fn lost(&mut self, way: Direction, calls: &mut Calls, cx: &mut Context);
}

/// One connection of an in-order protocol, as one process sees it.
#[derive(Debug)]
pub struct Connection<P> {
    parser: P,
    ways: [Way; 2],
    calls: Calls,
}

/// The requests waiting for their responses, oldest first.
#[derive(Debug)]
pub struct Calls {
    /// The way requests travel: egress for a client, ingress for a server.
    pub requests: Direction,
    pending: VecDeque<Call>,
    /// A request was sent when none was waiting: a lost response way can
    /// start afresh (what follows is that request's response).
    resync: bool,
}

#[derive(Debug)]
struct Call {
    record: Record,
    wall_ns: u64,
}

#[derive(Debug, Default)]
struct Way {
    /// The start of a unit whose head is not all here yet.
    buf: Vec<u8>,
    /// Where and when the unit in `buf` started.
    at: At,
    /// Bytes of the current unit still to pass over.
    skip: u64,
    /// The TCP sequence number the next read or write should start at.
    next_seq: Option<u32>,
    /// Framing lost: the next read or write starts afresh.
    lost: bool,
}

impl<P: Parser> Connection<P> {
    /// A connection whose requests travel `requests`.
    pub fn new(parser: P, requests: Direction) -> Self {
        Connection { parser, ways: Default::default(), calls: Calls { requests, pending: VecDeque::new(), resync: false } }
    }

    /// No request waits for its response.
    pub fn is_empty(&self) -> bool {
        self.calls.pending.is_empty()
    }

    /// One read or write on the connection.
    pub fn on_data(&mut self, event: &Event, wall_ns: u64, cx: &mut Context) {
        let way = event.direction;
        let w = &mut self.ways[way as usize];
        let seq = (!event.tls && event.tcp_seq != 0).then_some(event.tcp_seq);
        let mut payload = event.payload;
        let mut offset = 0;
        let mut missing = (event.bytes as usize).saturating_sub(payload.len()) as u64;
        let mut gap = 0;
        if let (Some(expected), Some(seq)) = (w.next_seq, seq) {
            let jump = seq.wrapping_sub(expected) as i32;
            if jump > 0 {
                // Bytes no record carried.
                gap = jump as u64;
            } else if jump < 0 {
                // Bytes already seen (a read that peeked first): pass over them.
                let seen = jump.unsigned_abs() as usize;
                offset = seen.min(payload.len());
                payload = &payload[offset..];
                missing = missing.saturating_sub(seen.saturating_sub(event.payload.len()) as u64);
            }
        }
        if let Some(seq) = seq {
            // Never back: a read wholly seen before ends before what is expected.
            let end = seq.wrapping_add(event.bytes);
            if w.next_seq.is_none_or(|expected| end.wrapping_sub(expected) as i32 > 0) {
                w.next_seq = Some(end);
            }
        }
        if gap > 0 {
            self.miss(way, gap, cx);
        }
        let w = &mut self.ways[way as usize];
        if w.lost && (way == self.calls.requests || std::mem::take(&mut self.calls.resync)) {
            *w = Way { next_seq: w.next_seq, ..Way::default() };
        }
        self.read(way, payload, offset, event, wall_ns, cx);
        if missing > 0 {
            self.miss(way, missing, cx);
        }
    }

    /// Payload bytes of `way`, `offset` bytes into the event's payload.
    fn read(&mut self, way: Direction, payload: &[u8], offset: usize, event: &Event, wall_ns: u64, cx: &mut Context) {
        let w = &mut self.ways[way as usize];
        let mut i = 0;
        while i < payload.len() && !w.lost {
            if w.skip > 0 {
                let n = w.skip.min((payload.len() - i) as u64);
                w.skip -= n;
                i += n as usize;
                continue;
            }
            if w.buf.is_empty() {
                let tcp_seq = if event.tls || event.tcp_seq == 0 { 0 } else { event.tcp_seq.wrapping_add((offset + i) as u32) };
                w.at = At { wall_ns, tcp_seq, syscall_trace_id: event.syscall_trace_id, tid: event.tid };
            }
            // The unit's bytes so far: borrowed when it starts in this read.
            let buffered = !w.buf.is_empty();
            if buffered {
                w.buf.extend_from_slice(&payload[i..]);
            }
            let bytes = if buffered { w.buf.as_slice() } else { &payload[i..] };
            let frame = match self.parser.frame(way, bytes) {
                // Every unit moves the parsing on.
                Frame::Unit { len: 0, .. } => Frame::Bad,
                Frame::Unit { len, head } => Frame::Unit { len, head: head.min(MAX_HEAD).min(len.try_into().unwrap_or(usize::MAX)) },
                other => other,
            };
            let (len, head) = match frame {
                Frame::Unit { len, head } if bytes.len() >= head => (len, head),
                Frame::Unit { .. } | Frame::Need if bytes.len() < MAX_HEAD => {
                    if !buffered {
                        w.buf.extend_from_slice(&payload[i..]);
                    }
                    return;
                }
                Frame::Unit { .. } | Frame::Need | Frame::Bad => {
                    self.lose(way, cx);
                    return;
                }
            };
            if !self.parser.unit(way, &bytes[..head], len, w.at, &mut self.calls, cx) {
                self.lose(way, cx);
                return;
            }
            // Bytes past the unit's end start the next one; they came from this read.
            let inside = len.min(bytes.len() as u64);
            let after = bytes.len() - inside as usize;
            i = payload.len() - after;
            w.skip = len - inside;
            w.buf.clear();
        }
    }

    /// `n` bytes of `way` that no record carried.
    fn miss(&mut self, way: Direction, n: u64, cx: &mut Context) {
        let w = &mut self.ways[way as usize];
        if w.lost {
            return;
        }
        if !w.buf.is_empty() {
            // A unit whose length is known but whose head the capture cut
            // (a long statement): parsed from what there is.
            let len = match self.parser.frame(way, &w.buf) {
                Frame::Unit { len, .. } if len > w.buf.len() as u64 => len,
                _ => return self.lose(way, cx),
            };
            let head = std::mem::take(&mut w.buf);
            if !self.parser.unit(way, &head, len, w.at, &mut self.calls, cx) {
                return self.lose(way, cx);
            }
            w.skip = len - head.len() as u64;
        }
        if w.skip >= n {
            w.skip -= n;
        } else {
            self.lose(way, cx);
        }
    }

    fn lose(&mut self, way: Direction, cx: &mut Context) {
        let w = &mut self.ways[way as usize];
        w.lost = true;
        w.buf = Vec::new();
        w.skip = 0;
        cx.counters.framing_lost += 1;
        self.parser.lost(way, &mut self.calls, cx);
        if way != self.calls.requests {
            self.calls.resync = false;
            let pending = std::mem::take(&mut self.calls.pending);
            cx.out.extend(pending.into_iter().map(|call| given_up(call.record, NOT_PARSED, None)));
        }
    }

    /// The connection closed: its pending requests get `error` (measured up to `wall_ns`).
    pub fn close(self, wall_ns: u64, error: &str, out: &mut Vec<Record>) {
        out.extend(self.calls.pending.into_iter().map(|call| {
            let duration_us = Some(wall_ns.saturating_sub(call.wall_ns) / 1000);
            given_up(call.record, error, duration_us)
        }));
    }

    /// Requests sent before `stale` says are given up as timed out.
    pub fn expire(&mut self, stale: impl Fn(u64) -> bool, out: &mut Vec<Record>) {
        while self.calls.pending.front().is_some_and(|call| stale(call.wall_ns)) {
            out.extend(self.calls.pending.pop_front().map(|call| given_up(call.record, TIMEOUT, None)));
        }
    }
}

impl Calls {
    /// A whole request: it waits for its response.
    pub fn request(&mut self, record: Record, wall_ns: u64, cx: &mut Context) {
        self.resync = self.pending.is_empty();
        if self.pending.len() >= MAX_PENDING {
            if let Some(oldest) = self.pending.pop_front() {
                cx.counters.requests_given_up += 1;
                cx.out.push(given_up(oldest.record, TIMEOUT, None));
            }
        }
        self.pending.push_back(Call { record, wall_ns });
    }

    /// The newest request goes on for `size` bytes more (a request in several units).
    pub fn grow_request(&mut self, size: u64) {
        if let Some(call) = self.pending.back_mut() {
            call.record.request_size = Some(call.record.request_size.unwrap_or_default().saturating_add(size));
        }
    }

    /// Some request waits for its response.
    pub fn waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The oldest request's response, of `size` bytes, started at `at`;
    /// `error` when it reports a failure.
    pub fn response(&mut self, at: At, size: u64, error: Option<String>, cx: &mut Context) {
        let Some(call) = self.pending.pop_front() else {
            cx.counters.unmatched_responses += 1;
            return;
        };
        let mut record = call.record;
        record.duration_us = Some(at.wall_ns.saturating_sub(call.wall_ns) / 1000);
        record.response_size = Some(size);
        record.tcp_seq_response = (at.tcp_seq != 0).then_some(at.tcp_seq);
        record.syscall_trace_id_response = (at.syscall_trace_id != 0).then_some(at.syscall_trace_id);
        record.error = error;
        cx.out.push(record);
    }
}
