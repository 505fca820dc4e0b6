//! Breaks a request into inspected items: query arguments, headers, cookies, and bodies by
//! content type (form, multipart, JSON, XML; anything else is inspected whole, or, when it is
//! binary data, by the runs of text in it).

use std::borrow::Cow;
use std::net::IpAddr;

use super::target::{Item, TargetKind};

mod binary;
mod body;
mod charset;
mod coding;
mod cookie;
mod credentials;
mod form;
mod json;
mod json_text;
mod multipart;
mod xml;

pub use body::{body_items, body_kind, request_body_items, BodyKind};
pub use charset::body_text;
pub use coding::{decode_body, CodingError, DECODED_CODINGS};

use binary::{whole_body, whole_text};
use form::form_items;
use form::json_cookie_items;
use json::json_items;
use multipart::{boundaries, multipart_items};
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

/// Items as `label=value` lines, for tests.
#[cfg(test)]
fn labels(items: &[Item<'_>]) -> Vec<String> {
    items
        .iter()
        .map(|i| format!("{}={}", i.label(), i.value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
