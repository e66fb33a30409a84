use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use gatehouse_ratelimit::{
    Clock, LimitError, LocalQuotaCounter, ManualClock, MemoryQuotaPersistence, QuotaConfig,
    QuotaCounter, QuotaLimit, QuotaPersistence, QuotaRecord,
};

use crate::{T0, clock, ms, secs};

/// No background flusher: tests flush explicitly unless they test the flusher.
fn manual_flush() -> QuotaConfig {
    QuotaConfig {
        flush_interval: std::time::Duration::ZERO,
        ..QuotaConfig::default()
    }
}

async fn counter(
    store: &Arc<MemoryQuotaPersistence>,
    clock: &Arc<ManualClock>,
) -> Arc<LocalQuotaCounter> {
    LocalQuotaCounter::load_with_clock(store.clone(), manual_flush(), clock.clone())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_of_thousand_admits_exactly_thousand_under_concurrency() {
    let c = clock();
    let store = Arc::new(MemoryQuotaPersistence::new());
    let qc: Arc<dyn QuotaCounter> = counter(&store, &c).await;
    let q = QuotaLimit::new(1000, secs(3600));
    let admitted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let qc = qc.clone();
        let admitted = admitted.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..40 {
                if qc.consume("quota-gold-abc", q).await.unwrap().allowed {
                    admitted.fetch_add(1, Ordering::Relaxed);
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(admitted.load(Ordering::Relaxed), 1000);
    qc.flush().await.unwrap();
    let r = store.get("quota-gold-abc").unwrap();
    assert_eq!(r.used, 1000);
    assert_eq!(r.window_start_unix, T0.as_secs());
    assert_eq!(r.window_secs, 3600);
}

#[tokio::test]
async fn remaining_counts_down_then_blocks_until_the_window_ends() {
    let c = clock();
    let qc = counter(&Arc::new(MemoryQuotaPersistence::new()), &c).await;
    let q = QuotaLimit::new(3, secs(60));
    let mut seen = Vec::new();
    for _ in 0..3 {
        let d = qc.consume("k", q).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.limit, 3);
        seen.push((d.remaining, d.reset));
        c.advance(secs(10));
    }
    assert_eq!(seen, [(2, secs(60)), (1, secs(50)), (0, secs(40))]);
    // t = 30 s: blocked; the window (opened at the first request) ends at 60 s.
    let d = qc.consume("k", q).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(
        (d.remaining, d.reset, d.retry_after),
        (0, secs(30), Some(secs(30)))
    );
    // Refusals do not count: peek still shows 3 used.
    let p = qc.peek("k", q).await.unwrap();
    assert!(!p.allowed);
    assert_eq!(p.remaining, 0);
    c.advance(ms(29_500));
    let d = qc.consume("k", q).await.unwrap();
    assert_eq!(d.retry_after, Some(secs(1)));
}

#[tokio::test]
async fn renewal_is_lazy_and_opens_the_window_at_the_next_request() {
    let c = clock();
    let store = Arc::new(MemoryQuotaPersistence::new());
    let qc = counter(&store, &c).await;
    let q = QuotaLimit::new(2, secs(60));
    assert!(qc.consume("k", q).await.unwrap().allowed);
    assert!(qc.consume("k", q).await.unwrap().allowed);
    assert!(!qc.consume("k", q).await.unwrap().allowed);
    qc.flush().await.unwrap();
    // Long after the window: nothing happened by itself...
    c.advance(secs(500));
    assert_eq!(store.get("k").unwrap().used, 2);
    let p = qc.peek("k", q).await.unwrap();
    assert!(p.allowed);
    assert_eq!((p.remaining, p.reset), (2, secs(60)));
    // ...the next request opens a new window starting now.
    let d = qc.consume("k", q).await.unwrap();
    assert!(d.allowed);
    assert_eq!((d.remaining, d.reset), (1, secs(60)));
    qc.flush().await.unwrap();
    let r = store.get("k").unwrap();
    assert_eq!((r.used, r.window_start_unix), (1, T0.as_secs() + 500));
}

#[tokio::test]
async fn peek_does_not_consume_or_create() {
    let c = clock();
    let store = Arc::new(MemoryQuotaPersistence::new());
    let qc = counter(&store, &c).await;
    let q = QuotaLimit::new(5, secs(60));
    for _ in 0..3 {
        let p = qc.peek("k", q).await.unwrap();
        assert!(p.allowed);
        assert_eq!(p.remaining, 5);
    }
    assert!(qc.is_empty());
    qc.consume("k", q).await.unwrap();
    assert_eq!(qc.peek("k", q).await.unwrap().remaining, 4);
}

#[tokio::test]
async fn raised_or_lowered_max_applies_at_once() {
    let c = clock();
    let qc = counter(&Arc::new(MemoryQuotaPersistence::new()), &c).await;
    for _ in 0..5 {
        qc.consume("k", QuotaLimit::new(10, secs(60)))
            .await
            .unwrap();
    }
    assert!(
        !qc.consume("k", QuotaLimit::new(5, secs(60)))
            .await
            .unwrap()
            .allowed
    );
    let d = qc
        .consume("k", QuotaLimit::new(111, secs(60)))
        .await
        .unwrap();
    assert_eq!(d.remaining, 105);
}

#[tokio::test]
async fn counters_survive_a_restart() {
    let c = clock();
    let store = Arc::new(MemoryQuotaPersistence::new());
    let q = QuotaLimit::new(10, secs(3600));
    {
        let qc = counter(&store, &c).await;
        for _ in 0..5 {
            qc.consume("quota-a", q).await.unwrap();
        }
        qc.consume("quota-b", q).await.unwrap();
        qc.flush().await.unwrap();
    }
    assert_eq!(
        store.snapshot(),
        [
            QuotaRecord {
                key: "quota-a".into(),
                used: 5,
                window_start_unix: T0.as_secs(),
                window_secs: 3600
            },
            QuotaRecord {
                key: "quota-b".into(),
                used: 1,
                window_start_unix: T0.as_secs(),
                window_secs: 3600
            },
        ]
    );
    // Restart 10 minutes later: counting continues in the same window.
    c.advance(secs(600));
    let qc = counter(&store, &c).await;
    assert_eq!(qc.len(), 2);
    let d = qc.consume("quota-a", q).await.unwrap();
    assert_eq!((d.remaining, d.reset), (4, secs(3000)));
    qc.flush().await.unwrap();
    assert_eq!(store.get("quota-a").unwrap().used, 6);
}

#[tokio::test]
async fn expired_windows_are_not_resurrected() {
    let c = clock();
    let q = QuotaLimit::new(10, secs(60));
    let store = Arc::new(MemoryQuotaPersistence::with_records([
        QuotaRecord {
            key: "old".into(),
            used: 10,
            window_start_unix: T0.as_secs() - 60,
            window_secs: 60,
        },
        QuotaRecord {
            key: "live".into(),
            used: 10,
            window_start_unix: T0.as_secs() - 59,
            window_secs: 60,
        },
        QuotaRecord {
            key: "was-reset".into(),
            used: 0,
            window_start_unix: 0,
            window_secs: 0,
        },
    ]));
    let qc = counter(&store, &c).await;
    assert_eq!(qc.len(), 1);
    let d = qc.consume("old", q).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 9));
    let d = qc.consume("live", q).await.unwrap();
    assert_eq!((d.allowed, d.reset), (false, secs(1)));
    assert!(qc.consume("was-reset", q).await.unwrap().allowed);
}

#[tokio::test]
async fn reset_forgets_the_window_and_is_persisted() {
    let c = clock();
    let store = Arc::new(MemoryQuotaPersistence::new());
    let q = QuotaLimit::new(2, secs(3600));
    let qc = counter(&store, &c).await;
    qc.consume("k", q).await.unwrap();
    qc.consume("k", q).await.unwrap();
    assert!(!qc.consume("k", q).await.unwrap().allowed);
    qc.flush().await.unwrap();
    qc.reset("k").await.unwrap();
    qc.reset("never-seen").await.unwrap();
    qc.flush().await.unwrap();
    assert!(store.get("k").unwrap().is_expired(c.unix().as_secs()));
    // After a restart the reset holds.
    let qc = counter(&store, &c).await;
    let d = qc.consume("k", q).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 1));
}

/// A store whose saves can be made to fail.
#[derive(Default)]
struct FlakyStore {
    inner: MemoryQuotaPersistence,
    failing: AtomicBool,
    saves: AtomicU64,
}

#[async_trait]
impl QuotaPersistence for FlakyStore {
    async fn load(&self) -> Result<Vec<QuotaRecord>, LimitError> {
        self.inner.load().await
    }
    async fn save(&self, batch: Vec<QuotaRecord>) -> Result<(), LimitError> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(LimitError::persistence("database is locked"));
        }
        self.inner.save(batch).await
    }
}

#[tokio::test]
async fn a_failed_save_is_retried_with_current_values() {
    let c = clock();
    let store = Arc::new(FlakyStore::default());
    let qc = LocalQuotaCounter::load_with_clock(store.clone(), manual_flush(), c.clone())
        .await
        .unwrap();
    let q = QuotaLimit::new(10, secs(60));
    qc.consume("k", q).await.unwrap();
    store.failing.store(true, Ordering::SeqCst);
    let e = qc.flush().await.unwrap_err();
    assert!(matches!(e, LimitError::Persistence(_)), "{e}");
    qc.consume("k", q).await.unwrap();
    store.failing.store(false, Ordering::SeqCst);
    qc.flush().await.unwrap();
    assert_eq!(store.inner.get("k").unwrap().used, 2);
    // Nothing dirty: no further save.
    let saves = store.saves.load(Ordering::SeqCst);
    qc.flush().await.unwrap();
    assert_eq!(store.saves.load(Ordering::SeqCst), saves);
}

#[tokio::test(start_paused = true)]
async fn the_background_task_flushes_every_interval() {
    let store = Arc::new(MemoryQuotaPersistence::new());
    let qc = LocalQuotaCounter::load(
        store.clone(),
        QuotaConfig {
            flush_interval: ms(1000),
            ..QuotaConfig::default()
        },
    )
    .await
    .unwrap();
    let q = QuotaLimit::new(10, secs(60));
    qc.consume("k", q).await.unwrap();
    assert!(store.get("k").is_none());
    // Paused tokio time: this advances the clock instantly, running the flusher's tick at 1 s.
    tokio::time::sleep(ms(1100)).await;
    assert_eq!(store.get("k").unwrap().used, 1);
    qc.consume("k", q).await.unwrap();
    tokio::time::sleep(ms(1000)).await;
    assert_eq!(store.get("k").unwrap().used, 2);
    // Dropping the counter ends the task (it only holds a weak reference).
    let weak = Arc::downgrade(&qc);
    drop(qc);
    assert!(weak.upgrade().is_none());
}

#[tokio::test]
async fn idle_saved_keys_are_evicted_dirty_ones_are_kept() {
    let c = clock();
    let store = Arc::new(MemoryQuotaPersistence::new());
    let qc = LocalQuotaCounter::load_with_clock(
        store.clone(),
        QuotaConfig {
            flush_interval: std::time::Duration::ZERO,
            shards: 2,
            max_keys: 100,
        },
        c.clone(),
    )
    .await
    .unwrap();
    let q = QuotaLimit::new(10, secs(60));
    let mut refused = 0;
    for i in 0..200 {
        match qc.consume(&format!("k{i}"), q).await {
            Ok(d) => assert!(d.allowed),
            Err(LimitError::CapacityExceeded { .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(qc.len() <= 100);
    assert_eq!(qc.len() + refused, 200);
    // Windows over but not yet saved: kept (evicting would lose the unsaved count).
    c.advance(secs(61));
    assert_eq!(qc.sweep(), 0);
    qc.flush().await.unwrap();
    let n = qc.len();
    assert_eq!(qc.sweep(), n); // everything goes
    assert!(qc.is_empty());
    // Room again.
    assert!(qc.consume("new", q).await.unwrap().allowed);
}

#[test]
fn unlimited_quotas_are_none() {
    assert_eq!(QuotaLimit::from_tyk(-1, 3600), None);
    assert_eq!(QuotaLimit::from_tyk(0, 3600), None);
    assert_eq!(QuotaLimit::from_tyk(0, 0), None);
    assert!(QuotaLimit::from_tyk(1, 1).is_some());
    assert_eq!(
        QuotaLimit::from_tyk(1, 0),
        Some(QuotaLimit::never_renewing(1))
    );
}

#[tokio::test]
async fn a_never_renewing_quota_never_renews_and_survives_restarts() {
    let c = clock();
    let store = Arc::new(MemoryQuotaPersistence::new());
    let qc = counter(&store, &c).await;
    // Tyk's quota_renewal_rate 0: 3 requests, ever.
    let q = QuotaLimit::from_tyk(3, 0).unwrap();
    assert!(!q.renews());
    for left in [2, 1, 0] {
        assert_eq!(qc.consume("once", q).await.unwrap().remaining, left);
    }
    let d = qc.consume("once", q).await.unwrap();
    assert!(!d.allowed);
    // Ten years later, still refused; nothing was swept.
    c.advance(secs(10 * 365 * 86_400));
    assert_eq!(qc.sweep(), 0);
    assert!(!qc.consume("once", q).await.unwrap().allowed);
    assert!(!qc.peek("once", q).await.unwrap().allowed);
    // The persisted window fits an i64 of seconds and is not expired: a restart keeps it.
    qc.flush().await.unwrap();
    let r = store.get("once").unwrap();
    assert_eq!((r.used, r.window_start_unix), (3, T0.as_secs()));
    assert_eq!(r.window_secs, 100 * 365 * 86_400);
    assert!(i64::try_from(r.window_start_unix + r.window_secs).is_ok());
    drop(qc);
    let qc = counter(&store, &c).await;
    assert!(!qc.consume("once", q).await.unwrap().allowed);
}

#[tokio::test]
async fn a_shortened_period_ends_the_current_window_within_one_new_period() {
    let c = clock();
    let store = Arc::new(MemoryQuotaPersistence::new());
    let qc = counter(&store, &c).await;
    let never = QuotaLimit::never_renewing(2);
    qc.consume("k", never).await.unwrap();
    qc.consume("k", never).await.unwrap();
    assert!(!qc.consume("k", never).await.unwrap().allowed);
    // The policy now renews hourly: the used-up window ends an hour from now, not in 100 years.
    c.advance(secs(600));
    let hourly = QuotaLimit::new(2, secs(3600));
    let peeked = qc.peek("k", hourly).await.unwrap();
    assert_eq!((peeked.allowed, peeked.reset), (false, secs(3600)));
    let d = qc.consume("k", hourly).await.unwrap();
    assert_eq!((d.allowed, d.reset), (false, secs(3600)));
    // The shortened window is saved.
    qc.flush().await.unwrap();
    assert_eq!(store.get("k").unwrap().window_secs, 600 + 3600);
    c.advance(secs(3600));
    assert!(qc.consume("k", hourly).await.unwrap().allowed);
    // A longer period applies from the next window only.
    let daily = QuotaLimit::new(2, secs(86_400));
    let d = qc.consume("k", daily).await.unwrap();
    assert_eq!(
        d.reset,
        secs(3600),
        "the current hourly window keeps its end"
    );
}
