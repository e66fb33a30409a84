//! Hostile tokens over HTTP against the real binary (issue 8, part 1): a representative subset of
//! `crates/jwt-auth/tests/it/hostile_tokens.rs` sent through the gateway, each answered with its
//! status and a JSON `{"error"}` body; afterwards the process still answers `/hello` and still
//! serves good tokens. One API trusts the real test IdP's JWKS (`rsa`); one has an HMAC secret
//! (`hmac`) so the test can craft tokens byte by byte (duplicate names, deep nesting, odd `exp`).

use std::time::{SystemTime, UNIX_EPOCH};

use gatehouse_test_support::idp::{IdpShape, TestIdp};
use gatehouse_test_support::upstream::EchoUpstream;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::{ADMIN_KEY, Server};

pub(crate) const SECRET: &[u8] = b"gateway-hostile-hmac-secret-0123";
const NOT_AUTHORIZED: &str = "Key not authorized";
const UNEXPECTED: &str = "Key not authorized: Unexpected signing method";

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

pub(crate) fn b64(bytes: &[u8], url: bool) -> String {
    let alphabet: &[u8; 64] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..=chunk.len() {
            out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
        }
        if !url {
            out.push_str(&"=".repeat(3 - chunk.len()));
        }
    }
    out
}

fn b64url(bytes: &[u8]) -> String {
    b64(bytes, true)
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let ih = Sha256::new()
        .chain_update(&inner)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&outer)
        .chain_update(ih)
        .finalize()
        .to_vec()
}

/// An HS256 token over exactly these header and payload texts.
pub(crate) fn hs(header: &str, payload: &str) -> String {
    let input = format!(
        "{}.{}",
        b64url(header.as_bytes()),
        b64url(payload.as_bytes())
    );
    let sig = hmac_sha256(SECRET, input.as_bytes());
    format!("{input}.{}", b64url(&sig))
}

fn claims(patch: &Value) -> Value {
    let mut c = json!({"sub": "mallory", "pol": "gold", "exp": now() + 300, "iat": now()});
    for (k, v) in patch.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn jwt_api(id: &str, upstream: &str, source: &str, method: &str) -> Value {
    json!({
        "name": id, "api_id": id, "enable_jwt": true,
        "jwt_signing_method": method, "jwt_source": source,
        "jwt_identity_base_field": "sub", "jwt_policy_field_name": "pol",
        "proxy": {"listen_path": format!("/{id}/"), "target_url": upstream, "strip_listen_path": true}
    })
}

/// GET `path` with `Authorization: Bearer <token>`; status and body (JSON or the text).
async fn call(s: &Server, path: &str, token: &str) -> (u16, Value) {
    let r = s
        .http()
        .get(s.gateway(path))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: the gateway did not answer: {e}"));
    let st = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        st,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn hostile_tokens_get_401_json_errors_and_the_gateway_stays_healthy() {
    let idp = TestIdp::start(IdpShape::Plain).await.unwrap();
    let upstream = EchoUpstream::start("up").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Request heads up to 256 KiB, so the 100 KiB token reaches the validator (whose own limit is
    // 32 KiB); with the default --max-header-bytes (32 KiB) it would be a 431 already
    // (tested in limits.rs).
    let s = Server::start_with(
        dir.path(),
        &["--max-header-bytes", "262144"],
        Some(ADMIN_KEY),
    );
    let up = upstream.url();
    for def in [
        jwt_api("rsa", &up, idp.jwks_uri(), "rsa"),
        jwt_api("hmac", &up, &b64(SECRET, false), "hmac"),
    ] {
        let (st, v) = s
            .admin(Method::POST, "/api/apis", Some(&def.to_string()))
            .await;
        assert_eq!(st, 201, "{v}");
    }
    let policy = json!({"id": "gold", "name": "gold", "rate": 0, "per": 0, "quota_max": -1,
        "access_rights": {
            "rsa": {"api_id": "rsa", "api_name": "rsa", "versions": []},
            "hmac": {"api_id": "hmac", "api_name": "hmac", "versions": []}}});
    let (st, v) = s
        .admin(Method::POST, "/api/policies", Some(&policy.to_string()))
        .await;
    assert_eq!(st, 201, "{v}");

    let c = claims(&json!({})).to_string();
    let inner = c.trim_start_matches('{').trim_end_matches('}').to_owned();
    let good_hs = hs(r#"{"alg":"HS256","typ":"JWT"}"#, &c);
    let good_rs = idp
        .sign(claims(&json!({})), "RS256", json!({}))
        .await
        .unwrap();
    let evil = format!("http://127.0.0.1:{}/evil-jwks", crate::harness::free_port());

    // (name, path, token, status, message)
    let mut cases: Vec<(String, &str, String, u16, &str)> = vec![
        ("good HS256".into(), "/hmac/x", good_hs.clone(), 200, ""),
        ("good RS256".into(), "/rsa/x", good_rs.clone(), 200, ""),
    ];
    for alg in ["none", "None", "NONE", "nOnE", ""] {
        let h = format!(r#"{{"alg":"{alg}"}}"#);
        for path in ["/rsa/x", "/hmac/x"] {
            let unsigned = format!("{}.{}.", b64url(h.as_bytes()), b64url(c.as_bytes()));
            cases.push((format!("alg {alg:?}"), path, unsigned, 401, UNEXPECTED));
        }
    }
    // HS256 with the IdP's published keys as the secret, on the RSA API.
    let jwks_text = idp.jwks().await.unwrap().to_string();
    let confused = idp
        .sign_with(json!({"claims": claims(&json!({})), "alg": "HS256", "secret": jwks_text}))
        .await
        .unwrap();
    cases.push((
        "HS256 with the JWKS as secret".into(),
        "/rsa/x",
        confused,
        401,
        UNEXPECTED,
    ));
    // kid: a path, SQL, not a string.
    for kid in ["../../../../etc/passwd", "' OR '1'='1' --"] {
        let t = idp
            .sign(claims(&json!({})), "RS256", json!({"kid": kid}))
            .await
            .unwrap();
        cases.push((format!("kid {kid}"), "/rsa/x", t, 401, NOT_AUTHORIZED));
    }
    let numeric_kid = format!(
        "{}.{}.{}",
        b64url(br#"{"alg":"RS256","kid":12345}"#),
        b64url(c.as_bytes()),
        b64url(&[7; 256])
    );
    cases.push((
        "kid 12345".into(),
        "/rsa/x",
        numeric_kid,
        401,
        NOT_AUTHORIZED,
    ));
    // A token bringing its own key: signed by a key not in the JWKS, pointing at another.
    let own_key = idp
        .sign_with(
            json!({"claims": claims(&json!({})), "alg": "RS256", "foreign_key": true,
                          "header": {"jku": evil, "x5u": evil}}),
        )
        .await
        .unwrap();
    cases.push((
        "jku/x5u + foreign key".into(),
        "/rsa/x",
        own_key,
        401,
        NOT_AUTHORIZED,
    ));
    // The same headers on a token the real key signed are ignored.
    let harmless = idp
        .sign(
            claims(&json!({})),
            "RS256",
            json!({"jku": evil, "x5u": evil}),
        )
        .await
        .unwrap();
    cases.push(("jku/x5u + real key".into(), "/rsa/x", harmless, 200, ""));
    // crit, duplicate names, nesting.
    let hmac_cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "crit",
            hs(r#"{"alg":"HS256","crit":["b64"],"b64":false}"#, &c),
            401,
            NOT_AUTHORIZED,
        ),
        (
            "duplicate alg",
            hs(r#"{"alg":"none","alg":"HS256"}"#, &c),
            401,
            NOT_AUTHORIZED,
        ),
        (
            "duplicate sub",
            hs(
                r#"{"alg":"HS256"}"#,
                &format!(r#"{{"sub":"admin",{inner}}}"#),
            ),
            401,
            NOT_AUTHORIZED,
        ),
        (
            "duplicate pol",
            hs(
                r#"{"alg":"HS256"}"#,
                &format!(r#"{{{inner},"pol":"platinum"}}"#),
            ),
            401,
            NOT_AUTHORIZED,
        ),
        (
            "claims nested 5000 deep",
            hs(
                r#"{"alg":"HS256"}"#,
                &format!(
                    r#"{{{inner},"d":{}{}}}"#,
                    "[".repeat(5000),
                    "]".repeat(5000)
                ),
            ),
            401,
            NOT_AUTHORIZED,
        ),
        (
            "exp as a string",
            hs(
                r#"{"alg":"HS256"}"#,
                &claims(&json!({"exp": (now() + 300).to_string()})).to_string(),
            ),
            401,
            NOT_AUTHORIZED,
        ),
        (
            "exp as a float",
            hs(
                r#"{"alg":"HS256"}"#,
                &claims(&json!({"exp": now() as f64 + 300.5})).to_string(),
            ),
            200,
            "",
        ),
        (
            "exp far in the future",
            hs(
                r#"{"alg":"HS256"}"#,
                &claims(&json!({"exp": i64::MAX})).to_string(),
            ),
            200,
            "",
        ),
        (
            "exp 1e300",
            hs(
                r#"{"alg":"HS256"}"#,
                r#"{"sub":"mallory","pol":"gold","exp":1e300}"#,
            ),
            200,
            "",
        ),
        (
            "exp in the past",
            hs(
                r#"{"alg":"HS256"}"#,
                &claims(&json!({"exp": -1})).to_string(),
            ),
            401,
            "Key not authorized: token has expired",
        ),
        (
            "padded parts",
            good_hs.replacen('.', "==.", 1),
            401,
            NOT_AUTHORIZED,
        ),
        (
            "standard-alphabet signature",
            {
                let (input, _) = good_hs.rsplit_once('.').unwrap();
                format!(
                    "{input}.{}",
                    b64(&hmac_sha256(SECRET, input.as_bytes()), false)
                )
            },
            401,
            NOT_AUTHORIZED,
        ),
        (
            "signature truncated to 16 bytes",
            {
                let (input, _) = good_hs.rsplit_once('.').unwrap();
                format!(
                    "{input}.{}",
                    b64url(&hmac_sha256(SECRET, input.as_bytes())[..16])
                )
            },
            401,
            NOT_AUTHORIZED,
        ),
        (
            "token of 100 KiB",
            hs(
                r#"{"alg":"HS256"}"#,
                &claims(&json!({"pad": "x".repeat(100 * 1024)})).to_string(),
            ),
            401,
            NOT_AUTHORIZED,
        ),
        ("four parts", format!("{good_hs}.x"), 401, NOT_AUTHORIZED),
    ];
    for (name, t, st, msg) in hmac_cases {
        cases.push((name.to_owned(), "/hmac/x", t, st, msg));
    }

    for (name, path, token, want_status, want_msg) in &cases {
        let (st, body) = call(&s, path, token).await;
        if *want_status == 200 {
            assert_eq!(st, 200, "{name}: {body}");
            assert_eq!(body["path"], "/x", "{name}: reached the upstream");
        } else {
            assert_eq!(
                (st, body["error"].as_str().unwrap_or("<no error field>")),
                (*want_status, *want_msg),
                "{name}: {body}"
            );
            assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{name}: {body}");
        }
    }

    // A header far beyond any token limit: refused by the HTTP layer or the validator, never
    // a 5xx and never a crash.
    let huge = s
        .http()
        .get(s.gateway("/hmac/x"))
        .header(
            "authorization",
            format!("Bearer {}", "e".repeat(1024 * 1024)),
        )
        .send()
        .await;
    if let Ok(r) = huge {
        let st = r.status().as_u16();
        assert!((400..500).contains(&st), "1 MiB token: {st}");
    } // else: the connection was closed without an answer, which is also a refusal.

    // Still healthy: /hello answers and good tokens still pass.
    let (st, body) = s.call("/hello").await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(call(&s, "/hmac/y", &good_hs).await.0, 200);
    assert_eq!(call(&s, "/rsa/y", &good_rs).await.0, 200);
}
