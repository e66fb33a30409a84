//! Decisions through the real Redis on 127.0.0.1:6379 (skipped when none answers): one session
//! check (rate + quota in one script), admitted and refused, one rate check in each mode, and 16
//! concurrent session checks on one connection. Run: `cargo bench -p gatehouse-ratelimit --bench
//! redis`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_ratelimit::{
    Limit, QuotaLimit, RateLimiter, RedisBackend, RedisConfig, RedisRateLimiter,
    RedisSessionLimiter, SessionLimiter,
};

const URL: &str = "redis://127.0.0.1:6379";

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg = RedisConfig {
        key_prefix: format!("gh-bench-{}:", std::process::id()),
        ..RedisConfig::default()
    };
    let backend = rt.block_on(async {
        let b = RedisBackend::from_url(URL, cfg.clone()).ok()?;
        match b.ping().await {
            Ok(()) => Some(b),
            Err(e) => {
                eprintln!("SKIPPED: no Redis on {URL} ({e})");
                None
            }
        }
    });
    let Some(backend) = backend else { return };
    let session = RedisSessionLimiter::new(backend.clone());
    let rate = RedisRateLimiter::new(backend.clone());
    let counters = rt.block_on(async {
        RedisRateLimiter::new(
            RedisBackend::from_url(
                URL,
                RedisConfig {
                    exact_log_max: 0,
                    ..cfg.clone()
                },
            )
            .unwrap(),
        )
    });
    let rk = "rate-limit-gold-{5f2b1c0d9d3e6a4b}";
    let qk = "quota-gold-{5f2b1c0d9d3e6a4b}";

    // Admitted: a log that stays short (100 per 10 ms) and a quota that never runs out.
    let admit = Limit::new(100, Duration::from_millis(10));
    let q = QuotaLimit::new(1 << 50, Duration::from_secs(3600));
    c.bench_function("redis/session check admitted (rate + quota)", |b| {
        b.iter(|| {
            rt.block_on(session.check(Some((black_box(rk), admit)), Some((qk, q))))
                .unwrap()
        })
    });

    // Refused: 10 per minute, used up.
    let full = Limit::new(10, Duration::from_secs(60));
    let rk_full = "rate-limit-gold-{full}";
    for _ in 0..10 {
        rt.block_on(rate.check(rk_full, full)).unwrap();
    }
    c.bench_function("redis/session check rate-limited", |b| {
        b.iter(|| {
            rt.block_on(session.check(Some((black_box(rk_full), full)), Some((qk, q))))
                .unwrap()
        })
    });

    c.bench_function("redis/rate check admitted (log)", |b| {
        b.iter(|| {
            rt.block_on(rate.check(black_box("api-log"), admit))
                .unwrap()
        })
    });
    let high = Limit::new(1 << 40, Duration::from_secs(1));
    c.bench_function("redis/rate check admitted (counter mode)", |b| {
        b.iter(|| {
            rt.block_on(counters.check(black_box("api-counters"), high))
                .unwrap()
        })
    });

    // Throughput on one multiplexed connection: 16 checks in flight (time per batch).
    let mut g = c.benchmark_group("redis/16 concurrent session checks");
    g.throughput(criterion::Throughput::Elements(16));
    g.bench_function("batch", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut set = tokio::task::JoinSet::new();
                for i in 0..16 {
                    let s = session.clone();
                    set.spawn(async move {
                        let rk = format!("rate-limit-gold-{{c{i}}}");
                        let qk = format!("quota-gold-{{c{i}}}");
                        s.check(Some((&rk, admit)), Some((&qk, q))).await.unwrap()
                    });
                }
                while let Some(r) = set.join_next().await {
                    black_box(r.unwrap());
                }
            })
        })
    });
    g.finish();

    // Clean up (every key also has a TTL).
    rt.block_on(async {
        let Ok(client) = redis::Client::open(URL) else {
            return;
        };
        let Ok(mut c) = client.get_multiplexed_async_connection().await else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", cfg.key_prefix))
            .query_async(&mut c)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<i64, _> = redis::cmd("DEL").arg(&keys).query_async(&mut c).await;
        }
    });
}

criterion_group!(redis_benches, benches);
criterion_main!(redis_benches);
