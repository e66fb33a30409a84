//! The audit log of admin actions: who changed what, when, from where.
//!
//! Every state-changing request on the dashboard listener passes [`record`] (a middleware): when
//! it succeeded (a page's redirect after a saved form, or a 2xx of the admin REST API), an
//! [`AuditEntry`] is appended with the actor (the signed-in admin's email, or `admin-api-key`), an
//! action named from the route ([`classify`]), the target id and the client address. Request
//! bodies are never read, so no secret reaches the log. Sign-in attempts are recorded by the
//! sign-in handler itself ([`sign_in`]), failures included.
//!
//! The log is shown on the dashboard's *Audit log* page and by `GET /api/audit`.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;

use gatehouse_store::{AuditEntry, Store, unix_now};

use crate::dashboard::COOKIE;
use crate::security::{cookie, sha256_hex};

/// The actor recorded for the admin REST API (there is one admin key).
pub const API_KEY_ACTOR: &str = "admin-api-key";

pub use gatehouse_admin_api::ClientAddr;

/// The action and target of a state-changing request, or `None` for requests that change
/// nothing (reads, sign-in pages, DCR discovery and connection tests).
pub fn classify(method: &Method, path: &str) -> Option<(String, String)> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let verb = |m: &Method| match *m {
        Method::POST => "create",
        Method::PUT | Method::PATCH => "update",
        Method::DELETE => "delete",
        _ => "change",
    };
    let named = |resource: &str, action: &str, target: &str| {
        Some((format!("{resource}.{action}"), target.to_owned()))
    };
    match segs.as_slice() {
        // The admin REST API.
        ["api", "apis"] => named("api", verb(method), ""),
        ["api", "apis", id] => named("api", verb(method), id),
        ["api", "policies"] => named("policy", verb(method), ""),
        ["api", "policies", id] => named("policy", verb(method), id),
        ["api", "import", "tyk"] => named("import", "tyk", ""),
        ["api", "cache", "jwks"] => named("jwks", "flush", "*"),
        ["api", "cache", "jwks", id] => named("jwks", "flush", id),
        ["api", "portal", "configuration"] => named("portal_settings", "update", ""),
        ["api", "portal", "catalogue"] => named("catalogue", verb(method), ""),
        ["api", "portal", "catalogue", id] => named("catalogue", verb(method), id),
        ["api", "portal", "developers"] => named("developer", verb(method), ""),
        ["api", "portal", "developers", id] => named("developer", verb(method), id),
        ["api", "portal", "clients", id] => named("client", verb(method), id),
        ["api", "portal", "dcr", ..] => None,
        // The dashboard's pages (all POST forms).
        ["login"] | ["setup"] => None,
        ["logout"] => named("admin", "sign_out", ""),
        ["import"] => named("import", "tyk", ""),
        [
            kind @ ("apis" | "policies" | "catalogue" | "developers"),
            rest @ ..,
        ] => {
            let resource = match *kind {
                "apis" => "api",
                "policies" => "policy",
                "catalogue" => "catalogue",
                _ => "developer",
            };
            match rest {
                ["new"] => named(resource, "create", ""),
                [id] => named(resource, "update", id),
                [_, "clients", cid, "delete"] => named("client", "delete", cid),
                [id, "jwks-keys"] => named("jwks", "fetch", id),
                [id, "jwks-flush"] => named("jwks", "flush", id),
                [id, op] => named(resource, op, id),
                _ => Some((format!("{method} {path}"), String::new())),
            }
        }
        ["portal-settings"] => named("portal_settings", "update", ""),
        ["admins", "new"] => named("admin", "create", ""),
        ["admins", email, "delete"] => named("admin", "delete", email),
        _ => Some((format!("{method} {path}"), String::new())),
    }
}

/// Whether a response means the change happened: a redirect after a saved page form (forms that
/// fail or only show something answer 200 or 4xx; the import page answers its report with 200),
/// or a 2xx of the admin REST API.
fn succeeded(path: &str, status: u16) -> bool {
    if path == "/api" || path.starts_with("/api/") || path == "/import" {
        (200..300).contains(&status)
    } else {
        (300..400).contains(&status)
    }
}

/// The actor of a request: the admin REST API's key, or the signed-in admin.
async fn actor(store: &dyn Store, path: &str, headers: &HeaderMap) -> Option<String> {
    if path.starts_with("/api/") {
        return Some(API_KEY_ACTOR.to_owned());
    }
    let token = cookie(headers, COOKIE)?;
    match store.admin_session(&sha256_hex(&token), unix_now()).await {
        Ok(Some(s)) => Some(s.email),
        _ => None,
    }
}

/// Middleware of the dashboard listener: appends an audit entry for every successful change.
pub async fn record(
    State(store): State<std::sync::Arc<dyn Store>>,
    req: Request,
    next: Next,
) -> Response {
    let Some((action, target)) = classify(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let path = req.uri().path().to_owned();
    // Read the actor before the request runs: signing out ends the session.
    let actor = actor(store.as_ref(), &path, req.headers()).await;
    let ClientAddr(source) = ClientAddr::of(req.extensions());
    let method = req.method().clone();
    let resp = next.run(req).await;
    if let Some(actor) = actor
        && succeeded(&path, resp.status().as_u16())
    {
        let entry = AuditEntry {
            id: 0,
            at: unix_now(),
            actor,
            action,
            target,
            detail: format!("{method} {path}"),
            source,
        };
        if let Err(e) = store.append_audit(&entry).await {
            tracing::error!(error = %e, action = %entry.action, "cannot write the audit log");
        }
    }
    resp
}

/// Records a sign-in attempt (`admin.sign_in` or `admin.sign_in_failed`; `detail` says why a
/// failure failed, never the password).
pub async fn sign_in(store: &dyn Store, email: &str, ok: bool, detail: &str, source: &str) {
    let entry = AuditEntry {
        id: 0,
        at: unix_now(),
        actor: email.to_owned(),
        action: if ok {
            "admin.sign_in"
        } else {
            "admin.sign_in_failed"
        }
        .to_owned(),
        target: String::new(),
        detail: detail.to_owned(),
        source: source.to_owned(),
    };
    if let Err(e) = store.append_audit(&entry).await {
        tracing::error!(error = %e, "cannot write the audit log");
    }
}

/// Records the first admin's creation (through the setup link, or the refusal of a setup token).
pub async fn setup(store: &dyn Store, email: &str, ok: bool, source: &str) {
    let entry = AuditEntry {
        id: 0,
        at: unix_now(),
        actor: email.to_owned(),
        action: if ok {
            "admin.setup"
        } else {
            "admin.setup_failed"
        }
        .to_owned(),
        target: email.to_owned(),
        detail: if ok {
            "first admin created through the setup link"
        } else {
            "the setup token was not valid"
        }
        .to_owned(),
        source: source.to_owned(),
    };
    if let Err(e) = store.append_audit(&entry).await {
        tracing::error!(error = %e, "cannot write the audit log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(m: Method, p: &str) -> Option<(String, String)> {
        classify(&m, p)
    }

    fn pair(a: &str, t: &str) -> Option<(String, String)> {
        Some((a.to_owned(), t.to_owned()))
    }

    #[test]
    fn routes_map_to_actions() {
        assert_eq!(c(Method::GET, "/apis/pay"), None);
        assert_eq!(c(Method::POST, "/api/apis"), pair("api.create", ""));
        assert_eq!(c(Method::PUT, "/api/apis/pay"), pair("api.update", "pay"));
        assert_eq!(
            c(Method::DELETE, "/api/policies/gold"),
            pair("policy.delete", "gold")
        );
        assert_eq!(
            c(Method::DELETE, "/api/cache/jwks"),
            pair("jwks.flush", "*")
        );
        assert_eq!(c(Method::POST, "/api/portal/dcr/test"), None);
        assert_eq!(
            c(Method::DELETE, "/api/portal/clients/0oa1"),
            pair("client.delete", "0oa1")
        );
        assert_eq!(c(Method::POST, "/apis/new"), pair("api.create", ""));
        assert_eq!(c(Method::POST, "/apis/pay"), pair("api.update", "pay"));
        assert_eq!(
            c(Method::POST, "/apis/pay/delete"),
            pair("api.delete", "pay")
        );
        assert_eq!(
            c(Method::POST, "/developers/d1/deactivate"),
            pair("developer.deactivate", "d1")
        );
        assert_eq!(
            c(Method::POST, "/developers/d1/clients/0oa1/delete"),
            pair("client.delete", "0oa1")
        );
        assert_eq!(
            c(Method::POST, "/admins/b@x.io/delete"),
            pair("admin.delete", "b@x.io")
        );
        assert_eq!(c(Method::POST, "/login"), None);
        assert_eq!(c(Method::POST, "/logout"), pair("admin.sign_out", ""));
        assert_eq!(
            c(Method::POST, "/something/else"),
            pair("POST /something/else", "")
        );
    }

    #[test]
    fn success_is_a_redirect_on_pages_and_2xx_on_the_api() {
        assert!(succeeded("/apis/new", 303));
        assert!(!succeeded("/apis/new", 200));
        assert!(!succeeded("/apis/new", 400));
        assert!(succeeded("/api/apis", 201));
        assert!(!succeeded("/api/apis", 400));
        assert!(!succeeded("/api/apis", 401));
        assert!(succeeded("/import", 200));
        assert!(!succeeded("/import", 400));
    }
}
