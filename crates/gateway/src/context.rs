//! The per-request context the phases of the request path share.
//!
//! One [`RequestCtx`] is made by the route phase and handed, by `&mut`, to every later phase;
//! each phase reads what earlier phases concluded and records its own conclusion, so no phase
//! needs a long argument list and the order of the phases is visible in one place
//! ([`crate::pipeline`]).

use std::net::SocketAddr;
use std::sync::Arc;

use gatehouse_ratelimit::Decision;

use crate::auth::AuthContext;
use crate::snapshot::{ApiRuntime, Snapshot, Target};

/// What the phases know about one request.
#[derive(Debug)]
pub struct RequestCtx {
    /// The configuration snapshot the request started with (kept to its end).
    pub snapshot: Arc<Snapshot>,
    /// The API the request was routed to.
    pub api: Arc<ApiRuntime>,
    /// Length of the matched listen path (its route key) at the start of the normalised path.
    pub prefix_len: usize,
    /// The client's address.
    pub remote: SocketAddr,
    /// Whether the client connection is TLS.
    pub tls: bool,
    /// Unix seconds when the request arrived (for expiry checks).
    pub now: i64,
    /// The version phase's choice: an index into [`ApiRuntime::versions`]; `None` for an API
    /// that is not versioned.
    pub version: Option<usize>,
    /// The version name the request resolved to (checked against the policies' versions).
    pub version_name: Option<String>,
    /// The endpoint rules said this path is `ignored`: no authentication, authorisation or
    /// session limits.
    pub skip_auth: bool,
    /// What authentication established (JWT APIs, paths not ignored).
    pub auth: Option<AuthContext>,
    /// The decision behind the `X-RateLimit-*` headers of the answer.
    pub limit_headers: Option<Decision>,
}

impl RequestCtx {
    /// The request path relative to the listen path (`/items/1` for `/shop/items/1` under
    /// `/shop/`; `/` when nothing follows), from the normalised path.
    pub fn rel_path<'a>(&self, path: &'a str) -> &'a str {
        match path.get(self.prefix_len.min(path.len())..) {
            None | Some("") => "/",
            Some(p) => p,
        }
    }

    /// The version the request is served by, when the API is versioned.
    pub fn version(&self) -> Option<&crate::snapshot::VersionRuntime> {
        self.version.and_then(|i| self.api.versions.get(i))
    }

    /// The version name for the access checks (`None` for an API that is not versioned).
    pub fn version_name(&self) -> Option<&str> {
        self.version_name.as_deref()
    }

    /// Where the request goes: the version's `override_target`, else the API's target.
    pub fn target(&self) -> &Target {
        self.version()
            .and_then(|v| v.override_target.as_ref())
            .unwrap_or(&self.api.target)
    }
}
