//! What a finished request leaves behind: its metrics and its access-log line, and the same for
//! a refusal made on a connection before any request reached the proxy.

use pingora::proxy::Session;
use pingora::Error;
use serde::Serialize;

use super::{GatewayProxy, RequestCtx};
use crate::metrics::{method_label, status_class};
use crate::problem::Refusal;
use crate::state::GatewayState;

impl GatewayProxy {
    /// Counts the request and writes its access-log line.
    pub(super) fn record(&self, session: &Session, e: Option<&Error>, ctx: &RequestCtx) {
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
        let category = w.inspection.lead_category().unwrap_or("none");
        let blocked = refusal == Some(&Refusal::WafBlocked);
        if blocked {
            m.waf_blocks.with_label_values(&[route, category]).inc();
        } else if w.over_threshold && w.mode == crate::waf::Mode::Detect {
            m.waf_detections.with_label_values(&[route, category]).inc();
        }
        // (action, limit, log value) of a body the WAF did not inspect in full.
        let limited = match w.body {
            BodyInspection::PassedUninspected => {
                Some(("passed", "body_limit", "over_limit_passed"))
            }
            BodyInspection::Rejected => Some(("rejected", "body_limit", "over_limit_rejected")),
            BodyInspection::LengthRequired => {
                Some(("rejected", "unknown_length", "unknown_length_rejected"))
            }
            BodyInspection::PassedPartly(e) => Some(("passed", e.setting(), exceeded_log(e, true))),
            BodyInspection::RejectedComplex(e) => {
                Some(("rejected", e.setting(), exceeded_log(e, false)))
            }
            BodyInspection::PassedUndecoded => {
                Some(("passed", "content_encoding", "undecodable_passed"))
            }
            BodyInspection::RejectedUndecoded => {
                Some(("rejected", "content_encoding", "undecodable_rejected"))
            }
            BodyInspection::None | BodyInspection::Inspected => None,
        };
        if let Some((action, limit, _)) = limited {
            m.waf_body_limit
                .with_label_values(&[route, action, limit])
                .inc();
        }
        let body = limited.map(|(_, _, log)| log);
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

/// The access-log `waf.body` value of a body past a structure limit.
fn exceeded_log(e: crate::waf::Exceeded, passed: bool) -> &'static str {
    use crate::waf::Exceeded;
    match (e, passed) {
        (Exceeded::JsonDepth, true) => "max_json_depth_passed",
        (Exceeded::JsonDepth, false) => "max_json_depth_rejected",
        (Exceeded::MultipartParts, true) => "max_multipart_parts_passed",
        (Exceeded::MultipartParts, false) => "max_multipart_parts_rejected",
        (Exceeded::Args, true) => "max_body_args_passed",
        (Exceeded::Args, false) => "max_body_args_rejected",
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

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
