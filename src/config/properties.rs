//! A parser for Java `.properties` files, following `java.util.Properties::load`
//! closely enough that real Kafka `server.properties` files read the same way
//! they do under the JVM.

/// One `key=value` entry; `line` is where its logical line starts (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// A malformed entry (only bad `\uXXXX` escapes can be malformed in Java).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertiesError {
    pub line: usize,
    pub message: String,
}

/// Java treats space, tab and form feed as whitespace in properties files.
fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0c')
}

fn trim_leading(s: &str) -> &str {
    s.trim_start_matches(is_ws)
}

/// An odd number of trailing backslashes means the line continues; an even
/// number is a run of escaped backslashes.
fn continues(s: &str) -> bool {
    s.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Splits on `\n`, `\r\n` and lone `\r`, as Java's LineReader does.
fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['\r', '\n']) {
            Some(i) => {
                lines.push(&rest[..i]);
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
            None => {
                lines.push(rest);
                rest = "";
            }
        }
    }
    lines
}

/// Parses the whole text. Later duplicates are returned too; the caller
/// lets the last one win, as `Properties` does.
pub fn parse_properties(text: &str) -> Result<Vec<Property>, PropertiesError> {
    // Editors on Windows like to add a BOM; Java would make it part of the
    // first key, which only ever produces a confusing unknown-key warning.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = split_lines(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = i + 1;
        let first = trim_leading(lines[i]);
        i += 1;
        // Comments are recognised only at the start of a logical line, so a
        // continuation line beginning with '#' is still data.
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        let mut logical = first.to_string();
        while continues(&logical) {
            logical.pop();
            match lines.get(i) {
                Some(next) => {
                    logical.push_str(trim_leading(next));
                    i += 1;
                }
                None => break,
            }
        }
        let (key, value) = split_entry(&logical).map_err(|message| PropertiesError {
            line: start,
            message,
        })?;
        out.push(Property {
            key,
            value,
            line: start,
        });
    }
    Ok(out)
}

/// Splits a logical line into unescaped key and value. The key ends at the
/// first unescaped `=`, `:` or whitespace; whitespace and at most one `=`/`:`
/// separate it from the value.
fn split_entry(line: &str) -> Result<(String, String), String> {
    let chars: Vec<char> = line.chars().collect();
    let mut key_end = chars.len();
    let mut escaped = false;
    for (pos, &c) in chars.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' || is_ws(c) {
            key_end = pos;
            break;
        }
    }
    let mut v = key_end;
    while v < chars.len() && is_ws(chars[v]) {
        v += 1;
    }
    if v < chars.len() && (chars[v] == '=' || chars[v] == ':') {
        v += 1;
        while v < chars.len() && is_ws(chars[v]) {
            v += 1;
        }
    }
    Ok((unescape(&chars[..key_end])?, unescape(&chars[v..])?))
}

/// Resolves `\t`, `\n`, `\r`, `\f`, `\uXXXX` (with surrogate pairs) and
/// `\x` => `x` for any other character.
fn unescape(chars: &[char]) -> Result<String, String> {
    let mut out = String::with_capacity(chars.len());
    let mut pending_high: Option<u32> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '\\' {
            flush_surrogate(&mut out, &mut pending_high);
            out.push(c);
            continue;
        }
        let Some(&e) = chars.get(i) else {
            // A lone trailing backslash (continuation at end of file) is dropped.
            break;
        };
        i += 1;
        let decoded = match e {
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            'f' => '\x0c',
            'u' => {
                let hex: String = chars.iter().skip(i).take(4).collect();
                let code = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or_else(|| "malformed \\uxxxx encoding".to_string())?;
                i += 4;
                match (pending_high.take(), code) {
                    (Some(high), 0xDC00..=0xDFFF) => {
                        let combined = 0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00);
                        out.push(char::from_u32(combined).unwrap_or('\u{fffd}'));
                    }
                    (high, 0xD800..=0xDBFF) => {
                        if high.is_some() {
                            out.push('\u{fffd}');
                        }
                        pending_high = Some(code);
                    }
                    (high, _) => {
                        if high.is_some() {
                            out.push('\u{fffd}');
                        }
                        out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                    }
                }
                continue;
            }
            other => other,
        };
        flush_surrogate(&mut out, &mut pending_high);
        out.push(decoded);
    }
    flush_surrogate(&mut out, &mut pending_high);
    Ok(out)
}

/// A high surrogate not followed by a low one cannot be represented in a
/// Rust string; substitute the replacement character like lossy decoding.
fn flush_surrogate(out: &mut String, pending: &mut Option<u32>) {
    if pending.take().is_some() {
        out.push('\u{fffd}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Vec<(String, String)> {
        parse_properties(text)
            .unwrap()
            .into_iter()
            .map(|p| (p.key, p.value))
            .collect()
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn separators_and_whitespace() {
        let got = kv("a=1\nb: 2\nc 3\n  d  =  4  \ne\tf\ng=\nh\n i:=j\n");
        assert_eq!(
            got,
            vec![
                pair("a", "1"),
                pair("b", "2"),
                pair("c", "3"),
                pair("d", "4  "),
                pair("e", "f"),
                pair("g", ""),
                pair("h", ""),
                pair("i", "=j"),
            ]
        );
    }

    #[test]
    fn comments_and_blank_lines() {
        let got =
            kv("# comment\n! also comment\n\n   \n  # indented comment\nk=v # not a comment\n");
        assert_eq!(got, vec![pair("k", "v # not a comment")]);
    }

    #[test]
    fn continuation_lines() {
        let got = kv("listeners=PLAINTEXT://a:1,\\\n    PLAINTEXT2://b:2\nnext=x\n");
        assert_eq!(
            got,
            vec![
                pair("listeners", "PLAINTEXT://a:1,PLAINTEXT2://b:2"),
                pair("next", "x")
            ]
        );
        // An even number of backslashes is an escaped backslash, not a continuation.
        assert_eq!(kv("p=c:\\\\\nq=1"), vec![pair("p", "c:\\"), pair("q", "1")]);
        // A continued line starting with '#' is data, not a comment.
        assert_eq!(kv("a=1\\\n#2\n"), vec![pair("a", "1#2")]);
        // Continuation at end of file just ends.
        assert_eq!(kv("a=1\\"), vec![pair("a", "1")]);
    }

    #[test]
    fn escapes() {
        let got = kv("key\\ with\\=odd\\:chars = a\\tb\\u0041\\\\z\\q\n");
        assert_eq!(got, vec![pair("key with=odd:chars", "a\tbA\\zq")]);
        assert_eq!(kv("e=\\uD83D\\uDE00"), vec![pair("e", "\u{1F600}")]);
        let err = parse_properties("ok=1\nbad=\\u12G4\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("\\uxxxx"));
    }

    #[test]
    fn line_endings_bom_and_line_numbers() {
        let props = parse_properties("\u{feff}a=1\r\n\r\nb=2\rc=3").unwrap();
        let lines: Vec<_> = props.iter().map(|p| (p.key.as_str(), p.line)).collect();
        assert_eq!(lines, vec![("a", 1), ("b", 3), ("c", 4)]);
    }
}
