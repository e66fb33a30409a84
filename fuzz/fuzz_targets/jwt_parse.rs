//! Compact-token parsing and the claim checks (no keys): split, base64url, header JSON, `alg`,
//! `kid`, `crit`, claims JSON, `exp`/`iat`/`nbf`/`iss`/`aud`. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        gatehouse_jwt::fuzzing::parse_token(token, 1_700_000_000);
    }
});
