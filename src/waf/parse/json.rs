//! JSON bodies: keys and scalar values at any depth, with paths as names.
//!
//! The body is walked as it parses, without building a tree: a string without escapes stays a
//! slice of the body, and every occurrence of a repeated key is inspected. (A tree keeps one
//! value per key, so `{"q":"<attack>","q":"ok"}` would show the WAF only `ok`, while backends
//! whose parser keeps the first value act on the attack.)

use std::cell::Cell;
use std::fmt::{self, Write as _};

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::json_text::as_strict_json;
use super::*;

pub(super) fn json_items<'a>(
    body: &'a str,
    limits: &ParseLimits,
    out: &mut Vec<Item<'a>>,
) -> Result<bool, Exceeded> {
    // A UTF-8 byte order mark, which body-parser and Python's `json.load` on bytes skip.
    let body = body.strip_prefix('\u{feff}').unwrap_or(body);
    if walk(body, limits, out)? {
        return Ok(true);
    }
    // JSON that backends' parsers accept and serde_json does not, read as they read it.
    let Some(text) = as_strict_json(body) else {
        return Ok(false);
    };
    let mut again: Vec<Item<'_>> = Vec::new();
    let parsed = walk(&text, limits, &mut again);
    out.extend(again.into_iter().map(|i| -> Item<'a> { i.into_owned() }));
    parsed
}

/// The items of a strict JSON text; `Ok(false)` when it does not parse.
fn walk<'a>(
    body: &'a str,
    limits: &ParseLimits,
    out: &mut Vec<Item<'a>>,
) -> Result<bool, Exceeded> {
    // Nesting is checked first: serde_json gives up past 128 levels, and a body it cannot
    // parse would otherwise be inspected only as raw text.
    if json_nesting(body) > limits.json_depth {
        return Err(Exceeded::JsonDepth);
    }
    let walk = Walk {
        limits,
        count: Cell::new(0),
        exceeded: Cell::new(false),
    };
    let mut path = String::new();
    let mut shape = String::new();
    let mut de = serde_json::Deserializer::from_str(body);
    let parsed = Node {
        walk: &walk,
        path: &mut path,
        shape: &mut shape,
        out,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if walk.exceeded.get() {
        return Err(Exceeded::Args);
    }
    // Not JSON: the caller inspects the whole body as text. Values read before the error stay:
    // they were sent, and a backend with a lenient parser may read them.
    Ok(parsed.is_ok())
}

/// The deepest nesting of `[` and `{` outside strings (of the text as written; it need not be
/// valid JSON).
fn json_nesting(body: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for b in body.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// What every node of one body shares.
struct Walk<'l> {
    limits: &'l ParseLimits,
    /// Nodes seen (objects, arrays and scalars), against `limits.args`.
    count: Cell<usize>,
    /// The walk stopped at `limits.args`.
    exceeded: Cell<bool>,
}

/// One JSON value at `path`: scalars become items, objects and arrays are walked.
struct Node<'w, 'l, 'p, 'a> {
    walk: &'w Walk<'l>,
    path: &'p mut String,
    /// `path` with array positions written `[]`.
    shape: &'p mut String,
    out: &'p mut Vec<Item<'a>>,
}

impl<'a> Node<'_, '_, '_, 'a> {
    fn scalar(self, value: Cow<'a, str>) {
        self.out.push(Item {
            kind: TargetKind::Json,
            name: Cow::Owned(self.path.clone()),
            value,
        });
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_, '_, '_, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let count = self.walk.count.get() + 1;
        self.walk.count.set(count);
        if count > self.walk.limits.args {
            self.walk.exceeded.set(true);
            return Err(de::Error::custom("too many values"));
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_, '_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.scalar(Cow::Borrowed(if v { "true" } else { "false" }));
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.scalar(Cow::Owned(v.to_string()));
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.scalar(Cow::Owned(v.to_string()));
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        // Written as serde_json writes numbers; JSON has no NaN or infinity.
        let text = serde_json::Number::from_f64(v).map_or_else(|| v.to_string(), |n| n.to_string());
        self.scalar(Cow::Owned(text));
        Ok(())
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<(), E> {
        self.scalar(Cow::Borrowed(v));
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.scalar(Cow::Owned(v.to_owned()));
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let len = self.path.len();
        let shape_len = self.shape.len();
        self.shape.push_str("[]");
        for i in 0.. {
            self.path.truncate(len);
            let _ = write!(self.path, "[{i}]");
            let child = Node {
                walk: self.walk,
                path: &mut *self.path,
                shape: &mut *self.shape,
                out: &mut *self.out,
            };
            if seq.next_element_seed(child)?.is_none() {
                break;
            }
        }
        self.path.truncate(len);
        self.shape.truncate(shape_len);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let len = self.path.len();
        let shape_len = self.shape.len();
        while let Some(key) = map.next_key_seed(Key)? {
            self.path.truncate(len);
            self.shape.truncate(shape_len);
            if len > 0 {
                self.path.push('.');
            }
            if shape_len > 0 {
                self.shape.push('.');
            }
            self.path.push_str(&key);
            self.shape.push_str(&key);
            self.out.push(Item {
                kind: TargetKind::JsonKeys,
                name: Cow::Owned(self.path.clone()),
                value: key,
            });
            // No name: the value is the path, positions written `[]`, so the same key in every
            // element of an array is one value, judged once per request.
            self.out.push(Item {
                kind: TargetKind::JsonPaths,
                name: Cow::Borrowed(""),
                value: Cow::Owned(self.shape.clone()),
            });
            map.next_value_seed(Node {
                walk: self.walk,
                path: &mut *self.path,
                shape: &mut *self.shape,
                out: &mut *self.out,
            })?;
        }
        self.path.truncate(len);
        self.shape.truncate(shape_len);
        Ok(())
    }
}

/// An object key, borrowed from the body when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(body: &str) -> (Result<bool, Exceeded>, Vec<String>) {
        let mut out = Vec::new();
        let r = json_items(body, &ParseLimits::default(), &mut out);
        (r, out.iter().map(|i| format!("{i:?}")).collect())
    }

    fn values<'a>(body: &'a str, out: &mut Vec<Item<'a>>) -> Vec<(TargetKind, String, String)> {
        json_items(body, &ParseLimits::default(), out).unwrap();
        out.iter()
            .map(|i| (i.kind, i.name.to_string(), i.value.to_string()))
            .collect()
    }

    #[test]
    fn every_value_of_a_repeated_key_is_an_item() {
        let mut out = Vec::new();
        let v = values(
            r#"{"q":"1 union select 1","q":"ok","a":{"q":1,"q":2}}"#,
            &mut out,
        );
        let json: Vec<_> = v
            .iter()
            .filter(|(k, _, _)| *k == TargetKind::Json)
            .map(|(_, n, v)| format!("{n}={v}"))
            .collect();
        assert_eq!(json, ["q=1 union select 1", "q=ok", "a.q=1", "a.q=2"]);
        let keys = v
            .iter()
            .filter(|(k, _, _)| *k == TargetKind::JsonKeys)
            .count();
        assert_eq!(keys, 5);
    }

    #[test]
    fn every_key_has_its_path_with_positions_left_out() {
        let mut out = Vec::new();
        let v = values(
            r#"{"constructor":{"prototype":{"x":1}},"items":[{"sku":"a"},{"sku":"b","tags":[{"k":1}]}]}"#,
            &mut out,
        );
        let paths: Vec<&str> = v
            .iter()
            .filter(|(k, _, _)| *k == TargetKind::JsonPaths)
            .map(|(_, _, v)| v.as_str())
            .collect();
        assert_eq!(
            paths,
            [
                "constructor",
                "constructor.prototype",
                "constructor.prototype.x",
                "items",
                "items[].sku",
                "items[].sku",
                "items[].tags",
                "items[].tags[].k"
            ]
        );
        let mut out = Vec::new();
        let v = values(r#"[{"a":[[{"b":1}]]}]"#, &mut out);
        let last = v.iter().rfind(|(k, _, _)| *k == TargetKind::JsonPaths);
        assert_eq!(last.unwrap().2, "[].a[][].b");
    }

    #[test]
    fn strings_without_escapes_are_not_copied_and_escapes_are_decoded() {
        let mut out = Vec::new();
        let v = values(r#"{"plain":"a b","esc\u0061ped":"x\"y\u003c"}"#, &mut out);
        assert!(matches!(out[2].value, Cow::Borrowed("a b")), "{:?}", out[2]);
        assert_eq!(
            v[3],
            (TargetKind::JsonKeys, "escaped".into(), "escaped".into())
        );
        assert_eq!(v[5], (TargetKind::Json, "escaped".into(), "x\"y<".into()));
    }

    #[test]
    fn scalars_are_written_as_json_writes_them() {
        let mut out = Vec::new();
        let v = values(
            r#"[12.99, -3, 1e5, 18446744073709551616, true, false, null, "s", [], {}]"#,
            &mut out,
        );
        let got: Vec<String> = v.iter().map(|(_, n, v)| format!("{n}={v}")).collect();
        assert_eq!(
            got,
            [
                "[0]=12.99",
                "[1]=-3",
                "[2]=100000.0",
                "[3]=1.8446744073709552e+19",
                "[4]=true",
                "[5]=false",
                "[7]=s"
            ]
        );
        // The same text serde_json's own tree prints.
        for (i, n) in ["12.99", "-3", "1e5", "18446744073709551616"]
            .iter()
            .enumerate()
        {
            let tree: serde_json::Value = serde_json::from_str(n).unwrap();
            assert_eq!(v[i].2, tree.to_string());
        }
    }

    #[test]
    fn values_before_a_syntax_error_are_kept_and_the_body_is_not_json() {
        let (r, l) = items(r#"{"a":"<script>","b":"#);
        assert_eq!(r, Ok(false));
        assert_eq!(l.len(), 5, "{l:?}");
        let (r, l) = items(r#"{"a":1} trailing"#);
        assert_eq!(r, Ok(false));
        assert_eq!(l.len(), 3, "{l:?}");
    }

    /// JavaScript's `JSON.parse` (Express, koa, fastify) takes lone surrogates and numbers past
    /// a double's range, Python's `json` those and `NaN` and `Infinity`, and both skip a UTF-8
    /// byte order mark: such a body is read as JSON, with its escapes decoded.
    #[test]
    fn json_that_javascript_and_python_accept_is_read_as_json() {
        for body in [
            "{\"z\":\"\\ud800\",\"q\":\"1'\\tUNION\"}",
            "{\"z\":\"x\\uDFFF\\uD800y\",\"q\":\"1'\\tUNION\"}",
            "{\"n\":1e999,\"q\":\"1'\\tUNION\"}",
            "{\"n\":-1E+400,\"q\":\"1'\\tUNION\"}",
            "{\"a\":NaN,\"b\":[Infinity,-Infinity],\"q\":\"1'\\tUNION\"}",
            "\u{feff}{\"q\":\"1'\\tUNION\"}",
            "/*\u{1}\u{1}*/{\"q\": // Json.NET and Ruby skip comments\n\"1'\\tUNION\"}",
        ] {
            let mut out = Vec::new();
            let v = values(body, &mut out);
            assert!(
                v.contains(&(TargetKind::Json, "q".into(), "1'\tUNION".into())),
                "{body}: {v:?}"
            );
        }
        let mut out = Vec::new();
        let v = values(r#"{"z":"a\ud800b","k\udc00":{"$type":2}}"#, &mut out);
        assert!(
            v.contains(&(TargetKind::Json, "z".into(), "a\u{fffd}b".into())),
            "{v:?}"
        );
        assert!(
            v.contains(&(TargetKind::JsonPaths, "".into(), "k\u{fffd}.$type".into())),
            "{v:?}"
        );
        // Still not JSON.
        assert_eq!(items("{\"a\":NaN,").0, Ok(false));
    }

    #[test]
    fn the_value_limit_counts_objects_arrays_and_scalars() {
        let lim = ParseLimits {
            args: 4,
            ..ParseLimits::default()
        };
        let mut out = Vec::new();
        assert_eq!(json_items(r#"{"a":[1,2]}"#, &lim, &mut out), Ok(true));
        let mut out = Vec::new();
        assert_eq!(
            json_items(r#"{"a":[1,2,3]}"#, &lim, &mut out),
            Err(Exceeded::Args)
        );
    }
}
