//! The shipped rule set, compiled into the binary so `rules: [builtin]` (the default) works
//! wherever the gateway runs. The same files live in `rules/` for reading and editing.

use std::path::PathBuf;

use super::ruleset::RuleSource;

/// The shipped rule files, by repository path.
pub const FILES: &[(&str, &str)] = &[
    ("rules/java.yaml", include_str!("../../rules/java.yaml")),
    ("rules/ldap.yaml", include_str!("../../rules/ldap.yaml")),
    ("rules/lfi.yaml", include_str!("../../rules/lfi.yaml")),
    ("rules/nodejs.yaml", include_str!("../../rules/nodejs.yaml")),
    ("rules/nosql.yaml", include_str!("../../rules/nosql.yaml")),
    ("rules/php.yaml", include_str!("../../rules/php.yaml")),
    (
        "rules/protocol.yaml",
        include_str!("../../rules/protocol.yaml"),
    ),
    ("rules/rce.yaml", include_str!("../../rules/rce.yaml")),
    (
        "rules/redirect.yaml",
        include_str!("../../rules/redirect.yaml"),
    ),
    ("rules/rfi.yaml", include_str!("../../rules/rfi.yaml")),
    (
        "rules/scanners.yaml",
        include_str!("../../rules/scanners.yaml"),
    ),
    (
        "rules/session.yaml",
        include_str!("../../rules/session.yaml"),
    ),
    ("rules/sqli.yaml", include_str!("../../rules/sqli.yaml")),
    ("rules/ssi.yaml", include_str!("../../rules/ssi.yaml")),
    ("rules/ssrf.yaml", include_str!("../../rules/ssrf.yaml")),
    ("rules/ssti.yaml", include_str!("../../rules/ssti.yaml")),
    ("rules/xss.yaml", include_str!("../../rules/xss.yaml")),
    ("rules/xxe.yaml", include_str!("../../rules/xxe.yaml")),
];

/// The shipped rules as rule sources.
pub fn sources() -> Vec<RuleSource> {
    FILES
        .iter()
        .map(|(name, text)| RuleSource::Embedded {
            name: PathBuf::from(format!("builtin:{name}")),
            text: std::borrow::Cow::Borrowed(*text),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_file_in_rules_dir_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml"))
            .map(|n| format!("rules/{n}"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = super::FILES.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(
            on_disk, embedded,
            "src/waf/builtin.rs must list every rules/*.yaml"
        );
    }
}
