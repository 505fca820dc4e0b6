//! Route selection: host patterns and segment-aware path prefixes, longest prefix wins.
//!
//! Routing happens on the normalised path (dot segments removed, repeated slashes merged) and the
//! normalised path is what the backend receives, so a route cannot be escaped with `/a/../b`.

use std::sync::Arc;

use crate::upstream::UpstreamGroup;

/// A host name pattern of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `api.example.com`
    Exact(String),
    /// `*.example.com`, stored as `.example.com`; matches one or more labels before it.
    Wildcard(String),
}

impl HostPattern {
    /// Parses a pattern from config; lower-cases it.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let t = text.trim().trim_end_matches('.').to_ascii_lowercase();
        if t.is_empty() {
            return Err("host name is empty".into());
        }
        let (wild, name) = match t.strip_prefix("*.") {
            Some(rest) => (true, rest.to_string()),
            None => (false, t.clone()),
        };
        let valid = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid || name.contains('*') {
            return Err(format!(
                "{text:?} is not a host name or a wildcard such as \"*.example.com\""
            ));
        }
        Ok(if wild {
            HostPattern::Wildcard(format!(".{name}"))
        } else {
            HostPattern::Exact(name)
        })
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Wildcard(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        }
    }

    fn specificity(&self) -> u8 {
        match self {
            HostPattern::Exact(_) => 2,
            HostPattern::Wildcard(_) => 1,
        }
    }
}

/// A compiled route.
#[derive(Debug)]
pub struct Route {
    /// Unique name, used as the `route` label in metrics.
    pub name: Arc<str>,
    /// Host patterns; empty means any host.
    pub hosts: Vec<HostPattern>,
    /// Normalised path prefix, without a trailing slash unless it is `/`.
    pub prefix: String,
    /// Where requests go.
    pub upstream: Arc<UpstreamGroup>,
    /// WAF policy of this route (mode `Off` when there is no WAF).
    pub waf: Arc<crate::waf::WafPolicy>,
    /// Whether an API key is required.
    pub auth: bool,
    /// Whether a verified client certificate is required.
    pub require_client_cert: bool,
}

impl Route {
    /// How specifically this route matches `host`: 2 exact, 1 wildcard, 0 any-host, None no match.
    fn host_match(&self, host: &str) -> Option<u8> {
        if self.hosts.is_empty() {
            return Some(0);
        }
        self.hosts
            .iter()
            .filter(|h| h.matches(host))
            .map(HostPattern::specificity)
            .max()
    }

    fn path_matches(&self, path: &str) -> bool {
        if self.prefix == "/" {
            return true;
        }
        match path.strip_prefix(self.prefix.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

/// All routes of a config, searched longest prefix first.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    /// Builds the table; order in the config does not matter.
    pub fn new(mut routes: Vec<Arc<Route>>) -> RouteTable {
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        RouteTable { routes }
    }

    /// The route for `host` (already lower-cased, without port) and normalised `path`.
    ///
    /// The longest matching prefix wins; between equal prefixes an exact host beats a wildcard,
    /// which beats a route for any host.
    pub fn select(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        let mut best: Option<(&Arc<Route>, u8)> = None;
        for r in &self.routes {
            if let Some((b, _)) = best {
                if r.prefix.len() < b.prefix.len() {
                    break;
                }
            }
            if !r.path_matches(path) {
                continue;
            }
            if let Some(spec) = r.host_match(host) {
                if best.is_none_or(|(_, s)| spec > s) {
                    best = Some((r, spec));
                }
            }
        }
        best.map(|(r, _)| r)
    }

    /// All routes, longest prefix first.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.iter()
    }

    /// A route by name.
    pub fn by_name(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| &*r.name == name)
    }
}

/// Normalises the host of a request: lower case, no port, no trailing dot.
pub fn normalize_host(raw: &str) -> String {
    let h = raw.trim();
    let without_port = if let Some(rest) = h.strip_prefix('[') {
        // IPv6 literal: keep the brackets' content.
        rest.split(']').next().unwrap_or(rest)
    } else {
        h.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map(|(host, _)| host)
            .unwrap_or(h)
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

/// Removes dot segments (RFC 3986 §5.2.4, also when written `%2e`) and merges repeated slashes.
///
/// Returns `None` when the path does not start with `/` (and is not `*`), which the caller
/// answers with 400.
pub fn normalize_path(path: &str) -> Option<String> {
    if path == "*" {
        return Some(path.to_string());
    }
    if !path.starts_with('/') {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        match classify_segment(seg) {
            Segment::Empty => {
                if i == last {
                    trailing_slash = true;
                }
            }
            Segment::Dot => {
                if i == last {
                    trailing_slash = true;
                }
            }
            Segment::DotDot => {
                out.pop();
                if i == last {
                    trailing_slash = true;
                }
            }
            Segment::Name => out.push(seg),
        }
    }
    let mut s = String::with_capacity(path.len());
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    if s.is_empty() || trailing_slash {
        s.push('/');
    }
    Some(s)
}

enum Segment {
    Empty,
    Dot,
    DotDot,
    Name,
}

fn classify_segment(seg: &str) -> Segment {
    if seg.is_empty() {
        return Segment::Empty;
    }
    let lower = seg.to_ascii_lowercase();
    match lower.as_str() {
        "." | "%2e" => Segment::Dot,
        ".." | "%2e." | ".%2e" | "%2e%2e" => Segment::DotDot,
        _ => Segment::Name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_normalisation() {
        let cases = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("//a///b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/a/%2e%2E/b", "/b"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/a/..", "/"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/file.tar.gz", "/file.tar.gz"),
            ("/.well-known/acme", "/.well-known/acme"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_path(input).as_deref(), Some(want), "{input}");
        }
        assert_eq!(normalize_path("a/b"), None);
        assert_eq!(normalize_path("*").as_deref(), Some("*"));
    }

    #[test]
    fn hosts() {
        assert_eq!(normalize_host("Example.COM:8080"), "example.com");
        assert_eq!(normalize_host("example.com."), "example.com");
        assert_eq!(normalize_host("[::1]:8080"), "::1");
        assert_eq!(normalize_host("127.0.0.1"), "127.0.0.1");
        assert_eq!(
            HostPattern::parse("*.Example.com").unwrap(),
            HostPattern::Wildcard(".example.com".into())
        );
        assert!(HostPattern::parse("a.*.com").is_err());
        assert!(HostPattern::parse("").is_err());
        assert!(HostPattern::parse("bad host").is_err());
        let w = HostPattern::parse("*.example.com").unwrap();
        assert!(w.matches("a.example.com"));
        assert!(w.matches("a.b.example.com"));
        assert!(!w.matches("example.com"));
        assert!(!w.matches("badexample.com"));
    }
}
