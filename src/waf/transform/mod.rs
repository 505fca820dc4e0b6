//! Transforms: normalisations applied to a value before an operator looks at it, so that one
//! pattern catches the encodings and obfuscations of an attack.
//!
//! Each transform returns the input unchanged (borrowed) when there is nothing to do, so a chain
//! over ordinary values costs a scan and no allocation.

use std::borrow::Cow;

use base64::Engine as _;

mod clean;
mod decode;

use clean::{
    cmdline, comments, compress_whitespace, filter_chars, lowercase, normalize_path,
    unicode_normalize,
};
pub use decode::{
    base64_decode, html_entity_decode, js_decode, percent_decode, percent_decode_once, url_decode,
    url_decode_once,
};

/// A transform, as named in rule files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transform {
    /// `%XX`, `%uXXXX` and `+` decoding; malformed escapes are kept as they are.
    UrlDecode,
    /// Like `url-decode` but `+` stays `+` (for values already form-decoded once).
    PercentDecode,
    /// `&lt;`, `&#60;`, `&#x3c;` (with or without `;`) and common named entities.
    HtmlEntityDecode,
    /// JavaScript/JSON character escapes: `\xHH`, `\uHHHH`, `\u{H…}`, `\\`, `\/`, `\'`, `\"`.
    /// Other backslash sequences (`\n`, Windows paths) are kept, so `C:\windows` survives.
    JsDecode,
    /// ASCII lower case.
    Lowercase,
    /// `\` → `/`, repeated `/` merged, `/./` removed, `x/../` resolved; leading `../` kept.
    NormalizePath,
    /// Runs of whitespace become one space.
    CompressWhitespace,
    /// All whitespace removed.
    RemoveWhitespace,
    /// NUL bytes removed.
    RemoveNulls,
    /// Control characters (tab, CR, LF, other C0 and DEL) removed; spaces kept.
    RemoveControls,
    /// `/* … */` and `<!-- … -->` comments removed.
    RemoveComments,
    /// `/* … */` and `<!-- … -->` comments replaced by one space.
    ReplaceComments,
    /// Decoded when the whole value is base64 that decodes to text; otherwise unchanged.
    Base64Decode,
    /// Unicode NFKC normalisation (full-width and compatibility forms to their plain letters).
    UnicodeNormalize,
    /// Shell obfuscation removed: `\`, `'`, `"`, `^` deleted, `,` and `;` as spaces, spaces
    /// before `/` and `(` removed, whitespace compressed, lower case.
    CmdLine,
    /// Leading and trailing whitespace removed.
    Trim,
}

/// Names accepted in rule files.
pub const NAMES: &[(&str, Transform)] = &[
    ("url-decode", Transform::UrlDecode),
    ("percent-decode", Transform::PercentDecode),
    ("html-entity-decode", Transform::HtmlEntityDecode),
    ("js-decode", Transform::JsDecode),
    ("lowercase", Transform::Lowercase),
    ("normalise-path", Transform::NormalizePath),
    ("normalize-path", Transform::NormalizePath),
    ("compress-whitespace", Transform::CompressWhitespace),
    ("remove-whitespace", Transform::RemoveWhitespace),
    ("remove-nulls", Transform::RemoveNulls),
    ("remove-controls", Transform::RemoveControls),
    ("remove-comments", Transform::RemoveComments),
    ("replace-comments", Transform::ReplaceComments),
    ("base64-decode", Transform::Base64Decode),
    ("unicode-normalise", Transform::UnicodeNormalize),
    ("unicode-normalize", Transform::UnicodeNormalize),
    ("cmdline", Transform::CmdLine),
    ("trim", Transform::Trim),
];

impl Transform {
    /// Number of variants (`Trim` is the last): transforms index tables by `t as usize`.
    pub const COUNT: usize = Transform::Trim as usize + 1;

    /// Looks a transform up by its rule-file name.
    pub fn parse(name: &str) -> Result<Transform, String> {
        NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                let hint = NAMES
                    .iter()
                    .map(|(n, _)| *n)
                    .min_by_key(|n| edit_distance(n, name))
                    .filter(|n| edit_distance(n, name) <= 3)
                    .map(|n| format!(" (did you mean \"{n}\"?)"))
                    .unwrap_or_default();
                format!("unknown transform {name:?}{hint}")
            })
    }

    /// Applies the transform; `None` when the value is unchanged (no allocation).
    pub fn transform(self, s: &str) -> Option<String> {
        match self {
            Transform::UrlDecode => url_decode(s),
            Transform::PercentDecode => percent_decode(s),
            Transform::HtmlEntityDecode => html_entity_decode(s),
            Transform::JsDecode => js_decode(s),
            Transform::Lowercase => lowercase(s),
            Transform::NormalizePath => normalize_path(s),
            Transform::CompressWhitespace => compress_whitespace(s),
            Transform::RemoveWhitespace => filter_chars(s, |c| !c.is_whitespace()),
            Transform::RemoveNulls => filter_chars(s, |c| c != '\0'),
            Transform::RemoveControls => filter_chars(s, |c| !c.is_ascii_control()),
            Transform::RemoveComments => comments(s, ""),
            Transform::ReplaceComments => comments(s, " "),
            Transform::Base64Decode => base64_decode(s),
            Transform::UnicodeNormalize => unicode_normalize(s),
            Transform::CmdLine => cmdline(s),
            Transform::Trim => {
                let t = s.trim();
                if t.len() == s.len() {
                    None
                } else {
                    Some(t.to_string())
                }
            }
        }
    }

    /// Applies the transform to a possibly borrowed value.
    pub fn apply<'a>(self, s: Cow<'a, str>) -> Cow<'a, str> {
        match self.transform(&s) {
            Some(v) => Cow::Owned(v),
            None => s,
        }
    }
}

/// Applies a chain of transforms in order.
pub fn apply_chain<'a>(chain: &[Transform], value: &'a str) -> Cow<'a, str> {
    let mut v = Cow::Borrowed(value);
    for t in chain {
        v = t.apply(v);
    }
    v
}

/// Levenshtein distance, for "did you mean" hints.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_covers_every_transform() {
        for (_, t) in NAMES {
            assert!((*t as usize) < Transform::COUNT, "{t:?}");
        }
    }

    fn t(tr: Transform, input: &str) -> String {
        tr.apply(Cow::Borrowed(input)).into_owned()
    }

    #[test]
    fn url_decoding() {
        assert_eq!(t(Transform::UrlDecode, "a%20b+c%27"), "a b c'");
        assert_eq!(t(Transform::UrlDecode, "%u003cscript%U003E"), "<script>");
        assert_eq!(t(Transform::UrlDecode, "100%"), "100%");
        assert_eq!(t(Transform::UrlDecode, "%zz%4"), "%zz%4");
        // Escapes left by a round are decoded again, three rounds at most, each one reading
        // `+` as a space (`percent-decode` never does).
        assert_eq!(t(Transform::UrlDecode, "%252e"), ".");
        assert_eq!(t(Transform::UrlDecode, "%25252e%2B+"), ".  ");
        assert_eq!(t(Transform::UrlDecode, "%2B"), " ");
        assert_eq!(t(Transform::PercentDecode, "%2B+"), "++");
        assert_eq!(t(Transform::UrlDecode, "%2525252e"), "%2e");
        assert_eq!(t(Transform::UrlDecode, "100%25"), "100%");
        assert_eq!(t(Transform::PercentDecode, "%253C+"), "<+");
        assert_eq!(url_decode_once("%252e+").as_deref(), Some("%2e "));
        assert_eq!(t(Transform::PercentDecode, "1+2%3D3"), "1+2=3");
        assert_eq!(
            t(Transform::UrlDecode, "..%c0%af..%c0%ae%c0%ae%e0%80%af"),
            "../..../"
        );
        assert!(matches!(
            Transform::UrlDecode.apply(Cow::Borrowed("plain")),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn html_entities() {
        assert_eq!(t(Transform::HtmlEntityDecode, "&lt;svg&gt;"), "<svg>");
        assert_eq!(
            t(Transform::HtmlEntityDecode, "&#60;&#x3C;&#0000060"),
            "<<<"
        );
        assert_eq!(
            t(Transform::HtmlEntityDecode, "java&Tab;script&colon;"),
            "java\tscript:"
        );
        assert_eq!(
            t(Transform::HtmlEntityDecode, "Tom & Jerry &unknown;"),
            "Tom & Jerry &unknown;"
        );
        // Browsers take any number of leading zeros.
        let padded = format!("javascript&#{}58;alert(1)", "0".repeat(100));
        assert_eq!(
            t(Transform::HtmlEntityDecode, &padded),
            "javascript:alert(1)"
        );
        let padded_hex = format!("&#x{}3c;", "0".repeat(70));
        assert_eq!(t(Transform::HtmlEntityDecode, &padded_hex), "<");
        // Too large for a char, however written: left as it was.
        assert_eq!(
            t(Transform::HtmlEntityDecode, "&#123456789012;x"),
            "&#123456789012;x"
        );
    }

    #[test]
    fn js_escapes() {
        assert_eq!(t(Transform::JsDecode, r"\u0024\u007b7*7\u007d"), "${7*7}");
        assert_eq!(t(Transform::JsDecode, r"\x3cscript\x3e"), "<script>");
        assert_eq!(t(Transform::JsDecode, r"\u{61}\'"), "a'");
        assert_eq!(t(Transform::JsDecode, r"C:\\dir"), r"C:\dir");
        assert_eq!(
            t(Transform::JsDecode, r"C:\windows\win.ini"),
            r"C:\windows\win.ini"
        );
        assert_eq!(t(Transform::JsDecode, r"w\ho\am\i"), r"w\ho\am\i");
        assert_eq!(t(Transform::JsDecode, r"C:\xampp\users"), r"C:\xampp\users");
        // A braced escape holds at most six digits; an unclosed one is kept as written.
        assert_eq!(t(Transform::JsDecode, r"\u{00003c}"), "<");
        // Eight-digit `\U` (YAML, TOML); four-digit `\U` as `\u`.
        assert_eq!(
            t(Transform::JsDecode, r"\U00000027\U00000020UNION"),
            "' UNION"
        );
        assert_eq!(t(Transform::JsDecode, r"\U0027x"), "'x");
        assert_eq!(t(Transform::JsDecode, r"\UNION"), r"\UNION");
        // Line continuations, with the indent YAML and TOML drop after them.
        assert_eq!(
            t(Transform::JsDecode, "' UNI\\\n  ON SEL\\\r\n\tECT"),
            "' UNION SELECT"
        );
        assert_eq!(t(Transform::JsDecode, r"\u{000003c}"), r"\u{000003c}");
        let unclosed = r"\u{".repeat(1000) + "}";
        assert_eq!(t(Transform::JsDecode, &unclosed), unclosed);
    }

    #[test]
    fn trim_removes_only_the_outer_whitespace() {
        assert_eq!(t(Transform::Trim, " \t\r\n1 or 1=1 \n"), "1 or 1=1");
        assert_eq!(t(Transform::Trim, "a  b"), "a  b");
        assert_eq!(t(Transform::Trim, " \u{a0}x\u{3000}"), "x");
        assert!(matches!(
            Transform::Trim.apply(Cow::Borrowed("as is")),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn paths() {
        assert_eq!(
            t(Transform::NormalizePath, r"..\..\windows\win.ini"),
            "../../windows/win.ini"
        );
        assert_eq!(t(Transform::NormalizePath, "/etc//./passwd"), "/etc/passwd");
        assert_eq!(
            t(Transform::NormalizePath, "/a/b/../../../etc/passwd"),
            "/../etc/passwd"
        );
        assert_eq!(
            t(Transform::NormalizePath, "/static/app.min.js"),
            "/static/app.min.js"
        );
    }

    #[test]
    fn whitespace_nulls_comments() {
        assert_eq!(t(Transform::CompressWhitespace, "a \t\n b"), "a b");
        assert_eq!(t(Transform::RemoveWhitespace, "s e l"), "sel");
        assert_eq!(t(Transform::RemoveNulls, "a\0b"), "ab");
        assert_eq!(t(Transform::RemoveComments, "SEL/**/ECT"), "SELECT");
        assert_eq!(
            t(Transform::ReplaceComments, "UNION/*x*/SELECT<!-- c -->1"),
            "UNION SELECT 1"
        );
        assert_eq!(t(Transform::RemoveComments, "a/* never closed"), "a");
        assert_eq!(
            t(
                Transform::RemoveComments,
                "a<!--x-->b/*y*/c<!--z-->d/*<!--*/e-->f"
            ),
            "abcde-->f"
        );
        assert_eq!(
            t(Transform::ReplaceComments, &"s/**/".repeat(1000)),
            "s ".repeat(1000)
        );
    }

    #[test]
    fn base64_only_when_it_decodes_to_text() {
        assert_eq!(t(Transform::Base64Decode, "PHNjcmlwdD4="), "<script>");
        assert_eq!(t(Transform::Base64Decode, "JHs3Kjd9"), "${7*7}");
        assert_eq!(t(Transform::Base64Decode, "/e3s3Kjd9fQ"), "{{7*7}}");
        assert_eq!(
            t(Transform::Base64Decode, "YWJj"),
            "YWJj",
            "too short to matter"
        );
        assert_eq!(t(Transform::Base64Decode, "/images"), "/images");
        assert_eq!(
            t(Transform::Base64Decode, "PHN2Zy9vbmxvYWQ9YWxlcnQoMSk MA=="),
            "<svg/onload=alert(1)>0"
        );
        // Words that happen to be valid base64 decode to binary and are kept.
        assert_eq!(t(Transform::Base64Decode, "password"), "password");
        assert_eq!(t(Transform::Base64Decode, "hello world"), "hello world");
    }

    #[test]
    fn unicode_and_cmdline() {
        assert_eq!(t(Transform::UnicodeNormalize, "ｓｅｌｅｃｔ"), "select");
        assert_eq!(
            t(Transform::UnicodeNormalize, "sel\u{200b}ect\u{feff}"),
            "select"
        );
        assert_eq!(
            t(Transform::UnicodeNormalize, "．．∕etc∕passwd"),
            "../etc/passwd"
        );
        assert_eq!(
            t(Transform::RemoveControls, "java\tscri\npt: x"),
            "javascript: x"
        );
        assert_eq!(
            t(Transform::CmdLine, "c'a't /e\"t\"c/pas\\swd"),
            "cat/etc/passwd"
        );
        assert_eq!(t(Transform::CmdLine, "W^h^O^a^M^i"), "whoami");
        assert_eq!(t(Transform::CmdLine, "ls;id"), "ls id");
    }

    #[test]
    fn names_and_hints() {
        assert_eq!(
            Transform::parse("url-decode").unwrap(),
            Transform::UrlDecode
        );
        let e = Transform::parse("urldecod").unwrap_err();
        assert_eq!(
            e,
            "unknown transform \"urldecod\" (did you mean \"url-decode\"?)"
        );
        assert_eq!(
            apply_chain(&[Transform::UrlDecode, Transform::Lowercase], "%3CSVG"),
            "<svg"
        );
    }
}
