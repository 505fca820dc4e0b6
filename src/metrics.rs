//! Every Prometheus family the gateway exports, in one place.
//!
//! Names carry the `portcullis_` prefix and base units; counters end in `_total`. Labels are
//! bounded by the config (route, upstream, policy and rule names) or by fixed sets (method,
//! status class, reason) — never a client address, key or free text from a request.

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// The metric families; one instance per gateway process, shared across config reloads.
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by route, method and status class.
    pub requests: IntCounterVec,
    /// Time from request start to the last byte logged, by route.
    pub request_duration: HistogramVec,
    /// Requests the gateway answered itself instead of proxying, by route and reason.
    pub refusals: IntCounterVec,
    /// Failures talking to a backend, by upstream and kind.
    pub upstream_errors: IntCounterVec,
    /// 1 when a backend is in rotation, 0 when health checks took it out.
    pub backend_up: IntGaugeVec,
    /// Config reload attempts, by result.
    pub config_reloads: IntCounterVec,
    /// Unix time of the last successful (re)load.
    pub config_last_success: Gauge,
    /// Access-log lines that could not be written.
    pub access_log_dropped: IntCounterVec,
    /// Constant 1 labelled with the version.
    pub build_info: IntGaugeVec,
    /// Requests currently being handled.
    pub in_flight: IntGauge,
    /// Requests the WAF blocked, by route and category of the deciding rule.
    pub waf_blocks: IntCounterVec,
    /// Requests the WAF would have blocked in detect mode, by route and category.
    pub waf_detections: IntCounterVec,
    /// Rule matches, by rule id.
    pub waf_rule_matches: IntCounterVec,
    /// Bodies over the inspection limit, by route and action (rejected or passed).
    pub waf_body_limit: IntCounterVec,
    /// Requests refused by a rate-limit policy, by policy.
    pub ratelimit_limited: IntCounterVec,
    /// Requests a shadow policy would have refused, by policy.
    pub ratelimit_shadow: IntCounterVec,
    /// Keys tracked in process, by policy.
    pub ratelimit_keys: IntGaugeVec,
    /// Keys evicted to stay under `max_keys`, by policy.
    pub ratelimit_evictions: IntCounterVec,
    /// Redis failures during rate limiting, by the action taken (allowed or denied).
    pub ratelimit_redis_errors: IntCounterVec,
    /// Duration of the Redis rate-limit call.
    pub ratelimit_redis_duration: HistogramVec,
    /// API-key failures, by reason (missing, unknown, expired, disabled, scope).
    pub auth_failures: IntCounterVec,
    /// TLS ClientHellos that reached certificate selection, by listener.
    pub tls_client_hellos: IntCounterVec,
    /// Completed TLS handshakes, by listener and version.
    pub tls_handshakes: IntCounterVec,
    /// TLS handshake failures the gateway can attribute, by listener and reason.
    pub tls_failures: IntCounterVec,
    /// Expiry of each served certificate, by listener and certificate name.
    pub tls_expiry: GaugeVec,
}

/// Histogram buckets in seconds, from 0.5 ms to 30 s.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Metrics {
    /// Creates and registers every family.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "portcullis_http_requests_total",
                "HTTP requests answered, by route, method and status class.",
            ),
            &["route", "method", "status_class"],
        )
        .unwrap_or_else(unreachable_metric);
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "portcullis_http_request_duration_seconds",
                "Time from receiving a request to finishing its response, by route.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["route"],
        )
        .unwrap_or_else(unreachable_metric);
        let refusals = IntCounterVec::new(
            Opts::new(
                "portcullis_http_refusals_total",
                "Requests answered by the gateway itself (not proxied), by route and reason.",
            ),
            &["route", "reason"],
        )
        .unwrap_or_else(unreachable_metric);
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "portcullis_upstream_errors_total",
                "Failures reaching or reading from a backend, by upstream and kind.",
            ),
            &["upstream", "kind"],
        )
        .unwrap_or_else(unreachable_metric);
        let backend_up = IntGaugeVec::new(
            Opts::new(
                "portcullis_upstream_backend_up",
                "1 when the backend is in rotation, 0 when health checks took it out.",
            ),
            &["upstream", "backend"],
        )
        .unwrap_or_else(unreachable_metric);
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "portcullis_config_reloads_total",
                "Configuration reload attempts, by result (success or failure).",
            ),
            &["result"],
        )
        .unwrap_or_else(unreachable_metric);
        let config_last_success = Gauge::new(
            "portcullis_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load.",
        )
        .unwrap_or_else(unreachable_metric);
        let access_log_dropped = IntCounterVec::new(
            Opts::new(
                "portcullis_access_log_errors_total",
                "Access-log lines not written, by reason (queue_full or write_error).",
            ),
            &["reason"],
        )
        .unwrap_or_else(unreachable_metric);
        let build_info = IntGaugeVec::new(
            Opts::new(
                "portcullis_build_info",
                "Always 1; the labels describe the running build.",
            ),
            &["version"],
        )
        .unwrap_or_else(unreachable_metric);
        let in_flight = IntGauge::new(
            "portcullis_http_requests_in_flight",
            "Requests currently being handled.",
        )
        .unwrap_or_else(unreachable_metric);

        let waf_blocks = IntCounterVec::new(
            Opts::new(
                "portcullis_waf_blocks_total",
                "Requests blocked by the WAF, by route and category of the highest-scoring rule.",
            ),
            &["route", "category"],
        )
        .unwrap_or_else(unreachable_metric);
        let waf_detections = IntCounterVec::new(
            Opts::new(
                "portcullis_waf_detections_total",
                "Requests the WAF would have blocked on a route in detect mode, by route and category.",
            ),
            &["route", "category"],
        )
        .unwrap_or_else(unreachable_metric);
        let waf_rule_matches = IntCounterVec::new(
            Opts::new(
                "portcullis_waf_rule_matches_total",
                "WAF rule matches (once per request and rule), by rule id.",
            ),
            &["rule"],
        )
        .unwrap_or_else(unreachable_metric);
        let waf_body_limit = IntCounterVec::new(
            Opts::new(
                "portcullis_waf_body_limit_total",
                "Request bodies past an inspection limit, by route, action (rejected or passed) and limit (body_limit, max_json_depth, max_multipart_parts, max_body_args, content_encoding, unknown_length).",
            ),
            &["route", "action", "limit"],
        )
        .unwrap_or_else(unreachable_metric);
        let ratelimit_limited = IntCounterVec::new(
            Opts::new(
                "portcullis_ratelimit_limited_total",
                "Requests refused with 429 by a rate-limit policy, by policy.",
            ),
            &["policy"],
        )
        .unwrap_or_else(unreachable_metric);
        let ratelimit_shadow = IntCounterVec::new(
            Opts::new(
                "portcullis_ratelimit_shadow_limited_total",
                "Requests a shadow-mode policy would have refused (they were admitted), by policy.",
            ),
            &["policy"],
        )
        .unwrap_or_else(unreachable_metric);
        let ratelimit_keys = IntGaugeVec::new(
            Opts::new(
                "portcullis_ratelimit_keys",
                "Keys tracked by the in-process limiter, by policy.",
            ),
            &["policy"],
        )
        .unwrap_or_else(unreachable_metric);
        let ratelimit_evictions = IntCounterVec::new(
            Opts::new(
                "portcullis_ratelimit_evictions_total",
                "Keys evicted from a full in-process key table, by policy.",
            ),
            &["policy"],
        )
        .unwrap_or_else(unreachable_metric);
        let ratelimit_redis_errors = IntCounterVec::new(
            Opts::new(
                "portcullis_ratelimit_redis_errors_total",
                "Redis failures while rate limiting, by the action taken (allowed or denied).",
            ),
            &["action"],
        )
        .unwrap_or_else(unreachable_metric);
        let ratelimit_redis_duration = HistogramVec::new(
            HistogramOpts::new(
                "portcullis_ratelimit_redis_duration_seconds",
                "Duration of the Redis rate-limit call, failures included.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
            ]),
            &[],
        )
        .unwrap_or_else(unreachable_metric);
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "portcullis_auth_failures_total",
                "Requests refused by the API-key check, by reason (missing, unknown, expired, disabled, scope).",
            ),
            &["reason"],
        )
        .unwrap_or_else(unreachable_metric);
        let tls_client_hellos = IntCounterVec::new(
            Opts::new(
                "portcullis_tls_client_hellos_total",
                "TLS ClientHellos that reached certificate selection, by listener (minus completed handshakes: failures after the hello).",
            ),
            &["listener"],
        )
        .unwrap_or_else(unreachable_metric);
        let tls_handshakes = IntCounterVec::new(
            Opts::new(
                "portcullis_tls_handshakes_total",
                "Completed TLS handshakes, by listener and protocol version.",
            ),
            &["listener", "version"],
        )
        .unwrap_or_else(unreachable_metric);
        let tls_failures = IntCounterVec::new(
            Opts::new(
                "portcullis_tls_handshake_failures_total",
                "TLS handshake failures, by listener and reason (client_cert_invalid, no_certificate).",
            ),
            &["listener", "reason"],
        )
        .unwrap_or_else(unreachable_metric);
        let tls_expiry = GaugeVec::new(
            Opts::new(
                "portcullis_tls_certificate_expiry_timestamp_seconds",
                "Unix time at which each served certificate expires, by listener and certificate name.",
            ),
            &["listener", "certificate"],
        )
        .unwrap_or_else(unreachable_metric);
        let m = Metrics {
            registry,
            requests,
            request_duration,
            refusals,
            upstream_errors,
            backend_up,
            config_reloads,
            config_last_success,
            access_log_dropped,
            build_info,
            in_flight,
            waf_blocks,
            waf_detections,
            waf_rule_matches,
            waf_body_limit,
            ratelimit_limited,
            ratelimit_shadow,
            ratelimit_keys,
            ratelimit_evictions,
            ratelimit_redis_errors,
            ratelimit_redis_duration,
            auth_failures,
            tls_client_hellos,
            tls_handshakes,
            tls_failures,
            tls_expiry,
        };
        m.register_all();
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for result in ["success", "failure"] {
            m.config_reloads.with_label_values(&[result]);
        }
        m
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.requests.clone()),
            Box::new(self.request_duration.clone()),
            Box::new(self.refusals.clone()),
            Box::new(self.upstream_errors.clone()),
            Box::new(self.backend_up.clone()),
            Box::new(self.config_reloads.clone()),
            Box::new(self.config_last_success.clone()),
            Box::new(self.access_log_dropped.clone()),
            Box::new(self.build_info.clone()),
            Box::new(self.in_flight.clone()),
            Box::new(self.waf_blocks.clone()),
            Box::new(self.waf_detections.clone()),
            Box::new(self.waf_rule_matches.clone()),
            Box::new(self.waf_body_limit.clone()),
            Box::new(self.ratelimit_limited.clone()),
            Box::new(self.ratelimit_shadow.clone()),
            Box::new(self.ratelimit_keys.clone()),
            Box::new(self.ratelimit_evictions.clone()),
            Box::new(self.ratelimit_redis_errors.clone()),
            Box::new(self.ratelimit_redis_duration.clone()),
            Box::new(self.auth_failures.clone()),
            Box::new(self.tls_client_hellos.clone()),
            Box::new(self.tls_handshakes.clone()),
            Box::new(self.tls_failures.clone()),
            Box::new(self.tls_expiry.clone()),
        ];
        for c in collectors {
            // Names are fixed above and distinct; a clash would be a programming error caught
            // by the unit test below.
            let _ = self.registry.register(c);
        }
    }

    /// Registers an extra collector (used by the stages that own their own families).
    pub fn register(&self, c: Box<dyn prometheus::core::Collector>) {
        let _ = self.registry.register(c);
    }

    /// The text exposition format (version 0.0.4) of every family.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(16 * 1024);
        let families = self.registry.gather();
        if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
            log::error!("metrics encoding failed: {e}");
        }
        buf
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn unreachable_metric<T>(e: prometheus::Error) -> T {
    // Only reachable if a name or label set above is malformed, which the tests rule out.
    panic!("invalid metric definition: {e}")
}

/// `2xx`, `4xx`, ... for a status code; `none` when no response was written.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}

/// The method as a bounded label: the standard methods, or `OTHER`.
pub fn method_label(method: &http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_registered_and_encodes() {
        let m = Metrics::new();
        m.requests.with_label_values(&["r", "GET", "2xx"]).inc();
        m.request_duration.with_label_values(&["r"]).observe(0.01);
        m.refusals.with_label_values(&["r", "no_route"]).inc();
        m.upstream_errors
            .with_label_values(&["u", "connect_refused"])
            .inc();
        m.backend_up.with_label_values(&["u", "127.0.0.1:1"]).set(1);
        m.config_last_success.set(1.0);
        m.access_log_dropped
            .with_label_values(&["queue_full"])
            .inc();
        let text = String::from_utf8(m.encode()).unwrap();
        for name in [
            "portcullis_http_requests_total",
            "portcullis_http_request_duration_seconds_bucket",
            "portcullis_http_refusals_total",
            "portcullis_upstream_errors_total",
            "portcullis_upstream_backend_up",
            "portcullis_config_reloads_total",
            "portcullis_config_last_reload_success_timestamp_seconds",
            "portcullis_access_log_errors_total",
            "portcullis_build_info",
            "portcullis_http_requests_in_flight",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(method_label(&http::Method::GET), "GET");
        assert_eq!(
            method_label(&http::Method::from_bytes(b"FOOBAR").unwrap()),
            "OTHER"
        );
        assert_eq!(status_class(404), "4xx");
        assert_eq!(status_class(0), "none");
    }
}
