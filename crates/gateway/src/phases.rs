//! The synchronous phases of the request path, each a small function over the request head and
//! the [`RequestCtx`], tested on its own. The asynchronous phases (the API rate limit,
//! authentication, session limits and the upstream call) are methods of
//! [`Gateway`](crate::Gateway) in [`crate::pipeline`], which also shows the order of all of them.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};

use gatehouse_domain::endpoints::{ENDPOINT_FORBIDDEN, EndpointVerdict, MockReply};
use gatehouse_domain::path::{PathPolicy, normalize_path};

use crate::context::RequestCtx;
use crate::errors::{ErrorSource, GatewayBody, GatewayError};
use crate::snapshot::{ApiAuth, Snapshot};
use crate::upstream;

fn bad_request(message: impl Into<String>) -> GatewayError {
    GatewayError::new(StatusCode::BAD_REQUEST, message, ErrorSource::Downstream)
}

/// **Head checks**, before anything is read from the request: one `Host` (an HTTP/1.1 request
/// without one, or any request with two, is 400, RFC 9112 §3.2), and a request head no larger
/// than `max_header_bytes` (431 with a JSON body; hyper itself stops heads far above the limit
/// before they reach this phase).
pub fn check_head(head: &Parts, max_header_bytes: usize) -> Result<(), GatewayError> {
    let mut hosts = head.headers.get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(bad_request("the request has more than one Host header"));
    }
    let missing = first.is_none()
        && match head.version {
            Version::HTTP_11 => true,
            Version::HTTP_2 | Version::HTTP_3 => head.uri.authority().is_none(),
            _ => false,
        };
    if missing {
        return Err(bad_request("the request has no Host header"));
    }
    // The head as it came: request line plus "name: value\r\n" per field.
    let mut size =
        head.method.as_str().len() + head.uri.path_and_query().map_or(1, |p| p.as_str().len()) + 12;
    for (name, value) in &head.headers {
        size += name.as_str().len() + value.len() + 4;
    }
    if size > max_header_bytes {
        return Err(GatewayError::new(
            StatusCode::from_u16(431).unwrap_or(StatusCode::BAD_REQUEST),
            format!(
                "request header fields too large: this gateway accepts at most {max_header_bytes} bytes of request line and headers"
            ),
            ErrorSource::Downstream,
        ));
    }
    Ok(())
}

/// **Path normalisation**, once, before routing ([`normalize_path`]): a path that cannot be
/// judged safely is 400; otherwise the request's URI is rewritten to the normalised path (query
/// unchanged), which every later phase routes, checks and forwards.
pub fn normalize(head: &mut Parts, policy: PathPolicy) -> Result<(), GatewayError> {
    let normalized = match normalize_path(head.uri.path(), policy) {
        Ok(std::borrow::Cow::Borrowed(_)) => return Ok(()),
        Ok(std::borrow::Cow::Owned(p)) => p,
        Err(e) => return Err(bad_request(e.message())),
    };
    let pq = match head.uri.query() {
        Some(q) => format!("{normalized}?{q}"),
        None => normalized,
    };
    let pq =
        PathAndQuery::try_from(pq).map_err(|_| bad_request("the request path is not valid"))?;
    let mut parts = std::mem::take(&mut head.uri).into_parts();
    parts.path_and_query = Some(pq);
    head.uri = Uri::from_parts(parts).map_err(|_| bad_request("the request path is not valid"))?;
    Ok(())
}

/// The client's host: the `Host` header, else the URI's authority (HTTP/2 `:authority`).
pub fn client_host(head: &Parts) -> Option<&str> {
    head.headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| head.uri.authority().map(|a| a.as_str()))
}

/// **Route**: the API for the request's host (Tyk's `domain`) and normalised path, longest
/// listen path first ([`gatehouse_domain::routing::RouteTable::lookup_host`]). Internal APIs and
/// APIs of other node tags are not in the table. No match, or an inactive API: 404.
pub fn route(
    snapshot: Arc<Snapshot>,
    head: &Parts,
    remote: std::net::SocketAddr,
    tls: bool,
    now: i64,
) -> Result<RequestCtx, GatewayError> {
    let path = head.uri.path();
    let (api, prefix_len) = {
        let m = if snapshot.routes.has_domains() {
            snapshot.routes.lookup_host(client_host(head), path)
        } else {
            snapshot.routes.lookup(path)
        }
        .ok_or_else(GatewayError::not_found)?;
        (Arc::clone(m.value), m.prefix.len())
    };
    Ok(RequestCtx {
        snapshot,
        api,
        prefix_len,
        remote,
        tls,
        now,
        requested_version: None,
        version: None,
        rules_path: None,
        skip_auth: false,
        auth: None,
        limit_headers: None,
    })
}

/// **Version** (Tyk's `VersionCheck`): the version the request names (header, URL parameter or
/// first path segment after the listen path, [`VersionSet::requested`](gatehouse_domain::versions::VersionSet::requested)), the version that serves
/// it ([`VersionSet::select`](gatehouse_domain::versions::VersionSet::select): 403 `Version information not found`, `This API version does not
/// seem to exist`, `Api Version has expired…`, or for a non-versioned API `API has expired…`);
/// with `strip_versioning_data` the version is removed from the request (path segment, header or
/// parameter). Also records the path the endpoint rules match ([`RequestCtx::rules_path`]).
pub fn select_version(ctx: &mut RequestCtx, head: &mut Parts) -> Result<(), GatewayError> {
    let api = Arc::clone(&ctx.api);
    let vs = &api.versions;
    let requested = vs.requested(head.uri.path(), head.uri.query(), |name| {
        head.headers.get(name).and_then(|v| v.to_str().ok())
    });
    let version = vs
        .select(requested.name.as_deref(), ctx.now)
        .map_err(|e| forbidden(e.message()))?;
    if vs.is_versioned() {
        ctx.version = Some(version.name().to_owned());
    }
    if let Some(path) = &requested.path {
        set_path(head, path)?;
    }
    if let Some(h) = requested.remove_header {
        head.headers.remove(h);
    }
    if let Some(p) = requested.remove_query_param {
        remove_query_param(head, p)?;
    }
    ctx.requested_version = requested.name;
    ctx.rules_path = match gatehouse_domain::pathmatch::decode_path(head.uri.path()) {
        Some(std::borrow::Cow::Owned(p)) => Some(p),
        Some(std::borrow::Cow::Borrowed(_)) => None,
        None => {
            return Err(bad_request(
                "the request path contains a malformed percent-encoding",
            ));
        }
    };
    Ok(())
}

fn forbidden(message: &str) -> GatewayError {
    GatewayError::new(StatusCode::FORBIDDEN, message, ErrorSource::Downstream)
}

/// Replaces the request's path, keeping its query.
fn set_path(head: &mut Parts, path: &str) -> Result<(), GatewayError> {
    let pq = match head.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    set_path_and_query(head, pq)
}

fn set_path_and_query(head: &mut Parts, pq: String) -> Result<(), GatewayError> {
    let pq =
        PathAndQuery::try_from(pq).map_err(|_| bad_request("the request path is not valid"))?;
    let mut parts = std::mem::take(&mut head.uri).into_parts();
    parts.path_and_query = Some(pq);
    head.uri = Uri::from_parts(parts).map_err(|_| bad_request("the request path is not valid"))?;
    Ok(())
}

/// Removes every `name=…` pair from the query.
fn remove_query_param(head: &mut Parts, name: &str) -> Result<(), GatewayError> {
    let Some(q) = head.uri.query() else {
        return Ok(());
    };
    let kept: Vec<&str> = q
        .split('&')
        .filter(|kv| kv.split('=').next() != Some(name))
        .collect();
    let pq = if kept.is_empty() {
        head.uri.path().to_owned()
    } else {
        format!("{}?{}", head.uri.path(), kept.join("&"))
    };
    set_path_and_query(head, pq)
}

/// What the endpoint rules decided, when the request goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointOutcome {
    /// Authenticate and go on.
    Pass,
    /// `ignored`: no authentication, authorisation or session limits.
    Ignored,
}

/// **Endpoint rules** of the served version ([`gatehouse_domain::endpoints`]): black-listed,
/// not white-listed and internal endpoints are 403 `Requested endpoint is forbidden`; a mock
/// reply (`reply` action, `mock_response`) is answered here, before authentication and without
/// the upstream (`Ok(Err(response))`); `ignored` paths skip authentication.
pub fn endpoint_rules(
    ctx: &mut RequestCtx,
    head: &Parts,
) -> Result<Result<EndpointOutcome, Response<GatewayBody>>, GatewayError> {
    let Some(version) = ctx.version() else {
        return Ok(Ok(EndpointOutcome::Pass));
    };
    let rules = version.endpoints();
    if rules.is_empty() {
        return Ok(Ok(EndpointOutcome::Pass));
    }
    match rules.check(ctx.rules_path(head.uri.path()), head.method.as_str()) {
        EndpointVerdict::Pass => Ok(Ok(EndpointOutcome::Pass)),
        EndpointVerdict::Ignored => {
            ctx.skip_auth = true;
            Ok(Ok(EndpointOutcome::Ignored))
        }
        EndpointVerdict::Forbidden => Err(forbidden(ENDPOINT_FORBIDDEN)),
        EndpointVerdict::Reply(reply) => Ok(Err(mock_response(reply))),
    }
}

/// A mock answer as Tyk writes it: the status, the headers as given, the body.
fn mock_response(reply: &MockReply) -> Response<GatewayBody> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(reply.body.clone()))));
    *resp.status_mut() = StatusCode::from_u16(reply.code).unwrap_or(StatusCode::OK);
    for (k, v) in &reply.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            resp.headers_mut().append(k, v);
        }
    }
    resp
}

/// **Request transforms** (after authorisation): the credential removed when `strip_auth_data`,
/// hop-by-hop headers dropped, `X-Forwarded-For/-Proto/-Host` set, `Host` rewritten to the
/// target unless `preserve_host_header`, and the target URL's credentials as `Authorization:
/// Basic` when the request carries none.
pub fn request_transforms(ctx: &RequestCtx, head: &mut Parts) {
    let api = &ctx.api;
    if api.def.strip_auth_data
        && let ApiAuth::Jwt { location, .. } = &api.auth
    {
        location.strip(&mut head.headers, &mut head.uri);
    }
    let client_host: Option<HeaderValue> = head.headers.get(header::HOST).cloned().or_else(|| {
        head.uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let headers = &mut head.headers;
    upstream::strip_hop_by_hop(headers);
    upstream::set_forwarded(
        headers,
        ctx.remote.ip(),
        if ctx.tls { "https" } else { "http" },
        client_host.clone(),
    );
    let target = ctx.target();
    let host = if api.def.proxy.preserve_host_header {
        client_host.unwrap_or_else(|| target.host_header.clone())
    } else {
        target.host_header.clone()
    };
    headers.insert(header::HOST, host);
    if let Some(basic) = &target.basic_auth
        && !headers.contains_key(header::AUTHORIZATION)
    {
        headers.insert(header::AUTHORIZATION, basic.clone());
    }
    // The version's global_headers_remove, then global_headers.
    if let Some(v) = ctx.version() {
        for name in v.request_headers_to_remove() {
            headers.remove(name.as_str());
        }
        for (name, value) in v.request_headers_to_set() {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(n, v);
            }
        }
    }
}

const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// `X-RateLimit-Limit`, `-Remaining`, and `-Reset` (unix seconds when the quota window ends or a
/// rate slot frees, as Tyk sends the quota renewal time).
pub fn limit_header_values(d: &gatehouse_ratelimit::Decision) -> [(HeaderName, HeaderValue); 3] {
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

/// **Response transforms**: hop-by-hop headers dropped, the answer in the client's protocol
/// version (an HTTP/1.0 upstream must not turn a keep-alive connection into HTTP/1.0), and the
/// `X-RateLimit-*` headers of the session's limits.
pub fn response_transforms(
    ctx: &RequestCtx,
    client_version: Version,
    resp: &mut http::response::Parts,
) {
    upstream::strip_hop_by_hop(&mut resp.headers);
    resp.version = client_version;
    if let Some(d) = &ctx.limit_headers {
        for (k, v) in limit_header_values(d) {
            resp.headers.insert(k, v);
        }
    }
    // Tyk tells clients when the API or its version expires.
    if let Some(v) = ctx.version()
        && let Some(at) = ctx.api.versions.expires_header(v)
        && let Ok(value) = HeaderValue::from_str(&at)
    {
        resp.headers.insert(X_TYK_API_EXPIRES, value);
    }
}

const X_TYK_API_EXPIRES: HeaderName = HeaderName::from_static("x-tyk-api-expires");
