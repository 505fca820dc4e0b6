//! Breaks a request into inspected items: query arguments, headers, cookies, and bodies by
//! content type (form, multipart, JSON, XML; anything else is inspected whole).

use std::borrow::Cow;
use std::net::IpAddr;

use super::target::{Item, TargetKind};
use super::transform::url_decode;

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
                out.push(Item {
                    kind: TargetKind::Cookies,
                    name: Cow::Borrowed(n.trim()),
                    value: Cow::Borrowed(v.trim()),
                });
            }
        }
    }
}

fn form_decode(s: &str) -> Cow<'_, str> {
    match url_decode(s) {
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
        out.push(Item {
            kind: names,
            name: name.clone(),
            value: name.clone(),
        });
        out.push(Item {
            kind: values,
            name,
            value: v.map(form_decode).unwrap_or(Cow::Borrowed("")),
        });
    }
    Ok(())
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
/// said (it is then inspected whole as `body`); `Err` when it goes past a limit, with the items
/// found up to there.
pub fn body_items<'a>(
    content_type: Option<&'a str>,
    body: &'a str,
    limits: &ParseLimits,
    out: &mut Vec<Item<'a>>,
) -> Result<bool, Exceeded> {
    let whole = |out: &mut Vec<Item<'a>>| {
        out.push(Item {
            kind: TargetKind::Body,
            name: Cow::Borrowed(""),
            value: Cow::Borrowed(body),
        })
    };
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
                Some(b) => multipart_items(body, b, limits, out)?,
                None => false,
            };
            if !ok {
                whole(out);
            }
            Ok(ok)
        }
        BodyKind::Json => {
            let ok = json_items(body, limits, out).inspect_err(|_| whole(out))?;
            if !ok {
                whole(out);
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
            whole(out);
            Ok(true)
        }
    }
}

fn boundary_of(ct: &str) -> Option<&str> {
    ct.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("boundary") {
            let v = v.trim().trim_matches('"');
            (!v.is_empty() && v.len() <= 200).then_some(v)
        } else {
            None
        }
    })
}

fn multipart_items<'a>(
    body: &'a str,
    boundary: &str,
    limits: &ParseLimits,
    out: &mut Vec<Item<'a>>,
) -> Result<bool, Exceeded> {
    let delim = format!("--{boundary}");
    let mut parts = body.split(delim.as_str());
    // Text before the first delimiter is a preamble.
    if parts.next().is_none() {
        return Ok(false);
    }
    let mut seen = 0;
    for part in parts {
        if part.starts_with("--") {
            break;
        }
        seen += 1;
        if seen > limits.multipart_parts {
            return Err(Exceeded::MultipartParts);
        }
        let part = part
            .strip_prefix("\r\n")
            .or_else(|| part.strip_prefix('\n'))
            .unwrap_or(part);
        let (head, content) = match part.find("\r\n\r\n") {
            Some(i) => (&part[..i], &part[i + 4..]),
            None => match part.find("\n\n") {
                Some(i) => (&part[..i], &part[i + 2..]),
                None => return Ok(false),
            },
        };
        let content = content
            .strip_suffix("\r\n")
            .or_else(|| content.strip_suffix('\n'))
            .unwrap_or(content);
        let mut name = "";
        let mut filename = None;
        for line in head.lines() {
            let Some((h, v)) = line.split_once(':') else {
                continue;
            };
            out.push(Item {
                kind: TargetKind::MultipartHeaders,
                name: Cow::Borrowed(h.trim()),
                value: Cow::Borrowed(v.trim()),
            });
            if h.trim().eq_ignore_ascii_case("content-disposition") {
                for param in split_params(v).into_iter().skip(1) {
                    if let Some((k, val)) = param.split_once('=') {
                        let val = val.trim();
                        let val = val
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .unwrap_or(val);
                        match k.trim().to_ascii_lowercase().as_str() {
                            "name" => name = val,
                            "filename" | "filename*" => filename = Some(val),
                            _ => {}
                        }
                    }
                }
            }
        }
        out.push(Item {
            kind: TargetKind::BodyArgsNames,
            name: Cow::Borrowed(name),
            value: Cow::Borrowed(name),
        });
        match filename {
            Some(f) => out.push(Item {
                kind: TargetKind::Files,
                name: Cow::Borrowed(name),
                value: Cow::Borrowed(f),
            }),
            None => out.push(Item {
                kind: TargetKind::BodyArgs,
                name: Cow::Borrowed(name),
                value: Cow::Borrowed(content),
            }),
        }
    }
    Ok(seen > 0)
}

/// Splits header parameters at `;` outside double quotes (`name="a;b"` stays whole).
fn split_params(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in v.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&v[start..]);
    out
}

fn json_items<'a>(
    body: &'a str,
    limits: &ParseLimits,
    out: &mut Vec<Item<'a>>,
) -> Result<bool, Exceeded> {
    // Nesting is checked first: serde_json gives up past 128 levels, and a body it cannot
    // parse would otherwise be inspected only as raw text.
    if json_nesting(body) > limits.json_depth {
        return Err(Exceeded::JsonDepth);
    }
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return Ok(false);
    };
    let mut count = 0;
    walk_json(&v, &mut String::new(), limits, &mut count, out)?;
    Ok(true)
}

/// The deepest nesting of `[` and `{` outside strings (of the text as written; it need not be
/// valid JSON).
fn json_nesting(body: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for b in body.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn walk_json(
    v: &serde_json::Value,
    path: &mut String,
    limits: &ParseLimits,
    count: &mut usize,
    out: &mut Vec<Item<'_>>,
) -> Result<(), Exceeded> {
    *count += 1;
    if *count > limits.args {
        return Err(Exceeded::Args);
    }
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                out.push(Item {
                    kind: TargetKind::JsonKeys,
                    name: Cow::Owned(path.clone()),
                    value: Cow::Owned(k.clone()),
                });
                walk_json(child, path, limits, count, out)?;
                path.truncate(len);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk_json(child, path, limits, count, out)?;
                path.truncate(len);
            }
        }
        serde_json::Value::String(s) => out.push(Item {
            kind: TargetKind::Json,
            name: Cow::Owned(path.clone()),
            value: Cow::Owned(s.clone()),
        }),
        serde_json::Value::Null => {}
        other => out.push(Item {
            kind: TargetKind::Json,
            name: Cow::Owned(path.clone()),
            value: Cow::Owned(other.to_string()),
        }),
    }
    Ok(())
}

fn xml_items<'a>(
    body: &'a str,
    limits: &ParseLimits,
    out: &mut Vec<Item<'a>>,
) -> Result<bool, Exceeded> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(body);
    let mut stack: Vec<String> = Vec::new();
    let mut any = false;
    let mut elements = 0usize;
    loop {
        match reader.read_event() {
            Ok(ev @ (Event::Start(_) | Event::Empty(_))) => {
                elements += 1;
                if elements > limits.args {
                    return Err(Exceeded::Args);
                }
                if stack.len() >= limits.json_depth {
                    return Err(Exceeded::JsonDepth);
                }
                let (e, is_start) = match ev {
                    Event::Start(e) => (e, true),
                    Event::Empty(e) => (e, false),
                    _ => continue,
                };
                any = true;
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                for attr in e.attributes().flatten() {
                    let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
                    let val = String::from_utf8_lossy(&attr.value).into_owned();
                    out.push(Item {
                        kind: TargetKind::Xml,
                        name: Cow::Owned(format!("{name}@{key}")),
                        value: Cow::Owned(unescape_xml(&val)),
                    });
                }
                if is_start {
                    stack.push(name);
                }
            }
            Ok(Event::End(_)) => {
                stack.pop();
            }
            Ok(Event::Text(t)) => {
                let raw = String::from_utf8_lossy(t.as_ref()).into_owned();
                if !raw.trim().is_empty() {
                    out.push(Item {
                        kind: TargetKind::Xml,
                        name: Cow::Owned(stack.last().cloned().unwrap_or_default()),
                        value: Cow::Owned(unescape_xml(&raw)),
                    });
                }
            }
            Ok(Event::CData(t)) => out.push(Item {
                kind: TargetKind::Xml,
                name: Cow::Owned(stack.last().cloned().unwrap_or_default()),
                value: Cow::Owned(String::from_utf8_lossy(t.as_ref()).into_owned()),
            }),
            Ok(Event::DocType(t)) => {
                any = true;
                out.push(Item {
                    kind: TargetKind::Xml,
                    name: Cow::Borrowed("!doctype"),
                    value: Cow::Owned(format!(
                        "<!DOCTYPE {}>",
                        String::from_utf8_lossy(t.as_ref())
                    )),
                })
            }
            Ok(Event::PI(t)) => out.push(Item {
                kind: TargetKind::Xml,
                name: Cow::Borrowed("?pi"),
                value: Cow::Owned(String::from_utf8_lossy(t.as_ref()).into_owned()),
            }),
            Ok(Event::Eof) => return Ok(any),
            Ok(_) => {}
            Err(_) => return Ok(false),
        }
    }
}

fn unescape_xml(s: &str) -> String {
    quick_xml::escape::unescape(s)
        .map(|c| c.into_owned())
        .unwrap_or_else(|_| s.to_string())
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
