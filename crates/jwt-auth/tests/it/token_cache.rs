//! The verified-token cache.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_jwt::{JwksCache, JwksCacheConfig, JwtError, JwtValidator, VerifiedTokenCache};
use serde_json::json;

use crate::support::*;

const NOW: i64 = 1_760_000_000;

#[tokio::test]
async fn a_reused_token_skips_the_signature_check() {
    let idp = Idp::start().await;
    idp.serve("/jwks", &[(K::Rsa(0), "k1")]);
    let s = setup(&api("rsa", &idp.url("/jwks")));
    let t = token("RS256", Some("k1"), K::Rsa(0), &claims());
    let first = s.v.validate(&t).await.unwrap();
    for _ in 0..10 {
        let again = s.v.validate(&t).await.unwrap();
        assert!(Arc::ptr_eq(&first, &again), "served from the cache");
    }
    assert_eq!(s.v.signature_checks(), 1);
    let st = s.tokens.stats();
    assert_eq!((st.hits, st.entries, st.insertions), (10, 1, 1));
}

#[tokio::test]
async fn a_cached_token_is_never_served_past_exp_and_nbf_is_rechecked() {
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    let mut def = api("hmac", &STANDARD.encode(SECRET));
    def.jwt_expires_at_validation_skew = 5;
    let s = setup(&def);
    let t = token(
        "HS256",
        None,
        K::Hmac(SECRET),
        &json!({"sub": "u", "nbf": NOW, "exp": NOW + 60}),
    );
    assert!(s.v.validate_at(&t, NOW).await.is_ok());
    // Within exp + skew: a hit.
    assert!(s.v.validate_at(&t, NOW + 64).await.is_ok());
    assert_eq!(s.v.signature_checks(), 1);
    // A clock that went backwards: nbf is checked on the hit.
    assert_refused(
        &s.v.validate_at(&t, NOW - 1).await,
        401,
        "Key not authorized: token is not valid yet",
    );
    // Past exp + skew: refused from the cache entry, which is then dropped.
    assert_refused(
        &s.v.validate_at(&t, NOW + 65).await,
        401,
        "Key not authorized: token has expired",
    );
    assert_eq!(s.v.signature_checks(), 1);
    assert_eq!(s.tokens.len(), 0);
    assert_refused(
        &s.v.validate_at(&t, NOW + 65).await,
        401,
        "Key not authorized: token has expired",
    );
}

#[tokio::test]
async fn another_api_never_accepts_a_token_on_a_cached_verdict() {
    let idp = Idp::start().await;
    idp.serve("/jwks", &[(K::Rsa(0), "k1")]);
    let url = idp.url("/jwks");
    let cache = JwksCache::new(cfg()).unwrap();
    let tokens = VerifiedTokenCache::new(100);
    let mk = |issuers: &[&str], audiences: &[&str]| {
        let mut d = api("rsa", &url);
        d.jwt_allowed_issuers = issuers.iter().map(|s| (*s).to_owned()).collect();
        d.jwt_allowed_audiences = audiences.iter().map(|s| (*s).to_owned()).collect();
        JwtValidator::from_api(&d, Arc::clone(&cache), Arc::clone(&tokens)).unwrap()
    };
    let a = mk(&["https://idp.test/"], &[]);
    let b = mk(&["https://other.test/"], &[]);
    let c = mk(&["https://idp.test/"], &["api://payments"]);
    let same_as_a = mk(&["https://idp.test/"], &[]);
    let t = token("RS256", Some("k1"), K::Rsa(0), &claims());
    assert!(a.validate(&t).await.is_ok());
    assert_refused(
        &b.validate(&t).await,
        401,
        "Key not authorized: invalid issuer",
    );
    assert_refused(
        &c.validate(&t).await,
        401,
        "Key not authorized: invalid audience",
    );
    assert_eq!((b.signature_checks(), c.signature_checks()), (1, 1));
    // Identical settings may share the verdict.
    assert!(same_as_a.validate(&t).await.is_ok());
    assert_eq!(same_as_a.signature_checks(), 0);
}

#[tokio::test]
async fn a_key_set_change_voids_cached_tokens() {
    let idp = Idp::start().await;
    idp.serve("/jwks", &[(K::Rsa(0), "k1")]);
    let url = idp.url("/jwks");
    let s = setup_with(
        &api("rsa", &url),
        JwksCacheConfig {
            default_ttl: Duration::from_secs(1),
            ..cfg()
        },
    );
    let t1 = token("RS256", Some("k1"), K::Rsa(0), &claims());
    assert!(s.v.validate(&t1).await.is_ok());
    assert!(s.v.validate(&t1).await.is_ok());
    assert_eq!(s.v.signature_checks(), 1);

    // A key is added: cached tokens are checked again once (and still pass).
    idp.serve("/jwks", &[(K::Rsa(0), "k1"), (K::Rsa(1), "k2")]);
    wait_until("the new key set is loaded", || {
        s.cache.stats().urls[0].kids.len() == 2
    })
    .await;
    assert!(s.v.validate(&t1).await.is_ok());
    assert!(s.v.validate(&t1).await.is_ok());
    assert_eq!(s.v.signature_checks(), 2);
    assert!(s.tokens.stats().invalidated >= 1);

    // The key is withdrawn: the cached token stops working.
    idp.serve("/jwks", &[(K::Rsa(1), "k2")]);
    wait_until("k1 is gone", || s.cache.stats().urls[0].kids == ["k2"]).await;
    let r = s.v.validate(&t1).await;
    assert!(matches!(r, Err(JwtError::UnknownKid { .. })), "{r:?}");
}

#[tokio::test]
async fn flush_all_voids_tokens_verified_by_configured_keys_too() {
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    let s = setup(&api("hmac", &STANDARD.encode(SECRET)));
    let t = token("HS256", None, K::Hmac(SECRET), &claims());
    assert!(s.v.validate(&t).await.is_ok());
    assert!(s.v.validate(&t).await.is_ok());
    assert_eq!(s.v.signature_checks(), 1);
    assert_eq!(s.cache.flush_all(), 0, "no JWKS URL to flush");
    assert!(s.v.validate(&t).await.is_ok());
    assert_eq!(s.v.signature_checks(), 2);
}

#[tokio::test]
async fn the_cache_is_bounded() {
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    let cache = JwksCache::new(cfg()).unwrap();
    let tokens = VerifiedTokenCache::new(5);
    let v = JwtValidator::from_api(
        &api("hmac", &STANDARD.encode(SECRET)),
        cache,
        Arc::clone(&tokens),
    )
    .unwrap();
    for i in 0..20 {
        let t = token(
            "HS256",
            None,
            K::Hmac(SECRET),
            &json!({"sub": format!("u{i}")}),
        );
        assert!(v.validate(&t).await.is_ok());
    }
    let st = tokens.stats();
    assert_eq!((st.entries, st.evictions, st.capacity), (5, 15, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reuse_of_one_token() {
    let idp = Idp::start().await;
    idp.serve("/jwks", &[(K::Ec256(0), "ec")]);
    let s = setup(&api("ecdsa", &idp.url("/jwks")));
    let t = Arc::new(token("ES256", Some("ec"), K::Ec256(0), &claims()));
    assert!(s.v.validate(&t).await.is_ok());
    let v = Arc::new(s.v);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (v, t) = (Arc::clone(&v), Arc::clone(&t));
            tokio::spawn(async move { v.validate(&t).await.map(|_| ()) })
        })
        .collect();
    for task in tasks {
        within(task).await.unwrap().unwrap();
    }
    assert_eq!(v.signature_checks(), 1);
}
