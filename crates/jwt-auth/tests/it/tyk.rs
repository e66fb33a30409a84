//! Tyk's session-level time tests (`gateway/mw_jwt_test.go`), with a fixed clock.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::support::*;

const SECRET: &[u8] = b"tyk-style-shared-secret-32-bytes";
const NOW: i64 = 1_760_000_000;

fn validator(exp_skew: u64, iat_skew: u64, nbf_skew: u64) -> Setup {
    let mut def = api("hmac", &STANDARD.encode(SECRET));
    def.jwt_expires_at_validation_skew = exp_skew;
    def.jwt_issued_at_validation_skew = iat_skew;
    def.jwt_not_before_validation_skew = nbf_skew;
    setup(&def)
}

fn tok(claims: serde_json::Value) -> String {
    token("HS256", None, K::Hmac(SECRET), &claims)
}

/// `TestJWTSessionExpiresAtValidationConfigs`.
#[tokio::test]
async fn expires_at_validation_configs() {
    let in_a_second = tok(json!({"sub": "u", "exp": NOW + 1}));
    let a_second_ago = tok(json!({"sub": "u", "exp": NOW - 1}));
    // Expiry in the future, no skew: passes.
    assert!(
        validator(0, 0, 0)
            .v
            .validate_at(&in_a_second, NOW)
            .await
            .is_ok()
    );
    // Expired a second ago, no skew: refused.
    assert_refused(
        &validator(0, 0, 0).v.validate_at(&a_second_ago, NOW).await,
        401,
        "Key not authorized: token has expired",
    );
    // With a large skew, or a skew of 2: passes.
    assert!(
        validator(1000, 0, 0)
            .v
            .validate_at(&a_second_ago, NOW)
            .await
            .is_ok()
    );
    assert!(
        validator(2, 0, 0)
            .v
            .validate_at(&a_second_ago, NOW)
            .await
            .is_ok()
    );
    // A skew of exactly 1 is not enough (now - skew < exp is required).
    assert!(
        validator(1, 0, 0)
            .v
            .validate_at(&a_second_ago, NOW)
            .await
            .is_err()
    );
}

/// `TestJWTSessionIssueAtValidationConfigs`.
#[tokio::test]
async fn issued_at_validation_configs() {
    let future = tok(json!({"sub": "u", "iat": NOW + 1000}));
    assert_refused(
        &validator(0, 0, 0).v.validate_at(&future, NOW).await,
        401,
        "Key not authorized: token used before issued",
    );
    assert!(
        validator(0, 1000, 0)
            .v
            .validate_at(&future, NOW)
            .await
            .is_ok()
    );
    assert!(
        validator(0, 999, 0)
            .v
            .validate_at(&future, NOW)
            .await
            .is_err()
    );
    let past = tok(json!({"sub": "u", "iat": NOW - 1}));
    assert!(validator(0, 0, 0).v.validate_at(&past, NOW).await.is_ok());
}

/// `TestJWTSessionNotBeforeValidationConfigs`.
#[tokio::test]
async fn not_before_validation_configs() {
    let next_second = tok(json!({"sub": "u", "nbf": NOW + 1}));
    assert_refused(
        &validator(0, 0, 0).v.validate_at(&next_second, NOW).await,
        401,
        "Key not authorized: token is not valid yet",
    );
    assert!(
        validator(0, 0, 1)
            .v
            .validate_at(&next_second, NOW)
            .await
            .is_ok()
    );
    assert!(
        validator(0, 0, 1000)
            .v
            .validate_at(&next_second, NOW)
            .await
            .is_ok()
    );
}

/// `TestJWTExpOverride` (the JWT part): a token accepted now is refused once expired, even though
/// it sits in the verified-token cache; a new token for the same subject passes.
#[tokio::test]
async fn accepted_then_expired_then_a_new_token() {
    let s = validator(0, 0, 0);
    let t = tok(json!({"sub": "u", "exp": NOW + 1}));
    assert!(s.v.validate_at(&t, NOW).await.is_ok());
    assert_refused(
        &s.v.validate_at(&t, NOW + 2).await,
        401,
        "Key not authorized: token has expired",
    );
    let t2 = tok(json!({"sub": "u", "exp": NOW + 5}));
    assert!(s.v.validate_at(&t2, NOW + 2).await.is_ok());
}

/// Tyk `TestJWTRSAInvalidPublickKey`: an invalid key in the source. Gatehouse refuses the API
/// definition (a config error) rather than failing every request.
#[tokio::test]
async fn invalid_public_key_source() {
    let cache = gatehouse_jwt::JwksCache::new(cfg()).unwrap();
    let bad = STANDARD.encode("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n");
    let e = gatehouse_jwt::JwtValidator::from_api(
        &api("rsa", &bad),
        cache,
        gatehouse_jwt::VerifiedTokenCache::new(1),
    )
    .unwrap_err();
    assert_eq!(e.field(), "jwt_source");
}
