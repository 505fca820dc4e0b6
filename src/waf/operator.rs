//! Operators that are evaluated one rule at a time. Regexes and phrase lists are not here: the
//! matcher runs them for many rules at once (`RegexSet`, Aho-Corasick).

use std::path::{Path, PathBuf};

use super::schema::{OperatorFile, OperatorSpec};
use crate::config::source::SourceDoc;
use crate::ipset::IpSet;

/// Longest regex accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 8 * 1024;
/// Largest compiled program of one regex.
pub const REGEX_SIZE_LIMIT: usize = 2 * 1024 * 1024;

/// A compiled operator.
#[derive(Debug, Clone)]
pub enum Operator {
    /// Regular expression: run in a set with the other rules' patterns, and compiled on its own
    /// once, at load, for what the set cannot tell (which patterns matched, negated rules,
    /// conditions).
    Regex(RegexOp),
    /// Phrases (run in an Aho-Corasick automaton).
    Phrases(Vec<String>),
    /// libinjection SQLi.
    Sqli,
    /// libinjection XSS.
    Xss,
    /// Equality.
    Equals(String),
    /// Substring.
    Contains(String),
    /// Address in networks.
    Cidr(IpSet),
    /// Length above a bound.
    LengthGt(usize),
    /// Malformed percent-encoding.
    InvalidUrlEncoding,
}

/// A rule's regex: its text (for the sets) and the regex compiled from it.
#[derive(Debug, Clone)]
pub struct RegexOp {
    /// The pattern as written.
    pub pattern: String,
    /// The pattern compiled on its own (bytes, Unicode classes off, size-limited).
    pub re: regex::bytes::Regex,
}

impl Operator {
    /// Whether the matcher runs this operator in a shared automaton.
    pub fn is_batched(&self) -> bool {
        matches!(self, Operator::Regex(_) | Operator::Phrases(_))
    }

    /// Evaluates an unbatched operator on a (transformed) value.
    pub fn eval(&self, v: &str) -> bool {
        match self {
            Operator::Regex(_) | Operator::Phrases(_) => false,
            Operator::Sqli => sqli(v.as_bytes()),
            Operator::Xss => {
                !v.is_empty() && libinjectionrs::detect_xss(v.as_bytes()).is_injection()
            }
            Operator::Equals(s) => v == s,
            Operator::Contains(s) => v.contains(s.as_str()),
            Operator::Cidr(set) => v.trim().parse().is_ok_and(|ip| set.contains(ip)),
            Operator::LengthGt(n) => v.len() > *n,
            Operator::InvalidUrlEncoding => invalid_url_encoding(v),
        }
    }
}

/// libinjection's verdict, less three short shapes that prose takes (see [`prose_shape`]).
fn sqli(v: &[u8]) -> bool {
    if v.is_empty() || one_word(v) {
        return false;
    }
    // `detect_sqli` would fingerprint the value once more after the verdict; `detect` leaves the
    // tokens and fingerprint of the reading that matched in the state.
    let mut st = libinjectionrs::SqliState::new(v, libinjectionrs::SqliFlags::FLAG_NONE);
    st.detect() && !prose_shape(v, &st)
}

/// Whether `v` is letters, digits and underscores only: ids, tokens, numbers and single words,
/// a good share of all values. libinjection reads such a value as one word, one number, or a
/// number then a word, and none of the fingerprints those make is on its list (its only short
/// ones need a comment, a string, a variable or a brace; "1U", a number then UNION, is let go
/// when it is the whole input). Asking it anyway costs 0.2-0.4 µs a value, most of it an upper-cased
/// copy of every word for its keyword lookup. `one_word_values_are_never_sqli` holds libinjection
/// to this over every word of its keyword table.
fn one_word(v: &[u8]) -> bool {
    v.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// Whether a match is one of three short shapes that prose takes as often as a probe does, told
/// apart by what stands around the operator:
/// - a string, one operator and a string (`sos`, `s&s`). The probes `'='`, `'-'`, `a' or 'b`
///   and `x' < 'y` have next to nothing outside the operator; prose that quotes an operator or a
///   word has words (`the "%" operator is also used for formatting`, `christmas stocking "not"
///   stuffer`). Three words of two or more letters outside the operator token make it prose.
/// - a number, a logical operator and a number (`1&1`). The tautologies `1 and 1=1`,
///   `-1 or 1=2` and `1 and 1 not between 0 and 1` carry only SQL words; percentages in prose
///   read the same (`80% acrylic and 20% wool`, `10% off and 20% more`: `%` is SQL's modulo).
///   Two words outside the operator that are not SQL operator words make it prose.
/// - a name, a logical operator and a user variable (`n&v`: `john or@var.es`). A user variable
///   nobody set is NULL, so `name or @x` cannot tell an attacker anything; the server variables
///   (`or @@version`) stay a match.
///
/// The price, written here so it is not forgotten: a comparison or tautology padded with prose
/// (`my quick brown fox' < 'z`) is not seen by this operator; the tautology and quote break-out
/// regex rules still look at it.
fn prose_shape(v: &[u8], st: &libinjectionrs::SqliState) -> bool {
    if st.tokens.len() < 3 {
        return false;
    }
    let (op, last) = (&st.tokens[1], &st.tokens[2]);
    let left = v.get(..op.pos).unwrap_or_default();
    let right = v.get(last.pos..).unwrap_or_default();
    match &st.fingerprint[..4] {
        b"sos\0" | b"s&s\0" => words(left, |_| true) + words(right, |_| true) >= 3,
        b"1&1\0" => words(left, not_sql_word) + words(right, not_sql_word) >= 2,
        b"n&v\0" => right.starts_with(b"@") && !right.starts_with(b"@@"),
        _ => false,
    }
}

/// Runs of two or more ASCII letters that `keep` accepts.
fn words(s: &[u8], keep: impl Fn(&[u8]) -> bool) -> usize {
    s.split(|b| !b.is_ascii_alphabetic())
        .filter(|w| w.len() >= 2 && keep(w))
        .count()
}

/// Whether a word is not one of the SQL words a numeric tautology is written with.
fn not_sql_word(w: &[u8]) -> bool {
    const SQL: &[&str] = &[
        "all", "and", "any", "between", "binary", "collate", "div", "escape", "exists", "false",
        "in", "is", "like", "mod", "not", "null", "or", "regexp", "rlike", "some", "sounds",
        "true", "xor",
    ];
    !SQL.iter().any(|k| k.as_bytes().eq_ignore_ascii_case(w))
}

fn invalid_url_encoding(v: &str) -> bool {
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok =
                i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit();
            if !ok {
                return true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

/// Checks an operator of a rule file and compiles it; problems go to `err` with their field.
pub(super) fn compile_operator(
    doc: &SourceDoc,
    op: &OperatorFile,
    err: &mut impl FnMut(&str, String),
    files: &mut Vec<PathBuf>,
) -> Option<Operator> {
    let op = match op.spec() {
        Ok(op) => op,
        Err(m) => {
            err("operator", m);
            return None;
        }
    };
    Some(match &op {
        OperatorSpec::Regex(p) => {
            if p.len() > MAX_PATTERN_LEN {
                err(
                    "operator.regex",
                    format!(
                        "pattern is {} bytes; the limit is {MAX_PATTERN_LEN}",
                        p.len()
                    ),
                );
                return None;
            }
            match regex::bytes::RegexBuilder::new(p)
                .unicode(false)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
            {
                Ok(re) => Operator::Regex(RegexOp {
                    pattern: p.clone(),
                    re,
                }),
                Err(e) => {
                    let msg = e.to_string();
                    let last = msg
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("invalid");
                    err("operator.regex", format!("invalid regex: {}", last.trim()));
                    return None;
                }
            }
        }
        OperatorSpec::Phrases(list) => {
            if list.is_empty() || list.iter().any(String::is_empty) {
                err(
                    "operator.phrases",
                    "phrases must be a non-empty list of non-empty strings".into(),
                );
                return None;
            }
            Operator::Phrases(list.clone())
        }
        OperatorSpec::PhrasesFile(f) => {
            let path = relative_to(&doc.file, f);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    files.push(path.clone());
                    let list: Vec<String> = text
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_string)
                        .collect();
                    if list.is_empty() {
                        err(
                            "operator.phrases_file",
                            format!("{} has no phrases", path.display()),
                        );
                        return None;
                    }
                    Operator::Phrases(list)
                }
                Err(e) => {
                    err(
                        "operator.phrases_file",
                        format!("cannot read {}: {e}", path.display()),
                    );
                    return None;
                }
            }
        }
        OperatorSpec::Sqli(true) => Operator::Sqli,
        OperatorSpec::Xss(true) => Operator::Xss,
        OperatorSpec::InvalidUrlEncoding(true) => Operator::InvalidUrlEncoding,
        OperatorSpec::Sqli(false)
        | OperatorSpec::Xss(false)
        | OperatorSpec::InvalidUrlEncoding(false) => {
            err("operator", "this operator only takes `true`".into());
            return None;
        }
        OperatorSpec::Equals(s) => Operator::Equals(s.clone()),
        OperatorSpec::Contains(s) => Operator::Contains(s.clone()),
        OperatorSpec::LengthGt(n) => Operator::LengthGt(*n),
        OperatorSpec::Cidr(list) => match IpSet::parse(list.iter().map(String::as_str)) {
            Ok(s) => Operator::Cidr(s),
            Err(errors) => {
                for (i, m) in errors {
                    err(&format!("operator.cidr[{i}]"), m);
                }
                return None;
            }
        },
    })
}

fn relative_to(file: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        file.parent().unwrap_or(Path::new(".")).join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_word_values_are_never_sqli() {
        // What `one_word` skips, asked of libinjection itself: every word of its keyword table
        // (so every token type a word can take), alone and after each kind of number, and a
        // spread of ids and tokens.
        let libinjection = |v: &str| {
            libinjectionrs::SqliState::new(v.as_bytes(), libinjectionrs::SqliFlags::FLAG_NONE)
                .detect()
        };
        let mut asked = 0;
        for k in libinjectionrs::sqli::sqli_data::SQL_KEYWORDS {
            if !one_word(k.word.as_bytes()) {
                continue;
            }
            for number in ["", "1", "12", "0", "0x1f", "0b1", "1e5", "1d", "9f"] {
                for w in [k.word.to_string(), k.word.to_ascii_lowercase()] {
                    let v = format!("{number}{w}");
                    assert!(one_word(v.as_bytes()));
                    assert!(!libinjection(&v), "libinjection flags {v:?}");
                    asked += 1;
                }
            }
        }
        assert!(asked > 20_000, "the keyword table has shrunk: {asked}");
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let chars = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = 1 + (x % 24) as usize;
            let v: String = (0..len)
                .map(|i| chars[((x >> (i % 8 * 8)) as usize + i * 7) % chars.len()] as char)
                .collect();
            assert!(!libinjection(&v), "libinjection flags {v:?}");
        }
        // And the skip does not reach past such values.
        assert!(!one_word(b"1 union select 1"));
        assert!(!one_word(b"1'"));
        assert!(libinjection("1 union select 1--"));
        assert!(Operator::Sqli.eval("1 union select 1--"));
    }

    #[test]
    fn unbatched_operators() {
        assert!(Operator::Sqli.eval("1' or '1'='1"));
        assert!(!Operator::Sqli.eval("O'Brien"));
        assert!(Operator::Xss.eval("<script>alert(1)</script>"));
        assert!(!Operator::Xss.eval("a <b>bold</b> claim"));
        assert!(Operator::Equals("x".into()).eval("x"));
        assert!(Operator::Contains("ab".into()).eval("cabd"));
        let set = IpSet::parse(["169.254.0.0/16"]).unwrap();
        assert!(Operator::Cidr(set.clone()).eval("169.254.169.254"));
        assert!(!Operator::Cidr(set).eval("not an ip"));
        assert!(Operator::LengthGt(3).eval("abcd"));
        assert!(Operator::InvalidUrlEncoding.eval("100%"));
        assert!(Operator::InvalidUrlEncoding.eval("%zz"));
        assert!(!Operator::InvalidUrlEncoding.eval("%41%42"));
    }

    #[test]
    fn sqli_prose_shapes() {
        // libinjection alone calls these injections: prose that quotes an operator or a word,
        // percentages read as a numeric tautology, an e-mail-like name read as a user variable.
        for v in [
            "the \"%\" operator is also used for string formatting",
            "type '+' between the two numbers",
            "christmas stocking \"not\" stuffer",
            "80% acrylic and 20% wool",
            "35% COTTON AND 65% POLYESTER.",
            "10% off and 20% more",
            "john or@var.es",
        ] {
            let mut st =
                libinjectionrs::SqliState::new(v.as_bytes(), libinjectionrs::SqliFlags::FLAG_NONE);
            assert!(st.detect(), "libinjection no longer flags {v:?}");
            assert!(!Operator::Sqli.eval(v), "{v:?}");
        }
        // The probes of the same shapes, and tautologies, still match.
        for v in [
            "'='",
            "'-'",
            "a' or 'b",
            "x' <= 'y",
            "4' mod 2 like '0",
            "small \"&\" sign",
            "1' or '1'='1",
            "the quick brown fox' or 1=1--",
            "1 and 1 not between 0 and 1",
            "1 AND 1 SOUNDS LIKE 1",
            "-1 or 1=2",
            "6444930 and 6=6",
            "john or @@version",
        ] {
            assert!(Operator::Sqli.eval(v), "{v:?}");
        }
    }
}
