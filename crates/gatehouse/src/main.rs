//! `gatehouse`: the one binary. Command-line parsing and wiring only; the work is in the library
//! crates (see ARCHITECTURE.md).

mod config;
mod demo;
mod listen;
mod serve;

/// mimalloc: measurably faster than the system allocator on the proxy path (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use config::{Config, RawConfig};

/// Gatehouse: an API gateway, admin dashboard and developer portal in one binary.
///
/// Settings come from flags, then an optional gatehouse.toml (--config, or ./gatehouse.toml when
/// present), then GATEHOUSE_* environment variables, in that order of precedence.
#[derive(Parser, Debug)]
#[command(name = "gatehouse", version, about, long_about, after_long_help = ENV_ONLY_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Settings read only from the environment (secrets stay out of the command line, which other
/// users of the machine can see), shown at the end of `--help`.
const ENV_ONLY_HELP: &str = "\
Environment only (secrets are never flags):
  GATEHOUSE_ADMIN_KEY            The admin API key (16+ characters); without it one is generated
                                 on the first start and printed once. Only its hash is stored.
  GATEHOUSE_ADMIN_EMAIL          With GATEHOUSE_ADMIN_PASSWORD: the first dashboard admin, created
  GATEHOUSE_ADMIN_PASSWORD       at start when none exists (instead of the printed setup link).
  GATEHOUSE_SECRET_KEY           The key sealing secrets at rest (64 hex characters); default: the
                                 file secret.key in the data directory.
  GATEHOUSE_SECRET_KEY_PREVIOUS  Earlier keys (comma-separated) still accepted while re-sealing
                                 (gatehouse secrets rotate-key / reseal).
  GATEHOUSE_CONFIG               The configuration file, as --config.
  RUST_LOG                       A tracing filter that overrides --log-level.
Every flag of a subcommand can also be set as GATEHOUSE_<FLAG> (upper case, _ for -) or in
gatehouse.toml; `gatehouse <subcommand> --help` lists them.";

#[derive(Subcommand, Debug)]
enum Command {
    /// Run everything in one process: the gateway (:8080), the dashboard and admin API (:3000)
    /// and the developer portal (:3001), with the embedded SQLite database in --data-dir.
    ///
    /// On the first start an admin API key is generated and printed once (unless
    /// GATEHOUSE_ADMIN_KEY is set); only its hash is stored.
    Serve(CommonArgs),
    /// Run only the gateway (data plane): reads the configuration from the database (shared
    /// PostgreSQL with --database-url, or the SQLite in --data-dir), counters in Redis with
    /// --redis-url. No admin API, no portal.
    Gateway(CommonArgs),
    /// Run only the dashboard: the admin API (:3000) and the developer portal (:3001), writing
    /// to the database that the gateway nodes read.
    Dashboard(CommonArgs),
    /// Import configuration from another gateway.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Print the admin API's OpenAPI document (JSON) on stdout.
    Openapi,
    /// Manage the key that encrypts secrets at rest (client secrets, registration and initial
    /// access tokens).
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// A first look on this machine: starts a built-in development IdP (not for production), an
    /// echo upstream and `gatehouse serve` on 127.0.0.1 with a fresh data directory, seeds a
    /// JWT-protected API, a policy, the portal and a demo developer, and prints the next steps.
    Demo {
        /// Port of the development IdP.
        #[arg(long, default_value_t = 9400)]
        idp_port: u16,
        /// Port of the echo upstream.
        #[arg(long, default_value_t = 9401)]
        upstream_port: u16,
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Subcommand, Debug)]
enum SecretsCommand {
    /// Make a new random key current in <data-dir>/secret.key (the old key moves to
    /// secret.key.previous, so nothing becomes unreadable) and re-seal every stored secret with
    /// it. Restart running processes afterwards. Not for GATEHOUSE_SECRET_KEY: see `reseal`.
    RotateKey {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Re-seal every stored secret with the current key: after setting GATEHOUSE_SECRET_KEY to a
    /// new key with the old one in GATEHOUSE_SECRET_KEY_PREVIOUS (comma-separated).
    Reseal {
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Subcommand, Debug)]
enum ImportCommand {
    /// Import a Tyk gateway's file-based configuration: DIR/apps/*.json (API definitions) and
    /// DIR/policies/*.json or DIR/policies.json (policies keyed by id).
    ///
    /// Each item is created or replaced; a running `gatehouse serve` on the same data directory
    /// picks the changes up within a second. Exit status 0 when everything imported, 2 when some
    /// items failed.
    Tyk {
        /// The Tyk configuration directory.
        dir: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
}

/// Settings shared by the subcommands. Each can also be set in gatehouse.toml (same name with `_`)
/// or as GATEHOUSE_<NAME> in the environment.
#[derive(Args, Debug, Clone, Default)]
struct CommonArgs {
    /// Replace the Gatehouse running with the same data directory without downtime: share its
    /// listen addresses until it exits (docs/deployment.md, "Upgrading without downtime").
    /// Without it, a listen address in use by anything makes the start fail.
    #[arg(long)]
    take_over: bool,
    /// Configuration file (TOML). Default: ./gatehouse.toml when it exists. [env: GATEHOUSE_CONFIG]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory of the embedded database. [default: ./gatehouse-data] [env: GATEHOUSE_DATA_DIR]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Gateway listen address. [default: 0.0.0.0:8080] [env: GATEHOUSE_GATEWAY_LISTEN]
    #[arg(long, value_name = "ADDR")]
    gateway_listen: Option<std::net::SocketAddr>,
    /// Dashboard and admin API listen address. [default: 0.0.0.0:3000]
    /// [env: GATEHOUSE_DASHBOARD_LISTEN]
    #[arg(long, value_name = "ADDR")]
    dashboard_listen: Option<std::net::SocketAddr>,
    /// Developer portal listen address. [default: 0.0.0.0:3001] [env: GATEHOUSE_PORTAL_LISTEN]
    #[arg(long, value_name = "ADDR")]
    portal_listen: Option<std::net::SocketAddr>,
    /// Seconds allowed to connect to an upstream. [default: 5]
    /// [env: GATEHOUSE_UPSTREAM_CONNECT_TIMEOUT]
    #[arg(long, value_name = "SECS")]
    upstream_connect_timeout: Option<u64>,
    /// Seconds allowed for an upstream to start answering, then 504. [default: 30]
    /// [env: GATEHOUSE_UPSTREAM_RESPONSE_TIMEOUT]
    #[arg(long, value_name = "SECS")]
    upstream_response_timeout: Option<u64>,
    /// Seconds allowed for a client to send its request headers. [default: 30]
    /// [env: GATEHOUSE_CLIENT_HEADER_TIMEOUT]
    #[arg(long, value_name = "SECS")]
    client_header_timeout: Option<u64>,
    /// Largest request body in bytes for APIs that set no `global_size_limit`; 413 above it
    /// (0: no limit). [default: 0] [env: GATEHOUSE_MAX_REQUEST_BODY]
    #[arg(long, value_name = "BYTES")]
    max_request_body: Option<u64>,
    /// Largest request line plus headers in bytes; 431 above it. [default: 32768]
    /// [env: GATEHOUSE_MAX_HEADER_BYTES]
    #[arg(long, value_name = "BYTES")]
    max_header_bytes: Option<usize>,
    /// Client connections the gateway serves at once; more are answered 503 and closed.
    /// [default: 10000] [env: GATEHOUSE_MAX_CONNECTIONS]
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Milliseconds between configuration version checks. [default: 500]
    /// [env: GATEHOUSE_CONFIG_POLL_INTERVAL_MS]
    #[arg(long, value_name = "MS")]
    config_poll_interval_ms: Option<u64>,
    /// Seconds a JWKS is cached unless the API or the IdP says otherwise. [default: 240]
    /// [env: GATEHOUSE_JWKS_CACHE_TTL]
    #[arg(long, value_name = "SECS")]
    jwks_cache_ttl: Option<u64>,
    /// At most one JWKS refetch per URL per this many seconds (on an unknown kid). [default: 10]
    /// [env: GATEHOUSE_JWKS_MIN_REFETCH_INTERVAL]
    #[arg(long, value_name = "SECS")]
    jwks_min_refetch_interval: Option<u64>,
    /// Seconds past its lifetime a JWKS stays in use while the IdP is unreachable.
    /// [default: 86400] [env: GATEHOUSE_JWKS_STALE_LIMIT]
    #[arg(long, value_name = "SECS")]
    jwks_stale_limit: Option<u64>,
    /// Accept any TLS certificate from JWKS endpoints (lab IdPs only).
    /// [env: GATEHOUSE_JWT_SSL_INSECURE_SKIP_VERIFY]
    #[arg(long)]
    jwt_ssl_insecure_skip_verify: bool,
    /// Verified tokens remembered, so a reused token skips the signature check; 0 checks every
    /// request. [default: 20000] [env: GATEHOUSE_JWT_TOKEN_CACHE_SIZE]
    #[arg(long, value_name = "N")]
    jwt_token_cache_size: Option<usize>,
    /// Worker threads (default: one per core). [env: GATEHOUSE_WORKER_THREADS]
    #[arg(long, value_name = "N")]
    worker_threads: Option<usize>,
    /// PostgreSQL instead of the embedded SQLite: postgres://user:pass@host/db.
    /// [env: GATEHOUSE_DATABASE_URL]
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Redis for rate limits and quotas shared by all gateway nodes: redis://host:6379, or
    /// several comma-separated URLs for a Redis Cluster. [env: GATEHOUSE_REDIS_URL]
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// When Redis cannot be reached: local (count on this node, the default) or closed (503).
    /// [env: GATEHOUSE_REDIS_FAILURE_MODE]
    #[arg(long, value_name = "MODE")]
    redis_failure_mode: Option<String>,
    /// Separates redirect URIs typed as one string in the portal. [default: ;]
    /// [env: GATEHOUSE_OAUTH_REDIRECT_URI_SEPARATOR]
    #[arg(long, value_name = "SEP")]
    oauth_redirect_uri_separator: Option<String>,
    /// Log format: text or json. [default: text] [env: GATEHOUSE_LOG_FORMAT]
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Log filter, e.g. info or gatehouse_gateway=debug. [default: info] [env: GATEHOUSE_LOG_LEVEL]
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// Where the gateway listener answers Prometheus metrics, e.g. /metrics, or off. Off by default
    /// (the gateway listener is public); the dashboard listener always answers /metrics.
    /// [default: off]
    /// [env: GATEHOUSE_METRICS_PATH]
    #[arg(long, value_name = "PATH")]
    metrics_path: Option<String>,
    /// Access log, one JSON line per gateway request: off, stdout, stderr or a file path.
    /// [default: off] [env: GATEHOUSE_ACCESS_LOG]
    #[arg(long, value_name = "TARGET")]
    access_log: Option<String>,
    /// Record per-minute analytics (requests, errors, latency per API, developer and client) in
    /// the database: true or false. [default: true] [env: GATEHOUSE_ANALYTICS]
    #[arg(long, value_name = "BOOL")]
    analytics: Option<bool>,
    /// Seconds between writes of the analytics each gateway recorded. [default: 10]
    /// [env: GATEHOUSE_ANALYTICS_FLUSH_INTERVAL]
    #[arg(long, value_name = "SECS")]
    analytics_flush_interval: Option<u64>,
    /// Days analytics are kept; older minutes are deleted. [default: 30]
    /// [env: GATEHOUSE_ANALYTICS_RETENTION_DAYS]
    #[arg(long, value_name = "DAYS")]
    analytics_retention_days: Option<u32>,
    /// PEM certificate (chain) for HTTPS on the gateway, dashboard and portal listeners; needs
    /// --tls-key-file. [env: GATEHOUSE_TLS_CERT_FILE]
    #[arg(long, value_name = "FILE")]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file. [env: GATEHOUSE_TLS_KEY_FILE]
    #[arg(long, value_name = "FILE")]
    tls_key_file: Option<PathBuf>,
    /// Oldest TLS version accepted: 1.2 or 1.3. [default: 1.2] [env: GATEHOUSE_TLS_MIN_VERSION]
    #[arg(long, value_name = "VERSION")]
    tls_min_version: Option<String>,
    /// Seconds between checks of the certificate files; a changed certificate is used for new
    /// connections without a restart (0: never). [default: 10]
    /// [env: GATEHOUSE_TLS_RELOAD_INTERVAL_SECS]
    #[arg(long, value_name = "SECS")]
    tls_reload_interval_secs: Option<u64>,
    /// PEM CA certificates trusted for https upstreams, in addition to the system roots.
    /// [env: GATEHOUSE_UPSTREAM_CA_FILE]
    #[arg(long, value_name = "FILE")]
    upstream_ca_file: Option<PathBuf>,
    /// PEM client certificate presented to upstreams that ask for one (mTLS); needs
    /// --upstream-client-key-file. [env: GATEHOUSE_UPSTREAM_CLIENT_CERT_FILE]
    #[arg(long, value_name = "FILE")]
    upstream_client_cert_file: Option<PathBuf>,
    /// PEM private key of --upstream-client-cert-file. [env: GATEHOUSE_UPSTREAM_CLIENT_KEY_FILE]
    #[arg(long, value_name = "FILE")]
    upstream_client_key_file: Option<PathBuf>,
    /// Node segmentation (Tyk's tags): comma-separated; this gateway then serves only the APIs
    /// whose `tags` contain one of them. [default: none, every API] [env: GATEHOUSE_TAGS]
    #[arg(long, value_name = "TAGS")]
    tags: Option<String>,
    /// %2F, %5C and \ in request paths: reject (400) or decode (treated as /). [default: reject]
    /// [env: GATEHOUSE_PATH_ENCODED_SEPARATORS]
    #[arg(long, value_name = "POLICY")]
    path_encoded_separators: Option<String>,
    /// Merge // in request paths into / before routing: true or false. [default: true]
    /// [env: GATEHOUSE_PATH_MERGE_SLASHES]
    #[arg(long, value_name = "BOOL")]
    path_merge_slashes: Option<bool>,
    /// Statuses of authentication errors: standard (401 for token errors, 429 for an exhausted
    /// quota) or tyk (exactly as Tyk answers: 400, 403, 401, 403). [default: standard]
    /// [env: GATEHOUSE_ERROR_STATUS_MODE]
    #[arg(long, value_name = "MODE")]
    error_status_mode: Option<String>,
    /// Endpoint patterns (extended_paths) match at the start of the path only, as Tyk's
    /// enable_path_prefix_matching. [default: false] [env: GATEHOUSE_ENABLE_PATH_PREFIX_MATCHING]
    #[arg(long, value_name = "BOOL")]
    enable_path_prefix_matching: Option<bool>,
    /// Endpoint patterns match at the end of the path only, as Tyk's
    /// enable_path_suffix_matching. [default: false] [env: GATEHOUSE_ENABLE_PATH_SUFFIX_MATCHING]
    #[arg(long, value_name = "BOOL")]
    enable_path_suffix_matching: Option<bool>,
    /// Endpoint patterns match case-insensitively (Tyk's ignore_endpoint_case).
    /// [default: false] [env: GATEHOUSE_IGNORE_ENDPOINT_CASE]
    #[arg(long, value_name = "BOOL")]
    ignore_endpoint_case: Option<bool>,
}

impl CommonArgs {
    fn resolve(&self) -> anyhow::Result<Config> {
        let flags = RawConfig {
            data_dir: self.data_dir.clone(),
            gateway_listen: self.gateway_listen,
            dashboard_listen: self.dashboard_listen,
            portal_listen: self.portal_listen,
            upstream_connect_timeout: self.upstream_connect_timeout,
            upstream_response_timeout: self.upstream_response_timeout,
            client_header_timeout: self.client_header_timeout,
            max_request_body: self.max_request_body,
            max_header_bytes: self.max_header_bytes,
            max_connections: self.max_connections,
            config_poll_interval_ms: self.config_poll_interval_ms,
            jwks_cache_ttl: self.jwks_cache_ttl,
            jwks_min_refetch_interval: self.jwks_min_refetch_interval,
            jwks_stale_limit: self.jwks_stale_limit,
            jwt_ssl_insecure_skip_verify: self.jwt_ssl_insecure_skip_verify.then_some(true),
            jwt_token_cache_size: self.jwt_token_cache_size,
            worker_threads: self.worker_threads,
            oauth_redirect_uri_separator: self.oauth_redirect_uri_separator.clone(),
            database_url: self.database_url.clone(),
            redis_url: self.redis_url.clone(),
            redis_failure_mode: self.redis_failure_mode.clone(),
            log_format: self.log_format.clone(),
            log_level: self.log_level.clone(),
            metrics_path: self.metrics_path.clone(),
            access_log: self.access_log.clone(),
            analytics: self.analytics,
            analytics_flush_interval: self.analytics_flush_interval,
            analytics_retention_days: self.analytics_retention_days,
            tls_cert_file: self.tls_cert_file.clone(),
            tls_key_file: self.tls_key_file.clone(),
            tls_min_version: self.tls_min_version.clone(),
            tls_reload_interval_secs: self.tls_reload_interval_secs,
            upstream_ca_file: self.upstream_ca_file.clone(),
            upstream_client_cert_file: self.upstream_client_cert_file.clone(),
            upstream_client_key_file: self.upstream_client_key_file.clone(),
            tags: self.tags.clone(),
            path_encoded_separators: self.path_encoded_separators.clone(),
            path_merge_slashes: self.path_merge_slashes,
            error_status_mode: self.error_status_mode.clone(),
            enable_path_prefix_matching: self.enable_path_prefix_matching,
            enable_path_suffix_matching: self.enable_path_suffix_matching,
            ignore_endpoint_case: self.ignore_endpoint_case,
        };
        let path = self
            .config
            .clone()
            .or_else(|| std::env::var_os("GATEHOUSE_CONFIG").map(PathBuf::from));
        let file = match path {
            Some(p) => Some(RawConfig::from_file(&p)?),
            None if std::path::Path::new("gatehouse.toml").is_file() => Some(RawConfig::from_file(
                std::path::Path::new("gatehouse.toml"),
            )?),
            None => None,
        };
        let env = RawConfig::from_env(|k| std::env::var(k).ok())?;
        let mut cfg = Config::resolve(flags, file, env)?;
        cfg.admin_key = std::env::var("GATEHOUSE_ADMIN_KEY")
            .ok()
            .filter(|k| !k.is_empty());
        cfg.take_over = self.take_over;
        Ok(cfg)
    }
}

fn init_logging(cfg: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: redirected logs get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match cfg.log_format {
        config::LogFormat::Json => builder.json().init(),
        config::LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Openapi => {
            let doc = gatehouse_admin_api::openapi();
            match doc.to_pretty_json() {
                Ok(s) => {
                    println!("{s}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Err(anyhow::anyhow!("cannot render the OpenAPI document: {e}")),
            }
        }
        Command::Serve(args) => run_roles(&args, serve::Roles::ALL),
        Command::Demo {
            idp_port,
            upstream_port,
            mut common,
        } => {
            if common.data_dir.is_none() {
                let dir =
                    std::env::temp_dir().join(format!("gatehouse-demo-{}", std::process::id()));
                common.data_dir = Some(dir);
            }
            common.resolve().and_then(|mut cfg| {
                cfg.log_level =
                    std::env::var("GATEHOUSE_LOG_LEVEL").unwrap_or_else(|_| "warn".to_owned());
                init_logging(&cfg);
                runtime(cfg.worker_threads)?
                    .block_on(demo::demo(
                        cfg,
                        demo::DemoPorts {
                            idp: idp_port,
                            upstream: upstream_port,
                        },
                    ))
                    .map(|()| ExitCode::SUCCESS)
            })
        }
        Command::Secrets(cmd) => {
            let (common, rotate) = match cmd {
                SecretsCommand::RotateKey { common } => (common, true),
                SecretsCommand::Reseal { common } => (common, false),
            };
            common.resolve().and_then(|cfg| {
                init_logging(&cfg);
                runtime(cfg.worker_threads)?.block_on(serve::secrets(cfg, rotate))
            })
        }
        Command::Gateway(args) => run_roles(&args, serve::Roles::GATEWAY),
        Command::Dashboard(args) => run_roles(&args, serve::Roles::DASHBOARD),
        Command::Import(ImportCommand::Tyk { dir, json, common }) => {
            common.resolve().and_then(|cfg| {
                init_logging(&cfg);
                runtime(cfg.worker_threads)?.block_on(serve::import_tyk(cfg, &dir, json))
            })
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gatehouse: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The async runtime: one worker per core by default. With one worker thread, a current-thread
/// runtime (the whole process on one core, like one nginx worker) avoids the work-stealing
/// scheduler's bookkeeping.
fn run_roles(args: &CommonArgs, roles: serve::Roles) -> anyhow::Result<ExitCode> {
    let cfg = args.resolve()?;
    init_logging(&cfg);
    runtime(cfg.worker_threads)?
        .block_on(serve::serve(cfg, roles))
        .map(|()| ExitCode::SUCCESS)
}

fn runtime(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    Ok(b.enable_all().build()?)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every `GATEHOUSE_*` variable the binary reads is named in `--help`: the environment-only
    /// ones at the end of `gatehouse --help`, the others beside their flag in the subcommand's.
    #[test]
    fn every_environment_variable_is_in_the_help() {
        let mut top = super::Cli::command();
        let mut help = top.render_long_help().to_string();
        let mut serve = super::Cli::command();
        let serve = serve.find_subcommand_mut("serve").expect("serve exists");
        help.push_str(&serve.render_long_help().to_string());
        let sources = [
            include_str!("config.rs"),
            include_str!("main.rs"),
            include_str!("serve.rs"),
            include_str!("../../store/src/secrets.rs"),
            include_str!("../../web-ui/src/lib.rs"),
        ];
        let mut missing = Vec::new();
        for src in sources {
            for (i, _) in src.match_indices("\"GATEHOUSE_") {
                let name: String = src[i + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                    .collect();
                if !help.contains(&name) && !missing.contains(&name) {
                    missing.push(name);
                }
            }
        }
        assert!(missing.is_empty(), "not in --help: {missing:?}");
        assert!(help.contains("--take-over"));
    }
}
