//! MySQL and MariaDB (client/server protocol 4.1) commands, paired FIFO as
//! the server answers in order, through [`exchange`].
//!
//! A connection is known as MySQL by the server's greeting (protocol 10
//! handshake: the server speaks first); the handshake and authentication
//! give no record, and connections that switch to TLS are not parsed. A
//! connection open before the capture started (a pool's) is known by its
//! next query instead ([`resumes_session`]); whether it ends result sets with
//! EOF or OK packets (its capabilities were missed) shows at its first result
//! set. Each
//! command is one record, `protocol = "mysql"`:
//! - `COM_QUERY`: `endpoint` the statement normalized by
//!   [`sql::normalize`], `method` its first keyword (`SELECT`, `INSERT`);
//! - `COM_STMT_PREPARE` likewise, and `COM_STMT_EXECUTE` with the text of
//!   the statement it executes (known by the id the prepare's answer gave,
//!   up to [`MAX_STATEMENTS`] per connection);
//! - other commands answered with one packet (`COM_PING`, `COM_INIT_DB`,
//!   `COM_STMT_RESET` …): `method` and `endpoint` the command's name
//!   (`PING`); commands with no answer (`COM_STMT_CLOSE`, `COM_QUIT`) give
//!   none.
//!
//! A response is an OK, an ERR, or a result set (column count, column
//! definitions, rows, up to its EOF or OK, then the next result set when
//! the status says more follow). `status` stays empty (HTTP codes only); an
//! ERR sets `error` to its code, SQL state and message, as the `mysql`
//! client prints them: `1146 (42S02): Table 'shop.nope' doesn't exist`.
//! Sizes are the packets' bytes, headers included. A payload of 2^24 - 1
//! bytes goes on in the next packet (statements and values of 16 MiB or
//! more): that packet only adds to the size, whatever its first bytes say.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use super::event::Direction;
use super::exchange::{Calls, Context, Frame, Parser, MAX_HEAD, MAX_PENDING};
use super::http2::At;
use super::sql;

/// Prepared statement texts remembered per connection.
pub const MAX_STATEMENTS: usize = 256;

/// Longest error text kept.
const MAX_ERROR: usize = 256;

const COM_QUIT: u8 = 0x01;
const COM_QUERY: u8 = 0x03;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;
const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
const COM_STMT_CLOSE: u8 = 0x19;

/// A packet payload this long is continued by the next packet.
const MAX_PAYLOAD: u64 = 0xff_ffff;

const CLIENT_SSL: u32 = 0x0800;
const CLIENT_DEPRECATE_EOF: u32 = 0x0100_0000;
const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;

/// The payload starts with a server's greeting: a packet of sequence 0
/// whose payload is protocol version 10 and a NUL-terminated version.
pub fn starts_greeting(payload: &[u8]) -> bool {
    let len = le(payload.get(..3).unwrap_or_default()) as usize;
    let version = payload.get(5..payload.len().min(4 + len)).unwrap_or_default();
    let text = version.iter().take_while(|b| b.is_ascii_graphic()).count();
    (30..1024).contains(&len) && payload.get(3..5) == Some(&[0u8, 10][..]) && text > 0 && version.get(text) == Some(&0)
}

/// The payload starts with a client's query on a connection whose
/// handshake was missed: a whole `COM_QUERY` or `COM_STMT_PREPARE` packet
/// of sequence 0 whose statement starts with a letter and holds no control
/// character but whitespace.
pub fn resumes_session(payload: &[u8]) -> bool {
    let len = le(payload.get(..3).unwrap_or_default()) as usize;
    let (Some(&[0, command]), Some(statement)) = (payload.get(3..5), payload.get(5..4 + len).filter(|_| len > 1)) else { return false };
    matches!(command, COM_QUERY | COM_STMT_PREPARE)
        && statement.first().is_some_and(u8::is_ascii_alphabetic)
        && std::str::from_utf8(statement).is_ok_and(|s| s.chars().all(|c| !c.is_control() || c.is_whitespace()))
}

/// The payload is a packet header alone (sequence 0, a length of a
/// command): a server reads a packet's header apart from its body.
pub fn header_alone(payload: &[u8], bytes: u32) -> bool {
    let len = u64::from(le(payload.get(..3).unwrap_or_default()));
    payload.len() == 4 && bytes == 4 && payload[3] == 0 && (2..=MAX_PAYLOAD).contains(&len)
}

/// Both directions of one MySQL connection.
#[derive(Debug)]
pub struct Mysql {
    /// The way the client's packets travel.
    requests: Direction,
    /// Until the server's OK (or ERR) ends the authentication.
    handshake: bool,
    /// The server's capabilities, from its greeting.
    server_capabilities: u32,
    /// The session reports result set ends with OK packets, not EOF; None
    /// until known (a connection resumed mid-way learns it from a result set).
    deprecate_eof: Option<bool>,
    /// The connection switched to TLS: nothing more is readable.
    encrypted: bool,
    /// What each request waiting expects, oldest first (alongside the calls).
    expected: VecDeque<Expect>,
    /// The response being read.
    reply: Option<Reply>,
    statements: FxHashMap<u32, String>,
    /// `Some(recorded)`: the client's last packet was continued by the
    /// next; `recorded` when that packet made a call (its size grows).
    request_goes_on: Option<bool>,
    /// The server's last packet was continued by the next.
    reply_goes_on: bool,
    /// The sequence number a response starts with: one past the client's
    /// last packet (a request of several packets moves it on).
    reply_seq: u8,
}

/// What the response to a request looks like.
#[derive(Debug)]
enum Expect {
    /// An OK, an ERR or result sets.
    Results,
    /// A prepare's answer, for the statement text given.
    Prepare(String),
    /// One packet.
    One,
}

#[derive(Debug)]
struct Reply {
    at: At,
    size: u64,
    expect: Expect,
    state: State,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// The first packet of a response, or of the next result set.
    Start,
    /// Packets to pass over (column or parameter definitions, their EOF).
    Skip(u64),
    /// Column definitions, then rows.
    Columns(u64),
    /// After the column definitions, when it is not known whether an EOF
    /// packet follows them: the next packet tells.
    AfterColumns,
    Rows,
}

impl Parser for Mysql {
    fn frame(&mut self, way: Direction, bytes: &[u8]) -> Frame {
        if self.encrypted {
            return Frame::Unit { len: bytes.len() as u64, head: 0 };
        }
        let Some(header) = bytes.get(..4) else { return Frame::Need };
        let len = u64::from(le(&header[..3])) + 4;
        // Requests, the handshake and errors are read whole; of the rest, the start.
        let whole = way == self.requests || self.handshake || bytes.get(4) == Some(&0xff);
        Frame::Unit { len, head: if whole { MAX_HEAD } else { 32 } }
    }

    fn unit(&mut self, way: Direction, head: &[u8], len: u64, at: At, calls: &mut Calls, cx: &mut Context) -> bool {
        if self.encrypted {
            return true;
        }
        let (seq, payload) = (head.get(3).copied().unwrap_or_default(), head.get(4..).unwrap_or_default());
        let goes_on = len == MAX_PAYLOAD + 4;
        if way == self.requests {
            self.reply_seq = seq.wrapping_add(1);
            match self.request_goes_on {
                Some(true) => calls.grow_request(len),
                Some(false) => {}
                None => {
                    let recorded = self.client_packet(seq, payload, len, at, calls, cx);
                    self.request_goes_on = goes_on.then_some(recorded);
                    return true;
                }
            }
            if !goes_on {
                self.request_goes_on = None;
            }
        } else if std::mem::replace(&mut self.reply_goes_on, goes_on) {
            if let Some(reply) = &mut self.reply {
                reply.size = reply.size.saturating_add(len);
            }
        } else {
            self.server_packet(seq, payload, len, at, calls, cx);
        }
        true
    }

    fn lost(&mut self, way: Direction, _calls: &mut Calls, _cx: &mut Context) {
        if way == self.requests {
            self.request_goes_on = None;
        } else {
            // The framing answers every request waiting.
            self.reply = None;
            self.reply_goes_on = false;
            self.expected.clear();
        }
    }
}

impl Mysql {
    /// A connection whose client's packets travel `requests`.
    pub fn new(requests: Direction) -> Mysql {
        Mysql {
            requests,
            handshake: true,
            server_capabilities: 0,
            deprecate_eof: None,
            encrypted: false,
            expected: VecDeque::new(),
            reply: None,
            statements: FxHashMap::default(),
            request_goes_on: None,
            reply_goes_on: false,
            reply_seq: 1,
        }
    }

    /// A client's packet; true when it made a call.
    /// A connection already past its handshake when the capture began (see [`resumes_session`]).
    pub fn resumed(requests: Direction) -> Mysql {
        Mysql { handshake: false, ..Mysql::new(requests) }
    }

    fn client_packet(&mut self, seq: u8, payload: &[u8], len: u64, at: At, calls: &mut Calls, cx: &mut Context) -> bool {
        if self.handshake {
            if seq == 1 {
                let client = payload.get(..4).map_or(0, le);
                self.deprecate_eof = Some(client & self.server_capabilities & CLIENT_DEPRECATE_EOF != 0);
                // An SSLRequest: the capabilities alone, then TLS.
                self.encrypted = client & CLIENT_SSL != 0 && payload.len() == 32;
            }
            return false;
        }
        // Commands start at sequence 0; other packets continue one.
        let Some((&command, body)) = payload.split_first().filter(|_| seq == 0) else { return false };
        let (name, statement, expect) = match command {
            COM_QUERY => (None, Some(text(body)), Expect::Results),
            COM_STMT_PREPARE => (None, Some(text(body)), Expect::Prepare(text(body))),
            COM_STMT_EXECUTE => {
                let id = body.get(..4).map(le);
                (Some("STMT_EXECUTE"), id.and_then(|id| self.statements.get(&id).cloned()), Expect::Results)
            }
            COM_QUIT | COM_STMT_CLOSE | COM_STMT_SEND_LONG_DATA => return false,
            _ => (Some(command_name(command)), None, Expect::One),
        };
        let endpoint = statement.as_deref().map(sql::normalize);
        let method = match (&endpoint, name) {
            (Some(endpoint), _) => sql::kind(endpoint),
            (None, name) => name.map(str::to_string),
        };
        let mut record = (cx.new_record)(at);
        record.protocol = "mysql".into();
        record.endpoint = endpoint.or_else(|| name.map(str::to_string));
        record.method = method;
        record.request_size = Some(len);
        // Calls keeps at most MAX_PENDING, dropping the oldest: so does this.
        if self.expected.len() >= MAX_PENDING {
            self.expected.pop_front();
        }
        self.expected.push_back(expect);
        calls.request(record, at.wall_ns, cx);
        true
    }

    fn server_packet(&mut self, seq: u8, payload: &[u8], len: u64, at: At, calls: &mut Calls, cx: &mut Context) {
        let first = payload.first().copied();
        if self.handshake {
            match first {
                Some(10) if seq == 0 => self.server_capabilities = greeting_capabilities(payload),
                Some(0x00 | 0xff) => self.handshake = false,
                _ => {}
            }
            return;
        }
        if self.reply.is_none() && seq != self.reply_seq {
            // The rest of a response taken as ended (a prepare's on a resumed
            // connection, whose EOF packets were not counted).
            return;
        }
        if self.reply.is_none() {
            // Nothing asked: a packet of its own (the server closing, say).
            let Some(expect) = self.expected.pop_front() else { return calls.response(at, len, None, cx) };
            self.reply = Some(Reply { at, size: 0, expect, state: State::Start });
        }
        let Some(reply) = &mut self.reply else { return };
        reply.size = reply.size.saturating_add(len);
        let mut error = None;
        let done = match (reply.state, &reply.expect) {
            (_, _) if first == Some(0xff) && !matches!(reply.state, State::Skip(_) | State::Columns(_)) => {
                error = Some(error_text(payload));
                true
            }
            (State::Start, Expect::One) => true,
            (State::Start, Expect::Prepare(statement)) => {
                // OK: statement id, columns, parameters; their definitions follow.
                let id = payload.get(1..5).map(le);
                let count = |at: usize| u64::from(payload.get(at..at + 2).map_or(0, le));
                // Not known: no EOF counted (the reply ends early, the rest is passed over).
                let eof = |n: u64| n + u64::from(n > 0 && self.deprecate_eof == Some(false));
                let left = eof(count(5)) + eof(count(7));
                if let Some(id) = id.filter(|id| self.statements.len() < MAX_STATEMENTS || self.statements.contains_key(id)) {
                    self.statements.insert(id, statement.clone());
                }
                reply.state = State::Skip(left);
                left == 0
            }
            (State::Start, Expect::Results) => match first {
                Some(0x00) => !more_results(ok_status(payload)),
                // LOCAL INFILE: the client sends the file, then the server answers.
                Some(0xfb) => false,
                _ => {
                    let columns = lenenc(payload).unwrap_or(0);
                    reply.state = match self.deprecate_eof {
                        Some(deprecate_eof) => State::Columns(columns + u64::from(!deprecate_eof)),
                        None => State::Columns(columns),
                    };
                    false
                }
            },
            (State::Skip(left), _) => {
                reply.state = State::Skip(left.saturating_sub(1));
                left <= 1
            }
            (State::Columns(left), _) => {
                reply.state = match left {
                    2.. => State::Columns(left - 1),
                    _ if self.deprecate_eof.is_none() => State::AfterColumns,
                    _ => State::Rows,
                };
                false
            }
            // An EOF packet is 5 bytes; a row never starts 0xfe in fewer than 9.
            (State::AfterColumns, _) if first == Some(0xfe) && len - 4 == 5 => {
                self.deprecate_eof = Some(false);
                reply.state = State::Rows;
                false
            }
            (State::AfterColumns | State::Rows, _) => {
                self.deprecate_eof.get_or_insert(true);
                let ends = rows_end(payload, len, self.deprecate_eof == Some(true));
                reply.state = if ends.is_some() { State::Start } else { State::Rows };
                ends.is_some_and(|status| !more_results(status))
            }
        };
        if done {
            if let Some(reply) = self.reply.take() {
                calls.response(reply.at, reply.size, error, cx);
            }
        }
    }
}

/// The status of the packet ending a result set's rows, when this one does:
/// an EOF (5 bytes), or the OK that replaces it (`deprecate_eof`; a row
/// starting 0xfe holds a value of 16 MiB or more, and its packet is continued).
fn rows_end(payload: &[u8], len: u64, deprecate_eof: bool) -> Option<u16> {
    let size = len - 4;
    if payload.first() != Some(&0xfe) || !(size < 9 || deprecate_eof && size < MAX_PAYLOAD) {
        return None;
    }
    Some(if size == 5 { payload.get(3..5).map_or(0, |s| le(s) as u16) } else { ok_status(payload) })
}

fn more_results(status: u16) -> bool {
    status & SERVER_MORE_RESULTS_EXISTS != 0
}

/// The status flags of an OK packet (after its header, affected rows and last insert id).
fn ok_status(payload: &[u8]) -> u16 {
    let mut rest = payload.get(1..).unwrap_or_default();
    for _ in 0..2 {
        let skip = match rest.first() {
            Some(0xfc) => 3,
            Some(0xfd) => 4,
            Some(0xfe) => 9,
            _ => 1,
        };
        rest = rest.get(skip..).unwrap_or_default();
    }
    rest.get(..2).map_or(0, |s| le(s) as u16)
}

/// A length-encoded integer.
fn lenenc(bytes: &[u8]) -> Option<u64> {
    let (&first, rest) = bytes.split_first()?;
    let width = match first {
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        0xfb | 0xff => return None,
        n => return Some(u64::from(n)),
    };
    let digits = rest.get(..width)?;
    Some(digits.iter().rev().fold(0, |n, &b| n << 8 | u64::from(b)))
}

/// The capability flags of a protocol 10 greeting.
fn greeting_capabilities(payload: &[u8]) -> u32 {
    // Version (NUL-terminated), thread id (4), scramble (8), filler (1), lower flags (2),
    // charset (1), status (2), upper flags (2).
    let Some(end) = payload.iter().skip(1).position(|&b| b == 0) else { return 0 };
    let at = 1 + end + 1 + 4 + 8 + 1;
    let lower = payload.get(at..at + 2).map_or(0, le);
    let upper = payload.get(at + 5..at + 7).map_or(0, le);
    upper << 16 | lower
}

/// An ERR packet as the `mysql` client prints it: `1146 (42S02): Table 'shop.nope' doesn't exist`.
fn error_text(payload: &[u8]) -> String {
    let code = payload.get(1..3).map_or(0, le);
    let rest = payload.get(3..).unwrap_or_default();
    let mut message = match rest.strip_prefix(b"#") {
        Some(state) if state.len() >= 5 => {
            format!("{code} ({}): {}", String::from_utf8_lossy(&state[..5]), String::from_utf8_lossy(&state[5..]))
        }
        _ => format!("{code}: {}", String::from_utf8_lossy(rest)),
    };
    if message.len() > MAX_ERROR {
        let mut cut = MAX_ERROR;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    message
}

/// The names of the commands answered with one packet, as `method`.
fn command_name(command: u8) -> &'static str {
    match command {
        0x02 => "INIT_DB",
        0x04 => "FIELD_LIST",
        0x07 => "REFRESH",
        0x08 => "SHUTDOWN",
        0x09 => "STATISTICS",
        0x0d => "DEBUG",
        0x0e => "PING",
        0x11 => "CHANGE_USER",
        0x1a => "STMT_RESET",
        0x1b => "SET_OPTION",
        0x1c => "STMT_FETCH",
        0x1f => "RESET_CONNECTION",
        _ => "OTHER",
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A little-endian integer of up to 4 bytes.
fn le(bytes: &[u8]) -> u32 {
    bytes.iter().take(4).rev().fold(0, |n, &b| n << 8 | u32::from(b))
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::super::exchange::NOT_PARSED;
    use super::super::session::testing::*;
    use super::super::session::Record;
    use super::*;
    use crate::event::{ObservationPoint, RequestRecord, SignalSource};

    fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        [&len.to_le_bytes()[..3], &[seq], payload].concat()
    }

    /// A MariaDB greeting offering DEPRECATE_EOF when `deprecate_eof`.
    fn greeting(deprecate_eof: bool) -> Vec<u8> {
        let upper: u16 = if deprecate_eof { (CLIENT_DEPRECATE_EOF >> 16) as u16 } else { 0 };
        let payload = [
            &[10][..],
            b"5.5.5-10.11.14-MariaDB\0",
            &7u32.to_le_bytes(),
            b"scramble",
            &[0],
            &0xf7feu16.to_le_bytes(),
            &[8],
            &2u16.to_le_bytes(),
            &upper.to_le_bytes(),
            &[21],
            &[0; 10],
            b"twelve bytes\0mysql_native_password\0",
        ]
        .concat();
        packet(0, &payload)
    }

    fn login(deprecate_eof: bool) -> Vec<u8> {
        let capabilities = 0x000a_a205 | if deprecate_eof { CLIENT_DEPRECATE_EOF } else { 0 };
        packet(1, &[&capabilities.to_le_bytes()[..], &[0, 0, 0, 1, 8], &[0; 23], b"root\0\0"].concat())
    }

    fn ok(seq: u8, status: u16) -> Vec<u8> {
        packet(seq, &[&[0, 0, 0][..], &status.to_le_bytes(), &[0, 0]].concat())
    }

    fn eof(seq: u8, status: u16) -> Vec<u8> {
        packet(seq, &[&[0xfe, 0, 0][..], &status.to_le_bytes()].concat())
    }

    fn err(seq: u8, code: u16, state: &str, message: &str) -> Vec<u8> {
        packet(seq, &[&[0xff][..], &code.to_le_bytes(), b"#", state.as_bytes(), message.as_bytes()].concat())
    }

    fn query(text: &str) -> Vec<u8> {
        packet(0, &[&[COM_QUERY][..], text.as_bytes()].concat())
    }

    /// A result set of one column and one row, ended by EOF packets.
    fn result_set() -> Vec<u8> {
        let column = packet(2, b"\x03def\x04shop\x05items\x05items\x04name\x04name\x0c\x21\0\xfc\xff\x02\0\xfc\x10\0\0\0\0");
        [packet(1, &[1]), column, eof(3, 2), packet(4, b"\x03one"), eof(5, 2)].concat()
    }

    /// A client logged in: greeting, login, OK.
    fn connected(deprecate_eof: bool) -> Peer {
        let mut peer = Peer::new((40000, 3306));
        peer.receive(&greeting(deprecate_eof), T0);
        peer.send(&login(deprecate_eof), T0);
        peer.receive(&ok(2, 2), T0);
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
    fn starts_greeting() {
        assert!(super::starts_greeting(&greeting(false)));
        for not in [&query("SELECT 1")[..], &ok(0, 2), &packet(0, b"\x0a5.5\x01"), b"+OK\r\n", b""] {
            assert!(!super::starts_greeting(not), "{not:?}");
        }
    }

    #[test]
    fn a_query_and_its_result_set() {
        let mut peer = connected(false);
        let request = query("SELECT name FROM items WHERE id = 1");
        peer.send(&request, T0 + MS);
        let response = result_set();
        peer.receive(&response, T0 + 3 * MS);
        let expected = RequestRecord {
            time: DateTime::from_timestamp_nanos((T0 + MS) as i64),
            observation_point: ObservationPoint::ClientProcess,
            signal_source: SignalSource::Ebpf,
            protocol: "mysql".into(),
            method: Some("SELECT".into()),
            endpoint: Some("SELECT name FROM items WHERE id = ?".into()),
            duration_us: Some(2000),
            request_size: Some(request.len() as u64),
            response_size: Some(response.len() as u64),
            client_ip: Some("127.0.0.1".into()),
            client_port: Some(40000),
            server_ip: Some("127.0.0.1".into()),
            server_port: Some(3306),
            pid: Some(PID),
            thread_id: Some(32),
            process_name: Some("client".into()),
            tcp_seq_request: Some(OUT_SEQ + login(false).len() as u32),
            tcp_seq_response: Some(IN_SEQ + (greeting(false).len() + ok(2, 2).len()) as u32),
            ..RequestRecord::default()
        };
        assert_eq!(peer.take(), [Box::new(expected)]);
        assert_eq!(peer.sessions.take_counters()[2], Default::default());
    }

    #[test]
    fn oks_errors_and_commands() {
        let mut peer = connected(true);
        let insert = query("INSERT INTO items VALUES (2, 'two')");
        peer.send(&insert, T0);
        peer.receive(&ok(1, 2), T0 + MS);
        let failing = query("SELECT * FROM nope");
        let error = err(1, 1146, "42S02", "Table 'shop.nope' doesn't exist");
        peer.send(&failing, T0 + 2 * MS);
        peer.receive(&error, T0 + 3 * MS);
        let ping = packet(0, &[0x0e]);
        peer.send(&ping, T0 + 4 * MS);
        peer.receive(&ok(1, 2), T0 + 5 * MS);
        // No answer to a statement's close.
        peer.send(&packet(0, &[COM_STMT_CLOSE, 1, 0, 0, 0]), T0 + 6 * MS);
        // Two result sets (a procedure's), the first flagged "more results"; rows end with OK packets.
        let call_proc = query("CALL report(7)");
        let two = [packet(1, &[1]), packet(2, b"\x03def"), packet(3, b"\x01a"), packet(4, &[0xfe, 0, 0, 0x0a, 0, 0, 0]), ok(5, 2)].concat();
        peer.send(&call_proc, T0 + 7 * MS);
        peer.receive(&two, T0 + 8 * MS);
        assert_eq!(
            summary(&peer.take()),
            [
                call("INSERT", "INSERT INTO items VALUES (?, ?)", None, (insert.len(), 11)),
                call("SELECT", "SELECT * FROM nope", Some("1146 (42S02): Table 'shop.nope' doesn't exist"), (failing.len(), error.len())),
                call("PING", "PING", None, (5, 11)),
                call("CALL", "CALL report(?)", None, (call_proc.len(), two.len())),
            ]
        );
    }

    #[test]
    fn resumes_session() {
        let prepare = packet(0, &[&[COM_STMT_PREPARE][..], b"SELECT * FROM t WHERE id = ?"].concat());
        for query in [&query("SELECT 1")[..], &query("insert into t values (1)\n"), &prepare] {
            assert!(super::resumes_session(query), "{query:?}");
        }
        let cut = query("SELECT name FROM items");
        for not in [
            &greeting(false)[..],
            &login(false),
            &ok(1, 2),
            &packet(1, &[&[COM_QUERY][..], b"SELECT 1"].concat()),
            &packet(0, &[0x0e]),
            &packet(0, &[&[COM_QUERY][..], b"1 + 1"].concat()),
            &packet(0, &[&[COM_QUERY][..], b"SELECT\x07"].concat()),
            &cut[..cut.len() - 1],
            b"GET / HTTP/1.1\r\n",
            b"",
        ] {
            assert!(!super::resumes_session(not), "{not:?}");
        }
    }

    /// A connection open before the capture: known by its next query, its
    /// result sets read either way (EOF packets or not) from the first one.
    #[test]
    fn a_connection_seen_from_its_next_query() {
        // EOF packets, as a session without DEPRECATE_EOF: a prepare first (its EOFs not
        // counted while the way is not known: the rest of its reply is passed over).
        let mut peer = Peer::new((40000, 3306));
        let prepare = packet(0, &[&[COM_STMT_PREPARE][..], b"SELECT name FROM items WHERE id = ?"].concat());
        let column = packet(2, b"\x03def\x04shop\x05items\x05items\x04name\x04name\x0c\x21\0\xfc\xff\x02\0\xfc\x10\0\0\0\0");
        let prepared =
            [packet(1, &[0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0]), column.clone(), eof(3, 2), packet(4, &column[4..]), eof(5, 2)].concat();
        peer.send(&prepare, T0);
        peer.receive(&prepared, T0 + MS);
        let select = query("SELECT name FROM items WHERE id = 1");
        let rows = result_set();
        peer.send(&select, T0 + 2 * MS);
        peer.receive(&rows, T0 + 3 * MS);
        peer.send(&select, T0 + 4 * MS);
        peer.receive(&rows, T0 + 5 * MS);
        let records = peer.take();
        assert_eq!(
            summary(&records)[1..],
            [
                call("SELECT", "SELECT name FROM items WHERE id = ?", None, (select.len(), rows.len())),
                call("SELECT", "SELECT name FROM items WHERE id = ?", None, (select.len(), rows.len())),
            ]
        );
        assert_eq!(records[0].method.as_deref(), Some("SELECT"));
        assert_eq!(records.iter().map(|r| r.duration_us.unwrap()).collect::<Vec<_>>(), [1000; 3]);
        // OK packets instead (DEPRECATE_EOF): no EOF after the columns, an OK (0xfe) after the rows.
        let mut peer = Peer::new((40000, 3306));
        let rows = [packet(1, &[1]), packet(2, b"\x03def"), packet(3, b"\x03one"), packet(4, &[0xfe, 0, 0, 2, 0, 0, 0])].concat();
        for n in 0..2 {
            peer.send(&select, T0 + 2 * n * MS);
            peer.receive(&rows, T0 + (2 * n + 1) * MS);
        }
        let expected = call("SELECT", "SELECT name FROM items WHERE id = ?", None, (select.len(), rows.len()));
        assert_eq!(summary(&peer.take()), [expected.clone(), expected]);
        assert_eq!(peer.sessions.take_counters()[2], Default::default());
    }

    #[test]
    fn packets_of_16_mib_continue_into_the_next() {
        const LONG: usize = 4 + 0xff_ffff;
        // A packet of 2^24 - 1 payload bytes, of which only `start` was captured.
        let long = |seq: u8, start: &[u8]| [&[0xff, 0xff, 0xff, seq][..], start].concat();
        let mut peer = connected(true);
        // An INSERT of a 16 MiB value: its second packet is no command (and starts like one).
        peer.call(Direction::Egress, &long(0, b"\x03INSERT INTO blobs VALUES (1, '"), LONG, T0);
        let rest = packet(1, b"\x03xyz')");
        peer.send(&rest, T0);
        // The answer goes on from the request's last sequence number.
        peer.receive(&ok(2, 2), T0 + MS);
        // A row holding that value starts 0xfe (an 8-byte length) and goes on into a
        // packet that starts like the OK ending the rows; the real OK comes after.
        let select = query("SELECT body FROM blobs WHERE id = 1");
        peer.send(&select, T0 + 2 * MS);
        let head = [packet(1, &[1]), packet(2, b"\x03def")].concat();
        let (row_end, done) = (packet(4, &[0xfe, 0, 0, 2, 0]), packet(5, &[0xfe, 0, 0, 2, 0, 0, 0]));
        peer.receive(&head, T0 + 3 * MS);
        peer.call(Direction::Ingress, &long(3, &[0xfe, 2, 0, 0, 1, 0, 0, 0, 0]), LONG, T0 + 3 * MS);
        peer.receive(&row_end, T0 + 4 * MS);
        peer.receive(&done, T0 + 4 * MS);
        // The framing holds for what follows.
        let ping = packet(0, &[0x0e]);
        peer.send(&ping, T0 + 5 * MS);
        peer.receive(&ok(1, 2), T0 + 6 * MS);
        assert_eq!(
            summary(&peer.take()),
            [
                // The statement as far as it was captured.
                call("INSERT", "INSERT INTO blobs VALUES (?, ?", None, (LONG + rest.len(), 11)),
                call("SELECT", "SELECT body FROM blobs WHERE id = ?", None, (select.len(), head.len() + LONG + row_end.len() + done.len())),
                call("PING", "PING", None, (5, 11)),
            ]
        );
        assert_eq!(peer.sessions.take_counters()[2], Default::default());

        // The row again, in one read whose copy misses the next packet's header: that
        // response is lost (counted), and the next command's is read from its start.
        peer.send(&select, T0 + 7 * MS);
        peer.receive(&head, T0 + 8 * MS);
        peer.call(Direction::Ingress, &long(3, &[0xfe, 2, 0, 0, 1, 0, 0, 0, 0]), LONG + row_end.len() + done.len(), T0 + 8 * MS);
        peer.send(&ping, T0 + 9 * MS);
        peer.receive(&ok(1, 2), T0 + 10 * MS);
        let select_lost = (
            Some("SELECT".into()),
            Some("SELECT body FROM blobs WHERE id = ?".into()),
            Some(NOT_PARSED.into()),
            Some(select.len() as u64),
            None,
        );
        assert_eq!(summary(&peer.take()), [select_lost, call("PING", "PING", None, (5, 11))]);
        assert_eq!(peer.sessions.take_counters()[2].framing_lost, 1);
    }

    #[test]
    fn prepared_statements() {
        let mut peer = connected(false);
        let prepare = packet(0, &[&[COM_STMT_PREPARE][..], b"SELECT name FROM items WHERE id = ?"].concat());
        // Statement 9: one column, one parameter; each definition list ends with EOF.
        let prepared =
            [packet(1, &[0, 9, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0]), packet(2, b"\x03def"), eof(3, 2), packet(4, b"\x03def"), eof(5, 2)].concat();
        peer.send(&prepare, T0);
        peer.receive(&prepared, T0 + MS);
        let execute = packet(0, &[COM_STMT_EXECUTE, 9, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 0, 1, 0, 0, 0]);
        let rows = [packet(1, &[1]), packet(2, b"\x03def"), eof(3, 2), packet(4, b"\0\0\x03one"), eof(5, 2)].concat();
        peer.send(&execute, T0 + 2 * MS);
        peer.receive(&rows, T0 + 3 * MS);
        // An id never prepared on this connection: the command's name only.
        let unknown = packet(0, &[COM_STMT_EXECUTE, 4, 0, 0, 0, 0, 1, 0, 0, 0]);
        peer.send(&unknown, T0 + 4 * MS);
        let unknown_error = err(1, 1243, "HY000", "Unknown prepared statement handler");
        peer.receive(&unknown_error, T0 + 5 * MS);
        let records = peer.take();
        let statement = "SELECT name FROM items WHERE id = ?";
        assert_eq!(
            summary(&records),
            [
                call("SELECT", statement, None, (prepare.len(), prepared.len())),
                call("SELECT", statement, None, (execute.len(), rows.len())),
                call(
                    "STMT_EXECUTE",
                    "STMT_EXECUTE",
                    Some("1243 (HY000): Unknown prepared statement handler"),
                    (unknown.len(), unknown_error.len())
                ),
            ]
        );
    }

    #[test]
    fn reads_cut_at_every_byte() {
        let requests = [query("SELECT 1"), query("DELETE FROM t")].concat();
        let responses = [result_set(), ok(1, 2)].concat();
        let expected = [call("SELECT", "SELECT ?", None, (13, result_set().len())), call("DELETE", "DELETE FROM t", None, (18, 11))];
        for cut in 1..requests.len() {
            let mut peer = connected(false);
            peer.send(&requests[..cut], T0);
            peer.send(&requests[cut..], T0 + MS);
            peer.receive(&responses, T0 + 2 * MS);
            assert_eq!(summary(&peer.take()), expected, "requests cut at {cut}");
        }
        for cut in 1..responses.len() {
            let mut peer = connected(false);
            peer.send(&requests, T0);
            peer.receive(&responses[..cut], T0 + MS);
            peer.receive(&responses[cut..], T0 + 2 * MS);
            assert_eq!(summary(&peer.take()), expected, "responses cut at {cut}");
        }
        // The handshake cut too.
        let (hello, login) = (greeting(false), login(false));
        for cut in 1..login.len() {
            let mut peer = Peer::new((40000, 3306));
            peer.receive(&hello, T0);
            peer.send(&login[..cut], T0);
            peer.send(&login[cut..], T0);
            peer.receive(&ok(2, 2)[..cut.min(5)], T0);
            peer.receive(&ok(2, 2)[cut.min(5)..], T0);
            peer.send(&requests, T0);
            peer.receive(&responses, T0);
            assert_eq!(summary(&peer.take()), expected, "handshake cut at {cut}");
        }
    }

    #[test]
    fn a_server_and_tls() {
        let mut peer = Peer::new((3306, 40000));
        peer.send(&greeting(true), T0);
        peer.receive(&login(true), T0);
        peer.send(&ok(2, 2), T0);
        peer.receive(&query("UPDATE t SET n = 1"), T0 + MS);
        peer.send(&ok(1, 2), T0 + 2 * MS);
        let records = peer.take();
        assert_eq!(summary(&records), [call("UPDATE", "UPDATE t SET n = ?", None, (23, 11))]);
        assert_eq!(records[0].observation_point, ObservationPoint::ServerProcess);

        // An SSLRequest: what follows is not parsed, and costs nothing.
        let mut peer = Peer::new((40000, 3306));
        peer.receive(&greeting(false), T0);
        peer.send(&packet(1, &[&(0x000a_a205 | CLIENT_SSL).to_le_bytes()[..], &[0, 0, 0, 1, 8], &[0; 23]].concat()), T0);
        peer.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", T0);
        peer.receive(b"\x16\x03\x03\x00\x7a\x02\x00\x00\x76", T0);
        assert_eq!(peer.take(), []);
        assert_eq!(peer.sessions.take_counters()[2], Default::default());
    }

    #[test]
    fn garbage_never_panics() {
        let pieces = [
            greeting(false),
            login(true),
            ok(1, 8),
            eof(2, 8),
            query("SELECT 1"),
            err(1, 1, "HY000", "x"),
            packet(1, &[3]),
            packet(0, &[0x17, 1]),
        ];
        let mut peer = Peer::new((40000, 3306));
        peer.garbage(&pieces);
        peer.sessions.expire(u64::MAX, 0);
        assert!(peer.sessions.is_empty());
    }
}
