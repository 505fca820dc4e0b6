//! The shape of a rule file (`rules/*.yaml`) as security teams write it.

use serde::Deserialize;

use crate::config::source::Parsed;

/// A rule file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Default category for the rules of this file (`sqli`, `xss`, ...).
    #[serde(default)]
    pub category: Option<String>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<Parsed<RuleEntry>>,
}

/// A rule id: a number or a string, kept as text.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
#[serde(untagged)]
pub enum RuleIdFile {
    /// `id: 100200`
    Number(u64),
    /// `id: sqli-union-select`
    Text(String),
}

impl RuleIdFile {
    /// The id as text.
    pub fn as_text(&self) -> String {
        match self {
            RuleIdFile::Number(n) => n.to_string(),
            RuleIdFile::Text(s) => s.clone(),
        }
    }
}

/// Points a rule adds to the anomaly score, by name or as a number.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum SeverityFile {
    /// `critical` (5), `error` (4), `warning` (3), `notice` (2).
    Named(String),
    /// Explicit points.
    Points(u32),
}

/// One rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleEntry {
    /// Stable id, used in logs, metrics and exclusions.
    pub id: RuleIdFile,
    /// What the rule detects, for people.
    pub description: String,
    /// Category (metric label); defaults to the file's.
    #[serde(default)]
    pub category: Option<String>,
    /// Free-form tags, usable in exclusions.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Request parts to look at (`inputs`, `args`, `headers:user-agent`, ...).
    pub targets: Vec<String>,
    /// Transform chain applied to each value first.
    #[serde(default)]
    pub transforms: Vec<String>,
    /// How to match.
    pub operator: OperatorFile,
    /// Match when the operator does *not* match.
    #[serde(default)]
    pub negate: bool,
    /// Anomaly points.
    #[serde(default = "default_severity")]
    pub severity: SeverityFile,
    /// Paranoia level (1–4) from which the rule runs.
    #[serde(default = "one")]
    pub paranoia: u8,
    /// `score` (default), `block`, `log` or `allow`.
    #[serde(default = "default_action")]
    pub action: String,
    /// Further conditions that must all hold too (`and:`), each on its own targets: "a GET
    /// whose Content-Length is not zero". Rules with conditions look at the request line and
    /// headers only.
    #[serde(default, rename = "and")]
    pub conditions: Vec<ConditionEntry>,
    /// Inline test cases.
    #[serde(default)]
    pub tests: Option<TestsFile>,
}

/// One further condition of a rule: it holds when a value its targets select matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionEntry {
    /// Request parts to look at.
    pub targets: Vec<String>,
    /// Transform chain applied to each value first.
    #[serde(default)]
    pub transforms: Vec<String>,
    /// How to match.
    pub operator: OperatorFile,
    /// Holds when a selected value does *not* match.
    #[serde(default)]
    pub negate: bool,
}

fn default_severity() -> SeverityFile {
    SeverityFile::Named("critical".into())
}
fn one() -> u8 {
    1
}
fn default_action() -> String {
    "score".into()
}

/// The operator of a rule as written: a mapping with exactly one key.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OperatorFile {
    /// See [`OperatorSpec::Regex`].
    pub regex: Option<String>,
    /// See [`OperatorSpec::Phrases`].
    pub phrases: Option<Vec<String>>,
    /// See [`OperatorSpec::PhrasesFile`].
    pub phrases_file: Option<String>,
    /// See [`OperatorSpec::Sqli`].
    pub sqli: Option<bool>,
    /// See [`OperatorSpec::Xss`].
    pub xss: Option<bool>,
    /// See [`OperatorSpec::Equals`].
    pub equals: Option<String>,
    /// See [`OperatorSpec::Contains`].
    pub contains: Option<String>,
    /// See [`OperatorSpec::Cidr`].
    pub cidr: Option<Vec<String>>,
    /// See [`OperatorSpec::LengthGt`].
    pub length_gt: Option<usize>,
    /// See [`OperatorSpec::InvalidUrlEncoding`].
    pub invalid_url_encoding: Option<bool>,
}

impl OperatorFile {
    /// The one operator given, or an error naming the choices.
    pub fn spec(&self) -> Result<OperatorSpec, String> {
        let mut found = Vec::new();
        if let Some(v) = &self.regex {
            found.push(OperatorSpec::Regex(v.clone()));
        }
        if let Some(v) = &self.phrases {
            found.push(OperatorSpec::Phrases(v.clone()));
        }
        if let Some(v) = &self.phrases_file {
            found.push(OperatorSpec::PhrasesFile(v.clone()));
        }
        if let Some(v) = self.sqli {
            found.push(OperatorSpec::Sqli(v));
        }
        if let Some(v) = self.xss {
            found.push(OperatorSpec::Xss(v));
        }
        if let Some(v) = &self.equals {
            found.push(OperatorSpec::Equals(v.clone()));
        }
        if let Some(v) = &self.contains {
            found.push(OperatorSpec::Contains(v.clone()));
        }
        if let Some(v) = &self.cidr {
            found.push(OperatorSpec::Cidr(v.clone()));
        }
        if let Some(v) = self.length_gt {
            found.push(OperatorSpec::LengthGt(v));
        }
        if let Some(v) = self.invalid_url_encoding {
            found.push(OperatorSpec::InvalidUrlEncoding(v));
        }
        if found.len() == 1 {
            Ok(found.remove(0))
        } else {
            Err(format!(
                "needs exactly one of regex, phrases, phrases_file, sqli, xss, equals, contains, cidr, length_gt, invalid_url_encoding (found {})",
                found.len()
            ))
        }
    }
}

/// The operator of a rule.
#[derive(Debug, Clone)]
pub enum OperatorSpec {
    /// A regular expression (Rust `regex` syntax, linear time).
    Regex(String),
    /// Any of these phrases as a substring.
    Phrases(Vec<String>),
    /// Phrases from a file, one per line (`#` comments), relative to the rule file.
    PhrasesFile(String),
    /// libinjection SQL injection detection.
    Sqli(bool),
    /// libinjection XSS detection.
    Xss(bool),
    /// The whole value equals this.
    Equals(String),
    /// The value contains this.
    Contains(String),
    /// The value is an IP address inside one of these networks.
    Cidr(Vec<String>),
    /// The value is longer than this many bytes.
    LengthGt(usize),
    /// The value has a `%` not followed by two hex digits.
    InvalidUrlEncoding(bool),
}

/// Inline tests of a rule.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TestsFile {
    /// Requests the rule must match.
    #[serde(default, rename = "match")]
    pub must_match: Vec<TestRequest>,
    /// Requests the rule must not match.
    #[serde(default)]
    pub no_match: Vec<TestRequest>,
}

/// A test request: a `"METHOD /target"` line, or the parts spelled out.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TestRequest {
    /// `"GET /search?q=1%27%20or%201=1"`
    Line(String),
    /// The parts of the request.
    Parts(Box<TestParts>),
}

/// A test request spelled out.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TestParts {
    /// Method (default GET, or POST with a body).
    #[serde(default)]
    pub method: Option<String>,
    /// Path, as sent (default `/`).
    #[serde(default)]
    pub path: Option<String>,
    /// Raw query string.
    #[serde(default)]
    pub query: Option<String>,
    /// Query arguments, encoded for you.
    #[serde(default)]
    pub args: indexmap::IndexMap<String, String>,
    /// Headers.
    #[serde(default)]
    pub headers: indexmap::IndexMap<String, String>,
    /// Cookies.
    #[serde(default)]
    pub cookies: indexmap::IndexMap<String, String>,
    /// `user:password`, sent as `Authorization: Basic` with the base64 done for you.
    #[serde(default)]
    pub basic_auth: Option<String>,
    /// Form body fields, encoded for you.
    #[serde(default)]
    pub form: indexmap::IndexMap<String, String>,
    /// JSON body (any YAML value).
    #[serde(default)]
    pub json: Option<serde_json::Value>,
    /// XML body.
    #[serde(default)]
    pub xml: Option<String>,
    /// Raw body.
    #[serde(default)]
    pub body: Option<String>,
    /// Content type of a raw body.
    #[serde(default)]
    pub content_type: Option<String>,
}
