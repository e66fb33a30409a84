//! The access log: one JSON line per request, written by a dedicated thread.
//!
//! The request path hands a finished request's [`AccessRecord`] to a bounded queue with
//! `try_send` and goes on: it never waits for the disk, and never wakes the writer, which polls
//! the queue every [`POLL_INTERVAL`]. When the queue is full the line is
//! dropped and counted (`gatehouse_access_log_dropped_total{reason="queue_full"}`). The queue's
//! slots are allocated once, so queuing a record allocates nothing; formatting happens on the
//! writer thread. The writer is an OS thread rather than a task because file and terminal writes
//! block, and a blocking task would stall a single-threaded runtime.
//!
//! A line has these fields, in this order (absent values are `null`):
//!
//! | field | meaning |
//! |---|---|
//! | `time` | when the request arrived, RFC 3339 UTC with milliseconds |
//! | `request_id` | the `X-Request-Id` (the client's when sane, else generated) |
//! | `api_id`, `listen_path` | the API that matched (`null`: none) |
//! | `method`, `path` | the request line; the path never has its query string (it may hold tokens) |
//! | `status` | the status sent |
//! | `latency_ms` | headers in to the end of the response body, in ms (3 decimals) |
//! | `upstream_latency_ms` | upstream request to upstream response headers, in ms (`null`: not proxied) |
//! | `identity`, `client_id`, `developer_id` | who called: the token's identity, OAuth client and the portal developer owning it |
//! | `bytes_in`, `bytes_out` | body bytes read from the client and sent to it |
//!
//! Nothing from the request's headers is logged, so no credential can end up in the log.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, SystemTime};

use http::{HeaderValue, Method, Uri};
use serde::Serialize;

/// Default number of lines that may wait for the writer: 80 ms of traffic at 100,000 requests
/// per second, eight poll intervals.
pub const DEFAULT_QUEUE: usize = 8192;

/// How often the writer looks for queued lines (and so the longest a line waits when the
/// writer keeps up).
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AccessLogTarget {
    /// No access log (the default).
    #[default]
    Off,
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// A file, created if missing, appended to.
    File(PathBuf),
}

impl std::str::FromStr for AccessLogTarget {
    type Err = String;

    /// `off`, `stdout`, `stderr`, or a file path.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "" | "off" => AccessLogTarget::Off,
            "stdout" | "-" => AccessLogTarget::Stdout,
            "stderr" => AccessLogTarget::Stderr,
            path => AccessLogTarget::File(PathBuf::from(path)),
        })
    }
}

/// What the access log needs to know about the API a request matched. Implemented by the
/// gateway's per-API runtime, so a record holds a reference count rather than copies.
pub trait ApiInfo: Send + Sync + 'static {
    /// The API id.
    fn api_id(&self) -> &str;
    /// The listen path.
    fn listen_path(&self) -> &str;
}

/// One finished request, as queued for the writer.
pub struct AccessRecord {
    /// When the request arrived.
    pub time: SystemTime,
    /// The request id.
    pub request_id: HeaderValue,
    /// The API that matched.
    pub api: Option<Arc<dyn ApiInfo>>,
    /// The method.
    pub method: Method,
    /// The request URI (only its path is written).
    pub uri: Uri,
    /// The status sent.
    pub status: u16,
    /// Total latency.
    pub latency: Duration,
    /// Upstream latency.
    pub upstream_latency: Option<Duration>,
    /// The identity (token subject or configured base field).
    pub identity: Option<String>,
    /// The OAuth client id from the token.
    pub client_id: Option<String>,
    /// The portal developer owning the client.
    pub developer_id: Option<String>,
    /// Request body bytes read.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
}

impl std::fmt::Debug for AccessRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessRecord")
            .field("request_id", &self.request_id)
            .field("path", &self.uri.path())
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Line<'a> {
    time: &'a str,
    request_id: &'a str,
    api_id: Option<&'a str>,
    listen_path: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    status: u16,
    latency_ms: f64,
    upstream_latency_ms: Option<f64>,
    identity: Option<&'a str>,
    client_id: Option<&'a str>,
    developer_id: Option<&'a str>,
    bytes_in: u64,
    bytes_out: u64,
}

/// Milliseconds with microsecond resolution (at most three decimals).
fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

fn rfc3339_millis(t: SystemTime) -> String {
    use time::format_description::well_known::Rfc3339;
    let dt = time::OffsetDateTime::from(t);
    let dt = dt
        .replace_nanosecond(dt.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(dt);
    dt.format(&Rfc3339).unwrap_or_default()
}

impl AccessRecord {
    /// Appends the JSON line (with its newline) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let time = rfc3339_millis(self.time);
        let line = Line {
            time: &time,
            request_id: self.request_id.to_str().unwrap_or(""),
            api_id: self.api.as_ref().map(|a| a.api_id()),
            listen_path: self.api.as_ref().map(|a| a.listen_path()),
            method: self.method.as_str(),
            path: self.uri.path(),
            status: self.status,
            latency_ms: millis(self.latency),
            upstream_latency_ms: self.upstream_latency.map(millis),
            identity: self.identity.as_deref(),
            client_id: self.client_id.as_deref(),
            developer_id: self.developer_id.as_deref(),
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
        };
        // Serialising plain strings and numbers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &line);
        out.push(b'\n');
    }
}

/// Counters of the access log, read by the scrape.
#[derive(Debug, Default)]
pub struct LogCounters {
    /// Lines written.
    pub lines: AtomicU64,
    /// Lines dropped because the queue was full.
    pub queue_full: AtomicU64,
    /// Lines lost because the output failed.
    pub write_errors: AtomicU64,
}

// Records are queued by value into slots allocated once: boxing the large variant would cost an
// allocation per request.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Line(AccessRecord),
    Flush(SyncSender<()>),
}

/// The sending side, held by the telemetry; the writer thread ends when it is dropped.
#[derive(Debug)]
pub(crate) struct AccessLog {
    tx: SyncSender<Msg>,
    counters: Arc<LogCounters>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Line(r) => r.fmt(f),
            Msg::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl AccessLog {
    /// Opens the target and starts the writer thread. `None` for [`AccessLogTarget::Off`].
    pub(crate) fn start(
        target: &AccessLogTarget,
        queue: usize,
        counters: Arc<LogCounters>,
    ) -> std::io::Result<Option<AccessLog>> {
        let out: Box<dyn Write + Send> = match target {
            AccessLogTarget::Off => return Ok(None),
            AccessLogTarget::Stdout => Box::new(std::io::stdout()),
            AccessLogTarget::Stderr => Box::new(std::io::stderr()),
            AccessLogTarget::File(p) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| {
                        std::io::Error::new(
                            e.kind(),
                            format!("cannot open the access log {}: {e}", p.display()),
                        )
                    })?,
            ),
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(queue.max(1));
        let c = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("gatehouse-access-log".into())
            .spawn(move || writer(rx, std::io::BufWriter::with_capacity(64 * 1024, out), &c))?;
        Ok(Some(AccessLog { tx, counters }))
    }

    /// Queues a record without waiting; counts it as dropped when the queue is full.
    pub(crate) fn send(&self, r: AccessRecord) {
        match self.tx.try_send(Msg::Line(r)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.counters.queue_full.fetch_add(1, Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.counters.write_errors.fetch_add(1, Relaxed);
            }
        }
    }

    /// Waits (at most `timeout`) until every queued line is written and flushed.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let (ack_tx, ack_rx) = std::sync::mpsc::sync_channel(1);
        let deadline = std::time::Instant::now() + timeout;
        let mut msg = Msg::Flush(ack_tx);
        // The queue may be full: retry until there is room or the time is up.
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(m)) => {
                    if std::time::Instant::now() >= deadline {
                        return false;
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        ack_rx.recv_timeout(left).is_ok()
    }
}

fn writer(rx: Receiver<Msg>, mut out: impl Write, counters: &LogCounters) {
    let mut buf = Vec::with_capacity(1024);
    let mut failing = false;
    let mut handle = |msg: Msg, out: &mut dyn Write, failing: &mut bool| match msg {
        Msg::Line(r) => {
            buf.clear();
            r.write_json(&mut buf);
            drop(r);
            match out.write_all(&buf) {
                Ok(()) => {
                    counters.lines.fetch_add(1, Relaxed);
                    *failing = false;
                }
                Err(e) => {
                    counters.write_errors.fetch_add(1, Relaxed);
                    if !*failing {
                        tracing::warn!(error = %e, "cannot write the access log; lines are being lost");
                        *failing = true;
                    }
                }
            }
        }
        Msg::Flush(ack) => {
            let _ = out.flush();
            let _ = ack.send(());
        }
    };
    // Polls rather than blocks: a receiver blocked in `recv` would make every `try_send` wake it
    // (a futex call and a context switch per request, measured at a third of the throughput of
    // a one-core gateway). Polling, a send is a lock-free push and nothing more; a line reaches
    // the output within one poll interval.
    loop {
        let mut wrote = false;
        loop {
            match rx.try_recv() {
                Ok(msg) => {
                    handle(msg, &mut out, &mut failing);
                    wrote = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let _ = out.flush();
                    return;
                }
            }
        }
        if wrote
            && let Err(e) = out.flush()
            && !failing
        {
            tracing::warn!(error = %e, "cannot flush the access log");
            failing = true;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Api;
    impl ApiInfo for Api {
        fn api_id(&self) -> &str {
            "api-1"
        }
        fn listen_path(&self) -> &str {
            "/pay/"
        }
    }

    fn record() -> AccessRecord {
        AccessRecord {
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            request_id: HeaderValue::from_static("req-1"),
            api: Some(Arc::new(Api)),
            method: Method::POST,
            uri: "/pay/x?access_token=secret".parse().unwrap(),
            status: 201,
            latency: Duration::from_micros(1_234_567),
            upstream_latency: Some(Duration::from_micros(1500)),
            identity: Some("user-\"1\"".into()),
            client_id: Some("c1".into()),
            developer_id: None,
            bytes_in: 10,
            bytes_out: 20,
        }
    }

    #[test]
    fn line_has_every_field_in_order_and_no_query() {
        let mut buf = Vec::new();
        record().write_json(&mut buf);
        let text = String::from_utf8(buf).unwrap();
        assert!(text.ends_with('\n') && text.matches('\n').count() == 1);
        assert!(!text.contains("secret"), "{text}");
        assert_eq!(
            text.trim_end(),
            r#"{"time":"2023-11-14T22:13:20.123Z","request_id":"req-1","api_id":"api-1","listen_path":"/pay/","method":"POST","path":"/pay/x","status":201,"latency_ms":1234.567,"upstream_latency_ms":1.5,"identity":"user-\"1\"","client_id":"c1","developer_id":null,"bytes_in":10,"bytes_out":20}"#
        );
    }

    #[test]
    fn targets_parse() {
        assert_eq!("off".parse::<AccessLogTarget>(), Ok(AccessLogTarget::Off));
        assert_eq!("".parse::<AccessLogTarget>(), Ok(AccessLogTarget::Off));
        assert_eq!(
            "stdout".parse::<AccessLogTarget>(),
            Ok(AccessLogTarget::Stdout)
        );
        assert_eq!(
            "/var/log/gh.log".parse::<AccessLogTarget>(),
            Ok(AccessLogTarget::File("/var/log/gh.log".into()))
        );
    }

    #[test]
    fn file_writer_writes_flushes_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let counters = Arc::new(LogCounters::default());
        let log = AccessLog::start(
            &AccessLogTarget::File(path.clone()),
            16,
            Arc::clone(&counters),
        )
        .unwrap()
        .unwrap();
        for _ in 0..3 {
            log.send(record());
        }
        assert!(log.flush(Duration::from_secs(10)));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["status"], 201);
        }
        assert_eq!(counters.lines.load(Relaxed), 3);
        assert_eq!(counters.queue_full.load(Relaxed), 0);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        // A writer that blocks until told to go on.
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        struct Gate(Receiver<()>, Vec<u8>);
        impl Write for Gate {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                let _ = self.0.recv();
                self.1.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let counters = Arc::new(LogCounters::default());
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let c = Arc::clone(&counters);
        let t = std::thread::spawn(move || writer(rx, Gate(go_rx, Vec::new()), &c));
        let log = AccessLog {
            tx,
            counters: Arc::clone(&counters),
        };
        // One line may be taken by the writer (blocked in write), two wait in the queue; of the
        // twenty sent, the rest are dropped without blocking this thread.
        for _ in 0..20 {
            log.send(record());
        }
        let dropped = counters.queue_full.load(Relaxed);
        assert!((17..=18).contains(&dropped), "{dropped}");
        drop(log);
        for _ in 0..20 {
            let _ = go_tx.send(());
        }
        drop(go_tx);
        t.join().unwrap();
        assert_eq!(counters.lines.load(Relaxed) + dropped, 20);
    }
}
