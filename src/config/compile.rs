//! Validation and compilation of `gateway.yaml` into a [`RuntimeConfig`].
//!
//! Every problem is collected with its location; compilation fails only at the end, so
//! `portcullis check` reports all of them in one run.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::file::GatewayFile;
use super::source::{Diagnostics, SourceDoc};
use super::{AccessLogTarget, ListenerSpec, RuntimeConfig};
use crate::ipset::IpSet;
use crate::stage::Pipeline;

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
    pub(super) base_dir: PathBuf,
    /// Files this config reads besides itself (rules, keys, ...), for watching.
    pub(super) sources: Vec<PathBuf>,
    /// Whether an `api_keys:` section is present (routes may then require keys).
    pub(super) has_api_keys: bool,
    /// Upstreams that are defined but broken: routes naming them get no second error.
    pub(super) broken_upstreams: HashSet<String>,
    /// Every upstream name in the file, for the unknown-upstream message.
    pub(super) upstream_names: Vec<String>,
}

impl Compiler<'_> {
    pub(super) fn err(&mut self, path: &str, message: impl Into<String>) {
        self.diags.push(self.doc.diag(path, message));
    }

    /// Checks the `name` of a route or policy at `base`: names appear in metric labels and logs,
    /// so they are non-empty and use letters, digits, `-`, `_` and `.` only.
    pub(super) fn check_name(&mut self, base: &str, name: &str) -> bool {
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !ok {
            self.err(
                &format!("{base}.name"),
                format!(
                    "{name:?} must be non-empty and use only letters, digits, '-', '_' and '.'"
                ),
            );
        }
        ok
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
}
