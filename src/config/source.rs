//! YAML source documents that remember where every field is, so that config and rule errors
//! can say `file:line:col: field.path: what is wrong` — and say all of them at once.
//!
//! A document is parsed twice: `serde_yaml` gives the value that the typed file structs are
//! deserialized from, and an event pass with `yaml-rust2` records the position of every key and
//! sequence item under its field path (`routes[2].upstream`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One problem in one file, located at a line and column and named by its field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// Field path such as `routes[2].upstream`; empty for whole-file problems.
    pub path: String,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.col)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found while loading a configuration, in file order.
#[derive(Debug, Default, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl Diagnostics {
    /// Records one problem.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of problems recorded.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Appends all problems of `other`.
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    /// Sorts by file, line and column so output reads top to bottom, then drops exact repeats.
    pub fn sort(&mut self) {
        self.0
            .sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
        self.0.dedup();
    }
}

/// A field that failed to deserialize, kept so that its siblings can still be checked.
#[derive(Debug, Clone)]
pub struct FieldError {
    /// Path relative to where the field sits.
    pub path: String,
    /// serde's message.
    pub message: String,
}

/// A value deserialized on its own: either the typed value or the error it produced.
///
/// Wrapping list items and sections in `Parsed` lets one bad route be reported without hiding
/// problems in the next one.
#[derive(Debug, Clone)]
pub struct Parsed<T>(pub Result<T, FieldError>);

impl<T: Default> Default for Parsed<T> {
    fn default() -> Self {
        Parsed(Ok(T::default()))
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(d)?;
        Ok(Parsed(deserialize_value(value)))
    }
}

/// Deserializes `value` into `T`, naming the failing field path on error.
pub fn deserialize_value<T: DeserializeOwned>(value: serde_yaml::Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = String::new();
        for seg in e.path().iter() {
            match seg {
                serde_path_to_error::Segment::Seq { index } => path.push_str(&format!("[{index}]")),
                serde_path_to_error::Segment::Map { key } => push_key(&mut path, key),
                serde_path_to_error::Segment::Enum { variant } => push_key(&mut path, variant),
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        let message = e.into_inner().to_string();
        // serde reports an unknown field at its parent; point at the field itself.
        if let Some(name) = unknown_field_name(&message) {
            let last = path.rsplit(['.', ']']).next().unwrap_or("");
            if last != name {
                push_key(&mut path, name);
            }
        }
        FieldError {
            path,
            message: tidy_serde_message(&message),
        }
    })
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

/// Joins a base path and a relative one: `routes[1]` + `upstream` → `routes[1].upstream`.
pub fn join_path(base: &str, rel: &str) -> String {
    match (base.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_string(),
        (_, true) => base.to_string(),
        _ if rel.starts_with('[') => format!("{base}{rel}"),
        _ => format!("{base}.{rel}"),
    }
}

fn unknown_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// serde_yaml appends " at line X column Y" for values it knows the place of; we add our own.
fn tidy_serde_message(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// A parsed YAML file with the position of every field path.
#[derive(Debug, Clone)]
pub struct SourceDoc {
    /// The file name used in diagnostics.
    pub file: PathBuf,
    /// The document as a YAML value, for typed deserialization.
    pub value: serde_yaml::Value,
    positions: HashMap<String, (usize, usize)>,
}

impl SourceDoc {
    /// Reads and parses `path`; an unreadable file or a YAML syntax error is one diagnostic.
    pub fn read(path: &Path) -> Result<SourceDoc, Box<Diagnostic>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Box::new(Diagnostic {
                file: path.to_path_buf(),
                line: 1,
                col: 1,
                path: String::new(),
                message: format!("cannot read file: {e}"),
            })
        })?;
        SourceDoc::parse(path.to_path_buf(), &text)
    }

    /// Parses `text` as the contents of `file`.
    pub fn parse(file: PathBuf, text: &str) -> Result<SourceDoc, Box<Diagnostic>> {
        let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
            let (line, col) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            Box::new(Diagnostic {
                file: file.clone(),
                line,
                col,
                path: String::new(),
                message: format!("invalid YAML: {}", tidy_serde_message(&e.to_string())),
            })
        })?;
        let mut recorder = PositionRecorder::default();
        let mut parser = Parser::new_from_str(text);
        // serde_yaml accepted the text; a disagreement here only costs positions.
        let _ = parser.load(&mut recorder, false);
        Ok(SourceDoc {
            file,
            value,
            positions: recorder.positions,
        })
    }

    /// The position of `path`, or of its closest ancestor that exists in the file.
    pub fn position(&self, path: &str) -> (usize, usize) {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return self.positions.get("").copied().unwrap_or((1, 1)),
            }
        }
    }

    /// A diagnostic at `path` in this file.
    pub fn diag(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        let (line, col) = self.position(path);
        Diagnostic {
            file: self.file.clone(),
            line,
            col,
            path: path.to_string(),
            message: message.into(),
        }
    }

    /// Unwraps a [`Parsed`] found at `base`, recording its error if it failed.
    pub fn take<T>(&self, parsed: Parsed<T>, base: &str, diags: &mut Diagnostics) -> Option<T> {
        match parsed.0 {
            Ok(v) => Some(v),
            Err(e) => {
                diags.push(self.diag(&join_path(base, &e.path), e.message));
                None
            }
        }
    }

    /// Deserializes the whole document as `T`, recording the error if it fails.
    pub fn deserialize<T: DeserializeOwned>(&self, diags: &mut Diagnostics) -> Option<T> {
        self.take(Parsed(deserialize_value(self.value.clone())), "", diags)
    }
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
        first: bool,
    },
    Seq {
        path: String,
        index: usize,
    },
}

#[derive(Default)]
struct PositionRecorder {
    stack: Vec<Frame>,
    positions: HashMap<String, (usize, usize)>,
}

impl PositionRecorder {
    /// Handles a node starting at `mark`; returns the node's path when it is a value (not a key).
    fn node(&mut self, scalar_key: Option<&str>, mark: Marker) -> Option<String> {
        // yaml-rust2 counts columns from 0.
        let pos = (mark.line(), mark.col() + 1);
        match self.stack.last_mut() {
            None => {
                self.positions.entry(String::new()).or_insert(pos);
                Some(String::new())
            }
            Some(Frame::Map { path, key, first }) => match key.take() {
                None => {
                    let k = scalar_key.unwrap_or("?").to_string();
                    let child = join_path(path, &k);
                    self.positions.insert(child, pos);
                    // A list item that is a mapping is best pointed at by its first key.
                    if std::mem::take(first) && path.ends_with(']') {
                        self.positions.insert(path.clone(), pos);
                    }
                    *key = Some(k);
                    None
                }
                Some(k) => Some(join_path(path, &k)),
            },
            Some(Frame::Seq { path, index }) => {
                let child = format!("{path}[{index}]");
                *index += 1;
                self.positions.insert(child.clone(), pos);
                Some(child)
            }
        }
    }
}

impl MarkedEventReceiver for PositionRecorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(ref s, ..) => {
                self.node(Some(s), mark);
            }
            Event::Alias(_) => {
                self.node(None, mark);
            }
            Event::MappingStart(..) => {
                let path = self.node(None, mark).unwrap_or_else(|| "?".into());
                self.stack.push(Frame::Map {
                    path,
                    key: None,
                    first: true,
                });
            }
            Event::SequenceStart(..) => {
                let path = self.node(None, mark).unwrap_or_else(|| "?".into());
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> SourceDoc {
        SourceDoc::parse("t.yaml".into(), text).unwrap()
    }

    #[test]
    fn positions_of_keys_and_items() {
        let d = doc("a: 1\nroutes:\n  - name: x\n    upstream: u\n  - name: y\n");
        assert_eq!(d.position("a"), (1, 1));
        assert_eq!(d.position("routes"), (2, 1));
        assert_eq!(d.position("routes[0]"), (3, 5));
        assert_eq!(d.position("routes[0].upstream"), (4, 5));
        assert_eq!(d.position("routes[1].name"), (5, 5));
        // A path that is not in the file falls back to its closest ancestor.
        assert_eq!(d.position("routes[1].nope.deeper"), (5, 5));
    }

    #[test]
    fn unknown_field_points_at_the_field() {
        #[derive(Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct S {
            name: String,
        }
        let d = doc("items:\n  - name: a\n    nmae: b\n");
        let items: Vec<Parsed<S>> =
            deserialize_value(d.value.get("items").unwrap().clone()).unwrap();
        let mut diags = Diagnostics::default();
        let got: Vec<_> = items
            .into_iter()
            .enumerate()
            .filter_map(|(i, p)| d.take(p, &format!("items[{i}]"), &mut diags))
            .collect();
        assert!(got.is_empty());
        assert_eq!(
            diags.to_string(),
            "t.yaml:3:5: items[0].nmae: unknown field `nmae`, expected `name`"
        );
    }

    #[test]
    fn syntax_error_has_a_location() {
        let e = SourceDoc::parse("t.yaml".into(), "a: [1, 2\nb: 3\n").unwrap_err();
        assert_eq!(e.file, PathBuf::from("t.yaml"));
        assert!(e.line >= 1);
        assert!(e.message.starts_with("invalid YAML"), "{}", e.message);
    }
}
