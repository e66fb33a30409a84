//! [`JwtValidator`]: one per JWT API, built from its definition, called on every request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use gatehouse_domain::api::{ApiDefinition, SigningMethod};
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{JwtConfigError, JwtError};
use crate::jwks::{JwksCache, KeyState, Registration, Trigger};
use crate::keys::{Key, KeySet, alg_from_name};
use crate::source::{self, SourceSpec};
use crate::token::{self, Kid, MAX_TOKEN_BYTES, RawToken, Skews, TimeClaims};
use crate::token_cache::{CachedToken, Fingerprint, VerifiedBy, VerifiedTokenCache};

/// A token without `kid` is tried against at most this many keys of its type; with more, it is
/// refused ([`JwtError::MissingKid`]).
pub const MAX_KIDLESS_CANDIDATES: usize = 4;

const RSA_ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];
const ECDSA_ALGS: &[Algorithm] = &[Algorithm::ES256, Algorithm::ES384];
const EDDSA_ALGS: &[Algorithm] = &[Algorithm::EdDSA];
const HMAC_ALGS: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];

/// The algorithms `jwt_signing_method` allows.
pub fn allowed_algorithms(method: SigningMethod) -> &'static [Algorithm] {
    match method {
        SigningMethod::Rsa => RSA_ALGS,
        SigningMethod::Ecdsa => ECDSA_ALGS,
        SigningMethod::Eddsa => EDDSA_ALGS,
        SigningMethod::Hmac => HMAC_ALGS,
    }
}

/// A token whose signature and claims were checked.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    /// All claims, as sent.
    pub claims: Map<String, Value>,
    /// `exp` (unix seconds), if present.
    pub exp: Option<i64>,
    /// `iat` (unix seconds), if present.
    pub iat: Option<i64>,
    /// `nbf` (unix seconds), if present.
    pub nbf: Option<i64>,
    /// The algorithm that verified it.
    pub alg: Algorithm,
    /// The `kid` header, if it was a string.
    pub kid: Option<String>,
    /// The JWKS URL whose key verified it; `None` for a key configured in `jwt_source`.
    pub jwks_url: Option<Arc<str>>,
}

enum Source {
    Static(Arc<KeySet>),
    Jwks(Registration),
}

/// Checks tokens for one API (see the crate docs). Cheap to share behind an `Arc`.
pub struct JwtValidator {
    api_id: String,
    method: SigningMethod,
    allowed: &'static [Algorithm],
    sources: Vec<Source>,
    jwks_urls: Vec<String>,
    skews: Skews,
    issuers: Vec<String>,
    audiences: Vec<String>,
    fingerprint: Fingerprint,
    cache: Arc<JwksCache>,
    token_cache: Arc<VerifiedTokenCache>,
    signature_checks: AtomicU64,
}

impl std::fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtValidator")
            .field("api_id", &self.api_id)
            .field("method", &self.method)
            .field("jwks_urls", &self.jwks_urls)
            .field("static_keys", &self.static_sets().count())
            .field("skews", &self.skews)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

/// Unix time now, in seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Signature attempts made for one token, to pick the right error when none succeeds.
#[derive(Default)]
struct Attempts {
    bad_signature: Vec<String>,
    mismatched: Vec<String>,
}

impl Attempts {
    fn into_error(self, alg: Algorithm, kid: Option<&str>) -> JwtError {
        let kid = kid.map(str::to_owned);
        if self.bad_signature.is_empty() {
            JwtError::KeyTypeMismatch {
                alg,
                kid,
                key: if self.mismatched.is_empty() {
                    "no key".to_owned()
                } else {
                    self.mismatched.join("; ")
                },
            }
        } else {
            JwtError::BadSignature {
                kid,
                source: self.bad_signature.join("; "),
            }
        }
    }
}

/// One JWKS source as seen at one moment.
struct Snap {
    slot: usize,
    state: Arc<KeyState>,
}

impl JwtValidator {
    /// Builds the validator of a JWT API and registers its JWKS URLs with `cache`, which starts
    /// fetching them at once (prefetch). With JWKS URLs it needs a Tokio runtime: the current one,
    /// or the one [`JwksCache::new`] was called in. Build the new validator of a reloaded API before dropping the old one, so the
    /// URL stays registered and its keys stay warm.
    pub fn from_api(
        def: &ApiDefinition,
        cache: Arc<JwksCache>,
        token_cache: Arc<VerifiedTokenCache>,
    ) -> Result<Self, JwtConfigError> {
        if !def.enable_jwt {
            return Err(JwtConfigError::NotJwt);
        }
        let method = SigningMethod::parse(def.jwt_signing_method.trim())
            .ok_or_else(|| JwtConfigError::SigningMethod(def.jwt_signing_method.clone()))?;

        let mut specs: Vec<(SourceSpec, Option<Duration>)> = Vec::new();
        for (index, u) in def.jwt_jwks_uris.iter().enumerate() {
            if method == SigningMethod::Hmac {
                return Err(JwtConfigError::JwksUri {
                    index,
                    reason: "a JWKS carries no HMAC secrets; with hmac, put the base64 secret \
                             in jwt_source"
                        .to_owned(),
                });
            }
            let url = source::jwks_url(&u.url)
                .map_err(|reason| JwtConfigError::JwksUri { index, reason })?;
            let ttl = u.cache_timeout.filter(|s| *s > 0).map(Duration::from_secs);
            specs.push((SourceSpec::Jwks(url), ttl));
        }
        if !def.jwt_source.trim().is_empty() {
            let spec = source::classify(&def.jwt_source, method).map_err(JwtConfigError::Source)?;
            if method == SigningMethod::Hmac && matches!(spec, SourceSpec::Jwks(_)) {
                return Err(JwtConfigError::Source(
                    "jwt_signing_method is hmac but jwt_source is a JWKS URL; a JWKS carries no \
                     HMAC secrets"
                        .to_owned(),
                ));
            }
            specs.push((spec, None));
        }
        if specs.is_empty() {
            return Err(JwtConfigError::NoKeySource);
        }

        let mut sources = Vec::with_capacity(specs.len());
        let mut jwks_urls: Vec<String> = Vec::new();
        for (spec, ttl) in specs {
            match spec {
                SourceSpec::Jwks(url) => {
                    if jwks_urls.contains(&url) {
                        continue;
                    }
                    let reg = cache.register(&url, ttl)?;
                    jwks_urls.push(url);
                    sources.push(Source::Jwks(reg));
                }
                SourceSpec::Static(keys) => sources.push(Source::Static(keys)),
            }
        }

        let issuers: Vec<String> = def
            .jwt_allowed_issuers
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
        let audiences: Vec<String> = def
            .jwt_allowed_audiences
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
        let fingerprint = fingerprint(method, &sources, &issuers, &audiences);
        Ok(Self {
            api_id: def.api_id.clone(),
            method,
            allowed: allowed_algorithms(method),
            sources,
            jwks_urls,
            skews: Skews {
                expires_at: def.jwt_expires_at_validation_skew,
                issued_at: def.jwt_issued_at_validation_skew,
                not_before: def.jwt_not_before_validation_skew,
            },
            issuers,
            audiences,
            fingerprint,
            cache,
            token_cache,
            signature_checks: AtomicU64::new(0),
        })
    }

    /// The API this validator belongs to.
    pub fn api_id(&self) -> &str {
        &self.api_id
    }

    /// The API's `jwt_signing_method`.
    pub fn signing_method(&self) -> SigningMethod {
        self.method
    }

    /// The algorithms accepted (from `jwt_signing_method`).
    pub fn allowed_algorithms(&self) -> &'static [Algorithm] {
        self.allowed
    }

    /// The JWKS URLs this API uses (for `flush_urls` on a per-API flush).
    pub fn jwks_urls(&self) -> &[String] {
        &self.jwks_urls
    }

    /// The per-API skews.
    pub fn skews(&self) -> Skews {
        self.skews
    }

    /// How many signature verifications this validator has performed (cache hits perform none).
    pub fn signature_checks(&self) -> u64 {
        self.signature_checks.load(Relaxed)
    }

    /// Checks `token` (without any `Bearer ` prefix) at the system clock.
    pub async fn validate(&self, token: &str) -> Result<Arc<VerifiedToken>, JwtError> {
        self.validate_at(token, unix_now()).await
    }

    /// Checks `token` with `now` (unix seconds) as the clock for `exp`/`iat`/`nbf`. Key-cache
    /// timing (TTL, stale limit, refetch interval) always follows the real clock.
    pub async fn validate_at(&self, token: &str, now: i64) -> Result<Arc<VerifiedToken>, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            // Refused before the cache lookup, so a huge header is never hashed.
            return Err(JwtError::Malformed {
                reason: format!(
                    "token is {} bytes, more than {MAX_TOKEN_BYTES}",
                    token.len()
                ),
            });
        }
        if let Some(answer) = self.answer_from_cache(token, now) {
            return answer;
        }
        self.verify_fresh(token, now).await
    }

    fn answer_from_cache(
        &self,
        token: &str,
        now: i64,
    ) -> Option<Result<Arc<VerifiedToken>, JwtError>> {
        let Some(hit) = self.token_cache.get(&self.fingerprint, token) else {
            self.token_cache.note_miss(token, false);
            return None;
        };
        if !self.still_current(&hit) {
            self.token_cache.note_miss(token, true);
            return None;
        }
        self.token_cache.note_hit(token);
        let times = TimeClaims {
            exp: hit.token.exp,
            iat: hit.token.iat,
            nbf: hit.token.nbf,
        };
        match token::check_time(&times, now, &self.skews) {
            Ok(()) => Some(Ok(hit.token)),
            Err(e) => {
                if matches!(e, JwtError::Expired { .. }) {
                    self.token_cache.remove(&self.fingerprint, token);
                }
                Some(Err(e))
            }
        }
    }

    fn still_current(&self, hit: &CachedToken) -> bool {
        if hit.epoch != self.cache.flush_epoch() {
            return false;
        }
        match hit.verified_by {
            VerifiedBy::Static { slot } => {
                matches!(self.sources.get(slot), Some(Source::Static(_)))
            }
            VerifiedBy::Jwks { slot, generation } => match self.sources.get(slot) {
                Some(Source::Jwks(reg)) => reg.entry.is_current(generation, self.cache.config()),
                _ => false,
            },
        }
    }

    async fn verify_fresh(&self, token: &str, now: i64) -> Result<Arc<VerifiedToken>, JwtError> {
        let raw = token::parse(token)?;
        let alg = alg_from_name(&raw.alg)
            .filter(|a| self.allowed.contains(a))
            .ok_or_else(|| JwtError::UnexpectedSigningMethod {
                alg: raw.alg.clone(),
            })?;
        let epoch = self.cache.flush_epoch();
        let verified_by = self.verify_signature(&raw, alg).await?;
        let claims = token::decode_claims(raw.payload_b64)?;
        let times = TimeClaims::from_claims(&claims)?;
        token::check_time(&times, now, &self.skews)?;
        token::check_issuer(&claims, &self.issuers)?;
        token::check_audience(&claims, &self.audiences)?;
        let jwks_url = match verified_by {
            VerifiedBy::Jwks { slot, .. } => match &self.sources[slot] {
                Source::Jwks(reg) => Some(Arc::clone(&reg.entry.url)),
                Source::Static(_) => None,
            },
            VerifiedBy::Static { .. } => None,
        };
        let verified = Arc::new(VerifiedToken {
            claims,
            exp: times.exp,
            iat: times.iat,
            nbf: times.nbf,
            alg,
            kid: match raw.kid {
                Kid::String(k) => Some(k),
                Kid::Absent | Kid::NotString => None,
            },
            jwks_url,
        });
        self.token_cache.insert(
            self.fingerprint,
            token,
            CachedToken {
                token: Arc::clone(&verified),
                verified_by,
                epoch,
            },
        );
        Ok(verified)
    }

    fn static_sets(&self) -> impl Iterator<Item = (usize, &Arc<KeySet>)> {
        self.sources
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Source::Static(k) => Some((i, k)),
                Source::Jwks(_) => None,
            })
    }

    fn registrations(&self) -> impl Iterator<Item = (usize, &Registration)> {
        self.sources
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Source::Jwks(r) => Some((i, r)),
                Source::Static(_) => None,
            })
    }

    fn registration(&self, slot: usize) -> &Registration {
        match &self.sources[slot] {
            Source::Jwks(r) => r,
            Source::Static(_) => unreachable!("slot {slot} is a JWKS source"),
        }
    }

    fn snapshots(&self) -> Vec<Snap> {
        self.registrations()
            .map(|(slot, r)| Snap {
                slot,
                state: r.entry.state(),
            })
            .collect()
    }

    /// The usable key set of a snapshot, if any.
    fn usable<'a>(&self, s: &'a Snap) -> Option<&'a Arc<KeySet>> {
        self.registration(s.slot).entry.usable(
            &s.state,
            self.cache.config(),
            tokio::time::Instant::now(),
        )
    }

    fn try_key(&self, key: &Key, alg: Algorithm, raw: &RawToken<'_>, a: &mut Attempts) -> bool {
        if !key.accepts(alg) {
            a.mismatched.push(key.describe());
            return false;
        }
        self.signature_checks.fetch_add(1, Relaxed);
        let ok = jsonwebtoken::crypto::verify(
            raw.signature_b64,
            raw.signing_input.as_bytes(),
            &key.decoding,
            alg,
        )
        .unwrap_or(false);
        if !ok {
            a.bad_signature.push(key.describe());
        }
        ok
    }

    fn try_static(
        &self,
        alg: Algorithm,
        raw: &RawToken<'_>,
        a: &mut Attempts,
    ) -> Option<VerifiedBy> {
        for (slot, set) in self.static_sets() {
            for key in set.all() {
                if self.try_key(key, alg, raw, a) {
                    return Some(VerifiedBy::Static { slot });
                }
            }
        }
        None
    }

    /// Tries the keys named `kid` in the usable sets. `None` when no set has that kid.
    fn try_kid(
        &self,
        snaps: &[Snap],
        kid: &str,
        alg: Algorithm,
        raw: &RawToken<'_>,
    ) -> Option<Result<VerifiedBy, JwtError>> {
        let mut attempts = Attempts::default();
        let mut found = false;
        for s in snaps {
            let Some(set) = self.usable(s) else { continue };
            for key in set.with_kid(kid) {
                found = true;
                if self.try_key(key, alg, raw, &mut attempts) {
                    return Some(Ok(VerifiedBy::Jwks {
                        slot: s.slot,
                        generation: s.state.generation,
                    }));
                }
            }
        }
        found.then(|| Err(attempts.into_error(alg, Some(kid))))
    }

    /// Asks every JWKS source for a fetch (single flight, rate limited), concurrently.
    async fn refetch(&self, snaps: &[Snap], unknown_kid: bool) {
        let shared = self.cache.shared();
        join_all(snaps.iter().map(|s| {
            let trigger = if unknown_kid && self.usable(s).is_some() {
                Trigger::UnknownKid
            } else {
                Trigger::Load
            };
            self.registration(s.slot)
                .entry
                .on_demand(shared, s.state.seq, trigger)
        }))
        .await;
    }

    /// The 503 for sources that cannot vouch for their keys, if any.
    fn unavailable(&self, snaps: &[Snap]) -> Option<JwtError> {
        let cfg = self.cache.config();
        let now = tokio::time::Instant::now();
        let mut urls = Vec::new();
        let mut reasons = Vec::new();
        let mut retry_after_secs = 1;
        for s in snaps {
            let entry = &self.registration(s.slot).entry;
            if entry.in_doubt(&s.state, cfg, now) {
                urls.push(entry.url.to_string());
                reasons.push(entry.unavailable_reason(&s.state));
                retry_after_secs = retry_after_secs.max(entry.retry_after_secs(&s.state, cfg));
            }
        }
        (!urls.is_empty()).then(|| JwtError::KeysUnavailable {
            urls,
            reason: reasons.join("; "),
            retry_after_secs,
        })
    }

    async fn verify_signature(
        &self,
        raw: &RawToken<'_>,
        alg: Algorithm,
    ) -> Result<VerifiedBy, JwtError> {
        let has_jwks = !self.jwks_urls.is_empty();
        let mut attempts = Attempts::default();
        match (&raw.kid, has_jwks) {
            // Configured keys only: the kid, whatever it is, plays no part (Tyk).
            (_, false) => self
                .try_static(alg, raw, &mut attempts)
                .ok_or_else(|| attempts.into_error(alg, None)),
            (Kid::NotString, true) => self
                .try_static(alg, raw, &mut attempts)
                .ok_or(JwtError::KidNotString),
            (Kid::String(kid), true) => self.verify_with_kid(raw, alg, kid).await,
            (Kid::Absent, true) => self.verify_without_kid(raw, alg).await,
        }
    }

    async fn verify_with_kid(
        &self,
        raw: &RawToken<'_>,
        alg: Algorithm,
        kid: &str,
    ) -> Result<VerifiedBy, JwtError> {
        let snaps = self.snapshots();
        if let Some(r) = self.try_kid(&snaps, kid, alg, raw) {
            return r;
        }
        let mut attempts = Attempts::default();
        if let Some(v) = self.try_static(alg, raw, &mut attempts) {
            return Ok(v);
        }
        // Unknown kid: one refetch per URL (rotation at the IdP is picked up at once; garbage
        // kids are absorbed by single flight and the refetch interval).
        self.refetch(&snaps, true).await;
        let snaps = self.snapshots();
        if let Some(r) = self.try_kid(&snaps, kid, alg, raw) {
            return r;
        }
        Err(self
            .unavailable(&snaps)
            .unwrap_or_else(|| JwtError::UnknownKid {
                kid: kid.to_owned(),
                urls: self.jwks_urls.clone(),
            }))
    }

    async fn verify_without_kid(
        &self,
        raw: &RawToken<'_>,
        alg: Algorithm,
    ) -> Result<VerifiedBy, JwtError> {
        let mut attempts = Attempts::default();
        if let Some(v) = self.try_static(alg, raw, &mut attempts) {
            return Ok(v);
        }
        let mut snaps = self.snapshots();
        if snaps.iter().any(|s| self.usable(s).is_none()) {
            // Load what is missing (no refetch of usable sets: a kid-less token says nothing
            // about rotation).
            let missing: Vec<Snap> = snaps
                .into_iter()
                .filter(|s| self.usable(s).is_none())
                .collect();
            self.refetch(&missing, false).await;
            snaps = self.snapshots();
        }
        let mut candidates: Vec<(&Snap, &Arc<Key>)> = Vec::new();
        for s in &snaps {
            if let Some(set) = self.usable(s) {
                for key in set.all() {
                    if key.accepts(alg) {
                        candidates.push((s, key));
                    } else {
                        attempts.mismatched.push(key.describe());
                    }
                }
            }
        }
        if candidates.is_empty() {
            return Err(self
                .unavailable(&snaps)
                .unwrap_or_else(|| attempts.into_error(alg, None)));
        }
        if candidates.len() > MAX_KIDLESS_CANDIDATES {
            return Err(JwtError::MissingKid {
                candidates: candidates.len(),
            });
        }
        for (s, key) in candidates {
            if self.try_key(key, alg, raw, &mut attempts) {
                return Ok(VerifiedBy::Jwks {
                    slot: s.slot,
                    generation: s.state.generation,
                });
            }
        }
        Err(attempts.into_error(alg, None))
    }
}

/// SHA-256 (truncated) over everything that decides whether a token is valid apart from time:
/// the signing method, the key sources in order, the allowed issuers and audiences.
fn fingerprint(
    method: SigningMethod,
    sources: &[Source],
    issuers: &[String],
    audiences: &[String],
) -> Fingerprint {
    fn field(h: &mut Sha256, bytes: &[u8]) {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }
    let mut h = Sha256::new();
    field(&mut h, b"gatehouse-jwt/validator/v1");
    field(&mut h, format!("{method:?}").as_bytes());
    for s in sources {
        match s {
            Source::Jwks(reg) => {
                field(&mut h, b"jwks");
                field(&mut h, reg.entry.url.as_bytes());
            }
            Source::Static(keys) => {
                field(&mut h, b"static");
                field(&mut h, keys.digest());
            }
        }
    }
    let mut iss: Vec<&String> = issuers.iter().collect();
    iss.sort();
    field(&mut h, b"iss");
    for i in iss {
        field(&mut h, i.as_bytes());
    }
    let mut aud: Vec<&String> = audiences.iter().collect();
    aud.sort();
    field(&mut h, b"aud");
    for a in aud {
        field(&mut h, a.as_bytes());
    }
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists() {
        assert_eq!(allowed_algorithms(SigningMethod::Rsa).len(), 6);
        assert_eq!(
            allowed_algorithms(SigningMethod::Ecdsa),
            &[Algorithm::ES256, Algorithm::ES384]
        );
        assert_eq!(
            allowed_algorithms(SigningMethod::Eddsa),
            &[Algorithm::EdDSA]
        );
        assert_eq!(allowed_algorithms(SigningMethod::Hmac).len(), 3);
    }

    #[test]
    fn validate_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        fn check(v: &JwtValidator) {
            assert_send(&v.validate("x"));
        }
        let _ = check;
    }
}
