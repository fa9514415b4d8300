//! JSON text to VRL values, the first cost of every generic log pipeline.
//!
//! Promises: the values are the ones VRL's own deserializer gives (numbers as
//! VRL reads them: integers up to i64, others as floats), an error is
//! serde_json's own message and position, and the strings of an entry (each
//! element of a top-level array, or the whole document) are copied side by
//! side into a buffer of that entry, each a slice of it (usually one buffer:
//! each is sized as the entry before needed, up to `MAX_ROOM`). So an entry
//! costs an allocation for its strings, not one per string, and a value kept
//! long holds its own entry's strings only, and at most `MAX_ROOM` bytes it
//! does not use, never the whole body.
//!
//! Why a reader of its own: through serde's visitor, half of the decode went
//! to dispatch per token and a UTF-8 check per string. This one reads a valid
//! document in one pass (strings eight bytes at a time, UTF-8 checked only
//! where a string is not plain ASCII, integers read as they are scanned); on
//! anything it does not take it hands the whole text to serde_json, which
//! gives the error (or, should the two ever disagree, the values).

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

use crate::event::{KeyString, ObjectMap, Value};

/// A JSON document read by `json_values`.
#[derive(Debug, PartialEq)]
pub enum JsonValues {
    One(Value),
    /// The elements of a top-level array.
    Elements(Vec<Value>),
}

/// A JSON document as VRL values (a top-level array as its elements).
pub fn json_values(text: &[u8]) -> Result<JsonValues, serde_json::Error> {
    let is_array = text.iter().find(|b| !is_space(**b)) == Some(&b'[');
    match read(text, is_array) {
        Some(values) => Ok(values),
        None => Ok(match serde_json::from_slice::<Value>(text)? {
            Value::Array(items) if is_array => JsonValues::Elements(items),
            value => JsonValues::One(value),
        }),
    }
}

/// The document read by tapline's reader; `None` for what it does not take.
fn read(text: &[u8], is_array: bool) -> Option<JsonValues> {
    let room = text.len().clamp(MIN_BUFFER, MAX_ROOM);
    let mut reader = Reader { text, at: 0, strings: BytesMut::new(), room, kept: 0 };
    reader.skip_space();
    let read = if is_array {
        // The array itself is one of serde_json's levels.
        JsonValues::Elements(reader.items(MAX_DEPTH - 1, true)?)
    } else {
        JsonValues::One(reader.value(MAX_DEPTH)?)
    };
    reader.skip_space();
    (reader.at == text.len()).then_some(read)
}

/// JSON's whitespace (RFC 8259 §2): not the form feed `is_ascii_whitespace` takes.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// Containers deeper than serde_json's limit are left to serde_json's error.
const MAX_DEPTH: usize = 127;

/// The strings buffer of a batch's first entry.
const FIRST_BUFFER: usize = 1024;

/// The least room a strings buffer is made with.
const MIN_BUFFER: usize = 64;

/// The most room a strings buffer is made with beyond the string that asks
/// for it: an entry kept long holds at most this much it does not use,
/// whatever came before it in the body (a huge entry does not size the
/// buffers of the tiny ones after it).
const MAX_ROOM: usize = 4096;

/// Past the bytes of a string that need no care: printable ASCII other than
/// the quote and the backslash. Eight at a time while it can (SWAR).
fn skip_plain(bytes: &[u8], mut at: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Nonzero when some byte of `x` is below `n` (for bytes below 0x80).
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        if below(x ^ (ONES * u64::from(b'"')), 1) | below(x ^ (ONES * u64::from(b'\\')), 1) | below(x, 0x20) | (x & HIGH) != 0 {
            break;
        }
        at += 8;
    }
    while bytes.get(at).is_some_and(|b| (0x20..0x80).contains(b) && *b != b'"' && *b != b'\\') {
        at += 1;
    }
    at
}

/// A string as read: where its content is, and what it holds beside plain ASCII.
struct StringSpan {
    content: Range<usize>,
    escaped: bool,
    non_ascii: bool,
}

/// A position in a document's text, and where the strings read go.
struct Reader<'a> {
    text: &'a [u8],
    at: usize,
    /// The buffer the current entry's strings are copied into, each one a
    /// slice of it; a new one for each element of a top-level array.
    strings: BytesMut,
    /// The room a new strings buffer is made with (at least the string's length).
    room: usize,
    /// The bytes of all strings copied so far.
    kept: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.at += 1;
        }
    }

    /// The value at the next non-space byte; `depth` containers may still open.
    fn value(&mut self, depth: usize) -> Option<Value> {
        self.skip_space();
        match self.peek()? {
            b'"' => self.string().map(Value::String),
            b'{' => self.object(depth.checked_sub(1)?),
            b'[' => self.array(depth.checked_sub(1)?),
            b't' => self.word(b"true", Value::Boolean(true)),
            b'f' => self.word(b"false", Value::Boolean(false)),
            b'n' => self.word(b"null", Value::Null),
            _ => self.number(),
        }
    }

    fn object(&mut self, depth: usize) -> Option<Value> {
        let mut object = ObjectMap::new();
        if self.opens_empty(b'}')? {
            return Some(Value::Object(object));
        }
        loop {
            self.skip_space();
            let key = self.key()?;
            self.skip_space();
            if self.peek()? != b':' {
                return None;
            }
            self.at += 1;
            let value = self.value(depth)?;
            // As serde_json into a map: the last of two equal keys stays.
            object.insert(key, value);
            if self.closes_after_item(b'}')? {
                return Some(Value::Object(object));
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<Value> {
        self.items(depth, false).map(Value::Array)
    }

    /// The items of the array whose `[` is next. As `entries` (the elements
    /// of a top-level array), each gets a strings buffer of its own, so that
    /// an entry kept long holds its own bytes only.
    fn items(&mut self, depth: usize, entries: bool) -> Option<Vec<Value>> {
        let mut items = Vec::new();
        if self.opens_empty(b']')? {
            return Some(items);
        }
        // Entries of one batch are alike: each buffer is sized as the
        // previous entry's strings were, within bounds.
        let mut last_size = FIRST_BUFFER;
        loop {
            if entries {
                self.strings = BytesMut::new();
                self.room = last_size.clamp(MIN_BUFFER, MAX_ROOM);
            }
            let kept_before = self.kept;
            items.push(self.value(depth)?);
            last_size = self.kept - kept_before;
            if self.closes_after_item(b']')? {
                return Some(items);
            }
        }
    }

    /// Past a container's opening bracket; true, and past `close` too, when
    /// the container is empty.
    fn opens_empty(&mut self, close: u8) -> Option<bool> {
        self.at += 1;
        self.skip_space();
        let empty = self.peek()? == close;
        if empty {
            self.at += 1;
        }
        Some(empty)
    }

    /// After a container's item: past a `,` (false: another item follows) or
    /// past the `close` bracket (true); `None` on anything else.
    fn closes_after_item(&mut self, close: u8) -> Option<bool> {
        self.skip_space();
        let next = self.peek()?;
        self.at += 1;
        match next {
            b',' => Some(false),
            _ if next == close => Some(true),
            _ => None,
        }
    }

    fn word(&mut self, word: &[u8], value: Value) -> Option<Value> {
        self.text[self.at..].starts_with(word).then(|| {
            self.at += word.len();
            value
        })
    }

    /// The string whose opening quote is next; `None` at a control character.
    fn string_span(&mut self) -> Option<StringSpan> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at + 1;
        let (mut end, mut escaped, mut non_ascii) = (start, false, false);
        loop {
            end = skip_plain(self.text, end);
            match *self.text.get(end)? {
                b'"' => break,
                // The escape itself is checked when the string is unescaped.
                b'\\' => {
                    escaped = true;
                    end += 2;
                }
                0..=0x1f => return None,
                _ => {
                    non_ascii = true;
                    end += 1;
                }
            }
        }
        self.at = end + 1;
        Some(StringSpan { content: start..end, escaped, non_ascii })
    }

    /// An escaped string, quotes included, unescaped by serde_json (rare in logs).
    fn unescape(&self, quoted: Range<usize>) -> Option<String> {
        serde_json::from_slice(&self.text[quoted]).ok()
    }

    fn string(&mut self) -> Option<ByteString> {
        let quote = self.at;
        let span = self.string_span()?;
        if span.escaped {
            return self.unescape(quote..self.at).map(ByteString::from);
        }
        let content = &self.text[span.content];
        if span.non_ascii {
            std::str::from_utf8(content).ok()?;
        }
        // SAFETY: checked just above, or printable ASCII only (`skip_plain`).
        Some(unsafe { ByteString::from_bytes_unchecked(self.keep(content)) })
    }

    /// `content` copied into the entry's strings buffer (a new buffer when
    /// it has no room left), as a slice of it.
    fn keep(&mut self, content: &[u8]) -> Bytes {
        if content.is_empty() {
            return Bytes::new();
        }
        if self.strings.capacity() < content.len() {
            self.strings = BytesMut::with_capacity(content.len().max(self.room));
        }
        self.strings.extend_from_slice(content);
        self.kept += content.len();
        self.strings.split().freeze()
    }

    fn key(&mut self) -> Option<KeyString> {
        let quote = self.at;
        let span = self.string_span()?;
        if span.escaped {
            return self.unescape(quote..self.at).map(KeyString::from);
        }
        let content = &self.text[span.content];
        if span.non_ascii {
            return std::str::from_utf8(content).ok().map(KeyString::from);
        }
        // SAFETY: printable ASCII only (`skip_plain`), so UTF-8.
        Some(KeyString::from(unsafe { std::str::from_utf8_unchecked(content) }))
    }

    /// A number as RFC 8259 §6 writes one: an integer that fits i64 as one,
    /// any other as the float serde_json makes of it (one too large for a
    /// float is an error, as in serde_json).
    fn number(&mut self) -> Option<Value> {
        let bytes = self.text;
        let start = self.at;
        let negative = bytes[start] == b'-';
        let mut end = start + usize::from(negative);
        // The integer part, its magnitude kept while it fits.
        let mut magnitude = Some(0u64);
        match *bytes.get(end)? {
            b'0' => end += 1,
            b'1'..=b'9' => {
                while let Some(digit) = bytes.get(end).filter(|b| b.is_ascii_digit()) {
                    magnitude = magnitude.and_then(|m| m.checked_mul(10)?.checked_add(u64::from(digit - b'0')));
                    end += 1;
                }
            }
            _ => return None,
        }
        let digits_from = |mut at: usize| {
            while bytes.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            at
        };
        let mut integer = true;
        if bytes.get(end) == Some(&b'.') {
            integer = false;
            let fraction = digits_from(end + 1);
            if fraction == end + 1 {
                return None;
            }
            end = fraction;
        }
        if matches!(bytes.get(end), Some(b'e' | b'E')) {
            integer = false;
            let sign = end + 1 + usize::from(matches!(bytes.get(end + 1), Some(b'+' | b'-')));
            end = digits_from(sign);
            if end == sign {
                return None;
            }
        }
        self.at = end;
        if integer {
            // As serde_json: `-0` is the float -0.0.
            let signed = magnitude.filter(|m| !negative || *m != 0);
            let signed = signed.and_then(|m| if negative { 0i64.checked_sub_unsigned(m) } else { i64::try_from(m).ok() });
            if let Some(signed) = signed {
                return Some(Value::Integer(signed));
            }
        }
        // Read by serde_json itself: its rounding of long integers and
        // decimals is not always the nearest float, and VRL's values are its.
        let float: f64 = serde_json::from_slice(&bytes[start..end]).ok()?;
        Some(Value::from_f64_or_zero(float))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the reader takes `doc` itself (no fallback to serde_json).
    fn read_alone(doc: &[u8]) -> bool {
        read(doc, doc.iter().find(|b| !is_space(**b)) == Some(&b'[')).is_some()
    }

    /// The reader gives what VRL's own deserializer gives, by itself.
    #[test]
    fn json_values_match_vrls_own_decoding() {
        let kong = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kong/kong3_single.json")).unwrap();
        let documents: [&[u8]; 17] = [
            br#"[{"a": "]\"}[{", "b": [1, [2, {"c": "\\"}]]}, "x,y" , 3 ]"#,
            b"[\n]",
            br#"[{"a": "x", "b": ["y", {"c": "z\u0041"}]}, {}, {"a": ""}, "top", [["n"]]]"#,
            br#" [ ] "#,
            br#"{"dup": 1, "b": 2, "dup": {"x": 3}, "a": 0}"#,
            &kong,
            br#"{"a": "plain", "b": "esc\"aped\n", "c": "", "d": [1, -2, 3.5, 18446744073709551615, true, null], "e": {"f": {}}}"#,
            r#"{"unicode": "h\u00e9llo \u2603", "raw": "héllo ☃", "key\twith\tescapes": 1}"#.as_bytes(),
            br#""""#,
            b"[]",
            b"  {\"trailing\": \"\"}  ",
            b"[0, -0, -0.0, 1e2, 1E-2, 2.5e+3, 9223372036854775807, -9223372036854775808, 9223372036854775808]",
            b"[-9223372036854775809, 123456789012345678901234567890, 0.1, 1.7976931348623157e308, 5e-324]",
            br#"{"surrogates": "\ud83d\ude00", "\u0041key": "\/"}"#,
            b"\t\r\n{\"a\"\t:\r\n[ true ,false,null ]}\n",
            br#"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{"deep": [[[[]]]]}]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"#,
            b"42",
        ];
        for doc in documents {
            assert!(read_alone(doc), "fell back on {}", String::from_utf8_lossy(doc));
            let ours = match json_values(doc).unwrap() {
                JsonValues::One(value) => value,
                JsonValues::Elements(items) => Value::Array(items),
            };
            let theirs: Value = serde_json::from_slice(doc).unwrap();
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(doc));
            assert_eq!(serde_json::to_string(&ours).unwrap(), serde_json::to_string(&theirs).unwrap());
        }
        // Strings past a buffer's room: the second entry's outgrow the size
        // the first one set, the third's fit again.
        let growing = format!(r#"[{{"a": "x"}}, {{"b": "{}", "c": "{}", "d": ""}}, {{"e": "y"}}]"#, "l".repeat(3000), "m".repeat(100));
        let JsonValues::Elements(items) = json_values(growing.as_bytes()).unwrap() else { panic!("an array has elements") };
        assert_eq!(Value::Array(items), serde_json::from_str::<Value>(&growing).unwrap());
        // Malformed documents give serde_json's own message and position.
        let malformed: [&[u8]; 26] = [
            b"{\"a\": 1} x",
            b"[1] x",
            b"[1,]",
            b"[1 2]",
            b"[[1],",
            b"[\"unterminated",
            b"[{\"a\": \"\xff\"}]",
            b"{\"a\": \"\xc3\"}",
            b"[{\"a\": 1},\n {\"b\": tru}]",
            b"[\"a\\",
            b"[\"bad \\x escape\"]",
            b"{\"a\": \"\\ud800\"}",
            b"{\"tab\": \"a\tb\"}",
            b"[01]",
            b"[-]",
            b"[1.]",
            b"[.5]",
            b"[1e]",
            b"[1e400]",
            b"[+1]",
            b"{\"a\" 1}",
            b"{\"a\": 1,}",
            b"{1: 2}",
            b"[1]\x0c",
            b"\x0c{}",
            b"",
        ];
        for doc in malformed {
            let ours = json_values(doc).unwrap_err().to_string();
            let theirs = serde_json::from_slice::<serde_json::Value>(doc).unwrap_err().to_string();
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(doc));
        }
        // Nesting past serde_json's limit: its error, not a deep recursion.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(json_values(deep.as_bytes()).unwrap_err().to_string().starts_with("recursion limit exceeded"));
    }

    /// A random JSON text: nested containers, strings with escapes, non-ASCII
    /// and long runs, numbers of every form, random whitespace between tokens.
    fn random_json(rng: &mut rand::rngs::SmallRng, depth: u32, out: &mut String) {
        use rand::Rng;
        let space = |rng: &mut rand::rngs::SmallRng, out: &mut String| {
            for _ in 0..rng.random_range(0..3) {
                out.push([' ', '\t', '\n', '\r'][rng.random_range(0..4)]);
            }
        };
        space(rng, out);
        match rng.random_range(0..if depth == 0 { 5 } else { 7 }) {
            0 => out.push_str(["true", "false", "null"][rng.random_range(0..3)]),
            1 => {
                let numbers = [
                    "0",
                    "-0",
                    "7",
                    "-12",
                    "3.25",
                    "1e3",
                    "-2.5E-7",
                    "9223372036854775807",
                    "-9223372036854775808",
                    "18446744073709551616",
                    "123456789012345678901234567890",
                    "0.1",
                    "1.7976931348623157e308",
                    "5e-324",
                    "-0.0",
                ];
                out.push_str(numbers[rng.random_range(0..numbers.len())]);
            }
            2..=4 => {
                out.push('"');
                let longest = if rng.random_bool(0.1) { 40 } else { 8 };
                for _ in 0..rng.random_range(0..longest) {
                    let pieces = [
                        "a",
                        "Kong",
                        "/path?q=1",
                        " ",
                        "\\\"",
                        "\\\\",
                        "\\n",
                        "\\u00e9",
                        "\\ud83d\\ude00",
                        "é",
                        "☃",
                        "😀",
                        "\\/",
                        "0123456789",
                    ];
                    out.push_str(pieces[rng.random_range(0..pieces.len())]);
                }
                out.push('"');
            }
            5 => {
                out.push('[');
                for i in 0..rng.random_range(0..5) {
                    if i > 0 {
                        out.push(',');
                    }
                    random_json(rng, depth - 1, out);
                }
                space(rng, out);
                out.push(']');
            }
            _ => {
                out.push('{');
                for i in 0..rng.random_range(0..5) {
                    if i > 0 {
                        out.push(',');
                    }
                    space(rng, out);
                    let keys = ["\"a\"", "\"b\"", "\"request\"", "\"k\\u0041\"", "\"é\"", "\"\""];
                    out.push_str(keys[rng.random_range(0..keys.len())]);
                    space(rng, out);
                    out.push(':');
                    random_json(rng, depth - 1, out);
                }
                space(rng, out);
                out.push('}');
            }
        }
        space(rng, out);
    }

    /// Thousands of random documents, and the same broken at random (a byte
    /// changed, cut short, a byte put in): the reader agrees with serde_json on
    /// every one, values or error message, and never panics.
    #[test]
    fn random_documents_read_as_serde_json_reads_them() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(19);
        let nasty = [b'"', b'\\', b',', b':', b'[', b']', b'{', b'}', b'-', b'0', b'e', b'.', 0x00, 0x1f, 0x7f, 0xc3, 0xff, b' '];
        for case in 0..20000 {
            let mut text = String::new();
            random_json(&mut rng, 4, &mut text);
            let mut docs = vec![text.clone().into_bytes()];
            for _ in 0..3 {
                let mut broken = text.clone().into_bytes();
                let at = rng.random_range(0..broken.len().max(1));
                match rng.random_range(0..3) {
                    0 if !broken.is_empty() => broken[at] = nasty[rng.random_range(0..nasty.len())],
                    1 => broken.truncate(at),
                    _ => broken.insert(at.min(broken.len()), nasty[rng.random_range(0..nasty.len())]),
                }
                docs.push(broken);
            }
            for doc in docs {
                let theirs = serde_json::from_slice::<Value>(&doc);
                let ours = json_values(&doc).map(|read| match read {
                    JsonValues::One(value) => value,
                    JsonValues::Elements(items) => Value::Array(items),
                });
                match (ours, theirs) {
                    (Ok(ours), Ok(theirs)) => assert_eq!(ours, theirs, "case {case}: {}", String::from_utf8_lossy(&doc)),
                    (Err(ours), Err(theirs)) => assert_eq!(ours.to_string(), theirs.to_string(), "case {case}"),
                    (ours, theirs) => panic!("case {case}: {ours:?} against {theirs:?}: {}", String::from_utf8_lossy(&doc)),
                }
            }
        }
    }

    /// An entry's strings lie side by side in one buffer of its own: not in
    /// the body, not in another entry's buffer.
    #[test]
    fn strings_share_their_entrys_buffer() {
        let body = br#"[{"a": "first"}, {"a": "second", "b": "third", "c": "esc\"aped"}]"#;
        let JsonValues::Elements(items) = json_values(body).unwrap() else { panic!("an array has elements") };
        let text_of = |item: &Value, key: &str| match &item.as_object().unwrap()[key] {
            Value::String(s) => s.as_bytes().clone(),
            other => panic!("{other:?}"),
        };
        let (first, second, third) = (text_of(&items[0], "a"), text_of(&items[1], "a"), text_of(&items[1], "b"));
        assert_eq!((&second[..], &third[..]), (&b"second"[..], &b"third"[..]));
        assert_eq!(third.as_ptr() as usize, second.as_ptr() as usize + second.len());
        assert_ne!(second.as_ptr() as usize, first.as_ptr() as usize + first.len());
        assert!(!body.as_ptr_range().contains(&second.as_ptr()));

        // A huge entry does not size the buffers of the tiny ones after it:
        // their strings lie close together, not a huge buffer apart.
        let huge_first = format!(r#"[{{"a": "{}"}}{}]"#, "h".repeat(4 << 20), r#", {"a": "x"}"#.repeat(3));
        let JsonValues::Elements(after_huge) = json_values(huge_first.as_bytes()).unwrap() else { panic!("an array has elements") };
        let (x1, x2) = (text_of(&after_huge[1], "a"), text_of(&after_huge[2], "a"));
        assert!((x1.as_ptr() as usize).abs_diff(x2.as_ptr() as usize) < 1 << 20, "{:p} {:p}", x1.as_ptr(), x2.as_ptr());
        assert_eq!(text_of(&items[1], "c"), &b"esc\"aped"[..]);
        assert_eq!(text_of(&items[0], "a"), &b"first"[..]);
    }
}
