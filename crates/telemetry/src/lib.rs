//! Gatehouse's telemetry: Prometheus metrics, the JSON access log and request ids.
//!
//! # Using it
//! - Build one [`Telemetry`] per process with [`Telemetry::builder`], registering the scrape-time
//!   sources (the JWKS cache, the Redis limiter's failover statistics) and the access log target.
//! - The gateway calls [`Telemetry::begin`] for every request, fills the [`Exchange`] in as it
//!   goes and wraps the response with [`Exchange::finish`]; bodies are counted as they stream.
//! - `/metrics` is answered by [`Telemetry::metrics_response`] (the gateway answers it before
//!   routing, at [`TelemetryConfig::metrics_path`]; the dashboard can mount it too).
//!
//! # Why `prometheus-client`
//! An explicit [`Registry`] (no global recorder: tests and several gateways in one process do not
//! share counters), the Prometheus 0.0.4 text encoder, and [`Collector`]s that read sources such
//! as the JWKS cache at scrape time. Its own `Family` and `Histogram` are not used on the request
//! path: a family lookup needs an owned label set (the API id copied per request) and its
//! histogram takes a mutex per observation. The request metrics live instead in
//! [`series::SeriesTable`]: one lock-free map read per request, then relaxed atomic additions;
//! the registry only encodes them.
//!
//! # Metrics
//!
//! Label values: `api` is the API id (`""` when no API matched the path, `_other` beyond
//! 10,000 APIs); `status_class` is `1xx`..`5xx`; `auth` is one of [`outcome::AuthOutcome`]
//! (`none`, `keyless`, `ok`, `missing_token`, `invalid_token`, `expired`, `forbidden`,
//! `rate_limited`, `quota_exceeded`, `idp_unavailable`, `limits_unavailable`, `unsupported`,
//! `misconfigured`); `limit` is `api_rate`, `rate` or `quota`; `source` is `downstream`,
//! `upstream`, `dependency` or `internal`; `url` is a JWKS URL without user info, query or
//! fragment; `limiter` is `sessions`. Requests to `/hello` and `/metrics` are not counted.
//! Latency buckets (seconds): 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
//! 2.5, 5, 10, 30, 60.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `gatehouse_requests_total` | counter | api, status_class, auth | Requests answered by the gateway. |
//! | `gatehouse_request_duration_seconds` | histogram | api | Request headers received to the end of the response body. |
//! | `gatehouse_upstream_duration_seconds` | histogram | api | Request sent upstream to the upstream's response headers (or its failure). |
//! | `gatehouse_request_bytes_total` | counter | api | Request body bytes read from clients. |
//! | `gatehouse_response_bytes_total` | counter | api | Response body bytes sent to clients. |
//! | `gatehouse_limit_rejections_total` | counter | api, limit | Requests refused with 429 by a rate limit or quota. |
//! | `gatehouse_errors_total` | counter | api, source | Error answers made by the gateway itself. |
//! | `gatehouse_access_log_lines_total` | counter | | Access log lines written. |
//! | `gatehouse_access_log_dropped_total` | counter | reason | Access log lines lost (`queue_full`, `write_error`). |
//! | `gatehouse_jwks_fetches_total` | counter | url | JWKS fetch attempts. |
//! | `gatehouse_jwks_fetch_failures_total` | counter | url | JWKS fetch attempts that failed. |
//! | `gatehouse_jwks_unknown_kid_refetches_total` | counter | url | JWKS fetches caused by a token with an unknown kid. |
//! | `gatehouse_jwks_refetches_suppressed_total` | counter | url | On-demand fetches refused by the minimum refetch interval. |
//! | `gatehouse_jwks_key_set_changes_total` | counter | url | Fetches whose key set differed from the previous one. |
//! | `gatehouse_jwks_cache_age_seconds` | gauge | url | Seconds since the last successful fetch (absent without keys). |
//! | `gatehouse_jwks_keys` | gauge | url | Keys in the current key set. |
//! | `gatehouse_jwks_usable` | gauge | url | 1 when the keys can be used. |
//! | `gatehouse_jwks_stale` | gauge | url | 1 when the key set is past its lifetime. |
//! | `gatehouse_limiter_backend_errors_total` | counter | limiter | Redis calls that failed or timed out. |
//! | `gatehouse_limiter_fallbacks_total` | counter | limiter | Decisions made locally while Redis was down (mode `local`). |
//! | `gatehouse_limiter_unavailable_total` | counter | limiter | 503s while Redis was down (mode `closed`). |
//! | `gatehouse_limiter_recoveries_total` | counter | limiter | Times Redis answered again after failing. |
//! | `gatehouse_limiter_backend_up` | gauge | limiter | 1 while Redis is in use. |
//! | `gatehouse_analytics_dropped_total` | counter | | Requests left out of analytics because too many distinct keys waited for a flush. |
//! | `gatehouse_analytics_flush_failures_total` | counter | | Analytics flushes whose database write failed (the data is kept for the next one). |
//! | `gatehouse_analytics_pending_keys` | gauge | | Distinct analytics keys waiting for the next flush. |
//! | `gatehouse_build_info` | gauge | version | Always 1. |
//! | `gatehouse_start_time_seconds` | gauge | | Unix time the process's telemetry started. |
//!
//! The JWKS, limiter and analytics metrics are read from their sources when scraped, and appear only when
//! the process registered those sources. The names are defined once, in [`names`].
//!
//! # Exposure
//! The gateway listener is public, so it answers no metrics unless `metrics_path` is set (e.g.
//! `/metrics`, for a gateway the network keeps private); the dashboard listener always answers
//! `/metrics`. The metrics hold API ids and JWKS URLs, never identities or tokens.
//!
//! # Access log, analytics and request ids
//! See [`access_log`] (fields, queueing), [`analytics`] (per-minute aggregates) and
//! [`request_id`].

pub mod access_log;
pub mod analytics;
mod collect;
pub mod exchange;
pub mod names;
pub mod outcome;
pub mod request_id;
pub mod series;
pub mod sources;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::registry::Registry;

pub use access_log::{AccessLogTarget, ApiInfo};
pub use collect::url_label;
pub use exchange::{CountingBody, Exchange, ObservedBody};
pub use outcome::{AuthOutcome, ErrorSource, LimitKind, StatusClass};
pub use request_id::X_REQUEST_ID;
pub use sources::{JwksUrlReport, LimiterReport};

use access_log::{AccessLog, LogCounters};
pub use analytics::AnalyticsRecorder;
use series::SeriesTable;

/// The `Content-Type` of `/metrics` (the Prometheus text format, version 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The default metrics path on the gateway listener.
pub const DEFAULT_METRICS_PATH: &str = "/metrics";

/// Telemetry settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// Where the gateway listener answers metrics (before routing, like `/hello`); `None`: not on
    /// the gateway listener. Default `/metrics`.
    pub metrics_path: Option<String>,
    /// Where access log lines go. Default off.
    pub access_log: AccessLogTarget,
    /// Lines that may wait for the access log writer before new ones are dropped. Default 8192.
    pub access_log_queue: usize,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            metrics_path: Some(DEFAULT_METRICS_PATH.to_owned()),
            access_log: AccessLogTarget::Off,
            access_log_queue: access_log::DEFAULT_QUEUE,
        }
    }
}

impl TelemetryConfig {
    /// From the `metrics_path` and `access_log` settings (`None`: the default).
    ///
    /// `metrics_path`: an absolute path such as `/metrics`, or `off`. `access_log`: `off`,
    /// `stdout`, `stderr` or a file path.
    pub fn from_settings(
        metrics_path: Option<&str>,
        access_log: Option<&str>,
    ) -> Result<Self, String> {
        let metrics_path = match metrics_path.map(str::trim) {
            // Off by default on the gateway listener, which is public: metrics name every API
            // and its traffic. The dashboard listener always answers /metrics.
            None | Some("off") => None,
            Some(p)
                if p.starts_with('/')
                    && p.len() <= 256
                    && p.bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#') =>
            {
                Some(p.to_owned())
            }
            Some(p) => {
                return Err(format!(
                    "metrics_path must be an absolute path such as /metrics, or off; not '{p}'"
                ));
            }
        };
        let access_log = match access_log {
            None => AccessLogTarget::Off,
            Some(s) => s.parse()?,
        };
        Ok(Self {
            metrics_path,
            access_log,
            ..Self::default()
        })
    }
}

/// Metrics registry, per-API series and the access log of one process.
pub struct Telemetry {
    registry: Registry,
    pub(crate) series: Arc<SeriesTable>,
    pub(crate) log: Option<AccessLog>,
    pub(crate) analytics: Option<Arc<AnalyticsRecorder>>,
    metrics_path: Option<Box<str>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("metrics_path", &self.metrics_path)
            .field("access_log", &self.log.is_some())
            .field("analytics", &self.analytics.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Telemetry`].
pub struct TelemetryBuilder {
    cfg: TelemetryConfig,
    jwks: Option<collect::JwksSource>,
    failover: Vec<(&'static str, collect::FailoverSource)>,
    analytics: Option<Arc<AnalyticsRecorder>>,
    extra: Vec<Box<dyn Collector>>,
}

impl TelemetryBuilder {
    /// Exposes JWKS statistics, one report per URL, read from `stats` at each scrape.
    pub fn jwks_stats(
        mut self,
        stats: impl Fn() -> Vec<JwksUrlReport> + Send + Sync + 'static,
    ) -> Self {
        self.jwks = Some(Box::new(stats));
        self
    }

    /// Exposes a failover limiter's statistics under `limiter="<name>"` (read at scrape time).
    pub fn failover(
        mut self,
        name: &'static str,
        stats: impl Fn() -> LimiterReport + Send + Sync + 'static,
    ) -> Self {
        self.failover.push((name, Box::new(stats)));
        self
    }

    /// Records per-minute analytics of every completed request into `recorder` (drained by the
    /// process's flusher) and exposes its statistics.
    pub fn analytics(mut self, recorder: Arc<AnalyticsRecorder>) -> Self {
        self.analytics = Some(recorder);
        self
    }

    /// Adds another scrape-time collector (its metric names belong in [`names`]).
    pub fn collector(mut self, c: Box<dyn Collector>) -> Self {
        self.extra.push(c);
        self
    }

    /// Opens the access log (starting its writer thread) and assembles the registry.
    pub fn build(self) -> std::io::Result<Arc<Telemetry>> {
        let counters = Arc::new(LogCounters::default());
        let log = AccessLog::start(
            &self.cfg.access_log,
            self.cfg.access_log_queue,
            Arc::clone(&counters),
        )?;
        let series = Arc::new(SeriesTable::default());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(collect::RequestsCollector(Arc::clone(&series))));
        registry.register_collector(Box::new(collect::LogCollector(counters)));
        if let Some(j) = self.jwks {
            registry.register_collector(Box::new(collect::JwksCollector(j)));
        }
        if !self.failover.is_empty() {
            registry.register_collector(Box::new(collect::FailoverCollector(self.failover)));
        }
        if let Some(a) = &self.analytics {
            registry.register_collector(Box::new(collect::AnalyticsCollector(Arc::clone(a))));
        }
        let started_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64().floor());
        registry.register_collector(Box::new(collect::ProcessCollector { started_unix }));
        for c in self.extra {
            registry.register_collector(c);
        }
        Ok(Arc::new(Telemetry {
            registry,
            series,
            log,
            analytics: self.analytics,
            metrics_path: self.cfg.metrics_path.map(String::into_boxed_str),
        }))
    }
}

impl Telemetry {
    /// A builder with these settings.
    pub fn builder(cfg: TelemetryConfig) -> TelemetryBuilder {
        TelemetryBuilder {
            cfg,
            jwks: None,
            failover: Vec::new(),
            analytics: None,
            extra: Vec::new(),
        }
    }

    /// Request metrics at `/metrics`, no access log, no scrape-time sources.
    pub fn metrics_only() -> Arc<Telemetry> {
        Self::builder(TelemetryConfig::default())
            .build()
            .expect("without an access log there is nothing to open")
    }

    /// The path the gateway listener answers metrics on, if any.
    pub fn metrics_path(&self) -> Option<&str> {
        self.metrics_path.as_deref()
    }

    /// Whether access log lines are written.
    pub fn access_log_enabled(&self) -> bool {
        self.log.is_some()
    }

    /// The analytics recorder, when analytics are on.
    pub fn analytics_recorder(&self) -> Option<&Arc<AnalyticsRecorder>> {
        self.analytics.as_ref()
    }

    /// The per-API request series (for tests and the admin API).
    pub fn series(&self) -> &SeriesTable {
        &self.series
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail; a collector error would leave a partial page.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        out
    }

    /// The `/metrics` answer: 200 with [`Self::render`] and [`METRICS_CONTENT_TYPE`]. Mount it on
    /// any listener (axum accepts an `http::Response<String>` as is).
    pub fn metrics_response(&self) -> http::Response<String> {
        let mut r = http::Response::new(self.render());
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(METRICS_CONTENT_TYPE),
        );
        r.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        r
    }

    /// Waits (at most `timeout`) until queued access log lines are written; call it at shutdown.
    /// `true` when everything was flushed (or there is no access log).
    pub fn flush_access_log(&self, timeout: Duration) -> bool {
        self.log.as_ref().is_none_or(|l| l.flush(timeout))
    }
}

#[cfg(test)]
mod tests;
