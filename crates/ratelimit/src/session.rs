//! The combined per-request check: rate limit, then quota, as one decision.

use std::sync::Arc;

use async_trait::async_trait;

use crate::quota::LocalQuotaCounter;
use crate::rate::LocalRateLimiter;
use crate::{Decision, Limit, LimitError, QuotaLimit};

/// Which limit stopped a request, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Both limits admitted the request; both counted it.
    Allowed,
    /// The rate limit refused it (429). Nothing was counted.
    RateLimited,
    /// The rate limit would admit it but the quota is used up (403). Nothing was counted.
    QuotaExceeded,
}

/// Which decision the `X-RateLimit-*` headers carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HeaderSource {
    /// The quota (Tyk's historical behaviour), falling back to the rate limit without a quota.
    #[default]
    Quota,
    /// The rate limit (Tyk's `rate_limit_response_headers`), falling back to the quota.
    RateLimit,
}

/// The outcome of [`SessionLimiter::check`].
///
/// `rate` is `Some` exactly when a rate limit was given, `quota` exactly when a quota was given,
/// whatever the verdict: on `RateLimited` the quota part is a peek (nothing consumed); on
/// `QuotaExceeded` the rate part describes the state without this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionDecision {
    /// Admitted, or which limit refused.
    pub verdict: Verdict,
    /// The rate-limit part, when a rate limit was given.
    pub rate: Option<Decision>,
    /// The quota part, when a quota was given.
    pub quota: Option<Decision>,
}

impl SessionDecision {
    /// No limit applies.
    pub const UNLIMITED: Self = Self {
        verdict: Verdict::Allowed,
        rate: None,
        quota: None,
    };

    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        self.verdict == Verdict::Allowed
    }

    /// The decision whose `limit`/`remaining`/`reset` go into `X-RateLimit-*`, or `None` when no
    /// limit applies.
    pub fn header_decision(&self, source: HeaderSource) -> Option<&Decision> {
        match source {
            HeaderSource::Quota => self.quota.as_ref().or(self.rate.as_ref()),
            HeaderSource::RateLimit => self.rate.as_ref().or(self.quota.as_ref()),
        }
    }

    /// `Retry-After` for a refusal: the refusing limit's `retry_after`.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self.verdict {
            Verdict::Allowed => None,
            Verdict::RateLimited => self.rate.and_then(|d| d.retry_after),
            Verdict::QuotaExceeded => self.quota.and_then(|d| d.retry_after),
        }
    }
}

/// One session's rate limit and quota, decided together: a request counts against both or
/// against neither.
#[async_trait]
pub trait SessionLimiter: Send + Sync {
    /// Checks `rate` (a key and its limit) first, then `quota`; `None` means that limit does not
    /// apply (no rate limit, unlimited quota).
    async fn check(
        &self,
        rate: Option<(&str, Limit)>,
        quota: Option<(&str, QuotaLimit)>,
    ) -> Result<SessionDecision, LimitError>;
}

/// [`SessionLimiter`] over a [`LocalRateLimiter`] and a [`LocalQuotaCounter`].
///
/// For a request with both limits it holds the rate key's shard lock while it consumes the quota,
/// and records the rate slot only if the quota admitted: exact, with no rollback and no window in
/// which another request sees a half-taken decision. Locks are always taken rate first, then
/// quota, and neither component takes the other's locks, so this cannot deadlock.
#[derive(Debug, Clone)]
pub struct LocalSessionLimiter {
    rate: Arc<LocalRateLimiter>,
    quota: Arc<LocalQuotaCounter>,
}

impl LocalSessionLimiter {
    /// Combines the two; they stay usable on their own (e.g. the rate limiter for
    /// `global_rate_limit`).
    pub fn new(rate: Arc<LocalRateLimiter>, quota: Arc<LocalQuotaCounter>) -> Self {
        Self { rate, quota }
    }

    /// The rate limiter.
    pub fn rate_limiter(&self) -> &Arc<LocalRateLimiter> {
        &self.rate
    }

    /// The quota counter.
    pub fn quota_counter(&self) -> &Arc<LocalQuotaCounter> {
        &self.quota
    }

    /// The synchronous decision behind [`SessionLimiter::check`].
    pub fn check_now(
        &self,
        rate: Option<(&str, Limit)>,
        quota: Option<(&str, QuotaLimit)>,
    ) -> Result<SessionDecision, LimitError> {
        match (rate, quota) {
            (None, None) => Ok(SessionDecision::UNLIMITED),
            (Some((key, limit)), None) => {
                let d = self.rate.check_now(key, limit)?;
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
                let d = self.quota.consume_now(key, q)?;
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
                let mono = self.rate.now_ns();
                let unix = self.quota.now();
                self.rate.with_state(rkey, limit, mono, |rs| {
                    let rd = rs.decision(mono, limit, true);
                    if !rd.allowed {
                        return Ok(SessionDecision {
                            verdict: Verdict::RateLimited,
                            rate: Some(rd),
                            quota: Some(self.quota.peek_now(qkey, q)),
                        });
                    }
                    let qd = self
                        .quota
                        .with_state(qkey, unix, |qs| qs.consume(unix, q))?;
                    if qd.allowed {
                        rs.admit(mono);
                        Ok(SessionDecision {
                            verdict: Verdict::Allowed,
                            rate: Some(rd),
                            quota: Some(qd),
                        })
                    } else {
                        Ok(SessionDecision {
                            verdict: Verdict::QuotaExceeded,
                            rate: Some(rs.decision(mono, limit, false)),
                            quota: Some(qd),
                        })
                    }
                })?
            }
        }
    }
}

#[async_trait]
impl SessionLimiter for LocalSessionLimiter {
    async fn check(
        &self,
        rate: Option<(&str, Limit)>,
        quota: Option<(&str, QuotaLimit)>,
    ) -> Result<SessionDecision, LimitError> {
        self.check_now(rate, quota)
    }
}
