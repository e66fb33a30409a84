//! Admin API handlers for the developer portal: configuration, catalogue, DCR discovery and
//! connection test, developers, and all OAuth clients.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use gatehouse_dcr::{ClientRequest, discover, driver_for, test_connection};
use gatehouse_domain::portal::DcrOptions;
use gatehouse_store::{WriteMode, WriteOutcome};

use crate::AdminState;
use crate::error::{ApiError, ErrorBody};
use crate::handlers::parse_json;
use crate::portal::developer_view;

fn written(outcome: WriteOutcome, body: Value) -> impl IntoResponse {
    let status = match outcome {
        WriteOutcome::Created => StatusCode::CREATED,
        WriteOutcome::Updated => StatusCode::OK,
    };
    (status, Json(body))
}

/// The portal configuration (the initial access token shows only as `access_token_set`).
#[utoipa::path(get, path = "/api/portal/configuration", tag = "portal",
    responses((status = 200, description = "Portal configuration", body = Object)))]
pub async fn get_configuration(State(s): State<AdminState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        serde_json::to_value(s.portal.config().await?).unwrap_or_default(),
    ))
}

/// Replace the portal configuration: `enable_dcr`, `dcr_options{provider, grant_types,
/// response_types, token_endpoint_auth_method, idp_host, registration_endpoint, access_token
/// (write-only; absent keeps the stored one), token_endpoint, scopes, registration_metadata}`,
/// `signup_enabled`, `max_clients_per_developer` (-1 = unlimited).
#[utoipa::path(put, path = "/api/portal/configuration", tag = "portal",
    request_body(content = Object, description = "Portal configuration"),
    responses((status = 200, description = "Saved", body = Object),
              (status = 400, description = "Invalid; `field` names the field", body = ErrorBody)))]
pub async fn put_configuration(
    State(s): State<AdminState>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let cfg = s.portal.put_config(parse_json(&body)?).await?;
    Ok(Json(serde_json::to_value(cfg).unwrap_or_default()))
}

/// List catalogue entries.
#[utoipa::path(get, path = "/api/portal/catalogue", tag = "portal",
    responses((status = 200, description = "Catalogue entries", body = Vec<Object>)))]
pub async fn list_catalogue(State(s): State<AdminState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        serde_json::to_value(s.portal.catalogue().await?).unwrap_or_default(),
    ))
}

/// Add an API to the catalogue: `{name, short_description, long_description, api_id, policy_id,
/// show, config{override, enable_dcr, dcr_options{…}}}`. The API and policy must exist and the
/// policy must grant the API.
#[utoipa::path(post, path = "/api/portal/catalogue", tag = "portal",
    request_body(content = Object, description = "Catalogue entry"),
    responses((status = 201, description = "Created", body = Object),
              (status = 400, description = "Invalid", body = ErrorBody)))]
pub async fn create_catalogue(
    State(s): State<AdminState>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let (entry, outcome) = s
        .portal
        .put_catalogue(parse_json(&body)?, None, WriteMode::Create)
        .await?;
    Ok(written(
        outcome,
        serde_json::to_value(entry).unwrap_or_default(),
    ))
}

/// One catalogue entry.
#[utoipa::path(get, path = "/api/portal/catalogue/{id}", tag = "portal",
    params(("id" = String, Path, description = "Entry id")),
    responses((status = 200, description = "Entry", body = Object),
              (status = 404, description = "Unknown", body = ErrorBody)))]
pub async fn get_catalogue(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        serde_json::to_value(s.portal.catalogue_entry(&id).await?).unwrap_or_default(),
    ))
}

/// Replace a catalogue entry (an absent `access_token` keeps the stored one).
#[utoipa::path(put, path = "/api/portal/catalogue/{id}", tag = "portal",
    params(("id" = String, Path, description = "Entry id")),
    request_body(content = Object, description = "Catalogue entry"),
    responses((status = 200, description = "Updated", body = Object),
              (status = 400, description = "Invalid", body = ErrorBody),
              (status = 404, description = "Unknown", body = ErrorBody)))]
pub async fn replace_catalogue(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let (entry, outcome) = s
        .portal
        .put_catalogue(parse_json(&body)?, Some(&id), WriteMode::Replace)
        .await?;
    Ok(written(
        outcome,
        serde_json::to_value(entry).unwrap_or_default(),
    ))
}

/// Remove a catalogue entry.
#[utoipa::path(delete, path = "/api/portal/catalogue/{id}", tag = "portal",
    params(("id" = String, Path, description = "Entry id")),
    responses((status = 200, description = "Deleted", body = Object),
              (status = 404, description = "Unknown", body = ErrorBody)))]
pub async fn delete_catalogue(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.portal.delete_catalogue(&id).await?;
    Ok(Json(json!({"status": "ok", "action": "deleted", "id": id})))
}

const DCR_TIMEOUT: Duration = Duration::from_secs(10);

/// Read an IdP's discovery document: `{"issuer": "https://…"}` → registration, token and JWKS
/// endpoints, supported grant types and auth methods.
#[utoipa::path(post, path = "/api/portal/dcr/discover", tag = "portal",
    request_body(content = Object, description = "{\"issuer\": \"https://idp.example.com\"}"),
    responses((status = 200, description = "What the IdP publishes", body = Object),
              (status = 400, description = "No issuer", body = ErrorBody),
              (status = 502, description = "IdP unreachable or not an OpenID provider", body = ErrorBody)))]
pub async fn dcr_discover(
    State(_s): State<AdminState>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let v = parse_json(&body)?;
    let issuer = v
        .get("issuer")
        .and_then(Value::as_str)
        .filter(|i| i.starts_with("http://") || i.starts_with("https://"))
        .ok_or_else(|| {
            ApiError::bad_field(
                "issuer",
                "issuer must be the IdP's URL, e.g. https://acme.okta.com/oauth2/default",
            )
        })?;
    let insecure = v
        .get("ssl_insecure_skip_verify")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let d = discover(issuer, DCR_TIMEOUT, insecure).await.map_err(|e| {
        ApiError::new(
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_GATEWAY),
            e.public_message(),
        )
    })?;
    Ok(Json(serde_json::to_value(d).unwrap_or_default()))
}

/// Register a throwaway client with the DCR settings in force (`{"catalogue_id": "…"}`, or none
/// for the global settings, or `{"dcr_options": {…}}` to try settings before saving them) and
/// delete it again; reports what the IdP said at each step.
#[utoipa::path(post, path = "/api/portal/dcr/test", tag = "portal",
    request_body(content = Object, description = "{\"catalogue_id\": \"…\"} or {\"dcr_options\": {…}} or {}"),
    responses((status = 200, description = "Step-by-step report; `ok` says whether all passed", body = Object),
              (status = 400, description = "DCR not configured", body = ErrorBody)))]
pub async fn dcr_test(
    State(s): State<AdminState>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let v = if body.is_empty() {
        json!({})
    } else {
        parse_json(&body)?
    };
    let options: DcrOptions = match (
        v.get("dcr_options"),
        v.get("catalogue_id").and_then(Value::as_str),
    ) {
        (Some(o), _) => {
            let given: DcrOptions = serde_json::from_value(o.clone())
                .map_err(|e| ApiError::bad_field("dcr_options", format!("dcr_options: {e}")))?;
            // A token left out of the form means "the stored one" (it is write-only).
            if given.access_token.is_empty() {
                let mut merged = given;
                if let Ok(stored) = s
                    .portal
                    .dcr_settings(v.get("catalogue_id").and_then(Value::as_str))
                    .await
                {
                    merged.access_token = stored.access_token;
                }
                merged
            } else {
                given
            }
        }
        (None, id) => s.portal.dcr_settings(id).await?,
    };
    let driver =
        driver_for(&options, DCR_TIMEOUT).map_err(|e| ApiError::bad_field(e.field, e.message))?;
    let name = format!(
        "gatehouse-connection-test-{}",
        &gatehouse_domain::ids::new_id()[..8]
    );
    let req = ClientRequest::from_options(name, Vec::new(), &options);
    let report = test_connection(driver.as_ref(), &req).await;
    Ok(Json(serde_json::to_value(report).unwrap_or_default()))
}

/// List developers.
#[utoipa::path(get, path = "/api/portal/developers", tag = "portal",
    responses((status = 200, description = "Developers (never passwords)", body = Vec<Object>)))]
pub async fn list_developers(State(s): State<AdminState>) -> Result<impl IntoResponse, ApiError> {
    let devs = s.portal.developers().await?;
    Ok(Json(devs.iter().map(developer_view).collect::<Vec<_>>()))
}

/// Add a developer: `{email, first_name, last_name, password}` (password write-only, 10+ chars).
#[utoipa::path(post, path = "/api/portal/developers", tag = "portal",
    request_body(content = Object, description = "Developer"),
    responses((status = 201, description = "Created", body = Object),
              (status = 400, description = "Invalid", body = ErrorBody),
              (status = 409, description = "Email taken", body = ErrorBody)))]
pub async fn create_developer(
    State(s): State<AdminState>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let d = s.portal.create_developer(parse_json(&body)?).await?;
    Ok((StatusCode::CREATED, Json(developer_view(&d))))
}

/// One developer with their OAuth clients.
#[utoipa::path(get, path = "/api/portal/developers/{id}", tag = "portal",
    params(("id" = String, Path, description = "Developer id")),
    responses((status = 200, description = "Developer", body = Object),
              (status = 404, description = "Unknown", body = ErrorBody)))]
pub async fn get_developer(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let d = s.portal.developer(&id).await?;
    let mut v = developer_view(&d);
    v["oauth_clients"] = Value::Array(s.portal.clients_of(&id).await?);
    Ok(Json(v))
}

/// Update a developer: `email`, names, `password`, `inactive` (deactivating deletes their clients
/// at the IdP).
#[utoipa::path(put, path = "/api/portal/developers/{id}", tag = "portal",
    params(("id" = String, Path, description = "Developer id")),
    request_body(content = Object, description = "Fields to change"),
    responses((status = 200, description = "Updated", body = Object),
              (status = 400, description = "Invalid", body = ErrorBody),
              (status = 404, description = "Unknown", body = ErrorBody)))]
pub async fn update_developer(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let d = s.portal.update_developer(&id, parse_json(&body)?).await?;
    Ok(Json(developer_view(&d)))
}

/// Delete a developer (their clients are deleted at the IdP first).
#[utoipa::path(delete, path = "/api/portal/developers/{id}", tag = "portal",
    params(("id" = String, Path, description = "Developer id")),
    responses((status = 200, description = "Deleted", body = Object),
              (status = 404, description = "Unknown", body = ErrorBody),
              (status = 502, description = "The IdP could not delete a client; nothing was deleted here", body = ErrorBody)))]
pub async fn delete_developer(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.portal.delete_developer(&id).await?;
    Ok(Json(json!({"status": "ok", "action": "deleted", "id": id})))
}

/// Every OAuth client registered through the portal (no secrets).
#[utoipa::path(get, path = "/api/portal/clients", tag = "portal",
    responses((status = 200, description = "Clients", body = Vec<Object>)))]
pub async fn list_clients(State(s): State<AdminState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.portal.all_clients().await?))
}

/// Delete an OAuth client (at the IdP first); its tokens are refused from the next request on.
#[utoipa::path(delete, path = "/api/portal/clients/{client_id}", tag = "portal",
    params(("client_id" = String, Path, description = "Client id")),
    responses((status = 200, description = "Deleted", body = Object),
              (status = 404, description = "Unknown", body = ErrorBody),
              (status = 502, description = "The IdP could not be reached", body = ErrorBody)))]
pub async fn delete_client(
    State(s): State<AdminState>,
    Path(client_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.portal.admin_delete_client(&client_id).await?;
    Ok(Json(
        json!({"status": "ok", "action": "deleted", "id": client_id}),
    ))
}
