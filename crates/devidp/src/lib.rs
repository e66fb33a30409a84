//! **Development IdP — not for production.** A minimal OpenID provider that `gatehouse demo`
//! starts on 127.0.0.1 so a newcomer can try Dynamic Client Registration and JWT checks without an
//! identity provider of their own.
//!
//! It serves:
//! - `GET /.well-known/openid-configuration` (discovery);
//! - `GET /jwks` (one RSA key, generated at start, kept in memory);
//! - `POST /register` (RFC 7591, `Authorization: Bearer <initial access token>`), and
//!   `GET|PUT|DELETE /register/{client_id}` (RFC 7592, with the registration access token; a PUT
//!   issues a new client secret and a new registration access token);
//! - `POST /token` (client credentials, `client_secret_basic` or `client_secret_post`): an RS256
//!   JWT with `iss`, `sub` = `client_id`, `client_id`, `aud`, `iat`, `exp`, `jti`, `scope`, and
//!   `pol` when the client was registered with a `pol` metadata value.
//!
//! Everything lives in memory and is lost when the process stops. It binds loopback only and has no
//! user login, consent, refresh tokens or key rotation: it is a demonstration aid.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};

/// Access token lifetime.
const TOKEN_TTL: u64 = 3600;

/// The `aud` of every access token.
pub const AUDIENCE: &str = "gatehouse-demo";

struct Client {
    secret: String,
    rat: String,
    metadata: Map<String, Value>,
}

struct Inner {
    issuer: String,
    initial_access_token: String,
    key: KeyPair,
    kid: String,
    rng: SystemRandom,
    clients: Mutex<HashMap<String, Client>>,
}

/// A running development IdP.
pub struct DevIdp {
    inner: Arc<Inner>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DevIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn random(rng: &SystemRandom, bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rng.fill(&mut b).expect("system randomness");
    URL_SAFE_NO_PAD.encode(b)
}

impl DevIdp {
    /// Starts on `addr` (a loopback address; anything else is refused) with the given initial
    /// access token.
    pub async fn start(addr: SocketAddr, initial_access_token: &str) -> std::io::Result<DevIdp> {
        if !addr.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the development IdP listens on loopback addresses only",
            ));
        }
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let key = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| std::io::Error::other("cannot generate an RSA key"))?;
        let rng = SystemRandom::new();
        let inner = Arc::new(Inner {
            issuer: format!("http://{addr}"),
            initial_access_token: initial_access_token.to_owned(),
            kid: format!("dev-{}", &random(&rng, 6)),
            key,
            rng,
            clients: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/register", post(register))
            .route(
                "/register/{client_id}",
                get(read_client).put(update_client).delete(delete_client),
            )
            .route("/token", post(token))
            .with_state(Arc::clone(&inner));
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "development IdP stopped");
            }
        });
        Ok(DevIdp { inner, addr, task })
    }

    /// The issuer URL (`http://127.0.0.1:PORT`).
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The JWKS URL.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.inner.issuer)
    }

    /// The token endpoint.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.inner.issuer)
    }

    /// The registration endpoint.
    pub fn registration_endpoint(&self) -> String {
        format!("{}/register", self.inner.issuer)
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut r = (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    r
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    (v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ")).then(|| v[7..].trim())
}

async fn discovery(State(s): State<Arc<Inner>>) -> impl IntoResponse {
    Json(json!({
        "issuer": s.issuer,
        "jwks_uri": format!("{}/jwks", s.issuer),
        "token_endpoint": format!("{}/token", s.issuer),
        "registration_endpoint": format!("{}/register", s.issuer),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["read", "write"],
        "x_gatehouse_note": "development IdP of `gatehouse demo`: not for production",
    }))
}

async fn jwks(State(s): State<Arc<Inner>>) -> impl IntoResponse {
    let public = s.key.public_key();
    let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
    let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
    Json(
        json!({"keys": [{"kty": "RSA", "kid": s.kid, "use": "sig", "alg": "RS256", "n": n, "e": e}]}),
    )
}

fn client_json(s: &Inner, id: &str, c: &Client) -> Value {
    let mut v = Value::Object(c.metadata.clone());
    v["client_id"] = json!(id);
    v["client_secret"] = json!(c.secret);
    v["client_secret_expires_at"] = json!(0);
    v["registration_access_token"] = json!(c.rat);
    v["registration_client_uri"] = json!(format!("{}/register/{id}", s.issuer));
    v
}

async fn register(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if bearer(&headers) != Some(s.initial_access_token.as_str()) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "a valid initial access token is required",
        );
    }
    let Ok(Value::Object(mut metadata)) = serde_json::from_slice::<Value>(&body) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "the body must be a JSON object",
        );
    };
    for k in [
        "client_id",
        "client_secret",
        "registration_access_token",
        "registration_client_uri",
    ] {
        metadata.remove(k);
    }
    let grants = metadata
        .get("grant_types")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !grants.is_empty() && grants.iter().any(|g| g != "client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "this development IdP supports only the client_credentials grant",
        );
    }
    let id = format!("dev-{}", uuid::Uuid::new_v4().simple());
    let client = Client {
        secret: random(&s.rng, 32),
        rat: random(&s.rng, 32),
        metadata,
    };
    let v = client_json(&s, &id, &client);
    s.clients.lock().insert(id, client);
    (StatusCode::CREATED, Json(v)).into_response()
}

/// The client whose registration access token the request carries, if any.
fn managed<'a>(
    clients: &'a mut HashMap<String, Client>,
    id: &str,
    headers: &HeaderMap,
) -> Option<&'a mut Client> {
    clients
        .get_mut(id)
        .filter(|c| bearer(headers) == Some(c.rat.as_str()))
}

fn unknown_client() -> Response {
    oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "unknown client or registration access token",
    )
}

async fn read_client(
    State(s): State<Arc<Inner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut clients = s.clients.lock();
    match managed(&mut clients, &id, &headers) {
        Some(c) => Json(client_json(&s, &id, c)).into_response(),
        None => unknown_client(),
    }
}

async fn update_client(
    State(s): State<Arc<Inner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut clients = s.clients.lock();
    match managed(&mut clients, &id, &headers) {
        Some(c) => {
            // Like Curity: an update issues a new secret and a new registration access token.
            c.secret = random(&s.rng, 32);
            c.rat = random(&s.rng, 32);
            Json(client_json(&s, &id, c)).into_response()
        }
        None => unknown_client(),
    }
}

async fn delete_client(
    State(s): State<Arc<Inner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut clients = s.clients.lock();
    if managed(&mut clients, &id, &headers).is_none() {
        return unknown_client();
    }
    clients.remove(&id);
    StatusCode::NO_CONTENT.into_response()
}

async fn token(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form: HashMap<String, String> = url_form(&body);
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only grant_type=client_credentials",
        );
    }
    let (id, secret) = match basic_auth(&headers) {
        Some(pair) => pair,
        None => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
        ),
    };
    let claims = {
        let clients = s.clients.lock();
        let Some(c) = clients.get(&id).filter(|c| c.secret == secret) else {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            );
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut claims = json!({
            "iss": s.issuer, "sub": id, "client_id": id, "aud": AUDIENCE,
            "iat": now, "exp": now + TOKEN_TTL, "jti": uuid::Uuid::new_v4().to_string(),
            "scope": form.get("scope").cloned()
                .or_else(|| c.metadata.get("scope").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default(),
        });
        if let Some(pol) = c.metadata.get("pol").and_then(Value::as_str) {
            claims["pol"] = json!(pol);
        }
        claims
    };
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": s.kid});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0u8; s.key.public_modulus_len()];
    if s.key
        .sign(
            &RSA_PKCS1_SHA256,
            &s.rng,
            signing_input.as_bytes(),
            &mut sig,
        )
        .is_err()
    {
        return oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "signing failed",
        );
    }
    let jwt = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig));
    Json(json!({"access_token": jwt, "token_type": "Bearer", "expires_in": TOKEN_TTL}))
        .into_response()
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((percent_decode(id), percent_decode(secret)))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
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
    String::from_utf8_lossy(&out).into_owned()
}

fn url_form(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((percent_decode(k), percent_decode(v)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn register_token_verify_rotate_delete() {
        let idp = DevIdp::start("127.0.0.1:0".parse().unwrap(), "iat-1")
            .await
            .unwrap();
        let http = reqwest::Client::new();
        let r = http
            .post(idp.registration_endpoint())
            .bearer_auth("wrong")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let c: Value = http
            .post(idp.registration_endpoint())
            .bearer_auth("iat-1")
            .json(
                &json!({"client_name": "a", "grant_types": ["client_credentials"], "pol": "gold"}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (id, secret) = (
            c["client_id"].as_str().unwrap(),
            c["client_secret"].as_str().unwrap(),
        );
        let t: Value = http
            .post(idp.token_endpoint())
            .basic_auth(id, Some(secret))
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = t["access_token"].as_str().unwrap();

        // The token verifies against the published JWKS with Gatehouse's own validator.
        let def: gatehouse_domain::api::ApiDefinition = serde_json::from_value(json!({
            "api_id": "demo", "enable_jwt": true, "jwt_signing_method": "rsa",
            "jwt_source": idp.jwks_uri()
        }))
        .unwrap();
        let cache = gatehouse_jwt::JwksCache::new(Default::default()).unwrap();
        let v = gatehouse_jwt::JwtValidator::from_api(
            &def,
            cache,
            gatehouse_jwt::VerifiedTokenCache::new(0),
        )
        .unwrap();
        let verified = v.validate(token).await.unwrap();
        assert_eq!(verified.claims["sub"], id);
        assert_eq!(verified.claims["pol"], "gold");

        // Rotation: the old secret stops working.
        let uri = c["registration_client_uri"].as_str().unwrap();
        let rat = c["registration_access_token"].as_str().unwrap();
        let c2: Value = http
            .put(uri)
            .bearer_auth(rat)
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_ne!(c2["client_secret"], c["client_secret"]);
        let r = http
            .post(idp.token_endpoint())
            .basic_auth(id, Some(secret))
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = http
            .delete(uri)
            .bearer_auth(c2["registration_access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        assert!(
            DevIdp::start("0.0.0.0:0".parse().unwrap(), "x")
                .await
                .is_err()
        );
    }
}
