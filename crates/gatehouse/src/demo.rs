//! `gatehouse demo`: everything on loopback for a first look, with a built-in development IdP.
//!
//! Starts the development IdP (`gatehouse-devidp`, not for production), a small echo upstream,
//! and `gatehouse serve` with a fresh data directory; seeds a JWT-protected API, a policy, the
//! portal's DCR settings, a catalogue entry and a demo developer through the admin API; then
//! prints the URLs, the credentials and the next three steps.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::Json;
use axum::extract::Request;
use serde_json::{Value, json};

use crate::config::Config;
use crate::serve::{Roles, serve};

/// Ports of the demo's helpers.
pub struct DemoPorts {
    /// The development IdP.
    pub idp: u16,
    /// The echo upstream.
    pub upstream: u16,
}

async fn echo(req: Request) -> Json<Value> {
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str() != "authorization")
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
        .collect();
    Json(json!({
        "message": "Hello from the demo upstream: your call made it through Gatehouse.",
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "headers_received": headers,
    }))
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Runs the demo until Ctrl-C.
pub async fn demo(mut cfg: Config, ports: DemoPorts) -> anyhow::Result<()> {
    let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    // Everything on loopback, whatever the defaults say.
    cfg.gateway_listen = loopback(cfg.gateway_listen.port());
    cfg.dashboard_listen = loopback(cfg.dashboard_listen.port());
    cfg.portal_listen = loopback(cfg.portal_listen.port());
    let admin_key = format!("demo-{}", random_hex(16));
    cfg.admin_key = Some(admin_key.clone());
    // A dashboard admin to sign in with (unless the environment names one).
    let env_admin = std::env::var("GATEHOUSE_ADMIN_EMAIL").is_ok_and(|e| !e.trim().is_empty());
    let dash_admin = (!env_admin).then(|| {
        (
            "admin@demo.local".to_owned(),
            format!("demo-admin-{}", random_hex(6)),
        )
    });
    cfg.initial_admin = dash_admin.clone();

    let iat = format!("demo-iat-{}", random_hex(12));
    let idp = gatehouse_devidp::DevIdp::start(loopback(ports.idp), &iat)
        .await
        .with_context(|| {
            format!(
                "cannot start the development IdP on 127.0.0.1:{} (choose another port with --idp-port)",
                ports.idp
            )
        })?;
    let upstream_listener = tokio::net::TcpListener::bind(loopback(ports.upstream))
        .await
        .with_context(|| {
            format!(
                "cannot start the demo upstream on 127.0.0.1:{} (choose another port with --upstream-port)",
                ports.upstream
            )
        })?;
    let upstream_url = format!("http://{}", upstream_listener.local_addr()?);
    tokio::spawn(async move {
        let app = axum::Router::new().fallback(echo);
        let _ = axum::serve(upstream_listener, app).await;
    });

    let gateway_url = format!("http://{}", cfg.gateway_listen);
    let admin_url = format!("http://{}", cfg.dashboard_listen);
    let portal_url = format!("http://{}", cfg.portal_listen);
    let data_dir = cfg.data_dir.clone();
    let server = tokio::spawn(serve(cfg, Roles::ALL));

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut up = false;
    for _ in 0..600 {
        if server.is_finished() {
            break;
        }
        // Both listeners: the dashboard binds after the gateway (it creates the admin first).
        let gateway_up = http
            .get(format!("{gateway_url}/hello"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if gateway_up && http.get(format!("{admin_url}/login")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !up {
        return match server.await {
            Ok(Err(e)) => Err(e),
            _ => Err(anyhow::anyhow!("gatehouse did not start")),
        };
    }

    let admin = |method: reqwest::Method, path: &'static str, body: Value| {
        let req = http
            .request(method, format!("{admin_url}{path}"))
            .bearer_auth(&admin_key)
            .json(&body);
        async move {
            let r = req.send().await.context("the admin API did not answer")?;
            let status = r.status();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            anyhow::ensure!(
                status.is_success(),
                "seeding the demo failed at {path}: {v}"
            );
            Ok::<Value, anyhow::Error>(v)
        }
    };
    admin(
        reqwest::Method::POST,
        "/api/apis",
        json!({
            "name": "Demo API", "api_id": "demo", "enable_jwt": true,
            "jwt_signing_method": "rsa", "jwt_source": idp.jwks_uri(),
            "jwt_allowed_issuers": [idp.issuer()],
            "jwt_allowed_audiences": [gatehouse_devidp::AUDIENCE],
            "jwt_identity_base_field": "sub", "jwt_policy_field_name": "pol",
            "strip_auth_data": true,
            "proxy": {"listen_path": "/demo/", "target_url": upstream_url, "strip_listen_path": true}
        }),
    )
    .await?;
    admin(
        reqwest::Method::POST,
        "/api/policies",
        json!({"id": "demo-basic", "name": "Demo basic", "rate": 60, "per": 60,
               "quota_max": 1000, "quota_renewal_rate": 3600,
               "access_rights": {"demo": {"api_id": "demo", "api_name": "Demo API", "versions": []}}}),
    )
    .await?;
    admin(
        reqwest::Method::PUT,
        "/api/portal/configuration",
        json!({"enable_dcr": true, "signup_enabled": true, "max_clients_per_developer": 10,
               "dcr_options": {"provider": "other", "grant_types": ["client_credentials"],
                   "token_endpoint_auth_method": "client_secret_basic",
                   "registration_endpoint": idp.registration_endpoint(), "access_token": iat,
                   "token_endpoint": idp.token_endpoint(), "jwks_uri": idp.jwks_uri(),
                   "registration_metadata": {"pol": "{policy_id}"}}}),
    )
    .await?;
    admin(
        reqwest::Method::POST,
        "/api/portal/catalogue",
        json!({"id": "demo", "name": "Demo API", "short_description": "An echo service behind Gatehouse",
               "long_description": "Every call returns what the upstream received.",
               "api_id": "demo", "policy_id": "demo-basic", "show": true}),
    )
    .await?;
    let dev_password = format!("demo-{}", random_hex(6));
    admin(
        reqwest::Method::POST,
        "/api/portal/developers",
        json!({"email": "developer@demo.local", "first_name": "Demo", "last_name": "Developer",
               "password": dev_password}),
    )
    .await?;

    let token_url = idp.token_endpoint();
    println!();
    println!(
        "Gatehouse demo: everything listens on 127.0.0.1; data in {}",
        data_dir.display()
    );
    println!("  Development IdP (NOT for production): {}", idp.issuer());
    println!("  Demo upstream:                        {upstream_url}");
    println!("  Admin API key:                        {admin_key}");
    match &dash_admin {
        Some((email, password)) => {
            println!("  Dashboard admin:                      {email} / {password}")
        }
        None => println!("  Dashboard admin:                      from GATEHOUSE_ADMIN_EMAIL"),
    }
    println!("  Demo developer:                       developer@demo.local / {dev_password}");
    println!();
    println!("In a browser: open the portal ({portal_url}), sign in as the demo developer, choose");
    println!(
        "OAuth Clients -> Create first OAuth Client, pick the Demo API, name the client and create it;"
    );
    println!("the page then shows the client id, the secret and ready-to-copy curl commands.");
    println!();
    println!("Or the same in three steps from a shell:");
    println!();
    println!("1. Sign in to the portal as the demo developer:");
    println!(
        "   curl -s -c /tmp/gh-demo.jar {portal_url}/api/login -H 'Content-Type: application/json' \\\n     -d '{{\"email\": \"developer@demo.local\", \"password\": \"{dev_password}\"}}'"
    );
    println!();
    println!("2. Create an OAuth client for the Demo API (Gatehouse registers it at the IdP):");
    println!(
        "   C=$(curl -s -b /tmp/gh-demo.jar {portal_url}/api/clients -H 'Content-Type: application/json' \\\n     -d '{{\"catalogue_ids\": [\"demo\"], \"client_name\": \"my-first-app\"}}'); echo \"$C\""
    );
    println!(
        "   CID=$(echo \"$C\" | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"client_id\"])')"
    );
    println!(
        "   SECRET=$(echo \"$C\" | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"client_secret\"])')"
    );
    println!();
    println!("3. Get a token from the IdP and call the API through the gateway:");
    println!(
        "   TOKEN=$(curl -s -u \"$CID:$SECRET\" -d grant_type=client_credentials {token_url} \\\n     | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')"
    );
    println!("   curl -s {gateway_url}/demo/hello -H \"Authorization: Bearer $TOKEN\"");
    println!();
    println!(
        "Without a token the gateway answers 401; the admin API is at {admin_url}/api/ (key above)."
    );
    println!("Press Ctrl-C to stop.");

    server.await.context("gatehouse stopped")??;
    drop(idp);
    Ok(())
}
