//! The request path's security (issue 12): paths normalised once before routing and forwarded as
//! normalised, against an nginx upstream that normalises too; listen paths that could never match
//! and reserved paths refused when saved; duplicate credentials, missing or repeated `Host`,
//! oversized heads and broken chunked bodies refused with JSON errors; credentials in a target URL
//! sent as `Authorization: Basic`, never in `Host`; no metrics on the gateway listener by default.
//! Hostile requests go over raw TCP so that no client library tidies the path first.

use std::time::Duration;

use gatehouse_test_support::nginx::NginxUpstream;
use gatehouse_test_support::upstream::EchoUpstream;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{ADMIN_KEY, Server};
use crate::hostile::{SECRET, b64, hs, now};

/// Sends `request` as is and reads the answer until the server closes: status and body.
pub(crate) async fn raw(port: u16, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf))
        .await
        .expect("the gateway answers and closes within 20 s")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_owned())
}

/// `GET target` with the given extra header lines, `Connection: close`.
async fn get(port: u16, target: &str, extra: &str) -> (u16, String) {
    raw(
        port,
        format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
}

fn token(pol: &str) -> String {
    let claims = json!({"sub": "path-tester", "pol": pol, "exp": now() + 600, "iat": now()});
    hs(r#"{"alg":"HS256","typ":"JWT"}"#, &claims.to_string())
}

fn jwt_api(id: &str, listen_path: &str, target: &str) -> Value {
    json!({
        "name": id, "api_id": id, "enable_jwt": true,
        "jwt_signing_method": "hmac", "jwt_source": b64(SECRET, false),
        "jwt_policy_field_name": "pol",
        "proxy": {"listen_path": listen_path, "target_url": target, "strip_listen_path": false}
    })
}

#[tokio::test]
async fn hostile_paths_are_refused_or_served_by_the_api_their_normalised_path_belongs_to() {
    let nginx = NginxUpstream::start(&["public", "internal", "payments"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    s.create_api(&json!({
        "name": "public", "api_id": "public", "use_keyless": true,
        "proxy": {"listen_path": "/public/", "target_url": nginx.url(), "strip_listen_path": false}
    }))
    .await;
    s.create_api(&jwt_api("internal", "/internal/", &nginx.url()))
        .await;
    s.create_api(&jwt_api("payments", "/payments/", &nginx.url()))
        .await;
    for policy in [
        json!({"id": "all", "name": "all", "access_rights": {
            "internal": {"api_id": "internal", "versions": []},
            "payments": {"api_id": "payments", "versions": []}}}),
        json!({"id": "charges-only", "name": "charges only", "access_rights": {
            "payments": {"api_id": "payments", "versions": [],
                "allowed_urls": [{"url": "^/charges", "methods": ["GET"]}]}}}),
    ] {
        let (st, v) = s
            .admin(Method::POST, "/api/policies", Some(&policy.to_string()))
            .await;
        assert_eq!(st, 201, "{v}");
    }
    let port = s.gateway_port;

    // Controls: the keyless API is open, the JWT API is closed without a token and open with one.
    let (st, body) = get(port, "/public/x", "").await;
    assert_eq!(
        (st, body.as_str()),
        (200, "location=public uri=/public/x\n")
    );
    let (st, body) = get(port, "/internal/secret", "").await;
    assert_eq!(st, 401, "{body}");
    let auth = format!("Authorization: Bearer {}\r\n", token("all"));
    let (st, body) = get(port, "/internal/secret", &auth).await;
    assert_eq!(
        (st, body.as_str()),
        (200, "location=internal uri=/internal/secret\n")
    );

    // (raw path, expected status, expected body start): 400s name the problem; everything else is
    // answered by the API its normalised path belongs to, and nginx sees that normalised path.
    let cases: &[(&str, u16, &str)] = &[
        (
            "/public/../internal/secret",
            401,
            "{\"error\":\"Authorization field missing\"",
        ),
        (
            "/public/%2e%2e/internal/secret",
            401,
            "{\"error\":\"Authorization field missing\"",
        ),
        (
            "/public/%2E%2e/internal/secret",
            401,
            "{\"error\":\"Authorization field missing\"",
        ),
        (
            "/public/.%2e/internal/secret",
            401,
            "{\"error\":\"Authorization field missing\"",
        ),
        (
            "/public/%2e./internal/secret",
            401,
            "{\"error\":\"Authorization field missing\"",
        ),
        (
            "/public/./../internal/secret",
            401,
            "{\"error\":\"Authorization field missing\"",
        ),
        (
            "//internal//secret",
            401,
            "{\"error\":\"Authorization field missing\"",
        ),
        (
            "/public//..//internal/secret",
            401,
            "{\"error\":\"Authorization field missing\"",
        ),
        // Decoded once only: nginx sees a literal "%2e%2e" segment, under /public/.
        (
            "/public/%252e%252e/internal/secret",
            200,
            "location=public uri=/public/%2e%2e/internal/secret",
        ),
        ("/public/./x", 200, "location=public uri=/public/x"),
        ("/public/a/../x", 200, "location=public uri=/public/x"),
        ("/public/%7Euser", 200, "location=public uri=/public/~user"),
        (
            "/../internal/secret",
            400,
            "{\"error\":\"the request path climbs above the root",
        ),
        (
            "/public/../../internal/secret",
            400,
            "{\"error\":\"the request path climbs above the root",
        ),
        (
            "/public/%2e%2e/%2e%2e/internal/secret",
            400,
            "{\"error\":\"the request path climbs above the root",
        ),
        (
            "/public/..%2finternal/secret",
            400,
            "{\"error\":\"the request path contains an encoded '/'",
        ),
        (
            "/public/..%2Finternal/secret",
            400,
            "{\"error\":\"the request path contains an encoded '/'",
        ),
        (
            "/public/%5c..%5cinternal/secret",
            400,
            "{\"error\":\"the request path contains an encoded '/'",
        ),
        (
            "/public/..%5Cinternal/secret",
            400,
            "{\"error\":\"the request path contains an encoded '/'",
        ),
        (
            "/public/..;/internal/secret",
            400,
            "{\"error\":\"the request path contains a dot segment with ';'",
        ),
        (
            "/public/.;x/internal/secret",
            400,
            "{\"error\":\"the request path contains a dot segment with ';'",
        ),
        (
            "/public/secret%00",
            400,
            "{\"error\":\"the request path contains a control character",
        ),
        (
            "/public/secret%00.json",
            400,
            "{\"error\":\"the request path contains a control character",
        ),
        (
            "/public/%c0%ae%c0%ae/internal/secret",
            400,
            "{\"error\":\"the request path contains percent-encoded bytes that are not valid UTF-8",
        ),
        (
            "/public/%e0%80%ae%e0%80%ae/internal",
            400,
            "{\"error\":\"the request path contains percent-encoded bytes that are not valid UTF-8",
        ),
        (
            "/public/%zz",
            400,
            "{\"error\":\"the request path contains a malformed percent-encoding",
        ),
    ];
    for (path, status, start) in cases {
        let (st, body) = get(port, path, "").await;
        assert_eq!(st, *status, "{path}: {body}");
        assert!(body.starts_with(start), "{path}: {body}");
        assert!(
            !body.contains("location=internal"),
            "{path} reached /internal/ without a token: {body}"
        );
    }
    // A raw backslash is refused before routing (hyper refuses it as an invalid request target,
    // or the normaliser as an encoded separator): never routed.
    let (st, body) = get(port, "/public\\..\\internal\\secret", "").await;
    assert_eq!(st, 400, "{body}");

    // With a token for /internal/, the same tricks reach /internal/ as /internal/secret exactly.
    for path in [
        "/public/../internal/secret",
        "/public/%2e%2e/internal/secret",
        "//internal//./secret",
    ] {
        let (st, body) = get(port, path, &auth).await;
        assert_eq!(
            (st, body.as_str()),
            (200, "location=internal uri=/internal/secret\n"),
            "{path}"
        );
    }

    // allowed_urls are checked on the normalised path: /payments/charges/../admin is
    // /payments/admin, which the charges-only policy does not allow.
    let charges = format!("Authorization: Bearer {}\r\n", token("charges-only"));
    let (st, body) = get(port, "/payments/charges/x", &charges).await;
    assert_eq!(st, 200, "{body}");
    for path in [
        "/payments/charges/../admin",
        "/payments/charges/%2e%2e/admin",
        "/payments/charges/./../admin",
    ] {
        let (st, body) = get(port, path, &charges).await;
        assert_eq!(st, 403, "{path}: {body}");
        assert!(
            body.contains("Access to this resource has been disallowed"),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn listen_paths_that_could_never_match_and_reserved_paths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    for (lp, word) in [
        ("/a//b/", "normalised"),
        ("/a/../b/", "normalised"),
        ("/a/./b/", "normalised"),
        ("/a%2Fb/", "normalised"),
        ("/hello", "reserved"),
        ("/hello/", "reserved"),
        ("/ready", "reserved"),
        ("/metrics", "reserved"),
    ] {
        let def = json!({"name": "x", "use_keyless": true,
            "proxy": {"listen_path": lp, "target_url": "http://127.0.0.1:9"}});
        let (st, v) = s
            .admin(Method::POST, "/api/apis", Some(&def.to_string()))
            .await;
        assert_eq!(st, 400, "{lp}: {v}");
        assert_eq!(v["field"], "proxy.listen_path", "{lp}: {v}");
        assert!(v["error"].as_str().unwrap().contains(word), "{lp}: {v}");
    }
    let (st, v) = s.admin(Method::GET, "/api/apis", None).await;
    assert_eq!(st, 200);
    assert_eq!(
        v.as_array().map(Vec::len),
        Some(0),
        "nothing was stored: {v}"
    );
    // /hello is still the gateway's own.
    let (st, body) = get(s.gateway_port, "/hello", "").await;
    assert_eq!(st, 200);
    assert!(body.contains("\"status\":\"pass\""), "{body}");
}

#[tokio::test]
async fn duplicate_credentials_host_headers_oversized_heads_and_broken_bodies_are_400s() {
    let upstream = EchoUpstream::start("dup").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let mut api = jwt_api("dup", "/dup/", &upstream.url());
    api["auth_configs"] = json!({"jwt": {"use_param": true, "param_name": "token",
        "use_cookie": true, "cookie_name": "token"}});
    s.create_api(&api).await;
    s.create_api(&json!({"name": "open", "api_id": "open", "use_keyless": true,
        "proxy": {"listen_path": "/open/", "target_url": upstream.url(), "strip_listen_path": true}}))
        .await;
    let policy = json!({"id": "dup", "name": "dup", "access_rights": {"dup": {"api_id": "dup"}}});
    let (st, v) = s
        .admin(Method::POST, "/api/policies", Some(&policy.to_string()))
        .await;
    assert_eq!(st, 201, "{v}");
    let port = s.gateway_port;
    let good = token("dup");
    let other = {
        let claims = json!({"sub": "someone-else", "pol": "dup", "exp": now() + 600});
        hs(r#"{"alg":"HS256","typ":"JWT"}"#, &claims.to_string())
    };

    // One credential: served.
    let (st, body) = get(port, "/dup/x", &format!("Authorization: Bearer {good}\r\n")).await;
    assert_eq!(st, 200, "{body}");
    let (st, body) = get(port, &format!("/dup/x?token={good}"), "").await;
    assert_eq!(st, 200, "{body}");
    // Two: refused with 400 before any of them is verified or forwarded.
    let twice: Vec<(String, String)> = vec![
        (
            "/dup/x".into(),
            format!("Authorization: Bearer {good}\r\nAuthorization: Bearer {other}\r\n"),
        ),
        (
            format!("/dup/x?token={other}"),
            format!("Authorization: Bearer {good}\r\n"),
        ),
        (
            "/dup/x".into(),
            format!("Authorization: Bearer {good}\r\nCookie: token={other}\r\n"),
        ),
        (format!("/dup/x?token={good}&token={other}"), String::new()),
        (
            "/dup/x".into(),
            format!("Cookie: token={good}\r\nCookie: token={other}\r\n"),
        ),
    ];
    for (target, headers) in &twice {
        let (st, body) = get(port, target, headers).await;
        assert_eq!(st, 400, "{target} {headers}: {body}");
        assert!(body.contains("more than one credential"), "{body}");
    }

    // Host: missing (HTTP/1.1) or repeated → 400.
    let (st, body) = raw(port, b"GET /open/x HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("no Host header"), "{body}");
    let (st, body) = raw(
        port,
        b"GET /open/x HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("more than one Host"), "{body}");
    // HTTP/1.0 without Host is fine.
    let (st, body) = raw(port, b"GET /open/x HTTP/1.0\r\n\r\n").await;
    assert_eq!(st, 200, "{body}");

    // A head over --max-header-bytes (32 KiB by default): 431 with a JSON body.
    let big = format!("X-Big: {}\r\n", "a".repeat(40 * 1024));
    let (st, body) = get(port, "/open/x", &big).await;
    assert_eq!(st, 431, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("JSON 431: {body}"));
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("request header fields too large"),
        "{v}"
    );

    // A broken chunked body: 400 from the gateway, not 502.
    let (st, body) = raw(
        port,
        b"POST /open/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\
          Connection: close\r\n\r\n5\r\nhello\r\nZZ\r\nnot a chunk\r\n\r\n",
    )
    .await;
    assert_eq!(st, 400, "{body}");
    // A chunked body that is fine still goes through.
    let (st, body) = raw(
        port,
        b"POST /open/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\
          Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"received\":5"), "{body}");
}

#[tokio::test]
async fn target_url_credentials_become_basic_auth_and_never_reach_host() {
    let upstream = EchoUpstream::start("creds").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let target = upstream.url().replace("http://", "http://svc:p%40ss@");
    s.create_api(
        &json!({"name": "creds", "api_id": "creds", "use_keyless": true,
        "proxy": {"listen_path": "/creds/", "target_url": target, "strip_listen_path": true}}),
    )
    .await;
    let (st, body) = s.call("/creds/x").await;
    assert_eq!(st, 200, "{body}");
    let echo: Value = serde_json::from_str(&body).unwrap();
    let host = echo["headers"]["host"].as_str().unwrap();
    assert_eq!(host, upstream.addr().to_string());
    assert!(!host.contains('@') && !host.contains("svc"), "{host}");
    // svc:p@ss
    assert_eq!(echo["headers"]["authorization"], "Basic c3ZjOnBAc3M=");
    // A request with its own Authorization keeps it (as Go's client, and so Tyk, does).
    let r = s
        .http()
        .get(s.gateway("/creds/x"))
        .header("authorization", "Bearer mine")
        .send()
        .await
        .unwrap();
    let echo: Value = r.json().await.unwrap();
    assert_eq!(echo["headers"]["authorization"], "Bearer mine");
}

#[tokio::test]
async fn metrics_are_off_on_the_gateway_listener_unless_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let (st, body) = get(s.gateway_port, "/metrics", "").await;
    assert_eq!(st, 404, "{body}");
    let r = s.http().get(s.admin_url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("gatehouse_build_info"));
    drop(s);
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(dir.path(), &["--metrics-path", "/metrics"], Some(ADMIN_KEY));
    let (st, body) = get(s.gateway_port, "/metrics", "").await;
    assert_eq!(st, 200);
    assert!(body.contains("gatehouse_build_info"), "{body}");
}
