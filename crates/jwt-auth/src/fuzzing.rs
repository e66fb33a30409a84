//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`, off by default; never enabled
//! by the gateway). They run the crate's private parsers on untrusted bytes and check their
//! invariants; they return nothing a caller could use to skip verification.

use gatehouse_domain::api::SigningMethod;

use crate::keys::{KeySet, alg_from_name};
use crate::token::{self, Kid, MAX_TOKEN_BYTES, Skews, TimeClaims};
use crate::{der, source};

/// Runs the token parser and every claim check on `token` (no signature). Returns whether the
/// token got as far as passing all the claim checks at `now`. Panics if an invariant breaks.
pub fn parse_token(token: &str, now: i64) -> bool {
    let raw = match token::parse(token) {
        Ok(r) => r,
        Err(e) => {
            assert_eq!(e.reason(), "malformed", "parse only says malformed");
            assert_eq!(e.status().as_u16(), 401);
            return false;
        }
    };
    assert!(token.len() <= MAX_TOKEN_BYTES);
    assert_eq!(
        format!("{}.{}", raw.signing_input, raw.signature_b64),
        token,
        "signing input and signature rebuild the token"
    );
    assert!(raw.signing_input.ends_with(raw.payload_b64));
    if let Some(alg) = alg_from_name(&raw.alg) {
        assert!(
            !raw.alg.eq_ignore_ascii_case("none"),
            "none is never an algorithm: {alg:?}"
        );
    }
    if let Kid::String(k) = &raw.kid {
        assert!(token.len() > k.len(), "the kid came from the header");
    }
    let Ok(claims) = token::decode_claims(raw.payload_b64) else {
        return false;
    };
    let Ok(times) = TimeClaims::from_claims(&claims) else {
        return false;
    };
    let skews = Skews {
        expires_at: 30,
        issued_at: 30,
        not_before: 30,
    };
    let allowed = ["https://idp.test/".to_owned()];
    token::check_time(&times, now, &skews).is_ok()
        && token::check_issuer(&claims, &allowed).is_ok()
        && token::check_audience(&claims, &allowed).is_ok()
}

/// Parses a JWKS document and looks up the kids it holds. Returns the number of usable keys.
pub fn parse_jwks(body: &[u8]) -> Option<usize> {
    let set = KeySet::from_jwks_json(body).ok()?;
    for kid in set.kids() {
        assert!(set.with_kid(&kid).count() >= 1, "every kid is indexed");
    }
    assert!(set.len() == set.all().len());
    Some(set.len())
}

/// Reads `bytes` as a configured key (PEM / DER public key or certificate) and `text` as a
/// `jwt_source` for each signing method. Returns how many readings succeeded.
pub fn parse_key_material(bytes: &[u8], text: &str) -> usize {
    let mut ok = usize::from(der::parse_public_key(bytes).is_ok());
    for m in [
        SigningMethod::Rsa,
        SigningMethod::Ecdsa,
        SigningMethod::Eddsa,
        SigningMethod::Hmac,
    ] {
        ok += usize::from(source::classify(text, m).is_ok());
    }
    ok
}
