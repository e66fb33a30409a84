//! Gatehouse's domain: the things an operator configures and the rules that apply to them.
//!
//! Nothing in this crate does I/O, spawns tasks or knows about HTTP servers, SQL or the network.
//! Everything is plain data plus pure functions, so every rule can be unit-tested on its own.
//!
//! # Layout
//! - [`api`]: the Tyk Classic API definition ([`api::ApiDefinition`]) and its validation.
//! - [`compat`]: what Gatehouse does with every Tyk Classic field (enforced, warned, refused),
//!   the table `validate_api` is driven by and `docs/tyk-compatibility.md` repeats.
//! - [`versions`]: an API's versions compiled once ([`versions::VersionSet`]): which version
//!   serves a request, with Tyk's 403 errors ([`versions::VersionError`]), expiry, per-version
//!   headers, size limit and target.
//! - [`endpoints`]: a version's endpoint rules ([`endpoints::EndpointRules`]): black, white and
//!   ignored lists, mock replies, internal endpoints, per-endpoint size and rate limits.
//! - [`pathmatch`]: the path Tyk matches (decoded, cleaned) and Tyk's path patterns in Go's regular
//!   expression dialect.
//! - [`policy`]: the Tyk policy ([`policy::Policy`]) and its validation.
//! - [`claims`]: reading a verified JWT's claims as Tyk does: identity, OAuth client id, scopes,
//!   policy claim (literal key first, then a dotted path).
//! - [`session`]: authorization after JWT verification: policy resolution, combining policies
//!   ([`session::EffectivePolicy`]), the per-identity [`session::SessionState`] and the access
//!   checks, with Tyk's public error messages ([`session::AuthzError`]).
//! - [`path`]: request-path normalisation ([`path::normalize_path`]): the one canonical path the
//!   gateway routes, checks and forwards.
//! - [`routing`]: the listen-path routing table ([`routing::RouteTable`]): longest prefix wins.
//! - [`error`]: [`error::ValidationError`], which always names the offending field.
//! - [`import`]: reading a Tyk gateway's file-based configuration (`apps/`, `policies/`).
//! - [`ids`]: identifier generation.
//! - [`portal`]: the developer portal: DCR settings ([`portal::DcrOptions`], write-only initial
//!   access token), portal configuration, catalogue entries and [`portal::effective_dcr`],
//!   redirect-URI splitting, developers and their validation.

pub mod api;
pub mod balance;
pub mod breaker;
pub mod claims;
pub mod compat;
pub mod cors;
pub mod endpoints;
pub mod error;
pub mod ids;
pub mod import;
pub mod path;
pub mod pathmatch;
pub mod policy;
pub mod portal;
pub mod rewrite;
pub mod routing;
pub mod session;
pub mod template;
pub mod throttle;
pub mod traffic;
pub mod versions;

pub use error::ValidationError;
