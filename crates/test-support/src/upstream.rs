//! An HTTP upstream for tests, on 127.0.0.1.
//!
//! - any path: answers `{"upstream": name, "method", "path", "query", "headers": {..}, "body_bytes"}`
//!   (the request body is counted as it streams, never buffered);
//! - `/download/<n>`: streams `n` bytes of `x` in 64 KiB chunks;
//! - `/upload`: counts the streamed request body and answers `{"received": n}`;
//! - `/slow/<ms>`: waits `ms` milliseconds before answering.
//!
//! Every answer carries `x-upstream: <name>` so tests can tell upstreams apart.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running echo upstream; stops when dropped.
pub struct EchoUpstream {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EchoUpstream {
    /// Starts an upstream named `name` on a free port of 127.0.0.1.
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        Self::start_on(name, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts an upstream on `addr` (e.g. the port of one that was stopped, to bring it back).
    /// Dropping it closes its listener and every open connection, as a crashed server would.
    pub async fn start_on(name: &str, addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let name: &'static str = Box::leak(name.to_owned().into_boxed_str());
        let task = tokio::spawn(async move {
            // Connections live in this set, so aborting the task ends them too.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                while conns.try_join_next().is_some() {}
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                conns.spawn(async move {
                    let svc = service_fn(move |req| handle(name, req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Self { addr, task })
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn full(s: String) -> Body {
    Full::new(Bytes::from(s)).boxed()
}

async fn count_body(body: Incoming) -> u64 {
    let mut body = body;
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    n += d.len() as u64;
                }
            }
            Err(_) => break,
        }
    }
    n
}

async fn handle(name: &'static str, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let resp = if let Some(n) = path.strip_prefix("/download/") {
        let total: u64 = n.parse().unwrap_or(0);
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let stream = futures_util::stream::unfold(total, move |left| {
            let chunk = chunk.clone();
            async move {
                if left == 0 {
                    return None;
                }
                let n = left.min(chunk.len() as u64);
                Some((
                    Ok::<_, Infallible>(Frame::data(chunk.slice(..n as usize))),
                    left - n,
                ))
            }
        });
        let mut r = Response::new(StreamBody::new(stream).boxed());
        r.headers_mut()
            .insert("content-length", total.to_string().parse().expect("number"));
        r
    } else if path == "/upload" {
        let n = count_body(req.into_body()).await;
        Response::new(full(serde_json::json!({ "received": n }).to_string()))
    } else {
        if let Some(ms) = path.strip_prefix("/slow/") {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        }
        let method = req.method().to_string();
        let query = req.uri().query().map(str::to_owned);
        let version = format!("{:?}", req.version());
        let mut headers = serde_json::Map::new();
        for (k, v) in req.headers() {
            headers.insert(
                k.as_str().to_owned(),
                serde_json::Value::String(v.to_str().unwrap_or("<binary>").to_owned()),
            );
        }
        let n = count_body(req.into_body()).await;
        let body = serde_json::json!({
            "upstream": name, "method": method, "path": path, "query": query,
            "version": version, "headers": headers, "body_bytes": n,
        });
        let mut r = Response::new(full(body.to_string()));
        r.headers_mut()
            .insert("content-type", "application/json".parse().expect("static"));
        r
    };
    let mut resp = resp;
    resp.headers_mut()
        .insert("x-upstream", name.parse().expect("names are header-safe"));
    Ok(resp)
}
