//! `gatehouse serve` and `gatehouse import`: wiring the crates together.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use rand::RngCore;
use tokio_rustls::TlsAcceptor;

use gatehouse_admin_api::portal::Portal;
use gatehouse_admin_api::portal_api::{self, PortalApi};
use gatehouse_admin_api::{AdminHooks, AdminKey, AdminState, Control, TykBundle, no_hook};
use gatehouse_gateway::limits::Limiters;
use gatehouse_gateway::snapshot::{ApiAuth, AuthDeps};
use gatehouse_gateway::tls::ReloadingCertResolver;
use gatehouse_gateway::watch::ConfigWatcher;
use gatehouse_gateway::{Gateway, SharedSnapshot, Snapshot};
use gatehouse_jwt::{JwksCache, VerifiedTokenCache};
use gatehouse_store::{PostgresStore, SecretBox, SqliteStore, Store};
use gatehouse_telemetry::Telemetry;
use std::time::Duration;

use crate::config::Config;
use crate::listen::Instance;

/// The settings key under which the admin key's SHA-256 is stored.
const ADMIN_KEY_SETTING: &str = "admin_key_sha256";

/// The store: PostgreSQL with `--database-url`, else SQLite in the data directory. For
/// PostgreSQL, also the stream of configuration-change notifications.
async fn open_store(
    cfg: &Config,
) -> anyhow::Result<(Arc<dyn Store>, Option<tokio::sync::mpsc::Receiver<i64>>)> {
    if let Some(url) = &cfg.database_url {
        let pg = PostgresStore::connect(url).await?;
        let changes = match pg.listen_config_changes().await {
            Ok(rx) => Some(rx),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for configuration changes; polling only");
                None
            }
        };
        return Ok((Arc::new(pg), changes));
    }
    let store = SqliteStore::open(&cfg.data_dir).await.with_context(|| {
        format!(
            "cannot open the database in {} (set --data-dir or GATEHOUSE_DATA_DIR)",
            cfg.data_dir.display()
        )
    })?;
    Ok((Arc::new(store), None))
}

/// The admin key: from `GATEHOUSE_ADMIN_KEY` (its hash is stored), else the stored hash, else a
/// new random key whose hash is stored and which is returned so it can be shown once.
async fn admin_key(
    store: &dyn Store,
    configured: Option<&str>,
) -> anyhow::Result<(AdminKey, Option<String>)> {
    if let Some(k) = configured {
        if k.len() < 16 {
            anyhow::bail!("GATEHOUSE_ADMIN_KEY must be at least 16 characters");
        }
        let key = AdminKey::from_key(k);
        store
            .put_setting(ADMIN_KEY_SETTING, &key.hex_digest())
            .await?;
        return Ok((key, None));
    }
    if let Some(hex) = store.get_setting(ADMIN_KEY_SETTING).await?
        && let Some(key) = AdminKey::from_hex_digest(&hex)
    {
        return Ok((key, None));
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("ghk_{}", hex::encode(bytes));
    let key = AdminKey::from_key(&secret);
    store
        .put_setting(ADMIN_KEY_SETTING, &key.hex_digest())
        .await?;
    Ok((key, Some(secret)))
}

/// Where the data lives, for the startup lines: the data directory (absolute), and the
/// PostgreSQL server (host, port and database; never the password) when one is used.
fn describe_data(cfg: &Config) -> String {
    let dir = std::fs::canonicalize(&cfg.data_dir).unwrap_or_else(|_| cfg.data_dir.clone());
    match &cfg.database_url {
        None => format!("{} (SQLite database gatehouse.db)", dir.display()),
        Some(url) => format!(
            "PostgreSQL {} (keys and locks in {})",
            postgres_location(url),
            dir.display()
        ),
    }
}

/// `host:port/database` of a PostgreSQL URL, without the user and password.
fn postgres_location(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('?').next().unwrap_or(rest)
}

fn url_of(addr: std::net::SocketAddr, tls: bool) -> String {
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{host}:{}", addr.port())
}

/// The listeners' TLS acceptor when `tls_cert_file` and `tls_key_file` are set, with the task
/// that reloads a changed certificate.
fn listener_tls(cfg: &Config) -> anyhow::Result<Option<TlsAcceptor>> {
    let Some(t) = &cfg.tls else {
        return Ok(None);
    };
    let resolver = ReloadingCertResolver::load(t.files.clone())
        .context("cannot set up HTTPS (tls_cert_file, tls_key_file)")?;
    let server = gatehouse_gateway::tls::server_config(Arc::clone(&resolver), t.min_version)
        .context("cannot set up HTTPS")?;
    if let Some(every) = t.reload_interval {
        resolver.spawn_reloader(every);
    }
    Ok(Some(TlsAcceptor::from(server)))
}

/// An axum app as a per-connection hyper service that knows the client's address
/// (`ConnectInfo`, for sign-in throttling and the audit log).
fn app_service(
    app: axum::Router,
) -> impl Fn(
    std::net::SocketAddr,
) -> hyper_util::service::TowerToHyperService<
    tower::util::BoxCloneService<
        hyper::Request<hyper::body::Incoming>,
        axum::response::Response,
        std::convert::Infallible,
    >,
> + Send
+ 'static {
    move |remote| {
        let app = app.clone();
        let svc = tower::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(remote));
            tower::ServiceExt::oneshot(app.clone(), req)
        });
        hyper_util::service::TowerToHyperService::new(tower::util::BoxCloneService::new(svc))
    }
}

/// Which roles this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// The data plane (:8080).
    pub gateway: bool,
    /// The admin API and the developer portal (:3000, :3001).
    pub dashboard: bool,
}

impl Roles {
    /// `gatehouse serve`.
    pub const ALL: Roles = Roles {
        gateway: true,
        dashboard: true,
    };
    /// `gatehouse gateway`.
    pub const GATEWAY: Roles = Roles {
        gateway: true,
        dashboard: false,
    };
    /// `gatehouse dashboard`.
    pub const DASHBOARD: Roles = Roles {
        gateway: false,
        dashboard: true,
    };

    /// The subcommand that runs these roles (also the name of its lock in the data directory).
    pub fn command(&self) -> &'static str {
        match (self.gateway, self.dashboard) {
            (true, true) => "serve",
            (true, false) => "gateway",
            _ => "dashboard",
        }
    }
}

impl std::fmt::Display for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match (self.gateway, self.dashboard) {
            (true, true) => "gateway, dashboard and portal",
            (true, false) => "gateway",
            _ => "dashboard and portal",
        })
    }
}

/// Runs the given roles in this process until SIGINT or SIGTERM.
pub async fn serve(cfg: Config, roles: Roles) -> anyhow::Result<()> {
    let mut instance = Instance::claim(&cfg.data_dir, roles.command(), cfg.take_over)?;
    let (store, changes) = open_store(&cfg).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut tasks = Vec::new();
    let mut banner = Vec::new();
    let tls = listener_tls(&cfg)?;
    let https = tls.is_some();

    // The gateway's configuration view, kept current by the watcher.
    let deps = AuthDeps {
        jwks: JwksCache::new(cfg.jwks.clone()).context("cannot set up the JWKS cache")?,
        tokens: VerifiedTokenCache::new(cfg.jwt_token_cache_size),
    };
    let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let mut limiters = None;
    let mut telemetry = None;
    let mut analytics = None;
    let watcher = if roles.gateway {
        let watcher = ConfigWatcher::new(
            Arc::clone(&store),
            Arc::clone(&snapshot),
            deps.clone(),
            gatehouse_gateway::snapshot::SnapshotOptions {
                node_tags: cfg.node_tags.clone(),
                match_options: cfg.match_options,
            },
            cfg.config_poll_interval,
        );
        watcher
            .reload()
            .await
            .context("cannot load the configuration")?;
        tokio::spawn(Arc::clone(&watcher).run());
        if let Some(mut rx) = changes {
            // PostgreSQL NOTIFY: reload at once when another node commits a change (the
            // watcher's polling stays as the safety net).
            let w = Arc::clone(&watcher);
            tokio::spawn(async move {
                while rx.recv().await.is_some() {
                    w.notify();
                }
            });
        }
        let l = Limiters::new(&cfg.counters, Arc::clone(&store))
            .await
            .context("cannot set up rate limits and quotas")?;
        let mut tb = Telemetry::builder(cfg.telemetry.clone()).jwks_stats(
            gatehouse_gateway::reports::jwks_source(Arc::clone(&deps.jwks)),
        );
        if let Some(f) = &l.failover {
            let f = Arc::clone(f);
            tb = tb.failover("sessions", move || {
                gatehouse_gateway::reports::limiter_report(&f.stats())
            });
        }
        if cfg.analytics.enabled {
            let rec = Arc::new(gatehouse_telemetry::AnalyticsRecorder::new(
                cfg.analytics.max_keys,
            ));
            tb = tb.analytics(Arc::clone(&rec));
            let flusher = gatehouse_gateway::analytics::spawn_flusher(
                Arc::clone(&rec),
                Arc::clone(&store),
                cfg.analytics.flush_interval,
                stopped(stop_rx.clone()),
            );
            analytics = Some((rec, flusher));
        }
        let t = tb.build().context("cannot set up telemetry")?;
        let mut gateway_cfg = cfg.gateway.clone();
        if cfg.upstream_ca_file.is_some() || cfg.upstream_client_cert.is_some() {
            let client = gatehouse_gateway::tls::upstream_client_config(
                cfg.upstream_ca_file.as_deref(),
                cfg.upstream_client_cert.as_ref(),
            )
            .context("cannot set up TLS to upstreams")?;
            gateway_cfg.upstream_tls = Some(Arc::new(client));
        }
        let gateway = Gateway::with_telemetry(
            gateway_cfg,
            Arc::clone(&snapshot),
            l.clone(),
            Arc::clone(&t),
        );
        telemetry = Some(t);
        limiters = Some(l);
        let listener = instance.bind(cfg.gateway_listen, "gateway", "gateway-listen")?;
        tasks.push(tokio::spawn(gatehouse_gateway::server::serve_with_tls(
            listener,
            gateway,
            tls.clone(),
            stopped(stop_rx.clone()),
        )));
        banner.push(format!("Gateway:   {}", url_of(cfg.gateway_listen, https)));
        Some(watcher)
    } else {
        None
    };

    let mut shown_once = None;
    let mut setup_link = None;
    if roles.dashboard {
        // Retention: the dashboard prunes (idempotent, so several dashboards may).
        start_analytics_pruner(&store, &cfg);
        let (key, shown) = admin_key(store.as_ref(), cfg.admin_key.as_deref()).await?;
        shown_once = shown;
        // In one process an admin write returns once the gateway serves it; dashboard-only
        // processes leave it to the gateway nodes, which watch the configuration version.
        let on_change: gatehouse_admin_api::ChangeHook = match &watcher {
            Some(w) => {
                let w = Arc::clone(w);
                Arc::new(move || {
                    let w = Arc::clone(&w);
                    Box::pin(async move { w.sync().await })
                })
            }
            None => no_hook(),
        };
        let control = Control::new(Arc::clone(&store), on_change.clone());
        let secrets = Arc::new(load_secrets(&cfg)?);
        let portal = Portal::new(
            Arc::clone(&store),
            secrets,
            on_change,
            cfg.oauth_redirect_uri_separator.clone(),
            Duration::from_secs(10),
        );
        let ui_settings = gatehouse_web_ui::UiSettings {
            gateway_url: url_of(cfg.gateway_listen, https),
            secure_cookies: https,
            quotas_in_redis: matches!(
                cfg.counters,
                gatehouse_gateway::limits::CounterBackend::Redis { .. }
            ),
            ..Default::default()
        }
        .with_admin_from_env();
        let ui_settings = match &cfg.initial_admin {
            Some(a) => gatehouse_web_ui::UiSettings {
                initial_admin: Some(a.clone()),
                ..ui_settings
            },
            None => ui_settings,
        };
        let dashboard_ui = gatehouse_web_ui::DashboardUi::new(
            control.clone(),
            Arc::clone(&portal),
            ui_settings.clone(),
        )
        .await
        .context("cannot set up the dashboard pages")?;
        let portal_ui =
            gatehouse_web_ui::PortalUi::new(Arc::clone(&portal), Arc::clone(&store), ui_settings)
                .await
                .context("cannot set up the portal pages")?;
        let hooks: Arc<dyn gatehouse_admin_api::AdminHooks> = Arc::new(ProcessHooks {
            snapshot: Arc::clone(&snapshot),
            deps: deps.clone(),
        });
        dashboard_ui.set_hooks(Arc::clone(&hooks));
        // No admin yet (and none from GATEHOUSE_ADMIN_EMAIL / _PASSWORD): a one-time setup link,
        // printed on the console only (the log never sees the token).
        if let Some(token) = gatehouse_web_ui::setup::issue_token(store.as_ref())
            .await
            .context("cannot record the first-admin setup token")?
        {
            tracing::warn!(
                "no dashboard admin exists yet: open the one-time setup link printed on the console"
            );
            setup_link = Some(format!(
                "{}/setup?token={token}",
                url_of(cfg.dashboard_listen, https)
            ));
        }
        let admin = gatehouse_admin_api::router(AdminState {
            portal: Arc::clone(&portal),
            control,
            key: Arc::new(key),
            hooks,
        });
        let dash_listener = instance.bind(cfg.dashboard_listen, "dashboard", "dashboard-listen")?;
        let portal_listener =
            instance.bind(cfg.portal_listen, "developer portal", "portal-listen")?;
        // The dashboard answers /metrics too (the gateway's, in one process), so metrics can be
        // scraped where the gateway listener is public and its metrics path is off.
        let dash_telemetry = match &telemetry {
            Some(t) => Arc::clone(t),
            None => Telemetry::builder(gatehouse_telemetry::TelemetryConfig {
                access_log: gatehouse_telemetry::AccessLogTarget::Off,
                ..cfg.telemetry.clone()
            })
            .build()
            .context("cannot set up telemetry")?,
        };
        let mut dash_app = gatehouse_web_ui::dashboard_app(dashboard_ui, admin).route(
            gatehouse_telemetry::DEFAULT_METRICS_PATH,
            axum::routing::get(move || {
                let t = Arc::clone(&dash_telemetry);
                async move { t.metrics_response() }
            }),
        );
        let mut portal_app = gatehouse_web_ui::portal_app(
            portal_ui,
            portal_api::router(PortalApi {
                portal,
                secure_cookies: https,
            }),
        );
        if https {
            let hsts =
                axum::middleware::from_fn(gatehouse_web_ui::security::strict_transport_security);
            dash_app = dash_app.layer(hsts.clone());
            portal_app = portal_app.layer(hsts);
        }
        // The header timeout bounds the TLS handshake and the request head on these listeners.
        let head_timeout = cfg.gateway.client_header_timeout;
        tasks.push(tokio::spawn(gatehouse_gateway::accept::serve_app(
            dash_listener,
            tls.clone(),
            head_timeout,
            app_service(dash_app),
            stopped(stop_rx.clone()),
        )));
        tasks.push(tokio::spawn(gatehouse_gateway::accept::serve_app(
            portal_listener,
            tls.clone(),
            head_timeout,
            app_service(portal_app),
            stopped(stop_rx.clone()),
        )));
        banner.push(format!(
            "Dashboard: {}  (admin API under /api/)",
            url_of(cfg.dashboard_listen, https)
        ));
        banner.push(format!("Portal:    {}", url_of(cfg.portal_listen, https)));
    }

    instance.publish();
    if let Some(secret) = shown_once {
        println!("Admin API key (shown only once, store it now): {secret}");
    }
    if let Some(link) = setup_link {
        println!("First admin: open {link}");
    }
    println!("Running:   {roles}");
    println!("Data:      {}", describe_data(&cfg));
    for line in banner {
        println!("{line}");
    }
    tracing::info!(roles = %roles, "gatehouse is running");

    shutdown_signal().await;
    tracing::info!("shutting down: draining in-flight requests");
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    if let Some((rec, flusher)) = analytics {
        let _ = flusher.await;
        match gatehouse_gateway::analytics::flush(&rec, store.as_ref()).await {
            Ok(rows) => tracing::info!(rows, "analytics written"),
            Err(e) => tracing::error!(error = %e, "could not write the last analytics"),
        }
    }
    if let Some(t) = &telemetry
        && !t.flush_access_log(Duration::from_secs(5))
    {
        tracing::warn!("the access log could not be flushed before exit");
    }
    if let Some(l) = limiters
        && let Err(e) = gatehouse_ratelimit::QuotaCounter::flush(l.local_quota.as_ref()).await
    {
        tracing::error!(error = %e, "could not save the quota counters");
    }
    Ok(())
}

/// Starts the hourly pruning of analytics older than the retention.
fn start_analytics_pruner(store: &Arc<dyn Store>, cfg: &Config) {
    gatehouse_gateway::analytics::spawn_pruner(
        Arc::clone(store),
        cfg.analytics.retention_days,
        Duration::from_secs(3600),
    );
}

/// What the admin API may ask of the rest of the process.
struct ProcessHooks {
    snapshot: SharedSnapshot,
    deps: AuthDeps,
}

impl AdminHooks for ProcessHooks {
    fn flush_jwks(&self, api_id: Option<&str>) -> Option<usize> {
        let n = match api_id {
            None => self.deps.jwks.flush_all(),
            Some(id) => {
                let snap = self.snapshot.load();
                match snap.by_id.get(id).map(|a| &a.auth) {
                    Some(ApiAuth::Jwt { validator, .. }) => {
                        self.deps.jwks.flush_urls(validator.jwks_urls())
                    }
                    _ => return None,
                }
            }
        };
        self.deps.tokens.clear();
        Some(n)
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// `gatehouse import tyk DIR`.
/// The key that encrypts secrets at rest (`GATEHOUSE_SECRET_KEY` or `<data-dir>/secret.key`), with
/// the previous keys that still open values sealed before a rotation.
fn load_secrets(cfg: &Config) -> anyhow::Result<SecretBox> {
    let current = SecretBox::load_or_create(
        &cfg.data_dir,
        std::env::var("GATEHOUSE_SECRET_KEY").ok().as_deref(),
    )
    .context("cannot load the key that encrypts secrets at rest")?;
    let previous = SecretBox::previous_keys(
        &cfg.data_dir,
        std::env::var(gatehouse_store::PREVIOUS_KEYS_ENV)
            .ok()
            .as_deref(),
    )
    .context("cannot load the previous keys of secrets at rest")?;
    Ok(current.with_previous(&previous))
}

/// `gatehouse secrets rotate-key` (`rotate`) and `gatehouse secrets reseal`.
pub async fn secrets(cfg: Config, rotate: bool) -> anyhow::Result<ExitCode> {
    let env_key = std::env::var("GATEHOUSE_SECRET_KEY").is_ok_and(|k| !k.is_empty());
    let (store, _) = open_store(&cfg).await?;
    let ring = if rotate {
        anyhow::ensure!(
            !env_key,
            "GATEHOUSE_SECRET_KEY is set, so the key is yours to rotate: set GATEHOUSE_SECRET_KEY \
             to the new key and GATEHOUSE_SECRET_KEY_PREVIOUS to the old one on every node, \
             restart them, then run `gatehouse secrets reseal`"
        );
        // Make sure a key file exists (a fresh data directory gets one) before rotating it.
        load_secrets(&cfg)?;
        let ring = gatehouse_store::rotate_key_file(&cfg.data_dir)
            .context("cannot rotate the key file")?;
        println!(
            "New key {} is current; the old key is kept in {}.",
            ring.key_id(),
            cfg.data_dir.join("secret.key.previous").display()
        );
        ring
    } else {
        load_secrets(&cfg)?
    };
    let portal = Portal::new(
        Arc::clone(&store),
        Arc::new(ring),
        no_hook(),
        cfg.oauth_redirect_uri_separator.clone(),
        Duration::from_secs(10),
    );
    let (moved, current) = portal
        .reseal_secrets()
        .await
        .context("re-sealing the stored secrets failed; run `gatehouse secrets reseal` again")?;
    println!("{moved} secret(s) re-sealed with the current key, {current} already current.");
    let _ = store
        .append_audit(&gatehouse_store::AuditEntry {
            id: 0,
            at: gatehouse_store::unix_now(),
            actor: "cli".into(),
            action: if rotate {
                "secrets.rotate_key"
            } else {
                "secrets.reseal"
            }
            .into(),
            target: String::new(),
            detail: format!("{moved} re-sealed, {current} already current"),
            source: "cli".into(),
        })
        .await;
    if rotate {
        println!(
            "Restart the running gatehouse processes on this data directory so they use the new \
             key. Delete secret.key.previous once every process runs with the new key and \
             `gatehouse secrets reseal` reports 0 re-sealed."
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn import_tyk(cfg: Config, dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let (bundle, mut items) = TykBundle::read_dir(dir).map_err(anyhow::Error::msg)?;
    let (store, _) = open_store(&cfg).await?;
    let control = Control::new(Arc::clone(&store), no_hook());
    items.extend(control.import_tyk(bundle).await);
    let failed = items.iter().filter(|i| i.status == "failed").count();
    let _ = store
        .append_audit(&gatehouse_store::AuditEntry {
            id: 0,
            at: gatehouse_store::unix_now(),
            actor: "cli".into(),
            action: "import.tyk".into(),
            target: String::new(),
            detail: format!(
                "{} imported, {failed} failed from {}",
                items.len() - failed,
                dir.display()
            ),
            source: "cli".into(),
        })
        .await;
    if json {
        println!(
            "{}",
            serde_json::json!({"imported": items.len() - failed, "failed": failed, "items": items})
        );
    } else {
        for i in &items {
            let id = i.id.as_deref().unwrap_or("-");
            let name = i.name.as_deref().unwrap_or("");
            println!(
                "{:<8} {:<6} {:<34} {name}  ({})",
                i.status, i.kind, id, i.source
            );
            if let Some(e) = &i.error {
                println!("         error: {e}");
            }
            for w in &i.warnings {
                println!("         ignored: {w}");
            }
        }
        println!(
            "{} imported, {failed} failed into {}",
            items.len() - failed,
            cfg.data_dir.display()
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
