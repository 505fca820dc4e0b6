//! Method overrides: the methods a backend may take a request for.
//!
//! Many frameworks let a request name another method than the one it was sent with, so that
//! HTML forms and restrictive clients can reach PUT, PATCH and DELETE handlers: Express's
//! `method-override` (a header or `_method` in the query), Rack's `MethodOverride` (Rails,
//! Sinatra: `_method` in a form body, `X-HTTP-Method-Override`), Symfony and Laravel (`_method`
//! in the body or query, Laravel's JSON bodies included, and the header), Spring's
//! `HiddenHttpMethodFilter` (a `_method` parameter), ASP.NET Core's `HttpMethodOverride`
//! (the header or a form field). API-key and rate-limit scopes that name methods weigh every
//! method a request names, so that a key allowed to `POST` does not reach a `DELETE` handler
//! with `_method=DELETE`.

use std::borrow::Cow;

use http::{HeaderMap, Method};

use crate::waf::parse::{body_items, BodyKind, ParseLimits};
use crate::waf::target::TargetKind;
use crate::waf::transform::url_decode_once;

/// Headers that name the method a request stands for.
pub const HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The query, form or JSON field that names the method a request stands for.
pub const FIELD: &str = "_method";

/// The methods a request may be taken for: the method it was sent with, then, for a `POST`
/// (every framework above honours overrides only there), each other one its override headers
/// or its `_method` query arguments name.
pub fn request_methods(method: &Method, headers: &HeaderMap, query: Option<&str>) -> Vec<Method> {
    let mut out = vec![method.clone()];
    if method != Method::POST {
        return out;
    }
    for name in HEADERS {
        for value in headers.get_all(name) {
            add_named(&mut out, &String::from_utf8_lossy(value.as_bytes()));
        }
    }
    if let Some(q) = query {
        for value in query_values(q) {
            add_named(&mut out, &value);
        }
    }
    out
}

/// The methods a buffered body names in `_method` (a form or multipart field, or a JSON
/// object's top-level key), not already in `known`.
pub fn body_methods(content_type: Option<&str>, body: &str, known: &[Method]) -> Vec<Method> {
    // However the name is written (`%5Fmethod`, `\u005fmethod` in JSON, `name*=` in a part), the
    // body holds `method`, `%` or `\`.
    let may_hold = body.contains(['%', '\\'])
        || body
            .as_bytes()
            .windows(6)
            .any(|w| w.eq_ignore_ascii_case(b"method"));
    if !may_name_methods(content_type) || !may_hold {
        return Vec::new();
    }
    let mut items = Vec::new();
    let _ = body_items(content_type, body, &ParseLimits::default(), &mut items);
    let mut out = known.to_vec();
    for item in items {
        if matches!(item.kind, TargetKind::BodyArgs | TargetKind::Json) && names_field(&item.name) {
            add_named(&mut out, &item.value);
        }
    }
    out.split_off(known.len())
}

/// Whether a body of `content_type` is one that can carry a `_method` field: a form, multipart
/// or JSON body, or one without a content type, which Rack reads as a form.
pub fn may_name_methods(content_type: Option<&str>) -> bool {
    content_type.is_none_or(|c| c.trim().is_empty())
        || matches!(
            crate::waf::parse::body_kind(content_type),
            BodyKind::Form | BodyKind::Multipart | BodyKind::Json
        )
}

/// Whether an argument name is [`FIELD`] as Rack, `qs` and PHP read names: Rack and `qs` drop
/// brackets around it (`[_method]`, `_method]`), PHP leading spaces, and PHP reads `.` and
/// space as `_` (`.method` is `_method` to Laravel and Symfony).
fn names_field(name: &str) -> bool {
    let name = name.trim_start_matches(' ');
    let bare = name.trim_start_matches(['[', ']']).trim_end_matches(']');
    bare.len() == FIELD.len()
        && bare
            .chars()
            .map(|c| if matches!(c, '.' | ' ') { '_' } else { c })
            .eq(FIELD.chars())
}

/// The values of the query arguments named [`FIELD`], decoded.
fn query_values(query: &str) -> Vec<Cow<'_, str>> {
    query
        .split('&')
        .filter_map(|pair| {
            let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
            let n = url_decode_once(n)
                .map(Cow::Owned)
                .unwrap_or(Cow::Borrowed(n));
            names_field(&n).then(|| {
                url_decode_once(v)
                    .map(Cow::Owned)
                    .unwrap_or(Cow::Borrowed(v))
            })
        })
        .collect()
}

/// Adds the methods `text` names (comma-separated, any case), once each. Text that is not a
/// method token is not one any framework routes by, and is left out. Ruby upper-cases with
/// Unicode's rules, so `optıons` (a dotless i) is `OPTIONS` to Rack: both foldings count.
fn add_named(out: &mut Vec<Method>, text: &str) {
    for word in text.split(',') {
        let word = word.trim();
        if word.is_empty() {
            continue;
        }
        for upper in [word.to_ascii_uppercase(), word.to_uppercase()] {
            if let Ok(m) = Method::from_bytes(upper.as_bytes()) {
                if !out.contains(&m) {
                    out.push(m);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn headers_and_query_name_methods() {
        let post = Method::POST;
        assert_eq!(
            request_methods(&post, &HeaderMap::new(), None),
            vec![post.clone()]
        );
        assert_eq!(
            request_methods(
                &post,
                &headers(&[
                    ("x-http-method-override", "delete"),
                    ("x-method-override", "PUT, patch")
                ]),
                Some("a=1&%5Fmethod=options&_method=POST"),
            ),
            vec![
                Method::POST,
                Method::DELETE,
                Method::PUT,
                Method::PATCH,
                Method::OPTIONS
            ]
        );
        // Not a method token: no framework routes by it.
        assert_eq!(
            request_methods(
                &post,
                &headers(&[("x-http-method", "DE LETE")]),
                Some("_method=")
            ),
            vec![Method::POST]
        );
        // Rack and qs drop brackets around a name; Ruby folds case with Unicode's rules.
        assert_eq!(
            request_methods(
                &post,
                &HeaderMap::new(),
                Some("%5B_method%5D=delete&x=1&_method]=put")
            ),
            vec![Method::POST, Method::DELETE, Method::PUT]
        );
        assert_eq!(
            request_methods(&post, &HeaderMap::new(), Some("_method=opt%C4%B1ons")),
            vec![Method::POST, Method::OPTIONS]
        );
        // PHP reads `.` in a name as `_` and drops leading spaces.
        assert_eq!(
            request_methods(
                &post,
                &HeaderMap::new(),
                Some(".method=DELETE&%20_method=PUT")
            ),
            vec![Method::POST, Method::DELETE, Method::PUT]
        );
        // Only a POST stands for another method.
        assert_eq!(
            request_methods(
                &Method::GET,
                &headers(&[("x-http-method-override", "DELETE")]),
                Some("_method=DELETE")
            ),
            vec![Method::GET]
        );
        // Only the exact name counts.
        assert_eq!(
            request_methods(
                &post,
                &HeaderMap::new(),
                Some("x_method=DELETE&_methods=PUT")
            ),
            vec![Method::POST]
        );
    }

    #[test]
    fn bodies_name_methods() {
        let known = [Method::POST];
        let form = Some("application/x-www-form-urlencoded");
        assert_eq!(
            body_methods(form, "a=1&_method=delete", &known),
            vec![Method::DELETE]
        );
        assert_eq!(
            body_methods(form, "a=1&%5F%6Dethod=PUT", &known),
            vec![Method::PUT]
        );
        assert_eq!(
            body_methods(form, "_method=post&a=2", &known),
            Vec::<Method>::new()
        );
        let multipart = Some("multipart/form-data; boundary=XB");
        let body =
            "--XB\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\npatch\r\n--XB--\r\n";
        assert_eq!(body_methods(multipart, body, &known), vec![Method::PATCH]);
        let json = Some("application/json");
        assert_eq!(
            body_methods(json, r#"{"_method":"DELETE","id":3}"#, &known),
            vec![Method::DELETE]
        );
        // Deeper keys are data, not an override.
        assert_eq!(
            body_methods(json, r#"{"a":{"_method":"DELETE"}}"#, &known),
            Vec::<Method>::new()
        );
        assert_eq!(
            body_methods(Some("text/plain"), "_method=DELETE", &known),
            Vec::<Method>::new()
        );
        // Rack reads a body without a content type as a form, and multipart/related.
        assert_eq!(
            body_methods(None, "_method=DELETE&pad=a b", &known),
            vec![Method::DELETE]
        );
        let related = Some("multipart/related; boundary=XB");
        assert_eq!(body_methods(related, body, &known), vec![Method::PATCH]);
    }
}
