//! Fault mode: Redis unreachable (nothing listening, or a server that never answers), mode
//! `local` and mode `closed`, and recovery when a real `redis-server` (started here on a free
//! loopback port, without persistence) is stopped and started again.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use gatehouse_ratelimit::{
    FailoverConfig, FailoverRateLimiter, FailoverSessionLimiter, FailureMode, Limit, LimitError,
    LocalQuotaCounter, LocalRateLimiter, LocalSessionLimiter, MemoryQuotaPersistence, QuotaConfig,
    QuotaLimit, RateLimiter, RedisBackend, RedisConfig, RedisRateLimiter, RedisSessionLimiter,
    SessionLimiter, Verdict,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A loopback port nothing listens on (right after this returns).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn redis_cfg() -> RedisConfig {
    RedisConfig {
        timeout: ms(200),
        connect_timeout: ms(200),
        key_prefix: format!("gh-failover-{}:", std::process::id()),
        ..RedisConfig::default()
    }
}

async fn local_session() -> Arc<dyn SessionLimiter> {
    let quota = LocalQuotaCounter::load(
        Arc::new(MemoryQuotaPersistence::new()),
        QuotaConfig {
            flush_interval: Duration::ZERO,
            ..QuotaConfig::default()
        },
    )
    .await
    .unwrap();
    Arc::new(LocalSessionLimiter::new(
        Arc::new(LocalRateLimiter::default()),
        quota,
    ))
}

async fn failover_session(url: &str, mode: FailureMode, retry: Duration) -> FailoverSessionLimiter {
    let redis = RedisSessionLimiter::new(RedisBackend::from_url(url, redis_cfg()).unwrap());
    FailoverSessionLimiter::new(
        Arc::new(redis),
        local_session().await,
        FailoverConfig {
            mode,
            retry_interval: retry,
            ..FailoverConfig::default()
        },
    )
}

fn failover_rate(url: &str, mode: FailureMode, retry: Duration) -> FailoverRateLimiter {
    let redis = RedisRateLimiter::new(RedisBackend::from_url(url, redis_cfg()).unwrap());
    FailoverRateLimiter::new(
        Arc::new(redis),
        Arc::new(LocalRateLimiter::default()),
        FailoverConfig {
            mode,
            retry_interval: retry,
            ..FailoverConfig::default()
        },
    )
}

#[tokio::test]
async fn unreachable_redis_in_local_mode_uses_local_counters() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let s = failover_session(&url, FailureMode::Local, secs(60)).await;
    let (l, q) = (Limit::new(3, secs(60)), QuotaLimit::new(100, secs(3600)));
    let mut verdicts = Vec::new();
    for _ in 0..5 {
        let d = s
            .check(Some(("rate-limit-u", l)), Some(("quota-u", q)))
            .await
            .unwrap();
        verdicts.push(d.verdict);
    }
    use Verdict::*;
    assert_eq!(
        verdicts,
        [Allowed, Allowed, Allowed, RateLimited, RateLimited]
    );
    let st = s.stats();
    // One failed call; the next four skipped Redis (retry interval 60 s).
    assert_eq!(
        (
            st.backend_errors,
            st.fallbacks,
            st.unavailable,
            st.backend_up
        ),
        (1, 5, 0, false)
    );

    let r = failover_rate(&url, FailureMode::Local, secs(60));
    let l = Limit::new(2, secs(60));
    let admitted = [
        r.check("api", l).await.unwrap().allowed,
        r.check("api", l).await.unwrap().allowed,
        r.check("api", l).await.unwrap().allowed,
    ];
    assert_eq!(admitted, [true, true, false]);
    assert_eq!(r.stats().fallbacks, 3);
}

#[tokio::test]
async fn unreachable_redis_in_closed_mode_is_unavailable() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let s = failover_session(&url, FailureMode::Closed, secs(60)).await;
    for _ in 0..3 {
        let e = s
            .check(Some(("rate-limit-c", Limit::new(3, secs(60)))), None)
            .await
            .unwrap_err();
        assert!(matches!(e, LimitError::Unavailable(_)), "{e}");
    }
    let st = s.stats();
    assert_eq!(
        (
            st.backend_errors,
            st.fallbacks,
            st.unavailable,
            st.backend_up
        ),
        (1, 0, 3, false)
    );
    // No limit at all needs no backend.
    assert!(s.check(None, None).await.unwrap().is_allowed());

    let r = failover_rate(&url, FailureMode::Closed, secs(60));
    let e = r.check("api", Limit::new(1, secs(1))).await.unwrap_err();
    assert!(matches!(e, LimitError::Unavailable(_)), "{e}");
}

#[tokio::test]
async fn a_redis_that_never_answers_hits_the_deadline() {
    // Accepts connections and never writes a byte.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..16 {
            match listener.accept().await {
                Ok((sock, _)) => held.push(sock),
                Err(_) => break,
            }
        }
        // Keep them open until the test ends (the task is aborted).
        std::future::pending::<()>().await;
    });
    let url = format!("redis://127.0.0.1:{port}");
    let rl = RedisRateLimiter::new(RedisBackend::from_url(&url, redis_cfg()).unwrap());
    let e = rl.check("hung", Limit::new(1, secs(1))).await.unwrap_err();
    assert!(matches!(e, LimitError::Backend(_)), "{e}");
    let f = failover_rate(&url, FailureMode::Local, secs(60));
    assert!(
        f.check("hung", Limit::new(1, secs(1)))
            .await
            .unwrap()
            .allowed
    );
    assert_eq!(f.stats().backend_errors, 1);
    holder.abort();
}

/// A `redis-server` child process on a loopback port, killed when dropped.
struct Server {
    port: u16,
    child: Option<Child>,
}

impl Server {
    fn available() -> bool {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn new(port: u16) -> Self {
        Self { port, child: None }
    }

    async fn start(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .args(["--daemonize", "no", "--logfile", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        // Ready when it answers PING (bounded: 10 s).
        let url = format!("redis://127.0.0.1:{}", self.port);
        for _ in 0..200 {
            let ping = async {
                let mut c = redis::Client::open(url.as_str())?
                    .get_multiplexed_async_connection()
                    .await?;
                redis::cmd("PING").query_async::<String>(&mut c).await
            };
            if let Ok(Ok(_)) = tokio::time::timeout(ms(200), ping).await {
                return;
            }
            tokio::time::sleep(ms(50)).await;
        }
        panic!("redis-server on port {} did not come up", self.port);
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Checks until `ok` holds for a decision made after Redis came back (bounded: 10 s).
async fn until_back(mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(ms(50)).await;
    }
    panic!("the limiter did not go back to Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_counting_resumes_when_redis_comes_back() {
    if !Server::available() {
        eprintln!("SKIPPED: redis-server is not on PATH");
        return;
    }
    let mut server = Server::new(free_port());
    let url = format!("redis://127.0.0.1:{}", server.port);
    // A node that starts while Redis is down decides locally, then joins once Redis is up.
    let early = failover_session(&url, FailureMode::Local, ms(100)).await;
    let probe = Limit::new(1_000_000, secs(60));
    let d = early.check(Some(("rate-limit-e", probe)), None).await;
    assert!(d.unwrap().is_allowed());
    assert_eq!(early.stats().fallbacks, 1);
    server.start().await;
    until_back(async || {
        early
            .check(Some(("rate-limit-e", probe)), None)
            .await
            .unwrap();
        early.stats().backend_up
    })
    .await;
    // Two gateway nodes in mode local, one API-wide limiter in mode closed.
    let a = failover_session(&url, FailureMode::Local, ms(100)).await;
    let b = failover_session(&url, FailureMode::Local, ms(100)).await;
    let closed = failover_rate(&url, FailureMode::Closed, ms(100));
    let l = Limit::new(4, secs(60));
    let big = Limit::new(1_000_000, secs(60));
    let check = async |node: &FailoverSessionLimiter, key: &str, l: Limit| {
        node.check(Some((key, l)), None).await.unwrap().verdict
    };

    // Redis up: the nodes share one limit of 4.
    use Verdict::*;
    assert_eq!(check(&a, "rate-limit-1", l).await, Allowed);
    assert_eq!(check(&b, "rate-limit-1", l).await, Allowed);
    assert_eq!(check(&a, "rate-limit-1", l).await, Allowed);
    assert_eq!(check(&b, "rate-limit-1", l).await, Allowed);
    assert_eq!(check(&a, "rate-limit-1", l).await, RateLimited);
    assert_eq!(check(&b, "rate-limit-1", l).await, RateLimited);
    assert!(closed.check("api", big).await.unwrap().allowed);
    assert_eq!(a.stats().fallbacks, 0);

    // Redis down: each node counts on its own (the shared refusal is unknown locally).
    server.stop();
    assert_eq!(check(&a, "rate-limit-1", l).await, Allowed);
    assert_eq!(check(&b, "rate-limit-1", l).await, Allowed);
    let e = closed.check("api", big).await.unwrap_err();
    assert!(matches!(e, LimitError::Unavailable(_)), "{e}");
    let st = a.stats();
    assert!(
        st.fallbacks >= 1 && st.backend_errors >= 1 && !st.backend_up,
        "{st:?}"
    );

    // Redis back (empty, without the scripts: NOSCRIPT is handled): shared counting resumes.
    server.start().await;
    for node in [&a, &b] {
        until_back(async || {
            check(node, "rate-limit-probe", big).await;
            node.stats().backend_up
        })
        .await;
        assert!(node.stats().recoveries >= 1);
    }
    until_back(async || closed.check("api", big).await.is_ok()).await;
    assert!(closed.stats().backend_up);
    let fallbacks = (a.stats().fallbacks, b.stats().fallbacks);
    assert_eq!(check(&a, "rate-limit-2", l).await, Allowed);
    assert_eq!(check(&b, "rate-limit-2", l).await, Allowed);
    assert_eq!(check(&b, "rate-limit-2", l).await, Allowed);
    assert_eq!(check(&a, "rate-limit-2", l).await, Allowed);
    assert_eq!(check(&a, "rate-limit-2", l).await, RateLimited);
    assert_eq!(check(&b, "rate-limit-2", l).await, RateLimited);
    assert_eq!((a.stats().fallbacks, b.stats().fallbacks), fallbacks);
    server.stop();
}
