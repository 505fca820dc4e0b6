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
