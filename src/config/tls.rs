//! Compiling listener TLS (certificates, ALPN, client certificates), HTTPS redirects and
//! upstream TLS. Certificates are validated here — readable, key matching, currently valid — so
//! a broken renewal is refused like any other invalid change and the old certificate keeps
//! serving.

use std::sync::Arc;
use std::time::SystemTime;

use super::compile::Compiler;
use super::file::{ClientAuthMode, ListenerTlsFile, RedirectFile, UpstreamTlsFile};
use crate::route::normalize_path;
use crate::tls::{certs, ClientAuthSpec, TlsSpec};
use crate::upstream::UpstreamTls;

/// Where a plain listener sends clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectSpec {
    /// HTTPS port.
    pub port: u16,
    /// Path prefixes still served over HTTP.
    pub except: Vec<String>,
}

impl Compiler<'_> {
    pub(super) fn listener_tls(&mut self, base: &str, f: &ListenerTlsFile) -> Option<Arc<TlsSpec>> {
        let before = self.diags.len();
        if f.certificates.is_empty() {
            self.err(
                &format!("{base}.certificates"),
                "at least one certificate is required",
            );
        }
        let now = SystemTime::now();
        let mut pairs = Vec::new();
        for (i, c) in f.certificates.iter().enumerate() {
            let path = format!("{base}.certificates[{i}]");
            let loaded = match (&c.cert, &c.key, &c.self_signed) {
                (Some(cert), Some(key), None) => {
                    let (cert, key) = (self.resolve(cert), self.resolve(key));
                    self.sources.push(cert.clone());
                    self.sources.push(key.clone());
                    certs::load_pair(&cert, &key, now)
                }
                (None, None, Some(names)) if !names.is_empty() => certs::self_signed_pair(names),
                _ => Err("give either cert and key files, or self_signed: [names]".to_string()),
            };
            match loaded {
                Ok(p) => pairs.push(p),
                Err(m) => self.err(&path, m),
            }
        }
        let client_auth = match &f.client_auth {
            None => None,
            Some(ca) => {
                let path = self.resolve(&ca.ca);
                self.sources.push(path.clone());
                let mut roots = rustls::RootCertStore::empty();
                match certs::read_certs(&path) {
                    Ok(list) => {
                        for c in list {
                            if let Err(e) = roots.add(c) {
                                self.err(
                                    &format!("{base}.client_auth.ca"),
                                    format!("{}: {e}", path.display()),
                                );
                            }
                        }
                    }
                    Err(m) => self.err(&format!("{base}.client_auth.ca"), m),
                }
                let header = match http::HeaderName::from_bytes(ca.subject_header.as_bytes()) {
                    Ok(h) => Some(h),
                    Err(_) => {
                        self.err(
                            &format!("{base}.client_auth.subject_header"),
                            format!("{:?} is not a header name", ca.subject_header),
                        );
                        None
                    }
                };
                header.map(|subject_header| ClientAuthSpec {
                    required: ca.mode == ClientAuthMode::Required,
                    roots: Arc::new(roots),
                    subject_header,
                })
            }
        };
        (self.diags.len() == before).then(|| {
            Arc::new(TlsSpec {
                certs: pairs,
                http2: f.http2,
                client_auth,
            })
        })
    }

    pub(super) fn redirect(&mut self, base: &str, f: &RedirectFile) -> Option<RedirectSpec> {
        let mut except = Vec::new();
        for (i, p) in f.except_path_prefixes.iter().enumerate() {
            match normalize_path(p) {
                Some(n) if n != "*" => except.push(n.trim_end_matches('/').to_string()),
                _ => {
                    self.err(
                        &format!("{base}.except_path_prefixes[{i}]"),
                        format!("{p:?} must start with /"),
                    );
                    return None;
                }
            }
        }
        if f.port == 0 {
            self.err(&format!("{base}.port"), "must be a port number");
            return None;
        }
        Some(RedirectSpec {
            port: f.port,
            except,
        })
    }

    pub(super) fn upstream_tls(
        &mut self,
        base: &str,
        f: &UpstreamTlsFile,
        first_host: &str,
    ) -> Option<UpstreamTls> {
        let ca = match &f.ca {
            None => None,
            Some(p) => {
                let path = self.resolve(p);
                self.sources.push(path.clone());
                match certs::read_certs(&path) {
                    Ok(list) => Some(list.into_iter().map(|c| c.as_ref().to_vec()).collect()),
                    Err(m) => {
                        self.err(&format!("{base}.ca"), m);
                        return None;
                    }
                }
            }
        };
        Some(UpstreamTls {
            sni: f.sni.clone().unwrap_or_else(|| first_host.to_string()),
            ca,
            verify: f.verify,
        })
    }
}
