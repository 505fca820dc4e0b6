//! `waf:` and the per-route `waf:` overrides.

use serde::Deserialize;

use crate::config::units::ByteSize;

/// `waf:` — the rules and the default policy of every route.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WafFile {
    /// Rule files or directories (relative to this file), or `builtin` for the shipped rules.
    #[serde(default = "default_rules")]
    pub rules: Vec<String>,
    /// `block`, `detect` (log and count only) or `off`.
    #[serde(default = "default_mode")]
    pub mode: WafModeFile,
    /// Paranoia level 1–4: higher runs more rules, with more false positives.
    #[serde(default = "one_u8")]
    pub paranoia: u8,
    /// Anomaly score at which a request is blocked.
    #[serde(default = "five")]
    pub threshold: u32,
    /// Largest body buffered and inspected (at most 16MiB).
    #[serde(default = "default_body_limit")]
    pub body_limit: ByteSize,
    /// `reject` (413) or `pass` (forward uninspected) for larger bodies.
    #[serde(default = "default_on_body_limit")]
    pub on_body_limit: OnBodyLimitFile,
    /// Rules silenced for some routes and/or targets.
    #[serde(default)]
    pub exclusions: Vec<ExclusionFile>,
}

/// `routes[].waf:` — overrides of the global WAF policy for one route.
#[derive(Debug, Deserialize, Clone, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct RouteWafFile {
    /// Mode for this route.
    pub mode: Option<WafModeFile>,
    /// Paranoia level for this route.
    pub paranoia: Option<u8>,
    /// Threshold for this route.
    pub threshold: Option<u32>,
    /// Body inspection limit for this route.
    pub body_limit: Option<ByteSize>,
    /// Oversized-body handling for this route.
    pub on_body_limit: Option<OnBodyLimitFile>,
    /// Exclusions for this route (added to the global ones).
    #[serde(default)]
    pub exclusions: Vec<ExclusionFile>,
}

/// WAF modes.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WafModeFile {
    /// Refuse with 403.
    Block,
    /// Log and count only.
    Detect,
    /// No inspection.
    Off,
}

/// Oversized-body handling.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnBodyLimitFile {
    /// 413.
    Reject,
    /// Forward without inspecting the body.
    Pass,
}

/// One exclusion.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExclusionFile {
    /// Rule ids, or `tag:<tag>` / `tag:<category>`.
    pub rules: Vec<serde_yaml::Value>,
    /// Only for these targets (`args:comment`, `json:post.body`); empty = all.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Only on these routes (global exclusions only); empty = all.
    #[serde(default)]
    pub routes: Vec<String>,
}

fn default_rules() -> Vec<String> {
    vec!["builtin".into()]
}
fn default_mode() -> WafModeFile {
    WafModeFile::Block
}
fn one_u8() -> u8 {
    1
}
fn five() -> u32 {
    5
}
fn default_body_limit() -> ByteSize {
    ByteSize(1024 * 1024)
}
fn default_on_body_limit() -> OnBodyLimitFile {
    OnBodyLimitFile::Reject
}
