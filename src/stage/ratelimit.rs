//! The rate-limit stage: finds the policies that apply to a request, checks them all (in
//! process or in Redis) and consumes only if every enforcing one admits the request; refuses
//! with 429 and `Retry-After` otherwise. What it found is kept for the response fields and logs.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::proxy::Session;

use super::{Stage, Verdict};
use crate::problem::Refusal;
use crate::proxy::RequestCtx;
use crate::ratelimit::headers::retry_after_secs;
use crate::ratelimit::local::{check_all, Outcome};
use crate::ratelimit::redis::{OnRedisError, RedisCheck};
use crate::ratelimit::{KeyInputs, Policy, PolicyMode, PolicyState, RateLimits};

/// Enforces the rate-limit policies of a config.
pub struct RateLimitStage {
    limits: Arc<RateLimits>,
    /// Whether some policy's scope names methods (so that overrides matter).
    by_method: bool,
}

impl RateLimitStage {
    /// A stage for `limits`.
    pub fn new(limits: Arc<RateLimits>) -> RateLimitStage {
        let by_method = limits
            .policies
            .iter()
            .any(|p| !p.spec.scope.methods.is_empty());
        RateLimitStage { limits, by_method }
    }
}

/// A policy that counts a request, with the request's tier for it and its key digest.
type Counted<'a> = (&'a Arc<Policy>, Option<&'a str>, [u8; 16]);

impl RateLimitStage {
    /// The policies that count a request taken for any of `methods`, leaving out those that
    /// already counted it for `counted`.
    fn counting<'a>(
        &'a self,
        session: &Session,
        ctx: &RequestCtx,
        tier: Option<&'a str>,
        methods: &[http::Method],
        counted: &[http::Method],
    ) -> Vec<Counted<'a>> {
        let route = ctx.route_label();
        let req = session.req_header();
        let inputs = KeyInputs {
            client_ip: ctx.client_ip,
            key_id: ctx.key_id.as_deref(),
            tier,
            route,
            headers: &req.headers,
        };
        let path = ctx.match_path.as_str();
        self.limits
            .policies
            .iter()
            .filter(|p| p.spec.scope.applies(route, path, methods))
            .filter(|p| counted.is_empty() || !p.spec.scope.applies(route, path, counted))
            .filter_map(|p| {
                let tier = p.tier(tier);
                p.key(&inputs).map(|k| (p, tier, k))
            })
            .collect()
    }
}

#[async_trait]
impl Stage for RateLimitStage {
    fn name(&self) -> &'static str {
        "rate_limit"
    }

    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Verdict {
        let req = session.req_header();
        // A policy that names methods also counts a request that names one as an override.
        let methods = if self.by_method {
            crate::method::request_methods(&req.method, &req.headers, ctx.raw_query.as_deref())
        } else {
            vec![req.method.clone()]
        };
        let tier = ctx.key_tier.clone();
        let applicable = self.counting(session, ctx, tier.as_deref(), &methods, &[]);
        self.enforce(ctx, &applicable).await
    }
}

/// Counts, once the WAF has read the body, a `POST` whose body names a method in `_method`
/// against the policies whose scopes name that method and did not count it already: Rails,
/// Laravel, Symfony and Spring take a `POST` with `_method=DELETE` for a `DELETE`.
pub struct BodyMethodLimitStage {
    limits: RateLimitStage,
}

impl BodyMethodLimitStage {
    /// A stage for `limits`.
    pub fn new(limits: Arc<RateLimits>) -> BodyMethodLimitStage {
        BodyMethodLimitStage {
            limits: RateLimitStage::new(limits),
        }
    }
}

#[async_trait]
impl Stage for BodyMethodLimitStage {
    fn name(&self) -> &'static str {
        "rate_limit_body_method"
    }

    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Verdict {
        let stage = &self.limits;
        if session.req_header().method != http::Method::POST
            || ctx.held_body.is_none()
            || !stage.by_method
        {
            return Verdict::Continue;
        }
        let named = super::apikey::body_named_methods(session, ctx);
        if named.is_empty() {
            return Verdict::Continue;
        }
        let req = session.req_header();
        let counted =
            crate::method::request_methods(&req.method, &req.headers, ctx.raw_query.as_deref());
        let mut methods = counted.clone();
        methods.extend(named.into_iter().filter(|m| !counted.contains(m)));
        let tier = ctx.key_tier.clone();
        let applicable = stage.counting(session, ctx, tier.as_deref(), &methods, &counted);
        stage.enforce(ctx, &applicable).await
    }
}

impl RateLimitStage {
    /// Checks every policy of `applicable` and consumes only if every enforcing one admits the
    /// request; records what each found.
    async fn enforce(&self, ctx: &mut RequestCtx, applicable: &[Counted<'_>]) -> Verdict {
        if applicable.is_empty() {
            return Verdict::Continue;
        }

        let outcomes: Vec<Outcome> = match &self.limits.redis {
            None => {
                let checks: Vec<_> = applicable
                    .iter()
                    .map(|(p, tier, k)| {
                        (
                            p.limiter(*tier),
                            u128::from_be_bytes(*k),
                            p.spec.mode == PolicyMode::Enforce,
                        )
                    })
                    .collect();
                check_all(&checks)
            }
            Some(redis) => {
                let checks: Vec<RedisCheck> = applicable
                    .iter()
                    .map(|(p, tier, k)| {
                        let q = p.quota_for(*tier);
                        RedisCheck {
                            key: format!(
                                "{}:{}:{}:{}",
                                redis.spec.key_prefix,
                                p.spec.name,
                                tier.unwrap_or("-"),
                                hex::encode(k)
                            ),
                            interval: q.interval(),
                            burst: q.burst,
                            enforce: p.spec.mode == PolicyMode::Enforce,
                        }
                    })
                    .collect();
                let started = Instant::now();
                let result = redis.check_all(&checks).await;
                ctx.redis_latency = Some(started.elapsed());
                match result {
                    Ok(o) => o,
                    Err(e) => {
                        log::warn!(
                            "rate limiting through Redis failed ({e}); applying on_redis_error"
                        );
                        return match redis.spec.on_error {
                            OnRedisError::Allow => {
                                ctx.redis_error = Some("allowed");
                                Verdict::Continue
                            }
                            OnRedisError::Deny => {
                                ctx.redis_error = Some("denied");
                                Verdict::Respond(Refusal::RateLimited { retry_after: 1 })
                            }
                        };
                    }
                }
            }
        };

        let mut retry_after = None;
        for ((p, tier, _), outcome) in applicable.iter().zip(outcomes) {
            if let (PolicyMode::Enforce, Outcome::Limited { retry_after: wait }) =
                (p.spec.mode, outcome)
            {
                retry_after = retry_after.max(Some(retry_after_secs(wait)));
            }
            ctx.rate_limit.push(PolicyState {
                name: p.spec.name.clone(),
                mode: p.spec.mode,
                quota: p.quota_for(*tier),
                outcome,
            });
        }
        match retry_after {
            Some(secs) => Verdict::Respond(Refusal::RateLimited { retry_after: secs }),
            None => Verdict::Continue,
        }
    }
}
