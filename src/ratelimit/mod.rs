//! Rate limiting: GCRA policies keyed by client address, API key, a header or the route, with
//! per-key tiers; in process ([`local`], governor) or shared by several instances ([`redis`]).
//!
//! Every policy that applies to a request is checked before any is consumed, so a request
//! refused by one limit does not use up another. Responses carry the IETF `RateLimit-Policy` and
//! `RateLimit` fields ([`headers`]).

pub mod headers;
pub mod local;
pub mod redis;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::QuantaClock;
use governor::Quota;
use indexmap::IndexMap;
use sha2::{Digest, Sha256};

use local::LocalLimiter;

/// Requests per period, with a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaSpec {
    /// Requests per `per`.
    pub rate: u32,
    /// The period.
    pub per: Duration,
    /// Requests admitted at once after a quiet period.
    pub burst: u32,
}

impl QuotaSpec {
    /// Time between two requests at the sustained rate.
    pub fn interval(&self) -> Duration {
        self.per / self.rate.max(1)
    }

    /// The governor quota.
    pub fn quota(&self) -> Quota {
        let burst = NonZeroU32::new(self.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(self.interval().max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst)
    }
}

/// One part of a policy's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    /// The client address.
    ClientIp,
    /// The API key id (requests without a key are not counted by the policy).
    ApiKey,
    /// The value of a request header (requests without it are not counted).
    Header(http::HeaderName),
    /// The route name.
    Route,
}

/// Which requests a policy counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    /// Route names; empty = all.
    pub routes: Vec<String>,
    /// Normalised path prefixes (whole segments); empty = all.
    pub path_prefixes: Vec<String>,
    /// Methods; empty = all.
    pub methods: Vec<http::Method>,
}

impl Scope {
    /// Whether a request on `route` for `path` is counted, when it may be taken for any of
    /// `methods` (the method sent, and those it names as overrides: [`crate::method`]).
    pub fn applies(&self, route: &str, path: &str, methods: &[http::Method]) -> bool {
        (self.routes.is_empty() || self.routes.iter().any(|r| r == route))
            && (self.methods.is_empty() || methods.iter().any(|m| self.methods.contains(m)))
            && (self.path_prefixes.is_empty()
                || self.path_prefixes.iter().any(|p| {
                    // Counting `/login.json` against `/login` only ever counts more.
                    crate::route::under_prefix(path, p)
                        || crate::route::without_format(path)
                            .is_some_and(|stripped| crate::route::under_prefix(stripped, p))
                }))
    }
}

/// Enforce or only observe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyMode {
    /// Refuse with 429.
    Enforce,
    /// Count and log what would have been refused; never refuse.
    Shadow,
}

/// Everything that defines a policy; equal specs share counters across reloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySpec {
    /// Name (metric label, header policy name).
    pub name: String,
    /// The default quota.
    pub quota: QuotaSpec,
    /// Quotas for API-key tiers.
    pub tiers: IndexMap<String, QuotaSpec>,
    /// Key parts, all of which must be present.
    pub key: Vec<KeyPart>,
    /// Which requests count.
    pub scope: Scope,
    /// Enforce or shadow.
    pub mode: PolicyMode,
    /// Most keys held per quota table.
    pub max_keys: usize,
}

/// A compiled policy with its in-process tables (one per tier).
pub struct Policy {
    /// The definition.
    pub spec: PolicySpec,
    default: LocalLimiter<QuantaClock>,
    tiers: IndexMap<String, LocalLimiter<QuantaClock>>,
    reported_evictions: std::sync::atomic::AtomicU64,
}

/// What a request brings to key construction.
pub struct KeyInputs<'a> {
    /// Client address.
    pub client_ip: Option<std::net::IpAddr>,
    /// API key id.
    pub key_id: Option<&'a str>,
    /// API key tier.
    pub tier: Option<&'a str>,
    /// Route name.
    pub route: &'a str,
    /// Request headers.
    pub headers: &'a http::HeaderMap,
}

impl Policy {
    /// Builds a policy with empty tables.
    pub fn new(spec: PolicySpec) -> Policy {
        let clock = QuantaClock::default();
        let default = LocalLimiter::new(spec.quota.quota(), spec.max_keys, clock.clone());
        let tiers = spec
            .tiers
            .iter()
            .map(|(n, q)| {
                (
                    n.clone(),
                    LocalLimiter::new(q.quota(), spec.max_keys, clock.clone()),
                )
            })
            .collect();
        Policy {
            spec,
            default,
            tiers,
            reported_evictions: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The tier a request falls in (when the policy defines its key's tier).
    pub fn tier<'a>(&self, tier: Option<&'a str>) -> Option<&'a str> {
        tier.filter(|t| self.spec.tiers.contains_key(*t))
    }

    /// The quota for `tier`.
    pub fn quota_for(&self, tier: Option<&str>) -> QuotaSpec {
        tier.and_then(|t| self.spec.tiers.get(t))
            .copied()
            .unwrap_or(self.spec.quota)
    }

    /// The local limiter for `tier`.
    pub fn limiter(&self, tier: Option<&str>) -> &LocalLimiter<QuantaClock> {
        tier.and_then(|t| self.tiers.get(t))
            .unwrap_or(&self.default)
    }

    /// The key digest of a request, or `None` when a key part is missing.
    pub fn key(&self, inp: &KeyInputs<'_>) -> Option<[u8; 16]> {
        let mut h = Sha256::new();
        for part in &self.spec.key {
            match part {
                KeyPart::ClientIp => h.update(inp.client_ip?.to_string().as_bytes()),
                KeyPart::ApiKey => h.update(inp.key_id?.as_bytes()),
                KeyPart::Route => h.update(inp.route.as_bytes()),
                KeyPart::Header(name) => h.update(inp.headers.get(name)?.as_bytes()),
            }
            h.update([0x1f]);
        }
        let d = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&d[..16]);
        Some(out)
    }

    /// Keys held in the in-process tables.
    pub fn keys(&self) -> usize {
        self.default.table().len() + self.tiers.values().map(|l| l.table().len()).sum::<usize>()
    }

    /// Evictions since the last call (for counting).
    pub fn take_new_evictions(&self) -> u64 {
        let total = self.default.table().evictions()
            + self
                .tiers
                .values()
                .map(|l| l.table().evictions())
                .sum::<u64>();
        let before = self
            .reported_evictions
            .swap(total, std::sync::atomic::Ordering::Relaxed);
        total.saturating_sub(before)
    }

    /// Removes idle keys from the in-process tables.
    pub fn sweep(&self) {
        self.default.sweep();
        self.tiers.values().for_each(LocalLimiter::sweep);
    }
}

/// The rate limiting of a config: its policies and, when configured, the shared backend.
pub struct RateLimits {
    /// Policies in config order.
    pub policies: Vec<Arc<Policy>>,
    /// Redis backend shared by the policies, if any.
    pub redis: Option<Arc<redis::RedisLimiter>>,
    /// Also send `X-RateLimit-Limit`, `-Remaining`, `-Reset`.
    pub legacy_headers: bool,
}

/// The state of one policy for one request, as reported in headers and logs.
#[derive(Debug, Clone)]
pub struct PolicyState {
    /// Policy name.
    pub name: String,
    /// Enforce or shadow.
    pub mode: PolicyMode,
    /// Quota applied (tier or default).
    pub quota: QuotaSpec,
    /// The outcome.
    pub outcome: local::Outcome,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_and_keys() {
        let s = Scope {
            routes: vec!["api".into()],
            path_prefixes: vec!["/v1".into()],
            methods: vec![http::Method::POST],
        };
        let post = &[http::Method::POST][..];
        let get = &[http::Method::GET][..];
        assert!(s.applies("api", "/v1/orders", post));
        assert!(!s.applies("api", "/v10", post));
        assert!(!s.applies("web", "/v1", post));
        assert!(!s.applies("api", "/v1", get));
        // A GET that names POST as an override counts.
        assert!(s.applies("api", "/v1", &[http::Method::GET, http::Method::POST]));
        let p = Policy::new(PolicySpec {
            name: "p".into(),
            quota: QuotaSpec {
                rate: 10,
                per: Duration::from_secs(1),
                burst: 10,
            },
            tiers: IndexMap::new(),
            key: vec![
                KeyPart::ClientIp,
                KeyPart::Header(http::HeaderName::from_static("x-tenant")),
            ],
            scope: Scope::default(),
            mode: PolicyMode::Enforce,
            max_keys: 10,
        });
        let mut headers = http::HeaderMap::new();
        fn inp(h: &http::HeaderMap) -> KeyInputs<'_> {
            KeyInputs {
                client_ip: Some("192.0.2.1".parse().unwrap()),
                key_id: None,
                tier: None,
                route: "api",
                headers: h,
            }
        }
        assert!(
            p.key(&inp(&headers)).is_none(),
            "missing header: policy does not apply"
        );
        headers.insert("x-tenant", "a".parse().unwrap());
        let ka = p.key(&inp(&headers)).unwrap();
        headers.insert("x-tenant", "b".parse().unwrap());
        assert_ne!(ka, p.key(&inp(&headers)).unwrap());
        assert_eq!(
            QuotaSpec {
                rate: 10,
                per: Duration::from_secs(1),
                burst: 5
            }
            .interval(),
            Duration::from_millis(100)
        );
    }
}
