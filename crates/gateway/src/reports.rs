//! The statistics of the JWKS cache and the limiters, reported into telemetry at scrape time.
//! Telemetry depends on no other Gatehouse crate; this is where their numbers meet its reports.

use std::sync::Arc;

use gatehouse_jwt::{JwksCache, JwksStats};
use gatehouse_ratelimit::FailoverStats;
use gatehouse_telemetry::{JwksUrlReport, LimiterReport};

/// The JWKS cache's statistics as telemetry's per-URL reports.
pub fn jwks_reports(stats: &JwksStats) -> Vec<JwksUrlReport> {
    stats
        .urls
        .iter()
        .map(|u| JwksUrlReport {
            url: u.url.clone(),
            fetches: u.fetches,
            fetch_failures: u.fetch_failures,
            unknown_kid_refetches: u.unknown_kid_refetches,
            refetches_suppressed: u.refetches_suppressed,
            key_set_changes: u.key_set_changes,
            keys: u.keys,
            age: u.age,
            stale: u.stale,
            usable: u.usable,
        })
        .collect()
}

/// A scrape-time source for [`gatehouse_telemetry::TelemetryBuilder::jwks_stats`].
pub fn jwks_source(cache: Arc<JwksCache>) -> impl Fn() -> Vec<JwksUrlReport> + Send + Sync {
    move || jwks_reports(&cache.stats())
}

/// A failover limiter's statistics as telemetry's report.
pub fn limiter_report(s: &FailoverStats) -> LimiterReport {
    LimiterReport {
        backend_errors: s.backend_errors,
        fallbacks: s.fallbacks,
        unavailable: s.unavailable,
        recoveries: s.recoveries,
        backend_up: s.backend_up,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_figures_are_carried_over_one_for_one() {
        let s = FailoverStats {
            backend_errors: 4,
            fallbacks: 7,
            unavailable: 2,
            recoveries: 1,
            backend_up: true,
        };
        let r = limiter_report(&s);
        assert_eq!(
            (
                r.backend_errors,
                r.fallbacks,
                r.unavailable,
                r.recoveries,
                r.backend_up
            ),
            (4, 7, 2, 1, true)
        );
    }

    #[test]
    fn an_empty_cache_reports_no_urls() {
        assert!(jwks_reports(&JwksStats::default()).is_empty());
    }
}
