//! Published JOSE test vectors: the JWS examples of RFC 7520 §4 (keys from §3) and of RFC 7515
//! Appendix A. Each must verify with its published key and fail with one bit flipped; the
//! algorithms Gatehouse does not verify (ES512) must be refused cleanly.
//!
//! The RFC 7520 payload is plain text, not JSON claims, so there the signature layer is what is
//! checked: the validator verifies the signature *before* it decodes the claims, so "malformed:
//! payload is not a JSON object" after exactly one signature check means the signature verified,
//! while the flipped token is a bad signature. The RFC 7515 tokens are JWTs (`exp` 1300819380,
//! 2011-03-22) and are validated end to end with the clock set before that `exp`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse_jwt::{Algorithm, JwtError};
use serde_json::{Value, json};

use crate::support::*;

// ── RFC 7520 §3 keys ──

/// §3.3 (Figure 3): the RSA public key, 2048 bits.
fn rfc7520_rsa() -> Value {
    json!({
        "kty": "RSA", "kid": "bilbo.baggins@hobbiton.example", "use": "sig",
        "n": "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw",
        "e": "AQAB"
    })
}

/// §3.1 (Figure 1): the EC P-521 public key.
fn rfc7520_ec521() -> Value {
    json!({
        "kty": "EC", "kid": "bilbo.baggins@hobbiton.example", "use": "sig", "crv": "P-521",
        "x": "AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt",
        "y": "AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1"
    })
}

/// §3.5 (Figure 5): the HMAC key (`k`, base64url).
const RFC7520_HMAC_K: &str = "hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg";

/// §4 (Figure 8): the payload, base64url.
const RFC7520_PAYLOAD: &str = "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4";

/// §4.1.3 (Figure 13): RS256.
const RFC7520_4_1_HEADER: &str =
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9";
const RFC7520_4_1_SIG: &str = "MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg";

/// §4.2.3 (Figure 20): PS384 (PSS is randomised; this is the RFC's instance).
const RFC7520_4_2_HEADER: &str =
    "eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9";
const RFC7520_4_2_SIG: &str = "cu22eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2IpN6-tPid6VrklHkqsGqDqHCdP6O8TTB5dDDItllVo6_1OLPpcbUrhiUSMxbbXUvdvWXzg-UD8biiReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRXe8P_ijQ7p8Vdz0TTrxUeT3lm8d9shnr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT0qI0n6uiP1aCN_2_jLAeQTlqRHtfa64QQSUmFAAjVKPbByi7xho0uTOcbH510a6GYmJUAfmWjwZ6oD4ifKo8DYM-X72Eaw";

/// §4.3.3 (Figure 27): ES512 (P-521).
const RFC7520_4_3_HEADER: &str =
    "eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9";
const RFC7520_4_3_SIG: &str = "AE_R_YZCChjn4791jSQCrdPZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvbu9Plon7KRTzoNEuT4Va2cmL1eJAQy3mtPBu_u_sDDyYjnAMDxXPn7XrT0lw-kvAD890jl8e2puQens_IEKBpHABlsbEPX6sFY8OcGDqoRuBomu9xQ2";

/// §4.4.3 (Figure 34): HS256.
const RFC7520_4_4_HEADER: &str =
    "eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMxNGJjNzAzNyJ9";
const RFC7520_4_4_SIG: &str = "s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0";

// ── RFC 7515 Appendix A ──

/// The JWT claims of A.1–A.3 (`{"iss":"joe",\r\n "exp":1300819380,\r\n ...}`), base64url.
const RFC7515_PAYLOAD: &str = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
/// Before the vectors' `exp`.
const RFC7515_NOW: i64 = 1_300_819_000;
const RFC7515_EXP: i64 = 1_300_819_380;

/// A.1: HS256, key A.1.1 (base64url).
const RFC7515_A1: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const RFC7515_A1_K: &str =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

/// A.2: RS256, key A.2.1.
const RFC7515_A2_SIG: &str = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
const RFC7515_A2_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";

/// A.3: ES256, key A.3.1.
const RFC7515_A3_SIG: &str =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
const RFC7515_A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const RFC7515_A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

/// `token` with one bit of its signature flipped (the first byte, so the base64 stays canonical).
fn flip_signature_bit(token: &str) -> String {
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    bytes[0] ^= 0x01;
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// `token` with one bit of its payload flipped.
fn flip_payload_bit(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut bytes = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
    bytes[3] ^= 0x01;
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(bytes),
        parts[2]
    )
}

fn serve_keys(idp: &Idp, path: &str, keys: Vec<Value>) {
    idp.set(
        path,
        Behaviour::Body {
            body: json!({ "keys": keys }).to_string(),
            cache_control: None,
        },
    );
}

/// The signature verified and only the (non-JSON) payload was refused.
#[track_caller]
fn assert_signature_verified(r: &Result<std::sync::Arc<gatehouse_jwt::VerifiedToken>, JwtError>) {
    match r {
        Err(JwtError::Malformed { reason }) => assert!(
            reason.starts_with("payload is not a JSON object"),
            "{reason}"
        ),
        other => panic!("expected the payload (not the signature) to be refused: {other:?}"),
    }
}

#[tokio::test]
async fn rfc7520_section4_rsa_vectors_verify_and_a_flipped_bit_fails() {
    let idp = Idp::start().await;
    // The P-521 key of §3.1 shares the kid; it is skipped (unsupported curve), not fatal.
    serve_keys(&idp, "/jwks", vec![rfc7520_rsa(), rfc7520_ec521()]);
    let s = setup(&api("rsa", &idp.url("/jwks")));
    wait_loaded(&s.cache, &idp.url("/jwks")).await;
    for (name, header, sig) in [
        ("4.1 RS256", RFC7520_4_1_HEADER, RFC7520_4_1_SIG),
        ("4.2 PS384", RFC7520_4_2_HEADER, RFC7520_4_2_SIG),
    ] {
        let t = format!("{header}.{RFC7520_PAYLOAD}.{sig}");
        let before = s.v.signature_checks();
        assert_signature_verified(&s.v.validate(&t).await);
        assert_eq!(s.v.signature_checks(), before + 1, "{name}");
        for bad in [flip_signature_bit(&t), flip_payload_bit(&t)] {
            let r = s.v.validate(&bad).await;
            assert!(
                matches!(r, Err(JwtError::BadSignature { .. })),
                "{name}: {r:?}"
            );
        }
        // Truncated by one byte: wrong length, refused.
        let (input, sig_b64) = t.rsplit_once('.').unwrap();
        let raw = URL_SAFE_NO_PAD.decode(sig_b64).unwrap();
        let short = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&raw[1..]));
        assert!(matches!(
            s.v.validate(&short).await,
            Err(JwtError::BadSignature { .. })
        ));
    }
}

#[tokio::test]
async fn rfc7520_section4_es512_is_refused_as_unsupported() {
    let idp = Idp::start().await;
    serve_keys(&idp, "/jwks", vec![rfc7520_rsa(), rfc7520_ec521()]);
    let url = idp.url("/jwks");
    let t = format!("{RFC7520_4_3_HEADER}.{RFC7520_PAYLOAD}.{RFC7520_4_3_SIG}");
    for method in ["ecdsa", "rsa"] {
        let s = setup(&api(method, &url));
        let r = s.v.validate(&t).await;
        assert_refused(&r, 401, UNEXPECTED);
        assert_eq!(
            r.unwrap_err(),
            JwtError::UnexpectedSigningMethod {
                alg: "ES512".into()
            }
        );
        assert_eq!(s.v.signature_checks(), 0);
    }
    // The P-521 key itself is skipped when the JWKS is read: only the RSA key is usable.
    let s = setup(&api("ecdsa", &url));
    wait_loaded(&s.cache, &url).await;
    let stats = s.cache.stats();
    let u = stats.urls.iter().find(|u| u.url == url).unwrap();
    assert_eq!(u.keys, 1, "{u:?}");
}

#[tokio::test]
async fn rfc7520_section4_hs256_verifies_and_a_flipped_bit_fails() {
    let secret = URL_SAFE_NO_PAD.decode(RFC7520_HMAC_K).unwrap();
    let s = setup(&api("hmac", &STANDARD.encode(&secret)));
    let t = format!("{RFC7520_4_4_HEADER}.{RFC7520_PAYLOAD}.{RFC7520_4_4_SIG}");
    assert_signature_verified(&s.v.validate(&t).await);
    assert_eq!(s.v.signature_checks(), 1);
    for bad in [flip_signature_bit(&t), flip_payload_bit(&t)] {
        let r = s.v.validate(&bad).await;
        assert!(matches!(r, Err(JwtError::BadSignature { .. })), "{r:?}");
    }
}

#[tokio::test]
async fn rfc7515_appendix_a_jwts_validate_end_to_end() {
    let idp = Idp::start().await;
    serve_keys(
        &idp,
        "/jwks",
        vec![
            json!({"kty": "RSA", "n": RFC7515_A2_N, "e": "AQAB"}),
            json!({"kty": "EC", "crv": "P-256", "x": RFC7515_A3_X, "y": RFC7515_A3_Y}),
        ],
    );
    let url = idp.url("/jwks");
    let rsa = setup(&api("rsa", &url));
    let ecdsa = setup(&api("ecdsa", &url));
    let secret = URL_SAFE_NO_PAD.decode(RFC7515_A1_K).unwrap();
    let hmac = setup(&api("hmac", &STANDARD.encode(&secret)));
    let a2 = format!("eyJhbGciOiJSUzI1NiJ9.{RFC7515_PAYLOAD}.{RFC7515_A2_SIG}");
    let a3 = format!("eyJhbGciOiJFUzI1NiJ9.{RFC7515_PAYLOAD}.{RFC7515_A3_SIG}");
    for (name, v, t, alg) in [
        (
            "A.1 HS256",
            &hmac.v,
            RFC7515_A1.to_owned(),
            Algorithm::HS256,
        ),
        ("A.2 RS256", &rsa.v, a2, Algorithm::RS256),
        ("A.3 ES256", &ecdsa.v, a3, Algorithm::ES256),
    ] {
        // No kid: the only key of the right type is tried.
        let ok = v
            .validate_at(&t, RFC7515_NOW)
            .await
            .unwrap_or_else(|e| panic!("{name}: {}", e.detail()));
        assert_eq!(ok.alg, alg);
        assert_eq!(ok.exp, Some(RFC7515_EXP));
        assert_eq!(ok.claims["iss"], json!("joe"));
        assert_eq!(ok.claims["http://example.com/is_root"], json!(true));
        // At the real clock the same (cached) token has long expired.
        assert_refused(
            &v.validate(&t).await,
            401,
            "Key not authorized: token has expired",
        );
        for bad in [flip_signature_bit(&t), flip_payload_bit(&t)] {
            let r = v.validate_at(&bad, RFC7515_NOW).await;
            assert!(
                matches!(r, Err(JwtError::BadSignature { .. })),
                "{name}: {r:?}"
            );
        }
    }
}

#[tokio::test]
async fn rfc7515_appendix_a4_es512_and_a5_unsecured_are_refused() {
    let idp = Idp::start().await;
    serve_keys(
        &idp,
        "/jwks",
        vec![json!({"kty": "EC", "crv": "P-256", "x": RFC7515_A3_X, "y": RFC7515_A3_Y})],
    );
    let s = setup(&api("ecdsa", &idp.url("/jwks")));
    // A.4's header is {"alg":"ES512"}; its signature is irrelevant: the alg is refused first.
    let a4 = format!("eyJhbGciOiJFUzUxMiJ9.{RFC7515_PAYLOAD}.{RFC7515_A3_SIG}");
    // A.5: {"alg":"none"} and an empty signature.
    let a5 = format!("eyJhbGciOiJub25lIn0.{RFC7515_PAYLOAD}.");
    for t in [a4, a5] {
        assert_refused(&s.v.validate_at(&t, RFC7515_NOW).await, 401, UNEXPECTED);
    }
    assert_eq!(s.v.signature_checks(), 0);
}
