//! Per-request state carried through the Pingora phases.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use crate::config::RuntimeConfig;
use crate::problem::Refusal;
use crate::route::Route;

/// Everything the phases learn about one request.
pub struct RequestCtx {
    /// The config this request is served with, pinned at its start.
    pub config: Arc<RuntimeConfig>,
    /// When the request started.
    pub started: Instant,
    /// `X-Request-Id`: kept from a trusted proxy or generated.
    pub request_id: String,
    /// The TCP peer.
    pub peer_ip: Option<IpAddr>,
    /// Whether the peer is a trusted proxy.
    pub peer_trusted: bool,
    /// The client: the peer, or from `X-Forwarded-For` when the peer is trusted.
    pub client_ip: Option<IpAddr>,
    /// Whether the client connected over TLS.
    pub tls: bool,
    /// The listener that accepted the connection.
    pub listener: Option<String>,
    /// Subject of the verified client certificate (mTLS).
    pub client_subject: Option<String>,
    /// Normalised host (lower case, no port).
    pub host: String,
    /// The path as the client sent it (before normalisation), for inspection.
    pub raw_path: String,
    /// The query string as the client sent it.
    pub raw_query: Option<String>,
    /// The normalised path without `;` segment parameters: what routes, API-key scopes and
    /// rate-limit scopes are matched on ([`crate::route::match_path`]).
    pub match_path: String,
    /// What the WAF concluded, when it ran.
    pub waf: Option<crate::stage::waf::WafOutcome>,
    /// The rate-limit policies that applied and their outcomes.
    pub rate_limit: Vec<crate::ratelimit::PolicyState>,
    /// A Redis failure during rate limiting, and what was done about it (`allowed`, `denied`).
    pub redis_error: Option<&'static str>,
    /// Time spent in the Redis rate-limit call.
    pub redis_latency: Option<std::time::Duration>,
    /// The API key id, once the key stage accepted a key.
    pub key_id: Option<std::sync::Arc<str>>,
    /// The API key's rate-limit tier.
    pub key_tier: Option<std::sync::Arc<str>>,
    /// Where the accepted API key was found (stripped before proxying).
    pub key_source: Option<crate::auth::KeySource>,
    /// The methods the accepted key was checked for (the method sent and the overrides the
    /// request names), when its scopes name methods.
    pub key_methods: Option<Vec<http::Method>>,
    /// The methods the held body names as overrides, once a stage has read them.
    pub body_methods: Option<Vec<http::Method>>,
    /// The selected route.
    pub route: Option<Arc<Route>>,
    /// The answer the gateway gave instead of proxying, if any.
    pub refusal: Option<Refusal>,
    /// The backend the request went to (the last one tried).
    pub backend: Option<SocketAddr>,
    /// The last failure talking to a backend.
    pub upstream_error: Option<&'static str>,
    /// Failed connection attempts (each may be retried on another backend).
    pub connect_failures: usize,
    /// Request body bytes passed on so far (checked against `limits.max_body_size`).
    pub body_bytes: u64,
    /// The request body, read whole by the WAF; `request_body_filter` sends it to the backend
    /// in place of the tail Pingora replays.
    pub held_body: Option<bytes::Bytes>,
}

impl RequestCtx {
    /// A context for a request served with `config`.
    pub fn new(config: Arc<RuntimeConfig>) -> RequestCtx {
        RequestCtx {
            config,
            started: Instant::now(),
            request_id: String::new(),
            peer_ip: None,
            peer_trusted: false,
            client_ip: None,
            tls: false,
            listener: None,
            client_subject: None,
            host: String::new(),
            raw_path: String::new(),
            raw_query: None,
            match_path: String::new(),
            waf: None,
            rate_limit: Vec::new(),
            redis_error: None,
            redis_latency: None,
            key_id: None,
            key_tier: None,
            key_source: None,
            key_methods: None,
            body_methods: None,
            route: None,
            refusal: None,
            backend: None,
            upstream_error: None,
            connect_failures: 0,
            body_bytes: 0,
            held_body: None,
        }
    }

    /// The compiled listener spec of the accepting listener.
    pub fn listener_spec(&self) -> Option<&crate::config::ListenerSpec> {
        let name = self.listener.as_deref()?;
        self.config.listeners.iter().find(|l| l.name == name)
    }

    /// The route name as a metric label (`none` before or without a route).
    pub fn route_label(&self) -> &str {
        self.route.as_ref().map(|r| &*r.name).unwrap_or("none")
    }
}
