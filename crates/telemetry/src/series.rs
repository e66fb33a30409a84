//! The request metrics' storage: one [`ApiSeries`] per API, made of plain atomics.
//!
//! The request path finds its API's series with one lock-free map read (an `ArcSwap` of a hash
//! map keyed by API id, looked up by `&str`, so nothing is allocated) and then only does relaxed
//! atomic additions. Label values are closed enums ([`crate::outcome`]), so a series is an array
//! slot, not a map entry. The scrape reads everything and encodes the non-empty series.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::names::LATENCY_BUCKETS;
use crate::outcome::{AuthOutcome, ErrorSource, LimitKind, StatusClass};

/// At most this many APIs get their own series; the rest share [`OVERFLOW_API`]. APIs come from
/// the operator's configuration, so this only bounds a process that sees APIs come and go for
/// a very long time.
pub const MAX_API_SERIES: usize = 10_000;

/// The `api` label of requests no API matched.
pub const NO_API: &str = "";

/// The `api` label shared by APIs beyond [`MAX_API_SERIES`].
pub const OVERFLOW_API: &str = "_other";

const BUCKETS: usize = LATENCY_BUCKETS.len();

/// Bucket bounds in microseconds, so an observation compares integers.
const BOUNDS_MICROS: [u64; BUCKETS] = {
    let mut out = [0u64; BUCKETS];
    let mut i = 0;
    while i < BUCKETS {
        out[i] = (LATENCY_BUCKETS[i] * 1_000_000.0) as u64;
        i += 1;
    }
    out
};

/// A fixed-bucket latency histogram of atomics (no lock per observation). The sum is kept in
/// microseconds: 2^64 µs is over 500,000 years of accumulated latency.
#[derive(Debug)]
pub struct Histogram {
    /// Per bucket (not cumulative), the last one is `+Inf`.
    counts: [AtomicU64; BUCKETS + 1],
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_MICROS
            .iter()
            .position(|&b| micros <= b)
            .unwrap_or(BUCKETS);
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(micros, Relaxed);
    }

    /// Sum (seconds), count and the per-bucket counts with their upper bounds (the last is
    /// `+Inf`), as the encoder wants them.
    pub fn snapshot(&self) -> (f64, u64, [(f64, u64); BUCKETS + 1]) {
        let mut buckets = [(f64::INFINITY, 0u64); BUCKETS + 1];
        let mut count = 0;
        for (i, slot) in buckets.iter_mut().enumerate() {
            let n = self.counts[i].load(Relaxed);
            count += n;
            slot.1 = n;
            if i < BUCKETS {
                slot.0 = LATENCY_BUCKETS[i];
            }
        }
        let sum = self.sum_micros.load(Relaxed) as f64 / 1_000_000.0;
        (sum, count, buckets)
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Relaxed)).sum()
    }
}

/// The request metrics of one API.
#[derive(Debug)]
pub struct ApiSeries {
    api_id: Box<str>,
    requests: [[AtomicU64; AuthOutcome::COUNT]; StatusClass::COUNT],
    pub(crate) duration: Histogram,
    pub(crate) upstream: Histogram,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    rejections: [AtomicU64; LimitKind::COUNT],
    errors: [AtomicU64; ErrorSource::COUNT],
}

impl ApiSeries {
    fn new(api_id: &str) -> Self {
        Self {
            api_id: api_id.into(),
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            duration: Histogram::default(),
            upstream: Histogram::default(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            rejections: std::array::from_fn(|_| AtomicU64::new(0)),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// The `api` label value.
    pub fn api_id(&self) -> &str {
        &self.api_id
    }

    /// Records one finished request.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record(
        &self,
        class: StatusClass,
        outcome: AuthOutcome,
        total: Duration,
        upstream: Option<Duration>,
        bytes_in: u64,
        bytes_out: u64,
        rejection: Option<LimitKind>,
        error: Option<ErrorSource>,
    ) {
        self.requests[class.index()][outcome.index()].fetch_add(1, Relaxed);
        self.duration.observe(total);
        if let Some(u) = upstream {
            self.upstream.observe(u);
        }
        if bytes_in > 0 {
            self.bytes_in.fetch_add(bytes_in, Relaxed);
        }
        if bytes_out > 0 {
            self.bytes_out.fetch_add(bytes_out, Relaxed);
        }
        if let Some(r) = rejection {
            self.rejections[r.index()].fetch_add(1, Relaxed);
        }
        if let Some(e) = error {
            self.errors[e.index()].fetch_add(1, Relaxed);
        }
    }

    /// Requests with this status class and outcome so far.
    pub fn requests(&self, class: StatusClass, outcome: AuthOutcome) -> u64 {
        self.requests[class.index()][outcome.index()].load(Relaxed)
    }

    /// Request and response body bytes so far.
    pub fn bytes(&self) -> (u64, u64) {
        (self.bytes_in.load(Relaxed), self.bytes_out.load(Relaxed))
    }

    /// Rejections by this limit so far.
    pub fn rejections(&self, kind: LimitKind) -> u64 {
        self.rejections[kind.index()].load(Relaxed)
    }

    /// Error answers from this source so far.
    pub fn errors(&self, source: ErrorSource) -> u64 {
        self.errors[source.index()].load(Relaxed)
    }

    /// Whether any request was recorded.
    pub fn is_used(&self) -> bool {
        self.duration.count() > 0
    }
}

/// The series of every API seen, by API id.
#[derive(Debug)]
pub struct SeriesTable {
    map: ArcSwap<HashMap<Box<str>, Arc<ApiSeries>>>,
    /// Serialises inserts (copy on write); never taken by a lookup that hits.
    insert: Mutex<()>,
    no_api: Arc<ApiSeries>,
    overflow: Arc<ApiSeries>,
    max: usize,
}

impl Default for SeriesTable {
    fn default() -> Self {
        Self::with_capacity_limit(MAX_API_SERIES)
    }
}

impl SeriesTable {
    /// A table giving at most `max` APIs their own series.
    pub fn with_capacity_limit(max: usize) -> Self {
        Self {
            map: ArcSwap::from_pointee(HashMap::new()),
            insert: Mutex::new(()),
            no_api: Arc::new(ApiSeries::new(NO_API)),
            overflow: Arc::new(ApiSeries::new(OVERFLOW_API)),
            max,
        }
    }

    /// The series of requests no API matched.
    pub fn no_api(&self) -> &Arc<ApiSeries> {
        &self.no_api
    }

    /// The series of `api_id`, created on first use.
    pub fn get(&self, api_id: &str) -> Arc<ApiSeries> {
        if let Some(s) = self.map.load().get(api_id) {
            return Arc::clone(s);
        }
        self.insert_slow(api_id)
    }

    #[cold]
    fn insert_slow(&self, api_id: &str) -> Arc<ApiSeries> {
        let _g = self.insert.lock();
        let cur = self.map.load_full();
        if let Some(s) = cur.get(api_id) {
            return Arc::clone(s);
        }
        if cur.len() >= self.max {
            return Arc::clone(&self.overflow);
        }
        let mut next = HashMap::with_capacity(cur.len() + 1);
        for (k, v) in cur.iter() {
            next.insert(k.clone(), Arc::clone(v));
        }
        let s = Arc::new(ApiSeries::new(api_id));
        next.insert(api_id.into(), Arc::clone(&s));
        self.map.store(Arc::new(next));
        s
    }

    /// Every series with at least one request, sorted by API id (no-API first, overflow last).
    pub fn used(&self) -> Vec<Arc<ApiSeries>> {
        let mut v: Vec<Arc<ApiSeries>> = self
            .map
            .load()
            .values()
            .filter(|s| s.is_used())
            .cloned()
            .collect();
        v.sort_by(|a, b| a.api_id.cmp(&b.api_id));
        if self.no_api.is_used() {
            v.insert(0, Arc::clone(&self.no_api));
        }
        if self.overflow.is_used() {
            v.push(Arc::clone(&self.overflow));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_by_upper_bound() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500)); // exactly on the first bound
        h.observe(Duration::from_micros(501));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(3600));
        let (sum, count, buckets) = h.snapshot();
        assert_eq!(count, 4);
        assert!((sum - (0.0005 + 0.000501 + 0.003 + 3600.0)).abs() < 1e-9);
        assert_eq!(buckets[0], (0.0005, 1));
        assert_eq!(buckets[1], (0.001, 1));
        assert_eq!(buckets[3], (0.005, 1));
        assert_eq!(buckets[BUCKETS], (f64::INFINITY, 1));
    }

    #[test]
    fn table_creates_once_and_overflows() {
        let t = SeriesTable::with_capacity_limit(2);
        let a = t.get("a");
        assert!(Arc::ptr_eq(&a, &t.get("a")));
        let b = t.get("b");
        assert_eq!(b.api_id(), "b");
        let c = t.get("c");
        assert_eq!(c.api_id(), OVERFLOW_API);
        assert!(t.used().is_empty());
        a.record(
            StatusClass::Success,
            AuthOutcome::Ok,
            Duration::from_millis(1),
            None,
            0,
            10,
            None,
            None,
        );
        c.record(
            StatusClass::ClientError,
            AuthOutcome::RateLimited,
            Duration::from_millis(1),
            None,
            0,
            0,
            Some(LimitKind::Rate),
            Some(ErrorSource::Downstream),
        );
        t.no_api().record(
            StatusClass::ClientError,
            AuthOutcome::None,
            Duration::from_millis(1),
            None,
            0,
            0,
            None,
            Some(ErrorSource::Downstream),
        );
        let ids: Vec<String> = t.used().iter().map(|s| s.api_id().to_owned()).collect();
        assert_eq!(ids, ["", "a", "_other"]);
        assert_eq!(a.requests(StatusClass::Success, AuthOutcome::Ok), 1);
        assert_eq!(a.bytes(), (0, 10));
        assert_eq!(c.rejections(LimitKind::Rate), 1);
        assert_eq!(c.errors(ErrorSource::Downstream), 1);
    }
}
