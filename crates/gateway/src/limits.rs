//! Rate limits and quotas on the request path: the limiter objects the gateway holds, and quota
//! persistence over the [`Store`] so quota counters survive a restart.

use std::sync::Arc;

use async_trait::async_trait;
use gatehouse_ratelimit::{
    LimitError, LocalQuotaCounter, LocalRateLimiter, LocalSessionLimiter, QuotaConfig,
    QuotaPersistence, QuotaRecord, RateLimiterConfig,
};
use gatehouse_store::{QuotaRow, Store};

/// Quota counters persisted in the configuration store (`quota_counters` table).
pub struct StoreQuotaPersistence {
    store: Arc<dyn Store>,
}

impl StoreQuotaPersistence {
    /// Persistence over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl QuotaPersistence for StoreQuotaPersistence {
    async fn load(&self) -> Result<Vec<QuotaRecord>, LimitError> {
        let rows = self
            .store
            .load_quota_counters()
            .await
            .map_err(LimitError::persistence)?;
        Ok(rows
            .into_iter()
            .map(|r| QuotaRecord {
                key: r.key,
                used: r.used.max(0) as u64,
                window_start_unix: r.window_start.max(0) as u64,
                window_secs: r.window_secs.max(0) as u64,
            })
            .collect())
    }

    async fn save(&self, batch: Vec<QuotaRecord>) -> Result<(), LimitError> {
        let rows: Vec<QuotaRow> = batch
            .into_iter()
            .map(|r| QuotaRow {
                key: r.key,
                used: i64::try_from(r.used).unwrap_or(i64::MAX),
                window_start: i64::try_from(r.window_start_unix).unwrap_or(i64::MAX),
                window_secs: i64::try_from(r.window_secs).unwrap_or(i64::MAX),
            })
            .collect();
        self.store
            .save_quota_counters(&rows)
            .await
            .map_err(LimitError::persistence)
    }
}

/// The limiters of one gateway process.
#[derive(Clone)]
pub struct Limiters {
    /// API-wide `global_rate_limit`s.
    pub global: Arc<LocalRateLimiter>,
    /// Sessions' rate limits and quotas, decided together.
    pub sessions: Arc<LocalSessionLimiter>,
    /// The quota counter (flushed on shutdown).
    pub quota: Arc<LocalQuotaCounter>,
}

impl Limiters {
    /// Local limiters whose quota counters are loaded from, and flushed to, `store`.
    pub async fn local(store: Arc<dyn Store>) -> Result<Self, LimitError> {
        let rate = Arc::new(LocalRateLimiter::new(RateLimiterConfig::default()));
        let quota = LocalQuotaCounter::load(
            Arc::new(StoreQuotaPersistence::new(store)),
            QuotaConfig::default(),
        )
        .await?;
        Ok(Self {
            global: Arc::new(LocalRateLimiter::new(RateLimiterConfig::default())),
            sessions: Arc::new(LocalSessionLimiter::new(rate, Arc::clone(&quota))),
            quota,
        })
    }
}
