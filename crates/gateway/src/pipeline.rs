//! The request path: the [`Gateway`] and the order of its phases.
//!
//! Every request goes through named phases over one [`RequestCtx`] (made by the route phase),
//! each a small function that either records what it concluded in the context or ends the
//! request with a JSON error ([`GatewayError`]):
//!
//! | # | phase | where | refuses with |
//! |---|---|---|---|
//! | 0 | own paths (`/hello`, the metrics path) | [`Gateway::handle`] | |
//! | 1 | head checks: one `Host`, head size | [`phases::check_head`] | 400, 431 |
//! | 2 | path normalisation (once; the result is routed, checked and forwarded) | [`phases::normalize`] | 400 |
//! | 3 | route by host and listen path | [`phases::route`] | 404 |
//! | 4 | version | [`phases::select_version`] | 403 |
//! | 5 | API rate limit (`global_rate_limit`) | `Gateway::api_rate_limit` | 429, 503 |
//! | 6 | authenticate (token, identity, policies, session) | `Gateway::authenticate` | 400, 401, 403, 503 |
//! | 7 | authorise (access rights, versions, `allowed_urls`) | [`auth::authorize`] | 401, 403 |
//! | 8 | session limits (rate limit and quota) | `Gateway::session_limits` | 429 (403), 503 |
//! | 9 | request transforms (credential, hop-by-hop, `X-Forwarded-*`, `Host`) | [`phases::request_transforms`] | |
//! | 10 | upstream (body limit, the call) | `Gateway::upstream` | 400, 413, 502, 504 |
//! | 11 | response transforms (hop-by-hop, version, `X-RateLimit-*`) | [`phases::response_transforms`] | |
//! | 12 | log (metrics, access log, analytics when the body ends) | [`Exchange`] | |
//!
//! Telemetry runs alongside: the request id is taken from `X-Request-Id` or generated, forwarded
//! upstream and returned on every answer; each phase tells the request's [`Exchange`] what it
//! concluded (API, authentication outcome, limit, error source, caller, upstream latency); both
//! bodies are counted as they stream, and the metrics and the access log line are recorded when
//! the response body ends.

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
use crate::context::RequestCtx;
use crate::errors::{ErrorSource, GatewayBody, GatewayError};
use crate::limited::{BodyState, LimitedBody};
use crate::limits::Limiters;
use crate::phases;
use crate::snapshot::{ApiAuth, ApiRuntime};
use crate::upstream::{self, UpstreamClient};
use crate::{GatewayConfig, SharedSnapshot, StatusMode};

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
    /// Set when shutdown begins: HTTP/1 answers then carry `Connection: close`, so keep-alive
    /// clients move to another process between requests instead of losing one.
    closing: AtomicBool,
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
            closing: AtomicBool::new(false),
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

    /// Starts closing: from now on every HTTP/1 answer carries `Connection: close` (HTTP/2
    /// connections get GOAWAY from the graceful shutdown).
    pub fn begin_close(&self) {
        self.closing.store(true, Ordering::Relaxed);
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
        let close = self.closing.load(Ordering::Relaxed) && req.version() < Version::HTTP_2;
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
            if close {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
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
        if close {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        ex.finish(resp)
    }

    async fn handle_inner(
        &self,
        req: Request<Incoming>,
        remote: SocketAddr,
        tls: bool,
        ex: &mut Exchange,
    ) -> Result<Response<GatewayBody>, GatewayError> {
        let (mut head, body) = req.into_parts();
        phases::check_head(&head, self.cfg.max_header_bytes)?;
        phases::normalize(&mut head, self.cfg.path_policy)?;
        let mut ctx = phases::route(
            self.snapshot.load_full(),
            &head,
            remote,
            tls,
            gatehouse_jwt::unix_now(),
        )?;
        ex.set_api(&ctx.api);
        phases::select_version(&mut ctx, &mut head)?;
        if let Err(mock) = phases::endpoint_rules(&mut ctx, &head)? {
            return Ok(mock);
        }
        self.api_rate_limit(&ctx, &head, ex).await?;
        if ctx.skip_auth {
            ex.set_outcome(AuthOutcome::Keyless);
        } else {
            self.authenticate(&mut ctx, &head, ex).await?;
            if let Some(a) = &ctx.auth {
                let grant = ctx
                    .api
                    .versions
                    .access_rights_version(ctx.requested_version.as_deref());
                auth::authorize(
                    a,
                    &ctx.api.def.api_id,
                    grant.as_ref(),
                    ctx.rel_path(head.uri.path()),
                    head.method.as_str(),
                )
                .inspect_err(|e| ex.set_outcome(auth_outcome(e)))?;
                self.session_limits(&mut ctx, &head, ex).await?;
                ex.set_outcome(AuthOutcome::Ok);
            }
        }
        let client_version = head.version;
        phases::request_transforms(&ctx, &mut head);
        let resp = self.upstream(&ctx, head, body, ex).await?;
        let (mut parts, body) = resp.into_parts();
        phases::response_transforms(&ctx, client_version, &mut parts);
        Ok(Response::from_parts(parts, body))
    }

    /// **API rate limit**, before authentication (it protects the upstream and the token checks
    /// alike; `ignored` paths too): the served version's per-endpoint `rate_limit` for this path
    /// and method, counted on its own, else the API's `global_rate_limit`. `disable_rate_limit`
    /// turns both off, as in Tyk.
    async fn api_rate_limit(
        &self,
        ctx: &RequestCtx,
        head: &http::request::Parts,
        ex: &mut Exchange,
    ) -> Result<(), GatewayError> {
        let def = &ctx.api.def;
        if def.disable_rate_limit {
            return Ok(());
        }
        let endpoint = ctx.version().and_then(|v| {
            v.endpoints()
                .rate_limit(ctx.rules_path(head.uri.path()), head.method.as_str())
        });
        let (limit, key) = match endpoint {
            Some(e) => (
                Limit::from_tyk(e.rate, e.per),
                format!("rate-limit-api-{{{}}}-{}", def.api_id, e.key),
            ),
            None => match def.api_rate_limit() {
                Some(l) => (
                    Limit::from_tyk(l.rate, l.per),
                    format!("rate-limit-api-{{{}}}", def.api_id),
                ),
                None => return Ok(()),
            },
        };
        let Some(limit) = limit else {
            return Ok(());
        };
        match self.limiters.global.check(&key, limit).await {
            Ok(d) if !d.allowed => {
                ex.rejected(LimitKind::ApiRate);
                Err(too_many("API Rate Limit Exceeded", d.retry_after_secs()))
            }
            Ok(_) => Ok(()),
            Err(e) => {
                ex.set_outcome(AuthOutcome::LimitsUnavailable);
                Err(limits_unavailable(&e))
            }
        }
    }

    /// **Authenticate**: keyless APIs pass; JWT APIs read the one credential, verify it and find
    /// the identity, policies and session ([`auth::authenticate`]); an API with an unsupported
    /// Tyk auth method is refused (401), a misconfigured one is 500.
    async fn authenticate(
        &self,
        ctx: &mut RequestCtx,
        head: &http::request::Parts,
        ex: &mut Exchange,
    ) -> Result<(), GatewayError> {
        let api = Arc::clone(&ctx.api);
        match &api.auth {
            ApiAuth::Keyless => {
                ex.set_outcome(AuthOutcome::Keyless);
                Ok(())
            }
            ApiAuth::Unsupported => {
                ex.set_outcome(AuthOutcome::Unsupported);
                Err(GatewayError::new(
                    StatusCode::UNAUTHORIZED,
                    "this API uses an authentication method Gatehouse does not support",
                    ErrorSource::Downstream,
                ))
            }
            ApiAuth::Misconfigured(why) => {
                ex.set_outcome(AuthOutcome::Misconfigured);
                tracing::error!(api_id = %api.def.api_id, problem = %why, "API authentication misconfigured");
                Err(GatewayError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "this API's authentication is misconfigured; the gateway log says why",
                    ErrorSource::Internal,
                ))
            }
            ApiAuth::Jwt {
                validator,
                location,
            } => {
                let token = match location.extract(&head.headers, &head.uri) {
                    Ok(Some(t)) => t,
                    Ok(None) => {
                        ex.set_outcome(AuthOutcome::MissingToken);
                        return Err(self.status_mode(auth::missing_token()));
                    }
                    Err(dup) => {
                        ex.set_outcome(AuthOutcome::InvalidToken);
                        return Err(dup.to_error());
                    }
                };
                let mut a =
                    auth::authenticate(validator, &api.def, &token, &ctx.snapshot, &self.sessions)
                        .await
                        .map_err(|e| {
                            ex.set_outcome(auth_outcome(&e));
                            self.status_mode(e)
                        })?;
                // The caller is known before the limits, so a 429 is attributed to its client.
                // The ids are moved (the limits need only the identity, copied for the access
                // log alone).
                if ex.wants_caller() {
                    let identity = if ex.wants_identity() {
                        a.identity.clone()
                    } else {
                        String::new()
                    };
                    ex.set_caller(identity, a.client_id.take(), a.developer_id.take());
                }
                ctx.auth = Some(a);
                Ok(())
            }
        }
    }

    /// In [`StatusMode::Tyk`], an authentication error gets Tyk's status instead of ours.
    fn status_mode(&self, e: GatewayError) -> GatewayError {
        match self.cfg.status_mode {
            StatusMode::Standard => e,
            StatusMode::Tyk => auth::tyk_status(e),
        }
    }

    /// **Session limits**: the session's rate limit and quota on this API, counted by identity
    /// and allowance scope (all tokens of one identity share them); records the decision for the
    /// `X-RateLimit-*` headers.
    async fn session_limits(
        &self,
        ctx: &mut RequestCtx,
        head: &http::request::Parts,
        ex: &mut Exchange,
    ) -> Result<(), GatewayError> {
        let def = &ctx.api.def;
        let Some(a) = &ctx.auth else {
            return Ok(());
        };
        let Some(limits) = a.effective.limits_for(&def.api_id) else {
            return Ok(());
        };
        let scope = if limits.scope_key.is_empty() {
            String::new()
        } else {
            format!("{}-", limits.scope_key)
        };
        // A matching per-endpoint limit of the policies (`access_rights[api].endpoints`)
        // replaces the API's rate for this request, counted on its own; the quota is shared.
        let endpoint = a.effective.endpoint_limit(
            &def.api_id,
            ctx.rel_path(head.uri.path()),
            head.method.as_str(),
        );
        let session_rate = match &endpoint {
            Some(e) => e.rate,
            None => limits.rate,
        };
        let rate = (!def.disable_rate_limit)
            .then(|| session_rate.and_then(|(r, p)| Limit::from_tyk(r, p)))
            .flatten();
        let quota = (!def.disable_quota)
            .then(|| limits.quota.and_then(|(m, r)| QuotaLimit::from_tyk(m, r)))
            .flatten();
        if rate.is_none() && quota.is_none() {
            return Ok(());
        }
        // The identity in braces: a Redis Cluster hash tag, so both keys share a slot.
        let who = format!("{scope}{{{}:{}}}", def.org_id, a.identity);
        let rate_key = match &endpoint {
            Some(e) => format!(
                "rate-limit-{scope}{}-{{{}:{}}}",
                e.key, def.org_id, a.identity
            ),
            None => format!("rate-limit-{who}"),
        };
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
            Verdict::Allowed => {
                ctx.limit_headers = header;
                return Ok(());
            }
            Verdict::RateLimited => (LimitKind::Rate, "Rate Limit Exceeded"),
            Verdict::QuotaExceeded => (LimitKind::Quota, "Quota exceeded"),
        };
        ex.rejected(kind);
        let mut e = with_limit_headers(
            too_many(message, d.retry_after().map(|r| r.as_secs().max(1))),
            header.as_ref(),
        );
        if kind == LimitKind::Quota && self.cfg.status_mode == StatusMode::Tyk {
            e.status = StatusCode::FORBIDDEN;
        }
        Err(e)
    }

    /// **Upstream**: the body limit (the API's `global_size_limit`, else `max_request_body`:
    /// 413 up front on a known length, else the stream is cut at the limit), the normalised path
    /// joined onto the target (listen path stripped when `strip_listen_path`), the call, and the
    /// answer streamed back. Refused connection 502; no answer in time 504; a client's broken
    /// body 400.
    async fn upstream(
        &self,
        ctx: &RequestCtx,
        mut head: http::request::Parts,
        body: Incoming,
        ex: &mut Exchange,
    ) -> Result<Response<GatewayBody>, GatewayError> {
        let api = &ctx.api;
        let target = ctx.target();
        let path = head.uri.path();
        let prefix = &path[..ctx.prefix_len.min(path.len())];
        let mut pq = upstream_path(
            &target.base_path,
            path,
            prefix,
            api.def.proxy.strip_listen_path,
        );
        if let Some(q) = head.uri.query() {
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
            .scheme(target.scheme.clone())
            .authority(target.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| {
                GatewayError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot build the upstream URI: {e}"),
                    ErrorSource::Internal,
                )
            })?;

        // Body size: refuse at once when the length is known, else stop the stream at the limit.
        let limit = ctx
            .version()
            .and_then(|v| {
                v.request_size_limit(ctx.rules_path(head.uri.path()), head.method.as_str())
            })
            .or(self.cfg.max_request_body);
        if let Some(limit) = limit
            && let Some(len) = head
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
            && len > limit
        {
            return Err(body_too_large(limit));
        }
        // The body's state (one allocation) exists only for requests that have a body.
        let state =
            (!http_body::Body::is_end_stream(&body)).then(|| Arc::new(BodyState::default()));
        let body = LimitedBody::new(body, limit, state.clone());
        head.uri = uri;
        head.version = Version::HTTP_11;
        let up = Request::from_parts(head, ex.count_request_body(body));

        let sent = Instant::now();
        let answer =
            tokio::time::timeout(self.cfg.upstream_response_timeout, self.client.request(up)).await;
        ex.set_upstream_latency(sent.elapsed());
        match answer {
            Err(_) => Err(GatewayError::gateway_timeout()),
            Ok(Err(e)) => {
                if let Some(state) = &state {
                    if state.limit_exceeded() {
                        return Err(body_too_large(limit.unwrap_or(0)));
                    }
                    if state.client_failed() {
                        return Err(GatewayError::new(
                            StatusCode::BAD_REQUEST,
                            "the request body could not be read (a broken chunked encoding, or the \
                             client stopped sending)",
                            ErrorSource::Downstream,
                        ));
                    }
                }
                let detail = if e.is_connect() {
                    "connection refused or unreachable"
                } else {
                    "connection closed before an answer"
                };
                tracing::warn!(api_id = %api.def.api_id, error = ?e, "upstream request failed");
                Err(GatewayError::bad_gateway(detail))
            }
            Ok(Ok(r)) => Ok(r.map(Either::Left)),
        }
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

fn with_limit_headers(mut e: GatewayError, d: Option<&Decision>) -> GatewayError {
    if let Some(d) = d {
        e.headers.extend(phases::limit_header_values(d));
    }
    e
}
