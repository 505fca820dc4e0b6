//! Request stages: small types behind one trait, run in order by the proxy until one answers.
//!
//! Each stage is built from the compiled config and only reads it per request. The order is
//! cheapest first: normalise (request id, client IP, route), then the access checks that later
//! modules add (IP lists, API key, rate limits, WAF).

pub mod apikey;
pub mod limits;
mod normalize;
pub mod ratelimit;
pub mod waf;

use async_trait::async_trait;
use pingora::proxy::Session;

pub use normalize::{new_request_id, NormalizeStage};

use crate::problem::Refusal;
use crate::proxy::RequestCtx;

/// What a stage decided about a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Go on to the next stage.
    Continue,
    /// Answer the request with this refusal; later stages and the backend are skipped.
    Respond(Refusal),
}

/// One step of request handling.
#[async_trait]
pub trait Stage: Send + Sync {
    /// Short name for logs.
    fn name(&self) -> &'static str;

    /// Inspects (and may adjust) the request before it is proxied.
    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Verdict;
}

/// The ordered stages of a config.
pub struct Pipeline {
    stages: Vec<Box<dyn Stage>>,
}

impl Pipeline {
    /// The default order of stages: normalise first, then API keys, rate limits (which may be
    /// keyed by the API key), and the WAF (the most expensive); last, the methods a body the
    /// WAF read names as overrides, against the key's scopes and the rate limits.
    pub fn standard(
        waf: Option<std::sync::Arc<crate::waf::Waf>>,
        rate_limits: Option<std::sync::Arc<crate::ratelimit::RateLimits>>,
        api_keys: Option<std::sync::Arc<crate::auth::ApiKeys>>,
    ) -> Pipeline {
        let mut stages: Vec<Box<dyn Stage>> = vec![Box::new(NormalizeStage)];
        if let Some(k) = &api_keys {
            stages.push(Box::new(apikey::ApiKeyStage::new(k.clone())));
        }
        if let Some(r) = &rate_limits {
            stages.push(Box::new(ratelimit::RateLimitStage::new(r.clone())));
        }
        if let Some(w) = waf {
            stages.push(Box::new(waf::WafStage::new(w)));
        }
        // A `_method` in the body is known once the WAF has read it.
        if let Some(k) = api_keys {
            stages.push(Box::new(apikey::BodyMethodStage::new(k)));
        }
        if let Some(r) = rate_limits {
            stages.push(Box::new(ratelimit::BodyMethodLimitStage::new(r)));
        }
        Pipeline { stages }
    }

    /// Runs the stages in order until one answers.
    pub async fn run(&self, session: &mut Session, ctx: &mut RequestCtx) -> Verdict {
        for stage in &self.stages {
            if let v @ Verdict::Respond(_) = stage.on_request(session, ctx).await {
                log::debug!("stage {} answered request {}", stage.name(), ctx.request_id);
                return v;
            }
        }
        Verdict::Continue
    }
}
