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
//!
//! Telemetry runs alongside: the request id is taken from `X-Request-Id` or generated, forwarded
//! upstream and returned on every answer; each phase tells the request's
//! [`Exchange`](gatehouse_telemetry::Exchange) what it concluded (API, authentication outcome,
//! limit, error source, caller, upstream latency); both bodies are counted as they stream, and
//! the metrics and the access log line are recorded when the response body ends.
//! `/metrics` (the configured path) is answered before routing, like `/hello`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use gatehouse_domain::routing::upstream_path;
use gatehouse_domain::session::AuthzError;
use gatehouse_ratelimit::{Decision, HeaderSource, Limit, QuotaLimit, Verdict};
use gatehouse_telemetry::{
    self as telemetry, AuthOutcome, Exchange, LimitKind, ObservedBody, Telemetry, X_REQUEST_ID,
};

use crate::auth::{self, SessionStore};
use crate::errors::{ErrorSource, GatewayBody, GatewayError};
use crate::limited::LimitedBody;
use crate::limits::Limiters;
use crate::snapshot::{ApiAuth, ApiRuntime};
use crate::upstream::{self, UpstreamClient};
use crate::{GatewayConfig, SharedSnapshot};

/// The body of every answer as sent: the gateway's body, counted, completing the request's
/// telemetry when it ends.
pub type ResponseBody = ObservedBody<GatewayBody>;

impl telemetry::ApiInfo for ApiRuntime {
    fn api_id(&self) -> &str {
        &self.def.api_id
    }

    fn listen_path(&self) -> &str {
        &self.def.proxy.listen_path
    }
}

/// The gateway: the current configuration snapshot, the upstream client, the sessions, the
/// limiters and the telemetry.
pub struct Gateway {
    snapshot: SharedSnapshot,
    client: UpstreamClient,
    cfg: GatewayConfig,
    started: Instant,
    sessions: SessionStore,
    limiters: Limiters,
    telemetry: Arc<Telemetry>,
    connections: crate::server::ConnectionStats,
}

impl Gateway {
    /// A gateway serving whatever `snapshot` holds at each request, with metrics at `/metrics`
    /// and no access log.
    pub fn new(cfg: GatewayConfig, snapshot: SharedSnapshot, limiters: Limiters) -> Arc<Self> {
        Self::with_telemetry(cfg, snapshot, limiters, Telemetry::metrics_only())
    }

    /// A gateway reporting to `telemetry` (metrics path, access log, scrape-time sources).
    pub fn with_telemetry(
        cfg: GatewayConfig,
        snapshot: SharedSnapshot,
        limiters: Limiters,
        telemetry: Arc<Telemetry>,
    ) -> Arc<Self> {
        Arc::new(Self {
            client: upstream::build_client(&cfg),
            snapshot,
            cfg,
            started: Instant::now(),
            sessions: SessionStore::new(1_000_000),
            limiters,
            telemetry,
            connections: crate::server::ConnectionStats::default(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &GatewayConfig {
        &self.cfg
    }

    /// Client connections: open now, and refused by the connection limit.
    pub fn connections(&self) -> &crate::server::ConnectionStats {
        &self.connections
    }

    /// The telemetry (metrics, access log).
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// The limiters (the process flushes quota counters on shutdown).
    pub fn limiters(&self) -> &Limiters {
        &self.limiters
    }

    /// The shared snapshot (the watcher swaps it).
    pub fn snapshot(&self) -> &SharedSnapshot {
        &self.snapshot
    }

    /// Handles one client request. Never fails: every error becomes a JSON answer. Every answer
    /// carries the request's `X-Request-Id`.
    pub async fn handle(
        &self,
        mut req: Request<Incoming>,
        remote: SocketAddr,
        tls: bool,
    ) -> Response<ResponseBody> {
        let start = Instant::now();
        let request_id = telemetry::request_id::take_or_generate(req.headers_mut());
        let path = req.uri().path();
        let own = if path == "/hello" {
            Some(self.hello())
        } else if self.telemetry.metrics_path() == Some(path) {
            Some(
                self.telemetry
                    .metrics_response()
                    .map(|b| Either::Right(Full::from(b))),
            )
        } else {
            None
        };
        if let Some(mut resp) = own {
            resp.headers_mut().insert(X_REQUEST_ID, request_id);
            return resp.map(ObservedBody::unobserved);
        }
        let mut ex = self
            .telemetry
            .begin(start, req.method(), req.uri(), &request_id);
        let mut resp = match self.handle_inner(req, remote, tls, &mut ex).await {
            Ok(resp) => resp,
            Err(e) => {
                ex.set_error(error_source(e.source));
                if e.source != ErrorSource::Downstream {
                    tracing::warn!(
                        status = e.status.as_u16(),
                        error = %e.message,
                        request_id = %request_id.to_str().unwrap_or(""),
                        "request failed"
                    );
                }
                e.into_response()
            }
        };
        resp.headers_mut().insert(X_REQUEST_ID, request_id);
        ex.finish(resp)
    }

    async fn handle_inner(
        &self,
        mut req: Request<Incoming>,
        remote: SocketAddr,
        tls: bool,
        ex: &mut Exchange,
    ) -> Result<Response<GatewayBody>, GatewayError> {
        let snapshot = self.snapshot.load_full();
        let (api, prefix_len) = {
            let m = snapshot
                .routes
                .lookup(req.uri().path())
                .ok_or_else(GatewayError::not_found)?;
            (Arc::clone(m.value), m.prefix.len())
        };
        ex.set_api(&api);
        let def = &api.def;

        // The API-wide limit comes first: it protects the upstream and the token checks alike.
        if let Some(limit) = Limit::from_tyk(def.global_rate_limit.rate, def.global_rate_limit.per)
        {
            let key = format!("rate-limit-api-{{{}}}", def.api_id);
            match self.limiters.global.check(&key, limit).await {
                Ok(d) if !d.allowed => {
                    ex.rejected(LimitKind::ApiRate);
                    return Err(too_many("API Rate Limit Exceeded", d.retry_after_secs()));
                }
                Ok(_) => {}
                Err(e) => {
                    ex.set_outcome(AuthOutcome::LimitsUnavailable);
                    return Err(limits_unavailable(&e));
                }
            }
        }

        let mut limit_headers: Option<Decision> = None;
        match &api.auth {
            ApiAuth::Keyless => ex.set_outcome(AuthOutcome::Keyless),
            ApiAuth::Unsupported => {
                ex.set_outcome(AuthOutcome::Unsupported);
                return Err(GatewayError::new(
                    StatusCode::UNAUTHORIZED,
                    "this API uses an authentication method Gatehouse does not support",
                    ErrorSource::Downstream,
                ));
            }
            ApiAuth::Misconfigured(why) => {
                ex.set_outcome(AuthOutcome::Misconfigured);
                tracing::error!(api_id = %def.api_id, problem = %why, "API authentication misconfigured");
                return Err(GatewayError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "this API's authentication is misconfigured; the gateway log says why",
                    ErrorSource::Internal,
                ));
            }
            ApiAuth::Jwt {
                validator,
                location,
            } => {
                let Some(token) = location.extract(req.headers(), req.uri()) else {
                    ex.set_outcome(AuthOutcome::MissingToken);
                    return Err(auth::missing_token());
                };
                let token = token.into_owned();
                let path = req.uri().path();
                let rel_path = match &path[prefix_len.min(path.len())..] {
                    "" => "/",
                    p => p,
                };
                let version = auth::request_version(def, req.headers(), req.uri(), rel_path);
                let mut ctx = auth::authenticate_jwt(
                    validator,
                    def,
                    &token,
                    &snapshot,
                    &self.sessions,
                    version.as_deref(),
                    rel_path,
                    req.method().as_str(),
                )
                .await
                .inspect_err(|e| ex.set_outcome(auth_outcome(e)))?;
                // The caller is known before the limits, so a 429 is attributed to its client.
                // The ids are moved (the limits need only the identity, copied for the access
                // log alone).
                if ex.wants_caller() {
                    let identity = if ex.wants_identity() {
                        ctx.identity.clone()
                    } else {
                        String::new()
                    };
                    ex.set_caller(identity, ctx.client_id.take(), ctx.developer_id.take());
                }
                limit_headers = self.session_limits(def, &ctx, ex).await?;
                ex.set_outcome(AuthOutcome::Ok);
                if def.strip_auth_data {
                    let (parts, body) = req.into_parts();
                    let mut parts = parts;
                    location.strip(&mut parts.headers, &mut parts.uri);
                    req = Request::from_parts(parts, body);
                }
            }
        }
        let mut resp = self.forward(req, &api, prefix_len, remote, tls, ex).await?;
        if let Some(d) = limit_headers {
            set_limit_headers(resp.headers_mut(), &d);
        }
        Ok(resp)
    }

    /// The session's rate limit and quota on this API; returns the decision for the
    /// `X-RateLimit-*` headers.
    async fn session_limits(
        &self,
        def: &gatehouse_domain::api::ApiDefinition,
        ctx: &auth::AuthContext,
        ex: &mut Exchange,
    ) -> Result<Option<Decision>, GatewayError> {
        let Some(limits) = ctx.effective.limits_for(&def.api_id) else {
            return Ok(None);
        };
        let scope = if limits.scope_key.is_empty() {
            String::new()
        } else {
            format!("{}-", limits.scope_key)
        };
        let rate = (!def.disable_rate_limit)
            .then(|| limits.rate.and_then(|(r, p)| Limit::from_tyk(r, p)))
            .flatten();
        let quota = (!def.disable_quota)
            .then(|| limits.quota.and_then(|(m, r)| QuotaLimit::from_tyk(m, r)))
            .flatten();
        if rate.is_none() && quota.is_none() {
            return Ok(None);
        }
        // The identity in braces: a Redis Cluster hash tag, so both keys share a slot.
        let who = format!("{scope}{{{}:{}}}", def.org_id, ctx.identity);
        let rate_key = format!("rate-limit-{who}");
        let quota_key = format!("quota-{who}");
        let d = self
            .limiters
            .sessions
            .check(
                rate.map(|l| (rate_key.as_str(), l)),
                quota.map(|q| (quota_key.as_str(), q)),
            )
            .await
            .map_err(|e| {
                ex.set_outcome(AuthOutcome::LimitsUnavailable);
                limits_unavailable(&e)
            })?;
        let header = d.header_decision(HeaderSource::Quota).copied();
        let (kind, message) = match d.verdict {
            Verdict::Allowed => return Ok(header),
            Verdict::RateLimited => (LimitKind::Rate, "Rate Limit Exceeded"),
            Verdict::QuotaExceeded => (LimitKind::Quota, "Quota exceeded"),
        };
        ex.rejected(kind);
        Err(with_limit_headers(
            too_many(message, d.retry_after().map(|r| r.as_secs().max(1))),
            header.as_ref(),
        ))
    }

    /// Sends the request upstream and streams the answer back.
    async fn forward(
        &self,
        req: Request<Incoming>,
        api: &ApiRuntime,
        prefix_len: usize,
        remote: SocketAddr,
        tls: bool,
        ex: &mut Exchange,
    ) -> Result<Response<GatewayBody>, GatewayError> {
        let (mut parts, body) = req.into_parts();
        let client_version = parts.version;
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

        // Body size: refuse at once when the length is known, else stop the stream at the limit.
        let limit = api.def.request_size_limit().or(self.cfg.max_request_body);
        if let Some(limit) = limit
            && let Some(len) = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
            && len > limit
        {
            return Err(body_too_large(limit));
        }
        // The flag (one allocation) exists only for requests that have a limit.
        let tripped = limit.map(|_| Arc::new(AtomicBool::new(false)));
        let body = LimitedBody::new(body, limit.zip(tripped.clone()));
        let mut up = Request::from_parts(parts, ex.count_request_body(body));
        *up.uri_mut() = uri;
        *up.version_mut() = Version::HTTP_11;

        let sent = Instant::now();
        let answer =
            tokio::time::timeout(self.cfg.upstream_response_timeout, self.client.request(up)).await;
        ex.set_upstream_latency(sent.elapsed());
        let resp = match answer {
            Err(_) => return Err(GatewayError::gateway_timeout()),
            Ok(Err(_)) if tripped.as_ref().is_some_and(|t| t.load(Ordering::Relaxed)) => {
                return Err(body_too_large(limit.unwrap_or(0)));
            }
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
        // Answer in the client's protocol version, whatever the upstream spoke (an HTTP/1.0
        // upstream must not turn the client's keep-alive connection into HTTP/1.0).
        parts.version = client_version;
        Ok(Response::from_parts(parts, Either::Left(body)))
    }

    /// Tyk's health answer.
    fn hello(&self) -> Response<GatewayBody> {
        let snap = self.snapshot.load();
        let counters = match &self.limiters.failover {
            None => {
                serde_json::json!({"status": "pass", "componentType": "datastore", "backend": "local"})
            }
            Some(f) => {
                let st = f.stats();
                serde_json::json!({
                    "status": if st.backend_up { "pass" } else { "warn" },
                    "componentType": "datastore",
                    "backend": "redis",
                    "up": st.backend_up,
                    "fallbacks": st.fallbacks,
                    "unavailable": st.unavailable,
                })
            }
        };
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
                "counters": counters,
                "connections": {
                    "open": self.connections.open(),
                    "max": self.cfg.max_connections,
                    "refused": self.connections.refused(),
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

/// The telemetry's name for an error's source.
fn error_source(s: ErrorSource) -> telemetry::ErrorSource {
    match s {
        ErrorSource::Downstream => telemetry::ErrorSource::Downstream,
        ErrorSource::Upstream => telemetry::ErrorSource::Upstream,
        ErrorSource::Dependency => telemetry::ErrorSource::Dependency,
        ErrorSource::Internal => telemetry::ErrorSource::Internal,
    }
}

/// What a refusal by the JWT phases means, from its status and Tyk's message (error path only).
fn auth_outcome(e: &GatewayError) -> AuthOutcome {
    match e.status {
        StatusCode::SERVICE_UNAVAILABLE => AuthOutcome::IdpUnavailable,
        StatusCode::UNAUTHORIZED
            if e.message == gatehouse_jwt::MSG_EXPIRED
                || e.message == AuthzError::KeyExpired.message() =>
        {
            AuthOutcome::Expired
        }
        StatusCode::UNAUTHORIZED => AuthOutcome::InvalidToken,
        s if s.is_server_error() => AuthOutcome::Misconfigured,
        _ => AuthOutcome::Forbidden,
    }
}

/// The limiters failed: with Redis in `closed` mode this is the 503 the operator asked for;
/// otherwise (a full local table) the request is refused rather than admitted unchecked.
fn limits_unavailable(e: &gatehouse_ratelimit::LimitError) -> GatewayError {
    tracing::warn!(error = %e, "rate limit or quota could not be checked");
    GatewayError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "rate limits cannot be checked right now; try again shortly",
        ErrorSource::Dependency,
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
}

/// 429 with `Retry-After`.
fn body_too_large(limit: u64) -> GatewayError {
    GatewayError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body too large: this API accepts at most {limit} bytes"),
        ErrorSource::Downstream,
    )
}

fn too_many(message: &str, retry_after: Option<u64>) -> GatewayError {
    let mut e = GatewayError::new(
        StatusCode::TOO_MANY_REQUESTS,
        message,
        ErrorSource::Downstream,
    );
    if let Some(s) = retry_after {
        e = e.with_header(header::RETRY_AFTER, HeaderValue::from(s));
    }
    e
}

const X_RATELIMIT_LIMIT: header::HeaderName = header::HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: header::HeaderName =
    header::HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: header::HeaderName = header::HeaderName::from_static("x-ratelimit-reset");

/// `X-RateLimit-Limit`, `-Remaining`, and `-Reset` (unix seconds when the quota window ends or a
/// rate slot frees, as Tyk sends the quota renewal time).
fn limit_header_values(d: &Decision) -> [(header::HeaderName, HeaderValue); 3] {
    let reset_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |n| n.as_secs())
        + d.reset_secs();
    [
        (X_RATELIMIT_LIMIT, HeaderValue::from(d.limit)),
        (X_RATELIMIT_REMAINING, HeaderValue::from(d.remaining)),
        (X_RATELIMIT_RESET, HeaderValue::from(reset_at)),
    ]
}

fn set_limit_headers(h: &mut http::HeaderMap, d: &Decision) {
    for (k, v) in limit_header_values(d) {
        h.insert(k, v);
    }
}

fn with_limit_headers(mut e: GatewayError, d: Option<&Decision>) -> GatewayError {
    if let Some(d) = d {
        e.headers.extend(limit_header_values(d));
    }
    e
}
