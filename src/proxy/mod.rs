//! The Pingora `ProxyHttp` implementation. It only sequences: stages decide, [`Refusal`]
//! renders, [`headers`] cleans, [`failure`] classifies, and `record` counts and logs.

pub mod conn;
mod ctx;
pub mod failure;
pub mod headers;
mod record;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};

pub use ctx::RequestCtx;
pub use record::record_connection_refusal;

use crate::problem::Refusal;
use crate::stage::Verdict;
use crate::state::GatewayState;

/// The gateway's proxy logic.
pub struct GatewayProxy {
    state: Arc<GatewayState>,
}

impl GatewayProxy {
    /// A proxy serving with the shared `state`.
    pub fn new(state: Arc<GatewayState>) -> GatewayProxy {
        GatewayProxy { state }
    }

    /// Writes `refusal` as the response and remembers it for logging.
    async fn respond(&self, session: &mut Session, ctx: &mut RequestCtx, refusal: Refusal) {
        let body = refusal.body(&ctx.request_id);
        let mut header = refusal.header(&ctx.request_id, body.len());
        add_rate_limit_fields(&mut header, ctx);
        ctx.refusal = Some(refusal);
        write_response(session, header, body).await;
    }
}

/// The HTTPS URL to send a request to, when its listener redirects and the path is not excepted.
fn https_redirect(session: &Session, ctx: &RequestCtx) -> Option<String> {
    let r = ctx.listener_spec()?.redirect.as_ref()?;
    let req = session.req_header();
    let path = req.uri.path();
    let excepted = r.except.iter().any(|p| crate::route::under_prefix(path, p));
    if excepted {
        return None;
    }
    let host = req
        .uri
        .host()
        .map(str::to_string)
        .or_else(|| {
            req.headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(crate::route::normalize_host)
        })
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })?;
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    let port = if r.port == 443 {
        String::new()
    } else {
        format!(":{}", r.port)
    };
    let pq = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    Some(format!("https://{host}{port}{pq}"))
}

/// Adds the RateLimit fields of the policies that applied to the request.
fn add_rate_limit_fields(resp: &mut ResponseHeader, ctx: &RequestCtx) {
    if ctx.rate_limit.is_empty() {
        return;
    }
    let legacy = ctx
        .config
        .rate_limits
        .as_ref()
        .is_some_and(|r| r.legacy_headers);
    for (name, value) in crate::ratelimit::headers::fields(&ctx.rate_limit, legacy) {
        let _ = resp.insert_header(name, value);
    }
}

async fn write_response(session: &mut Session, header: ResponseHeader, body: Bytes) {
    let head_only = session.req_header().method == http::Method::HEAD;
    if let Err(e) = session
        .write_response_header(Box::new(header), head_only)
        .await
    {
        log::debug!("writing response header failed: {e}");
        return;
    }
    if !head_only {
        if let Err(e) = session.write_response_body(Some(body), true).await {
            log::debug!("writing response body failed: {e}");
        }
    }
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        self.state.metrics.in_flight.inc();
        RequestCtx::new(self.state.config.load_full())
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        conn::mark_request_seen(session.as_downstream().stream());
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        if let Some(ssl) = session.digest().and_then(|d| d.ssl_digest.as_ref()) {
            ctx.tls = true;
            ctx.client_subject = ssl
                .extension
                .get::<crate::tls::ClientIdentity>()
                .map(|c| c.subject.clone());
        }
        let local = session.server_addr().and_then(|a| a.as_inet()).copied();
        ctx.listener = self.state.listener_name(local).map(str::to_string);
        if let Some(location) = https_redirect(session, ctx) {
            if ctx.request_id.is_empty() {
                ctx.request_id = crate::stage::new_request_id();
            }
            self.respond(session, ctx, Refusal::HttpsRedirect { location })
                .await;
            return Ok(true);
        }
        let cfg = ctx.config.clone();
        match cfg.pipeline.run(session, ctx).await {
            Verdict::Continue => Ok(false),
            Verdict::Respond(refusal) => {
                self.respond(session, ctx, refusal).await;
                Ok(true)
            }
        }
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(held) = &ctx.held_body {
            // The WAF read the whole body, and Pingora offers the tail it kept: send all of it
            // (again, on a retry to another backend). Its size was checked when it was read.
            if end_of_stream {
                *body = Some(held.clone());
                ctx.body_bytes = held.len() as u64;
            } else {
                *body = Some(Bytes::new());
            }
            return Ok(());
        }
        // A declared length was checked with the head; a chunked body is counted as it streams.
        if let Some(b) = body {
            ctx.body_bytes += b.len() as u64;
            if ctx.body_bytes > ctx.config.limits.max_body_size.0 {
                ctx.refusal = Some(Refusal::BodyTooLarge);
                session.set_keepalive(None);
                return Error::e_explain(
                    ErrorType::HTTPStatus(413),
                    "request body over limits.max_body_size",
                );
            }
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let Some(route) = ctx.route.clone() else {
            return Error::e_explain(ErrorType::HTTPStatus(500), "no route selected");
        };
        match route.upstream.select() {
            Some(addr) => {
                ctx.backend = Some(addr);
                Ok(Box::new(route.upstream.peer(addr)))
            }
            None => {
                ctx.refusal = Some(Refusal::NoHealthyBackend);
                self.state
                    .metrics
                    .upstream_errors
                    .with_label_values(&[&route.upstream.name, "no_healthy_backend"])
                    .inc();
                Error::e_explain(ErrorType::HTTPStatus(502), "no healthy backend")
            }
        }
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let kind = failure::upstream_kind(&e);
        ctx.upstream_error = Some(kind);
        ctx.connect_failures += 1;
        if let Some(route) = &ctx.route {
            self.state
                .metrics
                .upstream_errors
                .with_label_values(&[&route.upstream.name, kind])
                .inc();
            // Like nginx's proxy_next_upstream: a connection that never opened can be tried on
            // another backend, once per backend.
            if ctx.connect_failures < route.upstream.spec.backends.len() {
                e.set_retry(true);
            }
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        if e.esource() == &pingora::ErrorSource::Upstream {
            let kind = failure::upstream_kind(&e);
            ctx.upstream_error = Some(kind);
            if let Some(route) = &ctx.route {
                self.state
                    .metrics
                    .upstream_errors
                    .with_label_values(&[&route.upstream.name, kind])
                    .inc();
            }
        }
        let mut e = e.more_context(format!("Peer: {peer}"));
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut pingora::http::RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        headers::upstream_request(upstream_request, ctx);
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if !self.state.is_ready() {
            // Shutting down or handing over to a new process: tell the client to reconnect
            // (to the new process) instead of reusing a connection that is about to close.
            session.set_keepalive(None);
        }
        headers::downstream_response(upstream_response, ctx);
        add_rate_limit_fields(upstream_response, ctx);
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        if let Some(written) = session.response_written() {
            // The response started; all that can be done is to close the connection.
            return FailToProxy {
                error_code: written.status.as_u16(),
                can_reuse_downstream: false,
            };
        }
        let refusal = ctx.refusal.clone().or_else(|| failure::refusal_for(e));
        let code = match refusal {
            Some(r) => {
                let status = r.status();
                if ctx.request_id.is_empty() {
                    ctx.request_id = crate::stage::new_request_id();
                }
                // The connection is not reused after a failure (the request body may be half
                // read): say so, or a client reuses it and meets a closed socket.
                session.set_keepalive(None);
                self.respond(session, ctx, r).await;
                status
            }
            None => 0,
        };
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, e: &Error) -> bool {
        // A client that went away is a 499 in the access log and the request metrics (and a
        // debug line from `record`). Pingora would also log each one at error level, and clients
        // drop connections all the time (mobile networks, closed tabs, load generators
        // stopping), which would bury the errors that need someone. Failures towards the backend
        // are still logged.
        failure::client_went_away(e)
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        self.record(session, e, ctx);
    }
}
