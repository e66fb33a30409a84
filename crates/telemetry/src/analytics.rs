//! Per-minute analytics: request counts per API, developer, OAuth client and status class, with a
//! latency histogram so that readers can merge minutes and compute percentiles.
//!
//! The request path calls [`AnalyticsRecorder::record`] when an [`crate::Exchange`] completes:
//! one hash, one short critical section on one of [`SHARDS`] mutexes, a few additions. No I/O,
//! no await. A background task (`gatehouse_gateway::analytics`) calls
//! [`AnalyticsRecorder::drain`] every few seconds and *adds* the drained counters to the
//! database, so several gateway nodes and restarts sum up.
//!
//! Memory is bounded: at most `max_keys` distinct keys wait between two flushes; a request whose
//! key is new beyond that is not recorded and is counted in `gatehouse_analytics_dropped_total`.
//!
//! Latency percentiles are read from the histogram ([`LATENCY_BOUNDS_US`]): the value reported
//! for a percentile is the upper bound of the bucket that holds it (so "p95 = 25 ms" means 95 % of
//! the requests took at most 25 ms); in the last, open bucket it is that bucket's lower bound
//! (30 s, "at least").

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use parking_lot::Mutex;

/// Upper bounds (microseconds) of the latency buckets; a last, open bucket follows.
pub const LATENCY_BOUNDS_US: [u64; 15] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// Number of latency buckets (the bounds plus the open one).
pub const BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

/// Lock shards of the recorder.
pub const SHARDS: usize = 16;

/// Distinct keys kept between two flushes by default.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// What one analytics row is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AnalyticsKey {
    /// Unix seconds / 60.
    pub minute: i64,
    /// The API id (`""`: no API matched).
    pub api_id: String,
    /// The developer owning the client (`""`: none).
    pub developer_id: String,
    /// The OAuth client id (`""`: none).
    pub client_id: String,
    /// 1..=5 for 1xx..5xx.
    pub status_class: u8,
}

/// The counters of one key. Errors are the requests of status classes 4 and 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Requests.
    pub requests: u64,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
    /// Sum of the latencies, microseconds.
    pub latency_us_sum: u64,
    /// Requests per latency bucket ([`LATENCY_BOUNDS_US`], then the open bucket).
    pub latency_hist: [u64; BUCKETS],
}

/// The bucket of a latency.
pub fn bucket_of(latency: Duration) -> usize {
    let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    LATENCY_BOUNDS_US.partition_point(|&b| b < us)
}

impl Counters {
    /// Adds one request.
    pub fn observe(&mut self, latency: Duration, bytes_in: u64, bytes_out: u64) {
        self.requests += 1;
        self.bytes_in = self.bytes_in.saturating_add(bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(bytes_out);
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_us_sum = self.latency_us_sum.saturating_add(us);
        self.latency_hist[bucket_of(latency)] += 1;
    }

    /// Adds another key's counters (another minute, node or status class).
    pub fn merge(&mut self, o: &Counters) {
        self.requests = self.requests.saturating_add(o.requests);
        self.bytes_in = self.bytes_in.saturating_add(o.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(o.bytes_out);
        self.latency_us_sum = self.latency_us_sum.saturating_add(o.latency_us_sum);
        for (a, b) in self.latency_hist.iter_mut().zip(o.latency_hist.iter()) {
            *a = a.saturating_add(*b);
        }
    }

    /// The `q`-quantile (0 < q <= 1) of the latency in milliseconds; `None` without requests.
    pub fn percentile_ms(&self, q: f64) -> Option<f64> {
        percentile_us(&self.latency_hist, q).map(|us| us as f64 / 1000.0)
    }

    /// Mean latency in milliseconds; `None` without requests.
    pub fn mean_ms(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.latency_us_sum as f64 / self.requests as f64 / 1000.0)
    }
}

/// The `q`-quantile of a latency histogram in microseconds: the upper bound of the bucket holding
/// the request of rank `ceil(q × total)` (the open bucket: its lower bound). `None` when empty.
pub fn percentile_us(hist: &[u64], q: f64) -> Option<u64> {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    let q = if q.is_finite() {
        q.clamp(0.0, 1.0)
    } else {
        1.0
    };
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0u64;
    for (i, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(
                LATENCY_BOUNDS_US
                    .get(i)
                    .copied()
                    .unwrap_or(LATENCY_BOUNDS_US[LATENCY_BOUNDS_US.len() - 1]),
            );
        }
    }
    LATENCY_BOUNDS_US.last().copied()
}

/// The status class (1..=5) of a status code; anything from 500 up is 5.
pub fn status_class(status: u16) -> u8 {
    match status {
        0..=199 => 1,
        200..=299 => 2,
        300..=399 => 3,
        400..=499 => 4,
        _ => 5,
    }
}

/// A borrowed key, to look up without allocating.
#[derive(PartialEq, Eq, Hash)]
struct KeyRef<'a> {
    minute: i64,
    api_id: &'a str,
    developer_id: &'a str,
    client_id: &'a str,
    status_class: u8,
}

trait KeyView {
    fn view(&self) -> KeyRef<'_>;
}

impl KeyView for AnalyticsKey {
    fn view(&self) -> KeyRef<'_> {
        KeyRef {
            minute: self.minute,
            api_id: &self.api_id,
            developer_id: &self.developer_id,
            client_id: &self.client_id,
            status_class: self.status_class,
        }
    }
}

impl KeyView for KeyRef<'_> {
    fn view(&self) -> KeyRef<'_> {
        KeyRef { ..*self }
    }
}

impl Hash for AnalyticsKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.view().hash(h);
    }
}

impl<'a> Borrow<dyn KeyView + 'a> for AnalyticsKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

impl Hash for dyn KeyView + '_ {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.view().hash(h);
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.view() == other.view()
    }
}

impl Eq for dyn KeyView + '_ {}

/// Collects analytics in memory until they are drained (see the module docs).
pub struct AnalyticsRecorder {
    shards: Box<[Mutex<HashMap<AnalyticsKey, Counters>>]>,
    shard_hasher: RandomState,
    keys: AtomicUsize,
    max_keys: usize,
    dropped: AtomicU64,
    flush_failures: AtomicU64,
}

impl std::fmt::Debug for AnalyticsRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyticsRecorder")
            .field("keys", &self.keys.load(Relaxed))
            .field("max_keys", &self.max_keys)
            .field("dropped", &self.dropped.load(Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for AnalyticsRecorder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_KEYS)
    }
}

/// One request, as the recorder sees it.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// Unix seconds at completion.
    pub unix_secs: i64,
    /// API id (`""`: none matched).
    pub api_id: &'a str,
    /// Developer id (`""`: none).
    pub developer_id: &'a str,
    /// Client id (`""`: none).
    pub client_id: &'a str,
    /// The HTTP status.
    pub status: u16,
    /// Headers received to the end of the response body.
    pub latency: Duration,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
}

impl AnalyticsRecorder {
    /// A recorder keeping at most `max_keys` distinct keys between flushes (at least 1).
    pub fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            shard_hasher: RandomState::new(),
            keys: AtomicUsize::new(0),
            max_keys: max_keys.max(1),
            dropped: AtomicU64::new(0),
            flush_failures: AtomicU64::new(0),
        }
    }

    fn shard(&self, k: &KeyRef<'_>) -> &Mutex<HashMap<AnalyticsKey, Counters>> {
        let h = self.shard_hasher.hash_one(k);
        &self.shards[(h as usize) % SHARDS]
    }

    /// Records one request (the request path: no I/O, no await).
    pub fn record(&self, o: &Observation<'_>) {
        let k = KeyRef {
            minute: o.unix_secs.div_euclid(60),
            api_id: o.api_id,
            developer_id: o.developer_id,
            client_id: o.client_id,
            status_class: status_class(o.status),
        };
        let mut map = self.shard(&k).lock();
        if let Some(c) = map.get_mut(&k as &dyn KeyView) {
            c.observe(o.latency, o.bytes_in, o.bytes_out);
            return;
        }
        if self.keys.fetch_add(1, Relaxed) >= self.max_keys {
            self.keys.fetch_sub(1, Relaxed);
            drop(map);
            self.dropped.fetch_add(1, Relaxed);
            return;
        }
        let mut c = Counters::default();
        c.observe(o.latency, o.bytes_in, o.bytes_out);
        map.insert(
            AnalyticsKey {
                minute: k.minute,
                api_id: k.api_id.to_owned(),
                developer_id: k.developer_id.to_owned(),
                client_id: k.client_id.to_owned(),
                status_class: k.status_class,
            },
            c,
        );
    }

    /// Takes everything recorded so far, sorted by key.
    pub fn drain(&self) -> Vec<(AnalyticsKey, Counters)> {
        let mut out = Vec::new();
        for s in self.shards.iter() {
            let taken = std::mem::take(&mut *s.lock());
            self.keys.fetch_sub(taken.len(), Relaxed);
            out.extend(taken);
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Puts drained entries back (their write failed), merging with what arrived since; entries
    /// beyond the key limit are dropped and counted.
    pub fn restore(&self, entries: Vec<(AnalyticsKey, Counters)>) {
        self.flush_failures.fetch_add(1, Relaxed);
        for (k, c) in entries {
            let mut map = self.shard(&k.view()).lock();
            if let Some(e) = map.get_mut(&k) {
                e.merge(&c);
                continue;
            }
            if self.keys.fetch_add(1, Relaxed) >= self.max_keys {
                self.keys.fetch_sub(1, Relaxed);
                self.dropped.fetch_add(c.requests, Relaxed);
                continue;
            }
            map.insert(k, c);
        }
    }

    /// Requests not recorded because the key limit was reached.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Flushes whose write failed (their data was kept for the next one).
    pub fn flush_failures(&self) -> u64 {
        self.flush_failures.load(Relaxed)
    }

    /// Distinct keys waiting for the next flush.
    pub fn pending_keys(&self) -> usize {
        self.keys.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs<'a>(api: &'a str, client: &'a str, status: u16, ms: u64) -> Observation<'a> {
        Observation {
            unix_secs: 6_000_030,
            api_id: api,
            developer_id: if client.is_empty() { "" } else { "dev1" },
            client_id: client,
            status,
            latency: Duration::from_millis(ms),
            bytes_in: 3,
            bytes_out: 10,
        }
    }

    #[test]
    fn buckets_and_classes() {
        assert_eq!(bucket_of(Duration::from_micros(0)), 0);
        assert_eq!(bucket_of(Duration::from_micros(500)), 0);
        assert_eq!(bucket_of(Duration::from_micros(501)), 1);
        assert_eq!(bucket_of(Duration::from_millis(30_000)), 14);
        assert_eq!(bucket_of(Duration::from_secs(31)), 15);
        assert_eq!(bucket_of(Duration::from_secs(u64::MAX)), 15);
        assert_eq!(
            [100, 204, 301, 404, 499, 503, 600].map(status_class),
            [1, 2, 3, 4, 4, 5, 5]
        );
    }

    #[test]
    fn percentiles_are_bucket_upper_bounds() {
        let mut c = Counters::default();
        assert_eq!(c.percentile_ms(0.5), None);
        assert_eq!(c.mean_ms(), None);
        // 90 fast (<= 1 ms), 9 at 20 ms (<= 25 ms), 1 at 40 s (open bucket).
        for _ in 0..90 {
            c.observe(Duration::from_micros(800), 0, 0);
        }
        for _ in 0..9 {
            c.observe(Duration::from_millis(20), 0, 0);
        }
        c.observe(Duration::from_secs(40), 0, 0);
        assert_eq!(c.requests, 100);
        assert_eq!(c.percentile_ms(0.5), Some(1.0));
        assert_eq!(c.percentile_ms(0.90), Some(1.0));
        assert_eq!(c.percentile_ms(0.91), Some(25.0));
        assert_eq!(c.percentile_ms(0.99), Some(25.0));
        assert_eq!(c.percentile_ms(1.0), Some(30_000.0));
        assert_eq!(c.percentile_ms(0.0), Some(1.0), "rank at least 1");
        assert_eq!(c.percentile_ms(f64::NAN), Some(30_000.0));
        let mean = c.mean_ms().unwrap();
        assert!((mean - (90.0 * 0.8 + 9.0 * 20.0 + 40_000.0) / 100.0).abs() < 1e-9);
    }

    #[test]
    fn merging_equals_observing_everything_in_one() {
        let lat = [1u64, 3, 7, 70, 700, 7_000, 70_000];
        let mut all = Counters::default();
        let mut a = Counters::default();
        let mut b = Counters::default();
        for (i, ms) in lat.iter().enumerate() {
            let d = Duration::from_millis(*ms);
            all.observe(d, i as u64, 1);
            if i % 2 == 0 {
                a.observe(d, i as u64, 1)
            } else {
                b.observe(d, i as u64, 1)
            }
        }
        a.merge(&b);
        assert_eq!(a, all);
        for q in [0.5, 0.95, 0.99] {
            assert_eq!(a.percentile_ms(q), all.percentile_ms(q));
        }
        assert_eq!(all.bytes_in, 21);
        assert_eq!(all.bytes_out, 7);
    }

    #[test]
    fn the_recorder_groups_by_key_and_drains_once() {
        let r = AnalyticsRecorder::new(100);
        for _ in 0..7 {
            r.record(&obs("a", "c1", 200, 2));
        }
        for _ in 0..3 {
            r.record(&obs("a", "c1", 401, 1));
        }
        r.record(&obs("b", "", 503, 1));
        let mut next_minute = obs("a", "c1", 200, 2);
        next_minute.unix_secs += 60;
        r.record(&next_minute);
        assert_eq!(r.pending_keys(), 4);
        let d = r.drain();
        assert_eq!(r.pending_keys(), 0);
        assert!(r.drain().is_empty());
        let got: Vec<(i64, &str, &str, u8, u64)> = d
            .iter()
            .map(|(k, c)| {
                (
                    k.minute,
                    k.api_id.as_str(),
                    k.client_id.as_str(),
                    k.status_class,
                    c.requests,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (100_000, "a", "c1", 2, 7),
                (100_000, "a", "c1", 4, 3),
                (100_000, "b", "", 5, 1),
                (100_001, "a", "c1", 2, 1),
            ]
        );
        assert_eq!(d[0].0.developer_id, "dev1");
        assert_eq!(d[0].1.bytes_in, 21);
        assert_eq!(d[0].1.bytes_out, 70);
        assert_eq!(d[0].1.latency_us_sum, 14_000);
    }

    #[test]
    fn keys_beyond_the_limit_are_dropped_and_counted_and_restore_merges() {
        let r = AnalyticsRecorder::new(2);
        r.record(&obs("a", "", 200, 1));
        r.record(&obs("b", "", 200, 1));
        r.record(&obs("c", "", 200, 1));
        r.record(&obs("c", "", 200, 1));
        r.record(&obs("a", "", 200, 1)); // existing key: still counted
        assert_eq!(r.dropped(), 2);
        let d = r.drain();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].1.requests, 2);
        // A failed flush puts the data back, merged with newer requests.
        r.record(&obs("a", "", 200, 1));
        r.restore(d);
        assert_eq!(r.flush_failures(), 1);
        let d = r.drain();
        assert_eq!(d.iter().map(|(_, c)| c.requests).sum::<u64>(), 4);
        assert_eq!(d[0].1.requests, 3);
    }

    #[test]
    fn concurrent_records_lose_nothing() {
        let r = std::sync::Arc::new(AnalyticsRecorder::new(1000));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let r = std::sync::Arc::clone(&r);
                std::thread::spawn(move || {
                    let api = format!("api{}", t % 2);
                    for i in 0..1000u16 {
                        r.record(&obs(&api, "", 200 + (i % 2) * 200, 1));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let d = r.drain();
        assert_eq!(d.len(), 4);
        assert_eq!(d.iter().map(|(_, c)| c.requests).sum::<u64>(), 4000);
    }
}
