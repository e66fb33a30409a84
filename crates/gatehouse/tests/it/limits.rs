//! Hardening of the gateway listener: body limits (413), header limits (431), slow clients,
//! the connection limit with load shedding (503), and a graceful SIGTERM that lets in-flight
//! requests finish.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use gatehouse_test_support::upstream::EchoUpstream;

use crate::harness::{ADMIN_KEY, Server, keyless_api};

/// Reads what the server sends until it closes the connection or `limit` passes.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(limit, async {
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&buf).into_owned(), closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_and_header_limits() {
    let up = EchoUpstream::start("up").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        &["--max-request-body", "4096", "--max-header-bytes", "8192"],
        Some(ADMIN_KEY),
    );
    // One API with its own Tyk `global_size_limit`, one with the gateway's default.
    let mut small = keyless_api("Small", "/small/", &up.url());
    small["version_data"] = json!({"not_versioned": true, "default_version": "Default",
        "versions": {"Default": {"name": "Default", "global_size_limit": 100}}});
    let created = s.create_api(&small).await;
    assert!(
        created["warnings"].as_array().is_none_or(|w| w.is_empty()),
        "{created}"
    );
    s.create_api(&keyless_api("Big", "/big/", &up.url())).await;
    let http = s.http();

    // A known length over the limit: 413 before the upstream is asked.
    let r = http
        .post(s.gateway("/small/upload"))
        .body(vec![b'x'; 101])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("at most 100 bytes"),
        "{v}"
    );
    let r = http
        .post(s.gateway("/small/upload"))
        .body(vec![b'x'; 100])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["received"],
        100
    );

    // A chunked body (no length) is cut at the limit: 413.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..10).map(|_| Ok(vec![b'y'; 1000])).collect();
    let r = http
        .post(s.gateway("/big/upload"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("at most 4096 bytes"),
        "{v}"
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..4).map(|_| Ok(vec![b'y'; 1000])).collect();
    let r = http
        .post(s.gateway("/big/upload"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["received"],
        4000
    );

    // Headers over the limit: 431, and the gateway keeps serving.
    let r = http
        .get(s.gateway("/big/x"))
        .header("x-huge", "h".repeat(10_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    let r = http
        .get(s.gateway("/big/x"))
        .header("x-fine", "h".repeat(4_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_excess_connections_are_shed() {
    let up = EchoUpstream::start("up").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        &["--max-connections", "4", "--client-header-timeout", "1"],
        Some(ADMIN_KEY),
    );
    s.create_api(&keyless_api("Api", "/api/", &up.url())).await;
    let addr = format!("127.0.0.1:{}", s.gateway_port);

    // Slowloris: a head sent one byte at a time never completes; the gateway closes the
    // connection after the header timeout (1 s), without an answer.
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /api/x HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let dripping = async {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow.write_all(b"a").await.is_err() {
                break;
            }
        }
    };
    dripping.await;
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(3)).await;
    assert!(closed, "the slow client was not cut off");
    assert!(started.elapsed() >= Duration::from_millis(900));
    drop(slow);

    // Four idle connections hold every slot; the fifth is answered 503 and closed at once.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        c.write_all(b"GET /api/held HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = c.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(c);
    }
    let mut extra = TcpStream::connect(&addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    let (answer, closed) = read_until_closed(&mut extra, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1") && answer.contains("connection limit"));
    assert!(closed);

    // The idle connections end at the header timeout; the slots free up and service resumes.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    let hello = loop {
        let r = reqwest::Client::new()
            .get(s.gateway("/hello"))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break r.json::<serde_json::Value>().await.unwrap();
        }
        assert!(Instant::now() < deadline, "the gateway did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let conns = &hello["details"]["connections"];
    assert_eq!(conns["max"], 4, "{hello}");
    assert!(conns["refused"].as_u64().unwrap() >= 1, "{hello}");
    let (st, _) = s.call("/api/after").await;
    assert_eq!(st, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish() {
    let up = EchoUpstream::start("up").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path());
    s.create_api(&keyless_api("Api", "/api/", &up.url())).await;
    let url = s.gateway("/api/slow/1500");
    let http = reqwest::Client::new();
    let in_flight: Vec<_> = (0..5)
        .map(|_| {
            let http = http.clone();
            let url = url.clone();
            tokio::spawn(async move { http.get(url).send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    // Let the requests reach the upstream, then ask the process to stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = tokio::task::spawn_blocking(move || {
        let st = s.terminate();
        (st, s)
    });
    for t in in_flight {
        assert_eq!(
            t.await.unwrap().unwrap(),
            200,
            "an in-flight request failed"
        );
    }
    let (st, _s) = status.await.unwrap();
    assert!(st.success(), "gatehouse exited with {st}");
}

/// A binary upgrade: a second process binds the same ports (`SO_REUSEPORT`) and the same data
/// directory, the first gets SIGTERM and drains; a client making new connections all along never
/// sees a refused or reset connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_upgrade_without_refused_connections() {
    let up = EchoUpstream::start("up").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut old = Server::start(dir.path());
    old.create_api(&keyless_api("Api", "/api/", &up.url()))
        .await;
    let ports = (old.gateway_port, old.dashboard_port, old.portal_port);
    let new = Server::start_on_ports(dir.path(), ports, &[], None);
    let gateway = new.gateway("/api/x");
    let dashboard = new.admin_url("/api/apis");

    // Sequential requests, each on a new connection, to the gateway and the admin API.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client_loop = {
        let stop = std::sync::Arc::clone(&stop);
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let (mut ok, mut failed) = (0u32, Vec::new());
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                for (url, auth) in [(&gateway, false), (&dashboard, true)] {
                    let mut rb = http.get(url.as_str());
                    if auth {
                        rb = rb.bearer_auth(ADMIN_KEY);
                    }
                    match rb.send().await {
                        Ok(r) if r.status() == 200 => ok += 1,
                        Ok(r) => failed.push(format!("{url}: {}", r.status())),
                        Err(e) => failed.push(format!("{url}: {e:?}")),
                    }
                }
            }
            (ok, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let old_pid = old.pid();
    let exited = tokio::task::spawn_blocking(move || {
        let st = old.terminate();
        (st, old)
    })
    .await
    .unwrap();
    assert!(
        exited.0.success(),
        "the old process exited with {}",
        exited.0
    );
    // Keep going for a moment after the old process is gone: only the new one answers now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = client_loop.await.unwrap();
    assert!(
        failed.is_empty(),
        "{} failed of {}: {failed:?}",
        failed.len(),
        ok as usize + failed.len()
    );
    assert!(ok > 10, "only {ok} requests were made");
    assert_ne!(new.pid(), old_pid);
    let (st, _) = new.call("/api/after").await;
    assert_eq!(st, 200);
}

/// The binary upgrade with keep-alive clients (issue 12, graceful stop): HTTP/1.1 clients that
/// reuse their connection and HTTP/2 clients keep sending while the old process stops; the old
/// process answers `Connection: close` (HTTP/1) or sends GOAWAY (HTTP/2) between requests, the
/// clients reconnect to the new process, and not one request is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_upgrade_with_keep_alive_clients_loses_no_request() {
    let up = EchoUpstream::start("up").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut old = Server::start(dir.path());
    old.create_api(&keyless_api("Api", "/api/", &up.url()))
        .await;
    let ports = (old.gateway_port, old.dashboard_port, old.portal_port);
    let gateway = old.gateway("/api/x");
    let dashboard = old.admin_url("/api/apis");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loops = Vec::new();
    // Four HTTP/1.1 keep-alive clients and two HTTP/2 clients on the gateway, one HTTP/1.1
    // keep-alive client on the admin API; each sends one request after another.
    for (n, (url, http2, auth)) in [
        (&gateway, false, false),
        (&gateway, false, false),
        (&gateway, false, false),
        (&gateway, false, false),
        (&gateway, true, false),
        (&gateway, true, false),
        (&dashboard, false, true),
    ]
    .into_iter()
    .enumerate()
    {
        let stop = std::sync::Arc::clone(&stop);
        let url = url.clone();
        loops.push(tokio::spawn(async move {
            let mut b = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .pool_idle_timeout(Duration::from_secs(60))
                .timeout(Duration::from_secs(10));
            if http2 {
                b = b.http2_prior_knowledge();
            } else {
                b = b.http1_only();
            }
            let http = b.build().unwrap();
            let (mut ok, mut closes, mut failed) = (0u32, 0u32, Vec::new());
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                let mut rb = http.get(url.as_str());
                if auth {
                    rb = rb.bearer_auth(ADMIN_KEY);
                }
                match rb.send().await {
                    Ok(r) if r.status() == 200 => {
                        ok += 1;
                        if r.headers().get("connection").is_some_and(|v| v == "close") {
                            closes += 1;
                        }
                        let _ = r.bytes().await;
                    }
                    Ok(r) => failed.push(format!("client {n}: {}", r.status())),
                    Err(e) => failed.push(format!("client {n}: {e:?}")),
                }
            }
            (ok, closes, failed)
        }));
    }
    // The clients' connections are all to the old process; then the new one starts on the same
    // ports (the kernel spreads new connections over both) and the old one is stopped.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let data_dir = dir.path().to_owned();
    let new =
        tokio::task::spawn_blocking(move || Server::start_on_ports(&data_dir, ports, &[], None))
            .await
            .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let exited = tokio::task::spawn_blocking(move || old.terminate())
        .await
        .unwrap();
    assert!(exited.success(), "the old process exited with {exited}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut closes, mut failed) = (0, 0, Vec::new());
    for l in loops {
        let (o, c, f) = l.await.unwrap();
        ok += o;
        closes += c;
        failed.extend(f);
    }
    assert!(
        failed.is_empty(),
        "{} failed of {}: {failed:?}",
        failed.len(),
        ok as usize + failed.len()
    );
    assert!(ok > 100, "only {ok} requests were made");
    // The HTTP/1.1 clients of the old process were told to reconnect.
    assert!(closes >= 1, "no answer carried Connection: close");
    let (st, _) = new.call("/api/after").await;
    assert_eq!(st, 200);
}

/// A second `gatehouse serve` on the ports of a running one (another data directory, or the same
/// one without `--take-over`) exits non-zero naming the address, instead of sharing the ports
/// through `SO_REUSEPORT` (issue 15); the running one keeps serving alone.
#[tokio::test]
async fn a_second_gatehouse_on_taken_ports_exits_naming_the_address() {
    let up = EchoUpstream::start("up").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start(dir.path());
    first
        .create_api(&keyless_api("Api", "/api/", &up.url()))
        .await;
    let other_dir = tempfile::tempdir().unwrap();
    for (data_dir, hint) in [
        (other_dir.path(), "in use by another process"),
        (dir.path(), "--take-over"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--gateway-listen")
            .arg(format!("127.0.0.1:{}", first.gateway_port))
            .arg("--dashboard-listen")
            .arg(format!("127.0.0.1:{}", first.dashboard_port))
            .arg("--portal-listen")
            .arg(format!("127.0.0.1:{}", first.portal_port))
            .env("GATEHOUSE_ADMIN_KEY", ADMIN_KEY)
            .output()
            .expect("the binary runs");
        assert!(!out.status.success(), "the second process must not start");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "cannot listen on 127.0.0.1:{}",
                first.gateway_port
            )),
            "{err}"
        );
        assert!(err.contains(hint), "{err}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("Gateway:"));
    }
    // The first one still answers, alone.
    for _ in 0..5 {
        let (st, _) = first.call("/api/x").await;
        assert_eq!(st, 200);
    }
}
