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
