//! The IETF rate-limit fields (draft-ietf-httpapi-ratelimit-headers): `RateLimit-Policy`
//! (quota `q` per window `w` seconds) and `RateLimit` (remaining `r`, seconds to reset `t`),
//! structured-field lists with one member per policy; and the legacy `X-RateLimit-*` trio.

use std::time::Duration;

use super::local::Outcome;
use super::PolicyState;

fn ceil_secs(d: Duration) -> u64 {
    let s = d.as_secs();
    if d.subsec_nanos() > 0 {
        s + 1
    } else {
        s
    }
}

/// Seconds to put in `Retry-After` for a refusal (at least 1).
pub fn retry_after_secs(d: Duration) -> u64 {
    ceil_secs(d).max(1)
}

/// `(name, value)` pairs for the response, from the enforcing policies of a request.
pub fn fields(states: &[PolicyState], legacy: bool) -> Vec<(&'static str, String)> {
    let enforced: Vec<&PolicyState> = states
        .iter()
        .filter(|s| s.mode == super::PolicyMode::Enforce)
        .collect();
    if enforced.is_empty() {
        return Vec::new();
    }
    let remaining = |s: &PolicyState| match s.outcome {
        Outcome::Allowed { remaining, .. } => remaining,
        Outcome::Limited { .. } => 0,
    };
    let reset = |s: &PolicyState| match s.outcome {
        Outcome::Allowed { reset, .. } => ceil_secs(reset),
        Outcome::Limited { retry_after } => retry_after_secs(retry_after),
    };
    let policy = enforced
        .iter()
        .map(|s| {
            format!(
                "\"{}\";q={};w={}",
                s.name,
                s.quota.rate,
                ceil_secs(s.quota.per)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let current = enforced
        .iter()
        .map(|s| format!("\"{}\";r={};t={}", s.name, remaining(s), reset(s)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = vec![("RateLimit-Policy", policy), ("RateLimit", current)];
    if legacy {
        // The legacy trio describes one limit: the one closest to refusing.
        if let Some(tight) = enforced.iter().min_by_key(|s| remaining(s)) {
            out.push(("X-RateLimit-Limit", tight.quota.rate.to_string()));
            out.push(("X-RateLimit-Remaining", remaining(tight).to_string()));
            out.push(("X-RateLimit-Reset", reset(tight).to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::{PolicyMode, QuotaSpec};

    fn state(name: &str, mode: PolicyMode, outcome: Outcome) -> PolicyState {
        PolicyState {
            name: name.into(),
            mode,
            quota: QuotaSpec {
                rate: 100,
                per: Duration::from_secs(60),
                burst: 100,
            },
            outcome,
        }
    }

    #[test]
    fn structured_fields_for_each_enforced_policy() {
        let f = fields(
            &[
                state(
                    "per-ip",
                    PolicyMode::Enforce,
                    Outcome::Allowed {
                        remaining: 7,
                        reset: Duration::from_millis(1500),
                    },
                ),
                state(
                    "tenant",
                    PolicyMode::Enforce,
                    Outcome::Limited {
                        retry_after: Duration::from_millis(200),
                    },
                ),
                state(
                    "trial",
                    PolicyMode::Shadow,
                    Outcome::Limited {
                        retry_after: Duration::from_secs(3),
                    },
                ),
            ],
            true,
        );
        assert_eq!(
            f[0],
            (
                "RateLimit-Policy",
                "\"per-ip\";q=100;w=60, \"tenant\";q=100;w=60".to_string()
            )
        );
        assert_eq!(
            f[1],
            (
                "RateLimit",
                "\"per-ip\";r=7;t=2, \"tenant\";r=0;t=1".to_string()
            )
        );
        assert_eq!(f[2], ("X-RateLimit-Limit", "100".to_string()));
        assert_eq!(f[3], ("X-RateLimit-Remaining", "0".to_string()));
        assert!(fields(
            &[state(
                "s",
                PolicyMode::Shadow,
                Outcome::Allowed {
                    remaining: 1,
                    reset: Duration::ZERO
                }
            )],
            false
        )
        .is_empty());
    }
}
