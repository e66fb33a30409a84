//! Admin API handlers.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use gatehouse_domain::import::ImportItem;
use gatehouse_store::{WriteMode, WriteOutcome};

use crate::AdminState;
use crate::control::{TykBundle, WriteResult};
use crate::error::{ApiError, ErrorBody};

/// Parses a JSON body, answering 400 with the position of the syntax error.
pub(crate) fn parse_json(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_field(
            "",
            "the request body is empty; send a JSON object",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_field("", format!("the request body is not valid JSON: {e}")))
}

/// The answer to a write of an API definition.
#[derive(Serialize, ToSchema)]
pub struct ApiWriteResponse {
    /// Always `ok`.
    status: &'static str,
    /// `created` or `updated`.
    action: &'static str,
    /// The API's id.
    api_id: String,
    /// Fields that are kept but have no effect in Gatehouse.
    warnings: Vec<String>,
    /// The definition as stored.
    #[schema(value_type = Object)]
    api: Value,
}

/// The answer to a write of a policy.
#[derive(Serialize, ToSchema)]
pub struct PolicyWriteResponse {
    /// Always `ok`.
    status: &'static str,
    /// `created` or `updated`.
    action: &'static str,
    /// The policy's id.
    id: String,
    /// Fields that are kept but have no effect, and access rights naming unknown APIs.
    warnings: Vec<String>,
    /// The policy as stored.
    #[schema(value_type = Object)]
    policy: Value,
}

/// The answer to a delete.
#[derive(Serialize, ToSchema)]
pub struct DeleteResponse {
    /// Always `ok`.
    status: &'static str,
    /// Always `deleted`.
    action: &'static str,
    /// The id deleted.
    id: String,
}

fn action(o: WriteOutcome) -> &'static str {
    match o {
        WriteOutcome::Created => "created",
        WriteOutcome::Updated => "updated",
    }
}

fn api_written(w: WriteResult) -> impl IntoResponse {
    let status = match w.outcome {
        WriteOutcome::Created => StatusCode::CREATED,
        WriteOutcome::Updated => StatusCode::OK,
    };
    (
        status,
        Json(ApiWriteResponse {
            status: "ok",
            action: action(w.outcome),
            api_id: w.id,
            warnings: w.warnings,
            api: w.doc,
        }),
    )
}

fn policy_written(w: WriteResult) -> impl IntoResponse {
    let status = match w.outcome {
        WriteOutcome::Created => StatusCode::CREATED,
        WriteOutcome::Updated => StatusCode::OK,
    };
    (
        status,
        Json(PolicyWriteResponse {
            status: "ok",
            action: action(w.outcome),
            id: w.id,
            warnings: w.warnings,
            policy: w.doc,
        }),
    )
}

/// List API definitions.
#[utoipa::path(get, path = "/api/apis", tag = "apis",
    responses((status = 200, description = "All API definitions (Tyk Classic)", body = Vec<Object>),
              (status = 401, description = "No or wrong admin key", body = ErrorBody)))]
pub async fn list_apis(State(s): State<AdminState>) -> Result<impl IntoResponse, ApiError> {
    let docs = s.control.list_apis().await?;
    Ok(Json(docs.into_iter().map(|d| d.doc).collect::<Vec<_>>()))
}

/// Create an API from a Tyk Classic API definition (`api_id` is generated when absent).
#[utoipa::path(post, path = "/api/apis", tag = "apis",
    request_body(content = Object, description = "A Tyk Classic API definition"),
    responses((status = 201, description = "Created", body = ApiWriteResponse),
              (status = 400, description = "Invalid definition; `field` names the field", body = ErrorBody),
              (status = 409, description = "api_id exists or the listen path is taken", body = ErrorBody)))]
pub async fn create_api(
    State(s): State<AdminState>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let v = parse_json(&body)?;
    Ok(api_written(
        s.control.put_api(v, None, WriteMode::Create).await?,
    ))
}

/// Get one API definition, exactly as stored.
#[utoipa::path(get, path = "/api/apis/{api_id}", tag = "apis",
    params(("api_id" = String, Path, description = "The API's id")),
    responses((status = 200, description = "The definition", body = Object),
              (status = 404, description = "Unknown id", body = ErrorBody)))]
pub async fn get_api(
    State(s): State<AdminState>,
    Path(api_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.control.get_api(&api_id).await?.doc))
}

/// Replace an API definition. Live on the gateway within a second.
#[utoipa::path(put, path = "/api/apis/{api_id}", tag = "apis",
    params(("api_id" = String, Path, description = "The API's id")),
    request_body(content = Object, description = "A Tyk Classic API definition"),
    responses((status = 200, description = "Updated", body = ApiWriteResponse),
              (status = 400, description = "Invalid definition", body = ErrorBody),
              (status = 404, description = "Unknown id", body = ErrorBody),
              (status = 409, description = "Listen path taken", body = ErrorBody)))]
pub async fn replace_api(
    State(s): State<AdminState>,
    Path(api_id): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let v = parse_json(&body)?;
    Ok(api_written(
        s.control
            .put_api(v, Some(&api_id), WriteMode::Replace)
            .await?,
    ))
}

/// Delete an API.
#[utoipa::path(delete, path = "/api/apis/{api_id}", tag = "apis",
    params(("api_id" = String, Path, description = "The API's id")),
    responses((status = 200, description = "Deleted", body = DeleteResponse),
              (status = 404, description = "Unknown id", body = ErrorBody)))]
pub async fn delete_api(
    State(s): State<AdminState>,
    Path(api_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.control.delete_api(&api_id).await?;
    Ok(Json(DeleteResponse {
        status: "ok",
        action: "deleted",
        id: api_id,
    }))
}

/// List policies.
#[utoipa::path(get, path = "/api/policies", tag = "policies",
    responses((status = 200, description = "All policies (Tyk format)", body = Vec<Object>)))]
pub async fn list_policies(State(s): State<AdminState>) -> Result<impl IntoResponse, ApiError> {
    let docs = s.control.list_policies().await?;
    Ok(Json(docs.into_iter().map(|d| d.doc).collect::<Vec<_>>()))
}

/// Create a policy (`id` is generated when absent).
#[utoipa::path(post, path = "/api/policies", tag = "policies",
    request_body(content = Object, description = "A Tyk policy"),
    responses((status = 201, description = "Created", body = PolicyWriteResponse),
              (status = 400, description = "Invalid policy", body = ErrorBody),
              (status = 409, description = "id exists", body = ErrorBody)))]
pub async fn create_policy(
    State(s): State<AdminState>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let v = parse_json(&body)?;
    Ok(policy_written(
        s.control.put_policy(v, None, WriteMode::Create).await?,
    ))
}

/// Get one policy, exactly as stored.
#[utoipa::path(get, path = "/api/policies/{id}", tag = "policies",
    params(("id" = String, Path, description = "The policy id")),
    responses((status = 200, description = "The policy", body = Object),
              (status = 404, description = "Unknown id", body = ErrorBody)))]
pub async fn get_policy(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.control.get_policy(&id).await?.doc))
}

/// Replace a policy.
#[utoipa::path(put, path = "/api/policies/{id}", tag = "policies",
    params(("id" = String, Path, description = "The policy id")),
    request_body(content = Object, description = "A Tyk policy"),
    responses((status = 200, description = "Updated", body = PolicyWriteResponse),
              (status = 400, description = "Invalid policy", body = ErrorBody),
              (status = 404, description = "Unknown id", body = ErrorBody)))]
pub async fn replace_policy(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let v = parse_json(&body)?;
    Ok(policy_written(
        s.control
            .put_policy(v, Some(&id), WriteMode::Replace)
            .await?,
    ))
}

/// Delete a policy.
#[utoipa::path(delete, path = "/api/policies/{id}", tag = "policies",
    params(("id" = String, Path, description = "The policy id")),
    responses((status = 200, description = "Deleted", body = DeleteResponse),
              (status = 404, description = "Unknown id", body = ErrorBody)))]
pub async fn delete_policy(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.control.delete_policy(&id).await?;
    Ok(Json(DeleteResponse {
        status: "ok",
        action: "deleted",
        id,
    }))
}

/// One imported item.
#[derive(Serialize, ToSchema)]
pub struct ImportItemDoc {
    /// `api` or `policy`.
    kind: String,
    /// Where it came from.
    source: String,
    /// The id stored.
    id: Option<String>,
    /// Its name.
    name: Option<String>,
    /// `imported`, `updated` or `failed`.
    status: String,
    /// Fields kept without effect.
    warnings: Vec<String>,
    /// Why it failed.
    error: Option<String>,
}

/// The import report.
#[derive(Serialize, ToSchema)]
pub struct ImportReport {
    /// Items stored (created or updated).
    imported: usize,
    /// Items that failed.
    failed: usize,
    /// Per item: what happened and what is ignored.
    #[schema(value_type = Vec<ImportItemDoc>)]
    items: Vec<ImportItem>,
}

impl ImportReport {
    /// A report over items.
    pub fn new(items: Vec<ImportItem>) -> Self {
        let failed = items.iter().filter(|i| i.status == "failed").count();
        Self {
            imported: items.len() - failed,
            failed,
            items,
        }
    }
}

/// Import a Tyk gateway's configuration: `{"apis": [definition, ...], "policies": [policy, ...]
/// or {"<id>": policy, ...}}`. Items are created or replaced; the report says what happened to each.
#[utoipa::path(post, path = "/api/import/tyk", tag = "import",
    request_body(content = Object, description = "{\"apis\": [...], \"policies\": [...] or {id: policy}}"),
    responses((status = 200, description = "Per-item report", body = ImportReport),
              (status = 400, description = "Not an import document", body = ErrorBody)))]
pub async fn import_tyk(
    State(s): State<AdminState>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let v = parse_json(&body)?;
    let bundle = tyk_bundle(v).map_err(|e| ApiError::bad_field(e.field, e.message))?;
    Ok(Json(ImportReport::new(s.control.import_tyk(bundle).await)))
}

/// Reads an import document: `{"apis": [...], "policies": [...] or {id: policy}}`, or (as the
/// dashboard's import page allows) one API definition or an array of them. Errors name `apis`,
/// `policies` or the document (`""`).
pub fn tyk_bundle(v: Value) -> Result<TykBundle, gatehouse_domain::ValidationError> {
    use gatehouse_domain::ValidationError as E;
    let mut obj = match v {
        Value::Object(o) if o.contains_key("apis") || o.contains_key("policies") => o,
        Value::Object(o) if o.contains_key("proxy") || o.contains_key("api_id") => {
            let mut m = serde_json::Map::new();
            m.insert("apis".into(), Value::Array(vec![Value::Object(o)]));
            m
        }
        Value::Array(list) => {
            let mut m = serde_json::Map::new();
            m.insert("apis".into(), Value::Array(list));
            m
        }
        _ => {
            return Err(E::new(
                "",
                "send {\"apis\": [...], \"policies\": [...]}, one API definition or an array of them",
            ));
        }
    };
    let mut bundle = TykBundle::default();
    match obj.remove("apis") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (i, a) in list.into_iter().enumerate() {
                bundle.apis.push((format!("apis[{i}]"), a));
            }
        }
        Some(_) => {
            return Err(E::new("apis", "apis must be an array of API definitions"));
        }
    }
    match obj.remove("policies") {
        None | Some(Value::Null) => {}
        Some(p @ (Value::Array(_) | Value::Object(_))) => {
            bundle.policies.push(("policies".to_owned(), p))
        }
        Some(_) => {
            return Err(E::new(
                "policies",
                "policies must be an array or an object keyed by policy id",
            ));
        }
    }
    if bundle.apis.is_empty() && bundle.policies.is_empty() {
        return Err(E::new(
            "",
            "nothing to import: send \"apis\" and/or \"policies\"",
        ));
    }
    Ok(bundle)
}

/// The answer to a cache flush.
#[derive(Serialize, ToSchema)]
pub struct FlushResponse {
    /// Always `ok`.
    status: &'static str,
    /// How many JWKS URLs were flushed.
    flushed: usize,
}

/// Flush every cached JWKS (they are fetched again at once).
#[utoipa::path(delete, path = "/api/cache/jwks", tag = "cache",
    responses((status = 200, description = "Flushed", body = FlushResponse)))]
pub async fn flush_jwks_all(State(s): State<AdminState>) -> impl IntoResponse {
    Json(FlushResponse {
        status: "ok",
        flushed: s.hooks.flush_jwks(None).unwrap_or(0),
    })
}

/// Flush the cached JWKS of one API.
#[utoipa::path(delete, path = "/api/cache/jwks/{api_id}", tag = "cache",
    params(("api_id" = String, Path, description = "The API's id")),
    responses((status = 200, description = "Flushed", body = FlushResponse),
              (status = 404, description = "Unknown or not a JWT API", body = ErrorBody)))]
pub async fn flush_jwks_api(
    State(s): State<AdminState>,
    Path(api_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    match s.hooks.flush_jwks(Some(&api_id)) {
        Some(n) => Ok(Json(FlushResponse {
            status: "ok",
            flushed: n,
        })),
        None => Err(ApiError::not_found(format!(
            "no active JWT API with api_id '{api_id}'"
        ))),
    }
}

/// 404 for unknown paths, as JSON.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see GET /api/openapi.json")
}

// ---------------------------------------------------------------------------------------------
// Analytics
// ---------------------------------------------------------------------------------------------

use crate::analytics::{self as an, AnalyticsQuery, BadParam, SeriesReport, TopBy, TopReport};
use axum::extract::Query;
use std::collections::HashMap;

impl From<BadParam> for ApiError {
    fn from(b: BadParam) -> Self {
        ApiError::bad_field(b.param, b.message)
    }
}

fn analytics_query(p: &HashMap<String, String>) -> Result<AnalyticsQuery, ApiError> {
    Ok(AnalyticsQuery::parse(
        |k| p.get(k).cloned(),
        gatehouse_store::unix_now(),
    )?)
}

fn store_unavailable(e: gatehouse_store::StoreError) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("analytics could not be read: {e}"),
    )
}

/// Requests, errors and latency percentiles over time, per API and overall.
#[utoipa::path(get, path = "/api/analytics/requests", tag = "analytics",
    params(
        ("range" = Option<String>, Query, description = "1h, 24h (default), 7d or 30d, ending now"),
        ("from" = Option<String>, Query, description = "Start: unix seconds or YYYY-MM-DDTHH:MM (UTC); overrides range"),
        ("to" = Option<String>, Query, description = "End (exclusive): unix seconds or YYYY-MM-DDTHH:MM (UTC); default now"),
        ("api_id" = Option<String>, Query, description = "Only this API"),
        ("developer_id" = Option<String>, Query, description = "Only this developer"),
        ("client_id" = Option<String>, Query, description = "Only this OAuth client"),
        ("granularity" = Option<String>, Query, description = "minute, hour or day (default: minute up to 3 h, hour up to 7 d, else day)"),
    ),
    responses((status = 200, description = "Time series (buckets with requests only)", body = SeriesReport),
              (status = 400, description = "A bad parameter, named in `field`", body = ErrorBody),
              (status = 401, description = "No or wrong admin key", body = ErrorBody)))]
pub async fn analytics_requests(
    State(s): State<AdminState>,
    Query(p): Query<HashMap<String, String>>,
) -> Result<Json<SeriesReport>, ApiError> {
    let q = analytics_query(&p)?;
    let (rows, truncated) = q
        .rows(s.control.store().as_ref())
        .await
        .map_err(store_unavailable)?;
    Ok(Json(an::series(&q, &rows, truncated)))
}

/// The developers, clients or APIs with most requests.
#[utoipa::path(get, path = "/api/analytics/top", tag = "analytics",
    params(
        ("by" = Option<String>, Query, description = "developer (default), client or api; requests without a developer or client are left out of those lists"),
        ("limit" = Option<u32>, Query, description = "Entries, 1-100 (default 10)"),
        ("range" = Option<String>, Query, description = "1h, 24h (default), 7d or 30d"),
        ("from" = Option<String>, Query, description = "Start: unix seconds or YYYY-MM-DDTHH:MM (UTC)"),
        ("to" = Option<String>, Query, description = "End (exclusive)"),
        ("api_id" = Option<String>, Query, description = "Only this API"),
    ),
    responses((status = 200, description = "Most requests first", body = TopReport),
              (status = 400, description = "A bad parameter, named in `field`", body = ErrorBody),
              (status = 401, description = "No or wrong admin key", body = ErrorBody)))]
pub async fn analytics_top(
    State(s): State<AdminState>,
    Query(p): Query<HashMap<String, String>>,
) -> Result<Json<TopReport>, ApiError> {
    let q = analytics_query(&p)?;
    let by = TopBy::parse(p.get("by").map(String::as_str))?;
    let limit = match p.get("limit").map(|l| l.trim()).filter(|l| !l.is_empty()) {
        None => 10,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_field(
                    "limit",
                    format!("limit must be a number from 1 to 100, not '{l}'"),
                ));
            }
        },
    };
    let (rows, truncated) = q
        .rows(s.control.store().as_ref())
        .await
        .map_err(store_unavailable)?;
    Ok(Json(an::top(&q, &rows, by, limit, truncated)))
}

/// The per-minute rows as CSV (one line per minute, API, developer, client and status class).
#[utoipa::path(get, path = "/api/analytics/export.csv", tag = "analytics",
    params(
        ("range" = Option<String>, Query, description = "1h, 24h (default), 7d or 30d"),
        ("from" = Option<String>, Query, description = "Start: unix seconds or YYYY-MM-DDTHH:MM (UTC)"),
        ("to" = Option<String>, Query, description = "End (exclusive)"),
        ("api_id" = Option<String>, Query, description = "Only this API"),
        ("developer_id" = Option<String>, Query, description = "Only this developer"),
        ("client_id" = Option<String>, Query, description = "Only this OAuth client"),
    ),
    responses((status = 200, description = "CSV with a header line", content_type = "text/csv", body = String),
              (status = 400, description = "A bad parameter, named in `field`", body = ErrorBody),
              (status = 401, description = "No or wrong admin key", body = ErrorBody)))]
pub async fn analytics_export(
    State(s): State<AdminState>,
    Query(p): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let q = analytics_query(&p)?;
    let (rows, _) = q
        .rows(s.control.store().as_ref())
        .await
        .map_err(store_unavailable)?;
    Ok(csv_response(an::csv(&rows), q.from, q.to))
}

/// A CSV download named after its range.
pub fn csv_response(body: String, from: i64, to: i64) -> axum::response::Response {
    let name = format!(
        "gatehouse-analytics-{}-{}.csv",
        an::iso(from).replace(':', ""),
        an::iso(to).replace(':', "")
    );
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8".to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}
