//! `portcullis keys new|hash`.

use std::io::Read;
use std::process::ExitCode;

use portcullis::auth::{keyfile, secret};

/// Prints a new key and the entry to paste into keys.yaml.
pub fn new(
    id: &str,
    routes: &[String],
    paths: &[String],
    methods: &[String],
    tier: Option<&str>,
    expires_at: Option<&str>,
) -> ExitCode {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        eprintln!("--id {id:?}: use letters, digits, '-', '_' and '.'");
        return ExitCode::FAILURE;
    }
    if let Some(t) = expires_at {
        if time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_err() {
            eprintln!("--expires-at {t:?} is not an RFC 3339 time such as 2027-01-31T00:00:00Z");
            return ExitCode::FAILURE;
        }
    }
    let key = secret::generate();
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let list = |v: &[String]| v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ");
    println!("New API key for {id:?} (shown once; it is not stored anywhere):\n\n  {key}\n");
    println!("Add this entry to your keys file (the digest only, never the key):\n");
    println!("  - id: {id}");
    println!("    digest: {}", keyfile::digest_text(&key));
    if !(routes.is_empty() && paths.is_empty() && methods.is_empty()) {
        let mut parts = Vec::new();
        if !routes.is_empty() {
            parts.push(format!("routes: [{}]", list(routes)));
        }
        if !paths.is_empty() {
            parts.push(format!("path_prefixes: [{}]", list(paths)));
        }
        if !methods.is_empty() {
            let m: Vec<String> = methods.iter().map(|m| m.to_ascii_uppercase()).collect();
            parts.push(format!("methods: [{}]", list(&m)));
        }
        println!("    scopes: [{{ {} }}]", parts.join(", "));
    }
    if let Some(t) = tier {
        println!("    tier: {}", q(t));
    }
    if let Some(t) = expires_at {
        println!("    expires_at: {t}");
    }
    ExitCode::SUCCESS
}

/// Reads a key on stdin and prints its digest.
pub fn hash() -> ExitCode {
    let mut s = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut s) {
        eprintln!("reading standard input: {e}");
        return ExitCode::FAILURE;
    }
    if s.trim().is_empty() {
        eprintln!("no key on standard input");
        return ExitCode::FAILURE;
    }
    println!("{}", keyfile::digest_text(&s));
    ExitCode::SUCCESS
}
