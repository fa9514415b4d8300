//! Redis (RESP2 and RESP3) calls, paired FIFO as Redis answers in order
//! (pipelining alike), through [`exchange`].
//!
//! A connection is known as Redis by its first request: an array of bulk
//! strings (`*N\r\n$M\r\n`, what every client library sends); once known,
//! inline commands (`PING\r\n`) are read too. Each call is one record:
//! `protocol = "redis"`, `method` and `endpoint` the command's first word
//! upper-cased (`GET`, `HGETALL`, `CLIENT`), sizes of the whole request and
//! reply, the duration from the request's first byte to the reply's. No
//! key or value is kept. `status` stays empty (it holds HTTP codes only);
//! a reply that is an error (`-ERR …`, `-WRONGTYPE …`, RESP3 blob error
//! `!`) sets `error` to its text, whose first word is the error code.
//! RESP3 push messages (`>`) answer no request; an attribute (`|`) is part
//! of the reply it precedes. Replies larger than the capture
//! (`payload_size`) are followed through the lengths they announce; those
//! whose nesting the capture cut (`COMMAND DOCS`) lose the framing, as
//! [`exchange`] says; so do aggregates nested deeper than [`MAX_DEPTH`]
//! (what bounds the memory of a connection, with [`exchange`]'s limits).

use super::event::Direction;
use super::exchange::{Calls, Context, Frame, Parser};
use super::http2::At;

/// Longest command name kept.
const MAX_COMMAND: usize = 32;
/// Longest error text kept.
const MAX_ERROR: usize = 256;
/// Deepest nesting of aggregates followed (replies nest a few levels).
pub const MAX_DEPTH: usize = 64;

/// The payload starts like a RESP request: `*N\r\n$M\r\n`.
pub fn starts_request(payload: &[u8]) -> bool {
    fn number(bytes: &[u8]) -> Option<&[u8]> {
        let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
        (1..=10).contains(&digits).then_some(&bytes[digits..])
    }
    let Some(rest) = payload.strip_prefix(b"*").and_then(number) else { return false };
    let Some(rest) = rest.strip_prefix(b"\r\n$").and_then(number) else { return false };
    rest.starts_with(b"\r\n")
}

/// Both directions of one Redis connection.
#[derive(Debug, Default)]
pub struct Redis {
    /// Indexed by [`Direction`]: egress, ingress.
    ways: [Resp; 2],
}

/// The RESP message being read one way.
#[derive(Debug, Default)]
struct Resp {
    /// Elements still to come in each open aggregate, outermost first.
    open: Vec<u64>,
    /// The length of a bulk string whose bytes are the next unit, and
    /// whether its text is kept.
    bulk: Option<(u64, bool)>,
    message: Option<Message>,
}

#[derive(Debug)]
struct Message {
    at: At,
    size: u64,
    /// A request's command; a reply's error text.
    text: Option<String>,
    /// A RESP3 push: no request asked for it.
    push: bool,
    /// A RESP3 attribute: the reply it belongs to follows.
    attribute: bool,
}

impl Parser for Redis {
    fn frame(&mut self, way: Direction, bytes: &[u8]) -> Frame {
        let resp = &self.ways[way as usize];
        if let Some((len, keep)) = resp.bulk {
            let head = if keep { len.min(MAX_ERROR as u64) as usize } else { 0 };
            return Frame::Unit { len: len.saturating_add(2), head };
        }
        match bytes.windows(2).position(|w| w == b"\r\n") {
            Some(end) => Frame::Unit { len: end as u64 + 2, head: end + 2 },
            None => Frame::Need,
        }
    }

    fn unit(&mut self, way: Direction, head: &[u8], len: u64, at: At, calls: &mut Calls, cx: &mut Context) -> bool {
        let requests = way == calls.requests;
        let resp = &mut self.ways[way as usize];
        let message = resp.message.get_or_insert(Message { at, size: 0, text: None, push: false, attribute: false });
        message.size = message.size.saturating_add(len);
        let top = resp.open.is_empty();
        if let Some((_, keep)) = resp.bulk.take() {
            if keep {
                message.text = Some(text(head, if requests { MAX_COMMAND } else { MAX_ERROR }));
            }
        } else {
            let line = head.strip_suffix(b"\r\n").unwrap_or(head);
            let Some((&kind, rest)) = line.split_first() else {
                // An empty line: clients may send one between inline commands.
                return if requests && top {
                    resp.message = None;
                    true
                } else {
                    false
                };
            };
            match kind {
                b'*' | b'~' | b'>' | b'%' | b'|' => {
                    let Some(n) = count(rest) else { return false };
                    let n = if matches!(kind, b'%' | b'|') { n.saturating_mul(2) } else { n };
                    if top {
                        message.push = kind == b'>';
                        message.attribute = kind == b'|';
                    }
                    if n > 0 && resp.open.len() >= MAX_DEPTH {
                        return false;
                    }
                    if n > 0 {
                        resp.open.push(n);
                        return true;
                    }
                }
                b'$' | b'!' | b'=' => {
                    let Some(n) = count(rest) else { return false };
                    if rest != b"-1" {
                        // A request's first bulk string is its command; a reply's blob error its text.
                        let first = requests && message.text.is_none() && resp.open.len() == 1;
                        resp.bulk = Some((n, first || (!requests && top && kind == b'!')));
                        return true;
                    }
                }
                b'-' if !requests && top => message.text = Some(text(rest, MAX_ERROR)),
                b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => {}
                // An inline command: the whole request on one line.
                _ if requests && top => {
                    let command = line.split(|b| b.is_ascii_whitespace()).find(|word| !word.is_empty()).unwrap_or_default();
                    message.text = Some(text(command, MAX_COMMAND));
                }
                _ => return false,
            }
        }
        if element_done(&mut resp.open) {
            let Some(message) = resp.message.take() else { return true };
            if requests {
                request(message, calls, cx);
            } else if message.attribute {
                // The reply itself follows, in the same message.
                resp.message = Some(Message { attribute: false, ..message });
            } else if !message.push {
                calls.response(message.at, message.size, message.text, cx);
            }
        }
        true
    }

    fn lost(&mut self, way: Direction, calls: &mut Calls, cx: &mut Context) {
        let resp = std::mem::take(&mut self.ways[way as usize]);
        // A request whose command was read: its reply still comes, in its turn.
        // (A reply in progress is answered as not parsed by the framing.)
        if let Some(message) = resp.message.filter(|_| way == calls.requests) {
            request(message, calls, cx);
        }
    }
}

/// A whole request (or the start of one whose framing was lost).
fn request(message: Message, calls: &mut Calls, cx: &mut Context) {
    let Some(command) = message.text.filter(|command| !command.is_empty()) else { return };
    let command = command.to_ascii_uppercase();
    let mut record = (cx.new_record)(message.at);
    record.protocol = "redis".into();
    record.method = Some(command.clone());
    record.endpoint = Some(command);
    record.request_size = Some(message.size);
    calls.request(record, message.at.wall_ns, cx);
}

/// One element ended: true when that ends the message.
fn element_done(open: &mut Vec<u64>) -> bool {
    while let Some(left) = open.last_mut() {
        *left -= 1;
        if *left > 0 {
            return false;
        }
        open.pop();
    }
    true
}

/// An aggregate's or bulk string's length; -1 (RESP2's null) is 0; `?`
/// (RESP3 streamed aggregates) is not read.
fn count(digits: &[u8]) -> Option<u64> {
    if digits == b"-1" {
        return Some(0);
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn text(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned()
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::super::exchange::{MAX_PENDING, NOT_PARSED};
    use super::super::session::testing::*;
    use super::super::session::Record;
    use crate::event::{ObservationPoint, RequestRecord, SignalSource};

    /// A request as clients send it: an array of bulk strings.
    fn command(words: &[&str]) -> Vec<u8> {
        let mut bytes = format!("*{}\r\n", words.len()).into_bytes();
        for word in words {
            bytes.extend(format!("${}\r\n{word}\r\n", word.len()).into_bytes());
        }
        bytes
    }

    fn client() -> Peer {
        Peer::new((40000, 6379))
    }

    /// Method, error, request size, response size.
    type Summary = (String, Option<String>, Option<u64>, Option<u64>);

    fn summary(records: &[Record]) -> Vec<Summary> {
        records.iter().map(|r| (r.method.clone().unwrap_or_default(), r.error.clone(), r.request_size, r.response_size)).collect()
    }

    fn call(method: &str, error: Option<&str>, sizes: (usize, usize)) -> Summary {
        (method.into(), error.map(str::to_string), Some(sizes.0 as u64), Some(sizes.1 as u64))
    }

    #[test]
    fn starts_request() {
        assert!(super::starts_request(b"*1\r\n$4\r\nPING\r\n"));
        assert!(super::starts_request(b"*3\r\n$3\r\nSET\r\n"));
        for not in [&b"*1\r\n:4\r\n"[..], b"*\r\n$4\r\n", b"+OK\r\n", b"*1\r\n$4", b"GET / HTTP/1.1\r\n", b"PING\r\n", b""] {
            assert!(!super::starts_request(not), "{not:?}");
        }
    }

    #[test]
    fn a_client_call() {
        let mut peer = client();
        let request = command(&["GET", "user:42"]);
        peer.send(&request, T0);
        peer.receive(b"$5\r\nhello\r\n", T0 + 2 * MS + 500_000);
        let expected = RequestRecord {
            time: DateTime::from_timestamp_nanos(T0 as i64),
            observation_point: ObservationPoint::ClientProcess,
            signal_source: SignalSource::Ebpf,
            protocol: "redis".into(),
            method: Some("GET".into()),
            endpoint: Some("GET".into()),
            duration_us: Some(2500),
            request_size: Some(request.len() as u64),
            response_size: Some(11),
            client_ip: Some("127.0.0.1".into()),
            client_port: Some(40000),
            server_ip: Some("127.0.0.1".into()),
            server_port: Some(6379),
            pid: Some(PID),
            thread_id: Some(32),
            process_name: Some("client".into()),
            tcp_seq_request: Some(OUT_SEQ),
            tcp_seq_response: Some(IN_SEQ),
            ..RequestRecord::default()
        };
        assert_eq!(peer.take(), [Box::new(expected)]);
        assert_eq!(peer.sessions.take_counters()[0], Default::default());
    }

    #[test]
    fn a_server_call() {
        let mut peer = Peer::new((6379, 40000));
        let request = command(&["hgetall", "h"]);
        peer.receive(&request, T0);
        peer.send(b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n", T0 + MS);
        let records = peer.take();
        let [record] = records.as_slice() else { panic!("one record: {records:?}") };
        assert_eq!(record.observation_point, ObservationPoint::ServerProcess);
        assert_eq!((record.client_port, record.server_port), (Some(40000), Some(6379)));
        assert_eq!(summary(&records), [call("HGETALL", None, (request.len(), 18))]);
    }

    #[test]
    fn errors() {
        let mut peer = client();
        let wrongtype = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
        // "*2\r\n" "$4\r\nINCR\r\n" "$4\r\nname\r\n": 4 + 10 + 10 bytes.
        peer.send(&command(&["INCR", "name"]), T0);
        peer.receive(wrongtype, T0 + MS);
        peer.send(&command(&["NOPE"]), T0 + 2 * MS);
        peer.receive(b"-ERR unknown command 'NOPE'\r\n", T0 + 3 * MS);
        // RESP3's blob error.
        peer.send(&command(&["EVAL", "x", "0"]), T0 + 4 * MS);
        peer.receive(b"!21\r\nSYNTAX invalid syntax\r\n", T0 + 5 * MS);
        // An error inside an array is a value, not the call's failure.
        peer.send(&command(&["EXEC"]), T0 + 6 * MS);
        peer.receive(b"*2\r\n+OK\r\n-ERR value is not an integer\r\n", T0 + 7 * MS);
        assert_eq!(
            summary(&peer.take()),
            [
                call("INCR", Some("WRONGTYPE Operation against a key holding the wrong kind of value"), (24, wrongtype.len())),
                call("NOPE", Some("ERR unknown command 'NOPE'"), (14, 29)),
                call("EVAL", Some("SYNTAX invalid syntax"), (28, 28)),
                call("EXEC", None, (14, 39)),
            ]
        );
    }

    #[test]
    fn reads_cut_at_every_byte() {
        // The connection is known by its first request, sent whole; then every cut.
        let known = || {
            let mut peer = client();
            peer.send(&command(&["PING"]), T0);
            peer.receive(b"+PONG\r\n", T0);
            assert_eq!(peer.take().len(), 1);
            peer
        };
        let request = [command(&["SET", "k", "value"]), command(&["GET", "k"])].concat();
        let reply = b"+OK\r\n$5\r\nvalue\r\n";
        let expected = [call("SET", None, (31, 5)), call("GET", None, (20, 11))];
        for cut in 1..request.len() {
            let mut peer = known();
            peer.send(&request[..cut], T0);
            peer.send(&request[cut..], T0 + MS);
            peer.receive(reply, T0 + 3 * MS);
            let records = peer.take();
            assert_eq!(summary(&records), expected, "request cut at {cut}");
            // A request's time is that of its first byte.
            let second = if cut <= 31 { 2000 } else { 3000 };
            assert_eq!((records[0].duration_us, records[1].duration_us), (Some(3000), Some(second)), "request cut at {cut}");
        }
        for cut in 1..reply.len() {
            let mut peer = known();
            peer.send(&request, T0);
            peer.receive(&reply[..cut], T0 + MS);
            peer.receive(&reply[cut..], T0 + 2 * MS);
            let records = peer.take();
            assert_eq!(summary(&records), expected, "reply cut at {cut}");
            let second = if cut <= 5 { 2000 } else { 1000 };
            assert_eq!((records[0].duration_us, records[1].duration_us), (Some(1000), Some(second)), "reply cut at {cut}");
            assert_eq!(records[1].tcp_seq_response, Some(IN_SEQ + 7 + 5), "reply cut at {cut}");
        }
    }

    #[test]
    fn pipelined_and_resp3_replies() {
        let mut peer = client();
        let requests = [command(&["HELLO", "3"]), command(&["GET", "missing"]), command(&["INCR", "n"]), command(&["SMEMBERS", "s"])];
        peer.send(&requests.concat(), T0);
        let replies: [&[u8]; 4] = [b"%1\r\n+server\r\n+redis\r\n", b"_\r\n", b":7\r\n", b"~2\r\n$1\r\na\r\n*1\r\n,1.5\r\n"];
        // A push (no request asked for it) and an attribute before its reply.
        let push = b">2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n";
        let attribute = b"|1\r\n+ttl\r\n:3\r\n";
        let stream = [replies[0], push, replies[1], replies[2], attribute, replies[3]].concat();
        peer.receive(&stream, T0 + MS);
        let sizes: Vec<usize> = requests.iter().map(Vec::len).collect();
        assert_eq!(
            summary(&peer.take()),
            [
                call("HELLO", None, (sizes[0], replies[0].len())),
                call("GET", None, (sizes[1], 3)),
                call("INCR", None, (sizes[2], 4)),
                call("SMEMBERS", None, (sizes[3], attribute.len() + replies[3].len())),
            ]
        );
        assert_eq!(peer.sessions.take_counters()[0].unmatched_responses, 0);
    }

    #[test]
    fn inline_commands_and_null_replies() {
        let mut peer = client();
        peer.send(&command(&["PING"]), T0);
        peer.receive(b"+PONG\r\n", T0 + MS);
        // Once the connection is known, inline commands are read too.
        peer.send(b"exists  k\r\n\r\nget k\r\n", T0 + 2 * MS);
        peer.receive(b":0\r\n$-1\r\n", T0 + 3 * MS);
        peer.send(&command(&["BLPOP", "q", "1"]), T0 + 4 * MS);
        peer.receive(b"*-1\r\n", T0 + 5 * MS);
        assert_eq!(
            summary(&peer.take()),
            [call("PING", None, (14, 7)), call("EXISTS", None, (11, 4)), call("GET", None, (7, 5)), call("BLPOP", None, (29, 5))]
        );
    }

    #[test]
    fn values_beyond_the_payload() {
        let mut peer = client();
        // SET k <100000 bytes>: the capture holds its first 1024 bytes.
        let value = vec![b'x'; 100_000];
        let request = [b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n".as_slice(), &value, b"\r\n"].concat();
        peer.call(super::Direction::Egress, &request[..1024], request.len(), T0);
        peer.send(&command(&["GET", "k"]), T0 + MS);
        peer.receive(b"+OK\r\n", T0 + 2 * MS);
        let reply = [b"$100000\r\n".as_slice(), &value, b"\r\n"].concat();
        peer.call(super::Direction::Ingress, &reply[..1024], reply.len(), T0 + 3 * MS);
        assert_eq!(summary(&peer.take()), [call("SET", None, (request.len(), 5)), call("GET", None, (20, reply.len()))]);
        assert_eq!(peer.sessions.take_counters()[0], Default::default());
    }

    #[test]
    fn bytes_missed() {
        let mut peer = client();
        peer.send(&command(&["GET", "a"]), T0);
        // A reply of 2000 bytes whose middle no record carried (the sequence jumps):
        // it was being passed over, nothing is lost.
        peer.receive(b"$1991\r\nxx", T0 + MS);
        peer.seq[1] += 1000;
        peer.call(super::Direction::Ingress, b"xx", 991, T0 + 2 * MS);
        assert_eq!(summary(&peer.take()), [call("GET", None, (20, 2000))]);
        assert_eq!(peer.sessions.take_counters()[0], Default::default());

        // Not RESP: the framing is lost (counted), the call answered as not parsed.
        peer.send(&command(&["GET", "b"]), T0 + 3 * MS);
        peer.receive(b"?what\r\n", T0 + 4 * MS);
        // The next read starts afresh.
        peer.send(&command(&["GET", "c"]), T0 + 5 * MS);
        peer.receive(b"$1\r\nc\r\n", T0 + 6 * MS);
        let not_parsed = ("GET".to_string(), Some(NOT_PARSED.to_string()), Some(20), None);
        assert_eq!(summary(&peer.take()), [not_parsed.clone(), call("GET", None, (20, 7))]);
        // Bytes missed where a reply starts: the calls waiting are answered as not
        // parsed; what follows is passed over up to the next call sent alone.
        peer.send(&command(&["GET", "d"]), T0 + 7 * MS);
        peer.send(&command(&["GET", "e"]), T0 + 7 * MS);
        peer.seq[1] += 7;
        peer.receive(b"$1\r\nd\r\n", T0 + 8 * MS);
        peer.receive(b"$1\r\ne\r\n", T0 + 8 * MS);
        peer.send(&command(&["GET", "f"]), T0 + 9 * MS);
        peer.receive(b"$1\r\nf\r\n", T0 + 10 * MS);
        assert_eq!(summary(&peer.take()), [not_parsed.clone(), not_parsed, call("GET", None, (20, 7))]);
        let counters = peer.sessions.take_counters()[0];
        assert_eq!((counters.framing_lost, counters.unmatched_responses), (2, 0));
        assert!(peer.sessions.on_close(SOCKET, T0 + 11 * MS).is_empty());
    }

    #[test]
    fn a_nested_reply_larger_than_the_capture() {
        let mut peer = client();
        // redis-cli's first call: a reply of many small parts, read 16 KiB at a time.
        peer.send(&command(&["COMMAND", "DOCS"]), T0);
        let reply: Vec<u8> = [b"*2000\r\n".to_vec(), b"+doc\r\n:1\r\n".repeat(1000)].concat();
        for (n, read) in reply.chunks(16384).enumerate() {
            peer.call(super::Direction::Ingress, &read[..read.len().min(1024)], read.len(), T0 + (n as u64 + 1) * MS);
        }
        peer.send(&command(&["SET", "k", "v"]), T0 + 10 * MS);
        peer.receive(b"+OK\r\n", T0 + 11 * MS);
        let not_parsed = ("COMMAND".to_string(), Some(NOT_PARSED.to_string()), Some(27), None);
        assert_eq!(summary(&peer.take()), [not_parsed, call("SET", None, (27, 5))]);
        let counters = peer.sessions.take_counters()[0];
        assert_eq!((counters.framing_lost, counters.unmatched_responses), (1, 0));
    }

    #[test]
    fn not_inferred_from_a_reply() {
        let mut peer = client();
        peer.receive(b"+OK\r\n", T0);
        assert!(peer.sessions.is_empty());
        peer.send(b"PING\r\n", T0 + MS);
        assert!(peer.sessions.is_empty());
    }

    #[test]
    fn too_many_pending() {
        let mut peer = client();
        for n in 0..MAX_PENDING + 2 {
            peer.send(&command(&["GET", &n.to_string()]), T0 + n as u64);
        }
        let given_up = peer.take();
        assert_eq!(given_up.iter().map(|r| r.error.as_deref()).collect::<Vec<_>>(), [Some("timeout"), Some("timeout")]);
        assert_eq!(given_up.iter().map(|r| r.time).collect::<Vec<_>>(), [0, 1].map(|n| DateTime::from_timestamp_nanos(T0 as i64 + n)));
        assert_eq!(peer.sessions.take_counters()[0].requests_given_up, 2);
        let closed = peer.sessions.on_close(SOCKET, T0 + MS);
        assert_eq!(closed.len(), MAX_PENDING);
        assert_eq!(closed[0].error.as_deref(), Some("connection closed before a response"));
    }

    #[test]
    fn expire() {
        let mut peer = client();
        peer.send(&command(&["BLPOP", "q", "0"]), T0);
        assert!(peer.sessions.expire(T0 + 4 * 1000 * MS, 5000 * MS).is_empty());
        let records = peer.sessions.expire(T0 + 6 * 1000 * MS, 5000 * MS);
        assert_eq!(summary(&records), [("BLPOP".into(), Some("timeout".into()), Some(29), None)]);
        assert!(peer.sessions.expire(T0 + 12 * 1000 * MS, 5000 * MS).is_empty());
        assert!(peer.sessions.is_empty());
    }

    #[test]
    fn nesting_is_bounded() {
        let mut peer = client();
        peer.send(&command(&["GET", "k"]), T0);
        peer.receive(&b"*1\r\n".repeat(super::MAX_DEPTH + 1), T0 + MS);
        assert_eq!(summary(&peer.take()), [("GET".into(), Some(NOT_PARSED.into()), Some(20), None)]);
        assert_eq!(peer.sessions.take_counters()[0].framing_lost, 1);
    }

    #[test]
    fn garbage_never_panics() {
        let pieces: [&[u8]; 8] =
            [b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", b"$5\r\n", b"*-1\r\n", b"-ERR x\r\n", b"%2\r\n", b"|1\r\n", b">1\r\n", b"\r\n"];
        let mut peer = client();
        peer.garbage(&pieces);
        peer.sessions.expire(u64::MAX, 0);
        assert!(peer.sessions.is_empty());
    }
}
