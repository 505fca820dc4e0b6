//! Header hygiene between client and backend: hop-by-hop and Connection-nominated headers are
//! removed in both directions, and the forwarding headers are set from what the gateway knows.

use http::header::{HeaderMap, HeaderName};

use super::RequestCtx;

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus the non-standard ones proxies also drop.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// Headers in which a proxy tells the backend about the client, the original URL or the scheme,
/// other than `X-Forwarded-For` and `X-Forwarded-Proto` (which the gateway sets): from a client
/// that is not a trusted proxy they are claims the backend would believe. `X-Forwarded-Host`
/// builds password-reset links in Express, Django and Spring; the client-address headers feed
/// allow-lists and rate limits (Node's `request-ip` reads every one); `X-Original-URL` and
/// `X-Rewrite-URL` replace the routed path in Symfony, Zend and IIS.
const PROXY_CLAIMS: &[&str] = &[
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "x-forwarded",
    "forwarded-for",
    "x-url-scheme",
    "front-end-https",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "x-original-url",
    "x-rewrite-url",
];

/// Headers that a `Connection` header may never remove: framing and routing depend on them.
const PROTECTED: &[&str] = &["host", "content-length", "transfer-encoding"];

/// Names listed in `Connection` headers, lower-cased.
fn nominated(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Names to remove from a message: the fixed hop-by-hop set and whatever `Connection` names,
/// except `keep` (e.g. `upgrade` on a WebSocket handshake) and the protected framing headers.
pub fn hop_by_hop_names(headers: &HeaderMap, keep_upgrade: bool) -> Vec<HeaderName> {
    let mut names: Vec<String> = HOP_BY_HOP.iter().map(|s| s.to_string()).collect();
    names.extend(nominated(headers));
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| !PROTECTED.contains(&n.as_str()))
        .filter(|n| !(keep_upgrade && (n == "upgrade" || n == "connection")))
        .filter(|n| !(n == "te" && te_is_trailers(headers)))
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        .collect()
}

fn te_is_trailers(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("trailers"))
}

/// Whether the request asks for a protocol upgrade (WebSocket) that should pass through.
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::UPGRADE) && nominated(headers).iter().any(|t| t == "upgrade")
}

/// Prepares the request header sent upstream.
pub fn upstream_request(req: &mut pingora::http::RequestHeader, ctx: &RequestCtx) {
    let upgrade = is_upgrade_request(&req.headers);
    for name in hop_by_hop_names(&req.headers, upgrade) {
        req.remove_header(&name);
    }
    if upgrade {
        let _ = req.insert_header(http::header::CONNECTION, "upgrade");
    }

    let peer = ctx.peer_ip.map(|ip| ip.to_string()).unwrap_or_default();
    let xff = if ctx.peer_trusted {
        let prior: Vec<&str> = req
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if prior.is_empty() {
            peer
        } else {
            format!("{}, {peer}", prior.join(", "))
        }
    } else {
        // An untrusted client's forwarding headers are not passed on: the backend would believe them.
        for name in PROXY_CLAIMS {
            req.remove_header(*name);
        }
        peer
    };
    if !xff.is_empty() {
        let _ = req.insert_header("X-Forwarded-For", xff);
    }
    if let Some(ip) = ctx.client_ip {
        let _ = req.insert_header("X-Real-IP", ip.to_string());
    }
    let proto_from_proxy = ctx.peer_trusted && req.headers.contains_key("x-forwarded-proto");
    if !proto_from_proxy {
        let _ = req.insert_header("X-Forwarded-Proto", if ctx.tls { "https" } else { "http" });
    }
    let _ = req.insert_header("X-Request-Id", ctx.request_id.as_str());
    if let Some(ca) = ctx
        .listener_spec()
        .and_then(|l| l.tls.as_ref())
        .and_then(|t| t.client_auth.as_ref())
    {
        // Only the gateway vouches for a client certificate.
        req.remove_header(&ca.subject_header);
        if let Some(subject) = &ctx.client_subject {
            let _ = req.insert_header(ca.subject_header.clone(), subject.as_str());
        }
    }
    if let Some(keys) = &ctx.config.api_keys {
        // Whatever a client sends as the key-id header is not believed.
        req.remove_header(&keys.key_id_header);
        if let Some(id) = &ctx.key_id {
            let _ = req.insert_header(keys.key_id_header.clone(), &**id);
        }
        if keys.strip {
            if let Some(src) = &ctx.key_source {
                strip_key(req, src);
            }
        }
    }
}

/// Removes the API key from where it was found.
fn strip_key(req: &mut pingora::http::RequestHeader, src: &crate::auth::KeySource) {
    use crate::auth::KeySource;
    match src {
        KeySource::Header(h) => {
            req.remove_header(h);
        }
        KeySource::Bearer => {
            req.remove_header(&http::header::AUTHORIZATION);
        }
        KeySource::Query(name) => {
            let Some(q) = req.uri.query() else { return };
            let kept: Vec<&str> = q
                .split('&')
                .filter(|p| p.split('=').next() != Some(name.as_str()))
                .collect();
            let path = req.uri.path().to_string();
            let new = if kept.is_empty() {
                path
            } else {
                format!("{path}?{}", kept.join("&"))
            };
            if let Ok(uri) = new.parse::<http::Uri>() {
                req.set_uri(uri);
            }
        }
    }
}

/// Prepares the response header sent to the client.
pub fn downstream_response(resp: &mut pingora::http::ResponseHeader, ctx: &RequestCtx) {
    let switching = resp.status == http::StatusCode::SWITCHING_PROTOCOLS;
    for name in hop_by_hop_names(&resp.headers, switching) {
        resp.remove_header(&name);
    }
    if !ctx.request_id.is_empty() {
        let _ = resp.insert_header("X-Request-Id", ctx.request_id.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    fn names(h: &HeaderMap, keep: bool) -> Vec<String> {
        hop_by_hop_names(h, keep)
            .iter()
            .map(|n| n.to_string())
            .collect()
    }

    #[test]
    fn nominated_headers_are_removed_but_framing_is_protected() {
        let h = map(&[
            ("connection", "close, X-Secret, Content-Length, host"),
            ("x-secret", "1"),
        ]);
        let n = names(&h, false);
        assert!(n.contains(&"x-secret".to_string()));
        assert!(n.contains(&"keep-alive".to_string()));
        assert!(!n.contains(&"content-length".to_string()));
        assert!(!n.contains(&"host".to_string()));
    }

    #[test]
    fn upgrade_is_kept_for_websocket_and_te_trailers_is_kept() {
        let h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(is_upgrade_request(&h));
        let n = names(&h, true);
        assert!(!n.contains(&"upgrade".to_string()));
        let h = map(&[("te", "trailers")]);
        assert!(!names(&h, false).contains(&"te".to_string()));
        let h = map(&[("te", "gzip")]);
        assert!(names(&h, false).contains(&"te".to_string()));
    }
}
