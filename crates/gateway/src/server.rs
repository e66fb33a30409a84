//! The gateway listener: HTTP/1.1 and HTTP/2 on one port: plain (HTTP/2 by prior knowledge, h2c)
//! or TLS (HTTP/2 by ALPN).
//!
//! Limits that keep the process standing under hostile or excessive load:
//! - **connections**: at most [`GatewayConfig::max_connections`](crate::GatewayConfig) are served
//!   at once; a connection over the limit gets a short `503` JSON answer with `Retry-After` and is
//!   closed, so overload sheds work instead of piling it up (counted in
//!   [`ConnectionStats::refused`], shown on `/hello`);
//! - **slow clients** (slowloris): the request head must arrive within the header timeout, which
//!   also closes keep-alive connections left idle that long;
//! - **request heads** over [`max_header_bytes`](crate::GatewayConfig) are answered `431`;
//! - **bodies** over the API's limit are answered `413` ([`crate::limited`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::pipeline::Gateway;
use crate::tls::{drain_backlog, serve_io};

/// How long in-flight requests may take to finish once shutdown starts.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the last accepted connections get to send their first request before the graceful
/// shutdown starts. Graceful shutdown closes connections with no request in progress at once, and
/// a connection accepted a moment before (or taken from the backlog) usually has its request in
/// the socket, not yet read: without this pause it would be closed unanswered.
pub const SHUTDOWN_LINGER: Duration = Duration::from_millis(1000);

/// The answer to a connection over the limit (written raw: no request is read).
const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 63\r\n\
\r\n\
{\"error\":\"the gateway is at its connection limit; retry later\"}";

/// hyper's limit on a request head: twice the gateway's own (which answers a JSON 431), at
/// least 16 KiB.
fn hyper_head_limit(max_header_bytes: usize) -> usize {
    max_header_bytes.saturating_mul(2).max(16 * 1024)
}

/// Client connection counters.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    open: AtomicU64,
    refused: AtomicU64,
}

impl ConnectionStats {
    /// Connections being served now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections refused by the connection limit since the start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// Serves the gateway over plain HTTP (HTTP/1.1 and h2c); see [`serve_with_tls`].
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) {
    serve_with_tls(listener, gateway, None, shutdown).await;
}

/// Serves the gateway on `listener` until `shutdown` completes, then stops accepting and lets
/// in-flight requests finish (up to [`DRAIN_TIMEOUT`]).
///
/// With `tls`, every connection is a TLS connection (the handshake must end within the header
/// timeout; HTTP/2 when ALPN chose `h2`) and requests are handled with `tls = true`
/// (`X-Forwarded-Proto: https`). A TLS connection over the connection limit is closed before the
/// handshake, without an answer: the plain `503` cannot be read by a TLS client, and a handshake
/// would spend the CPU that load shedding is meant to save (it is counted as refused all the same).
pub async fn serve_with_tls(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let cfg = gateway.config().clone();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.client_header_timeout)
        // The request path answers heads over max_header_bytes with a JSON 431; hyper's own
        // limit (a bodiless 431) only stops heads far larger, before they are buffered whole.
        .max_buf_size(hyper_head_limit(cfg.max_header_bytes))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(
            u32::try_from(hyper_head_limit(cfg.max_header_bytes)).unwrap_or(u32::MAX),
        )
        .keep_alive_interval(Some(cfg.client_header_timeout))
        .keep_alive_timeout(cfg.client_header_timeout);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let start = |mut stream: TcpStream, remote: SocketAddr| {
        let _ = stream.set_nodelay(true);
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            let n = gateway
                .connections()
                .refused
                .fetch_add(1, Ordering::Relaxed)
                + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    refused = n,
                    max = cfg.max_connections,
                    "connection limit reached: refusing connections"
                );
            }
            if tls.is_none() {
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        let _ = stream.write_all(OVERLOADED).await;
                        let _ = stream.shutdown().await;
                    })
                    .await;
                });
            }
            return;
        };
        let gw = Arc::clone(&gateway);
        gw.connections().open.fetch_add(1, Ordering::Relaxed);
        let is_tls = tls.is_some();
        let svc = service_fn(move |req| {
            let gw = Arc::clone(&gw);
            async move { Ok::<_, std::convert::Infallible>(gw.handle(req, remote, is_tls).await) }
        });
        let watcher = graceful.watcher();
        let builder = Arc::clone(&builder);
        let tls = tls.clone();
        let gw = Arc::clone(&gateway);
        let handshake_timeout = cfg.client_header_timeout;
        tokio::spawn(async move {
            match tls {
                None => serve_io(&builder, TokioIo::new(stream), svc, watcher).await,
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => serve_io(&builder, TokioIo::new(s), svc, watcher).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
            gw.connections().open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    };
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "gateway accept failed");
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
    // Keep-alive clients that send another request during the linger get it answered with
    // `Connection: close` (HTTP/1) and reconnect, to the next process in an upgrade; then the
    // graceful shutdown closes idle connections and sends HTTP/2 GOAWAY.
    gateway.begin_close();
    tokio::time::sleep(SHUTDOWN_LINGER).await;
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("gateway drained"),
        () = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("gateway drain timed out"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_overload_answer_is_well_formed() {
        let text = std::str::from_utf8(super::OVERLOADED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, body.len());
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(v["error"].as_str().unwrap().contains("connection limit"));
    }
}
