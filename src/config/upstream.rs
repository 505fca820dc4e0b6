//! Compiling `upstreams:`: backend groups, their TLS and their health checks.

use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;

use super::compile::Compiler;
use super::file::{HealthCheckFile, UpstreamFile};
use super::RuntimeConfig;
use crate::upstream::{HealthSpec, UpstreamGroup, UpstreamSpec};

impl Compiler<'_> {
    pub(super) fn upstreams(
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

    pub(super) fn upstream_spec(&mut self, base: &str, u: UpstreamFile) -> Option<UpstreamSpec> {
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

    pub(super) fn health(&mut self, base: &str, h: HealthCheckFile) -> Option<HealthSpec> {
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
}
