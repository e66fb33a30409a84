//! Analytics through the real binary with the real test IdP: known traffic, then the exact
//! aggregates from `GET /api/analytics/...`; after a restart they are still there, the shutdown
//! flush writes what the periodic one had not, and new traffic adds to them.

use std::time::Duration;

use gatehouse_test_support::idp::{IdpShape, TestIdp};
use gatehouse_test_support::upstream::EchoUpstream;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{ADMIN_KEY, Server};

/// The analytics report once it shows `want` requests in total (flushes are asynchronous);
/// bounded: 150 × 200 ms.
async fn report_with(s: &Server, query: &str, want: u64) -> Value {
    let mut last = Value::Null;
    for _ in 0..150 {
        let (st, v) = s
            .admin(
                Method::GET,
                &format!("/api/analytics/requests?{query}"),
                None,
            )
            .await;
        assert_eq!(st, 200, "{v}");
        if v["totals"]["requests"].as_u64() == Some(want) {
            return v;
        }
        last = v;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the analytics never showed {want} requests; last report: {last}");
}

/// `(api_id, requests, errors, client_errors, server_errors)` per API.
fn per_api(v: &Value) -> Vec<(String, u64, u64, u64, u64)> {
    v["apis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let t = &a["totals"];
            (
                a["api_id"].as_str().unwrap().to_owned(),
                t["requests"].as_u64().unwrap(),
                t["errors"].as_u64().unwrap(),
                t["client_errors"].as_u64().unwrap(),
                t["server_errors"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn gw(s: &Server, method: Method, path: &str, token: Option<&str>, body: &str) -> u16 {
    let mut rb = s.http().request(method, s.gateway(path));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let r = rb.body(body.to_owned()).send().await.unwrap();
    let status = r.status().as_u16();
    r.bytes().await.unwrap();
    status
}

#[tokio::test]
async fn aggregates_match_known_traffic_and_survive_restarts() {
    let idp = TestIdp::start(IdpShape::Plain).await.unwrap();
    let upstream = EchoUpstream::start("an").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_with(
        dir.path(),
        &["--analytics-flush-interval", "1"],
        Some(ADMIN_KEY),
    );
    for (path, body) in [
        (
            "/api/apis",
            json!({
                "name": "An JWT", "api_id": "an-jwt", "enable_jwt": true,
                "jwt_signing_method": "rsa", "jwt_source": idp.jwks_uri(),
                "jwt_identity_base_field": "sub", "jwt_policy_field_name": "pol",
                "proxy": {"listen_path": "/an/", "target_url": upstream.url(), "strip_listen_path": true}
            }),
        ),
        (
            "/api/apis",
            json!({
                "name": "An open", "api_id": "an-open", "use_keyless": true,
                "proxy": {"listen_path": "/open/", "target_url": upstream.url(), "strip_listen_path": true}
            }),
        ),
        (
            "/api/policies",
            json!({"id": "an-gold", "name": "gold", "rate": 0, "per": 0,
                   "quota_max": 7, "quota_renewal_rate": 3600,
                   "access_rights": {"an-jwt": {"api_id": "an-jwt", "api_name": "an", "versions": []}}}),
        ),
    ] {
        let (st, v) = s.admin(Method::POST, path, Some(&body.to_string())).await;
        assert_eq!(st, 201, "{path}: {v}");
    }
    let client = idp
        .register_client(
            json!({"client_name": "an-app", "grant_types": ["client_credentials"],
            "response_types": [], "token_endpoint_auth_method": "client_secret_basic",
            "pol": "an-gold"}),
        )
        .await
        .unwrap();
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let token = idp
        .client_credentials_token(&client_id, client["client_secret"].as_str().unwrap(), None)
        .await
        .unwrap();

    // Known traffic: 7 × 200 with the token (one POST with an 11-byte body), then 2 × 429 (the
    // quota of 7 is used up), 3 × 401 without a token, 1 × 404 on no API.
    assert_eq!(
        gw(&s, Method::POST, "/an/items", Some(&token), "hello world").await,
        200
    );
    for _ in 0..6 {
        assert_eq!(
            gw(&s, Method::GET, "/an/items", Some(&token), "").await,
            200
        );
    }
    for _ in 0..2 {
        assert_eq!(
            gw(&s, Method::GET, "/an/items", Some(&token), "").await,
            429
        );
    }
    for _ in 0..3 {
        assert_eq!(gw(&s, Method::GET, "/an/items", None, "").await, 401);
    }
    assert_eq!(gw(&s, Method::GET, "/nowhere", None, "").await, 404);

    let v = report_with(&s, "range=1h", 13).await;
    let t = &v["totals"];
    assert_eq!(
        (
            &t["errors"],
            &t["client_errors"],
            &t["server_errors"],
            &t["bytes_in"]
        ),
        (&json!(6), &json!(6), &json!(0), &json!(11)),
        "{v}"
    );
    assert!(
        t["p50_ms"].as_f64().is_some() && t["p99_ms"].as_f64().is_some(),
        "{v}"
    );
    assert_eq!(v["granularity"], "minute");
    let phase1 = vec![
        ("an-jwt".to_owned(), 12, 5, 5, 0),
        (String::new(), 1, 1, 1, 0),
    ];
    assert_eq!(per_api(&v), phase1, "{v}");
    // The overall series adds up to the totals.
    let points: u64 = v["overall"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(points, 13);

    // Top clients: the 7 OK and the 2 refused by the quota (the 401s carry no client).
    let (st, top) = s
        .admin(Method::GET, "/api/analytics/top?by=client&range=1h", None)
        .await;
    assert_eq!(st, 200, "{top}");
    assert_eq!(top["entries"].as_array().unwrap().len(), 1, "{top}");
    assert_eq!(top["entries"][0]["id"], client_id.as_str());
    assert_eq!(top["entries"][0]["totals"]["requests"], 9);
    assert_eq!(top["entries"][0]["totals"]["errors"], 2);
    let (_, only_client) = s
        .admin(
            Method::GET,
            &format!("/api/analytics/requests?range=1h&client_id={client_id}"),
            None,
        )
        .await;
    assert_eq!(only_client["totals"]["requests"], 9, "{only_client}");

    // CSV export: a header and lines that add up to the same 13 requests.
    let r = s
        .http()
        .get(s.admin_url("/api/analytics/export.csv?range=1h"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = r.text().await.unwrap();
    let mut lines = csv.lines();
    assert!(
        lines.next().unwrap().starts_with("minute_utc,api_id,"),
        "{csv}"
    );
    let total: u64 = lines
        .map(|l| l.split(',').nth(5).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 13, "{csv}");

    // Bad parameters: 400 naming the parameter; no key: 401.
    for (q, param) in [
        ("range=2h", "range"),
        ("from=yesterday", "from"),
        ("granularity=week", "granularity"),
    ] {
        let (st, e) = s
            .admin(Method::GET, &format!("/api/analytics/requests?{q}"), None)
            .await;
        assert_eq!((st, e["field"].as_str()), (400, Some(param)), "{q}: {e}");
        assert!(e["error"].as_str().unwrap().contains(param), "{e}");
    }
    let (st, e) = s
        .admin(Method::GET, "/api/analytics/top?by=team", None)
        .await;
    assert_eq!((st, e["field"].as_str()), (400, Some("by")), "{e}");
    let r = s
        .http()
        .get(s.admin_url("/api/analytics/requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Restart: the aggregates are still there. With a flush interval of an hour, only the flush
    // at shutdown can write the next requests.
    assert!(s.terminate().success());
    drop(s);
    let mut s = Server::start_with(
        dir.path(),
        &["--analytics-flush-interval", "3600"],
        Some(ADMIN_KEY),
    );
    let v = report_with(&s, "range=1h", 13).await;
    assert_eq!(per_api(&v), phase1, "{v}");
    for _ in 0..4 {
        assert_eq!(gw(&s, Method::GET, "/open/x", None, "").await, 200);
    }
    assert!(s.terminate().success());
    drop(s);

    let s = Server::start_with(dir.path(), &[], Some(ADMIN_KEY));
    let v = report_with(&s, "range=1h", 17).await;
    assert_eq!(
        per_api(&v),
        vec![
            ("an-jwt".to_owned(), 12, 5, 5, 0),
            ("an-open".to_owned(), 4, 0, 0, 0),
            (String::new(), 1, 1, 1, 0),
        ],
        "{v}"
    );
    let (_, top) = s
        .admin(Method::GET, "/api/analytics/top?by=api&range=24h", None)
        .await;
    let ids: Vec<&str> = top["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["an-jwt", "an-open", ""], "{top}");
}
