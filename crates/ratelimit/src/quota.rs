//! The in-process quota counter, its persistence trait and the in-memory persistence.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::clock::{Clock, SystemClock, duration_to_ns};
use crate::shard::ShardedMap;
use crate::{Decision, LimitError, QuotaCounter, QuotaLimit};

/// One persisted quota counter.
///
/// The window is `[window_start_unix, window_start_unix + window_secs)` in wall-clock unix
/// seconds. A record whose window has ended is worth nothing: it is the same as no record, and a
/// store may delete it (the counter itself saves such records after [`QuotaCounter::reset`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QuotaRecord {
    /// The quota key, e.g. `quota-<scope>-<identity-hash>`.
    pub key: String,
    /// Requests admitted in the window.
    pub used: u64,
    /// Start of the window, unix seconds.
    pub window_start_unix: u64,
    /// Length of the window in seconds; 0 means "no window" (reset).
    pub window_secs: u64,
}

impl QuotaRecord {
    /// Whether the window has ended at `now_unix_secs` (then the record is the same as none).
    pub fn is_expired(&self, now_unix_secs: u64) -> bool {
        self.window_secs == 0
            || now_unix_secs >= self.window_start_unix.saturating_add(self.window_secs)
    }
}

/// Where quota counters live between restarts (the gateway's SQLite/PostgreSQL store).
///
/// `save` is an upsert by key of the whole batch; a batch holds each key at most once. Saves
/// from one counter never overlap in time, so a later save always carries newer values.
#[async_trait]
pub trait QuotaPersistence: Send + Sync {
    /// Every stored record (expired ones may be included; they are skipped).
    async fn load(&self) -> Result<Vec<QuotaRecord>, LimitError>;
    /// Upserts `batch`.
    async fn save(&self, batch: Vec<QuotaRecord>) -> Result<(), LimitError>;
}

/// Quota persistence in a `HashMap`: for tests, and for a gateway run without a store (counters
/// then live as long as the process).
#[derive(Debug, Default)]
pub struct MemoryQuotaPersistence {
    records: Mutex<HashMap<String, QuotaRecord>>,
}

impl MemoryQuotaPersistence {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `records` (later duplicates of a key win).
    pub fn with_records(records: impl IntoIterator<Item = QuotaRecord>) -> Self {
        let s = Self::new();
        s.records
            .lock()
            .extend(records.into_iter().map(|r| (r.key.clone(), r)));
        s
    }

    /// All records, sorted by key.
    pub fn snapshot(&self) -> Vec<QuotaRecord> {
        let mut v: Vec<_> = self.records.lock().values().cloned().collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }

    /// The record for `key`.
    pub fn get(&self, key: &str) -> Option<QuotaRecord> {
        self.records.lock().get(key).cloned()
    }
}

#[async_trait]
impl QuotaPersistence for MemoryQuotaPersistence {
    async fn load(&self) -> Result<Vec<QuotaRecord>, LimitError> {
        Ok(self.records.lock().values().cloned().collect())
    }

    async fn save(&self, batch: Vec<QuotaRecord>) -> Result<(), LimitError> {
        let mut m = self.records.lock();
        for r in batch {
            m.insert(r.key.clone(), r);
        }
        Ok(())
    }
}

/// Settings of [`LocalQuotaCounter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaConfig {
    /// How often the background task saves changed counters. Default 1 s. Zero: no background
    /// task; only explicit [`QuotaCounter::flush`] calls save.
    pub flush_interval: Duration,
    /// Number of lock shards, rounded up to a power of two. Default 64.
    pub shards: usize,
    /// Most keys tracked at once (split evenly between shards). A new key beyond it is refused
    /// with [`LimitError::CapacityExceeded`]. Default 1,000,000.
    pub max_keys: usize,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(1000),
            shards: 64,
            max_keys: 1_000_000,
        }
    }
}

/// Per-key quota state (unix seconds).
#[derive(Debug, Clone, Copy)]
pub(crate) struct QuotaState {
    used: u64,
    window_start: u64,
    /// 0 = no current window.
    window_secs: u64,
    /// Changed since the last flush (the key is then in its shard's dirty list).
    dirty: bool,
}

impl QuotaState {
    const EMPTY: Self = Self {
        used: 0,
        window_start: 0,
        window_secs: 0,
        dirty: false,
    };

    fn window_end(&self) -> u64 {
        self.window_start.saturating_add(self.window_secs)
    }

    fn expired(&self, now_secs: u64) -> bool {
        self.window_secs == 0 || now_secs >= self.window_end()
    }

    /// Idle: nothing to keep in memory (expired and already saved).
    fn is_idle(&self, now_secs: u64) -> bool {
        !self.dirty && self.expired(now_secs)
    }

    /// Time from `now` to the end of the current window.
    fn until_end(&self, now: Duration) -> Duration {
        Duration::from_secs(self.window_end()).saturating_sub(now)
    }

    /// After a policy edit that shortened the period, the current window ends at most one new
    /// period from now. Returns whether the window changed.
    fn clamp_to(&mut self, now_secs: u64, q: QuotaLimit) -> bool {
        if self.window_secs == 0 {
            return false;
        }
        let latest = now_secs.saturating_add(q.window_secs());
        if self.window_end() > latest && latest > self.window_start {
            self.window_secs = latest - self.window_start;
            return true;
        }
        false
    }

    /// The decision for a request at `now` without recording it.
    pub(crate) fn peek(&self, now: Duration, q: QuotaLimit) -> Decision {
        let mut st = *self;
        st.clamp_to(now.as_secs(), q);
        if st.expired(now.as_secs()) {
            // The next request would open a window of `q.period` starting now.
            return if q.max > 0 {
                Decision::allowed(q.max, q.max, Duration::from_secs(q.window_secs()))
            } else {
                Decision::refused(q.max, Duration::from_secs(q.window_secs()))
            };
        }
        if st.used < q.max {
            Decision::allowed(q.max, q.max - st.used, st.until_end(now))
        } else {
            Decision::refused(q.max, st.until_end(now))
        }
    }

    /// Consumes one request if the quota allows it. Returns the decision and whether the state
    /// changed. An ended window is renewed here, lazily, as Tyk does on the next request.
    pub(crate) fn consume(&mut self, now: Duration, q: QuotaLimit) -> (Decision, bool) {
        let now_secs = now.as_secs();
        let clamped = self.clamp_to(now_secs, q);
        if self.expired(now_secs) {
            if q.max == 0 {
                return (self.peek(now, q), clamped);
            }
            self.used = 0;
            self.window_start = now_secs;
            self.window_secs = q.window_secs();
        }
        if self.used < q.max {
            self.used += 1;
            (
                Decision::allowed(q.max, q.max - self.used, self.until_end(now)),
                true,
            )
        } else {
            (Decision::refused(q.max, self.until_end(now)), clamped)
        }
    }
}

/// In-process quota counter with write-behind persistence. See the crate docs.
pub struct LocalQuotaCounter {
    map: ShardedMap<QuotaState>,
    clock: Arc<dyn Clock>,
    persistence: Arc<dyn QuotaPersistence>,
    /// Serialises flushes so saves reach the store in order.
    flush_lock: tokio::sync::Mutex<()>,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for LocalQuotaCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalQuotaCounter")
            .field("map", &self.map)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl LocalQuotaCounter {
    /// Loads every record from `persistence` and starts the background flusher (when
    /// `cfg.flush_interval` is not zero). Must run inside a tokio runtime.
    pub async fn load(
        persistence: Arc<dyn QuotaPersistence>,
        cfg: QuotaConfig,
    ) -> Result<Arc<Self>, LimitError> {
        Self::load_with_clock(persistence, cfg, Arc::new(SystemClock::new())).await
    }

    /// [`LocalQuotaCounter::load`] on the given clock.
    pub async fn load_with_clock(
        persistence: Arc<dyn QuotaPersistence>,
        cfg: QuotaConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, LimitError> {
        let records = persistence.load().await?;
        let map = ShardedMap::new(cfg.shards, cfg.max_keys);
        let now_secs = clock.unix().as_secs();
        // The shard's full-sweep back-off only needs a rough clock: unix time saves a read.
        let now_ns = duration_to_ns(clock.unix());
        let mut skipped = 0usize;
        for r in records {
            if r.is_expired(now_secs) {
                continue;
            }
            let hash = map.hash(&r.key);
            let mut shard = map.lock(hash);
            let inserted = shard.get_or_insert_with(
                hash,
                &r.key,
                now_ns,
                map.max_keys(),
                |st: &QuotaState| st.is_idle(now_secs),
                || QuotaState::EMPTY,
            );
            match inserted {
                Ok(slot) => {
                    let st = &mut slot.value;
                    // A duplicate key keeps the newer window, then the higher count.
                    if (r.window_start_unix, r.used) >= (st.window_start, st.used) {
                        st.used = r.used;
                        st.window_start = r.window_start_unix;
                        st.window_secs = r.window_secs;
                    }
                }
                Err(_) => skipped += 1,
            }
        }
        if skipped > 0 {
            tracing::warn!(
                skipped,
                max_keys = map.max_keys(),
                "quota records beyond max_keys were not loaded; those keys start a fresh window"
            );
        }
        let this = Arc::new(Self {
            map,
            clock,
            persistence,
            flush_lock: tokio::sync::Mutex::new(()),
            flusher: Mutex::new(None),
        });
        if !cfg.flush_interval.is_zero() {
            let handle = tokio::spawn(flush_loop(Arc::downgrade(&this), cfg.flush_interval));
            *this.flusher.lock() = Some(handle);
        }
        Ok(this)
    }

    /// The synchronous decision behind [`QuotaCounter::consume`].
    pub fn consume_now(&self, key: &str, q: QuotaLimit) -> Result<Decision, LimitError> {
        let now = self.clock.unix();
        self.with_state(key, now, |st| st.consume(now, q))
    }

    /// The synchronous decision behind [`QuotaCounter::peek`].
    pub fn peek_now(&self, key: &str, q: QuotaLimit) -> Decision {
        let now = self.clock.unix();
        let hash = self.map.hash(key);
        let mut shard = self.map.lock(hash);
        match shard.get_mut(hash, key) {
            Some(st) => st.peek(now, q),
            None => QuotaState::EMPTY.peek(now, q),
        }
    }

    /// Number of keys currently tracked.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every key whose window has ended and which has been saved. Returns how many.
    pub fn sweep(&self) -> usize {
        let now_secs = self.clock.unix().as_secs();
        let mut removed = 0;
        self.map
            .for_each_shard(|s| removed += s.sweep(|st| st.is_idle(now_secs)));
        removed
    }

    pub(crate) fn now(&self) -> Duration {
        self.clock.unix()
    }

    /// Runs `f` on the state of `key` (created if absent) under its shard lock; marks the key
    /// dirty when `f` reports a change.
    pub(crate) fn with_state<R>(
        &self,
        key: &str,
        now: Duration,
        f: impl FnOnce(&mut QuotaState) -> (R, bool),
    ) -> Result<R, LimitError> {
        let now_secs = now.as_secs();
        // The shard's full-sweep back-off only needs a rough clock: reuse the unix reading.
        let now_ns = duration_to_ns(now);
        let hash = self.map.hash(key);
        let mut shard = self.map.lock(hash);
        let slot = shard.get_or_insert_with(
            hash,
            key,
            now_ns,
            self.map.max_keys(),
            |st: &QuotaState| st.is_idle(now_secs),
            || QuotaState::EMPTY,
        )?;
        let (r, changed) = f(&mut slot.value);
        if changed && !slot.value.dirty {
            slot.value.dirty = true;
            let k = Arc::clone(&slot.key);
            shard.push_dirty(hash, k);
        }
        Ok(r)
    }

    async fn flush_inner(&self) -> Result<(), LimitError> {
        let _serial = self.flush_lock.lock().await;
        let mut batch = Vec::new();
        let mut keys = Vec::new();
        self.map.for_each_shard(|s| {
            let dirty = std::mem::take(&mut s.dirty);
            for (hash, key) in dirty {
                if let Some(st) = s.get_mut(hash, &key)
                    && st.dirty
                {
                    st.dirty = false;
                    batch.push(QuotaRecord {
                        key: key.to_string(),
                        used: st.used,
                        window_start_unix: st.window_start,
                        window_secs: st.window_secs,
                    });
                    keys.push((hash, key));
                }
            }
        });
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len();
        match self.persistence.save(batch).await {
            Ok(()) => {
                tracing::trace!(records = n, "quota counters saved");
                Ok(())
            }
            Err(e) => {
                // Keep them dirty so the next flush retries with the then-current values.
                for (hash, key) in keys {
                    let mut s = self.map.lock(hash);
                    if let Some(st) = s.get_mut(hash, &key)
                        && !st.dirty
                    {
                        st.dirty = true;
                        s.push_dirty(hash, key);
                    }
                }
                Err(e)
            }
        }
    }
}

/// Saves changed counters every `every` until the counter is dropped.
async fn flush_loop(counter: Weak<LocalQuotaCounter>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate
    loop {
        tick.tick().await;
        let Some(c) = counter.upgrade() else { break };
        if let Err(e) = c.flush_inner().await {
            tracing::warn!(error = %e, "saving quota counters failed; will retry");
        }
    }
}

impl Drop for LocalQuotaCounter {
    fn drop(&mut self) {
        if let Some(h) = self.flusher.get_mut().take() {
            h.abort();
        }
    }
}

#[async_trait]
impl QuotaCounter for LocalQuotaCounter {
    async fn consume(&self, key: &str, q: QuotaLimit) -> Result<Decision, LimitError> {
        self.consume_now(key, q)
    }

    async fn peek(&self, key: &str, q: QuotaLimit) -> Result<Decision, LimitError> {
        Ok(self.peek_now(key, q))
    }

    async fn reset(&self, key: &str) -> Result<(), LimitError> {
        let hash = self.map.hash(key);
        let mut shard = self.map.lock(hash);
        let Some(slot) = shard
            .table
            .find_mut(hash, |s| s.hash == hash && &*s.key == key)
        else {
            return Ok(());
        };
        let was_dirty = slot.value.dirty;
        slot.value = QuotaState {
            dirty: true,
            ..QuotaState::EMPTY
        };
        if !was_dirty {
            let k = Arc::clone(&slot.key);
            shard.push_dirty(hash, k);
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), LimitError> {
        self.flush_inner().await
    }
}
