//! The admin listener: `/metrics` (Prometheus text format), `/healthz` (the process is up) and
//! `/readyz` (the gateway is serving and not shutting down). With `admin.token_file` set, every
//! endpoint wants `Authorization: Bearer <token>`; the token reloads with the config.

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use subtle::ConstantTimeEq;

use crate::state::GatewayState;

/// Serves the admin endpoints from the shared gateway state.
pub struct AdminApp {
    state: Arc<GatewayState>,
}

impl AdminApp {
    /// An admin app for `state`.
    pub fn new(state: Arc<GatewayState>) -> AdminApp {
        AdminApp { state }
    }
}

fn reply(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let token = self.state.config.load().admin_token.clone();
        if let Some(token) = token {
            if !presents(session, &token) {
                let mut r = reply(
                    401,
                    "application/problem+json",
                    br#"{"type":"about:blank","title":"Unauthorized","status":401,"detail":"The admin endpoints want Authorization: Bearer <token> (admin.token_file)."}"#.to_vec(),
                );
                r.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer realm=\"portcullis-admin\""),
                );
                return r;
            }
        }
        let path = session.req_header().uri.path().to_string();
        match path.as_str() {
            "/metrics" => reply(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                self.state.metrics.encode(),
            ),
            "/healthz" => reply(200, "text/plain; charset=utf-8", b"ok\n".to_vec()),
            "/readyz" => {
                if self.state.is_ready() {
                    reply(200, "text/plain; charset=utf-8", b"ready\n".to_vec())
                } else {
                    reply(503, "text/plain; charset=utf-8", b"not ready\n".to_vec())
                }
            }
            _ => reply(
                404,
                "application/problem+json",
                br#"{"type":"about:blank","title":"Not Found","status":404,"detail":"Admin endpoints: /metrics, /healthz, /readyz."}"#.to_vec(),
            ),
        }
    }
}

/// Whether the request carries `Authorization: Bearer <token>`, compared in constant time.
fn presents(session: &ServerSession, token: &str) -> bool {
    let Some(v) = session
        .req_header()
        .headers
        .get(http::header::AUTHORIZATION)
    else {
        return false;
    };
    let v = v.as_bytes();
    let Some(given) = v
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case(b"bearer "))
        .and(v.get(7..))
    else {
        return false;
    };
    given.ct_eq(token.as_bytes()).into()
}
