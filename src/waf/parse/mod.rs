//! Breaks a request into inspected items: query arguments, headers, cookies, and bodies by
//! content type (form, multipart, JSON, XML; anything else is inspected whole, or, when it is
//! binary data, by the runs of text in it).

use std::borrow::Cow;
use std::net::IpAddr;

use super::target::{Item, TargetKind};
use super::transform::url_decode_once;

mod binary;
mod charset;
mod coding;
mod cookie;
mod credentials;
mod json;
mod multipart;
mod xml;

pub use charset::body_text;
pub use coding::{decode_body, CodingError, DECODED_CODINGS};

use binary::{whole_body, whole_text};
use json::json_items;
use multipart::{boundary_of, multipart_items};
use xml::xml_items;

/// The request line and headers, as the WAF sees them (no Pingora types).
#[derive(Debug, Clone, Default)]
pub struct RequestView<'a> {
    /// Method as sent.
    pub method: &'a str,
    /// Path as sent (percent-encoded, not normalised).
    pub path: &'a str,
    /// Query string without `?`.
    pub query: Option<&'a str>,
    /// Headers in order; names lower-case.
    pub headers: Vec<(&'a str, Cow<'a, str>)>,
    /// Client address.
    pub client_ip: Option<IpAddr>,
}

impl<'a> RequestView<'a> {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_ref())
    }
}

/// Limits on what a body may expand into. A body beyond one is not inspected in part and
/// passed on: [`body_items`] reports it, and the route's `on_body_limit` decides.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// Deepest JSON nesting.
    pub json_depth: usize,
    /// Most multipart parts.
    pub multipart_parts: usize,
    /// Most arguments of one source (form pairs, JSON values and keys, XML elements).
    pub args: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            json_depth: 64,
            multipart_parts: 256,
            args: 10_000,
        }
    }
}

/// Which [`ParseLimits`] entry a body went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// JSON nested deeper than `json_depth`.
    JsonDepth,
    /// More multipart parts than `multipart_parts`.
    MultipartParts,
    /// More arguments than `args`.
    Args,
}

impl Exceeded {
    /// The `limits` field an operator raises.
    pub fn setting(self) -> &'static str {
        match self {
            Exceeded::JsonDepth => "max_json_depth",
            Exceeded::MultipartParts => "max_multipart_parts",
            Exceeded::Args => "max_body_args",
        }
    }
}

/// Items of the request line and headers.
pub fn head_items<'a>(req: &'a RequestView<'a>, limits: &ParseLimits, out: &mut Vec<Item<'a>>) {
    out.push(Item {
        kind: TargetKind::Method,
        name: Cow::Borrowed(""),
        value: Cow::Borrowed(req.method),
    });
    out.push(Item {
        kind: TargetKind::Path,
        name: Cow::Borrowed(""),
        value: Cow::Borrowed(req.path),
    });
    if let Some(q) = req.query {
        out.push(Item {
            kind: TargetKind::Query,
            name: Cow::Borrowed(""),
            value: Cow::Borrowed(q),
        });
        // The query's size is bounded by `limits.max_uri_length` and its argument count by
        // `limits.max_query_args`, both enforced before the WAF runs.
        let unbounded = ParseLimits {
            args: usize::MAX,
            ..*limits
        };
        let _ = form_items(q, TargetKind::Args, TargetKind::ArgsNames, &unbounded, out);
    }
    if let Some(ip) = req.client_ip {
        out.push(Item {
            kind: TargetKind::RemoteAddr,
            name: Cow::Borrowed(""),
            value: Cow::Owned(ip.to_string()),
        });
    }
    for (name, value) in &req.headers {
        out.push(Item {
            kind: TargetKind::HeaderNames,
            name: Cow::Borrowed(name),
            value: Cow::Borrowed(name),
        });
        out.push(Item {
            kind: TargetKind::Headers,
            name: Cow::Borrowed(name),
            value: Cow::Borrowed(value.as_ref()),
        });
        if *name == "cookie" {
            for pair in value.split(';') {
                let pair = pair.trim();
                if pair.is_empty() {
                    continue;
                }
                let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
                out.push(Item {
                    kind: TargetKind::CookieNames,
                    name: Cow::Borrowed(n.trim()),
                    value: Cow::Borrowed(n.trim()),
                });
                let (n, v) = (n.trim(), v.trim());
                out.push(Item {
                    kind: TargetKind::Cookies,
                    name: Cow::Borrowed(n),
                    value: Cow::Borrowed(v),
                });
                if let Some(inner) = cookie::unquoted(v) {
                    out.push(Item {
                        kind: TargetKind::Cookies,
                        name: Cow::Borrowed(n),
                        value: Cow::Borrowed(inner),
                    });
                }
                if let Some(json) = cookie::json_cookie(v) {
                    json_cookie_items(n, json, limits, out);
                }
            }
            for (n, v) in cookie::quoted_cookies(value) {
                out.push(Item {
                    kind: TargetKind::Cookies,
                    name: Cow::Borrowed(n),
                    value: Cow::Owned(v),
                });
            }
        } else if *name == "authorization" {
            if let Some((user, password)) = credentials::basic_credentials(value) {
                out.push(Item {
                    kind: TargetKind::Credentials,
                    name: Cow::Borrowed("user"),
                    value: Cow::Owned(user),
                });
                out.push(Item {
                    kind: TargetKind::Credentials,
                    name: Cow::Borrowed("password"),
                    value: Cow::Owned(password),
                });
            }
        }
    }
}

/// The items of a cookie-parser JSON cookie `name`: its decoded text, and the items of the JSON
/// in it. The header's size bounds the count of values, as it does for the query's arguments.
fn json_cookie_items<'a>(
    name: &'a str,
    json: String,
    limits: &ParseLimits,
    out: &mut Vec<Item<'a>>,
) {
    let unbounded = ParseLimits {
        args: usize::MAX,
        ..*limits
    };
    embedded_json_items(
        Cow::Borrowed(name),
        &json,
        (TargetKind::Cookies, TargetKind::CookieNames),
        &unbounded,
        out,
    );
    out.push(Item {
        kind: TargetKind::Cookies,
        name: Cow::Borrowed(name),
        value: Cow::Owned(json),
    });
}

/// The items of JSON carried in a value called `name` (`?filter={"name":"x"}`, which APIs hand
/// to `JSON.parse`, a cookie-parser JSON cookie): its strings and numbers are values of `name`,
/// with their escapes decoded as the application will see them; its keys are names (where NoSQL
/// operators are looked for), and the paths of its keys JSON paths (where prototype pollution
/// is). What is read before a syntax error or a limit counts, as it does for a JSON body.
fn embedded_json_items<'a>(
    name: Cow<'a, str>,
    json: &str,
    (values, names): (TargetKind, TargetKind),
    limits: &ParseLimits,
    out: &mut Vec<Item<'a>>,
) {
    let mut items = Vec::new();
    let _ = json_items(json, limits, &mut items);
    for item in items {
        let (kind, name) = match item.kind {
            TargetKind::Json => (values, name.clone()),
            TargetKind::JsonKeys => (names, name.clone()),
            other => (other, Cow::Borrowed("")),
        };
        out.push(Item {
            kind,
            name,
            value: Cow::Owned(item.value.into_owned()),
        });
    }
}

fn form_decode(s: &str) -> Cow<'_, str> {
    match url_decode_once(s) {
        Some(d) => Cow::Owned(d),
        None => Cow::Borrowed(s),
    }
}

/// `a=1&b=2` style pairs, decoded as application servers decode them.
pub fn form_items<'a>(
    text: &'a str,
    values: TargetKind,
    names: TargetKind,
    limits: &ParseLimits,
    out: &mut Vec<Item<'a>>,
) -> Result<(), Exceeded> {
    for (i, pair) in text.split('&').filter(|p| !p.is_empty()).enumerate() {
        if i >= limits.args {
            return Err(Exceeded::Args);
        }
        let (n, v) = match pair.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (pair, None),
        };
        let name = form_decode(n);
        let value = v.map(form_decode).unwrap_or(Cow::Borrowed(""));
        if let Some((qs_name, qs_value)) = qs_reading(pair, &name, &value) {
            out.push(Item {
                kind: names,
                name: Cow::Owned(qs_name.clone()),
                value: Cow::Owned(qs_name.clone()),
            });
            out.push(Item {
                kind: values,
                name: Cow::Owned(qs_name),
                value: Cow::Owned(qs_value),
            });
        }
        if value.trim_start().starts_with(['{', '[']) {
            embedded_json_items(name.clone(), &value, (values, names), limits, out);
        }
        out.push(Item {
            kind: names,
            name: name.clone(),
            value: name.clone(),
        });
        out.push(Item {
            kind: values,
            name,
            value,
        });
    }
    Ok(())
}

/// A pair as `qs` reads it (Express's `urlencoded({extended: true})` and extended query parser,
/// koa's body parser), when that differs from the plain reading `name`, `value`: `qs` splits at
/// the first `]=` when there is one, and keeps of a name only the text before its first `[` and
/// its `[...]` segments, so `[constructor]a=[prototype][x]=1` is `[constructor][prototype][x]`
/// set to `1`. Brackets may be escaped: the name is decoded first.
fn qs_reading(pair: &str, name: &str, value: &str) -> Option<(String, String)> {
    let split = pair.find("]=").map(|i| i + 1);
    if split.is_none() && !name.contains('[') {
        return None;
    }
    let (qs_name, qs_value) = match split {
        Some(at) if Some(at) != pair.find('=') => {
            (form_decode(&pair[..at]), form_decode(&pair[at + 1..]))
        }
        _ => (Cow::Borrowed(name), Cow::Borrowed(value)),
    };
    let qs_name = qs_segments(&qs_name);
    (qs_name != name || qs_value != value).then(|| (qs_name, qs_value.into_owned()))
}

/// A name as `qs` takes it apart: the text before its first `[...]` segment (a run without `[`
/// or `]` inside brackets), then every later segment, what lies between them dropped.
fn qs_segments(name: &str) -> String {
    let b = name.as_bytes();
    let mut segments = Vec::new();
    let mut i = 0;
    while let Some(open) = name[i..].find('[').map(|o| o + i) {
        match name[open + 1..].find(['[', ']']).map(|o| o + open + 1) {
            Some(close) if b[close] == b']' => {
                segments.push(open..close + 1);
                i = close + 1;
            }
            Some(reopen) => i = reopen,
            None => break,
        }
    }
    let Some(first) = segments.first() else {
        return name.to_string();
    };
    let mut out = name[..first.start].to_string();
    for r in segments {
        out.push_str(&name[r]);
    }
    out
}

/// What kind of body a content type announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/x-www-form-urlencoded`
    Form,
    /// `multipart/form-data` (with its boundary)
    Multipart,
    /// `application/json`, `*+json`
    Json,
    /// `application/xml`, `text/xml`, `*+xml`
    Xml,
    /// Anything else, or no content type.
    Other,
}

/// Classifies a `Content-Type` value.
pub fn body_kind(content_type: Option<&str>) -> BodyKind {
    let Some(ct) = content_type else {
        return BodyKind::Other;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/x-www-form-urlencoded" => BodyKind::Form,
        "multipart/form-data" | "multipart/mixed" => BodyKind::Multipart,
        "application/json" | "text/json" => BodyKind::Json,
        "application/xml" | "text/xml" | "application/soap+xml" => BodyKind::Xml,
        m if m.ends_with("+json") => BodyKind::Json,
        m if m.ends_with("+xml") => BodyKind::Xml,
        _ => BodyKind::Other,
    }
}

/// Items of a (buffered) body. `Ok(false)` when the body did not parse as its content type
/// said (it is then inspected whole, as text); `Err` when it goes past a limit, with the items
/// found up to there. A body of any other type is inspected whole, as text or as binary data.
pub fn body_items<'a>(
    content_type: Option<&'a str>,
    body: &'a str,
    limits: &ParseLimits,
    out: &mut Vec<Item<'a>>,
) -> Result<bool, Exceeded> {
    let whole = |out: &mut Vec<Item<'a>>| whole_text(body, out);
    match body_kind(content_type) {
        BodyKind::Form => {
            form_items(
                body,
                TargetKind::BodyArgs,
                TargetKind::BodyArgsNames,
                limits,
                out,
            )?;
            Ok(true)
        }
        BodyKind::Multipart => {
            let ok = match content_type.and_then(boundary_of) {
                Some(b) => multipart_items(body, &b, limits, out)?,
                None => false,
            };
            if !ok {
                whole(out);
            }
            Ok(ok)
        }
        BodyKind::Json => {
            let lenient = |out: &mut Vec<Item<'a>>| {
                whole(out);
                // JSON5 and lenient Jackson or Gson read `\X` as `X` for any X: that reading too.
                if let Some(text) = json::lenient_escapes(body) {
                    out.push(Item {
                        kind: TargetKind::Body,
                        name: Cow::Borrowed(""),
                        value: Cow::Owned(text),
                    });
                }
            };
            let ok = json_items(body, limits, out).inspect_err(|_| lenient(out))?;
            if !ok {
                lenient(out);
            }
            Ok(ok)
        }
        BodyKind::Xml => {
            let ok = xml_items(body, limits, out)?;
            if !ok {
                whole(out);
            }
            Ok(ok)
        }
        BodyKind::Other => {
            // Without a content type, clients (and attackers) often send form data.
            if content_type.is_none() && body.contains('=') && !body.contains(char::is_whitespace) {
                // A guess: past the limit, the whole body is still inspected as `body`.
                let _ = form_items(
                    body,
                    TargetKind::BodyArgs,
                    TargetKind::BodyArgsNames,
                    limits,
                    out,
                );
            }
            whole_body(body, out);
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(items: &[Item<'_>]) -> Vec<String> {
        items
            .iter()
            .map(|i| format!("{}={}", i.label(), i.value))
            .collect()
    }

    #[test]
    fn pairs_are_also_read_as_qs_reads_them() {
        let read = |text: &str| {
            let mut out = Vec::new();
            form_items(
                text,
                TargetKind::Args,
                TargetKind::ArgsNames,
                &ParseLimits::default(),
                &mut out,
            )
            .unwrap();
            labels(&out)
        };
        let l = read("[constructor]a=[prototype][isAdmin]=1");
        assert!(
            l.contains(
                &"args_names:[constructor][prototype][isAdmin]=[constructor][prototype][isAdmin]"
                    .to_string()
            ),
            "{l:?}"
        );
        assert!(
            l.contains(&"args:[constructor][prototype][isAdmin]=1".to_string()),
            "{l:?}"
        );
        assert!(
            l.contains(&"args:[constructor]a=[prototype][isAdmin]=1".to_string()),
            "{l:?}"
        );
        let l = read("[next]a=b]=/%5Cevil.example&%5Bu%5Dx=1");
        assert!(
            l.contains(&"args:[next]=/\\evil.example".to_string()),
            "{l:?}"
        );
        assert!(l.contains(&"args:[u]=1".to_string()), "{l:?}");
        assert_eq!(qs_segments("a[b[c]x[d]"), "a[b[c][d]");
        assert_eq!(qs_segments("user[name]"), "user[name]");
        assert_eq!(qs_segments("a]b["), "a]b[");
        // Ordinary names, nested or not, read the same: no second reading.
        for text in ["a=1&b=2", "user[name]=x&ids[]=1", "q=a]b", "x==1"] {
            assert_eq!(read(text).len(), 2 * text.split('&').count(), "{text}");
        }
    }

    #[test]
    fn json_in_a_value_is_read_as_json() {
        let mut out = Vec::new();
        form_items(
            "filter=%7B%22where%22%3A%7B%22name%22%3A%221%27%5CtUNION%22%2C%22%24ne%22%3A1%7D%7D&q=%5Bx",
            TargetKind::Args,
            TargetKind::ArgsNames,
            &ParseLimits::default(),
            &mut out,
        )
        .unwrap();
        let l = labels(&out);
        for want in [
            "args:filter=1'\tUNION",
            "args:filter=1",
            "args_names:filter=$ne",
            "json_paths=where.$ne",
            "args:q=[x",
        ] {
            assert!(l.contains(&want.to_string()), "{want} missing from {l:?}");
        }
    }

    #[test]
    fn node_cookie_readings() {
        let req = RequestView {
            method: "GET",
            path: "/",
            query: None,
            headers: vec![(
                "cookie",
                r#"user="admin' #"; sid=j:{"%5Cu0024ne":null}; p=j:{"constructor":{"prototype":{"a":"\t1"}}}; bad=j:{"#.into(),
            )],
            client_ip: None,
        };
        let mut out = Vec::new();
        head_items(&req, &ParseLimits::default(), &mut out);
        let l = labels(&out);
        for want in [
            "cookies:user=admin' #",
            "cookies:user=\"admin' #\"",
            "cookie_names:sid=$ne",
            r#"cookies:sid={"\u0024ne":null}"#,
            "json_paths=constructor.prototype.a",
            "cookies:p=\t1",
            "cookies:bad={",
        ] {
            assert!(l.contains(&want.to_string()), "{want} missing from {l:?}");
        }
    }

    #[test]
    fn query_headers_cookies() {
        let req = RequestView {
            method: "GET",
            path: "/a%20b",
            query: Some("id=1%27&flag&q=a+b"),
            headers: vec![
                ("cookie", "sid=abc; theme=dark".into()),
                ("user-agent", "x".into()),
            ],
            client_ip: None,
        };
        let mut out = Vec::new();
        head_items(&req, &ParseLimits::default(), &mut out);
        let l = labels(&out);
        for want in [
            "method=GET",
            "path=/a%20b",
            "query=id=1%27&flag&q=a+b",
            "args:id=1'",
            "args_names:flag=flag",
            "args:flag=",
            "args:q=a b",
            "cookies:sid=abc",
            "cookie_names:theme=theme",
            "headers:user-agent=x",
            "header_names:user-agent=user-agent",
        ] {
            assert!(l.contains(&want.to_string()), "{want} missing from {l:?}");
        }
    }

    #[test]
    fn bodies() {
        let lim = ParseLimits::default();
        let mut out = Vec::new();
        assert!(body_items(
            Some("application/json"),
            r#"{"a":{"b":["x",2]},"c":true}"#,
            &lim,
            &mut out
        )
        .unwrap());
        let l = labels(&out);
        assert!(l.contains(&"json:a.b[0]=x".to_string()), "{l:?}");
        assert!(l.contains(&"json:a.b[1]=2".to_string()), "{l:?}");
        assert!(l.contains(&"json_keys:a.b=b".to_string()), "{l:?}");

        let mut out = Vec::new();
        let mp = "--XyZ\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\nhello <b>\r\n--XyZ\r\nContent-Disposition: form-data; name=\"up\"; filename=\"shell.php\"\r\nContent-Type: text/plain\r\n\r\n<?php ?>\r\n--XyZ\r\nContent-Disposition: form-data; name=\"fi;le\"\r\n\r\nx\r\n--XyZ--\r\n";
        assert!(body_items(
            Some("multipart/form-data; boundary=XyZ"),
            mp,
            &lim,
            &mut out
        )
        .unwrap());
        let l = labels(&out);
        assert!(
            l.contains(&"body_args:comment=hello <b>".to_string()),
            "{l:?}"
        );
        assert!(l.contains(&"files:up=shell.php".to_string()), "{l:?}");
        assert!(l.contains(&"body_args:fi;le=x".to_string()), "{l:?}");

        let mut out = Vec::new();
        let xml = r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><a k="v&amp;w"><b>text &lt;i&gt;</b></a>"#;
        assert!(body_items(Some("application/xml"), xml, &lim, &mut out).unwrap());
        let l = labels(&out);
        assert!(
            l.iter()
                .any(|s| s.starts_with("xml:!doctype=<!DOCTYPE x [<!ENTITY e SYSTEM")),
            "{l:?}"
        );
        assert!(l.contains(&"xml:a@k=v&w".to_string()), "{l:?}");
        assert!(l.contains(&"xml:b=text <i>".to_string()), "{l:?}");

        let mut out = Vec::new();
        assert!(!body_items(Some("application/json"), "{not json", &lim, &mut out).unwrap());
        assert_eq!(labels(&out), vec!["body={not json".to_string()]);

        let mut out = Vec::new();
        body_items(None, "a=1&b=%3Cx", &lim, &mut out).unwrap();
        let l = labels(&out);
        assert!(
            l.contains(&"body_args:b=<x".to_string()) && l.contains(&"body=a=1&b=%3Cx".to_string()),
            "{l:?}"
        );
    }

    #[test]
    fn bodies_past_a_limit_are_reported_not_cut_short() {
        let lim = ParseLimits {
            json_depth: 4,
            multipart_parts: 2,
            args: 6,
        };
        let json = |s: &str| body_items(Some("application/json"), s, &lim, &mut Vec::new());
        assert_eq!(json(r#"{"a":[[{"b":1}]]}"#), Ok(true));
        assert_eq!(json(r#"{"a":[[{"b":[1]}]]}"#), Err(Exceeded::JsonDepth));
        // Deeper than serde_json parses: still a depth refusal, not a raw-text fallback.
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(json(&deep), Err(Exceeded::JsonDepth));
        // Brackets inside strings do not nest.
        assert_eq!(json(r#"{"a":"[[[[[[{{{{\"]]"}"#), Ok(true));
        assert_eq!(json("[1,2,3,4,5,6,7]"), Err(Exceeded::Args));

        let form = |s: &str| {
            body_items(
                Some("application/x-www-form-urlencoded"),
                s,
                &lim,
                &mut Vec::new(),
            )
        };
        assert_eq!(form("a=1&b=2&c=3&d=4&e=5&f=6"), Ok(true));
        assert_eq!(form("a=1&b=2&c=3&d=4&e=5&f=6&g=7"), Err(Exceeded::Args));

        let part = "--B\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv\r\n";
        let mp = |n: usize| {
            let body = format!("{}--B--\r\n", part.repeat(n));
            body_items(
                Some("multipart/form-data; boundary=B"),
                &body,
                &lim,
                &mut Vec::new(),
            )
        };
        assert_eq!(mp(2), Ok(true));
        assert_eq!(mp(3), Err(Exceeded::MultipartParts));

        let xml = |s: &str| body_items(Some("application/xml"), s, &lim, &mut Vec::new());
        assert_eq!(xml("<a><b><c>x</c></b></a>"), Ok(true));
        assert_eq!(
            xml("<a><b><c><d><e>x</e></d></c></b></a>"),
            Err(Exceeded::JsonDepth)
        );
        assert_eq!(xml("<a><b/><b/><b/><b/><b/><b/></a>"), Err(Exceeded::Args));
    }

    #[test]
    fn the_items_before_a_limit_are_kept() {
        let lim = ParseLimits {
            args: 2,
            ..ParseLimits::default()
        };
        let mut out = Vec::new();
        let r = body_items(
            Some("application/x-www-form-urlencoded"),
            "a=1&b=2&c=3",
            &lim,
            &mut out,
        );
        assert_eq!(r, Err(Exceeded::Args));
        let l = labels(&out);
        assert!(l.contains(&"body_args:b=2".to_string()), "{l:?}");
    }
}
