//! XML bodies: text and attribute values.

use super::*;

pub(super) fn xml_items<'a>(
    body: &'a str,
    limits: &ParseLimits,
    out: &mut Vec<Item<'a>>,
) -> Result<bool, Exceeded> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(body);
    let mut stack: Vec<String> = Vec::new();
    let mut any = false;
    let mut elements = 0usize;
    // Not well-formed: text or a second element outside the root, an attribute that does not
    // parse, an element left open. quick_xml reads past these; the body is then also
    // inspected whole, as a backend's lenient parser (or an HTML one) may read it otherwise.
    let mut malformed = false;
    let mut roots = 0usize;
    // The text of the current element since its last child: text, entities and CDATA sections
    // joined, comments and processing instructions left out, as DOM and ElementTree parsers
    // give it to applications. `' UNI<!---->ON SELECT` is one value, not two halves.
    let mut text = String::new();
    let flush = |text: &mut String, stack: &[String], out: &mut Vec<Item<'a>>| {
        if !text.trim().is_empty() {
            out.push(Item {
                kind: TargetKind::Xml,
                name: Cow::Owned(stack.last().cloned().unwrap_or_default()),
                value: Cow::Owned(std::mem::take(text)),
            });
        }
        text.clear();
    };
    loop {
        let ev = reader.read_event();
        if matches!(
            ev,
            Ok(Event::Start(_) | Event::Empty(_) | Event::End(_) | Event::DocType(_) | Event::Eof)
                | Err(_)
        ) {
            flush(&mut text, &stack, out);
        }
        match ev {
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
                if stack.is_empty() {
                    roots += 1;
                    malformed |= roots > 1;
                }
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                for attr in e.attributes() {
                    let Ok(attr) = attr else {
                        malformed = true;
                        break;
                    };
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
                let raw = String::from_utf8_lossy(t.as_ref());
                if !raw.trim().is_empty() {
                    malformed |= stack.is_empty();
                }
                text.push_str(&unescape_xml(&raw));
            }
            Ok(Event::CData(t)) => {
                malformed |= stack.is_empty();
                text.push_str(&String::from_utf8_lossy(t.as_ref()));
            }
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
            // The encoding the declaration names: XML parsers decode the document by it (libxml2
            // reads UTF-7 and EBCDIC pages), so rules can refuse those the WAF does not read.
            Ok(Event::Decl(d)) => {
                if let Some(Ok(enc)) = d.encoding() {
                    out.push(Item {
                        kind: TargetKind::Xml,
                        name: Cow::Borrowed("?xml-encoding"),
                        value: Cow::Owned(String::from_utf8_lossy(&enc).into_owned()),
                    });
                }
            }
            Ok(Event::PI(t)) => out.push(Item {
                kind: TargetKind::Xml,
                name: Cow::Borrowed("?pi"),
                value: Cow::Owned(String::from_utf8_lossy(t.as_ref()).into_owned()),
            }),
            Ok(Event::Eof) => return Ok(any && !malformed && stack.is_empty()),
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

    fn well_formed(body: &str) -> bool {
        xml_items(body, &ParseLimits::default(), &mut Vec::new()).unwrap()
    }

    #[test]
    fn a_document_quick_xml_reads_past_is_not_well_formed() {
        assert!(well_formed(
            "<?xml version=\"1.0\"?>\n<!-- c --><a x=\"1\"><b>t &amp; u</b><c/></a>\n"
        ));
        assert!(well_formed("\u{feff}<?xml version=\"1.0\"?><a>x</a>"));
        for body in [
            "hello <img src=x onerror=alert(1)>",
            "<a>ok</a> trailing",
            "<a>ok</a><b/>",
            "<a><![CDATA[x]]></a><![CDATA[y]]>",
            "<a><img src=x onerror=alert(1)></a>",
            "<a><b>",
            "<a><b>1</a>",
        ] {
            assert!(!well_formed(body), "{body}");
        }
    }

    #[test]
    fn an_elements_text_is_one_value_across_comments_cdata_and_entities() {
        let mut out = Vec::new();
        let body = "<r><q>' UNI<!-- x -->ON SEL<![CDATA[ECT]]> pass&amp;word<?pi x?> FROM users</q><n>1</n>tail</r>";
        assert!(xml_items(body, &ParseLimits::default(), &mut out).unwrap());
        let l: Vec<String> = out
            .iter()
            .map(|i| format!("{}={}", i.label(), i.value))
            .collect();
        assert!(
            l.contains(&"xml:q=' UNION SELECT pass&word FROM users".to_string()),
            "{l:?}"
        );
        assert!(l.contains(&"xml:n=1".to_string()), "{l:?}");
        assert!(l.contains(&"xml:r=tail".to_string()), "{l:?}");
    }

    #[test]
    fn what_was_read_of_a_broken_document_stays_and_the_body_is_inspected_whole() {
        let mut out = Vec::new();
        let ok = body_items(
            Some("application/xml"),
            "<a k=\"v\">text</a> <img src=x onerror=alert(1)>",
            &ParseLimits::default(),
            &mut out,
        )
        .unwrap();
        assert!(!ok);
        let l: Vec<String> = out.iter().map(|i| i.label()).collect();
        assert!(l.contains(&"xml:a@k".to_string()), "{l:?}");
        assert!(l.contains(&"xml:a".to_string()), "{l:?}");
        assert_eq!(l.last().map(String::as_str), Some("body"), "{l:?}");
    }
}
