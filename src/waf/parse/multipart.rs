//! `multipart/form-data` bodies: fields, file names and the header lines of each part.

use super::*;

/// The boundary of a multipart content type. `None` when there is none, or when more than one
/// parameter names a boundary (`boundary=a; boundary=b`, or `xboundary=a; boundary=b`, which
/// PHP reads as `a` because it looks for the first `boundary` text): the body is then inspected
/// whole, since which parts a backend sees cannot be known. A quoted boundary's quoted-pairs are
/// unescaped (`"X\\B"` is `X\B`), as busboy reads them (RFC 9110 §5.6.4).
pub(super) fn boundary_of(ct: &str) -> Option<Cow<'_, str>> {
    let params = || ct.split(';').skip(1);
    let naming = params()
        .filter(|p| p.to_ascii_lowercase().contains("boundary"))
        .count();
    if naming != 1 {
        return None;
    }
    params().find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let v = v.trim();
        let v = match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(quoted) if quoted.contains('\\') => {
                let mut out = String::with_capacity(quoted.len());
                let mut chars = quoted.chars();
                while let Some(c) = chars.next() {
                    out.push(if c == '\\' { chars.next()? } else { c });
                }
                Cow::Owned(out)
            }
            _ => Cow::Borrowed(v.trim_matches('"')),
        };
        (!v.is_empty()).then_some(v)
    })
}

/// How a parser finds delimiter lines.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lines {
    /// After LF or CRLF (Werkzeug, PHP, Go).
    Any,
    /// After CRLF only (busboy under multer and express-fileupload, formidable under koa-body).
    Crlf,
}

/// Splits a multipart body at its delimiter lines: `--boundary` at the start of the body or of
/// a line, followed by `--`, whitespace or the end. The line break before a delimiter belongs to
/// it. The first piece is the preamble; each other piece starts just after a delimiter (with
/// `--` first when it closed the body). The boundary text elsewhere (`x--boundary` inside a
/// value) is content, as every parser that follows RFC 2046 reads it.
fn delimited<'a>(body: &'a str, delim: &str, lines: Lines) -> Vec<&'a str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut from = 0;
    let b = body.as_bytes();
    while let Some(i) = body[from..].find(delim).map(|i| i + from) {
        let after = i + delim.len();
        let at_line_start = i == 0
            || match lines {
                Lines::Any => b[i - 1] == b'\n',
                Lines::Crlf => i >= 2 && &b[i - 2..i] == b"\r\n",
            };
        let ends = body[after..]
            .bytes()
            .next()
            .is_none_or(|b| b == b'-' || b.is_ascii_whitespace());
        if at_line_start && ends {
            let mut end = i;
            if end > start && body.as_bytes()[end - 1] == b'\n' {
                end -= 1;
                if end > start && body.as_bytes()[end - 1] == b'\r' {
                    end -= 1;
                }
            }
            pieces.push(&body[start..end]);
            start = after;
        }
        from = after;
    }
    pieces.push(&body[start..]);
    pieces
}

/// The items of a multipart body. Parsers differ on whether a bare LF may open a delimiter
/// line; when one does in this body, and the body also closes after CRLF (so CRLF-only parsers
/// accept it), the parts as those parsers see them are read too: for them, what follows
/// `\n--boundary` is still the content of the part before.
pub(super) fn multipart_items<'a>(
    body: &'a str,
    boundary: &str,
    limits: &ParseLimits,
    out: &mut Vec<Item<'a>>,
) -> Result<bool, Exceeded> {
    let delim = format!("--{boundary}");
    let any = delimited(body, &delim, Lines::Any);
    let crlf = delimited(body, &delim, Lines::Crlf);
    let pieces = any.len();
    let ok = read_parts(any, limits, out)?;
    let closes = crlf.iter().skip(1).any(|p| p.starts_with("--"));
    if crlf.len() == pieces || !closes {
        return Ok(ok);
    }
    Ok(read_parts(crlf, limits, out)? && ok)
}

/// The items of the pieces [`delimited`] cut.
fn read_parts<'a>(
    pieces: Vec<&'a str>,
    limits: &ParseLimits,
    out: &mut Vec<Item<'a>>,
) -> Result<bool, Exceeded> {
    let mut parts = pieces.into_iter().peekable();
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
        // A part may have no header lines at all (RFC 2046): its blank line comes first.
        let empty_head = part
            .strip_prefix("\r\n")
            .or_else(|| part.strip_prefix('\n'))
            .map(|content| ("", content));
        let (head, content) = match empty_head.or_else(|| split_head(part)) {
            Some(split) => split,
            None => return Ok(false),
        };
        // Every name the part gives (two `name` parameters, two Content-Disposition lines):
        // parsers differ on which one counts, and an exclusion for one name must not hide the
        // value sent under another.
        let mut names: Vec<&str> = Vec::new();
        // A non-empty `filename` makes the part a file, whose content is not inspected, when
        // every Content-Disposition line of the part gives one: parsers differ on which of two
        // lines counts (Werkzeug takes the first), so one without a filename makes the content a
        // field's. `filename*` alone does not make a file: RFC 7578 forbids it in form data, and
        // a parser that does not know it reads the part as an ordinary field. Nor does
        // `filename=""`, which Go's multipart reader and busboy take for a field, even followed
        // by a non-empty one (`filename=""; filename="a.txt"`: busboy keeps the first).
        let mut filenames: Vec<&str> = Vec::new();
        let (mut dispositions, mut file_dispositions) = (0, 0);
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
                dispositions += 1;
                let mut names_file: Option<bool> = None;
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
                                names_file = Some(names_file.unwrap_or(true) && !val.is_empty());
                                filenames.push(val);
                            }
                            "filename*" => filenames.push(val),
                            _ => {}
                        }
                    }
                }
                file_dispositions += usize::from(names_file == Some(true));
            }
        }
        let is_file = dispositions > 0 && file_dispositions == dispositions;
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

/// A part's header lines and content, split at the first empty line, whichever of LF and CRLF
/// end the lines around it (Python's `email` package ends the head at `LF CRLF` too).
fn split_head(part: &str) -> Option<(&str, &str)> {
    let b = part.as_bytes();
    let mut from = 0;
    while let Some(off) = b[from..].iter().position(|&c| c == b'\n') {
        let n = from + off;
        let rest = &b[n + 1..];
        let blank = if rest.starts_with(b"\n") {
            Some(1)
        } else if rest.starts_with(b"\r\n") {
            Some(2)
        } else {
            None
        };
        if let Some(len) = blank {
            return Some((part[..n].trim_end_matches('\r'), &part[n + 1 + len..]));
        }
        from = n + 1;
    }
    None
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
    fn delimiters_open_a_line_and_the_boundary_text_elsewhere_is_content() {
        let (ok, l) = labels(
            "--XB\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx--XB' or 1=1\r\n--XBnot\r\nsame value\n--XB \r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nlf\n--XB--",
        );
        assert!(ok);
        assert_eq!(
            l,
            [
                "body_args_names:a=a",
                "body_args:a=x--XB' or 1=1\r\n--XBnot\r\nsame value",
                "body_args_names:b=b",
                "body_args:b=lf",
            ]
        );
    }

    #[test]
    fn the_head_ends_at_the_first_empty_line_whatever_the_line_ends() {
        // LF then CRLF: the Python `email` package ends the head there, and so does the WAF, so
        // the Content-Transfer-Encoding line is a header, not content.
        let mut out = Vec::new();
        let ok = multipart_items(
            "--XB\r\nContent-Disposition: form-data; name=\"q\"\r\nContent-Transfer-Encoding: base64\n\r\nJyBVTklPTg==\r\n--XB--\r\n",
            "XB",
            &ParseLimits::default(),
            &mut out,
        )
        .unwrap();
        assert!(ok);
        let cte: Vec<&str> = out
            .iter()
            .filter(|i| {
                i.kind == TargetKind::MultipartHeaders
                    && i.name.eq_ignore_ascii_case("content-transfer-encoding")
            })
            .map(|i| &*i.value)
            .collect();
        assert_eq!(cte, ["base64"]);
        assert_eq!(
            split_head("a: 1\r\nb: 2\n\ncontent\r\n\r\nmore"),
            Some(("a: 1\r\nb: 2", "content\r\n\r\nmore"))
        );
        assert_eq!(split_head("a: 1\r\n\r\nx"), Some(("a: 1", "x")));
        assert_eq!(split_head("a: 1\r\nno blank line"), None);
    }

    #[test]
    fn a_part_without_headers_is_an_unnamed_field() {
        let (ok, l) = labels("--XB\r\n\r\nno headers\r\n\r\nsecond line\r\n--XB--\r\n");
        assert!(ok);
        assert_eq!(
            l,
            [
                "body_args_names=",
                "body_args=no headers\r\n\r\nsecond line"
            ]
        );
    }

    #[test]
    fn boundaries_of_any_length_but_only_one() {
        let long = "b".repeat(300);
        assert_eq!(
            boundary_of(&format!("multipart/form-data; boundary=\"{long}\"")).as_deref(),
            Some(long.as_str())
        );
        assert_eq!(
            boundary_of("multipart/form-data; charset=utf-8; BOUNDARY=x").as_deref(),
            Some("x")
        );
        // Quoted-pairs, as busboy reads them.
        assert_eq!(
            boundary_of(r#"multipart/form-data; boundary="X\\B\"""#).as_deref(),
            Some(r#"X\B""#)
        );
        assert_eq!(
            boundary_of(r"multipart/form-data; boundary=X\\B").as_deref(),
            Some(r"X\\B")
        );
        for ct in [
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=a; boundary=b",
            "multipart/form-data; xboundary=a; boundary=b",
        ] {
            assert_eq!(boundary_of(ct), None, "{ct}");
        }
    }

    #[test]
    fn a_part_is_a_file_only_when_every_disposition_names_one() {
        for head in [
            "Content-Disposition: form-data; name=\"q\"\r\nContent-Disposition: form-data; name=\"q\"; filename=\"x\"",
            "Content-Disposition: form-data; name=\"q\"; filename=\"x\"\r\nContent-Disposition: form-data; name=\"q\"",
            "Content-Disposition: form-data; name=\"q\"; filename=\"\"",
            "Content-Disposition: form-data; name=\"q\"; filename=\"\"; filename=\"a.txt\"",
            "Content-Disposition: form-data; name=\"q\"; filename=\"a.txt\"; filename=\"\"",
        ] {
            let (_, l) = labels(&format!("--XB\r\n{head}\r\n\r\nv\r\n--XB--\r\n"));
            assert!(l.contains(&"body_args:q=v".to_string()), "{head}: {l:?}");
        }
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

    /// busboy and formidable open a delimiter line only after CRLF: for them a `\n--XB` line
    /// is content of the part before, and that reading is inspected too.
    #[test]
    fn a_delimiter_after_a_bare_lf_is_also_read_as_content() {
        let (ok, l) = labels(
            "--XB\r\nContent-Disposition: form-data; name=\"host\"\r\n\r\n127.0.0.1\n\
             --XB\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\n;id\r\n\
             --XB--\r\n",
        );
        assert!(ok);
        assert!(l.contains(&"body_args:host=127.0.0.1".to_string()), "{l:?}");
        assert!(l.contains(&"files:f=a.txt".to_string()), "{l:?}");
        assert!(
            l.contains(
                &"body_args:host=127.0.0.1\n--XB\r\nContent-Disposition: form-data; name=\"f\"; \
                  filename=\"a.txt\"\r\n\r\n;id"
                    .to_string()
            ),
            "{l:?}"
        );
        // A body that CRLF-only parsers refuse (it never closes after CRLF) has one reading.
        let (_, l) = labels(
            "--XB\nContent-Disposition: form-data; name=\"a\"\n\n1\n--XB\n\
             Content-Disposition: form-data; name=\"b\"\n\n2\n--XB--\n",
        );
        assert_eq!(
            l.iter().filter(|x| x.starts_with("body_args:")).count(),
            2,
            "{l:?}"
        );
        // With CRLF throughout, one reading.
        let (_, l) = labels(
            "--XB\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XB\r\n\
             Content-Disposition: form-data; name=\"b\"\r\n\r\n2\r\n--XB--\r\n",
        );
        assert_eq!(
            l.iter().filter(|x| x.starts_with("body_args:")).count(),
            2,
            "{l:?}"
        );
    }
}
