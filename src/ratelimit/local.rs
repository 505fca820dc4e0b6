//! The in-process limiter: governor's GCRA over a bounded key table.
//!
//! The table is a governor `StateStore` of our own so that it can (a) evict idle keys and hold
//! at most `max_keys`, and (b) take part in a check-all-then-consume transaction: in a dry run
//! the GCRA step is computed but its new state is only recorded, and written (compare-and-swap)
//! once every policy of the request has said yes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};

/// The value of a cell that holds no state yet (governor's "first measurement").
const EMPTY: u64 = u64::MAX;
const SHARDS: usize = 16;

/// A pending write of a dry run: the cell, the value it was computed from, the new value.
type Pending = (Arc<AtomicU64>, u64, u64);

thread_local! {
    static DRY_RUN: RefCell<Option<Vec<Pending>>> = const { RefCell::new(None) };
}

/// A bounded, sharded table of GCRA states keyed by a 128-bit key digest.
pub struct KeyTable {
    shards: Vec<Mutex<HashMap<u128, Arc<AtomicU64>>>>,
    max_keys: usize,
    len: AtomicUsize,
    evictions: AtomicU64,
}

impl KeyTable {
    /// A table holding at most `max_keys` keys.
    pub fn new(max_keys: usize) -> KeyTable {
        KeyTable {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            max_keys: max_keys.max(1),
            len: AtomicUsize::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys removed to make room (not counting idle keys swept by [`KeyTable::sweep`]).
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    fn shard(&self, key: u128) -> &Mutex<HashMap<u128, Arc<AtomicU64>>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    fn cell(&self, key: u128) -> Arc<AtomicU64> {
        let mut shard = match self.shard(key).lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(c) = shard.get(&key) {
            return c.clone();
        }
        if self.len.load(Ordering::Relaxed) >= self.max_keys {
            // Full: make room in this shard, preferring a key whose state is oldest.
            let victim = shard
                .iter()
                .min_by_key(|(_, c)| {
                    let v = c.load(Ordering::Relaxed);
                    if v == EMPTY {
                        0
                    } else {
                        v
                    }
                })
                .map(|(k, _)| *k);
            if let Some(k) = victim {
                shard.remove(&k);
                self.len.fetch_sub(1, Ordering::Relaxed);
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        let c = Arc::new(AtomicU64::new(EMPTY));
        shard.insert(key, c.clone());
        self.len.fetch_add(1, Ordering::Relaxed);
        c
    }

    /// Removes keys whose state is fully replenished at `now` (they behave as absent keys).
    pub fn sweep(&self, now: Nanos) {
        let now = now.as_u64();
        for s in &self.shards {
            let mut shard = match s.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            let before = shard.len();
            shard.retain(|_, c| {
                let v = c.load(Ordering::Relaxed);
                v != EMPTY && v > now
            });
            self.len.fetch_sub(before - shard.len(), Ordering::Relaxed);
        }
    }
}

impl StateStore for KeyTable {
    type Key = u128;

    fn measure_and_replace<T, F, E>(&self, key: &u128, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let cell = self.cell(*key);
        loop {
            let cur = cell.load(Ordering::Acquire);
            let prev = (cur != EMPTY).then(|| Nanos::from(cur));
            let (t, next) = f(prev)?;
            let next: u64 = next.into();
            let recorded = DRY_RUN.with(|d| match d.borrow_mut().as_mut() {
                Some(pending) => {
                    pending.push((cell.clone(), cur, next));
                    true
                }
                None => false,
            });
            if recorded {
                return Ok(t);
            }
            if cell
                .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Ok(t);
            }
        }
    }
}

/// The result of one limiter check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Admitted; `remaining` requests fit now, full capacity returns after `reset`.
    Allowed {
        /// Requests that would still be admitted right now.
        remaining: u32,
        /// Time until the full burst is available again.
        reset: Duration,
    },
    /// Refused until `retry_after` has passed.
    Limited {
        /// Time until one request will be admitted.
        retry_after: Duration,
    },
}

/// The key table shared between a limiter and whoever sweeps and measures it.
#[derive(Clone)]
pub struct SharedTable(pub Arc<KeyTable>);

impl StateStore for SharedTable {
    type Key = u128;

    fn measure_and_replace<T, F, E>(&self, key: &u128, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

/// One GCRA quota over one key table.
pub struct LocalLimiter<C: Clock> {
    limiter: RateLimiter<u128, SharedTable, C, StateInformationMiddleware>,
    table: Arc<KeyTable>,
    quota: Quota,
    clock: C,
    start: C::Instant,
}

impl<C: Clock + Clone> LocalLimiter<C> {
    /// A limiter allowing `quota` per key, at most `max_keys` keys, reading time from `clock`.
    pub fn new(quota: Quota, max_keys: usize, clock: C) -> LocalLimiter<C> {
        let table = Arc::new(KeyTable::new(max_keys));
        // governor measures time from the reading it takes when built; this is the same instant
        // (to within the two calls), used to compare stored states with "now" when sweeping.
        let start = clock.now();
        let limiter: RateLimiter<
            u128,
            SharedTable,
            C,
            governor::middleware::NoOpMiddleware<C::Instant>,
        > = RateLimiter::new(quota, SharedTable(table.clone()), clock.clone());
        let limiter = limiter.with_middleware::<StateInformationMiddleware>();
        LocalLimiter {
            limiter,
            table,
            quota,
            clock,
            start,
        }
    }

    /// The quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// The key table (size, evictions).
    pub fn table(&self) -> &KeyTable {
        &self.table
    }

    /// Removes keys that are idle (fully replenished).
    pub fn sweep(&self) {
        let now = self.clock.now().duration_since(self.start);
        self.table.sweep(now);
    }

    /// Checks (and, outside a transaction, consumes) one request for `key`.
    pub fn check(&self, key: u128) -> Outcome {
        match self.limiter.check_key(&key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let missing = self.quota.burst_size().get().saturating_sub(remaining);
                Outcome::Allowed {
                    remaining,
                    reset: self.quota.replenish_interval() * missing,
                }
            }
            Err(not_until) => Outcome::Limited {
                retry_after: not_until.wait_time_from(self.clock.now()),
            },
        }
    }
}

/// Checks several limiters for one request and consumes from them only if every `enforce`
/// check allows: a request refused by one limit does not use up another. Shadow checks that
/// would refuse are reported but neither refuse nor consume.
pub fn check_all<C: Clock + Clone>(checks: &[(&LocalLimiter<C>, u128, bool)]) -> Vec<Outcome> {
    DRY_RUN.with(|d| *d.borrow_mut() = Some(Vec::new()));
    let mut outcomes = Vec::with_capacity(checks.len());
    // Which check each pending write belongs to.
    let mut owners = Vec::with_capacity(checks.len());
    for (i, (limiter, key, _)) in checks.iter().enumerate() {
        let before = DRY_RUN.with(|d| d.borrow().as_ref().map_or(0, Vec::len));
        outcomes.push(limiter.check(*key));
        let after = DRY_RUN.with(|d| d.borrow().as_ref().map_or(0, Vec::len));
        owners.extend(std::iter::repeat_n(i, after - before));
    }
    let pending = DRY_RUN.with(|d| d.borrow_mut().take()).unwrap_or_default();
    let refused = checks
        .iter()
        .zip(&outcomes)
        .any(|((_, _, enforce), o)| *enforce && matches!(o, Outcome::Limited { .. }));
    if refused {
        return outcomes;
    }
    for ((cell, old, new), owner) in pending.into_iter().zip(owners) {
        if cell
            .compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Another request changed this key meanwhile: take the step again, for real.
            let (limiter, key, _) = checks[owner];
            outcomes[owner] = limiter.check(key);
        }
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::num::NonZeroU32;

    fn limiter(
        per_second: u32,
        burst: u32,
        clock: &FakeRelativeClock,
        max_keys: usize,
    ) -> LocalLimiter<FakeRelativeClock> {
        let q = Quota::per_second(NonZeroU32::new(per_second).unwrap())
            .allow_burst(NonZeroU32::new(burst).unwrap());
        LocalLimiter::new(q, max_keys, clock.clone())
    }

    #[test]
    fn gcra_rate_burst_and_retry_after() {
        let clock = FakeRelativeClock::default();
        let l = limiter(10, 3, &clock, 100);
        for expect_remaining in [2, 1, 0] {
            assert_eq!(
                l.check(1),
                Outcome::Allowed {
                    remaining: expect_remaining,
                    reset: Duration::from_millis(100) * (3 - expect_remaining)
                }
            );
        }
        // The burst is spent: the next cell is emitted 100 ms after the last one.
        assert_eq!(
            l.check(1),
            Outcome::Limited {
                retry_after: Duration::from_millis(100)
            }
        );
        clock.advance(Duration::from_millis(40));
        assert_eq!(
            l.check(1),
            Outcome::Limited {
                retry_after: Duration::from_millis(60)
            }
        );
        clock.advance(Duration::from_millis(60));
        assert!(matches!(l.check(1), Outcome::Allowed { remaining: 0, .. }));
        // Another key is independent.
        assert!(matches!(l.check(2), Outcome::Allowed { remaining: 2, .. }));
        // After a full period everything is back.
        clock.advance(Duration::from_secs(1));
        assert!(matches!(l.check(1), Outcome::Allowed { remaining: 2, .. }));
    }

    #[test]
    fn a_refusal_by_one_policy_consumes_nothing_from_the_others() {
        let clock = FakeRelativeClock::default();
        let generous = limiter(100, 100, &clock, 100);
        let strict = limiter(1, 1, &clock, 100);
        let r = check_all(&[(&generous, 7, true), (&strict, 7, true)]);
        assert!(matches!(r[1], Outcome::Allowed { .. }));
        for _ in 0..5 {
            let r = check_all(&[(&generous, 7, true), (&strict, 7, true)]);
            assert!(matches!(r[1], Outcome::Limited { .. }));
        }
        // Only the first request was taken from the generous policy.
        assert!(matches!(
            generous.check(7),
            Outcome::Allowed { remaining: 98, .. }
        ));
    }

    #[test]
    fn shadow_checks_never_refuse() {
        let clock = FakeRelativeClock::default();
        let enforce = limiter(100, 100, &clock, 100);
        let shadow = limiter(1, 1, &clock, 100);
        for i in 0..4 {
            let r = check_all(&[(&enforce, 1, true), (&shadow, 1, false)]);
            assert!(matches!(r[0], Outcome::Allowed { .. }));
            assert_eq!(matches!(r[1], Outcome::Limited { .. }), i > 0);
        }
        assert!(matches!(
            enforce.check(1),
            Outcome::Allowed { remaining: 95, .. }
        ));
    }

    #[test]
    fn the_key_table_is_bounded_and_idle_keys_are_swept() {
        let clock = FakeRelativeClock::default();
        let l = limiter(10, 1, &clock, 64);
        for k in 0..1000u128 {
            l.check(k);
        }
        assert!(l.table().len() <= 64, "{}", l.table().len());
        assert!(l.table().evictions() >= 936);
        clock.advance(Duration::from_secs(1));
        l.sweep();
        assert_eq!(l.table().len(), 0);
    }
}
