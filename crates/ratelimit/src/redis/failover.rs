//! What the gateway does while the shared (Redis) limiter is unreachable.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::{
    Decision, Limit, LimitError, QuotaLimit, RateLimiter, SessionDecision, SessionLimiter,
};

/// What a failover limiter does while its shared backend fails (errors or timeouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FailureMode {
    /// Decide with this node's own (local) limiter: traffic keeps flowing, limits hold per node.
    #[default]
    Local,
    /// Refuse with [`LimitError::Unavailable`] (the gateway answers 503).
    Closed,
}

impl FailureMode {
    /// `"local"` or `"closed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Closed => "closed",
        }
    }
}

impl fmt::Display for FailureMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not `local` or `closed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown failure mode {0:?} (expected \"local\" or \"closed\")")]
pub struct ParseFailureModeError(String);

impl FromStr for FailureMode {
    type Err = ParseFailureModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "local" => Ok(Self::Local),
            "closed" => Ok(Self::Closed),
            _ => Err(ParseFailureModeError(s.to_owned())),
        }
    }
}

/// Settings of [`FailoverSessionLimiter`] and [`FailoverRateLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverConfig {
    /// What to do while the backend fails. Default [`FailureMode::Local`].
    pub mode: FailureMode,
    /// After a failure, requests skip the backend for this long; then one request tries it again
    /// (and, if it answers, every request uses it again). Default 1 s, so a dead Redis costs one
    /// timeout per interval, not one per request.
    pub retry_interval: Duration,
    /// At most one warning per this interval while the backend fails (the rest are counted in
    /// the next warning). Default 10 s.
    pub warn_interval: Duration,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        Self {
            mode: FailureMode::Local,
            retry_interval: Duration::from_secs(1),
            warn_interval: Duration::from_secs(10),
        }
    }
}

/// Counters of a failover limiter, for metrics. Counts are totals since creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailoverStats {
    /// Calls to the backend that failed (errors and timeouts).
    pub backend_errors: u64,
    /// Decisions made by the local limiter ([`FailureMode::Local`]).
    pub fallbacks: u64,
    /// Requests answered with [`LimitError::Unavailable`] ([`FailureMode::Closed`]).
    pub unavailable: u64,
    /// Times the backend answered again after failing.
    pub recoveries: u64,
    /// Whether the backend is in use now (false from a failure until a retry succeeds).
    pub backend_up: bool,
}

/// The backend was skipped because it failed recently.
#[derive(Debug, thiserror::Error)]
#[error("shared limiter backend is down (retried every {0:?})")]
struct BackendDown(Duration);

/// Health tracking shared by both wrappers.
struct Guard {
    cfg: FailoverConfig,
    what: &'static str,
    origin: Instant,
    /// 0: the backend is in use. Otherwise the time (ns since `origin`, at least 1) from which
    /// the next request probes it.
    retry_at: AtomicU64,
    /// When the last warning was logged (ns since `origin` + 1; 0 = never).
    last_warn: AtomicU64,
    suppressed: AtomicU64,
    backend_errors: AtomicU64,
    fallbacks: AtomicU64,
    unavailable: AtomicU64,
    recoveries: AtomicU64,
}

enum Route {
    /// Ask the backend; `probe` when it is the one retry after a failure.
    Backend { probe: bool },
    /// The backend failed recently: do not wait for it.
    Skip,
}

impl Guard {
    fn new(cfg: FailoverConfig, what: &'static str) -> Self {
        Self {
            cfg,
            what,
            origin: Instant::now(),
            retry_at: AtomicU64::new(0),
            last_warn: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            backend_errors: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
            recoveries: AtomicU64::new(0),
        }
    }

    /// Nanoseconds since `origin`, plus one (never 0).
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    fn later(&self, now: u64, d: Duration) -> u64 {
        now.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    fn route(&self) -> Route {
        let at = self.retry_at.load(Ordering::Acquire);
        if at == 0 {
            return Route::Backend { probe: false };
        }
        let now = self.now();
        // One request claims the retry by moving the next one an interval away.
        if now >= at
            && self
                .retry_at
                .compare_exchange(
                    at,
                    self.later(now, self.cfg.retry_interval),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Route::Backend { probe: true };
        }
        Route::Skip
    }

    fn succeeded(&self, probe: bool) {
        // A request that was already in flight when another one failed does not end the outage:
        // only the probe does, so the state does not flap.
        if probe && self.retry_at.swap(0, Ordering::AcqRel) != 0 {
            self.recoveries.fetch_add(1, Ordering::Relaxed);
            self.last_warn.store(0, Ordering::Relaxed);
            tracing::info!(
                limiter = self.what,
                "shared limiter backend answers again; shared counting resumed"
            );
        }
    }

    fn failed(&self, e: &LimitError) {
        self.backend_errors.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        self.retry_at
            .store(self.later(now, self.cfg.retry_interval), Ordering::Release);
        let last = self.last_warn.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= duration_ns(self.cfg.warn_interval);
        if due
            && self
                .last_warn
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
            tracing::warn!(
                limiter = self.what,
                mode = %self.cfg.mode,
                error = %e,
                suppressed,
                "shared limiter backend failed; {}",
                match self.cfg.mode {
                    FailureMode::Local => "deciding with per-node counters until it answers",
                    FailureMode::Closed => "refusing requests (503) until it answers",
                }
            );
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs `primary` unless the backend is known down; on a backend failure, `local` or
    /// `Unavailable` per the mode.
    async fn call<T, P, PF, L, LF>(&self, primary: P, local: L) -> Result<T, LimitError>
    where
        P: FnOnce() -> PF,
        PF: Future<Output = Result<T, LimitError>>,
        L: FnOnce() -> LF,
        LF: Future<Output = Result<T, LimitError>>,
    {
        let cause: Box<dyn std::error::Error + Send + Sync> = match self.route() {
            Route::Backend { probe } => match primary().await {
                Ok(v) => {
                    self.succeeded(probe);
                    return Ok(v);
                }
                Err(e @ (LimitError::Backend(_) | LimitError::Unavailable(_))) => {
                    self.failed(&e);
                    Box::new(e)
                }
                Err(e) => return Err(e),
            },
            Route::Skip => Box::new(BackendDown(self.cfg.retry_interval)),
        };
        match self.cfg.mode {
            FailureMode::Local => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                local().await
            }
            FailureMode::Closed => {
                self.unavailable.fetch_add(1, Ordering::Relaxed);
                Err(LimitError::Unavailable(cause))
            }
        }
    }

    fn stats(&self) -> FailoverStats {
        FailoverStats {
            backend_errors: self.backend_errors.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            unavailable: self.unavailable.load(Ordering::Relaxed),
            recoveries: self.recoveries.load(Ordering::Relaxed),
            backend_up: self.retry_at.load(Ordering::Relaxed) == 0,
        }
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failover")
            .field("cfg", &self.cfg)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A [`SessionLimiter`] that uses a shared one (Redis) and, while it fails, a local one
/// ([`FailureMode::Local`]) or [`LimitError::Unavailable`] ([`FailureMode::Closed`]).
///
/// A failure (any [`LimitError::Backend`], timeouts included) switches to the fallback at once
/// for that request; later requests skip the backend for [`FailoverConfig::retry_interval`], then
/// one request tries it again, and once it answers every request uses it again — no restart.
/// Warnings are logged at most once per [`FailoverConfig::warn_interval`]; [`Self::stats`] counts
/// everything. Other errors (e.g. [`LimitError::CapacityExceeded`]) pass through unchanged.
///
/// **Exactness during an outage** (mode `local`): each node counts on its own, so with N nodes
/// up to N times a limit can be admitted, and requests admitted before the outage are not known
/// locally (a session that had used its quota gets a fresh local one). Local counts are not
/// copied to Redis afterwards: shared counting resumes from what Redis held (a quota window
/// that ended meanwhile starts again at the next request). A call that timed out may still have
/// been counted by Redis, which only makes Redis stricter. Mode `closed` keeps limits exact and
/// refuses everything instead.
///
/// The local limiter should not persist quotas ([`crate::MemoryQuotaPersistence`],
/// `flush_interval` zero): its counts only mean something during the outage.
pub struct FailoverSessionLimiter {
    primary: Arc<dyn SessionLimiter>,
    local: Arc<dyn SessionLimiter>,
    guard: Guard,
}

impl FailoverSessionLimiter {
    /// `primary` (e.g. a [`crate::RedisSessionLimiter`]) with `local` (e.g. a
    /// [`crate::LocalSessionLimiter`]) as the fallback; `local` is unused in mode `closed`.
    pub fn new(
        primary: Arc<dyn SessionLimiter>,
        local: Arc<dyn SessionLimiter>,
        cfg: FailoverConfig,
    ) -> Self {
        Self {
            primary,
            local,
            guard: Guard::new(cfg, "session"),
        }
    }

    /// Counters for metrics.
    pub fn stats(&self) -> FailoverStats {
        self.guard.stats()
    }

    /// The settings.
    pub fn config(&self) -> FailoverConfig {
        self.guard.cfg
    }
}

impl fmt::Debug for FailoverSessionLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailoverSessionLimiter")
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl SessionLimiter for FailoverSessionLimiter {
    async fn check(
        &self,
        rate: Option<(&str, Limit)>,
        quota: Option<(&str, QuotaLimit)>,
    ) -> Result<SessionDecision, LimitError> {
        if rate.is_none() && quota.is_none() {
            return Ok(SessionDecision::UNLIMITED);
        }
        self.guard
            .call(
                || self.primary.check(rate, quota),
                || self.local.check(rate, quota),
            )
            .await
    }
}

/// A [`RateLimiter`] (e.g. for `global_rate_limit`) with the same failover as
/// [`FailoverSessionLimiter`], whose docs describe the behaviour and its exactness trade-off.
pub struct FailoverRateLimiter {
    primary: Arc<dyn RateLimiter>,
    local: Arc<dyn RateLimiter>,
    guard: Guard,
}

impl FailoverRateLimiter {
    /// `primary` (e.g. a [`crate::RedisRateLimiter`]) with `local` (e.g. a
    /// [`crate::LocalRateLimiter`]) as the fallback; `local` is unused in mode `closed`.
    pub fn new(
        primary: Arc<dyn RateLimiter>,
        local: Arc<dyn RateLimiter>,
        cfg: FailoverConfig,
    ) -> Self {
        Self {
            primary,
            local,
            guard: Guard::new(cfg, "rate"),
        }
    }

    /// Counters for metrics.
    pub fn stats(&self) -> FailoverStats {
        self.guard.stats()
    }

    /// The settings.
    pub fn config(&self) -> FailoverConfig {
        self.guard.cfg
    }
}

impl fmt::Debug for FailoverRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailoverRateLimiter")
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl RateLimiter for FailoverRateLimiter {
    async fn check(&self, key: &str, limit: Limit) -> Result<Decision, LimitError> {
        self.guard
            .call(
                || self.primary.check(key, limit),
                || self.local.check(key, limit),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalRateLimiter;
    use std::sync::atomic::AtomicBool;

    /// A backend that fails while `down` is set, and counts its calls.
    #[derive(Default)]
    struct Flaky {
        down: AtomicBool,
        calls: AtomicU64,
    }

    #[async_trait]
    impl RateLimiter for Flaky {
        async fn check(&self, _key: &str, limit: Limit) -> Result<Decision, LimitError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            if self.down.load(Ordering::Relaxed) {
                Err(LimitError::Backend("down".into()))
            } else {
                Ok(Decision::allowed(limit.rate, 42, Duration::ZERO))
            }
        }
    }

    fn setup(mode: FailureMode, retry: Duration) -> (Arc<Flaky>, FailoverRateLimiter) {
        let flaky = Arc::new(Flaky::default());
        let f = FailoverRateLimiter::new(
            flaky.clone(),
            Arc::new(LocalRateLimiter::default()),
            FailoverConfig {
                mode,
                retry_interval: retry,
                ..FailoverConfig::default()
            },
        );
        (flaky, f)
    }

    #[tokio::test]
    async fn local_mode_skips_a_failed_backend_until_the_retry() {
        let l = Limit::new(3, Duration::from_secs(60));
        let (flaky, f) = setup(FailureMode::Local, Duration::from_secs(3600));
        assert_eq!(f.check("k", l).await.unwrap().remaining, 42);
        flaky.down.store(true, Ordering::Relaxed);
        // The failing call and the next ones are decided locally; the backend is asked once.
        for i in 0..5 {
            let d = f.check("k", l).await.unwrap();
            assert_eq!(d.allowed, i < 3, "request {i}");
        }
        assert_eq!(flaky.calls.load(Ordering::Relaxed), 2);
        let s = f.stats();
        assert_eq!(
            (s.backend_errors, s.fallbacks, s.unavailable, s.backend_up),
            (1, 5, 0, false)
        );
    }

    #[tokio::test]
    async fn the_probe_brings_the_backend_back() {
        let l = Limit::new(3, Duration::from_secs(60));
        let (flaky, f) = setup(FailureMode::Closed, Duration::ZERO);
        flaky.down.store(true, Ordering::Relaxed);
        let e = f.check("k", l).await.unwrap_err();
        assert!(matches!(e, LimitError::Unavailable(_)), "{e}");
        flaky.down.store(false, Ordering::Relaxed);
        // Retry interval zero: the next request probes, succeeds, and the backend is back.
        assert_eq!(f.check("k", l).await.unwrap().remaining, 42);
        let s = f.stats();
        assert_eq!(
            (s.backend_errors, s.unavailable, s.recoveries, s.backend_up),
            (1, 1, 1, true)
        );
    }

    #[tokio::test]
    async fn other_errors_pass_through() {
        struct Full;
        #[async_trait]
        impl RateLimiter for Full {
            async fn check(&self, _: &str, _: Limit) -> Result<Decision, LimitError> {
                Err(LimitError::CapacityExceeded { max_keys: 1 })
            }
        }
        let f = FailoverRateLimiter::new(
            Arc::new(Full),
            Arc::new(LocalRateLimiter::default()),
            FailoverConfig::default(),
        );
        let e = f
            .check("k", Limit::new(1, Duration::from_secs(1)))
            .await
            .unwrap_err();
        assert!(matches!(e, LimitError::CapacityExceeded { .. }));
        assert_eq!(
            f.stats(),
            FailoverStats {
                backend_up: true,
                ..FailoverStats::default()
            }
        );
    }

    #[test]
    fn failure_mode_parses() {
        assert_eq!("local".parse::<FailureMode>().unwrap(), FailureMode::Local);
        assert_eq!(
            " Closed ".parse::<FailureMode>().unwrap(),
            FailureMode::Closed
        );
        assert!("open".parse::<FailureMode>().is_err());
        assert_eq!(FailureMode::default().to_string(), "local");
    }
}
