//! The three traits over a [`RedisBackend`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::backend::RedisBackend;
use crate::{
    Decision, Limit, LimitError, QuotaCounter, QuotaLimit, RateLimiter, SessionDecision,
    SessionLimiter, Verdict,
};

/// [`RateLimiter`] shared by every gateway node: the sliding log (or counter mode) kept in Redis
/// and decided by one Lua script per request, on Redis's clock.
#[derive(Debug, Clone)]
pub struct RedisRateLimiter {
    backend: RedisBackend,
}

impl RedisRateLimiter {
    /// A limiter over `backend`.
    pub fn new(backend: RedisBackend) -> Self {
        Self { backend }
    }

    /// The connection.
    pub fn backend(&self) -> &RedisBackend {
        &self.backend
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &str, limit: Limit) -> Result<Decision, LimitError> {
        let member = RedisBackend::new_member();
        Ok(self.backend.rate(key, limit, &member).await?.decision)
    }
}

/// [`QuotaCounter`] shared by every gateway node: a counter per key in Redis, created by the first
/// admitted request with the window as its TTL. State lives in Redis, so
/// [`QuotaCounter::flush`] does nothing.
#[derive(Debug, Clone)]
pub struct RedisQuotaCounter {
    backend: RedisBackend,
}

impl RedisQuotaCounter {
    /// A counter over `backend`.
    pub fn new(backend: RedisBackend) -> Self {
        Self { backend }
    }

    /// The connection.
    pub fn backend(&self) -> &RedisBackend {
        &self.backend
    }
}

#[async_trait]
impl QuotaCounter for RedisQuotaCounter {
    async fn consume(&self, key: &str, q: QuotaLimit) -> Result<Decision, LimitError> {
        self.backend.quota(key, q, true).await
    }

    async fn peek(&self, key: &str, q: QuotaLimit) -> Result<Decision, LimitError> {
        self.backend.quota(key, q, false).await
    }

    async fn reset(&self, key: &str) -> Result<(), LimitError> {
        self.backend.quota_reset(key).await
    }

    async fn flush(&self) -> Result<(), LimitError> {
        Ok(())
    }
}

/// [`SessionLimiter`] shared by every gateway node: the rate limit and the quota decided by one
/// Lua script over both keys, so a request counts against both or neither, in one round trip.
///
/// In a Redis Cluster both keys must hash to one slot; they do when the caller's keys carry the
/// same hash tag (`rate-limit-gold-{5f2b}`, `quota-gold-{5f2b}`). Keys in different slots are
/// still checked exactly, in two or three round trips: the rate slot is taken first and given
/// back if the quota refuses (meanwhile other requests see it taken, so a race can only refuse,
/// never over-admit). That case is logged once.
#[derive(Debug, Clone)]
pub struct RedisSessionLimiter {
    backend: RedisBackend,
}

impl RedisSessionLimiter {
    /// A limiter over `backend`.
    pub fn new(backend: RedisBackend) -> Self {
        Self { backend }
    }

    /// The connection.
    pub fn backend(&self) -> &RedisBackend {
        &self.backend
    }

    /// The rate-then-quota check in separate steps, for keys in different cluster slots.
    pub(crate) async fn check_split(
        &self,
        (rkey, limit): (&str, Limit),
        (qkey, q): (&str, QuotaLimit),
    ) -> Result<SessionDecision, LimitError> {
        let member = RedisBackend::new_member();
        let r = self.backend.rate(rkey, limit, &member).await?;
        if !r.decision.allowed {
            let qd = self.backend.quota(qkey, q, false).await?;
            return Ok(SessionDecision {
                verdict: Verdict::RateLimited,
                rate: Some(r.decision),
                quota: Some(qd),
            });
        }
        let qd = match self.backend.quota(qkey, q, true).await {
            Ok(d) => d,
            Err(e) => {
                // Unknown whether the quota counted it; give the rate slot back (best effort: if
                // this fails too, the slot stays taken, which only refuses more).
                let _ = self.backend.rate_release(rkey, &member, r.field).await;
                return Err(e);
            }
        };
        if qd.allowed {
            return Ok(SessionDecision {
                verdict: Verdict::Allowed,
                rate: Some(r.decision),
                quota: Some(qd),
            });
        }
        if let Err(e) = self.backend.rate_release(rkey, &member, r.field).await {
            tracing::debug!(error = %e, "could not give back a rate slot; it expires with the window");
        }
        // The rate part as it stands without this request: one more remaining; the oldest
        // request is unchanged unless this one was the only one.
        let remaining = r.decision.remaining.saturating_add(1).min(limit.rate);
        let reset = if remaining == limit.rate {
            Duration::ZERO
        } else {
            r.decision.reset
        };
        Ok(SessionDecision {
            verdict: Verdict::QuotaExceeded,
            rate: Some(Decision::allowed(limit.rate, remaining, reset)),
            quota: Some(qd),
        })
    }
}

static WARNED_CROSS_SLOT: AtomicBool = AtomicBool::new(false);

#[async_trait]
impl SessionLimiter for RedisSessionLimiter {
    async fn check(
        &self,
        rate: Option<(&str, Limit)>,
        quota: Option<(&str, QuotaLimit)>,
    ) -> Result<SessionDecision, LimitError> {
        match (rate, quota) {
            (None, None) => Ok(SessionDecision::UNLIMITED),
            (Some((key, limit)), None) => {
                let member = RedisBackend::new_member();
                let d = self.backend.rate(key, limit, &member).await?.decision;
                Ok(SessionDecision {
                    verdict: if d.allowed {
                        Verdict::Allowed
                    } else {
                        Verdict::RateLimited
                    },
                    rate: Some(d),
                    quota: None,
                })
            }
            (None, Some((key, q))) => {
                let d = self.backend.quota(key, q, true).await?;
                Ok(SessionDecision {
                    verdict: if d.allowed {
                        Verdict::Allowed
                    } else {
                        Verdict::QuotaExceeded
                    },
                    rate: None,
                    quota: Some(d),
                })
            }
            (Some((rkey, limit)), Some((qkey, q))) => {
                let b = &self.backend;
                if !b.same_slot(&b.rate_log_key(rkey), &b.quota_key(qkey)) {
                    if !WARNED_CROSS_SLOT.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            rate_key = rkey,
                            quota_key = qkey,
                            "rate and quota keys hash to different Redis Cluster slots: session \
                             checks take two round trips instead of one; give both keys the same \
                             hash tag, e.g. rate-limit-<scope>-{{<hash>}}"
                        );
                    }
                    return self.check_split((rkey, limit), (qkey, q)).await;
                }
                let (rd, qd) = b.session(rkey, limit, qkey, q).await?;
                let verdict = if !rd.allowed {
                    Verdict::RateLimited
                } else if !qd.allowed {
                    Verdict::QuotaExceeded
                } else {
                    Verdict::Allowed
                };
                Ok(SessionDecision {
                    verdict,
                    rate: Some(rd),
                    quota: Some(qd),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The split check needs a cluster to be chosen; here it is called directly against the local
    //! Redis (skipped when none answers).
    use super::*;
    use crate::redis::RedisConfig;

    async fn backend() -> Option<RedisBackend> {
        let cfg = RedisConfig {
            key_prefix: format!("gh-unit-{}:", RedisBackend::new_member()),
            ..RedisConfig::default()
        };
        let b = RedisBackend::from_url("redis://127.0.0.1:6379", cfg).ok()?;
        match b.ping().await {
            Ok(()) => Some(b),
            Err(e) => {
                eprintln!("skipped: no Redis on 127.0.0.1:6379 ({e})");
                None
            }
        }
    }

    #[tokio::test]
    async fn split_check_counts_both_or_neither() {
        let Some(b) = backend().await else { return };
        let s = RedisSessionLimiter::new(b.clone());
        for exact_max in [1024, 1] {
            let rk = format!("rate-{exact_max}");
            let qk = format!("quota-{exact_max}");
            let l = Limit::new(5, Duration::from_secs(60));
            let q = QuotaLimit::new(3, Duration::from_secs(60));
            let rb = RedisBackend::from_url(
                "redis://127.0.0.1:6379",
                RedisConfig {
                    exact_log_max: exact_max,
                    ..b.config().clone()
                },
            )
            .unwrap();
            let s2 = RedisSessionLimiter::new(rb);
            for i in 0..3 {
                let d = s2.check_split((&rk, l), (&qk, q)).await.unwrap();
                assert_eq!(d.verdict, Verdict::Allowed, "request {i}");
                assert_eq!(d.rate.unwrap().remaining, 5 - i - 1);
            }
            // Quota used up: refused, and the rate slot is given back.
            let d = s2.check_split((&rk, l), (&qk, q)).await.unwrap();
            assert_eq!(d.verdict, Verdict::QuotaExceeded);
            assert_eq!(d.rate.unwrap().remaining, 2);
            let d = s.check(Some((&rk, l)), None).await.unwrap().rate.unwrap();
            assert!(d.allowed);
            assert_eq!(d.remaining, 1, "exact_log_max {exact_max}");
            let mut c = ::redis::Client::open("redis://127.0.0.1:6379")
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let _: i64 = ::redis::cmd("DEL")
                .arg(b.rate_log_key(&rk))
                .arg(b.rate_counters_key(&rk))
                .arg(b.quota_key(&qk))
                .query_async(&mut c)
                .await
                .unwrap();
        }
    }
}
