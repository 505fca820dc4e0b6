//! API keys: stored as SHA-256 digests (never in clear), each with scopes, a rate-limit tier,
//! an optional expiry and a disabled flag.
//!
//! A presented key is hashed and looked up by digest; the digest is then compared in constant
//! time, and the unknown-key path does the same work as the known-key path (it runs against a
//! dummy entry), so timing does not tell an unknown key from a disabled one.

pub mod keyfile;
pub mod secret;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::problem::AuthFailure;

/// Where a route finds the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A request header, e.g. `X-API-Key`.
    Header(http::HeaderName),
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// A query parameter.
    Query(String),
}

/// The API-key settings of a config.
#[derive(Debug)]
pub struct ApiKeys {
    /// The keys.
    pub store: KeyStore,
    /// Where keys are looked for, in order.
    pub sources: Vec<KeySource>,
    /// Header carrying the key id to the backend (any client-sent value is removed).
    pub key_id_header: http::HeaderName,
    /// Remove the key before the request goes upstream.
    pub strip: bool,
}

impl ApiKeys {
    /// The first key present in the request, and where it was.
    pub fn find<'a>(&self, req: &'a pingora::http::RequestHeader) -> Option<(&'a str, &KeySource)> {
        self.sources.iter().find_map(|src| {
            let v = match src {
                KeySource::Header(h) => req.headers.get(h).and_then(|v| v.to_str().ok()),
                KeySource::Bearer => req
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| {
                        let (scheme, rest) = v.trim().split_once(' ')?;
                        scheme.eq_ignore_ascii_case("bearer").then_some(rest)
                    }),
                KeySource::Query(name) => req.uri.query().and_then(|q| {
                    q.split('&').find_map(|pair| {
                        let (k, v) = pair.split_once('=')?;
                        (k == name).then_some(v)
                    })
                }),
            };
            v.map(str::trim).filter(|v| !v.is_empty()).map(|v| (v, src))
        })
    }
}

/// What a key may do; a key with no scopes may do anything on key-protected routes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyScope {
    /// Route names (empty: any).
    pub routes: Vec<String>,
    /// Normalised path prefixes (empty: any).
    pub path_prefixes: Vec<String>,
    /// Methods (empty: any).
    pub methods: Vec<http::Method>,
}

impl KeyScope {
    fn allows(&self, route: &str, path: &str, method: &http::Method) -> bool {
        (self.routes.is_empty() || self.routes.iter().any(|r| r == route))
            && (self.methods.is_empty() || self.methods.contains(method))
            && (self.path_prefixes.is_empty()
                || self
                    .path_prefixes
                    .iter()
                    .any(|p| crate::route::under_prefix(path, p)))
    }
}

/// One key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// Id: in logs, in the header to the backend, in rate-limit keys.
    pub id: Arc<str>,
    /// SHA-256 of the secret.
    pub digest: [u8; 32],
    /// Allowed uses; any one suffices. Empty: every key-protected route.
    pub scopes: Vec<KeyScope>,
    /// Rate-limit tier.
    pub tier: Option<Arc<str>>,
    /// Not valid from this time on.
    pub expires_at: Option<SystemTime>,
    /// Refused while set.
    pub disabled: bool,
}

impl KeyEntry {
    /// Whether some scope of the key names methods (so that overrides matter).
    pub fn restricts_methods(&self) -> bool {
        self.scopes.iter().any(|s| !s.methods.is_empty())
    }
}

/// The keys of a keys file, by digest.
#[derive(Debug, Default)]
pub struct KeyStore {
    by_digest: HashMap<[u8; 32], KeyEntry>,
    dummy: Option<KeyEntry>,
}

/// SHA-256 of a presented key.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.trim().as_bytes()).into()
}

impl KeyStore {
    /// A store of `entries`.
    pub fn new(entries: Vec<KeyEntry>) -> KeyStore {
        let dummy = KeyEntry {
            id: "".into(),
            digest: [0xA5; 32],
            scopes: vec![KeyScope {
                routes: vec![String::new()],
                ..KeyScope::default()
            }],
            tier: None,
            expires_at: Some(SystemTime::UNIX_EPOCH),
            disabled: true,
        };
        KeyStore {
            by_digest: entries.into_iter().map(|e| (e.digest, e)).collect(),
            dummy: Some(dummy),
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// True when there is no key.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// Checks a presented key for a request on `route`, `path` at time `now`, taken for each
    /// of `methods` (the method sent, and those it names as overrides: [`crate::method`]);
    /// the key's scopes must allow every one of them.
    pub fn verify(
        &self,
        secret: &str,
        route: &str,
        path: &str,
        methods: &[http::Method],
        now: SystemTime,
    ) -> Result<&KeyEntry, AuthFailure> {
        let d = digest(secret);
        let found = self.by_digest.get(&d);
        // Unknown keys run the same checks against a dummy entry.
        let Some(entry) = found.or(self.dummy.as_ref()) else {
            return Err(AuthFailure::Unknown);
        };
        let known: bool = entry.digest.ct_eq(&d).into();
        let expired = entry.expires_at.is_some_and(|t| now >= t);
        let disabled = entry.disabled;
        let in_scope = entry.scopes.is_empty()
            || methods
                .iter()
                .all(|m| entry.scopes.iter().any(|s| s.allows(route, path, m)));
        match (known && found.is_some(), disabled, expired, in_scope) {
            (false, ..) => Err(AuthFailure::Unknown),
            (true, true, _, _) => Err(AuthFailure::Disabled),
            (true, false, true, _) => Err(AuthFailure::Expired),
            (true, false, false, false) => Err(AuthFailure::Scope),
            (true, false, false, true) => Ok(entry),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(id: &str, secret: &str) -> KeyEntry {
        KeyEntry {
            id: id.into(),
            digest: digest(secret),
            scopes: vec![],
            tier: None,
            expires_at: None,
            disabled: false,
        }
    }

    #[test]
    fn lookup_scopes_expiry_and_disabled() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let mut scoped = entry("scoped", "s3");
        scoped.scopes = vec![KeyScope {
            routes: vec!["api".into()],
            path_prefixes: vec!["/v1".into()],
            methods: vec![http::Method::GET],
        }];
        let mut expiring = entry("expiring", "s4");
        expiring.expires_at = Some(now + Duration::from_secs(60));
        let mut off = entry("off", "s5");
        off.disabled = true;
        let store = KeyStore::new(vec![entry("open", "s1"), scoped, expiring, off]);
        let get = &[http::Method::GET][..];
        let post = &[http::Method::POST][..];
        assert_eq!(
            &*store.verify("s1", "any", "/x", post, now).unwrap().id,
            "open"
        );
        assert_eq!(
            store.verify("nope", "api", "/v1", get, now),
            Err(AuthFailure::Unknown)
        );
        assert!(store.verify("s3", "api", "/v1/orders", get, now).is_ok());
        assert_eq!(
            store.verify("s3", "api", "/v1/orders", post, now),
            Err(AuthFailure::Scope)
        );
        assert_eq!(
            store.verify("s3", "api", "/v2", get, now),
            Err(AuthFailure::Scope)
        );
        assert_eq!(
            store.verify("s3", "web", "/v1", get, now),
            Err(AuthFailure::Scope)
        );
        assert!(store.verify("s4", "x", "/", get, now).is_ok());
        assert_eq!(
            store.verify("s4", "x", "/", get, now + Duration::from_secs(61)),
            Err(AuthFailure::Expired)
        );
        assert_eq!(
            store.verify("s5", "x", "/", get, now),
            Err(AuthFailure::Disabled)
        );
        // Every method the request may be taken for must be in scope.
        let get_as_delete = &[http::Method::GET, http::Method::DELETE][..];
        assert_eq!(
            store.verify("s3", "api", "/v1/orders", get_as_delete, now),
            Err(AuthFailure::Scope)
        );
        assert!(store
            .verify("s1", "api", "/v1/orders", get_as_delete, now)
            .is_ok());
        // Surrounding whitespace (e.g. a pasted key) does not matter.
        assert!(store.verify(" s1\n", "x", "/", get, now).is_ok());
    }
}
