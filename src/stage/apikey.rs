//! The API-key stage: on routes with `auth: api_key`, finds the key in the configured sources,
//! checks it against the keys file and records its id and tier for rate limits, the backend
//! header and the log. Missing or unknown keys get 401, keys that are expired, disabled or out
//! of scope get 403.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use pingora::proxy::Session;

use super::waf::{body_headers, read_body, BodyRead};
use super::{Stage, Verdict};
use crate::auth::ApiKeys;
use crate::problem::{AuthFailure, Refusal};
use crate::proxy::RequestCtx;
use crate::waf::{body_text, decode_body};

/// Checks API keys.
pub struct ApiKeyStage {
    keys: Arc<ApiKeys>,
}

impl ApiKeyStage {
    /// A stage for `keys`.
    pub fn new(keys: Arc<ApiKeys>) -> ApiKeyStage {
        ApiKeyStage { keys }
    }
}

#[async_trait]
impl Stage for ApiKeyStage {
    fn name(&self) -> &'static str {
        "api_key"
    }

    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Verdict {
        let Some(route) = ctx.route.clone() else {
            return Verdict::Continue;
        };
        if !route.auth {
            return Verdict::Continue;
        }
        let req = session.req_header();
        let Some((secret, source)) = self.keys.find(req) else {
            return Verdict::Respond(Refusal::Auth(AuthFailure::Missing));
        };
        let source = source.clone();
        let store = &self.keys.store;
        let now = SystemTime::now();
        let sent = std::slice::from_ref(&req.method);
        let verified = store
            .verify(secret, &route.name, &ctx.match_path, sent, now)
            .and_then(|entry| {
                if !entry.restricts_methods() {
                    return Ok(entry);
                }
                // The key's scopes name methods: every method the request names must be in them.
                let methods = crate::method::request_methods(
                    &req.method,
                    &req.headers,
                    ctx.raw_query.as_deref(),
                );
                let entry = if methods.len() > 1 {
                    store.verify(secret, &route.name, &ctx.match_path, &methods, now)?
                } else {
                    entry
                };
                ctx.key_methods = Some(methods);
                Ok(entry)
            });
        match verified {
            Ok(entry) => {
                ctx.key_id = Some(entry.id.clone());
                ctx.key_tier = entry.tier.clone();
                ctx.key_source = Some(source);
                Verdict::Continue
            }
            Err(f) => Verdict::Respond(Refusal::Auth(f)),
        }
    }
}

/// Checks, once the WAF has read the body, the methods a form, multipart or JSON body names in
/// `_method` against the scopes of the accepted key (when they name methods): Rails, Laravel,
/// Symfony and Spring take a `POST` with `_method=DELETE` for a `DELETE`. On a route without the
/// WAF, a form, multipart or JSON body is read here (up to the route's `body_limit`, as the WAF
/// would); a body past the limit that is passed on uninspected is not weighed.
pub struct BodyMethodStage {
    keys: Arc<ApiKeys>,
}

impl BodyMethodStage {
    /// A stage for `keys`.
    pub fn new(keys: Arc<ApiKeys>) -> BodyMethodStage {
        BodyMethodStage { keys }
    }
}

#[async_trait]
impl Stage for BodyMethodStage {
    fn name(&self) -> &'static str {
        "api_key_body_method"
    }

    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Verdict {
        let (Some(_), Some(route)) = (&ctx.key_methods, ctx.route.clone()) else {
            return Verdict::Continue;
        };
        if session.req_header().method != http::Method::POST {
            return Verdict::Continue;
        }
        if ctx.held_body.is_none() && ctx.waf.is_none() {
            // The WAF is off for the route: read a body that may name a method here.
            let content_type = session
                .req_header()
                .headers
                .get(http::header::CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            if !crate::method::may_name_methods(content_type.as_deref()) {
                return Verdict::Continue;
            }
            match read_body(session, route.waf.body_limit).await {
                BodyRead::Empty | BodyRead::TooLarge { replayable: true } => {
                    // Past the limit, as the WAF's `on_body_limit: pass`: forwarded unweighed.
                    return Verdict::Continue;
                }
                BodyRead::TooLarge { replayable: false } => {
                    return Verdict::Respond(Refusal::BodyTooLarge)
                }
                BodyRead::LengthRequired => return Verdict::Respond(Refusal::LengthRequired),
                BodyRead::Failed => {
                    return Verdict::Respond(Refusal::BadRequest(
                        "The request body could not be read.",
                    ))
                }
                BodyRead::Complete(buf) => {
                    if buf.len() as u64 > ctx.config.limits.max_body_size.0 {
                        return Verdict::Respond(Refusal::BodyTooLarge);
                    }
                    ctx.held_body = Some(buf);
                }
            }
        }
        let Some(known) = ctx.key_methods.clone() else {
            return Verdict::Continue;
        };
        let named: Vec<_> = body_named_methods(session, ctx)
            .into_iter()
            .filter(|m| !known.contains(m))
            .collect();
        if named.is_empty() {
            return Verdict::Continue;
        }
        let req = session.req_header();
        let methods: Vec<_> = known.iter().chain(&named).cloned().collect();
        let Some((secret, _)) = self.keys.find(req) else {
            return Verdict::Respond(Refusal::Auth(AuthFailure::Missing));
        };
        match self.keys.store.verify(
            secret,
            &route.name,
            &ctx.match_path,
            &methods,
            SystemTime::now(),
        ) {
            Ok(_) => {
                ctx.key_methods = Some(methods);
                Verdict::Continue
            }
            Err(f) => Verdict::Respond(Refusal::Auth(f)),
        }
    }
}

/// The methods the held body names in `_method` (see [`crate::method::body_methods`]), read once
/// per request and kept in the context for the stages that weigh them. None without a held body.
pub(super) fn body_named_methods(session: &Session, ctx: &mut RequestCtx) -> Vec<http::Method> {
    if let Some(named) = &ctx.body_methods {
        return named.clone();
    }
    let (Some(raw), Some(route)) = (&ctx.held_body, &ctx.route) else {
        return Vec::new();
    };
    let (content_type, encoding) = body_headers(&session.req_header().headers);
    // A coding that does not decode is read as sent, as Rack (which decodes none) reads it.
    let decoded = decode_body(encoding.as_deref(), raw, route.waf.body_limit)
        .unwrap_or(std::borrow::Cow::Borrowed(raw));
    let text = body_text(content_type.as_deref(), &decoded);
    let named = crate::method::body_methods(content_type.as_deref(), &text, &[]);
    ctx.body_methods = Some(named.clone());
    named
}
