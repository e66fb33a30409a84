//! JWT verification for Gatehouse: key sources, the shared JWKS cache, claim checks and the
//! verified-token cache. Identity and policy resolution from the claims happen elsewhere (the
//! domain crate); this crate answers "is this token valid for this API, and what does it say".
//!
//! # Use
//!
//! ```no_run
//! # async fn demo(def: &gatehouse_domain::api::ApiDefinition) -> Result<(), Box<dyn std::error::Error>> {
//! use gatehouse_jwt::{JwksCache, JwksCacheConfig, JwtValidator, VerifiedTokenCache};
//! // Once per process:
//! let jwks = JwksCache::new(JwksCacheConfig::default())?;
//! let tokens = VerifiedTokenCache::with_default_capacity();
//! // Per JWT API, when it is loaded (registers and prefetches its JWKS URLs):
//! let validator = JwtValidator::from_api(def, jwks.clone(), tokens.clone())?;
//! // Per request (the token without its `Bearer ` prefix):
//! match validator.validate("eyJ...").await {
//!     Ok(token) => { let _claims = &token.claims; }
//!     Err(e) => {
//!         // e.status(), e.public_message() → the response; e.retry_after_secs() → Retry-After;
//!         // e.detail() → the log line.
//!         tracing::info!(reason = e.reason(), detail = %e.detail(), "JWT refused");
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Public API: [`JwksCache`] (+ [`JwksCacheConfig`], [`JwksStats`], [`JwksUrlStats`],
//! [`TtlSource`]), [`VerifiedTokenCache`] (+ [`TokenCacheStats`]), [`JwtValidator`] (+
//! [`VerifiedToken`], [`Skews`]), [`JwtError`], [`JwtConfigError`].
//!
//! # Signatures
//!
//! `jwt_signing_method` is an allow-list: `rsa` → RS256/384/512 and PS256/384/512, `ecdsa` →
//! ES256/384, `eddsa` → EdDSA (Ed25519; the RFC 9864 name `Ed25519` is read as EdDSA), `hmac` →
//! HS256/384/512. Any other `alg` — `none` in any spelling, ES512, a lower-case name — is
//! [`JwtError::UnexpectedSigningMethod`]. The key must fit the algorithm: RSA keys for RS/PS,
//! P-256 for ES256, P-384 for ES384, Ed25519 for EdDSA, HMAC secrets for HS; and a JWK that names
//! its own `alg` verifies only that algorithm ([`JwtError::KeyTypeMismatch`] otherwise).
//! HMAC secrets only ever come from `jwt_source` of an `hmac` API: JWKS `oct` keys are ignored,
//! and an `hmac` API whose source is a public key or certificate is refused at configuration
//! time, so a public key is never used as an HMAC secret. Token headers `jku`, `x5u`, `jwk` and
//! `x5c` are ignored (never fetched, never trusted); a `crit` header is refused.
//!
//! # Key sources
//!
//! `jwt_jwks_uris` (in order) then `jwt_source`; an API may use several (one per IdP).
//! `jwt_source` is, per Tyk: an `http(s)://` URL (a JWKS); otherwise base64 (standard or
//! URL-safe, padded or not, line-wrapped) of either a JWKS URL, or — for `rsa`/`ecdsa`/`eddsa` —
//! a PEM (or DER) public key (`PUBLIC KEY`, `RSA PUBLIC KEY`) or X.509 `CERTIFICATE` of the
//! method's family, or — for `hmac` — the secret bytes. Raw PEM text is accepted too. Anything
//! else is a [`JwtConfigError`] when the validator is built (Tyk would fail every request).
//! `jwt_jwks_uris` with `hmac` is refused.
//!
//! **`kid`.** JWKS lookups use a string `kid` (a non-string `kid` is
//! [`JwtError::KidNotString`]). The key sets of all URLs are searched; if no set has the kid,
//! each URL is refetched once (see below) and searched again. A token **without** `kid` is tried
//! against every key of a fitting type in the usable sets, at most
//! [`MAX_KIDLESS_CANDIDATES`] of them; with more, it is refused ([`JwtError::MissingKid`]). It
//! never causes a refetch. Keys configured in `jwt_source` have no kid and are tried for any
//! token (after the JWKS lookup by kid).
//!
//! # The JWKS cache
//!
//! One [`JwksCache`] per process, keyed by URL and shared by every API naming the URL. A URL is
//! fetched when the first API registers it (prefetch) by a background task that then refreshes
//! it at 90 % of its TTL, and retries failures with exponential backoff
//! (`min_refetch_interval`, doubling, capped by `max_retry_backoff`). When the last validator
//! using a URL is dropped, the URL leaves the cache and its task stops.
//!
//! **TTL precedence**: the API's `cache_timeout` for that URL (the shortest, when several APIs
//! set one; 0 means unset) > the IdP's `Cache-Control: max-age`, bounded to `min_ttl..=max_ttl`
//! (`no-store`, `no-cache` and `max-age=0` are ignored: keys must stay in memory) > `default_ttl`
//! (240 s).
//!
//! **Unknown kid**: one refetch, single-flight (a thousand concurrent tokens with unknown kids
//! cause one fetch; waiters use its result) and at most one on-demand fetch per URL per
//! `min_refetch_interval` (10 s) while the IdP answers, so rotation at the IdP is picked up at
//! once and garbage kids cannot hammer the IdP. After a fetch that failed because the IdP could
//! not be reached (network error, timeout, 5xx, 408, 429), the next on-demand fetch is allowed
//! `outage_retry_delay` (0.5 s) after it, doubling per consecutive failure up to
//! `min_refetch_interval`: a token with a kid published during a short outage is accepted within
//! about a second of the IdP coming back, and a flood of unknown kids still causes at most one
//! attempt per delay. Scheduled refreshes do not count against that interval.
//!
//! **Stale keys**: if refreshing fails, the last good keys stay in use until `stale_limit` (24 h)
//! past their TTL (stale-if-error). A token that cannot be checked because keys are unavailable
//! — never fetched successfully, past the stale limit, or its kid is unknown and the latest fetch
//! failed with a network error, a timeout, 5xx, 408 or 429 — gets [`JwtError::KeysUnavailable`]:
//! 503 with `Retry-After` (seconds until the next on-demand fetch is allowed, at least 1). A kid still unknown
//! after a successful fetch (or after a 4xx / unparsable response while older keys are usable) is
//! 401.
//!
//! **Flush**: [`JwksCache::flush_all`] / [`JwksCache::flush_urls`] forget the keys at once (not
//! only the TTL), void the tokens they verified, and fetch again immediately; requests meanwhile
//! wait for that fetch. Fetches: `fetch_timeout` (5 s) for the whole request, `max_body_bytes`
//! (1 MiB), at most 3 redirects. Keys are parsed once into `DecodingKey`s; unusable JWKs
//! (encryption keys, unsupported curves, RSA under 2048 bits, points off the curve) are skipped.
//! [`JwksCache::stats`] gives counters per URL and in total.
//!
//! # Claims
//!
//! `exp`, `iat`, `nbf` follow Tyk's `timeValidateJWTClaims` with the per-API skews: valid when
//! `now - exp_skew < exp`, `now + iat_skew >= iat`, `now + nbf_skew >= nbf`. Missing claims pass;
//! present ones must be JSON numbers (fractions truncated; a string is malformed; `0` is a real
//! 1970 timestamp, not "absent"). When several fail, the message is Tyk's: `nbf` over `iat` over
//! `exp`. Then `jwt_allowed_issuers` (exact match of a string `iss`) and `jwt_allowed_audiences`
//! (`aud` a string or an array; any match passes), when non-empty.
//!
//! # The verified-token cache
//!
//! [`VerifiedTokenCache`] is shared too, keyed by (validator fingerprint, whole token). The
//! fingerprint is a hash of the signing method, the key sources and the allowed issuers and
//! audiences, so an API never accepts a token on the strength of another API's different checks
//! (two APIs with the same settings share entries, which is sound). Entries are bounded, sharded
//! (read locks on the hot path), re-checked for `exp`/`iat`/`nbf` on every hit with the current
//! skews, and void once the key set that verified them changes, passes its stale limit, or is
//! flushed. A hit skips parsing and the signature check.
//!
//! # Errors
//!
//! | condition | status | public message |
//! |---|---|---|
//! | malformed, bad signature, unknown kid after refetch, non-string kid, key type mismatch, kid-less with too many keys | 401 | `Key not authorized` |
//! | `alg` not allowed for the API (incl. `none`) | 401 | `Key not authorized: Unexpected signing method` |
//! | `exp` / `iat` / `nbf` | 401 | `Key not authorized: token has expired` / `…: token used before issued` / `…: token is not valid yet` |
//! | `iss` / `aud` | 401 | `Key not authorized: invalid issuer` / `…: invalid audience` |
//! | keys unavailable (IdP unreachable) | 503 + `Retry-After` | `identity provider unavailable` |

mod der;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod jwks;
mod keys;
mod source;
mod token;
mod token_cache;
mod validator;

pub use error::{
    JwtConfigError, JwtError, MSG_EXPIRED, MSG_IDP_UNAVAILABLE, MSG_INVALID_AUDIENCE,
    MSG_INVALID_ISSUER, MSG_NOT_AUTHORIZED, MSG_NOT_VALID_YET, MSG_UNEXPECTED_SIGNING_METHOD,
    MSG_USED_BEFORE_ISSUED,
};
pub use jsonwebtoken::Algorithm;
pub use jwks::{JwksCache, JwksCacheConfig, JwksStats, JwksUrlStats, TtlSource};
pub use token::{MAX_TOKEN_BYTES, Skews};
pub use token_cache::{DEFAULT_TOKEN_CACHE_CAPACITY, TokenCacheStats, VerifiedTokenCache};
pub use validator::{
    JwtValidator, MAX_KIDLESS_CANDIDATES, VerifiedToken, allowed_algorithms, unix_now,
};
