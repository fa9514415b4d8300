//! Pairs the requests and responses of each connection into request
//! records. A connection's first bytes (either way) decide its protocol
//! ([`Parser::infer`]): the HTTP/2 client preface makes it an HTTP/2 one,
//! parsed by [`http2`] from then on; a RESP request a Redis one ([`redis`]);
//! a startup message or SSLRequest a PostgreSQL one ([`postgres`]); a
//! server's protocol 10 greeting a MySQL one ([`mysql`]); on a connection
//! open before the capture, a whole query of either database;
//! else HTTP/1.x, paired FIFO per connection, as HTTP/1.x answers in order
//! (keep-alive and pipelining alike). A connection none of them knows
//! keeps no state.

use std::collections::VecDeque;
use std::net::IpAddr;

use rustc_hash::FxHashMap;

use chrono::DateTime;

use super::event::{Direction, Event, Kind};
use super::http::{self, Message};
use super::http2;
use super::{exchange, mysql, postgres, redis};
use crate::event::{parse_traceparent, ObservationPoint, RequestRecord, SignalSource};

/// Requests waiting for a response on one connection; beyond it the oldest
/// is given up as timed out (a peer that never answers must not grow memory).
pub const MAX_PENDING: usize = 128;

pub(super) const TIMEOUT: &str = "timeout";
const CLOSED: &str = "connection closed before a response";

/// A record in the making: boxed, as a record is large (~900 bytes) and
/// moves several times between its request and the pipeline.
pub type Record = Box<RequestRecord>;

/// `record`, given up with `error` (a timeout, a close), after `duration_us` when measured.
pub(super) fn given_up(mut record: Record, error: &str, duration_us: Option<u64>) -> Record {
    record.error = Some(error.into());
    record.duration_us = duration_us;
    record
}

/// Every connection's state, keyed by its kernel socket address (one byte
/// stream in each direction, whichever process moves the bytes).
#[derive(Debug)]
pub struct Sessions {
    sessions: FxHashMap<u64, Session>,
    /// Responses that came with no request pending (the request was before
    /// we started, or was not seen as HTTP).
    pub unmatched_responses: u64,
    /// What HTTP/2 parsing gave up, since the last [`Sessions::take_http2_counters`].
    http2: http2::Counters,
    /// What Redis, PostgreSQL and MySQL parsing gave up, since the last [`Sessions::take_counters`].
    redis: exchange::Counters,
    postgres: exchange::Counters,
    mysql: exchange::Counters,
    /// The headers that carry a request id, preferred first.
    request_id_headers: Vec<String>,
    /// A MySQL packet header read alone (servers read the 4 bytes, then the
    /// rest) on a connection not known yet, and the way it went: with the
    /// next read it may make a query that tells the connection.
    heads_apart: FxHashMap<u64, (Direction, Partial)>,
}

/// Headers read alone held at most (past it they are all forgotten).
const MAX_HEADS_APART: usize = 4096;

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new(http::default_request_id_headers())
    }
}

#[derive(Debug, Default)]
struct Session {
    /// Client or server process, from the first message seen.
    role: Option<ObservationPoint>,
    /// Wall time of the last data event.
    last_ns: u64,
    pending: VecDeque<Pending>,
    /// Per direction (egress, ingress): bytes still to come of a message
    /// whose length its headers gave.
    body_left: [u64; 2],
    /// Per direction: the start of a message whose headers the read cut.
    partial: [Option<Partial>; 2],
    /// Client and server addresses as text, made once per connection.
    addresses: Option<(IpAddr, IpAddr, String, String)>,
    /// An answered request whose response's length the headers did not say
    /// (chunked, or up to the close): it grows with continuation events and
    /// is emitted when the next message starts, the connection closes, or it
    /// goes quiet for the timeout.
    open: Option<Open>,
    /// A connection whose protocol is not HTTP/1: all of its bytes go to its parser.
    parser: Option<Parser>,
}

/// The protocols whose connections have their own parser, told by their
/// first bytes (HTTP/1 is parsed by the session itself).
#[derive(Debug)]
enum Parser {
    Http2(Box<http2::Connection>),
    Redis(Box<exchange::Connection<redis::Redis>>),
    Postgres(Box<exchange::Connection<postgres::Postgres>>),
    Mysql(Box<exchange::Connection<mysql::Mysql>>),
}

impl Parser {
    /// The parser for a connection whose first bytes (either way) are the
    /// event's, and the way its requests travel; a connection already seen
    /// as HTTP/1 can only turn HTTP/2.
    fn infer(event: &Event, http1: bool) -> Option<(Parser, Direction)> {
        let (payload, way) = (event.payload, event.direction);
        if http2::starts_with_preface(payload) {
            return Some((Parser::Http2(Box::new(http2::Connection::new(way))), way));
        }
        if http1 {
            return None;
        }
        if redis::starts_request(payload) {
            return Some((Parser::Redis(Box::new(exchange::Connection::new(redis::Redis::default(), way))), way));
        }
        if postgres::starts_session(payload) {
            return Some((Parser::Postgres(Box::new(exchange::Connection::new(postgres::Postgres::new(way), way))), way));
        }
        if postgres::resumes_session(payload) {
            // Open before the capture started: its startup was missed.
            return Some((Parser::Postgres(Box::new(exchange::Connection::new(postgres::Postgres::resumed(way), way))), way));
        }
        if mysql::starts_greeting(payload) {
            // The server speaks first: requests go the other way.
            let requests = way.opposite();
            return Some((Parser::Mysql(Box::new(exchange::Connection::new(mysql::Mysql::new(requests), requests))), requests));
        }
        if mysql::resumes_session(payload) {
            // Open before the capture started: its handshake was missed.
            return Some((Parser::Mysql(Box::new(exchange::Connection::new(mysql::Mysql::resumed(way), way))), way));
        }
        None
    }

    fn is_empty(&self) -> bool {
        match self {
            Parser::Http2(h2) => h2.is_empty(),
            Parser::Redis(redis) => redis.is_empty(),
            Parser::Postgres(postgres) => postgres.is_empty(),
            Parser::Mysql(mysql) => mysql.is_empty(),
        }
    }

    fn close(self, wall_ns: u64, out: &mut Vec<Record>) {
        match self {
            Parser::Http2(h2) => h2.close(wall_ns, CLOSED, out),
            Parser::Redis(redis) => redis.close(wall_ns, CLOSED, out),
            Parser::Postgres(postgres) => postgres.close(wall_ns, CLOSED, out),
            Parser::Mysql(mysql) => mysql.close(wall_ns, CLOSED, out),
        }
    }

    fn expire(&mut self, stale: impl Fn(u64) -> bool, out: &mut Vec<Record>) {
        match self {
            Parser::Http2(h2) => h2.expire(stale, out),
            Parser::Redis(redis) => redis.expire(stale, out),
            Parser::Postgres(postgres) => postgres.expire(stale, out),
            Parser::Mysql(mysql) => mysql.expire(stale, out),
        }
    }
}

#[derive(Debug)]
struct Pending {
    /// The request's half of the record.
    record: Record,
    wall_ns: u64,
    /// `request_size` came from the headers; else continuations add to it.
    size_known: bool,
}

/// Headers cut by the end of a read, with what the record takes from the
/// read that started them.
#[derive(Debug)]
struct Partial {
    payload: Vec<u8>,
    bytes: u32,
    wall_ns: u64,
    tcp_seq: u32,
    syscall_trace_id: u64,
    tid: u32,
}

impl Partial {
    /// What `event` moved from `from` on, at `wall_ns`.
    fn of(event: &Event, from: usize, wall_ns: u64) -> Partial {
        Partial {
            payload: event.payload[from..].to_vec(),
            bytes: event.bytes - from as u32,
            wall_ns,
            tcp_seq: event.tcp_seq,
            syscall_trace_id: event.syscall_trace_id,
            tid: event.tid,
        }
    }

    /// The bytes held, then `event`'s (together in `payload`): as one read
    /// that started where and when the held one did.
    fn join<'a>(&self, payload: &'a [u8], event: &Event<'a>) -> Event<'a> {
        Event {
            payload,
            bytes: self.bytes.saturating_add(event.bytes),
            tcp_seq: self.tcp_seq,
            syscall_trace_id: self.syscall_trace_id,
            tid: self.tid,
            ..event.clone()
        }
    }
}

/// Longest cut header kept for the next read (a header block is rarely longer).
const MAX_PARTIAL: usize = 8192;

#[derive(Debug)]
struct Open {
    record: Record,
    chunked: bool,
}

impl Sessions {
    pub fn new(request_id_headers: Vec<String>) -> Self {
        Sessions {
            sessions: FxHashMap::default(),
            unmatched_responses: 0,
            http2: http2::Counters::default(),
            redis: exchange::Counters::default(),
            postgres: exchange::Counters::default(),
            mysql: exchange::Counters::default(),
            request_id_headers,
            heads_apart: FxHashMap::default(),
        }
    }

    /// What the parsing of Redis, PostgreSQL and MySQL gave up since the last call.
    pub fn take_counters(&mut self) -> [exchange::Counters; 3] {
        [std::mem::take(&mut self.redis), std::mem::take(&mut self.postgres), std::mem::take(&mut self.mysql)]
    }

    /// What HTTP/2 parsing gave up since the last call.
    pub fn take_http2_counters(&mut self) -> http2::Counters {
        std::mem::take(&mut self.http2)
    }

    /// Connections tracked.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// One read or write: the records it completes.
    pub fn on_data(&mut self, event: &Event, wall_ns: u64) -> Vec<Record> {
        if let Some(records) = self.on_parsed(event, wall_ns) {
            return records;
        }
        let way = event.direction as usize;
        let partial = self.sessions.get_mut(&event.socket).and_then(|session| session.partial[way].take());
        match partial {
            // Headers a read cut short: this read continues them.
            Some(partial) => {
                let payload = [&partial.payload[..], event.payload].concat();
                self.on_event(&partial.join(&payload, event), partial.wall_ns)
            }
            None => self.on_event(event, wall_ns),
        }
    }

    /// A read or write of a connection with its own parser (one known as
    /// such, or one whose first bytes tell it); None for any other.
    fn on_parsed(&mut self, event: &Event, wall_ns: u64) -> Option<Vec<Record>> {
        if event.kind != Kind::Data {
            return None;
        }
        let key = event.socket;
        let mut out = Vec::new();
        // One lookup for every HTTP/1 read and write that comes this way first.
        let parsed = self.sessions.get(&key).map(|session| session.parser.is_some());
        let apart = match parsed {
            None if !self.heads_apart.is_empty() => self.heads_apart.remove(&key).filter(|(way, _)| *way == event.direction),
            _ => None,
        };
        let joined_payload;
        let joined;
        let (event, wall_ns) = match &apart {
            Some((_, head)) => {
                joined_payload = [&head.payload[..], event.payload].concat();
                joined = head.join(&joined_payload, event);
                (&joined, head.wall_ns)
            }
            None => (event, wall_ns),
        };
        if parsed != Some(true) {
            let Some((parser, requests)) = Parser::infer(event, parsed.is_some()) else {
                if parsed.is_none() && mysql::header_alone(event.payload, event.bytes) {
                    if self.heads_apart.len() >= MAX_HEADS_APART {
                        self.heads_apart.clear();
                    }
                    self.heads_apart.insert(key, (event.direction, Partial::of(event, 0, wall_ns)));
                    return Some(out);
                }
                return None;
            };
            // After an HTTP/1.1 upgrade (h2c), or on a socket address reused
            // unseen: what HTTP/1 state there was ends here.
            out = self.on_close(event.socket, wall_ns);
            let session = Session { role: Some(role_of(true, requests)), parser: Some(parser), ..Session::default() };
            self.sessions.insert(key, session);
        }
        let session = self.sessions.get_mut(&key)?;
        session.last_ns = session.last_ns.max(wall_ns);
        let mut parser = session.parser.take()?;
        let mut new_record = |at: http2::At| {
            let start = Event { tcp_seq: at.tcp_seq, syscall_trace_id: at.syscall_trace_id, tid: at.tid, ..event.clone() };
            session.new_record(&start, at.wall_ns)
        };
        match &mut parser {
            Parser::Http2(h2) => {
                let mut cx = http2::Context {
                    request_id_headers: &self.request_id_headers,
                    counters: &mut self.http2,
                    new_record: &mut new_record,
                    out: &mut out,
                };
                h2.on_data(event, wall_ns, &mut cx);
            }
            Parser::Redis(redis) => {
                let mut cx = exchange::Context { counters: &mut self.redis, new_record: &mut new_record, out: &mut out };
                redis.on_data(event, wall_ns, &mut cx);
            }
            Parser::Postgres(postgres) => {
                let mut cx = exchange::Context { counters: &mut self.postgres, new_record: &mut new_record, out: &mut out };
                postgres.on_data(event, wall_ns, &mut cx);
            }
            Parser::Mysql(mysql) => {
                let mut cx = exchange::Context { counters: &mut self.mysql, new_record: &mut new_record, out: &mut out };
                mysql.on_data(event, wall_ns, &mut cx);
            }
        }
        session.parser = Some(parser);
        Some(out)
    }

    fn on_event(&mut self, event: &Event, wall_ns: u64) -> Vec<Record> {
        let mut out = Vec::new();
        if event.kind != Kind::Data || (event.payload.is_empty() && event.bytes == 0) {
            return out;
        }
        let key = event.socket;
        // The rest of a message whose length its headers gave comes first: the
        // next message starts after it (a read can hold one's end and the next's start).
        let way = event.direction as usize;
        let mut start = 0;
        if let Some(session) = self.sessions.get_mut(&key) {
            start = session.body_left[way].min(u64::from(event.bytes));
            session.body_left[way] -= start;
        }
        let rest = event.payload.get(start as usize..).unwrap_or_default();
        let mut messages = http::parse(rest, &self.request_id_headers);
        if messages.is_empty() {
            // A continuation; a connection not known as HTTP gets no state.
            if let Some(session) = self.sessions.get_mut(&key) {
                session.last_ns = session.last_ns.max(wall_ns);
                session.continuation(event, &mut out);
            }
            return out;
        }
        let session = self.sessions.entry(key).or_default();
        session.last_ns = session.last_ns.max(wall_ns);
        // The last message's headers end beyond a read that was captured
        // whole (readers often read a few bytes first): wait for the next read.
        let complete: u64 = messages[..messages.len() - 1].iter().filter_map(Message::total_len).sum();
        let cut_at = (start + complete) as usize;
        if messages.last().is_some_and(|m| m.headers().header_len.is_none())
            && event.payload.len() == event.bytes as usize
            && event.payload.len() - cut_at < MAX_PARTIAL
        {
            messages.pop();
            session.partial[way] = Some(Partial::of(event, cut_at, wall_ns));
        }
        // Sizes of the messages before the last are known (parsing stops at
        // an unknown one): the last one starts after them.
        let mut offset = start;
        // Where HTTP/2 starts after an upgrade (h2c), in this payload.
        let mut upgraded_at = None;
        // By reference: a message is a few hundred bytes, and its strings are moved out of it.
        for message in &mut messages {
            let first_bytes = u64::from(event.bytes).saturating_sub(offset);
            let size = message.total_len();
            offset = offset.saturating_add(size.unwrap_or(0));
            let role = role_of(message.is_request(), event.direction);
            match session.role {
                None => session.role = Some(role),
                // A new request the other way round with nothing pending: the
                // socket address was reused by a connection we saw no close of.
                Some(known) if known != role && message.is_request() && session.pending.is_empty() => session.role = Some(role),
                // Else a body that happens to look like a message.
                Some(known) if known != role => continue,
                Some(_) => {}
            }
            if let Some(open) = session.open.take() {
                out.push(open.record);
            }
            if message.is_request() {
                session.on_request(message, event, wall_ns, size.unwrap_or(first_bytes), size.is_some(), &mut out);
            } else if let Some(pending) = message.switches_to_h2c().then(|| session.pending.pop_front()).flatten() {
                // The request goes on as HTTP/2's stream 1: its answer, and all
                // that follows on the connection, is HTTP/2 (RFC 7540 §3.2).
                let mut record = pending.record;
                record.response_size = size;
                let h2 = http2::Connection::upgraded(event.direction.opposite(), record, pending.wall_ns);
                session.parser = Some(Parser::Http2(Box::new(h2)));
                upgraded_at = Some(offset);
                break;
            } else if let Some(open) =
                session.on_response(message, event, wall_ns, size.unwrap_or(first_bytes), &mut self.unmatched_responses)
            {
                if size.is_some() || open.chunked && chunked_end_seen(event) {
                    out.push(open.record);
                } else {
                    session.open = Some(open);
                }
            }
        }
        session.body_left[way] = offset.saturating_sub(u64::from(event.bytes));
        if let Some(at) = upgraded_at.filter(|at| *at < u64::from(event.bytes)) {
            // The HTTP/2 frames that came in the same read or write as the 101.
            let rest = Event {
                payload: event.payload.get(at as usize..).unwrap_or_default(),
                bytes: event.bytes - at as u32,
                tcp_seq: if event.tcp_seq == 0 { 0 } else { event.tcp_seq.wrapping_add(at as u32) },
                ..event.clone()
            };
            out.extend(self.on_parsed(&rest, wall_ns).unwrap_or_default());
        }
        out
    }

    /// The connection closed: its unanswered requests will never be.
    pub fn on_close(&mut self, socket: u64, wall_ns: u64) -> Vec<Record> {
        self.heads_apart.remove(&socket);
        let Some(session) = self.sessions.remove(&socket) else { return Vec::new() };
        let mut out: Vec<Record> = session.open.map(|open| open.record).into_iter().collect();
        if let Some(parser) = session.parser {
            parser.close(wall_ns, &mut out);
        }
        out.extend(session.pending.into_iter().map(|pending| {
            let duration_us = Some(wall_ns.saturating_sub(pending.wall_ns) / 1000);
            given_up(pending.record, CLOSED, duration_us)
        }));
        out
    }

    /// Requests pending longer than `timeout_ns` become timeout records; open
    /// responses quiet that long are emitted; idle connections are forgotten.
    pub fn expire(&mut self, now_wall_ns: u64, timeout_ns: u64) -> Vec<Record> {
        let mut out = Vec::new();
        let stale = |ns: u64| now_wall_ns.saturating_sub(ns) > timeout_ns;
        self.sessions.retain(|_, session| {
            while session.pending.front().is_some_and(|pending| stale(pending.wall_ns)) {
                out.extend(session.pending.pop_front().map(timed_out));
            }
            if stale(session.last_ns) {
                out.extend(session.open.take().map(|open| open.record));
            }
            if let Some(parser) = &mut session.parser {
                parser.expire(stale, &mut out);
            }
            let idle = session.pending.is_empty() && session.open.is_none() && session.parser.as_ref().is_none_or(Parser::is_empty);
            !(idle && stale(session.last_ns))
        });
        out
    }
}

impl Session {
    /// Takes the message's strings (left empty).
    fn on_request(&mut self, message: &mut Message, event: &Event, wall_ns: u64, size: u64, size_known: bool, out: &mut Vec<Record>) {
        let Message::Request { method, path, query, host, headers, .. } = message else { return };
        let mut record = self.new_record(event, wall_ns);
        (record.trace_id, record.parent_span_id) = trace_of(headers).unzip();
        record.method = Some(std::mem::take(method));
        record.host = host.take();
        record.endpoint = Some(path.clone());
        record.path = Some(std::mem::take(path));
        record.query = query.take();
        record.request_size = Some(size);
        record.request_id = headers.request_id.take();
        if self.pending.len() >= MAX_PENDING {
            out.extend(self.pending.pop_front().map(timed_out));
        }
        self.pending.push_back(Pending { record, wall_ns, size_known });
    }

    /// A request's record with what the event that carried it says: the
    /// process, the addresses, the time, the sequence numbers.
    fn new_record(&mut self, event: &Event, wall_ns: u64) -> Record {
        let role = self.role.unwrap_or(ObservationPoint::ClientProcess);
        let (client, server) = match role {
            ObservationPoint::ServerProcess => (event.endpoints.remote, event.endpoints.local),
            _ => (event.endpoints.local, event.endpoints.remote),
        };
        let (client_ip, server_ip) = match &self.addresses {
            Some((c, s, client_ip, server_ip)) if (*c, *s) == (client.0, server.0) => (client_ip.clone(), server_ip.clone()),
            _ => {
                let text = (client.0.to_string(), server.0.to_string());
                self.addresses = Some((client.0, server.0, text.0.clone(), text.1.clone()));
                text
            }
        };
        Box::new(RequestRecord {
            time: DateTime::from_timestamp_nanos(wall_ns.min(i64::MAX as u64) as i64),
            observation_point: role,
            signal_source: SignalSource::Ebpf,
            protocol: "http".into(),
            client_ip: Some(client_ip),
            client_port: Some(client.1),
            server_ip: Some(server_ip),
            server_port: Some(server.1),
            pid: Some(event.pid),
            thread_id: Some(event.tid),
            process_name: Some(event.comm.to_string()),
            tcp_seq_request: tcp_seq(event),
            syscall_trace_id_request: syscall_trace_id(event),
            tls: event.tls,
            ..RequestRecord::default()
        })
    }

    /// The oldest pending request, answered: None when nothing was pending
    /// or the response is an interim one (1xx but 101).
    fn on_response(&mut self, message: &Message, event: &Event, wall_ns: u64, size: u64, unmatched: &mut u64) -> Option<Open> {
        let Message::Response { status, headers, .. } = message else { return None };
        if (100..200).contains(status) && *status != 101 {
            return None;
        }
        let Some(pending) = self.pending.pop_front() else {
            *unmatched += 1;
            return None;
        };
        let mut record = pending.record;
        record.status = Some(*status);
        record.duration_us = Some(wall_ns.saturating_sub(pending.wall_ns) / 1000);
        record.response_size = Some(size);
        record.response_request_id.clone_from(&headers.request_id);
        record.tcp_seq_response = tcp_seq(event);
        record.syscall_trace_id_response = syscall_trace_id(event);
        Some(Open { record, chunked: headers.chunked })
    }

    /// Bytes of the message in progress in this direction: added to its size
    /// when the headers did not give it.
    fn continuation(&mut self, event: &Event, out: &mut Vec<Record>) {
        let Some(role) = self.role else { return };
        let is_request = role_of(true, event.direction) == role;
        if is_request {
            if let Some(pending) = self.pending.back_mut().filter(|pending| !pending.size_known) {
                add(&mut pending.record.request_size, event.bytes);
            }
        } else if let Some(open) = &mut self.open {
            add(&mut open.record.response_size, event.bytes);
            if open.chunked && chunked_end_seen(event) {
                out.extend(self.open.take().map(|open| open.record));
            }
        }
    }
}

/// A request sent is a client's, a request received a server's; a response
/// the other way round.
fn role_of(is_request: bool, direction: Direction) -> ObservationPoint {
    match (is_request, direction) {
        (true, Direction::Egress) | (false, Direction::Ingress) => ObservationPoint::ClientProcess,
        (true, Direction::Ingress) | (false, Direction::Egress) => ObservationPoint::ServerProcess,
    }
}

fn timed_out(pending: Pending) -> Record {
    given_up(pending.record, TIMEOUT, None)
}

fn add(size: &mut Option<u64>, bytes: u32) {
    *size = Some(size.unwrap_or(0).saturating_add(u64::from(bytes)));
}

/// The whole call is in the payload and ends with the last chunk (after the
/// CRLF ending the headers or the previous chunk, or alone): the chunked body
/// is over. A heuristic, right for the small writes that end most bodies.
fn chunked_end_seen(event: &Event) -> bool {
    let payload = event.payload;
    payload.len() == event.bytes as usize && (payload == b"0\r\n\r\n" || payload.ends_with(b"\r\n0\r\n\r\n"))
}

/// The sequence number only means something on the TCP socket itself.
fn tcp_seq(event: &Event) -> Option<u32> {
    (!event.tls && event.tcp_seq != 0).then_some(event.tcp_seq)
}

fn syscall_trace_id(event: &Event) -> Option<u64> {
    (event.syscall_trace_id != 0).then_some(event.syscall_trace_id)
}

/// (trace id, the header's span id: the parent of the callee's span), as the
/// Kong source reads traceparent; else from B3.
pub(super) fn trace_of(headers: &http::Headers) -> Option<(String, String)> {
    let headers = headers.trace.as_deref()?;
    if let Some(ids) = headers.traceparent.as_deref().and_then(parse_traceparent) {
        return Some(ids);
    }
    let (trace, span) = match headers.b3.as_deref() {
        Some(b3) => {
            let mut parts = b3.split('-');
            (parts.next()?, parts.next()?)
        }
        None => (headers.x_b3_traceid.as_deref()?, headers.x_b3_spanid.as_deref()?),
    };
    let hex = |s: &str, lens: &[usize]| lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit());
    // 64-bit trace ids padded to 128 bits, as the Kong source writes them.
    (hex(trace, &[16, 32]) && hex(span, &[16])).then(|| (format!("{:0>32}", trace.to_ascii_lowercase()), span.to_ascii_lowercase()))
}

/// Both ways of one connection as one process sees it, driven call by call
/// through [`Sessions`]: for the tests of every protocol's parser.
#[cfg(test)]
pub(super) mod testing {
    use std::net::{IpAddr, Ipv4Addr};

    use super::super::event::{Direction, Endpoints, Event, Kind};
    use super::{Record, Sessions};

    pub const PID: u32 = 31;
    pub const SOCKET: u64 = 0xffff_8880_0000_0777;
    pub const MS: u64 = 1_000_000;
    /// 2024-11-26T09:23:20Z, in ns.
    pub const T0: u64 = 1_732_613_000_000_000_000;
    /// The first sequence numbers of each way.
    pub const OUT_SEQ: u32 = 5000;
    pub const IN_SEQ: u32 = 90_000;

    pub struct Peer {
        pub sessions: Sessions,
        pub seq: [u32; 2],
        pub records: Vec<Record>,
        /// The local and remote port.
        pub ports: (u16, u16),
        /// The thread and the process name every call is made by.
        pub tid: u32,
        pub comm: &'static str,
    }

    impl Peer {
        pub fn new(ports: (u16, u16)) -> Peer {
            Peer { sessions: Sessions::default(), seq: [OUT_SEQ, IN_SEQ], records: Vec::new(), ports, tid: 32, comm: "client" }
        }

        /// A call that moved `bytes` (at least the payload's length).
        pub fn call(&mut self, direction: Direction, payload: &[u8], bytes: usize, wall_ns: u64) {
            let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
            let event = Event {
                kind: Kind::Data,
                monotonic_ns: 0,
                socket: SOCKET,
                pid: PID,
                tid: self.tid,
                fd: 5,
                comm: self.comm,
                endpoints: Endpoints { local: (localhost, self.ports.0), remote: (localhost, self.ports.1) },
                direction,
                tls: false,
                connecting: false,
                tcp_seq: self.seq[direction as usize],
                syscall_trace_id: 0,
                bytes: bytes as u32,
                payload,
                value: 0,
            };
            self.seq[direction as usize] = self.seq[direction as usize].wrapping_add(bytes as u32);
            self.records.extend(self.sessions.on_data(&event, wall_ns));
        }

        pub fn send(&mut self, payload: &[u8], wall_ns: u64) {
            self.call(Direction::Egress, payload, payload.len(), wall_ns);
        }

        pub fn receive(&mut self, payload: &[u8], wall_ns: u64) {
            self.call(Direction::Ingress, payload, payload.len(), wall_ns);
        }

        pub fn take(&mut self) -> Vec<Record> {
            std::mem::take(&mut self.records)
        }

        /// 20 000 calls, either way, each one of `pieces` with random bytes
        /// after it, some moving more bytes than they carry, some after a
        /// jump in the sequence numbers, some after a close.
        pub fn garbage(&mut self, pieces: &[impl AsRef<[u8]>]) {
            let mut next = xorshift();
            for n in 0..20_000u64 {
                let mut payload = pieces[(next() % pieces.len() as u64) as usize].as_ref().to_vec();
                payload.extend((0..next() % 8).map(|_| next() as u8));
                let direction = if next().is_multiple_of(2) { Direction::Egress } else { Direction::Ingress };
                if next().is_multiple_of(7) {
                    self.seq[direction as usize] += next() as u32 % 50;
                }
                let bytes = payload.len() + if next().is_multiple_of(5) { next() as usize % 100_000 } else { 0 };
                self.call(direction, &payload, bytes, T0 + n * MS);
                if next().is_multiple_of(100) {
                    self.sessions.on_close(SOCKET, T0 + n * MS);
                }
            }
        }
    }

    /// A small xorshift: the same "random" bytes every run.
    pub fn xorshift() -> impl FnMut() -> u64 {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::super::event::Endpoints;
    use super::*;

    const PID: u32 = 4242;
    const SOCKET: u64 = 0xffff_8880_1234_5678;
    const MS: u64 = 1_000_000;
    /// 2024-11-26T09:23:20Z, in ns.
    const T0: u64 = 1_732_613_000_000_000_000;

    fn local() -> (IpAddr, u16) {
        (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)), 43210)
    }

    fn remote() -> (IpAddr, u16) {
        (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), 8080)
    }

    fn data(direction: Direction, payload: &[u8]) -> Event<'_> {
        Event {
            kind: Kind::Data,
            monotonic_ns: 0,
            socket: SOCKET,
            pid: PID,
            tid: 4243,
            fd: 7,
            comm: "curl",
            endpoints: Endpoints { local: local(), remote: remote() },
            direction,
            tls: false,
            connecting: false,
            tcp_seq: 1000,
            syscall_trace_id: 0,
            bytes: payload.len() as u32,
            payload,
            value: 0,
        }
    }

    fn with(event: Event, tcp_seq: u32, syscall_trace_id: u64, tid: u32) -> Event {
        Event { tcp_seq, syscall_trace_id, tid, ..event }
    }

    fn ok(body: &str) -> Vec<u8> {
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
    }

    #[test]
    fn a_client_request_and_response() {
        let mut sessions = Sessions::default();
        let request = b"GET /orders/42?verbose=1 HTTP/1.1\r\nHost: orders.svc\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n";
        let sent = with(data(Direction::Egress, request), 111, 0, 4243);
        assert!(sessions.on_data(&sent, T0).is_empty());
        assert_eq!(sessions.len(), 1);
        let response = ok("{\"id\":42}");
        let records = sessions.on_data(&with(data(Direction::Ingress, &response), 999, 0, 4250), T0 + 12 * MS + 345_000);
        assert_eq!(records.len(), 1);
        let expected = RequestRecord {
            time: DateTime::from_timestamp_nanos(T0 as i64),
            observation_point: ObservationPoint::ClientProcess,
            signal_source: SignalSource::Ebpf,
            protocol: "http".into(),
            method: Some("GET".into()),
            host: Some("orders.svc".into()),
            path: Some("/orders/42".into()),
            query: Some("verbose=1".into()),
            endpoint: Some("/orders/42".into()),
            status: Some(200),
            duration_us: Some(12_345),
            request_size: Some(request.len() as u64),
            response_size: Some(response.len() as u64),
            trace_id: Some("0af7651916cd43dd8448eb211c80319c".into()),
            parent_span_id: Some("b7ad6b7169203331".into()),
            client_ip: Some("10.0.0.5".into()),
            client_port: Some(43210),
            server_ip: Some("10.0.0.9".into()),
            server_port: Some(8080),
            pid: Some(PID),
            thread_id: Some(4243),
            process_name: Some("curl".into()),
            tcp_seq_request: Some(111),
            tcp_seq_response: Some(999),
            ..RequestRecord::default()
        };
        assert_eq!(*records[0], expected);
        assert_eq!(sessions.unmatched_responses, 0);
    }

    #[test]
    fn a_server_request_and_response() {
        let mut sessions = Sessions::default();
        let request = b"POST /pay HTTP/1.1\r\nHost: pay\r\nX-Request-Id: r-7\r\nContent-Length: 4\r\n\r\n{\"a\"";
        // The body is longer than the payload: the size comes from the headers.
        let received = Event { bytes: 9999, ..with(data(Direction::Ingress, request), 0, 77, 300) };
        assert!(sessions.on_data(&received, T0).is_empty());
        let response = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
        let records = sessions.on_data(&with(data(Direction::Egress, response), 0, 77, 300), T0 + 3 * MS);
        let record = &records[0];
        assert_eq!(record.observation_point, ObservationPoint::ServerProcess);
        assert_eq!((record.client_ip.as_deref(), record.client_port), (Some("10.0.0.9"), Some(8080)));
        assert_eq!((record.server_ip.as_deref(), record.server_port), (Some("10.0.0.5"), Some(43210)));
        assert_eq!((record.status, record.duration_us), (Some(201), Some(3000)));
        assert_eq!((record.request_size, record.response_size), (Some(request.len() as u64), Some(response.len() as u64)));
        assert_eq!((record.tcp_seq_request, record.tcp_seq_response), (None, None));
        assert_eq!((record.syscall_trace_id_request, record.syscall_trace_id_response), (Some(77), Some(77)));
        assert_eq!((record.thread_id, record.request_id.as_deref()), (Some(300), Some("r-7")));
        assert_eq!(record.error, None);
    }

    #[test]
    fn keep_alive() {
        let mut sessions = Sessions::default();
        let mut statuses = Vec::new();
        for (n, path) in ["/a", "/b", "/c"].iter().enumerate() {
            let at = T0 + n as u64 * 100 * MS;
            assert!(sessions.on_data(&data(Direction::Egress, format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes()), at).is_empty());
            for record in sessions.on_data(&data(Direction::Ingress, &ok(path)), at + (n as u64 + 1) * MS) {
                statuses.push((record.path.unwrap(), record.duration_us.unwrap(), record.response_size.unwrap()));
            }
        }
        assert_eq!(statuses, [("/a".to_string(), 1000, 40), ("/b".to_string(), 2000, 40), ("/c".to_string(), 3000, 40)]);
        assert_eq!(sessions.len(), 1);
    }

    #[test]
    fn pipelining() {
        let requests = b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n";
        let paths = |records: &[Record]| {
            records.iter().map(|r| (r.path.clone().unwrap(), r.status.unwrap(), r.duration_us.unwrap())).collect::<Vec<_>>()
        };
        let responses = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ];

        // Responses in separate events.
        let mut sessions = Sessions::default();
        assert!(sessions.on_data(&with(data(Direction::Egress, requests), 5, 0, 1), T0).is_empty());
        let mut records = Vec::new();
        for (n, response) in responses.iter().enumerate() {
            records.extend(sessions.on_data(&data(Direction::Ingress, response), T0 + (n as u64 + 1) * MS));
        }
        assert_eq!(paths(&records), [("/1".into(), 200, 1000), ("/2".into(), 404, 2000), ("/3".into(), 500, 3000)]);
        // All three requests took the event's sequence number; sizes from the headers.
        assert!(records.iter().all(|r| r.tcp_seq_request == Some(5) && r.request_size == Some(28)));

        // Responses in one event.
        let mut sessions = Sessions::default();
        sessions.on_data(&data(Direction::Egress, requests), T0);
        let records = sessions.on_data(&data(Direction::Ingress, &responses.concat()), T0 + MS);
        assert_eq!(paths(&records), [("/1".into(), 200, 1000), ("/2".into(), 404, 1000), ("/3".into(), 500, 1000)]);
        assert_eq!(records.iter().map(|r| r.response_size.unwrap()).collect::<Vec<_>>(), [38, 45, 57]);

        // Reads that cut across messages: the end of one body, then the next response.
        let mut sessions = Sessions::default();
        sessions.on_data(&data(Direction::Egress, requests), T0);
        let stream = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".as_slice(),
            b"hello",
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\n",
            b"gone.",
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
        ]
        .concat();
        let mut records = Vec::new();
        // "…he" | "llo" + the 404's headers + "go" | "ne." + the 500.
        for (n, read) in [&stream[..40], &stream[40..90], &stream[90..]].into_iter().enumerate() {
            records.extend(sessions.on_data(&data(Direction::Ingress, read), T0 + (n as u64 + 1) * MS));
        }
        assert_eq!(paths(&records), [("/1".into(), 200, 1000), ("/2".into(), 404, 2000), ("/3".into(), 500, 3000)]);
        assert_eq!(records.iter().map(|r| r.response_size.unwrap()).collect::<Vec<_>>(), [43, 50, 57]);
    }

    #[test]
    fn headers_cut_by_a_short_read_wait_for_the_next_read() {
        let mut sessions = Sessions::default();
        // A reader that first asks for 32 bytes (Rust's read_to_end does) cuts the request line's headers.
        let request = b"GET /slow HTTP/1.1\r\nHost: h\r\nX-Request-ID: r-1\r\n\r\n";
        assert!(sessions.on_data(&with(data(Direction::Ingress, &request[..32]), 700, 0, 1), T0).is_empty());
        assert!(sessions.on_data(&with(data(Direction::Ingress, &request[32..]), 732, 0, 1), T0 + MS).is_empty());
        let response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let mut records = sessions.on_data(&data(Direction::Egress, &response[..20]), T0 + 3 * MS);
        records.extend(sessions.on_data(&data(Direction::Egress, &response[20..]), T0 + 4 * MS));
        let [record] = records.as_slice() else { panic!("one record: {records:?}") };
        // Times and sequence numbers are those of the reads that started each message.
        assert_eq!((record.path.as_deref(), record.status, record.duration_us), (Some("/slow"), Some(200), Some(3000)));
        assert_eq!(
            (record.request_id.as_deref(), record.tcp_seq_request, record.request_size, record.response_size),
            (Some("r-1"), Some(700), Some(request.len() as u64), Some(response.len() as u64))
        );
    }

    #[test]
    fn statuses() {
        let mut sessions = Sessions::default();
        sessions.on_data(&data(Direction::Ingress, b"GET /missing HTTP/1.1\r\n\r\n"), T0);
        let not_found =
            sessions.on_data(&data(Direction::Egress, b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"), T0 + MS);
        sessions.on_data(&data(Direction::Ingress, b"GET /broken HTTP/1.1\r\n\r\n"), T0 + 2 * MS);
        // An interim response does not answer the request.
        assert!(sessions.on_data(&data(Direction::Egress, b"HTTP/1.1 100 Continue\r\n\r\n"), T0 + 3 * MS).is_empty());
        let error =
            sessions.on_data(&data(Direction::Egress, b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"), T0 + 4 * MS);
        assert_eq!((not_found[0].status, not_found[0].path.as_deref()), (Some(404), Some("/missing")));
        assert_eq!((error[0].status, error[0].path.as_deref(), error[0].duration_us), (Some(500), Some("/broken"), Some(2000)));
        assert_eq!(sessions.unmatched_responses, 0);
    }

    #[test]
    fn truncated_request() {
        let mut sessions = Sessions::default();
        // A 1024-byte payload of a 5000-byte request, cut inside a header.
        let payload = b"GET /search?q=shoes HTTP/1.1\r\nHost: shop\r\nX-Request-Id: cut-1\r\nCookie: a=aaaaaaaa";
        sessions.on_data(&Event { bytes: 5000, ..data(Direction::Egress, payload) }, T0);
        let records = sessions.on_data(&data(Direction::Ingress, &ok("[]")), T0 + MS);
        let record = &records[0];
        assert_eq!(
            (record.path.as_deref(), record.query.as_deref(), record.host.as_deref()),
            (Some("/search"), Some("q=shoes"), Some("shop"))
        );
        assert_eq!((record.request_id.as_deref(), record.request_size), (Some("cut-1"), Some(5000)));
    }

    #[test]
    fn body_continuations() {
        let mut sessions = Sessions::default();
        // A chunked upload: the request grows with each write.
        let upload = b"POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        sessions.on_data(&data(Direction::Egress, upload), T0);
        sessions.on_data(&Event { bytes: 4096, ..data(Direction::Egress, b"1000\r\nxxxx") }, T0 + MS);
        sessions.on_data(&data(Direction::Egress, b"0\r\n\r\n"), T0 + 2 * MS);
        // A response read in pieces, its length unknown (up to the close).
        assert!(sessions.on_data(&data(Direction::Ingress, b"HTTP/1.0 200 OK\r\n\r\nabc"), T0 + 3 * MS).is_empty());
        assert!(sessions.on_data(&Event { bytes: 1000, ..data(Direction::Ingress, b"def") }, T0 + 4 * MS).is_empty());
        let records = sessions.on_close(SOCKET, T0 + 5 * MS);
        assert_eq!(records.len(), 1);
        assert_eq!((records[0].request_size, records[0].response_size), (Some(upload.len() as u64 + 4096 + 5), Some(22 + 1000)));
        assert_eq!((records[0].status, records[0].duration_us, records[0].error.as_deref()), (Some(200), Some(3000), None));

        // A chunked response: done when its last chunk is seen.
        let mut sessions = Sessions::default();
        sessions.on_data(&data(Direction::Egress, b"GET /stream HTTP/1.1\r\n\r\n"), T0);
        assert!(sessions.on_data(&data(Direction::Ingress, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), T0 + MS).is_empty());
        assert!(sessions.on_data(&data(Direction::Ingress, b"5\r\nhello\r\n"), T0 + 2 * MS).is_empty());
        let records = sessions.on_data(&data(Direction::Ingress, b"0\r\n\r\n"), T0 + 3 * MS);
        assert_eq!((records[0].response_size, records[0].duration_us), (Some(47 + 10 + 5), Some(1000)));

        // Known-length bodies are not counted twice.
        let mut sessions = Sessions::default();
        sessions.on_data(&data(Direction::Egress, b"GET / HTTP/1.1\r\n\r\n"), T0);
        let records =
            sessions.on_data(&Event { bytes: 40, ..data(Direction::Ingress, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n") }, T0 + MS);
        assert!(sessions.on_data(&data(Direction::Ingress, b"{}"), T0 + 2 * MS).is_empty());
        assert_eq!(records[0].response_size, Some(40));

        // The next request ends an open response.
        let mut sessions = Sessions::default();
        sessions.on_data(&data(Direction::Egress, b"GET /1 HTTP/1.1\r\n\r\n"), T0);
        sessions.on_data(&data(Direction::Ingress, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"), T0 + MS);
        let records = sessions.on_data(&data(Direction::Egress, b"GET /2 HTTP/1.1\r\n\r\n"), T0 + 2 * MS);
        assert_eq!(records[0].path.as_deref(), Some("/1"));
    }

    #[test]
    fn a_response_with_nothing_pending() {
        let mut sessions = Sessions::default();
        assert!(sessions.on_data(&data(Direction::Ingress, &ok("late")), T0).is_empty());
        assert_eq!(sessions.unmatched_responses, 1);
        // The role it showed holds: the next request is paired.
        sessions.on_data(&data(Direction::Egress, b"GET / HTTP/1.1\r\n\r\n"), T0 + MS);
        assert_eq!(sessions.on_data(&data(Direction::Ingress, &ok("")), T0 + 2 * MS).len(), 1);
    }

    #[test]
    fn expire() {
        let mut sessions = Sessions::default();
        sessions.on_data(&data(Direction::Egress, b"GET /slow HTTP/1.1\r\n\r\n"), T0);
        sessions.on_data(&data(Direction::Egress, b"GET /later HTTP/1.1\r\n\r\n"), T0 + 8_000 * MS);
        let timeout = 5_000 * MS;
        assert!(sessions.expire(T0 + 4_000 * MS, timeout).is_empty());
        let records = sessions.expire(T0 + 6_000 * MS, timeout);
        assert_eq!(records.len(), 1);
        assert_eq!((records[0].path.as_deref(), records[0].status, records[0].duration_us), (Some("/slow"), None, None));
        assert_eq!(records[0].error.as_deref(), Some("timeout"));
        assert_eq!(sessions.len(), 1);
        let records = sessions.expire(T0 + 14_000 * MS, timeout);
        assert_eq!(records[0].path.as_deref(), Some("/later"));
        // Idle with nothing pending: forgotten.
        assert_eq!(sessions.len(), 0);

        // Idle after a completed exchange.
        sessions.on_data(&data(Direction::Egress, b"GET / HTTP/1.1\r\n\r\n"), T0);
        sessions.on_data(&data(Direction::Ingress, &ok("")), T0 + MS);
        assert!(sessions.expire(T0 + 2 * MS, timeout).is_empty());
        assert_eq!(sessions.len(), 1);
        assert!(sessions.expire(T0 + 10_000 * MS, timeout).is_empty());
        assert!(sessions.is_empty());
    }

    #[test]
    fn too_many_pending() {
        let mut sessions = Sessions::default();
        let mut timed_out = Vec::new();
        for n in 0..MAX_PENDING + 2 {
            timed_out.extend(sessions.on_data(&data(Direction::Egress, format!("GET /{n} HTTP/1.1\r\n\r\n").as_bytes()), T0 + n as u64));
        }
        assert_eq!(
            timed_out.iter().map(|r| (r.path.as_deref().unwrap(), r.error.as_deref().unwrap())).collect::<Vec<_>>(),
            [("/0", "timeout"), ("/1", "timeout")]
        );
        let records = sessions.on_data(&data(Direction::Ingress, &ok("")), T0 + MS);
        assert_eq!(records[0].path.as_deref(), Some("/2"));
    }

    #[test]
    fn on_close() {
        let mut sessions = Sessions::default();
        sessions.on_data(&data(Direction::Egress, b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"), T0);
        sessions.on_data(&data(Direction::Ingress, &ok("")), T0 + MS);
        let records = sessions.on_close(SOCKET, T0 + 7 * MS);
        assert_eq!(records.len(), 1);
        assert_eq!((records[0].path.as_deref(), records[0].status, records[0].duration_us), (Some("/b"), None, Some(7000)));
        assert_eq!(records[0].error.as_deref(), Some("connection closed before a response"));
        assert!(sessions.is_empty());
        assert!(sessions.on_close(SOCKET, T0).is_empty());
    }

    #[test]
    fn trace_and_request_ids() {
        let exchange = |request: &[u8], response: &[u8]| {
            let mut sessions = Sessions::default();
            sessions.on_data(&data(Direction::Egress, request), T0);
            sessions.on_data(&data(Direction::Ingress, response), T0 + MS).pop().unwrap()
        };
        let b3 = exchange(b"GET / HTTP/1.1\r\nb3: 80F198EE56343BA864FE8B2A57D3EFF7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90\r\n\r\n", &ok(""));
        assert_eq!(
            (b3.trace_id.as_deref(), b3.parent_span_id.as_deref()),
            (Some("80f198ee56343ba864fe8b2a57d3eff7"), Some("e457b5a2e4d86bd1"))
        );
        let multi = exchange(b"GET / HTTP/1.1\r\nX-B3-TraceId: 463ac35c9f6413ad\r\nX-B3-SpanId: a2fb4a1d1a96d312\r\n\r\n", &ok(""));
        assert_eq!(
            (multi.trace_id.as_deref(), multi.parent_span_id.as_deref()),
            (Some("0000000000000000463ac35c9f6413ad"), Some("a2fb4a1d1a96d312"))
        );
        let bad = exchange(b"GET / HTTP/1.1\r\ntraceparent: 00-nothex-b7ad6b7169203331-01\r\nb3: 0\r\n\r\n", &ok(""));
        assert_eq!((bad.trace_id, bad.parent_span_id, bad.span_id), (None, None, None));
        // x-request-id first, then x-kong-request-id; the response's apart (a proxy injected it).
        let both = exchange(b"GET / HTTP/1.1\r\nx-kong-request-id: k\r\nx-request-id: r\r\n\r\n", &ok(""));
        assert_eq!((both.request_id.as_deref(), both.response_request_id.as_deref()), (Some("r"), None));
        let kong = exchange(b"GET / HTTP/1.1\r\nx-kong-request-id: k\r\n\r\n", &ok(""));
        assert_eq!(kong.request_id.as_deref(), Some("k"));
        let from_response = exchange(b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK\r\nX-Kong-Request-Id: kr\r\nContent-Length: 0\r\n\r\n");
        assert_eq!((from_response.request_id.as_deref(), from_response.response_request_id.as_deref()), (None, Some("kr")));
    }

    #[test]
    fn tls_plaintext() {
        let mut sessions = Sessions::default();
        fn tls(direction: Direction, payload: &[u8]) -> Event<'_> {
            Event { tls: true, tcp_seq: 0, syscall_trace_id: 9, ..data(direction, payload) }
        }
        sessions.on_data(&tls(Direction::Egress, b"GET / HTTP/1.1\r\n\r\n"), T0);
        let record = sessions.on_data(&tls(Direction::Ingress, &ok("")), T0 + MS).pop().unwrap();
        assert!(record.tls);
        assert_eq!((record.tcp_seq_request, record.syscall_trace_id_request), (None, Some(9)));
    }

    #[test]
    fn not_http_keeps_no_state() {
        let mut sessions = Sessions::default();
        let client_hello = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x8a, 0x11];
        assert!(sessions.on_data(&data(Direction::Egress, &client_hello), T0).is_empty());
        assert!(sessions.on_data(&data(Direction::Ingress, b"\x16\x03\x03\x00\x7a\x02\x00\x00\x76"), T0).is_empty());
        assert!(sessions.is_empty());
        // Other kinds are not data.
        let closed = Event { kind: Kind::Closed, ..data(Direction::Egress, b"GET / HTTP/1.1\r\n\r\n") };
        assert!(sessions.on_data(&closed, T0).is_empty());
        assert!(sessions.is_empty());
    }

    #[test]
    fn a_known_http1_connection_stays_http1() {
        let mut sessions = Sessions::default();
        // A body written on its own that looks like a Redis request, a PostgreSQL
        // startup message, a MySQL greeting: still the HTTP/1 request's.
        let upload = b"POST /cache HTTP/1.1\r\nContent-Length: 61\r\n\r\n";
        sessions.on_data(&data(Direction::Egress, upload), T0);
        sessions.on_data(&data(Direction::Egress, b"*1\r\n$4\r\nPING\r\n"), T0);
        sessions.on_data(&data(Direction::Egress, &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]), T0);
        let greeting = [&[34, 0, 0, 0, 10][..], b"5.5.5-10.11\0", &[0; 22]].concat();
        assert!(super::mysql::starts_greeting(&greeting));
        sessions.on_data(&data(Direction::Egress, &greeting), T0);
        let records = sessions.on_data(&data(Direction::Ingress, &ok("")), T0 + MS);
        assert_eq!(records.len(), 1);
        assert_eq!((records[0].protocol.as_str(), records[0].path.as_deref(), records[0].status), ("http", Some("/cache"), Some(200)));
        assert_eq!(records[0].request_size, Some(upload.len() as u64 + 61));
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pieces: [&[u8]; 6] = [
            b"GET / HTTP/1.1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"0\r\n\r\n",
            b"\x16\x03\x01",
        ];
        let mut sessions = Sessions::default();
        for n in 0..20_000u64 {
            let mut payload = pieces[(next() % pieces.len() as u64) as usize].to_vec();
            payload.extend((0..next() % 8).map(|_| next() as u8));
            let direction = if next() % 2 == 0 { Direction::Egress } else { Direction::Ingress };
            let event = Event { socket: next() % 4, bytes: next() as u32 % 100_000, ..data(direction, &payload) };
            let wall = if next() % 10 == 0 { 0 } else { T0 + n * MS };
            sessions.on_data(&event, wall);
            if next() % 50 == 0 {
                sessions.on_close(next() % 4, wall);
            }
        }
        sessions.expire(u64::MAX, 0);
        assert!(sessions.is_empty());
    }
}
