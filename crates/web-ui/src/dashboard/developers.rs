//! Developers: list, add, deactivate (which deletes their clients at the IdP), their OAuth clients.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};

use gatehouse_admin_api::portal::{PortalError, developer_view};

use super::catalogue::place_portal_error;
use super::{DashboardUi, confirm_page, failure, not_found};
use crate::form::{FieldErrors, Form};
use crate::templates::render;
use crate::{Flash, merge};

/// Domain field → form field.
pub const TABLE: &[(&str, &str)] = &[
    ("email", "email"),
    ("first_name", "first_name"),
    ("last_name", "last_name"),
    ("password", "password"),
];

pub(super) async fn list(State(ui): State<DashboardUi>, headers: HeaderMap) -> Response {
    let a = match ui.admin(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = ui.base(&a, "developers", "Developers");
    let devs = match ui.portal().developers().await {
        Ok(d) => d,
        Err(e) => return failure(base, &e.to_string()),
    };
    let clients = ui.portal().all_clients().await.unwrap_or_default();
    let rows: Vec<Value> = devs
        .iter()
        .map(|d| {
            let n = clients
                .iter()
                .filter(|c| c.get("developer_id").and_then(Value::as_str) == Some(d.id.as_str()))
                .count();
            merge(developer_view(d), json!({"clients": n}))
        })
        .collect();
    render(
        StatusCode::OK,
        "developers.html",
        &merge(base, json!({"developers": rows})),
    )
}

pub(super) async fn new_page(State(ui): State<DashboardUi>, headers: HeaderMap) -> Response {
    let a = match ui.admin(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = ui.base(&a, "developers", "Add developer");
    render(
        StatusCode::OK,
        "developer_new.html",
        &merge(base, json!({"form": {}, "errors": FieldErrors::default()})),
    )
}

pub(super) async fn create(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = Form::parse(&body);
    let a = match ui.admin_post(&headers, &f).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let input = json!({"email": f.text("email"), "first_name": f.text("first_name"),
                       "last_name": f.text("last_name"), "password": f.raw("password")});
    let mut errors = FieldErrors::default();
    match ui.portal().create_developer(input).await {
        Ok(d) => {
            ui.flash(&a, Flash::ok(format!("Developer {} added.", d.email)));
            return Redirect::to(&format!("/developers/{}", d.id)).into_response();
        }
        Err(e) => place_portal_error(&mut errors, &e, TABLE),
    }
    let base = ui.base(&a, "developers", "Add developer");
    render(
        StatusCode::BAD_REQUEST,
        "developer_new.html",
        &merge(
            base,
            json!({"form": {"email": f.text("email"), "first_name": f.text("first_name"),
                            "last_name": f.text("last_name")}, "errors": errors}),
        ),
    )
}

pub(super) async fn show(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let a = match ui.admin(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = ui.base(&a, "developers", "Developer");
    show_render(
        &ui,
        base,
        &id,
        StatusCode::OK,
        None,
        &FieldErrors::default(),
    )
    .await
}

/// The developer's page; `form` holds what was typed when an edit failed.
async fn show_render(
    ui: &DashboardUi,
    base: Value,
    id: &str,
    status: StatusCode,
    form: Option<Value>,
    errors: &FieldErrors,
) -> Response {
    let d = match ui.portal().developer(id).await {
        Ok(d) => d,
        Err(PortalError::NotFound(m)) => return not_found(base, &m, "/developers"),
        Err(e) => return failure(base, &e.to_string()),
    };
    let clients = ui.portal().clients_of(id).await.unwrap_or_default();
    let view = developer_view(&d);
    let form = form.unwrap_or_else(
        || json!({"email": d.email, "first_name": d.first_name, "last_name": d.last_name}),
    );
    render(
        status,
        "developer.html",
        &merge(
            base,
            json!({"dev": view, "clients": clients, "form": form, "errors": errors}),
        ),
    )
}

/// Saves the edit form: email, names, and a new password when one is typed (which signs the
/// developer out everywhere).
pub(super) async fn update(
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
    let mut input = json!({"email": f.text("email"), "first_name": f.text("first_name"),
                           "last_name": f.text("last_name")});
    let password = f.raw("password");
    if !password.is_empty() {
        input["password"] = json!(password);
    }
    let mut errors = FieldErrors::default();
    match ui.portal().update_developer(&id, input).await {
        Ok(d) => {
            let extra = if password.is_empty() {
                ""
            } else {
                " The new password is set and their sessions were ended."
            };
            ui.flash(
                &a,
                Flash::ok(format!("Developer {} saved.{extra}", d.email)),
            );
            return Redirect::to(&format!("/developers/{id}")).into_response();
        }
        Err(PortalError::NotFound(m)) => {
            return not_found(ui.base(&a, "developers", "Not found"), &m, "/developers");
        }
        Err(e) => place_portal_error(&mut errors, &e, TABLE),
    }
    let form = json!({"email": f.text("email"), "first_name": f.text("first_name"),
                      "last_name": f.text("last_name")});
    let base = ui.base(&a, "developers", "Developer");
    show_render(&ui, base, &id, StatusCode::BAD_REQUEST, Some(form), &errors).await
}

pub(super) async fn deactivate_page(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let a = match ui.admin(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = ui.base(&a, "developers", "Deactivate developer");
    match ui.portal().developer(&id).await {
        Ok(d) => confirm_page(
            base,
            &format!("Deactivate {}?", d.email),
            "Their OAuth clients are deleted at the identity provider, their tokens are refused \
             and they are signed out. You can activate the account again later; the clients do \
             not come back.",
            &format!("/developers/{id}/deactivate"),
            "Deactivate",
            &format!("/developers/{id}"),
        ),
        Err(e) => not_found(base, &e.to_string(), "/developers"),
    }
}

async fn set_inactive(
    ui: DashboardUi,
    headers: HeaderMap,
    id: String,
    body: Bytes,
    inactive: bool,
) -> Response {
    let f = Form::parse(&body);
    let a = match ui.admin_post(&headers, &f).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match ui
        .portal()
        .update_developer(&id, json!({"inactive": inactive}))
        .await
    {
        Ok(d) => {
            let what = if inactive { "deactivated" } else { "activated" };
            ui.flash(&a, Flash::ok(format!("{} {what}.", d.email)));
            Redirect::to(&format!("/developers/{id}")).into_response()
        }
        Err(e) => {
            ui.flash(
                &a,
                Flash::with(
                    "error",
                    "The developer was not changed.",
                    vec![e.to_string()],
                ),
            );
            Redirect::to(&format!("/developers/{id}")).into_response()
        }
    }
}

pub(super) async fn deactivate(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    set_inactive(ui, headers, id, body, true).await
}

pub(super) async fn activate(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    set_inactive(ui, headers, id, body, false).await
}

pub(super) async fn delete_client_page(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    Path((id, client_id)): Path<(String, String)>,
) -> Response {
    let a = match ui.admin(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = ui.base(&a, "developers", "Delete OAuth client");
    confirm_page(
        base,
        &format!("Delete the OAuth client {client_id}?"),
        "It is deleted at the identity provider and the gateway refuses its tokens from the next \
         request on.",
        &format!("/developers/{id}/clients/{client_id}/delete"),
        "Delete client",
        &format!("/developers/{id}"),
    )
}

pub(super) async fn delete_client(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    Path((id, client_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let f = Form::parse(&body);
    let a = match ui.admin_post(&headers, &f).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let flash = match ui.portal().admin_delete_client(&client_id).await {
        Ok(()) => Flash::ok(format!("OAuth client {client_id} deleted.")),
        Err(e) => Flash::with("error", "The client was not deleted.", vec![e.to_string()]),
    };
    ui.flash(&a, flash);
    Redirect::to(&format!("/developers/{id}")).into_response()
}

pub(super) async fn delete_page(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let a = match ui.admin(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = ui.base(&a, "developers", "Delete developer");
    match ui.portal().developer(&id).await {
        Ok(d) => confirm_page(
            base,
            &format!("Delete {}?", d.email),
            "Their OAuth clients are deleted at the identity provider first, their tokens are \
             refused, and the account is removed for good. To keep the account, deactivate it \
             instead.",
            &format!("/developers/{id}/delete"),
            "Delete developer",
            &format!("/developers/{id}"),
        ),
        Err(e) => not_found(base, &e.to_string(), "/developers"),
    }
}

pub(super) async fn delete(
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
    let email = ui
        .portal()
        .developer(&id)
        .await
        .map(|d| d.email)
        .unwrap_or_else(|_| id.clone());
    match ui.portal().delete_developer(&id).await {
        Ok(()) => {
            ui.flash(&a, Flash::ok(format!("Developer {email} deleted.")));
            Redirect::to("/developers").into_response()
        }
        Err(PortalError::NotFound(m)) => {
            not_found(ui.base(&a, "developers", "Not found"), &m, "/developers")
        }
        Err(e) => {
            ui.flash(
                &a,
                Flash::with(
                    "error",
                    "The developer was not deleted.",
                    vec![e.to_string()],
                ),
            );
            Redirect::to(&format!("/developers/{id}")).into_response()
        }
    }
}
