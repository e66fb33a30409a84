//! Request body size limits: Tyk's `global_size_limit` per API, or the gateway's
//! `max_request_body`.
//!
//! A request whose `Content-Length` is over the limit is answered 413 before the upstream is
//! contacted. A body without a length (chunked, HTTP/2) streams through [`LimitedBody`], which
//! fails the upstream request as soon as one byte too many arrives; the gateway then answers 413.
//! A body the client breaks (a malformed chunked encoding, a connection closed mid-body) also
//! fails the upstream request; the gateway then answers 400, not 502. The shared [`BodyState`]
//! tells the gateway which of the two made the upstream request fail.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};

/// The error a [`LimitedBody`] ends with.
#[derive(Debug, Clone, Copy)]
pub struct BodyTooLarge {
    /// The limit in bytes.
    pub limit: u64,
}

impl std::fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request body larger than {} bytes", self.limit)
    }
}

impl std::error::Error for BodyTooLarge {}

/// Why a request body failed, shared between the body (which sets it) and the gateway (which
/// reads it after the upstream call failed).
#[derive(Debug, Default)]
pub struct BodyState(AtomicU8);

const LIMIT_EXCEEDED: u8 = 1;
const CLIENT_FAILED: u8 = 2;

impl BodyState {
    /// The body passed its size limit.
    pub fn limit_exceeded(&self) -> bool {
        self.0.load(Ordering::Relaxed) == LIMIT_EXCEEDED
    }

    /// The client's body failed (malformed framing, closed early).
    pub fn client_failed(&self) -> bool {
        self.0.load(Ordering::Relaxed) == CLIENT_FAILED
    }
}

/// A request body that fails once more than `limit` bytes went through (no limit: passes all),
/// and records in its [`BodyState`] why it failed.
pub struct LimitedBody<B> {
    inner: B,
    limit: Option<u64>,
    /// `None` for a request without a body (nothing allocated).
    state: Option<Arc<BodyState>>,
    seen: u64,
}

impl<B> LimitedBody<B> {
    /// Wraps `inner` with an optional limit; `state` learns why the body failed.
    pub fn new(inner: B, limit: Option<u64>, state: Option<Arc<BodyState>>) -> Self {
        Self {
            inner,
            limit,
            state,
            seen: 0,
        }
    }

    fn record(&self, why: u8) {
        if let Some(s) = &self.state {
            s.0.store(why, Ordering::Relaxed);
        }
    }
}

impl<B> std::fmt::Debug for LimitedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitedBody")
            .field("limit", &self.limit)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(limit), Some(d)) = (this.limit, frame.data_ref()) {
                    this.seen = this.seen.saturating_add(d.remaining() as u64);
                    if this.seen > limit {
                        this.record(LIMIT_EXCEEDED);
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge { limit }))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.record(CLIENT_FAILED);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, StreamBody};

    fn chunks(
        n: usize,
        size: usize,
    ) -> impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = (0..n)
            .map(|_| Ok(Frame::data(Bytes::from(vec![b'x'; size]))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn passes_up_to_the_limit_and_fails_one_byte_over() {
        let state = Arc::new(BodyState::default());
        let body = LimitedBody::new(chunks(4, 256), Some(1024), Some(Arc::clone(&state)));
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(all.len(), 1024);
        assert!(!state.limit_exceeded());

        let body = LimitedBody::new(chunks(5, 256), Some(1024), Some(Arc::clone(&state)));
        let e = body.collect().await.unwrap_err();
        assert_eq!(e.to_string(), "request body larger than 1024 bytes");
        assert!(state.limit_exceeded());
        assert!(!state.client_failed());

        let body = LimitedBody::new(chunks(100, 1000), None, None);
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 100_000);
    }

    #[tokio::test]
    async fn a_failing_client_body_is_recorded() {
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
            Ok(Frame::data(Bytes::from_static(b"abc"))),
            Err(std::io::Error::other("bad chunk")),
        ];
        let state = Arc::new(BodyState::default());
        let body = LimitedBody::new(
            StreamBody::new(futures_util::stream::iter(frames)),
            None,
            Some(Arc::clone(&state)),
        );
        assert!(body.collect().await.is_err());
        assert!(state.client_failed());
        assert!(!state.limit_exceeded());
    }
}
