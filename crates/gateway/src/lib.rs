//! The data plane: accepts client requests, finds the API by listen path, authenticates and
//! authorises them, and proxies them to the API's upstream with bodies streamed both ways.
//!
//! # Layout
//! - [`accept`]: the one accept loop of every listener (gateway, dashboard, portal; plain or TLS,
//!   HTTP/1.1 + HTTP/2) with the graceful stop order, and `SO_REUSEPORT` binding for upgrades.
//! - [`server`]: what only the gateway listener does: its connection limit, head and body limits
//!   ([`server::serve`]).
//! - [`tls`]: rustls configuration only: certificates from PEM files reloaded without a restart,
//!   the listeners' TLS policy, the upstream client's roots and client certificate.
//! - [`snapshot`]: [`snapshot::Snapshot`], the immutable routing table and per-API runtime built
//!   from the store; [`Gateway`] holds the current one in an `ArcSwap` and swaps it atomically on
//!   every configuration change, so in-flight requests finish on the snapshot they started with.
//! - [`pipeline`]: the [`Gateway`] and the order of the request phases (head checks → path
//!   normalisation → route → version → API rate limit → authenticate → authorise → session limits
//!   → request transforms → upstream → response transforms → log), over one
//!   [`context::RequestCtx`]; [`phases`] holds the synchronous phases, each tested on its own.
//! - [`upstream`]: the pooled keep-alive upstream client (HTTP/1.1, http and https with system
//!   roots) and header rewriting (hop-by-hop removal, `X-Forwarded-*`).
//! - [`limited`]: request body size limits (413).
//! - [`errors`]: JSON error answers (`{"error": "..."}`) with their statuses.
//! - [`watch`]: [`watch::ConfigWatcher`], which reloads the snapshot when the store's configuration
//!   version changes (notified in-process, and polled as a safety net).

pub mod accept;
pub mod analytics;
pub mod auth;
pub mod context;
pub mod errors;
pub mod limited;
pub mod limits;
pub mod phases;
pub mod pipeline;
pub mod reports;
pub mod server;
pub mod snapshot;
pub mod tls;
pub mod upstream;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

pub use pipeline::Gateway;
pub use snapshot::Snapshot;

/// Default [`GatewayConfig::max_header_bytes`]: 32 KiB, like nginx's default header buffers.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
/// Default [`GatewayConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

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
    /// Largest request body in bytes when the API sets no `global_size_limit`; `None`: no limit.
    pub max_request_body: Option<u64>,
    /// Largest request head (request line and headers) in bytes; 431 above it.
    pub max_header_bytes: usize,
    /// Client connections served at once; more are answered 503 and closed (load shedding).
    pub max_connections: usize,
    /// TLS to upstreams (extra CA, client certificate); `None`: system roots, no client
    /// certificate. Built by [`tls::upstream_client_config`].
    pub upstream_tls: Option<Arc<rustls::ClientConfig>>,
    /// How request paths are normalised before routing.
    pub path_policy: gatehouse_domain::path::PathPolicy,
    /// The statuses of authentication and quota errors.
    pub status_mode: StatusMode,
}

/// The statuses the gateway answers authentication and quota errors with. The messages are Tyk's
/// in both modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusMode {
    /// Standards-correct (RFC 6750, RFC 6585): no or a bad token → 401 with `WWW-Authenticate`;
    /// an exhausted quota → 429 with `Retry-After`.
    #[default]
    Standard,
    /// Exactly Tyk's: no token → 400; a malformed, badly signed or unverifiable token → 403; a
    /// time-claim failure → 401; an exhausted quota → 403. For clients written against Tyk.
    Tyk,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_response_timeout: Duration::from_secs(30),
            client_header_timeout: Duration::from_secs(30),
            upstream_idle_timeout: Duration::from_secs(90),
            upstream_max_idle_per_host: 256,
            max_request_body: None,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            upstream_tls: None,
            path_policy: gatehouse_domain::path::PathPolicy::default(),
            status_mode: StatusMode::Standard,
        }
    }
}

/// The current snapshot, shared by the request path (reads) and the watcher (swaps).
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;
