//! Route selection: host patterns and segment-aware path prefixes, longest prefix wins.
//!
//! Routing happens on the normalised path (dot segments removed, repeated slashes merged) and the
//! normalised path is what the backend receives, so a route cannot be escaped with `/a/../b`.
//! Routes and scopes are matched without the `;` parameters of path segments, which servlet
//! containers drop (`/admin;x/secret`), and escapes of unreserved characters are decoded
//! (`/%61dmin`).

use std::borrow::Cow;
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
        under_prefix(path, &self.prefix)
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
    /// which beats a route for any host. When the path without its format extension
    /// ([`without_format`]) is another route's and that route requires an API key where this
    /// one does not, that route is chosen: `/admin.json` is Rails' `/admin` action.
    pub fn select(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        let chosen = self.select_exact(host, path);
        let Some(stripped) = without_format(path) else {
            return chosen;
        };
        match self.select_exact(host, stripped) {
            Some(r) if r.auth && !chosen.is_some_and(|c| c.auth) => Some(r),
            _ => chosen,
        }
    }

    fn select_exact(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
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

/// Removes dot segments (RFC 3986 §5.2.4), merges repeated slashes and decodes the escapes of
/// unreserved characters (`%61dmin` is `admin`, RFC 3986 §6.2.2.2). A segment whose text before
/// a `;` is `.` or `..` is a dot segment, as Tomcat, Jetty and Spring read `..;x`; other
/// segments keep their `;` parameters (`;jsessionid=…`), which [`match_path`] sets aside.
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
    let mut out: Vec<Cow<'_, str>> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        let seg = decode_unreserved(seg);
        match classify_segment(&seg) {
            Segment::Empty | Segment::Dot => {
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

/// Whether `path` is `prefix` or lies below it, whole segments only, without regard to ASCII
/// case. Routes, API-key scopes and rate-limit scopes all match this way: Express, ASP.NET Core
/// and IIS route `/Admin/x` to the handler of `/admin/x`, so a policy on `/admin` must hold for
/// `/Admin` too, and for a backend that tells the two apart it costs nothing.
pub fn under_prefix(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    let (p, pre) = (path.as_bytes(), prefix.as_bytes());
    p.len() >= pre.len()
        && p[..pre.len()].eq_ignore_ascii_case(pre)
        && (p.len() == pre.len() || p[pre.len()] == b'/')
}

/// `path` without the format extension of its last segment (`/admin.json` and `/admin.json/`
/// are `/admin`), when it has one: Rails gives every route an optional `(.:format)`, so
/// `/users/sign_in.json` is the sign-in action. A static file server reads `/admin.json` as
/// another file, so this reading only ever adds a policy: a route that requires a key, a
/// rate limit that counts ([`RouteTable::select`], `ratelimit::Scope`).
pub fn without_format(path: &str) -> Option<&str> {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let last = trimmed.rfind('/')?;
    let dot = trimmed[last..].find('.')? + last;
    // A leading dot (`/.well-known`, `/.env`) names a file, not a format.
    (dot > last + 1).then(|| &trimmed[..dot])
}

/// The path routes, API-key scopes and rate-limit scopes are matched on: a path from
/// [`normalize_path`] as the servers behind a gateway may read it, so that no reading of it
/// reaches a handler whose policy the gateway did not apply.
///
/// - The `;` parameters of segments are set aside, as servlet containers read them
///   (`/admin;x/secret` is `/admin/secret` to Tomcat).
/// - `%2F`, `%5C` and `\` separate segments: WSGI servers and Go's `ServeMux` before Go 1.22
///   route on the decoded path (`/admin%2Fsecret` is `/admin/secret` to Flask), IIS takes `\`
///   for `/`. The dot segments
///   this makes are removed again (`/public/..%2Fadmin`).
///
/// The backend still receives the path of [`normalize_path`], escapes and parameters as sent.
pub fn match_path(normalized: &str) -> Cow<'_, str> {
    let path = if hides_separator(normalized) {
        let slashed = normalized
            .replace('\\', "/")
            .replace("%2F", "/")
            .replace("%2f", "/")
            .replace("%5C", "/")
            .replace("%5c", "/");
        // `slashed` starts with `/`, as `normalized` does, so this does not fail.
        Cow::Owned(normalize_path(&slashed).unwrap_or(slashed))
    } else {
        Cow::Borrowed(normalized)
    };
    if !path.contains(';') {
        return path;
    }
    let mut s = String::with_capacity(path.len());
    for seg in path.split('/').skip(1) {
        let name = seg.split(';').next().unwrap_or("");
        if !name.is_empty() {
            s.push('/');
            s.push_str(name);
        }
    }
    if s.is_empty() || path.ends_with('/') {
        s.push('/');
    }
    Cow::Owned(s)
}

/// Whether `path` holds a `\` or an escaped `/` or `\`.
fn hides_separator(path: &str) -> bool {
    path.contains('\\')
        || path.as_bytes().windows(3).any(|w| {
            w[0] == b'%'
                && matches!(
                    (w[1], w[2].to_ascii_lowercase()),
                    (b'2', b'f') | (b'5', b'c')
                )
        })
}

/// RFC 3986 §2.3: characters that mean the same whether escaped or not.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// `seg` with `%XX` escapes of unreserved characters decoded; other escapes are kept.
fn decode_unreserved(seg: &str) -> Cow<'_, str> {
    let hex = |b: u8| (b as char).to_digit(16);
    let b = seg.as_bytes();
    let escaped_unreserved = |i: usize| -> Option<u8> {
        let (h, l) = (hex(*b.get(i + 1)?)?, hex(*b.get(i + 2)?)?);
        let v = (h * 16 + l) as u8;
        is_unreserved(v).then_some(v)
    };
    if !(0..b.len()).any(|i| b[i] == b'%' && escaped_unreserved(i).is_some()) {
        return Cow::Borrowed(seg);
    }
    let mut out = String::with_capacity(seg.len());
    let mut i = 0;
    while i < b.len() {
        match escaped_unreserved(i).filter(|_| b[i] == b'%') {
            Some(v) => {
                out.push(v as char);
                i += 3;
            }
            None => {
                // Only ASCII escapes are replaced, so the rest is copied char by char.
                let c = seg[i..].chars().next().unwrap_or_default();
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    Cow::Owned(out)
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
    match seg.split(';').next().unwrap_or("") {
        "." => Segment::Dot,
        ".." => Segment::DotDot,
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
            // Escaped unreserved characters are the characters themselves; others stay escaped.
            ("/%61dmin/%7Eme", "/admin/~me"),
            ("/a%2fb/%3B/%25", "/a%2fb/%3B/%25"),
            ("/caf%C3%A9/\u{e9}", "/caf%C3%A9/\u{e9}"),
            // Dot segments with parameters, as servlet containers read them.
            ("/public/..;x/admin", "/admin"),
            ("/public/..;jsessionid=1/admin", "/admin"),
            ("/public/%2e%2e;x/admin", "/admin"),
            ("/.;/admin/secret", "/admin/secret"),
            ("/shop;jsessionid=A1/cart", "/shop;jsessionid=A1/cart"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_path(input).as_deref(), Some(want), "{input}");
        }
        assert_eq!(normalize_path("a/b"), None);
        let matched = |p: &str| match_path(&normalize_path(p).unwrap()).into_owned();
        assert_eq!(matched("/admin;x/secret"), "/admin/secret");
        assert_eq!(matched("/admin;/secret"), "/admin/secret");
        assert_eq!(matched("/;x/admin/"), "/admin/");
        assert_eq!(matched("/shop;jsessionid=A1"), "/shop");
        assert_eq!(matched("/a/b"), "/a/b");
        assert_eq!(matched("/;x"), "/");
        assert_eq!(normalize_path("*").as_deref(), Some("*"));
        // Escaped and backward slashes separate segments for matching only.
        assert_eq!(
            normalize_path("/admin%2Fsecret").as_deref(),
            Some("/admin%2Fsecret")
        );
        assert_eq!(matched("/admin%2Fsecret"), "/admin/secret");
        assert_eq!(matched("/admin%2fsecret"), "/admin/secret");
        assert_eq!(matched("/admin%5Csecret"), "/admin/secret");
        assert_eq!(matched("/admin\\secret"), "/admin/secret");
        assert_eq!(matched("/public/..%2Fadmin%2Fsecret"), "/admin/secret");
        assert_eq!(matched("/public\\..\\admin\\"), "/admin/");
        assert_eq!(matched("/public/..%2F;x/..%5Cadmin;y/k"), "/admin/k");
        assert_eq!(matched("/a%252Fb"), "/a%252Fb");
        assert_eq!(matched("*"), "*");
    }

    #[test]
    fn a_format_extension_is_read_off_the_last_segment() {
        assert_eq!(without_format("/admin.json"), Some("/admin"));
        assert_eq!(without_format("/admin.json/"), Some("/admin"));
        assert_eq!(
            without_format("/users/sign_in.JSON"),
            Some("/users/sign_in")
        );
        assert_eq!(without_format("/a.b/c.tar.gz"), Some("/a.b/c"));
        assert_eq!(without_format("/a.b/c"), None);
        assert_eq!(without_format("/.well-known"), None);
        assert_eq!(without_format("/"), None);
        assert_eq!(without_format("*"), None);
    }

    #[test]
    fn prefixes_match_whole_segments_in_any_case() {
        assert!(under_prefix("/admin", "/admin"));
        assert!(under_prefix("/admin/x", "/admin"));
        assert!(under_prefix("/ADMIN/x", "/admin"));
        assert!(under_prefix("/Admin", "/aDmin"));
        assert!(under_prefix("/anything", "/"));
        assert!(!under_prefix("/administrator", "/admin"));
        assert!(!under_prefix("/adm", "/admin"));
        assert!(!under_prefix("/api/admin", "/admin"));
        assert!(!under_prefix("/admin.json", "/admin"));
        // Not ASCII: only ASCII letters fold, so a multi-byte prefix compares byte for byte.
        assert!(under_prefix("/caf\u{e9}/x", "/caf\u{e9}"));
        assert!(!under_prefix("/caf\u{c9}/x", "/caf\u{e9}"));
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
