//! Token verification cost: a cold check (parse, signature, claims) against a verified-token
//! cache hit. Keys are configured in `jwt_source` (PEM), so no network is involved; the JWKS path
//! differs only by an in-memory lookup. `validate` is async but never waits with configured keys,
//! so each iteration polls it once with a no-op waker (no runtime overhead in the figures).
//!
//! Run: `cargo bench -p gatehouse-jwt --bench verify`.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_domain::api::ApiDefinition;
use gatehouse_jwt::{JwksCache, JwksCacheConfig, JwtValidator, VerifiedTokenCache, unix_now};
use serde_json::json;

/// Runs a future that completes without waiting (validation with configured keys).
fn now<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("validation with a configured key does not wait"),
    }
}

fn pem(der: &[u8]) -> String {
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(der)
    )
}

fn token(alg: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let now = unix_now();
    let header = json!({"alg": alg, "typ": "JWT", "kid": "bench-key"});
    let claims = json!({
        "iss": "https://idp.example.com/oauth2/default", "sub": "0oa1b2c3d4e5f6g7h8i9",
        "aud": "api://default", "iat": now, "exp": now + 3600, "cid": "0oa1b2c3d4e5f6g7h8i9",
        "scp": ["payments:read", "payments:write"], "pol": "gold",
        "jti": "AT.x4T2kR9vN6mQ1pL8sW3yZ5bC7dF0gH2jK4lM6nP8",
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn validator(method: &str, public_der: &[u8], capacity: usize) -> JwtValidator {
    let def = ApiDefinition {
        name: "bench".into(),
        api_id: "bench".into(),
        enable_jwt: true,
        jwt_signing_method: method.into(),
        jwt_source: STANDARD.encode(pem(public_der)),
        ..ApiDefinition::default()
    };
    let cache = JwksCache::new(JwksCacheConfig::default()).unwrap();
    JwtValidator::from_api(&def, cache, VerifiedTokenCache::new(capacity)).unwrap()
}

fn bench(c: &mut Criterion) {
    let rng = SystemRandom::new();

    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let rsa_der = rsa.public_key().as_der().unwrap().as_ref().to_vec();
    let rs256 = token("RS256", |m| {
        let mut sig = vec![0; rsa.public_modulus_len()];
        rsa.sign(&signature::RSA_PKCS1_SHA256, &rng, m, &mut sig)
            .unwrap();
        sig
    });
    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let ec_der = ec.public_key().as_der().unwrap().as_ref().to_vec();
    let es256 = token("ES256", |m| ec.sign(&rng, m).unwrap().as_ref().to_vec());
    let ed = Ed25519KeyPair::generate().unwrap();
    let ed_der = ed.public_key().as_der().unwrap().as_ref().to_vec();
    let eddsa = token("EdDSA", |m| ed.sign(m).as_ref().to_vec());

    let rsa_cold = validator("rsa", &rsa_der, 0);
    let rsa_cached = Arc::new(validator("rsa", &rsa_der, 100_000));
    let ec_cold = validator("ecdsa", &ec_der, 0);
    let ed_cold = validator("eddsa", &ed_der, 0);
    assert!(now(rsa_cold.validate(&rs256)).is_ok());
    assert!(now(rsa_cached.validate(&rs256)).is_ok());
    assert!(now(ec_cold.validate(&es256)).is_ok());
    assert!(now(ed_cold.validate(&eddsa)).is_ok());

    let mut g = c.benchmark_group("verify");
    g.bench_function("rs256_cold", |b| {
        b.iter(|| now(rsa_cold.validate(black_box(&rs256))).unwrap());
    });
    g.bench_function("rs256_cached_hit", |b| {
        b.iter(|| now(rsa_cached.validate(black_box(&rs256))).unwrap());
    });
    g.bench_function("es256_cold", |b| {
        b.iter(|| now(ec_cold.validate(black_box(&es256))).unwrap());
    });
    g.bench_function("eddsa_cold", |b| {
        b.iter(|| now(ed_cold.validate(black_box(&eddsa))).unwrap());
    });
    g.finish();
    println!(
        "token sizes: RS256 {} bytes, ES256 {} bytes; signature checks: cold {}, cached {}",
        rs256.len(),
        es256.len(),
        rsa_cold.signature_checks(),
        rsa_cached.signature_checks()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
