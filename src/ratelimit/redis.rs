//! The distributed limiter: several gateway instances share each policy's GCRA state in Redis.
//!
//! One request is one atomic server-side step — a Lua script (loaded once, run by EVALSHA)
//! that checks every applicable policy and consumes from them only if all enforcing ones allow,
//! using Redis's own clock so instances need not agree on time. Connections are a small pool of
//! auto-reconnecting managers opened lazily, so the gateway starts and keeps serving (under its
//! `on_redis_error` policy) while Redis is down, and uses it again when it returns.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::local::Outcome;

const GCRA_SCRIPT: &str = r#"
-- Check-all-then-consume GCRA over KEYS; ARGV holds, per key: emission interval (us),
-- tolerance (us), enforce (1 or 0). Returns, per key: allowed (1/0), remaining or wait (us),
-- time until the burst is full again (us).
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local tats = {}
local ok = {}
local refused = false
for i = 1, #KEYS do
  local tau = tonumber(ARGV[(i - 1) * 3 + 2])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  tats[i] = tat
  ok[i] = now >= tat - tau
  if not ok[i] and ARGV[(i - 1) * 3 + 3] == '1' then refused = true end
end
local out = {}
for i = 1, #KEYS do
  local t = tonumber(ARGV[(i - 1) * 3 + 1])
  local tau = tonumber(ARGV[(i - 1) * 3 + 2])
  local tat = tats[i]
  if ok[i] then
    local after = tat
    if not refused then
      after = tat + t
      redis.call('SET', KEYS[i], string.format('%.0f', after), 'PX', math.floor((after - now) / 1000) + 1000)
    end
    out[#out + 1] = 1
    out[#out + 1] = math.floor((now + tau + t - after) / t)
    out[#out + 1] = after - now
  else
    out[#out + 1] = 0
    out[#out + 1] = (tat - tau) - now
    out[#out + 1] = 0
  end
end
return out
"#;

/// One policy check for Redis.
#[derive(Debug, Clone)]
pub struct RedisCheck {
    /// Full Redis key.
    pub key: String,
    /// Emission interval.
    pub interval: Duration,
    /// Burst size.
    pub burst: u32,
    /// Whether a refusal refuses the request.
    pub enforce: bool,
}

/// What to do when Redis cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRedisError {
    /// Admit the request (fail open).
    Allow,
    /// Refuse it with 429 (fail closed).
    Deny,
}

/// Why a Redis check failed.
#[derive(Debug, thiserror::Error)]
pub enum RedisLimitError {
    /// No connection could be made (recently).
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// The call took longer than the configured timeout.
    #[error("redis call timed out")]
    Timeout,
    /// Redis answered with an error or an unexpected reply.
    #[error("redis error: {0}")]
    Reply(String),
}

/// Settings of the Redis backend (two equal settings can share one backend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSpec {
    /// `redis://host:port/db`.
    pub url: String,
    /// Timeout of one check, connection included.
    pub timeout: Duration,
    /// Number of multiplexed connections.
    pub pool_size: usize,
    /// Behaviour when Redis fails.
    pub on_error: OnRedisError,
    /// Prefix of every key.
    pub key_prefix: String,
}

/// A pool of lazily opened, self-healing Redis connections running the GCRA script.
pub struct RedisLimiter {
    /// The settings.
    pub spec: RedisSpec,
    client: redis::Client,
    pool: Vec<ArcSwapOption<ConnectionManager>>,
    next: AtomicUsize,
    last_failure: Mutex<Option<Instant>>,
    script: redis::Script,
}

impl RedisLimiter {
    /// A limiter for `spec`; fails only when the URL is malformed (no connection is made yet).
    pub fn new(spec: RedisSpec) -> Result<RedisLimiter, String> {
        let client = redis::Client::open(spec.url.as_str()).map_err(|e| e.to_string())?;
        Ok(RedisLimiter {
            pool: (0..spec.pool_size.max(1))
                .map(|_| ArcSwapOption::empty())
                .collect(),
            spec,
            client,
            next: AtomicUsize::new(0),
            last_failure: Mutex::new(None),
            script: redis::Script::new(GCRA_SCRIPT),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, RedisLimitError> {
        let slot = &self.pool[self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len()];
        if let Some(c) = slot.load_full() {
            return Ok((*c).clone());
        }
        let throttled = {
            let last = match self.last_failure.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            // Do not let every request try to connect to a Redis that just refused.
            last.is_some_and(|t| t.elapsed() < Duration::from_millis(250))
        };
        if throttled {
            return match self.pool.iter().find_map(|s| s.load_full()) {
                Some(c) => Ok((*c).clone()),
                None => Err(RedisLimitError::Unavailable("reconnecting".into())),
            };
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.spec.timeout)
            .set_response_timeout(self.spec.timeout)
            .set_number_of_retries(1)
            .set_max_delay(500);
        match ConnectionManager::new_with_config(self.client.clone(), config).await {
            Ok(c) => {
                slot.store(Some(std::sync::Arc::new(c.clone())));
                Ok(c)
            }
            Err(e) => {
                if let Ok(mut last) = self.last_failure.lock() {
                    *last = Some(Instant::now());
                }
                Err(RedisLimitError::Unavailable(e.to_string()))
            }
        }
    }

    /// Runs one atomic check-all-then-consume step for `checks`.
    pub async fn check_all(&self, checks: &[RedisCheck]) -> Result<Vec<Outcome>, RedisLimitError> {
        let fut = async {
            let mut conn = self.connection().await?;
            let mut inv = self.script.prepare_invoke();
            for c in checks {
                let t = c.interval.as_micros().max(1) as u64;
                inv.key(&c.key)
                    .arg(t)
                    .arg(t * u64::from(c.burst.saturating_sub(1)))
                    .arg(if c.enforce { "1" } else { "0" });
            }
            let reply: Vec<i64> = inv
                .invoke_async(&mut conn)
                .await
                .map_err(|e| RedisLimitError::Reply(e.to_string()))?;
            if reply.len() != checks.len() * 3 {
                return Err(RedisLimitError::Reply(format!(
                    "expected {} values, got {}",
                    checks.len() * 3,
                    reply.len()
                )));
            }
            Ok(reply
                .chunks(3)
                .zip(checks)
                .map(|(r, c)| {
                    let us = |v: i64| Duration::from_micros(v.max(0) as u64);
                    if r[0] == 1 {
                        Outcome::Allowed {
                            remaining: (r[1].max(0) as u32).min(c.burst),
                            reset: us(r[2]),
                        }
                    } else {
                        Outcome::Limited {
                            retry_after: us(r[1]),
                        }
                    }
                })
                .collect())
        };
        match tokio::time::timeout(self.spec.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(RedisLimitError::Timeout),
        }
    }
}
