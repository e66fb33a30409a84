//! Gatehouse's web pages: the admin **dashboard** (dashboard listener, :3000) and the
//! **developer portal** (portal listener, :3001), server-rendered with minijinja.
//!
//! Every page works without JavaScript (a small script adds tabs and copy buttons); the CSS and
//! script are embedded in the binary and served from `/static/`; nothing loads from a CDN.
//!
//! # Wiring
//! ```ignore
//! let ui = UiSettings { secure_cookies: false, gateway_url: "http://127.0.0.1:8080".into(), ..Default::default() };
//! let dash = DashboardUi::new(control, Arc::clone(&portal), ui.clone()).await?;
//! let dashboard = gatehouse_web_ui::dashboard_app(dash, gatehouse_admin_api::router(admin_state));
//! let portal_ui = PortalUi::new(Arc::clone(&portal), ui).await?;
//! let portal = gatehouse_web_ui::portal_app(portal_ui, portal_api::router(portal_api_state));
//! ```
//! [`dashboard_app`] / [`portal_app`] send `/api` and `/api/*` to the given JSON router (with its
//! own JSON 404) and answer every other path with the pages (HTML 404 for unknown pages).
//! [`dashboard_router`] / [`portal_router`] are the pages alone, without a fallback, for merging.
//!
//! # Security
//! - Sessions: dashboard sessions are stored (`admin_sessions`, SHA-256 of the `gh_dash` cookie's
//!   random token), 12 hours, ended by sign-out or the admin's removal; they survive restarts and
//!   are shared by every dashboard node.
//! - Sign-in is throttled per account and per address ([`gatehouse_domain::throttle`]), and every
//!   attempt and every change is written to the audit log ([`audit`]).
//!   Portal pages share the portal JSON API's store-backed session (`gh_portal`), so signing in on
//!   the pages also signs in the JSON API.
//! - Cookies: `HttpOnly; SameSite=Lax; Path=/`, plus `Secure` with [`UiSettings::secure_cookies`].
//! - CSRF: every form has a `_csrf` token (HMAC of the session, see [`security`]), checked on every
//!   POST; cross-origin POSTs are refused before that ([`security::same_origin`]).
//! - Admin users are stored in the settings under `dashboard_admins` (argon2id hashes), see
//!   [`admins`].

pub mod activity;
pub mod admins;
pub mod audit;
pub mod charts;
pub mod dashboard;
pub mod dcr_form;
pub mod form;
pub mod openapi;
pub mod portal;
pub mod security;
pub mod setup;
pub mod templates;

use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use tower::ServiceExt;

pub use dashboard::{DashboardUi, dashboard_router};
pub use portal::{PortalUi, portal_router};

/// Settings shared by both UIs.
#[derive(Debug, Clone)]
pub struct UiSettings {
    /// Add `Secure` to cookies (the listener is reached over HTTPS, e.g. behind a TLS proxy).
    pub secure_cookies: bool,
    /// The gateway's public URL, used in the portal's example `curl` commands.
    pub gateway_url: String,
    /// Timeout of the dashboard's server-side calls (JWKS fetch, discovery, connection test).
    pub fetch_timeout: Duration,
    /// The first admin user (email, password), created at start when no admin exists
    /// (`GATEHOUSE_ADMIN_EMAIL` / `GATEHOUSE_ADMIN_PASSWORD`). Without it, `/setup` asks once,
    /// through the one-time link of [`setup::issue_token`].
    pub initial_admin: Option<(String, String)>,
    /// Quotas are counted in Redis (shared by the gateway nodes), not in the database's
    /// `quota_counters`: the portal's usage page then cannot show what is left.
    pub quotas_in_redis: bool,
}

impl Default for UiSettings {
    fn default() -> Self {
        Self {
            secure_cookies: false,
            gateway_url: "http://127.0.0.1:8080".to_owned(),
            fetch_timeout: Duration::from_secs(10),
            initial_admin: None,
            quotas_in_redis: false,
        }
    }
}

impl UiSettings {
    /// Reads `GATEHOUSE_ADMIN_EMAIL` and `GATEHOUSE_ADMIN_PASSWORD` into
    /// [`UiSettings::initial_admin`] (both must be set and non-empty).
    pub fn with_admin_from_env(mut self) -> Self {
        let email = std::env::var("GATEHOUSE_ADMIN_EMAIL").unwrap_or_default();
        let password = std::env::var("GATEHOUSE_ADMIN_PASSWORD").unwrap_or_default();
        if !email.trim().is_empty() && !password.is_empty() {
            self.initial_admin = Some((email, password));
        }
        self
    }
}

/// A one-time message shown on the next page (after a redirect).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Flash {
    /// `ok`, `info`, `warn` or `error`.
    pub kind: &'static str,
    /// The headline.
    pub title: String,
    /// Details (e.g. warnings).
    pub items: Vec<String>,
}

impl Flash {
    /// A success message.
    pub fn ok(title: impl Into<String>) -> Self {
        Self {
            kind: "ok",
            title: title.into(),
            items: Vec::new(),
        }
    }

    /// A message of `kind` with details.
    pub fn with(kind: &'static str, title: impl Into<String>, items: Vec<String>) -> Self {
        Self {
            kind,
            title: title.into(),
            items,
        }
    }
}

/// Adds `extra`'s keys to `base` (both objects).
pub(crate) fn merge(mut base: Value, extra: Value) -> Value {
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
    base
}

/// A page with a title and a sentence (errors, 404).
pub(crate) fn message_page(
    status: StatusCode,
    base: Value,
    title: &str,
    message: &str,
    link: Option<(&str, &str)>,
) -> Response {
    let ctx = merge(
        base,
        json!({"title": title, "message": message,
               "link": link.map(|(href, label)| json!({"href": href, "label": label}))}),
    );
    templates::render(status, "message.html", &ctx)
}

fn is_api_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

fn with_api(pages: Router, api: Router, app: &'static str) -> Router {
    pages.fallback(move |req: Request| {
        let api = api.clone();
        async move {
            if is_api_path(req.uri().path()) {
                match api.oneshot(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                }
            } else {
                message_page(
                    StatusCode::NOT_FOUND,
                    json!({"app": app}),
                    "Page not found",
                    "There is no page at this address.",
                    Some(("/", "Go to the start page")),
                )
                .into_response()
            }
        }
    })
}

/// The dashboard listener's whole router: the pages, with `/api` and `/api/*` sent to `api`
/// (the admin REST API router, which keeps its JSON 404 for unknown `/api/` paths).
/// Every successful change through it is written to the audit log ([`audit::record`]).
/// Every answer but the static assets gets `Cache-Control: no-store` ([`security::no_store`]).
pub fn dashboard_app(ui: DashboardUi, api: Router) -> Router {
    let store = std::sync::Arc::clone(ui.store());
    with_api(dashboard_router(ui), api, "dashboard")
        .layer(axum::middleware::from_fn_with_state(store, audit::record))
        .layer(axum::middleware::from_fn(security::no_store))
}

/// The portal listener's whole router: the pages, with `/api` and `/api/*` sent to `api` (the
/// portal's JSON API router). Every answer but the static assets gets `Cache-Control: no-store`
/// ([`security::no_store`]).
pub fn portal_app(ui: PortalUi, api: Router) -> Router {
    with_api(portal_router(ui), api, "portal").layer(axum::middleware::from_fn(security::no_store))
}
