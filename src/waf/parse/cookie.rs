//! Cookie values as Python and Node servers read them. `http.cookies` (Django, Starlette,
//! Tornado, aiohttp) and Werkzeug (Flask) keep a double-quoted value whole across `;` and turn its
//! `\ooo` octal and `\x` escapes into characters, where a plain split on `;` sees pieces and
//! backslashes. Node's `cookie` module (Express's cookie-parser) drops the first and last
//! character of a value that starts with `"`, and cookie-parser reads a value that starts with
//! `j:` as JSON. The WAF inspects every reading.

use std::borrow::Cow;

use crate::waf::transform::percent_decode_once;

/// A cookie value without its quotes, as Node's `cookie` module takes them off: a value that
/// starts with `"` loses its first and last characters. `None` for any other value.
pub fn unquoted(value: &str) -> Option<&str> {
    let inner = value.strip_prefix('"')?;
    let (last, _) = inner.char_indices().next_back()?;
    Some(&inner[..last])
}

/// The JSON text of a cookie-parser JSON cookie: the value percent-decoded once (as the `cookie`
/// module does, `+` kept), unquoted, and starting with `j:`. `None` for any other value.
pub fn json_cookie(value: &str) -> Option<String> {
    let value = unquoted(value).unwrap_or(value);
    let decoded = percent_decode_once(value);
    let text = decoded.as_deref().unwrap_or(value);
    text.strip_prefix("j:").map(str::to_string)
}

/// The quoted cookie values of a `Cookie` header that a Python server reads differently from a
/// split on `;`: those holding a `;` or a backslash escape, as `(name, unquoted value)`.
pub fn quoted_cookies(header: &str) -> Vec<(&str, String)> {
    let b = header.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        // A name runs to `=` or `;`.
        let start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b';' {
            i += 1;
        }
        if i >= b.len() || b[i] == b';' {
            i += 1;
            continue;
        }
        let name = header[start..i].trim();
        i += 1;
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i < b.len() && b[i] == b'"' {
            if let Some(end) = closing_quote(b, i + 1) {
                let inner = &header[i + 1..end];
                if inner.contains([';', '\\']) {
                    out.push((name, unquote(inner).into_owned()));
                }
                i = end + 1;
            }
        }
        // The rest of the pair, up to the next `;`.
        while i < b.len() && b[i] != b';' {
            i += 1;
        }
        i += 1;
    }
    out
}

/// The index of the `"` that closes a quoted string whose text starts at `from`, stepping over
/// backslash escapes.
fn closing_quote(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// `\ooo` (an octal byte, as Python writes cookies) becomes that character, `\x` becomes `x`.
fn unquote(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let rest: String = chars.clone().take(3).collect();
        let octal = rest.len() == 3
            && rest.starts_with(['0', '1', '2', '3'])
            && rest.chars().all(|d| ('0'..='7').contains(&d));
        if octal {
            let code = u32::from_str_radix(&rest, 8).unwrap_or(0);
            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            for _ in 0..3 {
                chars.next();
            }
        } else if let Some(next) = chars.next() {
            out.push(next);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_keep_semicolons_and_lose_escapes() {
        let got = quoted_cookies(
            r#"sid=abc; id="1';UPDATE users SET password='x' WHERE name='admin'--"; q="\074img src=x \157nerror=alert(1)\076""#,
        );
        assert_eq!(
            got,
            [
                (
                    "id",
                    "1';UPDATE users SET password='x' WHERE name='admin'--".to_string()
                ),
                ("q", "<img src=x onerror=alert(1)>".to_string()),
            ]
        );
        assert_eq!(
            quoted_cookies(r#"t="\173\1737*7\175\175""#),
            [("t", "{{7*7}}".to_string())]
        );
        // An escaped quote does not end the value.
        assert_eq!(
            quoted_cookies(r#"a="x\";y"; b=1"#),
            [("a", "x\";y".to_string())]
        );
    }

    #[test]
    fn node_takes_quotes_off_and_reads_j_colon_as_json() {
        assert_eq!(unquoted(r#""admin' #""#), Some("admin' #"));
        assert_eq!(unquoted(r#""admin' #"#), Some("admin' "));
        assert_eq!(unquoted("\"caf\u{e9}"), Some("caf"));
        assert_eq!(unquoted("\""), None);
        assert_eq!(unquoted("plain"), None);
        assert_eq!(
            json_cookie("j:%7B%22%5Cu0024ne%22:null%7D").as_deref(),
            Some(r#"{"\u0024ne":null}"#)
        );
        assert_eq!(json_cookie(r#""j:[1]""#).as_deref(), Some("[1]"));
        assert_eq!(json_cookie("j:a+b").as_deref(), Some("a+b"));
        assert_eq!(json_cookie("jx:1"), None);
        assert_eq!(json_cookie("abc"), None);
    }

    #[test]
    fn ordinary_cookies_read_the_same_either_way() {
        assert!(quoted_cookies("sid=abc; theme=dark; consent=\"yes\"").is_empty());
        assert!(quoted_cookies("a=1;;b; =2; c=\"unterminated;d=4").is_empty());
        assert!(quoted_cookies("").is_empty());
    }
}
