//! The one accept loop of every listener: the gateway, the dashboard and the portal, plain or TLS.
//!
//! [`AcceptLoop::run`] accepts connections until shutdown, asks the listener's admission function
//! whether to serve each one (the gateway's connection limit lives there, in [`crate::server`]),
//! performs the TLS handshake when the listener has TLS (bounded by the header timeout), serves
//! HTTP/1.1 and HTTP/2 (h2c by prior knowledge, or ALPN over TLS) with hyper, and stops in the
//! same order everywhere:
//!
//! 1. stop accepting; serve the connections the kernel already queued ([`drain_backlog`]: with
//!    `SO_REUSEPORT` the kernel would reset them when the listener closes);
//! 2. tell the listener it is stopping (keep-alive HTTP/1 answers then carry `Connection: close`,
//!    so clients move to the next process between requests) and linger [`SHUTDOWN_LINGER`];
//! 3. graceful shutdown: idle connections closed, HTTP/2 GOAWAY, in-flight requests finish (up to
//!    [`DRAIN_TIMEOUT`]).
//!
//! [`serve_app`] is the loop for the dashboard and portal listeners (any hyper service, every
//! connection admitted). [`bind_reusable`] binds with `SO_REUSEPORT` for the binary upgrade.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// How long in-flight requests may take to finish once shutdown starts.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the last accepted connections get to send their first request before the graceful
/// shutdown starts. Graceful shutdown closes connections with no request in progress at once, and
/// a connection accepted a moment before (or taken from the backlog) usually has its request in
/// the socket, not yet read: without this pause it would be closed unanswered.
pub const SHUTDOWN_LINGER: Duration = Duration::from_millis(1000);

/// A connection the listener agreed to serve: the stream, its service and a guard dropped when
/// the connection ends (the gateway's connection slot; `()` elsewhere).
pub(crate) struct Admitted<S, G> {
    pub(crate) stream: TcpStream,
    pub(crate) service: S,
    pub(crate) guard: G,
}

/// One listener's accept loop: what is the same for every listener.
pub(crate) struct AcceptLoop {
    /// For log lines ("gateway", "dashboard or portal").
    pub(crate) name: &'static str,
    pub(crate) listener: TcpListener,
    /// TLS for every connection, or plain HTTP.
    pub(crate) tls: Option<TlsAcceptor>,
    /// Bounds the TLS handshake.
    pub(crate) handshake_timeout: Duration,
    pub(crate) builder: Arc<auto::Builder<TokioExecutor>>,
}

impl AcceptLoop {
    /// Accepts until `shutdown` completes, then stops as the module documentation says.
    /// `admit` decides per connection (`None`: refused; it answered or closed the stream itself);
    /// `stopping` is called once when accepting has ended, before the linger.
    pub(crate) async fn run<S, B, G>(
        self,
        mut admit: impl FnMut(TcpStream, SocketAddr) -> Option<Admitted<S, G>>,
        stopping: impl FnOnce(),
        shutdown: impl Future<Output = ()>,
    ) where
        S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>>
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        G: Send + 'static,
    {
        let Self {
            name,
            listener,
            tls,
            handshake_timeout,
            builder,
        } = self;
        let graceful = GracefulShutdown::new();
        let mut start = |stream: TcpStream, remote: SocketAddr| {
            let _ = stream.set_nodelay(true);
            let Some(Admitted {
                stream,
                service,
                guard,
            }) = admit(stream, remote)
            else {
                return;
            };
            let watcher = graceful.watcher();
            let builder = Arc::clone(&builder);
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => serve_io(&builder, TokioIo::new(stream), service, watcher).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await
                        {
                            Ok(Ok(s)) => {
                                serve_io(&builder, TokioIo::new(s), service, watcher).await;
                            }
                            Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                            Err(_) => tracing::debug!("TLS handshake timed out"),
                        }
                    }
                }
                drop(guard);
            });
        };
        tokio::pin!(shutdown);
        loop {
            let (stream, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and similar: back off instead of spinning.
                        tracing::warn!(error = %e, listener = name, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            start(stream, remote);
        }
        // Connections the kernel already queued for this listener are served, not reset.
        for (stream, remote) in drain_backlog(listener) {
            start(stream, remote);
        }
        stopping();
        tokio::time::sleep(SHUTDOWN_LINGER).await;
        tokio::select! {
            () = graceful.shutdown() => tracing::info!(listener = name, "listener drained"),
            () = tokio::time::sleep(DRAIN_TIMEOUT) => {
                tracing::warn!(listener = name, "listener drain timed out");
            }
        }
    }
}

/// Binds `addr` with `SO_REUSEADDR` and (on Unix) `SO_REUSEPORT`, so that a second process (the
/// upgraded binary) can listen on the same port while this one still runs.
pub fn bind_reusable(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Takes the connections already queued on `listener` (without waiting) and closes it. With
/// `SO_REUSEPORT`, the kernel resets connections still queued on a listener when it closes;
/// accepting them first leaves only a tiny window for that.
pub fn drain_backlog(listener: TcpListener) -> Vec<(TcpStream, SocketAddr)> {
    let mut out = Vec::new();
    let Ok(std_listener) = listener.into_std() else {
        return out;
    };
    let _ = std_listener.set_nonblocking(true);
    while let Ok((s, remote)) = std_listener.accept() {
        let _ = s.set_nonblocking(true);
        if let Ok(s) = TcpStream::from_std(s) {
            out.push((s, remote));
        }
    }
    out
}

/// A hyper service per connection, given the client's address.
pub trait MakeService: Send + 'static {
    /// The service.
    type Service: hyper::service::Service<
            http::Request<Incoming>,
            Response = http::Response<Self::Body>,
            Error = Self::Error,
            Future: Send + 'static,
        > + Send
        + 'static;
    /// The response body.
    type Body: http_body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static;
    /// The service's error.
    type Error: Into<Box<dyn std::error::Error + Send + Sync>>;
    /// A service for a connection from `remote`.
    fn make(&self, remote: SocketAddr) -> Self::Service;
}

impl<F, S, B, E> MakeService for F
where
    F: Fn(SocketAddr) -> S + Send + 'static,
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>, Error = E>
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Service = S;
    type Body = B;
    type Error = E;
    fn make(&self, remote: SocketAddr) -> S {
        self(remote)
    }
}

/// Serves `make`'s services on `listener` (HTTP/1.1 and HTTP/2; over TLS with `tls`, HTTP/2 by
/// ALPN) until `shutdown` completes; then stops as the [module](self) says. The TLS handshake and
/// the request head must arrive within `handshake_timeout`.
pub async fn serve_app<M: MakeService>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    make: M,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(handshake_timeout);
    builder.http2().timer(TokioTimer::new());
    let closing = Arc::new(AtomicBool::new(false));
    let accept = AcceptLoop {
        name: "app",
        listener,
        tls,
        handshake_timeout,
        builder: Arc::new(builder),
    };
    let admit = |stream, remote| {
        Some(Admitted {
            stream,
            service: CloseWhenStopping {
                inner: make.make(remote),
                closing: Arc::clone(&closing),
            },
            guard: (),
        })
    };
    // As on the gateway listener: keep-alive clients get `Connection: close` on their next
    // answer during the linger, then idle connections are closed.
    let stopping = || closing.store(true, Ordering::Relaxed);
    accept.run(admit, stopping, shutdown).await;
}

/// A connection's service that adds `Connection: close` to HTTP/1 answers once the listener is
/// stopping, so keep-alive clients move on between requests instead of losing one.
struct CloseWhenStopping<S> {
    inner: S,
    closing: Arc<AtomicBool>,
}

impl<S, B> hyper::service::Service<http::Request<Incoming>> for CloseWhenStopping<S>
where
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<http::Response<B>, S::Error>> + Send + 'static>,
    >;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let http1 = req.version() < http::Version::HTTP_2;
        let closing = Arc::clone(&self.closing);
        let answer = self.inner.call(req);
        Box::pin(async move {
            let mut resp = answer.await?;
            if http1 && closing.load(Ordering::Relaxed) {
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            Ok(resp)
        })
    }
}

/// Serves one connection (plain or TLS) with `builder`, watched for graceful shutdown.
pub(crate) async fn serve_io<I, S, B>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    svc: S,
    watcher: Watcher,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = builder.serve_connection(io, svc).into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "client connection ended with an error");
    }
}
