//! Other readings of a JSON text: JSON that JavaScript's and Python's parsers accept and
//! serde_json refuses, rewritten as strict JSON; and the strings of a text that is not JSON as
//! JSON5 and lenient parsers read their escapes.

/// `body` with what JavaScript's `JSON.parse` and Python's `json` accept and serde_json refuses
/// written as strict JSON: a `\uD800`-`\uDFFF` escape that is not half of a pair (both take it,
/// as U+FFFD here), a number too large for a double (`1e999`, infinity to both; `1e308` here),
/// and Python's `NaN`, `Infinity` and `-Infinity` (`null` here); and with `//` and `/* */`
/// comments as spaces, which Json.NET, Ruby's `json` (Rails), JSON5 and lenient Jackson skip.
/// `None` when there is none of these.
pub(super) fn as_strict_json(body: &str) -> Option<String> {
    let b = body.as_bytes();
    let hex4 = |at: usize| -> Option<u32> {
        let d = b.get(at..at + 4)?;
        u32::from_str_radix(std::str::from_utf8(d).ok()?, 16).ok()
    };
    let escape_at = |at: usize| {
        (b.get(at) == Some(&b'\\') && b.get(at + 1) == Some(&b'u'))
            .then(|| hex4(at + 2))
            .flatten()
    };
    let mut out = String::new();
    let mut copied = 0;
    let mut replace = |from: usize, to: usize, with: &str, out: &mut String| {
        out.push_str(&body[copied..from]);
        out.push_str(with);
        copied = to;
    };
    let (mut i, mut in_string) = (0, false);
    while i < b.len() {
        if in_string {
            match b[i] {
                b'"' => in_string = false,
                b'\\' => match escape_at(i) {
                    Some(0xD800..=0xDBFF)
                        if escape_at(i + 6).is_some_and(|l| (0xDC00..=0xDFFF).contains(&l)) =>
                    {
                        i += 12;
                        continue;
                    }
                    Some(0xD800..=0xDFFF) => {
                        replace(i, i + 6, "\\ufffd", &mut out);
                        i += 6;
                        continue;
                    }
                    _ => i += 1,
                },
                _ => {}
            }
            i += 1;
            continue;
        }
        match b[i] {
            b'"' => in_string = true,
            b'/' if matches!(b.get(i + 1), Some(b'/' | b'*')) => {
                let end = if b[i + 1] == b'/' {
                    body[i..].find('\n').map_or(b.len(), |n| i + n)
                } else {
                    body[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2)
                };
                replace(i, end, " ", &mut out);
                i = end;
                continue;
            }
            b'-' | b'0'..=b'9' | b'N' | b'I' => {
                let end = b[i..]
                    .iter()
                    .position(|c| !(c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.')))
                    .map_or(b.len(), |n| i + n);
                let token = &body[i..end];
                let with = match token {
                    "NaN" | "Infinity" | "-Infinity" => Some("null"),
                    _ if token.parse::<f64>().is_ok_and(f64::is_infinite) => {
                        Some(if token.starts_with('-') {
                            "-1e308"
                        } else {
                            "1e308"
                        })
                    }
                    _ => None,
                };
                if let Some(with) = with {
                    replace(i, end, with, &mut out);
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&body[copied..]);
    Some(out)
}

/// A body that is not strict JSON read as JSON5 and lenient parsers read its strings: a backslash
/// before a character that is not a JSON or JavaScript escape stands for that character
/// (`\UNION` is `UNION`). `None` when no such backslash is there. Escapes that are (`\n`,
/// `\u0027`, `\\`) are kept for the rules' `js-decode`.
pub(super) fn lenient_escapes(body: &str) -> Option<String> {
    let b = body.as_bytes();
    let hex = |from: usize, n: usize| {
        b.get(from..from + n)
            .is_some_and(|d| d.iter().all(u8::is_ascii_hexdigit))
    };
    let mut out = String::with_capacity(body.len());
    let mut changed = false;
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 >= b.len() {
            i += 1;
            continue;
        }
        let kept = match b[i + 1] {
            b'n' | b'r' | b't' | b'b' | b'f' | b'v' | b'0' | b'\\' | b'/' | b'"' | b'\'' => true,
            b'\n' | b'\r' => true,
            b'u' => hex(i + 2, 4) || b.get(i + 2) == Some(&b'{'),
            b'U' => hex(i + 2, 8) || hex(i + 2, 4),
            b'x' | b'X' => hex(i + 2, 2),
            _ => false,
        };
        if !kept {
            out.push_str(&body[copied..i]);
            copied = i + 1;
            changed = true;
        }
        i += 2;
    }
    if !changed {
        return None;
    }
    out.push_str(&body[copied..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_escapes_stand_for_their_character() {
        assert_eq!(
            lenient_escapes(r"{q: '\' \UNION \SELECT password FROM users--', r: '{\{7*7}}'}")
                .as_deref(),
            Some(r"{q: '\' UNION SELECT password FROM users--', r: '{{7*7}}'}")
        );
        // Escapes JSON and JavaScript define are left for js-decode.
        assert_eq!(
            lenient_escapes(r#"{"a": "x\n\u0027\\\"y\U00000027"}"#),
            None
        );
        assert_eq!(lenient_escapes("{\"a\": 1}"), None);
    }

    #[test]
    fn strict_json_is_left_alone() {
        // Nothing to change: strict JSON, a pair, the words inside strings.
        for body in [
            r#"{"a":1e308,"e":"\ud83d\ude00","w":"NaN Infinity 1e999"}"#,
            r#"["\\ud800"]"#,
        ] {
            assert_eq!(as_strict_json(body), None, "{body}");
        }
        assert_eq!(
            as_strict_json("/* pad */{\"a\": 1, // note\n\"b\": \"x/*y*/\"}").as_deref(),
            Some(" {\"a\": 1,  \n\"b\": \"x/*y*/\"}")
        );
        assert_eq!(
            as_strict_json(r#"{"a":NaN,"b":"\ud800","n":1e999}"#).as_deref(),
            Some(r#"{"a":null,"b":"\ufffd","n":1e308}"#)
        );
    }
}
