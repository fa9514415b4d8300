//! HTTP/1.x messages from the first bytes of a socket read or write: the
//! start line and the headers the request record needs, nothing more.

use std::mem::MaybeUninit;

use httparse::{Header, ParserConfig, Status, EMPTY_HEADER};
use smallvec::SmallVec;

/// Header slots parsed without a heap allocation (more: a second parse).
const HEADER_SLOTS: usize = 64;

/// The messages a payload starts: most often one, kept without a heap allocation.
pub type Messages = SmallVec<[Message; 1]>;

/// A message that starts in a payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request {
        method: String,
        /// The request target up to `?`.
        path: String,
        /// After `?`, when there is one.
        query: Option<String>,
        /// Minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
        version: u8,
        host: Option<String>,
        headers: Headers,
    },
    Response {
        status: u16,
        version: u8,
        headers: Headers,
    },
}

/// The trace context headers: rare on most traffic, so boxed in [`Headers`]
/// to keep the messages small to move.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceHeaders {
    pub traceparent: Option<String>,
    /// The single-header form: `traceid-spanid[-sampled[-parentspanid]]`.
    pub b3: Option<String>,
    pub x_b3_traceid: Option<String>,
    pub x_b3_spanid: Option<String>,
    pub x_b3_parentspanid: Option<String>,
}

/// The headers the request record uses, and what tells where the message ends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Headers {
    pub trace: Option<Box<TraceHeaders>>,
    /// The first of the request-id headers (in the order configured) present.
    pub request_id: Option<String>,
    pub content_length: Option<u64>,
    /// `Transfer-Encoding: chunked`: the body's length is not in the headers.
    pub chunked: bool,
    /// Bytes up to and including the blank line; None when the payload ends
    /// before it (the headers above are then those of the complete lines).
    pub header_len: Option<usize>,
    /// `Upgrade: h2c`: HTTP/2 without TLS is asked for (a request) or agreed to (a 101).
    pub upgrade_h2c: bool,
}

impl Message {
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request { headers, .. } | Message::Response { headers, .. } => headers,
        }
    }

    pub fn is_request(&self) -> bool {
        matches!(self, Message::Request { .. })
    }

    /// A 101 answering an upgrade to h2c: HTTP/2 follows on the connection.
    pub fn switches_to_h2c(&self) -> bool {
        matches!(self, Message::Response { status: 101, headers, .. } if headers.upgrade_h2c)
    }

    /// The body's length when the headers say it. A request without
    /// Content-Length has none; a response without it runs to the close,
    /// except those that never have a body (1xx, 204, 304).
    pub fn body_len(&self) -> Option<u64> {
        let headers = self.headers();
        if headers.chunked {
            return None;
        }
        match self {
            Message::Request { .. } => Some(headers.content_length.unwrap_or(0)),
            Message::Response { status, .. } if *status < 200 || *status == 204 || *status == 304 => Some(0),
            Message::Response { .. } => headers.content_length,
        }
    }

    /// Headers and body, when both lengths are known.
    pub fn total_len(&self) -> Option<u64> {
        Some(self.headers().header_len? as u64).zip(self.body_len()).map(|(h, b)| h.saturating_add(b))
    }
}

/// The messages that start in this payload, in order: the one at its start,
/// then, while each one's end is known and inside the payload, those that
/// follow it (pipelining). A payload that does not start with a request or
/// status line (a body, TLS ciphertext, another protocol) yields none.
/// The headers read as a request id when none are configured, preferred first.
pub fn default_request_id_headers() -> Vec<String> {
    vec!["x-request-id".into(), "x-kong-request-id".into()]
}

/// `request_ids`: the names of the headers that carry a request id, preferred first.
pub fn parse(payload: &[u8], request_ids: &[String]) -> Messages {
    let mut messages = Messages::new();
    let mut at = 0;
    while at < payload.len() {
        let Some(message) = parse_one(&payload[at..], request_ids) else { break };
        let len = message.total_len();
        messages.push(message);
        match len {
            Some(len) if len > 0 => at = at.saturating_add(usize::try_from(len).unwrap_or(usize::MAX)),
            _ => break,
        }
    }
    messages
}

fn parse_one(buf: &[u8], request_ids: &[String]) -> Option<Message> {
    if buf.starts_with(b"HTTP/") {
        parse_response(buf, false, request_ids)
    } else {
        parse_request(buf, false, request_ids)
    }
}

/// `truncated`: `buf` is the complete lines of a cut payload plus a blank
/// line, so its length says nothing about the real header length.
fn parse_request(buf: &[u8], truncated: bool, request_ids: &[String]) -> Option<Message> {
    // Uninitialised: httparse writes the slots it fills, and setting all 64
    // first cost more than the parse of a small request.
    let mut small = [const { MaybeUninit::uninit() }; HEADER_SLOTS];
    let mut large;
    let mut request = httparse::Request::new(&mut []);
    let mut parsed = request.parse_with_uninit_headers(buf, &mut small);
    if parsed == Err(httparse::Error::TooManyHeaders) {
        // Each header line takes at least 4 bytes (`a:\r\n`).
        large = vec![EMPTY_HEADER; buf.len() / 4 + 1];
        request = httparse::Request::new(&mut large);
        parsed = request.parse(buf);
    }
    let header_len = match parsed.ok()? {
        Status::Complete(len) => (!truncated).then_some(len),
        Status::Partial if truncated => return None,
        Status::Partial => return parse_request(&complete_lines(buf)?, true, request_ids),
    };
    let (path, query) = split_target(request.path?);
    let (headers, host) = extract(request.headers, header_len, request_ids);
    Some(Message::Request { method: request.method?.to_string(), path, query, version: request.version?, host, headers })
}

fn parse_response(buf: &[u8], truncated: bool, request_ids: &[String]) -> Option<Message> {
    let mut small = [const { MaybeUninit::uninit() }; HEADER_SLOTS];
    let mut large;
    let mut response = httparse::Response::new(&mut []);
    let mut parsed = ParserConfig::default().parse_response_with_uninit_headers(&mut response, buf, &mut small);
    if parsed == Err(httparse::Error::TooManyHeaders) {
        large = vec![EMPTY_HEADER; buf.len() / 4 + 1];
        response = httparse::Response::new(&mut large);
        parsed = response.parse(buf);
    }
    let header_len = match parsed.ok()? {
        Status::Complete(len) => (!truncated).then_some(len),
        Status::Partial if truncated => return None,
        Status::Partial => return parse_response(&complete_lines(buf)?, true, request_ids),
    };
    let (headers, _) = extract(response.headers, header_len, request_ids);
    Some(Message::Response { status: response.code?, version: response.version?, headers })
}

/// A request target as path and query (after `?`, when there is one).
pub fn split_target(target: &str) -> (String, Option<String>) {
    match target.split_once('?') {
        Some((path, query)) => (path.to_string(), Some(query.to_string())),
        None => (target.to_string(), None),
    }
}

/// The payload up to its last CRLF, then a blank line: what httparse can
/// parse completely when the payload ends inside the headers.
fn complete_lines(buf: &[u8]) -> Option<Vec<u8>> {
    let end = buf.windows(2).rposition(|w| w == b"\r\n")? + 2;
    let mut lines = Vec::with_capacity(end + 2);
    lines.extend_from_slice(&buf[..end]);
    lines.extend_from_slice(b"\r\n");
    Some(lines)
}

/// The headers we keep (the first of each name), and Host. HTTP/2's
/// decoded header lists go through here too.
pub fn extract(list: &[Header<'_>], header_len: Option<usize>, request_ids: &[String]) -> (Headers, Option<String>) {
    let mut headers = Headers { header_len, ..Headers::default() };
    let mut host = None;
    // The rank, in `request_ids`, of the request id kept.
    let mut request_id_rank = usize::MAX;
    for header in list {
        // Made only for the headers kept: most are not.
        let value = || match std::str::from_utf8(header.value) {
            Ok(text) => text.trim().to_string(),
            // Rare: validating chunk by chunk costs more than the check above.
            Err(_) => String::from_utf8_lossy(header.value).trim().to_string(),
        };
        let name = header.name;
        if let Some(rank) = request_ids.iter().position(|id| name.eq_ignore_ascii_case(id)) {
            if rank < request_id_rank && !header.value.is_empty() {
                headers.request_id = Some(value());
                request_id_rank = rank;
            }
            continue;
        }
        let slot = if name.eq_ignore_ascii_case("host") {
            &mut host
        } else if name.eq_ignore_ascii_case("traceparent") {
            &mut headers.trace.get_or_insert_with(Default::default).traceparent
        } else if name.eq_ignore_ascii_case("b3") {
            &mut headers.trace.get_or_insert_with(Default::default).b3
        } else if name.eq_ignore_ascii_case("x-b3-traceid") {
            &mut headers.trace.get_or_insert_with(Default::default).x_b3_traceid
        } else if name.eq_ignore_ascii_case("x-b3-spanid") {
            &mut headers.trace.get_or_insert_with(Default::default).x_b3_spanid
        } else if name.eq_ignore_ascii_case("x-b3-parentspanid") {
            &mut headers.trace.get_or_insert_with(Default::default).x_b3_parentspanid
        } else if name.eq_ignore_ascii_case("content-length") {
            if headers.content_length.is_none() {
                headers.content_length = value().parse().ok();
            }
            continue;
        } else if name.eq_ignore_ascii_case("upgrade") {
            headers.upgrade_h2c = value().split(',').any(|protocol| protocol.trim().eq_ignore_ascii_case("h2c"));
            continue;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked when it is the last coding applied.
            headers.chunked = value().rsplit(',').next().is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"));
            continue;
        } else {
            continue;
        };
        if slot.is_none() {
            *slot = Some(value()).filter(|v| !v.is_empty());
        }
    }
    (headers, host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(payload: &[u8]) -> Vec<Message> {
        super::parse(payload, &default_request_id_headers()).into_vec()
    }

    fn request(message: &Message) -> (&str, &str, Option<&str>, Option<&str>) {
        match message {
            Message::Request { method, path, query, host, .. } => (method, path, query.as_deref(), host.as_deref()),
            other => panic!("not a request: {other:?}"),
        }
    }

    fn status(message: &Message) -> u16 {
        match message {
            Message::Response { status, .. } => *status,
            other => panic!("not a response: {other:?}"),
        }
    }

    #[test]
    fn a_request_and_its_headers() {
        let payload = b"POST /orders/checkout?dry_run=1&x=2 HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 5\r\n\
            traceparent: 00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01\r\nX-Request-Id: req-1\r\nX-Kong-Request-Id: kong-1\r\n\r\nhello";
        let messages = parse(payload);
        assert_eq!(messages.len(), 1);
        assert_eq!(request(&messages[0]), ("POST", "/orders/checkout", Some("dry_run=1&x=2"), Some("api.example.com")));
        let headers = messages[0].headers();
        assert_eq!(
            headers.trace.as_ref().and_then(|trace| trace.traceparent.as_deref()),
            Some("00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01")
        );
        // Both sent: the first configured name wins.
        assert_eq!(headers.request_id.as_deref(), Some("req-1"));
        let kong_first = super::parse(payload, &["x-kong-request-id".to_string(), "x-request-id".to_string()]);
        assert_eq!(kong_first[0].headers().request_id.as_deref(), Some("kong-1"));
        assert_eq!(headers.content_length, Some(5));
        assert_eq!(headers.header_len, Some(payload.len() - 5));
        assert_eq!(messages[0].total_len(), Some(payload.len() as u64));
        assert!(matches!(messages[0], Message::Request { version: 1, .. }));
    }

    #[test]
    fn b3_headers() {
        let single = parse(b"GET / HTTP/1.1\r\nb3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90\r\n\r\n");
        assert_eq!(
            single[0].headers().trace.as_ref().and_then(|trace| trace.b3.as_deref()),
            Some("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")
        );
        let multi = parse(b"GET / HTTP/1.0\r\nX-B3-TraceId: 463ac35c9f6413ad\r\nX-B3-SpanId: a2fb4a1d1a96d312\r\nX-B3-ParentSpanId: 0020000000000001\r\n\r\n");
        let headers = multi[0].headers().trace.as_deref().expect("the B3 headers");
        assert_eq!(headers.x_b3_traceid.as_deref(), Some("463ac35c9f6413ad"));
        assert_eq!(headers.x_b3_spanid.as_deref(), Some("a2fb4a1d1a96d312"));
        assert_eq!(headers.x_b3_parentspanid.as_deref(), Some("0020000000000001"));
        assert!(matches!(multi[0], Message::Request { version: 0, .. }));
    }

    #[test]
    fn responses_and_where_their_bodies_end() {
        let ok = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
        assert_eq!((status(&ok[0]), ok[0].total_len()), (200, Some(40)));
        let chunked = parse(b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        assert_eq!(status(&chunked[0]), 404);
        assert!(chunked[0].headers().chunked);
        assert_eq!(chunked[0].total_len(), None);
        let to_close = parse(b"HTTP/1.0 500 Internal Server Error\r\n\r\noops");
        assert_eq!((status(&to_close[0]), to_close[0].total_len()), (500, None));
        let no_content = parse(b"HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(no_content[0].total_len(), Some(27));
    }

    #[test]
    fn pipelined_messages_in_one_payload() {
        let requests =
            parse(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /c?q HTTP/1.1\r\n\r\n");
        assert_eq!(requests.iter().map(|m| request(m).1).collect::<Vec<_>>(), ["/a", "/b", "/c"]);
        let responses = parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\nHTTP/1.1 500 Oops\r\n\r\n",
        );
        assert_eq!(responses.iter().map(status).collect::<Vec<_>>(), [200, 404, 500]);
        // A chunked body's end is unknown: what follows is not looked at.
        let after_chunked = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(after_chunked.len(), 1);
        // The next message cut in its start line: not a message.
        assert_eq!(parse(b"GET /a HTTP/1.1\r\n\r\nGET /b HT").len(), 1);
    }

    #[test]
    fn truncated_headers_keep_the_complete_lines() {
        let messages = parse(b"GET /search?q=1 HTTP/1.1\r\nHost: shop.local\r\nX-Request-Id: abc\r\nUser-Agent: curl/8.1");
        assert_eq!(request(&messages[0]), ("GET", "/search", Some("q=1"), Some("shop.local")));
        assert_eq!(messages[0].headers().request_id.as_deref(), Some("abc"));
        assert_eq!(messages[0].headers().header_len, None);
        assert_eq!(messages[0].total_len(), None);
        // The request line alone is enough.
        let line_only = parse(b"DELETE /items/7 HTTP/1.1\r\nHo");
        assert_eq!(request(&line_only[0]), ("DELETE", "/items/7", None, None));
        let response = parse(b"HTTP/1.1 503 Service Unavailable\r\nContent-Le");
        assert_eq!(status(&response[0]), 503);
        // Cut inside the start line: nothing to go on.
        assert!(parse(b"GET /items/7 HT").is_empty());
        assert!(parse(b"HTTP/1.1 20").is_empty());
    }

    #[test]
    fn many_headers() {
        let mut payload = b"GET / HTTP/1.1\r\n".to_vec();
        for n in 0..100 {
            payload.extend_from_slice(format!("x-h{n}: v\r\n").as_bytes());
        }
        payload.extend_from_slice(b"x-request-id: last\r\n\r\n");
        let messages = parse(&payload);
        assert_eq!(messages[0].headers().request_id.as_deref(), Some("last"));
        assert_eq!(messages[0].headers().header_len, Some(payload.len()));
    }

    #[test]
    fn not_http() {
        // A TLS ClientHello, a body continuation, HTTP/2's preface, Redis.
        assert!(parse(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]).is_empty());
        assert!(parse(b"{\"items\": [1, 2, 3]}\r\n").is_empty());
        assert!(parse(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").is_empty());
        assert!(parse(b"*1\r\n$4\r\nPING\r\n").is_empty());
        assert!(parse(b"").is_empty());
    }

    #[test]
    fn garbage_never_panics() {
        // A small xorshift generator: varied bytes, biased towards HTTP's own.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"GET HTTP/1.1 200\r\n: Content-Length: 9 chunked ?/\x00\xff";
        for _ in 0..20_000 {
            let len = (next() % 96) as usize;
            let mut payload: Vec<u8> = (0..len)
                .map(|_| if next() % 2 == 0 { alphabet[(next() % alphabet.len() as u64) as usize] } else { next() as u8 })
                .collect();
            if next() % 2 == 0 {
                let start: &[u8] = if next() % 2 == 0 { b"GET / HTTP/1.1\r\n" } else { b"HTTP/1.1 200 OK\r\n" };
                payload.splice(0..0, start.iter().copied());
            }
            let _ = parse(&payload);
        }
        let _ = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\nHTTP/1.1 200 OK\r\n\r\n");
    }
}
