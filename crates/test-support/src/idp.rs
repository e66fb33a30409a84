//! The real test IdP: starts `testing/idp/server.mjs` (the npm package `oidc-provider` behind a thin
//! front) on 127.0.0.1 in one of three shapes, and gives tests typed helpers around it.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use gatehouse_test_support::idp::{IdpShape, TestIdp};
//! let idp = TestIdp::start(IdpShape::Keycloak).await?;
//! let client = idp
//!     .register_client(serde_json::json!({
//!         "client_name": "demo",
//!         "grant_types": ["client_credentials"],
//!         "response_types": [],
//!         "scope": "read write",
//!         "pol": "gold",
//!     }))
//!     .await?;
//! let id = client["client_id"].as_str().unwrap();
//! let secret = client["client_secret"].as_str().unwrap();
//! let token = idp.client_credentials_token(id, secret, Some("read")).await?;
//! # let _ = token; Ok(()) }
//! ```
//!
//! Needs `node` (20+) on `PATH` (or `GATEHOUSE_NODE`) and `npm ci --prefix testing/idp` once.
//! The Node process is tied to this value: it is killed on drop, and it also exits by itself when
//! its stdin (held by this value) closes, so a crashed test run leaves no IdP behind.

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

/// How long `start` / `restart` wait for the ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `stop` waits for a clean exit before killing.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of each HTTP call made by the helpers.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of the IdP's stderr kept for error messages.
const STDERR_TAIL: usize = 60;

/// Which vendor the test IdP imitates (paths, auth schemes, token claims).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdpShape {
    /// Plain oidc-provider: RFC 7591 with `Bearer <IAT>`, RFC 7592 on `registration_client_uri`.
    Plain,
    /// Okta-shaped: issuer `/oauth2/default`, registration `/oauth2/v1/clients` with `SSWS`.
    Okta,
    /// Keycloak-shaped: issuer `/realms/<realm>`, RAT rotated on every use.
    Keycloak,
}

impl IdpShape {
    /// The `--shape` value of `server.mjs`.
    pub fn as_str(self) -> &'static str {
        match self {
            IdpShape::Plain => "plain",
            IdpShape::Okta => "okta",
            IdpShape::Keycloak => "keycloak",
        }
    }
}

impl fmt::Display for IdpShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the plain and Keycloak shapes rotate a client's secret on RFC 7592 calls
/// ([`TestIdp::set_secret_rotation`]). oidc-provider itself keeps the secret on update; these
/// modes model documented vendor behaviour. The Okta shape has `lifecycle/newSecret` instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretRotation {
    /// The secret is kept (oidc-provider; the plain shape's default).
    Off,
    /// A PUT on `registration_client_uri` issues a new secret; the old one stops working at once
    /// (Keycloak with a `secret-rotation` client policy; the Keycloak shape's default).
    OnUpdate,
    /// GET and PUT both issue a new secret (Curity).
    OnReadAndUpdate,
}

impl SecretRotation {
    /// The mode's name in `server.mjs` (`off`, `update`, `read-and-update`).
    pub fn as_str(self) -> &'static str {
        match self {
            SecretRotation::Off => "off",
            SecretRotation::OnUpdate => "update",
            SecretRotation::OnReadAndUpdate => "read-and-update",
        }
    }
}

/// Optional settings for [`TestIdp::start_with`]. `None` means the server's default.
#[derive(Debug, Clone, Default)]
pub struct IdpOptions {
    /// Keycloak realm (default `gatehouse`).
    pub realm: Option<String>,
    /// The initial access token (Okta: the SSWS API token). Default: random.
    pub initial_access_token: Option<String>,
    /// `aud` of access tokens (defaults: plain `urn:gatehouse:test-api`, Okta `api://default`,
    /// Keycloak `account`).
    pub audience: Option<String>,
    /// Access token lifetime in seconds (defaults: 3600; Keycloak 300).
    pub access_token_ttl: Option<u64>,
}

/// What the server printed on its ready line.
#[derive(Debug, Clone, Deserialize)]
pub struct IdpInfo {
    pub shape: String,
    pub port: u16,
    pub issuer: String,
    pub jwks_uri: String,
    pub token_endpoint: String,
    pub registration_endpoint: String,
    pub initial_access_token: String,
    pub discovery_url: String,
    pub audience: String,
    #[serde(default)]
    pub realm: Option<String>,
    pub pid: u32,
}

struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// A running test IdP. Killed on drop.
pub struct TestIdp {
    shape: IdpShape,
    options: IdpOptions,
    state_dir: tempfile::TempDir,
    info: IdpInfo,
    running: Option<Running>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    http: reqwest::Client,
}

impl fmt::Debug for TestIdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestIdp")
            .field("shape", &self.shape)
            .field("issuer", &self.info.issuer)
            .field("running", &self.running.is_some())
            .finish()
    }
}

/// `testing/idp/` of this repository (or `GATEHOUSE_TEST_IDP_DIR`).
pub fn idp_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GATEHOUSE_TEST_IDP_DIR") {
        return PathBuf::from(dir);
    }
    // This crate lives in <root>/crates/test-support.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testing/idp")
        .components()
        .collect()
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    // No idle pool: a TestIdp may be used from several tokio runtimes (one per #[tokio::test]).
    reqwest::Client::builder()
        .no_proxy()
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .context("building the HTTP client of the test IdP")
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Decodes (without verifying) a compact JWS into its header and payload.
pub fn decode_jwt(token: &str) -> anyhow::Result<(Value, Value)> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        bail!("not a compact JWS (three dot-separated parts): {token}");
    };
    let dec = |s: &str| -> anyhow::Result<Value> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .context("JWS part is not base64url")?;
        serde_json::from_slice(&bytes).context("JWS part is not JSON")
    };
    Ok((dec(h)?, dec(p)?))
}

fn read_json(status: reqwest::StatusCode, text: &str) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(text)
        .unwrap_or_else(|_| json!({ "_raw": text, "_status": status.as_u16() }))
}

impl TestIdp {
    /// Starts a test IdP of this shape with default options and its own temporary state dir.
    pub async fn start(shape: IdpShape) -> anyhow::Result<TestIdp> {
        Self::start_with(shape, IdpOptions::default()).await
    }

    /// Starts a test IdP with options.
    pub async fn start_with(shape: IdpShape, options: IdpOptions) -> anyhow::Result<TestIdp> {
        let state_dir = tempfile::Builder::new()
            .prefix("gatehouse-test-idp-")
            .tempdir()
            .context("creating the test IdP's state dir")?;
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let (running, info) =
            spawn_and_wait(shape, &options, state_dir.path(), 0, &stderr_tail).await?;
        Ok(TestIdp {
            shape,
            options,
            state_dir,
            info,
            running: Some(running),
            stderr_tail,
            http: http_client()?,
        })
    }

    pub fn shape(&self) -> IdpShape {
        self.shape
    }
    /// Everything the ready line said.
    pub fn info(&self) -> &IdpInfo {
        &self.info
    }
    pub fn issuer(&self) -> &str {
        &self.info.issuer
    }
    pub fn jwks_uri(&self) -> &str {
        &self.info.jwks_uri
    }
    pub fn token_endpoint(&self) -> &str {
        &self.info.token_endpoint
    }
    /// RFC 7591 endpoint (Okta: `/oauth2/v1/clients`).
    pub fn registration_endpoint(&self) -> &str {
        &self.info.registration_endpoint
    }
    /// The initial access token (Okta: the SSWS API token).
    pub fn initial_access_token(&self) -> &str {
        &self.info.initial_access_token
    }
    pub fn discovery_url(&self) -> &str {
        &self.info.discovery_url
    }
    /// The `aud` of the access tokens it issues.
    pub fn audience(&self) -> &str {
        &self.info.audience
    }
    pub fn port(&self) -> u16 {
        self.info.port
    }
    /// `http://127.0.0.1:PORT` (no path; the issuer may have one).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.info.port)
    }
    pub fn state_dir(&self) -> &Path {
        self.state_dir.path()
    }
    /// The `Authorization` header value for registration: `SSWS <t>` (Okta) or `Bearer <t>`.
    pub fn registration_authorization(&self) -> String {
        match self.shape {
            IdpShape::Okta => format!("SSWS {}", self.info.initial_access_token),
            _ => format!("Bearer {}", self.info.initial_access_token),
        }
    }
    /// The last lines the IdP wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        tail_text(&self.stderr_tail)
    }

    fn test_url(&self, path: &str) -> String {
        format!("{}/__test/{path}", self.base_url())
    }

    async fn call(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> anyhow::Result<(reqwest::StatusCode, Value)> {
        let resp = req
            .send()
            .await
            .with_context(|| format!("{what}: request to the test IdP failed"))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .with_context(|| format!("{what}: reading the body"))?;
        Ok((status, read_json(status, &text)))
    }

    async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let (status, json) = self
            .call(
                self.http.request(method, self.test_url(path)).json(&body),
                &format!("/__test/{path}"),
            )
            .await?;
        if !status.is_success() {
            bail!("/__test/{path} answered {status}: {json}");
        }
        Ok(json)
    }

    /// Dynamic client registration with the shape's scheme (`SSWS` for Okta, `Bearer` otherwise)
    /// and the real initial access token; returns `(status, body)` whatever the status.
    /// `authorization: Some(..)` replaces the whole `Authorization` header value (`Some("")`
    /// sends none).
    pub async fn register_client_raw(
        &self,
        metadata: &Value,
        authorization: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let auth = authorization
            .map(str::to_owned)
            .unwrap_or_else(|| self.registration_authorization());
        let mut req = self
            .http
            .post(self.registration_endpoint())
            .header("accept", "application/json")
            .json(metadata);
        if !auth.is_empty() {
            req = req.header("authorization", auth);
        }
        let (status, body) = self.call(req, "client registration").await?;
        Ok((status.as_u16(), body))
    }

    /// Registers a client (shape-correct call) and returns the IdP's JSON; fails unless `201`.
    pub async fn register_client(&self, metadata: Value) -> anyhow::Result<Value> {
        let (status, body) = self.register_client_raw(&metadata, None).await?;
        if status != 201 {
            bail!("client registration answered {status}: {body}");
        }
        Ok(body)
    }

    /// Client credentials grant (`client_secret_basic`); returns `(status, body)` whatever the
    /// status.
    pub async fn client_credentials_raw(
        &self,
        client_id: &str,
        client_secret: &str,
        scope: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut form = String::from("grant_type=client_credentials");
        if let Some(scope) = scope {
            form.push_str("&scope=");
            form.push_str(&form_encode(scope));
        }
        let req = self
            .http
            .post(self.token_endpoint())
            .basic_auth(form_encode(client_id), Some(form_encode(client_secret)))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form);
        let (status, body) = self.call(req, "token request").await?;
        Ok((status.as_u16(), body))
    }

    /// Client credentials grant; returns the access token (a JWT). Without `scope` the IdP
    /// grants the client's registered scopes.
    pub async fn client_credentials_token(
        &self,
        client_id: &str,
        client_secret: &str,
        scope: Option<&str>,
    ) -> anyhow::Result<String> {
        let (status, body) = self
            .client_credentials_raw(client_id, client_secret, scope)
            .await?;
        if status != 200 {
            bail!("token endpoint answered {status}: {body}");
        }
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("token response without access_token: {body}"))
    }

    /// Signs arbitrary `claims` with the IdP's current published key for `alg` (`RS256`, `ES256`;
    /// also `PS256`, and `HS256`/`none` via [`TestIdp::sign_with`]). `header` fields are merged
    /// over `{alg, typ: "JWT", kid}`; a field set to `null` is removed.
    pub async fn sign(&self, claims: Value, alg: &str, header: Value) -> anyhow::Result<String> {
        self.sign_with(json!({ "claims": claims, "alg": alg, "header": header }))
            .await
    }

    /// Raw `/__test/sign` request: `{"claims", "alg", "header", "secret" (HS256),
    /// "foreign_key": true (sign with a key that is not in the JWKS)}`.
    pub async fn sign_with(&self, request: Value) -> anyhow::Result<String> {
        let out = self.control(reqwest::Method::POST, "sign", request).await?;
        out["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("/__test/sign gave no token: {out}"))
    }

    /// New RSA and EC signing keys (published first; old ones kept if `keep_old`). Returns the
    /// kids now published, the new ones first (`[new RSA, new EC, ...old]`).
    pub async fn rotate_keys(&self, keep_old: bool) -> anyhow::Result<Vec<String>> {
        let out = self
            .control(
                reqwest::Method::POST,
                "rotate",
                json!({ "keep_old": keep_old }),
            )
            .await?;
        serde_json::from_value(out["kids"].clone()).context("kids of /__test/rotate")
    }

    /// The JWKS (counts as one JWKS fetch).
    pub async fn jwks(&self) -> anyhow::Result<Value> {
        let (status, body) = self
            .call(self.http.get(self.jwks_uri()), "JWKS fetch")
            .await?;
        if !status.is_success() {
            bail!("JWKS answered {status}: {body}");
        }
        Ok(body)
    }

    /// The discovery document.
    pub async fn discovery(&self) -> anyhow::Result<Value> {
        let (status, body) = self
            .call(self.http.get(self.discovery_url()), "discovery")
            .await?;
        if !status.is_success() {
            bail!("discovery answered {status}: {body}");
        }
        Ok(body)
    }

    /// GETs of the JWKS endpoint since start (or the last [`TestIdp::reset_stats`]).
    /// Panics if the IdP cannot be asked.
    pub async fn jwks_fetch_count(&self) -> u64 {
        let out = self
            .control(reqwest::Method::GET, "stats", Value::Null)
            .await
            .expect("asking the test IdP for its stats");
        out["jwks_fetches"]
            .as_u64()
            .expect("jwks_fetches in /__test/stats")
    }

    /// How many clients are registered at the IdP now (registered and not deleted).
    /// Panics if the IdP cannot be asked.
    pub async fn client_count(&self) -> u64 {
        let out = self
            .control(reqwest::Method::GET, "stats", Value::Null)
            .await
            .expect("asking the test IdP for its stats");
        out["clients"].as_u64().expect("clients in /__test/stats")
    }

    /// Resets the JWKS fetch counter.
    pub async fn reset_stats(&self) -> anyhow::Result<()> {
        self.control(reqwest::Method::POST, "stats/reset", json!({}))
            .await
            .map(drop)
    }

    /// Sets how client secrets rotate on RFC 7592 calls (plain and Keycloak shapes; an error for
    /// the Okta shape). Kept across [`TestIdp::restart`].
    pub async fn set_secret_rotation(&self, mode: SecretRotation) -> anyhow::Result<()> {
        self.control(
            reqwest::Method::POST,
            "secret-rotation",
            json!({ "mode": mode.as_str() }),
        )
        .await
        .map(drop)
    }

    /// The next registrations get these client ids, in order (then the shape's own again).
    pub async fn queue_client_ids(&self, ids: &[&str]) -> anyhow::Result<()> {
        self.control(
            reqwest::Method::POST,
            "next-client-ids",
            json!({ "ids": ids }),
        )
        .await
        .map(drop)
    }

    /// Registration answers (plain and Keycloak shapes) name their `registration_client_uri` on
    /// `origin` (`scheme://host[:port]`) instead of the IdP's own; `None` turns that off.
    pub async fn set_registration_client_uri_origin(
        &self,
        origin: Option<&str>,
    ) -> anyhow::Result<()> {
        self.control(
            reqwest::Method::POST,
            "registration-client-uri-origin",
            json!({ "origin": origin }),
        )
        .await
        .map(drop)
    }

    /// The ids of the clients registered at the IdP, sorted.
    pub async fn client_ids(&self) -> anyhow::Result<Vec<String>> {
        let out = self
            .control(reqwest::Method::GET, "clients", Value::Null)
            .await?;
        serde_json::from_value(out["client_ids"].clone()).context("client_ids of /__test/clients")
    }

    /// Delays every JWKS answer by `ms` (0 turns it off; at most 120 000).
    pub async fn set_jwks_delay(&self, ms: u64) -> anyhow::Result<()> {
        self.control(reqwest::Method::POST, "jwks-delay", json!({ "ms": ms }))
            .await
            .map(drop)
    }

    /// Stops the IdP (closes its stdin, which makes it exit cleanly; kills it after 5 s).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut running) = self.running.take() else {
            return Ok(());
        };
        drop(running.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if running.child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = running.child.kill();
                running.child.wait()?;
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the IdP process is running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.running {
            Some(r) => matches!(r.child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops the IdP (if running) and starts it again on the same port with the same state dir:
    /// same JWKS, same clients, same initial access token.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        let mut last_err = None;
        for _ in 0..10 {
            match spawn_and_wait(
                self.shape,
                &self.options,
                self.state_dir.path(),
                self.info.port,
                &self.stderr_tail,
            )
            .await
            {
                Ok((running, info)) => {
                    self.running = Some(running);
                    self.info = info;
                    return Ok(());
                }
                Err(e) if format!("{e:#}").contains("EADDRINUSE") => {
                    last_err = Some(e);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("restart failed")))
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        if let Some(mut running) = self.running.take() {
            drop(running.stdin.take());
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
    }
}

fn tail_text(tail: &Mutex<VecDeque<String>>) -> String {
    let tail = tail.lock().unwrap_or_else(|p| p.into_inner());
    tail.iter().cloned().collect::<Vec<_>>().join("\n")
}

fn push_tail(tail: &Mutex<VecDeque<String>>, line: String) {
    let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
    if tail.len() >= STDERR_TAIL {
        tail.pop_front();
    }
    tail.push_back(line);
}

fn ensure_installed(dir: &Path) -> anyhow::Result<()> {
    if !dir.join("node_modules").join("oidc-provider").is_dir() {
        bail!(
            "the test IdP is not installed: run `npm ci --prefix testing/idp` (looked in {})",
            dir.join("node_modules").display()
        );
    }
    Ok(())
}

async fn spawn_and_wait(
    shape: IdpShape,
    options: &IdpOptions,
    state_dir: &Path,
    port: u16,
    stderr_tail: &Arc<Mutex<VecDeque<String>>>,
) -> anyhow::Result<(Running, IdpInfo)> {
    let dir = idp_dir();
    ensure_installed(&dir)?;
    let node = std::env::var_os("GATEHOUSE_NODE").unwrap_or_else(|| "node".into());
    let mut cmd = Command::new(&node);
    cmd.current_dir(&dir)
        .arg("server.mjs")
        .args(["--shape", shape.as_str()])
        .args(["--port", &port.to_string()])
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--watch-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(realm) = &options.realm {
        cmd.args(["--realm", realm]);
    }
    if let Some(iat) = &options.initial_access_token {
        cmd.args(["--initial-access-token", iat]);
    }
    if let Some(aud) = &options.audience {
        cmd.args(["--audience", aud]);
    }
    if let Some(ttl) = options.access_token_ttl {
        cmd.args(["--access-token-ttl", &ttl.to_string()]);
    }
    let mut child = cmd.spawn().with_context(|| {
        format!(
            "spawning `{} server.mjs` in {} (is Node.js 20+ installed?)",
            node.to_string_lossy(),
            dir.display()
        )
    })?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");

    // stderr: forwarded to the test's stderr with an [idp] prefix, and kept for error messages.
    let tail = Arc::clone(stderr_tail);
    let stderr_thread = std::thread::Builder::new()
        .name("test-idp-stderr".into())
        .spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[idp] {line}");
                push_tail(&tail, line);
            }
        })
        .context("spawning the stderr thread")?;

    // stdout: the ready line, then anything else forwarded like stderr.
    let (tx, rx) = tokio::sync::oneshot::channel::<Result<IdpInfo, String>>();
    std::thread::Builder::new()
        .name("test-idp-stdout".into())
        .spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(sender) = tx.take() {
                    match serde_json::from_str::<Value>(&line) {
                        Ok(v) if v["ready"] == json!(true) => {
                            let _ =
                                sender.send(serde_json::from_value(v).map_err(|e| e.to_string()));
                            continue;
                        }
                        _ => tx = Some(sender),
                    }
                }
                eprintln!("[idp] {line}");
            }
        })
        .context("spawning the stdout thread")?;

    let fail = |mut child: Child, why: String| -> anyhow::Error {
        let _ = child.kill();
        let _ = child.wait();
        // The process is gone, so its stderr closes and the thread ends.
        let _ = stderr_thread.join();
        anyhow!(
            "the test IdP ({shape}) did not start: {why}\n--- its stderr ---\n{}",
            tail_text(stderr_tail)
        )
    };

    match tokio::time::timeout(READY_TIMEOUT, rx).await {
        Ok(Ok(Ok(info))) => Ok((Running { child, stdin }, info)),
        Ok(Ok(Err(e))) => Err(fail(child, format!("bad ready line: {e}"))),
        Ok(Err(_)) => Err(fail(
            child,
            "it exited before printing its ready line".into(),
        )),
        Err(_) => Err(fail(
            child,
            format!("no ready line within {}s", READY_TIMEOUT.as_secs()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_install_is_explained() {
        let empty = tempfile::tempdir().unwrap();
        let err = ensure_installed(empty.path()).unwrap_err().to_string();
        assert!(
            err.contains("the test IdP is not installed: run `npm ci --prefix testing/idp`"),
            "{err}"
        );
        assert!(ensure_installed(&idp_dir()).is_ok() || !idp_dir().join("node_modules").exists());
    }

    /// PUT (and, in `read-and-update`, GET) on `registration_client_uri` issue a new secret
    /// and the old one is refused at once; `off` keeps it; the Okta shape refuses the setting.
    #[tokio::test]
    async fn secret_rotation_modes() {
        let http = http_client().unwrap();
        let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
        for shape in [IdpShape::Plain, IdpShape::Keycloak] {
            let idp = TestIdp::start(shape).await.unwrap();
            let md = json!({
                "client_name": format!("rot-{shape}"),
                "grant_types": ["client_credentials"],
                "response_types": [],
                "scope": "read",
            });
            let a = idp.register_client(md.clone()).await.unwrap();
            let (id, s1) = (text(&a, "client_id"), text(&a, "client_secret"));
            let uri = text(&a, "registration_client_uri");
            let mut rat = text(&a, "registration_access_token");
            let mut update = md.clone();
            update["client_id"] = json!(id);

            let put = |rat: String| {
                let req = http.put(&uri).bearer_auth(rat).json(&update);
                async move {
                    let r = req.send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    r.json::<Value>().await.unwrap()
                }
            };
            // Defaults: plain keeps the secret, keycloak rotates it.
            let body = put(rat.clone()).await;
            rat = text(&body, "registration_access_token");
            let s2 = text(&body, "client_secret");
            if shape == IdpShape::Plain {
                assert_eq!(s2, s1, "plain keeps the secret by default");
                idp.set_secret_rotation(SecretRotation::OnUpdate)
                    .await
                    .unwrap();
                let body = put(rat.clone()).await;
                rat = text(&body, "registration_access_token");
                let s3 = text(&body, "client_secret");
                assert_ne!(s3, s1);
                let (status, _) = idp.client_credentials_raw(&id, &s1, None).await.unwrap();
                assert_eq!(status, 401, "old secret refused");
                idp.client_credentials_token(&id, &s3, None).await.unwrap();

                // Curity-like: a read rotates too.
                idp.set_secret_rotation(SecretRotation::OnReadAndUpdate)
                    .await
                    .unwrap();
                let got: Value = http
                    .get(&uri)
                    .bearer_auth(&rat)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let s4 = text(&got, "client_secret");
                assert!(!s4.is_empty() && s4 != s3);
                let (status, _) = idp.client_credentials_raw(&id, &s3, None).await.unwrap();
                assert_eq!(status, 401);
                idp.client_credentials_token(&id, &s4, None).await.unwrap();
            } else {
                assert_ne!(s2, s1, "keycloak shape rotates on update by default");
                let (status, _) = idp.client_credentials_raw(&id, &s1, None).await.unwrap();
                assert_eq!(status, 401, "old secret refused");
                idp.client_credentials_token(&id, &s2, None).await.unwrap();
                idp.set_secret_rotation(SecretRotation::Off).await.unwrap();
                let body = put(rat.clone()).await;
                assert_eq!(text(&body, "client_secret"), s2, "off keeps the secret");
            }
        }
        let okta = TestIdp::start(IdpShape::Okta).await.unwrap();
        assert!(
            okta.set_secret_rotation(SecretRotation::OnUpdate)
                .await
                .is_err()
        );
    }

    #[test]
    fn form_encoding_and_jwt_decoding() {
        assert_eq!(form_encode("read write:x/y"), "read+write%3Ax%2Fy");
        let (h, p) = decode_jwt("eyJhbGciOiJub25lIn0.eyJhIjoxfQ.").unwrap();
        assert_eq!(
            (h["alg"].clone(), p["a"].clone()),
            (json!("none"), json!(1))
        );
        assert!(decode_jwt("a.b").is_err());
    }
}
