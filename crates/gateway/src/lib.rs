//! The data plane: accepts client requests, finds the API by listen path, authenticates and
//! authorises them, and proxies them to the API's upstream with bodies streamed both ways.
//!
//! # Layout
//! - [`server`]: the HTTP/1.1 + HTTP/2 (h2c) listener ([`server::serve`]) with graceful shutdown.
//! - [`snapshot`]: [`snapshot::Snapshot`], the immutable routing table and per-API runtime built
//!   from the store; [`Gateway`] holds the current one in an `ArcSwap` and swaps it atomically on
//!   every configuration change, so in-flight requests finish on the snapshot they started with.
//! - [`pipeline`]: the request path, phase by phase (route → authenticate → authorise → limits →
//!   upstream request → response).
//! - [`upstream`]: the pooled keep-alive upstream client (HTTP/1.1, http and https with system
//!   roots) and header rewriting (hop-by-hop removal, `X-Forwarded-*`).
//! - [`errors`]: JSON error answers (`{"error": "..."}`) with their statuses.
//! - [`watch`]: [`watch::ConfigWatcher`], which reloads the snapshot when the store's configuration
//!   version changes (notified in-process, and polled as a safety net).

pub mod analytics;
pub mod auth;
pub mod errors;
pub mod limits;
pub mod pipeline;
pub mod server;
pub mod snapshot;
pub mod upstream;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

pub use pipeline::Gateway;
pub use snapshot::Snapshot;

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Time allowed to open a TCP (and TLS) connection to an upstream.
    pub upstream_connect_timeout: Duration,
    /// Time allowed for an upstream to start answering (status and headers); 504 after that.
    pub upstream_response_timeout: Duration,
    /// Time allowed for a client to send a request's headers.
    pub client_header_timeout: Duration,
    /// Idle keep-alive connections to upstreams are closed after this.
    pub upstream_idle_timeout: Duration,
    /// Maximum idle connections kept per upstream host.
    pub upstream_max_idle_per_host: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_response_timeout: Duration::from_secs(30),
            client_header_timeout: Duration::from_secs(30),
            upstream_idle_timeout: Duration::from_secs(90),
            upstream_max_idle_per_host: 256,
        }
    }
}

/// The current snapshot, shared by the request path (reads) and the watcher (swaps).
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;
