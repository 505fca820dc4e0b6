//! Compiling `routes:`: host and path matching, the upstream, and each route's policy.

use std::collections::HashSet;
use std::sync::Arc;

use indexmap::IndexMap;

use super::compile::Compiler;
use super::file::RouteFile;
use crate::route::{normalize_path, HostPattern, Route, RouteTable};
use crate::upstream::UpstreamGroup;

impl Compiler<'_> {
    pub(super) fn routes(
        &mut self,
        parsed: super::source::Parsed<Vec<super::source::Parsed<RouteFile>>>,
        upstreams: &IndexMap<String, Arc<UpstreamGroup>>,
        waf: Option<&super::waf::WafGlobal>,
    ) -> Option<RouteTable> {
        let items = self.doc.take(parsed, "routes", &mut self.diags)?;
        if items.is_empty() {
            self.err("routes", "at least one route is required");
            return None;
        }
        let mut out = Vec::new();
        let mut names = HashSet::new();
        let mut ok = true;
        for (i, item) in items.into_iter().enumerate() {
            let base = format!("routes[{i}]");
            let Some(r) = self.doc.take(item, &base, &mut self.diags) else {
                ok = false;
                continue;
            };
            match self.route(&base, r, upstreams, &mut names, waf) {
                Some(route) => {
                    if let Some(other) = out.iter().find(|o: &&Arc<Route>| same_requests(o, &route))
                    {
                        self.err(
                            &format!("{base}.path_prefix"),
                            format!(
                                "route {:?} already takes the requests of {:?} for the same hosts \
                                 (path prefixes match without regard to case)",
                                &*other.name, route.prefix
                            ),
                        );
                        ok = false;
                    }
                    out.push(Arc::new(route));
                }
                None => ok = false,
            }
        }
        ok.then(|| RouteTable::new(out))
    }

    pub(super) fn route(
        &mut self,
        base: &str,
        r: RouteFile,
        upstreams: &IndexMap<String, Arc<UpstreamGroup>>,
        names: &mut HashSet<String>,
        waf: Option<&super::waf::WafGlobal>,
    ) -> Option<Route> {
        let mut ok = true;
        if !self.check_name(base, &r.name) {
            ok = false;
        } else if !names.insert(r.name.clone()) {
            self.err(
                &format!("{base}.name"),
                format!("duplicate route name {:?}", r.name),
            );
            ok = false;
        }
        let mut hosts = Vec::new();
        for (i, h) in r.hosts.iter().enumerate() {
            match HostPattern::parse(h) {
                Ok(p) => hosts.push(p),
                Err(m) => {
                    self.err(&format!("{base}.hosts[{i}]"), m);
                    ok = false;
                }
            }
        }
        let prefix = match normalize_path(&r.path_prefix) {
            Some(p) if p != "*" => {
                let trimmed = p.trim_end_matches('/');
                if trimmed.is_empty() {
                    "/".to_string()
                } else {
                    trimmed.to_string()
                }
            }
            _ => {
                self.err(
                    &format!("{base}.path_prefix"),
                    format!("{:?} must start with /", r.path_prefix),
                );
                ok = false;
                String::new()
            }
        };
        let upstream = match upstreams.get(&r.upstream) {
            Some(u) => Some(u.clone()),
            None if self.broken_upstreams.contains(&r.upstream) => None,
            None => {
                let known: Vec<&str> = self.upstream_names.iter().map(String::as_str).collect();
                self.err(
                    &format!("{base}.upstream"),
                    format!(
                        "unknown upstream {:?}; defined: {}",
                        r.upstream,
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                None
            }
        };
        let policy = self.route_policy(base, &r.name, r.waf.as_ref(), waf);
        if r.auth == super::file::AuthFile::ApiKey && !self.has_api_keys {
            self.err(
                &format!("{base}.auth"),
                "api_key needs an api_keys: section naming the keys file",
            );
            ok = false;
        }
        if !ok {
            return None;
        }
        Some(Route {
            name: r.name.as_str().into(),
            hosts,
            prefix,
            upstream: upstream?,
            waf: Arc::new(policy?),
            auth: r.auth == super::file::AuthFile::ApiKey,
            require_client_cert: r.require_client_cert,
        })
    }
}

/// Whether two routes match exactly the same requests: the same hosts and the same path prefix
/// but for ASCII case, which [`crate::route::under_prefix`] does not tell apart.
fn same_requests(a: &Route, b: &Route) -> bool {
    a.prefix.eq_ignore_ascii_case(&b.prefix)
        && a.hosts.iter().all(|h| b.hosts.contains(h))
        && b.hosts.iter().all(|h| a.hosts.contains(h))
}
