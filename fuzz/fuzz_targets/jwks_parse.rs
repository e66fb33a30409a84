//! JWKS documents (as fetched from an IdP) and configured key material (`jwt_source`: PEM, DER,
//! certificates, base64 in its spellings). Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gatehouse_jwt::fuzzing::parse_jwks(data);
    let text = String::from_utf8_lossy(data);
    let _ = gatehouse_jwt::fuzzing::parse_key_material(data, &text);
});
