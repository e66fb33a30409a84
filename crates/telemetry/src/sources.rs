//! What other parts of the process report into telemetry at scrape time. Telemetry is the bottom
//! of the crate graph: it defines these plain reports and the crates that own the numbers (the
//! JWKS cache, the limiters) are converted into them where the process is wired
//! (`gatehouse_gateway::reports`), so this crate depends on no other Gatehouse crate.

use std::time::Duration;

/// One JWKS URL's statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwksUrlReport {
    /// The URL (reduced to a label without credentials by [`crate::url_label`] when exposed).
    pub url: String,
    /// Fetch attempts (any reason).
    pub fetches: u64,
    /// Fetch attempts that failed.
    pub fetch_failures: u64,
    /// Fetches caused by a token with an unknown `kid`.
    pub unknown_kid_refetches: u64,
    /// On-demand fetches refused by the minimum refetch interval.
    pub refetches_suppressed: u64,
    /// Fetches whose key set differed from the previous one.
    pub key_set_changes: u64,
    /// Keys in the current set.
    pub keys: usize,
    /// Time since the last successful fetch; `None` when there is no key set.
    pub age: Option<Duration>,
    /// Past its TTL (a refresh is due or failing).
    pub stale: bool,
    /// Keys can be used.
    pub usable: bool,
}

/// A limiter backend's failover statistics (Redis with a local or closed fallback).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimiterReport {
    /// Calls to the backend that failed.
    pub backend_errors: u64,
    /// Decisions made by the fallback while the backend was down.
    pub fallbacks: u64,
    /// Requests refused because no decision could be made (`closed` fallback).
    pub unavailable: u64,
    /// Times the backend came back.
    pub recoveries: u64,
    /// The backend answers now.
    pub backend_up: bool,
}
