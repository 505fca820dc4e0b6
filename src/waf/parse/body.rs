//! Bodies by content type: which parser reads a buffered body, and the readings of bodies that
//! declare none.

use super::*;

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
    // Rack ends the media type at `,` as well as `;`.
    let mime = ct
        .split([';', ','])
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/x-www-form-urlencoded" => BodyKind::Form,
        // Rack reads `multipart/related` and `multipart/mixed` as form data, and Tomcat's
        // `getParts` any `multipart/*`.
        m if m.starts_with("multipart/") => BodyKind::Multipart,
        // Rails registers `text/x-json` and `application/jsonrequest` as JSON too.
        "application/json"
        | "text/json"
        | "text/x-json"
        | "application/x-json"
        | "application/jsonrequest" => BodyKind::Json,
        "application/xml" | "text/xml" | "application/soap+xml" => BodyKind::Xml,
        m if m.ends_with("+json") => BodyKind::Json,
        m if m.ends_with("+xml") => BodyKind::Xml,
        _ => BodyKind::Other,
    }
}

/// Items of a (buffered) body of a `POST`. `Ok(false)` when the body did not parse as its
/// content type said (it is then inspected whole, as text); `Err` when it goes past a limit, with
/// the items found up to there. A body of any other type is inspected whole, as text or as
/// binary data.
pub fn body_items<'a>(
    content_type: Option<&'a str>,
    body: &'a str,
    limits: &ParseLimits,
    out: &mut Vec<Item<'a>>,
) -> Result<bool, Exceeded> {
    request_body_items("POST", content_type, body, limits, out)
}

/// [`body_items`] of a request of `method`. A body without a content type (or with an empty
/// one) is also read as a form when it holds a `=` and either the request is a `POST`, which
/// Rack (Rails, Sinatra) reads as a form whatever else the body holds, or it has no whitespace
/// (`curl -d` style data; an uploaded text file has some).
pub fn request_body_items<'a>(
    method: &str,
    content_type: Option<&'a str>,
    body: &'a str,
    limits: &ParseLimits,
    out: &mut Vec<Item<'a>>,
) -> Result<bool, Exceeded> {
    let content_type = content_type.filter(|c| !c.trim().is_empty());
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
            // The first reading of the boundary decides whether the body is well formed; the
            // parts other parsers would find with theirs are inspected too.
            let readings = content_type.map(boundaries).unwrap_or_default();
            let mut ok = false;
            for (i, boundary) in readings.iter().enumerate() {
                let parsed = multipart_items(body, boundary, limits, out)?;
                if i == 0 {
                    ok = parsed;
                }
            }
            if !ok {
                whole(out);
            }
            Ok(ok)
        }
        BodyKind::Json => {
            let lenient = |out: &mut Vec<Item<'a>>| {
                whole(out);
                // JSON5 and lenient Jackson or Gson read `\X` as `X` for any X: that reading too.
                if let Some(text) = json_text::lenient_escapes(body) {
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
            let form_like =
                method.eq_ignore_ascii_case("POST") || !body.contains(char::is_whitespace);
            if content_type.is_none() && body.contains('=') && form_like {
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
