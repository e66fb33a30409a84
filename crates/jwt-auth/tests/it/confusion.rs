//! Algorithm confusion and header tricks.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_jwt::{JwksCache, JwtConfigError, JwtError, JwtValidator, VerifiedTokenCache};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn alg_none_in_any_spelling_never_passes() {
    let idp = Idp::start().await;
    idp.serve("/jwks", &[(K::Rsa(0), "k1")]);
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    let apis = [
        api("rsa", &idp.url("/jwks")),
        api("rsa", &STANDARD.encode(K::Rsa(0).public_pem())),
        api("hmac", &STANDARD.encode(SECRET)),
        api("ecdsa", &idp.url("/jwks")),
        api("eddsa", &idp.url("/jwks")),
    ];
    for def in &apis {
        let s = setup(def);
        for alg in ["none", "None", "NONE", "nOnE", ""] {
            for kid in [None, Some("k1")] {
                let mut h = json!({"alg": alg});
                if let Some(k) = kid {
                    h["kid"] = json!(k);
                }
                // Unsigned, and also with a junk signature.
                for sig in [&b""[..], b"sig"] {
                    let t = assemble(&h, &claims(), sig);
                    let r = s.v.validate(&t).await;
                    assert_refused(&r, 401, UNEXPECTED);
                }
            }
        }
        assert_eq!(s.v.signature_checks(), 0);
    }
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_as_secret_is_refused() {
    let idp = Idp::start().await;
    idp.serve("/jwks", &[(K::Rsa(0), "k1")]);
    let pem = K::Rsa(0).public_pem();
    let der = K::Rsa(0).public_der();
    let jwk_json = K::Rsa(0).jwk("k1").to_string();
    let secrets: [&[u8]; 3] = [pem.as_bytes(), &der, jwk_json.as_bytes()];
    for def in [
        api("rsa", &idp.url("/jwks")),
        api("rsa", &STANDARD.encode(&pem)),
        api("rsa", &pem),
    ] {
        let s = setup(&def);
        for secret in secrets {
            for alg in ["HS256", "HS384", "HS512"] {
                let h = json!({"alg": alg, "kid": "k1"});
                let input = format!(
                    "{}.{}",
                    b64url(h.to_string().as_bytes()),
                    b64url(claims().to_string().as_bytes())
                );
                let t = format!(
                    "{input}.{}",
                    b64url(&hmac_sign(alg, secret, input.as_bytes()))
                );
                assert_refused(&s.v.validate(&t).await, 401, UNEXPECTED);
            }
        }
    }
    // And an hmac API cannot be configured with a public key as its "secret".
    let cache = JwksCache::new(cfg()).unwrap();
    for source in [
        STANDARD.encode(&pem),
        pem.clone(),
        STANDARD.encode(&der),
        STANDARD.encode(pem::cert_for(&der)),
    ] {
        let e = JwtValidator::from_api(
            &api("hmac", &source),
            Arc::clone(&cache),
            VerifiedTokenCache::new(10),
        )
        .unwrap_err();
        assert!(matches!(e, JwtConfigError::Source(_)), "{e}");
        assert!(e.to_string().contains("not a secret"), "{e}");
    }
}

/// A minimal X.509 wrapper around a SubjectPublicKeyInfo (unsigned: only its key is read).
pub(crate) mod pem {
    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(u8::try_from(len).unwrap());
        } else if len < 0x100 {
            out.extend_from_slice(&[0x81, u8::try_from(len).unwrap()]);
        } else {
            out.push(0x82);
            out.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        }
        out.extend_from_slice(content);
        out
    }

    pub(crate) fn cert_for(spki: &[u8]) -> Vec<u8> {
        let oid_sha256_rsa = der(
            0x06,
            &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B],
        );
        let alg = der(0x30, &oid_sha256_rsa);
        let name = der(
            0x30,
            &der(
                0x31,
                &der(
                    0x30,
                    &[der(0x06, &[0x55, 0x04, 0x03]), der(0x0C, b"test")].concat(),
                ),
            ),
        );
        let validity = der(
            0x30,
            &[der(0x17, b"250101000000Z"), der(0x17, b"350101000000Z")].concat(),
        );
        let tbs = der(
            0x30,
            &[
                der(0xA0, &der(0x02, &[2])),
                der(0x02, &[0x01, 0x23]),
                alg.clone(),
                name.clone(),
                validity,
                name,
                spki.to_vec(),
            ]
            .concat(),
        );
        der(0x30, &[tbs, alg, der(0x03, &[0, 0xAA, 0xBB])].concat())
    }
}

#[tokio::test]
async fn a_token_of_another_family_is_an_unexpected_signing_method() {
    let idp = Idp::start().await;
    idp.serve(
        "/jwks",
        &[(K::Rsa(0), "rsa"), (K::Ec256(0), "ec"), (K::Ed, "ed")],
    );
    let url = idp.url("/jwks");
    let ecdsa = setup(&api("ecdsa", &url));
    let rs = token("RS256", Some("rsa"), K::Rsa(0), &claims());
    assert_refused(&ecdsa.v.validate(&rs).await, 401, UNEXPECTED);
    let rsa = setup(&api("rsa", &url));
    let es = token("ES256", Some("ec"), K::Ec256(0), &claims());
    assert_refused(&rsa.v.validate(&es).await, 401, UNEXPECTED);
    let ed = token("EdDSA", Some("ed"), K::Ed, &claims());
    assert_refused(&rsa.v.validate(&ed).await, 401, UNEXPECTED);
    // Names are case-sensitive; ES512 is not verified.
    for alg in ["rs256", "Rs256", "ES512", "HS1", "RSA"] {
        let t = assemble(&json!({"alg": alg, "kid": "rsa"}), &claims(), b"sig");
        assert_refused(&rsa.v.validate(&t).await, 401, UNEXPECTED);
    }
    assert_eq!(rsa.v.signature_checks() + ecdsa.v.signature_checks(), 0);
}

#[tokio::test]
async fn token_alg_must_fit_the_selected_jwk() {
    let idp = Idp::start().await;
    // One kid shared by an RSA and... (served separately below) and JWKs with their own alg.
    let mut pinned = K::Rsa(1).jwk("pinned");
    pinned["alg"] = json!("RS256");
    let body = json!({"keys": [
        K::Rsa(0).jwk("same"),
        K::Ec256(0).jwk("p256"),
        pinned,
    ]});
    idp.set(
        "/jwks",
        Behaviour::Body {
            body: body.to_string(),
            cache_control: None,
        },
    );
    let url = idp.url("/jwks");

    // ES256 token whose kid names the RSA key.
    let ecdsa = setup(&api("ecdsa", &url));
    let t = token("ES256", Some("same"), K::Ec256(0), &claims());
    let r = ecdsa.v.validate(&t).await;
    assert_refused(&r, 401, NOT_AUTHORIZED);
    assert!(matches!(r, Err(JwtError::KeyTypeMismatch { .. })), "{r:?}");

    // ES384 token whose kid names a P-256 key.
    let t = token("ES384", Some("p256"), K::Ec384, &claims());
    let r = ecdsa.v.validate(&t).await;
    assert!(matches!(r, Err(JwtError::KeyTypeMismatch { .. })), "{r:?}");

    // The JWK says RS256: a PS256 or RS512 token with the same key is refused.
    let rsa = setup(&api("rsa", &url));
    for alg in ["PS256", "RS512"] {
        let t = token(alg, Some("pinned"), K::Rsa(1), &claims());
        let r = rsa.v.validate(&t).await;
        assert!(
            matches!(r, Err(JwtError::KeyTypeMismatch { .. })),
            "{alg}: {r:?}"
        );
    }
    let t = token("RS256", Some("pinned"), K::Rsa(1), &claims());
    assert!(rsa.v.validate(&t).await.is_ok());
    assert_eq!(
        ecdsa.v.signature_checks(),
        0,
        "mismatched keys are never tried"
    );
}

#[tokio::test]
async fn a_static_key_of_the_wrong_family_is_refused_at_configuration() {
    let cache = JwksCache::new(cfg()).unwrap();
    for (method, key) in [
        ("ecdsa", K::Rsa(0)),
        ("rsa", K::Ec256(0)),
        ("eddsa", K::Ec384),
        ("rsa", K::Ed),
    ] {
        let e = JwtValidator::from_api(
            &api(method, &STANDARD.encode(key.public_pem())),
            Arc::clone(&cache),
            VerifiedTokenCache::new(10),
        )
        .unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
    }
}

#[tokio::test]
async fn key_headers_in_the_token_are_never_fetched_or_trusted() {
    let idp = Idp::start().await;
    idp.serve("/jwks", &[(K::Rsa(0), "k1")]);
    // The attacker's key set, served by the same server on another path.
    idp.serve("/evil", &[(K::Rsa(2), "k1"), (K::Rsa(2), "evil")]);
    let s = setup(&api("rsa", &idp.url("/jwks")));
    wait_loaded(&s.cache, &idp.url("/jwks")).await;
    let evil_jwk = K::Rsa(2).jwk("k1");
    let cert = STANDARD.encode(pem::cert_for(&K::Rsa(2).public_der()));
    for kid in ["k1", "evil"] {
        let h = json!({
            "alg": "RS256", "kid": kid,
            "jku": idp.url("/evil"), "x5u": idp.url("/evil"),
            "jwk": evil_jwk, "x5c": [cert],
        });
        let t = token_with_header(&h, K::Rsa(2), &claims());
        assert_refused(&s.v.validate(&t).await, 401, NOT_AUTHORIZED);
    }
    assert_eq!(idp.hits("/evil"), 0);
    // The same headers on a token signed by the real key do not hurt.
    let h = json!({"alg": "RS256", "kid": "k1", "jku": idp.url("/evil"), "jwk": evil_jwk});
    assert!(
        s.v.validate(&token_with_header(&h, K::Rsa(0), &claims()))
            .await
            .is_ok()
    );
    assert_eq!(idp.hits("/evil"), 0);
}

#[tokio::test]
async fn tampering_and_foreign_keys_are_bad_signatures() {
    let idp = Idp::start().await;
    idp.serve("/jwks", &[(K::Rsa(0), "k1")]);
    let s = setup(&api("rsa", &idp.url("/jwks")));
    let good = token("RS256", Some("k1"), K::Rsa(0), &claims());
    // Another key with the same kid.
    let foreign = token("RS256", Some("k1"), K::Rsa(1), &claims());
    let r = s.v.validate(&foreign).await;
    assert!(matches!(r, Err(JwtError::BadSignature { .. })), "{r:?}");
    // A modified payload under the original signature.
    let parts: Vec<&str> = good.split('.').collect();
    let mut c = claims();
    c["pol"] = json!("platinum");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64url(c.to_string().as_bytes()),
        parts[2]
    );
    assert_refused(&s.v.validate(&tampered).await, 401, NOT_AUTHORIZED);
    // A truncated signature.
    let cut = &good[..good.len() - 4];
    assert_refused(&s.v.validate(cut).await, 401, NOT_AUTHORIZED);
    assert!(s.v.validate(&good).await.is_ok());
}
