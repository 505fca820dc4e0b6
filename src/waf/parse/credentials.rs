//! `Authorization: Basic` credentials (RFC 7617), decoded into the user name and password the
//! application reads, so the rules on inputs see them as they see a login form's fields.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

/// Base64 with or without padding, as clients send it.
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// The user name and password of a `Basic` authorization value; `None` for other schemes and
/// for credentials that are not base64. Bytes that are not UTF-8 are replaced, as servers that
/// read the credentials as UTF-8 would.
pub fn basic_credentials(value: &str) -> Option<(String, String)> {
    let value = value.trim_start();
    let (scheme, rest) = value.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let token = rest.trim();
    let bytes = STANDARD
        .decode(token)
        .or_else(|_| URL_SAFE.decode(token))
        .ok()?;
    let text = String::from_utf8_lossy(&bytes);
    // The user id cannot hold a colon (RFC 7617 §2); the password can.
    let (user, password) = text.split_once(':').unwrap_or((&text, ""));
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn decodes_user_and_password() {
        let got = |v: &str| basic_credentials(v);
        let pair = |u: &str, p: &str| Some((u.to_string(), p.to_string()));
        assert_eq!(
            got(&format!("Basic {}", b64("aladdin:open sesame"))),
            pair("aladdin", "open sesame")
        );
        assert_eq!(
            got(&format!("basic   {}  ", b64("admin' --:x"))),
            pair("admin' --", "x")
        );
        // The password keeps its colons; padding may be left off.
        assert_eq!(
            got(&format!("BASIC {}", b64("u:a:b").trim_end_matches('='))),
            pair("u", "a:b")
        );
        assert_eq!(
            got(&format!("Basic {}", b64("nocolon"))),
            pair("nocolon", "")
        );
        assert_eq!(got("Basic Pz8_"), pair("???", ""), "URL-safe alphabet");
        assert_eq!(
            got(&format!("Basic {}", b64("Jos\u{e9}:pw"))),
            pair("Jos\u{e9}", "pw")
        );
    }

    #[test]
    fn other_schemes_and_broken_values_give_nothing() {
        assert_eq!(basic_credentials("Bearer eyJhbGciOiJIUzI1NiJ9.e30.x"), None);
        assert_eq!(basic_credentials(&format!("Digest {}", b64("a:b"))), None);
        assert_eq!(basic_credentials("Basic"), None);
        assert_eq!(basic_credentials("Basic not base64!"), None);
        assert_eq!(basic_credentials("Basicx dXNlcjpwdw=="), None);
    }
}
