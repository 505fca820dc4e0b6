//! The first look at a request head: framing that two parsers could read differently, and the
//! bounds of `limits:`. Pingora's parser already refuses duplicate or invalid `Content-Length`,
//! obfuscated or repeated `Transfer-Encoding`, bad chunk sizes and control bytes in header values;
//! what it lets through and a backend could still disagree on is refused here.

use http::{header, Version};
use pingora::http::RequestHeader;

use crate::config::file::LimitsFile;
use crate::problem::Refusal;

/// Checks the head of a request; `raw` is the head as received (HTTP/1), where a
/// `Content-Length` that the parser dropped in favour of `Transfer-Encoding` is still visible.
/// `Err` carries the answer and whether the connection must be closed after it (the body's
/// length is unknown, so the next request cannot be found).
pub fn check_head(
    req: &RequestHeader,
    raw: Option<&[u8]>,
    limits: &LimitsFile,
) -> Result<(), (Refusal, bool)> {
    let h = &req.headers;
    let te = h.get_all(header::TRANSFER_ENCODING);
    if te.iter().next().is_some() {
        if h.contains_key(header::CONTENT_LENGTH) || raw.is_some_and(has_content_length) {
            return Err((Refusal::AmbiguousFraming, true));
        }
        let mut values = te.iter();
        let chunked_only = values
            .next()
            .is_some_and(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked"))
            && values.next().is_none();
        if !chunked_only {
            return Err((Refusal::UnsupportedTransferCoding, true));
        }
    }
    if let Some(len) = h.get(header::CONTENT_LENGTH) {
        let declared = std::str::from_utf8(len.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        match declared {
            Some(n) if n > limits.max_body_size.0 => return Err((Refusal::BodyTooLarge, true)),
            Some(_) => {}
            None => return Err((Refusal::AmbiguousFraming, true)),
        }
    }
    // Backends differ on which of two Content-Types counts (Werkzeug's server and Go take the
    // first, gunicorn the last), and the WAF parses the body by one of them.
    let mut types = h.get_all(header::CONTENT_TYPE).iter();
    if let Some(first) = types.next() {
        if types.any(|t| t != first) {
            return Err((Refusal::AmbiguousContentType, false));
        }
    }
    if req.version == Version::HTTP_11 && !h.contains_key(header::HOST) && req.uri.host().is_none()
    {
        return Err((Refusal::MissingHost, false));
    }

    let target = req
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or_else(|| req.uri.path());
    if target.len() as u64 > limits.max_uri_length.0 {
        return Err((Refusal::UriTooLong, false));
    }
    if !valid_target(req.uri.path().as_bytes()) {
        return Err((Refusal::InvalidTarget, false));
    }
    if let Some(q) = req.uri.query() {
        if q.split('&').filter(|p| !p.is_empty()).count() > limits.max_query_args {
            return Err((Refusal::TooManyArgs, false));
        }
    }

    if h.len() > limits.max_header_count {
        return Err((Refusal::HeadersTooLarge, false));
    }
    let bytes: usize = h
        .iter()
        .map(|(n, v)| n.as_str().len() + v.as_bytes().len() + 4)
        .sum();
    if bytes as u64 > limits.max_header_bytes.0 {
        return Err((Refusal::HeadersTooLarge, false));
    }
    Ok(())
}

/// Whether a raw request head has a `Content-Length` field.
fn has_content_length(raw: &[u8]) -> bool {
    raw.split(|b| *b == b'\n')
        .skip(1)
        .any(|line| line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:"))
}

/// No control bytes, raw or percent-encoded, and every `%` followed by two hex digits.
fn valid_target(path: &[u8]) -> bool {
    let mut i = 0;
    while i < path.len() {
        match path[i] {
            b if b < 0x20 || b == 0x7f => return false,
            b'%' => {
                let hex = |j: usize| path.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return false;
                }
                let hi = path[i + 1];
                let lo = path[i + 2].to_ascii_lowercase();
                if matches!(hi, b'0' | b'1') || (hi == b'7' && lo == b'f') {
                    return false;
                }
                i += 3;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", target.as_bytes(), None).unwrap_or_else(|e| {
            panic!("{e}");
        });
        for (n, v) in headers {
            r.append_header(n.to_string(), *v)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        r
    }

    fn refusal(r: &RequestHeader) -> Option<Refusal> {
        check_head(r, None, &LimitsFile::default())
            .err()
            .map(|(r, _)| r)
    }

    #[test]
    fn framing() {
        let host = ("Host", "a");
        assert_eq!(refusal(&req("/", &[host])), None);
        assert_eq!(
            refusal(&req(
                "/",
                &[
                    host,
                    ("Content-Length", "4"),
                    ("Transfer-Encoding", "chunked")
                ]
            )),
            Some(Refusal::AmbiguousFraming)
        );
        assert_eq!(
            refusal(&req("/", &[host, ("Transfer-Encoding", "gzip, chunked")])),
            Some(Refusal::UnsupportedTransferCoding)
        );
        assert_eq!(
            refusal(&req("/", &[host, ("Transfer-Encoding", "Chunked")])),
            None
        );
        assert_eq!(
            refusal(&req("/", &[host, ("Content-Length", "99999999999")])),
            Some(Refusal::BodyTooLarge)
        );
        assert_eq!(refusal(&req("/", &[])), Some(Refusal::MissingHost));
        let form = ("Content-Type", "application/x-www-form-urlencoded");
        assert_eq!(
            refusal(&req("/", &[host, ("Content-Type", "text/plain"), form])),
            Some(Refusal::AmbiguousContentType)
        );
        assert_eq!(refusal(&req("/", &[host, form, form])), None);
        // The parser keeps Transfer-Encoding and drops Content-Length; the raw head tells.
        let te = req("/", &[host, ("Transfer-Encoding", "chunked")]);
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\ncontent-LENGTH: 4\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            check_head(&te, Some(raw), &LimitsFile::default()).err(),
            Some((Refusal::AmbiguousFraming, true))
        );
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(check_head(&te, Some(raw), &LimitsFile::default()), Ok(()));
    }

    #[test]
    fn targets_and_sizes() {
        let host = ("Host", "a");
        assert_eq!(refusal(&req("/a%2Fb%41", &[host])), None);
        assert_eq!(
            refusal(&req("/a%zz", &[host])),
            Some(Refusal::InvalidTarget)
        );
        assert_eq!(refusal(&req("/a%4", &[host])), Some(Refusal::InvalidTarget));
        assert_eq!(
            refusal(&req("/a%00b", &[host])),
            Some(Refusal::InvalidTarget)
        );
        assert_eq!(
            refusal(&req("/a%0d%0aX", &[host])),
            Some(Refusal::InvalidTarget)
        );
        assert_eq!(
            refusal(&req("/a%7F", &[host])),
            Some(Refusal::InvalidTarget)
        );
        assert_eq!(refusal(&req("/caf%C3%A9%20%7e", &[host])), None);
        let long = format!("/{}", "a".repeat(9000));
        assert_eq!(refusal(&req(&long, &[host])), Some(Refusal::UriTooLong));
        let many = format!("/?{}", "a=1&".repeat(600));
        assert_eq!(refusal(&req(&many, &[host])), Some(Refusal::TooManyArgs));
        let big = "v".repeat(70_000);
        assert_eq!(
            refusal(&req("/", &[host, ("X-Big", &big)])),
            Some(Refusal::HeadersTooLarge)
        );
        let names: Vec<String> = (0..120).map(|i| format!("X-H{i}")).collect();
        let mut headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
        headers.push(host);
        assert_eq!(refusal(&req("/", &headers)), Some(Refusal::HeadersTooLarge));
    }
}
