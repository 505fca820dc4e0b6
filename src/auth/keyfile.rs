//! `keys.yaml`: the key list users edit, validated with located errors. A file with anything
//! that looks like a key in clear is refused: only digests belong there.

use std::collections::HashSet;
use std::path::Path;
use std::time::SystemTime;

use serde::Deserialize;

use super::{secret, KeyEntry, KeyScope, KeyStore};
use crate::config::file::ScopeFile;
use crate::config::source::{Diagnostics, Parsed, SourceDoc};
use crate::route::normalize_path;

/// The keys file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    /// The keys.
    #[serde(default)]
    pub keys: Vec<Parsed<KeyFile>>,
}

/// One key as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// Id.
    pub id: String,
    /// `sha256:<64 hex digits>` — from `portcullis keys new` or `portcullis keys hash`.
    pub digest: String,
    /// Allowed uses (any one suffices); omitted: every key-protected route.
    #[serde(default)]
    pub scopes: Vec<ScopeFile>,
    /// Rate-limit tier.
    #[serde(default)]
    pub tier: Option<String>,
    /// RFC 3339 time from which the key is refused.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Refuse the key.
    #[serde(default)]
    pub disabled: bool,
}

/// Loads and validates `path`; `known_route` tells whether a route name exists.
pub fn load(
    path: &Path,
    known_route: &dyn Fn(&str) -> bool,
    diags: &mut Diagnostics,
) -> Option<KeyStore> {
    let doc = match SourceDoc::read(path) {
        Ok(d) => d,
        Err(d) => {
            diags.push(*d);
            return None;
        }
    };
    let before = diags.len();
    if let Ok(text) = std::fs::read_to_string(path) {
        for (i, line) in text.lines().enumerate() {
            if secret::looks_like_clear_key(line) {
                diags.push(crate::config::Diagnostic {
                    file: path.to_path_buf(),
                    line: i + 1,
                    col: 1,
                    path: String::new(),
                    message: "this looks like an API key in clear; store its digest instead (`portcullis keys hash`)".into(),
                });
            }
        }
    }
    let file: KeysFile = doc.deserialize(diags)?;
    let mut entries = Vec::new();
    let mut ids = HashSet::new();
    let mut digests = HashSet::new();
    for (i, item) in file.keys.into_iter().enumerate() {
        let base = format!("keys[{i}]");
        let Some(k) = doc.take(item, &base, diags) else {
            continue;
        };
        let mut err = |p: &str, m: String| diags.push(doc.diag(&format!("{base}.{p}"), m));
        if k.id.is_empty()
            || k.id.len() > 64
            || !k
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            err(
                "id",
                format!("{:?} must be 1-64 letters, digits, '-', '_' or '.'", k.id),
            );
        } else if !ids.insert(k.id.clone()) {
            err("id", format!("duplicate key id {:?}", k.id));
        }
        let digest = parse_digest(&k.digest);
        match digest {
            Some(d) => {
                if !digests.insert(d) {
                    err("digest", "the same digest is listed twice".into());
                }
            }
            None => err(
                "digest",
                if secret::looks_like_clear_key(&k.digest) || !k.digest.starts_with("sha256:") {
                    "must be sha256:<64 hex digits>; a key in clear does not belong here (`portcullis keys hash` prints the digest)".into()
                } else {
                    "must be sha256:<64 hex digits>".into()
                },
            ),
        }
        let expires_at = match &k.expires_at {
            None => None,
            Some(t) => {
                match time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                {
                    Ok(dt) => Some(SystemTime::from(dt)),
                    Err(_) => {
                        err(
                            "expires_at",
                            format!("{t:?} is not an RFC 3339 time such as 2027-01-31T00:00:00Z"),
                        );
                        None
                    }
                }
            }
        };
        let mut scopes = Vec::new();
        for (j, s) in k.scopes.iter().enumerate() {
            let mut scope = KeyScope::default();
            for (n, r) in s.routes.iter().enumerate() {
                if !known_route(r) {
                    err(
                        &format!("scopes[{j}].routes[{n}]"),
                        format!("unknown route {r:?}"),
                    );
                }
                scope.routes.push(r.clone());
            }
            for (n, p) in s.path_prefixes.iter().enumerate() {
                match normalize_path(p) {
                    Some(x) if x != "*" => {
                        let t = x.trim_end_matches('/');
                        scope
                            .path_prefixes
                            .push(if t.is_empty() { "/".into() } else { t.into() });
                    }
                    _ => err(
                        &format!("scopes[{j}].path_prefixes[{n}]"),
                        format!("{p:?} must start with /"),
                    ),
                }
            }
            for (n, m) in s.methods.iter().enumerate() {
                match http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                    Ok(m) => scope.methods.push(m),
                    Err(_) => err(
                        &format!("scopes[{j}].methods[{n}]"),
                        format!("{m:?} is not a method"),
                    ),
                }
            }
            scopes.push(scope);
        }
        if let Some(d) = digest {
            entries.push(KeyEntry {
                id: k.id.as_str().into(),
                digest: d,
                scopes,
                tier: k.tier.as_deref().map(Into::into),
                expires_at,
                disabled: k.disabled,
            });
        }
    }
    (diags.len() == before).then(|| KeyStore::new(entries))
}

fn parse_digest(s: &str) -> Option<[u8; 32]> {
    let hexpart = s.trim().strip_prefix("sha256:")?;
    let bytes = hex::decode(hexpart).ok()?;
    bytes.try_into().ok()
}

/// The `sha256:` form of a key's digest, as written in keys files.
pub fn digest_text(secret: &str) -> String {
    format!("sha256:{}", hex::encode(super::digest(secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<KeyStore, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys.yaml");
        std::fs::write(&p, text).unwrap();
        let mut d = Diagnostics::default();
        load(&p, &|r| r == "api", &mut d).ok_or_else(|| d.to_string())
    }

    #[test]
    fn a_valid_file_loads() {
        let s = load_text(&format!(
            "keys:\n  - id: a\n    digest: {}\n    tier: gold\n    expires_at: 2030-01-01T00:00:00Z\n    scopes: [{{ routes: [api], methods: [get] }}]\n",
            digest_text("secret-a")
        ))
        .unwrap();
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn clear_text_keys_and_mistakes_are_refused_with_locations() {
        let k = secret::generate();
        let e = load_text(&format!("keys:\n  - id: a\n    digest: {k}\n")).unwrap_err();
        assert!(
            e.contains("keys.yaml:3:1: this looks like an API key in clear"),
            "{e}"
        );
        assert!(
            e.contains("keys[0].digest: must be sha256:<64 hex digits>; a key in clear"),
            "{e}"
        );
        let e = load_text(&format!(
            "keys:\n  - id: a\n    key: {k}\n    digest: {}\n",
            digest_text("x")
        ))
        .unwrap_err();
        assert!(e.contains("unknown field `key`"), "{e}");
        let e = load_text(&format!(
            "keys:\n  - id: a\n    digest: {d}\n    expires_at: tomorrow\n    scopes: [{{ routes: [nope] }}]\n  - id: a\n    digest: {d}\n",
            d = digest_text("x")
        ))
        .unwrap_err();
        assert!(
            e.contains("keys[0].expires_at: \"tomorrow\" is not an RFC 3339 time"),
            "{e}"
        );
        assert!(
            e.contains("keys[0].scopes[0].routes[0]: unknown route \"nope\""),
            "{e}"
        );
        assert!(e.contains("keys[1].id: duplicate key id \"a\""), "{e}");
        assert!(
            e.contains("keys[1].digest: the same digest is listed twice"),
            "{e}"
        );
    }
}
