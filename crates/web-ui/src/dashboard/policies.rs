//! Policies: access rights (APIs picked with checkboxes), rate limit, quota, key expiry, active.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};

use gatehouse_admin_api::ControlError;
use gatehouse_domain::policy::Policy;
use gatehouse_store::WriteMode;

use super::{DashboardUi, confirm_page, failure, not_found};
use crate::form::{FieldErrors, Form};
use crate::templates::render;
use crate::{Flash, merge};

/// Domain field → form field.
pub const TABLE: &[(&str, &str)] = &[
    ("id", "id"),
    ("name", "name"),
    ("rate", "rate"),
    ("per", "per"),
    ("quota_max", "quota_max"),
    ("quota_renewal_rate", "quota_renewal_rate"),
    ("key_expires_in", "key_expires_in"),
    ("access_rights", "apis"),
    ("active", "active"),
];

fn num(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// The form's values for a stored policy.
pub fn form_from_doc(doc: &Value) -> Value {
    let p = Policy::from_stored(doc).unwrap_or_default();
    json!({
        "id": p.id, "name": p.name,
        "apis": p.access_rights.keys().collect::<Vec<_>>(),
        "rate": num(doc, "rate"), "per": num(doc, "per"),
        "quota_max": num(doc, "quota_max"), "quota_renewal_rate": num(doc, "quota_renewal_rate"),
        "key_expires_in": num(doc, "key_expires_in"),
        "active": !p.inactive(),
    })
}

fn form_from_post(f: &Form) -> Value {
    json!({
        "id": f.text("id"), "name": f.text("name"), "apis": f.all("apis"),
        "rate": f.text("rate"), "per": f.text("per"), "quota_max": f.text("quota_max"),
        "quota_renewal_rate": f.text("quota_renewal_rate"), "key_expires_in": f.text("key_expires_in"),
        "active": f.checked("active"),
    })
}

/// The policy to store: `base` (the stored document) with the form's values. Access rights of
/// APIs still ticked keep their versions and allowed URLs. Number fields that are not numbers
/// go into `errors`.
pub fn doc_from_post(
    f: &Form,
    base: Value,
    api_names: &[(String, String)],
    errors: &mut FieldErrors,
) -> Value {
    let mut doc = match base {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    let id = f.text("id");
    if !id.is_empty() {
        doc.insert("id".into(), json!(id));
    }
    doc.insert("name".into(), json!(f.text("name")));
    doc.insert(
        "rate".into(),
        json!(f.number::<f64>("rate", "Rate", 0.0, errors)),
    );
    doc.insert(
        "per".into(),
        json!(f.number::<f64>("per", "Per", 0.0, errors)),
    );
    doc.insert(
        "quota_max".into(),
        json!(f.number::<i64>("quota_max", "Quota max", -1, errors)),
    );
    doc.insert(
        "quota_renewal_rate".into(),
        json!(f.number::<i64>("quota_renewal_rate", "Quota renewal", 0, errors)),
    );
    doc.insert(
        "key_expires_in".into(),
        json!(f.number::<i64>("key_expires_in", "Key expiration", 0, errors)),
    );
    let active = f.checked("active");
    doc.insert("active".into(), json!(active));
    doc.insert("is_inactive".into(), json!(!active));
    doc.remove("state");
    let old = match doc.remove("access_rights") {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let mut rights = serde_json::Map::new();
    for api in f.all("apis") {
        let entry = old.get(&api).cloned().unwrap_or_else(|| {
            let name = api_names
                .iter()
                .find(|(i, _)| *i == api)
                .map(|(_, n)| n.clone())
                .unwrap_or_default();
            json!({"api_id": api, "api_name": name, "versions": []})
        });
        rights.insert(api, entry);
    }
    doc.insert("access_rights".into(), Value::Object(rights));
    Value::Object(doc)
}

async fn api_names(ui: &DashboardUi) -> Vec<(String, String)> {
    ui.control()
        .list_apis()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|d| {
            let n = d
                .doc
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            (d.id, n)
        })
        .collect()
}

async fn form_page(
    ui: &DashboardUi,
    base: Value,
    status: StatusCode,
    is_new: bool,
    action: &str,
    form: Value,
    errors: &FieldErrors,
) -> Response {
    let apis: Vec<Value> = api_names(ui)
        .await
        .into_iter()
        .map(|(id, n)| {
            json!([
                id,
                format!("{} ({id})", if n.is_empty() { &id } else { &n })
            ])
        })
        .collect();
    let ctx = merge(
        base,
        json!({"form": form, "errors": errors, "is_new": is_new, "action": action, "apis": apis}),
    );
    render(status, "policy_form.html", &ctx)
}

pub(super) async fn list(State(ui): State<DashboardUi>, headers: HeaderMap) -> Response {
    let a = match ui.admin(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = ui.base(&a, "policies", "Policies");
    let list = match ui.control().list_policies().await {
        Ok(l) => l,
        Err(e) => return failure(base, &e.to_string()),
    };
    let rows: Vec<Value> = list
        .iter()
        .map(|d| {
            let p = Policy::from_stored(&d.doc).unwrap_or_default();
            json!({"id": d.id, "name": p.name, "apis": p.access_rights.keys().collect::<Vec<_>>(),
                   "rate": if p.rate > 0.0 { format!("{} / {} s", p.rate, p.per) } else { "none".into() },
                   "quota": if p.quota_max > 0 { format!("{} / {} s", p.quota_max, p.quota_renewal_rate) } else { "unlimited".into() },
                   "active": !p.inactive()})
        })
        .collect();
    render(
        StatusCode::OK,
        "policies.html",
        &merge(base, json!({"policies": rows})),
    )
}

pub(super) async fn new_page(State(ui): State<DashboardUi>, headers: HeaderMap) -> Response {
    let a = match ui.admin(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = ui.base(&a, "policies", "New policy");
    let form = json!({"active": true, "apis": [], "quota_max": "-1", "rate": "", "per": ""});
    form_page(
        &ui,
        base,
        StatusCode::OK,
        true,
        "/policies/new",
        form,
        &FieldErrors::default(),
    )
    .await
}

pub(super) async fn edit_page(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let a = match ui.admin(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = ui.base(&a, "policies", "Edit policy");
    match ui.control().get_policy(&id).await {
        Ok(d) => {
            form_page(
                &ui,
                base,
                StatusCode::OK,
                false,
                &format!("/policies/{id}"),
                form_from_doc(&d.doc),
                &FieldErrors::default(),
            )
            .await
        }
        Err(ControlError::NotFound(m)) => not_found(base, &m, "/policies"),
        Err(e) => failure(base, &e.to_string()),
    }
}

pub(super) async fn create(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    save(ui, headers, body, None).await
}

pub(super) async fn update(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    save(ui, headers, body, Some(id)).await
}

async fn save(ui: DashboardUi, headers: HeaderMap, body: Bytes, id: Option<String>) -> Response {
    let f = Form::parse(&body);
    let a = match ui.admin_post(&headers, &f).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let is_new = id.is_none();
    let action = match &id {
        Some(i) => format!("/policies/{i}"),
        None => "/policies/new".to_owned(),
    };
    let title = if is_new { "New policy" } else { "Edit policy" };
    let stored = match &id {
        Some(i) => match ui.control().get_policy(i).await {
            Ok(d) => d.doc,
            Err(e) => {
                let base = ui.base(&a, "policies", title);
                return not_found(base, &e.to_string(), "/policies");
            }
        },
        None => json!({}),
    };
    let mut errors = FieldErrors::default();
    let names = api_names(&ui).await;
    let mut doc = doc_from_post(&f, stored, &names, &mut errors);
    if let (Some(i), Value::Object(m)) = (&id, &mut doc) {
        m.insert("id".into(), json!(i));
    }
    if errors.is_empty() {
        let mode = if is_new {
            WriteMode::Create
        } else {
            WriteMode::Replace
        };
        match ui.control().put_policy(doc, id.as_deref(), mode).await {
            Ok(w) => {
                let name = f.text("name");
                let label = if name.is_empty() { w.id.clone() } else { name };
                let flash = if w.warnings.is_empty() {
                    Flash::ok(format!("Policy '{label}' saved."))
                } else {
                    Flash::with(
                        "warn",
                        format!("Policy '{label}' saved, with warnings:"),
                        w.warnings,
                    )
                };
                ui.flash(&a, flash);
                return Redirect::to(&format!("/policies/{}", w.id)).into_response();
            }
            Err(ControlError::Invalid(v)) => errors.place_validation(&v, TABLE),
            Err(ControlError::Conflict { field, message }) => errors.place(field, &message, TABLE),
            Err(e) => errors.general(e.to_string()),
        }
    }
    let base = ui.base(&a, "policies", title);
    form_page(
        &ui,
        base,
        StatusCode::BAD_REQUEST,
        is_new,
        &action,
        form_from_post(&f),
        &errors,
    )
    .await
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
    let base = ui.base(&a, "policies", "Delete policy");
    match ui.control().get_policy(&id).await {
        Ok(_) => confirm_page(
            base,
            &format!("Delete the policy '{id}'?"),
            "Tokens naming it are refused from the next request on; catalogue entries using it \
             must get another policy.",
            &format!("/policies/{id}/delete"),
            "Delete policy",
            &format!("/policies/{id}"),
        ),
        Err(e) => not_found(base, &e.to_string(), "/policies"),
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
    match ui.control().delete_policy(&id).await {
        Ok(()) => {
            ui.flash(&a, Flash::ok(format!("Policy '{id}' deleted.")));
            Redirect::to("/policies").into_response()
        }
        Err(e) => {
            let base = ui.base(&a, "policies", "Delete policy");
            not_found(base, &e.to_string(), "/policies")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_rights_keep_their_details() {
        let stored = json!({"id": "gold", "access_rights": {
            "a": {"api_id": "a", "versions": ["v1"], "allowed_urls": [{"url": "^/x", "methods": ["GET"]}]},
            "b": {"api_id": "b"}}, "throttle_interval": 3});
        let f = Form::parse(b"name=Gold&apis=a&apis=c&rate=10&per=60&quota_max=&active=on");
        let mut e = FieldErrors::default();
        let doc = doc_from_post(&f, stored, &[("c".into(), "Cee".into())], &mut e);
        assert!(e.is_empty());
        assert_eq!(doc["access_rights"]["a"]["versions"], json!(["v1"]));
        assert_eq!(doc["access_rights"]["c"]["api_name"], json!("Cee"));
        assert!(doc["access_rights"].get("b").is_none());
        assert_eq!(doc["quota_max"], json!(-1));
        assert_eq!(doc["throttle_interval"], json!(3));
        assert_eq!(doc["is_inactive"], json!(false));
    }

    #[test]
    fn numbers_are_checked_next_to_their_field() {
        let f = Form::parse(b"rate=fast&per=60");
        let mut e = FieldErrors::default();
        doc_from_post(&f, json!({}), &[], &mut e);
        assert_eq!(e.fields["rate"], "Rate must be a number, e.g. 60");
        let v = gatehouse_domain::policy::validate_policy(json!({"rate": 5, "per": 0}), None)
            .unwrap_err();
        let mut e = FieldErrors::default();
        e.place_validation(&v, TABLE);
        assert!(e.fields.contains_key("per"));
    }
}
