//! The dashboard's own administration: admin users, the audit log, importing a Tyk gateway's
//! configuration, and flushing an API's cached JWKS.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use gatehouse_admin_api::handlers::{ImportReport, tyk_bundle};

use super::{DashboardUi, confirm_page, failure, not_found};
use crate::form::{FieldErrors, Form};
use crate::templates::render;
use crate::{Flash, admins, merge};

/// Audit entries per page.
const AUDIT_PAGE: u32 = 50;
/// Largest import document pasted into the page.
const MAX_IMPORT_BYTES: usize = 5 * 1024 * 1024;

// ----- admins --------------------------------------------------------------------------------

pub(super) async fn admins_page(State(ui): State<DashboardUi>, headers: HeaderMap) -> Response {
    let a = match ui.admin(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = ui.base(&a, "admins", "Admins");
    admins_render(
        &ui,
        base,
        StatusCode::OK,
        json!({}),
        &FieldErrors::default(),
    )
    .await
}

async fn admins_render(
    ui: &DashboardUi,
    base: Value,
    status: StatusCode,
    form: Value,
    errors: &FieldErrors,
) -> Response {
    let list = match admins::list(ui.store().as_ref()).await {
        Ok(l) => l,
        Err(e) => return failure(base, &e.to_string()),
    };
    let me = base["user"].as_str().unwrap_or_default().to_owned();
    let rows: Vec<Value> = list
        .iter()
        .map(|u| {
            json!({"email": u.email, "created_at": time_text(u.created_at),
                   "me": u.email == me})
        })
        .collect();
    render(
        status,
        "admins.html",
        &merge(
            base,
            json!({"admins": rows, "form": form, "errors": errors,
                   "can_delete": rows.len() > 1}),
        ),
    )
}

pub(super) async fn add_admin(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = Form::parse(&body);
    let a = match ui.admin_post(&headers, &f).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let email = f.text("email");
    let password = f.raw("password").to_owned();
    let mut errors = FieldErrors::default();
    if password != f.raw("password_confirm") {
        errors.add("password_confirm", "The two passwords differ.");
    }
    if errors.is_empty() {
        match admins::add(ui.store().as_ref(), ui.passwords(), &email, &password).await {
            Ok(_) => {
                ui.flash(
                    &a,
                    Flash::ok(format!(
                        "Admin {} added. They can sign in now.",
                        email.trim().to_ascii_lowercase()
                    )),
                );
                return Redirect::to("/admins").into_response();
            }
            Err(admins::AdminError::Invalid(v)) => {
                errors.place_validation(&v, &[("email", "email"), ("password", "password")]);
            }
            Err(admins::AdminError::Busy) => return super::busy_page("dashboard"),
            Err(e) => errors.general(e.to_string()),
        }
    }
    let base = ui.base(&a, "admins", "Admins");
    admins_render(
        &ui,
        base,
        StatusCode::BAD_REQUEST,
        json!({"email": email}),
        &errors,
    )
    .await
}

pub(super) async fn delete_admin_page(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    Path(email): Path<String>,
) -> Response {
    let a = match ui.admin(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = ui.base(&a, "admins", "Remove admin");
    confirm_page(
        base,
        &format!("Remove the admin {email}?"),
        "They are signed out at once and can no longer sign in to the dashboard.",
        &format!("/admins/{email}/delete"),
        "Remove admin",
        "/admins",
    )
}

pub(super) async fn delete_admin(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    Path(email): Path<String>,
    body: Bytes,
) -> Response {
    let f = Form::parse(&body);
    let a = match ui.admin_post(&headers, &f).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let flash = match admins::remove(ui.store().as_ref(), &email, &a.email).await {
        Ok(()) => Flash::ok(format!("Admin {email} removed.")),
        Err(e) => Flash::with("error", "The admin was not removed.", vec![e.to_string()]),
    };
    ui.flash(&a, flash);
    Redirect::to("/admins").into_response()
}

// ----- audit log -----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub(super) struct AuditQuery {
    before: Option<i64>,
}

pub(super) async fn audit_page(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Response {
    let a = match ui.admin(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = ui.base(&a, "audit", "Audit log");
    let entries = match ui.store().list_audit(AUDIT_PAGE, q.before).await {
        Ok(e) => e,
        Err(e) => return failure(base, &e.to_string()),
    };
    let older = (entries.len() == AUDIT_PAGE as usize)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    let rows: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({"at": time_text(e.at), "actor": e.actor, "action": e.action,
                   "target": e.target, "detail": e.detail, "source": e.source,
                   "failed": e.action.ends_with("_failed")})
        })
        .collect();
    render(
        StatusCode::OK,
        "audit.html",
        &merge(
            base,
            json!({"entries": rows, "older": older, "paged": q.before.is_some()}),
        ),
    )
}

/// `2026-11-28 05:31:07 UTC`.
pub(crate) fn time_text(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

// ----- import --------------------------------------------------------------------------------

pub(super) async fn import_page(State(ui): State<DashboardUi>, headers: HeaderMap) -> Response {
    let a = match ui.admin(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = ui.base(&a, "apis", "Import from Tyk");
    render(
        StatusCode::OK,
        "import.html",
        &merge(base, json!({"form": {}, "errors": {}})),
    )
}

pub(super) async fn import(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = Form::parse(&body);
    let a = match ui.admin_post(&headers, &f).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let text = f.raw("document").trim().to_owned();
    let mut errors = FieldErrors::default();
    let mut report = Value::Null;
    if text.is_empty() {
        errors.add(
            "document",
            "Paste the JSON of a Tyk export: {\"apis\": [...], \"policies\": [...]}, one API \
             definition, or an array of them.",
        );
    } else if text.len() > MAX_IMPORT_BYTES {
        errors.add(
            "document",
            format!(
                "The document is larger than {} MB; import it with `gatehouse import tyk <files>`.",
                MAX_IMPORT_BYTES / 1024 / 1024
            ),
        );
    } else {
        match serde_json::from_str::<Value>(&text) {
            Err(e) => errors.add("document", format!("This is not valid JSON: {e}.")),
            Ok(v) => match tyk_bundle(v) {
                Err(e) => {
                    let where_ = if e.field.is_empty() {
                        String::new()
                    } else {
                        format!("{}: ", e.field)
                    };
                    errors.add("document", format!("{where_}{}", e.message));
                }
                Ok(bundle) => {
                    let items = ui.control().import_tyk(bundle).await;
                    report = serde_json::to_value(ImportReport::new(items)).unwrap_or_default();
                }
            },
        }
    }
    let failed = report["failed"].as_u64().unwrap_or(0);
    let status = if !errors.is_empty() || failed > 0 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let base = ui.base(&a, "apis", "Import from Tyk");
    // A fully successful import clears the box; otherwise the text stays for correction.
    let keep = if status == StatusCode::OK {
        ""
    } else {
        text.as_str()
    };
    render(
        status,
        "import.html",
        &merge(
            base,
            json!({"form": {"document": keep}, "errors": errors, "report": report}),
        ),
    )
}

// ----- JWKS ----------------------------------------------------------------------------------

pub(super) async fn flush_jwks(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let f = Form::parse(&body);
    let a = match ui.admin_post(&headers, &f).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match ui.hooks().flush_jwks(Some(&id)) {
        Some(n) => {
            ui.flash(
                &a,
                Flash::with(
                    "ok",
                    format!("Cached keys of '{id}' flushed."),
                    vec![format!(
                        "{n} JWKS URL(s) flushed in this process; they are fetched again now. \
                         Separate gateway nodes refetch on an unknown key id and at their next \
                         refresh."
                    )],
                ),
            );
            Redirect::to(&format!("/apis/{id}")).into_response()
        }
        None => not_found(
            ui.base(&a, "apis", "Not found"),
            &format!("No active JWT API with api_id '{id}' is loaded in this process."),
            "/apis",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::time_text;

    #[test]
    fn unix_times_read_as_utc_dates() {
        assert_eq!(time_text(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time_text(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(time_text(1_795_843_867), "2026-11-28 05:31:07 UTC");
    }
}
