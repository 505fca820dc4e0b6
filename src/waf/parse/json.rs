//! JSON bodies: keys and scalar values at any depth, with paths as names.

use super::*;

pub(super) fn json_items<'a>(
    body: &'a str,
    limits: &ParseLimits,
    out: &mut Vec<Item<'a>>,
) -> Result<bool, Exceeded> {
    // Nesting is checked first: serde_json gives up past 128 levels, and a body it cannot
    // parse would otherwise be inspected only as raw text.
    if json_nesting(body) > limits.json_depth {
        return Err(Exceeded::JsonDepth);
    }
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return Ok(false);
    };
    let mut count = 0;
    walk_json(&v, &mut String::new(), limits, &mut count, out)?;
    Ok(true)
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

fn walk_json(
    v: &serde_json::Value,
    path: &mut String,
    limits: &ParseLimits,
    count: &mut usize,
    out: &mut Vec<Item<'_>>,
) -> Result<(), Exceeded> {
    *count += 1;
    if *count > limits.args {
        return Err(Exceeded::Args);
    }
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                out.push(Item {
                    kind: TargetKind::JsonKeys,
                    name: Cow::Owned(path.clone()),
                    value: Cow::Owned(k.clone()),
                });
                walk_json(child, path, limits, count, out)?;
                path.truncate(len);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk_json(child, path, limits, count, out)?;
                path.truncate(len);
            }
        }
        serde_json::Value::String(s) => out.push(Item {
            kind: TargetKind::Json,
            name: Cow::Owned(path.clone()),
            value: Cow::Owned(s.clone()),
        }),
        serde_json::Value::Null => {}
        other => out.push(Item {
            kind: TargetKind::Json,
            name: Cow::Owned(path.clone()),
            value: Cow::Owned(other.to_string()),
        }),
    }
    Ok(())
}
