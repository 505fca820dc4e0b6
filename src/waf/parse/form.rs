//! `a=1&b=2` pairs (query strings, form bodies) as servers and `qs` read them, and JSON carried
//! in a value.

use super::*;
use crate::waf::transform::url_decode_once;

/// The items of a cookie-parser JSON cookie `name`: its decoded text, and the items of the JSON
/// in it. The header's size bounds the count of values, as it does for the query's arguments.
pub(super) fn json_cookie_items<'a>(
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

/// The text of XML carried in a value called `name` whose comments or CDATA sections split it
/// (`data=<r><q>' UNI<!---->ON SEL<!---->ECT …</q></r>`, which an application hands to an XML
/// parser): each element's text joined as DOM and ElementTree parsers give it, and attribute
/// values, as values of `name`.
fn embedded_xml_items<'a>(
    name: Cow<'a, str>,
    xml: &str,
    values: TargetKind,
    limits: &ParseLimits,
    out: &mut Vec<Item<'a>>,
) {
    let mut items = Vec::new();
    let _ = xml_items(xml, limits, &mut items);
    out.extend(
        items
            .into_iter()
            .filter(|item| item.kind == TargetKind::Xml)
            .map(|item| Item {
                kind: values,
                name: name.clone(),
                value: Cow::Owned(item.value.into_owned()),
            }),
    );
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
        if value.trim_start().starts_with('<') && value.contains("<!") {
            embedded_xml_items(name.clone(), &value, values, limits, out);
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn xml_split_by_comments_in_a_value_is_read_as_xml() {
        let xml = "<r><q>' UNI<!---->ON SEL<!---->ECT password FROM users--</q>\
                   <x><![CDATA[<im]]><![CDATA[g src=x one]]><![CDATA[rror=aler]]><![CDATA[t(1)>]]></x></r>";
        let encoded: String = xml.bytes().map(|b| format!("%{b:02X}")).collect();
        let body = format!("data={encoded}&note=%3Cb%3Ehi%3C%2Fb%3E");
        let mut out = Vec::new();
        form_items(
            &body,
            TargetKind::BodyArgs,
            TargetKind::BodyArgsNames,
            &ParseLimits::default(),
            &mut out,
        )
        .unwrap();
        let l = labels(&out);
        for want in [
            "body_args:data=' UNION SELECT password FROM users--",
            "body_args:data=<img src=x onerror=alert(1)>",
        ] {
            assert!(l.contains(&want.to_string()), "{want} missing from {l:?}");
        }
        // Markup without comments or CDATA is read as it is, once.
        assert_eq!(
            l.iter().filter(|i| i.starts_with("body_args:note")).count(),
            1
        );
    }
}
