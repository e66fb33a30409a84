//! The two error types: [`JwtError`] (a request's token was refused) and [`JwtConfigError`] (an API
//! definition cannot be turned into a validator).

use std::fmt;

use http::StatusCode;
use jsonwebtoken::Algorithm;

/// Public message of every refusal that is not more specific.
pub const MSG_NOT_AUTHORIZED: &str = "Key not authorized";
/// Public message when the token's `alg` is not allowed for the API (this includes `none`).
pub const MSG_UNEXPECTED_SIGNING_METHOD: &str = "Key not authorized: Unexpected signing method";
/// Public message for `exp` in the past (after the skew).
pub const MSG_EXPIRED: &str = "Key not authorized: token has expired";
/// Public message for `iat` in the future (after the skew).
pub const MSG_USED_BEFORE_ISSUED: &str = "Key not authorized: token used before issued";
/// Public message for `nbf` in the future (after the skew).
pub const MSG_NOT_VALID_YET: &str = "Key not authorized: token is not valid yet";
/// Public message when `iss` is not one of `jwt_allowed_issuers`.
pub const MSG_INVALID_ISSUER: &str = "Key not authorized: invalid issuer";
/// Public message when no `aud` value is one of `jwt_allowed_audiences`.
pub const MSG_INVALID_AUDIENCE: &str = "Key not authorized: invalid audience";
/// Public message when the keys cannot be obtained from the identity provider (503).
pub const MSG_IDP_UNAVAILABLE: &str = "identity provider unavailable";

/// Why a token was refused.
///
/// [`status`](Self::status) and [`public_message`](Self::public_message) are what the client sees
/// (`Display` prints the public message too, so formatting the error into a response is safe).
/// [`detail`](Self::detail) says which kid, which URL and why: it is for logs only.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtError {
    /// Not a compact JWS (three base64url parts), bad JSON, a non-numeric `exp`/`iat`/`nbf`, a
    /// `crit` header, or longer than the token size limit.
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// The token's `alg` is not in the API's allow-list (`none` in any spelling never is).
    UnexpectedSigningMethod {
        /// The `alg` header as sent.
        alg: String,
    },
    /// A key of the right type was found but the signature does not verify with it.
    BadSignature {
        /// The token's `kid`, if any.
        kid: Option<String>,
        /// Which key source(s) were tried.
        source: String,
    },
    /// No key set holds the token's `kid`, even after one refetch.
    UnknownKid {
        /// The token's `kid`.
        kid: String,
        /// The JWKS URLs that were searched.
        urls: Vec<String>,
    },
    /// The `kid` header is present but not a string (JWKS lookups need a string `kid`).
    KidNotString,
    /// The key selected by `kid` cannot verify this `alg` (e.g. an ES256 token and an RSA key, or a
    /// JWK whose own `alg` differs from the token's).
    KeyTypeMismatch {
        /// The token's algorithm.
        alg: Algorithm,
        /// The token's `kid`, if any.
        kid: Option<String>,
        /// The key(s) that did not fit.
        key: String,
    },
    /// A token without `kid` against key sets holding too many keys of its type to try them all.
    MissingKid {
        /// How many keys would have had to be tried.
        candidates: usize,
    },
    /// `exp` is in the past, beyond `jwt_expires_at_validation_skew`.
    Expired {
        /// The claim.
        exp: i64,
        /// The clock used (unix seconds).
        now: i64,
        /// The skew applied.
        skew: u64,
    },
    /// `iat` is in the future, beyond `jwt_issued_at_validation_skew`.
    UsedBeforeIssued {
        /// The claim.
        iat: i64,
        /// The clock used (unix seconds).
        now: i64,
        /// The skew applied.
        skew: u64,
    },
    /// `nbf` is in the future, beyond `jwt_not_before_validation_skew`.
    NotValidYet {
        /// The claim.
        nbf: i64,
        /// The clock used (unix seconds).
        now: i64,
        /// The skew applied.
        skew: u64,
    },
    /// `iss` is missing, not a string, or not one of `jwt_allowed_issuers`.
    InvalidIssuer {
        /// The claim as JSON text, if present.
        iss: Option<String>,
    },
    /// `aud` is missing or none of its values is one of `jwt_allowed_audiences`.
    InvalidAudience {
        /// The claim as JSON text, if present.
        aud: Option<String>,
    },
    /// The token cannot be checked because the keys are unavailable: never fetched successfully,
    /// past the stale limit, or the kid is unknown and the refetch failed with a network error, a
    /// timeout or a 5xx/429. Maps to 503 with `Retry-After`.
    KeysUnavailable {
        /// The JWKS URLs concerned.
        urls: Vec<String>,
        /// What failed.
        reason: String,
        /// Seconds until a new fetch may be attempted (at least 1).
        retry_after_secs: u64,
    },
}

impl JwtError {
    /// The HTTP status to answer with: 401 for every refusal, 503 when the keys are unavailable.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::KeysUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The message for the client (Tyk's wording). Never contains request-specific detail.
    pub fn public_message(&self) -> &'static str {
        match self {
            Self::Malformed { .. }
            | Self::BadSignature { .. }
            | Self::UnknownKid { .. }
            | Self::KidNotString
            | Self::KeyTypeMismatch { .. }
            | Self::MissingKid { .. } => MSG_NOT_AUTHORIZED,
            Self::UnexpectedSigningMethod { .. } => MSG_UNEXPECTED_SIGNING_METHOD,
            Self::Expired { .. } => MSG_EXPIRED,
            Self::UsedBeforeIssued { .. } => MSG_USED_BEFORE_ISSUED,
            Self::NotValidYet { .. } => MSG_NOT_VALID_YET,
            Self::InvalidIssuer { .. } => MSG_INVALID_ISSUER,
            Self::InvalidAudience { .. } => MSG_INVALID_AUDIENCE,
            Self::KeysUnavailable { .. } => MSG_IDP_UNAVAILABLE,
        }
    }

    /// For a 503: the `Retry-After` value in seconds.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::KeysUnavailable {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// A short stable label for metrics and log fields (`malformed`, `bad_signature`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "malformed",
            Self::UnexpectedSigningMethod { .. } => "unexpected_signing_method",
            Self::BadSignature { .. } => "bad_signature",
            Self::UnknownKid { .. } => "unknown_kid",
            Self::KidNotString => "kid_not_string",
            Self::KeyTypeMismatch { .. } => "key_type_mismatch",
            Self::MissingKid { .. } => "missing_kid",
            Self::Expired { .. } => "expired",
            Self::UsedBeforeIssued { .. } => "used_before_issued",
            Self::NotValidYet { .. } => "not_valid_yet",
            Self::InvalidIssuer { .. } => "invalid_issuer",
            Self::InvalidAudience { .. } => "invalid_audience",
            Self::KeysUnavailable { .. } => "keys_unavailable",
        }
    }

    /// Internal detail for logs: which kid, which URL, why. Never send it to the client.
    pub fn detail(&self) -> String {
        match self {
            Self::Malformed { reason } => format!("malformed token: {reason}"),
            Self::UnexpectedSigningMethod { alg } => {
                format!("alg {alg:?} is not allowed for this API")
            }
            Self::BadSignature { kid, source } => {
                let kid = kid.as_deref().map(short);
                format!("signature does not verify (kid {kid:?}, tried {source})")
            }
            Self::UnknownKid { kid, urls } => format!(
                "kid {:?} not found in the key sets of {} even after a refetch",
                short(kid),
                urls.join(", ")
            ),
            Self::KidNotString => "the kid header is not a string".to_owned(),
            Self::KeyTypeMismatch { alg, kid, key } => {
                let kid = kid.as_deref().map(short);
                format!("no key fits alg {alg:?} (kid {kid:?}): {key}")
            }
            Self::MissingKid { candidates } => format!(
                "token has no kid and {candidates} keys of its type exist; a kid is required"
            ),
            Self::Expired { exp, now, skew } => {
                format!("exp {exp} is not after now {now} minus skew {skew}s")
            }
            Self::UsedBeforeIssued { iat, now, skew } => {
                format!("iat {iat} is after now {now} plus skew {skew}s")
            }
            Self::NotValidYet { nbf, now, skew } => {
                format!("nbf {nbf} is after now {now} plus skew {skew}s")
            }
            Self::InvalidIssuer { iss } => format!("iss {iss:?} is not an allowed issuer"),
            Self::InvalidAudience { aud } => {
                format!("aud {aud:?} contains no allowed audience")
            }
            Self::KeysUnavailable {
                urls,
                reason,
                retry_after_secs,
            } => format!(
                "keys unavailable from {}: {reason} (retry after {retry_after_secs}s)",
                urls.join(", ")
            ),
        }
    }
}

/// A kid for a log line: the token's kid is attacker-chosen and may be up to the token size limit,
/// so only its first characters are logged.
fn short(kid: &str) -> String {
    const MAX_CHARS: usize = 64;
    match kid.char_indices().nth(MAX_CHARS) {
        None => kid.to_owned(),
        Some((cut, _)) => format!("{}… ({} bytes)", &kid[..cut], kid.len()),
    }
}

impl fmt::Display for JwtError {
    /// Prints the public message only; use [`JwtError::detail`] for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.public_message())
    }
}

impl std::error::Error for JwtError {}

/// An API definition (or cache configuration) that cannot be used for JWT validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtConfigError {
    /// The API does not have `enable_jwt`.
    #[error("enable_jwt is not set on this API")]
    NotJwt,
    /// `jwt_signing_method` is not one of rsa, ecdsa, eddsa, hmac.
    #[error("jwt_signing_method '{0}' must be one of rsa, ecdsa, eddsa, hmac")]
    SigningMethod(String),
    /// Neither `jwt_source` nor `jwt_jwks_uris` gives a key.
    #[error(
        "no key source: set jwt_source (a JWKS URL, a base64 JWKS URL, or a base64 PEM key / \
         HMAC secret) or jwt_jwks_uris"
    )]
    NoKeySource,
    /// `jwt_source` cannot be used.
    #[error("jwt_source: {0}")]
    Source(String),
    /// An entry of `jwt_jwks_uris` cannot be used.
    #[error("jwt_jwks_uris.{index}.url: {reason}")]
    JwksUri {
        /// Position in the list.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A validator needs a Tokio runtime to prefetch and refresh its key sets.
    #[error("a Tokio runtime is required to register JWKS URLs (call from within the runtime)")]
    NoRuntime,
    /// The HTTP client for JWKS fetches could not be built.
    #[error("cannot build the JWKS HTTP client: {0}")]
    HttpClient(String),
}

impl JwtConfigError {
    /// The API-definition field at fault (empty when it is not a field).
    pub fn field(&self) -> String {
        match self {
            Self::NotJwt => "enable_jwt".to_owned(),
            Self::SigningMethod(_) => "jwt_signing_method".to_owned(),
            Self::NoKeySource | Self::Source(_) => "jwt_source".to_owned(),
            Self::JwksUri { index, .. } => format!("jwt_jwks_uris.{index}.url"),
            Self::NoRuntime | Self::HttpClient(_) => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<JwtError> {
        vec![
            JwtError::Malformed {
                reason: "secret-detail".into(),
            },
            JwtError::UnexpectedSigningMethod { alg: "none".into() },
            JwtError::BadSignature {
                kid: Some("secret-kid".into()),
                source: "https://idp/secret".into(),
            },
            JwtError::UnknownKid {
                kid: "secret-kid".into(),
                urls: vec!["https://idp/secret".into()],
            },
            JwtError::KidNotString,
            JwtError::KeyTypeMismatch {
                alg: Algorithm::ES256,
                kid: Some("secret-kid".into()),
                key: "RSA".into(),
            },
            JwtError::MissingKid { candidates: 9 },
            JwtError::Expired {
                exp: 1,
                now: 2,
                skew: 0,
            },
            JwtError::UsedBeforeIssued {
                iat: 3,
                now: 2,
                skew: 0,
            },
            JwtError::NotValidYet {
                nbf: 3,
                now: 2,
                skew: 0,
            },
            JwtError::InvalidIssuer {
                iss: Some("\"secret-iss\"".into()),
            },
            JwtError::InvalidAudience { aud: None },
            JwtError::KeysUnavailable {
                urls: vec!["https://idp/secret".into()],
                reason: "connection refused".into(),
                retry_after_secs: 7,
            },
        ]
    }

    #[test]
    fn status_and_message_table() {
        let table: Vec<(u16, &str)> = all()
            .iter()
            .map(|e| (e.status().as_u16(), e.public_message()))
            .collect();
        assert_eq!(
            table,
            vec![
                (401, "Key not authorized"),
                (401, "Key not authorized: Unexpected signing method"),
                (401, "Key not authorized"),
                (401, "Key not authorized"),
                (401, "Key not authorized"),
                (401, "Key not authorized"),
                (401, "Key not authorized"),
                (401, "Key not authorized: token has expired"),
                (401, "Key not authorized: token used before issued"),
                (401, "Key not authorized: token is not valid yet"),
                (401, "Key not authorized: invalid issuer"),
                (401, "Key not authorized: invalid audience"),
                (503, "identity provider unavailable"),
            ]
        );
    }

    #[test]
    fn detail_never_reaches_the_public_message() {
        for e in all() {
            let public = e.to_string();
            assert_eq!(public, e.public_message());
            assert!(!public.contains("secret"), "{public}");
            assert!(!e.detail().is_empty());
        }
        let e = &all()[3];
        assert!(e.detail().contains("secret-kid"), "{}", e.detail());
    }

    #[test]
    fn huge_kids_are_shortened_in_the_detail() {
        let kid = "é".repeat(20_000);
        let e = JwtError::UnknownKid {
            kid: kid.clone(),
            urls: vec!["https://idp/jwks".into()],
        };
        let d = e.detail();
        assert!(d.len() < 300, "{d}");
        assert!(
            d.contains(&"é".repeat(64)) && d.contains("(40000 bytes)"),
            "{d}"
        );
        let e = JwtError::BadSignature {
            kid: Some(kid),
            source: "x".into(),
        };
        assert!(e.detail().len() < 300);
        let e = JwtError::UnknownKid {
            kid: "k1".into(),
            urls: vec![],
        };
        assert!(e.detail().contains("\"k1\""), "{}", e.detail());
    }

    #[test]
    fn retry_after_only_for_503() {
        for e in all() {
            assert_eq!(
                e.retry_after_secs().is_some(),
                e.status() == StatusCode::SERVICE_UNAVAILABLE
            );
        }
        assert_eq!(all().last().unwrap().retry_after_secs(), Some(7));
    }

    #[test]
    fn config_errors_name_their_field() {
        assert_eq!(
            JwtConfigError::JwksUri {
                index: 2,
                reason: "x".into()
            }
            .field(),
            "jwt_jwks_uris.2.url"
        );
        assert_eq!(
            JwtConfigError::Source("bad".into()).to_string(),
            "jwt_source: bad"
        );
    }
}
