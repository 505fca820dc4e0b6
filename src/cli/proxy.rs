//! `portcullis proxy`: the config of zero-config mode.

use std::net::SocketAddr;
use std::path::PathBuf;

/// The options of `portcullis proxy`.
pub struct ProxyArgs<'a> {
    pub listen: SocketAddr,
    pub upstream: &'a str,
    pub admin: Option<SocketAddr>,
    pub rules: &'a [PathBuf],
    pub paranoia: u8,
    pub detect_only: bool,
    pub no_waf: bool,
    /// `N/s`, `N/m` or `N/h` per client address.
    pub rate_limit: Option<&'a str>,
}

/// The config `portcullis proxy` runs with, as YAML (JSON strings are valid YAML scalars).
pub fn proxy_config(a: &ProxyArgs<'_>) -> anyhow::Result<String> {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let upstream = a.upstream;
    let mut y = String::new();
    y.push_str(&format!(
        "listeners:\n  - name: main\n    address: {}\n",
        q(&a.listen.to_string())
    ));
    if let Some(ad) = a.admin {
        y.push_str(&format!("admin:\n  address: {}\n", q(&ad.to_string())));
    }
    if let Some(rl) = a.rate_limit {
        let (n, unit) = rl
            .split_once('/')
            .ok_or_else(|| anyhow::anyhow!("--rate-limit {rl:?}: expected N/s, N/m or N/h"))?;
        let n: u32 = n
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--rate-limit {rl:?}: {n:?} is not a whole number"))?;
        let per = match unit.trim() {
            "s" => "1s",
            "m" => "1m",
            "h" => "1h",
            u => anyhow::bail!("--rate-limit {rl:?}: unit {u:?} is not s, m or h"),
        };
        y.push_str(&format!(
            "rate_limits:\n  policies:\n    - {{ name: per-client, rate: {n}, per: {per}, key: [client_ip] }}\n"
        ));
    }
    if !a.no_waf {
        let rules: Vec<String> = if a.rules.is_empty() {
            vec![q("builtin")]
        } else {
            a.rules
                .iter()
                .map(|p| std::path::absolute(p).map(|p| q(&p.to_string_lossy())))
                .collect::<Result<_, _>>()?
        };
        y.push_str(&format!(
            "waf:\n  rules: [{}]\n  paranoia: {}\n  mode: {}\n",
            rules.join(", "),
            a.paranoia,
            if a.detect_only { "detect" } else { "block" }
        ));
    }
    y.push_str(&format!(
        "upstreams:\n  default:\n    backends: [{}]\nroutes:\n  - name: default\n    upstream: default\n",
        q(upstream)
    ));
    Ok(y)
}
