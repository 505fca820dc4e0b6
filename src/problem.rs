//! Refusals: every answer the gateway gives instead of proxying, decided in one place.
//!
//! A [`Refusal`] fixes the status, the RFC 9457 problem+json body, the metric label (`reason`)
//! and the access-log field, so the four can never disagree.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use serde::Serialize;

/// Why an API-key check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No key in any configured source.
    Missing,
    /// A key that matches no digest.
    Unknown,
    /// A known key past its `expires_at`.
    Expired,
    /// A known key marked `disabled`.
    Disabled,
    /// A valid key not allowed on this route or method.
    Scope,
}

impl AuthFailure {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Unknown => "unknown",
            AuthFailure::Expired => "expired",
            AuthFailure::Disabled => "disabled",
            AuthFailure::Scope => "scope",
        }
    }
}

/// An answer the gateway gives itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// 400: the request cannot be interpreted (bad path, bad framing, invalid encoding).
    BadRequest(&'static str),
    /// 404: no route matches host and path.
    NoRoute,
    /// 401 or 403 from the API-key stage.
    Auth(AuthFailure),
    /// 403: the client address is denied.
    IpDenied,
    /// 403: the route needs a verified client certificate.
    ClientCertRequired,
    /// 308: this listener serves HTTPS only; the client is sent to the HTTPS URL.
    HttpsRedirect {
        /// The `Location`.
        location: String,
    },
    /// 403: the WAF blocked the request.
    WafBlocked,
    /// 413: the body is larger than the route allows.
    BodyTooLarge,
    /// 411: a body of unknown length too long for the WAF to hold back from the backend.
    LengthRequired,
    /// 400: the body nests deeper, or holds more parts or arguments, than the `limits` field
    /// named allows.
    BodyTooComplex(&'static str),
    /// 415: the body's `Content-Encoding` is one the WAF cannot decode, or its data is broken, so
    /// it cannot be inspected.
    UnsupportedContentEncoding,
    /// 400: both `Content-Length` and `Transfer-Encoding`: the framing is ambiguous.
    AmbiguousFraming,
    /// 400: two `Content-Type` fields that differ: which one a backend reads is unknown.
    AmbiguousContentType,
    /// 501: a transfer coding other than `chunked`.
    UnsupportedTransferCoding,
    /// 400: an HTTP/1.1 request without `Host`.
    MissingHost,
    /// 400: control characters or broken percent-encoding in the request target.
    InvalidTarget,
    /// 414: the request target is longer than `limits.max_uri_length`.
    UriTooLong,
    /// 431: more header fields or bytes than `limits` allow.
    HeadersTooLarge,
    /// 400: more query arguments than `limits.max_query_args`.
    TooManyArgs,
    /// 408: the client sent its body slower than `limits.client_body_timeout` allows.
    ClientTimeout,
    /// 408: the client did not send its request head within `limits.client_header_timeout`.
    HeaderTimeout,
    /// A request the HTTP parser refused before any stage saw it (malformed request line or
    /// header, CONNECT); the status is the parser's.
    Unparsable {
        /// 400, or 405 for CONNECT.
        status: u16,
    },
    /// 429: a rate limit refused the request.
    RateLimited {
        /// Seconds until a request would be admitted.
        retry_after: u64,
    },
    /// 502: every backend of the group is down.
    NoHealthyBackend,
    /// 502: the backend refused, reset or sent something unusable.
    BadGateway,
    /// 503: a dependency the policy needs (e.g. Redis with `on_redis_error: deny`) is down.
    Unavailable,
    /// 504: the backend did not connect or answer in time.
    GatewayTimeout,
    /// 500: a bug or unexpected state in the gateway.
    Internal,
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    request_id: &'a str,
}

impl Refusal {
    /// HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::NoRoute => 404,
            Refusal::Auth(AuthFailure::Missing | AuthFailure::Unknown) => 401,
            Refusal::Auth(_) => 403,
            Refusal::IpDenied | Refusal::WafBlocked | Refusal::ClientCertRequired => 403,
            Refusal::HttpsRedirect { .. } => 308,
            Refusal::BodyTooLarge => 413,
            Refusal::LengthRequired => 411,
            Refusal::AmbiguousFraming
            | Refusal::AmbiguousContentType
            | Refusal::MissingHost
            | Refusal::InvalidTarget
            | Refusal::TooManyArgs
            | Refusal::BodyTooComplex(_) => 400,
            Refusal::UnsupportedTransferCoding => 501,
            Refusal::UnsupportedContentEncoding => 415,
            Refusal::UriTooLong => 414,
            Refusal::ClientTimeout | Refusal::HeaderTimeout => 408,
            Refusal::Unparsable { status } => *status,
            Refusal::HeadersTooLarge => 431,
            Refusal::RateLimited { .. } => 429,
            Refusal::NoHealthyBackend | Refusal::BadGateway => 502,
            Refusal::Unavailable => 503,
            Refusal::GatewayTimeout => 504,
            Refusal::Internal => 500,
        }
    }

    /// The `reason` metric label and access-log `refusal` field.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::BadRequest(_) => "bad_request",
            Refusal::NoRoute => "no_route",
            Refusal::Auth(AuthFailure::Missing) => "auth_missing",
            Refusal::Auth(AuthFailure::Unknown) => "auth_unknown",
            Refusal::Auth(AuthFailure::Expired) => "auth_expired",
            Refusal::Auth(AuthFailure::Disabled) => "auth_disabled",
            Refusal::Auth(AuthFailure::Scope) => "auth_scope",
            Refusal::IpDenied => "ip_denied",
            Refusal::ClientCertRequired => "client_cert_required",
            Refusal::HttpsRedirect { .. } => "https_redirect",
            Refusal::WafBlocked => "waf_blocked",
            Refusal::BodyTooLarge => "body_too_large",
            Refusal::LengthRequired => "length_required",
            Refusal::BodyTooComplex(_) => "body_too_complex",
            Refusal::AmbiguousFraming => "ambiguous_framing",
            Refusal::AmbiguousContentType => "ambiguous_content_type",
            Refusal::UnsupportedTransferCoding => "unsupported_transfer_coding",
            Refusal::UnsupportedContentEncoding => "unsupported_content_encoding",
            Refusal::MissingHost => "missing_host",
            Refusal::InvalidTarget => "invalid_target",
            Refusal::UriTooLong => "uri_too_long",
            Refusal::HeadersTooLarge => "headers_too_large",
            Refusal::TooManyArgs => "too_many_args",
            Refusal::ClientTimeout => "client_timeout",
            Refusal::HeaderTimeout => "header_timeout",
            Refusal::Unparsable { status: 405 } => "method_not_allowed",
            Refusal::Unparsable { .. } => "malformed_request",
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::NoHealthyBackend => "no_healthy_backend",
            Refusal::BadGateway => "upstream_error",
            Refusal::Unavailable => "unavailable",
            Refusal::GatewayTimeout => "upstream_timeout",
            Refusal::Internal => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self.status() {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            308 => "Permanent Redirect",
            404 => "Not Found",
            405 => "Method Not Allowed",
            411 => "Length Required",
            413 => "Content Too Large",
            415 => "Unsupported Media Type",
            408 => "Request Timeout",
            414 => "URI Too Long",
            431 => "Request Header Fields Too Large",
            501 => "Not Implemented",
            429 => "Too Many Requests",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            _ => "Internal Server Error",
        }
    }

    fn detail(&self) -> &'static str {
        match self {
            Refusal::BadRequest(d) => d,
            Refusal::NoRoute => "No route matches this host and path.",
            Refusal::Auth(AuthFailure::Missing) => "An API key is required.",
            Refusal::Auth(AuthFailure::Unknown) => "The API key is not valid.",
            Refusal::Auth(_) => "The API key is not allowed to make this request.",
            Refusal::IpDenied => "Requests from this address are not allowed.",
            Refusal::ClientCertRequired => "A valid client certificate is required.",
            Refusal::HttpsRedirect { .. } => "This service is available over HTTPS only.",
            Refusal::WafBlocked => "The request was blocked by the security policy.",
            Refusal::BodyTooLarge => "The request body is larger than this route accepts.",
            Refusal::LengthRequired => {
                "A request body over 64 KiB must be sent with a Content-Length on this route, so that it can be inspected before it is forwarded."
            }
            Refusal::BodyTooComplex(_) => {
                "The request body nests deeper, or holds more parts or fields, than this gateway inspects."
            }
            Refusal::AmbiguousFraming => {
                "The request has both Content-Length and Transfer-Encoding; its length is ambiguous."
            }
            Refusal::AmbiguousContentType => {
                "The request has more than one Content-Type, and they differ; which one applies is ambiguous."
            }
            Refusal::UnsupportedTransferCoding => {
                "Only the chunked transfer coding is accepted on requests."
            }
            Refusal::UnsupportedContentEncoding => {
                "The request body's Content-Encoding cannot be inspected: this gateway decodes gzip, deflate, br and zstd, and the body must be valid data of the coding it declares."
            }
            Refusal::MissingHost => "An HTTP/1.1 request needs a Host header.",
            Refusal::InvalidTarget => {
                "The request target holds control characters or invalid percent-encoding."
            }
            Refusal::UriTooLong => "The request target is longer than this gateway accepts.",
            Refusal::HeadersTooLarge => "The request headers are larger than this gateway accepts.",
            Refusal::TooManyArgs => "The request has more query arguments than this gateway accepts.",
            Refusal::ClientTimeout => "The request body did not arrive in time.",
            Refusal::HeaderTimeout => "The request line and headers did not arrive in time.",
            Refusal::Unparsable { status: 405 } => "This gateway does not accept this method.",
            Refusal::Unparsable { .. } => {
                "The request line or a header field is malformed and cannot be parsed."
            }
            Refusal::RateLimited { .. } => "Rate limit exceeded; retry after the indicated time.",
            Refusal::NoHealthyBackend => "No healthy backend is available.",
            Refusal::BadGateway => "The backend could not be reached or sent an invalid response.",
            Refusal::Unavailable => "The service is temporarily unavailable.",
            Refusal::GatewayTimeout => "The backend did not respond in time.",
            Refusal::Internal => "The gateway failed to handle the request.",
        }
    }

    /// The problem+json body for this refusal.
    pub fn body(&self, request_id: &str) -> Bytes {
        let body = ProblemBody {
            kind: format!("tag:portcullis,2026:{}", self.reason()),
            title: self.title(),
            status: self.status(),
            detail: self.detail(),
            request_id,
        };
        match serde_json::to_vec(&body) {
            Ok(v) => Bytes::from(v),
            Err(_) => Bytes::from_static(b"{}"),
        }
    }

    /// The response header, with `Content-Type`, `Content-Length`, the request id and the
    /// status-specific fields (`WWW-Authenticate`, `Retry-After`).
    pub fn header(&self, request_id: &str, body_len: usize) -> ResponseHeader {
        let mut h = match ResponseHeader::build(self.status(), Some(6)) {
            Ok(h) => h,
            Err(_) => {
                ResponseHeader::build_no_case(500, None).unwrap_or_else(|_| unreachable_header())
            }
        };
        let _ = h.insert_header("Content-Type", "application/problem+json");
        let _ = h.insert_header("Content-Length", body_len.to_string());
        let _ = h.insert_header("Cache-Control", "no-store");
        if !request_id.is_empty() {
            let _ = h.insert_header("X-Request-Id", request_id);
        }
        match self {
            Refusal::Auth(AuthFailure::Missing | AuthFailure::Unknown) => {
                let _ = h.insert_header("WWW-Authenticate", "ApiKey realm=\"portcullis\"");
            }
            Refusal::RateLimited { retry_after } => {
                let _ = h.insert_header("Retry-After", retry_after.to_string());
            }
            Refusal::HttpsRedirect { location } => {
                let _ = h.insert_header("Location", location.as_str());
                let _ = h.insert_header("Cache-Control", "max-age=300");
            }
            _ => {}
        }
        h
    }
}

impl Refusal {
    /// The whole HTTP/1.1 response, for answers written below Pingora's HTTP layer (the
    /// connection guard): problem+json, `Connection: close`.
    pub fn http1_bytes(&self, request_id: &str) -> Vec<u8> {
        let body = self.body(request_id);
        let header = self.header(request_id, body.len());
        let mut out = Vec::with_capacity(256 + body.len());
        out.extend_from_slice(
            format!("HTTP/1.1 {} {}\r\n", self.status(), self.title()).as_bytes(),
        );
        for (name, value) in header.headers.iter() {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        out.extend_from_slice(&body);
        out
    }
}

fn unreachable_header() -> ResponseHeader {
    // ResponseHeader::build only fails on an invalid status code; 500 is valid.
    panic!("cannot build a 500 response header")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_reasons_are_one_to_one_with_bodies() {
        let all = [
            Refusal::BadRequest("x"),
            Refusal::NoRoute,
            Refusal::Auth(AuthFailure::Missing),
            Refusal::Auth(AuthFailure::Unknown),
            Refusal::Auth(AuthFailure::Expired),
            Refusal::Auth(AuthFailure::Disabled),
            Refusal::Auth(AuthFailure::Scope),
            Refusal::IpDenied,
            Refusal::ClientCertRequired,
            Refusal::HttpsRedirect {
                location: "https://x/".into(),
            },
            Refusal::WafBlocked,
            Refusal::BodyTooLarge,
            Refusal::LengthRequired,
            Refusal::RateLimited { retry_after: 3 },
            Refusal::NoHealthyBackend,
            Refusal::BadGateway,
            Refusal::Unavailable,
            Refusal::GatewayTimeout,
            Refusal::Internal,
            Refusal::HeaderTimeout,
            Refusal::Unparsable { status: 400 },
            Refusal::Unparsable { status: 405 },
            Refusal::BodyTooComplex("max_json_depth"),
            Refusal::UnsupportedContentEncoding,
            Refusal::AmbiguousContentType,
        ];
        let mut reasons = std::collections::HashSet::new();
        for r in &all {
            assert!(
                reasons.insert(r.reason()),
                "duplicate reason {}",
                r.reason()
            );
            let body: serde_json::Value = serde_json::from_slice(&r.body("rid")).unwrap();
            assert_eq!(body["status"], r.status());
            assert_eq!(body["request_id"], "rid");
            let h = r.header("rid", 10);
            assert_eq!(h.status.as_u16(), r.status());
            assert_eq!(
                h.headers.get("content-type").unwrap(),
                "application/problem+json"
            );
            let raw = String::from_utf8(r.http1_bytes("rid")).unwrap();
            assert!(raw.starts_with(&format!("HTTP/1.1 {} ", r.status())));
            let (head, tail) = raw.split_once("\r\n\r\n").unwrap();
            assert!(head.contains("Connection: close"));
            assert!(head.contains(&format!("content-length: {}", tail.len())));
        }
        let h = Refusal::RateLimited { retry_after: 3 }.header("", 0);
        assert_eq!(h.headers.get("retry-after").unwrap(), "3");
        let h = Refusal::Auth(AuthFailure::Missing).header("", 0);
        assert!(h.headers.get("www-authenticate").is_some());
    }
}
