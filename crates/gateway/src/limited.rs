//! Request body size limits: Tyk's `global_size_limit` per API, or the gateway's
//! `max_request_body`.
//!
//! A request whose `Content-Length` is over the limit is answered 413 before the upstream is
//! contacted. A body without a length (chunked, HTTP/2) streams through [`LimitedBody`], which
//! fails the upstream request as soon as one byte too many arrives; the gateway then answers 413
//! (the tripped flag tells it why the upstream request failed).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// A request body that fails once more than `limit` bytes went through (no limit: passes all).
pub struct LimitedBody<B> {
    inner: B,
    /// The limit and the flag set when it is exceeded; `None`: no limit (nothing allocated).
    guard: Option<(u64, Arc<AtomicBool>)>,
    seen: u64,
}

impl<B> LimitedBody<B> {
    /// Wraps `inner`; with a guard, its flag is set when the body passes its limit.
    pub fn new(inner: B, guard: Option<(u64, Arc<AtomicBool>)>) -> Self {
        Self {
            inner,
            guard,
            seen: 0,
        }
    }
}

impl<B> std::fmt::Debug for LimitedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitedBody")
            .field("limit", &self.guard.as_ref().map(|(l, _)| *l))
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
                if let (Some((limit, tripped)), Some(d)) = (&this.guard, frame.data_ref()) {
                    this.seen = this.seen.saturating_add(d.remaining() as u64);
                    if this.seen > *limit {
                        tripped.store(true, Ordering::Relaxed);
                        let limit = *limit;
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge { limit }))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
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
        let flag = Arc::new(AtomicBool::new(false));
        let body = LimitedBody::new(chunks(4, 256), Some((1024, Arc::clone(&flag))));
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(all.len(), 1024);
        assert!(!flag.load(Ordering::Relaxed));

        let body = LimitedBody::new(chunks(5, 256), Some((1024, Arc::clone(&flag))));
        let e = body.collect().await.unwrap_err();
        assert_eq!(e.to_string(), "request body larger than 1024 bytes");
        assert!(flag.load(Ordering::Relaxed));

        let body = LimitedBody::new(chunks(100, 1000), None);
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 100_000);
    }
}
