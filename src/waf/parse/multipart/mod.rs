//! `multipart/form-data` bodies: fields, file names and the header lines of each part.

mod boundary;
mod head;

pub(super) use boundary::boundaries;
use head::{irregular_name, read_params, split_head, split_params};

use super::*;

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
        // A head that is not written as clients write one: parsers disagree on it, and the
        // content is inspected as a field's even when the part names a file (see `irregular`).
        let mut odd = false;
        // The header being read, and its value with continuation lines joined (Go, Tomcat and
        // Python's `email` unfold them; the joined value is inspected too).
        let mut current: Option<(&str, &str)> = None;
        let mut unfolded: Option<String> = None;
        let flush = |current: Option<(&'a str, &'a str)>,
                     unfolded: &mut Option<String>,
                     out: &mut Vec<Item<'a>>| {
            if let (Some((h, _)), Some(v)) = (current, unfolded.take()) {
                out.push(Item {
                    kind: TargetKind::MultipartHeaders,
                    name: Cow::Borrowed(h),
                    value: Cow::Owned(v),
                });
            }
        };
        // Jetty's legacy parser also ends a header line at a bare CR.
        let bare_cr = head
            .bytes()
            .zip(head.bytes().skip(1).chain([b'\n']))
            .any(|(a, b)| a == b'\r' && b != b'\n');
        odd |= bare_cr;
        for line in head.split(['\r', '\n']).filter(|l| !l.is_empty()) {
            if line.starts_with([' ', '\t']) {
                odd = true;
                // Jetty's legacy parser trims the line and reads it as a header of its own.
                if let Some((h, v)) = line.split_once(':') {
                    out.push(Item {
                        kind: TargetKind::MultipartHeaders,
                        name: Cow::Borrowed(h.trim()),
                        value: Cow::Borrowed(v.trim()),
                    });
                }
                if let Some((h, v)) = current {
                    if h.eq_ignore_ascii_case("content-disposition") {
                        // Go and Tomcat read the parameters of the unfolded line.
                        let _ =
                            read_params(split_params(line).into_iter(), &mut names, &mut filenames);
                    }
                    let joined = unfolded.get_or_insert_with(|| v.to_string());
                    if !joined.is_empty() {
                        joined.push(' ');
                    }
                    joined.push_str(line.trim());
                }
                continue;
            }
            flush(current.take(), &mut unfolded, out);
            let Some((h, v)) = line.split_once(':') else {
                odd = true;
                continue;
            };
            odd |= irregular_name(h);
            // Java's `trim` removes every control character, so Tomcat reads
            // `Content-Disposition\x01` as `Content-Disposition`.
            let h = h.trim_matches(|c: char| c <= ' ');
            current = Some((h, v.trim()));
            out.push(Item {
                kind: TargetKind::MultipartHeaders,
                name: Cow::Borrowed(h),
                value: Cow::Borrowed(v.trim()),
            });
            if h.eq_ignore_ascii_case("content-disposition") {
                dispositions += 1;
                let params = split_params(v).into_iter().skip(1);
                let read = read_params(params, &mut names, &mut filenames);
                odd |= read.odd;
                file_dispositions += usize::from(read.names_file == Some(true));
            }
        }
        flush(current.take(), &mut unfolded, out);
        let is_file = dispositions > 0 && file_dispositions == dispositions && !odd;
        // For Jetty a head with a bare CR may end early, making what follows content.
        let whole_part = bare_cr.then_some(part);
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
            if let Some(all) = whole_part {
                out.push(Item {
                    kind: TargetKind::BodyArgs,
                    name: Cow::Borrowed(name),
                    value: Cow::Borrowed(all),
                });
            }
        }
    }
    Ok(seen > 0 && !after_close)
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
    fn the_content_of_a_file_part_with_an_irregular_head_is_inspected() {
        for head in [
            // Rack: no file name when space surrounds `=`.
            "Content-Disposition: form-data; name=\"q\"; filename =\"a.txt\"",
            "Content-Disposition: form-data; name=\"q\"; filename= \"a.txt\"",
            // Go: an empty `filename*` overrides `filename`.
            "Content-Disposition: form-data; name=\"q\"; filename=\"a.txt\"; filename*=UTF-8''",
            // Tomcat: quotes only in values; a control character trimmed from a name.
            "Content-Disposition: form-data; name=\"q\"; a\"b=1; c=\"; filename=\"a.txt\"; d=\"",
            "Content-Disposition\x01: form-data; name=\"q\"\r\nContent-Disposition: form-data; name=\"q\"; filename=\"a.txt\"",
            // Tomcat: `\"` outside quotes; Jetty: single quotes.
            "Content-Disposition: form-data; name=\"q\"; x=\\\"; y=\"; filename=\"a.txt\"",
            "Content-Disposition: form-data; name=\"q\"; x='; filename=\"a.txt\"; y='",
            // A folded line, and a line that is no header.
            "Content-Disposition: form-data; name=\"q\";\r\n filename=\"a.txt\"",
            "Content-Disposition: form-data; name=\"q\"; filename=\"a.txt\"\r\nnot a header",
        ] {
            let (_, l) = labels(&format!("--XB\r\n{head}\r\n\r\nv\r\n--XB--\r\n"));
            assert!(l.contains(&"body_args:q=v".to_string()), "{head}: {l:?}");
        }
        // As clients write it, a file's content is not a field: .NET names the file twice.
        for head in [
            "Content-Disposition: form-data; name=\"q\"; filename=\"a.txt\"\r\nContent-Type: text/plain",
            "Content-Disposition: form-data; name=q; filename=a.txt; filename*=utf-8''a.txt",
            "Content-Disposition: form-data; name=q; filename=\"=?utf-8?B?csOpc3Vtw6kudHh0?=\"; filename*=utf-8''r%C3%A9sum%C3%A9.txt",
        ] {
            let (_, l) = labels(&format!("--XB\r\n{head}\r\n\r\nv\r\n--XB--\r\n"));
            assert!(!l.contains(&"body_args:q=v".to_string()), "{head}: {l:?}");
        }
        // A name on a folded line is the name, as Go and Tomcat unfold it.
        let (_, l) = labels(
            "--XB\r\nContent-Disposition: form-data;\r\n name=\"_method\"\r\n\r\nDELETE\r\n--XB--\r\n",
        );
        assert!(l.contains(&"body_args:_method=DELETE".to_string()), "{l:?}");
    }

    #[test]
    fn folded_part_headers_are_also_read_unfolded() {
        let mut out = Vec::new();
        multipart_items(
            "--XB\r\nContent-Disposition: form-data; name=\"q\"\r\nContent-Transfer-Encoding:\r\n quoted-printable\r\n\r\n=27\r\n--XB--\r\n",
            "XB",
            &ParseLimits::default(),
            &mut out,
        )
        .unwrap();
        let cte: Vec<&str> = out
            .iter()
            .filter(|i| {
                i.kind == TargetKind::MultipartHeaders && i.name == "Content-Transfer-Encoding"
            })
            .map(|i| &*i.value)
            .collect();
        assert_eq!(cte, ["", "quoted-printable"]);
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
