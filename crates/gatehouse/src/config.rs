//! Configuration: flags, then `gatehouse.toml`, then `GATEHOUSE_*` environment variables, then
//! defaults, in that order of precedence (a flag beats the file, the file beats the environment).
//!
//! Every source fills the same [`RawConfig`] (all fields optional); [`RawConfig::merge`] takes the
//! first value set, and [`Config::resolve`] validates the result into the settings the process uses.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use gatehouse_gateway::tls::{CertFiles, MinTlsVersion};
use serde::Deserialize;

/// One source of settings. Field names are the `gatehouse.toml` keys; the environment variable is
/// `GATEHOUSE_` + the upper-cased key; the flag is `--` + the key with `-` for `_`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Where the embedded database lives.
    pub data_dir: Option<PathBuf>,
    /// Gateway listen address.
    pub gateway_listen: Option<SocketAddr>,
    /// Dashboard and admin API listen address.
    pub dashboard_listen: Option<SocketAddr>,
    /// Developer portal listen address.
    pub portal_listen: Option<SocketAddr>,
    /// Seconds to open a connection to an upstream.
    pub upstream_connect_timeout: Option<u64>,
    /// Seconds for an upstream to start answering (then 504).
    pub upstream_response_timeout: Option<u64>,
    /// Seconds for a client to send its request headers.
    pub client_header_timeout: Option<u64>,
    /// Largest request body in bytes for APIs without `global_size_limit` (0: no limit).
    pub max_request_body: Option<u64>,
    /// Largest request head in bytes (431 above).
    pub max_header_bytes: Option<usize>,
    /// Client connections served at once (503 and close above).
    pub max_connections: Option<usize>,
    /// Milliseconds between checks of the configuration version (safety net for changes made by
    /// another process).
    pub config_poll_interval_ms: Option<u64>,
    /// Seconds a JWKS is cached when neither the API nor the IdP says otherwise (Tyk's
    /// `jwks.cache.timeout`).
    pub jwks_cache_ttl: Option<u64>,
    /// At most one refetch of a JWKS per URL per this many seconds (unknown `kid`).
    pub jwks_min_refetch_interval: Option<u64>,
    /// Seconds past its lifetime a JWKS is still used while the IdP cannot be reached.
    pub jwks_stale_limit: Option<u64>,
    /// Accept any TLS certificate from JWKS endpoints (lab IdPs only).
    pub jwt_ssl_insecure_skip_verify: Option<bool>,
    /// How many verified tokens are remembered (0 verifies every request's signature).
    pub jwt_token_cache_size: Option<usize>,
    /// Worker threads of the async runtime (default: one per core).
    pub worker_threads: Option<usize>,
    /// Separates redirect URIs typed as one string in the portal (Tyk's setting; default `;`).
    pub oauth_redirect_uri_separator: Option<String>,
    /// `postgres://…`: keep everything in PostgreSQL instead of the embedded SQLite.
    pub database_url: Option<String>,
    /// `redis://…` (or several, comma-separated, for a Redis Cluster): share rate limits and quotas
    /// between gateway nodes.
    pub redis_url: Option<String>,
    /// When Redis cannot be reached: `local` (count on this node) or `closed` (503).
    pub redis_failure_mode: Option<String>,
    /// `text` or `json`.
    pub log_format: Option<String>,
    /// A tracing filter such as `info` or `gatehouse=debug,info`.
    pub log_level: Option<String>,
    /// Where the gateway listener answers Prometheus metrics (`/metrics`), or `off`.
    pub metrics_path: Option<String>,
    /// The access log: `off`, `stdout`, `stderr` or a file path.
    pub access_log: Option<String>,
    /// Record per-minute analytics in the database (default true).
    pub analytics: Option<bool>,
    /// Seconds between writes of the analytics a gateway recorded (default 10).
    pub analytics_flush_interval: Option<u64>,
    /// Days analytics are kept (default 30).
    pub analytics_retention_days: Option<u32>,
    /// PEM certificate chain of the listeners; with `tls_key_file`, all three listeners serve
    /// HTTPS.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// Oldest TLS version accepted: `1.2` (default) or `1.3`.
    pub tls_min_version: Option<String>,
    /// Seconds between checks of the certificate files for a new certificate (0: never).
    pub tls_reload_interval_secs: Option<u64>,
    /// PEM bundle of CA certificates trusted for upstreams, in addition to the system roots.
    pub upstream_ca_file: Option<PathBuf>,
    /// PEM client certificate presented to upstreams that ask for one (mTLS).
    pub upstream_client_cert_file: Option<PathBuf>,
    /// PEM private key of `upstream_client_cert_file`.
    pub upstream_client_key_file: Option<PathBuf>,
    /// Node segmentation: comma-separated tags; this gateway then serves only the APIs carrying
    /// one of them (Tyk's `tags`).
    pub tags: Option<String>,
    /// `%2F`, `%5C` and `\` in request paths: `reject` (400, the default) or `decode` (as `/`).
    pub path_encoded_separators: Option<String>,
    /// Merge `//` in request paths into `/` before routing (default true).
    pub path_merge_slashes: Option<bool>,
    /// Statuses of authentication errors: `standard` (401 for token errors, 429 for an exhausted
    /// quota; the default) or `tyk` (exactly Tyk's: 400, 403, 401 and 403).
    pub error_status_mode: Option<String>,
    /// Endpoint patterns (`extended_paths`) must match at the start of the path (Tyk's
    /// `http_server_options.enable_path_prefix_matching`; default false, as in Tyk).
    pub enable_path_prefix_matching: Option<bool>,
    /// Endpoint patterns must match at the end of the path (Tyk's
    /// `enable_path_suffix_matching`; default false).
    pub enable_path_suffix_matching: Option<bool>,
    /// Endpoint patterns match case-insensitively (Tyk's gateway-wide `ignore_endpoint_case`).
    pub ignore_endpoint_case: Option<bool>,
}

macro_rules! merge_fields {
    ($self:ident, $other:ident, $($f:ident),*) => {
        RawConfig { $($f: $self.$f.or($other.$f)),* }
    };
}

impl RawConfig {
    /// Fields set in `self` win; the rest come from `lower`.
    pub fn merge(self, lower: RawConfig) -> RawConfig {
        merge_fields!(
            self,
            lower,
            data_dir,
            gateway_listen,
            dashboard_listen,
            portal_listen,
            upstream_connect_timeout,
            upstream_response_timeout,
            client_header_timeout,
            max_request_body,
            max_header_bytes,
            max_connections,
            config_poll_interval_ms,
            jwks_cache_ttl,
            jwks_min_refetch_interval,
            jwks_stale_limit,
            jwt_ssl_insecure_skip_verify,
            jwt_token_cache_size,
            worker_threads,
            oauth_redirect_uri_separator,
            database_url,
            redis_url,
            redis_failure_mode,
            log_format,
            log_level,
            metrics_path,
            access_log,
            analytics,
            analytics_flush_interval,
            analytics_retention_days,
            tls_cert_file,
            tls_key_file,
            tls_min_version,
            tls_reload_interval_secs,
            upstream_ca_file,
            upstream_client_cert_file,
            upstream_client_key_file,
            tags,
            path_encoded_separators,
            path_merge_slashes,
            error_status_mode,
            enable_path_prefix_matching,
            enable_path_suffix_matching,
            ignore_endpoint_case
        )
    }

    /// Reads `path` as TOML. Unknown keys are errors (a typo must not be silently ignored).
    pub fn from_file(path: &Path) -> anyhow::Result<RawConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("invalid configuration file {}", path.display()))
    }

    /// Reads `GATEHOUSE_*` variables through `get` (the process environment in production).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<RawConfig> {
        fn parse<T: std::str::FromStr>(
            get: &impl Fn(&str) -> Option<String>,
            name: &str,
        ) -> anyhow::Result<Option<T>>
        where
            T::Err: std::fmt::Display,
        {
            match get(name) {
                None => Ok(None),
                Some(v) if v.is_empty() => Ok(None),
                Some(v) => v
                    .parse()
                    .map(Some)
                    .map_err(|e| anyhow::anyhow!("environment variable {name}='{v}': {e}")),
            }
        }
        Ok(RawConfig {
            data_dir: parse(&get, "GATEHOUSE_DATA_DIR")?,
            gateway_listen: parse(&get, "GATEHOUSE_GATEWAY_LISTEN")?,
            dashboard_listen: parse(&get, "GATEHOUSE_DASHBOARD_LISTEN")?,
            portal_listen: parse(&get, "GATEHOUSE_PORTAL_LISTEN")?,
            upstream_connect_timeout: parse(&get, "GATEHOUSE_UPSTREAM_CONNECT_TIMEOUT")?,
            upstream_response_timeout: parse(&get, "GATEHOUSE_UPSTREAM_RESPONSE_TIMEOUT")?,
            client_header_timeout: parse(&get, "GATEHOUSE_CLIENT_HEADER_TIMEOUT")?,
            max_request_body: parse(&get, "GATEHOUSE_MAX_REQUEST_BODY")?,
            max_header_bytes: parse(&get, "GATEHOUSE_MAX_HEADER_BYTES")?,
            max_connections: parse(&get, "GATEHOUSE_MAX_CONNECTIONS")?,
            config_poll_interval_ms: parse(&get, "GATEHOUSE_CONFIG_POLL_INTERVAL_MS")?,
            jwks_cache_ttl: parse(&get, "GATEHOUSE_JWKS_CACHE_TTL")?,
            jwks_min_refetch_interval: parse(&get, "GATEHOUSE_JWKS_MIN_REFETCH_INTERVAL")?,
            jwks_stale_limit: parse(&get, "GATEHOUSE_JWKS_STALE_LIMIT")?,
            jwt_ssl_insecure_skip_verify: parse(&get, "GATEHOUSE_JWT_SSL_INSECURE_SKIP_VERIFY")?,
            jwt_token_cache_size: parse(&get, "GATEHOUSE_JWT_TOKEN_CACHE_SIZE")?,
            worker_threads: parse(&get, "GATEHOUSE_WORKER_THREADS")?,
            oauth_redirect_uri_separator: parse(&get, "GATEHOUSE_OAUTH_REDIRECT_URI_SEPARATOR")?,
            database_url: parse(&get, "GATEHOUSE_DATABASE_URL")?,
            redis_url: parse(&get, "GATEHOUSE_REDIS_URL")?,
            redis_failure_mode: parse(&get, "GATEHOUSE_REDIS_FAILURE_MODE")?,
            log_format: parse(&get, "GATEHOUSE_LOG_FORMAT")?,
            log_level: parse(&get, "GATEHOUSE_LOG_LEVEL")?,
            metrics_path: parse(&get, "GATEHOUSE_METRICS_PATH")?,
            access_log: parse(&get, "GATEHOUSE_ACCESS_LOG")?,
            analytics: parse(&get, "GATEHOUSE_ANALYTICS")?,
            analytics_flush_interval: parse(&get, "GATEHOUSE_ANALYTICS_FLUSH_INTERVAL")?,
            analytics_retention_days: parse(&get, "GATEHOUSE_ANALYTICS_RETENTION_DAYS")?,
            tls_cert_file: parse(&get, "GATEHOUSE_TLS_CERT_FILE")?,
            tls_key_file: parse(&get, "GATEHOUSE_TLS_KEY_FILE")?,
            tls_min_version: parse(&get, "GATEHOUSE_TLS_MIN_VERSION")?,
            tls_reload_interval_secs: parse(&get, "GATEHOUSE_TLS_RELOAD_INTERVAL_SECS")?,
            upstream_ca_file: parse(&get, "GATEHOUSE_UPSTREAM_CA_FILE")?,
            upstream_client_cert_file: parse(&get, "GATEHOUSE_UPSTREAM_CLIENT_CERT_FILE")?,
            upstream_client_key_file: parse(&get, "GATEHOUSE_UPSTREAM_CLIENT_KEY_FILE")?,
            tags: parse(&get, "GATEHOUSE_TAGS")?,
            path_encoded_separators: parse(&get, "GATEHOUSE_PATH_ENCODED_SEPARATORS")?,
            path_merge_slashes: parse(&get, "GATEHOUSE_PATH_MERGE_SLASHES")?,
            error_status_mode: parse(&get, "GATEHOUSE_ERROR_STATUS_MODE")?,
            enable_path_prefix_matching: parse(&get, "GATEHOUSE_ENABLE_PATH_PREFIX_MATCHING")?,
            enable_path_suffix_matching: parse(&get, "GATEHOUSE_ENABLE_PATH_SUFFIX_MATCHING")?,
            ignore_endpoint_case: parse(&get, "GATEHOUSE_IGNORE_ENDPOINT_CASE")?,
        })
    }
}

/// Verified tokens remembered by default: one live token per client for 20,000 clients, at
/// about 1-2 KB each (the crate's own default of 100,000 could hold 200 MB).
pub const DEFAULT_TOKEN_CACHE_SIZE: usize = 20_000;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Gateway address.
    pub gateway_listen: SocketAddr,
    /// Dashboard address.
    pub dashboard_listen: SocketAddr,
    /// Portal address.
    pub portal_listen: SocketAddr,
    /// Gateway settings.
    pub gateway: gatehouse_gateway::GatewayConfig,
    /// Configuration poll interval.
    pub config_poll_interval: Duration,
    /// JWKS cache settings.
    pub jwks: gatehouse_jwt::JwksCacheConfig,
    /// Verified-token cache size.
    pub jwt_token_cache_size: usize,
    /// Runtime worker threads; `None` = one per core.
    pub worker_threads: Option<usize>,
    /// Redirect URI separator.
    pub oauth_redirect_uri_separator: String,
    /// PostgreSQL URL; `None` = SQLite in the data directory.
    pub database_url: Option<String>,
    /// The admin key chosen by the operator (`GATEHOUSE_ADMIN_KEY`, environment only).
    pub admin_key: Option<String>,
    /// The first dashboard admin (email, password), created at start when none exists: from
    /// `GATEHOUSE_ADMIN_EMAIL` / `GATEHOUSE_ADMIN_PASSWORD` (environment only), or set by `demo`.
    pub initial_admin: Option<(String, String)>,
    /// Where counters live.
    pub counters: gatehouse_gateway::limits::CounterBackend,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_level: String,
    /// Metrics path and access log.
    pub telemetry: gatehouse_telemetry::TelemetryConfig,
    /// Per-minute analytics.
    pub analytics: gatehouse_gateway::analytics::AnalyticsSettings,
    /// HTTPS on all three listeners; `None`: plain HTTP.
    pub tls: Option<TlsSettings>,
    /// CA certificates trusted for upstreams in addition to the system roots.
    pub upstream_ca_file: Option<PathBuf>,
    /// The client certificate presented to upstreams (mTLS).
    pub upstream_client_cert: Option<CertFiles>,
    /// Node segmentation tags; empty serves every API.
    pub node_tags: Vec<String>,
    /// How endpoint patterns match.
    pub match_options: gatehouse_domain::pathmatch::MatchOptions,
    /// `--take-over`: share the listen addresses of the Gatehouse running with this data
    /// directory until it exits (a binary upgrade).
    pub take_over: bool,
}

/// The listeners' TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Certificate and key files.
    pub files: CertFiles,
    /// Oldest TLS version accepted.
    pub min_version: MinTlsVersion,
    /// How often the files are checked for a new certificate; `None`: never.
    pub reload_interval: Option<Duration>,
}

/// Both files of a pair or neither; `names` are the settings (for the error).
fn pair(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    names: (&str, &str),
) -> anyhow::Result<Option<CertFiles>> {
    let empty = |p: Option<PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
    match (empty(cert), empty(key)) {
        (Some(cert), Some(key)) => Ok(Some(CertFiles { cert, key })),
        (None, None) => Ok(None),
        (Some(_), None) => bail!(
            "{} is set but {} is not: set both or neither",
            names.0,
            names.1
        ),
        (None, Some(_)) => bail!(
            "{} is set but {} is not: set both or neither",
            names.1,
            names.0
        ),
    }
}

impl Config {
    /// Merges the sources in precedence order and validates.
    pub fn resolve(
        flags: RawConfig,
        file: Option<RawConfig>,
        env: RawConfig,
    ) -> anyhow::Result<Config> {
        let raw = flags.merge(file.unwrap_or_default()).merge(env);
        let secs = |v: Option<u64>, default: u64, name: &str| -> anyhow::Result<Duration> {
            let s = v.unwrap_or(default);
            if s == 0 {
                bail!("{name} must be at least 1 second");
            }
            Ok(Duration::from_secs(s))
        };
        let log_format = match raw.log_format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => bail!("log_format must be 'text' or 'json', not '{other}'"),
        };
        let gateway = gatehouse_gateway::GatewayConfig {
            upstream_connect_timeout: secs(
                raw.upstream_connect_timeout,
                5,
                "upstream_connect_timeout",
            )?,
            upstream_response_timeout: secs(
                raw.upstream_response_timeout,
                30,
                "upstream_response_timeout",
            )?,
            client_header_timeout: secs(raw.client_header_timeout, 30, "client_header_timeout")?,
            max_request_body: raw.max_request_body.filter(|n| *n > 0),
            max_header_bytes: match raw.max_header_bytes {
                None => gatehouse_gateway::DEFAULT_MAX_HEADER_BYTES,
                Some(n) if (1024..=1024 * 1024).contains(&n) => n,
                Some(n) => bail!("max_header_bytes must be between 1024 and 1048576, not {n}"),
            },
            max_connections: match raw.max_connections {
                None => gatehouse_gateway::DEFAULT_MAX_CONNECTIONS,
                Some(0) => bail!("max_connections must be at least 1"),
                Some(n) => n,
            },
            path_policy: gatehouse_domain::path::PathPolicy {
                encoded_separators: match raw.path_encoded_separators.as_deref() {
                    None => gatehouse_domain::path::EncodedSeparators::Reject,
                    Some(v) => {
                        gatehouse_domain::path::EncodedSeparators::parse(v).ok_or_else(|| {
                            anyhow::anyhow!(
                                "path_encoded_separators must be 'reject' or 'decode', not '{v}'"
                            )
                        })?
                    }
                },
                merge_slashes: raw.path_merge_slashes.unwrap_or(true),
            },
            status_mode: match raw.error_status_mode.as_deref().map(str::trim) {
                None | Some("standard") => gatehouse_gateway::StatusMode::Standard,
                Some("tyk") => gatehouse_gateway::StatusMode::Tyk,
                Some(other) => {
                    bail!("error_status_mode must be 'standard' or 'tyk', not '{other}'")
                }
            },
            ..Default::default()
        };
        let node_tags: Vec<String> = raw
            .tags
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        let mut jwks = gatehouse_jwt::JwksCacheConfig::default();
        jwks.default_ttl = secs(
            raw.jwks_cache_ttl,
            jwks.default_ttl.as_secs(),
            "jwks_cache_ttl",
        )?;
        jwks.min_refetch_interval = secs(
            raw.jwks_min_refetch_interval,
            jwks.min_refetch_interval.as_secs(),
            "jwks_min_refetch_interval",
        )?;
        jwks.stale_limit = secs(
            raw.jwks_stale_limit,
            jwks.stale_limit.as_secs(),
            "jwks_stale_limit",
        )?;
        jwks.insecure_skip_verify = raw.jwt_ssl_insecure_skip_verify.unwrap_or(false);
        let failure_mode = match raw.redis_failure_mode.as_deref().unwrap_or("local") {
            "local" => gatehouse_ratelimit::FailureMode::Local,
            "closed" => gatehouse_ratelimit::FailureMode::Closed,
            other => bail!("redis_failure_mode must be 'local' or 'closed', not '{other}'"),
        };
        let counters = match raw
            .redis_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            None => gatehouse_gateway::limits::CounterBackend::Local,
            Some(list) => {
                let urls: Vec<String> = list.split(',').map(|u| u.trim().to_owned()).collect();
                if let Some(bad) = urls
                    .iter()
                    .find(|u| !(u.starts_with("redis://") || u.starts_with("rediss://")))
                {
                    bail!("redis_url must be redis://host:port (or rediss://), not '{bad}'");
                }
                gatehouse_gateway::limits::CounterBackend::Redis { urls, failure_mode }
            }
        };
        if let Some(u) = &raw.database_url
            && !(u.starts_with("postgres://") || u.starts_with("postgresql://"))
        {
            bail!("database_url must be a postgres:// URL (leave it out for the embedded SQLite)");
        }
        let telemetry = gatehouse_telemetry::TelemetryConfig::from_settings(
            raw.metrics_path.as_deref(),
            raw.access_log.as_deref(),
        )
        .map_err(anyhow::Error::msg)?;
        let mut analytics = gatehouse_gateway::analytics::AnalyticsSettings::default();
        analytics.enabled = raw.analytics.unwrap_or(analytics.enabled);
        analytics.flush_interval = secs(
            raw.analytics_flush_interval,
            analytics.flush_interval.as_secs(),
            "analytics_flush_interval",
        )?;
        match raw.analytics_retention_days {
            Some(0) => {
                bail!("analytics_retention_days must be at least 1 (or set analytics = false)")
            }
            Some(d) if d > 36_500 => {
                bail!("analytics_retention_days must be at most 36500, not {d}")
            }
            Some(d) => analytics.retention_days = d,
            None => {}
        }
        if raw.worker_threads == Some(0) {
            bail!("worker_threads must be at least 1");
        }
        let min_version: MinTlsVersion = raw
            .tls_min_version
            .as_deref()
            .unwrap_or("1.2")
            .parse()
            .map_err(anyhow::Error::msg)?;
        let tls = pair(
            raw.tls_cert_file,
            raw.tls_key_file,
            ("tls_cert_file", "tls_key_file"),
        )?
        .map(|files| TlsSettings {
            files,
            min_version,
            reload_interval: match raw.tls_reload_interval_secs.unwrap_or(10) {
                0 => None,
                n => Some(Duration::from_secs(n)),
            },
        });
        let upstream_client_cert = pair(
            raw.upstream_client_cert_file,
            raw.upstream_client_key_file,
            ("upstream_client_cert_file", "upstream_client_key_file"),
        )?;
        Ok(Config {
            take_over: false,
            node_tags,
            match_options: gatehouse_domain::pathmatch::MatchOptions {
                prefix: raw.enable_path_prefix_matching.unwrap_or(false),
                suffix: raw.enable_path_suffix_matching.unwrap_or(false),
                ignore_case: raw.ignore_endpoint_case.unwrap_or(false),
            },
            jwks,
            jwt_token_cache_size: raw.jwt_token_cache_size.unwrap_or(DEFAULT_TOKEN_CACHE_SIZE),
            worker_threads: raw.worker_threads,
            database_url: raw.database_url,
            admin_key: None,
            initial_admin: None,
            counters,
            oauth_redirect_uri_separator: raw
                .oauth_redirect_uri_separator
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| ";".to_owned()),
            data_dir: raw
                .data_dir
                .unwrap_or_else(|| PathBuf::from("gatehouse-data")),
            gateway_listen: raw.gateway_listen.unwrap_or(([0, 0, 0, 0], 8080).into()),
            dashboard_listen: raw.dashboard_listen.unwrap_or(([0, 0, 0, 0], 3000).into()),
            portal_listen: raw.portal_listen.unwrap_or(([0, 0, 0, 0], 3001).into()),
            gateway,
            config_poll_interval: Duration::from_millis(
                raw.config_poll_interval_ms.unwrap_or(500).max(50),
            ),
            log_format,
            log_level: raw.log_level.unwrap_or_else(|| "info".to_owned()),
            telemetry,
            analytics,
            tls,
            upstream_ca_file: raw.upstream_ca_file.filter(|p| !p.as_os_str().is_empty()),
            upstream_client_cert,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> RawConfig {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        RawConfig::from_env(|k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).unwrap()
    }

    #[test]
    fn flags_beat_file_beat_env_beat_defaults() {
        let flags = RawConfig {
            gateway_listen: Some("127.0.0.1:1".parse().unwrap()),
            ..Default::default()
        };
        let file: RawConfig =
            toml::from_str("gateway_listen = \"127.0.0.1:2\"\ndashboard_listen = \"127.0.0.1:3\"")
                .unwrap();
        let env = env(&[
            ("GATEHOUSE_GATEWAY_LISTEN", "127.0.0.1:4"),
            ("GATEHOUSE_DASHBOARD_LISTEN", "127.0.0.1:5"),
            ("GATEHOUSE_PORTAL_LISTEN", "127.0.0.1:6"),
        ]);
        let c = Config::resolve(flags, Some(file), env).unwrap();
        assert_eq!(c.gateway_listen.port(), 1);
        assert_eq!(c.dashboard_listen.port(), 3);
        assert_eq!(c.portal_listen.port(), 6);
        assert_eq!(c.data_dir, PathBuf::from("gatehouse-data"));
        assert_eq!(c.gateway.upstream_response_timeout, Duration::from_secs(30));
    }

    #[test]
    fn metrics_path_and_access_log() {
        let c = Config::resolve(RawConfig::default(), None, RawConfig::default()).unwrap();
        // Off on the public gateway listener unless asked for.
        assert_eq!(c.telemetry.metrics_path, None);
        assert_eq!(
            c.telemetry.access_log,
            gatehouse_telemetry::AccessLogTarget::Off
        );
        let e = env(&[
            ("GATEHOUSE_METRICS_PATH", "off"),
            ("GATEHOUSE_ACCESS_LOG", "/var/log/gatehouse/access.log"),
        ]);
        let c = Config::resolve(RawConfig::default(), None, e).unwrap();
        assert_eq!(c.telemetry.metrics_path, None);
        assert_eq!(
            c.telemetry.access_log,
            gatehouse_telemetry::AccessLogTarget::File("/var/log/gatehouse/access.log".into())
        );
        let bad = RawConfig {
            metrics_path: Some("metrics".into()),
            ..Default::default()
        };
        let e = Config::resolve(bad, None, RawConfig::default()).unwrap_err();
        assert!(e.to_string().contains("metrics_path"), "{e}");
    }

    #[test]
    fn analytics_settings() {
        let c = Config::resolve(RawConfig::default(), None, RawConfig::default()).unwrap();
        assert!(c.analytics.enabled);
        assert_eq!(c.analytics.flush_interval, Duration::from_secs(10));
        assert_eq!(c.analytics.retention_days, 30);
        let e = env(&[
            ("GATEHOUSE_ANALYTICS", "false"),
            ("GATEHOUSE_ANALYTICS_FLUSH_INTERVAL", "2"),
            ("GATEHOUSE_ANALYTICS_RETENTION_DAYS", "7"),
        ]);
        let file: RawConfig =
            toml::from_str("analytics = true\nanalytics_retention_days = 90").unwrap();
        let flags = RawConfig {
            analytics_flush_interval: Some(1),
            ..Default::default()
        };
        let c = Config::resolve(flags, Some(file), e.clone()).unwrap();
        assert!(c.analytics.enabled, "the file beats the environment");
        assert_eq!(c.analytics.flush_interval, Duration::from_secs(1));
        assert_eq!(c.analytics.retention_days, 90);
        let c = Config::resolve(RawConfig::default(), None, e).unwrap();
        assert!(!c.analytics.enabled);
        assert_eq!(c.analytics.flush_interval, Duration::from_secs(2));
        assert_eq!(c.analytics.retention_days, 7);
        for (raw, name) in [
            (
                RawConfig {
                    analytics_retention_days: Some(0),
                    ..Default::default()
                },
                "analytics_retention_days",
            ),
            (
                RawConfig {
                    analytics_flush_interval: Some(0),
                    ..Default::default()
                },
                "analytics_flush_interval",
            ),
        ] {
            let e = Config::resolve(raw, None, RawConfig::default()).unwrap_err();
            assert!(e.to_string().contains(name), "{e}");
        }
        let e = RawConfig::from_env(|k| (k == "GATEHOUSE_ANALYTICS").then(|| "yes".to_owned()))
            .unwrap_err();
        assert!(e.to_string().contains("GATEHOUSE_ANALYTICS='yes'"), "{e}");
    }

    #[test]
    fn tls_settings() {
        let c = Config::resolve(RawConfig::default(), None, RawConfig::default()).unwrap();
        assert_eq!(c.tls, None);
        assert_eq!(c.upstream_ca_file, None);
        assert_eq!(c.upstream_client_cert, None);

        let file: RawConfig = toml::from_str(
            "tls_cert_file = \"/etc/gh/cert.pem\"\ntls_key_file = \"/etc/gh/key.pem\"\n\
             tls_min_version = \"1.3\"\nupstream_ca_file = \"/etc/gh/ca.pem\"",
        )
        .unwrap();
        let e = env(&[
            ("GATEHOUSE_TLS_RELOAD_INTERVAL_SECS", "0"),
            ("GATEHOUSE_TLS_MIN_VERSION", "1.2"),
            ("GATEHOUSE_UPSTREAM_CLIENT_CERT_FILE", "/c.pem"),
            ("GATEHOUSE_UPSTREAM_CLIENT_KEY_FILE", "/k.pem"),
        ]);
        let c = Config::resolve(RawConfig::default(), Some(file), e).unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.files.cert, PathBuf::from("/etc/gh/cert.pem"));
        assert_eq!(tls.files.key, PathBuf::from("/etc/gh/key.pem"));
        assert_eq!(
            tls.min_version,
            MinTlsVersion::Tls13,
            "the file beats the environment"
        );
        assert_eq!(tls.reload_interval, None);
        assert_eq!(c.upstream_ca_file, Some(PathBuf::from("/etc/gh/ca.pem")));
        let client = c.upstream_client_cert.unwrap();
        assert_eq!(client.cert, PathBuf::from("/c.pem"));
        assert_eq!(client.key, PathBuf::from("/k.pem"));

        let flags = RawConfig {
            tls_cert_file: Some("/a.pem".into()),
            tls_key_file: Some("/b.pem".into()),
            ..Default::default()
        };
        let c = Config::resolve(flags, None, RawConfig::default()).unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.min_version, MinTlsVersion::Tls12);
        assert_eq!(tls.reload_interval, Some(Duration::from_secs(10)));

        let half = RawConfig {
            tls_cert_file: Some("/a.pem".into()),
            ..Default::default()
        };
        let e = Config::resolve(half, None, RawConfig::default()).unwrap_err();
        assert!(e.to_string().contains("tls_key_file"), "{e}");
        let half = env(&[("GATEHOUSE_UPSTREAM_CLIENT_KEY_FILE", "/k.pem")]);
        let e = Config::resolve(RawConfig::default(), None, half).unwrap_err();
        assert!(e.to_string().contains("upstream_client_cert_file"), "{e}");
        let bad = RawConfig {
            tls_min_version: Some("1.1".into()),
            ..Default::default()
        };
        let e = Config::resolve(bad, None, RawConfig::default()).unwrap_err();
        assert!(e.to_string().contains("tls_min_version"), "{e}");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let e =
            RawConfig::from_env(|k| (k == "GATEHOUSE_GATEWAY_LISTEN").then(|| "nope".to_owned()))
                .unwrap_err();
        assert!(
            e.to_string().contains("GATEHOUSE_GATEWAY_LISTEN='nope'"),
            "{e}"
        );
        let e = toml::from_str::<RawConfig>("gateway_lisen = \"x\"").unwrap_err();
        assert!(e.to_string().contains("gateway_lisen"), "{e}");
        let raw = RawConfig {
            log_format: Some("xml".into()),
            ..Default::default()
        };
        assert!(Config::resolve(raw, None, RawConfig::default()).is_err());
    }
}
