//! The text of a body: UTF-8, or UTF-16 and UTF-32 when the body says so.
//!
//! JSON parsers in Python (`json.loads` on bytes, Flask's `get_json`) and Java (Jackson) detect
//! UTF-16 and UTF-32 by themselves, from a byte order mark or from where the NUL bytes fall in
//! the first four bytes (RFC 4627, section 3). Read as UTF-8, such a body is text with a NUL
//! after every character, which hides its `\uXXXX` escapes from the decoders; it is read as
//! those parsers read it instead.
//!
//! XML parsers (the JDK's, libxml2) also detect EBCDIC from a document's first bytes, `<?xm` in
//! code page 037; such a body is read in that code page, whose letters, digits and markup
//! characters the other EBCDIC pages share, so its declaration and markup are seen.

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

/// `<?xm` in EBCDIC: the start of an XML document an XML parser reads as EBCDIC.
const EBCDIC_XML: [u8; 4] = [0x4C, 0x6F, 0xA7, 0x94];

/// Code page 037 (EBCDIC, US and Canada), byte by byte; controls other than tab, CR and the two
/// line feeds are U+FFFD.
#[rustfmt::skip]
const CP037: [char; 256] = [
    '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\t', '\u{fffd}', '\u{fffd}',
    '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\r', '\u{fffd}', '\u{fffd}',
    '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\n', '\u{fffd}', '\u{fffd}',
    '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}',
    '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\n', '\u{fffd}', '\u{fffd}',
    '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}',
    '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}',
    '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}', '\u{fffd}',
    ' ', '\u{a0}', '\u{e2}', '\u{e4}', '\u{e0}', '\u{e1}', '\u{e3}', '\u{e5}',
    '\u{e7}', '\u{f1}', '\u{a2}', '.', '<', '(', '+', '|',
    '&', '\u{e9}', '\u{ea}', '\u{eb}', '\u{e8}', '\u{ed}', '\u{ee}', '\u{ef}',
    '\u{ec}', '\u{df}', '!', '$', '*', ')', ';', '\u{ac}',
    '-', '/', '\u{c2}', '\u{c4}', '\u{c0}', '\u{c1}', '\u{c3}', '\u{c5}',
    '\u{c7}', '\u{d1}', '\u{a6}', ',', '%', '_', '>', '?',
    '\u{f8}', '\u{c9}', '\u{ca}', '\u{cb}', '\u{c8}', '\u{cd}', '\u{ce}', '\u{cf}',
    '\u{cc}', '`', ':', '#', '@', '\'', '=', '"',
    '\u{d8}', 'a', 'b', 'c', 'd', 'e', 'f', 'g',
    'h', 'i', '\u{ab}', '\u{bb}', '\u{f0}', '\u{fd}', '\u{fe}', '\u{b1}',
    '\u{b0}', 'j', 'k', 'l', 'm', 'n', 'o', 'p',
    'q', 'r', '\u{aa}', '\u{ba}', '\u{e6}', '\u{b8}', '\u{c6}', '\u{a4}',
    '\u{b5}', '~', 's', 't', 'u', 'v', 'w', 'x',
    'y', 'z', '\u{a1}', '\u{bf}', '\u{d0}', '\u{dd}', '\u{de}', '\u{ae}',
    '^', '\u{a3}', '\u{a5}', '\u{b7}', '\u{a9}', '\u{a7}', '\u{b6}', '\u{bc}',
    '\u{bd}', '\u{be}', '[', ']', '\u{af}', '\u{a8}', '\u{b4}', '\u{d7}',
    '{', 'A', 'B', 'C', 'D', 'E', 'F', 'G',
    'H', 'I', '\u{ad}', '\u{f4}', '\u{f6}', '\u{f2}', '\u{f3}', '\u{f5}',
    '}', 'J', 'K', 'L', 'M', 'N', 'O', 'P',
    'Q', 'R', '\u{b9}', '\u{fb}', '\u{fc}', '\u{f9}', '\u{fa}', '\u{ff}',
    '\\', '\u{f7}', 'S', 'T', 'U', 'V', 'W', 'X',
    'Y', 'Z', '\u{b2}', '\u{d4}', '\u{d6}', '\u{d2}', '\u{d3}', '\u{d5}',
    '0', '1', '2', '3', '4', '5', '6', '7',
    '8', '9', '\u{b3}', '\u{db}', '\u{dc}', '\u{d9}', '\u{da}', '\u{fffd}',
];

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
    if raw.starts_with(&EBCDIC_XML) {
        return Cow::Owned(raw.iter().map(|b| CP037[*b as usize]).collect());
    }
    let detected = from_bom(raw).or_else(|| {
        let declared = content_type
            .and_then(charset)
            .is_some_and(|c| c.starts_with("utf-16") || c.starts_with("utf-32"));
        let kind = body_kind(content_type);
        if declared || kind == BodyKind::Json || kind == BodyKind::Xml {
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
    fn ebcdic_xml_is_read_in_code_page_037() {
        let doc = "<?xml version=\"1.0\" encoding=\"IBM037\"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>{&x;} [a|b] ~`^_$#@!</r>";
        // Encoded byte by byte through the table itself: every character of `doc` is in it.
        let ebcdic: Vec<u8> = doc
            .chars()
            .map(|c| CP037.iter().position(|t| *t == c).unwrap() as u8)
            .collect();
        assert!(ebcdic.starts_with(&EBCDIC_XML));
        assert_eq!(body_text(Some("application/xml"), &ebcdic), doc);
        assert_eq!(body_text(Some("text/plain"), &ebcdic), doc);
        // Letters and digits where EBCDIC keeps them.
        assert_eq!(CP037[0xC1], 'A');
        assert_eq!(CP037[0x81], 'a');
        assert_eq!(CP037[0xF0], '0');
        // A UTF-16 XML body without a byte order mark is read as UTF-16 too.
        let utf16: Vec<u8> = "<?xml version=\"1.0\"?><r>x</r>"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(
            body_text(Some("text/xml"), &utf16),
            "<?xml version=\"1.0\"?><r>x</r>"
        );
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
