//! The control-plane items of the security review (issue 12), against the real binary: the
//! first admin only through the one-time setup link printed on the console (also with several
//! dashboard nodes on one fresh database), sign-up that does not reveal registered emails and is
//! throttled, password work that overflows into 503 instead of stalling the process,
//! `max_clients_per_developer` under 50 parallel creations against the real IdP, and
//! `Cache-Control: no-store` on answers that carry secrets.

use std::sync::Arc;

use gatehouse_test_support::idp::{IdpShape, TestIdp};
use reqwest::Method;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

use crate::cluster::TestDatabase;
use crate::harness::Server;

const PASSWORD: &str = "correct horse battery";

/// A client that does not follow redirects (so `Location` can be checked).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

fn cookie_pair(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

fn csrf_in(html: &str) -> String {
    let at = html.find("name=\"_csrf\" value=\"").expect("a CSRF field") + 20;
    html[at..].split('"').next().unwrap().to_owned()
}

fn enc(s: &str) -> String {
    s.replace('%', "%25")
        .replace('@', "%40")
        .replace(' ', "+")
        .replace('&', "%26")
        .replace('=', "%3D")
}

/// GETs `url` (a page with a form) and returns (status, pre-sign-in cookie, CSRF token, body).
async fn form_page(http: &reqwest::Client, url: &str) -> (u16, Option<String>, String, String) {
    let r = http.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let pre = cookie_pair(&r, "gh_pre");
    let body = r.text().await.unwrap();
    let csrf = if body.contains("name=\"_csrf\"") {
        csrf_in(&body)
    } else {
        String::new()
    };
    (status, pre, csrf, body)
}

/// POSTs a form with the `gh_pre` cookie; returns status, `Location` and body.
async fn post_form(
    http: &reqwest::Client,
    url: &str,
    pre: &str,
    form: String,
) -> (u16, Option<String>, String, reqwest::header::HeaderMap) {
    let r = http
        .post(url)
        .header("cookie", pre)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    let headers = r.headers().clone();
    (status, location, r.text().await.unwrap(), headers)
}

/// The setup form posted with `token`: (status, Location).
async fn post_setup(
    s: &Server,
    link: &str,
    token: &str,
    email: &str,
) -> (u16, Option<String>, reqwest::header::HeaderMap) {
    let http = browser();
    let (status, pre, csrf, body) = form_page(&http, link).await;
    assert_eq!(status, 200, "{body}");
    let form = format!(
        "email={}&password={p}&password_confirm={p}&setup_token={token}&_csrf={csrf}",
        enc(email),
        p = enc(PASSWORD),
    );
    let (st, loc, _, headers) = post_form(&http, &s.admin_url("/setup"), &pre.unwrap(), form).await;
    (st, loc, headers)
}

fn token_of(link: &str) -> String {
    link.split_once("?token=")
        .expect("a token in the link")
        .1
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_admin_only_through_the_printed_setup_link() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_capturing_logs(dir.path(), &[]);
    let link = s
        .setup_link()
        .expect("a fresh data directory prints a setup link");
    assert!(
        link.starts_with(&format!(
            "http://127.0.0.1:{}/setup?token=",
            s.dashboard_port
        )),
        "{link}"
    );
    let token = token_of(&link);
    // 32 random bytes, base64url: 256 bits.
    assert_eq!(token.len(), 43, "{token}");
    // The log says a link was printed but never holds the token.
    assert!(s.logs().contains("setup link"));
    assert!(!s.logs().contains(&token));

    let http = browser();
    // Reaching /setup first is not enough: the page explains where the link is.
    let r = http.get(s.admin_url("/")).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/setup");
    let (st, _, _, body) = form_page(&http, &s.admin_url("/setup")).await;
    assert_eq!(st, 403);
    assert!(body.contains("First admin: open"), "{body}");
    assert!(!body.contains("name=\"password\""));
    // A wrong token, in the link or in the form, is refused.
    let (st, _, _, body) = form_page(&http, &s.admin_url("/setup?token=AAAAAAAA")).await;
    assert_eq!(st, 403);
    assert!(body.contains("not valid"), "{body}");
    let (st, loc, _) = post_setup(&s, &link, "not-the-token", "root@example.com").await;
    assert_eq!((st, loc), (403, None));
    let (st, loc, _) = post_setup(&s, &link, &token[..42], "root@example.com").await;
    assert_eq!((st, loc), (403, None));

    // The printed link creates the first admin and signs them in.
    let (st, loc, headers) = post_setup(&s, &link, &token, "root@example.com").await;
    assert_eq!((st, loc.as_deref()), (303, Some("/apis")));
    let session = headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("gh_dash="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .expect("a session cookie");
    let r = http
        .get(s.admin_url("/apis"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The audit log names the refused tokens and the first admin.
    let audit = http
        .get(s.admin_url("/audit"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(audit.contains("admin.setup_failed"), "{audit}");
    assert!(audit.contains("<td>admin.setup</td>"), "{audit}");

    // The token died with the first admin: the link leads to the sign-in page, and posting it
    // again creates nobody.
    let r = http.get(&link).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/login");
    let r = http.get(s.admin_url("/login")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // A restart with an admin prints no link.
    s.terminate();
    s.start_again();
    assert_eq!(s.setup_link(), None, "{:?}", s.stdout_lines);
    // The token never reached the log, requests that carried it included.
    assert!(!s.logs().contains(&token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_from_the_environment_needs_no_setup_link() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_role_with_env(
        "serve",
        dir.path(),
        &[],
        &[
            ("GATEHOUSE_ADMIN_EMAIL", "ops@example.com"),
            ("GATEHOUSE_ADMIN_PASSWORD", PASSWORD),
        ],
        "server.log",
    );
    assert_eq!(s.setup_link(), None, "{:?}", s.stdout_lines);
    let http = browser();
    let r = http.get(s.admin_url("/setup")).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/login");
    let (st, pre, csrf, _) = form_page(&http, &s.admin_url("/login")).await;
    assert_eq!(st, 200);
    let form = format!(
        "email={}&password={}&_csrf={csrf}",
        enc("ops@example.com"),
        enc(PASSWORD)
    );
    let (st, loc, _, _) = post_form(&http, &s.admin_url("/login"), &pre.unwrap(), form).await;
    assert_eq!((st, loc.as_deref()), (303, Some("/apis")));
}

/// Two `gatehouse dashboard` nodes start on one fresh database (PostgreSQL when it answers, else
/// one SQLite file): each prints its own link, either link works on either node, and the first
/// admin created ends both links.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_nodes_on_a_fresh_database_accept_each_others_setup_links() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create();
    let db_url = database.as_ref().map(TestDatabase::url);
    let db: Vec<&str> = match &db_url {
        Some(u) => vec!["--database-url", u.as_str()],
        None => Vec::new(),
    };
    let a = Server::start_role_with_env("dashboard", dir.path(), &db, &[], "a.log");
    let b = Server::start_role_with_env("dashboard", dir.path(), &db, &[], "b.log");
    let link_a = a.setup_link().expect("node a prints a link");
    let link_b = b.setup_link().expect("node b prints a link");
    assert_ne!(token_of(&link_a), token_of(&link_b));

    // Node a's link opens the form on node b (a load balancer may send the browser there).
    let a_on_b = format!("{}?token={}", b.admin_url("/setup"), token_of(&link_a));
    let (st, _, _, _) = form_page(&browser(), &a_on_b).await;
    assert_eq!(st, 200);
    let (st, loc, _) = post_setup(&b, &a_on_b, &token_of(&link_a), "first@example.com").await;
    assert_eq!((st, loc.as_deref()), (303, Some("/apis")));

    // Both links are dead now, on both nodes.
    for node in [&a, &b] {
        for link in [&link_a, &link_b] {
            let url = format!("{}?token={}", node.admin_url("/setup"), token_of(link));
            let r = browser().get(&url).send().await.unwrap();
            assert_eq!(r.headers()["location"], "/login", "{url}");
        }
    }
    let (st, loc, _) = {
        // A second "first" admin through node a's own form is refused.
        let http = browser();
        let (_, pre, csrf, _) = form_page(&http, &a.admin_url("/login")).await;
        let form = format!(
            "email=second%40example.com&password={p}&password_confirm={p}&setup_token={}&_csrf={csrf}",
            token_of(&link_b),
            p = enc(PASSWORD)
        );
        let (st, loc, _, h) = post_form(&http, &a.admin_url("/setup"), &pre.unwrap(), form).await;
        (st, loc, h)
    };
    assert_eq!((st, loc.as_deref()), (303, Some("/login")));
}

/// Turns on sign-up (and DCR at `idp`, when given) with `max_clients_per_developer`.
async fn portal_config(s: &Server, idp: Option<&TestIdp>, max_clients: i64) {
    let mut cfg = json!({"signup_enabled": true, "max_clients_per_developer": max_clients});
    if let Some(idp) = idp {
        cfg["enable_dcr"] = json!(true);
        cfg["dcr_options"] = json!({
            "provider": "other",
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_basic",
            "registration_endpoint": idp.registration_endpoint(),
            "access_token": idp.initial_access_token(),
            "token_endpoint": idp.token_endpoint(),
        });
    }
    let (st, v) = s
        .admin(
            Method::PUT,
            "/api/portal/configuration",
            Some(&cfg.to_string()),
        )
        .await;
    assert_eq!(st, 200, "{v}");
}

async fn api_signup(s: &Server, email: &str, password: &str) -> (u16, Value, bool) {
    let r = reqwest::Client::new()
        .post(s.portal_url("/api/signup"))
        .json(&json!({"email": email, "first_name": "Dee", "password": password}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let cookie = r.headers().get("set-cookie").is_some();
    (status, r.json().await.unwrap_or(Value::Null), cookie)
}

async fn api_login(s: &Server, email: &str, password: &str) -> u16 {
    reqwest::Client::new()
        .post(s.portal_url("/api/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_answers_alike_for_new_and_registered_emails_and_is_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_capturing_logs(dir.path(), &[]);
    portal_config(&s, None, -1).await;

    // A new email and the same email again (another password): the same answer, no session.
    let first = api_signup(&s, "taken@example.com", PASSWORD).await;
    let again = api_signup(&s, "Taken@Example.com", "another long password").await;
    assert_eq!(first.0, 202, "{first:?}");
    assert_eq!(first, again);
    assert_eq!(first.1["status"], "accepted");
    assert!(
        first.1["message"]
            .as_str()
            .unwrap()
            .starts_with("If this email address was not registered yet"),
        "{first:?}"
    );
    assert!(!first.2, "no session cookie: the developer signs in");
    // The registered account is unchanged: its own password works, the second one does not, and
    // there is one developer.
    assert_eq!(api_login(&s, "taken@example.com", PASSWORD).await, 200);
    assert_eq!(
        api_login(&s, "taken@example.com", "another long password").await,
        401
    );
    let (_, devs) = s.admin(Method::GET, "/api/portal/developers", None).await;
    assert_eq!(devs.as_array().unwrap().len(), 1, "{devs}");
    // The taken email went the way that hashes nothing.
    assert!(s.logs().contains("sign-up for a registered email"));

    // The pages: a new and a taken email both lead to the same sign-in notice.
    let http = browser();
    let mut locations = Vec::new();
    for email in ["pages@example.com", "taken@example.com"] {
        let (st, pre, csrf, _) = form_page(&http, &s.portal_url("/signup")).await;
        assert_eq!(st, 200);
        let form = format!(
            "email={}&first_name=Pat&password={}&_csrf={csrf}",
            enc(email),
            enc(PASSWORD)
        );
        let (st, loc, _, _) = post_form(&http, &s.portal_url("/signup"), &pre.unwrap(), form).await;
        locations.push((st, loc));
    }
    assert_eq!(locations[0], locations[1]);
    assert_eq!(locations[0], (303, Some("/login?signed_up=1".to_owned())));
    let r = http
        .get(s.portal_url("/login?signed_up=1"))
        .send()
        .await
        .unwrap();
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("If this email address was not registered yet")
    );

    // Bad input is still a 400 naming the field (and is not counted).
    let bad = api_signup(&s, "short@example.com", "short").await;
    assert_eq!(bad.0, 400);
    assert_eq!(bad.1["field"], "password");

    // Throttled per address: 10 sign-ups within 15 minutes (4 so far), then 429 with
    // Retry-After, before any lookup or hash.
    for i in 0..6 {
        let (st, v, _) = api_signup(&s, &format!("dev{i}@example.com"), PASSWORD).await;
        assert_eq!(st, 202, "{i}: {v}");
    }
    let r = reqwest::Client::new()
        .post(s.portal_url("/api/signup"))
        .json(&json!({"email": "one-more@example.com", "first_name": "M", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("too many sign-ups"),
        "{v}"
    );
    assert_eq!(api_login(&s, "one-more@example.com", PASSWORD).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_client_creations_stay_within_the_limit_at_the_idp() {
    let idp = TestIdp::start(IdpShape::Plain).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(Server::start(dir.path()));
    let (st, v) = s
        .admin(
            Method::POST,
            "/api/policies",
            Some(&json!({"id": "gold", "name": "Gold", "access_rights": {}}).to_string()),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    portal_config(&s, Some(&idp), 3).await;
    let (st, v) = s
        .admin(
            Method::POST,
            "/api/portal/catalogue",
            Some(
                &json!({"id": "pay", "name": "Payments", "policy_id": "gold", "show": true})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = s
        .admin(
            Method::POST,
            "/api/portal/developers",
            Some(
                &json!({"email": "dev@example.com", "first_name": "Dee", "password": PASSWORD})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let before = idp.client_count().await;

    let r = reqwest::Client::new()
        .post(s.portal_url("/api/login"))
        .json(&json!({"email": "dev@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = cookie_pair(&r, "gh_portal").unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (s, cookie) = (Arc::clone(&s), cookie.clone());
        tasks.spawn(async move {
            let r = reqwest::Client::new()
                .post(s.portal_url("/api/clients"))
                .header("cookie", cookie)
                .json(&json!({"catalogue_ids": ["pay"], "client_name": format!("app {i}")}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let cache = r
                .headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, cache, r.json::<Value>().await.unwrap())
        });
    }
    let results = tasks.join_all().await;
    let created: Vec<_> = results.iter().filter(|r| r.0 == 201).collect();
    let refused: Vec<_> = results.iter().filter(|r| r.0 == 403).collect();
    assert_eq!(created.len(), 3, "{results:?}");
    assert_eq!(refused.len(), 47, "{results:?}");
    for (_, cache, v) in &created {
        // The answer carries the client secret: never cached.
        assert!(v["client_secret"].is_string(), "{v}");
        assert_eq!(cache.as_deref(), Some("no-store"));
    }
    assert!(
        refused[0].2["error"]
            .as_str()
            .unwrap()
            .contains("the most this portal allows"),
        "{:?}",
        refused[0]
    );
    // Nothing beyond the limit was registered at the IdP.
    assert_eq!(idp.client_count().await - before, 3);
    let (_, listed) = s.admin(Method::GET, "/api/portal/clients", None).await;
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");

    // Deleting one frees its slot.
    let id = created[0].2["client_id"].as_str().unwrap();
    let http = reqwest::Client::new();
    let r = http
        .delete(s.portal_url(&format!("/api/clients/{id}")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(s.portal_url("/api/clients"))
        .header("cookie", &cookie)
        .json(&json!({"catalogue_ids": ["pay"], "client_name": "after"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(idp.client_count().await - before, 3);
}

/// Answers that carry secrets (or belong to a signed-in session) say `no-store`; static assets
/// may be cached; no HSTS without TLS (tls.rs checks it with TLS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_bearing_answers_are_never_cached() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(dir.path(), &[], None);
    let link = s.setup_link().unwrap();
    // The generated admin key was printed; the admin API's answers are no-store.
    let r = s
        .http()
        .get(s.admin_url("/api/apis"))
        .bearer_auth(&s.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.headers().get("strict-transport-security").is_none());
    // Errors too (an unknown path, a missing key).
    for url in [s.admin_url("/api/nothing"), s.portal_url("/api/clients")] {
        let r = s.http().get(&url).send().await.unwrap();
        assert!(r.status().is_client_error(), "{url}");
        assert_eq!(r.headers()["cache-control"], "no-store", "{url}");
    }
    // The setup form and the portal's pages and JSON API.
    for url in [
        link.clone(),
        s.portal_url("/login"),
        s.portal_url("/api/login"),
    ] {
        let r = browser().get(&url).send().await.unwrap();
        assert_eq!(r.headers()["cache-control"], "no-store", "{url}");
    }
    // Static assets keep their own caching.
    let r = s
        .http()
        .get(s.portal_url("/static/app.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
}
