//! The demo backend: a small echo service that answers every request with what it received, so
//! the quick start can show what the gateway forwards (forwarding headers, request id, ...).

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

/// Echoes method, path, query and headers as JSON; `/healthz` answers `ok`.
pub struct EchoBackend;

#[async_trait]
impl ServeHttp for EchoBackend {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        // Read (and bound) the body so the connection can be reused.
        let mut body_len = 0usize;
        while let Ok(Some(chunk)) = session.read_request_body().await {
            body_len += chunk.len();
            if body_len > 1 << 20 {
                break;
            }
        }
        let req = session.req_header();
        if req.uri.path() == "/healthz" {
            return Response::builder()
                .status(200)
                .header("Content-Type", "text/plain")
                .body(b"ok\n".to_vec())
                .unwrap_or_default();
        }
        let headers: serde_json::Map<String, serde_json::Value> = req
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    json!(String::from_utf8_lossy(v.as_bytes())),
                )
            })
            .collect();
        let body = json!({
            "service": "portcullis demo backend",
            "method": req.method.as_str(),
            "path": req.uri.path(),
            "query": req.uri.query(),
            "headers": headers,
            "body_bytes": body_len,
        });
        let bytes = serde_json::to_vec_pretty(&body).unwrap_or_default();
        Response::builder()
            .status(200)
            .header("Content-Type", "application/json")
            .header("Content-Length", bytes.len())
            .body(bytes)
            .unwrap_or_default()
    }
}

/// A Pingora service running the echo backend on `addr`.
pub fn echo_service(addr: &str) -> pingora::services::listening::Service<EchoBackend> {
    let mut svc =
        pingora::services::listening::Service::new("portcullis-demo".to_string(), EchoBackend);
    svc.add_tcp(addr);
    svc.threads = Some(1);
    svc
}
