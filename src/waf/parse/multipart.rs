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
    let mut parts = body.split(delim.as_str()).peekable();
    // Text before the first delimiter is a preamble.
    if parts.next().is_none() {
        return Ok(false);
    }
    let mut seen = 0;
    // Parts after the closing delimiter make an epilogue that RFC 2046 says to ignore, but
    // lenient backend parsers read them: they are read here too, and the body is also
    // inspected whole.
    let mut after_close = false;
    while let Some(part) = parts.next() {
        if part.starts_with("--") {
            if parts.peek().is_none() {
                break;
            }
            after_close = true;
            continue;
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
        // Every name the part gives (two `name` parameters, two Content-Disposition lines):
        // parsers differ on which one counts, and an exclusion for one name must not hide the
        // value sent under another.
        let mut names: Vec<&str> = Vec::new();
        // `filename` makes the part a file, whose content is not inspected. `filename*` alone
        // does not: RFC 7578 forbids it in form data, and a parser that does not know it reads
        // the part as an ordinary field, so the content is inspected as one.
        let mut filenames: Vec<&str> = Vec::new();
        let mut is_file = false;
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
                            "name" if !names.contains(&val) => names.push(val),
                            "filename" => {
                                is_file = true;
                                filenames.push(val);
                            }
                            "filename*" => filenames.push(val),
                            _ => {}
                        }
                    }
                }
            }
        }
        if names.is_empty() {
            names.push("");
        }
        for name in names {
            out.push(Item {
                kind: TargetKind::BodyArgsNames,
                name: Cow::Borrowed(name),
                value: Cow::Borrowed(name),
            });
            for f in &filenames {
                out.push(Item {
                    kind: TargetKind::Files,
                    name: Cow::Borrowed(name),
                    value: Cow::Borrowed(f),
                });
            }
            if !is_file {
                out.push(Item {
                    kind: TargetKind::BodyArgs,
                    name: Cow::Borrowed(name),
                    value: Cow::Borrowed(content),
                });
            }
        }
    }
    Ok(seen > 0 && !after_close)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(body: &str) -> (bool, Vec<String>) {
        let mut out = Vec::new();
        let ok = multipart_items(body, "XB", &ParseLimits::default(), &mut out).unwrap();
        let l = out
            .iter()
            .filter(|i| i.kind != TargetKind::MultipartHeaders)
            .map(|i| format!("{}={}", i.label(), i.value))
            .collect();
        (ok, l)
    }

    #[test]
    fn a_part_after_the_closing_delimiter_is_read_and_the_body_is_not_well_formed() {
        let (ok, l) = labels(
            "--XB\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nok\r\n--XB--\r\n\
             --XB\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nhidden\r\n--XB--\r\n",
        );
        assert!(!ok);
        assert!(l.contains(&"body_args:b=hidden".to_string()), "{l:?}");
        // An epilogue without a delimiter in it is what RFC 2046 allows.
        let (ok, l) = labels(
            "--XB\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nok\r\n--XB--\r\nbye\r\n",
        );
        assert!(ok);
        assert_eq!(l, ["body_args_names:a=a", "body_args:a=ok"]);
    }

    #[test]
    fn only_filename_makes_a_part_a_file() {
        let (_, l) = labels(
            "--XB\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nfile body\r\n\
             --XB\r\nContent-Disposition: form-data; name=\"g\"; filename*=UTF-8''b.php\r\n\r\nfield body\r\n--XB--\r\n",
        );
        assert_eq!(
            l,
            [
                "body_args_names:f=f",
                "files:f=a.txt",
                "body_args_names:g=g",
                "files:g=UTF-8''b.php",
                "body_args:g=field body"
            ]
        );
    }

    #[test]
    fn a_value_under_two_names_is_an_item_under_each() {
        let (ok, l) = labels(
            "--XB\r\nContent-Disposition: form-data; name=\"q\"; name=\"r\"\r\n\
             Content-Disposition: form-data; name=\"s\"\r\n\r\nv\r\n--XB--\r\n",
        );
        assert!(ok);
        for n in ["q", "r", "s"] {
            assert!(l.contains(&format!("body_args:{n}=v")), "{l:?}");
        }
    }
}
