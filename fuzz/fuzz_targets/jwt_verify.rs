//! The whole validator, as the gateway builds it (`JwtValidator::from_api`), with static keys: an
//! RSA public key (`rsa`) and an HMAC secret (`hmac`). Arbitrary bytes as the token must never
//! panic and never verify (the fuzzer cannot forge an RS256 or HS256 signature).
#![no_main]

use std::sync::{Arc, OnceLock};

use futures_util::FutureExt;
use gatehouse_domain::api::ApiDefinition;
use gatehouse_jwt::{JwksCache, JwksCacheConfig, JwtValidator, VerifiedTokenCache};
use libfuzzer_sys::fuzz_target;

/// RSA-2048 public key (SubjectPublicKeyInfo, PEM) of RFC 7515 Appendix A.2, base64 as Tyk's
/// `jwt_source` wants it is built below.
const RSA_PEM: &str = include_str!("../keys/rfc7515-a2-rsa.pem");
/// The HMAC key of RFC 7515 Appendix A.1 (any secret does; this one is public).
const HMAC_SECRET_B64: &str =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ+EstJQLr/T+1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow==";

struct Validators {
    rsa: JwtValidator,
    hmac: JwtValidator,
}

fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn validators() -> &'static Validators {
    static V: OnceLock<Validators> = OnceLock::new();
    V.get_or_init(|| {
        let cache = JwksCache::new(JwksCacheConfig::default()).expect("cache");
        let tokens = VerifiedTokenCache::new(64);
        let def = |method: &str, source: String| ApiDefinition {
            name: "fuzz".into(),
            api_id: format!("fuzz-{method}"),
            enable_jwt: true,
            jwt_signing_method: method.into(),
            jwt_source: source,
            ..ApiDefinition::default()
        };
        let build = |d: ApiDefinition| {
            JwtValidator::from_api(&d, Arc::clone(&cache), Arc::clone(&tokens)).expect("validator")
        };
        Validators {
            rsa: build(def("rsa", b64(RSA_PEM))),
            hmac: build(def("hmac", HMAC_SECRET_B64.to_owned())),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let v = validators();
    for validator in [&v.rsa, &v.hmac] {
        // Static keys: validation never waits on anything, so it completes on the first poll.
        let result = validator
            .validate_at(token, 1_300_819_000)
            .now_or_never()
            .expect("a validator with static keys never waits");
        if let Err(e) = &result {
            assert_eq!(e.status().as_u16(), 401, "{}", e.detail());
            assert!(!e.public_message().is_empty());
        } else {
            // Only the published RFC 7515 A.1 / A.2 tokens (or their seeds) can verify.
            assert!(
                token.starts_with("eyJ"),
                "a fuzzer-made token verified: {token:?}"
            );
        }
    }
});
