//! The Redis limiters against the real Redis on 127.0.0.1:6379: exactness across several
//! independent "nodes" (limiters with their own connections), the combined check, sliding
//! windows, header values, key names. Every test uses its own random key prefix and deletes its
//! keys at the end (keys left by a failed test expire by their TTLs).
//!
//! Without a Redis there, the tests print why and pass, unless `GATEHOUSE_REQUIRE_REDIS=1`.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gatehouse_ratelimit::{
    HeaderSource, Limit, LimitError, LocalQuotaCounter, LocalRateLimiter, LocalSessionLimiter,
    MemoryQuotaPersistence, QuotaConfig, QuotaCounter, QuotaLimit, RateLimiter, RedisBackend,
    RedisConfig, RedisQuotaCounter, RedisRateLimiter, RedisSessionLimiter, SessionLimiter, Verdict,
};

const URL: &str = "redis://127.0.0.1:6379";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// One test's namespace in the shared Redis.
struct Ctx {
    cfg: RedisConfig,
    raw: redis::aio::MultiplexedConnection,
}

impl Ctx {
    async fn new() -> Option<Self> {
        let id = RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()));
        let cfg = RedisConfig {
            key_prefix: format!("gh-test-{id:016x}:"),
            ..RedisConfig::default()
        };
        let connect = async {
            redis::Client::open(URL)?
                .get_multiplexed_async_connection()
                .await
        };
        match tokio::time::timeout(secs(5), connect).await {
            Ok(Ok(raw)) => Some(Self { cfg, raw }),
            other => {
                let why = match other {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                assert!(
                    std::env::var("GATEHOUSE_REQUIRE_REDIS").as_deref() != Ok("1"),
                    "no Redis on {URL}: {why}"
                );
                eprintln!("SKIPPED: no Redis on {URL} ({why})");
                None
            }
        }
    }

    /// A "node": a backend with its own connection.
    fn node(&self) -> RedisBackend {
        RedisBackend::from_url(URL, self.cfg.clone()).unwrap()
    }

    fn node_with(&self, f: impl FnOnce(&mut RedisConfig)) -> RedisBackend {
        let mut cfg = self.cfg.clone();
        f(&mut cfg);
        RedisBackend::from_url(URL, cfg).unwrap()
    }

    async fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query_async(&mut self.raw.clone()).await.unwrap()
    }

    /// Deletes every key under this test's prefix (bounded SCAN).
    async fn cleanup(self) {
        let pattern = format!("{}*", self.cfg.key_prefix);
        let mut cursor = "0".to_owned();
        for _ in 0..10_000 {
            let (next, keys): (String, Vec<String>) = redis::cmd("SCAN")
                .arg(&cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut self.raw.clone())
                .await
                .unwrap();
            if !keys.is_empty() {
                let _: i64 = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut self.raw.clone())
                    .await
                    .unwrap();
            }
            if next == "0" {
                return;
            }
            cursor = next;
        }
    }
}

async fn local_session() -> LocalSessionLimiter {
    let quota = LocalQuotaCounter::load(
        Arc::new(MemoryQuotaPersistence::new()),
        QuotaConfig {
            flush_interval: Duration::ZERO,
            ..QuotaConfig::default()
        },
    )
    .await
    .unwrap();
    LocalSessionLimiter::new(Arc::new(LocalRateLimiter::default()), quota)
}

/// `tasks` concurrent tasks, spread over `nodes`, each making `per_task` session checks.
/// Returns how many were admitted.
async fn hammer(
    nodes: &[Arc<dyn SessionLimiter>],
    tasks: usize,
    per_task: usize,
    rate: Option<(&'static str, Limit)>,
    quota: Option<(&'static str, QuotaLimit)>,
) -> (u64, u64, u64) {
    let allowed = Arc::new(AtomicU64::new(0));
    let rate_limited = Arc::new(AtomicU64::new(0));
    let quota_exceeded = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let node = nodes[t % nodes.len()].clone();
        let (a, r, q) = (
            allowed.clone(),
            rate_limited.clone(),
            quota_exceeded.clone(),
        );
        handles.push(tokio::spawn(async move {
            for _ in 0..per_task {
                let d = node.check(rate, quota).await.unwrap();
                match d.verdict {
                    Verdict::Allowed => a.fetch_add(1, Ordering::Relaxed),
                    Verdict::RateLimited => r.fetch_add(1, Ordering::Relaxed),
                    Verdict::QuotaExceeded => q.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    (
        allowed.load(Ordering::Relaxed),
        rate_limited.load(Ordering::Relaxed),
        quota_exceeded.load(Ordering::Relaxed),
    )
}

fn three_nodes(ctx: &Ctx) -> Vec<Arc<dyn SessionLimiter>> {
    (0..3)
        .map(|_| Arc::new(RedisSessionLimiter::new(ctx.node())) as Arc<dyn SessionLimiter>)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_admit_exactly_the_rate() {
    let Some(ctx) = Ctx::new().await else { return };
    let nodes = three_nodes(&ctx);
    let l = Limit::new(100, secs(60));
    let q = QuotaLimit::new(10_000, secs(3600));
    let (allowed, rate_limited, quota_exceeded) = hammer(
        &nodes,
        50,
        6,
        Some(("rate-limit-gold-{n1}", l)),
        Some(("quota-gold-{n1}", q)),
    )
    .await;
    assert_eq!((allowed, rate_limited, quota_exceeded), (100, 200, 0));
    // Only admitted requests were counted, in both.
    let b = ctx.node();
    let logged: u64 = ctx
        .cmd(&["ZCARD", &b.rate_log_key("rate-limit-gold-{n1}")])
        .await;
    assert_eq!(logged, 100);
    let used: u64 = ctx.cmd(&["GET", &b.quota_key("quota-gold-{n1}")]).await;
    assert_eq!(used, 100);
    ctx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_consume_exactly_the_quota() {
    let Some(ctx) = Ctx::new().await else { return };
    let nodes = three_nodes(&ctx);
    let q = QuotaLimit::new(1000, secs(3600));
    let (allowed, _, quota_exceeded) =
        hammer(&nodes, 50, 30, None, Some(("quota-gold-{n2}", q))).await;
    assert_eq!((allowed, quota_exceeded), (1000, 500));
    let counter = RedisQuotaCounter::new(ctx.node());
    let d = counter.peek("quota-gold-{n2}", q).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(d.remaining, 0);
    let ttl: i64 = ctx
        .cmd(&["TTL", &counter.backend().quota_key("quota-gold-{n2}")])
        .await;
    assert!((1..=3600).contains(&ttl), "ttl {ttl}");
    ctx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limiters_on_three_nodes_are_exact_in_both_modes() {
    let Some(ctx) = Ctx::new().await else { return };
    for (exact_log_max, key, kind) in [(1024, "api-log", "zset"), (10, "api-counters", "hash")] {
        let nodes: Vec<RedisRateLimiter> = (0..3)
            .map(|_| RedisRateLimiter::new(ctx.node_with(|c| c.exact_log_max = exact_log_max)))
            .collect();
        let l = Limit::new(60, secs(60));
        let allowed = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        for t in 0..30 {
            let node = nodes[t % 3].clone();
            let allowed = allowed.clone();
            handles.push(tokio::spawn(async move {
                for _ in 0..5 {
                    if node.check(key, l).await.unwrap().allowed {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(allowed.load(Ordering::Relaxed), 60, "{key}");
        let b = nodes[0].backend();
        let redis_key = if kind == "zset" {
            b.rate_log_key(key)
        } else {
            b.rate_counters_key(key)
        };
        let t: String = ctx.cmd(&["TYPE", &redis_key]).await;
        assert_eq!(t, kind);
        if kind == "hash" {
            // Sub-window counters plus the newest time: a few dozen fields at most.
            let fields: u64 = ctx.cmd(&["HLEN", &redis_key]).await;
            assert!((2..=62).contains(&fields), "{fields} fields");
        }
    }
    ctx.cleanup().await;
}

#[tokio::test]
async fn the_combined_check_counts_both_or_neither() {
    let Some(ctx) = Ctx::new().await else { return };
    let s = RedisSessionLimiter::new(ctx.node());
    let b = s.backend().clone();

    // The quota refuses: the rate slot is not taken.
    let (l, q) = (Limit::new(10, secs(60)), QuotaLimit::new(3, secs(3600)));
    let (rk, qk) = ("rate-limit-a-{x}", "quota-a-{x}");
    for i in 0..3u64 {
        let d = s.check(Some((rk, l)), Some((qk, q))).await.unwrap();
        assert_eq!(d.verdict, Verdict::Allowed);
        assert_eq!(d.rate.unwrap().remaining, 9 - i);
        assert_eq!(d.quota.unwrap().remaining, 2 - i);
    }
    for _ in 0..3 {
        let d = s.check(Some((rk, l)), Some((qk, q))).await.unwrap();
        assert_eq!(d.verdict, Verdict::QuotaExceeded);
        assert_eq!(
            d.rate.unwrap().remaining,
            7,
            "rate part without this request"
        );
        assert!(d.rate.unwrap().allowed);
        assert!(d.retry_after().unwrap() >= secs(3590));
    }
    let logged: u64 = ctx.cmd(&["ZCARD", &b.rate_log_key(rk)]).await;
    assert_eq!(logged, 3);

    // The rate limit refuses: no quota is consumed, and the quota part is a peek.
    let (l, q) = (Limit::new(2, secs(60)), QuotaLimit::new(10, secs(3600)));
    let (rk, qk) = ("rate-limit-b-{y}", "quota-b-{y}");
    let mut verdicts = Vec::new();
    for _ in 0..5 {
        let d = s.check(Some((rk, l)), Some((qk, q))).await.unwrap();
        verdicts.push(d.verdict);
        if d.verdict == Verdict::RateLimited {
            assert_eq!(d.quota.unwrap().remaining, 8);
            assert!(d.quota.unwrap().allowed);
            let ra = d.retry_after().unwrap();
            assert!(ra >= secs(59) && ra <= secs(60), "{ra:?}");
        }
    }
    use Verdict::*;
    assert_eq!(
        verdicts,
        [Allowed, Allowed, RateLimited, RateLimited, RateLimited]
    );
    let used: u64 = ctx.cmd(&["GET", &b.quota_key(qk)]).await;
    assert_eq!(used, 2);
    ctx.cleanup().await;
}

#[tokio::test]
async fn decisions_match_the_local_limiter() {
    let Some(ctx) = Ctx::new().await else { return };
    let redis = RedisSessionLimiter::new(ctx.node());
    let local = local_session().await;
    let cases = [
        (
            Some(Limit::new(4, secs(60))),
            Some(QuotaLimit::new(6, secs(600))),
        ),
        (
            Some(Limit::new(6, secs(60))),
            Some(QuotaLimit::new(4, secs(600))),
        ),
        (Some(Limit::new(3, secs(60))), None),
        (None, Some(QuotaLimit::new(3, secs(600)))),
        (
            Some(Limit::new(0, secs(60))),
            Some(QuotaLimit::new(3, secs(600))),
        ),
        (
            Some(Limit::new(3, secs(60))),
            Some(QuotaLimit::new(0, secs(600))),
        ),
        (Some(Limit::new(3, Duration::ZERO)), None),
    ];
    for (i, (l, q)) in cases.into_iter().enumerate() {
        let rk = format!("rate-limit-case{i}");
        let qk = format!("quota-case{i}");
        for n in 0..8 {
            let args = (l.map(|l| (rk.as_str(), l)), q.map(|q| (qk.as_str(), q)));
            let a = redis.check(args.0, args.1).await.unwrap();
            let b = local.check(args.0, args.1).await.unwrap();
            let ctx_msg = format!("case {i} request {n}: redis {a:?} local {b:?}");
            assert_eq!(a.verdict, b.verdict, "{ctx_msg}");
            for (x, y) in [(a.rate, b.rate), (a.quota, b.quota)] {
                assert_eq!(x.is_some(), y.is_some(), "{ctx_msg}");
                if let (Some(x), Some(y)) = (x, y) {
                    assert_eq!(
                        (x.allowed, x.limit, x.remaining, x.retry_after.is_some()),
                        (y.allowed, y.limit, y.remaining, y.retry_after.is_some()),
                        "{ctx_msg}"
                    );
                    // Times differ by the few milliseconds between the two calls.
                    assert!(x.reset.abs_diff(y.reset) < secs(2), "{ctx_msg}");
                }
            }
        }
    }
    ctx.cleanup().await;
}

#[tokio::test]
async fn header_values() {
    let Some(ctx) = Ctx::new().await else { return };
    let s = RedisSessionLimiter::new(ctx.node());
    let (l, q) = (Limit::new(2, secs(60)), QuotaLimit::new(1000, secs(3600)));
    let (rk, qk) = ("rate-limit-h-{z}", "quota-h-{z}");
    let d = s.check(Some((rk, l)), Some((qk, q))).await.unwrap();
    let h = d.header_decision(HeaderSource::Quota).unwrap();
    assert_eq!((h.limit, h.remaining, h.reset_secs()), (1000, 999, 3600));
    assert_eq!(h.retry_after, None);
    let r = d.header_decision(HeaderSource::RateLimit).unwrap();
    assert_eq!((r.limit, r.remaining, r.reset_secs()), (2, 1, 60));
    let d = s.check(Some((rk, l)), Some((qk, q))).await.unwrap();
    let r = d.rate.unwrap();
    assert_eq!(r.remaining, 0);
    // The oldest request leaves a little less than 60 s from now.
    assert!(r.reset <= secs(60) && r.reset > secs(50), "{:?}", r.reset);
    let d = s.check(Some((rk, l)), Some((qk, q))).await.unwrap();
    assert_eq!(d.verdict, Verdict::RateLimited);
    let r = d.rate.unwrap();
    assert_eq!((r.allowed, r.limit, r.remaining), (false, 2, 0));
    assert!(r.reset_secs() <= 60 && r.reset_secs() >= 50);
    assert_eq!(r.retry_after_secs(), Some(r.reset_secs()));
    assert_eq!(d.retry_after(), r.retry_after);
    let h = d.header_decision(HeaderSource::Quota).unwrap();
    assert_eq!((h.limit, h.remaining), (1000, 998));
    ctx.cleanup().await;
}

#[tokio::test]
async fn sliding_window_frees_slots_as_requests_leave() {
    let Some(ctx) = Ctx::new().await else { return };
    let rl = RedisRateLimiter::new(ctx.node());
    let l = Limit::new(2, Duration::from_millis(1500));
    assert!(rl.check("slide", l).await.unwrap().allowed);
    assert!(rl.check("slide", l).await.unwrap().allowed);
    let refused = rl.check("slide", l).await.unwrap();
    assert!(!refused.allowed);
    assert!(refused.reset <= Duration::from_millis(1500));
    assert_eq!(
        refused.retry_after_secs(),
        Some(refused.reset_secs().max(1))
    );
    // Refusals are not logged: once the first request has left, one slot is free again.
    tokio::time::sleep(refused.reset + Duration::from_millis(50)).await;
    let d = rl.check("slide", l).await.unwrap();
    assert!(d.allowed, "{d:?}");
    let logged: u64 = ctx
        .cmd(&["ZCARD", &rl.backend().rate_log_key("slide")])
        .await;
    assert!(logged <= 2, "{logged}");
    ctx.cleanup().await;
}

#[tokio::test]
async fn quota_window_opens_at_the_first_request_and_renews_lazily() {
    let Some(ctx) = Ctx::new().await else { return };
    let qc = RedisQuotaCounter::new(ctx.node());
    let q = QuotaLimit::new(2, secs(1));
    // Nothing is created by a peek.
    let d = qc.peek("qw", q).await.unwrap();
    assert_eq!((d.allowed, d.remaining, d.reset), (true, 2, secs(1)));
    let exists: u64 = ctx.cmd(&["EXISTS", &qc.backend().quota_key("qw")]).await;
    assert_eq!(exists, 0);
    assert_eq!(qc.consume("qw", q).await.unwrap().remaining, 1);
    assert_eq!(qc.consume("qw", q).await.unwrap().remaining, 0);
    let refused = qc.consume("qw", q).await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.retry_after_secs(), Some(1));
    assert_eq!(qc.peek("qw", q).await.unwrap().remaining, 0);
    tokio::time::sleep(refused.reset + Duration::from_millis(50)).await;
    let d = qc.consume("qw", q).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 1), "a new window");
    ctx.cleanup().await;
}

#[tokio::test]
async fn peek_reset_and_flush() {
    let Some(ctx) = Ctx::new().await else { return };
    let qc = RedisQuotaCounter::new(ctx.node());
    let q = QuotaLimit::new(5, secs(3600));
    for _ in 0..3 {
        qc.consume("qr", q).await.unwrap();
    }
    for _ in 0..3 {
        let d = qc.peek("qr", q).await.unwrap();
        assert_eq!((d.allowed, d.remaining), (true, 2));
    }
    // A lowered max applies at once.
    let d = qc.peek("qr", QuotaLimit::new(3, secs(3600))).await.unwrap();
    assert!(!d.allowed);
    qc.flush().await.unwrap();
    assert_eq!(qc.peek("qr", q).await.unwrap().remaining, 2);
    qc.reset("qr").await.unwrap();
    assert_eq!(qc.peek("qr", q).await.unwrap().remaining, 5);
    assert_eq!(qc.consume("qr", q).await.unwrap().remaining, 4);
    ctx.cleanup().await;
}

#[tokio::test]
async fn switching_between_log_and_counter_mode_keeps_the_count() {
    let Some(ctx) = Ctx::new().await else { return };
    let log = RedisRateLimiter::new(ctx.node());
    let counters = RedisRateLimiter::new(ctx.node_with(|c| c.exact_log_max = 5));
    let l = Limit::new(20, secs(60));
    for _ in 0..8 {
        assert!(log.check("mix", l).await.unwrap().allowed);
    }
    // Counter mode sees the 8 logged requests.
    for i in 0..12 {
        let d = counters.check("mix", l).await.unwrap();
        assert!(d.allowed, "request {i}");
        assert_eq!(d.remaining, 20 - 8 - i - 1);
    }
    assert!(!counters.check("mix", l).await.unwrap().allowed);
    // And the log sees the counted ones.
    let d = log.check("mix", l).await.unwrap();
    assert!(!d.allowed);
    assert!(d.reset <= secs(60) && d.reset > secs(50), "{:?}", d.reset);
    ctx.cleanup().await;
}

#[tokio::test]
async fn keys_are_readable_and_expire() {
    let Some(ctx) = Ctx::new().await else { return };
    let s = RedisSessionLimiter::new(ctx.node());
    let b = s.backend().clone();
    let p = &ctx.cfg.key_prefix;
    assert_eq!(
        b.rate_log_key("rate-limit-k"),
        format!("{p}{{rate-limit-k}}:rl")
    );
    assert_eq!(
        b.rate_counters_key("rate-limit-k"),
        format!("{p}{{rate-limit-k}}:rlc")
    );
    assert_eq!(b.quota_key("quota-k"), format!("{p}{{quota-k}}:quota"));
    assert_eq!(
        b.rate_log_key("rate-limit-{h}"),
        format!("{p}rate-limit-{{h}}:rl")
    );
    s.check(
        Some(("rate-limit-k", Limit::new(3, secs(30)))),
        Some(("quota-k", QuotaLimit::new(3, secs(90)))),
    )
    .await
    .unwrap();
    let counters = RedisRateLimiter::new(ctx.node_with(|c| c.exact_log_max = 1));
    counters
        .check("rate-limit-c", Limit::new(3, secs(30)))
        .await
        .unwrap();
    for (key, max_ms) in [
        (b.rate_log_key("rate-limit-k"), 30_000),
        (b.quota_key("quota-k"), 90_000),
        (b.rate_counters_key("rate-limit-c"), 31_000),
    ] {
        let ttl: i64 = ctx.cmd(&["PTTL", &key]).await;
        assert!(ttl > 0 && ttl <= max_ms, "{key}: {ttl}");
    }
    ctx.cleanup().await;
}

#[tokio::test]
async fn zero_limits() {
    let Some(ctx) = Ctx::new().await else { return };
    let s = RedisSessionLimiter::new(ctx.node());
    let d = s
        .check(Some(("r0", Limit::new(0, secs(60)))), None)
        .await
        .unwrap();
    assert_eq!(d.verdict, Verdict::RateLimited);
    assert_eq!(d.retry_after(), Some(secs(60)));
    let d = s
        .check(None, Some(("q0", QuotaLimit::new(0, secs(60)))))
        .await
        .unwrap();
    assert_eq!(d.verdict, Verdict::QuotaExceeded);
    for _ in 0..5 {
        let d = s
            .check(Some(("rz", Limit::new(1, Duration::ZERO))), None)
            .await
            .unwrap();
        assert_eq!(d.verdict, Verdict::Allowed);
    }
    ctx.cleanup().await;
}

#[tokio::test]
async fn cluster_backends_are_built_without_a_cluster() {
    // No cluster server here: construction is lazy, and a call fails within its deadline.
    let cfg = RedisConfig {
        timeout: Duration::from_millis(200),
        connect_timeout: Duration::from_millis(100),
        ..RedisConfig::default()
    };
    let b = RedisBackend::cluster(
        [
            "redis://127.0.0.1:1",
            "redis://127.0.0.1:2",
            "redis://127.0.0.1:3",
        ],
        cfg.clone(),
    )
    .unwrap();
    assert!(b.is_cluster());
    assert!(RedisBackend::cluster(["rediss://127.0.0.1:1"], cfg.clone()).is_ok());
    // One TLS mode per cluster.
    assert!(
        RedisBackend::cluster(["redis://127.0.0.1:1", "rediss://127.0.0.1:2"], cfg.clone())
            .is_err()
    );
    let session: Arc<dyn SessionLimiter> = Arc::new(RedisSessionLimiter::new(b.clone()));
    let _rate: Arc<dyn RateLimiter> = Arc::new(RedisRateLimiter::new(b.clone()));
    let _quota: Arc<dyn QuotaCounter> = Arc::new(RedisQuotaCounter::new(b.clone()));
    let e = session
        .check(
            Some(("rate-limit-{c}", Limit::new(1, secs(1)))),
            Some(("quota-{c}", QuotaLimit::new(1, secs(1)))),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, LimitError::Backend(_)), "{e}");
    assert!(RedisBackend::cluster(Vec::<String>::new(), cfg.clone()).is_err());
    // Single-node URLs, TLS included, are accepted without connecting.
    assert!(
        !RedisBackend::from_url("rediss://127.0.0.1:1", cfg.clone())
            .unwrap()
            .is_cluster()
    );
    assert!(RedisBackend::from_url("not a url", cfg.clone()).is_err());
    assert!(
        RedisBackend::from_url(
            URL,
            RedisConfig {
                key_prefix: "{bad}".into(),
                ..cfg
            }
        )
        .is_err()
    );
}

#[tokio::test]
async fn ping_answers() {
    let Some(ctx) = Ctx::new().await else { return };
    ctx.node().ping().await.unwrap();
    ctx.cleanup().await;
}

#[tokio::test]
async fn a_never_renewing_quota_keeps_its_count_and_a_long_ttl() {
    let Some(ctx) = Ctx::new().await else { return };
    let qc = RedisQuotaCounter::new(ctx.node());
    let s = RedisSessionLimiter::new(ctx.node());
    let q = QuotaLimit::from_tyk(2, 0).unwrap();
    assert_eq!(qc.consume("once", q).await.unwrap().remaining, 1);
    assert_eq!(qc.consume("once", q).await.unwrap().remaining, 0);
    let refused = qc.consume("once", q).await.unwrap();
    assert!(!refused.allowed);
    let century = 100 * 365 * 86_400;
    assert!(
        refused.reset > secs(century - 60) && refused.reset <= secs(century),
        "{:?}",
        refused.reset
    );
    // The key expires only after 100 years (so it never renews in practice, yet is not
    // immortal), and the same holds through the combined check.
    let ttl: i64 = ctx.cmd(&["TTL", &qc.backend().quota_key("once")]).await;
    assert!(
        ttl > (century - 60) as i64 && ttl <= century as i64,
        "{ttl}"
    );
    let d = s
        .check(
            Some(("rate-once", Limit::new(10, secs(1)))),
            Some(("once", q)),
        )
        .await
        .unwrap();
    assert_eq!(d.verdict, Verdict::QuotaExceeded);
    ctx.cleanup().await;
}

#[tokio::test]
async fn a_shortened_period_shortens_the_redis_window() {
    let Some(ctx) = Ctx::new().await else { return };
    let qc = RedisQuotaCounter::new(ctx.node());
    let never = QuotaLimit::never_renewing(1);
    assert!(qc.consume("edit", never).await.unwrap().allowed);
    // The policy now renews every 30 s: the used-up window ends within 30 s, not in 100 years.
    let short = QuotaLimit::new(1, secs(30));
    let peeked = qc.peek("edit", short).await.unwrap();
    assert!(!peeked.allowed);
    assert!(peeked.reset <= secs(30), "{:?}", peeked.reset);
    let d = qc.consume("edit", short).await.unwrap();
    assert!(!d.allowed);
    assert!(d.reset <= secs(30), "{:?}", d.reset);
    let ttl: i64 = ctx.cmd(&["PTTL", &qc.backend().quota_key("edit")]).await;
    assert!(ttl > 0 && ttl <= 30_000, "{ttl}");
    ctx.cleanup().await;
}
