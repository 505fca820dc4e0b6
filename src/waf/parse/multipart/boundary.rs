//! The boundary of a multipart content type, as each kind of parser reads it.

/// The boundary of a multipart content type, as each kind of backend parser reads it: first as
/// busboy, Werkzeug and PHP do (trimmed; a quoted one with its quoted-pairs unescaped, RFC 9110
/// §5.6.4: `"X\\B"` is `X\B`), then any other reading that differs: a quoted boundary kept as
/// written (Rack, Go and Tomcat leave `"a\bc"` as `a\bc`), and Rack's, which takes everything
/// after `=` (and an opening quote) up to `"`, `;` or `,`, leading spaces included. RFC 2231
/// forms (`boundary*=utf-8''B`, `boundary*0=B; boundary*1=C`), which Go decodes, are decoded.
///
/// Empty when there is none, or when the parameters naming a boundary are not one boundary
/// (`boundary=a; boundary=b`, or `xboundary=a; boundary=b`, which PHP reads as `a` because it
/// looks for the first `boundary` text): the body is then inspected whole, since which parts a
/// backend sees cannot be known.
pub(in crate::waf::parse) fn boundaries(ct: &str) -> Vec<String> {
    // `multipart/form-data,boundary=x; boundary=y`: PHP finds the first text `boundary`.
    if ct
        .split(';')
        .next()
        .is_some_and(|t| t.to_ascii_lowercase().contains("boundary"))
    {
        return Vec::new();
    }
    let naming: Vec<(&str, &str)> = ct
        .split(';')
        .skip(1)
        .filter(|p| p.to_ascii_lowercase().contains("boundary"))
        .filter_map(|p| p.split_once('='))
        .collect();
    let key = |k: &str| k.trim().to_ascii_lowercase();
    let mut out: Vec<String> = Vec::new();
    let mut add = |v: String| {
        if !v.is_empty() && !out.contains(&v) {
            out.push(v);
        }
    };
    match naming.as_slice() {
        [(k, v)] if key(k) == "boundary" => {
            let t = v.trim();
            match t.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
                Some(quoted) => {
                    let mut unescaped = String::with_capacity(quoted.len());
                    let mut chars = quoted.chars();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => unescaped.extend(chars.next()),
                            c => unescaped.push(c),
                        }
                    }
                    add(unescaped);
                    add(quoted.to_string());
                }
                None => add(t.trim_matches('"').to_string()),
            }
            let rack = v.strip_prefix('"').unwrap_or(v);
            add(rack[..rack.find(['"', ',']).unwrap_or(rack.len())].to_string());
        }
        [(k, v)] if key(k) == "boundary*" => add(rfc2231_value(v.trim(), true)),
        pieces if pieces.iter().all(|(k, _)| key(k).starts_with("boundary*")) => {
            // Continuations: `boundary*0`, `boundary*1*`, ... joined in order.
            let mut numbered: Vec<(usize, bool, &str)> = Vec::new();
            for (k, v) in pieces {
                let k = key(k);
                let rest = &k["boundary*".len()..];
                let (n, extended) = match rest.strip_suffix('*') {
                    Some(n) => (n, true),
                    None => (rest, false),
                };
                let Ok(n) = n.parse::<usize>() else {
                    return Vec::new();
                };
                numbered.push((n, extended, v.trim()));
            }
            numbered.sort_by_key(|(n, ..)| *n);
            // Go joins the pieces from 0 up to the first one missing, and refuses repeats.
            if numbered.windows(2).any(|w| w[0].0 == w[1].0) {
                return Vec::new();
            }
            let joined: String = numbered
                .iter()
                .enumerate()
                .take_while(|(i, (n, ..))| i == n)
                .map(|(_, piece)| piece)
                .map(|&(n, extended, v)| {
                    if extended {
                        rfc2231_value(v, n == 0)
                    } else {
                        v.trim_matches('"').to_string()
                    }
                })
                .collect();
            add(joined);
        }
        _ => {}
    }
    out
}

/// An RFC 2231 extended value: `charset'language'%-encoded` (the first piece) or `%-encoded`.
pub(super) fn rfc2231_value(v: &str, first: bool) -> String {
    let encoded = if first {
        v.splitn(3, '\'').nth(2).unwrap_or(v)
    } else {
        v
    };
    crate::waf::transform::percent_decode_once(encoded).unwrap_or_else(|| encoded.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_of_any_length_but_only_one_and_each_reading_of_it() {
        let long = "b".repeat(300);
        assert_eq!(
            boundaries(&format!("multipart/form-data; boundary=\"{long}\"")),
            [long.as_str()]
        );
        assert_eq!(
            boundaries("multipart/form-data; charset=utf-8; BOUNDARY=x"),
            ["x"]
        );
        // Quoted-pairs as busboy reads them, then the text as Rack, Go and Tomcat keep it.
        assert_eq!(
            boundaries(r#"multipart/form-data; boundary="X\\B\"""#),
            [r#"X\B""#, r#"X\\B\""#, r"X\\B\"]
        );
        assert_eq!(
            boundaries(r#"multipart/form-data; boundary="a\bc""#),
            ["abc", r"a\bc"]
        );
        assert_eq!(boundaries(r"multipart/form-data; boundary=X\\B"), [r"X\\B"]);
        // Rack keeps a leading space and stops at a comma.
        assert_eq!(
            boundaries("multipart/form-data; boundary= abc"),
            ["abc", " abc"]
        );
        assert_eq!(
            boundaries("multipart/form-data; boundary=abc,x"),
            ["abc,x", "abc"]
        );
        // RFC 2231, as Go decodes it.
        assert_eq!(boundaries("multipart/form-data; boundary*0=B"), ["B"]);
        assert_eq!(
            boundaries("multipart/form-data; boundary*1=C; boundary*0*=utf-8''%41B"),
            ["ABC"]
        );
        assert_eq!(
            boundaries("multipart/form-data; boundary*=utf-8''X%2DY"),
            ["X-Y"]
        );
        // Go stops at the first missing piece.
        assert_eq!(
            boundaries("multipart/form-data; boundary*0=A; boundary*2=C"),
            ["A"]
        );
        for ct in [
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=a; boundary=b",
            "multipart/form-data; xboundary=a; boundary=b",
            "multipart/form-data; boundary=a; boundary*=utf-8''b",
            "multipart/form-data; boundary*x=a",
            "multipart/form-data; boundary*0=a; boundary*0=b",
            "multipart/form-data,boundary=x; boundary=y",
        ] {
            assert!(boundaries(ct).is_empty(), "{ct}");
        }
    }
}
