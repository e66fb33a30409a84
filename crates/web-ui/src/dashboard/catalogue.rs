//! The portal catalogue (entries with a *Settings* tab that can override the global DCR settings,
//! and a *Documentation* tab holding the OpenAPI document) and the portal settings (*API Access*).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};

use gatehouse_admin_api::portal::PortalError;
use gatehouse_domain::portal::{CatalogueEntry, DcrOptions, PortalConfig};
use gatehouse_store::WriteMode;

use super::{Admin, DashboardUi, confirm_page, failure, not_found};
use crate::dcr_form::{
    ENTRY_TABLE, GLOBAL_TABLE, choices, discover_into, metadata_from_form, options_for_test,
    options_json, run_test, view_from_form, view_from_options,
};
use crate::form::{FieldErrors, Form};
use crate::openapi;
use crate::templates::render;
use crate::{Flash, merge};

/// The settings key prefix of catalogue entries' OpenAPI documents.
pub const DOC_SETTING_PREFIX: &str = "catalogue_doc:";

/// The OpenAPI document attached to a catalogue entry (empty when none).
pub async fn entry_doc(store: &dyn gatehouse_store::Store, id: &str) -> String {
    store
        .get_setting(&format!("{DOC_SETTING_PREFIX}{id}"))
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

pub(crate) fn place_portal_error(
    errors: &mut FieldErrors,
    e: &PortalError,
    table: &[(&str, &str)],
) {
    match e {
        PortalError::Invalid(v) => errors.place_validation(v, table),
        PortalError::Conflict { field, message } => errors.place(field, message, table),
        other => errors.general(other.to_string()),
    }
}

fn entry_form(e: &CatalogueEntry, doc: &str) -> Value {
    json!({
        "id": e.id, "name": e.name, "short_description": e.short_description,
        "long_description": e.long_description, "api_id": e.api_id, "policy_id": e.policy_id,
        "show": e.show, "override": e.config.override_global, "enable_dcr": e.config.enable_dcr,
        "openapi": doc,
    })
}

fn entry_form_from_post(f: &Form) -> Value {
    json!({
        "id": f.text("id"), "name": f.text("name"), "short_description": f.text("short_description"),
        "long_description": f.raw("long_description"), "api_id": f.text("api_id"),
        "policy_id": f.text("policy_id"), "show": f.checked("show"), "override": f.checked("override"),
        "enable_dcr": f.checked("enable_dcr"), "openapi": f.raw("openapi"),
    })
}

/// The entry to store: `stored` (so fields without a form field are kept) with the form's values.
pub fn entry_json(f: &Form, stored: Option<&CatalogueEntry>) -> Value {
    let base = stored.cloned().unwrap_or_default();
    let mut v = serde_json::to_value(&base).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut v {
        let id = f.text("id");
        if stored.is_none() && !id.is_empty() {
            m.insert("id".into(), json!(id));
        } else if stored.is_none() {
            m.remove("id");
        }
        for k in ["name", "short_description", "api_id", "policy_id"] {
            m.insert(k.into(), json!(f.text(k)));
        }
        m.insert(
            "long_description".into(),
            json!(f.raw("long_description").trim_end()),
        );
        m.insert("show".into(), json!(f.checked("show")));
        m.insert(
            "config".into(),
            json!({
                "override": f.checked("override"),
                "enable_dcr": f.checked("enable_dcr"),
                "dcr_options": options_json(f, &base.config.dcr_options),
            }),
        );
    }
    v
}

async fn choices_of(ui: &DashboardUi) -> (Vec<Value>, Vec<Value>) {
    let apis = ui
        .control()
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
            json!([d.id, format!("{n} ({})", d.id)])
        })
        .collect();
    let policies = ui
        .control()
        .list_policies()
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
            json!([d.id, format!("{n} ({})", d.id)])
        })
        .collect();
    (apis, policies)
}

#[allow(clippy::too_many_arguments)]
async fn entry_page(
    ui: &DashboardUi,
    base: Value,
    status: StatusCode,
    is_new: bool,
    action: &str,
    form: Value,
    d: Value,
    errors: &FieldErrors,
    extra: Value,
) -> Response {
    let (mut apis, mut policies) = choices_of(ui).await;
    apis.insert(0, json!(["", "— no API (documentation only) —"]));
    policies.insert(0, json!(["", "— choose a policy —"]));
    let ctx = merge(
        merge(
            base,
            json!({"form": form, "d": d, "errors": errors, "is_new": is_new, "action": action,
                   "apis": apis, "policies": policies, "choices": choices()}),
        ),
        extra,
    );
    render(status, "catalogue_form.html", &ctx)
}

pub(super) async fn list(State(ui): State<DashboardUi>, headers: HeaderMap) -> Response {
    let a = match ui.admin(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = ui.base(&a, "catalogue", "Catalogue");
    let (entries, cfg) = match (ui.portal().catalogue().await, ui.portal().config().await) {
        (Ok(e), Ok(c)) => (e, c),
        (Err(e), _) | (_, Err(e)) => return failure(base, &e.to_string()),
    };
    let rows: Vec<Value> = entries
        .iter()
        .map(|e| {
            let dcr = gatehouse_domain::portal::effective_dcr(&cfg, e).is_some();
            json!({"id": e.id, "name": e.name, "api_id": e.api_id, "policy_id": e.policy_id,
                   "show": e.show, "override": e.config.override_global, "dcr": dcr})
        })
        .collect();
    render(
        StatusCode::OK,
        "catalogue.html",
        &merge(base, json!({"entries": rows})),
    )
}

pub(super) async fn new_page(State(ui): State<DashboardUi>, headers: HeaderMap) -> Response {
    let a = match ui.admin(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = ui.base(&a, "catalogue", "Add to the catalogue");
    let e = CatalogueEntry::default();
    entry_page(
        &ui,
        base,
        StatusCode::OK,
        true,
        "/catalogue/new",
        entry_form(&e, ""),
        view_from_options(&DcrOptions::default()),
        &FieldErrors::default(),
        json!({}),
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
    let base = ui.base(&a, "catalogue", "Catalogue entry");
    match ui.portal().catalogue_entry(&id).await {
        Ok(e) => {
            let doc = entry_doc(ui.store().as_ref(), &id).await;
            entry_page(
                &ui,
                base,
                StatusCode::OK,
                false,
                &format!("/catalogue/{id}"),
                entry_form(&e, &doc),
                view_from_options(&e.config.dcr_options),
                &FieldErrors::default(),
                json!({}),
            )
            .await
        }
        Err(PortalError::NotFound(m)) => not_found(base, &m, "/catalogue"),
        Err(e) => failure(base, &e.to_string()),
    }
}

pub(super) async fn create(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    save_entry(ui, headers, body, None).await
}

pub(super) async fn update(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    save_entry(ui, headers, body, Some(id)).await
}

async fn save_entry(
    ui: DashboardUi,
    headers: HeaderMap,
    body: Bytes,
    id: Option<String>,
) -> Response {
    let f = Form::parse(&body);
    let a = match ui.admin_post(&headers, &f).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let is_new = id.is_none();
    let action_url = match &id {
        Some(i) => format!("/catalogue/{i}"),
        None => "/catalogue/new".to_owned(),
    };
    let title = if is_new {
        "Add to the catalogue"
    } else {
        "Catalogue entry"
    };
    let stored = match &id {
        Some(i) => match ui.portal().catalogue_entry(i).await {
            Ok(e) => Some(e),
            Err(e) => {
                let base = ui.base(&a, "catalogue", title);
                return not_found(base, &e.to_string(), "/catalogue");
            }
        },
        None => None,
    };
    let stored_opts = stored
        .as_ref()
        .map(|e| e.config.dcr_options.clone())
        .unwrap_or_default();
    let mut errors = FieldErrors::default();
    let mut d = view_from_form(&f, !stored_opts.access_token.is_empty());
    let mut extra = json!({});
    let mut status = StatusCode::OK;

    match f.text("action").as_str() {
        "discover" => match discover_into(&mut d, &f.text("dcr_issuer"), ui.timeout()).await {
            Ok(url) => extra = json!({"discovered": url}),
            Err(m) => errors.add("dcr_issuer", m),
        },
        "test" => match options_for_test(&f, &stored_opts) {
            Ok(o) => match run_test(&o, ui.timeout()).await {
                Ok(report) => extra = json!({"report": report}),
                Err(v) => errors.place_validation(&v, ENTRY_TABLE),
            },
            Err(v) => errors.place_validation(&v, ENTRY_TABLE),
        },
        _ => {
            if let Err(m) = metadata_from_form(&f) {
                errors.add("dcr_registration_metadata", m);
            }
            let doc = f.raw("openapi").trim().to_owned();
            if !doc.is_empty()
                && let Err(m) = openapi::parse_document(&doc)
            {
                errors.add("openapi", m);
            }
            if errors.is_empty() {
                let mode = if is_new {
                    WriteMode::Create
                } else {
                    WriteMode::Replace
                };
                match ui
                    .portal()
                    .put_catalogue(entry_json(&f, stored.as_ref()), id.as_deref(), mode)
                    .await
                {
                    Ok((entry, _)) => {
                        let key = format!("{DOC_SETTING_PREFIX}{}", entry.id);
                        if let Err(e) = ui.store().put_setting(&key, &doc).await {
                            ui.flash(
                                &a,
                                Flash::with(
                                    "warn",
                                    "Entry saved, but its documentation was not.",
                                    vec![e.to_string()],
                                ),
                            );
                        } else {
                            ui.flash(
                                &a,
                                Flash::ok(format!("Catalogue entry '{}' saved.", entry.name)),
                            );
                        }
                        return Redirect::to(&format!("/catalogue/{}", entry.id)).into_response();
                    }
                    Err(e) => place_portal_error(&mut errors, &e, ENTRY_TABLE),
                }
            }
            status = StatusCode::BAD_REQUEST;
        }
    }
    let base = ui.base(&a, "catalogue", title);
    entry_page(
        &ui,
        base,
        status,
        is_new,
        &action_url,
        entry_form_from_post(&f),
        d,
        &errors,
        extra,
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
    let base = ui.base(&a, "catalogue", "Remove from the catalogue");
    match ui.portal().catalogue_entry(&id).await {
        Ok(e) => confirm_page(
            base,
            &format!("Remove '{}' from the catalogue?", e.name),
            "Developers no longer see it; their existing OAuth clients keep working.",
            &format!("/catalogue/{id}/delete"),
            "Remove entry",
            &format!("/catalogue/{id}"),
        ),
        Err(e) => not_found(base, &e.to_string(), "/catalogue"),
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
    match ui.portal().delete_catalogue(&id).await {
        Ok(()) => {
            let _ = ui
                .store()
                .put_setting(&format!("{DOC_SETTING_PREFIX}{id}"), "")
                .await;
            ui.flash(&a, Flash::ok("Catalogue entry removed."));
            Redirect::to("/catalogue").into_response()
        }
        Err(e) => {
            let base = ui.base(&a, "catalogue", "Remove from the catalogue");
            not_found(base, &e.to_string(), "/catalogue")
        }
    }
}

// ----- portal settings ----------------------------------------------------------------------

fn settings_form(c: &PortalConfig) -> Value {
    json!({"signup_enabled": c.signup_enabled, "max_clients_per_developer": c.max_clients_per_developer.to_string(),
           "enable_dcr": c.enable_dcr})
}

/// The configuration to store: `stored` with the form's values.
pub fn settings_json(f: &Form, stored: &PortalConfig, errors: &mut FieldErrors) -> Value {
    let mut v = serde_json::to_value(stored).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut v {
        m.insert("signup_enabled".into(), json!(f.checked("signup_enabled")));
        m.insert("enable_dcr".into(), json!(f.checked("enable_dcr")));
        m.insert(
            "max_clients_per_developer".into(),
            json!(f.number::<i64>(
                "max_clients_per_developer",
                "Max clients per developer",
                -1,
                errors
            )),
        );
        m.insert("dcr_options".into(), options_json(f, &stored.dcr_options));
    }
    v
}

fn settings_render(
    base: Value,
    status: StatusCode,
    form: Value,
    d: Value,
    errors: &FieldErrors,
    extra: Value,
) -> Response {
    let ctx = merge(
        merge(
            base,
            json!({"form": form, "d": d, "errors": errors, "choices": choices()}),
        ),
        extra,
    );
    render(status, "portal_settings.html", &ctx)
}

fn base_settings(ui: &DashboardUi, a: &Admin) -> Value {
    ui.base(a, "settings", "Portal settings")
}

pub(super) async fn settings_page(State(ui): State<DashboardUi>, headers: HeaderMap) -> Response {
    let a = match ui.admin(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = base_settings(&ui, &a);
    match ui.portal().config().await {
        Ok(c) => settings_render(
            base,
            StatusCode::OK,
            settings_form(&c),
            view_from_options(&c.dcr_options),
            &FieldErrors::default(),
            json!({}),
        ),
        Err(e) => failure(base, &e.to_string()),
    }
}

pub(super) async fn save_settings(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = Form::parse(&body);
    let a = match ui.admin_post(&headers, &f).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let stored = match ui.portal().config().await {
        Ok(c) => c,
        Err(e) => return failure(base_settings(&ui, &a), &e.to_string()),
    };
    let mut errors = FieldErrors::default();
    let mut d = view_from_form(&f, !stored.dcr_options.access_token.is_empty());
    let mut extra = json!({});
    let mut status = StatusCode::OK;
    match f.text("action").as_str() {
        "discover" => match discover_into(&mut d, &f.text("dcr_issuer"), ui.timeout()).await {
            Ok(url) => extra = json!({"discovered": url}),
            Err(m) => errors.add("dcr_issuer", m),
        },
        "test" => match options_for_test(&f, &stored.dcr_options) {
            Ok(o) => match run_test(&o, ui.timeout()).await {
                Ok(report) => extra = json!({"report": report}),
                Err(v) => errors.place_validation(&v, GLOBAL_TABLE),
            },
            Err(v) => errors.place_validation(&v, GLOBAL_TABLE),
        },
        _ => {
            if let Err(m) = metadata_from_form(&f) {
                errors.add("dcr_registration_metadata", m);
            }
            let v = settings_json(&f, &stored, &mut errors);
            if errors.is_empty() {
                match ui.portal().put_config(v).await {
                    Ok(_) => {
                        ui.flash(&a, Flash::ok("Portal settings saved."));
                        return Redirect::to("/portal-settings").into_response();
                    }
                    Err(e) => place_portal_error(&mut errors, &e, GLOBAL_TABLE),
                }
            }
            status = StatusCode::BAD_REQUEST;
        }
    }
    let form = json!({"signup_enabled": f.checked("signup_enabled"),
                      "max_clients_per_developer": f.text("max_clients_per_developer"),
                      "enable_dcr": f.checked("enable_dcr")});
    settings_render(base_settings(&ui, &a), status, form, d, &errors, extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_domain::portal::Secret;

    #[test]
    fn entry_json_keeps_the_token_unless_retyped() {
        let mut stored = CatalogueEntry {
            id: "pay".into(),
            name: "Payments".into(),
            policy_id: "gold".into(),
            ..Default::default()
        };
        stored.config.override_global = true;
        stored.config.enable_dcr = true;
        stored.config.dcr_options.access_token = Secret::new("iat");
        stored.config.dcr_options.provider = gatehouse_domain::portal::Provider::Okta;
        stored.config.dcr_options.registration_endpoint = "http://idp/reg".into();
        let f = Form::parse(
            b"name=Payments+API&policy_id=gold&api_id=pay&show=on&override=on&enable_dcr=on\
              &dcr_provider=okta&dcr_grant_types=client_credentials&dcr_registration_endpoint=http%3A%2F%2Fidp%2Freg",
        );
        let v = entry_json(&f, Some(&stored));
        assert_eq!(v["id"], json!("pay"));
        assert_eq!(v["config"]["override"], json!(true));
        assert!(v["config"]["dcr_options"].get("access_token").is_none());
        assert!(!v.to_string().contains("iat\""));
        // what the domain makes of it: the stored token is kept
        let e = CatalogueEntry::from_input(v, Some("pay"), Some(&stored)).unwrap();
        assert_eq!(e.config.dcr_options.access_token.expose(), "iat");
        assert_eq!(e.name, "Payments API");
    }

    #[test]
    fn settings_errors_map_to_fields() {
        let stored = PortalConfig::default();
        let f = Form::parse(b"enable_dcr=on&dcr_provider=keycloak&max_clients_per_developer=x");
        let mut errors = FieldErrors::default();
        let v = settings_json(&f, &stored, &mut errors);
        assert!(errors.fields.contains_key("max_clients_per_developer"));
        let e = PortalConfig::from_input(v, Some(&stored)).unwrap_err();
        let mut errors = FieldErrors::default();
        errors.place_validation(&e, GLOBAL_TABLE);
        assert!(
            errors.fields.contains_key("dcr_registration_endpoint"),
            "{errors:?}"
        );
    }
}
