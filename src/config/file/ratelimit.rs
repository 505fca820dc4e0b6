//! `rate_limits:`: Redis and the limit policies.

use indexmap::IndexMap;
use serde::Deserialize;

use crate::config::source::Parsed;
use crate::config::units::HumanDuration;

/// `rate_limits:`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsFile {
    /// Share the limits between gateway instances through Redis.
    #[serde(default)]
    pub redis: Option<RedisFile>,
    /// Also send `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`.
    #[serde(default)]
    pub legacy_headers: bool,
    /// The policies.
    #[serde(default)]
    pub policies: Vec<Parsed<PolicyFile>>,
}

/// `rate_limits.redis:`.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedisFile {
    /// `redis://host:port/db`.
    pub url: String,
    /// Time allowed for one check (connection included).
    #[serde(default = "default_redis_timeout")]
    pub timeout: HumanDuration,
    /// Multiplexed connections.
    #[serde(default = "four")]
    pub pool_size: usize,
    /// `allow` (fail open) or `deny` (fail closed, 429) when Redis cannot answer.
    #[serde(default = "default_on_redis_error")]
    pub on_redis_error: OnRedisErrorFile,
    /// Prefix of every Redis key.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
}

/// Redis failure behaviour.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnRedisErrorFile {
    /// Admit.
    Allow,
    /// Refuse with 429.
    Deny,
}

/// One rate-limit policy.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Name (metric label and name in the RateLimit fields).
    pub name: String,
    /// Requests per `per`.
    pub rate: u32,
    /// The period (default 1s).
    #[serde(default = "one_second")]
    pub per: HumanDuration,
    /// Requests admitted at once (default: `rate`).
    #[serde(default)]
    pub burst: Option<u32>,
    /// Key parts: `client_ip`, `api_key`, `route`, `header:<name>`.
    #[serde(default = "default_policy_key")]
    pub key: Vec<String>,
    /// Which requests count (all by default).
    #[serde(default)]
    pub scope: ScopeFile,
    /// `enforce` or `shadow`.
    #[serde(default = "default_policy_mode")]
    pub mode: PolicyModeFile,
    /// Most keys tracked (idle keys are evicted first).
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
    /// Quotas for API-key tiers, by tier name.
    #[serde(default)]
    pub tiers: IndexMap<String, TierFile>,
}

/// A scope: which requests a rate-limit policy or an API key applies to. Empty lists mean all.
#[derive(Debug, Deserialize, Clone, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ScopeFile {
    /// Route names.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Path prefixes.
    #[serde(default)]
    pub path_prefixes: Vec<String>,
    /// Methods.
    #[serde(default)]
    pub methods: Vec<String>,
}

/// A tier's quota.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TierFile {
    /// Requests per `per`.
    pub rate: u32,
    /// The period (default: the policy's).
    #[serde(default)]
    pub per: Option<HumanDuration>,
    /// Burst (default: `rate`).
    #[serde(default)]
    pub burst: Option<u32>,
}

/// Policy modes.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PolicyModeFile {
    /// Refuse with 429.
    Enforce,
    /// Count and log only.
    Shadow,
}

fn default_redis_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_millis(50))
}
fn four() -> usize {
    4
}
fn default_on_redis_error() -> OnRedisErrorFile {
    OnRedisErrorFile::Allow
}
fn default_key_prefix() -> String {
    "portcullis".into()
}
fn one_second() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(1))
}
fn default_policy_key() -> Vec<String> {
    vec!["client_ip".into()]
}
fn default_policy_mode() -> PolicyModeFile {
    PolicyModeFile::Enforce
}
fn default_max_keys() -> usize {
    100_000
}
