//! Certificate pairs: loading, validation (readable, key matches, currently valid) and the names
//! each certificate serves (from its subject alternative names, else its common name).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// A loaded, validated certificate and key.
#[derive(Debug, Clone)]
pub struct CertPair {
    /// Certificate chain file.
    pub cert_path: PathBuf,
    /// Private key file.
    pub key_path: PathBuf,
    /// DNS names (lower case; `*.example.com` kept as is) the certificate is valid for.
    pub names: Vec<String>,
    /// End of validity.
    pub not_after: SystemTime,
    /// What rustls serves.
    pub certified: Arc<CertifiedKey>,
    /// A name for logs and metrics: the first DNS name, or the file name.
    pub label: String,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    pingora::tls::install_default_crypto_provider();
    rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// Reads every certificate in a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_certs(&data, path)
}

fn parse_certs(data: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &data[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_key(&data, path)
}

fn parse_key(data: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    rustls_pemfile::private_key(&mut &data[..])
        .map_err(|e| format!("{}: not a PEM key file: {e}", path.display()))?
        .ok_or_else(|| format!("{}: no private key found", path.display()))
}

/// Loads and validates a pair at `now`: both files readable, the key matching the certificate,
/// and the certificate valid (not expired, not yet to come).
pub fn load_pair(cert_path: &Path, key_path: &Path, now: SystemTime) -> Result<CertPair, String> {
    let chain = read_certs(cert_path)?;
    let key = read_key(key_path)?;
    build_pair(chain, key, cert_path, key_path, now)
}

/// A fresh self-signed pair for `names`, made in memory (development and demos only).
pub fn self_signed_pair(names: &[String]) -> Result<CertPair, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let params = rcgen::CertificateParams::new(names.to_vec()).map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let virtual_path = PathBuf::from(format!("<self-signed {}>", names.join(",")));
    let chain = parse_certs(cert.pem().as_bytes(), &virtual_path)?;
    let key = parse_key(key.serialize_pem().as_bytes(), &virtual_path)?;
    build_pair(chain, key, &virtual_path, &virtual_path, SystemTime::now())
}

fn build_pair(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_path: &Path,
    key_path: &Path,
    now: SystemTime,
) -> Result<CertPair, String> {
    let certified = CertifiedKey::from_der(chain.clone(), key, &provider())
        .map_err(|e| format!("{} and {}: {e}", cert_path.display(), key_path.display()))?;
    certified.keys_match().map_err(|_| {
        format!(
            "{} does not belong to the certificate in {}",
            key_path.display(),
            cert_path.display()
        )
    })?;
    let (names, not_before, not_after) =
        describe(&chain[0]).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    if now >= not_after {
        return Err(format!(
            "{}: the certificate expired at {}",
            cert_path.display(),
            rfc3339(not_after)
        ));
    }
    if now < not_before {
        return Err(format!(
            "{}: the certificate is not valid before {}",
            cert_path.display(),
            rfc3339(not_before)
        ));
    }
    let label = names.first().cloned().unwrap_or_else(|| {
        cert_path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    Ok(CertPair {
        cert_path: cert_path.to_path_buf(),
        key_path: key_path.to_path_buf(),
        names,
        not_after,
        certified: Arc::new(certified),
        label,
    })
}

/// DNS names, not-before and not-after of a DER certificate.
pub fn describe(der: &CertificateDer<'_>) -> Result<(Vec<String>, SystemTime, SystemTime), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("cannot parse the certificate: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        if let Some(cn) = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
        {
            names.push(cn.to_ascii_lowercase());
        }
    }
    let t = |ts: i64| {
        if ts >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(ts as u64)
        } else {
            SystemTime::UNIX_EPOCH
        }
    };
    let v = cert.validity();
    Ok((
        names,
        t(v.not_before.timestamp()),
        t(v.not_after.timestamp()),
    ))
}

/// The subject of a DER certificate, as an RFC 4514-style string.
pub fn subject(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.subject().to_string())
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Seconds since the epoch.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Writes a self-signed certificate and key for `names` (development and tests only).
pub fn write_self_signed(names: &[String], cert_out: &Path, key_out: &Path) -> Result<(), String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let params = rcgen::CertificateParams::new(names.to_vec()).map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    std::fs::write(cert_out, cert.pem()).map_err(|e| format!("{}: {e}", cert_out.display()))?;
    write_private(key_out, &key.serialize_pem())
}

#[cfg(unix)]
fn write_private(path: &Path, pem: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(pem.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}
