//! The text of a body: UTF-8, or UTF-16 and UTF-32 when the body says so.
//!
//! JSON parsers in Python (`json.loads` on bytes, Flask's `get_json`) and Java (Jackson) detect
//! UTF-16 and UTF-32 by themselves, from a byte order mark or from where the NUL bytes fall in
//! the first four bytes (RFC 4627, section 3). Read as UTF-8, such a body is text with a NUL
//! after every character, which hides its `\uXXXX` escapes from the decoders; it is read as
//! those parsers read it instead.

use std::borrow::Cow;

use super::{body_kind, BodyKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unicode {
    Utf16Le,
    Utf16Be,
    Utf32Le,
    Utf32Be,
}

/// The encoding a byte order mark names, and the length of the mark.
fn from_bom(b: &[u8]) -> Option<(Unicode, usize)> {
    match b {
        [0xFF, 0xFE, 0, 0, ..] => Some((Unicode::Utf32Le, 4)),
        [0, 0, 0xFE, 0xFF, ..] => Some((Unicode::Utf32Be, 4)),
        [0xFF, 0xFE, ..] => Some((Unicode::Utf16Le, 2)),
        [0xFE, 0xFF, ..] => Some((Unicode::Utf16Be, 2)),
        _ => None,
    }
}

/// The encoding the NUL bytes among the first four show, as RFC 4627 tells JSON's apart.
fn from_nuls(b: &[u8]) -> Option<Unicode> {
    match b {
        [0, 0, 0, x, ..] if *x != 0 => Some(Unicode::Utf32Be),
        [x, 0, 0, 0, ..] if *x != 0 => Some(Unicode::Utf32Le),
        [0, x, 0, y, ..] if *x != 0 && *y != 0 => Some(Unicode::Utf16Be),
        [x, 0, y, 0, ..] if *x != 0 && *y != 0 => Some(Unicode::Utf16Le),
        _ => None,
    }
}

/// The `charset` parameter of a content type, lower case.
fn charset(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches(['"', '\'']).to_ascii_lowercase())
    })
}

fn decode(b: &[u8], enc: Unicode) -> String {
    match enc {
        Unicode::Utf16Le | Unicode::Utf16Be => {
            let units = b.chunks_exact(2).map(|c| match enc {
                Unicode::Utf16Le => u16::from_le_bytes([c[0], c[1]]),
                _ => u16::from_be_bytes([c[0], c[1]]),
            });
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        }
        Unicode::Utf32Le | Unicode::Utf32Be => b
            .chunks_exact(4)
            .map(|c| {
                let v = match enc {
                    Unicode::Utf32Le => u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                    _ => u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                };
                char::from_u32(v).unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect(),
    }
}

/// The text of a body. A byte order mark of UTF-16 or UTF-32 is followed whatever the content
/// type; without one, a JSON body, or one whose `charset` names UTF-16 or UTF-32, is read in the
/// encoding its first four bytes show. Anything else is UTF-8, with bytes that are not UTF-8
/// replaced.
pub fn body_text<'a>(content_type: Option<&str>, raw: &'a [u8]) -> Cow<'a, str> {
    let detected = from_bom(raw).or_else(|| {
        let declared = content_type
            .and_then(charset)
            .is_some_and(|c| c.starts_with("utf-16") || c.starts_with("utf-32"));
        if declared || body_kind(content_type) == BodyKind::Json {
            from_nuls(raw).map(|e| (e, 0))
        } else {
            None
        }
    });
    match detected {
        Some((enc, skip)) => Cow::Owned(decode(&raw[skip..], enc)),
        None => String::from_utf8_lossy(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn utf16_and_utf32_json_is_read_as_json_parsers_read_it() {
        let json = r#"{"q":"\u0027 union select"}"#;
        let le = utf16le(json);
        assert_eq!(body_text(Some("application/json"), &le), json);
        let be: Vec<u8> = json.encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert_eq!(body_text(Some("application/vnd.api+json"), &be), json);
        let le32: Vec<u8> = json
            .chars()
            .flat_map(|c| (c as u32).to_le_bytes())
            .collect();
        assert_eq!(body_text(Some("application/json"), &le32), json);
        let be32: Vec<u8> = json
            .chars()
            .flat_map(|c| (c as u32).to_be_bytes())
            .collect();
        assert_eq!(body_text(Some("application/json"), &be32), json);
        // A byte order mark counts whatever the content type.
        let mut bom = vec![0xFF, 0xFE];
        bom.extend(utf16le("<q>x</q>"));
        assert_eq!(body_text(Some("text/xml"), &bom), "<q>x</q>");
        // A declared charset counts without one.
        assert_eq!(
            body_text(
                Some("text/plain; charset=\"UTF-16LE\""),
                &utf16le("hi there")
            ),
            "hi there"
        );
    }

    #[test]
    fn other_bodies_stay_utf8() {
        // The NUL pattern alone does not make a form or an upload UTF-16.
        let le = utf16le("a=b");
        assert_eq!(
            body_text(Some("application/x-www-form-urlencoded"), &le),
            "a\0=\0b\0"
        );
        assert_eq!(body_text(None, b"plain \xff"), "plain \u{fffd}");
        assert_eq!(
            body_text(Some("application/json"), b"{\"a\":1}"),
            "{\"a\":1}"
        );
        assert!(matches!(
            body_text(Some("application/json"), b"{}"),
            Cow::Borrowed(_)
        ));
        // Too short to tell.
        assert_eq!(body_text(Some("application/json"), b"1\0"), "1\0");
    }
}
