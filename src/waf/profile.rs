//! What kinds of bytes a text holds, so transform chains skip steps that cannot change it.

use super::transform::{Transform, NAMES};

/// Byte classes a text contains, found in one pass, so a chain can skip every transform that
/// cannot change the text without scanning it again: most values hold no `%`, `&` or `\\`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Profile(u32);

const PERCENT: u32 = 1;
const PLUS: u32 = 1 << 1;
const AMP: u32 = 1 << 2;
const BACKSLASH: u32 = 1 << 3;
const UPPER: u32 = 1 << 4;
const NON_ASCII: u32 = 1 << 5;
const SLASH: u32 = 1 << 6;
const SPACE: u32 = 1 << 7;
/// Tab, LF, vertical tab, form feed, CR.
const OTHER_WS: u32 = 1 << 8;
const NUL: u32 = 1 << 9;
/// C0 controls and DEL (including NUL and the whitespace controls).
const CONTROL: u32 = 1 << 10;
const STAR: u32 = 1 << 11;
const LT: u32 = 1 << 12;
const BANG: u32 = 1 << 13;
/// `'`, `"`, `^`, `,`, `;`: what `cmdline` removes or turns into spaces.
const SHELL: u32 = 1 << 14;
/// ASCII bytes that cannot occur in (trimmed, space-tolerant) base64.
const NOT_BASE64: u32 = 1 << 15;

const fn byte_class(b: u8) -> u32 {
    let mut c = 0;
    if b >= 0x80 {
        return NON_ASCII;
    }
    if b < 0x20 || b == 0x7f {
        c |= CONTROL;
    }
    match b {
        b'%' => c |= PERCENT,
        b'+' => c |= PLUS,
        b'&' => c |= AMP,
        b'\\' => c |= BACKSLASH,
        b'A'..=b'Z' => c |= UPPER,
        b'/' => c |= SLASH,
        b' ' => c |= SPACE,
        b'\t' | b'\n' | 0x0b | 0x0c | b'\r' => c |= OTHER_WS,
        0 => c |= NUL,
        b'*' => c |= STAR,
        b'<' => c |= LT,
        b'!' => c |= BANG,
        b'\'' | b'"' | b'^' | b',' | b';' => c |= SHELL,
        _ => {}
    }
    let base64 = b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'+' | b'/' | b'-' | b'_' | b'=' | b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'
        );
    if !base64 {
        c |= NOT_BASE64;
    }
    c
}

const CLASSES: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = byte_class(i as u8);
        i += 1;
    }
    t
};

impl Profile {
    /// The profile of `s`.
    pub fn of(s: &str) -> Profile {
        Profile(s.bytes().fold(0, |acc, b| acc | CLASSES[b as usize]))
    }

    fn any(self, classes: u32) -> bool {
        self.0 & classes != 0
    }
}

/// Classes of which a text must hold at least one for transform `t` to change it; 0 for the
/// transforms whose test is not of that shape (see [`Profile::changeable`]).
const fn needs(t: Transform) -> u32 {
    match t {
        Transform::UrlDecode => PERCENT | PLUS,
        Transform::PercentDecode => PERCENT,
        Transform::HtmlEntityDecode => AMP,
        Transform::JsDecode => BACKSLASH,
        Transform::Lowercase => UPPER | NON_ASCII,
        Transform::NormalizePath => SLASH | BACKSLASH,
        Transform::CompressWhitespace | Transform::RemoveWhitespace | Transform::Trim => {
            SPACE | OTHER_WS | NON_ASCII
        }
        Transform::RemoveNulls => NUL,
        Transform::RemoveControls => CONTROL,
        Transform::UnicodeNormalize => NON_ASCII,
        Transform::CmdLine => BACKSLASH | SHELL | SPACE | OTHER_WS | UPPER | NON_ASCII,
        Transform::RemoveComments | Transform::ReplaceComments | Transform::Base64Decode => 0,
    }
}

/// [`needs`] per transform, by `t as usize`.
const NEEDS: [u32; Transform::COUNT] = {
    let mut table = [0; Transform::COUNT];
    let mut i = 0;
    while i < NAMES.len() {
        let t = NAMES[i].1;
        table[t as usize] = needs(t);
        i += 1;
    }
    table
};

const COMMENTS: u32 =
    1 << Transform::RemoveComments as usize | 1 << Transform::ReplaceComments as usize;

impl Profile {
    /// The transforms (bit `t as usize`) that can change a text with this profile and length
    /// `len`; a transform outside it is known to return the text unchanged. Computed once per
    /// text, so a chain step that cannot apply costs a bit test.
    pub fn changeable(self, len: usize) -> u32 {
        const _: () = assert!(Transform::COUNT <= 32);
        let mut m = 0;
        for (t, need) in NEEDS.iter().enumerate() {
            if self.any(*need) {
                m |= 1 << t;
            }
        }
        if (self.any(SLASH) && self.any(STAR)) || (self.any(LT) && self.any(BANG)) {
            m |= COMMENTS;
        }
        if len >= 8 && !self.any(NOT_BASE64) {
            m |= 1 << Transform::Base64Decode as usize;
        }
        m
    }
}

impl Transform {
    /// Whether the transform can change a text with profile `p` and length `len`; when this is
    /// false, [`Transform::transform`] is known to return the text unchanged.
    pub fn may_change(self, p: Profile, len: usize) -> bool {
        p.changeable(len) & 1 << self as usize != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::waf::transform::NAMES;

    /// Deterministic pseudo-random texts over the characters the transforms care about.
    fn texts() -> impl Iterator<Item = String> {
        const ALPHABET: &[&str] = &[
            "a", "Z", "0", "9", "%", "2", "5", "e", "+", "&", "#", ";", "x", "\\", "u", "/", ".",
            " ", "\t", "\n", "\r", "\0", "\x01", "\x7f", "*", "<", "!", "-", "'", "\"", "^", ",",
            "(", "=", "\u{e9}", "\u{ff21}", "\u{200b}", "\u{a0}", "lt", "amp",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..20_000).map(move |_| {
            let mut next = || {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (seed >> 33) as usize
            };
            let len = next() % 14;
            (0..len)
                .map(|_| ALPHABET[next() % ALPHABET.len()])
                .collect()
        })
    }

    #[test]
    fn a_transform_that_may_not_change_a_text_leaves_it_alone() {
        let mut skipped = 0;
        for s in texts() {
            let p = Profile::of(&s);
            for &(name, t) in NAMES {
                if !t.may_change(p, s.len()) {
                    skipped += 1;
                    let out = t.transform(&s);
                    assert!(
                        out.as_deref().is_none_or(|o| o == s),
                        "{name} changed {s:?} to {out:?} although its profile says it cannot"
                    );
                }
            }
        }
        // The check is only worth something if the profile does let transforms be skipped.
        assert!(skipped > 20_000, "only {skipped} skips");
    }

    #[test]
    fn plain_values_skip_the_decoders() {
        let p = Profile::of("hello world 42");
        assert!(!Transform::UrlDecode.may_change(p, 14));
        assert!(!Transform::HtmlEntityDecode.may_change(p, 14));
        assert!(!Transform::JsDecode.may_change(p, 14));
        assert!(!Transform::Lowercase.may_change(p, 14));
        assert!(Transform::CompressWhitespace.may_change(p, 14));
        assert!(Transform::UrlDecode.may_change(Profile::of("a%41"), 4));
        assert!(Transform::Base64Decode.may_change(Profile::of("aGVsbG8gd29ybGQ="), 16));
        assert!(!Transform::Base64Decode.may_change(Profile::of("a.b.c.d.e.f"), 11));
    }
}
