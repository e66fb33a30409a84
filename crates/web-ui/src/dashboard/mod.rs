//! The admin dashboard's pages (dashboard listener): sign-in and first-admin setup, APIs,
//! policies, the portal catalogue, portal settings, developers and the Activity page.

mod activity;
mod admin_pages;
mod apis;
mod catalogue;
mod developers;
mod policies;

pub(crate) use catalogue::{entry_doc as catalogue_doc, place_portal_error};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use gatehouse_admin_api::portal::Portal;
use gatehouse_admin_api::{AdminHooks, Control, NoHooks};
use gatehouse_domain::throttle::LoginThrottle;
use gatehouse_store::{Store, unix_now};

use crate::audit::{self, ClientAddr};

use crate::form::{FieldErrors, Form};
use crate::security::{CsrfKey, PRE_COOKIE, cookie, random_token, set_cookie, sha256_hex};
use crate::templates::{render, static_file};
use crate::{Flash, UiSettings, admins, merge, message_page};

/// The dashboard session cookie.
pub const COOKIE: &str = "gh_dash";
/// Dashboard sessions last 12 hours.
pub const SESSION_SECONDS: i64 = 12 * 3600;
/// Pending one-time messages kept at most (they are cosmetic: a full map is cleared).
const MAX_FLASHES: usize = 10_000;

struct Inner {
    control: Control,
    portal: Arc<Portal>,
    store: Arc<dyn Store>,
    csrf: CsrfKey,
    settings: UiSettings,
    /// One-time messages for an admin's next page, by session token hash. Kept in memory: a
    /// message lost to a restart or another node is only a message.
    flashes: parking_lot::Mutex<HashMap<String, Flash>>,
    throttle: parking_lot::Mutex<LoginThrottle>,
    hooks: std::sync::OnceLock<Arc<dyn AdminHooks>>,
}

/// The dashboard pages' state.
#[derive(Clone)]
pub struct DashboardUi(Arc<Inner>);

/// A signed-in admin, for one request.
pub(crate) struct Admin {
    token: String,
    email: String,
    csrf: String,
}

impl DashboardUi {
    /// The dashboard over the control plane and the portal service. Loads (or creates) the CSRF
    /// key and creates the first admin from [`UiSettings::initial_admin`] when none exists
    /// (otherwise the first admin is created on `/setup`, with the link of
    /// [`crate::setup::issue_token`]).
    pub async fn new(
        control: Control,
        portal: Arc<Portal>,
        settings: UiSettings,
    ) -> anyhow::Result<Self> {
        let store = Arc::clone(control.store());
        let csrf = CsrfKey::load_or_create(store.as_ref()).await?;
        if let Some((email, password)) = &settings.initial_admin {
            match admins::create_first(store.as_ref(), portal.passwords(), email, password).await {
                Ok(true) => {
                    tracing::info!(email = %email, "dashboard admin created from the environment")
                }
                Ok(false) => {}
                Err(e) => anyhow::bail!("GATEHOUSE_ADMIN_EMAIL / GATEHOUSE_ADMIN_PASSWORD: {e}"),
            }
        }
        Ok(Self(Arc::new(Inner {
            control,
            portal,
            store,
            csrf,
            settings,
            flashes: parking_lot::Mutex::new(HashMap::new()),
            throttle: parking_lot::Mutex::new(LoginThrottle::default()),
            hooks: std::sync::OnceLock::new(),
        })))
    }

    /// Gives the pages the process hooks (JWKS flush) the admin API uses. Without them, the
    /// flush button reports nothing flushed.
    pub fn set_hooks(&self, hooks: Arc<dyn AdminHooks>) {
        let _ = self.0.hooks.set(hooks);
    }

    pub(crate) fn hooks(&self) -> &dyn AdminHooks {
        match self.0.hooks.get() {
            Some(h) => h.as_ref(),
            None => &NoHooks,
        }
    }

    pub(crate) fn control(&self) -> &Control {
        &self.0.control
    }

    pub(crate) fn portal(&self) -> &Arc<Portal> {
        &self.0.portal
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    /// The process's bounded password pool (shared with the portal).
    pub(crate) fn passwords(&self) -> &gatehouse_admin_api::passwords::PasswordPool {
        self.0.portal.passwords()
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.0.settings.fetch_timeout
    }

    /// The admin of a live session (sessions are stored, so they survive restarts and are shared
    /// by every dashboard node). An unreadable store counts as signed out.
    async fn session(&self, headers: &HeaderMap) -> Option<Admin> {
        let token = cookie(headers, COOKIE)?;
        let row = match self
            .0
            .store
            .admin_session(&sha256_hex(&token), unix_now())
            .await
        {
            Ok(r) => r?,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the dashboard session");
                return None;
            }
        };
        let csrf = self.0.csrf.token("dash", &token);
        Some(Admin {
            token,
            email: row.email,
            csrf,
        })
    }

    /// The signed-in admin, or a redirect to the sign-in (or setup) page.
    pub(crate) async fn admin(&self, headers: &HeaderMap) -> Result<Admin, Response> {
        if let Some(a) = self.session(headers).await {
            return Ok(a);
        }
        let none = admins::list(self.0.store.as_ref())
            .await
            .map(|l| l.is_empty())
            .unwrap_or(false);
        Err(Redirect::to(if none { "/setup" } else { "/login" }).into_response())
    }

    /// The admin of a POST, whose CSRF token must match.
    pub(crate) async fn admin_post(
        &self,
        headers: &HeaderMap,
        form: &Form,
    ) -> Result<Admin, Response> {
        let a = self.admin(headers).await?;
        if !self.0.csrf.verify("dash", &a.token, form.csrf()) {
            return Err(expired_form("dashboard"));
        }
        Ok(a)
    }

    /// Keeps a message for the admin's next page.
    pub(crate) fn flash(&self, a: &Admin, f: Flash) {
        let mut m = self.0.flashes.lock();
        if m.len() >= MAX_FLASHES {
            m.clear();
        }
        m.insert(sha256_hex(&a.token), f);
    }

    /// The context every dashboard page needs (and the pending message, shown once).
    pub(crate) fn base(&self, a: &Admin, nav: &str, title: &str) -> Value {
        let flash = self.0.flashes.lock().remove(&sha256_hex(&a.token));
        json!({"app": "dashboard", "user": a.email, "csrf": a.csrf, "nav": nav,
               "title": title, "flash": flash})
    }

    async fn start_session(&self, email: &str) -> Result<String, gatehouse_store::StoreError> {
        let token = random_token();
        self.0
            .store
            .create_admin_session(&sha256_hex(&token), email, unix_now() + SESSION_SECONDS)
            .await?;
        Ok(token)
    }

    fn secure(&self) -> bool {
        self.0.settings.secure_cookies
    }
}

/// 403 page for a missing or wrong CSRF token.
pub(crate) fn expired_form(app: &str) -> Response {
    message_page(
        StatusCode::FORBIDDEN,
        json!({"app": app}),
        "This form has expired",
        "The form was not sent from this page or your session changed. Go back, reload the \
         page and try again.",
        Some(("/", "Start page")),
    )
}

/// The pre-sign-in CSRF binding: the `gh_pre` cookie, or a new value to set.
pub(crate) fn pre_binding(headers: &HeaderMap) -> (String, bool) {
    match cookie(headers, PRE_COOKIE) {
        Some(v) if v.len() >= 20 => (v, false),
        _ => (random_token(), true),
    }
}

/// Renders a pre-sign-in page, setting the `gh_pre` cookie when it is new.
pub(crate) fn pre_page(
    status: StatusCode,
    template: &str,
    ctx: &Value,
    binding: &str,
    new_binding: bool,
    secure: bool,
) -> Response {
    let mut r = render(status, template, ctx);
    if new_binding {
        r.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(PRE_COOKIE, binding, None, secure),
        );
    }
    r
}

/// The dashboard pages (no fallback: merge with the admin API router, or use
/// [`crate::dashboard_app`]).
pub fn dashboard_router(ui: DashboardUi) -> Router {
    Router::new()
        .route("/", get(home))
        .route(
            "/static/{file}",
            get(|Path(f): Path<String>| async move { static_file(&f) }),
        )
        .route("/login", get(login_page).post(login))
        .route("/setup", get(setup_page).post(setup))
        .route("/logout", post(logout))
        .route("/apis", get(apis::list))
        .route("/apis/new", get(apis::new_page).post(apis::create))
        .route("/apis/{id}", get(apis::edit_page).post(apis::update))
        .route(
            "/apis/{id}/delete",
            get(apis::delete_page).post(apis::delete),
        )
        .route("/policies", get(policies::list))
        .route(
            "/policies/new",
            get(policies::new_page).post(policies::create),
        )
        .route(
            "/policies/{id}",
            get(policies::edit_page).post(policies::update),
        )
        .route(
            "/policies/{id}/delete",
            get(policies::delete_page).post(policies::delete),
        )
        .route("/catalogue", get(catalogue::list))
        .route(
            "/catalogue/new",
            get(catalogue::new_page).post(catalogue::create),
        )
        .route(
            "/catalogue/{id}",
            get(catalogue::edit_page).post(catalogue::update),
        )
        .route(
            "/catalogue/{id}/delete",
            get(catalogue::delete_page).post(catalogue::delete),
        )
        .route(
            "/portal-settings",
            get(catalogue::settings_page).post(catalogue::save_settings),
        )
        .route("/activity", get(activity::page))
        .route("/activity/export.csv", get(activity::export))
        .route("/developers", get(developers::list))
        .route(
            "/developers/new",
            get(developers::new_page).post(developers::create),
        )
        .route(
            "/developers/{id}",
            get(developers::show).post(developers::update),
        )
        .route(
            "/developers/{id}/deactivate",
            get(developers::deactivate_page).post(developers::deactivate),
        )
        .route("/developers/{id}/activate", post(developers::activate))
        .route(
            "/developers/{id}/clients/{client_id}/delete",
            get(developers::delete_client_page).post(developers::delete_client),
        )
        .route(
            "/developers/{id}/delete",
            get(developers::delete_page).post(developers::delete),
        )
        .route("/apis/{id}/jwks-flush", post(admin_pages::flush_jwks))
        .route(
            "/import",
            get(admin_pages::import_page).post(admin_pages::import),
        )
        .route("/admins", get(admin_pages::admins_page))
        .route("/admins/new", post(admin_pages::add_admin))
        .route(
            "/admins/{email}/delete",
            get(admin_pages::delete_admin_page).post(admin_pages::delete_admin),
        )
        .route("/audit", get(admin_pages::audit_page))
        .layer(axum::middleware::from_fn(crate::security::same_origin))
        .with_state(ui)
}

async fn home(State(ui): State<DashboardUi>, headers: HeaderMap) -> Response {
    match ui.admin(&headers).await {
        Ok(_) => Redirect::to("/apis").into_response(),
        Err(r) => r,
    }
}

async fn login_page(State(ui): State<DashboardUi>, headers: HeaderMap) -> Response {
    if ui.session(&headers).await.is_some() {
        return Redirect::to("/apis").into_response();
    }
    if admins::list(ui.store().as_ref())
        .await
        .map(|l| l.is_empty())
        .unwrap_or(false)
    {
        return Redirect::to("/setup").into_response();
    }
    let (binding, new) = pre_binding(&headers);
    let ctx = json!({"app": "dashboard", "title": "Sign in", "csrf": ui.0.csrf.token("pre", &binding),
                     "form": {}, "errors": {}});
    pre_page(
        StatusCode::OK,
        "dash_login.html",
        &ctx,
        &binding,
        new,
        ui.secure(),
    )
}

async fn login(
    State(ui): State<DashboardUi>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = Form::parse(&body);
    let (binding, new) = pre_binding(&headers);
    if new || !ui.0.csrf.verify("pre", &binding, f.csrf()) {
        return expired_form("dashboard");
    }
    let email = f.text("email").to_ascii_lowercase();
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
        let throttled = ui.0.throttle.lock().check(&email, &addr, unix_now());
        if let Err(t) = throttled {
            audit::sign_in(ui.store().as_ref(), &email, false, "throttled", &addr).await;
            status = StatusCode::TOO_MANY_REQUESTS;
            errors.add(
                "password",
                format!(
                    "Too many failed sign-ins{}. Try again in {}.",
                    if t.by_address {
                        " from your address"
                    } else {
                        " for this account"
                    },
                    wait_words(t.retry_after)
                ),
            );
        } else {
            match admins::verify(ui.store().as_ref(), ui.passwords(), &email, &password).await {
                Ok(Some(user)) => {
                    ui.0.throttle.lock().success(&email);
                    return match ui.start_session(&user.email).await {
                        Ok(token) => {
                            audit::sign_in(ui.store().as_ref(), &user.email, true, "", &addr).await;
                            signed_in(&ui, &token)
                        }
                        Err(e) => {
                            errors.general(format!("The database is unavailable: {e}"));
                            let ctx = json!({"app": "dashboard", "title": "Sign in",
                                "csrf": f.csrf(), "form": {"email": email}, "errors": errors});
                            render(StatusCode::SERVICE_UNAVAILABLE, "dash_login.html", &ctx)
                        }
                    };
                }
                Ok(None) => {
                    ui.0.throttle.lock().failure(&email, &addr, unix_now());
                    audit::sign_in(
                        ui.store().as_ref(),
                        &email,
                        false,
                        "wrong email or password",
                        &addr,
                    )
                    .await;
                    errors.add("password", "Wrong email or password.");
                }
                Err(admins::AdminError::Busy) => return busy_page("dashboard"),
                Err(e) => errors.general(e.to_string()),
            }
        }
    }
    let ctx = json!({"app": "dashboard", "title": "Sign in", "csrf": f.csrf(),
                     "form": {"email": email}, "errors": errors});
    render(status, "dash_login.html", &ctx)
}

/// "30 seconds", "2 minutes".
pub(crate) fn wait_words(seconds: i64) -> String {
    if seconds < 90 {
        format!("{seconds} seconds")
    } else {
        format!("{} minutes", (seconds + 59) / 60)
    }
}

/// The redirect to the APIs page that sets a new session cookie.
fn signed_in(ui: &DashboardUi, token: &str) -> Response {
    let mut r = Redirect::to("/apis").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(COOKIE, token, Some(SESSION_SECONDS), ui.secure()),
    );
    r
}

/// `/setup?token=…`: the first-admin form, reached only through the one-time link printed on
/// the console ([`crate::setup`]).
async fn setup_page(
    State(ui): State<DashboardUi>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match admins::list(ui.store().as_ref()).await {
        Ok(l) if l.is_empty() => {}
        Ok(_) => return Redirect::to("/login").into_response(),
        Err(e) => {
            return failure(
                json!({"app": "dashboard"}),
                &format!("The database is unavailable: {e}"),
            );
        }
    }
    let token = q.get("token").map(String::as_str).unwrap_or_default();
    if let Some(refused) = check_setup_token(&ui, token).await {
        return refused;
    }
    let (binding, new) = pre_binding(&headers);
    let ctx = json!({"app": "dashboard", "title": "Create the first admin",
                     "csrf": ui.0.csrf.token("pre", &binding), "setup_token": token,
                     "form": {}, "errors": {}});
    pre_page(
        StatusCode::OK,
        "dash_setup.html",
        &ctx,
        &binding,
        new,
        ui.secure(),
    )
}

/// `None` when `token` is a live setup token, else the page that says why not (403).
async fn check_setup_token(ui: &DashboardUi, token: &str) -> Option<Response> {
    let (title, message) = match crate::setup::is_valid(ui.store().as_ref(), token).await {
        Ok(true) => return None,
        Err(e) => {
            return Some(failure(
                json!({"app": "dashboard"}),
                &format!("The database is unavailable: {e}"),
            ));
        }
        Ok(false) if token.is_empty() => (
            "Open the setup link",
            "No admin exists yet. The first admin is created through a one-time link that \
             Gatehouse printed on its console when it started (a line beginning with \
             \"First admin: open\"; look in the output of `gatehouse serve` or \
             `gatehouse dashboard`, e.g. with journalctl or docker logs). Each start prints a new \
             link. Or set GATEHOUSE_ADMIN_EMAIL and GATEHOUSE_ADMIN_PASSWORD and restart.",
        ),
        Ok(false) => {
            tracing::warn!("first-admin setup refused: the setup token is not valid");
            (
                "This setup link is not valid",
                "The token in this link is wrong or was used up (the first admin exists, or the \
                 link is from another installation). Use the newest \"First admin: open\" link \
                 that Gatehouse printed on its console; restarting it prints a new one.",
            )
        }
    };
    Some(message_page(
        StatusCode::FORBIDDEN,
        json!({"app": "dashboard"}),
        title,
        message,
        None,
    ))
}

async fn setup(
    State(ui): State<DashboardUi>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = Form::parse(&body);
    let (binding, new) = pre_binding(&headers);
    if new || !ui.0.csrf.verify("pre", &binding, f.csrf()) {
        return expired_form("dashboard");
    }
    let token = f.raw("setup_token").to_owned();
    match admins::list(ui.store().as_ref()).await {
        Ok(l) if l.is_empty() => {}
        Ok(_) => return Redirect::to("/login").into_response(),
        Err(e) => {
            return failure(
                json!({"app": "dashboard"}),
                &format!("The database is unavailable: {e}"),
            );
        }
    }
    if let Some(refused) = check_setup_token(&ui, &token).await {
        if !token.is_empty() {
            audit::setup(ui.store().as_ref(), &f.text("email"), false, &addr).await;
        }
        return refused;
    }
    let email = f.text("email");
    let password = f.raw("password").to_owned();
    let mut errors = FieldErrors::default();
    if password != f.raw("password_confirm") {
        errors.add("password_confirm", "The two passwords differ.");
    }
    if errors.is_empty() {
        match admins::create_first(ui.store().as_ref(), ui.passwords(), &email, &password).await {
            Ok(true) => {
                tracing::info!("the first dashboard admin was created through the setup link");
                let email = email.trim().to_ascii_lowercase();
                audit::setup(ui.store().as_ref(), &email, true, &addr).await;
                match ui.start_session(&email.to_ascii_lowercase()).await {
                    Ok(token) => return signed_in(&ui, &token),
                    Err(e) => errors.general(format!("The database is unavailable: {e}")),
                }
            }
            Ok(false) => return Redirect::to("/login").into_response(),
            Err(admins::AdminError::Invalid(v)) => {
                errors.place_validation(&v, &[("email", "email"), ("password", "password")]);
            }
            Err(admins::AdminError::Busy) => return busy_page("dashboard"),
            Err(e) => errors.general(e.to_string()),
        }
    }
    let ctx = json!({"app": "dashboard", "title": "Create the first admin", "csrf": f.csrf(),
                     "setup_token": token, "form": {"email": email}, "errors": errors});
    render(StatusCode::BAD_REQUEST, "dash_setup.html", &ctx)
}

/// 503 with `Retry-After` when the password pool is full.
pub(crate) fn busy_page(app: &str) -> Response {
    let mut r = message_page(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"app": app}),
        "Busy",
        "The server is busy checking passwords. Go back and try again in a second.",
        None,
    );
    r.headers_mut().insert(
        header::RETRY_AFTER,
        axum::http::HeaderValue::from(gatehouse_admin_api::passwords::BUSY_RETRY_AFTER),
    );
    r
}

async fn logout(State(ui): State<DashboardUi>, headers: HeaderMap, body: Bytes) -> Response {
    let f = Form::parse(&body);
    if let Some(a) = ui.session(&headers).await {
        if !ui.0.csrf.verify("dash", &a.token, f.csrf()) {
            return expired_form("dashboard");
        }
        if let Err(e) = ui.store().delete_admin_session(&sha256_hex(&a.token)).await {
            return message_page(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"app": "dashboard"}),
                "Not signed out",
                &format!("The database is unavailable ({e}); try again."),
                Some(("/apis", "Back")),
            );
        }
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(COOKIE, "", Some(0), ui.secure()),
    );
    r
}

/// A confirmation page (works without script).
pub(crate) fn confirm_page(
    base: Value,
    question: &str,
    detail: &str,
    action: &str,
    confirm_label: &str,
    cancel: &str,
) -> Response {
    let ctx = merge(
        base,
        json!({"question": question, "detail": detail, "action": action,
               "confirm_label": confirm_label, "cancel": cancel}),
    );
    render(StatusCode::OK, "confirm.html", &ctx)
}

/// A 404 page inside the dashboard.
pub(crate) fn not_found(base: Value, what: &str, back: &str) -> Response {
    message_page(
        StatusCode::NOT_FOUND,
        base,
        "Not found",
        what,
        Some((back, "Back to the list")),
    )
}

/// A 503/500 page for a failure that is not the user's.
pub(crate) fn failure(base: Value, message: &str) -> Response {
    message_page(
        StatusCode::SERVICE_UNAVAILABLE,
        base,
        "Something went wrong",
        message,
        None,
    )
}
