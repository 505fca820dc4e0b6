//! TLS termination with rustls through Pingora: SNI certificate selection ([`resolver`]),
//! certificate loading and validation ([`certs`]), optional client certificates (mTLS), and the
//! per-listener objects that live as long as the listener and take new certificates and CA
//! bundles on every successful reload.

pub mod certs;
pub mod resolver;

use std::any::Any;
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use crate::metrics::Metrics;
use certs::CertPair;
use resolver::{CertTable, SniResolver};

/// Client-certificate settings of a listener.
#[derive(Debug, Clone)]
pub struct ClientAuthSpec {
    /// Refuse handshakes without a valid certificate (else: verify one if offered).
    pub required: bool,
    /// CA bundle client certificates must chain to.
    pub roots: Arc<RootCertStore>,
    /// Header carrying the verified subject to the backend.
    pub subject_header: http::HeaderName,
}

/// Compiled TLS settings of a listener.
#[derive(Debug, Clone)]
pub struct TlsSpec {
    /// Certificates; the first is the default.
    pub certs: Vec<CertPair>,
    /// Offer HTTP/2 (ALPN `h2`) besides HTTP/1.1.
    pub http2: bool,
    /// mTLS, if configured.
    pub client_auth: Option<ClientAuthSpec>,
}

/// The verified client certificate of a connection.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// Subject, RFC 4514 style (`CN=svc-a, O=Example`).
    pub subject: String,
}

/// A client-certificate verifier whose CA bundle can be replaced; counts rejected certificates.
#[derive(Debug)]
pub struct ClientVerifier {
    inner: ArcSwap<Arc<dyn ClientCertVerifier>>,
    listener: String,
    metrics: Arc<Metrics>,
}

fn build_verifier(spec: &ClientAuthSpec) -> Result<Arc<dyn ClientCertVerifier>, String> {
    pingora::tls::install_default_crypto_provider();
    let b = rustls::server::WebPkiClientVerifier::builder(spec.roots.clone());
    let b = if spec.required {
        b
    } else {
        b.allow_unauthenticated()
    };
    b.build().map_err(|e| format!("client CA bundle: {e}"))
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.load().offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.load().client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The hints are advisory; sending none lets clients pick any certificate they have.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let r = self
            .inner
            .load()
            .verify_client_cert(end_entity, intermediates, now);
        if r.is_err() {
            self.metrics
                .tls_failures
                .with_label_values(&[&self.listener, "client_cert_invalid"])
                .inc();
        }
        r
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.load().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.load().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.load().supported_verify_schemes()
    }
}

/// The TLS objects of one listener, alive as long as the listener.
pub struct ListenerTls {
    /// Listener name (metric label).
    pub name: String,
    resolver: Arc<SniResolver>,
    verifier: Option<Arc<ClientVerifier>>,
    metrics: Arc<Metrics>,
}

impl ListenerTls {
    /// Builds the objects for a listener's initial spec.
    pub fn new(
        name: &str,
        spec: &TlsSpec,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<ListenerTls>, String> {
        let verifier = match &spec.client_auth {
            Some(ca) => Some(Arc::new(ClientVerifier {
                inner: ArcSwap::from_pointee(build_verifier(ca)?),
                listener: name.to_string(),
                metrics: metrics.clone(),
            })),
            None => None,
        };
        let t = Arc::new(ListenerTls {
            name: name.to_string(),
            resolver: Arc::new(SniResolver::new(CertTable::new(&spec.certs))),
            verifier,
            metrics,
        });
        t.record_expiry(spec);
        Ok(t)
    }

    /// The Pingora settings for the listener.
    pub fn settings(self: &Arc<Self>, spec: &TlsSpec) -> Result<TlsSettings, String> {
        let mut s = TlsSettings::with_callbacks(Box::new(Callbacks { tls: self.clone() }))
            .map_err(|e| e.to_string())?;
        s.set_cert_resolver(Arc::new(CountingResolver { tls: self.clone() }));
        if spec.http2 {
            s.enable_h2();
        } else {
            s.set_alpn(pingora::protocols::ALPN::H1);
        }
        if let Some(v) = &self.verifier {
            s.set_client_cert_verifier(v.clone());
        }
        Ok(s)
    }

    /// Takes the certificates and CA bundle of a newly loaded config. A listener started
    /// without mTLS cannot gain it until a restart (logged by the caller).
    pub fn update(&self, spec: &TlsSpec) {
        self.resolver.replace(CertTable::new(&spec.certs));
        if let (Some(v), Some(ca)) = (&self.verifier, &spec.client_auth) {
            match build_verifier(ca) {
                Ok(inner) => v.inner.store(Arc::new(inner)),
                Err(e) => log::error!(
                    "listener {}: keeping the previous client CA bundle: {e}",
                    self.name
                ),
            }
        }
        self.metrics.tls_expiry.reset();
        self.record_expiry(spec);
    }

    fn record_expiry(&self, spec: &TlsSpec) {
        for c in &spec.certs {
            self.metrics
                .tls_expiry
                .with_label_values(&[&self.name, &c.label])
                .set(certs::unix_seconds(c.not_after));
        }
    }
}

/// Counts ClientHellos that reach certificate selection, and selections that find nothing.
#[derive(Debug)]
struct CountingResolver {
    tls: Arc<ListenerTls>,
}

impl std::fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerTls")
            .field("name", &self.name)
            .finish()
    }
}

impl rustls::server::ResolvesServerCert for CountingResolver {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let m = &self.tls.metrics;
        m.tls_client_hellos
            .with_label_values(&[&self.tls.name])
            .inc();
        let r = self.tls.resolver.resolve(hello);
        if r.is_none() {
            m.tls_failures
                .with_label_values(&[&self.tls.name, "no_certificate"])
                .inc();
        }
        r
    }
}

struct Callbacks {
    tls: Arc<ListenerTls>,
}

#[async_trait]
impl TlsAccept for Callbacks {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        let version = match tls.version() {
            Some(v) if v.contains("1.3") || v.contains("1_3") => "TLSv1.3",
            Some(v) if v.contains("1.2") || v.contains("1_2") => "TLSv1.2",
            _ => "other",
        };
        self.tls
            .metrics
            .tls_handshakes
            .with_label_values(&[&self.tls.name, version])
            .inc();
        let subject = tls.peer_certificate_der().and_then(certs::subject)?;
        Some(Arc::new(ClientIdentity { subject }))
    }
}
