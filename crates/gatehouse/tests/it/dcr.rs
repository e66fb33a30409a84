//! The headline flow through the JSON APIs, against the real IdP in three shapes (plain RFC
//! 7591/7592, Okta-shaped, Keycloak-shaped), with a `pol` claim and without one: configure DCR,
//! list an API in the catalogue, a developer signs in and creates a client, gets a token from the
//! IdP, calls the API through the gateway, rotates the secret, deletes the client.

use gatehouse_test_support::idp::{IdpShape, SecretRotation, TestIdp};
use gatehouse_test_support::upstream::EchoUpstream;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::Server;

/// A portal API client that keeps the session cookie.
struct Developer<'a> {
    server: &'a Server,
    cookie: String,
    http: reqwest::Client,
}

impl<'a> Developer<'a> {
    async fn login(server: &'a Server, email: &str, password: &str) -> Developer<'a> {
        let http = reqwest::Client::new();
        let r = http
            .post(server.portal_url("/api/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login");
        let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(
            set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
            "{set_cookie}"
        );
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        Developer {
            server,
            cookie,
            http,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, self.server.portal_url(path))
            .header("cookie", &self.cookie);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let st = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            st,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

struct Flow {
    idp: TestIdp,
    _upstream: EchoUpstream,
    server: Server,
    _dir: tempfile::TempDir,
    responses: Vec<String>,
}

const PASSWORD: &str = "correct horse battery";

async fn setup(shape: IdpShape, with_pol: bool) -> Flow {
    let idp = TestIdp::start(shape).await.unwrap();
    if shape == IdpShape::Plain {
        // Model an RFC 7592 IdP that issues a new secret on update (Curity, Keycloak with the
        // secret-rotation policy); oidc-provider alone keeps it.
        idp.set_secret_rotation(SecretRotation::OnUpdate)
            .await
            .unwrap();
    }
    let upstream = EchoUpstream::start("up").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_capturing_logs(dir.path(), &[]);
    let mut responses = Vec::new();
    let mut admin = |st: u16, v: Value| {
        responses.push(v.to_string());
        (st, v)
    };
    let (st, v) = server
        .admin(
            Method::POST,
            "/api/apis",
            Some(
                &json!({
                    "name": "Payments", "api_id": "payments", "enable_jwt": true,
                    "jwt_signing_method": "rsa", "jwt_source": idp.jwks_uri(),
                    "jwt_identity_base_field": "sub", "jwt_policy_field_name": "pol",
                    "proxy": {"listen_path": "/payments/", "target_url": upstream.url(), "strip_listen_path": true}
                })
                .to_string(),
            ),
        )
        .await;
    assert_eq!(admin(st, v).0, 201);
    let (st, v) = server
        .admin(
            Method::POST,
            "/api/policies",
            Some(
                &json!({"id": "gold", "name": "Gold", "rate": 100, "per": 60,
                         "access_rights": {"payments": {"api_id": "payments", "versions": []}}})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(admin(st, v).0, 201);

    let provider = match shape {
        IdpShape::Plain => "other",
        IdpShape::Okta => "okta",
        IdpShape::Keycloak => "keycloak",
    };
    let mut dcr = json!({
        "provider": provider,
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
        "registration_endpoint": idp.registration_endpoint(),
        "access_token": idp.initial_access_token(),
        "token_endpoint": idp.token_endpoint(),
    });
    if with_pol {
        dcr["registration_metadata"] = json!({"pol": "{policy_id}"});
    }
    let (st, v) = server
        .admin(
            Method::PUT,
            "/api/portal/configuration",
            Some(
                &json!({"enable_dcr": true, "dcr_options": dcr, "signup_enabled": true,
                         "max_clients_per_developer": 5})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["dcr_options"]["access_token_set"], true);
    assert!(v["dcr_options"].get("access_token").is_none(), "{v}");
    responses.push(v.to_string());

    let (st, v) = server
        .admin(
            Method::POST,
            "/api/portal/catalogue",
            Some(&json!({"id": "payments", "name": "Payments API", "short_description": "Pay things",
                         "api_id": "payments", "policy_id": "gold", "show": true}).to_string()),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    responses.push(v.to_string());
    let (st, v) = server
        .admin(
            Method::POST,
            "/api/portal/developers",
            Some(
                &json!({"email": "dev@example.com", "first_name": "Dee", "last_name": "Veloper",
                         "password": PASSWORD})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert!(v.get("password").is_none() && v.get("password_hash").is_none());
    responses.push(v.to_string());
    Flow {
        idp,
        _upstream: upstream,
        server,
        _dir: dir,
        responses,
    }
}

async fn gateway_status(server: &Server, token: &str) -> (u16, Value) {
    let r = server
        .http()
        .get(server.gateway("/payments/charges"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

async fn whole_flow(shape: IdpShape, with_pol: bool) {
    let mut f = setup(shape, with_pol).await;
    let s = &f.server;
    let dev = Developer::login(s, "dev@example.com", PASSWORD).await;

    let (st, cat) = dev.call(Method::GET, "/api/catalogue", None).await;
    assert_eq!(st, 200);
    assert_eq!(cat[0]["id"], "payments");
    assert_eq!(cat[0]["oauth_clients"], true);

    let (st, created) = dev
        .call(
            Method::POST,
            "/api/clients",
            Some(json!({"catalogue_ids": ["payments"], "client_name": format!("app-{}", shape.as_str()),
                        "redirect_uris": ""})),
        )
        .await;
    assert_eq!(st, 201, "{shape:?}: {created}");
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(created["token_endpoint"], f.idp.token_endpoint());
    f.responses.push(created.to_string());

    // The app gets a token from the IdP and calls the API through the gateway.
    let token = f
        .idp
        .client_credentials_token(&client_id, &secret, None)
        .await
        .unwrap();
    let (_, claims) = gatehouse_test_support::idp::decode_jwt(&token).unwrap();
    assert_eq!(claims.get("pol").is_some(), with_pol, "{claims}");
    let (st, v) = gateway_status(s, &token).await;
    assert_eq!(st, 200, "{shape:?} pol={with_pol}: {v}");

    // Lists never show the secret; the owner's detail view does.
    let (st, list) = dev.call(Method::GET, "/api/clients", None).await;
    assert_eq!(st, 200);
    assert_eq!(list[0]["client_id"], client_id.as_str());
    assert!(list[0].get("client_secret").is_none());
    let (_, admin_list) = s.admin(Method::GET, "/api/portal/clients", None).await;
    assert!(!admin_list.to_string().contains(&secret));
    let (st, detail) = dev
        .call(Method::GET, &format!("/api/clients/{client_id}"), None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(detail["client_secret"], secret.as_str());

    // Rotate: the old secret is refused by the IdP, the new one works.
    let (st, rotated) = dev
        .call(
            Method::POST,
            &format!("/api/clients/{client_id}/rotate-secret"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{shape:?}: {rotated}");
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    let (st, _) = f
        .idp
        .client_credentials_raw(&client_id, &secret, None)
        .await
        .unwrap();
    assert_eq!(st, 401, "the old secret is refused");
    let token2 = f
        .idp
        .client_credentials_token(&client_id, &new_secret, None)
        .await
        .unwrap();
    assert_eq!(gateway_status(s, &token2).await.0, 200);

    // Delete: the IdP no longer knows the client, the gateway refuses its tokens at once.
    let (st, v) = dev
        .call(Method::DELETE, &format!("/api/clients/{client_id}"), None)
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, _) = f
        .idp
        .client_credentials_raw(&client_id, &new_secret, None)
        .await
        .unwrap();
    assert_eq!(st, 401, "the IdP no longer knows the client");
    let (st, v) = gateway_status(s, &token2).await;
    assert_eq!(st, 403, "{v}");
    let (_, list) = dev.call(Method::GET, "/api/clients", None).await;
    assert_eq!(list, json!([]));

    // The initial access token and the secrets appear in no response and no log line.
    let iat = f.idp.initial_access_token().to_owned();
    let logs = s.logs();
    assert!(!logs.is_empty());
    for (what, needle) in [
        ("initial access token", &iat),
        ("secret", &secret),
        ("new secret", &new_secret),
    ] {
        assert!(
            !logs.contains(needle.as_str()),
            "the {what} appears in the log"
        );
        assert!(
            !f.responses.iter().any(|r| r.contains(needle.as_str()))
                || what != "initial access token",
            "the {what} appears in a response"
        );
    }
    // The database holds them only sealed.
    let db = std::fs::read(s.data_dir.join("gatehouse.db")).unwrap();
    let wal = std::fs::read(s.data_dir.join("gatehouse.db-wal")).unwrap_or_default();
    for blob in [&db, &wal] {
        assert!(
            !blob.windows(iat.len()).any(|w| w == iat.as_bytes()),
            "initial access token stored in the clear"
        );
    }
}

#[tokio::test]
async fn plain_rfc7591_with_pol_claim() {
    whole_flow(IdpShape::Plain, true).await;
}

#[tokio::test]
async fn plain_rfc7591_without_pol_claim() {
    whole_flow(IdpShape::Plain, false).await;
}

#[tokio::test]
async fn okta_shaped_with_pol_claim() {
    whole_flow(IdpShape::Okta, true).await;
}

#[tokio::test]
async fn okta_shaped_without_pol_claim() {
    whole_flow(IdpShape::Okta, false).await;
}

#[tokio::test]
async fn keycloak_shaped_with_pol_claim() {
    whole_flow(IdpShape::Keycloak, true).await;
}

#[tokio::test]
async fn keycloak_shaped_without_pol_claim() {
    whole_flow(IdpShape::Keycloak, false).await;
}

/// A refused registration and an unreachable IdP store nothing; the developer sees why.
#[tokio::test]
async fn refusals_and_outages_store_nothing() {
    let mut f = setup(IdpShape::Plain, false).await;
    let s = &f.server;
    let dev = Developer::login(s, "dev@example.com", PASSWORD).await;

    // The IdP refuses the metadata (authorization_code without redirect URIs).
    let (st, v) = s
        .admin(
            Method::POST,
            "/api/portal/catalogue",
            Some(&json!({"id": "web", "name": "Web", "api_id": "payments", "policy_id": "gold", "show": true,
                "config": {"override": true, "enable_dcr": true, "dcr_options": {
                    "provider": "other", "grant_types": ["authorization_code"], "response_types": ["code"],
                    "registration_endpoint": f.idp.registration_endpoint(),
                    "access_token": f.idp.initial_access_token()}}}).to_string()),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = dev
        .call(
            Method::POST,
            "/api/clients",
            Some(json!({"catalogue_ids": ["web"], "client_name": "web-app"})),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("redirect_uris"),
        "the IdP's reason: {v}"
    );

    // Both entries at once: different settings, refused before the IdP is asked.
    let (st, v) = dev
        .call(
            Method::POST,
            "/api/clients",
            Some(json!({"catalogue_ids": ["web", "payments"], "client_name": "x"})),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["field"], "catalogue_ids");

    // A wrong initial access token: the IdP says no; our answer does not echo the token.
    let (st, _) = s
        .admin(
            Method::PUT,
            "/api/portal/configuration",
            Some(
                &json!({"enable_dcr": true, "signup_enabled": true, "dcr_options": {
                "provider": "other", "registration_endpoint": f.idp.registration_endpoint(),
                "access_token": "wrong-token-123", "token_endpoint": f.idp.token_endpoint()}})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = dev
        .call(
            Method::POST,
            "/api/clients",
            Some(json!({"catalogue_ids": ["payments"], "client_name": "app"})),
        )
        .await;
    assert_eq!(st, 502, "{v}");
    assert!(!v.to_string().contains("wrong-token-123"));

    // The IdP is down: 502 with a clear message.
    let (st, _) = s
        .admin(
            Method::PUT,
            "/api/portal/configuration",
            Some(
                &json!({"enable_dcr": true, "dcr_options": {
                "provider": "other", "registration_endpoint": f.idp.registration_endpoint(),
                "access_token": f.idp.initial_access_token()}})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(st, 200);
    f.idp.stop().await.unwrap();
    let (st, v) = dev
        .call(
            Method::POST,
            "/api/clients",
            Some(json!({"catalogue_ids": ["payments"], "client_name": "app"})),
        )
        .await;
    assert_eq!(st, 502, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("reach"),
        "{v}"
    );

    // Nothing was stored anywhere.
    let (_, mine) = dev.call(Method::GET, "/api/clients", None).await;
    assert_eq!(mine, json!([]));
    let (_, all) = s.admin(Method::GET, "/api/portal/clients", None).await;
    assert_eq!(all, json!([]));
    assert!(!s.logs().contains(f.idp.initial_access_token()));
}

/// Portal API rules: sign-in required, other developers' clients are invisible, cross-site writes
/// are refused, sign-up works when enabled, discovery fills the endpoints.
#[tokio::test]
async fn portal_rules_and_discovery() {
    let f = setup(IdpShape::Keycloak, false).await;
    let s = &f.server;
    let anon = reqwest::Client::new();
    let r = anon.get(s.portal_url("/api/clients")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = anon
        .post(s.portal_url("/api/login"))
        .json(&json!({"email": "dev@example.com", "password": "wrong password!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = anon
        .post(s.portal_url("/api/signup"))
        .json(&json!({"email": "new@example.com", "first_name": "New", "password": "short"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["field"], "password");
    let r = anon
        .post(s.portal_url("/api/signup"))
        .json(&json!({"email": "new@example.com", "first_name": "New", "password": "a long enough password"}))
        .send()
        .await
        .unwrap();
    // Accepted without a session: the developer signs in next (the answer for a registered
    // email is the same; see security_control.rs).
    assert_eq!(r.status(), 202);
    assert!(r.headers().get("set-cookie").is_none());

    let dev = Developer::login(s, "dev@example.com", PASSWORD).await;
    let (st, created) = dev
        .call(
            Method::POST,
            "/api/clients",
            Some(json!({"catalogue_ids": ["payments"], "client_name": "mine",
            "redirect_uris": "https://app.example.com/cb;https://app.example.com/cb2"})),
        )
        .await;
    assert_eq!(st, 201, "{created}");
    assert_eq!(
        created["redirect_uris"],
        json!(["https://app.example.com/cb", "https://app.example.com/cb2"])
    );
    let other = Developer::login(s, "new@example.com", "a long enough password").await;
    let id = created["client_id"].as_str().unwrap();
    assert_eq!(
        other
            .call(Method::GET, &format!("/api/clients/{id}"), None)
            .await
            .0,
        404
    );
    assert_eq!(
        other
            .call(Method::DELETE, &format!("/api/clients/{id}"), None)
            .await
            .0,
        404
    );

    let r = dev
        .http
        .post(s.portal_url("/api/clients"))
        .header("cookie", &dev.cookie)
        .header("origin", "https://evil.example")
        .json(&json!({"catalogue_ids": ["payments"], "client_name": "csrf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "cross-site write refused");

    let (st, d) = s
        .admin(
            Method::POST,
            "/api/portal/dcr/discover",
            Some(&json!({"issuer": f.idp.issuer()}).to_string()),
        )
        .await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["registration_endpoint"], f.idp.registration_endpoint());
    assert_eq!(d["token_endpoint"], f.idp.token_endpoint());
    assert_eq!(d["jwks_uri"], f.idp.jwks_uri());
    let (st, report) = s
        .admin(Method::POST, "/api/portal/dcr/test", Some("{}"))
        .await;
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    assert!(!report.to_string().contains(f.idp.initial_access_token()));

    // Deactivating the developer deletes their clients at the IdP and signs them out.
    let (_, devs) = s.admin(Method::GET, "/api/portal/developers", None).await;
    let dev_id = devs
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["email"] == "dev@example.com")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (st, v) = s
        .admin(
            Method::PUT,
            &format!("/api/portal/developers/{dev_id}"),
            Some(r#"{"inactive": true}"#),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(dev.call(Method::GET, "/api/clients", None).await.0, 401);
    let (_, all) = s.admin(Method::GET, "/api/portal/clients", None).await;
    assert_eq!(all, json!([]));
}
