//! Operators that are evaluated one rule at a time. Regexes and phrase lists are not here: the
//! matcher runs them for many rules at once (`RegexSet`, Aho-Corasick).

use crate::ipset::IpSet;

/// A compiled operator.
#[derive(Debug, Clone)]
pub enum Operator {
    /// Regular expression (run in a set).
    Regex(String),
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

impl Operator {
    /// Whether the matcher runs this operator in a shared automaton.
    pub fn is_batched(&self) -> bool {
        matches!(self, Operator::Regex(_) | Operator::Phrases(_))
    }

    /// Evaluates an unbatched operator on a (transformed) value.
    pub fn eval(&self, v: &str) -> bool {
        match self {
            Operator::Regex(_) | Operator::Phrases(_) => false,
            Operator::Sqli => {
                // `detect_sqli` would fingerprint the value once more after the verdict, for
                // a fingerprint we do not use; the verdict alone is `SqliState::detect`.
                !v.is_empty()
                    && libinjectionrs::SqliState::new(
                        v.as_bytes(),
                        libinjectionrs::SqliFlags::FLAG_NONE,
                    )
                    .detect()
            }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
