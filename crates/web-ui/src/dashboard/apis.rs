//! APIs: list, create, edit (with the authentication mode, a JWKS preview and the stored
//! definition's warnings), delete.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use serde_json::{Value, json};

use gatehouse_admin_api::ControlError;
use gatehouse_domain::api::{ApiDefinition, validate_api};
use gatehouse_store::WriteMode;

use super::{DashboardUi, confirm_page, failure, not_found};
use crate::form::{FieldErrors, Form, split_list};
use crate::templates::render;
use crate::{Flash, merge};

/// Domain field → form field.
pub const TABLE: &[(&str, &str)] = &[
    ("name", "name"),
    ("api_id", "api_id"),
    ("proxy.listen_path", "listen_path"),
    ("proxy.target_url", "target_url"),
    ("proxy.strip_listen_path", "strip_listen_path"),
    ("proxy", "listen_path"),
    ("active", "active"),
    ("use_keyless", "auth_mode"),
    ("enable_jwt", "auth_mode"),
    ("jwt_signing_method", "jwt_signing_method"),
    ("jwt_source", "jwt_source"),
    ("jwt_jwks_uris", "jwt_source"),
    ("jwt_identity_base_field", "jwt_identity_base_field"),
    ("jwt_policy_field_name", "jwt_policy_field_name"),
    ("jwt_default_policies", "jwt_default_policies"),
    ("jwt_allowed_issuers", "jwt_allowed_issuers"),
    ("jwt_allowed_audiences", "jwt_allowed_audiences"),
];

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn strings(v: &Value, ptr: &str) -> Vec<String> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The form's values for a stored definition.
pub fn form_from_doc(doc: &Value) -> Value {
    json!({
        "api_id": s(doc, "/api_id"),
        "name": s(doc, "/name"),
        "listen_path": s(doc, "/proxy/listen_path"),
        "target_url": s(doc, "/proxy/target_url"),
        "strip_listen_path": doc.pointer("/proxy/strip_listen_path").and_then(Value::as_bool).unwrap_or(false),
        "active": doc.get("active").and_then(Value::as_bool).unwrap_or(true),
        "auth_mode": if doc.get("enable_jwt").and_then(Value::as_bool).unwrap_or(false) { "jwt" } else { "keyless" },
        "jwt_signing_method": s(doc, "/jwt_signing_method"),
        "jwt_source": s(doc, "/jwt_source"),
        "jwt_identity_base_field": s(doc, "/jwt_identity_base_field"),
        "jwt_policy_field_name": s(doc, "/jwt_policy_field_name"),
        "jwt_default_policies": strings(doc, "/jwt_default_policies"),
        "jwt_allowed_issuers": strings(doc, "/jwt_allowed_issuers").join("\n"),
        "jwt_allowed_audiences": strings(doc, "/jwt_allowed_audiences").join("\n"),
    })
}

/// The form's values as sent (to show them again).
pub fn form_from_post(f: &Form) -> Value {
    json!({
        "api_id": f.text("api_id"),
        "name": f.text("name"),
        "listen_path": f.text("listen_path"),
        "target_url": f.text("target_url"),
        "strip_listen_path": f.checked("strip_listen_path"),
        "active": f.checked("active"),
        "auth_mode": if f.text("auth_mode") == "jwt" { "jwt" } else { "keyless" },
        "jwt_signing_method": f.text("jwt_signing_method"),
        "jwt_source": f.text("jwt_source"),
        "jwt_identity_base_field": f.text("jwt_identity_base_field"),
        "jwt_policy_field_name": f.text("jwt_policy_field_name"),
        "jwt_default_policies": f.all("jwt_default_policies"),
        "jwt_allowed_issuers": f.raw("jwt_allowed_issuers"),
        "jwt_allowed_audiences": f.raw("jwt_allowed_audiences"),
    })
}

/// The definition to store: `base` (the stored document, so Tyk fields without a form field are
/// kept) with the form's values.
pub fn doc_from_post(f: &Form, base: Value) -> Value {
    let mut doc = match base {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    let api_id = f.text("api_id");
    if !api_id.is_empty() {
        doc.insert("api_id".into(), json!(api_id));
    }
    doc.insert("name".into(), json!(f.text("name")));
    doc.insert("active".into(), json!(f.checked("active")));
    let mut proxy = match doc.remove("proxy") {
        Some(Value::Object(p)) => p,
        _ => serde_json::Map::new(),
    };
    proxy.insert("listen_path".into(), json!(f.text("listen_path")));
    proxy.insert("target_url".into(), json!(f.text("target_url")));
    proxy.insert(
        "strip_listen_path".into(),
        json!(f.checked("strip_listen_path")),
    );
    doc.insert("proxy".into(), Value::Object(proxy));
    if f.text("auth_mode") == "jwt" {
        doc.insert("use_keyless".into(), json!(false));
        doc.insert("enable_jwt".into(), json!(true));
        for k in [
            "jwt_signing_method",
            "jwt_source",
            "jwt_identity_base_field",
            "jwt_policy_field_name",
        ] {
            doc.insert(k.into(), json!(f.text(k)));
        }
        doc.insert(
            "jwt_default_policies".into(),
            json!(f.all("jwt_default_policies")),
        );
        doc.insert(
            "jwt_allowed_issuers".into(),
            json!(split_list(f.raw("jwt_allowed_issuers"))),
        );
        doc.insert(
            "jwt_allowed_audiences".into(),
            json!(split_list(f.raw("jwt_allowed_audiences"))),
        );
    } else {
        doc.insert("use_keyless".into(), json!(true));
        doc.insert("enable_jwt".into(), json!(false));
    }
    Value::Object(doc)
}

fn place(errors: &mut FieldErrors, e: &ControlError) {
    match e {
        ControlError::Invalid(v) => errors.place_validation(v, TABLE),
        ControlError::Conflict { field, message } => errors.place(field, message, TABLE),
        other => errors.general(other.to_string()),
    }
}

async fn policy_choices(ui: &DashboardUi) -> Vec<Value> {
    ui.control()
        .list_policies()
        .await
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let name = s(&p.doc, "/name");
            json!([p.id, if name.is_empty() { p.id.as_str() } else { name }])
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn form_page(
    ui: &DashboardUi,
    base: Value,
    status: StatusCode,
    is_new: bool,
    action: &str,
    form: Value,
    errors: &FieldErrors,
    jwks: Option<Value>,
) -> Response {
    let ctx = merge(
        base,
        json!({"form": form, "errors": errors, "is_new": is_new, "action": action,
               "policies": policy_choices(ui).await, "jwks": jwks,
               "signing_methods": [["rsa", "RSA (RS256, PS256, …)"], ["ecdsa", "ECDSA (ES256, ES384)"],
                                   ["eddsa", "EdDSA (Ed25519)"], ["hmac", "HMAC (HS256, …)"]]}),
    );
    render(status, "api_form.html", &ctx)
}

pub(super) async fn list(State(ui): State<DashboardUi>, headers: HeaderMap) -> Response {
    let a = match ui.admin(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = ui.base(&a, "apis", "APIs");
    let apis = match ui.control().list_apis().await {
        Ok(l) => l,
        Err(e) => return failure(base, &e.to_string()),
    };
    let rows: Vec<Value> = apis
        .iter()
        .map(|d| {
            let def = ApiDefinition::from_stored(&d.doc).unwrap_or_default();
            json!({"id": d.id, "name": def.name, "listen_path": def.proxy.listen_path,
                   "target_url": def.proxy.target_url, "active": def.active,
                   "auth": if def.enable_jwt { "JWT" } else if def.use_keyless { "Keyless" } else { "Other" }})
        })
        .collect();
    render(
        StatusCode::OK,
        "apis.html",
        &merge(base, json!({"apis": rows})),
    )
}

pub(super) async fn new_page(State(ui): State<DashboardUi>, headers: HeaderMap) -> Response {
    let a = match ui.admin(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = ui.base(&a, "apis", "New API");
    let form = form_from_doc(&json!({"proxy": {"strip_listen_path": true}, "active": true}));
    form_page(
        &ui,
        base,
        StatusCode::OK,
        true,
        "/apis/new",
        form,
        &FieldErrors::default(),
        None,
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
    let base = ui.base(&a, "apis", "Edit API");
    match ui.control().get_api(&id).await {
        Ok(d) => {
            let base = merge(base, json!({"api_warnings": stored_warnings(&d.doc, &id)}));
            form_page(
                &ui,
                base,
                StatusCode::OK,
                false,
                &format!("/apis/{id}"),
                form_from_doc(&d.doc),
                &FieldErrors::default(),
                None,
            )
            .await
        }
        Err(ControlError::NotFound(m)) => not_found(base, &m, "/apis"),
        Err(e) => failure(base, &e.to_string()),
    }
}

/// The warnings about a stored definition, as the admin API gave them when it was saved.
fn stored_warnings(doc: &Value, id: &str) -> Vec<String> {
    validate_api(doc.clone(), Some(id))
        .map(|v| v.warnings)
        .unwrap_or_default()
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
        Some(i) => format!("/apis/{i}"),
        None => "/apis/new".to_owned(),
    };
    let title = if is_new { "New API" } else { "Edit API" };
    let mut errors = FieldErrors::default();

    if f.text("action") == "fetch_jwks" {
        let jwks = match fetch_jwks(&f.text("jwt_source"), ui.timeout()).await {
            Ok((url, keys)) => json!({"url": url, "keys": keys}),
            Err(e) => {
                errors.add("jwt_source", e);
                Value::Null
            }
        };
        let base = ui.base(&a, "apis", title);
        return form_page(
            &ui,
            base,
            StatusCode::OK,
            is_new,
            &action,
            form_from_post(&f),
            &errors,
            (!jwks.is_null()).then_some(jwks),
        )
        .await;
    }

    let stored = match &id {
        Some(i) => match ui.control().get_api(i).await {
            Ok(d) => d.doc,
            Err(e) => {
                let base = ui.base(&a, "apis", title);
                return not_found(base, &e.to_string(), "/apis");
            }
        },
        None => json!({}),
    };
    let mut doc = doc_from_post(&f, stored);
    if let (Some(i), Value::Object(m)) = (&id, &mut doc) {
        m.insert("api_id".into(), json!(i));
    }
    let mode = if is_new {
        WriteMode::Create
    } else {
        WriteMode::Replace
    };
    match ui.control().put_api(doc, id.as_deref(), mode).await {
        Ok(w) => {
            // The API's page, where this leads, lists the warnings.
            let flash = if w.warnings.is_empty() {
                Flash::ok(format!("API '{}' saved.", f.text("name")))
            } else {
                Flash::with(
                    "warn",
                    format!("API '{}' saved, with warnings (below).", f.text("name")),
                    Vec::new(),
                )
            };
            ui.flash(&a, flash);
            Redirect::to(&format!("/apis/{}", w.id)).into_response()
        }
        Err(e) => {
            place(&mut errors, &e);
            let base = ui.base(&a, "apis", title);
            form_page(
                &ui,
                base,
                StatusCode::BAD_REQUEST,
                is_new,
                &action,
                form_from_post(&f),
                &errors,
                None,
            )
            .await
        }
    }
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
    let base = ui.base(&a, "apis", "Delete API");
    match ui.control().get_api(&id).await {
        Ok(d) => confirm_page(
            base,
            &format!("Delete the API '{}' ({})?", s(&d.doc, "/name"), id),
            "The gateway stops serving it at once. Policies that grant it keep their access rights.",
            &format!("/apis/{id}/delete"),
            "Delete API",
            &format!("/apis/{id}"),
        ),
        Err(e) => not_found(base, &e.to_string(), "/apis"),
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
    match ui.control().delete_api(&id).await {
        Ok(()) => {
            ui.flash(&a, Flash::ok(format!("API '{id}' deleted.")));
            Redirect::to("/apis").into_response()
        }
        Err(e) => {
            let base = ui.base(&a, "apis", "Delete API");
            not_found(base, &e.to_string(), "/apis")
        }
    }
}

/// The JWKS URL in `jwt_source`: a URL, or a base64-encoded URL (Tyk stores it so).
pub fn jwks_url(source: &str) -> Option<String> {
    let s = source.trim();
    if s.starts_with("http://") || s.starts_with("https://") {
        return Some(s.to_owned());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(s)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())?;
    let d = decoded.trim();
    (d.starts_with("http://") || d.starts_with("https://")).then(|| d.to_owned())
}

/// Fetches a JWKS (server-side, with a timeout and a 1 MiB limit) and lists its keys.
pub async fn fetch_jwks(source: &str, timeout: Duration) -> Result<(String, Vec<Value>), String> {
    let url = jwks_url(source).ok_or_else(|| {
        "enter the JWKS URL (https://…/keys) to fetch its keys; a PEM key or secret has no keys to list"
            .to_owned()
    })?;
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
    let mut resp = client
        .get(&url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                format!("{url} did not answer within {} s", timeout.as_secs())
            } else {
                format!("{url} could not be reached: {e}")
            }
        })?;
    if !resp.status().is_success() {
        return Err(format!("{url} answered {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading {url} failed: {e}"))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > 1 << 20 {
            return Err(format!("{url} sent more than 1 MiB: not a JWKS"));
        }
    }
    let v: Value = serde_json::from_slice(&body).map_err(|_| format!("{url} did not send JSON"))?;
    keys_of(&v)
        .map(|k| (url.clone(), k))
        .ok_or_else(|| format!("{url} sent JSON without a \"keys\" list: not a JWKS"))
}

/// The `kid`, `kty`, `alg` and `use` of each key of a JWKS document.
pub fn keys_of(jwks: &Value) -> Option<Vec<Value>> {
    let keys = jwks.get("keys")?.as_array()?;
    Some(
        keys.iter()
            .map(|k| {
                json!({"kid": k.get("kid").and_then(Value::as_str).unwrap_or("(none)"),
                       "kty": k.get("kty").and_then(Value::as_str).unwrap_or(""),
                       "alg": k.get("alg").and_then(Value::as_str).unwrap_or(""),
                       "use": k.get("use").and_then(Value::as_str).unwrap_or("")})
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_round_trips_and_keeps_other_fields() {
        let stored = json!({"api_id": "pay", "name": "Old", "custom_middleware": {"x": 1},
                            "proxy": {"listen_path": "/old/", "target_url": "http://a", "preserve_host_header": true}});
        let f = Form::parse(
            b"name=Payments&listen_path=%2Fpay%2F&target_url=http%3A%2F%2F127.0.0.1%3A9&strip_listen_path=on&active=on\
              &auth_mode=jwt&jwt_signing_method=rsa&jwt_source=http%3A%2F%2Fidp%2Fkeys&jwt_identity_base_field=sub\
              &jwt_policy_field_name=pol&jwt_default_policies=gold&jwt_allowed_issuers=a%2C+b&jwt_allowed_audiences=",
        );
        let doc = doc_from_post(&f, stored);
        assert_eq!(doc["custom_middleware"], json!({"x": 1}));
        assert_eq!(doc["proxy"]["preserve_host_header"], json!(true));
        assert_eq!(doc["proxy"]["listen_path"], json!("/pay/"));
        assert_eq!(doc["enable_jwt"], json!(true));
        assert_eq!(doc["use_keyless"], json!(false));
        assert_eq!(doc["jwt_allowed_issuers"], json!(["a", "b"]));
        assert_eq!(doc["jwt_default_policies"], json!(["gold"]));
        let back = form_from_doc(&doc);
        assert_eq!(back["auth_mode"], json!("jwt"));
        assert_eq!(back["jwt_allowed_issuers"], json!("a\nb"));
        assert_eq!(back["name"], json!("Payments"));
    }

    #[test]
    fn an_empty_listen_path_is_reported_next_to_its_field() {
        let f = Form::parse(b"name=X&listen_path=&target_url=http%3A%2F%2Fa&auth_mode=keyless");
        let doc = doc_from_post(&f, json!({}));
        let e = gatehouse_domain::api::validate_api(doc, None).unwrap_err();
        let mut errors = FieldErrors::default();
        errors.place_validation(&e, TABLE);
        assert!(errors.fields["listen_path"].contains("listen_path is required"));
        assert!(errors.general.is_empty());
    }

    #[test]
    fn jwks_sources_and_keys() {
        assert_eq!(
            jwks_url("https://idp/keys").as_deref(),
            Some("https://idp/keys")
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode("http://idp/k");
        assert_eq!(jwks_url(&b64).as_deref(), Some("http://idp/k"));
        assert_eq!(jwks_url("-----BEGIN PUBLIC KEY-----"), None);
        let keys =
            keys_of(&json!({"keys": [{"kid": "k1", "kty": "RSA", "alg": "RS256"}]})).unwrap();
        assert_eq!(keys[0]["kid"], json!("k1"));
        assert!(keys_of(&json!({"nokeys": 1})).is_none());
    }
}
