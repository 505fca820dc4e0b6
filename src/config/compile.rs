//! Validation and compilation of `gateway.yaml` into a [`RuntimeConfig`].
//!
//! Every problem is collected with its location; compilation fails only at the end, so
//! `portcullis check` reports all of them in one run.

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use indexmap::IndexMap;

use super::file::{GatewayFile, HealthCheckFile, RouteFile, UpstreamFile};
use super::source::{Diagnostics, SourceDoc};
use super::{AccessLogTarget, ListenerSpec, RuntimeConfig};
use crate::ipset::IpSet;
use crate::route::{normalize_path, HostPattern, Route, RouteTable};
use crate::stage::Pipeline;
use crate::upstream::{HealthSpec, UpstreamGroup, UpstreamSpec};

/// Top-level keys of `gateway.yaml`, for the unknown-field message.
const TOP_LEVEL: &[&str] = &[
    "server",
    "listeners",
    "admin",
    "trusted_proxies",
    "access_log",
    "reload",
    "upstreams",
    "routes",
    "waf",
    "rate_limits",
    "api_keys",
    "limits",
];

/// Reads, validates and compiles the config at `path`.
///
/// `previous` is the config being replaced, if any: upstream groups whose definition did not
/// change are carried over with their health state.
pub fn load(path: &Path, previous: Option<&RuntimeConfig>) -> Result<RuntimeConfig, Diagnostics> {
    let doc = SourceDoc::read(path).map_err(|d| Diagnostics(vec![*d]))?;
    compile(&doc, previous)
}

/// Validates and compiles a parsed document.
pub fn compile(
    doc: &SourceDoc,
    previous: Option<&RuntimeConfig>,
) -> Result<RuntimeConfig, Diagnostics> {
    let mut c = Compiler {
        doc,
        diags: Diagnostics::default(),
        base_dir: doc.file.parent().map(Path::to_path_buf).unwrap_or_default(),
        broken_upstreams: HashSet::new(),
        upstream_names: Vec::new(),
        sources: Vec::new(),
        has_api_keys: false,
    };
    let Some(file) = doc.deserialize::<GatewayFile>(&mut c.diags) else {
        return Err(c.diags);
    };
    let cfg = c.compile(file, previous);
    let mut diags = c.diags;
    match cfg {
        Some(cfg) if diags.is_empty() => Ok(cfg),
        _ => {
            diags.sort();
            Err(diags)
        }
    }
}

pub(super) struct Compiler<'a> {
    pub(super) doc: &'a SourceDoc,
    pub(super) diags: Diagnostics,
    base_dir: PathBuf,
    /// Files this config reads besides itself (rules, keys, ...), for watching.
    pub(super) sources: Vec<PathBuf>,
    /// Whether an `api_keys:` section is present (routes may then require keys).
    has_api_keys: bool,
    /// Upstreams that are defined but broken: routes naming them get no second error.
    broken_upstreams: HashSet<String>,
    /// Every upstream name in the file, for the unknown-upstream message.
    upstream_names: Vec<String>,
}

impl Compiler<'_> {
    pub(super) fn err(&mut self, path: &str, message: impl Into<String>) {
        self.diags.push(self.doc.diag(path, message));
    }

    fn compile(
        &mut self,
        f: GatewayFile,
        previous: Option<&RuntimeConfig>,
    ) -> Option<RuntimeConfig> {
        for key in f.unknown.keys() {
            self.err(
                key,
                format!(
                    "unknown field `{key}`, expected one of {}",
                    TOP_LEVEL.join(", ")
                ),
            );
        }
        let server = self.doc.take(f.server, "server", &mut self.diags);
        if let Some(s) = &server {
            if s.threads == 0 {
                self.err("server.threads", "must be at least 1");
            }
        }
        let listeners = self.listeners(f.listeners);
        let admin_file = self.doc.take(f.admin, "admin", &mut self.diags).flatten();
        let admin = admin_file
            .as_ref()
            .and_then(|a| self.socket_addr("admin.address", &a.address));
        let admin_token = admin_file
            .and_then(|a| a.token_file)
            .and_then(|t| self.admin_token(&t));
        let trusted_proxies = self.ip_set(f.trusted_proxies, "trusted_proxies");
        let limits = self.doc.take(f.limits, "limits", &mut self.diags);
        if let Some(l) = &limits {
            for (field, zero) in [
                ("max_uri_length", l.max_uri_length.0 == 0),
                ("max_header_count", l.max_header_count == 0),
                ("max_header_bytes", l.max_header_bytes.0 == 0),
                ("max_query_args", l.max_query_args == 0),
                ("max_body_size", l.max_body_size.0 == 0),
                ("client_body_timeout", l.client_body_timeout.0.is_zero()),
                ("client_header_timeout", l.client_header_timeout.0.is_zero()),
                ("max_json_depth", l.max_json_depth == 0),
                ("max_multipart_parts", l.max_multipart_parts == 0),
                ("max_body_args", l.max_body_args == 0),
            ] {
                if zero {
                    self.err(&format!("limits.{field}"), "must be greater than zero");
                }
            }
        }
        let access_log = self
            .doc
            .take(f.access_log, "access_log", &mut self.diags)
            .map(|a| match a.path.as_str() {
                "stdout" | "-" => AccessLogTarget::Stdout,
                "off" => AccessLogTarget::Off,
                p => AccessLogTarget::File(self.resolve(p)),
            });
        let reload = self.doc.take(f.reload, "reload", &mut self.diags);
        if let Some(r) = &reload {
            if r.poll_interval.0 < Duration::from_millis(10) {
                self.err("reload.poll_interval", "must be at least 10ms");
            }
        }
        let upstreams = self.upstreams(f.upstreams, previous);
        self.has_api_keys = matches!(&f.api_keys.0, Ok(Some(_)));
        let waf_global = self.waf_global(f.waf);
        let routes = match &waf_global {
            Ok(g) => self.routes(f.routes, &upstreams, g.as_ref()),
            Err(()) => None,
        };
        if let (Ok(Some(g)), Some(rt)) = (&waf_global, &routes) {
            for (i, (_, names)) in g.exclusions.iter().enumerate() {
                for (j, n) in names.iter().enumerate() {
                    if rt.by_name(n).is_none() {
                        self.err(
                            &format!("waf.exclusions[{i}].routes[{j}]"),
                            format!("unknown route {n:?}"),
                        );
                    }
                }
            }
        }
        let waf = match (waf_global, &routes) {
            (Ok(Some(g)), Some(rt)) => {
                let parse_limits = limits.as_ref().map(|l| crate::waf::ParseLimits {
                    json_depth: l.max_json_depth,
                    multipart_parts: l.max_multipart_parts,
                    args: l.max_body_args,
                });
                self.build_waf(g, rt, parse_limits.unwrap_or_default())
            }
            _ => None,
        };
        let rate_limits = self
            .rate_limits(f.rate_limits, routes.as_ref(), previous)
            .ok()
            .flatten()
            .map(Arc::new);
        let api_keys = self.api_keys(f.api_keys, routes.as_ref()).ok().flatten();
        let mut sources = vec![self.doc.file.clone()];
        sources.append(&mut self.sources);

        Some(RuntimeConfig {
            file: self.doc.file.clone(),
            sources,
            server: server?,
            listeners: listeners?,
            admin,
            admin_token,
            trusted_proxies: trusted_proxies?,
            limits: limits?,
            access_log: access_log?,
            reload: reload?,
            upstreams,
            routes: routes?,
            pipeline: Pipeline::standard(waf.clone(), rate_limits.clone(), api_keys.clone()),
            waf,
            rate_limits,
            api_keys,
            loaded_at: SystemTime::now(),
        })
    }

    /// Reads the admin token file: one line, at least 16 characters.
    fn admin_token(&mut self, file: &str) -> Option<Arc<str>> {
        let path = self.resolve(file);
        self.sources.push(path.clone());
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                self.err(
                    "admin.token_file",
                    format!("cannot read {}: {e}", path.display()),
                );
                return None;
            }
        };
        let token = text.trim();
        if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.err(
                "admin.token_file",
                format!(
                    "{} must hold one token of at least 16 characters without spaces",
                    path.display()
                ),
            );
            return None;
        }
        Some(Arc::from(token))
    }

    pub(super) fn resolve(&self, p: &str) -> PathBuf {
        let path = Path::new(p);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    fn socket_addr(&mut self, path: &str, text: &str) -> Option<SocketAddr> {
        match text.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(
                    path,
                    format!("{text:?} is not an IP:port address such as \"127.0.0.1:8080\""),
                );
                None
            }
        }
    }

    fn ip_set(&mut self, parsed: super::source::Parsed<Vec<String>>, path: &str) -> Option<IpSet> {
        let entries = self.doc.take(parsed, path, &mut self.diags)?;
        match IpSet::parse(entries.iter().map(String::as_str)) {
            Ok(s) => Some(s),
            Err(errors) => {
                for (i, m) in errors {
                    self.err(&format!("{path}[{i}]"), m);
                }
                None
            }
        }
    }

    fn listeners(
        &mut self,
        parsed: super::source::Parsed<Vec<super::source::Parsed<super::file::ListenerFile>>>,
    ) -> Option<Vec<ListenerSpec>> {
        let items = self.doc.take(parsed, "listeners", &mut self.diags)?;
        if items.is_empty() {
            self.err("listeners", "at least one listener is required");
            return None;
        }
        let mut out = Vec::new();
        let mut names = HashSet::new();
        let mut addrs = HashSet::new();
        let mut ok = true;
        for (i, item) in items.into_iter().enumerate() {
            let base = format!("listeners[{i}]");
            let Some(l) = self.doc.take(item, &base, &mut self.diags) else {
                ok = false;
                continue;
            };
            if !names.insert(l.name.clone()) {
                self.err(
                    &format!("{base}.name"),
                    format!("duplicate listener name {:?}", l.name),
                );
                ok = false;
            }
            match self.socket_addr(&format!("{base}.address"), &l.address) {
                Some(addr) => {
                    if addr.port() != 0 && !addrs.insert(addr) {
                        self.err(
                            &format!("{base}.address"),
                            format!("{addr} is used by another listener"),
                        );
                        ok = false;
                    }
                    let tls = match &l.tls {
                        Some(t) => match self.listener_tls(&format!("{base}.tls"), t) {
                            Some(spec) => Some(spec),
                            None => {
                                ok = false;
                                None
                            }
                        },
                        None => None,
                    };
                    let redirect = match &l.redirect_https {
                        Some(r) if l.tls.is_some() => {
                            self.err(
                                &format!("{base}.redirect_https"),
                                "only a plain-HTTP listener can redirect to HTTPS",
                            );
                            let _ = r;
                            ok = false;
                            None
                        }
                        Some(r) => {
                            let spec = self.redirect(&format!("{base}.redirect_https"), r);
                            ok &= spec.is_some();
                            spec
                        }
                        None => None,
                    };
                    out.push(ListenerSpec {
                        name: l.name,
                        addr,
                        tls,
                        redirect,
                    });
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn upstreams(
        &mut self,
        parsed: super::source::Parsed<IndexMap<String, super::source::Parsed<UpstreamFile>>>,
        previous: Option<&RuntimeConfig>,
    ) -> IndexMap<String, Arc<UpstreamGroup>> {
        let mut out = IndexMap::new();
        let Some(items) = self.doc.take(parsed, "upstreams", &mut self.diags) else {
            return out;
        };
        self.upstream_names = items.keys().cloned().collect();
        for (name, item) in items {
            let base = format!("upstreams.{name}");
            let Some(spec) = self
                .doc
                .take(item, &base, &mut self.diags)
                .and_then(|u| self.upstream_spec(&base, u))
            else {
                self.broken_upstreams.insert(name);
                continue;
            };
            let reused = previous
                .and_then(|p| p.upstreams.get(&name))
                .filter(|g| g.spec == spec)
                .cloned();
            let group = reused.unwrap_or_else(|| Arc::new(UpstreamGroup::new(&name, spec)));
            out.insert(name, group);
        }
        out
    }

    fn upstream_spec(&mut self, base: &str, u: UpstreamFile) -> Option<UpstreamSpec> {
        let mut ok = true;
        if u.backends.is_empty() {
            self.err(
                &format!("{base}.backends"),
                "at least one backend is required",
            );
            ok = false;
        }
        let mut backends = Vec::new();
        for (i, b) in u.backends.iter().enumerate() {
            let path = format!("{base}.backends[{i}]");
            match b.to_socket_addrs().map(|mut a| a.next()) {
                Ok(Some(addr)) => backends.push(addr),
                Ok(None) | Err(_) => {
                    self.err(&path, format!("{b:?} is not a reachable host:port address"));
                    ok = false;
                }
            }
        }
        for (field, d) in [
            ("connect_timeout", u.connect_timeout),
            ("read_timeout", u.read_timeout),
            ("write_timeout", u.write_timeout),
        ] {
            if d.0.is_zero() {
                self.err(&format!("{base}.{field}"), "must be greater than zero");
                ok = false;
            }
        }
        let health = match u.health_check {
            Some(h) => Some(self.health(&format!("{base}.health_check"), h)?),
            None => None,
        };
        let first_host = u
            .backends
            .first()
            .and_then(|b| {
                b.rsplit_once(':')
                    .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
            })
            .unwrap_or_default();
        let tls = match &u.tls {
            Some(t) => {
                let spec = self.upstream_tls(&format!("{base}.tls"), t, &first_host);
                if let Some(s) = &spec {
                    if s.verify && (s.sni.is_empty() || s.sni.parse::<std::net::IpAddr>().is_ok()) {
                        self.err(
                            &format!("{base}.tls.sni"),
                            "verifying a backend certificate needs a DNS name: set tls.sni (the backends are addresses)",
                        );
                        ok = false;
                    }
                }
                if spec.is_none() {
                    ok = false;
                }
                spec
            }
            None => None,
        };
        ok.then_some(UpstreamSpec {
            tls,
            backends,
            connect_timeout: u.connect_timeout.0,
            read_timeout: u.read_timeout.0,
            write_timeout: u.write_timeout.0,
            health,
        })
    }

    fn health(&mut self, base: &str, h: HealthCheckFile) -> Option<HealthSpec> {
        let mut ok = true;
        if !h.path.starts_with('/') {
            self.err(&format!("{base}.path"), "must start with /");
            ok = false;
        }
        if h.interval.0 < Duration::from_millis(10) {
            self.err(&format!("{base}.interval"), "must be at least 10ms");
            ok = false;
        }
        if h.timeout.0.is_zero() {
            self.err(&format!("{base}.timeout"), "must be greater than zero");
            ok = false;
        }
        if h.healthy_after == 0 {
            self.err(&format!("{base}.healthy_after"), "must be at least 1");
            ok = false;
        }
        if h.unhealthy_after == 0 {
            self.err(&format!("{base}.unhealthy_after"), "must be at least 1");
            ok = false;
        }
        ok.then_some(HealthSpec {
            kind: h.kind,
            path: h.path,
            host: h.host,
            interval: h.interval.0,
            timeout: h.timeout.0,
            healthy_after: h.healthy_after,
            unhealthy_after: h.unhealthy_after,
        })
    }

    fn build_waf(
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

    fn routes(
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
                Some(route) => out.push(Arc::new(route)),
                None => ok = false,
            }
        }
        ok.then(|| RouteTable::new(out))
    }

    fn route(
        &mut self,
        base: &str,
        r: RouteFile,
        upstreams: &IndexMap<String, Arc<UpstreamGroup>>,
        names: &mut HashSet<String>,
        waf: Option<&super::waf::WafGlobal>,
    ) -> Option<Route> {
        let mut ok = true;
        if r.name.is_empty()
            || !r
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            self.err(
                &format!("{base}.name"),
                format!(
                    "{:?} must be non-empty and use only letters, digits, '-', '_' and '.'",
                    r.name
                ),
            );
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
