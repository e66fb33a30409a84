//! Test-only helpers shared by the integration tests of every crate.
//!
//! - [`idp`]: starts the real test IdP (the npm package `oidc-provider`, in `testing/idp/`) on
//!   127.0.0.1 in one of three shapes (plain RFC 7591/7592, Okta-shaped, Keycloak-shaped).
//! - [`nginx`]: a real nginx upstream that normalises paths before it picks a location.
//! - [`upstream`]: a small HTTP upstream on 127.0.0.1 that echoes requests back as JSON, and can
//!   stream large bodies in and out.

pub mod idp;
pub mod nginx;
pub mod upstream;
