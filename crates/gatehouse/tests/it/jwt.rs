//! JWT APIs against a real IdP (`oidc-provider`, started by the test): the client-credentials round
//! trip, every row of the error table, key rotation, IdP outages, refetch limits, algorithm
//! confusion, rate limits and quotas.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gatehouse_test_support::idp::{IdpShape, TestIdp};
use gatehouse_test_support::upstream::EchoUpstream;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::Server;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A JWT API trusting the IdP's JWKS, identity `sub`, policy claim `pol`.
fn jwt_api(id: &str, lp: &str, upstream: &str, jwks_uri: &str, method: &str) -> Value {
    json!({
        "name": format!("JWT {id}"), "api_id": id, "enable_jwt": true,
        "jwt_signing_method": method, "jwt_source": jwks_uri,
        "jwt_identity_base_field": "sub", "jwt_policy_field_name": "pol",
        "strip_auth_data": true,
        "proxy": {"listen_path": lp, "target_url": upstream, "strip_listen_path": true}
    })
}

fn policy(id: &str, api_ids: &[&str]) -> Value {
    let rights: serde_json::Map<String, Value> = api_ids
        .iter()
        .map(|a| {
            (
                (*a).to_owned(),
                json!({"api_id": a, "api_name": a, "versions": []}),
            )
        })
        .collect();
    json!({"id": id, "name": id, "rate": 0, "per": 0, "quota_max": -1, "access_rights": rights})
}

async fn put(s: &Server, path: &str, body: &Value) {
    let (st, v) = s.admin(Method::POST, path, Some(&body.to_string())).await;
    assert_eq!(st, 201, "{path}: {v}");
}

/// Calls through the gateway with a bearer token; returns status, headers and JSON body.
async fn call(
    s: &Server,
    path: &str,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut rb = s.http().get(s.gateway(path));
    if let Some(t) = token {
        rb = rb.header("authorization", format!("Bearer {t}"));
    }
    let r = rb.send().await.unwrap();
    let st = r.status().as_u16();
    let h = r.headers().clone();
    let text = r.text().await.unwrap();
    (
        st,
        h,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn expect_error(s: &Server, path: &str, token: Option<&str>, status: u16, message: &str) {
    let (st, _, v) = call(s, path, token).await;
    assert_eq!(
        (st, v["error"].as_str().unwrap_or("")),
        (status, message),
        "{path}: {v}"
    );
}

struct Setup {
    idp: TestIdp,
    upstream: EchoUpstream,
    server: Server,
    _dir: tempfile::TempDir,
}

async fn setup(shape: IdpShape, extra: &[&str]) -> Setup {
    let idp = TestIdp::start(shape).await.unwrap();
    let upstream = EchoUpstream::start("up").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), extra, Some(crate::harness::ADMIN_KEY));
    Setup {
        idp,
        upstream,
        server,
        _dir: dir,
    }
}

/// The headline flow: register a client at the IdP, get a client-credentials token, call the API.
#[tokio::test]
async fn client_credentials_round_trip_rs256_and_es256() {
    let t = setup(IdpShape::Plain, &[]).await;
    let s = &t.server;
    put(
        s,
        "/api/apis",
        &jwt_api("rsa", "/rsa/", &t.upstream.url(), t.idp.jwks_uri(), "rsa"),
    )
    .await;
    put(
        s,
        "/api/apis",
        &jwt_api("ec", "/ec/", &t.upstream.url(), t.idp.jwks_uri(), "ecdsa"),
    )
    .await;
    put(s, "/api/policies", &policy("gold", &["rsa", "ec"])).await;

    let client = t
        .idp
        .register_client(json!({"client_name": "app", "grant_types": ["client_credentials"],
            "response_types": [], "token_endpoint_auth_method": "client_secret_basic", "pol": "gold"}))
        .await
        .unwrap();
    let id = client["client_id"].as_str().unwrap();
    let secret = client["client_secret"].as_str().unwrap();
    let token = t
        .idp
        .client_credentials_token(id, secret, None)
        .await
        .unwrap();

    let (st, _, v) = call(s, "/rsa/items", Some(&token)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["path"], "/items");
    assert!(
        v["headers"].get("authorization").is_none(),
        "strip_auth_data removes the token"
    );
    // The token is reused: the second call is served from the verified-token cache.
    assert_eq!(call(s, "/rsa/items", Some(&token)).await.0, 200);
    // An RS256 token on an ecdsa API is refused.
    expect_error(
        s,
        "/ec/x",
        Some(&token),
        401,
        "Key not authorized: Unexpected signing method",
    )
    .await;

    let ec_client = t
        .idp
        .register_client(
            json!({"client_name": "ec-app", "grant_types": ["client_credentials"],
            "response_types": [], "pol": "gold", "gh_token_alg": "ES256"}),
        )
        .await
        .unwrap();
    let ec_token = t
        .idp
        .client_credentials_token(
            ec_client["client_id"].as_str().unwrap(),
            ec_client["client_secret"].as_str().unwrap(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(call(s, "/ec/x", Some(&ec_token)).await.0, 200);
    expect_error(
        s,
        "/rsa/x",
        Some(&ec_token),
        401,
        "Key not authorized: Unexpected signing method",
    )
    .await;
}

/// Every row of the error table, with tokens signed by the IdP's published keys.
#[tokio::test]
async fn every_error_row() {
    let t = setup(IdpShape::Plain, &[]).await;
    let s = &t.server;
    let up = t.upstream.url();
    let jwks = t.idp.jwks_uri();
    put(s, "/api/apis", &jwt_api("main", "/main/", &up, jwks, "rsa")).await;
    let mut strict = jwt_api("strict", "/strict/", &up, jwks, "rsa");
    strict["jwt_allowed_issuers"] = json!([t.idp.issuer()]);
    strict["jwt_allowed_audiences"] = json!(["urn:gatehouse:test-api"]);
    put(s, "/api/apis", &strict).await;
    put(
        s,
        "/api/apis",
        &jwt_api("other", "/other/", &up, jwks, "rsa"),
    )
    .await;
    let mut uid = jwt_api("uid", "/uid/", &up, jwks, "rsa");
    uid["jwt_identity_base_field"] = json!("user_id");
    put(s, "/api/apis", &uid).await;
    let mut pol = policy("gold", &["main", "strict", "uid"]);
    pol["access_rights"]["main"]["allowed_urls"] = json!([{"url": "^/open", "methods": ["GET"]}]);
    put(s, "/api/policies", &pol).await;
    let mut off = policy("off", &["main"]);
    off["is_inactive"] = json!(true);
    put(s, "/api/policies", &off).await;
    let mut short = policy("short", &["main"]);
    short["key_expires_in"] = json!(1);
    put(s, "/api/policies", &short).await;

    let sign = |claims: Value| {
        let idp = &t.idp;
        async move { idp.sign(claims, "RS256", json!({})).await.unwrap() }
    };
    let good = |extra: Value| {
        let mut c = json!({"sub": "user-1", "pol": "gold", "exp": now() + 300, "iat": now(),
                           "iss": t.idp.issuer(), "aud": "urn:gatehouse:test-api"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };

    assert_eq!(
        call(s, "/main/open", Some(&sign(good(json!({}))).await))
            .await
            .0,
        200
    );

    // No token.
    let (st, h, v) = call(s, "/main/open", None).await;
    assert_eq!(
        (st, v["error"].as_str().unwrap()),
        (401, "Authorization field missing")
    );
    assert_eq!(h["www-authenticate"], "Bearer");
    // Malformed, bad signature, unknown kid.
    let (st, h, v) = call(s, "/main/open", Some("not.a.token")).await;
    assert_eq!(
        (st, v["error"].as_str().unwrap()),
        (401, "Key not authorized")
    );
    assert_eq!(h["www-authenticate"], "Bearer error=\"invalid_token\"");
    let foreign = t
        .idp
        .sign_with(json!({"claims": good(json!({})), "alg": "RS256", "foreign_key": true}))
        .await
        .unwrap();
    expect_error(s, "/main/open", Some(&foreign), 401, "Key not authorized").await;
    let unknown_kid = t
        .idp
        .sign(good(json!({})), "RS256", json!({"kid": "no-such-key"}))
        .await
        .unwrap();
    expect_error(
        s,
        "/main/open",
        Some(&unknown_kid),
        401,
        "Key not authorized",
    )
    .await;
    // Algorithm not allowed: none, HS256, ES256 on an rsa API.
    let none = t
        .idp
        .sign(good(json!({})), "none", json!({}))
        .await
        .unwrap();
    expect_error(
        s,
        "/main/open",
        Some(&none),
        401,
        "Key not authorized: Unexpected signing method",
    )
    .await;
    let jwks_text = t.idp.jwks().await.unwrap().to_string();
    let hs = t
        .idp
        .sign_with(json!({"claims": good(json!({})), "alg": "HS256", "secret": jwks_text}))
        .await
        .unwrap();
    expect_error(
        s,
        "/main/open",
        Some(&hs),
        401,
        "Key not authorized: Unexpected signing method",
    )
    .await;
    let es = t
        .idp
        .sign(good(json!({})), "ES256", json!({}))
        .await
        .unwrap();
    expect_error(
        s,
        "/main/open",
        Some(&es),
        401,
        "Key not authorized: Unexpected signing method",
    )
    .await;
    // Time claims.
    let expired = sign(good(json!({"exp": now() - 10}))).await;
    expect_error(
        s,
        "/main/open",
        Some(&expired),
        401,
        "Key not authorized: token has expired",
    )
    .await;
    let future_iat = sign(good(json!({"iat": now() + 600}))).await;
    expect_error(
        s,
        "/main/open",
        Some(&future_iat),
        401,
        "Key not authorized: token used before issued",
    )
    .await;
    let nbf = sign(good(json!({"nbf": now() + 600}))).await;
    expect_error(
        s,
        "/main/open",
        Some(&nbf),
        401,
        "Key not authorized: token is not valid yet",
    )
    .await;
    // Issuer and audience.
    let bad_iss = sign(good(json!({"iss": "https://evil.example"}))).await;
    expect_error(
        s,
        "/strict/open",
        Some(&bad_iss),
        401,
        "Key not authorized: invalid issuer",
    )
    .await;
    let bad_aud = sign(good(json!({"aud": ["other-api"]}))).await;
    expect_error(
        s,
        "/strict/open",
        Some(&bad_aud),
        401,
        "Key not authorized: invalid audience",
    )
    .await;
    let aud_array = sign(good(json!({"aud": ["x", "urn:gatehouse:test-api"]}))).await;
    assert_eq!(call(s, "/strict/open", Some(&aud_array)).await.0, 200);
    // Identity and policy.
    let no_sub = sign(good(json!({"sub": null}))).await;
    expect_error(
        s,
        "/main/open",
        Some(&no_sub),
        403,
        "no suitable claims for user ID were found",
    )
    .await;
    let empty_sub = sign(good(json!({"sub": ""}))).await;
    expect_error(
        s,
        "/main/open",
        Some(&empty_sub),
        403,
        "found an empty user ID in predefined base claim, claim: sub",
    )
    .await;
    expect_error(
        s,
        "/uid/open",
        Some(&empty_sub),
        403,
        "found an empty user ID in sub claim",
    )
    .await;
    let empty_uid = sign(good(json!({"user_id": ""}))).await;
    expect_error(
        s,
        "/uid/open",
        Some(&empty_uid),
        403,
        "found an empty user ID in predefined base claim, claim: user_id",
    )
    .await;
    let uid_ok = sign(good(json!({"user_id": "u-42", "sub": null}))).await;
    assert_eq!(call(s, "/uid/open", Some(&uid_ok)).await.0, 200);
    let unknown_pol = sign(good(json!({"sub": "user-2", "pol": "nope"}))).await;
    expect_error(
        s,
        "/main/open",
        Some(&unknown_pol),
        403,
        "key not authorized: no matching policy",
    )
    .await;
    let no_pol = sign(good(json!({"sub": "user-3", "pol": null}))).await;
    expect_error(
        s,
        "/main/open",
        Some(&no_pol),
        403,
        "key not authorized: no matching policy found",
    )
    .await;
    // Session: inactive, expired.
    let inactive = sign(good(json!({"sub": "user-4", "pol": "off"}))).await;
    expect_error(
        s,
        "/main/open",
        Some(&inactive),
        403,
        "Key is inactive, please renew",
    )
    .await;
    let no_exp = sign(good(json!({"sub": "user-5", "pol": "short", "exp": null}))).await;
    assert_eq!(call(s, "/main/open", Some(&no_exp)).await.0, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    expect_error(
        s,
        "/main/open",
        Some(&no_exp),
        401,
        "Key has expired, please renew",
    )
    .await;
    // Access rights.
    let ok = sign(good(json!({}))).await;
    expect_error(
        s,
        "/other/open",
        Some(&ok),
        403,
        "Access to this API has been disallowed",
    )
    .await;
    expect_error(
        s,
        "/main/closed",
        Some(&ok),
        403,
        "Access to this resource has been disallowed",
    )
    .await;
    let r = s
        .http()
        .post(s.gateway("/main/open"))
        .bearer_auth(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "POST is not among the allowed methods");
}

/// Keys rotated at the IdP while traffic flows: the new key is picked up at the first token that
/// uses it, and no call fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_while_traffic_flows() {
    let t = setup(IdpShape::Plain, &[]).await;
    let s = Arc::new(t.server);
    put(
        &s,
        "/api/apis",
        &jwt_api("main", "/main/", &t.upstream.url(), t.idp.jwks_uri(), "rsa"),
    )
    .await;
    put(&s, "/api/policies", &policy("gold", &["main"])).await;
    let client = t
        .idp
        .register_client(
            json!({"client_name": "rot", "grant_types": ["client_credentials"],
            "response_types": [], "pol": "gold"}),
        )
        .await
        .unwrap();
    let (id, secret) = (
        client["client_id"].as_str().unwrap().to_owned(),
        client["client_secret"].as_str().unwrap().to_owned(),
    );
    let old = t
        .idp
        .client_credentials_token(&id, &secret, None)
        .await
        .unwrap();
    assert_eq!(call(&s, "/main/x", Some(&old)).await.0, 200);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok, bad) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (s, stop, ok, bad, old) = (
            s.clone(),
            stop.clone(),
            ok.clone(),
            bad.clone(),
            old.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for _ in 0..50_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let counter = if call(&s, "/main/x", Some(&old)).await.0 == 200 {
                    &ok
                } else {
                    &bad
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kids = t.idp.rotate_keys(true).await.unwrap();
    let new = t
        .idp
        .client_credentials_token(&id, &secret, None)
        .await
        .unwrap();
    let (header, _) = gatehouse_test_support::idp::decode_jwt(&new).unwrap();
    assert_eq!(header["kid"], kids[0], "the new token uses the new key");
    for _ in 0..20 {
        let (st, _, v) = call(&s, "/main/x", Some(&new)).await;
        assert_eq!(st, 200, "the new key works at once: {v}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    assert!(ok.load(Ordering::Relaxed) > 50);
    assert_eq!(bad.load(Ordering::Relaxed), 0);
}

/// A burst of 1,000 requests with unknown kids causes at most one JWKS fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_burst_causes_at_most_one_fetch() {
    let t = setup(IdpShape::Plain, &[]).await;
    put(
        &t.server,
        "/api/apis",
        &jwt_api("main", "/main/", &t.upstream.url(), t.idp.jwks_uri(), "rsa"),
    )
    .await;
    put(&t.server, "/api/policies", &policy("gold", &["main"])).await;
    let claims = |sub: &str| json!({"sub": sub, "pol": "gold", "exp": now() + 300});
    let good = t.idp.sign(claims("u1"), "RS256", json!({})).await.unwrap();
    assert_eq!(call(&t.server, "/main/x", Some(&good)).await.0, 200);

    t.idp.reset_stats().await.unwrap();
    let mut tokens = Vec::new();
    for i in 0..20 {
        tokens.push(
            t.idp
                .sign(
                    claims(&format!("burst-{i}")),
                    "RS256",
                    json!({"kid": format!("garbage-{i}")}),
                )
                .await
                .unwrap(),
        );
    }
    let tokens = Arc::new(tokens);
    let s = Arc::new(t.server);
    let mut tasks = Vec::new();
    for w in 0..50 {
        let (s, tokens) = (s.clone(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..20 {
                statuses.push(
                    call(&s, "/main/x", Some(&tokens[(w + i) % tokens.len()]))
                        .await
                        .0,
                );
            }
            statuses
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap().iter().all(|st| *st == 401));
    }
    let fetches = t.idp.jwks_fetch_count().await;
    assert!(
        fetches <= 1,
        "{fetches} JWKS fetches for 1,000 unknown kids"
    );
    assert_eq!(call(&s, "/main/x", Some(&good)).await.0, 200);
}

/// The IdP stops: cached keys keep working; a token whose key is unknown gets 503 with
/// `Retry-After`, not 401; an API whose JWKS was never reachable too.
#[tokio::test]
async fn idp_outage_keeps_cached_keys_and_answers_503_for_unknown_keys() {
    let mut t = setup(IdpShape::Plain, &["--jwks-min-refetch-interval", "1"]).await;
    let s = &t.server;
    put(
        s,
        "/api/apis",
        &jwt_api("main", "/main/", &t.upstream.url(), t.idp.jwks_uri(), "rsa"),
    )
    .await;
    put(s, "/api/policies", &policy("gold", &["main"])).await;
    let claims = json!({"sub": "u1", "pol": "gold", "exp": now() + 300});
    let good = t
        .idp
        .sign(claims.clone(), "RS256", json!({}))
        .await
        .unwrap();
    let rotated = t
        .idp
        .sign(claims, "RS256", json!({"kid": "not-yet-published"}))
        .await
        .unwrap();
    assert_eq!(call(s, "/main/x", Some(&good)).await.0, 200);

    t.idp.stop().await.unwrap();
    assert_eq!(
        call(s, "/main/x", Some(&good)).await.0,
        200,
        "cached keys keep working"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (st, h, v) = call(s, "/main/x", Some(&rotated)).await;
    assert_eq!(
        (st, v["error"].as_str().unwrap()),
        (503, "identity provider unavailable"),
        "{v}"
    );
    assert!(h.contains_key("retry-after"));
    assert_eq!(
        call(s, "/main/x", Some(&good)).await.0,
        200,
        "still serving cached keys"
    );

    let dead = format!("http://127.0.0.1:{}/jwks", crate::harness::free_port());
    put(
        s,
        "/api/apis",
        &jwt_api("dead", "/dead/", &t.upstream.url(), &dead, "rsa"),
    )
    .await;
    let (st, h, v) = call(s, "/dead/x", Some(&good)).await;
    assert_eq!(
        (st, v["error"].as_str().unwrap()),
        (503, "identity provider unavailable"),
        "{v}"
    );
    assert!(h.contains_key("retry-after"));
}

/// 100 requests per minute, 50 concurrent clients: exactly 100 pass. A quota of 30 admits exactly
/// 30 and survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_and_quota_are_exact() {
    let t = setup(IdpShape::Plain, &[]).await;
    let s = Arc::new(t.server);
    put(
        &s,
        "/api/apis",
        &jwt_api("main", "/main/", &t.upstream.url(), t.idp.jwks_uri(), "rsa"),
    )
    .await;
    let mut rl = policy("rl", &["main"]);
    rl["rate"] = json!(100);
    rl["per"] = json!(60);
    put(&s, "/api/policies", &rl).await;
    let mut q = policy("q", &["main"]);
    q["quota_max"] = json!(30);
    q["quota_renewal_rate"] = json!(3600);
    put(&s, "/api/policies", &q).await;

    let rl_token = t
        .idp
        .sign(
            json!({"sub": "rl-user", "pol": "rl", "exp": now() + 600}),
            "RS256",
            json!({}),
        )
        .await
        .unwrap();
    let (ok, limited) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (s, tok, ok, limited) = (s.clone(), rl_token.clone(), ok.clone(), limited.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..4 {
                let (st, h, v) = call(&s, "/main/x", Some(&tok)).await;
                match st {
                    200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        assert!(h.contains_key("x-ratelimit-remaining"));
                    }
                    429 => {
                        assert_eq!(v["error"], "Rate Limit Exceeded");
                        assert!(h.contains_key("retry-after"));
                        limited.fetch_add(1, Ordering::Relaxed);
                    }
                    other => panic!("unexpected {other}: {v}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(ok.load(Ordering::Relaxed), 100);
    assert_eq!(limited.load(Ordering::Relaxed), 100);

    // Quota: 20 calls, restart, 10 more pass, the next is refused until renewal.
    let mut s = Arc::try_unwrap(s).ok().expect("no other owners");
    let q_token = t
        .idp
        .sign(
            json!({"sub": "q-user", "pol": "q", "exp": now() + 600}),
            "RS256",
            json!({}),
        )
        .await
        .unwrap();
    for i in 0..20 {
        let (st, h, _) = call(&s, "/main/x", Some(&q_token)).await;
        assert_eq!(st, 200);
        assert_eq!(h["x-ratelimit-limit"], "30");
        assert_eq!(h["x-ratelimit-remaining"], (29 - i).to_string().as_str());
    }
    s.terminate();
    s.start_again();
    for _ in 0..10 {
        assert_eq!(call(&s, "/main/x", Some(&q_token)).await.0, 200);
    }
    let (st, h, v) = call(&s, "/main/x", Some(&q_token)).await;
    assert_eq!((st, v["error"].as_str().unwrap()), (429, "Quota exceeded"));
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 3000 && retry <= 3600, "{retry}");
    assert_eq!(h["x-ratelimit-remaining"], "0");
}

/// Okta-shaped and Keycloak-shaped tokens: `cid`/`scp` and `azp`, identity from the claims.
#[tokio::test]
async fn vendor_shaped_tokens_pass_with_scope_mapping() {
    for shape in [IdpShape::Okta, IdpShape::Keycloak] {
        let t = setup(shape, &[]).await;
        let s = &t.server;
        let mut api = jwt_api("v", "/v/", &t.upstream.url(), t.idp.jwks_uri(), "rsa");
        api["jwt_policy_field_name"] = json!("");
        api["scopes"] = json!({"jwt": {
            "scope_claim_name": if shape == IdpShape::Okta { "scp" } else { "scope" },
            "scope_to_policy": {"read": "reader"}}});
        put(s, "/api/apis", &api).await;
        put(s, "/api/policies", &policy("reader", &["v"])).await;
        let client = t
            .idp
            .register_client(match shape {
                IdpShape::Okta => json!({"client_name": "svc", "application_type": "service",
                    "grant_types": ["client_credentials"], "response_types": ["token"], "scope": "read"}),
                _ => json!({"client_name": "svc", "grant_types": ["client_credentials"],
                    "response_types": [], "scope": "read"}),
            })
            .await
            .unwrap();
        let token = t
            .idp
            .client_credentials_token(
                client["client_id"].as_str().unwrap(),
                client["client_secret"].as_str().unwrap(),
                Some("read"),
            )
            .await
            .unwrap();
        let (st, _, v) = call(s, "/v/x", Some(&token)).await;
        assert_eq!(st, 200, "{shape:?}: {v}");
    }
}

/// `DELETE /api/cache/jwks` and `DELETE /api/cache/jwks/{api_id}` flush the keys.
#[tokio::test]
async fn jwks_cache_flush_endpoints() {
    let t = setup(IdpShape::Plain, &[]).await;
    let s = &t.server;
    put(
        s,
        "/api/apis",
        &jwt_api("main", "/main/", &t.upstream.url(), t.idp.jwks_uri(), "rsa"),
    )
    .await;
    let (st, v) = s.admin(Method::DELETE, "/api/cache/jwks/main", None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["flushed"], 1);
    let (st, _) = s.admin(Method::DELETE, "/api/cache/jwks/nope", None).await;
    assert_eq!(st, 404);
    let (st, v) = s.admin(Method::DELETE, "/api/cache/jwks", None).await;
    assert_eq!(st, 200);
    assert!(v["flushed"].as_u64().unwrap() >= 1);
}
