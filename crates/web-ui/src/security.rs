//! Cookies, CSRF tokens, the same-origin rule and the security headers of every page.
//!
//! # CSRF
//! Every form carries a hidden `_csrf` field. Its value is `HMAC-SHA256(key, purpose | binding)`
//! where the binding is the session token of the signed-in user (dashboard or portal) or, before
//! sign-in, the value of a random `gh_pre` cookie. A POST whose token does not match is refused
//! with 403. The key is 32 random bytes kept in the settings (`web_ui_csrf_key`), so tokens stay
//! valid across restarts and between processes sharing a database.
//!
//! On top of that, cookies are `SameSite=Lax` and every state-changing request must come from the
//! same origin ([`same_origin`]): `Sec-Fetch-Site: cross-site` or `same-site` (another port of the
//! same host is another origin) and an `Origin` whose host differs from `Host` are refused.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use gatehouse_store::Store;

/// The settings key of the CSRF key (hex).
pub const CSRF_KEY_SETTING: &str = "web_ui_csrf_key";
/// The cookie that binds CSRF tokens before sign-in.
pub const PRE_COOKIE: &str = "gh_pre";

/// The key that signs CSRF tokens.
#[derive(Clone)]
pub struct CsrfKey([u8; 32]);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey([redacted])")
    }
}

impl CsrfKey {
    /// A key from raw bytes (tests).
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }

    /// The stored key, or a new one that is stored.
    pub async fn load_or_create(store: &dyn Store) -> anyhow::Result<Self> {
        if let Some(hexed) = store.get_setting(CSRF_KEY_SETTING).await?
            && let Ok(bytes) = hex::decode(hexed.trim())
            && let Ok(arr) = <[u8; 32]>::try_from(bytes.as_slice())
        {
            return Ok(Self(arr));
        }
        let mut b = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut b);
        store.put_setting(CSRF_KEY_SETTING, &hex::encode(b)).await?;
        Ok(Self(b))
    }

    /// The token for a form of `purpose` (`dash`, `portal`, `pre`) bound to `binding`.
    pub fn token(&self, purpose: &str, binding: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(purpose.as_bytes());
        mac.update(b"|");
        mac.update(binding.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `given` is the token for `purpose` and `binding` (constant time).
    pub fn verify(&self, purpose: &str, binding: &str, given: &str) -> bool {
        if binding.is_empty() || given.is_empty() {
            return false;
        }
        let want = self.token(purpose, binding);
        want.as_bytes().ct_eq(given.as_bytes()).into()
    }
}

/// 32 random bytes, base64url.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// SHA-256 in hex.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The value of cookie `name`, if sent and non-empty.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name && !v.is_empty()).then(|| v.to_owned())
        })
}

/// A `Set-Cookie` value: `HttpOnly; SameSite=Lax; Path=/`, `Secure` when `secure`.
/// `max_age` 0 deletes the cookie; `None` makes a session cookie.
pub fn set_cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> HeaderValue {
    let mut s = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(a) = max_age {
        s.push_str(&format!("; Max-Age={a}"));
    }
    if secure {
        s.push_str("; Secure");
    }
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// Whether a state-changing request comes from another origin.
pub fn is_cross_origin(h: &HeaderMap) -> bool {
    let fetch_site = h.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(fetch_site, Some("cross-site" | "same-site")) {
        return true;
    }
    match (
        h.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        h.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (Some("null"), _) => true,
        (Some(origin), Some(host)) => {
            origin.split("://").nth(1).map(|o| o.trim_end_matches('/')) != Some(host)
        }
        (Some(_), None) => true,
        _ => false,
    }
}

/// Middleware: refuses cross-origin state-changing requests (403) and adds the security headers
/// (CSP without inline script or style, no framing, no sniffing, same-origin referrers).
pub async fn same_origin(req: Request, next: Next) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD && is_cross_origin(req.headers())
    {
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Cross-site request refused: submit the form from this site.",
        )
            .into_response();
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Middleware for every answer of the dashboard and portal listeners (pages, admin API, portal
/// API): `Cache-Control: no-store` unless the answer set its own (only the static assets do), so
/// no answer that may carry a secret (a client secret, a generated key, a setup link's form, a
/// session's pages) is kept by a browser or a shared cache.
pub async fn no_store(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    if !resp.headers().contains_key(header::CACHE_CONTROL) {
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// The `Strict-Transport-Security` value: one year, this host only (`includeSubDomains` could
/// break plain-HTTP services on sibling hosts, which is the operator's call, not ours).
pub const HSTS: &str = "max-age=31536000";

/// Middleware for the dashboard and portal listeners when they serve HTTPS: adds
/// `Strict-Transport-Security` ([`HSTS`]) to every answer, so browsers use HTTPS from then on.
/// Never use it on a plain-HTTP listener (browsers ignore it there anyway, RFC 6797 §8.1).
pub async fn strict_transport_security(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_bound_to_purpose_and_binding() {
        let k = CsrfKey::from_bytes([7; 32]);
        let t = k.token("dash", "session-a");
        assert!(k.verify("dash", "session-a", &t));
        assert!(!k.verify("dash", "session-b", &t));
        assert!(!k.verify("portal", "session-a", &t));
        assert!(!k.verify("dash", "session-a", ""));
        assert!(!k.verify("dash", "", &k.token("dash", "")));
        let other = CsrfKey::from_bytes([8; 32]);
        assert!(!other.verify("dash", "session-a", &t));
    }

    #[test]
    fn cookies_are_read_and_written_with_flags() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; gh_dash=xyz; b="),
        );
        assert_eq!(cookie(&h, "gh_dash").as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "b"), None);
        let c = set_cookie("gh_dash", "v", Some(60), true);
        let s = c.to_str().unwrap();
        assert!(s.contains("HttpOnly") && s.contains("SameSite=Lax") && s.ends_with("Secure"));
        let c = set_cookie("gh_dash", "v", None, false);
        assert!(!c.to_str().unwrap().contains("Secure"));
    }

    #[test]
    fn cross_origin_requests_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:3000"));
        assert!(!is_cross_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:3000"),
        );
        assert!(!is_cross_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:3001"),
        );
        assert!(is_cross_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:3000"),
        );
        h.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(is_cross_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(!is_cross_origin(&h));
    }
}
