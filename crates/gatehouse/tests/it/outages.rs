//! Outages while traffic flows: the database unreachable from a gateway node, and the upstream
//! going down and coming back. Each gives clear errors and recovers by itself.
//!
//! The database outage is a network partition between one gateway node and a real PostgreSQL
//! server: a TCP relay in the test forwards to PostgreSQL and can cut every connection and refuse
//! new ones (the server itself is shared and stays up).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use gatehouse_test_support::upstream::EchoUpstream;

use crate::cluster::TestDatabase;
use crate::harness::{Server, keyless_api};

/// A TCP relay to `target` that can be cut (every connection closed, new ones refused) and
/// restored.
struct Relay {
    addr: SocketAddr,
    up: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, rx) = watch::channel(true);
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                while conns.try_join_next().is_some() {}
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if !*rx.borrow() {
                    drop(client); // refused while cut
                    continue;
                }
                let mut rx = rx.clone();
                conns.spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = rx.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Relay { addr, up, task }
    }

    fn cut(&self) {
        self.up.send_replace(false);
    }

    fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends sequential requests to `url` until `stop` is set; counts answers that are not 200.
fn traffic(url: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(u64, u64, Vec<String>)> {
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let (ok, bad) = (AtomicU64::new(0), AtomicU64::new(0));
        let mut samples = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            match http.get(&url).send().await {
                Ok(r) if r.status() == 200 => {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                Ok(r) => {
                    bad.fetch_add(1, Ordering::Relaxed);
                    if samples.len() < 5 {
                        samples.push(format!(
                            "{} {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        ));
                    }
                }
                Err(e) => {
                    bad.fetch_add(1, Ordering::Relaxed);
                    if samples.len() < 5 {
                        samples.push(e.to_string());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (ok.into_inner(), bad.into_inner(), samples)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_partition_keeps_traffic_flowing_and_heals() {
    let Some(db) = TestDatabase::create() else {
        return; // no PostgreSQL (allowed outside CI; CI sets GATEHOUSE_REQUIRE_POSTGRES=1)
    };
    let up = EchoUpstream::start("up").await.unwrap();
    let direct = db.url();
    let pg: SocketAddr = {
        let hostport = direct
            .split('@')
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap();
        tokio::net::lookup_host(hostport)
            .await
            .unwrap()
            .next()
            .unwrap()
    };
    let relay = Relay::start(pg).await;
    let via_relay = direct.replacen(&pg.to_string(), &relay.addr.to_string(), 1);
    assert_ne!(via_relay, direct, "{direct}");

    let dir = tempfile::tempdir().unwrap();
    let dash = Server::start_role("dashboard", dir.path(), &["--database-url", &direct]);
    let gw = Server::start_role(
        "gateway",
        dir.path(),
        &[
            "--database-url",
            &via_relay,
            "--config-poll-interval-ms",
            "200",
        ],
    );
    let (st, v) = dash
        .admin(
            Method::POST,
            "/api/apis",
            Some(&keyless_api("One", "/one/", &up.url()).to_string()),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.call("/one/x").await.0 != 200 {
        assert!(Instant::now() < deadline, "the gateway never served /one/");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Traffic flows while the node loses its database.
    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(gw.gateway("/one/x"), Arc::clone(&stop));
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay.cut();
    // A change made meanwhile cannot reach the cut-off node yet.
    let (st, v) = dash
        .admin(
            Method::POST,
            "/api/apis",
            Some(&keyless_api("Two", "/two/", &up.url()).to_string()),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        gw.call("/two/x").await.0,
        404,
        "served without its database?"
    );

    // Back: the node catches up by itself, and no request failed at any time.
    relay.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    while gw.call("/two/x").await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the gateway did not pick up the change after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (ok, bad, samples) = load.await.unwrap();
    assert_eq!(bad, 0, "failed requests during the outage: {samples:?}");
    assert!(ok > 50, "too little traffic to mean anything: {ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_gives_502_and_recovers_without_a_restart() {
    let up = EchoUpstream::start("up").await.unwrap();
    let addr = up.addr();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    s.create_api(&keyless_api("Api", "/api/", &up.url())).await;
    assert_eq!(s.call("/api/x").await.0, 200);

    // The upstream dies (listener and open keep-alive connections): clear 502s, fast.
    drop(up);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = s.http().get(s.gateway("/api/x")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("upstream"), "{v}");

    // It comes back on the same address: the next requests succeed, no restart, no config.
    let _up = EchoUpstream::start_on("up-again", addr).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (st, body) = s.call("/api/x").await;
        if st == 200 {
            assert!(body.contains("up-again"), "{body}");
            break;
        }
        assert_eq!(st, 502, "{body}");
        assert!(Instant::now() < deadline, "the gateway did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
