//! The authentication and authorisation phases for JWT APIs, and the per-identity sessions.
//!
//! Per request: token intake (header, query parameter or cookie, as `auth_configs.jwt` says) →
//! [`JwtValidator::validate`] → identity and OAuth client id from the claims → policies
//! ([`session::resolve_policies`], Tyk's order) → the effective policy (cached per snapshot) →
//! the identity's [`SessionState`] (created or refreshed) → [`session::authorize`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use gatehouse_domain::api::{ApiDefinition, AuthConfig};
use gatehouse_domain::claims;
use gatehouse_domain::session::{self, AuthzError, EffectivePolicy, ResolveInput, SessionState};
use gatehouse_domain::versions::VersionGrantCheck;
use gatehouse_jwt::{JwtError, JwtValidator};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Uri};
use parking_lot::Mutex;

use crate::errors::{ErrorSource, GatewayError};
use crate::snapshot::Snapshot;

/// Where an API reads its token, prepared once per snapshot from `auth_configs.jwt` / `auth`.
#[derive(Debug, Clone)]
pub struct TokenLocation {
    header: Option<HeaderName>,
    param: Option<String>,
    cookie: Option<String>,
}

impl TokenLocation {
    /// From an API's auth config (Tyk's defaults: the `Authorization` header; a parameter or cookie
    /// named like the header when their name is empty).
    pub fn from_config(cfg: &AuthConfig) -> Self {
        let header_name = if cfg.auth_header_name.trim().is_empty() {
            "Authorization".to_owned()
        } else {
            cfg.auth_header_name.trim().to_owned()
        };
        let header = (!cfg.disable_header)
            .then(|| HeaderName::from_bytes(header_name.as_bytes()).ok())
            .flatten();
        let name_or_header = |n: &str| {
            if n.trim().is_empty() {
                header_name.clone()
            } else {
                n.trim().to_owned()
            }
        };
        Self {
            header,
            param: cfg.use_param.then(|| name_or_header(&cfg.param_name)),
            cookie: cfg.use_cookie.then(|| name_or_header(&cfg.cookie_name)),
        }
    }

    /// The raw credential, from the one configured place that holds it; a `Bearer ` prefix (any
    /// case) is removed.
    ///
    /// A credential found more than once (two headers, two parameters or two cookies of that
    /// name, or in two of the configured places) is [`DuplicateCredential`]: the gateway answers
    /// 400 rather than choose one, so the upstream never sees a credential other than the one
    /// verified. (Tyk lets a parameter or cookie override the header; Gatehouse refuses the
    /// ambiguity, see docs/tyk-compatibility.md.) Empty values count as absent.
    pub fn extract<'a>(
        &self,
        headers: &'a HeaderMap,
        uri: &'a Uri,
    ) -> Result<Option<Cow<'a, str>>, DuplicateCredential> {
        let mut found: Option<Cow<'a, str>> = None;
        let mut take = |v: Cow<'a, str>| {
            if found.is_some() {
                return Err(DuplicateCredential);
            }
            found = Some(v);
            Ok(())
        };
        if let Some(h) = &self.header {
            let mut values = headers.get_all(h).iter();
            if let Some(first) = values.next() {
                if values.next().is_some() {
                    return Err(DuplicateCredential);
                }
                // A value that is not visible ASCII is not a credential we could verify.
                let v = first.to_str().map_err(|_| DuplicateCredential)?.trim();
                if !v.is_empty() {
                    take(Cow::Borrowed(v))?;
                }
            }
        }
        if let Some(p) = &self.param {
            let mut values = query_params(uri.query().unwrap_or(""), p);
            if let Some(v) = values.next() {
                if values.next().is_some() {
                    return Err(DuplicateCredential);
                }
                if !v.is_empty() {
                    take(v)?;
                }
            }
        }
        if let Some(c) = &self.cookie {
            let mut values = cookie_values(headers, c);
            if let Some(v) = values.next() {
                if values.next().is_some() {
                    return Err(DuplicateCredential);
                }
                if !v.is_empty() {
                    take(Cow::Borrowed(v))?;
                }
            }
        }
        Ok(found.map(strip_bearer))
    }

    /// Removes the credential from the request (`strip_auth_data`).
    pub fn strip(&self, headers: &mut HeaderMap, uri: &mut Uri) {
        if let Some(h) = &self.header {
            headers.remove(h);
        }
        if let Some(p) = &self.param
            && let Some(q) = uri.query()
        {
            let kept: Vec<&str> = q
                .split('&')
                .filter(|kv| kv.split('=').next().is_none_or(|k| decode(k) != *p))
                .collect();
            let path = uri.path().to_owned();
            let pq = if kept.is_empty() {
                path
            } else {
                format!("{path}?{}", kept.join("&"))
            };
            if let Ok(pq) = pq.parse::<http::uri::PathAndQuery>() {
                let mut parts = std::mem::take(uri).into_parts();
                parts.path_and_query = Some(pq);
                if let Ok(u) = Uri::from_parts(parts) {
                    *uri = u;
                }
            }
        }
        if let Some(c) = &self.cookie {
            let remaining: Vec<String> = headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .map(str::trim)
                .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some(c.as_str()))
                .map(str::to_owned)
                .collect();
            headers.remove(header::COOKIE);
            if !remaining.is_empty()
                && let Ok(v) = HeaderValue::from_str(&remaining.join("; "))
            {
                headers.insert(header::COOKIE, v);
            }
        }
    }
}

fn strip_bearer(v: Cow<'_, str>) -> Cow<'_, str> {
    let s = v.as_ref();
    if s.len() > 7 && s.as_bytes()[..7].eq_ignore_ascii_case(b"bearer ") {
        match v {
            Cow::Borrowed(b) => Cow::Borrowed(b[7..].trim_start()),
            Cow::Owned(o) => Cow::Owned(o[7..].trim_start().to_owned()),
        }
    } else {
        v
    }
}

fn decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn query_params<'a, 'n>(
    query: &'a str,
    name: &'n str,
) -> impl Iterator<Item = Cow<'a, str>> + use<'a, 'n> {
    query.split('&').filter_map(move |kv| {
        let mut it = kv.splitn(2, '=');
        let k = it.next()?;
        (decode(k) == name).then(|| decode(it.next().unwrap_or("")))
    })
}

fn cookie_values<'a, 'n>(
    headers: &'a HeaderMap,
    name: &'n str,
) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v.trim())
        })
}

/// The credential was found more than once (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuplicateCredential;

impl DuplicateCredential {
    /// The gateway's answer: 400.
    pub fn to_error(self) -> GatewayError {
        GatewayError::new(
            StatusCode::BAD_REQUEST,
            "the request carries more than one credential (two Authorization headers, or a token \
             in more than one place); send exactly one",
            ErrorSource::Downstream,
        )
    }
}

/// What authentication established about a request.
#[derive(Debug, Clone)]
pub struct AuthContext {
    /// The identity (session key).
    pub identity: String,
    /// The OAuth client id from the token, if any.
    pub client_id: Option<String>,
    /// The developer owning the client, when it was registered through the portal.
    pub developer_id: Option<String>,
    /// The effective policy of the session.
    pub effective: Arc<EffectivePolicy>,
    /// The identity's session after this token (a copy).
    pub session: SessionState,
    /// When the token was verified (unix seconds).
    pub now: i64,
}

/// Sessions by organisation and identity, in memory, bounded.
///
/// Sessions are small and rebuilt from the next token, so losing them on restart loses nothing
/// that matters (quota counters are persisted separately). When a shard is full, the least
/// recently updated session in it is dropped.
pub struct SessionStore {
    shards: Vec<Mutex<HashMap<String, SessionState>>>,
    per_shard: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl SessionStore {
    /// A store holding at most about `capacity` sessions.
    pub fn new(capacity: usize) -> Self {
        let n = 32;
        Self {
            shards: (0..n).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: (capacity / n).max(16),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, SessionState>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % self.shards.len()]
    }

    /// Whether a session exists.
    pub fn contains(&self, key: &str) -> bool {
        self.shard(key).lock().contains_key(key)
    }

    /// Creates or refreshes the session of `key` and returns a copy.
    pub fn upsert(
        &self,
        key: &str,
        identity: &str,
        effective: &EffectivePolicy,
        token_exp: Option<i64>,
        client_id: Option<String>,
        now: i64,
    ) -> SessionState {
        let mut shard = self.shard(key).lock();
        if let Some(s) = shard.get_mut(key) {
            s.refresh(effective, token_exp, client_id, now);
            return s.clone();
        }
        if shard.len() >= self.per_shard
            && let Some(oldest) = shard
                .iter()
                .min_by_key(|(_, s)| s.updated_at)
                .map(|(k, _)| k.clone())
        {
            shard.remove(&oldest);
        }
        let s = SessionState::new(identity, effective, token_exp, client_id, now);
        shard.insert(key.to_owned(), s.clone());
        s
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Maps a token verification failure to the gateway's answer.
pub fn jwt_error(e: &JwtError) -> GatewayError {
    tracing::debug!(reason = e.reason(), detail = %e.detail(), "token refused");
    let status = StatusCode::from_u16(e.status().as_u16()).unwrap_or(StatusCode::UNAUTHORIZED);
    let mut err = GatewayError::new(
        status,
        e.public_message(),
        if status == StatusCode::SERVICE_UNAVAILABLE {
            ErrorSource::Dependency
        } else {
            ErrorSource::Downstream
        },
    );
    if status == StatusCode::UNAUTHORIZED {
        err = err.with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    if let Some(secs) = e.retry_after_secs() {
        err = err.with_header(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    err
}

/// Maps an authorisation failure to the gateway's answer.
pub fn authz_error(e: &AuthzError) -> GatewayError {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN);
    GatewayError::new(
        status,
        e.message(),
        if status.is_server_error() {
            ErrorSource::Internal
        } else {
            ErrorSource::Downstream
        },
    )
}

/// The same refusal with Tyk's status ([`crate::StatusMode::Tyk`]): no token → 400; a token
/// that is malformed, badly signed, signed with an unexpected method or unverifiable because the
/// IdP's keys cannot be fetched → 403 `Key not authorized` (Tyk does not tell an IdP outage
/// apart); time-claim, issuer and audience failures stay 401; everything else (the access
/// checks) already has Tyk's status. No `WWW-Authenticate` or `Retry-After` is sent, as in Tyk.
pub fn tyk_status(mut e: GatewayError) -> GatewayError {
    let status = match e.message.as_str() {
        MSG_MISSING => StatusCode::BAD_REQUEST,
        gatehouse_jwt::MSG_NOT_AUTHORIZED | gatehouse_jwt::MSG_UNEXPECTED_SIGNING_METHOD => {
            StatusCode::FORBIDDEN
        }
        gatehouse_jwt::MSG_IDP_UNAVAILABLE => {
            e.message = gatehouse_jwt::MSG_NOT_AUTHORIZED.to_owned();
            e.source = ErrorSource::Downstream;
            StatusCode::FORBIDDEN
        }
        _ => return e,
    };
    e.status = status;
    e.headers
        .retain(|(n, _)| n != header::WWW_AUTHENTICATE && n != header::RETRY_AFTER);
    e
}

const MSG_MISSING: &str = "Authorization field missing";

/// The answer when no token was sent.
pub fn missing_token() -> GatewayError {
    GatewayError::new(
        StatusCode::UNAUTHORIZED,
        MSG_MISSING,
        ErrorSource::Downstream,
    )
    .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
}

/// Authenticates a JWT request: verifies the token, finds the identity, the OAuth client and the
/// policies, builds the effective policy and creates or refreshes the identity's session (before
/// authorisation, as in Tyk, where the JWT middleware stores the session before the access-rights
/// middleware runs). Authorisation is [`authorize`], a phase of its own.
pub async fn authenticate(
    validator: &JwtValidator,
    def: &ApiDefinition,
    token: &str,
    snapshot: &Snapshot,
    sessions: &SessionStore,
) -> Result<AuthContext, GatewayError> {
    let verified = validator.validate(token).await.map_err(|e| jwt_error(&e))?;
    let now = gatehouse_jwt::unix_now();
    let claims = &verified.claims;
    let identity =
        claims::identity(claims, &def.jwt_identity_base_field).map_err(|e| authz_error(&e))?;
    let client_id = claims::client_id_for(claims, def.idp_client_id_mapping_disabled);
    // A portal-registered client brings its catalogue policies; a deleted one is refused.
    let portal_client = client_id.as_deref().and_then(|c| snapshot.clients.get(c));
    if portal_client.is_some_and(|c| c.deleted) {
        return Err(GatewayError::new(
            StatusCode::FORBIDDEN,
            "Key not authorized: this OAuth client has been deleted",
            ErrorSource::Downstream,
        ));
    }
    let client_policies = portal_client.map(|c| c.policies.as_slice());
    let session_key = format!("{}:{identity}", def.org_id);
    let exists = |id: &str| snapshot.policies.contains_key(id);
    // A policy of another organisation than the API's is never applied (Tyk's rule).
    let in_org = |id: &str| {
        snapshot
            .policies
            .get(id)
            .is_some_and(|p| p.applies_to_org(&def.org_id))
    };
    let ids = session::resolve_policies_for_org(
        ResolveInput {
            claims,
            api: def,
            policy_exists: &exists,
            session_exists: sessions.contains(&session_key),
            client_policies,
        },
        &in_org,
    )
    .map_err(|e| authz_error(&e))?;
    let effective = snapshot
        .effective_policy(&ids)
        .map_err(|e| authz_error(&e))?;
    let session = sessions.upsert(
        &session_key,
        &identity,
        &effective,
        verified.exp,
        client_id.clone(),
        now,
    );
    Ok(AuthContext {
        identity,
        client_id,
        developer_id: portal_client.map(|c| c.developer_id.clone()),
        effective,
        session,
        now,
    })
}

/// Authorises an authenticated request ([`session::authorize`]: inactive, expired, the API and
/// version in the access rights, `allowed_urls`). `version` is what the policies must grant on a
/// versioned API ([`gatehouse_domain::versions::VersionSet::access_rights_version`]); `rel_path`
/// is the normalised request path relative to the listen path.
pub fn authorize(
    auth: &AuthContext,
    api_id: &str,
    version: Option<&VersionGrantCheck<'_>>,
    rel_path: &str,
    method: &str,
) -> Result<(), GatewayError> {
    session::authorize(
        &auth.effective,
        &auth.session,
        auth.now,
        api_id,
        version,
        rel_path,
        method,
    )
    .map_err(|e| authz_error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(cfg: AuthConfig) -> TokenLocation {
        TokenLocation::from_config(&cfg)
    }

    #[test]
    fn bearer_prefix_is_optional_and_case_insensitive() {
        let l = loc(AuthConfig::default());
        let uri: Uri = "/x".parse().unwrap();
        for (v, want) in [
            ("Bearer abc", "abc"),
            ("bearer abc", "abc"),
            ("BEARER abc", "abc"),
            ("abc", "abc"),
            ("Bearer: abc", "Bearer: abc"),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            assert_eq!(l.extract(&h, &uri).unwrap().as_deref(), Some(want), "{v}");
        }
        assert!(l.extract(&HeaderMap::new(), &uri).unwrap().is_none());
    }

    #[test]
    fn each_configured_place_is_read_and_can_be_stripped() {
        let l = loc(AuthConfig {
            auth_header_name: "X-Token".into(),
            use_param: true,
            param_name: "access_token".into(),
            use_cookie: true,
            cookie_name: "tok".into(),
            ..Default::default()
        });
        let mut h = HeaderMap::new();
        let mut uri: Uri = "/p?a=1&access_token=from%2Dparam&b=2".parse().unwrap();
        assert_eq!(l.extract(&h, &uri).unwrap().as_deref(), Some("from-param"));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("x=1; tok=from-cookie"),
        );
        h.insert("x-token", HeaderValue::from_static("from-header"));
        l.strip(&mut h, &mut uri);
        assert!(h.get("x-token").is_none());
        assert_eq!(h[header::COOKIE], "x=1");
        assert_eq!(uri.to_string(), "/p?a=1&b=2");
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("tok=c"));
        assert_eq!(l.extract(&h, &uri).unwrap().as_deref(), Some("c"));
    }

    #[test]
    fn a_credential_found_twice_is_refused() {
        let l = loc(AuthConfig {
            use_param: true,
            param_name: "t".into(),
            use_cookie: true,
            cookie_name: "t".into(),
            ..Default::default()
        });
        let plain: Uri = "/p".parse().unwrap();
        let mut two_headers = HeaderMap::new();
        two_headers.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        two_headers.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert_eq!(l.extract(&two_headers, &plain), Err(DuplicateCredential));
        let mut one = HeaderMap::new();
        one.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        let with_param: Uri = "/p?t=b".parse().unwrap();
        assert_eq!(l.extract(&one, &with_param), Err(DuplicateCredential));
        let two_params: Uri = "/p?t=a&x=1&t=b".parse().unwrap();
        assert_eq!(
            l.extract(&HeaderMap::new(), &two_params),
            Err(DuplicateCredential)
        );
        let mut two_cookies = HeaderMap::new();
        two_cookies.append(header::COOKIE, HeaderValue::from_static("t=a"));
        two_cookies.append(header::COOKIE, HeaderValue::from_static("y=2; t=b"));
        assert_eq!(l.extract(&two_cookies, &plain), Err(DuplicateCredential));
        let mut cookie_and_header = one.clone();
        cookie_and_header.insert(header::COOKIE, HeaderValue::from_static("t=c"));
        assert_eq!(
            l.extract(&cookie_and_header, &plain),
            Err(DuplicateCredential)
        );
        // Empty values are absent, not duplicates.
        let empty_param: Uri = "/p?t=".parse().unwrap();
        assert_eq!(l.extract(&one, &empty_param).unwrap().as_deref(), Some("a"));
        // Places that are not configured do not count.
        let header_only = loc(AuthConfig::default());
        assert_eq!(
            header_only.extract(&one, &with_param).unwrap().as_deref(),
            Some("a")
        );
    }

    #[test]
    fn disabled_header_is_not_read() {
        let l = loc(AuthConfig {
            disable_header: true,
            ..Default::default()
        });
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("abc"));
        assert!(l.extract(&h, &"/".parse().unwrap()).unwrap().is_none());
    }
}
