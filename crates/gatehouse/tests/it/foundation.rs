//! The foundation: admin API, store durability, routing and the streaming proxy.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gatehouse_test_support::upstream::EchoUpstream;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Server, keyless_api, memory_kib};

#[tokio::test]
async fn first_start_prints_a_generated_key_once_and_the_three_urls() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_with(dir.path(), &[], None);
    assert!(s.admin_key.starts_with("ghk_"), "{:?}", s.stdout_lines);
    let out = s.stdout_lines.join("\n");
    assert!(
        out.contains(&format!("Gateway:   http://127.0.0.1:{}", s.gateway_port)),
        "{out}"
    );
    assert!(
        out.contains(&format!("Dashboard: http://127.0.0.1:{}", s.dashboard_port)),
        "{out}"
    );
    assert!(
        out.contains(&format!("Portal:    http://127.0.0.1:{}", s.portal_port)),
        "{out}"
    );
    let (st, _) = s.admin(Method::GET, "/api/apis", None).await;
    assert_eq!(st, 200);

    // The key is stored only as a hash: the database file does not contain it.
    let db = std::fs::read(dir.path().join("gatehouse.db")).unwrap();
    assert!(
        !db.windows(s.admin_key.len())
            .any(|w| w == s.admin_key.as_bytes())
    );

    // Second start: no key printed, the old key still works.
    let key = s.admin_key.clone();
    s.terminate();
    s.admin_key.clear();
    s.start_again();
    assert!(
        s.admin_key.is_empty(),
        "printed again: {:?}",
        s.stdout_lines
    );
    s.admin_key = key;
    let (st, _) = s.admin(Method::GET, "/api/apis", None).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn admin_api_refuses_missing_or_wrong_keys_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    for auth in [None, Some("Bearer nope"), Some("nope")] {
        let mut rb = s.http().get(s.admin_url("/api/apis"));
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains("admin key"), "{v}");
    }
    // The OpenAPI document is public and lists the routes.
    let doc: Value = s
        .http()
        .get(s.admin_url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/api/apis/{api_id}"]["put"].is_object());
    // Unknown endpoints answer JSON too.
    let (st, v) = s.admin(Method::GET, "/api/nope", None).await;
    assert_eq!(st, 404);
    assert!(v["error"].is_string());
}

#[tokio::test]
async fn walkthrough_create_call_retarget_restart() {
    let a = EchoUpstream::start("a").await.unwrap();
    let b = EchoUpstream::start("b").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path());

    let created = s.create_api(&keyless_api("Echo", "/echo/", &a.url())).await;
    assert_eq!(created["warnings"], json!([]));
    let id = created["api_id"].as_str().unwrap().to_owned();

    let (st, body) = s.call("/echo/items?x=1").await;
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["upstream"], "a");
    assert_eq!(v["path"], "/items");
    assert_eq!(v["query"], "x=1");

    // PUT a new target: the change is live when the PUT returns, so the next call goes to b.
    let mut def = created["api"].clone();
    def["proxy"]["target_url"] = json!(b.url());
    let (st, v) = s
        .admin(
            Method::PUT,
            &format!("/api/apis/{id}"),
            Some(&def.to_string()),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["action"], "updated");
    let (_, body) = s.call("/echo/items").await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["upstream"],
        "b"
    );

    // Restart: still there, still routed to b.
    s.terminate();
    s.start_again();
    let (st, v) = s.admin(Method::GET, &format!("/api/apis/{id}"), None).await;
    assert_eq!(st, 200);
    assert_eq!(v["proxy"]["target_url"], json!(b.url()));
    let (_, body) = s.call("/echo/items").await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["upstream"],
        "b"
    );

    // Delete: gone from the gateway at once.
    let (st, _) = s
        .admin(Method::DELETE, &format!("/api/apis/{id}"), None)
        .await;
    assert_eq!(st, 200);
    let (st, body) = s.call("/echo/items").await;
    assert_eq!(st, 404);
    assert!(serde_json::from_str::<Value>(&body).unwrap()["error"].is_string());
}

#[tokio::test]
async fn a_committed_change_survives_kill_9() {
    let a = EchoUpstream::start("a").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path());
    let created = s.create_api(&keyless_api("Durable", "/d/", &a.url())).await;
    let (st, _) = s
        .admin(
            Method::POST,
            "/api/policies",
            Some(&json!({"id": "gold", "name": "Gold", "rate": 10, "per": 1}).to_string()),
        )
        .await;
    assert_eq!(st, 201);
    s.kill9_and_restart();
    let (st, v) = s.admin(Method::GET, "/api/apis", None).await;
    assert_eq!(st, 200);
    assert_eq!(v[0]["api_id"], created["api_id"]);
    let (st, v) = s.admin(Method::GET, "/api/policies/gold", None).await;
    assert_eq!(st, 200);
    assert_eq!(v["rate"], 10);
    assert_eq!(s.call("/d/x").await.0, 200);
}

#[tokio::test]
async fn bad_input_names_the_field_and_changes_nothing() {
    let a = EchoUpstream::start("a").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let first = s
        .create_api(&keyless_api("First", "/first/", &a.url()))
        .await;
    let id = first["api_id"].as_str().unwrap();
    let (_, before) = s.admin(Method::GET, "/api/apis", None).await;

    let cases: Vec<(Method, String, String, u16, Option<&str>)> = vec![
        (Method::POST, "/api/apis".into(), "{not json".into(), 400, None),
        (Method::POST, "/api/apis".into(), "".into(), 400, None),
        (
            Method::POST,
            "/api/apis".into(),
            json!({"proxy": {"listen_path": "/n/", "target_url": a.url()}}).to_string(),
            400,
            Some("name"),
        ),
        (
            Method::POST,
            "/api/apis".into(),
            json!({"name": "x", "proxy": {"target_url": a.url()}}).to_string(),
            400,
            Some("proxy.listen_path"),
        ),
        (
            Method::POST,
            "/api/apis".into(),
            json!({"name": "x", "proxy": {"listen_path": "/x", "target_url": "not a url"}}).to_string(),
            400,
            Some("proxy.target_url"),
        ),
        (
            Method::POST,
            "/api/apis".into(),
            json!({"name": "x", "active": "yes", "proxy": {"listen_path": "/x", "target_url": a.url()}})
                .to_string(),
            400,
            Some("active"),
        ),
        (
            Method::POST,
            "/api/apis".into(),
            keyless_api("Clash", "/first", &a.url()).to_string(),
            409,
            Some("proxy.listen_path"),
        ),
        (
            Method::POST,
            "/api/apis".into(),
            {
                let mut d = keyless_api("Same id", "/other/", &a.url());
                d["api_id"] = json!(id);
                d.to_string()
            },
            409,
            Some("api_id"),
        ),
        (
            Method::PUT,
            "/api/apis/nope".into(),
            keyless_api("Nope", "/nope/", &a.url()).to_string(),
            404,
            None,
        ),
        (
            Method::PUT,
            format!("/api/apis/{id}"),
            {
                let mut d = keyless_api("First", "/first/", &a.url());
                d["api_id"] = json!("other-id");
                d.to_string()
            },
            400,
            Some("api_id"),
        ),
        (
            Method::POST,
            "/api/policies".into(),
            json!({"rate": 10, "per": 0}).to_string(),
            400,
            Some("per"),
        ),
    ];
    for (method, path, body, status, field) in cases {
        let (st, v) = s.admin(method.clone(), &path, Some(&body)).await;
        assert_eq!(st, status, "{method} {path} {body} -> {v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
        if let Some(f) = field {
            assert_eq!(v["field"], f, "{v}");
        }
    }
    let (_, after) = s.admin(Method::GET, "/api/apis", None).await;
    assert_eq!(before, after);
    let (_, pols) = s.admin(Method::GET, "/api/policies", None).await;
    assert_eq!(pols, json!([]));
    assert_eq!(
        s.admin(Method::GET, "/api/policies/nope", None).await.0,
        404
    );
    assert_eq!(s.admin(Method::DELETE, "/api/apis/nope", None).await.0, 404);
}

#[tokio::test]
async fn tyk_definitions_round_trip_with_warnings() {
    let a = EchoUpstream::start("a").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let def = json!({
        "name": "Tyk export", "api_id": "tyk-1", "org_id": "org1", "slug": "tyk-export",
        "use_keyless": true, "active": true,
        "proxy": {"listen_path": "/tyk/", "target_url": a.url(), "strip_listen_path": true,
                  "preserve_host_header": false, "enable_load_balancing": false, "target_list": [],
                  "check_host_against_uptime_tests": true},
        "version_data": {"not_versioned": true, "default_version": "",
                         "versions": {"Default": {"name": "Default", "use_extended_paths": true,
                                                  "extended_paths": {"ignored": [], "cache": ["/x"]}}}},
        "CORS": {"enable": false, "allowed_origins": []},
        "enable_batch_request_support": true,
        "cache_options": {"cache_timeout": 60, "enable_cache": true},
        "disable_rate_limit": false, "disable_quota": false,
        "global_rate_limit": {"rate": 0, "per": 0},
        "custom_field": {"kept": [1, 2, 3]}
    });
    let created = s.create_api(&def).await;
    let w: Vec<String> = serde_json::from_value(created["warnings"].clone()).unwrap();
    for expected in [
        "proxy.check_host_against_uptime_tests",
        "version_data.versions.Default.extended_paths",
        "enable_batch_request_support",
        "cache_options",
        "custom_field",
    ] {
        assert!(
            w.iter().any(|x| x.starts_with(expected)),
            "{expected} missing in {w:?}"
        );
    }
    assert!(!w.iter().any(|x| x.starts_with("CORS")), "{w:?}");
    let (_, stored) = s.admin(Method::GET, "/api/apis/tyk-1", None).await;
    assert_eq!(stored, def, "the definition round-trips unchanged");
    assert_eq!(s.call("/tyk/hello").await.0, 200);
}

#[tokio::test]
async fn tyk_directory_import_reports_each_item() {
    let a = EchoUpstream::start("a").await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let tyk = tempfile::tempdir().unwrap();
    std::fs::create_dir(tyk.path().join("apps")).unwrap();
    std::fs::create_dir(tyk.path().join("policies")).unwrap();
    let app = |id: &str, lp: &str| {
        json!({
            "name": format!("App {id}"), "api_id": id, "org_id": "default",
            "use_keyless": true, "active": true,
            "definition": {"location": "header", "key": "x-api-version"},
            "version_data": {"not_versioned": true, "versions": {"Default": {"name": "Default"}}},
            "proxy": {"listen_path": lp, "target_url": a.url(), "strip_listen_path": true},
            "enable_context_vars": true
        })
    };
    std::fs::write(
        tyk.path().join("apps/one.json"),
        app("one", "/one/").to_string(),
    )
    .unwrap();
    std::fs::write(
        tyk.path().join("apps/two.json"),
        app("two", "/two/").to_string(),
    )
    .unwrap();
    std::fs::write(tyk.path().join("apps/broken.json"), "{ nope").unwrap();
    std::fs::write(
        tyk.path().join("apps/zz-clash.json"),
        app("clash", "/one/").to_string(),
    )
    .unwrap();
    std::fs::write(
        tyk.path().join("policies/policies.json"),
        json!({
            "gold": {"rate": 100, "per": 60, "quota_max": 1000, "quota_renewal_rate": 3600,
                     "access_rights": {"one": {"api_id": "one", "api_name": "App one", "versions": ["Default"]}},
                     "org_id": "default", "throttle_interval": 5, "hmac_enabled": false},
            "silver": {"rate": 10, "per": 60, "access_rights": {"ghost": {"api_id": "ghost", "versions": []}}}
        })
        .to_string(),
    )
    .unwrap();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["import", "tyk"])
        .arg(tyk.path())
        .arg("--json")
        .arg("--data-dir")
        .arg(data.path())
        .env("GATEHOUSE_LOG_LEVEL", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "some items fail, so exit 2");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["imported"], 4, "{report:#}");
    assert_eq!(report["failed"], 2, "{report:#}");
    let items = report["items"].as_array().unwrap();
    let by_source = |s: &str| {
        items
            .iter()
            .find(|i| i["source"] == s)
            .unwrap_or_else(|| panic!("{s}"))
    };
    assert_eq!(by_source("apps/broken.json")["status"], "failed");
    let clash = by_source("apps/zz-clash.json");
    assert_eq!(clash["status"], "failed");
    assert!(
        clash["error"].as_str().unwrap().contains("App one"),
        "{clash}"
    );
    let one = by_source("apps/one.json");
    assert_eq!(one["status"], "imported");
    assert!(
        one["warnings"].to_string().contains("enable_context_vars"),
        "{one}"
    );
    let gold = items.iter().find(|i| i["id"] == "gold").unwrap();
    assert!(
        gold["warnings"].to_string().contains("throttle_interval"),
        "{gold}"
    );
    let silver = items.iter().find(|i| i["id"] == "silver").unwrap();
    assert!(
        silver["warnings"]
            .to_string()
            .contains("access_rights.ghost"),
        "{silver}"
    );

    // The imported configuration serves.
    let s = Server::start(data.path());
    assert_eq!(s.call("/one/x").await.0, 200);
    assert_eq!(s.call("/two/x").await.0, 200);
    let (_, p) = s.admin(Method::GET, "/api/policies/gold", None).await;
    assert_eq!(p["quota_max"], 1000);

    // The same import through the admin API: repeatable, items are updated.
    let body = json!({"apis": [app("one", "/one/")], "policies": {"gold": {"rate": 1, "per": 1}}});
    let (st, r) = s
        .admin(Method::POST, "/api/import/tyk", Some(&body.to_string()))
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["items"][0]["status"], "updated");
    assert_eq!(r["items"][1]["status"], "updated");
}

#[tokio::test]
async fn proxy_errors_are_json_with_the_right_status() {
    let a = EchoUpstream::start("a").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        &["--upstream-response-timeout", "1"],
        Some(crate::harness::ADMIN_KEY),
    );
    // A port with nothing listening.
    let closed = format!("http://127.0.0.1:{}", crate::harness::free_port());
    s.create_api(&keyless_api("Down", "/down/", &closed)).await;
    s.create_api(&keyless_api("Slow", "/slow-api/", &a.url()))
        .await;
    let mut inactive = keyless_api("Off", "/off/", &a.url());
    inactive["active"] = json!(false);
    s.create_api(&inactive).await;
    let mut tyk_auth = keyless_api("Tyk auth", "/authtoken/", &a.url());
    tyk_auth["use_keyless"] = json!(false);
    tyk_auth["use_standard_auth"] = json!(true);
    // An auth method Gatehouse does not implement is refused when saved (a definition stored
    // before that rule is still answered 401 at the gateway: fail closed either way).
    let (st, refused) = s
        .admin(Method::POST, "/api/apis", Some(&tyk_auth.to_string()))
        .await;
    assert_eq!(st, 400, "{refused}");
    assert_eq!(refused["field"], "use_standard_auth", "{refused}");

    for (path, status) in [
        ("/nowhere", 404),
        ("/off/x", 404),
        ("/down/x", 502),
        ("/slow-api/slow/3000", 504),
        ("/authtoken/x", 404),
    ] {
        let r = s.http().get(s.gateway(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
        assert_eq!(r.headers()["content-type"], "application/json");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: {v}"
        );
    }
    let hello: Value = s
        .http()
        .get(s.gateway("/hello"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hello["status"], "pass");
    assert_eq!(hello["details"]["configuration"]["apis"], 2);
}

#[tokio::test]
async fn headers_paths_and_http2() {
    let a = EchoUpstream::start("a").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let mut strip = keyless_api("Strip", "/strip", &format!("{}/base/", a.url()));
    strip["proxy"]["strip_listen_path"] = json!(true);
    s.create_api(&strip).await;
    let mut keep = keyless_api("Keep", "/keep/", &a.url());
    keep["proxy"]["strip_listen_path"] = json!(false);
    keep["proxy"]["preserve_host_header"] = json!(true);
    s.create_api(&keep).await;

    let r = s
        .http()
        .post(s.gateway("/strip/a%20b/c?q=1&q=2"))
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("x-forwarded-for", "10.1.1.1")
        .header("x-custom", "kept")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-upstream"], "a");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/base/a%20b/c");
    assert_eq!(v["query"], "q=1&q=2");
    assert_eq!(v["body_bytes"], 5);
    let h = &v["headers"];
    assert_eq!(h["x-forwarded-for"], "10.1.1.1, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(
        h["x-forwarded-host"],
        format!("127.0.0.1:{}", s.gateway_port)
    );
    assert_eq!(h["host"], a.addr().to_string());
    assert_eq!(h["x-custom"], "kept");
    assert!(h.get("x-hop").is_none(), "{h}");

    let (_, body) = s.call("/keep/x").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["path"], "/keep/x");
    assert_eq!(
        v["headers"]["host"],
        format!("127.0.0.1:{}", s.gateway_port)
    );

    // HTTP/2 from the client (prior knowledge, h2c); HTTP/1.1 to the upstream.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2.get(s.gateway("/strip/h2")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["path"], "/base/h2");
    assert_eq!(v["version"], "HTTP/1.1");
}

/// 100 MB up and 100 MB down through the gateway: bodies stream, the gateway's peak resident
/// memory grows by less than 20 MB.
#[tokio::test]
async fn large_bodies_stream_with_bounded_memory() {
    const SIZE: u64 = 100 * 1024 * 1024;
    let a = EchoUpstream::start("a").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    s.create_api(&keyless_api("Big", "/big/", &a.url())).await;
    // Warm up connections, their buffers and the allocator with a small transfer each way, so
    // the measurement shows what moving 100 MB costs, not the first use of a connection.
    assert_eq!(s.call("/big/warm").await.0, 200);
    let warm = vec![b'w'; 4 * 1024 * 1024];
    let r = s
        .http()
        .post(s.gateway("/big/upload"))
        .body(warm)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .http()
        .get(s.gateway("/big/download/4194304"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), 4 * 1024 * 1024);
    let (hwm_before, _) = memory_kib(s.pid());

    // Upload: the body is generated as it is sent.
    let chunk = bytes::Bytes::from(vec![b'u'; 256 * 1024]);
    let chunks = (SIZE / chunk.len() as u64) as usize;
    let stream = futures_util::stream::iter(
        (0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    );
    let r = s
        .http()
        .post(s.gateway("/big/upload"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["received"], SIZE);

    // Download: counted as it arrives.
    let mut r = s
        .http()
        .get(s.gateway(&format!("/big/download/{SIZE}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut n = 0u64;
    while let Some(c) = r.chunk().await.unwrap() {
        n += c.len() as u64;
    }
    assert_eq!(n, SIZE);

    let (hwm_after, rss_after) = memory_kib(s.pid());
    let growth_kib = hwm_after.saturating_sub(hwm_before);
    eprintln!("peak RSS before {hwm_before} KiB, after {hwm_after} KiB, now {rss_after} KiB");
    assert!(
        growth_kib < 20 * 1024,
        "peak resident memory grew by {growth_kib} KiB moving 2 x 100 MB"
    );
}

/// Many clients call a keyless API while its definition is replaced 30 times: no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_changes_under_load_fail_no_request() {
    let a = EchoUpstream::start("a").await.unwrap();
    let b = EchoUpstream::start("b").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(Server::start(dir.path()));
    let created = s.create_api(&keyless_api("Live", "/live/", &a.url())).await;
    let id = created["api_id"].as_str().unwrap().to_owned();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..20 {
        let (s, stop, ok, bad) = (s.clone(), stop.clone(), ok.clone(), bad.clone());
        clients.push(tokio::spawn(async move {
            // Bounded: at most 100k requests per client, and the loop ends when the updates do.
            for _ in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match s.http().get(s.gateway("/live/x")).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        eprintln!("failed request: {other:?}");
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let mut def = created["api"].clone();
    for i in 0..30 {
        def["proxy"]["target_url"] = json!(if i % 2 == 0 { b.url() } else { a.url() });
        def["name"] = json!(format!("Live {i}"));
        let (st, v) = s
            .admin(
                Method::PUT,
                &format!("/api/apis/{id}"),
                Some(&def.to_string()),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let ok = ok.load(Ordering::Relaxed);
    eprintln!("{ok} requests during 30 updates");
    assert!(ok > 100, "the load ran ({ok} requests)");
    assert_eq!(bad.load(Ordering::Relaxed), 0);
}
