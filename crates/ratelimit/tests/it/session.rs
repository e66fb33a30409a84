use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gatehouse_ratelimit::{
    HeaderSource, Limit, LocalQuotaCounter, LocalRateLimiter, LocalSessionLimiter, ManualClock,
    MemoryQuotaPersistence, QuotaConfig, QuotaCounter, QuotaLimit, RateLimiterConfig,
    SessionDecision, SessionLimiter, Verdict,
};

use crate::{clock, secs};

async fn session(c: &Arc<ManualClock>) -> LocalSessionLimiter {
    let rate = Arc::new(LocalRateLimiter::with_clock(
        RateLimiterConfig::default(),
        c.clone(),
    ));
    let quota = LocalQuotaCounter::load_with_clock(
        Arc::new(MemoryQuotaPersistence::new()),
        QuotaConfig {
            flush_interval: std::time::Duration::ZERO,
            ..QuotaConfig::default()
        },
        c.clone(),
    )
    .await
    .unwrap();
    LocalSessionLimiter::new(rate, quota)
}

const RK: &str = "rate-limit-gold-abc";
const QK: &str = "quota-gold-abc";

#[tokio::test]
async fn a_rate_refusal_consumes_no_quota() {
    let c = clock();
    let s = session(&c).await;
    let (l, q) = (Limit::new(2, secs(60)), QuotaLimit::new(10, secs(3600)));
    let mut verdicts = Vec::new();
    for _ in 0..5 {
        let d = s.check(Some((RK, l)), Some((QK, q))).await.unwrap();
        verdicts.push(d.verdict);
        if d.verdict == Verdict::RateLimited {
            // The quota part is a peek: 2 used, 8 left.
            assert_eq!(d.quota.unwrap().remaining, 8);
            assert_eq!(d.retry_after(), Some(secs(60)));
        }
    }
    assert_eq!(
        verdicts,
        [
            Verdict::Allowed,
            Verdict::Allowed,
            Verdict::RateLimited,
            Verdict::RateLimited,
            Verdict::RateLimited
        ]
    );
    assert_eq!(s.quota_counter().peek(QK, q).await.unwrap().remaining, 8);
}

#[tokio::test]
async fn a_quota_refusal_takes_no_rate_slot() {
    let c = clock();
    let s = session(&c).await;
    let (l, q) = (Limit::new(5, secs(60)), QuotaLimit::new(2, secs(3600)));
    let mut verdicts = Vec::new();
    for _ in 0..5 {
        let d = s.check(Some((RK, l)), Some((QK, q))).await.unwrap();
        verdicts.push(d.verdict);
        if d.verdict == Verdict::QuotaExceeded {
            // Rate part without this request: 2 of 5 used.
            assert_eq!(d.rate.unwrap().remaining, 3);
            assert!(d.rate.unwrap().allowed);
            assert_eq!(d.retry_after(), Some(secs(3600)));
        }
    }
    assert_eq!(
        verdicts,
        [
            Verdict::Allowed,
            Verdict::Allowed,
            Verdict::QuotaExceeded,
            Verdict::QuotaExceeded,
            Verdict::QuotaExceeded
        ]
    );
    // Only the two admitted requests hold rate slots.
    let d = s.rate_limiter().check_now(RK, l).unwrap();
    assert_eq!(d.remaining, 2);
}

async fn concurrent(rate: u64, quota: u64) -> (u64, u64) {
    let c = clock();
    let s: Arc<dyn SessionLimiter> = Arc::new(session(&c).await);
    let (l, q) = (
        Limit::new(rate, secs(60)),
        QuotaLimit::new(quota, secs(3600)),
    );
    let admitted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let s = s.clone();
        let admitted = admitted.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                let d = s.check(Some((RK, l)), Some((QK, q))).await.unwrap();
                if d.is_allowed() {
                    admitted.fetch_add(1, Ordering::Relaxed);
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Peek both afterwards.
    let after = s.check(Some((RK, l)), Some((QK, q))).await.unwrap();
    let quota_used = quota - after.quota.unwrap().remaining;
    (admitted.load(Ordering::Relaxed), quota_used)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn combined_check_is_exact_under_concurrency() {
    // Rate binds: 100 admitted, 100 quota used.
    assert_eq!(concurrent(100, 1000).await, (100, 100));
    // Quota binds: 30 admitted; the rate limit saw only those 30.
    assert_eq!(concurrent(100, 30).await, (30, 30));
}

#[tokio::test]
async fn single_limit_and_no_limit() {
    let c = clock();
    let s = session(&c).await;
    assert_eq!(
        s.check(None, None).await.unwrap(),
        SessionDecision::UNLIMITED
    );
    let d = s
        .check(Some((RK, Limit::new(1, secs(1)))), None)
        .await
        .unwrap();
    assert!(d.is_allowed() && d.quota.is_none());
    let d = s
        .check(Some((RK, Limit::new(1, secs(1)))), None)
        .await
        .unwrap();
    assert_eq!(d.verdict, Verdict::RateLimited);
    let q = QuotaLimit::new(1, secs(60));
    assert!(s.check(None, Some((QK, q))).await.unwrap().is_allowed());
    let d = s.check(None, Some((QK, q))).await.unwrap();
    assert_eq!(d.verdict, Verdict::QuotaExceeded);
    assert!(d.rate.is_none());
}

#[tokio::test]
async fn header_source_picks_quota_or_rate() {
    let c = clock();
    let s = session(&c).await;
    let d = s
        .check(
            Some((RK, Limit::new(10, secs(60)))),
            Some((QK, QuotaLimit::new(1000, secs(3600)))),
        )
        .await
        .unwrap();
    let h = d.header_decision(HeaderSource::Quota).unwrap();
    assert_eq!((h.limit, h.remaining, h.reset_secs()), (1000, 999, 3600));
    let h = d.header_decision(HeaderSource::RateLimit).unwrap();
    assert_eq!((h.limit, h.remaining, h.reset_secs()), (10, 9, 60));
    let d = s
        .check(Some((RK, Limit::new(10, secs(60)))), None)
        .await
        .unwrap();
    assert_eq!(d.header_decision(HeaderSource::Quota).unwrap().limit, 10);
    assert_eq!(
        SessionDecision::UNLIMITED.header_decision(HeaderSource::Quota),
        None
    );
}
