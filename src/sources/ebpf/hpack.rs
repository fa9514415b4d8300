//! HPACK (RFC 7541): the header blocks of one direction of an HTTP/2
//! connection, decoded into header lists.
//!
//! Promises: a block decodes exactly as its encoder meant, or it is an
//! error; never a guess. A decoder that saw the connection from its start
//! holds the same dynamic table as the encoder. One that did not (capture
//! started mid-connection, bytes missed) is [`Decoder::reset`]: its table
//! then holds only entries added since, which are the newest of the real
//! table, so a field that refers to an entry it lacks fails with
//! [`Error::UnknownIndex`] rather than naming a wrong one.

use std::collections::VecDeque;
use std::fmt;
use std::sync::OnceLock;

/// A decoded header field: name and value as sent (names are lowercase in HTTP/2).
pub type Field = (Vec<u8>, Vec<u8>);

/// The table size an encoder starts with (SETTINGS_HEADER_TABLE_SIZE's default).
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// Largest table size accepted in a size update. A watcher does not see
/// which size the decoding peer allowed; this bounds the memory instead.
pub const MAX_TABLE_SIZE: usize = 64 * 1024;

/// Largest decoded header list (names + values): a block of one-byte
/// references to large entries could otherwise expand without bound.
pub const MAX_LIST_SIZE: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The block ends inside a representation.
    Truncated,
    /// An integer larger than any this decoder accepts.
    Overflow,
    /// Index 0, or beyond the static table and the dynamic table held.
    UnknownIndex(usize),
    /// Huffman data with the EOS symbol, or padding that is not a prefix of EOS.
    Huffman,
    /// A table size update above [`MAX_TABLE_SIZE`], or after the first field.
    TableSizeUpdate,
    /// The decoded list would exceed [`MAX_LIST_SIZE`].
    TooLarge,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => write!(f, "header block ends inside a field"),
            Error::Overflow => write!(f, "integer too large"),
            Error::UnknownIndex(index) => write!(f, "index {index} is not in the tables"),
            Error::Huffman => write!(f, "invalid Huffman string"),
            Error::TableSizeUpdate => write!(f, "invalid dynamic table size update"),
            Error::TooLarge => write!(f, "header list larger than {MAX_LIST_SIZE} bytes"),
        }
    }
}

/// The decoding state of one direction of one connection.
#[derive(Debug)]
pub struct Decoder {
    /// Newest first: index 62 is `table[0]`.
    table: VecDeque<Field>,
    /// Sum of the entries' sizes (name + value + 32, RFC 7541 §4.1).
    size: usize,
    max_size: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder { table: VecDeque::new(), size: 0, max_size: DEFAULT_TABLE_SIZE }
    }
}

impl Decoder {
    /// Decode one complete header block (HEADERS + CONTINUATION fragments
    /// joined). On error the table is emptied: what the block would have
    /// added is unknown.
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<Field>, Error> {
        let result = self.decode_fields(block);
        if result.is_err() {
            self.reset();
        }
        result
    }

    /// Forget the dynamic table (bytes were missed). The size limit is kept:
    /// it changes only with a size update, which will be seen if it comes.
    pub fn reset(&mut self) {
        self.table.clear();
        self.size = 0;
    }

    fn decode_fields(&mut self, block: &[u8]) -> Result<Vec<Field>, Error> {
        let mut input = Input { bytes: block, at: 0 };
        let mut fields = Vec::new();
        let mut list_size = 0;
        while let Some(first) = input.peek() {
            let field = if first & 0x80 != 0 {
                // Indexed field (§6.1).
                let index = input.integer(7)?;
                self.get(index)?.clone()
            } else if first & 0xc0 == 0x40 {
                // Literal with incremental indexing (§6.2.1).
                let field = self.literal(&mut input, 6)?;
                self.insert(field.clone());
                field
            } else if first & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3): only before the first field.
                let size = input.integer(5)?;
                if !fields.is_empty() || size > MAX_TABLE_SIZE {
                    return Err(Error::TableSizeUpdate);
                }
                self.max_size = size;
                self.evict(0);
                continue;
            } else {
                // Literal without indexing or never indexed (§6.2.2, §6.2.3).
                self.literal(&mut input, 4)?
            };
            list_size += field.0.len() + field.1.len();
            if list_size > MAX_LIST_SIZE {
                return Err(Error::TooLarge);
            }
            fields.push(field);
        }
        Ok(fields)
    }

    /// A literal whose name is indexed (prefix != 0) or follows as a string.
    fn literal(&self, input: &mut Input, prefix_bits: u8) -> Result<Field, Error> {
        let index = input.integer(prefix_bits)?;
        let name = if index == 0 { input.string()? } else { self.get(index)?.0.clone() };
        Ok((name, input.string()?))
    }

    fn get(&self, index: usize) -> Result<&Field, Error> {
        match index {
            0 => Err(Error::UnknownIndex(0)),
            1..=61 => Ok(&static_table()[index - 1]),
            _ => self.table.get(index - 62).ok_or(Error::UnknownIndex(index)),
        }
    }

    /// Add an entry, evicting the oldest to make room; one larger than the
    /// whole table empties it and is not added (§4.4).
    fn insert(&mut self, field: Field) {
        let size = entry_size(&field);
        self.evict(size);
        if size <= self.max_size {
            self.size += size;
            self.table.push_front(field);
        }
    }

    /// Evict until `room` more bytes fit under the limit (or the table is empty).
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max_size {
            let Some(oldest) = self.table.pop_back() else { break };
            self.size -= entry_size(&oldest);
        }
    }
}

fn entry_size(field: &Field) -> usize {
    field.0.len() + field.1.len() + 32
}

struct Input<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Input<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Result<u8, Error> {
        let byte = self.peek().ok_or(Error::Truncated)?;
        self.at += 1;
        Ok(byte)
    }

    /// An integer with an N-bit prefix (§5.1).
    fn integer(&mut self, prefix_bits: u8) -> Result<usize, Error> {
        let max_prefix = (1usize << prefix_bits) - 1;
        let mut value = usize::from(self.next()?) & max_prefix;
        if value < max_prefix {
            return Ok(value);
        }
        let mut shift = 0;
        loop {
            let byte = self.next()?;
            // Five continuation bytes carry 35 bits: more than any length or index here.
            if shift > 28 {
                return Err(Error::Overflow);
            }
            value += usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
    }

    /// A string literal (§5.2), Huffman-decoded when its H bit is set.
    fn string(&mut self) -> Result<Vec<u8>, Error> {
        let huffman = self.peek().ok_or(Error::Truncated)? & 0x80 != 0;
        let len = self.integer(7)?;
        let end = self.at.checked_add(len).filter(|end| *end <= self.bytes.len()).ok_or(Error::Truncated)?;
        let raw = &self.bytes[self.at..end];
        self.at = end;
        if huffman {
            huffman_decode(raw)
        } else {
            Ok(raw.to_vec())
        }
    }
}

/// Decode Huffman-coded bytes (§5.2): the code of Appendix B, the last
/// byte padded with the most significant bits of EOS (at most 7 bits).
fn huffman_decode(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let tree = huffman_tree();
    let mut out = Vec::with_capacity(bytes.len() * 8 / 5);
    let mut node = 0;
    // Bits read since the last symbol, and whether all were ones (the only valid padding).
    let mut pending_bits = 0;
    let mut pending_ones = true;
    for byte in bytes {
        for shift in (0..8).rev() {
            let bit = (byte >> shift) & 1;
            match tree[node][usize::from(bit)] {
                Branch::Node(next) => {
                    node = next;
                    pending_bits += 1;
                    pending_ones &= bit == 1;
                }
                Branch::Symbol(EOS) | Branch::Empty => return Err(Error::Huffman),
                Branch::Symbol(symbol) => {
                    out.push(symbol as u8);
                    node = 0;
                    pending_bits = 0;
                    pending_ones = true;
                }
            }
        }
    }
    if pending_bits > 7 || !pending_ones {
        return Err(Error::Huffman);
    }
    Ok(out)
}

const EOS: u16 = 256;

#[derive(Debug, Clone, Copy)]
enum Branch {
    Empty,
    Node(usize),
    Symbol(u16),
}

/// The code as a binary tree, built once from [`HUFFMAN_CODES`]; node 0 is the root.
fn huffman_tree() -> &'static [[Branch; 2]] {
    static TREE: OnceLock<Vec<[Branch; 2]>> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut tree = vec![[Branch::Empty; 2]];
        for (symbol, &(code, len)) in HUFFMAN_CODES.iter().enumerate() {
            let mut node = 0;
            for depth in (0..len).rev() {
                let bit = ((code >> depth) & 1) as usize;
                if depth == 0 {
                    tree[node][bit] = Branch::Symbol(symbol as u16);
                } else {
                    node = match tree[node][bit] {
                        Branch::Node(next) => next,
                        _ => {
                            tree.push([Branch::Empty; 2]);
                            let next = tree.len() - 1;
                            tree[node][bit] = Branch::Node(next);
                            next
                        }
                    };
                }
            }
        }
        tree
    })
}

/// RFC 7541 Appendix B: (code aligned to the least significant bit, length
/// in bits) of each symbol 0..=255, then EOS.
#[rustfmt::skip]
const HUFFMAN_CODES: [(u32, u8); 257] = [
    (0x1ff8, 13), (0x7fffd8, 23), (0xfffffe2, 28), (0xfffffe3, 28), (0xfffffe4, 28), (0xfffffe5, 28), (0xfffffe6, 28), (0xfffffe7, 28),
    (0xfffffe8, 28), (0xffffea, 24), (0x3ffffffc, 30), (0xfffffe9, 28), (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28), (0xfffffec, 28),
    (0xfffffed, 28), (0xfffffee, 28), (0xfffffef, 28), (0xffffff0, 28), (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28),
    (0xffffff4, 28), (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28), (0xffffff8, 28), (0xffffff9, 28), (0xffffffa, 28), (0xffffffb, 28),
    // 32: ' ' ! " # $ % & '
    (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12), (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11),
    // 40: ( ) * + , - . /
    (0x3fa, 10), (0x3fb, 10), (0xf9, 8), (0x7fb, 11), (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6),
    // 48: 0-7
    (0x0, 5), (0x1, 5), (0x2, 5), (0x19, 6), (0x1a, 6), (0x1b, 6), (0x1c, 6), (0x1d, 6),
    // 56: 8 9 : ; < = > ?
    (0x1e, 6), (0x1f, 6), (0x5c, 7), (0xfb, 8), (0x7ffc, 15), (0x20, 6), (0xffb, 12), (0x3fc, 10),
    // 64: @ A-G
    (0x1ffa, 13), (0x21, 6), (0x5d, 7), (0x5e, 7), (0x5f, 7), (0x60, 7), (0x61, 7), (0x62, 7),
    // 72: H-O
    (0x63, 7), (0x64, 7), (0x65, 7), (0x66, 7), (0x67, 7), (0x68, 7), (0x69, 7), (0x6a, 7),
    // 80: P-W
    (0x6b, 7), (0x6c, 7), (0x6d, 7), (0x6e, 7), (0x6f, 7), (0x70, 7), (0x71, 7), (0x72, 7),
    // 88: X Y Z [ \ ] ^ _
    (0xfc, 8), (0x73, 7), (0xfd, 8), (0x1ffb, 13), (0x7fff0, 19), (0x1ffc, 13), (0x3ffc, 14), (0x22, 6),
    // 96: ` a-g
    (0x7ffd, 15), (0x3, 5), (0x23, 6), (0x4, 5), (0x24, 6), (0x5, 5), (0x25, 6), (0x26, 6),
    // 104: h-o
    (0x27, 6), (0x6, 5), (0x74, 7), (0x75, 7), (0x28, 6), (0x29, 6), (0x2a, 6), (0x7, 5),
    // 112: p-w
    (0x2b, 6), (0x76, 7), (0x2c, 6), (0x8, 5), (0x9, 5), (0x2d, 6), (0x77, 7), (0x78, 7),
    // 120: x y z { | } ~ DEL
    (0x79, 7), (0x7a, 7), (0x7b, 7), (0x7ffe, 15), (0x7fc, 11), (0x3ffd, 14), (0x1ffd, 13), (0xffffffc, 28),
    // 128
    (0xfffe6, 20), (0x3fffd2, 22), (0xfffe7, 20), (0xfffe8, 20), (0x3fffd3, 22), (0x3fffd4, 22), (0x3fffd5, 22), (0x7fffd9, 23),
    (0x3fffd6, 22), (0x7fffda, 23), (0x7fffdb, 23), (0x7fffdc, 23), (0x7fffdd, 23), (0x7fffde, 23), (0xffffeb, 24), (0x7fffdf, 23),
    // 144
    (0xffffec, 24), (0xffffed, 24), (0x3fffd7, 22), (0x7fffe0, 23), (0xffffee, 24), (0x7fffe1, 23), (0x7fffe2, 23), (0x7fffe3, 23),
    (0x7fffe4, 23), (0x1fffdc, 21), (0x3fffd8, 22), (0x7fffe5, 23), (0x3fffd9, 22), (0x7fffe6, 23), (0x7fffe7, 23), (0xffffef, 24),
    // 160
    (0x3fffda, 22), (0x1fffdd, 21), (0xfffe9, 20), (0x3fffdb, 22), (0x3fffdc, 22), (0x7fffe8, 23), (0x7fffe9, 23), (0x1fffde, 21),
    (0x7fffea, 23), (0x3fffdd, 22), (0x3fffde, 22), (0xfffff0, 24), (0x1fffdf, 21), (0x3fffdf, 22), (0x7fffeb, 23), (0x7fffec, 23),
    // 176
    (0x1fffe0, 21), (0x1fffe1, 21), (0x3fffe0, 22), (0x1fffe2, 21), (0x7fffed, 23), (0x3fffe1, 22), (0x7fffee, 23), (0x7fffef, 23),
    (0xfffea, 20), (0x3fffe2, 22), (0x3fffe3, 22), (0x3fffe4, 22), (0x7ffff0, 23), (0x3fffe5, 22), (0x3fffe6, 22), (0x7ffff1, 23),
    // 192
    (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20), (0x7fff1, 19), (0x3fffe7, 22), (0x7ffff2, 23), (0x3fffe8, 22), (0x1ffffec, 25),
    (0x3ffffe2, 26), (0x3ffffe3, 26), (0x3ffffe4, 26), (0x7ffffde, 27), (0x7ffffdf, 27), (0x3ffffe5, 26), (0xfffff1, 24), (0x1ffffed, 25),
    // 208
    (0x7fff2, 19), (0x1fffe3, 21), (0x3ffffe6, 26), (0x7ffffe0, 27), (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24),
    (0x1fffe4, 21), (0x1fffe5, 21), (0x3ffffe8, 26), (0x3ffffe9, 26), (0xffffffd, 28), (0x7ffffe3, 27), (0x7ffffe4, 27), (0x7ffffe5, 27),
    // 224
    (0xfffec, 20), (0xfffff3, 24), (0xfffed, 20), (0x1fffe6, 21), (0x3fffe9, 22), (0x1fffe7, 21), (0x1fffe8, 21), (0x7ffff3, 23),
    (0x3fffea, 22), (0x3fffeb, 22), (0x1ffffee, 25), (0x1ffffef, 25), (0xfffff4, 24), (0xfffff5, 24), (0x3ffffea, 26), (0x7ffff4, 23),
    // 240
    (0x3ffffeb, 26), (0x7ffffe6, 27), (0x3ffffec, 26), (0x3ffffed, 26), (0x7ffffe7, 27), (0x7ffffe8, 27), (0x7ffffe9, 27), (0x7ffffea, 27),
    (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27), (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26),
    // EOS
    (0x3fffffff, 30),
];

/// RFC 7541 Appendix A: index 1 is the first.
fn static_table() -> &'static [Field] {
    static TABLE: OnceLock<Vec<Field>> = OnceLock::new();
    TABLE.get_or_init(|| STATIC_TABLE.iter().map(|(name, value)| (name.as_bytes().to_vec(), value.as_bytes().to_vec())).collect())
}

const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes from the RFC's hex dumps (spaces ignored).
    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits.chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap()).collect()
    }

    fn text(fields: &[Field]) -> Vec<(String, String)> {
        fields.iter().map(|(n, v)| (String::from_utf8(n.clone()).unwrap(), String::from_utf8(v.clone()).unwrap())).collect()
    }

    fn list(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    fn table(decoder: &Decoder) -> Vec<(String, String)> {
        text(&decoder.table.iter().cloned().collect::<Vec<_>>())
    }

    #[test]
    fn c2_single_representations() {
        // C.2.1: literal with indexing.
        let mut decoder = Decoder::default();
        let fields = decoder.decode(&hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")).unwrap();
        assert_eq!(text(&fields), list(&[("custom-key", "custom-header")]));
        assert_eq!((table(&decoder), decoder.size), (list(&[("custom-key", "custom-header")]), 55));
        // C.2.2: literal without indexing.
        let mut decoder = Decoder::default();
        let fields = decoder.decode(&hex("040c 2f73 616d 706c 652f 7061 7468")).unwrap();
        assert_eq!(text(&fields), list(&[(":path", "/sample/path")]));
        assert_eq!(decoder.size, 0);
        // C.2.3: never indexed.
        let fields = decoder.decode(&hex("1008 7061 7373 776f 7264 0673 6563 7265 74")).unwrap();
        assert_eq!(text(&fields), list(&[("password", "secret")]));
        assert_eq!(decoder.size, 0);
        // C.2.4: indexed.
        assert_eq!(text(&decoder.decode(&hex("82")).unwrap()), list(&[(":method", "GET")]));
        assert_eq!(decoder.size, 0);
    }

    /// C.3 and C.4: the same three requests, one dynamic table.
    fn requests(blocks: [&str; 3]) {
        let mut decoder = Decoder::default();
        let first = decoder.decode(&hex(blocks[0])).unwrap();
        assert_eq!(text(&first), list(&[(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")]));
        assert_eq!((table(&decoder), decoder.size), (list(&[(":authority", "www.example.com")]), 57));

        let second = decoder.decode(&hex(blocks[1])).unwrap();
        assert_eq!(
            text(&second),
            list(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache")
            ])
        );
        assert_eq!(table(&decoder), list(&[("cache-control", "no-cache"), (":authority", "www.example.com")]));
        assert_eq!(decoder.size, 110);

        let third = decoder.decode(&hex(blocks[2])).unwrap();
        assert_eq!(
            text(&third),
            list(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value")
            ])
        );
        assert_eq!(
            table(&decoder),
            list(&[("custom-key", "custom-value"), ("cache-control", "no-cache"), (":authority", "www.example.com")])
        );
        assert_eq!(decoder.size, 164);
    }

    #[test]
    fn c3_requests_without_huffman() {
        requests([
            "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            "8286 84be 5808 6e6f 2d63 6163 6865",
            "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
        ]);
    }

    #[test]
    fn c4_requests_with_huffman() {
        requests([
            "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
            "8286 84be 5886 a8eb 1064 9cbf",
            "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        ]);
    }

    /// C.5 and C.6: three responses, a 256-byte table, evictions.
    fn responses(blocks: [&str; 3]) {
        let mut decoder = Decoder { max_size: 256, ..Decoder::default() };
        let date1 = "Mon, 21 Oct 2013 20:13:21 GMT";
        let location = "https://www.example.com";
        let first = decoder.decode(&hex(blocks[0])).unwrap();
        assert_eq!(text(&first), list(&[(":status", "302"), ("cache-control", "private"), ("date", date1), ("location", location)]));
        assert_eq!(table(&decoder), list(&[("location", location), ("date", date1), ("cache-control", "private"), (":status", "302")]));
        assert_eq!(decoder.size, 222);

        let second = decoder.decode(&hex(blocks[1])).unwrap();
        assert_eq!(text(&second), list(&[(":status", "307"), ("cache-control", "private"), ("date", date1), ("location", location)]));
        // ":status: 302" evicted for ":status: 307".
        assert_eq!(table(&decoder), list(&[(":status", "307"), ("location", location), ("date", date1), ("cache-control", "private")]));
        assert_eq!(decoder.size, 222);

        let cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
        let date2 = "Mon, 21 Oct 2013 20:13:22 GMT";
        let third = decoder.decode(&hex(blocks[2])).unwrap();
        assert_eq!(
            text(&third),
            list(&[
                (":status", "200"),
                ("cache-control", "private"),
                ("date", date2),
                ("location", location),
                ("content-encoding", "gzip"),
                ("set-cookie", cookie)
            ])
        );
        assert_eq!(table(&decoder), list(&[("set-cookie", cookie), ("content-encoding", "gzip"), ("date", date2)]));
        assert_eq!(decoder.size, 215);
    }

    #[test]
    fn c5_responses_without_huffman() {
        responses([
            "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
             2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            "4803 3330 37c1 c0bf",
            "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
             54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
             5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
        ]);
    }

    #[test]
    fn c6_responses_with_huffman() {
        responses([
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
             2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
            "4883 640e ffc1 c0bf",
            "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
             77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
             9587 3160 65c0 03ed 4ee5 b106 3d50 07",
        ]);
    }

    #[test]
    fn a_dynamic_index_it_does_not_have_is_an_error() {
        // C.3.2's block on a fresh decoder: `be` (62) names an entry added before the capture.
        let mut decoder = Decoder::default();
        assert_eq!(decoder.decode(&hex("8286 84be 5808 6e6f 2d63 6163 6865")), Err(Error::UnknownIndex(62)));
        // What the failed block would have added is not kept.
        assert_eq!((decoder.size, decoder.table.len()), (0, 0));
        // After a reset, entries added later decode; older ones still fail.
        decoder.decode(&hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")).unwrap();
        assert_eq!(text(&decoder.decode(&hex("be")).unwrap()), list(&[("custom-key", "custom-header")]));
        assert_eq!(decoder.decode(&hex("bf")), Err(Error::UnknownIndex(63)));
        assert_eq!(decoder.size, 0);
    }

    #[test]
    fn malformed_blocks() {
        let mut decoder = Decoder::default();
        assert_eq!(decoder.decode(&hex("80")), Err(Error::UnknownIndex(0)));
        // A literal whose value runs past the block.
        assert_eq!(decoder.decode(&hex("400a 6375 7374")), Err(Error::Truncated));
        assert_eq!(decoder.decode(&hex("ff")), Err(Error::Truncated));
        assert_eq!(decoder.decode(&hex("ff ff ff ff ff ff 01")), Err(Error::Overflow));
        // A size update after a field, or above the bound.
        assert_eq!(decoder.decode(&hex("82 3fe1 1f")), Err(Error::TableSizeUpdate));
        assert_eq!(decoder.decode(&hex("3fe1 ff07")), Err(Error::TableSizeUpdate));
        // Huffman: padding of zeros; 8 bits of padding; the EOS symbol.
        assert_eq!(decoder.decode(&hex("0481 00")), Err(Error::Huffman));
        assert_eq!(decoder.decode(&hex("0482 1fff")), Err(Error::Huffman));
        assert_eq!(decoder.decode(&hex("0484 ffff ffff")), Err(Error::Huffman));
    }

    #[test]
    fn size_update_evicts() {
        let mut decoder = Decoder::default();
        decoder.decode(&hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d")).unwrap();
        assert_eq!(decoder.size, 57);
        // Size 0 then back to 4096 (`3fe1 1f`): the table is emptied, the block decodes.
        assert_eq!(text(&decoder.decode(&hex("20 3fe1 1f 82")).unwrap()), list(&[(":method", "GET")]));
        assert_eq!(decoder.size, 0);
        assert_eq!(decoder.decode(&hex("be")), Err(Error::UnknownIndex(62)));
    }

    #[test]
    fn every_symbol_round_trips_through_the_tree() {
        // Encode each byte with the table, pad with ones, decode.
        for (symbol, &(code, len)) in HUFFMAN_CODES[..256].iter().enumerate() {
            let bits = u64::from(code) << (64 - u32::from(len));
            let padded = bits | (u64::MAX >> u32::from(len));
            let bytes = padded.to_be_bytes()[..usize::from(len).div_ceil(8)].to_vec();
            assert_eq!(huffman_decode(&bytes), Ok(vec![symbol as u8]), "symbol {symbol}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x853c_49e6_748f_ea9bu64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut decoder = Decoder::default();
        for _ in 0..20_000 {
            let block: Vec<u8> = (0..next() % 40).map(|_| next() as u8).collect();
            let _ = decoder.decode(&block);
            assert!(decoder.size <= MAX_TABLE_SIZE);
        }
    }
}
