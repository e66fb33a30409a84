//! The routers over a real (SQLite) store, without a browser: the first-admin setup, the CSRF
//! and same-origin checks, escaping of stored names, and the hand-off of `/api/*` paths.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

use gatehouse_admin_api::portal::Portal;
use gatehouse_admin_api::{Control, no_hook};
use gatehouse_store::{SecretBox, SqliteStore, Store, WriteMode};
use gatehouse_web_ui::{DashboardUi, PortalUi, UiSettings, dashboard_app, portal_app};

struct App {
    dash: Router,
    portal: Router,
    control: Control,
    store: Arc<dyn Store>,
    /// The one-time first-admin setup token (as `gatehouse serve` prints it), while no admin
    /// exists.
    setup_token: Option<String>,
    _dir: tempfile::TempDir,
}

async fn app() -> App {
    app_in(tempfile::tempdir().unwrap()).await
}

/// The app over the store in `dir` (a second app over the same directory is a restart).
async fn app_in(dir: tempfile::TempDir) -> App {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let secrets = Arc::new(SecretBox::load_or_create(dir.path(), None).unwrap());
    let control = Control::new(Arc::clone(&store), no_hook());
    let portal = Portal::new(
        Arc::clone(&store),
        secrets,
        no_hook(),
        ";",
        Duration::from_secs(2),
    );
    let settings = UiSettings::default();
    let dash_ui = DashboardUi::new(control.clone(), Arc::clone(&portal), settings.clone())
        .await
        .unwrap();
    let portal_ui = PortalUi::new(portal, Arc::clone(&store), settings.clone())
        .await
        .unwrap();
    let setup_token = gatehouse_web_ui::setup::issue_token(store.as_ref())
        .await
        .unwrap();
    let api = Router::new().route(
        "/api/ping",
        axum::routing::get(|| async { axum::Json(json!({"pong": true})) }),
    );
    App {
        dash: dashboard_app(dash_ui, api.clone()),
        portal: portal_app(portal_ui, api),
        control,
        store,
        setup_token,
        _dir: dir,
    }
}

struct Answer {
    status: StatusCode,
    cookies: Vec<String>,
    location: Option<String>,
    body: String,
    content_type: String,
}

async fn call(r: &Router, req: Request<Body>) -> Answer {
    let resp = r.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let h = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        cookies: h
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect(),
        location: h
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned()),
        body: String::from_utf8_lossy(&body).into_owned(),
        content_type: h
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default(),
    }
}

fn get(uri: &str, cookie: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::HOST, "127.0.0.1:3000")
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap()
}

fn post(uri: &str, cookie: &str, form: &str, origin: Option<&str>) -> Request<Body> {
    let mut b = Request::post(uri)
        .header(header::HOST, "127.0.0.1:3000")
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(o) = origin {
        b = b.header(header::ORIGIN, o);
    }
    b.body(Body::from(form.to_owned())).unwrap()
}

fn cookie_pair(set_cookie: &[String], name: &str) -> String {
    set_cookie
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no {name} cookie in {set_cookie:?}"))
}

fn csrf_in(html: &str) -> String {
    let at = html.find("name=\"_csrf\" value=\"").expect("a CSRF field") + 20;
    html[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn setup_csrf_same_origin_and_escaping() {
    let a = app().await;

    // No admin yet: every page leads to /setup, which without the one-time link's token only
    // says where to find the link.
    let r = call(&a.dash, get("/apis", "")).await;
    assert_eq!(r.location.as_deref(), Some("/setup"));
    let r = call(&a.dash, get("/setup", "")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("First admin: open"), "{}", r.body);
    assert!(!r.body.contains("name=\"password\""));
    let r = call(&a.dash, get("/setup?token=guessed", "")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body.contains("This setup link is not valid"),
        "{}",
        r.body
    );
    // With the link: the form, which sets the pre-sign-in cookie and carries the token.
    let setup_token = a.setup_token.clone().expect("a setup token without admins");
    let r = call(&a.dash, get(&format!("/setup?token={setup_token}"), "")).await;
    assert_eq!(r.status, StatusCode::OK);
    let pre = cookie_pair(&r.cookies, "gh_pre");
    assert!(r.cookies[0].contains("HttpOnly") && r.cookies[0].contains("SameSite=Lax"));
    let token = csrf_in(&r.body);
    assert!(r.body.contains("<label for=\"f-email\""));
    assert!(
        r.body
            .contains(&format!("name=\"setup_token\" value=\"{setup_token}\""))
    );

    // A wrong setup token in the form is refused, even with a good CSRF token.
    let wrong = format!(
        "email=admin%40example.com&password=long+enough+pw&password_confirm=long+enough+pw\
         &setup_token=wrong&_csrf={token}"
    );
    let r = call(&a.dash, post("/setup", &pre, &wrong, None)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        gatehouse_web_ui::admins::list(a.store.as_ref())
            .await
            .unwrap()
            .is_empty()
    );

    // Without the CSRF token, or from another origin: refused.
    let form = format!(
        "email=admin%40example.com&password=long+enough+pw&password_confirm=long+enough+pw\
         &setup_token={setup_token}"
    );
    let form = form.as_str();
    let r = call(&a.dash, post("/setup", &pre, form, None)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let with = format!("{form}&_csrf={token}");
    let r = call(
        &a.dash,
        post("/setup", &pre, &with, Some("http://127.0.0.1:3001")),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // A mistake is shown next to its field, keeping the email.
    let bad = format!(
        "email=admin%40example.com&password=long+enough+pw&password_confirm=other\
         &setup_token={setup_token}&_csrf={token}"
    );
    let r = call(&a.dash, post("/setup", &pre, &bad, None)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("id=\"err-password_confirm\""));
    assert!(r.body.contains("value=\"admin@example.com\""));

    // With the token from the same origin: the admin exists and is signed in.
    let r = call(
        &a.dash,
        post("/setup", &pre, &with, Some("http://127.0.0.1:3000")),
    )
    .await;
    assert_eq!(r.location.as_deref(), Some("/apis"), "{}", r.body);
    let session = cookie_pair(&r.cookies, "gh_dash");
    // /setup is closed now, and the token is used up.
    let r = call(&a.dash, get("/setup", "")).await;
    assert_eq!(r.location.as_deref(), Some("/login"));
    assert!(a.store.setup_tokens().await.unwrap().is_empty());
    let r = call(&a.dash, post("/setup", &pre, &with, None)).await;
    assert_eq!(r.location.as_deref(), Some("/login"));

    // A stored name with markup is shown as text.
    a.control
        .put_api(
            json!({"name": "<script>alert(1)</script>", "api_id": "x", "use_keyless": true,
                   "proxy": {"listen_path": "/x/", "target_url": "http://127.0.0.1:9"}}),
            None,
            WriteMode::Create,
        )
        .await
        .unwrap();
    let r = call(&a.dash, get("/apis", &session)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.body.contains("<script>alert(1)"));
    assert!(
        r.body
            .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;")
    );
    let csrf = csrf_in(&r.body);

    // A signed-in POST still needs the session's token.
    let del = call(
        &a.dash,
        post("/apis/x/delete", &session, "confirm=yes", None),
    )
    .await;
    assert_eq!(del.status, StatusCode::FORBIDDEN);
    let other = call(
        &a.dash,
        post(
            "/apis/x/delete",
            &session,
            "confirm=yes&_csrf=not-the-token",
            None,
        ),
    )
    .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    let ok = call(
        &a.dash,
        post(
            "/apis/x/delete",
            &session,
            &format!("confirm=yes&_csrf={csrf}"),
            None,
        ),
    )
    .await;
    assert_eq!(ok.location.as_deref(), Some("/apis"));
    assert!(a.control.get_api("x").await.is_err());

    // Pages carry a strict CSP; /api paths go to the API router; other paths are HTML 404s.
    let r = a.dash.clone().oneshot(get("/login", "")).await.unwrap();
    let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    let r = call(&a.dash, get("/api/ping", "")).await;
    assert_eq!(r.body, "{\"pong\":true}");
    let r = call(&a.portal, get("/nothing-here", "")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.content_type.starts_with("text/html"));
    let r = call(&a.portal, get("/static/app.css", "")).await;
    assert!(r.content_type.starts_with("text/css"));
    let r = call(&a.portal, get("/clients", "")).await;
    assert_eq!(r.location.as_deref(), Some("/login"));
}

/// Creates the first admin through /setup; returns the session cookie pair.
async fn setup_admin(a: &App, email: &str, password: &str) -> String {
    let setup_token = a.setup_token.as_deref().expect("no admin yet");
    let r = call(&a.dash, get(&format!("/setup?token={setup_token}"), "")).await;
    let pre = cookie_pair(&r.cookies, "gh_pre");
    let form = format!(
        "email={}&password={password}&password_confirm={password}&setup_token={setup_token}\
         &_csrf={}",
        email.replace('@', "%40"),
        csrf_in(&r.body)
    );
    let r = call(&a.dash, post("/setup", &pre, &form, None)).await;
    assert_eq!(r.location.as_deref(), Some("/apis"), "{}", r.body);
    cookie_pair(&r.cookies, "gh_dash")
}

/// Signs in on /login; returns the answer.
async fn sign_in(a: &App, email: &str, password: &str) -> Answer {
    let r = call(&a.dash, get("/login", "")).await;
    let pre = cookie_pair(&r.cookies, "gh_pre");
    let form = format!(
        "email={}&password={password}&_csrf={}",
        email.replace('@', "%40"),
        csrf_in(&r.body)
    );
    call(&a.dash, post("/login", &pre, &form, None)).await
}

#[tokio::test]
async fn admins_throttling_audit_import_and_sessions_that_survive_a_restart() {
    let a = app().await;
    let root = setup_admin(&a, "root@example.com", "first+admin+pw").await;

    // Adding an admin: the password rules apply, errors sit next to their field.
    let page = call(&a.dash, get("/admins", &root)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("root@example.com"));
    let csrf = csrf_in(&page.body);
    let weak = format!(
        "email=ops%40example.com&password=password123&password_confirm=password123&_csrf={csrf}"
    );
    let r = call(&a.dash, post("/admins/new", &root, &weak, None)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("id=\"err-password\""), "{}", r.body);
    assert!(r.body.contains("too common"));
    let good = format!(
        "email=ops%40example.com&password=second+admin+pw&password_confirm=second+admin+pw&_csrf={csrf}"
    );
    let r = call(&a.dash, post("/admins/new", &root, &good, None)).await;
    assert_eq!(r.location.as_deref(), Some("/admins"));
    let page = call(&a.dash, get("/admins", &root)).await;
    assert!(
        page.body.contains("ops@example.com") && page.body.contains("Admin ops@example.com added")
    );

    // Sign-in throttling: five wrong passwords are answered 401, then 429 even with the right one.
    for i in 0..5 {
        let r = sign_in(&a, "ops@example.com", "wrong+password+x").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
        assert!(r.body.contains("Wrong email or password."));
    }
    let r = sign_in(&a, "ops@example.com", "second+admin+pw").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        r.body.contains("Too many failed sign-ins for this account"),
        "{}",
        r.body
    );
    // Another account is not affected.
    let r = sign_in(&a, "root@example.com", "first+admin+pw").await;
    assert_eq!(r.location.as_deref(), Some("/apis"));

    // Import from Tyk through the page: one API definition.
    let page = call(&a.dash, get("/import", &root)).await;
    let csrf = csrf_in(&page.body);
    let doc = json!({"name": "Pay", "api_id": "pay", "use_keyless": true,
        "proxy": {"listen_path": "/pay/", "target_url": "http://127.0.0.1:9", "strip_listen_path": true}});
    let form = format!("document={}&_csrf={csrf}", urlencode(&doc.to_string()));
    let r = call(&a.dash, post("/import", &root, &form, None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("1 imported, 0 failed"), "{}", r.body);
    assert!(a.control.get_api("pay").await.is_ok());
    let bad = format!("document=%7Bnot+json&_csrf={csrf}");
    let r = call(&a.dash, post("/import", &root, &bad, None)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("id=\"err-document\"") && r.body.contains("not valid JSON"));

    // The audit log has the sign-in failures, the throttled attempt, the admin added and the
    // import, with who did it.
    let audit = call(&a.dash, get("/audit", &root)).await;
    assert_eq!(audit.status, StatusCode::OK);
    assert_eq!(
        audit.body.matches("admin.sign_in_failed").count(),
        6,
        "{}",
        audit.body
    );
    assert!(audit.body.contains("throttled"));
    assert!(audit.body.contains("admin.create"));
    assert!(audit.body.contains("import.tyk"));
    assert!(audit.body.contains("POST &#x2f;admins&#x2f;new"));
    assert!(!audit.body.contains("second+admin+pw") && !audit.body.contains("second admin pw"));

    // A restart (a new app over the same database) keeps the session.
    let App {
        dash,
        control,
        _dir,
        ..
    } = a;
    drop((dash, control));
    let a = app_in(_dir).await;
    let r = call(&a.dash, get("/apis", &root)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "signed out by a restart: {:?}",
        r.location
    );

    // Removing an admin: not yourself; the removed admin's sessions end.
    let ops = {
        // A fresh process has no throttle record for ops.
        let r = sign_in(&a, "ops@example.com", "second+admin+pw").await;
        assert_eq!(r.location.as_deref(), Some("/apis"));
        cookie_pair(&r.cookies, "gh_dash")
    };
    let page = call(&a.dash, get("/admins", &root)).await;
    let csrf = csrf_in(&page.body);
    let r = call(
        &a.dash,
        post(
            "/admins/root@example.com/delete",
            &root,
            &format!("_csrf={csrf}"),
            None,
        ),
    )
    .await;
    assert_eq!(r.location.as_deref(), Some("/admins"));
    let page = call(&a.dash, get("/admins", &root)).await;
    assert!(
        page.body.contains("you cannot remove yourself"),
        "{}",
        page.body
    );
    let csrf = csrf_in(&page.body);
    let r = call(
        &a.dash,
        post(
            "/admins/ops@example.com/delete",
            &root,
            &format!("_csrf={csrf}"),
            None,
        ),
    )
    .await;
    assert_eq!(r.location.as_deref(), Some("/admins"));
    let r = call(&a.dash, get("/apis", &ops)).await;
    assert_eq!(r.location.as_deref(), Some("/login"));
    let page = call(&a.dash, get("/admins", &root)).await;
    assert!(!page.body.contains("ops@example.com</td>"));
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A developer with a live portal session and one OAuth client; returns the session cookie.
async fn developer_with_client(
    store: &dyn Store,
    id: &str,
    client: &str,
    client_name: &str,
) -> String {
    let now = gatehouse_store::unix_now();
    store
        .put_developer(
            &gatehouse_store::DeveloperRow {
                id: id.into(),
                email: format!("{id}@example.com"),
                first_name: id.into(),
                last_name: "Dev".into(),
                password_hash: "x".into(),
                inactive: false,
                created_at: now,
                updated_at: now,
            },
            WriteMode::Create,
        )
        .await
        .unwrap();
    store
        .insert_client(&gatehouse_store::ClientRow {
            client_id: client.into(),
            developer_id: id.into(),
            doc: json!({"client_id": client, "client_name": client_name, "policy_ids": []}),
            secret_sealed: None,
            rat_sealed: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        })
        .await
        .unwrap();
    let token = format!("session-token-of-{id}-0123456789");
    store
        .create_session(
            &gatehouse_admin_api::portal::sha256_hex(&token),
            id,
            now + 3600,
        )
        .await
        .unwrap();
    format!("gh_portal={token}")
}

fn usage_row(dev: &str, client: &str, requests: i64, class: i64) -> gatehouse_store::AnalyticsRow {
    let mut latency_hist = [0; gatehouse_store::ANALYTICS_BUCKETS];
    latency_hist[1] = requests;
    gatehouse_store::AnalyticsRow {
        minute: gatehouse_store::unix_now() / 60 - 2,
        api_id: "pay".into(),
        developer_id: dev.into(),
        client_id: client.into(),
        status_class: class,
        requests,
        bytes_in: 0,
        bytes_out: 0,
        latency_us_sum: requests * 900,
        latency_hist,
    }
}

#[tokio::test]
async fn the_usage_page_shows_only_the_developers_own_clients() {
    let a = app().await;
    let s = a.store.as_ref();
    let alice = developer_with_client(s, "alice", "client-a", "Alice App").await;
    let bob = developer_with_client(s, "bob", "client-b", "Bobs Secret App").await;
    s.add_analytics(&[
        usage_row("alice", "client-a", 7, 2),
        usage_row("alice", "client-a", 3, 4),
        usage_row("bob", "client-b", 42, 2),
    ])
    .await
    .unwrap();

    let r = call(&a.portal, get("/usage?range=1h", &alice)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("<svg class=\"chart\""), "{}", r.body);
    assert!(
        r.body.contains(">Alice App (client-a) (10)</text>"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains(">Alice App (client-a) (3)</text>"),
        "errors chart"
    );
    assert!(!r.body.contains("client-b") && !r.body.contains("Bobs Secret App"));
    assert!(
        !r.body.contains("(42)") && !r.body.contains(">42<"),
        "bob's count leaks: {}",
        r.body
    );
    assert!(r.body.contains("href=\"/usage\" aria-current=\"page\""));

    // Asking for bob's client or bob as the developer shows none of bob's data.
    for q in [
        "/usage?range=1h&client_id=client-b",
        "/usage?range=1h&developer_id=bob",
        "/usage?range=1h&developer_id=bob&client_id=client-b",
    ] {
        let r = call(&a.portal, get(q, &alice)).await;
        assert_eq!(r.status, StatusCode::OK, "{q}");
        assert!(
            !r.body.contains("Bobs Secret App") && !r.body.contains(">42<"),
            "{q}: {}",
            r.body
        );
        assert!(!r.body.contains("(42)"), "{q}");
    }
    let r = call(&a.portal, get("/usage?range=1h", &bob)).await;
    assert!(
        r.body.contains("(42)") && !r.body.contains("Alice App"),
        "{}",
        r.body
    );

    // A bad range is shown beside its field; signed out goes to the sign-in page.
    let r = call(&a.portal, get("/usage?from=yesterday", &alice)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("id=\"err-from\""), "{}", r.body);
    let r = call(&a.portal, get("/usage", "")).await;
    assert_eq!(r.location.as_deref(), Some("/login"));
    // The dashboard's Activity page needs an admin.
    let r = call(&a.dash, get("/activity", "")).await;
    assert!(r.location.is_some());
}

/// The API page lists the stored definition's warnings whenever it is viewed, not only right
/// after saving: a JWT API that checks neither issuer nor audience is flagged until one is set.
#[tokio::test]
async fn the_api_page_shows_the_apis_warnings() {
    let a = app().await;
    let session = setup_admin(&a, "admin@example.com", "long enough pw").await;
    a.control
        .put_api(
            json!({"name": "Orders", "api_id": "orders", "enable_jwt": true,
                   "jwt_signing_method": "rsa", "jwt_source": "http://127.0.0.1:9/jwks",
                   "proxy": {"listen_path": "/orders/", "target_url": "http://127.0.0.1:9"}}),
            None,
            WriteMode::Create,
        )
        .await
        .unwrap();
    let r = call(&a.dash, get("/apis/orders", &session)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("id=\"api-warnings\""), "{}", r.body);
    assert!(
        r.body.contains("neither is set")
            && r.body.contains("tokens the same IdP issued for other")
            && r.body.contains("set jwt_allowed_issuers"),
        "{}",
        r.body
    );

    // Saving through the page: the flash says there are warnings, the page lists them.
    let csrf = csrf_in(&r.body);
    let form = format!(
        "name=Orders&listen_path=%2Forders%2F&target_url=http%3A%2F%2F127.0.0.1%3A9&active=on\
         &auth_mode=jwt&jwt_signing_method=rsa&jwt_source=http%3A%2F%2F127.0.0.1%3A9%2Fjwks\
         &jwt_allowed_issuers=&jwt_allowed_audiences=&_csrf={csrf}"
    );
    let r = call(&a.dash, post("/apis/orders", &session, &form, None)).await;
    assert_eq!(r.location.as_deref(), Some("/apis/orders"), "{}", r.body);
    let r = call(&a.dash, get("/apis/orders", &session)).await;
    assert!(r.body.contains("saved, with warnings"), "{}", r.body);
    assert!(r.body.contains("id=\"api-warnings\""));

    // With an issuer set, no warning is left; a keyless API has none either.
    let form = form.replace(
        "jwt_allowed_issuers=",
        "jwt_allowed_issuers=https%3A%2F%2Fidp.example%2F",
    );
    let r = call(&a.dash, post("/apis/orders", &session, &form, None)).await;
    assert_eq!(r.location.as_deref(), Some("/apis/orders"), "{}", r.body);
    let r = call(&a.dash, get("/apis/orders", &session)).await;
    assert!(
        r.body.contains("Orders&#x27; saved.") && !r.body.contains("saved, with warnings"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("id=\"api-warnings\""), "{}", r.body);
    assert_eq!(
        a.control.get_api("orders").await.unwrap().doc["jwt_allowed_issuers"],
        json!(["https://idp.example/"])
    );
}
