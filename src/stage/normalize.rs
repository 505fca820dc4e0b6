//! The first stage: request id, client address, host, normalised path and route.

use std::net::IpAddr;

use async_trait::async_trait;
use pingora::proxy::Session;

use super::{Stage, Verdict};
use crate::problem::Refusal;
use crate::proxy::RequestCtx;
use crate::route::{match_path, normalize_host, normalize_path};

/// Identifies the request and the client and selects the route.
pub struct NormalizeStage;

#[async_trait]
impl Stage for NormalizeStage {
    fn name(&self) -> &'static str {
        "normalize"
    }

    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Verdict {
        let cfg = ctx.config.clone();
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        ctx.peer_ip = peer;
        ctx.peer_trusted = peer.is_some_and(|ip| cfg.trusted_proxies.contains(ip));

        let req = session.req_header();
        ctx.request_id = match req.headers.get("x-request-id") {
            Some(v) if ctx.peer_trusted && valid_request_id(v.as_bytes()) => {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            }
            _ => new_request_id(),
        };
        ctx.client_ip = if ctx.peer_trusted {
            client_from_forwarded_for(req, &cfg.trusted_proxies).or(peer)
        } else {
            peer
        };
        let raw = session
            .as_http1()
            .filter(|_| req.headers.contains_key(http::header::TRANSFER_ENCODING))
            .map(|h1| h1.get_headers_raw_bytes());
        if let Err((refusal, close)) = super::limits::check_head(req, raw.as_deref(), &cfg.limits) {
            if close {
                session.set_keepalive(None);
            }
            return Verdict::Respond(refusal);
        }

        join_cookie_fields(session);
        let req = session.req_header();

        let host = req
            .uri
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                req.headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        ctx.host = normalize_host(&host);

        let raw_path = req.uri.path().to_string();
        ctx.raw_query = req.uri.query().map(str::to_string);
        ctx.raw_path = raw_path.clone();
        let Some(path) = normalize_path(&raw_path) else {
            return Verdict::Respond(Refusal::BadRequest(
                "The request target is not a valid path.",
            ));
        };
        if path != raw_path {
            let new_uri = match req.uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path.clone(),
            };
            match new_uri.parse::<http::Uri>() {
                Ok(uri) => session.req_header_mut().set_uri(uri),
                Err(_) => {
                    return Verdict::Respond(Refusal::BadRequest(
                        "The request target is not a valid path.",
                    ))
                }
            }
        }
        session.set_read_timeout(Some(cfg.limits.client_body_timeout.0));
        ctx.match_path = match_path(&path).into_owned();
        match cfg.routes.select(&ctx.host, &ctx.match_path) {
            Some(route) => {
                ctx.route = Some(route.clone());
                if route.require_client_cert && ctx.client_subject.is_none() {
                    return Verdict::Respond(Refusal::ClientCertRequired);
                }
                Verdict::Continue
            }
            None => Verdict::Respond(Refusal::NoRoute),
        }
    }
}

/// Several `Cookie` fields become one, joined with `; `: HTTP/2 clients send each cookie as its
/// own field and RFC 9113 §8.2.3 has them joined before an HTTP/1.1 hop, and servers that join
/// repeated HTTP/1.1 fields themselves use `, `, which lets a quoted value run from one field into
/// the next. The WAF then inspects exactly the line the backend receives.
fn join_cookie_fields(session: &mut Session) {
    let fields = session.req_header().headers.get_all(http::header::COOKIE);
    if fields.iter().nth(1).is_none() {
        return;
    }
    let mut joined = Vec::new();
    for v in fields.iter() {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(v.as_bytes());
    }
    // Bytes of valid field values joined by "; " are a valid field value.
    if let Ok(v) = http::HeaderValue::from_bytes(&joined) {
        let req = session.req_header_mut();
        req.remove_header(&http::header::COOKIE);
        let _ = req.insert_header(http::header::COOKIE, v);
    }
}

/// A request id from a trusted proxy is kept if it is 1–128 visible ASCII characters.
fn valid_request_id(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= 128 && v.iter().all(|b| b.is_ascii_graphic())
}

/// 128 random bits as 32 hex digits.
pub fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The client address from `X-Forwarded-For`: the right-most entry that is not a trusted proxy.
fn client_from_forwarded_for(
    req: &pingora::http::RequestHeader,
    trusted: &crate::ipset::IpSet,
) -> Option<IpAddr> {
    let mut last_valid = None;
    for value in req.headers.get_all("x-forwarded-for").iter().rev() {
        let s = value.to_str().ok()?;
        for part in s.rsplit(',') {
            let ip = parse_forwarded_ip(part.trim())?;
            if !trusted.contains(ip) {
                return Some(ip);
            }
            last_valid = Some(ip);
        }
    }
    last_valid
}

fn parse_forwarded_ip(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    // "[2001:db8::1]:443" or "192.0.2.1:80"
    s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req_with_xff(values: &[&str]) -> pingora::http::RequestHeader {
        let mut r = pingora::http::RequestHeader::build("GET", b"/", None).unwrap();
        for v in values {
            r.append_header("X-Forwarded-For", *v).unwrap();
        }
        r
    }

    #[test]
    fn forwarded_for_walks_from_the_right_skipping_trusted() {
        let trusted = crate::ipset::IpSet::parse(["10.0.0.0/8"]).unwrap();
        let r = req_with_xff(&["203.0.113.9, 198.51.100.2, 10.0.0.5"]);
        assert_eq!(
            client_from_forwarded_for(&r, &trusted),
            Some("198.51.100.2".parse().unwrap())
        );
        let r = req_with_xff(&["203.0.113.9", "10.1.1.1"]);
        assert_eq!(
            client_from_forwarded_for(&r, &trusted),
            Some("203.0.113.9".parse().unwrap())
        );
        let r = req_with_xff(&["10.0.0.1, 10.0.0.2"]);
        assert_eq!(
            client_from_forwarded_for(&r, &trusted),
            Some("10.0.0.1".parse().unwrap())
        );
        let r = req_with_xff(&["garbage"]);
        assert_eq!(client_from_forwarded_for(&r, &trusted), None);
    }

    #[test]
    fn request_ids() {
        assert!(valid_request_id(b"abc-123"));
        assert!(!valid_request_id(b""));
        assert!(!valid_request_id(b"has space"));
        assert!(!valid_request_id(&[b'a'; 129]));
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert_ne!(id, new_request_id());
    }
}
