//! Owned requests for offline use — inline rule tests, corpus evaluation, benchmarks and fuzzing —
//! that lend a [`RequestView`] to the engine.

use std::borrow::Cow;

use super::parse::RequestView;
use super::schema::{TestParts, TestRequest};

/// A complete request held in memory.
#[derive(Debug, Clone, Default)]
pub struct SampleRequest {
    /// Method.
    pub method: String,
    /// Path as sent.
    pub path: String,
    /// Query string without `?`.
    pub query: Option<String>,
    /// Headers; names are lower-cased by [`SampleRequest::view`].
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Option<String>,
}

impl SampleRequest {
    /// Splits a request target into path and query.
    pub fn from_target(method: &str, target: &str) -> SampleRequest {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (target.to_string(), None),
        };
        SampleRequest {
            method: method.to_string(),
            path,
            query,
            ..SampleRequest::default()
        }
    }

    /// Lower-cased header names, kept alive while a view borrows them.
    pub fn header_names(&self) -> Vec<String> {
        self.headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect()
    }

    /// A view borrowing this request and `names` (from [`SampleRequest::header_names`]).
    pub fn view_with<'a>(&'a self, names: &'a [String]) -> RequestView<'a> {
        RequestView {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            headers: names
                .iter()
                .zip(&self.headers)
                .map(|(n, (_, v))| (n.as_str(), Cow::Borrowed(v.as_str())))
                .collect(),
            client_ip: None,
        }
    }

    /// The `Content-Type` header, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str())
    }

    /// Builds the request of an inline rule test.
    pub fn from_test(t: &TestRequest) -> Result<SampleRequest, String> {
        match t {
            TestRequest::Line(line) => {
                let (method, target) = line
                    .split_once(' ')
                    .ok_or_else(|| format!("{line:?} is not \"METHOD /target\""))?;
                if !target.starts_with('/') {
                    return Err(format!("{line:?}: the target must start with /"));
                }
                Ok(SampleRequest::from_target(method, target))
            }
            TestRequest::Parts(p) => Ok(from_parts(p)),
        }
    }
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn pairs(m: &indexmap::IndexMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn from_parts(p: &TestParts) -> SampleRequest {
    let mut query: Vec<String> = p.query.iter().cloned().collect();
    if !p.args.is_empty() {
        query.push(pairs(&p.args));
    }
    let mut headers: Vec<(String, String)> = p
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !p.cookies.is_empty() {
        let c = p
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        headers.push(("Cookie".into(), c));
    }
    if let Some(pair) = &p.basic_auth {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(pair);
        headers.push(("Authorization".into(), format!("Basic {token}")));
    }
    let (body, ct) = if !p.form.is_empty() {
        (
            Some(pairs(&p.form)),
            Some("application/x-www-form-urlencoded".to_string()),
        )
    } else if let Some(j) = &p.json {
        (Some(j.to_string()), Some("application/json".to_string()))
    } else if let Some(x) = &p.xml {
        (Some(x.clone()), Some("application/xml".to_string()))
    } else {
        (p.body.clone(), p.content_type.clone())
    };
    if let Some(ct) = p.content_type.clone().or(ct) {
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("Content-Type".into(), ct));
        }
    }
    let method = p.method.clone().unwrap_or_else(|| {
        if body.is_some() {
            "POST".into()
        } else {
            "GET".into()
        }
    });
    SampleRequest {
        method,
        path: p.path.clone().unwrap_or_else(|| "/".into()),
        query: (!query.is_empty()).then(|| query.join("&")),
        headers,
        body,
    }
}
