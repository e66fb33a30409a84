//! JSON error answers of the gateway.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

/// The body of every gateway answer: the upstream's streamed body, or a small body of our own.
pub type GatewayBody = Either<Incoming, Full<Bytes>>;

/// Who caused a failed request (pingora's `ErrorSource`): useful in logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// The client (401/403/404/429).
    Downstream,
    /// The upstream (502/504).
    Upstream,
    /// A dependency such as the IdP (503).
    Dependency,
    /// Gatehouse itself (500).
    Internal,
}

/// A gateway error: a status, the public message and where it came from.
#[derive(Debug, Clone)]
pub struct GatewayError {
    /// HTTP status.
    pub status: StatusCode,
    /// Message for the `{"error": ...}` body.
    pub message: String,
    /// Who caused it.
    pub source: ErrorSource,
    /// Extra headers (`WWW-Authenticate`, `Retry-After`).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl GatewayError {
    /// An error with no extra headers.
    pub fn new(status: StatusCode, message: impl Into<String>, source: ErrorSource) -> Self {
        Self {
            status,
            message: message.into(),
            source,
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// No API serves this path, or the API is inactive.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "no API is served on this path",
            ErrorSource::Downstream,
        )
    }

    /// The upstream refused or dropped the connection.
    pub fn bad_gateway(detail: &str) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            format!("upstream unavailable: {detail}"),
            ErrorSource::Upstream,
        )
    }

    /// The upstream did not answer in time.
    pub fn gateway_timeout() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream did not answer in time",
            ErrorSource::Upstream,
        )
    }

    /// The answer to send.
    pub fn into_response(self) -> Response<GatewayBody> {
        json_response(self.status, &self.message, self.headers)
    }
}

/// `{"error": message}` with the given status and headers.
pub fn json_response(
    status: StatusCode,
    message: &str,
    headers: Vec<(header::HeaderName, HeaderValue)>,
) -> Response<GatewayBody> {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (k, v) in headers {
        h.append(k, v);
    }
    resp
}
