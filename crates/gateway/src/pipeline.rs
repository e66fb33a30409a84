//! The request path.
//!
//! Phases, in order (each a small function over the request and the API's runtime):
//! 1. **route**: `/hello` is the health answer; otherwise the longest listen path wins, no match or
//!    an inactive API is 404;
//! 2. **authenticate**: keyless APIs pass; JWT APIs verify the token (see `auth`); APIs with an
//!    unsupported Tyk auth method are refused (401);
//! 3. **upstream request**: the path (listen path stripped when asked) joined onto the target,
//!    hop-by-hop headers dropped, `X-Forwarded-*` set, `Host` rewritten unless preserved, body
//!    streamed;
//! 4. **response**: hop-by-hop headers dropped, body streamed back; refused connection 502, no
//!    answer within the response timeout 504.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use gatehouse_domain::api::AuthMode;
use gatehouse_domain::routing::upstream_path;

use crate::errors::{ErrorSource, GatewayBody, GatewayError};
use crate::snapshot::ApiRuntime;
use crate::upstream::{self, UpstreamClient};
use crate::{GatewayConfig, SharedSnapshot};

/// The gateway: the current configuration snapshot plus the upstream client.
pub struct Gateway {
    snapshot: SharedSnapshot,
    client: UpstreamClient,
    cfg: GatewayConfig,
    started: Instant,
}

impl Gateway {
    /// A gateway serving whatever `snapshot` holds at each request.
    pub fn new(cfg: GatewayConfig, snapshot: SharedSnapshot) -> Arc<Self> {
        Arc::new(Self {
            client: upstream::build_client(&cfg),
            snapshot,
            cfg,
            started: Instant::now(),
        })
    }

    /// The shared snapshot (the watcher swaps it).
    pub fn snapshot(&self) -> &SharedSnapshot {
        &self.snapshot
    }

    /// Handles one client request. Never fails: every error becomes a JSON answer.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        remote: SocketAddr,
        tls: bool,
    ) -> Response<GatewayBody> {
        match self.handle_inner(req, remote, tls).await {
            Ok(resp) => resp,
            Err(e) => {
                if e.source != ErrorSource::Downstream {
                    tracing::warn!(status = e.status.as_u16(), error = %e.message, "request failed");
                }
                e.into_response()
            }
        }
    }

    async fn handle_inner(
        &self,
        req: Request<Incoming>,
        remote: SocketAddr,
        tls: bool,
    ) -> Result<Response<GatewayBody>, GatewayError> {
        if req.uri().path() == "/hello" {
            return Ok(self.hello());
        }
        let snapshot = self.snapshot.load_full();
        let (api, prefix_len) = {
            let m = snapshot
                .routes
                .lookup(req.uri().path())
                .ok_or_else(GatewayError::not_found)?;
            (Arc::clone(m.value), m.prefix.len())
        };
        authenticate(&api, &req)?;
        self.forward(req, &api, prefix_len, remote, tls).await
    }

    /// Sends the request upstream and streams the answer back.
    async fn forward(
        &self,
        req: Request<Incoming>,
        api: &ApiRuntime,
        prefix_len: usize,
        remote: SocketAddr,
        tls: bool,
    ) -> Result<Response<GatewayBody>, GatewayError> {
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path();
        let prefix = &path[..prefix_len.min(path.len())];
        let mut pq = upstream_path(
            &api.target.base_path,
            path,
            prefix,
            api.def.proxy.strip_listen_path,
        );
        if let Some(q) = parts.uri.query() {
            pq.push('?');
            pq.push_str(q);
        }
        let pq = PathAndQuery::try_from(pq).map_err(|_| {
            GatewayError::new(
                StatusCode::BAD_REQUEST,
                "the request path cannot be forwarded",
                ErrorSource::Downstream,
            )
        })?;
        let uri = Uri::builder()
            .scheme(api.target.scheme.clone())
            .authority(api.target.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| {
                GatewayError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot build the upstream URI: {e}"),
                    ErrorSource::Internal,
                )
            })?;

        // The client's host: the Host header (HTTP/1.1) or the :authority (HTTP/2).
        let client_host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let headers = &mut parts.headers;
        upstream::strip_hop_by_hop(headers);
        upstream::set_forwarded(
            headers,
            remote.ip(),
            if tls { "https" } else { "http" },
            client_host.clone(),
        );
        let host = if api.def.proxy.preserve_host_header {
            client_host.unwrap_or_else(|| api.target.host_header.clone())
        } else {
            api.target.host_header.clone()
        };
        headers.insert(header::HOST, host);

        let mut up = Request::from_parts(parts, body);
        *up.uri_mut() = uri;
        *up.version_mut() = Version::HTTP_11;

        let resp =
            match tokio::time::timeout(self.cfg.upstream_response_timeout, self.client.request(up))
                .await
            {
                Err(_) => return Err(GatewayError::gateway_timeout()),
                Ok(Err(e)) => {
                    let detail = if e.is_connect() {
                        "connection refused or unreachable"
                    } else {
                        "connection closed before an answer"
                    };
                    tracing::warn!(api_id = %api.def.api_id, error = ?e, "upstream request failed");
                    return Err(GatewayError::bad_gateway(detail));
                }
                Ok(Ok(r)) => r,
            };
        let (mut parts, body) = resp.into_parts();
        upstream::strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, Either::Left(body)))
    }

    /// Tyk's health answer.
    fn hello(&self) -> Response<GatewayBody> {
        let snap = self.snapshot.load();
        let body = serde_json::json!({
            "status": "pass",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Gatehouse gateway",
            "details": {
                "configuration": {
                    "status": "pass",
                    "componentType": "datastore",
                    "version": snap.version,
                    "apis": snap.routes.len(),
                },
                "uptime_seconds": self.started.elapsed().as_secs(),
            }
        });
        let mut resp = Response::new(Either::Right(Full::new(body.to_string().into())));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

/// The authentication phase.
fn authenticate(api: &ApiRuntime, _req: &Request<Incoming>) -> Result<(), GatewayError> {
    match api.def.auth_mode() {
        AuthMode::Keyless => Ok(()),
        AuthMode::Jwt => Err(GatewayError::new(
            StatusCode::UNAUTHORIZED,
            "Key not authorized",
            ErrorSource::Downstream,
        )),
        AuthMode::Unsupported => Err(GatewayError::new(
            StatusCode::UNAUTHORIZED,
            "this API uses an authentication method Gatehouse does not support",
            ErrorSource::Downstream,
        )),
    }
}
