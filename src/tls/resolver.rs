//! SNI certificate selection: exact names first, then wildcards (`*.example.com` covers one
//! label), then the listener's default certificate for clients that send no (known) name.
//! The table is swapped atomically when certificates are reloaded; handshakes in progress keep
//! the certificate they picked.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::certs::CertPair;

/// Certificates of one listener by name.
#[derive(Debug, Default)]
pub struct CertTable {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl CertTable {
    /// A table of `pairs`; the first pair is the default.
    pub fn new(pairs: &[CertPair]) -> CertTable {
        let mut t = CertTable {
            default: pairs.first().map(|p| p.certified.clone()),
            ..CertTable::default()
        };
        for p in pairs {
            for n in &p.names {
                match n.strip_prefix("*.") {
                    Some(suffix) => {
                        t.wildcard
                            .entry(suffix.to_string())
                            .or_insert_with(|| p.certified.clone());
                    }
                    None => {
                        t.exact
                            .entry(n.clone())
                            .or_insert_with(|| p.certified.clone());
                    }
                }
            }
        }
        t
    }

    /// The certificate for `sni`.
    pub fn select(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = sni.map(|s| s.trim_end_matches('.').to_ascii_lowercase()) else {
            return self.default.clone();
        };
        if let Some(c) = self.exact.get(&name) {
            return Some(c.clone());
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(c) = self.wildcard.get(parent) {
                return Some(c.clone());
            }
        }
        self.default.clone()
    }
}

/// The resolver a TLS listener is built with; its table can be replaced at any time.
#[derive(Debug)]
pub struct SniResolver {
    table: ArcSwap<CertTable>,
}

impl SniResolver {
    /// A resolver serving `table`.
    pub fn new(table: CertTable) -> SniResolver {
        SniResolver {
            table: ArcSwap::from_pointee(table),
        }
    }

    /// Serves `table` from the next handshake on.
    pub fn replace(&self, table: CertTable) {
        self.table.store(Arc::new(table));
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.table.load().select(hello.server_name())
    }
}
