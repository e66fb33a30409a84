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
use gatehouse_domain::versions::ApiVersion;

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
    /// The version the request names (header, parameter or path), as Tyk compares it with the
    /// policies' `versions`; `None` when it names none.
    pub requested_version: Option<String>,
    /// The version that serves it, for a versioned API; `None` for a non-versioned API (its one
    /// version serves every request).
    pub version: Option<String>,
    /// The path the endpoint rules match: the normalised path percent-decoded, as Tyk holds it;
    /// `None` when that is the request path itself (no `%` in it).
    pub rules_path: Option<String>,
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

    /// The version the request is served by (set by the version phase; for a non-versioned API
    /// its one version).
    pub fn version(&self) -> Option<&ApiVersion> {
        match &self.version {
            Some(name) => self.api.versions.get(name),
            None => self.api.versions.unversioned(),
        }
    }

    /// The path the endpoint rules, per-endpoint limits and size limits match (see
    /// [`RequestCtx::rules_path`]); `path` is the request's (normalised) path.
    pub fn rules_path<'a>(&'a self, path: &'a str) -> &'a str {
        self.rules_path.as_deref().unwrap_or(path)
    }

    /// Where the request goes: the version's `override_target`, else the API's target.
    pub fn target(&self) -> &Target {
        let name = match &self.version {
            Some(n) => Some(n.as_str()),
            None => self.api.versions.unversioned().map(ApiVersion::name),
        };
        name.and_then(|n| self.api.override_targets.get(n))
            .unwrap_or(&self.api.target)
    }
}
