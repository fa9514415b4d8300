//! PostgreSQL (frontend/backend protocol 3.0) queries, paired FIFO as the
//! server answers in order (pipelining alike), through [`exchange`].
//!
//! A connection is known as PostgreSQL by the client's first message: the
//! startup message (protocol 3.0), or an SSLRequest / GSSENCRequest
//! (answered `N`, then the startup message follows). The startup and
//! authentication exchange gives no record. A connection open before the
//! capture started (a pool's) is known by its next query instead
//! ([`resumes_session`]): a whole `Q` or `P` message. Connections the server agrees
//! to encrypt (`S`, `G`) are not parsed (TLS plaintext of libpq is seen
//! through OpenSSL only on the libssl connections the capture probes).
//!
//! A request is a simple query (`Q`) or an extended-query batch up to its
//! Sync (`P` Parse, `B` Bind, `D`, `E` Execute, `C`, `H`, then `S`); its
//! response ends with ReadyForQuery (`Z`). Each gives one record:
//! `protocol = "postgresql"`, `endpoint` the statement normalized by
//! [`sql::normalize`] (a batch's: its Parse's, or the named statement's
//! that Bind names, as prepared on this connection), `method` its first
//! keyword upper-cased (`SELECT`, `INSERT`); a batch that names no known
//! statement has neither. `status` stays empty (HTTP codes only); an
//! ErrorResponse sets `error` to its SQLSTATE code and message, e.g.
//! `42P01 relation "nope" does not exist`. Sizes are the messages' bytes;
//! the duration runs from the request's first byte to the response's.
//! At most [`MAX_NAMED`] prepared statement texts are kept per connection.

use rustc_hash::FxHashMap;

use super::event::Direction;
use super::exchange::{Calls, Context, Frame, Parser, MAX_HEAD};
use super::http2::At;
use super::sql;

/// Named prepared statements remembered per connection.
pub const MAX_NAMED: usize = 256;

/// Longest error text kept.
const MAX_ERROR: usize = 256;

/// The startup message's protocol version, 3.0.
const PROTOCOL_3: u32 = 196_608;
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

/// Largest message length believed (the server's own limit is 1 GiB).
const MAX_MESSAGE: u32 = 1 << 30;

/// The payload starts with a client's first message: a startup message
/// (protocol 3.0), an SSLRequest or a GSSENCRequest.
pub fn starts_session(payload: &[u8]) -> bool {
    let (Some(len), Some(code)) = (be32(payload, 0), be32(payload, 4)) else { return false };
    match code {
        PROTOCOL_3 => (9..=10_000).contains(&len),
        SSL_REQUEST | GSSENC_REQUEST => len == 8,
        _ => false,
    }
}

/// The payload starts with a client's query on a connection whose startup
/// was missed: a whole simple Query (`Q`) or Parse (`P`) message (its length
/// all there, its strings NUL-terminated) whose statement starts with a
/// letter and holds no control character but whitespace.
pub fn resumes_session(payload: &[u8]) -> bool {
    let (Some(&kind), Some(len)) = (payload.first(), be32(payload, 1)) else { return false };
    let Some(body) = payload.get(5..(len as usize).saturating_add(1)).filter(|_| len > 5) else { return false };
    let text = match kind {
        b'Q' => body,
        // The statement's name, then its text.
        b'P' => match body.iter().position(|&b| b == 0) {
            Some(end) => &body[end + 1..],
            None => return false,
        },
        _ => return false,
    };
    let Some(end) = text.iter().position(|&b| b == 0) else { return false };
    let statement = &text[..end];
    let terminated = kind == b'P' || end + 1 == text.len();
    terminated
        && statement.first().is_some_and(u8::is_ascii_alphabetic)
        && std::str::from_utf8(statement).is_ok_and(|s| s.chars().all(|c| !c.is_control() || c.is_whitespace()))
}

/// Both directions of one PostgreSQL connection.
#[derive(Debug)]
pub struct Postgres {
    /// The way the client's messages travel.
    requests: Direction,
    /// The client's startup message was seen: its messages have a type byte.
    started: bool,
    /// The server's next byte answers an SSLRequest or GSSENCRequest.
    encryption_answer: bool,
    /// The server agreed to encrypt: nothing more is readable.
    encrypted: bool,
    /// The extended-query batch being sent, up to its Sync.
    batch: Option<Message>,
    /// The unnamed statement, and named ones, from their Parse.
    unnamed: Option<String>,
    named: FxHashMap<String, String>,
    /// The response being read, up to its ReadyForQuery.
    reply: Option<Reply>,
}

#[derive(Debug)]
struct Message {
    at: At,
    size: u64,
    statement: Option<String>,
}

#[derive(Debug)]
struct Reply {
    at: At,
    size: u64,
    error: Option<String>,
}

impl Parser for Postgres {
    fn frame(&mut self, way: Direction, bytes: &[u8]) -> Frame {
        let client = way == self.requests;
        if self.encrypted {
            return Frame::Unit { len: bytes.len() as u64, head: 0 };
        }
        if !client && self.encryption_answer {
            return Frame::Unit { len: 1, head: 1 };
        }
        if client && !self.started {
            // The startup message and its kin: a length, no type byte.
            return match be32(bytes, 0) {
                None => Frame::Need,
                Some(len) if (8..=10_000).contains(&len) => Frame::Unit { len: u64::from(len), head: 8 },
                Some(_) => Frame::Bad,
            };
        }
        let (Some(&kind), Some(len)) = (bytes.first(), be32(bytes, 1)) else { return Frame::Need };
        if !kind.is_ascii_alphanumeric() || !(4..MAX_MESSAGE).contains(&len) {
            return Frame::Bad;
        }
        let whole = matches!((client, kind), (true, b'Q' | b'P' | b'B') | (false, b'E'));
        Frame::Unit { len: u64::from(len) + 1, head: if whole { MAX_HEAD } else { 5 } }
    }

    fn unit(&mut self, way: Direction, head: &[u8], len: u64, at: At, calls: &mut Calls, cx: &mut Context) -> bool {
        if self.encrypted {
            return true;
        }
        if way != self.requests {
            self.server_message(head, len, at, calls, cx);
            return true;
        }
        if !self.started {
            match be32(head, 4) {
                Some(SSL_REQUEST | GSSENC_REQUEST) => self.encryption_answer = true,
                _ => self.started = true,
            }
            return true;
        }
        let (kind, body) = (head.first().copied().unwrap_or_default(), head.get(5..).unwrap_or_default());
        match kind {
            b'Q' => {
                let statement = Some(cstring(body).0);
                request(Message { at, size: len, statement }, calls, cx);
            }
            b'P' | b'B' | b'D' | b'E' | b'C' | b'H' | b'S' => {
                let batch = self.batch.get_or_insert(Message { at, size: 0, statement: None });
                batch.size = batch.size.saturating_add(len);
                match kind {
                    b'P' => {
                        let (name, rest) = cstring(body);
                        let statement = cstring(rest).0;
                        if name.is_empty() {
                            self.unnamed = Some(statement.clone());
                        } else if self.named.len() < MAX_NAMED || self.named.contains_key(&name) {
                            self.named.insert(name, statement.clone());
                        }
                        batch.statement = Some(statement);
                    }
                    b'B' if batch.statement.is_none() => {
                        let (_portal, rest) = cstring(body);
                        let name = cstring(rest).0;
                        batch.statement = if name.is_empty() { self.unnamed.clone() } else { self.named.get(&name).cloned() };
                    }
                    b'S' => request(self.batch.take().unwrap_or(Message { at, size: len, statement: None }), calls, cx),
                    _ => {}
                }
            }
            // Password and SASL messages, COPY data, Terminate: no request of their own.
            _ => {}
        }
        true
    }

    fn lost(&mut self, way: Direction, _calls: &mut Calls, _cx: &mut Context) {
        if way == self.requests {
            self.batch = None;
        } else {
            self.reply = None;
        }
    }
}

impl Postgres {
    /// A connection whose client's messages travel `requests`.
    pub fn new(requests: Direction) -> Postgres {
        Postgres {
            requests,
            started: false,
            encryption_answer: false,
            encrypted: false,
            batch: None,
            unnamed: None,
            named: FxHashMap::default(),
            reply: None,
        }
    }

    /// A connection already started when the capture began (see [`resumes_session`]).
    pub fn resumed(requests: Direction) -> Postgres {
        Postgres { started: true, ..Postgres::new(requests) }
    }

    fn server_message(&mut self, head: &[u8], len: u64, at: At, calls: &mut Calls, cx: &mut Context) {
        if self.encryption_answer {
            self.encryption_answer = false;
            self.encrypted = head.first() != Some(&b'N');
            return;
        }
        let reply = self.reply.get_or_insert(Reply { at, size: 0, error: None });
        reply.size = reply.size.saturating_add(len);
        match head.first() {
            Some(b'E') if reply.error.is_none() => reply.error = Some(error_text(head.get(5..).unwrap_or_default())),
            Some(b'Z') => {
                let reply = self.reply.take();
                // The ReadyForQuery ending the startup answers nothing.
                if let Some(reply) = reply.filter(|_| calls.waiting()) {
                    calls.response(reply.at, reply.size, reply.error, cx);
                }
            }
            _ => {}
        }
    }
}

/// A whole request: a query, or a batch up to its Sync.
fn request(message: Message, calls: &mut Calls, cx: &mut Context) {
    let endpoint = message.statement.as_deref().map(sql::normalize);
    let mut record = (cx.new_record)(message.at);
    record.protocol = "postgresql".into();
    record.method = endpoint.as_deref().and_then(sql::kind);
    record.endpoint = endpoint;
    record.request_size = Some(message.size);
    calls.request(record, message.at.wall_ns, cx);
}

/// An ErrorResponse's SQLSTATE code and message: `42P01 relation "t" does not exist`.
fn error_text(mut fields: &[u8]) -> String {
    let (mut code, mut message) = (String::new(), String::new());
    while let Some((&kind, rest)) = fields.split_first() {
        if kind == 0 {
            break;
        }
        let (value, rest) = cstring(rest);
        match kind {
            b'C' => code = value,
            b'M' => message = value,
            _ => {}
        }
        fields = rest;
    }
    let mut text = format!("{code} {message}").trim().to_string();
    if text.len() > MAX_ERROR {
        let mut cut = MAX_ERROR;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// A NUL-terminated string (up to the end when the capture cut it) and what follows it.
fn cstring(bytes: &[u8]) -> (String, &[u8]) {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    (String::from_utf8_lossy(&bytes[..end]).into_owned(), bytes.get(end + 1..).unwrap_or_default())
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::super::session::testing::*;
    use super::super::session::Record;
    use super::*;
    use crate::event::{ObservationPoint, RequestRecord, SignalSource};

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        [&[kind][..], &(body.len() as u32 + 4).to_be_bytes(), body].concat()
    }

    fn startup() -> Vec<u8> {
        let body = [&PROTOCOL_3.to_be_bytes()[..], b"user\0alice\0database\0shop\0\0"].concat();
        [&(body.len() as u32 + 4).to_be_bytes()[..], &body].concat()
    }

    fn ssl_request() -> Vec<u8> {
        [8u32.to_be_bytes(), SSL_REQUEST.to_be_bytes()].concat()
    }

    /// What a server sends after a trusted startup: AuthenticationOk, a parameter, the key, ready.
    fn welcome() -> Vec<u8> {
        [message(b'R', &0u32.to_be_bytes()), message(b'S', b"server_version\x0015.18\0"), message(b'K', &[0, 0, 0, 7, 0, 0, 0, 9]), ready()]
            .concat()
    }

    fn ready() -> Vec<u8> {
        message(b'Z', b"I")
    }

    fn query(text: &str) -> Vec<u8> {
        message(b'Q', &[text.as_bytes(), b"\0"].concat())
    }

    fn rows(tag: &str) -> Vec<u8> {
        [message(b'T', b"\0\x01id\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0"), message(b'D', b"\0\x01\0\0\0\x0142"), complete(tag)]
            .concat()
    }

    fn complete(tag: &str) -> Vec<u8> {
        message(b'C', &[tag.as_bytes(), b"\0"].concat())
    }

    fn error(code: &str, text: &str) -> Vec<u8> {
        message(b'E', &[b"SERROR\0VERROR\0C", code.as_bytes(), b"\0M", text.as_bytes(), b"\0Fparse.c\0\0"].concat())
    }

    /// A client whose session has started (SSL refused, startup, welcome).
    fn started() -> Peer {
        let mut peer = Peer::new((40000, 5432));
        peer.send(&ssl_request(), T0);
        peer.receive(b"N", T0);
        peer.send(&startup(), T0);
        peer.receive(&welcome(), T0);
        assert_eq!(peer.take(), []);
        peer
    }

    type Summary = (Option<String>, Option<String>, Option<String>, Option<u64>, Option<u64>);

    /// Method, endpoint, error, request size, response size.
    fn summary(records: &[Record]) -> Vec<Summary> {
        records.iter().map(|r| (r.method.clone(), r.endpoint.clone(), r.error.clone(), r.request_size, r.response_size)).collect()
    }

    fn call(method: &str, endpoint: &str, error: Option<&str>, sizes: (usize, usize)) -> Summary {
        (Some(method.into()), Some(endpoint.into()), error.map(str::to_string), Some(sizes.0 as u64), Some(sizes.1 as u64))
    }

    #[test]
    fn starts_session() {
        assert!(super::starts_session(&startup()));
        assert!(super::starts_session(&ssl_request()));
        assert!(super::starts_session(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]));
        for not in [&query("SELECT 1")[..], &ready(), b"GET / HTTP/1.1\r\n", &[0, 0, 0, 8, 0, 3, 0, 0], &[0, 0, 0, 8], b""] {
            assert!(!super::starts_session(not), "{not:?}");
        }
    }

    fn parse(name: &str, text: &str) -> Vec<u8> {
        message(b'P', &[name.as_bytes(), b"\0", text.as_bytes(), b"\0\0\0"].concat())
    }

    #[test]
    fn resumes_session() {
        let batch = [parse("", "SELECT * FROM t WHERE id = $1"), message(b'S', b"")].concat();
        for query in [&query("SELECT 1")[..], &query("select\n  1"), &parse("s1", "DELETE FROM t"), &batch] {
            assert!(super::resumes_session(query), "{query:?}");
        }
        let cut = query("SELECT name FROM users");
        for not in [
            &startup()[..],
            &ssl_request(),
            &ready(),
            &message(b'Q', b"SELECT 1"),
            &message(b'Q', b"SELECT 1\0\0"),
            &message(b'Q', b"\x01\x02\0"),
            &message(b'Q', b"1 + 1\0"),
            &message(b'Q', b"SELECT\x07\0"),
            &message(b'P', b"no text"),
            &cut[..cut.len() - 1],
            b"POST / HTTP/1.1\r\n",
            b"QUIT\r\n",
            b"",
        ] {
            assert!(!super::resumes_session(not), "{not:?}");
        }
    }

    /// A connection open before the capture: its next query makes it known.
    #[test]
    fn a_connection_seen_from_its_next_query() {
        let mut peer = Peer::new((40000, 5432));
        // The end of a reply to a query not seen: nothing to pair, no state kept.
        peer.receive(&[complete("SELECT 1"), ready()].concat(), T0);
        let request = query("SELECT name FROM users WHERE id = 42");
        let response = [rows("SELECT 1"), ready()].concat();
        peer.send(&request, T0 + MS);
        peer.receive(&response, T0 + 2 * MS);
        let batch = [parse("", "UPDATE users SET name = $1"), message(b'S', b"")].concat();
        let answer = [message(b'1', b""), complete("UPDATE 1"), ready()].concat();
        peer.send(&batch, T0 + 3 * MS);
        peer.receive(&answer, T0 + 4 * MS);
        assert_eq!(
            summary(&peer.take()),
            [
                call("SELECT", "SELECT name FROM users WHERE id = ?", None, (request.len(), response.len())),
                call("UPDATE", "UPDATE users SET name = $1", None, (batch.len(), answer.len())),
            ]
        );
        assert_eq!(peer.sessions.take_counters()[1], Default::default());
    }

    #[test]
    fn a_simple_query() {
        let mut peer = started();
        let request = query("SELECT name FROM users WHERE id = 42");
        peer.send(&request, T0 + MS);
        let response = [rows("SELECT 1"), ready()].concat();
        peer.receive(&response, T0 + 4 * MS);
        let expected = RequestRecord {
            time: DateTime::from_timestamp_nanos((T0 + MS) as i64),
            observation_point: ObservationPoint::ClientProcess,
            signal_source: SignalSource::Ebpf,
            protocol: "postgresql".into(),
            method: Some("SELECT".into()),
            endpoint: Some("SELECT name FROM users WHERE id = ?".into()),
            duration_us: Some(3000),
            request_size: Some(request.len() as u64),
            response_size: Some(response.len() as u64),
            client_ip: Some("127.0.0.1".into()),
            client_port: Some(40000),
            server_ip: Some("127.0.0.1".into()),
            server_port: Some(5432),
            pid: Some(PID),
            thread_id: Some(32),
            process_name: Some("client".into()),
            tcp_seq_request: Some(OUT_SEQ + 8 + startup().len() as u32),
            tcp_seq_response: Some(IN_SEQ + 1 + welcome().len() as u32),
            ..RequestRecord::default()
        };
        assert_eq!(peer.take(), [Box::new(expected)]);
        assert_eq!(peer.sessions.take_counters()[1], Default::default());
    }

    #[test]
    fn errors() {
        let mut peer = started();
        let failing = query("SELECT * FROM nope");
        let failed = [error("42P01", "relation \"nope\" does not exist"), ready()].concat();
        peer.send(&failing, T0);
        peer.receive(&failed, T0 + MS);
        let duplicate = query("INSERT INTO t (id, name) VALUES (1, 'it''s')");
        let rejected = [error("23505", "duplicate key value violates unique constraint \"t_pkey\""), ready()].concat();
        peer.send(&duplicate, T0 + 2 * MS);
        peer.receive(&rejected, T0 + 3 * MS);
        // Two statements in one query, the second failing: one request.
        let two = query("UPDATE t SET n = n + 1; SELECT 1/0");
        let half = [complete("UPDATE 1"), error("22012", "division by zero"), ready()].concat();
        peer.send(&two, T0 + 4 * MS);
        peer.receive(&half, T0 + 5 * MS);
        assert_eq!(
            summary(&peer.take()),
            [
                call("SELECT", "SELECT * FROM nope", Some("42P01 relation \"nope\" does not exist"), (failing.len(), failed.len())),
                call(
                    "INSERT",
                    "INSERT INTO t (id, name) VALUES (?, ?)",
                    Some("23505 duplicate key value violates unique constraint \"t_pkey\""),
                    (duplicate.len(), rejected.len())
                ),
                call("UPDATE", "UPDATE t SET n = n + ?; SELECT ?/?", Some("22012 division by zero"), (two.len(), half.len())),
            ]
        );
    }

    #[test]
    fn extended_queries_pipelined() {
        let mut peer = started();
        let bind = |statement: &str| message(b'B', &[b"\0", statement.as_bytes(), b"\0\0\0\0\x01\0\0\0\x017\0\0"].concat());
        let execute = message(b'E', b"\0\0\0\0\0");
        let sync = message(b'S', b"");
        // An unnamed statement, a named one, then the named one again by Bind alone.
        let first = [parse("", "SELECT * FROM t WHERE id = $1"), bind(""), message(b'D', b"P\0"), execute.clone(), sync.clone()].concat();
        let second = [parse("s1", "DELETE FROM t WHERE id = $1"), bind("s1"), execute.clone(), sync.clone()].concat();
        let third = [bind("s1"), execute, sync].concat();
        peer.send(&[first.clone(), second.clone(), third.clone()].concat(), T0);
        let ok = [message(b'1', b""), message(b'2', b""), rows("SELECT 1"), ready()].concat();
        let deleted = [message(b'1', b""), message(b'2', b""), complete("DELETE 1"), ready()].concat();
        let missing = [message(b'2', b""), complete("DELETE 0"), ready()].concat();
        peer.receive(&[ok.clone(), deleted.clone()].concat(), T0 + MS);
        peer.receive(&missing, T0 + 2 * MS);
        let records = peer.take();
        assert_eq!(
            summary(&records),
            [
                call("SELECT", "SELECT * FROM t WHERE id = $1", None, (first.len(), ok.len())),
                call("DELETE", "DELETE FROM t WHERE id = $1", None, (second.len(), deleted.len())),
                call("DELETE", "DELETE FROM t WHERE id = $1", None, (third.len(), missing.len())),
            ]
        );
        assert_eq!(records.iter().map(|r| r.duration_us.unwrap()).collect::<Vec<_>>(), [1000, 1000, 2000]);
    }

    #[test]
    fn reads_cut_at_every_byte() {
        let request = [query("SELECT 1"), query("SELECT 'a'")].concat();
        let response = [rows("SELECT 1"), ready(), error("42601", "syntax error"), ready()].concat();
        let first_reply = rows("SELECT 1").len() + ready().len();
        let expected = [
            call("SELECT", "SELECT ?", None, (14, first_reply)),
            call("SELECT", "SELECT ?", Some("42601 syntax error"), (16, response.len() - first_reply)),
        ];
        for cut in 1..request.len() {
            let mut peer = started();
            peer.send(&request[..cut], T0);
            peer.send(&request[cut..], T0 + MS);
            peer.receive(&response, T0 + 3 * MS);
            assert_eq!(summary(&peer.take()), expected, "request cut at {cut}");
        }
        for cut in 1..response.len() {
            let mut peer = started();
            peer.send(&request, T0);
            peer.receive(&response[..cut], T0 + MS);
            peer.receive(&response[cut..], T0 + 2 * MS);
            let records = peer.take();
            assert_eq!(summary(&records), expected, "response cut at {cut}");
            let second = if cut <= first_reply { 2000 } else { 1000 };
            assert_eq!(records[1].duration_us, Some(second), "response cut at {cut}");
        }
        // The startup message cut too (the first message tells the protocol: it comes whole).
        let opening = startup();
        for cut in 1..opening.len() {
            let mut peer = Peer::new((40000, 5432));
            peer.send(&ssl_request(), T0);
            peer.receive(b"N", T0);
            peer.send(&opening[..cut], T0);
            peer.send(&opening[cut..], T0);
            peer.receive(&welcome()[..cut.min(20)], T0);
            peer.receive(&welcome()[cut.min(20)..], T0);
            peer.send(&query("SELECT 1"), T0);
            peer.receive(&[rows("SELECT 1"), ready()].concat(), T0);
            assert_eq!(summary(&peer.take()), [call("SELECT", "SELECT ?", None, (14, first_reply))], "startup cut at {cut}");
        }
    }

    #[test]
    fn a_server_and_a_statement_beyond_the_capture() {
        let mut peer = Peer::new((5432, 40000));
        peer.receive(&startup(), T0);
        peer.send(&welcome(), T0);
        // A 100 kB INSERT of which 1024 bytes were captured.
        let long = format!("INSERT INTO blobs VALUES ('{}')", "x".repeat(100_000));
        let request = query(&long);
        peer.call(Direction::Ingress, &request[..1024], request.len(), T0 + MS);
        let response = [complete("INSERT 0 1"), ready()].concat();
        peer.send(&response, T0 + 2 * MS);
        let records = peer.take();
        assert_eq!(summary(&records), [call("INSERT", "INSERT INTO blobs VALUES (?", None, (request.len(), response.len()))]);
        assert_eq!(records[0].observation_point, ObservationPoint::ServerProcess);
        assert_eq!(peer.sessions.take_counters()[1], Default::default());
    }

    #[test]
    fn encrypted_connections_are_passed_over() {
        let mut peer = Peer::new((40000, 5432));
        peer.send(&ssl_request(), T0);
        peer.receive(b"S", T0);
        peer.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", T0);
        peer.receive(b"\x16\x03\x03\x00\x7a\x02\x00\x00\x76", T0);
        assert_eq!(peer.take(), []);
        assert_eq!(peer.sessions.take_counters()[1], Default::default());
    }

    #[test]
    fn garbage_never_panics() {
        let pieces = [
            startup(),
            ssl_request(),
            b"N".to_vec(),
            query("SELECT 1"),
            ready(),
            error("42P01", "x"),
            message(b'P', b"s\0"),
            message(b'S', b""),
        ];
        let mut peer = Peer::new((40000, 5432));
        peer.garbage(&pieces);
        peer.sessions.expire(u64::MAX, 0);
        assert!(peer.sessions.is_empty());
    }
}
