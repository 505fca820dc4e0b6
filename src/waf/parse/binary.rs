//! Bodies no parser reads, inspected whole: text as one `body` value; binary data (an image, an
//! archive, protobuf) as one `binary_body` value and its runs of text as `body_text` values.

use std::borrow::Cow;

use crate::waf::target::{Item, TargetKind};

/// Shortest run of text kept from a binary body. Random bytes hold runs of printable characters
/// by chance (a 64 KiB image has about a dozen of eight or more); code hidden in a file (a script
/// appended to an image) is longer than that.
const MIN_TEXT_RUN: usize = 8;
/// Runs kept one by one; past these, the remaining runs make one value, so a crafted body cannot
/// make thousands of items.
const MAX_TEXT_RUNS: usize = 64;

/// Not text: a byte that was not UTF-8 (decoded to U+FFFD) or a control character other than
/// whitespace and NUL. NUL is half of UTF-16 text, which some backends decode (a byte order
/// mark, or JSON's encoding detection), so it must not make such a body binary.
fn binary_char(c: char) -> bool {
    c == char::REPLACEMENT_CHARACTER || (c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\0'))
}

/// Whether a body is binary data (an image, an archive, protobuf): at least four characters,
/// and one in twenty, are not text. Forms, JSON, XML, prose and code have next to none, and
/// JSON and XML allow no raw control characters at all.
///
/// A body that opens like JSON is text whatever else it holds: some JSON decoders (Go's, for
/// one) ignore the Content-Type and take bytes that are not UTF-8 inside strings, so padding an
/// attack with such bytes must not move it out of the text rules' sight.
fn is_binary(body: &str) -> bool {
    // Past a byte order mark (two or four bytes that are not UTF-8, or U+FEFF) and whitespace,
    // UTF-16 and UTF-32 included.
    let mut t = body;
    for _ in 0..2 {
        t = t.strip_prefix(char::REPLACEMENT_CHARACTER).unwrap_or(t);
    }
    let t = t.trim_start_matches(|c: char| c.is_whitespace() || c == '\0' || c == '\u{feff}');
    if t.starts_with(['{', '[']) {
        return false;
    }
    let (mut chars, mut binary) = (0usize, 0usize);
    for c in body.chars() {
        chars += 1;
        binary += usize::from(binary_char(c));
    }
    binary >= 4 && binary * 20 >= chars
}

/// A body whose content type names a text format the parsers read (multipart, JSON, XML) but
/// that did not parse as one: one `body` value, read by every text rule even when it looks
/// binary. A backend may still read fields out of it, and bytes that are not text (a small
/// image part, control characters) would otherwise move the attack beside them out of the text
/// rules' sight.
pub(super) fn whole_text<'a>(body: &'a str, out: &mut Vec<Item<'a>>) {
    out.push(Item {
        kind: TargetKind::Body,
        name: Cow::Borrowed(""),
        value: Cow::Borrowed(body),
    });
}

/// A body inspected as a whole. Text is one `body` value. Binary data is one `binary_body`
/// value, and each run of [`MIN_TEXT_RUN`] or more text characters in it is a `body_text`
/// value: text rules read over random bytes find markup, quotes and shell syntax in them by
/// chance, and libinjection reads the XMP metadata most photos carry as markup, so those rules
/// stay off binary data, while the rules that find code hidden in a file look at its text.
pub(super) fn whole_body<'a>(body: &'a str, out: &mut Vec<Item<'a>>) {
    let item = |kind, value| Item {
        kind,
        name: Cow::Borrowed(""),
        value,
    };
    if !is_binary(body) {
        out.push(item(TargetKind::Body, Cow::Borrowed(body)));
        return;
    }
    out.push(item(TargetKind::BinaryBody, Cow::Borrowed(body)));
    let mut runs = 0;
    let mut rest = String::new();
    let mut end_run = |run: &'a str, out: &mut Vec<Item<'a>>| {
        if runs < MAX_TEXT_RUNS {
            out.push(item(TargetKind::BodyText, Cow::Borrowed(run)));
            runs += 1;
        } else {
            rest.push_str(run);
            rest.push('\n');
        }
    };
    let (mut start, mut len) = (None, 0);
    for (i, c) in body.char_indices() {
        // NUL ends a run too: zero padding is most of some formats.
        if binary_char(c) || c == '\0' {
            if let Some(from) = start.take() {
                if len >= MIN_TEXT_RUN {
                    end_run(&body[from..i], out);
                }
            }
            len = 0;
        } else {
            start.get_or_insert(i);
            len += 1;
        }
    }
    if let Some(from) = start {
        if len >= MIN_TEXT_RUN {
            end_run(&body[from..], out);
        }
    }
    if !rest.is_empty() {
        out.push(item(TargetKind::BodyText, Cow::Owned(rest)));
    }
}

#[cfg(test)]
mod tests {
    use super::super::{body_items, ParseLimits};
    use super::*;

    #[test]
    fn binary_bodies_are_one_binary_value_and_their_runs_of_text() {
        let lim = ParseLimits::default();
        let items = |ct: &str, body: &str| {
            let mut out = Vec::new();
            body_items(Some(ct), body, &lim, &mut out).unwrap();
            out.iter()
                .map(|i| (i.kind, i.value.to_string()))
                .collect::<Vec<_>>()
        };
        // Text is one `body` value, whatever the label says.
        assert_eq!(
            items("text/plain", "hello\tworld\r\n"),
            [(TargetKind::Body, "hello\tworld\r\n".to_string())]
        );
        // An image: the whole, then each run of eight or more text characters.
        let png = "\u{89}PNG\r\n\u{1a}\n\0\0\0\rIHDR\0\0\0\u{80}\u{fffd}\u{fffd}x\0<?php system($_GET[c]); ?>\0\u{2}ab\u{fffd}";
        assert_eq!(
            items("image/png", png),
            [
                (TargetKind::BinaryBody, png.to_string()),
                (
                    TargetKind::BodyText,
                    "<?php system($_GET[c]); ?>".to_string()
                ),
            ]
        );
        // A body that opens like JSON stays text, padding or not.
        let padded = "{\"q\":\"x\",\"pad\":\"\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\"}";
        assert_eq!(
            items("image/png", padded),
            [(TargetKind::Body, padded.to_string())]
        );
        // UTF-16 text: half NULs, still text (rules remove the NULs).
        let utf16 = "\u{fffd}\u{fffd}<\0s\0c\0r\0i\0p\0t\0>\0";
        assert_eq!(
            items("text/plain", utf16),
            [(TargetKind::Body, utf16.to_string())]
        );
        // JSON in UTF-16 opens like JSON once its NULs are passed, whatever padding follows.
        let json16 = format!(
            "\u{fffd}\u{fffd}{{\0\"\0q\0\"\0:\0{}",
            "\u{fffd}\u{1}".repeat(50)
        );
        assert_eq!(items("application/json", &json16)[0].0, TargetKind::Body);
        // A few stray control characters in text do not make it binary.
        let mostly_text = format!("{}\0\0\0\0", "word ".repeat(20));
        assert_eq!(items("text/plain", &mostly_text)[0].0, TargetKind::Body);
        // Past 64 runs, the rest make one value: a crafted body cannot make thousands of items.
        let many = "abcdefgh\u{1}".repeat(1000);
        let out = items("application/octet-stream", &many);
        assert_eq!(out.len(), 1 + 64 + 1);
        assert_eq!(out[64].1, "abcdefgh");
        assert_eq!(out[65].1, "abcdefgh\n".repeat(1000 - 64));
    }
}
