//! Every row of the error table, end to end.

use gatehouse_jwt::{JwtError, unix_now};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn malformed_tokens() {
    let idp = Idp::start().await;
    idp.serve("/jwks", &[(K::Rsa(0), "k1")]);
    let s = setup(&api("rsa", &idp.url("/jwks")));
    let good = token("RS256", Some("k1"), K::Rsa(0), &claims());
    let junk_appended = format!("{good}junk"); // Tyk TestJWTSessionFailRSA_MalformedJWT
    let five_parts = format!("{good}.a.b");
    let bad_json = format!("{}.{}.c2ln", b64url(b"{\"alg\":\"RS256\""), b64url(b"{}"));
    let string_exp = token(
        "RS256",
        Some("k1"),
        K::Rsa(0),
        &json!({"sub": "a", "exp": (unix_now() + 600).to_string()}),
    );
    let claims_array = token(
        "RS256",
        Some("k1"),
        K::Rsa(0),
        &json!(["not", "an", "object"]),
    );
    let huge = "a".repeat(gatehouse_jwt::MAX_TOKEN_BYTES + 1);
    for (t, reason) in [
        ("", "malformed"),
        ("123", "malformed"), // Tyk TestJWTSessionFailRSA_WrongJWT
        ("Bearer x.y.z", "malformed"),
        (&junk_appended, "bad_signature"), // still base64url: the signature fails
        (&five_parts, "malformed"),
        (&bad_json, "malformed"),
        (&string_exp, "malformed"),
        (&claims_array, "malformed"),
        (&huge, "malformed"),
    ] {
        let r = s.v.validate(t).await;
        assert_refused(&r, 401, NOT_AUTHORIZED);
        assert_eq!(r.unwrap_err().reason(), reason, "{t:.60}");
    }
}

#[tokio::test]
async fn kid_must_be_a_string_for_jwks_lookups() {
    let idp = Idp::start().await;
    idp.serve("/jwks", &[(K::Rsa(0), "k1")]);
    let s = setup(&api("rsa", &idp.url("/jwks")));
    for kid in [json!(12345), json!(null), json!(["k1"]), json!({"k": "k1"})] {
        let t = token_with_header(&json!({"alg": "RS256", "kid": kid}), K::Rsa(0), &claims());
        let r = s.v.validate(&t).await;
        assert_refused(&r, 401, NOT_AUTHORIZED);
        assert_eq!(r.unwrap_err(), JwtError::KidNotString);
    }
}

#[tokio::test]
async fn unknown_kid_after_refetch_is_401() {
    let idp = Idp::start().await;
    idp.serve("/jwks", &[(K::Rsa(0), "k1")]);
    let s = setup(&api("rsa", &idp.url("/jwks")));
    wait_loaded(&s.cache, &idp.url("/jwks")).await;
    let t = token("RS256", Some("nope"), K::Rsa(0), &claims());
    let r = s.v.validate(&t).await;
    assert_refused(&r, 401, NOT_AUTHORIZED);
    let e = r.unwrap_err();
    assert!(matches!(e, JwtError::UnknownKid { .. }), "{e:?}");
    assert!(e.detail().contains("nope"), "{}", e.detail());
    assert!(!e.to_string().contains("nope"));
    assert_eq!(idp.hits("/jwks"), 2, "prefetch + one refetch");
}

#[tokio::test]
async fn time_claims_issuer_and_audience() {
    let idp = Idp::start().await;
    idp.serve("/jwks", &[(K::Ec256(0), "ec")]);
    let mut def = api("ecdsa", &idp.url("/jwks"));
    def.jwt_allowed_issuers = vec!["https://idp.test/".into()];
    def.jwt_allowed_audiences = vec!["api://payments".into(), "api://default".into()];
    let s = setup(&def);
    let now = unix_now();
    let with = |patch: serde_json::Value| {
        let mut c = claims();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        token("ES256", Some("ec"), K::Ec256(0), &c)
    };
    let cases = [
        (
            json!({"exp": now - 1}),
            "Key not authorized: token has expired",
        ),
        (
            json!({"iat": now + 60}),
            "Key not authorized: token used before issued",
        ),
        (
            json!({"nbf": now + 60}),
            "Key not authorized: token is not valid yet",
        ),
        (
            json!({"iss": "https://evil.test/"}),
            "Key not authorized: invalid issuer",
        ),
        (
            json!({"aud": ["api://other"]}),
            "Key not authorized: invalid audience",
        ),
        (
            json!({"aud": "api://other"}),
            "Key not authorized: invalid audience",
        ),
    ];
    for (patch, msg) in cases {
        assert_refused(&s.v.validate(&with(patch)).await, 401, msg);
    }
    assert!(
        s.v.validate(&with(json!({"aud": ["x", "api://payments"]})))
            .await
            .is_ok()
    );
    assert!(s.v.validate(&with(json!({}))).await.is_ok());
}

#[tokio::test]
async fn keys_unavailable_is_503_with_retry_after() {
    let idp = Idp::start().await;
    idp.set("/jwks", Behaviour::Status(503));
    let s = setup(&api("rsa", &idp.url("/jwks")));
    let t = token("RS256", Some("k1"), K::Rsa(0), &claims());
    let r = s.v.validate(&t).await;
    assert_refused(&r, 503, "identity provider unavailable");
    let e = r.unwrap_err();
    let retry = e.retry_after_secs().unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    assert!(e.detail().contains("503"), "{}", e.detail());
    assert!(!e.public_message().contains("503"));
}
