//! Targets: the parts of a request a rule looks at (`args`, `headers:user-agent`, `json`, ...),
//! and the inspected items a request is broken into.

use std::borrow::Cow;
use std::fmt;

/// A kind of request part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetKind {
    /// The request method.
    Method,
    /// The raw path (still percent-encoded; rules decode it with `url-decode`).
    Path,
    /// The raw query string.
    Query,
    /// Query argument values (decoded).
    Args,
    /// Query argument names (decoded).
    ArgsNames,
    /// Header values; `headers:<name>` selects one header.
    Headers,
    /// Header names.
    HeaderNames,
    /// Cookie values; `cookies:<name>` selects one cookie.
    Cookies,
    /// Cookie names.
    CookieNames,
    /// Form and multipart field values.
    BodyArgs,
    /// Form and multipart field names.
    BodyArgsNames,
    /// Multipart file names.
    Files,
    /// Header values of multipart parts (`Content-Type`, `Content-Transfer-Encoding`, ...);
    /// `multipart_headers:<name>` selects one header.
    MultipartHeaders,
    /// JSON string, number and boolean values at any depth; `json:<path>` selects one.
    Json,
    /// JSON object keys at any depth.
    JsonKeys,
    /// The path of every JSON object key, array positions written `[]` (`user.roles[].name`):
    /// where a key sits, for rules on structure (`constructor.prototype`, `user.is_admin`).
    JsonPaths,
    /// XML text and attribute values.
    Xml,
    /// The raw body (up to the inspection limit) of a body no parser applied to, when it is text.
    Body,
    /// The same, when the body is binary data (an image, an archive, protobuf): for rules on
    /// binary structure (the magic bytes of a serialized object). Text rules read over random
    /// bytes find markup and shell syntax in them by chance.
    BinaryBody,
    /// The runs of text in a binary body: for rules that find code hidden in a file (a PHP or
    /// script tag after the image data).
    BodyText,
    /// The user name and password of `Authorization: Basic` credentials, decoded; named `user`
    /// and `password`. Applications look the user name up and compare the password, so they are
    /// inputs like a login form's fields.
    Credentials,
    /// The client address.
    RemoteAddr,
}

/// Every kind with its name in rule files.
pub const KINDS: &[(&str, TargetKind)] = &[
    ("method", TargetKind::Method),
    ("path", TargetKind::Path),
    ("query", TargetKind::Query),
    ("args", TargetKind::Args),
    ("args_names", TargetKind::ArgsNames),
    ("headers", TargetKind::Headers),
    ("header_names", TargetKind::HeaderNames),
    ("cookies", TargetKind::Cookies),
    ("cookie_names", TargetKind::CookieNames),
    ("body_args", TargetKind::BodyArgs),
    ("body_args_names", TargetKind::BodyArgsNames),
    ("files", TargetKind::Files),
    ("multipart_headers", TargetKind::MultipartHeaders),
    ("json", TargetKind::Json),
    ("json_keys", TargetKind::JsonKeys),
    ("json_paths", TargetKind::JsonPaths),
    ("xml", TargetKind::Xml),
    ("body", TargetKind::Body),
    ("binary_body", TargetKind::BinaryBody),
    ("body_text", TargetKind::BodyText),
    ("credentials", TargetKind::Credentials),
    ("remote_addr", TargetKind::RemoteAddr),
];

/// Shorthand for the values users control, used by most attack rules.
pub const INPUTS: &[TargetKind] = &[
    TargetKind::Args,
    TargetKind::ArgsNames,
    TargetKind::BodyArgs,
    TargetKind::BodyArgsNames,
    TargetKind::Json,
    TargetKind::JsonKeys,
    TargetKind::Xml,
    TargetKind::Cookies,
    TargetKind::CookieNames,
    TargetKind::Files,
    TargetKind::Credentials,
];

/// The kinds of [`INPUTS`] that carry a value under a name, which `inputs:<name>` narrows: the
/// name kinds are left out, their items being the names themselves.
pub const NAMED_INPUTS: &[TargetKind] = &[
    TargetKind::Args,
    TargetKind::BodyArgs,
    TargetKind::Json,
    TargetKind::Xml,
    TargetKind::Cookies,
    TargetKind::Files,
];

impl TargetKind {
    /// The name used in rule files and logs.
    pub fn label(self) -> &'static str {
        KINDS
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// Whether the kind is found in the request line and headers (as opposed to the body).
    pub fn in_head(self) -> bool {
        !matches!(
            self,
            TargetKind::BodyArgs
                | TargetKind::BodyArgsNames
                | TargetKind::Files
                | TargetKind::MultipartHeaders
                | TargetKind::Json
                | TargetKind::JsonKeys
                | TargetKind::JsonPaths
                | TargetKind::Xml
                | TargetKind::Body
                | TargetKind::BinaryBody
                | TargetKind::BodyText
        )
    }

    /// Whether item names of this kind compare case-insensitively: header names, and JSON keys,
    /// which ASP.NET Core binds to properties whatever their case.
    fn names_fold_case(self) -> bool {
        matches!(
            self,
            TargetKind::Headers
                | TargetKind::HeaderNames
                | TargetKind::MultipartHeaders
                | TargetKind::Json
        )
    }

    /// Whether item names of this kind compare by [`app_name`]: query, form and cookie names,
    /// which frameworks rewrite before the application reads them.
    fn names_as_apps_read(self) -> bool {
        matches!(
            self,
            TargetKind::Args | TargetKind::BodyArgs | TargetKind::Cookies
        )
    }

    /// A rule's `kind:name` in the form [`TargetSpec::selects`] compares.
    fn spec_name(self, name: &str) -> String {
        if self.names_as_apps_read() {
            app_name(name).map(char::from).collect()
        } else if self.names_fold_case() {
            name.to_ascii_lowercase()
        } else {
            name.to_string()
        }
    }
}

/// Headers whose values are structured protocol fields filled in by browsers and HTTP stacks,
/// left out of `input_headers`: attack rules looking at them only find false positives.
pub const STRUCTURED_HEADERS: &[&str] = &[
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "authorization",
    "cache-control",
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "cookie",
    "dnt",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "keep-alive",
    "pragma",
    "priority",
    "range",
    "sec-ch-ua",
    "sec-ch-ua-mobile",
    "sec-ch-ua-platform",
    "sec-fetch-dest",
    "sec-fetch-mode",
    "sec-fetch-site",
    "sec-fetch-user",
    "te",
    "transfer-encoding",
    "upgrade-insecure-requests",
    "x-request-id",
];

/// The bytes of a query, form or cookie name as applications read it: PHP drops leading spaces,
/// reads `a[…]` as the array `a` and turns `.`, ` ` and an unclosed `[` into `_`
/// (`redirect.uri`, `redirect[uri` are `redirect_uri`); Express's `qs` reads `next[]` and
/// `next[0]` as `next`; ASP.NET ignores case. Lower-cased.
fn app_name(name: &str) -> impl Iterator<Item = u8> + '_ {
    let t = name.trim_start_matches(' ');
    let base = match t.find('[') {
        Some(i) if t[i..].contains(']') => &t[..i],
        _ => t,
    };
    base.bytes().map(|b| match b {
        b'.' | b' ' | b'[' => b'_',
        b => b.to_ascii_lowercase(),
    })
}

/// A rule's target: a kind, optionally narrowed to one name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetSpec {
    /// The kind.
    pub kind: TargetKind,
    /// Only items with this name (`headers:user-agent`, `args:id`).
    pub name: Option<String>,
    /// Items with these names are not selected (`input_headers`).
    pub except: &'static [&'static str],
}

impl TargetSpec {
    /// Parses `kind` or `kind:name`; `inputs` expands to [`INPUTS`], and `inputs:name` to the
    /// [`NAMED_INPUTS`] of that name (the query or form argument, top-level JSON key, XML element,
    /// cookie or multipart field called so); `input_headers` is every header except the
    /// [`STRUCTURED_HEADERS`].
    pub fn parse(text: &str) -> Result<Vec<TargetSpec>, String> {
        let (kind, name) = match text.split_once(':') {
            Some((k, n)) => (k.trim(), Some(n.trim())),
            None => (text.trim(), None),
        };
        if kind == "input_headers" {
            if name.is_some() {
                return Err("`input_headers` cannot be narrowed to a name".into());
            }
            return Ok(vec![TargetSpec {
                kind: TargetKind::Headers,
                name: None,
                except: STRUCTURED_HEADERS,
            }]);
        }
        if kind == "inputs" {
            let (kinds, name) = match name {
                Some("") => return Err(format!("target {text:?} has an empty name")),
                Some(n) => (NAMED_INPUTS, Some(n)),
                None => (INPUTS, None),
            };
            return Ok(kinds
                .iter()
                .map(|k| TargetSpec {
                    kind: *k,
                    name: name.map(|n| k.spec_name(n)),
                    except: &[],
                })
                .collect());
        }
        let Some((_, k)) = KINDS.iter().find(|(n, _)| *n == kind) else {
            let known: Vec<&str> = KINDS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown target {kind:?}; expected one of inputs, input_headers, {}",
                known.join(", ")
            ));
        };
        let name = match name {
            Some("") => return Err(format!("target {text:?} has an empty name")),
            Some(n) => Some(k.spec_name(n)),
            None => None,
        };
        Ok(vec![TargetSpec {
            kind: *k,
            name,
            except: &[],
        }])
    }

    /// Whether `item` is selected by this target.
    pub fn selects(&self, item: &Item<'_>) -> bool {
        self.kind == item.kind
            && !self
                .except
                .iter()
                .any(|e| e.eq_ignore_ascii_case(&item.name))
            && match &self.name {
                None => true,
                Some(n) if self.kind.names_as_apps_read() => n.bytes().eq(app_name(&item.name)),
                Some(n) if self.kind.names_fold_case() => n.eq_ignore_ascii_case(&item.name),
                Some(n) => *n == item.name,
            }
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{}:{n}", self.kind.label()),
            None if !self.except.is_empty() => f.write_str("input_headers"),
            None => f.write_str(self.kind.label()),
        }
    }
}

/// One inspected value of a request.
#[derive(Debug, Clone)]
pub struct Item<'a> {
    /// What part of the request it is.
    pub kind: TargetKind,
    /// The argument, header, cookie or JSON path name ("" when the kind has no names).
    pub name: Cow<'a, str>,
    /// The value as received (after the decoding its container implies, e.g. form decoding).
    pub value: Cow<'a, str>,
}

impl Item<'_> {
    /// The same item, owning its text.
    pub fn into_owned(self) -> Item<'static> {
        Item {
            kind: self.kind,
            name: Cow::Owned(self.name.into_owned()),
            value: Cow::Owned(self.value.into_owned()),
        }
    }

    /// `args:id`-style label for logs.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            self.kind.label().to_string()
        } else {
            format!("{}:{}", self.kind.label(), self.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_targets() {
        assert_eq!(
            TargetSpec::parse("headers:User-Agent").unwrap(),
            vec![TargetSpec {
                kind: TargetKind::Headers,
                name: Some("user-agent".into()),
                except: &[],
            }]
        );
        assert_eq!(TargetSpec::parse("inputs").unwrap().len(), INPUTS.len());
        assert!(TargetSpec::parse("argz")
            .unwrap_err()
            .contains("unknown target"));
        assert!(TargetSpec::parse("args:").is_err());
        assert!(TargetSpec::parse("inputs:").is_err());
        assert!(TargetSpec::parse("input_headers:x").is_err());
    }

    #[test]
    fn inputs_narrowed_to_a_name() {
        let specs = TargetSpec::parse("inputs:returnTo").unwrap();
        let kinds: Vec<TargetKind> = specs.iter().map(|t| t.kind).collect();
        assert_eq!(kinds, NAMED_INPUTS);
        let item = |kind, name: &'static str| Item {
            kind,
            name: name.into(),
            value: "x".into(),
        };
        let selected = |i: &Item<'_>| specs.iter().any(|t| t.selects(i));
        for kind in NAMED_INPUTS {
            assert!(selected(&item(*kind, "returnTo")), "{kind:?}");
            assert!(!selected(&item(*kind, "next")), "{kind:?}");
        }
        // Query, form and cookie names as PHP, Express and ASP.NET read them; JSON keys as
        // ASP.NET Core binds them (any case); XML element names as they are.
        for kind in [TargetKind::Args, TargetKind::BodyArgs, TargetKind::Cookies] {
            for name in [
                "RETURNTO",
                "returnTo[]",
                "returnTo[0]",
                " returnTo",
                "returnTo[a][b]",
            ] {
                assert!(selected(&item(kind, name)), "{kind:?} {name}");
            }
            assert!(!selected(&item(kind, "return_to")), "{kind:?}");
            assert!(!selected(&item(kind, "xreturnTo")), "{kind:?}");
        }
        assert!(selected(&item(TargetKind::Json, "RETURNTO")));
        assert!(!selected(&item(TargetKind::Json, "returnTo[]")));
        assert!(!selected(&item(TargetKind::Xml, "returnto")));
        let specs = TargetSpec::parse("inputs:redirect_uri").unwrap();
        let selected = |i: &Item<'_>| specs.iter().any(|t| t.selects(i));
        for name in [
            "redirect.uri",
            "redirect uri",
            "redirect[uri",
            "Redirect_Uri",
        ] {
            assert!(selected(&item(TargetKind::Args, name)), "{name}");
        }
        // Names are not values: a query argument called `returnTo` is selected through
        // `args:returnTo`, not through its name item; headers are not inputs.
        assert!(!selected(&item(TargetKind::ArgsNames, "returnTo")));
        assert!(!selected(&item(TargetKind::Headers, "returnTo")));
        // A nested JSON key has a dotted path, so only the top-level one is selected.
        assert!(!selected(&item(TargetKind::Json, "user.returnTo")));
        assert_eq!(specs[0].to_string(), "args:redirect_uri");
    }

    #[test]
    fn selection() {
        let t = &TargetSpec::parse("args:id").unwrap()[0];
        let item = |name: &'static str| Item {
            kind: TargetKind::Args,
            name: name.into(),
            value: "".into(),
        };
        assert!(t.selects(&item("id")));
        assert!(t.selects(&item("ID")), "ASP.NET reads names in any case");
        assert!(!t.selects(&item("idx")));
        let h = &TargetSpec::parse("headers:user-agent").unwrap()[0];
        assert!(h.selects(&Item {
            kind: TargetKind::Headers,
            name: "User-Agent".into(),
            value: "".into()
        }));
    }
}
