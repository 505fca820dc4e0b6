//! Compiling `rate_limits:` into policies and the optional Redis backend.
//!
//! Policies whose definition did not change keep their counters across a reload, and an
//! unchanged Redis backend keeps its connections.

use std::collections::HashSet;
use std::sync::Arc;

use super::compile::Compiler;
use super::file::{OnRedisErrorFile, PolicyFile, PolicyModeFile, RateLimitsFile};
use super::source::Parsed;
use super::RuntimeConfig;
use crate::ratelimit::redis::{OnRedisError, RedisLimiter, RedisSpec};
use crate::ratelimit::{KeyPart, Policy, PolicyMode, PolicySpec, QuotaSpec, RateLimits, Scope};
use crate::route::{normalize_path, RouteTable};

impl Compiler<'_> {
    /// Compiles `rate_limits:`; `Ok(None)` when absent.
    pub(super) fn rate_limits(
        &mut self,
        parsed: Parsed<Option<RateLimitsFile>>,
        routes: Option<&RouteTable>,
        previous: Option<&RuntimeConfig>,
    ) -> Result<Option<RateLimits>, ()> {
        let Some(f) = self
            .doc
            .take(parsed, "rate_limits", &mut self.diags)
            .ok_or(())?
        else {
            return Ok(None);
        };
        let before = self.diags.len();
        let prev = previous.and_then(|p| p.rate_limits.as_ref());
        let redis = match &f.redis {
            None => None,
            Some(r) => {
                if r.pool_size == 0 || r.pool_size > 64 {
                    self.err("rate_limits.redis.pool_size", "must be between 1 and 64");
                }
                if r.timeout.0.is_zero() {
                    self.err("rate_limits.redis.timeout", "must be greater than zero");
                }
                let spec = RedisSpec {
                    url: r.url.clone(),
                    timeout: r.timeout.0,
                    pool_size: r.pool_size.clamp(1, 64),
                    on_error: match r.on_redis_error {
                        OnRedisErrorFile::Allow => OnRedisError::Allow,
                        OnRedisErrorFile::Deny => OnRedisError::Deny,
                    },
                    key_prefix: r.key_prefix.clone(),
                };
                match prev
                    .and_then(|p| p.redis.as_ref())
                    .filter(|l| l.spec == spec)
                {
                    Some(l) => Some(l.clone()),
                    None => match RedisLimiter::new(spec) {
                        Ok(l) => Some(Arc::new(l)),
                        Err(e) => {
                            self.err(
                                "rate_limits.redis.url",
                                format!("{:?} is not a Redis URL: {e}", r.url),
                            );
                            None
                        }
                    },
                }
            }
        };
        let mut policies = Vec::new();
        let mut names = HashSet::new();
        for (i, item) in f.policies.into_iter().enumerate() {
            let base = format!("rate_limits.policies[{i}]");
            let Some(p) = self.doc.take(item, &base, &mut self.diags) else {
                continue;
            };
            if !names.insert(p.name.clone()) {
                self.err(
                    &format!("{base}.name"),
                    format!("duplicate policy name {:?}", p.name),
                );
            }
            if let Some(spec) = self.policy_spec(&base, p, routes) {
                let reused = prev
                    .and_then(|r| r.policies.iter().find(|old| old.spec == spec))
                    .cloned();
                policies.push(reused.unwrap_or_else(|| Arc::new(Policy::new(spec))));
            }
        }
        if self.diags.len() != before {
            return Err(());
        }
        Ok(Some(RateLimits {
            policies,
            redis,
            legacy_headers: f.legacy_headers,
        }))
    }

    fn quota(
        &mut self,
        path: &str,
        rate: u32,
        per: std::time::Duration,
        burst: Option<u32>,
    ) -> Option<QuotaSpec> {
        let mut ok = true;
        if rate == 0 {
            self.err(&format!("{path}.rate"), "must be at least 1");
            ok = false;
        }
        if per.is_zero() {
            self.err(&format!("{path}.per"), "must be greater than zero");
            ok = false;
        }
        if burst == Some(0) {
            self.err(&format!("{path}.burst"), "must be at least 1");
            ok = false;
        }
        ok.then(|| QuotaSpec {
            rate,
            per,
            burst: burst.unwrap_or(rate),
        })
    }

    fn policy_spec(
        &mut self,
        base: &str,
        p: PolicyFile,
        routes: Option<&RouteTable>,
    ) -> Option<PolicySpec> {
        let before = self.diags.len();
        self.check_name(base, &p.name);
        let quota = self.quota(base, p.rate, p.per.0, p.burst);
        let mut tiers = indexmap::IndexMap::new();
        for (name, t) in &p.tiers {
            let tp = format!("{base}.tiers.{name}");
            if let Some(q) = self.quota(&tp, t.rate, t.per.map(|d| d.0).unwrap_or(p.per.0), t.burst)
            {
                tiers.insert(name.clone(), q);
            }
        }
        let mut key = Vec::new();
        if p.key.is_empty() {
            self.err(&format!("{base}.key"), "name at least one key part");
        }
        for (i, k) in p.key.iter().enumerate() {
            let part = match k.as_str() {
                "client_ip" => Some(KeyPart::ClientIp),
                "api_key" => Some(KeyPart::ApiKey),
                "route" => Some(KeyPart::Route),
                other => match other.strip_prefix("header:") {
                    Some(h) => match http::HeaderName::from_bytes(h.trim().as_bytes()) {
                        Ok(n) => Some(KeyPart::Header(n)),
                        Err(_) => {
                            self.err(
                                &format!("{base}.key[{i}]"),
                                format!("{h:?} is not a header name"),
                            );
                            None
                        }
                    },
                    None => {
                        self.err(
                            &format!("{base}.key[{i}]"),
                            format!("unknown key part {other:?}; use client_ip, api_key, route or header:<name>"),
                        );
                        None
                    }
                },
            };
            key.extend(part);
        }
        let mut scope = Scope::default();
        for (i, r) in p.scope.routes.iter().enumerate() {
            if routes.is_some_and(|t| t.by_name(r).is_none()) {
                self.err(
                    &format!("{base}.scope.routes[{i}]"),
                    format!("unknown route {r:?}"),
                );
            }
            scope.routes.push(r.clone());
        }
        for (i, pp) in p.scope.path_prefixes.iter().enumerate() {
            match normalize_path(pp) {
                Some(n) if n != "*" => {
                    let t = n.trim_end_matches('/');
                    scope.path_prefixes.push(if t.is_empty() {
                        "/".into()
                    } else {
                        t.to_string()
                    });
                }
                _ => self.err(
                    &format!("{base}.scope.path_prefixes[{i}]"),
                    format!("{pp:?} must start with /"),
                ),
            }
        }
        for (i, m) in p.scope.methods.iter().enumerate() {
            match http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                Ok(m) => scope.methods.push(m),
                Err(_) => self.err(
                    &format!("{base}.scope.methods[{i}]"),
                    format!("{m:?} is not a method"),
                ),
            }
        }
        if p.max_keys == 0 {
            self.err(&format!("{base}.max_keys"), "must be at least 1");
        }
        if self.diags.len() != before {
            return None;
        }
        Some(PolicySpec {
            name: p.name,
            quota: quota?,
            tiers,
            key,
            scope,
            mode: match p.mode {
                PolicyModeFile::Enforce => PolicyMode::Enforce,
                PolicyModeFile::Shadow => PolicyMode::Shadow,
            },
            max_keys: p.max_keys,
        })
    }
}
