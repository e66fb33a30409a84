//! Rate limits and quotas on the request path: the limiter objects the gateway holds, and quota
//! persistence over the [`Store`] so quota counters survive a restart.

use std::sync::Arc;

use async_trait::async_trait;
use gatehouse_ratelimit::{
    FailoverConfig, FailoverRateLimiter, FailoverSessionLimiter, FailureMode, LimitError,
    LocalQuotaCounter, LocalRateLimiter, LocalSessionLimiter, MemoryQuotaPersistence, QuotaConfig,
    QuotaPersistence, QuotaRecord, RateLimiter, RateLimiterConfig, RedisBackend, RedisConfig,
    RedisRateLimiter, RedisSessionLimiter, SessionLimiter,
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

/// Where rate-limit and quota counters live.
#[derive(Debug, Clone)]
pub enum CounterBackend {
    /// In this process (one gateway node); quota counters persisted in the store.
    Local,
    /// In Redis, shared by every gateway node: a single URL, or several URLs of a Redis Cluster.
    Redis {
        /// `redis://…` / `rediss://…` URLs (more than one: cluster nodes).
        urls: Vec<String>,
        /// What to do while Redis cannot be reached.
        failure_mode: FailureMode,
    },
}

/// The limiters of one gateway process.
#[derive(Clone)]
pub struct Limiters {
    /// API-wide `global_rate_limit`s.
    pub global: Arc<dyn RateLimiter>,
    /// Sessions' rate limits and quotas, decided together.
    pub sessions: Arc<dyn SessionLimiter>,
    /// The local quota counter (flushed on shutdown).
    pub local_quota: Arc<LocalQuotaCounter>,
    /// Fallback statistics when Redis is used.
    pub failover: Option<Arc<FailoverSessionLimiter>>,
}

impl Limiters {
    /// Limiters on `backend`. Local quota counters are loaded from, and flushed to, `store` (with
    /// Redis they only serve as the fallback, and are kept in memory).
    pub async fn new(backend: &CounterBackend, store: Arc<dyn Store>) -> Result<Self, LimitError> {
        let persistence: Arc<dyn QuotaPersistence> = match backend {
            CounterBackend::Local => Arc::new(StoreQuotaPersistence::new(store)),
            CounterBackend::Redis { .. } => Arc::new(MemoryQuotaPersistence::new()),
        };
        let local_rate = Arc::new(LocalRateLimiter::new(RateLimiterConfig::default()));
        let local_quota = LocalQuotaCounter::load(persistence, QuotaConfig::default()).await?;
        let local_sessions: Arc<dyn SessionLimiter> = Arc::new(LocalSessionLimiter::new(
            local_rate,
            Arc::clone(&local_quota),
        ));
        let local_global: Arc<dyn RateLimiter> =
            Arc::new(LocalRateLimiter::new(RateLimiterConfig::default()));
        match backend {
            CounterBackend::Local => Ok(Self {
                global: local_global,
                sessions: local_sessions,
                local_quota,
                failover: None,
            }),
            CounterBackend::Redis { urls, failure_mode } => {
                let cfg = RedisConfig::default();
                let redis = if urls.len() > 1 {
                    RedisBackend::cluster(urls, cfg)?
                } else {
                    RedisBackend::from_url(&urls[0], cfg)?
                };
                let fo = FailoverConfig {
                    mode: *failure_mode,
                    ..FailoverConfig::default()
                };
                let sessions = Arc::new(FailoverSessionLimiter::new(
                    Arc::new(RedisSessionLimiter::new(redis.clone())),
                    local_sessions,
                    fo,
                ));
                let global = Arc::new(FailoverRateLimiter::new(
                    Arc::new(RedisRateLimiter::new(redis)),
                    local_global,
                    fo,
                ));
                Ok(Self {
                    global,
                    sessions: sessions.clone(),
                    local_quota,
                    failover: Some(sessions),
                })
            }
        }
    }
}
