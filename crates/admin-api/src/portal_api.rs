//! The developer portal's JSON API, on the portal listener (:3001) under `/api/`.
//!
//! Sign-in sets an `HttpOnly`, `SameSite=Lax` session cookie (`gh_portal`). Requests that change
//! something must come from the portal itself: a cross-site `Origin` or `Sec-Fetch-Site` is refused
//! (403), and bodies must be JSON (which a cross-site HTML form cannot send).

use crate::auth::ClientAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::portal::{DeveloperSession, Portal, SESSION_SECONDS, SIGNUP_ACCEPTED, developer_view};

/// The session cookie's name.
pub const COOKIE: &str = "gh_portal";

/// Settings of the portal API.
#[derive(Clone)]
pub struct PortalApi {
    /// The portal service.
    pub portal: Arc<Portal>,
    /// Set the cookie's `Secure` flag (the portal is served over HTTPS).
    pub secure_cookies: bool,
}

/// The portal's JSON API router.
pub fn router(state: PortalApi) -> Router {
    Router::new()
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/signup", post(signup))
        .route("/api/me", get(me))
        .route("/api/catalogue", get(catalogue))
        .route("/api/clients", get(list_clients).post(create_client))
        .route(
            "/api/clients/{client_id}",
            get(get_client).delete(delete_client),
        )
        .route(
            "/api/clients/{client_id}/rotate-secret",
            post(rotate_secret),
        )
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(axum::middleware::from_fn(same_origin_writes))
        .with_state(state)
}

/// Refuses state-changing requests from other sites (CSRF): `Sec-Fetch-Site: cross-site`, or an
/// `Origin` whose host differs from `Host`.
async fn same_origin_writes(req: Request, next: Next) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let h = req.headers();
        let cross = h
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == "cross-site");
        let origin_mismatch = match (
            h.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
            h.get(header::HOST).and_then(|v| v.to_str().ok()),
        ) {
            (Some(origin), Some(host)) if origin != "null" => {
                origin.split("://").nth(1).map(|o| o.trim_end_matches('/')) != Some(host)
            }
            (Some("null"), _) => true,
            _ => false,
        };
        if cross || origin_mismatch {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "cross-site request refused: use the portal itself",
            )
            .into_response();
        }
    }
    next.run(req).await
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE && !v.is_empty()).then(|| v.to_owned())
        })
}

async fn session(s: &PortalApi, headers: &HeaderMap) -> Result<DeveloperSession, ApiError> {
    let token = cookie_token(headers).ok_or_else(|| {
        ApiError::unauthorized("sign in first (POST /api/login with your email and password)")
    })?;
    Ok(s.portal.session(&token).await?)
}

fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send JSON with 'Content-Type: application/json'",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_field("", format!("the request body is not valid JSON: {e}")))
}

fn set_cookie(s: &PortalApi, token: &str, max_age: i64) -> (header::HeaderName, String) {
    let secure = if s.secure_cookies { "; Secure" } else { "" };
    (
        header::SET_COOKIE,
        format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"),
    )
}

async fn login(
    State(s): State<PortalApi>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let v = json_body(&headers, &body)?;
    let email = v.get("email").and_then(Value::as_str).unwrap_or_default();
    let password = v
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if email.is_empty() || password.is_empty() {
        return Err(ApiError::bad_field(
            if email.is_empty() {
                "email"
            } else {
                "password"
            },
            "email and password are required",
        ));
    }
    let (token, dev) = s.portal.login(email, password, &addr).await?;
    Ok((
        [set_cookie(&s, &token, SESSION_SECONDS)],
        Json(json!({"developer": developer_view(&dev)})),
    ))
}

async fn signup(
    State(s): State<PortalApi>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let v = json_body(&headers, &body)?;
    s.portal.signup(v, &addr).await?;
    // The same answer for a new and a registered email (no session: the developer signs in).
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": "accepted", "message": SIGNUP_ACCEPTED})),
    ))
}

async fn logout(
    State(s): State<PortalApi>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(t) = cookie_token(&headers) {
        s.portal.logout(&t).await?;
    }
    Ok(([set_cookie(&s, "", 0)], Json(json!({"status": "ok"}))))
}

async fn me(State(s): State<PortalApi>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    let sess = session(&s, &headers).await?;
    Ok(Json(developer_view(&sess.developer)))
}

async fn catalogue(
    State(s): State<PortalApi>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    session(&s, &headers).await?;
    let entries = s.portal.catalogue().await?;
    let cfg = s.portal.config().await?;
    Ok(Json(
        entries
            .into_iter()
            .filter(|e| e.show)
            .map(|e| {
                let dcr = gatehouse_domain::portal::effective_dcr(&cfg, &e);
                json!({
                    "id": e.id, "name": e.name, "short_description": e.short_description,
                    "long_description": e.long_description, "api_id": e.api_id,
                    "oauth_clients": dcr.is_some(),
                    "token_endpoint": dcr.map(|d| d.token_endpoint),
                })
            })
            .collect::<Vec<_>>(),
    ))
}

async fn list_clients(
    State(s): State<PortalApi>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let sess = session(&s, &headers).await?;
    Ok(Json(s.portal.clients_of(&sess.developer.id).await?))
}

async fn create_client(
    State(s): State<PortalApi>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let sess = session(&s, &headers).await?;
    let v = json_body(&headers, &body)?;
    let client = s.portal.create_client(&sess.developer, v).await?;
    Ok((StatusCode::CREATED, Json(client)))
}

async fn get_client(
    State(s): State<PortalApi>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let sess = session(&s, &headers).await?;
    Ok(Json(
        s.portal
            .client_detail(&sess.developer.id, &client_id)
            .await?,
    ))
}

async fn rotate_secret(
    State(s): State<PortalApi>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let sess = session(&s, &headers).await?;
    Ok(Json(
        s.portal
            .rotate_secret(&sess.developer.id, &client_id)
            .await?,
    ))
}

async fn delete_client(
    State(s): State<PortalApi>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let sess = session(&s, &headers).await?;
    s.portal
        .delete_client(&sess.developer.id, &client_id)
        .await?;
    Ok(Json(
        json!({"status": "ok", "action": "deleted", "client_id": client_id}),
    ))
}
