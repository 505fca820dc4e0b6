//! The head of a multipart part: its header lines and Content-Disposition parameters, and
//! which ways of writing them parsers read differently.

use super::boundary::rfc2231_value;

/// Whether a part's header name is not a plain token (`Content-Disposition\x01`,
/// `Content-Disposition `): parsers trim such names differently (Java's `trim` drops control
/// characters, Go refuses the line, others keep it), so which header the line is depends on the
/// parser.
pub(super) fn irregular_name(h: &str) -> bool {
    h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// What the parameters of a Content-Disposition line say.
pub(super) struct Params {
    /// `Some(true)` when every `filename` is non-empty, `None` without one.
    pub(super) names_file: Option<bool>,
    /// Written as no client writes them ([`irregular_param`]), or with an empty `filename*`
    /// beside a `filename`.
    pub(super) odd: bool,
}

/// Reads Content-Disposition parameters (after `form-data`): names and file names are added to
/// `names` and `filenames`.
pub(super) fn read_params<'a>(
    params: impl Iterator<Item = &'a str>,
    names: &mut Vec<&'a str>,
    filenames: &mut Vec<&'a str>,
) -> Params {
    let mut read = Params {
        names_file: None,
        odd: false,
    };
    let (mut plain, mut starred) = (false, Vec::new());
    for param in params {
        let Some((k, val)) = param.split_once('=') else {
            continue;
        };
        read.odd |= irregular_param(k, val);
        let val = val.trim();
        let val = val
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(val);
        match k.trim().to_ascii_lowercase().as_str() {
            "name" if !names.contains(&val) => names.push(val),
            "filename" => {
                read.names_file = Some(read.names_file.unwrap_or(true) && !val.is_empty());
                filenames.push(val);
                plain = true;
            }
            "filename*" => {
                filenames.push(val);
                starred.push(val);
            }
            _ => {}
        }
    }
    // .NET writes `filename="a.txt"; filename*=utf-8''a.txt` (for other names than ASCII, an
    // encoded word beside the %-encoded name); every parser takes that for a file. Go lets
    // `filename*` win, so an empty one makes the part a field to Go alone.
    read.odd |= plain && starred.iter().any(|v| rfc2231_value(v, true).is_empty());
    read
}

/// Whether a Content-Disposition parameter is written as no client writes one, so that parsers
/// read it differently: space around `=` (Rack takes no file name from `filename ="a.txt"`), a
/// quote in the parameter's name (Tomcat honours quotes only in values, so `a"b=1; c="` hides
/// what follows from one parser and not the other), a value that opens with `'` (Jetty quotes
/// with it), or a quote or backslash in a value that is not one quoted string (Tomcat reads
/// `\"` outside quotes as an escaped quote).
fn irregular_param(k: &str, val: &str) -> bool {
    let k = k.trim_start();
    let v = val.trim_end();
    let well_quoted = v.len() >= 2 && v.starts_with('"') && v.ends_with('"');
    k.ends_with(|c: char| c.is_whitespace())
        || val.starts_with(|c: char| c.is_whitespace())
        || k.contains(['"', '\\'])
        || v.starts_with('\'')
        || (!well_quoted && v.contains(['"', '\\']))
}

/// Splits header parameters at `;` outside double quotes (`name="a;b"` stays whole).
pub(super) fn split_params(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in v.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&v[start..]);
    out
}

/// A part's header lines and content, split at the first empty line, whichever of LF and CRLF
/// end the lines around it (Python's `email` package ends the head at `LF CRLF` too).
pub(super) fn split_head(part: &str) -> Option<(&str, &str)> {
    let b = part.as_bytes();
    let mut from = 0;
    while let Some(off) = b[from..].iter().position(|&c| c == b'\n') {
        let n = from + off;
        let rest = &b[n + 1..];
        let blank = if rest.starts_with(b"\n") {
            Some(1)
        } else if rest.starts_with(b"\r\n") {
            Some(2)
        } else {
            None
        };
        if let Some(len) = blank {
            return Some((part[..n].trim_end_matches('\r'), &part[n + 1 + len..]));
        }
        from = n + 1;
    }
    None
}
