//! Every supported algorithm verifies, from a JWKS and from a configured key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_jwt::Algorithm;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn every_algorithm_of_each_family_verifies_from_a_jwks() {
    let idp = Idp::start().await;
    idp.serve(
        "/jwks",
        &[
            (K::Rsa(0), "rsa"),
            (K::Ec256(0), "p256"),
            (K::Ec384, "p384"),
            (K::Ed, "ed"),
        ],
    );
    let url = idp.url("/jwks");
    type Case<'a> = (&'a str, &'a [(&'a str, K, &'a str)]);
    let cases: &[Case<'_>] = &[
        (
            "rsa",
            &[
                ("RS256", K::Rsa(0), "rsa"),
                ("RS384", K::Rsa(0), "rsa"),
                ("RS512", K::Rsa(0), "rsa"),
                ("PS256", K::Rsa(0), "rsa"),
                ("PS384", K::Rsa(0), "rsa"),
                ("PS512", K::Rsa(0), "rsa"),
            ],
        ),
        (
            "ecdsa",
            &[("ES256", K::Ec256(0), "p256"), ("ES384", K::Ec384, "p384")],
        ),
        ("eddsa", &[("EdDSA", K::Ed, "ed"), ("Ed25519", K::Ed, "ed")]),
    ];
    for (method, algs) in cases {
        let s = setup(&api(method, &url));
        for (alg, key, kid) in *algs {
            let t = token(alg, Some(kid), *key, &claims());
            let v =
                s.v.validate(&t)
                    .await
                    .unwrap_or_else(|e| panic!("{method} {alg}: {}", e.detail()));
            assert_eq!(v.kid.as_deref(), Some(*kid));
            assert_eq!(v.claims["sub"], json!("user-1"));
            assert_eq!(v.jwks_url.as_deref(), Some(url.as_str()));
        }
    }
}

#[tokio::test]
async fn hmac_family_verifies_with_the_configured_secret() {
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    let s = setup(&api("hmac", &STANDARD.encode(SECRET)));
    for alg in ["HS256", "HS384", "HS512"] {
        let t = token(alg, None, K::Hmac(SECRET), &claims());
        let v = s.v.validate(&t).await.unwrap();
        assert_eq!(format!("{:?}", v.alg), alg);
        assert!(v.jwks_url.is_none());
    }
    // A kid of any kind is irrelevant with a configured key (Tyk).
    let t = token_with_header(
        &json!({"alg": "HS256", "kid": 12}),
        K::Hmac(SECRET),
        &claims(),
    );
    assert!(s.v.validate(&t).await.is_ok());
    let wrong = token(
        "HS256",
        None,
        K::Hmac(b"another secret, 32 bytes long!!!"),
        &claims(),
    );
    assert_refused(&s.v.validate(&wrong).await, 401, NOT_AUTHORIZED);
}

#[tokio::test]
async fn tokens_made_by_jsonwebtoken_verify() {
    // Interoperability with another implementation (jsonwebtoken's encoder; note its EdDSA
    // encoder wants a PKCS#8 v1 key).
    use aws_lc_rs::signature::Ed25519KeyPair;
    let ed = Ed25519KeyPair::generate().unwrap();
    let pkcs8 = ed.to_pkcs8v1().unwrap();
    let enc = EncodingKey::from_ed_der(pkcs8.as_ref());
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&enc, Algorithm::EdDSA).unwrap();
    jwk.common.key_id = Some("lib-ed".into());
    let idp = Idp::start().await;
    idp.set(
        "/jwks",
        Behaviour::Body {
            body: json!({"keys": [jwk]}).to_string(),
            cache_control: None,
        },
    );
    let s = setup(&api("eddsa", &idp.url("/jwks")));
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("lib-ed".into());
    let t = jsonwebtoken::encode(&header, &claims(), &enc).unwrap();
    let v = s.v.validate(&t).await.unwrap();
    assert_eq!(v.alg, Algorithm::EdDSA);
}
