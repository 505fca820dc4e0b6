//! Generating keys: 256 random bits in base62 behind a recognisable prefix (`pc_live_`) and a
//! CRC32 checksum, so secret scanners can find leaked keys and check them without a lookup.

use rand::Rng;

/// Prefix of every generated key.
pub const PREFIX: &str = "pc_live_";
const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BODY_LEN: usize = 43; // 43 base62 digits carry 256 bits
const CHECK_LEN: usize = 6;

fn base62(mut n: u64, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out).unwrap_or_default()
}

/// A fresh key.
pub fn generate() -> String {
    let mut rng = rand::rng();
    let body: String = (0..BODY_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    let check = crc32fast::hash(body.as_bytes());
    format!("{PREFIX}{body}{}", base62(u64::from(check), CHECK_LEN))
}

/// Whether `s` is a well-formed generated key (prefix, length, alphabet and checksum).
pub fn is_well_formed(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(PREFIX) else {
        return false;
    };
    if rest.len() != BODY_LEN + CHECK_LEN || !rest.bytes().all(|b| ALPHABET.contains(&b)) {
        return false;
    }
    let (body, check) = rest.split_at(BODY_LEN);
    base62(u64::from(crc32fast::hash(body.as_bytes())), CHECK_LEN) == check
}

/// Whether `text` contains something that looks like a key in clear (ours, or a long random
/// token where a digest belongs).
pub fn looks_like_clear_key(text: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| w.starts_with(PREFIX) && w.len() >= PREFIX.len() + 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_unique_and_checkable() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX));
        assert_eq!(a.len(), PREFIX.len() + BODY_LEN + CHECK_LEN);
        assert!(is_well_formed(&a));
        let mut broken = a.clone();
        broken.replace_range(10..11, if &a[10..11] == "A" { "B" } else { "A" });
        assert!(!is_well_formed(&broken));
        assert!(looks_like_clear_key(&format!("key: {a}")));
        assert!(!looks_like_clear_key("digest: sha256:abcdef"));
    }
}
