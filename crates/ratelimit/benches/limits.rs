//! One rate check and one quota consume on an existing key, plus the variants the gateway may
//! use. Run: `cargo bench -p gatehouse-ratelimit`.

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_ratelimit::{
    Limit, LocalQuotaCounter, LocalRateLimiter, LocalSessionLimiter, MemoryQuotaPersistence,
    QuotaConfig, QuotaLimit, RateLimiter, RateLimiterConfig,
};

/// Polls a future that never waits (the local limiters) to completion, without a runtime.
fn ready<T>(f: impl Future<Output = T>) -> T {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("local limiters never wait"),
    }
}

fn quota_counter(rt: &tokio::runtime::Runtime) -> Arc<LocalQuotaCounter> {
    rt.block_on(LocalQuotaCounter::load(
        Arc::new(MemoryQuotaPersistence::new()),
        QuotaConfig::default(),
    ))
    .unwrap()
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = "rate-limit-5f2b1c0d-9d3e6a4b8c7f1e2d3c4b5a6978695a4b";
    let qkey = "quota-5f2b1c0d-9d3e6a4b8c7f1e2d3c4b5a6978695a4b";

    // Log mode, steady state: every call admits (push) and one old entry leaves (pop).
    let rl = LocalRateLimiter::new(RateLimiterConfig {
        exact_log_max: u64::MAX,
        ..RateLimiterConfig::default()
    });
    let admit = Limit::new(1 << 40, Duration::from_millis(1));
    rl.check_now(key, admit).unwrap();
    c.bench_function("rate/check_now admitted (log)", |b| {
        b.iter(|| black_box(rl.check_now(black_box(key), admit).unwrap()))
    });

    // Refused: 100 per minute, used up.
    let rl = LocalRateLimiter::new(RateLimiterConfig::default());
    let full = Limit::new(100, Duration::from_secs(60));
    for _ in 0..100 {
        rl.check_now(key, full).unwrap();
    }
    c.bench_function("rate/check_now refused (log)", |b| {
        b.iter(|| black_box(rl.check_now(black_box(key), full).unwrap()))
    });

    // Counter mode (rate above exact_log_max).
    let big = Limit::new(1 << 40, Duration::from_secs(60));
    rl.check_now("counter", big).unwrap();
    c.bench_function("rate/check_now admitted (counters)", |b| {
        b.iter(|| black_box(rl.check_now(black_box("counter"), big).unwrap()))
    });

    // Through `Arc<dyn RateLimiter>`: adds the boxed future of async_trait.
    let dynrl: Arc<dyn RateLimiter> = Arc::new(LocalRateLimiter::new(RateLimiterConfig {
        exact_log_max: u64::MAX,
        ..RateLimiterConfig::default()
    }));
    c.bench_function("rate/dyn check admitted (log)", |b| {
        b.iter(|| black_box(ready(dynrl.check(black_box(key), admit)).unwrap()))
    });

    // 100k keys in turn: the table no longer fits in cache.
    let rl = LocalRateLimiter::new(RateLimiterConfig::default());
    let keys: Vec<String> = (0..100_000)
        .map(|i| format!("rate-limit-{i:032x}"))
        .collect();
    let many = Limit::new(1000, Duration::from_millis(1));
    for k in &keys {
        rl.check_now(k, many).unwrap();
    }
    let mut i = 0;
    c.bench_function("rate/check_now 100k keys round robin", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(rl.check_now(&keys[i], many).unwrap())
        })
    });

    let qc = quota_counter(&rt);
    let q = QuotaLimit::new(u64::MAX, Duration::from_secs(86_400));
    qc.consume_now(qkey, q).unwrap();
    c.bench_function("quota/consume_now", |b| {
        b.iter(|| black_box(qc.consume_now(black_box(qkey), q).unwrap()))
    });

    // The gateway's per-request call: rate limit + quota, one decision.
    let session = LocalSessionLimiter::new(
        Arc::new(LocalRateLimiter::new(RateLimiterConfig {
            exact_log_max: u64::MAX,
            ..RateLimiterConfig::default()
        })),
        quota_counter(&rt),
    );
    c.bench_function("session/check_now rate+quota", |b| {
        b.iter(|| {
            black_box(
                session
                    .check_now(Some((black_box(key), admit)), Some((black_box(qkey), q)))
                    .unwrap(),
            )
        })
    });
    drop(rt);
}

criterion_group! {
    name = limits;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(limits);
