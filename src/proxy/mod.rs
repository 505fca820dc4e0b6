//! The Pingora `ProxyHttp` implementation. It only sequences: stages decide, [`Refusal`]
//! renders, [`headers`] cleans, [`failure`] classifies, and [`GatewayProxy::logging`] records.

pub mod conn;
mod ctx;
pub mod failure;
pub mod headers;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};
use serde::Serialize;

pub use ctx::RequestCtx;

use crate::metrics::{method_label, status_class};
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
    let excepted = r.except.iter().any(|p| {
        path.strip_prefix(p.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    });
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
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
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

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let m = &self.state.metrics;
        m.in_flight.dec();
        let status = match session.response_written() {
            Some(r) => r.status.as_u16(),
            // Nothing was written: the client went away first (nginx logs these as 499).
            None => 499,
        };
        let route = ctx.route_label().to_string();
        let method = method_label(&session.req_header().method);
        let elapsed = ctx.started.elapsed();
        m.requests
            .with_label_values(&[&route, method, status_class(status)])
            .inc();
        m.request_duration
            .with_label_values(&[&route])
            .observe(elapsed.as_secs_f64());
        if let Some(r) = &ctx.refusal {
            m.refusals.with_label_values(&[&route, r.reason()]).inc();
            if let Refusal::Auth(f) = r {
                m.auth_failures.with_label_values(&[f.label()]).inc();
            }
        }
        let waf_log = ctx
            .waf
            .as_ref()
            .and_then(|w| self.record_waf(w, &route, ctx.refusal.as_ref()));
        let rate_log = self.record_rate_limit(ctx);
        if let Some(e) = e {
            if ctx.refusal.is_none() && ctx.upstream_error.is_none() {
                log::debug!("request {} failed: {e}", ctx.request_id);
            }
        }
        if matches!(ctx.config.access_log, crate::config::AccessLogTarget::Off) {
            return;
        }
        let req = session.req_header();
        let record = AccessRecord {
            ts: now_rfc3339(),
            request_id: &ctx.request_id,
            client_ip: ctx.client_ip.map(|ip| ip.to_string()),
            method: req.method.as_str(),
            host: &ctx.host,
            path: req.uri.path(),
            status,
            duration_ms: (elapsed.as_secs_f64() * 1e6).round() / 1e3,
            bytes_sent: session.body_bytes_sent(),
            route: ctx.route.as_ref().map(|r| &*r.name),
            upstream: ctx.route.as_ref().map(|r| &*r.upstream.name),
            backend: ctx.backend.map(|a| a.to_string()),
            refusal: ctx.refusal.as_ref().map(Refusal::reason),
            upstream_error: ctx.upstream_error,
            user_agent: req
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
            waf: waf_log,
            rate_limit: rate_log,
            key_id: ctx.key_id.as_deref(),
            tls: ctx.tls,
            client_cert_subject: ctx.client_subject.as_deref(),
        };
        match serde_json::to_string(&record) {
            Ok(line) => self.state.access_log.write(line),
            Err(err) => log::error!("access-log record not serialisable: {err}"),
        }
    }
}

/// Counts and logs a refusal made on a connection before any request reached the proxy (see
/// [`conn`]): the metric and the access-log line every refusal gets.
pub fn record_connection_refusal(
    state: &GatewayState,
    refusal: &Refusal,
    request_id: &str,
    peer: Option<std::net::SocketAddr>,
) {
    let m = &state.metrics;
    let status = refusal.status();
    m.requests
        .with_label_values(&["none", "other", status_class(status)])
        .inc();
    m.refusals
        .with_label_values(&["none", refusal.reason()])
        .inc();
    if matches!(
        state.config.load().access_log,
        crate::config::AccessLogTarget::Off
    ) {
        return;
    }
    let record = ConnectionRecord {
        ts: now_rfc3339(),
        request_id,
        client_ip: peer.map(|p| p.ip().to_string()),
        status,
        refusal: refusal.reason(),
    };
    match serde_json::to_string(&record) {
        Ok(line) => state.access_log.write(line),
        Err(err) => log::error!("access-log record not serialisable: {err}"),
    }
}

/// The access-log line of a refusal made before the request could be read.
#[derive(Serialize)]
struct ConnectionRecord<'a> {
    ts: String,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_ip: Option<String>,
    status: u16,
    refusal: &'static str,
}

/// One access-log line.
#[derive(Serialize)]
struct AccessRecord<'a> {
    ts: String,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_ip: Option<String>,
    method: &'a str,
    host: &'a str,
    path: &'a str,
    status: u16,
    duration_ms: f64,
    bytes_sent: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    waf: Option<WafLog<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rate_limit: Vec<RateLimitLog<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    tls: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_cert_subject: Option<&'a str>,
}

/// One policy's entry in the `rate_limit` field of an access-log line.
#[derive(Serialize)]
struct RateLimitLog<'a> {
    policy: &'a str,
    mode: &'static str,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    remaining: Option<u32>,
}

/// The `waf` field of an access-log line: enough to explain a decision.
#[derive(Serialize)]
struct WafLog<'a> {
    mode: &'static str,
    decision: &'static str,
    score: u32,
    threshold: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'static str>,
    matches: Vec<WafMatchLog<'a>>,
}

#[derive(Serialize)]
struct WafMatchLog<'a> {
    rule: &'a str,
    category: &'a str,
    targets: &'a [String],
}

impl GatewayProxy {
    /// Counts rate-limit outcomes and renders the log field.
    fn record_rate_limit<'a>(&self, ctx: &'a RequestCtx) -> Vec<RateLimitLog<'a>> {
        use crate::ratelimit::local::Outcome;
        use crate::ratelimit::PolicyMode;
        let m = &self.state.metrics;
        if let Some(action) = ctx.redis_error {
            m.ratelimit_redis_errors.with_label_values(&[action]).inc();
        }
        if let Some(d) = ctx.redis_latency {
            m.ratelimit_redis_duration
                .with_label_values(&[] as &[&str])
                .observe(d.as_secs_f64());
        }
        ctx.rate_limit
            .iter()
            .map(|s| {
                let (outcome, remaining) = match (s.mode, s.outcome) {
                    (_, Outcome::Allowed { remaining, .. }) => ("allowed", Some(remaining)),
                    (PolicyMode::Enforce, Outcome::Limited { .. }) => {
                        m.ratelimit_limited.with_label_values(&[&s.name]).inc();
                        ("limited", None)
                    }
                    (PolicyMode::Shadow, Outcome::Limited { .. }) => {
                        m.ratelimit_shadow.with_label_values(&[&s.name]).inc();
                        ("would_limit", None)
                    }
                };
                RateLimitLog {
                    policy: &s.name,
                    mode: match s.mode {
                        PolicyMode::Enforce => "enforce",
                        PolicyMode::Shadow => "shadow",
                    },
                    outcome,
                    remaining,
                }
            })
            .collect()
    }

    /// Counts the WAF outcome and renders its log field (none when nothing matched).
    fn record_waf<'a>(
        &self,
        w: &'a crate::stage::waf::WafOutcome,
        route: &str,
        refusal: Option<&Refusal>,
    ) -> Option<WafLog<'a>> {
        use crate::stage::waf::BodyInspection;
        let m = &self.state.metrics;
        for h in &w.inspection.hits {
            m.waf_rule_matches.with_label_values(&[&*h.id]).inc();
        }
        let category = w
            .inspection
            .hits
            .first()
            .map(|h| &*h.category)
            .unwrap_or("none");
        let blocked = refusal == Some(&Refusal::WafBlocked);
        if blocked {
            m.waf_blocks.with_label_values(&[route, category]).inc();
        } else if w.over_threshold && w.mode == crate::waf::Mode::Detect {
            m.waf_detections.with_label_values(&[route, category]).inc();
        }
        let body = match w.body {
            BodyInspection::PassedUninspected => {
                m.waf_body_limit
                    .with_label_values(&[route, "passed", "body_limit"])
                    .inc();
                Some("over_limit_passed")
            }
            BodyInspection::Rejected => {
                m.waf_body_limit
                    .with_label_values(&[route, "rejected", "body_limit"])
                    .inc();
                Some("over_limit_rejected")
            }
            BodyInspection::PassedPartly(e) => {
                m.waf_body_limit
                    .with_label_values(&[route, "passed", e.setting()])
                    .inc();
                Some(match e {
                    crate::waf::Exceeded::JsonDepth => "max_json_depth_passed",
                    crate::waf::Exceeded::MultipartParts => "max_multipart_parts_passed",
                    crate::waf::Exceeded::Args => "max_body_args_passed",
                })
            }
            BodyInspection::RejectedComplex(e) => {
                m.waf_body_limit
                    .with_label_values(&[route, "rejected", e.setting()])
                    .inc();
                Some(match e {
                    crate::waf::Exceeded::JsonDepth => "max_json_depth_rejected",
                    crate::waf::Exceeded::MultipartParts => "max_multipart_parts_rejected",
                    crate::waf::Exceeded::Args => "max_body_args_rejected",
                })
            }
            _ => None,
        };
        if w.inspection.hits.is_empty() && body.is_none() {
            return None;
        }
        Some(WafLog {
            mode: match w.mode {
                crate::waf::Mode::Block => "block",
                crate::waf::Mode::Detect => "detect",
                crate::waf::Mode::Off => "off",
            },
            decision: if blocked {
                "blocked"
            } else if w.over_threshold {
                "would_block"
            } else {
                "passed"
            },
            score: w.inspection.score,
            threshold: w.threshold,
            body,
            matches: w
                .inspection
                .hits
                .iter()
                .map(|h| WafMatchLog {
                    rule: &h.id,
                    category: &h.category,
                    targets: &h.targets,
                })
                .collect(),
        })
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
