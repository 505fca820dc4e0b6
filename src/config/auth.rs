//! Compiling `api_keys:`: the key sources and the keys file.

use std::sync::Arc;

use super::compile::Compiler;
use super::file::ApiKeysFile;
use super::source::Parsed;
use crate::auth::{keyfile, ApiKeys, KeySource};
use crate::route::RouteTable;

impl Compiler<'_> {
    /// Compiles `api_keys:`; `Ok(None)` when absent.
    pub(super) fn api_keys(
        &mut self,
        parsed: Parsed<Option<ApiKeysFile>>,
        routes: Option<&RouteTable>,
    ) -> Result<Option<Arc<ApiKeys>>, ()> {
        let Some(f) = self
            .doc
            .take(parsed, "api_keys", &mut self.diags)
            .ok_or(())?
        else {
            return Ok(None);
        };
        let before = self.diags.len();
        let mut sources = Vec::new();
        if f.sources.is_empty() {
            self.err("api_keys.sources", "name at least one source");
        }
        for (i, s) in f.sources.iter().enumerate() {
            let path = format!("api_keys.sources[{i}]");
            if s == "bearer" {
                sources.push(KeySource::Bearer);
            } else if let Some(h) = s.strip_prefix("header:") {
                match http::HeaderName::from_bytes(h.trim().as_bytes()) {
                    Ok(n) => sources.push(KeySource::Header(n)),
                    Err(_) => self.err(&path, format!("{h:?} is not a header name")),
                }
            } else if let Some(q) = s.strip_prefix("query:") {
                if q.is_empty() {
                    self.err(&path, "the query parameter name is empty");
                } else {
                    sources.push(KeySource::Query(q.to_string()));
                }
            } else {
                self.err(
                    &path,
                    format!("unknown key source {s:?}; use header:<name>, bearer or query:<name>"),
                );
            }
        }
        let key_id_header = match http::HeaderName::from_bytes(f.key_id_header.as_bytes()) {
            Ok(h) => Some(h),
            Err(_) => {
                self.err(
                    "api_keys.key_id_header",
                    format!("{:?} is not a header name", f.key_id_header),
                );
                None
            }
        };
        let path = self.resolve(&f.file);
        self.sources.push(path.clone());
        let known = |r: &str| routes.is_none_or(|t| t.by_name(r).is_some());
        let store = keyfile::load(&path, &known, &mut self.diags);
        if self.diags.len() != before {
            return Err(());
        }
        match (store, key_id_header) {
            (Some(store), Some(key_id_header)) => Ok(Some(Arc::new(ApiKeys {
                store,
                sources,
                key_id_header,
                strip: f.strip,
            }))),
            _ => Err(()),
        }
    }
}
