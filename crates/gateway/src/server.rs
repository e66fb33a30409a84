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
//!
//! Accepting, TLS, serving and the stop order are [`crate::accept`]'s, shared with the dashboard
//! and portal listeners; this module holds what only the gateway listener does.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::accept::{AcceptLoop, Admitted};
use crate::pipeline::Gateway;

pub use crate::accept::{DRAIN_TIMEOUT, SHUTDOWN_LINGER};

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
    let slots = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    let is_tls = tls.is_some();
    let accept = AcceptLoop {
        name: "gateway",
        listener,
        tls,
        handshake_timeout: cfg.client_header_timeout,
        builder: Arc::new(builder),
    };
    let admit = |mut stream: TcpStream, remote: SocketAddr| {
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
            if !is_tls {
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        let _ = stream.write_all(OVERLOADED).await;
                        let _ = stream.shutdown().await;
                    })
                    .await;
                });
            }
            return None;
        };
        gateway.connections().open.fetch_add(1, Ordering::Relaxed);
        let gw = Arc::clone(&gateway);
        let service = service_fn(move |req| {
            let gw = Arc::clone(&gw);
            async move { Ok::<_, std::convert::Infallible>(gw.handle(req, remote, is_tls).await) }
        });
        Some(Admitted {
            stream,
            service,
            guard: ConnectionSlot {
                _slot: slot,
                gateway: Arc::clone(&gateway),
            },
        })
    };
    // Keep-alive clients that send another request during the linger get it answered with
    // `Connection: close` (HTTP/1) and reconnect, to the next process in an upgrade; then the
    // graceful shutdown closes idle connections and sends HTTP/2 GOAWAY.
    let stopping = || gateway.begin_close();
    accept.run(admit, stopping, shutdown).await;
}

/// A served client connection: its place under the connection limit and the open count, both
/// given back when the connection ends.
struct ConnectionSlot {
    _slot: OwnedSemaphorePermit,
    gateway: Arc<Gateway>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.gateway
            .connections()
            .open
            .fetch_sub(1, Ordering::Relaxed);
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
