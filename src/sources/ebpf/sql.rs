//! SQL statements as request records show them: literals replaced by `?`,
//! comments dropped, whitespace collapsed, `IN (…)` lists of literals
//! folded to `IN (?)`, the semicolons ending it dropped (psql sends the
//! one typed, drivers do not), cut to [`MAX_STATEMENT`] bytes. Statements that
//! differ only by their values read the same (what RED groups by), and no
//! value is kept.
//!
//! Strings are `'…'` (a doubled quote or a backslash escapes the next
//! character, as MySQL reads them and PostgreSQL's `E'…'`), PostgreSQL's
//! dollar-quoted `$tag$…$tag$`, and MySQL's `X'…'`/`B'…'` alike; numbers
//! are decimal, with a fraction or an exponent, or `0x…` hexadecimal; a
//! minus sign is part of the number where a value starts (after an
//! operator, `(`, `,` or the start). Identifiers, quoted (`"…"`, `` `…` ``)
//! or not, and parameters (`$1`, `?`, `:name`) are kept as they are.

/// Longest statement kept, in bytes.
pub const MAX_STATEMENT: usize = 256;

/// The statement normalized (see the module's doc).
pub fn normalize(statement: &str) -> String {
    let bytes = statement.as_bytes();
    let mut out = String::with_capacity(statement.len().min(MAX_STATEMENT + 4));
    let mut i = 0;
    while i < bytes.len() && out.len() <= MAX_STATEMENT {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        if b.is_ascii_whitespace() {
            i += 1;
            space(&mut out);
        } else if b == b'-' && next == Some(b'-') {
            i = bytes[i..].iter().position(|&c| c == b'\n').map_or(bytes.len(), |n| i + n);
            space(&mut out);
        } else if b == b'/' && next == Some(b'*') {
            i = find(bytes, i + 2, b"*/").map_or(bytes.len(), |n| n + 2);
            space(&mut out);
        } else if b == b'\'' {
            i = quoted(bytes, i);
            value(&mut out);
        } else if matches!(b, b'x' | b'X' | b'b' | b'B' | b'e' | b'E' | b'n' | b'N') && next == Some(b'\'') && !word_before(&out) {
            i = quoted(bytes, i + 1);
            value(&mut out);
        } else if let Some(tag) = (b == b'$').then(|| dollar_tag(bytes, i)).flatten() {
            i = find(bytes, i + tag, &bytes[i..i + tag]).map_or(bytes.len(), |n| n + tag);
            value(&mut out);
        } else if b == b'"' || b == b'`' {
            let end = bytes[i + 1..].iter().position(|&c| c == b).map_or(bytes.len(), |n| i + n + 2);
            out.push_str(&statement[i..end]);
            i = end;
        } else if b.is_ascii_digit() && !word_before(&out) || b == b'.' && next.is_some_and(|c| c.is_ascii_digit()) && !word_before(&out) {
            i = number(bytes, i);
            value(&mut out);
        } else if b == b'-' && next.is_some_and(|c| c.is_ascii_digit() || c == b'.') && value_starts(&out) {
            i = number(bytes, i + 1);
            value(&mut out);
        } else {
            // One character (of any width) as it is.
            let len = statement[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&statement[i..i + len]);
            i += len;
            if b == b')' {
                fold_in_list(&mut out);
            }
        }
    }
    let trimmed = out.trim_end_matches([' ', ';']).len();
    out.truncate(trimmed);
    if out.len() > MAX_STATEMENT {
        let mut cut = MAX_STATEMENT;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// The statement's kind: its first word, upper-cased (`SELECT`, `INSERT`).
pub fn kind(normalized: &str) -> Option<String> {
    let word = normalized.trim_start_matches(['(', ' ']).split(|c: char| !c.is_ascii_alphabetic()).next()?;
    (!word.is_empty()).then(|| word.to_ascii_uppercase())
}

fn space(out: &mut String) {
    if !out.is_empty() && !out.ends_with(' ') {
        out.push(' ');
    }
}

fn value(out: &mut String) {
    out.push('?');
}

/// The text before ends inside a word (a digit there is part of a name: `t1`).
fn word_before(out: &str) -> bool {
    out.bytes().last().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80)
}

/// A minus here starts a value, not a subtraction: after an operator, `(`,
/// `,`, the start, or a keyword after which a value comes.
fn value_starts(out: &str) -> bool {
    const BEFORE_VALUES: [&str; 17] = [
        "SELECT", "WHERE", "AND", "OR", "NOT", "BY", "LIMIT", "OFFSET", "THEN", "ELSE", "WHEN", "VALUES", "SET", "IS", "BETWEEN", "LIKE",
        "RETURN",
    ];
    let text = out.trim_end();
    match text.bytes().last() {
        None => true,
        Some(c) if c.is_ascii_alphabetic() => {
            let word = text.rsplit(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or_default();
            BEFORE_VALUES.iter().any(|keyword| keyword.eq_ignore_ascii_case(word))
        }
        Some(c) => matches!(c, b'(' | b',' | b'=' | b'<' | b'>' | b'+' | b'-' | b'*' | b'/' | b'%' | b'|' | b'&' | b'^'),
    }
}

/// Past the string whose opening quote is at `start`.
fn quoted(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The length of a dollar-quote tag (`$$`, `$body$`) starting at `start`.
fn dollar_tag(bytes: &[u8], start: usize) -> Option<usize> {
    let name = bytes[start + 1..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
    // `$1` is a parameter: a tag does not start with a digit.
    let starts_with_digit = bytes.get(start + 1).is_some_and(u8::is_ascii_digit);
    (bytes.get(start + 1 + name) == Some(&b'$') && !starts_with_digit).then_some(name + 2)
}

/// Past the number starting at `start`.
fn number(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    if bytes[i..].starts_with(b"0x") || bytes[i..].starts_with(b"0X") {
        i += 2;
        while i < bytes.len() && bytes[i].is_ascii_hexdigit() {
            i += 1;
        }
        return i;
    }
    while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
        i += 1;
    }
    if i < bytes.len() && matches!(bytes[i], b'e' | b'E') {
        let sign = usize::from(matches!(bytes.get(i + 1), Some(b'+' | b'-')));
        if bytes.get(i + 1 + sign).is_some_and(u8::is_ascii_digit) {
            i += 1 + sign;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    i
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|n| from + n)
}

/// `IN (?, ?, ?)` just closed: fold it to `IN (?)`.
fn fold_in_list(out: &mut String) {
    let Some(open) = out.rfind('(') else { return };
    let inside = &out[open + 1..out.len() - 1];
    let all_values = inside.split(',').all(|item| item.trim() == "?");
    let keyword = out[..open].trim_end().as_bytes();
    let after_in = keyword.len() >= 2
        && keyword[keyword.len() - 2..].eq_ignore_ascii_case(b"in")
        && !keyword[..keyword.len() - 2].last().is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c >= 0x80);
    if all_values && inside.contains(',') && after_in {
        out.truncate(open);
        out.push_str("(?)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        let cases = [
            ("SELECT * FROM t WHERE id = 42", "SELECT * FROM t WHERE id = ?"),
            ("select name from users where email = 'a@b.c' and age > 30.5", "select name from users where email = ? and age > ?"),
            // Escaped quotes, both ways.
            ("INSERT INTO t (a, b) VALUES ('it''s', 'say \\'hi\\'')", "INSERT INTO t (a, b) VALUES (?, ?)"),
            ("UPDATE t SET x = E'a\\nb', y = X'0aff', z = 0x1F WHERE k = 1e-3", "UPDATE t SET x = ?, y = ?, z = ? WHERE k = ?"),
            // Negative numbers, and a minus that subtracts.
            ("SELECT -1, a - 2, f(-3.5), b-4 FROM t WHERE c < -.5", "SELECT ?, a - ?, f(?), b-? FROM t WHERE c < ?"),
            // Names with digits, parameters and quoted identifiers stay.
            (
                "SELECT t1.c2 FROM \"Table 9\" JOIN `x1` WHERE id = $1 AND n = ? AND m = :m",
                "SELECT t1.c2 FROM \"Table 9\" JOIN `x1` WHERE id = $1 AND n = ? AND m = :m",
            ),
            ("DO $body$ BEGIN RAISE 'x'; END $body$", "DO ?"),
            ("SELECT $$a 'b' c$$, 1", "SELECT ?, ?"),
        ];
        for (statement, normalized) in cases {
            assert_eq!(normalize(statement), normalized, "{statement}");
        }
    }

    #[test]
    fn ending_semicolons_go() {
        assert_eq!(normalize("SELECT * FROM nope;"), "SELECT * FROM nope");
        assert_eq!(normalize("INSERT INTO t VALUES (1) ; ;\n"), "INSERT INTO t VALUES (?)");
        // Between statements one stays.
        assert_eq!(normalize("BEGIN; SELECT 1;"), "BEGIN; SELECT ?");
    }

    #[test]
    fn in_lists() {
        assert_eq!(normalize("SELECT * FROM t WHERE id IN (1, 2, 3) AND s in ('a','b')"), "SELECT * FROM t WHERE id IN (?) AND s in (?)");
        // Not an IN list: values, and a list with a name in it.
        assert_eq!(normalize("INSERT INTO t VALUES (1, 2)"), "INSERT INTO t VALUES (?, ?)");
        assert_eq!(normalize("SELECT * FROM t WHERE id IN (1, x)"), "SELECT * FROM t WHERE id IN (?, x)");
        assert_eq!(normalize("SELECT min (1, 2)"), "SELECT min (?, ?)");
    }

    #[test]
    fn comments_and_whitespace() {
        assert_eq!(normalize("  /* app: shop */ SELECT\n\t a -- the a\n FROM  t;  "), "SELECT a FROM t");
        assert_eq!(normalize("SELECT 1 /* unclosed"), "SELECT ?");
        assert_eq!(normalize("SELECT 'unclosed"), "SELECT ?");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn cut_to_the_limit() {
        let long = format!("SELECT {} FROM t", (0..200).map(|n| format!("col_{n}")).collect::<Vec<_>>().join(", "));
        let normalized = normalize(&long);
        assert_eq!(normalized.len(), MAX_STATEMENT);
        assert!(long.starts_with(&normalized));
        // Never inside a character.
        let wide = format!("SELECT '{}', {}", "x", "é".repeat(200));
        let normalized = normalize(&wide);
        assert!(normalized.len() <= MAX_STATEMENT && normalized.len() >= MAX_STATEMENT - 1, "{}", normalized.len());
        assert!(normalized.starts_with("SELECT ?, éé"));
    }

    #[test]
    fn kinds() {
        assert_eq!(kind("select 1").as_deref(), Some("SELECT"));
        assert_eq!(kind("(SELECT 1) UNION (SELECT 2)").as_deref(), Some("SELECT"));
        assert_eq!(kind("WITH x AS (SELECT 1) SELECT * FROM x").as_deref(), Some("WITH"));
        assert_eq!(kind("? "), None);
        assert_eq!(kind(""), None);
    }

    #[test]
    fn never_panics() {
        let pieces =
            ["'", "''", "\\", "$", "$$", "$a$", "--", "/*", "*/", "\"", "`", "-", "1", ".", "e", "0x", "IN (", ")", ",", "é", "\n"];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut statement = String::new();
            for _ in 0..state % 12 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                statement.push_str(pieces[(state % pieces.len() as u64) as usize]);
            }
            state = state.wrapping_add(1);
            assert!(normalize(&statement).len() <= MAX_STATEMENT);
        }
    }
}
