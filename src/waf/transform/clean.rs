//! Transforms that clean text rather than decode it: case, paths, whitespace, controls,
//! comments, Unicode forms and command-line quoting.

use unicode_normalization::UnicodeNormalization;

pub(super) fn lowercase(s: &str) -> Option<String> {
    if s.bytes().any(|b| b.is_ascii_uppercase())
        || (!s.is_ascii() && s.chars().any(char::is_uppercase))
    {
        Some(s.to_lowercase())
    } else {
        None
    }
}

pub(super) fn normalize_path(s: &str) -> Option<String> {
    if !(s.contains('\\') || s.contains("//") || s.contains("/.")) {
        return None;
    }
    let unified = s.replace('\\', "/");
    let absolute = unified.starts_with('/');
    let trailing = unified.ends_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in unified.split('/') {
        match seg {
            "" | "." => {}
            ".." => match out.last() {
                Some(&last) if last != ".." => {
                    out.pop();
                }
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    let mut r = String::with_capacity(unified.len());
    if absolute {
        r.push('/');
    }
    r.push_str(&out.join("/"));
    if trailing && !r.ends_with('/') {
        r.push('/');
    }
    Some(r)
}

pub(super) fn compress_whitespace(s: &str) -> Option<String> {
    let mut prev_ws = false;
    let needs = s.chars().any(|c| {
        let ws = c.is_whitespace();
        let hit = ws && (prev_ws || c != ' ');
        prev_ws = ws;
        hit
    });
    if !needs {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut prev_ws = false;
    for c in s.chars() {
        if c.is_whitespace() {
            if !prev_ws {
                out.push(' ');
            }
            prev_ws = true;
        } else {
            out.push(c);
            prev_ws = false;
        }
    }
    Some(out)
}

pub(super) fn filter_chars(s: &str, keep: impl Fn(char) -> bool) -> Option<String> {
    if s.chars().all(&keep) {
        None
    } else {
        Some(s.chars().filter(|c| keep(*c)).collect())
    }
}

pub(super) fn comments(s: &str, replacement: &str) -> Option<String> {
    if !(s.contains("/*") || s.contains("<!--")) {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    // Offsets into `s`. The next opener of each kind is searched again only once the scan has
    // passed it (an absent one stays absent): searching both from every comment would make a
    // value of many `/**/` and no `<!--` quadratic.
    let mut at = 0;
    let mut next_c = s.find("/*");
    let mut next_h = s.find("<!--");
    loop {
        if next_c.is_some_and(|c| c < at) {
            next_c = s[at..].find("/*").map(|c| c + at);
        }
        if next_h.is_some_and(|h| h < at) {
            next_h = s[at..].find("<!--").map(|h| h + at);
        }
        let (start, open, close) = match (next_c, next_h) {
            (Some(c), Some(h)) if h < c => (h, "<!--", "-->"),
            (Some(c), _) => (c, "/*", "*/"),
            (None, Some(h)) => (h, "<!--", "-->"),
            (None, None) => break,
        };
        out.push_str(&s[at..start]);
        out.push_str(replacement);
        let body = start + open.len();
        match s[body..].find(close) {
            Some(e) => at = body + e + close.len(),
            None => {
                at = s.len();
                break;
            }
        }
    }
    out.push_str(&s[at..]);
    Some(out)
}

/// Invisible formatting characters that split words without showing (zero-width, direction
/// marks and overrides, byte-order mark, soft hyphen).
fn invisible(c: char) -> bool {
    matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

pub(super) fn unicode_normalize(s: &str) -> Option<String> {
    if s.is_ascii() {
        return None;
    }
    let n: String = s
        .nfkc()
        .filter(|c| !invisible(*c))
        .map(|c| match c {
            // Slash and backslash look-alikes that NFKC leaves alone.
            '\u{2215}' | '\u{2044}' | '\u{29F8}' | '\u{1735}' => '/',
            '\u{2216}' | '\u{29F9}' => '\\',
            c => c,
        })
        .collect();
    if n == s {
        None
    } else {
        Some(n)
    }
}

pub(super) fn cmdline(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.chars() {
        match c {
            '\\' | '\'' | '"' | '^' => {}
            ',' | ';' => pending_space = true,
            c if c.is_whitespace() => pending_space = true,
            '/' | '(' => {
                pending_space = false;
                out.push(c);
            }
            c => {
                if pending_space && !out.is_empty() {
                    out.push(' ');
                }
                pending_space = false;
                out.extend(c.to_lowercase());
            }
        }
    }
    if out == s {
        None
    } else {
        Some(out)
    }
}
