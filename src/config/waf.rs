//! Compiling the `waf:` section and per-route WAF overrides into rule sets and policies.

use std::path::PathBuf;
use std::sync::Arc;

use super::compile::Compiler;
use super::file::{ExclusionFile, OnBodyLimitFile, RouteWafFile, WafFile, WafModeFile};
use super::source::Parsed;
use crate::route::RouteTable;
use crate::waf::ruleset::{self, RuleSet, RuleSource};
use crate::waf::target::TargetSpec;
use crate::waf::{Exclusion, Mode, OnBodyLimit, WafPolicy};

/// Largest `body_limit`: the most memory one request may hold while its body is inspected.
pub const MAX_BODY_LIMIT: u64 = 16 * 1024 * 1024;

/// The global WAF settings and the loaded rules.
pub struct WafGlobal {
    /// The section as written (defaults for every route).
    pub file: WafFile,
    /// The rules, when they loaded without problems.
    pub rules: Option<RuleSet>,
    /// Global exclusions with the routes they are limited to.
    pub exclusions: Vec<(Exclusion, Vec<String>)>,
}

impl Compiler<'_> {
    pub(super) fn build_waf(
        &mut self,
        g: super::waf::WafGlobal,
        routes: &RouteTable,
        parse_limits: crate::waf::ParseLimits,
    ) -> Option<Arc<crate::waf::Waf>> {
        let rules = g.rules?;
        let mut levels: Vec<u8> = routes
            .iter()
            .filter(|r| r.waf.mode != crate::waf::Mode::Off)
            .map(|r| r.waf.paranoia)
            .collect();
        levels.sort_unstable();
        levels.dedup();
        match crate::waf::Waf::build(rules, &levels) {
            Ok(mut w) => {
                w.limits = parse_limits;
                Some(Arc::new(w))
            }
            Err(m) => {
                self.err("waf.rules", m);
                None
            }
        }
    }

    /// Compiles `waf:`; `Ok(None)` when there is no such section.
    pub(super) fn waf_global(
        &mut self,
        parsed: Parsed<Option<WafFile>>,
    ) -> Result<Option<WafGlobal>, ()> {
        let Some(file) = self.doc.take(parsed, "waf", &mut self.diags).ok_or(())? else {
            return Ok(None);
        };
        let mut ok = true;
        if !(1..=4).contains(&file.paranoia) {
            self.err(
                "waf.paranoia",
                format!("{} is not a paranoia level (1-4)", file.paranoia),
            );
            ok = false;
        }
        if file.threshold == 0 {
            self.err("waf.threshold", "must be at least 1");
            ok = false;
        }
        ok &= self.body_limit("waf.body_limit", file.body_limit.0);
        let mut sources = Vec::new();
        for (i, r) in file.rules.iter().enumerate() {
            if r == "builtin" {
                sources.extend(crate::waf::builtin::sources());
                continue;
            }
            match ruleset::rule_files(&[self.resolve(r)]) {
                Ok(files) => sources.extend(files.into_iter().map(RuleSource::File)),
                Err((p, m)) => {
                    self.err(&format!("waf.rules[{i}]"), format!("{}: {m}", p.display()));
                    ok = false;
                }
            }
        }
        if sources.is_empty() && ok {
            self.err("waf.rules", "no rule files found");
            ok = false;
        }
        let rules = if ok {
            ruleset::load_sources(&sources, &mut self.diags)
        } else {
            None
        };
        if let Some(rs) = &rules {
            self.sources.extend(rs.files.iter().cloned());
            // Directories are watched too, so new rule files are noticed.
            for r in &file.rules {
                if r != "builtin" {
                    let p: PathBuf = self.resolve(r);
                    if p.is_dir() {
                        self.sources.push(p);
                    }
                }
            }
        }
        let mut exclusions = Vec::new();
        for (i, e) in file.exclusions.iter().enumerate() {
            if let Some(x) = self.exclusion(&format!("waf.exclusions[{i}]"), e, rules.as_ref()) {
                exclusions.push((x, e.routes.clone()));
            }
        }
        Ok(Some(WafGlobal {
            file,
            rules,
            exclusions,
        }))
    }

    fn body_limit(&mut self, path: &str, limit: u64) -> bool {
        if limit > MAX_BODY_LIMIT {
            self.err(
                path,
                format!("{limit} bytes is more than the {MAX_BODY_LIMIT} bytes (16MiB) the gateway holds for inspection"),
            );
            return false;
        }
        true
    }

    fn exclusion(
        &mut self,
        base: &str,
        e: &ExclusionFile,
        rules: Option<&RuleSet>,
    ) -> Option<Exclusion> {
        let mut ok = true;
        let mut ids = Vec::new();
        let mut tags = Vec::new();
        if e.rules.is_empty() {
            self.err(
                &format!("{base}.rules"),
                "name at least one rule id or tag:<tag>",
            );
            ok = false;
        }
        for (i, r) in e.rules.iter().enumerate() {
            let text = match r {
                serde_yaml::Value::Number(n) => n.to_string(),
                serde_yaml::Value::String(s) => s.clone(),
                _ => {
                    self.err(
                        &format!("{base}.rules[{i}]"),
                        "expected a rule id or tag:<tag>",
                    );
                    ok = false;
                    continue;
                }
            };
            if let Some(tag) = text.strip_prefix("tag:") {
                // A tag names a rule's tag or its category; one that no rule carries is a typo
                // that would silently exclude nothing.
                if let Some(rs) = rules {
                    if !rs
                        .rules
                        .iter()
                        .any(|r| *r.category == *tag || r.tags.iter().any(|t| **t == *tag))
                    {
                        self.err(
                            &format!("{base}.rules[{i}]"),
                            format!("no rule has tag or category {tag:?}"),
                        );
                        ok = false;
                    }
                }
                tags.push(tag.to_string());
            } else {
                if let Some(rs) = rules {
                    if !rs.rules.iter().any(|r| *r.id == *text) {
                        self.err(
                            &format!("{base}.rules[{i}]"),
                            format!("no rule has id {text:?}"),
                        );
                        ok = false;
                    }
                }
                ids.push(text);
            }
        }
        let mut targets = Vec::new();
        for (i, t) in e.targets.iter().enumerate() {
            match TargetSpec::parse(t) {
                Ok(ts) => targets.extend(ts),
                Err(m) => {
                    self.err(&format!("{base}.targets[{i}]"), m);
                    ok = false;
                }
            }
        }
        ok.then_some(Exclusion { ids, tags, targets })
    }

    /// The policy of route `name`: global settings overlaid with the route's own.
    pub(super) fn route_policy(
        &mut self,
        base: &str,
        name: &str,
        own: Option<&RouteWafFile>,
        global: Option<&WafGlobal>,
    ) -> Option<WafPolicy> {
        let Some(g) = global else {
            if own.is_some() {
                self.err(
                    &format!("{base}.waf"),
                    "route WAF settings need a top-level `waf:` section",
                );
                return None;
            }
            return Some(WafPolicy {
                mode: Mode::Off,
                ..WafPolicy::default()
            });
        };
        let own_default = RouteWafFile::default();
        let own = own.unwrap_or(&own_default);
        let mode = match own.mode.unwrap_or(g.file.mode) {
            WafModeFile::Block => Mode::Block,
            WafModeFile::Detect => Mode::Detect,
            WafModeFile::Off => Mode::Off,
        };
        let paranoia = own.paranoia.unwrap_or(g.file.paranoia);
        let mut ok = true;
        if !(1..=4).contains(&paranoia) {
            self.err(
                &format!("{base}.waf.paranoia"),
                format!("{paranoia} is not a paranoia level (1-4)"),
            );
            ok = false;
        }
        let threshold = own.threshold.unwrap_or(g.file.threshold);
        if threshold == 0 {
            self.err(&format!("{base}.waf.threshold"), "must be at least 1");
            ok = false;
        }
        let body_limit = own.body_limit.unwrap_or(g.file.body_limit).0;
        if own.body_limit.is_some() {
            ok &= self.body_limit(&format!("{base}.waf.body_limit"), body_limit);
        }
        let on_body_limit = match own.on_body_limit.unwrap_or(g.file.on_body_limit) {
            OnBodyLimitFile::Reject => OnBodyLimit::Reject,
            OnBodyLimitFile::Pass => OnBodyLimit::Pass,
        };
        let mut exclusions: Vec<Exclusion> = g
            .exclusions
            .iter()
            .filter(|(_, routes)| routes.is_empty() || routes.iter().any(|r| r == name))
            .map(|(e, _)| e.clone())
            .collect();
        for (i, e) in own.exclusions.iter().enumerate() {
            let path = format!("{base}.waf.exclusions[{i}]");
            if !e.routes.is_empty() {
                self.err(
                    &format!("{path}.routes"),
                    "a route's own exclusions cannot name routes",
                );
                ok = false;
            }
            match self.exclusion(&path, e, g.rules.as_ref()) {
                Some(x) => exclusions.push(x),
                None => ok = false,
            }
        }
        ok.then_some(WafPolicy {
            mode,
            paranoia,
            threshold,
            exclusions,
            body_limit: body_limit as usize,
            on_body_limit,
        })
    }
}
