//! Rate limiters and quota counters for Gatehouse, behind small async, object-safe traits.
//!
//! The gateway enforces, per session (one identity = one session = one set of counters), a rate
//! limit (`rate` requests per `per` seconds) and a quota (`quota_max` requests per
//! `quota_renewal_rate` seconds), plus an API-wide `global_rate_limit`. It names the counters
//! with key strings (`rate-limit-<scope>-<identity-hash>`, `quota-<scope>-<identity-hash>`); this
//! crate only sees the keys.
//!
//! # Entry points
//! - [`RateLimiter`] (`check`): one rate-limit decision. Implemented by [`LocalRateLimiter`].
//! - [`QuotaCounter`] (`consume`, `peek`, `reset`, `flush`). Implemented by
//!   [`LocalQuotaCounter`], which keeps counters across restarts through [`QuotaPersistence`]
//!   ([`MemoryQuotaPersistence`] for tests and for running without a store).
//! - [`SessionLimiter`] (`check(rate, quota)`): a session's rate limit and quota decided together,
//!   so a request counts against both or neither. Implemented by [`LocalSessionLimiter`].
//! - [`Limit::from_tyk`] and [`QuotaLimit::from_tyk`] turn policy values into limits (`None` =
//!   no limit).
//! - [`Clock`]: [`SystemClock`] in production, [`ManualClock`] in tests (no test sleeps).
//! - Shared by several nodes, in Redis: [`RedisRateLimiter`], [`RedisQuotaCounter`] and
//!   [`RedisSessionLimiter`] over a [`RedisBackend`]; [`FailoverSessionLimiter`] and
//!   [`FailoverRateLimiter`] fall back to local limiters (or 503) while Redis is unreachable. See
//!   "Shared limits in Redis" below.
//!
//! All traits are `Send + Sync` and object-safe (`Arc<dyn RateLimiter>` etc.). The local types
//! also have synchronous twins (`check_now`, `consume_now`, `peek_now`) that skip the boxed
//! future of an `async_trait` call, for a caller that holds the concrete type.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use gatehouse_ratelimit::{
//!     HeaderSource, Limit, LocalQuotaCounter, LocalRateLimiter, LocalSessionLimiter,
//!     MemoryQuotaPersistence, QuotaConfig, QuotaCounter, QuotaLimit, RateLimiter,
//!     RateLimiterConfig, SessionLimiter, Verdict,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), gatehouse_ratelimit::LimitError> {
//! // Start-up: one rate limiter (sessions and global limits share it), one quota counter.
//! let rate = Arc::new(LocalRateLimiter::new(RateLimiterConfig::default()));
//! let quota =
//!     LocalQuotaCounter::load(Arc::new(MemoryQuotaPersistence::new()), QuotaConfig::default())
//!         .await?;
//! let global: Arc<dyn RateLimiter> = rate.clone();
//! let sessions: Arc<dyn SessionLimiter> =
//!     Arc::new(LocalSessionLimiter::new(rate, quota.clone()));
//!
//! // Per request: the API's global limit, then the session's rate limit and quota.
//! if let Some(l) = Limit::from_tyk(1000.0, 1.0) {
//!     assert!(global.check("rate-limit-api-7", l).await?.allowed);
//! }
//! let d = sessions
//!     .check(
//!         Limit::from_tyk(100.0, 60.0).map(|l| ("rate-limit-gold-5f2b", l)),
//!         QuotaLimit::from_tyk(1000, 3600).map(|q| ("quota-gold-5f2b", q)),
//!     )
//!     .await?;
//! assert_eq!(d.verdict, Verdict::Allowed); // else 429 or 403, with d.retry_after()
//! let h = d.header_decision(HeaderSource::Quota).unwrap();
//! assert_eq!((h.limit, h.remaining, h.reset_secs()), (1000, 999, 3600));
//!
//! // Graceful shutdown.
//! quota.flush().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Rate limits: sliding log
//! The guarantee is Tyk's Redis rolling limiter's: **at most `rate` requests are admitted in any
//! window of `per`**, however many callers race. Each key keeps the times of its admitted requests
//! inside the last `per` (monotonic clock); a request is admitted iff fewer than `rate` are
//! logged. So 100 per minute with 50 concurrent clients admits exactly 100, and nothing refills
//! while a burst is being refused. A token bucket or GCRA (governor) was rejected: it refills
//! continuously, so it admits `rate` plus whatever trickled in during the burst, and its burst
//! size is a separate knob Tyk policies do not have.
//!
//! Unlike Tyk's rolling limiter, refused requests are **not** logged (Tyk logs them too, so a
//! client that keeps hammering stays blocked forever). Here a refused request changes nothing: a
//! client that waits `Retry-After` gets in, and one that hammers still gets at most `rate` per
//! `per`.
//!
//! Memory: 8 bytes per admitted request in the window, so at most `8 × rate` bytes per key. For a
//! `rate` above [`RateLimiterConfig::exact_log_max`] (default 1024) a key uses a fixed-size
//! **counter mode** instead: the window is cut into 60 sub-windows with one counter each, and a
//! request is admitted iff the counters overlapping `(now - per, now]` (61 of them, counted whole)
//! hold fewer than `rate`. Counting the oldest partial sub-window whole keeps the guarantee exact
//! (never more than `rate` in any window of `per`); the price is that a request can be refused up
//! to `per / 60` longer than a log would refuse it.
//!
//! A changed limit (policy edit) applies to the next request and never admits more than the new
//! limit allows. Moving a key between log and counter mode, or changing `per` in counter mode,
//! treats the recorded requests as if they were slightly later than they were (at most one
//! sub-window, or "now"), so right after such a change the key can be briefly stricter.
//!
//! ## Fractional Tyk values
//! Tyk stores `rate` and `per` as floats. [`Limit::from_tyk`] keeps integral rates as they are
//! (`100 / 60 s`). A fractional rate keeps the **average rate** `rate / per` exactly and uses the
//! smallest whole burst: `floor(rate)` (at least 1) requests per `per × floor(rate) / rate`. So
//! `0.5 / 1 s` → 1 per 2 s, `2.5 / 1 s` → 2 per 800 ms, `0.1 / 60 s` → 1 per 600 s. `rate <= 0`,
//! `per <= 0`, non-finite values, or a normalised `per` below 1 ns mean no rate limit (`None`).
//!
//! # Decisions and headers
//! Every [`Decision`] carries what `X-RateLimit-Limit`, `-Remaining`, `-Reset` and, on refusal,
//! `Retry-After` need:
//! - `limit`: the rate (or `quota_max`);
//! - `remaining`: requests still admitted now, *after* this one if it was admitted;
//! - `reset`: for a rate limit, the time until a slot frees (the oldest logged request leaves the
//!   window; when refused, until this request would be admitted); for a quota, until the window
//!   ends. [`Decision::reset_secs`] rounds it up;
//! - `retry_after`: only when refused, `reset` rounded up to whole seconds, at least 1 s.
//!
//! Which decision feeds the headers is the gateway's choice: Tyk historically puts **quota** data
//! there; see [`SessionDecision::header_decision`] and [`HeaderSource`].
//!
//! # Quotas: fixed window from the first request
//! As Tyk's `INCR` + `EXPIRE`: the window opens at the first request and lasts `period`; once
//! `max` requests were admitted in it, requests are refused until it ends. Renewal is lazy: the
//! first request after the end opens a new window. Only admitted requests count (a refused
//! `consume` changes nothing, so `used` never exceeds `max`). Windows are in wall-clock unix
//! seconds so they survive restarts; a period is rounded up to whole seconds. Unlimited quotas
//! (`quota_max <= 0`) are `None` from [`QuotaLimit::from_tyk`]: the gateway does not call the
//! counter at all. A quota that never renews (Tyk's `quota_renewal_rate: 0`,
//! [`QuotaLimit::never_renewing`]) is a window of [`QuotaLimit::NEVER_RENEWS`] (100 years):
//! locally, persisted and in Redis alike it simply never ends. A policy edit to `max` applies at
//! once; a longer `period` applies from the next window; a shorter one ends the current window at
//! most one new period from now (so turning a never-renewing quota into a renewing one takes
//! effect, and a Redis key's TTL is shortened the same way).
//!
//! # Rate limit then quota: why a combined check
//! Tyk checks the rate limit first and then the quota, and a quota refusal has already used a
//! rate slot. Calling [`RateLimiter::check`] then [`QuotaCounter::consume`] keeps half of the
//! exactness requirement (a rate refusal never consumes quota, since `consume` is not called).
//! [`SessionLimiter::check`] keeps both halves: a request refused by the quota does not take a
//! rate slot either. The local implementation decides the rate limit under the rate key's lock,
//! consumes the quota under the quota key's lock, and only then records the rate slot — atomic,
//! with no rollback. A Redis implementation does the same in one Lua script over both keys, which
//! also makes it one round trip per request instead of two. The gateway should use
//! [`SessionLimiter`] for sessions and [`RateLimiter`] for `global_rate_limit` (checked before
//! authentication, as Tyk does).
//!
//! # Quota persistence
//! [`LocalQuotaCounter::load`] reads every record ([`QuotaPersistence::load`]) at start, skipping
//! records whose window has ended (they are never resurrected). A counter that changes is marked
//! dirty; a background task saves dirty counters every [`QuotaConfig::flush_interval`] (default
//! 1 s) as one batch ([`QuotaPersistence::save`], an upsert), and [`QuotaCounter::flush`] does the
//! same on demand — **call it on graceful shutdown**. Flushes are serialised so saves arrive in
//! order; a failed save leaves the counters dirty for the next flush. A crash loses at most the
//! counts of the last interval (the quota then under-counts by that much). The task holds a weak
//! reference and ends when the counter is dropped.
//!
//! # Memory bounds
//! Both local types keep keys in N shards (default 64) of `parking_lot::Mutex<HashTable>`; the key
//! is hashed once, looked up by `&str`, and copied only when a new key is created. Idle keys are
//! dropped: a rate key whose window holds no request, a quota key whose window has ended and has
//! been saved. Sweeping is amortised into inserts (a shard sweeps when it has doubled since its
//! last sweep), so a shard holds at most about twice its live keys; `sweep()` does it on demand.
//! The total is capped by `max_keys` (default 1,000,000 each, split evenly between shards): a new
//! key in a full shard is refused with [`LimitError::CapacityExceeded`] (existing keys keep
//! working) and the gateway decides whether to fail open or closed. Worst case per rate key:
//! the log of `exact_log_max` entries (8 KiB) or ~0.5 KiB of counters; per quota key, under 100
//! bytes plus the key.
//!
//! # Performance
//! A decision is one clock read, one hash, one uncontended lock and a few loads and stores; no
//! allocation once the key exists (beyond the boxed future of the `async_trait` methods). See
//! `benches/limits.rs`.
//!
//! # Shared limits in Redis
//! With several gateway nodes, limits are exact across all of them only if they share the
//! counters: a quota of 1,000 per day is 1,000 across all nodes. The Redis types implement the
//! same traits with the same semantics as the local ones, each decision being **one Lua script
//! call** (`EVALSHA`, loaded again on `NOSCRIPT`), so **one round trip** and atomic, whatever the
//! number of nodes and connections:
//! - [`RedisRateLimiter`]: the sliding log as a sorted set (score = admission time in µs, member
//!   unique per request); the script prunes what left the window, counts, and adds the request
//!   only if admitted. Above [`RedisConfig::exact_log_max`] (default 1024) counter mode: a hash of
//!   sub-window counters (field = end of the sub-window, `per / 60` wide), each counted whole until
//!   `per` after its end. Both structures are always counted, so a policy edit that switches mode
//!   never forgets a request. Memory: a log member costs roughly 80-100 bytes in Redis, so at most
//!   ~100 KiB per key at the default cap; counter mode about 61 small fields.
//! - [`RedisQuotaCounter`]: a string counter created by the first admitted request with the window
//!   as its TTL (`SET … EX`), `INCR`ed only when admitted; `reset` deletes it, `peek` reads it,
//!   `flush` does nothing (the state is Redis's, persisted as Redis persists).
//! - [`RedisSessionLimiter`]: both in one script: rate decided first, quota consumed only if the
//!   rate admits, rate slot recorded only if the quota admits (counts both or neither).
//!
//! **Clock**: the scripts read `redis.call('TIME')`, so nodes with skewed clocks agree; a key never
//! goes back in time (a server clock stepped back makes waits longer, never shorter).
//!
//! **Keys** (readable by operators): `<prefix>{<key>}:rl` (log), `<prefix>{<key>}:rlc` (counters),
//! `<prefix>{<key>}:quota`, prefix `gatehouse:` by default. A caller key that already holds a hash
//! tag is kept as is (`gatehouse:rate-limit-gold-{5f2b}:rl`). Every key has a TTL: it expires once
//! its newest request has left the window, or when the quota window ends.
//!
//! **Redis Cluster** ([`RedisBackend::cluster`]): the script's keys must share a slot. A session's
//! rate and quota keys do when the gateway puts the identity hash in a hash tag
//! (`rate-limit-<scope>-{<hash>}`, `quota-<scope>-{<hash>}`). Without it, a session check is still
//! exact but takes two or three round trips (rate slot taken, quota consumed, slot given back on a
//! quota refusal), with a warning logged once.
//!
//! **Timeouts and outages**: every call has a deadline ([`RedisConfig::timeout`], default 250 ms)
//! and fails with [`LimitError::Backend`]. [`FailoverSessionLimiter`] / [`FailoverRateLimiter`]
//! then decide with a local limiter ([`FailureMode::Local`], default) or return
//! [`LimitError::Unavailable`] (503, [`FailureMode::Closed`]); they skip Redis for a second after a
//! failure, try again, and resume shared counting as soon as it answers. In mode `local` limits
//! hold per node only during the outage (N nodes admit up to N times a limit). Counts, for metrics:
//! [`FailoverSessionLimiter::stats`].
//!
//! Cost: one round trip per decision: 80-100 µs per sequential check on loopback on the shared
//! 2-core dev machine, of which about 12 µs is the script inside Redis; 16 checks in flight on one
//! connection reach about 38k checks/s (see `benches/redis.rs`). That is about the cost of a
//! signature check; leasing slices of a limit to each node is a possible later step.
//!
//! ## The author's notes that guided it
//! What a Redis implementation needs:
//! - one Lua script per decision (`EVALSHA`, one round trip): the rate log as a sorted set
//!   (`ZREMRANGEBYSCORE` the expired, `ZCARD`, `ZADD` a unique member — a counter or a random id —
//!   and `PEXPIRE per`), the quota as `INCR` + `EXPIRE` on the first hit, and for
//!   [`SessionLimiter`] both in one script, adding the rate entry only when the quota admits;
//! - one time source: `redis.call('TIME')` inside the script, so gateways with skewed clocks
//!   agree;
//! - in Redis Cluster both keys of a session must share a hash slot: the gateway should put the
//!   identity hash in a hash tag (`rate-limit-<scope>-{<hash>}`);
//! - high rates: the same counter mode as a hash of sub-window counters, so a key never holds
//!   more than a few dozen fields;
//! - persistence is Redis's own: `flush` is a no-op and [`QuotaPersistence`] is not used;
//! - a Redis round trip costs about as much as a signature check (see perf anchors): a later
//!   step may lease slices of a limit to each gateway, which still never admits more than it.

mod clock;
mod quota;
mod rate;
mod redis;
mod session;
mod shard;

use std::time::Duration;

use async_trait::async_trait;

pub use self::redis::{
    FailoverConfig, FailoverRateLimiter, FailoverSessionLimiter, FailoverStats, FailureMode,
    ParseFailureModeError, RedisBackend, RedisConfig, RedisQuotaCounter, RedisRateLimiter,
    RedisSessionLimiter,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use quota::{
    LocalQuotaCounter, MemoryQuotaPersistence, QuotaConfig, QuotaPersistence, QuotaRecord,
};
pub use rate::{LocalRateLimiter, RateLimiterConfig};
pub use session::{HeaderSource, LocalSessionLimiter, SessionDecision, SessionLimiter, Verdict};

/// A rate limit: at most `rate` requests in any window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    /// Requests per window. 0 refuses everything.
    pub rate: u64,
    /// Window length. Zero admits everything (no window holds a request).
    pub per: Duration,
}

impl Limit {
    /// `rate` requests per `per`.
    pub const fn new(rate: u64, per: Duration) -> Self {
        Self { rate, per }
    }

    /// From Tyk's `rate` and `per` (seconds, floats). `None` means no rate limit. A fractional
    /// rate keeps the average `rate / per` with a burst of `floor(rate)` (at least 1): `0.5 / 1 s`
    /// becomes 1 per 2 s. See the crate docs.
    pub fn from_tyk(rate: f64, per: f64) -> Option<Limit> {
        if !rate.is_finite() || !per.is_finite() || rate <= 0.0 || per <= 0.0 {
            return None;
        }
        let rounded = rate.round();
        let (whole, per) = if (rate - rounded).abs() <= 1e-9 * rate.max(1.0) {
            (rounded, per)
        } else {
            let whole = rate.floor().max(1.0);
            (whole, per * whole / rate)
        };
        let per = Duration::try_from_secs_f64(per).ok()?;
        if per.is_zero() {
            return None;
        }
        // `as` saturates; a rate beyond u64 is unlimited in practice anyway.
        Some(Limit::new(whole as u64, per))
    }
}

/// A quota: at most `max` requests per window of `period`, the window opening at the first
/// request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuotaLimit {
    /// Requests per window. 0 refuses everything.
    pub max: u64,
    /// Window length; rounded up to whole seconds, at least 1 s. [`QuotaLimit::NEVER_RENEWS`]
    /// (or anything longer) is a quota that never renews.
    pub period: Duration,
}

/// [`QuotaLimit::NEVER_RENEWS`] in seconds: 100 years of 365 days.
const NEVER_RENEWS_SECS: u64 = 100 * 365 * 24 * 60 * 60;

impl QuotaLimit {
    /// The window of a quota that never renews (Tyk's `quota_renewal_rate` of `0`): 100 years,
    /// far beyond the life of any counter, yet small enough for every store (an `i64` of
    /// seconds, a Redis `EX`, a Lua number of microseconds). A longer `period` counts as this.
    pub const NEVER_RENEWS: Duration = Duration::from_secs(NEVER_RENEWS_SECS);

    /// `max` requests per `period`.
    pub const fn new(max: u64, period: Duration) -> Self {
        Self { max, period }
    }

    /// `max` requests, ever: the window opens at the first request and never ends, so once `max`
    /// were admitted every later request is refused.
    pub const fn never_renewing(max: u64) -> Self {
        Self::new(max, Self::NEVER_RENEWS)
    }

    /// Whether the quota renews (its window is shorter than [`QuotaLimit::NEVER_RENEWS`]).
    pub fn renews(&self) -> bool {
        self.window_secs() < NEVER_RENEWS_SECS
    }

    /// From Tyk's `quota_max` and `quota_renewal_rate` (seconds). `None` means unlimited:
    /// `quota_max <= 0` (Tyk's `-1` and `0`). A `quota_renewal_rate <= 0` is a quota that never
    /// renews ([`QuotaLimit::never_renewing`]), as in Tyk.
    pub fn from_tyk(quota_max: i64, quota_renewal_rate: i64) -> Option<QuotaLimit> {
        if quota_max <= 0 {
            return None;
        }
        let max = quota_max as u64;
        Some(if quota_renewal_rate <= 0 {
            QuotaLimit::never_renewing(max)
        } else {
            QuotaLimit::new(max, Duration::from_secs(quota_renewal_rate as u64))
        })
    }

    /// The window in whole seconds (rounded up, at least 1, at most [`QuotaLimit::NEVER_RENEWS`]).
    pub(crate) fn window_secs(&self) -> u64 {
        ceil_secs(self.period).clamp(1, NEVER_RENEWS_SECS)
    }
}

/// One decision, with what the gateway's headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// The limit (`rate` or quota `max`): `X-RateLimit-Limit`.
    pub limit: u64,
    /// Requests still admitted now, after this one: `X-RateLimit-Remaining`.
    pub remaining: u64,
    /// Rate limit: time until a slot frees (refused: until this request would be admitted).
    /// Quota: time until the window ends. `X-RateLimit-Reset` via [`Decision::reset_secs`].
    pub reset: Duration,
    /// Only when refused: `reset` rounded up to whole seconds, at least 1 s (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl Decision {
    pub(crate) fn allowed(limit: u64, remaining: u64, reset: Duration) -> Self {
        Self {
            allowed: true,
            limit,
            remaining,
            reset,
            retry_after: None,
        }
    }

    pub(crate) fn refused(limit: u64, wait: Duration) -> Self {
        Self {
            allowed: false,
            limit,
            remaining: 0,
            reset: wait,
            retry_after: Some(Duration::from_secs(ceil_secs(wait).max(1))),
        }
    }

    /// `reset` in whole seconds, rounded up.
    pub fn reset_secs(&self) -> u64 {
        ceil_secs(self.reset)
    }

    /// `retry_after` in whole seconds.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|d| d.as_secs())
    }
}

/// Why a decision could not be made. The decision itself (admit or refuse) is never an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// A new key would exceed the limiter's `max_keys`; existing keys keep working.
    #[error("limiter is tracking its maximum of {max_keys} keys; new key refused")]
    CapacityExceeded {
        /// The configured maximum.
        max_keys: usize,
    },
    /// The quota store failed to load or save.
    #[error("quota persistence failed: {0}")]
    Persistence(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A remote backend (e.g. Redis) failed.
    #[error("limiter backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The shared limiter is unreachable and the failure mode is `closed`: refuse with 503.
    #[error("limiter unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl LimitError {
    /// Wraps a store error (for [`QuotaPersistence`] implementations).
    pub fn persistence(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Persistence(e.into())
    }
}

/// Rate limiting: one decision per request.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Admits and records one request for `key` if `limit` allows it.
    async fn check(&self, key: &str, limit: Limit) -> Result<Decision, LimitError>;
}

/// Quota counting.
#[async_trait]
pub trait QuotaCounter: Send + Sync {
    /// Counts one request for `key` if the quota allows it; a refusal counts nothing.
    async fn consume(&self, key: &str, q: QuotaLimit) -> Result<Decision, LimitError>;
    /// The decision `consume` would make now, without counting (`remaining` is before it).
    async fn peek(&self, key: &str, q: QuotaLimit) -> Result<Decision, LimitError>;
    /// Forgets `key`'s window (Tyk's quota reset); the next request opens a new one.
    async fn reset(&self, key: &str) -> Result<(), LimitError>;
    /// Saves every changed counter now (graceful shutdown).
    async fn flush(&self) -> Result<(), LimitError>;
}

pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}

pub(crate) fn ns_to_duration(ns: u64) -> Duration {
    Duration::from_nanos(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tyk_rates_normalise() {
        let s = Duration::from_secs;
        assert_eq!(Limit::from_tyk(100.0, 60.0), Some(Limit::new(100, s(60))));
        assert_eq!(Limit::from_tyk(0.5, 1.0), Some(Limit::new(1, s(2))));
        assert_eq!(
            Limit::from_tyk(2.5, 1.0),
            Some(Limit::new(2, Duration::from_millis(800)))
        );
        assert_eq!(Limit::from_tyk(0.1, 60.0), Some(Limit::new(1, s(600))));
        assert_eq!(
            Limit::from_tyk(3.0000000001, 1.0),
            Some(Limit::new(3, s(1)))
        );
        assert_eq!(
            Limit::from_tyk(10.0, 0.5),
            Some(Limit::new(10, Duration::from_millis(500)))
        );
        for (r, p) in [
            (0.0, 1.0),
            (-1.0, 1.0),
            (5.0, 0.0),
            (5.0, -1.0),
            (f64::NAN, 1.0),
            (5.0, f64::INFINITY),
            (1.0, 1e-12),
        ] {
            assert_eq!(Limit::from_tyk(r, p), None, "{r} per {p}");
        }
    }

    #[test]
    fn tyk_quotas_normalise() {
        assert_eq!(
            QuotaLimit::from_tyk(1000, 3600),
            Some(QuotaLimit::new(1000, Duration::from_secs(3600)))
        );
        assert_eq!(QuotaLimit::from_tyk(-1, 3600), None);
        assert_eq!(QuotaLimit::from_tyk(0, 3600), None);
        // A renewal of 0 (or less) never renews.
        for renewal in [0, -1] {
            let q = QuotaLimit::from_tyk(10, renewal).unwrap();
            assert_eq!(q, QuotaLimit::never_renewing(10));
            assert!(!q.renews());
            assert_eq!(q.window_secs(), 100 * 365 * 86_400);
        }
        assert!(QuotaLimit::from_tyk(10, 1).unwrap().renews());
        // Anything longer than the never-renewing window is the same window.
        assert_eq!(
            QuotaLimit::new(1, Duration::MAX).window_secs(),
            3_153_600_000
        );
        assert!(!QuotaLimit::new(1, Duration::MAX).renews());
        assert_eq!(
            QuotaLimit::new(1, Duration::from_millis(1500)).window_secs(),
            2
        );
        assert_eq!(QuotaLimit::new(1, Duration::ZERO).window_secs(), 1);
    }

    #[test]
    fn refusals_round_retry_after_up_to_at_least_one_second() {
        let d = Decision::refused(5, Duration::from_millis(1));
        assert_eq!(d.retry_after, Some(Duration::from_secs(1)));
        assert_eq!(d.reset_secs(), 1);
        let d = Decision::refused(5, Duration::ZERO);
        assert_eq!(d.retry_after_secs(), Some(1));
        let d = Decision::refused(5, Duration::from_millis(2001));
        assert_eq!(d.retry_after_secs(), Some(3));
        assert_eq!(
            Decision::allowed(5, 4, Duration::from_secs(2)).retry_after,
            None
        );
    }

    #[test]
    fn traits_are_object_safe() {
        fn takes(_: Option<&dyn RateLimiter>, _: Option<&dyn QuotaCounter>) {}
        fn takes2(_: Option<&dyn SessionLimiter>, _: Option<&dyn QuotaPersistence>) {}
        takes(None, None);
        takes2(None, None);
    }
}
