//! The developer portal's pages (portal listener): sign-up and sign-in, the catalogue with its
//! API documentation, and OAuth clients (the creation wizard, the client page with ready-to-copy
//! `curl` commands, rotate secret, delete).

use gatehouse_admin_api::ClientAddr;
use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use gatehouse_admin_api::portal::{Portal, PortalError, SESSION_SECONDS, SIGNUP_ACCEPTED};
use gatehouse_admin_api::portal_api::COOKIE;
use gatehouse_domain::api::ApiDefinition;
use gatehouse_domain::portal::effective_dcr;
use gatehouse_store::{DeveloperRow, Store};

use crate::dashboard::catalogue_doc;
use crate::dashboard::{expired_form, pre_binding, pre_page};
use crate::form::{FieldErrors, Form};
use crate::security::{CsrfKey, cookie, set_cookie, sha256_hex};
use crate::templates::{render, static_file};
use crate::{Flash, UiSettings, merge, message_page, openapi};

const MAX_FLASHES: usize = 10_000;

struct Inner {
    portal: Arc<Portal>,
    store: Arc<dyn Store>,
    csrf: CsrfKey,
    settings: UiSettings,
    flashes: parking_lot::Mutex<HashMap<String, Flash>>,
}

/// The portal pages' state.
#[derive(Clone)]
pub struct PortalUi(Arc<Inner>);

struct Dev {
    token: String,
    row: DeveloperRow,
    csrf: String,
}

/// Domain field → form field (sign-up and the client wizard).
pub const TABLE: &[(&str, &str)] = &[
    ("email", "email"),
    ("first_name", "first_name"),
    ("last_name", "last_name"),
    ("password", "password"),
    ("client_name", "client_name"),
    ("redirect_uris", "redirect_uris"),
    ("catalogue_ids", "catalogue_ids"),
];

impl PortalUi {
    /// The portal pages over the portal service (`store` holds the settings: the CSRF key and
    /// the catalogue's OpenAPI documents).
    pub async fn new(
        portal: Arc<Portal>,
        store: Arc<dyn Store>,
        settings: UiSettings,
    ) -> anyhow::Result<Self> {
        let csrf = CsrfKey::load_or_create(store.as_ref()).await?;
        Ok(Self(Arc::new(Inner {
            portal,
            store,
            csrf,
            settings,
            flashes: parking_lot::Mutex::new(HashMap::new()),
        })))
    }

    fn portal(&self) -> &Portal {
        &self.0.portal
    }

    async fn dev(&self, headers: &HeaderMap) -> Option<Dev> {
        let token = cookie(headers, COOKIE)?;
        let s = self.0.portal.session(&token).await.ok()?;
        let csrf = self.0.csrf.token("portal", &token);
        Some(Dev {
            token,
            row: s.developer,
            csrf,
        })
    }

    async fn require(&self, headers: &HeaderMap) -> Result<Dev, Response> {
        self.dev(headers)
            .await
            .ok_or_else(|| Redirect::to("/login").into_response())
    }

    async fn require_post(&self, headers: &HeaderMap, f: &Form) -> Result<Dev, Response> {
        let d = self.require(headers).await?;
        if !self.0.csrf.verify("portal", &d.token, f.csrf()) {
            return Err(expired_form("portal"));
        }
        Ok(d)
    }

    fn flash(&self, d: &Dev, f: Flash) {
        let mut m = self.0.flashes.lock();
        if m.len() >= MAX_FLASHES {
            m.clear();
        }
        m.insert(sha256_hex(&d.token), f);
    }

    fn base(&self, d: &Dev, nav: &str, title: &str) -> Value {
        let flash = self.0.flashes.lock().remove(&sha256_hex(&d.token));
        let name = if d.row.first_name.is_empty() {
            d.row.email.clone()
        } else {
            d.row.first_name.clone()
        };
        json!({"app": "portal", "user": name, "csrf": d.csrf, "nav": nav, "title": title,
               "flash": flash})
    }

    async fn anon_base(&self, nav: &str, title: &str) -> Value {
        let signup = self
            .portal()
            .config()
            .await
            .map(|c| c.signup_enabled)
            .unwrap_or(false);
        json!({"app": "portal", "nav": nav, "title": title, "signup_enabled": signup})
    }

    fn secure(&self) -> bool {
        self.0.settings.secure_cookies
    }

    fn signed_in(&self, token: &str, to: &str) -> Response {
        let mut r = Redirect::to(to).into_response();
        r.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(COOKIE, token, Some(SESSION_SECONDS), self.secure()),
        );
        r
    }

    /// The gateway URL of an API (`<gateway>/<listen path>`), if the API exists.
    async fn api_url(&self, api_id: &str) -> Option<(String, ApiDefinition)> {
        if api_id.is_empty() {
            return None;
        }
        let doc = self.0.store.get_api(api_id).await.ok()??;
        let def = ApiDefinition::from_stored(&doc.doc).ok()?;
        let base = self.0.settings.gateway_url.trim_end_matches('/');
        Some((format!("{base}{}", def.proxy.listen_path), def))
    }
}

/// The portal pages (no fallback: merge with the portal JSON API router, or use
/// [`crate::portal_app`]).
pub fn portal_router(ui: PortalUi) -> Router {
    Router::new()
        .route("/", get(home))
        .route(
            "/static/{file}",
            get(|Path(f): Path<String>| async move { static_file(&f) }),
        )
        .route("/login", get(login_page).post(login))
        .route("/signup", get(signup_page).post(signup))
        .route("/logout", post(logout))
        .route("/catalogue", get(catalogue))
        .route("/catalogue/{id}", get(entry))
        .route("/catalogue/{id}/docs", get(docs))
        .route("/clients", get(clients))
        .route("/usage", get(usage))
        .route("/clients/new", get(new_client_page).post(new_client))
        .route("/clients/{id}", get(client))
        .route("/clients/{id}/rotate", post(rotate))
        .route("/clients/{id}/delete", get(delete_page).post(delete))
        .layer(axum::middleware::from_fn(crate::security::same_origin))
        .with_state(ui)
}

async fn home(State(ui): State<PortalUi>, headers: HeaderMap) -> Response {
    if ui.dev(&headers).await.is_some() {
        return Redirect::to("/catalogue").into_response();
    }
    let base = ui.anon_base("home", "Welcome").await;
    render(StatusCode::OK, "p_home.html", &base)
}

async fn login_page(
    State(ui): State<PortalUi>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if ui.dev(&headers).await.is_some() {
        return Redirect::to("/catalogue").into_response();
    }
    let (binding, new) = pre_binding(&headers);
    // After a sign-up: the same notice whether the email was new or registered already.
    let flash = q
        .contains_key("signed_up")
        .then(|| Flash::with("info", "Sign-up received", vec![SIGNUP_ACCEPTED.to_owned()]));
    let ctx = merge(
        ui.anon_base("login", "Sign in").await,
        json!({"csrf": ui.0.csrf.token("pre", &binding), "form": {}, "errors": {},
               "flash": flash}),
    );
    pre_page(
        StatusCode::OK,
        "p_login.html",
        &ctx,
        &binding,
        new,
        ui.secure(),
    )
}

async fn login(
    State(ui): State<PortalUi>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = Form::parse(&body);
    let (binding, new) = pre_binding(&headers);
    if new || !ui.0.csrf.verify("pre", &binding, f.csrf()) {
        return expired_form("portal");
    }
    let email = f.text("email");
    let password = f.raw("password").to_owned();
    let mut errors = FieldErrors::default();
    if email.is_empty() {
        errors.add("email", "Enter your email address.");
    }
    if password.is_empty() {
        errors.add("password", "Enter your password.");
    }
    let mut status = StatusCode::UNAUTHORIZED;
    if errors.is_empty() {
        match ui.portal().login(&email, &password, &addr).await {
            Ok((token, _)) => return ui.signed_in(&token, "/catalogue"),
            Err(PortalError::Unauthorized(_)) => {
                errors.add("password", "Wrong email or password.");
            }
            Err(PortalError::Throttled { retry_after, .. }) => {
                status = StatusCode::TOO_MANY_REQUESTS;
                errors.add(
                    "password",
                    format!(
                        "Too many failed sign-ins. Try again in {}.",
                        crate::dashboard::wait_words(retry_after)
                    ),
                );
            }
            Err(PortalError::Busy) => return crate::dashboard::busy_page("portal"),
            Err(e) => errors.general(e.to_string()),
        }
    }
    let ctx = merge(
        ui.anon_base("login", "Sign in").await,
        json!({"csrf": f.csrf(), "form": {"email": email}, "errors": errors}),
    );
    render(status, "p_login.html", &ctx)
}

async fn signup_page(State(ui): State<PortalUi>, headers: HeaderMap) -> Response {
    let base = ui.anon_base("signup", "Sign up").await;
    if base["signup_enabled"] != json!(true) {
        return message_page(
            StatusCode::FORBIDDEN,
            base,
            "Sign-up is closed",
            "This portal does not take sign-ups; ask the API provider for an account.",
            Some(("/login", "Sign in")),
        );
    }
    let (binding, new) = pre_binding(&headers);
    let ctx = merge(
        base,
        json!({"csrf": ui.0.csrf.token("pre", &binding), "form": {}, "errors": {}}),
    );
    pre_page(
        StatusCode::OK,
        "p_signup.html",
        &ctx,
        &binding,
        new,
        ui.secure(),
    )
}

async fn signup(
    State(ui): State<PortalUi>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = Form::parse(&body);
    let (binding, new) = pre_binding(&headers);
    if new || !ui.0.csrf.verify("pre", &binding, f.csrf()) {
        return expired_form("portal");
    }
    let input = json!({"email": f.text("email"), "first_name": f.text("first_name"),
                       "last_name": f.text("last_name"), "password": f.raw("password")});
    let mut errors = FieldErrors::default();
    let mut status = StatusCode::BAD_REQUEST;
    match ui.portal().signup(input, &addr).await {
        // The developer signs in next; the notice does not tell a new email from a taken one.
        Ok(()) => return Redirect::to("/login?signed_up=1").into_response(),
        Err(PortalError::Throttled { retry_after, .. }) => {
            status = StatusCode::TOO_MANY_REQUESTS;
            errors.general(format!(
                "Too many sign-ups. Try again in {}.",
                crate::dashboard::wait_words(retry_after)
            ));
        }
        Err(PortalError::Busy) => return crate::dashboard::busy_page("portal"),
        Err(e) => crate::dashboard::place_portal_error(&mut errors, &e, TABLE),
    }
    let ctx = merge(
        ui.anon_base("signup", "Sign up").await,
        json!({"csrf": f.csrf(), "errors": errors,
               "form": {"email": f.text("email"), "first_name": f.text("first_name"), "last_name": f.text("last_name")}}),
    );
    render(status, "p_signup.html", &ctx)
}

async fn logout(State(ui): State<PortalUi>, headers: HeaderMap, body: Bytes) -> Response {
    let f = Form::parse(&body);
    if let Some(d) = ui.dev(&headers).await {
        if !ui.0.csrf.verify("portal", &d.token, f.csrf()) {
            return expired_form("portal");
        }
        let _ = ui.portal().logout(&d.token).await;
    }
    let mut r = Redirect::to("/").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(COOKIE, "", Some(0), ui.secure()),
    );
    r
}

/// The catalogue entries shown to developers, with whether they offer OAuth clients.
async fn shown_entries(ui: &PortalUi) -> Result<Vec<Value>, PortalError> {
    let cfg = ui.portal().config().await?;
    let mut out = Vec::new();
    for e in ui
        .portal()
        .catalogue()
        .await?
        .into_iter()
        .filter(|e| e.show)
    {
        let dcr = effective_dcr(&cfg, &e);
        let has_doc = !catalogue_doc(ui.0.store.as_ref(), &e.id)
            .await
            .trim()
            .is_empty();
        out.push(
            json!({"id": e.id, "name": e.name, "short_description": e.short_description,
                        "long_description": e.long_description, "api_id": e.api_id,
                        "oauth_clients": dcr.is_some(), "has_doc": has_doc,
                        "token_endpoint": dcr.map(|d| d.token_endpoint)}),
        );
    }
    Ok(out)
}

async fn catalogue(State(ui): State<PortalUi>, headers: HeaderMap) -> Response {
    let d = match ui.require(&headers).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let base = ui.base(&d, "catalogue", "API catalogue");
    match shown_entries(&ui).await {
        Ok(entries) => render(
            StatusCode::OK,
            "p_home.html",
            &merge(base, json!({"entries": entries})),
        ),
        Err(e) => message_page(
            StatusCode::SERVICE_UNAVAILABLE,
            base,
            "Something went wrong",
            &e.to_string(),
            None,
        ),
    }
}

async fn entry_or_404(ui: &PortalUi, base: &Value, id: &str) -> Result<Value, Response> {
    let entries = shown_entries(ui).await.unwrap_or_default();
    entries
        .into_iter()
        .find(|e| e["id"] == json!(id))
        .ok_or_else(|| {
            message_page(
                StatusCode::NOT_FOUND,
                base.clone(),
                "Not in the catalogue",
                "There is no such API in the catalogue.",
                Some(("/catalogue", "Back to the catalogue")),
            )
        })
}

/// What a caller must send, from the API definition.
fn auth_needed(def: Option<&ApiDefinition>) -> Value {
    match def {
        Some(d) if d.enable_jwt => json!({"kind": "jwt",
            "summary": "A JSON Web Token from the identity provider: send Authorization: Bearer <access token>. Get the token with your OAuth client's id and secret (client credentials)."}),
        Some(d) if d.use_keyless => {
            json!({"kind": "keyless", "summary": "No credentials: the API is open."})
        }
        Some(_) => json!({"kind": "other", "summary": "Credentials the API provider gives you."}),
        None => json!({"kind": "unknown", "summary": ""}),
    }
}

async fn entry(State(ui): State<PortalUi>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let d = match ui.require(&headers).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let base = ui.base(&d, "catalogue", "API");
    let e = match entry_or_404(&ui, &base, &id).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let api = ui.api_url(e["api_id"].as_str().unwrap_or("")).await;
    let ctx = merge(
        base,
        json!({"title": e["name"], "entry": e, "url": api.as_ref().map(|(u, _)| u),
               "auth": auth_needed(api.as_ref().map(|(_, d)| d))}),
    );
    render(StatusCode::OK, "p_entry.html", &ctx)
}

async fn docs(State(ui): State<PortalUi>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let d = match ui.require(&headers).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let base = ui.base(&d, "catalogue", "API documentation");
    let e = match entry_or_404(&ui, &base, &id).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let text = catalogue_doc(ui.0.store.as_ref(), &id).await;
    let Ok(doc) = openapi::parse_document(&text) else {
        return message_page(
            StatusCode::NOT_FOUND,
            base,
            "No documentation",
            "The API provider has not published documentation for this API yet.",
            Some((&format!("/catalogue/{id}"), "Back to the API")),
        );
    };
    let api = ui.api_url(e["api_id"].as_str().unwrap_or("")).await;
    let ctx = merge(
        base,
        json!({"title": format!("{} documentation", e["name"].as_str().unwrap_or("API")),
               "entry": e, "doc": openapi::view(&doc), "url": api.as_ref().map(|(u, _)| u),
               "auth": auth_needed(api.as_ref().map(|(_, d)| d))}),
    );
    render(StatusCode::OK, "p_docs.html", &ctx)
}

async fn clients(State(ui): State<PortalUi>, headers: HeaderMap) -> Response {
    let d = match ui.require(&headers).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let base = ui.base(&d, "clients", "OAuth Clients");
    match ui.portal().clients_of(&d.row.id).await {
        Ok(list) => render(
            StatusCode::OK,
            "p_clients.html",
            &merge(base, json!({"clients": list})),
        ),
        Err(e) => message_page(
            StatusCode::SERVICE_UNAVAILABLE,
            base,
            "Something went wrong",
            &e.to_string(),
            None,
        ),
    }
}

/// The quota of a client: its first policy with a quota, read under the gateway's counter key
/// `quota-{org_id:identity}` with the client id as the identity (the `sub` of a
/// client-credentials token).
async fn client_quota(
    ui: &PortalUi,
    doc: &Value,
    client_id: &str,
    counters: &[gatehouse_store::QuotaRow],
    now: i64,
) -> (String, String) {
    let ids: Vec<String> = doc["policy_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for id in ids {
        let Ok(Some(stored)) = ui.0.store.get_policy(&id).await else {
            continue;
        };
        let Ok(p) = gatehouse_domain::policy::Policy::from_stored(&stored.doc) else {
            continue;
        };
        if p.quota_max <= 0 {
            continue;
        }
        if ui.0.settings.quotas_in_redis {
            return (
                format!("{} per {}", p.quota_max, period(p.quota_renewal_rate)),
                "–".to_owned(),
            );
        }
        let mut org = p.org_id.clone();
        if let Some(api_id) = p.access_rights.keys().next()
            && let Some((_, def)) = ui.api_url(api_id).await
        {
            org = def.org_id;
        }
        let key = format!("quota-{{{org}:{client_id}}}");
        let row = counters.iter().find(|r| r.key == key);
        let v = crate::activity::quota_view(p.quota_max, p.quota_renewal_rate, row, now);
        let left = format!(
            "{} of {} per {}",
            v.remaining.unwrap_or(p.quota_max),
            p.quota_max,
            period(p.quota_renewal_rate)
        );
        let renews = match v.renews_at {
            Some(t) => gatehouse_admin_api::analytics::iso(t)
                .replace('T', " ")
                .replace('Z', " UTC"),
            None => "with the next request's window".to_owned(),
        };
        return (left, renews);
    }
    ("unlimited".to_owned(), "–".to_owned())
}

fn period(secs: i64) -> String {
    match secs {
        3600 => "hour".to_owned(),
        86_400 => "day".to_owned(),
        604_800 => "week".to_owned(),
        2_592_000 => "30 days".to_owned(),
        s if s > 0 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s > 0 && s % 3600 == 0 => format!("{} hours", s / 3600),
        s => format!("{s} s"),
    }
}

/// `GET /usage`: the signed-in developer's clients only (the query is always narrowed to the
/// developer, whatever the parameters say).
async fn usage(
    State(ui): State<PortalUi>,
    headers: HeaderMap,
    axum::extract::Query(p): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    use gatehouse_admin_api::analytics::AnalyticsQuery;
    let d = match ui.require(&headers).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let base = ui.base(&d, "usage", "Usage");
    let now = gatehouse_store::unix_now();
    let unavailable = |base: Value, e: &dyn std::fmt::Display| {
        message_page(
            StatusCode::SERVICE_UNAVAILABLE,
            base,
            "Something went wrong",
            &format!("Your usage could not be read: {e}"),
            None,
        )
    };
    let clients = match ui.0.store.list_clients(Some(&d.row.id), false).await {
        Ok(c) => c,
        Err(e) => return unavailable(base, &e),
    };
    let mut names = crate::activity::Names::default();
    for c in &clients {
        let name = c.doc["client_name"].as_str().unwrap_or_default().to_owned();
        names.clients.insert(c.client_id.clone(), name);
    }
    let selected = p.get("client_id").cloned().filter(|c| !c.is_empty());
    let options: Vec<Value> = clients
        .iter()
        .map(|c| {
            json!({"id": c.client_id, "label": names.clients.get(&c.client_id),
                   "selected": selected.as_deref() == Some(c.client_id.as_str())})
        })
        .collect();
    let parsed = AnalyticsQuery::parse(
        |k| match k {
            // Never another developer's data: the developer is fixed.
            "developer_id" => Some(d.row.id.clone()),
            "api_id" => None,
            _ => p.get(k).cloned(),
        },
        now,
    );
    let q = match parsed {
        Ok(q) => q,
        Err(e) => {
            let fallback = AnalyticsQuery::parse(|_| None, now).expect("the defaults parse");
            let ctx = merge(
                base,
                merge(
                    crate::activity::bad_param_context(&e),
                    json!({"picker": crate::activity::picker(&fallback, "/usage", &[]),
                           "filter_options": options}),
                ),
            );
            return render(StatusCode::BAD_REQUEST, "p_usage.html", &ctx);
        }
    };
    let (rows, truncated) = match q.rows(ui.0.store.as_ref()).await {
        Ok(r) => r,
        Err(e) => return unavailable(base, &e),
    };
    debug_assert!(rows.iter().all(|r| r.developer_id == d.row.id));
    let view = crate::activity::portal_view(&q, &rows, truncated, &names);
    let counters = if ui.0.settings.quotas_in_redis {
        Vec::new()
    } else {
        ui.0.store.load_quota_counters().await.unwrap_or_default()
    };
    let mut table = Vec::new();
    for c in &clients {
        let u = &view["usage"][&c.client_id];
        let (quota, renews) = client_quota(&ui, &c.doc, &c.client_id, &counters, now).await;
        table.push(json!({
            "client_id": c.client_id,
            "name": names.clients.get(&c.client_id).filter(|n| !n.is_empty()).unwrap_or(&c.client_id),
            "requests": u["requests"].as_u64().unwrap_or(0),
            "errors": u["errors"].as_u64().unwrap_or(0),
            "error_rate": u["error_rate"].as_str().unwrap_or("–"),
            "p95": u["p95"].as_str().unwrap_or("–"),
            "quota": quota, "renews": renews,
        }));
    }
    let source = if ui.0.settings.quotas_in_redis {
        "Quotas are counted in Redis, shared by all gateway nodes; this page reads the database,          so it shows each client's quota but not what is left of it."
    } else {
        "Quota left is read from the gateway's quota counters in the database (saved every          second), for tokens whose subject is the client id. Times in UTC."
    };
    let ctx = merge(
        base,
        json!({"picker": crate::activity::picker(&q, "/usage", &[("client_id", q.client_id.as_deref())]),
               "filter_options": options, "errors": {}, "view": view, "clients": table,
               "quota_source": source}),
    );
    render(StatusCode::OK, "p_usage.html", &ctx)
}

async fn wizard(
    ui: &PortalUi,
    d: &Dev,
    status: StatusCode,
    step: u8,
    chosen: Vec<String>,
    form: Value,
    errors: &FieldErrors,
) -> Response {
    let base = ui.base(d, "clients", "Create an OAuth client");
    let entries: Vec<Value> = shown_entries(ui)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["oauth_clients"] == json!(true))
        .collect();
    let chosen_names: Vec<Value> = entries
        .iter()
        .filter(|e| chosen.iter().any(|c| e["id"] == json!(c)))
        .map(|e| e["name"].clone())
        .collect();
    let ctx = merge(
        base,
        json!({"step": step, "entries": entries, "chosen": chosen, "chosen_names": chosen_names,
               "form": form, "errors": errors,
               "separator": ";"}),
    );
    render(status, "p_client_new.html", &ctx)
}

async fn new_client_page(
    State(ui): State<PortalUi>,
    headers: HeaderMap,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Response {
    let d = match ui.require(&headers).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let pre = Form::parse(q.unwrap_or_default().as_bytes()).all("api");
    wizard(
        &ui,
        &d,
        StatusCode::OK,
        1,
        pre,
        json!({}),
        &FieldErrors::default(),
    )
    .await
}

async fn new_client(State(ui): State<PortalUi>, headers: HeaderMap, body: Bytes) -> Response {
    let f = Form::parse(&body);
    let d = match ui.require_post(&headers, &f).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let chosen = f.all("catalogue_ids");
    let mut errors = FieldErrors::default();
    let form =
        json!({"client_name": f.text("client_name"), "redirect_uris": f.text("redirect_uris")});
    match f.text("step").as_str() {
        "apis" => {
            if chosen.is_empty() {
                errors.add("catalogue_ids", "Choose at least one API.");
                return wizard(&ui, &d, StatusCode::BAD_REQUEST, 1, chosen, form, &errors).await;
            }
            wizard(&ui, &d, StatusCode::OK, 2, chosen, form, &errors).await
        }
        "back" => wizard(&ui, &d, StatusCode::OK, 1, chosen, form, &errors).await,
        _ => {
            let input = json!({"catalogue_ids": chosen, "client_name": f.text("client_name"),
                               "redirect_uris": f.text("redirect_uris")});
            match ui.portal().create_client(&d.row, input).await {
                Ok(c) => {
                    let id = c["client_id"].as_str().unwrap_or_default().to_owned();
                    ui.flash(
                        &d,
                        Flash::ok("Your OAuth client was created at the identity provider."),
                    );
                    Redirect::to(&format!("/clients/{}", urlencode(&id))).into_response()
                }
                Err(e) => {
                    let step = match &e {
                        PortalError::Invalid(v) if v.field.starts_with("catalogue_ids") => 1,
                        _ => 2,
                    };
                    match &e {
                        PortalError::Idp { message, .. } => errors.general(format!(
                            "The identity provider did not register the client: {message}"
                        )),
                        other => crate::dashboard::place_portal_error(&mut errors, other, TABLE),
                    }
                    wizard(
                        &ui,
                        &d,
                        StatusCode::BAD_REQUEST,
                        step,
                        chosen,
                        form,
                        &errors,
                    )
                    .await
                }
            }
        }
    }
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A value in single quotes for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The `curl` commands shown for a client: get a token, call each API.
pub fn curl_commands(
    client_id: &str,
    secret: &str,
    token_endpoint: &str,
    auth_method: &str,
    scopes: &str,
    api_urls: &[String],
) -> Value {
    let vars = format!(
        "export CLIENT_ID={}\nexport SECRET={}",
        shell_quote(client_id),
        shell_quote(secret)
    );
    let scope = if scopes.trim().is_empty() {
        String::new()
    } else {
        format!(" -d scope={}", shell_quote(scopes.trim()))
    };
    let endpoint = if token_endpoint.is_empty() {
        "<token endpoint>".to_owned()
    } else {
        shell_quote(token_endpoint)
    };
    let token = if auth_method == "client_secret_post" {
        format!(
            "curl -d grant_type=client_credentials -d client_id=\"$CLIENT_ID\" -d client_secret=\"$SECRET\"{scope} {endpoint}"
        )
    } else {
        format!("curl -u \"$CLIENT_ID:$SECRET\" -d grant_type=client_credentials{scope} {endpoint}")
    };
    let calls: Vec<String> = api_urls
        .iter()
        .map(|u| {
            format!(
                "curl -H \"Authorization: Bearer $TOKEN\" {}",
                shell_quote(u)
            )
        })
        .collect();
    json!({"vars": vars, "token": token,
           "save_token": "export TOKEN='<the access_token from the answer>'",
           "calls": calls})
}

async fn client(
    State(ui): State<PortalUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let d = match ui.require(&headers).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let base = ui.base(&d, "clients", "OAuth client");
    let c = match ui.portal().client_detail(&d.row.id, &id).await {
        Ok(c) => c,
        Err(e) => {
            return message_page(
                StatusCode::NOT_FOUND,
                base,
                "No such client",
                &e.to_string(),
                Some(("/clients", "Your OAuth clients")),
            );
        }
    };
    let mut urls = Vec::new();
    let mut apis = Vec::new();
    if let Some(list) = c.get("apis").and_then(Value::as_array) {
        for a in list {
            let url = ui
                .api_url(a["api_id"].as_str().unwrap_or(""))
                .await
                .map(|(u, _)| u);
            if let Some(u) = &url {
                urls.push(u.clone());
            }
            apis.push(json!({"name": a["name"], "catalogue_id": a["catalogue_id"], "url": url}));
        }
    }
    let first = c
        .get("catalogue_ids")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (method, scopes) = match ui.portal().dcr_settings(first.as_deref()).await {
        Ok(o) => (o.token_endpoint_auth_method, o.scopes),
        Err(_) => (String::new(), String::new()),
    };
    let token_endpoint = c["token_endpoint"].as_str().unwrap_or("").to_owned();
    let curl = curl_commands(
        c["client_id"].as_str().unwrap_or(""),
        c["client_secret"].as_str().unwrap_or(""),
        &token_endpoint,
        &method,
        &scopes,
        &urls,
    );
    let ctx = merge(
        base,
        json!({"title": c["client_name"], "client": c, "apis": apis, "curl": curl,
               "redirect_uris": c.get("redirect_uris").cloned().unwrap_or(json!([]))}),
    );
    let mut r = render(StatusCode::OK, "p_client.html", &ctx);
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    r
}

async fn rotate(
    State(ui): State<PortalUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let f = Form::parse(&body);
    let d = match ui.require_post(&headers, &f).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let flash = match ui.portal().rotate_secret(&d.row.id, &id).await {
        Ok(_) => Flash::ok("A new secret was issued; the old one no longer works."),
        Err(e) => Flash::with("error", "The secret was not rotated.", vec![e.to_string()]),
    };
    ui.flash(&d, flash);
    Redirect::to(&format!("/clients/{}", urlencode(&id))).into_response()
}

async fn delete_page(
    State(ui): State<PortalUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let d = match ui.require(&headers).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let base = ui.base(&d, "clients", "Delete OAuth client");
    let name = match ui.portal().client_detail(&d.row.id, &id).await {
        Ok(c) => c["client_name"].as_str().unwrap_or("").to_owned(),
        Err(e) => {
            return message_page(
                StatusCode::NOT_FOUND,
                base,
                "No such client",
                &e.to_string(),
                Some(("/clients", "Your OAuth clients")),
            );
        }
    };
    crate::dashboard::confirm_page(
        base,
        &format!("Delete the OAuth client '{name}'?"),
        "It is deleted at the identity provider; apps using it can no longer get tokens, and \
         the gateway refuses the tokens it already has.",
        &format!("/clients/{}/delete", urlencode(&id)),
        "Delete client",
        &format!("/clients/{}", urlencode(&id)),
    )
}

async fn delete(
    State(ui): State<PortalUi>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let f = Form::parse(&body);
    let d = match ui.require_post(&headers, &f).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    match ui.portal().delete_client(&d.row.id, &id).await {
        Ok(()) => {
            ui.flash(&d, Flash::ok("The OAuth client was deleted."));
            Redirect::to("/clients").into_response()
        }
        Err(e) => {
            ui.flash(
                &d,
                Flash::with("error", "The client was not deleted.", vec![e.to_string()]),
            );
            Redirect::to(&format!("/clients/{}", urlencode(&id))).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curl_commands_are_ready_to_copy() {
        let c = curl_commands(
            "0oa1",
            "s'cret",
            "http://idp/oauth2/default/v1/token",
            "client_secret_basic",
            "",
            &["http://127.0.0.1:8080/payments/".to_owned()],
        );
        assert_eq!(
            c["vars"],
            json!("export CLIENT_ID='0oa1'\nexport SECRET='s'\\''cret'")
        );
        assert_eq!(
            c["token"],
            json!(
                "curl -u \"$CLIENT_ID:$SECRET\" -d grant_type=client_credentials 'http://idp/oauth2/default/v1/token'"
            )
        );
        assert_eq!(
            c["calls"][0],
            json!("curl -H \"Authorization: Bearer $TOKEN\" 'http://127.0.0.1:8080/payments/'")
        );
        let p = curl_commands("a", "b", "http://t", "client_secret_post", "x y", &[]);
        assert!(
            p["token"]
                .as_str()
                .unwrap()
                .contains("client_secret=\"$SECRET\" -d scope='x y'")
        );
    }
}
