//! The decoding transforms: URL, HTML entity, JavaScript escape and base64 decoding.

use super::*;

pub(super) fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// How many times the URL decoders decode a value that a round changed.
const DECODE_ROUNDS: usize = 3;

/// Percent-decoding as application servers do it, including IIS's `%uXXXX`, repeated while a
/// round changes the text (up to [`DECODE_ROUNDS`]): an application or a framework that decodes
/// a second time turns `%253Cscript%253E` into `<script>`, so the rules must see it that way too.
pub fn url_decode(s: &str) -> Option<String> {
    decode_rounds(s, true)
}

/// Percent-decoding that leaves `+` alone, repeated like [`url_decode`].
pub fn percent_decode(s: &str) -> Option<String> {
    decode_rounds(s, false)
}

/// One round of [`percent_decode`], as JavaScript's `decodeURIComponent` decodes.
pub fn percent_decode_once(s: &str) -> Option<String> {
    decode(s, false)
}

/// One round of [`url_decode`], as a server decodes a form or query string.
pub fn url_decode_once(s: &str) -> Option<String> {
    decode(s, true)
}

fn decode_rounds(s: &str, plus_is_space: bool) -> Option<String> {
    let mut out = decode(s, plus_is_space)?;
    for _ in 1..DECODE_ROUNDS {
        // Later rounds read `+` as the first did: what was sent as `%2B` is a space to an
        // application that decodes twice, as `;cat%2B%2Fetc%2Fpasswd` means.
        match decode(&out, plus_is_space) {
            Some(next) if next != out => out = next,
            _ => break,
        }
    }
    Some(out)
}

pub(super) fn decode(s: &str, plus_is_space: bool) -> Option<String> {
    if !s.bytes().any(|b| b == b'%' || (plus_is_space && b == b'+')) {
        return None;
    }
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                if i + 2 < b.len() {
                    if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                        out.push(h << 4 | l);
                        i += 3;
                        continue;
                    }
                }
                if i + 5 < b.len() && (b[i + 1] == b'u' || b[i + 1] == b'U') {
                    let digits = &b[i + 2..i + 6];
                    if digits.iter().all(|d| hex(*d).is_some()) {
                        let v = digits
                            .iter()
                            .fold(0u32, |acc, d| acc << 4 | u32::from(hex(*d).unwrap_or(0)));
                        let c = char::from_u32(v).unwrap_or('\u{fffd}');
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        i += 6;
                        continue;
                    }
                }
                out.push(b'%');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&fold_overlong_utf8(out)).into_owned())
}

/// Replaces overlong UTF-8 encodings of ASCII (`C0 AE` for `.`, `E0 80 AF` for `/`), which some
/// servers decode and attackers use to hide traversals.
pub(super) fn fold_overlong_utf8(b: Vec<u8>) -> Vec<u8> {
    if !b.iter().any(|&x| x == 0xC0 || x == 0xC1 || x == 0xE0) {
        return b;
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let cont = |x: u8| (0x80..=0xBF).contains(&x);
        match b[i] {
            0xC0 | 0xC1 if i + 1 < b.len() && cont(b[i + 1]) => {
                out.push(((b[i] & 0x1F) << 6) | (b[i + 1] & 0x3F));
                i += 2;
            }
            0xE0 if i + 2 < b.len() && (0x80..=0x81).contains(&b[i + 1]) && cont(b[i + 2]) => {
                out.push(((b[i + 1] & 0x3F) << 6) | (b[i + 2] & 0x3F));
                i += 3;
            }
            x => {
                out.push(x);
                i += 1;
            }
        }
    }
    out
}

pub(super) const NAMED_ENTITIES: &[(&str, char)] = &[
    ("lt", '<'),
    ("gt", '>'),
    ("amp", '&'),
    ("quot", '"'),
    ("apos", '\''),
    ("nbsp", ' '),
    ("colon", ':'),
    ("semi", ';'),
    ("lpar", '('),
    ("rpar", ')'),
    ("sol", '/'),
    ("bsol", '\\'),
    ("tab", '\t'),
    ("newline", '\n'),
    ("grave", '`'),
    ("equals", '='),
    ("period", '.'),
    ("comma", ','),
    ("excl", '!'),
    ("num", '#'),
    ("percnt", '%'),
    ("lsqb", '['),
    ("rsqb", ']'),
    ("lbrack", '['),
    ("rbrack", ']'),
    ("lcub", '{'),
    ("rcub", '}'),
    ("lbrace", '{'),
    ("rbrace", '}'),
    ("quest", '?'),
    ("commat", '@'),
    ("lowbar", '_'),
    ("plus", '+'),
    ("ast", '*'),
    ("verbar", '|'),
    ("vert", '|'),
    ("hat", '^'),
    ("dollar", '$'),
    ("apos", '\''),
];

/// HTML character references, numeric (with or without `;`) and the common named ones.
pub fn html_entity_decode(s: &str) -> Option<String> {
    if !s.contains('&') {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some((c, used)) = decode_entity(after) {
            out.push(c);
            rest = &after[used..];
        } else {
            out.push('&');
            rest = after;
        }
    }
    out.push_str(rest);
    Some(out)
}

/// Decodes one entity at the start of `s` (after the `&`); returns the char and bytes used.
pub(super) fn decode_entity(s: &str) -> Option<(char, usize)> {
    let b = s.as_bytes();
    if b.first() == Some(&b'#') {
        let (radix, start) = match b.get(1) {
            Some(b'x') | Some(b'X') => (16, 2),
            _ => (10, 1),
        };
        let digits = s[start..]
            .bytes()
            .take_while(|c| c.is_ascii_hexdigit() && (radix == 16 || c.is_ascii_digit()))
            .count();
        // Leading zeros are allowed, any number of them; what follows must fit a char.
        let significant = s[start..start + digits].trim_start_matches('0');
        if digits == 0 || significant.len() > 8 {
            return None;
        }
        let v = if significant.is_empty() {
            0
        } else {
            u32::from_str_radix(significant, radix).ok()?
        };
        let mut used = start + digits;
        if b.get(used) == Some(&b';') {
            used += 1;
        }
        return Some((char::from_u32(v).unwrap_or('\u{fffd}'), used));
    }
    let len = b
        .iter()
        .take(10)
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    if len == 0 {
        return None;
    }
    let name = s[..len].to_ascii_lowercase();
    let c = NAMED_ENTITIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)?;
    let used = if b.get(len) == Some(&b';') {
        len + 1
    } else {
        len
    };
    Some((c, used))
}

/// JavaScript string escapes.
pub fn js_decode(s: &str) -> Option<String> {
    if !s.contains('\\') {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let hexval = |cs: &[char]| -> Option<u32> {
        if cs.is_empty() {
            return None;
        }
        let mut v = 0u32;
        for c in cs {
            v = v.checked_mul(16)? + c.to_digit(16)?;
        }
        Some(v)
    };
    while i < chars.len() {
        let c = chars[i];
        if c != '\\' || i + 1 >= chars.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let n = chars[i + 1];
        match n {
            'x' | 'X' => match chars.get(i + 2..i + 4).and_then(hexval) {
                Some(v) => {
                    out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                    i += 4;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            },
            'u' | 'U' => {
                if chars.get(i + 2) == Some(&'{') {
                    // At most six digits fit a char: the brace is looked for no further, so a
                    // value of many unclosed `\u{` stays linear.
                    let end = chars[i + 3..].iter().take(7).position(|c| *c == '}');
                    match end.and_then(|e| hexval(&chars[i + 3..i + 3 + e]).map(|v| (v, e))) {
                        Some((v, e)) if (1..=6).contains(&e) => {
                            out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                            i += 4 + e;
                        }
                        _ => {
                            out.push(c);
                            i += 1;
                        }
                    }
                } else {
                    // `\U` with eight digits (YAML, TOML, Python and Go literals) before `\u`/`\U`
                    // with four: read as four, `\U00000027` would be a NUL and leftover digits.
                    let eight = (n == 'U')
                        .then(|| chars.get(i + 2..i + 10).and_then(hexval))
                        .flatten();
                    if let Some(v) = eight {
                        out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                        i += 10;
                        continue;
                    }
                    match chars.get(i + 2..i + 6).and_then(hexval) {
                        Some(v) => {
                            out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                            i += 6;
                        }
                        None => {
                            out.push(c);
                            i += 1;
                        }
                    }
                }
            }
            '\\' | '/' | '\'' | '"' | '`' => {
                out.push(n);
                i += 2;
            }
            '\n' | '\r' => {
                // A line continuation (JavaScript, JSON5, YAML and TOML strings): the backslash
                // and line break are dropped, and with them the indent YAML and TOML drop after it.
                i += 2;
                if n == '\r' && chars.get(i) == Some(&'\n') {
                    i += 1;
                }
                while matches!(chars.get(i), Some(' ' | '\t')) {
                    i += 1;
                }
            }
            _ => {
                // Not an escape that encodes a character (`\n`, `\w`, a Windows path): kept as is.
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Decodes `s` (a leading `/` ignored) when all of it is base64 (standard or URL-safe, padding optional) of at least
/// four characters and the result is UTF-8 text with few control characters.
pub fn base64_decode(s: &str) -> Option<String> {
    // A path segment can carry base64 too (`/e3s3Kjd9fQ`).
    let t = s.trim().trim_start_matches('/');
    // Fewer than 8 characters decode to at most 6 bytes: nothing worth inspecting.
    if t.len() < 8 {
        return None;
    }
    // Form and query decoding turn a `+` of base64 into a space, so spaces count as `+`.
    let valid =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'=' | b' ');
    if !t.bytes().all(valid) {
        return None;
    }
    let unpadded = t.trim_end_matches('=');
    if unpadded.contains('=') || unpadded.len() % 4 == 1 {
        return None;
    }
    let normalised: String = unpadded
        .chars()
        .map(|c| match c {
            '-' | ' ' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(normalised.as_bytes())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let total = text.chars().count();
    let printable = text
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        .count();
    // Ordinary words are often valid base64 too; they decode to binary, not text.
    if total == 0 || printable * 10 < total * 9 {
        return None;
    }
    Some(text)
}
