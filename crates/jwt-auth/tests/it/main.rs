//! Integration tests of `gatehouse-jwt`, in one binary (linked once), one module per concern.
//! Keys are generated at run time; JWKS documents are served by a small fault-injecting server
//! on 127.0.0.1 (`support::Idp`).

mod confusion;
mod errors;
mod hostile_tokens;
mod jose_vectors;
mod jwks_cache;
mod signatures;
mod sources;
mod support;
mod token_cache;
mod tyk;
