//! The admin key.
//!
//! The key is a random 256-bit secret, so a single SHA-256 is enough to store it safely (a slow
//! password hash is for low-entropy passwords); comparison is constant-time.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AdminState;
use crate::error::ApiError;

/// The stored form of the admin key: its SHA-256 digest.
#[derive(Clone)]
pub struct AdminKey {
    digest: [u8; 32],
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminKey(<hash>)")
    }
}

impl AdminKey {
    /// From a hex digest as stored.
    pub fn from_hex_digest(hex_digest: &str) -> Option<Self> {
        let bytes = hex::decode(hex_digest).ok()?;
        Some(Self {
            digest: bytes.try_into().ok()?,
        })
    }

    /// From the key itself.
    pub fn from_key(key: &str) -> Self {
        Self {
            digest: Sha256::digest(key.as_bytes()).into(),
        }
    }

    /// The hex digest to store.
    pub fn hex_digest(&self) -> String {
        hex::encode(self.digest)
    }

    /// Whether `candidate` is the key.
    pub fn verify(&self, candidate: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        d.ct_eq(&self.digest).into()
    }
}

/// Middleware: refuses requests without the admin key (401).
pub async fn require_admin_key(
    State(state): State<AdminState>,
    req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let v = v.trim();
            if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
                v[7..].trim()
            } else {
                v
            }
        });
    match presented {
        None | Some("") => ApiError::unauthorized(
            "missing admin key: send the header 'Authorization: Bearer <admin key>'",
        )
        .into_response(),
        Some(k) if state.key.verify(k) => next.run(req).await,
        Some(_) => ApiError::unauthorized("invalid admin key").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_and_round_trip() {
        let k = AdminKey::from_key("secret");
        assert!(k.verify("secret"));
        assert!(!k.verify("secreT"));
        let k2 = AdminKey::from_hex_digest(&k.hex_digest()).unwrap();
        assert!(k2.verify("secret"));
        assert!(AdminKey::from_hex_digest("zz").is_none());
        assert!(!format!("{k:?}").contains(&k.hex_digest()));
    }
}

/// The client's address (IP), for sign-in throttling and the audit log: from the listener's
/// `ConnectInfo` (serve with `into_make_service_with_connect_info`), `"unknown"` without it.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

impl ClientAddr {
    /// The address recorded in a request's extensions.
    pub fn of(ext: &axum::http::Extensions) -> Self {
        Self(
            ext.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_else(|| "unknown".to_owned()),
        )
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::of(&parts.extensions))
    }
}
