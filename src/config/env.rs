//! `${VAR}`, `${VAR:-default}`, `$VAR` and `$$` in config text, replaced before
//! the TOML is parsed (as Vector does).

use super::Diagnostic;

/// Replace every reference in `text`; `lookup` reads the environment. Errors
/// carry the line and column of the `$` that caused them.
pub fn interpolate(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<(usize, Diagnostic)>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (consumed, replacement) = if after.starts_with('$') {
            (2, Some("$".to_string()))
        } else if let Some(body) = after.strip_prefix('{') {
            match body.find('}') {
                None => {
                    errors.push((offset + at, Diagnostic::error("unclosed `${`: expected `}`")));
                    (1, None)
                }
                Some(end) => {
                    let inner = &body[..end];
                    let (name, default) = match inner.split_once(":-") {
                        Some((n, d)) => (n, Some(d)),
                        None => match inner.split_once('-') {
                            Some((n, d)) if is_name(n) => (n, Some(d)),
                            _ => (inner, None),
                        },
                    };
                    if !is_name(name) {
                        errors.push((
                            offset + at,
                            Diagnostic::error(format!("invalid environment variable name `{name}` in `${{{inner}}}`")),
                        ));
                        (end + 3, None)
                    } else {
                        let value = match (lookup(name), default) {
                            (Some(v), Some(d)) if v.is_empty() && inner.contains(":-") => Some(d.to_string()),
                            (Some(v), _) => Some(v),
                            (None, Some(d)) => Some(d.to_string()),
                            (None, None) => {
                                errors.push((
                                    offset + at,
                                    Diagnostic::error(format!("environment variable `{name}` is not set"))
                                        .with_help(format!("set it, or give a default: `${{{name}:-value}}`")),
                                ));
                                None
                            }
                        };
                        (end + 3, value)
                    }
                }
            }
        } else {
            let len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            let name = &after[..len];
            if is_name(name) {
                match lookup(name) {
                    Some(v) => (len + 1, Some(v)),
                    None => {
                        errors.push((
                            offset + at,
                            Diagnostic::error(format!("environment variable `{name}` is not set"))
                                .with_help("write `$$` for a literal `$`"),
                        ));
                        (len + 1, None)
                    }
                }
            } else {
                // A lone `$` (e.g. in a regex) stays as it is.
                (1, Some("$".to_string()))
            }
        };
        if let Some(value) = replacement {
            if value.contains('\n') || value.contains('\r') {
                errors.push((
                    offset + at,
                    Diagnostic::error("an environment variable's value contains a newline, which could inject config")
                        .with_help("remove the newline from the variable's value"),
                ));
            } else {
                out.push_str(&value);
            }
        }
        let advance = (at + consumed).min(rest.len());
        offset += advance;
        rest = &rest[advance..];
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("kong".into()),
            "EMPTY" => Some(String::new()),
            "EVIL" => Some("a\n[sinks.x]".into()),
            _ => None,
        }
    }

    #[test]
    fn forms() {
        let out = interpolate("a=${HOST} b=$HOST c=${NOPE:-dflt} d=${EMPTY:-e} f=$$HOST g=${EMPTY-x} h=^a$", &env).unwrap();
        assert_eq!(out, "a=kong b=kong c=dflt d=e f=$HOST g= h=^a$");
    }

    #[test]
    fn errors_point_at_the_dollar() {
        let errs = interpolate("x = 1\ny = \"${NOPE}\"\nz = \"${EVIL}\"", &env).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].0, 11);
        assert!(errs[0].1.message.contains("`NOPE` is not set"));
        assert!(errs[1].1.message.contains("newline"));
    }
}
