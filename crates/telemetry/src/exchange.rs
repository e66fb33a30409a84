//! One request's telemetry, from its headers to the end of its response body.
//!
//! [`Exchange`] is filled in by the request path as it learns things (the API, the
//! authentication outcome, who called, the upstream's latency) and handed to
//! [`Exchange::finish`] with the response. The response body is then wrapped in an
//! [`ObservedBody`] that counts bytes as they stream and, when the body ends (or is dropped
//! because the client went away), records the metrics and queues the access log line. The request
//! body is wrapped in a [`CountingBody`] the same way. Nothing is buffered.
//!
//! A request whose client goes away before the answer is ready (the request's future is dropped
//! with its exchange) is recorded with status 499, nginx's "client closed request".

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Buf;
use http::{HeaderValue, Method, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};

use crate::Telemetry;
use crate::access_log::{AccessRecord, ApiInfo};
use crate::analytics::Observation;
use crate::outcome::{AuthOutcome, ErrorSource, LimitKind, StatusClass};
use crate::series::ApiSeries;

/// What only the access log needs; captured only when it is on.
struct LogFields {
    time: SystemTime,
    request_id: HeaderValue,
    method: Method,
    uri: Uri,
    api: Option<Arc<dyn ApiInfo>>,
    identity: Option<String>,
}

/// The telemetry of one request in progress. Made by [`Telemetry::begin`].
pub struct Exchange {
    telemetry: Arc<Telemetry>,
    start: Instant,
    series: Option<Arc<ApiSeries>>,
    outcome: AuthOutcome,
    error: Option<ErrorSource>,
    rejection: Option<LimitKind>,
    upstream: Option<Duration>,
    bytes_in: Option<Arc<AtomicU64>>,
    client_id: Option<String>,
    developer_id: Option<String>,
    log: Option<LogFields>,
    done: bool,
}

/// Recorded for a request whose client left before the answer (nginx's convention).
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

impl Drop for Exchange {
    fn drop(&mut self) {
        if !self.done {
            let status =
                StatusCode::from_u16(CLIENT_CLOSED_REQUEST).unwrap_or(StatusCode::BAD_REQUEST);
            self.complete(status, 0);
        }
    }
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("api", &self.series.as_ref().map(|s| s.api_id()))
            .field("outcome", &self.outcome)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Starts a request's telemetry. `start` is when its headers were received; `method`, `uri`
    /// and `request_id` are copied (reference counts) only when the access log is on.
    pub fn begin(
        self: &Arc<Self>,
        start: Instant,
        method: &Method,
        uri: &Uri,
        request_id: &HeaderValue,
    ) -> Exchange {
        let log = self.access_log_enabled().then(|| {
            let now = SystemTime::now();
            LogFields {
                time: now.checked_sub(start.elapsed()).unwrap_or(now),
                request_id: request_id.clone(),
                method: method.clone(),
                uri: uri.clone(),
                api: None,
                identity: None,
            }
        });
        Exchange {
            telemetry: Arc::clone(self),
            start,
            series: None,
            outcome: AuthOutcome::None,
            error: None,
            rejection: None,
            upstream: None,
            bytes_in: None,
            client_id: None,
            developer_id: None,
            log,
            done: false,
        }
    }
}

impl Exchange {
    /// The request matched this API. `info` is kept (a reference count) for the access log.
    pub fn set_api<A: ApiInfo>(&mut self, info: &Arc<A>) {
        self.series = Some(self.telemetry.series.get(info.api_id()));
        if let Some(l) = &mut self.log {
            l.api = Some(Arc::clone(info) as Arc<dyn ApiInfo>);
        }
    }

    /// What authentication and the limits concluded.
    pub fn set_outcome(&mut self, outcome: AuthOutcome) {
        self.outcome = outcome;
    }

    /// The outcome so far.
    pub fn outcome(&self) -> AuthOutcome {
        self.outcome
    }

    /// A limit refused the request (also sets the outcome).
    pub fn rejected(&mut self, kind: LimitKind) {
        self.rejection = Some(kind);
        self.outcome = match kind {
            LimitKind::Quota => AuthOutcome::QuotaExceeded,
            LimitKind::ApiRate | LimitKind::Rate => AuthOutcome::RateLimited,
        };
    }

    /// The gateway answered with an error of its own.
    pub fn set_error(&mut self, source: ErrorSource) {
        self.error = Some(source);
    }

    /// Whether [`Self::set_caller`] keeps anything (the access log or analytics is on); callers
    /// can skip building values otherwise.
    pub fn wants_caller(&self) -> bool {
        self.log.is_some() || self.telemetry.analytics.is_some()
    }

    /// Whether [`Self::set_caller`] keeps the identity (only the access log shows it).
    pub fn wants_identity(&self) -> bool {
        self.log.is_some()
    }

    /// Who called (for the access log and analytics; dropped when both are off).
    pub fn set_caller(
        &mut self,
        identity: String,
        client_id: Option<String>,
        developer_id: Option<String>,
    ) {
        if !self.wants_caller() {
            return;
        }
        if let Some(l) = &mut self.log {
            l.identity = Some(identity);
        }
        self.client_id = client_id;
        self.developer_id = developer_id;
    }

    /// How long the upstream took to answer (or to fail).
    pub fn set_upstream_latency(&mut self, d: Duration) {
        self.upstream = Some(d);
    }

    /// Wraps the request body so its bytes are counted as it streams upstream. A body known to be
    /// empty is not counted (and costs nothing).
    pub fn count_request_body<B: Body>(&mut self, body: B) -> CountingBody<B> {
        let counter = (!body.is_end_stream()).then(|| {
            let c = Arc::new(AtomicU64::new(0));
            self.bytes_in = Some(Arc::clone(&c));
            c
        });
        CountingBody {
            inner: body,
            counter,
        }
    }

    /// Attaches the exchange to the response: metrics and the access log line are recorded when
    /// its body ends or is dropped.
    pub fn finish<B>(self, resp: Response<B>) -> Response<ObservedBody<B>> {
        let status = resp.status();
        resp.map(|inner| ObservedBody {
            inner,
            bytes: 0,
            pending: Some((self, status)),
        })
    }

    /// Records the metrics and queues the access log line, once.
    fn complete(&mut self, status: StatusCode, bytes_out: u64) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let total = self.start.elapsed();
        let bytes_in = self.bytes_in.as_ref().map_or(0, |c| c.load(Relaxed));
        let t = &self.telemetry;
        let series = self.series.as_ref().unwrap_or_else(|| t.series.no_api());
        series.record(
            StatusClass::of(status),
            self.outcome,
            total,
            self.upstream,
            bytes_in,
            bytes_out,
            self.rejection,
            self.error,
        );
        if let Some(a) = &t.analytics {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            a.record(&Observation {
                unix_secs: now,
                api_id: self.series.as_ref().map_or("", |s| s.api_id()),
                developer_id: self.developer_id.as_deref().unwrap_or(""),
                client_id: self.client_id.as_deref().unwrap_or(""),
                status: status.as_u16(),
                latency: total,
                bytes_in,
                bytes_out,
            });
        }
        if let (Some(l), Some(log)) = (self.log.take(), &t.log) {
            log.send(AccessRecord {
                time: l.time,
                request_id: l.request_id,
                api: l.api,
                method: l.method,
                uri: l.uri,
                status: status.as_u16(),
                latency: total,
                upstream_latency: self.upstream,
                identity: l.identity,
                client_id: self.client_id.take(),
                developer_id: self.developer_id.take(),
                bytes_in,
                bytes_out,
            });
        }
    }
}

/// A response body that counts its bytes and completes its [`Exchange`] when it ends.
pub struct ObservedBody<B> {
    inner: B,
    bytes: u64,
    pending: Option<(Exchange, StatusCode)>,
}

impl<B> ObservedBody<B> {
    /// A body that records nothing (the gateway's own endpoints).
    pub fn unobserved(inner: B) -> Self {
        Self {
            inner,
            bytes: 0,
            pending: None,
        }
    }

    fn complete(&mut self) {
        if let Some((mut ex, status)) = self.pending.take() {
            ex.complete(status, self.bytes);
        }
    }
}

impl<B> std::fmt::Debug for ObservedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedBody")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl<B> Drop for ObservedBody<B> {
    fn drop(&mut self) {
        self.complete();
    }
}

impl<B: Body + Unpin> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.bytes += d.remaining() as u64;
                }
                // Complete before the last bytes are written, so whoever reads the whole
                // response sees its metrics.
                if this.inner.is_end_stream() {
                    this.complete();
                }
            }
            Poll::Ready(None | Some(Err(_))) => this.complete(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that counts its bytes into its [`Exchange`] as they stream.
pub struct CountingBody<B> {
    inner: B,
    counter: Option<Arc<AtomicU64>>,
}

impl<B> CountingBody<B> {
    /// A body that counts nothing.
    pub fn uncounted(inner: B) -> Self {
        Self {
            inner,
            counter: None,
        }
    }
}

impl<B> std::fmt::Debug for CountingBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingBody")
            .field("counted", &self.counter.as_ref().map(|c| c.load(Relaxed)))
            .finish_non_exhaustive()
    }
}

impl<B: Body + Unpin> Body for CountingBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(c)) = (&polled, &this.counter)
            && let Some(d) = frame.data_ref()
        {
            c.fetch_add(d.remaining() as u64, Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
