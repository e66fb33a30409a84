//! Several gateway nodes sharing one database and one Redis: exact shared rate limits and quotas,
//! configuration changes reaching every node, Redis outages in `local` and `closed` mode, a node
//! killed and restarted.
//!
//! The database is PostgreSQL when `GATEHOUSE_TEST_DATABASE_URL` is set, otherwise the SQLite file
//! of one data directory shared by the processes. Redis is a private `redis-server` on a free
//! loopback port, so this test can stop and restart it without disturbing other tests.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use std::time::{Duration, Instant};

use gatehouse_test_support::idp::{IdpShape, TestIdp};
use gatehouse_test_support::upstream::EchoUpstream;
use reqwest::Method;
use serde_json::json;

use crate::harness::{Server, free_port};

/// A private Redis on 127.0.0.1.
struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    fn start(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        let r = Redis {
            port,
            child: Some(child),
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return r;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on port {port}");
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A fresh PostgreSQL database for this test (dropped when done), when a server answers at
/// `GATEHOUSE_TEST_DATABASE_URL` or `postgres://postgres@127.0.0.1:5432/test`; otherwise the nodes
/// share the SQLite file of one data directory. `GATEHOUSE_REQUIRE_POSTGRES=1` makes a missing
/// server an error.
pub(crate) struct TestDatabase {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    pub(crate) fn create() -> Option<TestDatabase> {
        let admin_url = std::env::var("GATEHOUSE_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let name = format!("gh_cluster_{}", gatehouse_domain::ids::new_id());
        let ok = Command::new("psql")
            .arg(&admin_url)
            .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var("GATEHOUSE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "PostgreSQL is required (GATEHOUSE_REQUIRE_POSTGRES=1) but {admin_url} does not answer"
            );
            eprintln!("cluster test: no PostgreSQL at {admin_url}; the nodes share SQLite");
            return None;
        }
        Some(TestDatabase { admin_url, name })
    }

    pub(crate) fn url(&self) -> String {
        match self.admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{}", self.name),
            None => self.admin_url.clone(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(&self.admin_url)
            .args([
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Sends `per_client` requests from each of `clients` concurrent clients, spread over the nodes;
/// returns the count of each status.
async fn load(
    nodes: &[Arc<Server>],
    token: &str,
    clients: usize,
    per_client: usize,
) -> Vec<(u16, u64)> {
    let counts: Arc<parking_counts::Counts> = Arc::new(parking_counts::Counts::default());
    let mut tasks = Vec::new();
    for c in 0..clients {
        let node = Arc::clone(&nodes[c % nodes.len()]);
        let (token, counts) = (token.to_owned(), Arc::clone(&counts));
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_client {
                let st = match node
                    .http()
                    .get(node.gateway("/pay/x"))
                    .bearer_auth(&token)
                    .send()
                    .await
                {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                counts.add(st);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    counts.snapshot()
}

mod parking_counts {
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct Counts(Mutex<Vec<(u16, u64)>>);

    impl Counts {
        pub fn add(&self, status: u16) {
            let mut v = self.0.lock().unwrap();
            match v.iter_mut().find(|(s, _)| *s == status) {
                Some((_, n)) => *n += 1,
                None => v.push((status, 1)),
            }
        }

        pub fn snapshot(&self) -> Vec<(u16, u64)> {
            let mut v = self.0.lock().unwrap().clone();
            v.sort_unstable();
            v
        }
    }
}

fn count(counts: &[(u16, u64)], status: u16) -> u64 {
    counts
        .iter()
        .find(|(s, _)| *s == status)
        .map_or(0, |(_, n)| *n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_share_exact_limits_and_follow_the_dashboard() {
    let idp = TestIdp::start(IdpShape::Plain).await.unwrap();
    let upstream = EchoUpstream::start("up").await.unwrap();
    let mut redis = Redis::start(free_port());
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create();
    let db_url = database.as_ref().map(TestDatabase::url);
    let db: Vec<&str> = match &db_url {
        Some(u) => vec!["--database-url", u.as_str()],
        None => Vec::new(),
    };
    let dash = Server::start_role("dashboard", dir.path(), &db);
    let redis_url = redis.url();
    let mut gw_args = db.clone();
    gw_args.extend([
        "--redis-url",
        redis_url.as_str(),
        "--config-poll-interval-ms",
        "200",
    ]);
    let nodes: Vec<Arc<Server>> = (0..3)
        .map(|_| Arc::new(Server::start_role("gateway", dir.path(), &gw_args)))
        .collect();

    // Policies first, then the API: a node that serves the API has loaded a snapshot that
    // already holds both policies, so the readiness check below covers them too.
    for (id, rate, per, quota) in [("rl", 100, 60, -1), ("q", 0, 0, 1000)] {
        let (st, v) = dash
            .admin(
                Method::POST,
                "/api/policies",
                Some(&json!({"id": id, "rate": rate, "per": per, "quota_max": quota, "quota_renewal_rate": 3600,
                    "access_rights": {"pay": {"api_id": "pay", "versions": []}}}).to_string()),
            )
            .await;
        assert_eq!(st, 201, "{v}");
    }
    let (st, v) = dash
        .admin(
            Method::POST,
            "/api/apis",
            Some(&json!({"name": "Pay", "api_id": "pay", "enable_jwt": true, "jwt_signing_method": "rsa",
                "jwt_source": idp.jwks_uri(), "jwt_identity_base_field": "sub", "jwt_policy_field_name": "pol",
                "proxy": {"listen_path": "/pay/", "target_url": upstream.url(), "strip_listen_path": true}}).to_string()),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let run = gatehouse_domain::ids::new_id();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = |sub: String, pol: &str| {
        let idp = &idp;
        let pol = pol.to_owned();
        async move {
            idp.sign(
                json!({"sub": sub, "pol": pol, "exp": exp}),
                "RS256",
                json!({}),
            )
            .await
            .unwrap()
        }
    };

    // Every node picks the new configuration up within a second of the dashboard's answer.
    let written = Instant::now();
    for n in &nodes {
        let mut status = 0;
        while written.elapsed() < Duration::from_secs(1) {
            status = n
                .http()
                .get(n.gateway("/pay/x"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            if status != 404 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            status, 401,
            "node {} serves the new API within 1 s",
            n.gateway_port
        );
    }

    // 100 requests per minute across three nodes, 50 concurrent clients: exactly 100.
    let rl = token(format!("rl-{run}"), "rl").await;
    let counts = load(&nodes, &rl, 50, 4).await;
    assert_eq!(
        (count(&counts, 200), count(&counts, 429)),
        (100, 100),
        "{counts:?}"
    );

    // A quota of 1,000 across the nodes: exactly 1,000.
    let q = token(format!("q-{run}"), "q").await;
    let counts = load(&nodes, &q, 50, 25).await;
    assert_eq!(
        (count(&counts, 200), count(&counts, 429)),
        (1000, 250),
        "{counts:?}"
    );

    // Redis stops mid-run: in `local` mode no request fails (each node counts alone).
    let fresh = token(format!("outage-{run}"), "rl").await;
    redis.stop();
    let counts = load(&nodes, &fresh, 6, 5).await;
    assert_eq!(
        count(&counts, 200),
        30,
        "no failed request with Redis down in local mode: {counts:?}"
    );
    for n in &nodes {
        let hello: serde_json::Value = n
            .http()
            .get(n.gateway("/hello"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(hello["details"]["counters"]["up"], false, "{hello}");
    }

    // Redis back (empty): shared, exact counting resumes without a restart. Each node notices on
    // a request after its retry interval; /hello says when all have.
    let mut redis = Redis::start(redis.port);
    let probe = token(format!("probe-{run}"), "rl").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    for n in &nodes {
        loop {
            let _ = n
                .http()
                .get(n.gateway("/pay/x"))
                .bearer_auth(&probe)
                .send()
                .await;
            let hello: serde_json::Value = n
                .http()
                .get(n.gateway("/hello"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if hello["details"]["counters"]["up"] == true {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {} never went back to Redis: {hello}",
                n.gateway_port
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let after = token(format!("after-{run}"), "rl").await;
    let counts = load(&nodes, &after, 50, 4).await;
    assert_eq!(
        (count(&counts, 200), count(&counts, 429)),
        (100, 100),
        "{counts:?}"
    );

    // One node killed and restarted: it rejoins and serves the current configuration.
    let (st, _) = dash
        .admin(
            Method::PUT,
            "/api/policies/rl",
            Some(
                &json!({"id": "rl", "rate": 5, "per": 60, "quota_max": -1,
                "access_rights": {"pay": {"api_id": "pay", "versions": []}}})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(st, 200);
    let mut node0 = Arc::try_unwrap(nodes.into_iter().next().unwrap())
        .ok()
        .unwrap();
    node0.kill9_and_restart();
    let again = token(format!("restart-{run}"), "rl").await;
    let node0 = Arc::new(node0);
    let counts = load(std::slice::from_ref(&node0), &again, 1, 7).await;
    assert_eq!(
        (count(&counts, 200), count(&counts, 429)),
        (5, 2),
        "{counts:?}"
    );
    redis.stop();
}

/// With `--redis-failure-mode closed`, a gateway answers 503 while Redis is down, and counts in
/// Redis again as soon as it is back.
#[tokio::test]
async fn closed_mode_answers_503_while_redis_is_down() {
    let idp = TestIdp::start(IdpShape::Plain).await.unwrap();
    let upstream = EchoUpstream::start("up").await.unwrap();
    let mut redis = Redis::start(free_port());
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let s = Server::start_with(
        dir.path(),
        &[
            "--redis-url",
            url.as_str(),
            "--redis-failure-mode",
            "closed",
        ],
        Some(crate::harness::ADMIN_KEY),
    );
    let (st, _) = s
        .admin(
            Method::POST,
            "/api/apis",
            Some(&json!({"name": "Pay", "api_id": "pay", "enable_jwt": true, "jwt_signing_method": "rsa",
                "jwt_source": idp.jwks_uri(), "jwt_identity_base_field": "sub", "jwt_policy_field_name": "pol",
                "proxy": {"listen_path": "/pay/", "target_url": upstream.url()}}).to_string()),
        )
        .await;
    assert_eq!(st, 201);
    let (st, _) = s
        .admin(
            Method::POST,
            "/api/policies",
            Some(&json!({"id": "rl", "rate": 3, "per": 60, "access_rights": {"pay": {"api_id": "pay"}}}).to_string()),
        )
        .await;
    assert_eq!(st, 201);
    let token = idp
        .sign(
            json!({"sub": format!("closed-{}", gatehouse_domain::ids::new_id()), "pol": "rl",
                     "exp": 4_000_000_000i64}),
            "RS256",
            json!({}),
        )
        .await
        .unwrap();
    let node = Arc::new(s);
    assert_eq!(
        count(&load(std::slice::from_ref(&node), &token, 1, 1).await, 200),
        1
    );
    redis.stop();
    let counts = load(std::slice::from_ref(&node), &token, 1, 3).await;
    assert_eq!(count(&counts, 503), 3, "{counts:?}");
    let _redis = Redis::start(redis.port);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // A probe from another identity: 503 while the node still considers Redis down.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let probe = idp
            .sign(
                json!({"sub": format!("probe-{}", gatehouse_domain::ids::new_id()), "pol": "rl",
                       "exp": 4_000_000_000i64}),
                "RS256",
                json!({}),
            )
            .await
            .unwrap();
        let r = node
            .http()
            .get(node.gateway("/pay/x"))
            .bearer_auth(probe)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never went back to Redis");
    }
    let counts = load(std::slice::from_ref(&node), &token, 1, 4).await;
    // Redis came back empty: 3 admitted, then the limit holds.
    assert_eq!(
        (count(&counts, 200), count(&counts, 429)),
        (3, 1),
        "{counts:?}"
    );
}
