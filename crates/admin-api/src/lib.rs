//! The admin REST API, served on the dashboard listener (:3000) under `/api/`.
//!
//! # Layout
//! - [`control`]: the use cases (validate, store, notify), shared with the CLI; no HTTP here.
//! - [`handlers`]: the axum handlers, each documented for the OpenAPI document with `utoipa`.
//! - [`auth`]: the admin key check (`Authorization: Bearer <admin key>`; only a SHA-256 hash of
//!   the key is stored).
//! - [`error`]: [`error::ApiError`], the single way a handler fails: `{"error": ..., "field": ...}`
//!   with the right status.
//!
//! [`router`] builds the router and [`openapi`] the OpenAPI document from the same route list, so
//! the document cannot name a route that does not exist or miss one that does.

pub mod analytics;
pub mod auth;
pub mod control;
pub mod error;
pub mod handlers;
pub mod passwords;
pub mod portal;
pub mod portal_admin;
pub mod portal_api;

use std::sync::Arc;

use axum::Router;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::{AdminKey, ClientAddr};
pub use control::{ChangeHook, Control, ControlError, TykBundle, no_hook};

/// Hooks the admin API calls into other parts of the process.
pub trait AdminHooks: Send + Sync + 'static {
    /// Flushes cached JWKS (all when `api_id` is `None`); returns how many URLs were flushed, or
    /// `None` when the API is unknown.
    fn flush_jwks(&self, api_id: Option<&str>) -> Option<usize>;
}

/// No-op hooks, for tests of the API alone.
pub struct NoHooks;

impl AdminHooks for NoHooks {
    fn flush_jwks(&self, _api_id: Option<&str>) -> Option<usize> {
        Some(0)
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// The control-plane operations.
    pub control: Control,
    /// The admin key check.
    pub key: Arc<AdminKey>,
    /// Process hooks.
    pub hooks: Arc<dyn AdminHooks>,
    /// The developer portal service.
    pub portal: Arc<portal::Portal>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatehouse admin API",
        description = "Manage APIs (Tyk Classic API definitions) and policies (Tyk policies). \
                       Every call needs `Authorization: Bearer <admin key>`."
    ),
    modifiers(&SecurityAddon),
    security(("admin_key" = [])),
    tags(
        (name = "apis", description = "API definitions"),
        (name = "policies", description = "Policies"),
        (name = "import", description = "Import from Tyk"),
        (name = "cache", description = "Caches"),
        (name = "portal", description = "Developer portal and Dynamic Client Registration"),
        (name = "analytics", description = "Per-minute request analytics"),
    )
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

fn parts() -> (Router<AdminState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(handlers::list_apis, handlers::create_api))
        .routes(routes!(
            handlers::get_api,
            handlers::replace_api,
            handlers::delete_api
        ))
        .routes(routes!(handlers::list_policies, handlers::create_policy))
        .routes(routes!(
            handlers::get_policy,
            handlers::replace_policy,
            handlers::delete_policy
        ))
        .routes(routes!(handlers::import_tyk))
        .routes(routes!(handlers::flush_jwks_all))
        .routes(routes!(handlers::flush_jwks_api))
        .routes(routes!(
            portal_admin::get_configuration,
            portal_admin::put_configuration
        ))
        .routes(routes!(
            portal_admin::list_catalogue,
            portal_admin::create_catalogue
        ))
        .routes(routes!(
            portal_admin::get_catalogue,
            portal_admin::replace_catalogue,
            portal_admin::delete_catalogue
        ))
        .routes(routes!(portal_admin::dcr_discover))
        .routes(routes!(portal_admin::dcr_test))
        .routes(routes!(
            portal_admin::list_developers,
            portal_admin::create_developer
        ))
        .routes(routes!(
            portal_admin::get_developer,
            portal_admin::update_developer,
            portal_admin::delete_developer
        ))
        .routes(routes!(portal_admin::list_clients))
        .routes(routes!(portal_admin::delete_client))
        .routes(routes!(handlers::analytics_requests))
        .routes(routes!(handlers::analytics_top))
        .routes(routes!(handlers::analytics_export))
        .split_for_parts()
}

/// The OpenAPI document of the admin API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    parts().1
}

/// The admin API router (mounted at the root of the dashboard listener; all paths start with
/// `/api/`). `GET /api/openapi.json` is public; everything else needs the admin key.
pub fn router(state: AdminState) -> Router {
    let (api, doc) = parts();
    let doc = Arc::new(doc);
    let protected = api.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::require_admin_key,
    ));
    Router::new()
        .route(
            "/api/openapi.json",
            axum::routing::get(move || {
                let doc = Arc::clone(&doc);
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .merge(protected)
        .fallback(handlers::not_found)
        .with_state(state)
}

/// Route list as `METHOD path` strings (from the router's OpenAPI parts), for tests and docs.
pub fn route_list() -> Vec<String> {
    let doc = openapi();
    let mut out = Vec::new();
    for (path, item) in &doc.paths.paths {
        for (method, op) in [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("DELETE", &item.delete),
        ] {
            if op.is_some() {
                out.push(format!("{method} {path}"));
            }
        }
    }
    out
}
