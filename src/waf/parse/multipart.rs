//! `multipart/form-data` bodies: fields, file names and the header lines of each part.

use super::*;

pub(super) fn boundary_of(ct: &str) -> Option<&str> {
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

pub(super) fn multipart_items<'a>(
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
