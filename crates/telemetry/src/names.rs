//! Every metric Gatehouse exposes, in one place: name, type, labels and help text.
//!
//! The exposition code only ever refers to these definitions, and a test checks that the table in
//! the crate documentation lists exactly these metrics, so the documentation cannot drift.
//!
//! Counters are given to the encoder without the `_total` suffix, which the Prometheus text
//! encoder appends; [`MetricDef::exposed`] is the name a scrape shows.

/// The Prometheus type of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets when the process restarts).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Cumulative buckets with `_bucket`, `_sum` and `_count` series.
    Histogram,
}

impl Kind {
    /// `counter`, `gauge` or `histogram`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    /// The name given to the encoder (counters without `_total`).
    pub name: &'static str,
    /// The name in a scrape (counters with `_total`).
    pub exposed: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Its labels, in order.
    pub labels: &'static [&'static str],
    /// The `# HELP` text.
    pub help: &'static str,
}

macro_rules! metric {
    ($(#[$doc:meta])* $id:ident, $name:literal, counter, [$($l:literal),*], $help:literal) => {
        $(#[$doc])*
        pub const $id: MetricDef = MetricDef {
            name: $name,
            exposed: concat!($name, "_total"),
            kind: Kind::Counter,
            labels: &[$($l),*],
            help: $help,
        };
    };
    ($(#[$doc:meta])* $id:ident, $name:literal, $kind:ident, [$($l:literal),*], $help:literal) => {
        $(#[$doc])*
        pub const $id: MetricDef = MetricDef {
            name: $name,
            exposed: $name,
            kind: metric!(@kind $kind),
            labels: &[$($l),*],
            help: $help,
        };
    };
    (@kind gauge) => { Kind::Gauge };
    (@kind histogram) => { Kind::Histogram };
}

// Requests through the gateway (one per proxied or refused request; /hello and /metrics are not
// counted).
metric!(
    /// Requests by API, status class and authentication outcome.
    REQUESTS, "gatehouse_requests", counter, ["api", "status_class", "auth"],
    "Requests answered by the gateway, by API id (empty: no API matched), status class and authentication outcome."
);
metric!(
    /// Total latency.
    REQUEST_DURATION, "gatehouse_request_duration_seconds", histogram, ["api"],
    "Time from the request's headers to the end of the response body, by API."
);
metric!(
    /// Upstream latency.
    UPSTREAM_DURATION, "gatehouse_upstream_duration_seconds", histogram, ["api"],
    "Time from sending the request upstream to the upstream's response headers (or its failure), by API."
);
metric!(
    /// Request body bytes.
    REQUEST_BYTES, "gatehouse_request_bytes", counter, ["api"],
    "Request body bytes read from clients, by API."
);
metric!(
    /// Response body bytes.
    RESPONSE_BYTES, "gatehouse_response_bytes", counter, ["api"],
    "Response body bytes sent to clients, by API."
);
metric!(
    /// Rate-limit and quota rejections.
    LIMIT_REJECTIONS, "gatehouse_limit_rejections", counter, ["api", "limit"],
    "Requests refused with 429, by API and limit (api_rate: the API's global_rate_limit; rate: the session's rate limit; quota: the session's quota)."
);
metric!(
    /// Error answers made by the gateway.
    ERRORS, "gatehouse_errors", counter, ["api", "source"],
    "Error answers made by the gateway itself, by API and source (downstream: the client's request; upstream: 502/504; dependency: IdP or limiter backend; internal)."
);

// The access log.
metric!(
    /// Access log lines written.
    ACCESS_LOG_LINES, "gatehouse_access_log_lines", counter, [],
    "Access log lines written."
);
metric!(
    /// Access log lines lost.
    ACCESS_LOG_DROPPED, "gatehouse_access_log_dropped", counter, ["reason"],
    "Access log lines lost, by reason (queue_full: the writer fell behind; write_error: the output failed)."
);

// JWKS cache (read from the cache at scrape time).
metric!(
    /// JWKS fetch attempts.
    JWKS_FETCHES, "gatehouse_jwks_fetches", counter, ["url"],
    "JWKS fetch attempts (any reason), by JWKS URL (query and user info removed)."
);
metric!(
    /// JWKS fetch failures.
    JWKS_FETCH_FAILURES, "gatehouse_jwks_fetch_failures", counter, ["url"],
    "JWKS fetch attempts that failed, by JWKS URL."
);
metric!(
    /// Refetches on unknown kid.
    JWKS_UNKNOWN_KID_REFETCHES, "gatehouse_jwks_unknown_kid_refetches", counter, ["url"],
    "JWKS fetches caused by a token with an unknown kid, by JWKS URL."
);
metric!(
    /// Refetches refused by the minimum interval.
    JWKS_REFETCHES_SUPPRESSED, "gatehouse_jwks_refetches_suppressed", counter, ["url"],
    "On-demand JWKS fetches refused by the minimum refetch interval, by JWKS URL."
);
metric!(
    /// Key set changes.
    JWKS_KEY_SET_CHANGES, "gatehouse_jwks_key_set_changes", counter, ["url"],
    "JWKS fetches whose key set differed from the previous one, by JWKS URL."
);
metric!(
    /// Cache age.
    JWKS_CACHE_AGE, "gatehouse_jwks_cache_age_seconds", gauge, ["url"],
    "Seconds since the last successful JWKS fetch, by JWKS URL (absent while there is no key set)."
);
metric!(
    /// Keys held.
    JWKS_KEYS, "gatehouse_jwks_keys", gauge, ["url"],
    "Keys in the current key set, by JWKS URL."
);
metric!(
    /// Whether keys can be used.
    JWKS_USABLE, "gatehouse_jwks_usable", gauge, ["url"],
    "1 when the URL's keys can be used (present, within their lifetime plus the stale limit), else 0."
);
metric!(
    /// Whether keys are past their lifetime.
    JWKS_STALE, "gatehouse_jwks_stale", gauge, ["url"],
    "1 when the URL's key set is past its lifetime (a refresh is due or failing), else 0."
);

// Shared (Redis) limiter failover (read from the limiter at scrape time).
metric!(
    /// Backend failures.
    LIMITER_BACKEND_ERRORS, "gatehouse_limiter_backend_errors", counter, ["limiter"],
    "Calls to the shared limiter backend (Redis) that failed or timed out."
);
metric!(
    /// Local fallbacks.
    LIMITER_FALLBACKS, "gatehouse_limiter_fallbacks", counter, ["limiter"],
    "Limit decisions made by this node's local counters because the shared backend was down (failure mode local)."
);
metric!(
    /// 503s for want of the backend.
    LIMITER_UNAVAILABLE, "gatehouse_limiter_unavailable", counter, ["limiter"],
    "Requests refused with 503 because the shared backend was down (failure mode closed)."
);
metric!(
    /// Backend recoveries.
    LIMITER_RECOVERIES, "gatehouse_limiter_recoveries", counter, ["limiter"],
    "Times the shared limiter backend answered again after failing."
);
metric!(
    /// Backend in use.
    LIMITER_BACKEND_UP, "gatehouse_limiter_backend_up", gauge, ["limiter"],
    "1 while the shared limiter backend is in use, 0 from a failure until a retry succeeds."
);

// Analytics (read from the recorder at scrape time).
metric!(
    /// Requests left out of analytics.
    ANALYTICS_DROPPED, "gatehouse_analytics_dropped", counter, [],
    "Requests left out of analytics because too many distinct keys (API, developer, client, status class, minute) waited for a flush."
);
metric!(
    /// Failed analytics flushes.
    ANALYTICS_FLUSH_FAILURES, "gatehouse_analytics_flush_failures", counter, [],
    "Analytics flushes whose database write failed; their data is kept for the next flush."
);
metric!(
    /// Keys waiting for a flush.
    ANALYTICS_PENDING_KEYS, "gatehouse_analytics_pending_keys", gauge, [],
    "Distinct analytics keys waiting for the next flush."
);

// The process.
metric!(
    /// Build information.
    BUILD_INFO, "gatehouse_build_info", gauge, ["version"],
    "Always 1; the version label says which Gatehouse this is."
);
metric!(
    /// Start time.
    START_TIME, "gatehouse_start_time_seconds", gauge, [],
    "Unix time at which this process's telemetry started."
);

/// Every metric, in exposition order.
pub const ALL: &[MetricDef] = &[
    REQUESTS,
    REQUEST_DURATION,
    UPSTREAM_DURATION,
    REQUEST_BYTES,
    RESPONSE_BYTES,
    LIMIT_REJECTIONS,
    ERRORS,
    ACCESS_LOG_LINES,
    ACCESS_LOG_DROPPED,
    JWKS_FETCHES,
    JWKS_FETCH_FAILURES,
    JWKS_UNKNOWN_KID_REFETCHES,
    JWKS_REFETCHES_SUPPRESSED,
    JWKS_KEY_SET_CHANGES,
    JWKS_CACHE_AGE,
    JWKS_KEYS,
    JWKS_USABLE,
    JWKS_STALE,
    LIMITER_BACKEND_ERRORS,
    LIMITER_FALLBACKS,
    LIMITER_UNAVAILABLE,
    LIMITER_RECOVERIES,
    LIMITER_BACKEND_UP,
    ANALYTICS_DROPPED,
    ANALYTICS_FLUSH_FAILURES,
    ANALYTICS_PENDING_KEYS,
    BUILD_INFO,
    START_TIME,
];

/// Upper bounds (seconds) of the latency histograms' buckets: from half a millisecond (the
/// gateway's own overhead) to a minute (slow upstreams; the default upstream timeout is 30 s).
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_valid_and_prefixed() {
        let mut seen = std::collections::HashSet::new();
        for m in ALL {
            assert!(seen.insert(m.exposed), "{} twice", m.exposed);
            assert!(m.name.starts_with("gatehouse_"), "{}", m.name);
            assert!(
                m.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                m.name
            );
            match m.kind {
                Kind::Counter => {
                    assert!(!m.name.ends_with("_total"));
                    assert_eq!(m.exposed, format!("{}_total", m.name));
                }
                _ => assert_eq!(m.exposed, m.name),
            }
            assert!(!m.help.is_empty() && !m.help.contains('\n'));
        }
        assert!(LATENCY_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }
}
