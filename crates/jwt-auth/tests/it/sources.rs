//! `jwt_source` forms and configuration errors.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_domain::api::ApiDefinition;
use gatehouse_jwt::{JwksCache, JwtConfigError, JwtValidator, VerifiedTokenCache};
use serde_json::json;

use crate::confusion::pem::cert_for;
use crate::support::*;

fn build(def: &ApiDefinition) -> Result<JwtValidator, JwtConfigError> {
    JwtValidator::from_api(
        def,
        JwksCache::new(cfg()).unwrap(),
        VerifiedTokenCache::new(10),
    )
}

#[tokio::test]
async fn base64_jwks_url_source() {
    let idp = Idp::start().await;
    idp.serve("/certs", &[(K::Ec256(1), "ec")]);
    let s = setup(&api("ecdsa", &STANDARD.encode(idp.url("/certs"))));
    assert_eq!(s.v.jwks_urls(), &[idp.url("/certs")]);
    let t = token("ES256", Some("ec"), K::Ec256(1), &claims());
    assert!(s.v.validate(&t).await.is_ok());
}

/// PKCS#1 `RSAPublicKey` DER from the public JWK.
fn pkcs1(key: K) -> Vec<u8> {
    fn int(b: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        if b[0] & 0x80 != 0 {
            v.push(0);
        }
        v.extend_from_slice(b);
        tlv(0x02, &v)
    }
    fn tlv(tag: u8, c: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if c.len() < 0x80 {
            out.push(u8::try_from(c.len()).unwrap());
        } else {
            out.push(0x82);
            out.extend_from_slice(&u16::try_from(c.len()).unwrap().to_be_bytes());
        }
        out.extend_from_slice(c);
        out
    }
    let jwk = key.jwk("x");
    let d = |f: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwk[f].as_str().unwrap())
            .unwrap()
    };
    tlv(0x30, &[int(&d("n")), int(&d("e"))].concat())
}

#[tokio::test]
async fn public_key_sources_in_every_accepted_form() {
    let cases: Vec<(&str, K, &str, String)> = vec![
        (
            "rsa",
            K::Rsa(0),
            "RS256",
            STANDARD.encode(K::Rsa(0).public_pem()),
        ),
        ("rsa", K::Rsa(0), "PS384", K::Rsa(0).public_pem()), // raw PEM text
        (
            "rsa",
            K::Rsa(0),
            "RS512",
            STANDARD.encode(K::Rsa(0).public_der()),
        ), // base64 DER
        (
            "rsa",
            K::Rsa(1),
            "RS256",
            STANDARD.encode(pem("RSA PUBLIC KEY", &pkcs1(K::Rsa(1)))),
        ),
        (
            "rsa",
            K::Rsa(1),
            "RS256",
            STANDARD.encode(pem("CERTIFICATE", &cert_for(&K::Rsa(1).public_der()))),
        ),
        (
            "ecdsa",
            K::Ec256(0),
            "ES256",
            STANDARD.encode(K::Ec256(0).public_pem()),
        ),
        (
            "ecdsa",
            K::Ec384,
            "ES384",
            STANDARD.encode(K::Ec384.public_pem()),
        ),
        (
            "ecdsa",
            K::Ec384,
            "ES384",
            STANDARD.encode(pem("CERTIFICATE", &cert_for(&K::Ec384.public_der()))),
        ),
        ("eddsa", K::Ed, "EdDSA", STANDARD.encode(K::Ed.public_pem())),
    ];
    for (method, key, alg, source) in cases {
        let s = setup(&api(method, &source));
        assert!(s.v.jwks_urls().is_empty());
        let t = token(alg, None, key, &claims());
        let v =
            s.v.validate(&t)
                .await
                .unwrap_or_else(|e| panic!("{method} {alg}: {}", e.detail()));
        assert!(v.jwks_url.is_none());
        // A token signed by another key of the same type fails.
        let other = match key {
            K::Rsa(i) => K::Rsa(2 - i),
            K::Ec256(i) => K::Ec256(1 - i),
            k => k,
        };
        if other != key {
            let t = token(alg, None, other, &claims());
            assert_refused(&s.v.validate(&t).await, 401, NOT_AUTHORIZED);
        }
    }
}

#[tokio::test]
async fn hmac_secret_source_even_line_wrapped() {
    const SECRET: &[u8] = b"a secret long enough for HS512, 64 bytes or so, padded to fit..";
    let b64 = STANDARD.encode(SECRET);
    let wrapped = format!("{}\n{}", &b64[..40], &b64[40..]);
    let s = setup(&api("HMAC", &wrapped)); // the method is case-insensitive
    let t = token("HS512", None, K::Hmac(SECRET), &claims());
    assert!(s.v.validate(&t).await.is_ok());
}

#[test]
fn registering_a_jwks_url_needs_a_runtime() {
    let e = build(&api("rsa", "http://127.0.0.1:9/jwks")).unwrap_err();
    assert_eq!(e, JwtConfigError::NoRuntime);
    // Configured keys need none.
    assert!(build(&api("rsa", &STANDARD.encode(K::Rsa(0).public_pem()))).is_ok());
}

#[tokio::test]
async fn validators_can_be_built_outside_the_runtime_of_the_cache() {
    let idp = Idp::start().await;
    idp.serve("/jwks", &[(K::Rsa(0), "k1")]);
    let url = idp.url("/jwks");
    // The cache is created within the runtime; the validator on a plain thread.
    let cache = JwksCache::new(cfg()).unwrap();
    let c = std::sync::Arc::clone(&cache);
    let def = api("rsa", &url);
    let v =
        std::thread::spawn(move || JwtValidator::from_api(&def, c, VerifiedTokenCache::new(10)))
            .join()
            .unwrap()
            .unwrap();
    wait_until("prefetched on the cache's runtime", || {
        idp.hits("/jwks") == 1
    })
    .await;
    let t = token("RS256", Some("k1"), K::Rsa(0), &claims());
    assert!(v.validate(&t).await.is_ok());
}

#[tokio::test]
async fn configuration_errors_name_the_field() {
    let url = "http://127.0.0.1:9/jwks";
    let mut not_jwt = api("rsa", url);
    not_jwt.enable_jwt = false;
    let private_key = pem("PRIVATE KEY", b"\x30\x03\x02\x01\x00");
    let cases: Vec<(ApiDefinition, &str)> = vec![
        (not_jwt, "enable_jwt"),
        (api("rsa256", url), "jwt_signing_method"),
        (api("", url), "jwt_signing_method"),
        (api("rsa", ""), "jwt_source"),
        (api("rsa", "   "), "jwt_source"),
        (api("rsa", "%%% not base64 %%%"), "jwt_source"),
        (api("rsa", &STANDARD.encode(&private_key)), "jwt_source"),
        (api("rsa", "http://"), "jwt_source"),
        (api("hmac", url), "jwt_source"),
        (api("hmac", &STANDARD.encode(url)), "jwt_source"),
        (
            api_uris("hmac", &[(url.to_owned(), None)]),
            "jwt_jwks_uris.0.url",
        ),
        (
            api_uris(
                "rsa",
                &[(url.to_owned(), None), ("ftp://x/jwks".to_owned(), None)],
            ),
            "jwt_jwks_uris.1.url",
        ),
    ];
    for (def, field) in cases {
        let e = build(&def).unwrap_err();
        assert_eq!(e.field(), field, "{e}");
    }
    let e = build(&api("rsa", &STANDARD.encode(&private_key))).unwrap_err();
    assert!(e.to_string().contains("never the private key"), "{e}");
}

#[tokio::test]
async fn duplicate_urls_are_registered_once() {
    let idp = Idp::start().await;
    idp.serve("/jwks", &[(K::Rsa(0), "k1")]);
    let url = idp.url("/jwks");
    let mut def = api_uris("rsa", &[(url.clone(), None), (url.clone(), Some(30))]);
    def.jwt_source = STANDARD.encode(&url);
    let s = setup(&def);
    assert_eq!(s.v.jwks_urls(), std::slice::from_ref(&url));
    wait_loaded(&s.cache, &url).await;
    assert_eq!(s.cache.stats().urls[0].registrations, 1);
    let t = token("RS256", Some("k1"), K::Rsa(0), &json!({"sub": "x"}));
    assert!(s.v.validate(&t).await.is_ok());
}
