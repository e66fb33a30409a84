//! The JWKS cache: one entry per URL, shared by every API that names the URL.
//!
//! Each URL has a background refresher task (spawned when the first API registers the URL, which
//! is the prefetch) and a state snapshot behind an `ArcSwap`, so request paths read keys without
//! locks. Fetches of one URL are serialised by an async mutex: whoever finds the state changed
//! after waiting for it uses the new state instead of fetching again (single flight).
//! On-demand fetches (unknown `kid`, keys missing or past the stale limit) are additionally
//! limited to one per `min_refetch_interval` while the IdP answers; after a fetch that failed
//! because the IdP could not be reached, the next one is allowed `outage_retry_delay` later,
//! doubling per failure up to `min_refetch_interval`, so keys published meanwhile are picked up
//! soon after the IdP is back. Scheduled refreshes follow the TTL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderMap;
use http::header::{ACCEPT, CACHE_CONTROL};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::JwtConfigError;
use crate::keys::KeySet;

/// Settings of the shared [`JwksCache`]. `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksCacheConfig {
    /// Lifetime of a key set when neither the API (`cache_timeout`) nor the IdP (`max-age`) says
    /// otherwise. Default 240 s (Tyk's `jwks.cache.timeout`).
    pub default_ttl: Duration,
    /// Lower bound applied to an IdP's `Cache-Control: max-age`. Default 30 s.
    pub min_ttl: Duration,
    /// Upper bound applied to an IdP's `Cache-Control: max-age`. Default 24 h.
    pub max_ttl: Duration,
    /// At most one on-demand fetch (unknown `kid`, missing or too-stale keys) per URL per this
    /// interval while the IdP answers; also the first retry delay of the background refresher.
    /// Default 10 s.
    pub min_refetch_interval: Duration,
    /// After an on-demand or background fetch failed because the IdP could not be reached
    /// (network error, timeout, 5xx, 408, 429), the next on-demand fetch is allowed this long
    /// after it, doubling with each further failure up to `min_refetch_interval`. Default 0.5 s.
    pub outage_retry_delay: Duration,
    /// How long past its TTL a key set keeps being used while the IdP cannot be reached
    /// (stale-if-error). After that, tokens get 503. Default 24 h.
    pub stale_limit: Duration,
    /// Whole-request timeout of a fetch (connect, headers and body). Default 5 s.
    pub fetch_timeout: Duration,
    /// Largest JWKS document accepted. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Accept any TLS certificate from the IdP (Tyk's `jwt_ssl_insecure_skip_verify`). Default off.
    pub insecure_skip_verify: bool,
    /// Cap of the background refresher's exponential retry delay. Default 5 min.
    pub max_retry_backoff: Duration,
}

impl Default for JwksCacheConfig {
    fn default() -> Self {
        Self {
            default_ttl: Duration::from_secs(240),
            min_ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(24 * 3600),
            min_refetch_interval: Duration::from_secs(10),
            outage_retry_delay: Duration::from_millis(500),
            stale_limit: Duration::from_secs(24 * 3600),
            fetch_timeout: Duration::from_secs(5),
            max_body_bytes: 1024 * 1024,
            insecure_skip_verify: false,
            max_retry_backoff: Duration::from_secs(300),
        }
    }
}

/// Which setting gave a URL its TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlSource {
    /// The API's `jwt_jwks_uris[].cache_timeout` (the shortest, when several APIs set one).
    Configured,
    /// The IdP's `Cache-Control: max-age`, bounded by `min_ttl..=max_ttl`.
    MaxAge,
    /// [`JwksCacheConfig::default_ttl`].
    Default,
}

/// Counters and state of one JWKS URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksUrlStats {
    /// The URL.
    pub url: String,
    /// Validators currently using it.
    pub registrations: usize,
    /// Fetch attempts (any reason).
    pub fetches: u64,
    /// Fetch attempts that failed.
    pub fetch_failures: u64,
    /// Fetches caused by a token with an unknown `kid`.
    pub unknown_kid_refetches: u64,
    /// On-demand fetches refused by `min_refetch_interval`.
    pub refetches_suppressed: u64,
    /// Fetches whose key set differed from the previous one.
    pub key_set_changes: u64,
    /// Keys in the current set.
    pub keys: usize,
    /// Their `kid`s.
    pub kids: Vec<String>,
    /// Time since the last successful fetch (the cache age); `None` when there is no key set.
    pub age: Option<Duration>,
    /// The TTL in force.
    pub ttl: Duration,
    /// Where that TTL comes from.
    pub ttl_source: TtlSource,
    /// Past its TTL (a refresh is due or failing).
    pub stale: bool,
    /// Keys can be used (present and within TTL + stale limit).
    pub usable: bool,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// The error of the latest attempt, if it failed.
    pub last_error: Option<String>,
}

/// Counters of a [`JwksCache`] (totals survive URLs coming and going) and one row per URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwksStats {
    /// Fetch attempts (any reason).
    pub fetches: u64,
    /// Fetch attempts that failed.
    pub fetch_failures: u64,
    /// Fetches caused by a token with an unknown `kid`.
    pub unknown_kid_refetches: u64,
    /// On-demand fetches refused by `min_refetch_interval`.
    pub refetches_suppressed: u64,
    /// Fetches whose key set differed from the previous one.
    pub key_set_changes: u64,
    /// URL flushes (admin).
    pub flushes: u64,
    /// One row per registered URL, sorted by URL.
    pub urls: Vec<JwksUrlStats>,
}

#[derive(Debug, Default)]
struct Counters {
    fetches: AtomicU64,
    failures: AtomicU64,
    unknown_kid_refetches: AtomicU64,
    suppressed: AtomicU64,
    changes: AtomicU64,
    flushes: AtomicU64,
}

/// What the cache shares with its URL entries and their refresher tasks.
pub(crate) struct Shared {
    pub(crate) cfg: JwksCacheConfig,
    client: reqwest::Client,
    totals: Counters,
}

/// Every key-set version in the process gets a distinct generation, so a token-cache entry can
/// never be mistaken as verified by a later (or another cache's) key set.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, Relaxed)
}

/// Why a fetch failed. `transient` = network error, timeout, 5xx, 408 or 429: the IdP may hold
/// keys we cannot see, so an unknown `kid` answers 503, not 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FetchError {
    pub transient: bool,
    pub message: String,
}

/// An immutable view of one URL's keys and fetch history.
#[derive(Debug, Clone)]
pub(crate) struct KeyState {
    /// Bumped on every stored change; single-flight waiters compare it.
    pub seq: u64,
    /// The last good key set (`None`: never fetched, or flushed).
    pub keys: Option<Arc<KeySet>>,
    pub generation: u64,
    pub fetched_at: Option<Instant>,
    pub max_age: Option<Duration>,
    pub last_attempt: Option<Instant>,
    pub last_error: Option<FetchError>,
    pub consecutive_failures: u32,
    pub last_on_demand: Option<Instant>,
    pub flushes: u64,
}

impl KeyState {
    fn empty(flushes: u64, seq: u64) -> Self {
        Self {
            seq,
            keys: None,
            generation: next_generation(),
            fetched_at: None,
            max_age: None,
            last_attempt: None,
            last_error: None,
            consecutive_failures: 0,
            last_on_demand: None,
            flushes,
        }
    }
}

/// Why an on-demand fetch is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// Scheduled refresh, prefetch, or retry.
    Background,
    /// Keys are missing or past the stale limit.
    Load,
    /// A token's `kid` is in no key set.
    UnknownKid,
}

const NO_CONFIGURED_TTL: u64 = u64::MAX;

/// `i + d`, saturating far in the future instead of panicking on absurd durations.
fn later(i: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    i.checked_add(d).or_else(|| i.checked_add(FAR)).unwrap_or(i)
}

/// One JWKS URL.
pub(crate) struct UrlEntry {
    pub(crate) url: Arc<str>,
    state: ArcSwap<KeyState>,
    /// Serialises read-modify-write of `state`.
    write: Mutex<()>,
    /// Serialises fetches (single flight).
    fetch_lock: tokio::sync::Mutex<()>,
    wake: Notify,
    stopped: AtomicBool,
    configured_ttl_ms: AtomicU64,
    /// Registration id → that API's `cache_timeout`. Changed only under the cache's map lock.
    regs: Mutex<Vec<(u64, Option<Duration>)>>,
    counters: Counters,
}

impl UrlEntry {
    fn new(url: &str) -> Self {
        Self {
            url: Arc::from(url),
            state: ArcSwap::from_pointee(KeyState::empty(0, 0)),
            write: Mutex::new(()),
            fetch_lock: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            stopped: AtomicBool::new(false),
            configured_ttl_ms: AtomicU64::new(NO_CONFIGURED_TTL),
            regs: Mutex::new(Vec::new()),
            counters: Counters::default(),
        }
    }

    fn bump(&self, shared: &Shared, pick: impl Fn(&Counters) -> &AtomicU64) {
        pick(&self.counters).fetch_add(1, Relaxed);
        pick(&shared.totals).fetch_add(1, Relaxed);
    }

    /// The current state (cheap, lock-free).
    pub(crate) fn state(&self) -> Arc<KeyState> {
        self.state.load_full()
    }

    fn set_configured_ttl(&self, regs: &[(u64, Option<Duration>)]) {
        let ms = regs
            .iter()
            .filter_map(|(_, t)| *t)
            .min()
            .map_or(NO_CONFIGURED_TTL, |d| {
                u64::try_from(d.as_millis()).unwrap_or(NO_CONFIGURED_TTL - 1)
            });
        if self.configured_ttl_ms.swap(ms, Relaxed) != ms {
            // Let the refresher recompute its deadline.
            self.wake.notify_one();
        }
    }

    /// The TTL in force: per-URL configuration > IdP `max-age` (bounded) > global default.
    pub(crate) fn ttl(&self, st: &KeyState, cfg: &JwksCacheConfig) -> (Duration, TtlSource) {
        let configured = self.configured_ttl_ms.load(Relaxed);
        let (ttl, src) = if configured != NO_CONFIGURED_TTL {
            (Duration::from_millis(configured), TtlSource::Configured)
        } else if let Some(max_age) = st.max_age {
            (
                max_age.clamp(cfg.min_ttl, cfg.max_ttl.max(cfg.min_ttl)),
                TtlSource::MaxAge,
            )
        } else {
            (cfg.default_ttl, TtlSource::Default)
        };
        (ttl.max(Duration::from_secs(1)), src)
    }

    /// The keys, if present and within TTL + stale limit at `now`.
    pub(crate) fn usable<'a>(
        &self,
        st: &'a KeyState,
        cfg: &JwksCacheConfig,
        now: Instant,
    ) -> Option<&'a Arc<KeySet>> {
        let keys = st.keys.as_ref()?;
        let at = st.fetched_at?;
        let (ttl, _) = self.ttl(st, cfg);
        (now < later(later(at, ttl), cfg.stale_limit)).then_some(keys)
    }

    /// Whether a token verified at key-set `generation` may still be served from the token cache.
    pub(crate) fn is_current(&self, generation: u64, cfg: &JwksCacheConfig) -> bool {
        let st = self.state.load();
        st.generation == generation && self.usable(&st, cfg, Instant::now()).is_some()
    }

    /// Whether an unknown `kid` cannot be answered with 401 because the keys are incomplete:
    /// unusable, or the latest fetch attempt failed transiently.
    pub(crate) fn in_doubt(&self, st: &KeyState, cfg: &JwksCacheConfig, now: Instant) -> bool {
        self.usable(st, cfg, now).is_none() || st.last_error.as_ref().is_some_and(|e| e.transient)
    }

    /// Why keys are unavailable, for `KeysUnavailable::reason`.
    pub(crate) fn unavailable_reason(&self, st: &KeyState) -> String {
        match (&st.keys, &st.last_error) {
            (None, Some(e)) => format!("no key set yet: {}", e.message),
            (None, None) => "no key set yet".to_owned(),
            (Some(_), Some(e)) => format!("latest fetch failed: {}", e.message),
            (Some(_), None) => "key set is past the stale limit".to_owned(),
        }
    }

    /// Seconds until an on-demand fetch will be allowed again (at least 1).
    pub(crate) fn retry_after_secs(&self, st: &KeyState, cfg: &JwksCacheConfig) -> u64 {
        let remaining = Self::next_on_demand(st, cfg).map_or(Duration::ZERO, |t| {
            t.saturating_duration_since(Instant::now())
        });
        (remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0)).max(1)
    }

    /// When the next on-demand fetch is allowed (`None`: now). After a failure because the IdP
    /// could not be reached: `outage_retry_delay` after the latest attempt, doubling per
    /// consecutive failure, at most `min_refetch_interval`; so keys published during an outage
    /// are fetched soon after the IdP is back, while a flood of unknown kids still causes at most
    /// one attempt per delay. Otherwise (the IdP answered): `min_refetch_interval` after the
    /// latest on-demand fetch.
    fn next_on_demand(st: &KeyState, cfg: &JwksCacheConfig) -> Option<Instant> {
        let outage = st.last_error.as_ref().is_some_and(|e| e.transient);
        match (outage, st.last_attempt) {
            (true, Some(at)) if st.consecutive_failures > 0 => Some(later(
                at,
                Self::outage_backoff(cfg, st.consecutive_failures),
            )),
            _ => st
                .last_on_demand
                .map(|t| later(t, cfg.min_refetch_interval)),
        }
    }

    fn outage_backoff(cfg: &JwksCacheConfig, failures: u32) -> Duration {
        let cap = cfg.min_refetch_interval;
        let first = cfg.outage_retry_delay.min(cap);
        let shift = failures.saturating_sub(1).min(20);
        first.saturating_mul(1 << shift).min(cap)
    }

    fn backoff(cfg: &JwksCacheConfig, failures: u32) -> Duration {
        let base = cfg.min_refetch_interval.max(Duration::from_millis(100));
        let shift = failures.saturating_sub(1).min(20);
        base.saturating_mul(1 << shift)
            .min(cfg.max_retry_backoff.max(base))
    }

    /// When the refresher should fetch next.
    fn next_due(&self, st: &KeyState, cfg: &JwksCacheConfig) -> Instant {
        let retry = st
            .last_attempt
            .filter(|_| st.consecutive_failures > 0)
            .map(|t| later(t, Self::backoff(cfg, st.consecutive_failures)));
        match (&st.keys, st.fetched_at) {
            (Some(_), Some(at)) => {
                let (ttl, _) = self.ttl(st, cfg);
                let refresh = later(at, ttl - ttl / 10);
                retry.map_or(refresh, |r| r.max(refresh))
            }
            _ => retry.unwrap_or_else(Instant::now),
        }
    }

    /// Fetches now and stores the outcome. The caller holds `fetch_lock`.
    async fn fetch_locked(&self, shared: &Shared, trigger: Trigger) {
        let before = self.state.load_full();
        let started = Instant::now();
        self.bump(shared, |c| &c.fetches);
        if trigger == Trigger::UnknownKid {
            self.bump(shared, |c| &c.unknown_kid_refetches);
        }
        let result = fetch_jwks(shared, &self.url).await;
        let now = Instant::now();

        let _w = self.write.lock();
        let cur = self.state.load_full();
        let mut next = (*cur).clone();
        next.seq += 1;
        if cur.flushes != before.flushes {
            // Flushed while fetching: this response may predate the flush. Drop it; the refresher
            // was woken by the flush and fetches again.
            self.state.store(Arc::new(next));
            return;
        }
        next.last_attempt = Some(now);
        if trigger != Trigger::Background {
            next.last_on_demand = Some(started);
        }
        match result {
            Ok(fetched) => {
                let changed = cur
                    .keys
                    .as_ref()
                    .is_none_or(|k| k.digest() != fetched.keys.digest());
                if changed {
                    next.generation = next_generation();
                    self.bump(shared, |c| &c.changes);
                    tracing::info!(
                        url = %self.url,
                        keys = fetched.keys.len(),
                        kids = ?fetched.keys.kids(),
                        "JWKS key set loaded"
                    );
                }
                next.keys = Some(Arc::new(fetched.keys));
                next.fetched_at = Some(now);
                next.max_age = fetched.max_age;
                next.last_error = None;
                next.consecutive_failures = 0;
            }
            Err(e) => {
                self.bump(shared, |c| &c.failures);
                tracing::warn!(
                    url = %self.url,
                    transient = e.transient,
                    error = %e.message,
                    have_keys = cur.keys.is_some(),
                    "JWKS fetch failed"
                );
                next.last_error = Some(e);
                next.consecutive_failures = next.consecutive_failures.saturating_add(1);
            }
        }
        self.state.store(Arc::new(next));
    }

    /// Fetches on behalf of a request, unless someone else fetched since `seen_seq` was read
    /// (then their result is used) or the next on-demand fetch is not due yet
    /// ([`Self::next_on_demand`]).
    pub(crate) async fn on_demand(&self, shared: &Shared, seen_seq: u64, trigger: Trigger) {
        let _g = self.fetch_lock.lock().await;
        let st = self.state.load_full();
        if st.seq != seen_seq {
            return;
        }
        if Self::next_on_demand(&st, &shared.cfg).is_some_and(|t| Instant::now() < t) {
            self.bump(shared, |c| &c.suppressed);
            return;
        }
        self.fetch_locked(shared, trigger).await;
    }

    /// Forgets the keys and has them fetched again at once.
    fn flush(&self, shared: &Shared) {
        {
            let _w = self.write.lock();
            let cur = self.state.load_full();
            self.state
                .store(Arc::new(KeyState::empty(cur.flushes + 1, cur.seq + 1)));
        }
        self.bump(shared, |c| &c.flushes);
        self.wake.notify_one();
    }

    fn stop(&self) {
        self.stopped.store(true, SeqCst);
        self.wake.notify_one();
    }

    fn stats(&self, cfg: &JwksCacheConfig) -> JwksUrlStats {
        let st = self.state();
        let now = Instant::now();
        let (ttl, ttl_source) = self.ttl(&st, cfg);
        let c = &self.counters;
        JwksUrlStats {
            url: self.url.to_string(),
            registrations: self.regs.lock().len(),
            fetches: c.fetches.load(Relaxed),
            fetch_failures: c.failures.load(Relaxed),
            unknown_kid_refetches: c.unknown_kid_refetches.load(Relaxed),
            refetches_suppressed: c.suppressed.load(Relaxed),
            key_set_changes: c.changes.load(Relaxed),
            keys: st.keys.as_ref().map_or(0, |k| k.len()),
            kids: st.keys.as_ref().map(|k| k.kids()).unwrap_or_default(),
            age: st.fetched_at.map(|t| now.saturating_duration_since(t)),
            ttl,
            ttl_source,
            stale: st.fetched_at.is_none_or(|t| now >= later(t, ttl)),
            usable: self.usable(&st, cfg, now).is_some(),
            consecutive_failures: st.consecutive_failures,
            last_error: st.last_error.as_ref().map(|e| e.message.clone()),
        }
    }
}

/// The background task of one URL: prefetch, refresh before expiry, retry with backoff.
async fn refresher(entry: Arc<UrlEntry>, shared: Arc<Shared>) {
    loop {
        if entry.stopped.load(SeqCst) {
            return;
        }
        let due = entry.next_due(&entry.state(), &shared.cfg);
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            () = entry.wake.notified() => continue,
        }
        let _g = entry.fetch_lock.lock().await;
        if entry.stopped.load(SeqCst) {
            return;
        }
        if entry.next_due(&entry.state(), &shared.cfg) <= Instant::now() {
            entry.fetch_locked(&shared, Trigger::Background).await;
        }
    }
}

/// A validator's hold on a URL. Dropping the last one for a URL removes the URL from the cache
/// and stops its refresher.
pub(crate) struct Registration {
    pub(crate) entry: Arc<UrlEntry>,
    cache: Weak<JwksCache>,
    id: u64,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Registration({})", self.entry.url)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        match self.cache.upgrade() {
            Some(cache) => cache.unregister(&self.entry, self.id),
            None => self.entry.stop(),
        }
    }
}

/// The JWKS cache shared by every API (see the crate docs for the rules it follows).
pub struct JwksCache {
    shared: Arc<Shared>,
    /// The runtime `new` ran in, if any: refreshers are spawned there when `register` is called
    /// from outside a runtime.
    runtime: Option<tokio::runtime::Handle>,
    entries: Mutex<HashMap<String, Arc<UrlEntry>>>,
    next_registration: AtomicU64,
    flush_epoch: AtomicU64,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("config", &self.shared.cfg)
            .field("urls", &self.urls())
            .finish()
    }
}

impl JwksCache {
    /// A cache with its own HTTP client (reqwest, rustls on aws-lc-rs, `fetch_timeout` on every
    /// request, at most 3 redirects). When called within a Tokio runtime, that runtime also runs
    /// the refreshers of validators later built outside any runtime.
    pub fn new(cfg: JwksCacheConfig) -> Result<Arc<Self>, JwtConfigError> {
        let client = reqwest::Client::builder()
            .timeout(cfg.fetch_timeout)
            .connect_timeout(cfg.fetch_timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("gatehouse-jwt/", env!("CARGO_PKG_VERSION")))
            .tls_danger_accept_invalid_certs(cfg.insecure_skip_verify)
            .build()
            .map_err(|e| JwtConfigError::HttpClient(error_chain(&e)))?;
        Ok(Arc::new(Self {
            shared: Arc::new(Shared {
                cfg,
                client,
                totals: Counters::default(),
            }),
            runtime: tokio::runtime::Handle::try_current().ok(),
            entries: Mutex::new(HashMap::new()),
            next_registration: AtomicU64::new(1),
            flush_epoch: AtomicU64::new(0),
        }))
    }

    /// The settings in force.
    pub fn config(&self) -> &JwksCacheConfig {
        &self.shared.cfg
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Bumped by [`flush_all`](Self::flush_all); token-cache entries from an older epoch are void.
    pub(crate) fn flush_epoch(&self) -> u64 {
        self.flush_epoch.load(SeqCst)
    }

    /// Registers a URL for a validator. A new URL gets an entry and a refresher task, whose first
    /// act is the prefetch. Needs a Tokio runtime: the current one, else the one `new` ran in.
    pub(crate) fn register(
        self: &Arc<Self>,
        url: &str,
        cache_timeout: Option<Duration>,
    ) -> Result<Registration, JwtConfigError> {
        let runtime = tokio::runtime::Handle::try_current()
            .ok()
            .or_else(|| self.runtime.clone())
            .ok_or(JwtConfigError::NoRuntime)?;
        let id = self.next_registration.fetch_add(1, Relaxed);
        let mut map = self.entries.lock();
        let entry = match map.get(url) {
            Some(e) => Arc::clone(e),
            None => {
                let e = Arc::new(UrlEntry::new(url));
                map.insert(url.to_owned(), Arc::clone(&e));
                runtime.spawn(refresher(Arc::clone(&e), Arc::clone(&self.shared)));
                e
            }
        };
        {
            let mut regs = entry.regs.lock();
            regs.push((id, cache_timeout));
            entry.set_configured_ttl(&regs);
        }
        drop(map);
        Ok(Registration {
            entry,
            cache: Arc::downgrade(self),
            id,
        })
    }

    fn unregister(&self, entry: &Arc<UrlEntry>, id: u64) {
        let mut map = self.entries.lock();
        let mut regs = entry.regs.lock();
        regs.retain(|(i, _)| *i != id);
        if regs.is_empty() {
            if map.get(&*entry.url).is_some_and(|e| Arc::ptr_eq(e, entry)) {
                map.remove(&*entry.url);
            }
            entry.stop();
        } else {
            entry.set_configured_ttl(&regs);
        }
    }

    /// Forgets every key set (and voids every verified-token cache entry); each URL is fetched
    /// again at once. Returns how many URLs were flushed.
    pub fn flush_all(&self) -> usize {
        self.flush_epoch.fetch_add(1, SeqCst);
        let entries: Vec<_> = self.entries.lock().values().cloned().collect();
        for e in &entries {
            e.flush(&self.shared);
        }
        entries.len()
    }

    /// Forgets the key sets of these URLs (shared with every API using them) and voids the tokens
    /// they verified; each is fetched again at once. Unknown URLs are ignored. Returns how many
    /// URLs were flushed.
    pub fn flush_urls(&self, urls: &[String]) -> usize {
        let entries: Vec<_> = {
            let map = self.entries.lock();
            urls.iter()
                .filter_map(|u| map.get(u.trim()).cloned())
                .collect()
        };
        for e in &entries {
            e.flush(&self.shared);
        }
        entries.len()
    }

    /// The registered URLs, sorted.
    pub fn urls(&self) -> Vec<String> {
        let mut v: Vec<String> = self.entries.lock().keys().cloned().collect();
        v.sort();
        v
    }

    /// Counters and per-URL state, for metrics and the admin API.
    pub fn stats(&self) -> JwksStats {
        let entries: Vec<_> = self.entries.lock().values().cloned().collect();
        let mut urls: Vec<JwksUrlStats> =
            entries.iter().map(|e| e.stats(&self.shared.cfg)).collect();
        urls.sort_by(|a, b| a.url.cmp(&b.url));
        let t = &self.shared.totals;
        JwksStats {
            fetches: t.fetches.load(Relaxed),
            fetch_failures: t.failures.load(Relaxed),
            unknown_kid_refetches: t.unknown_kid_refetches.load(Relaxed),
            refetches_suppressed: t.suppressed.load(Relaxed),
            key_set_changes: t.changes.load(Relaxed),
            flushes: t.flushes.load(Relaxed),
            urls,
        }
    }
}

struct Fetched {
    keys: KeySet,
    max_age: Option<Duration>,
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let msg = inner.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = inner.source();
    }
    s
}

async fn fetch_jwks(shared: &Shared, url: &str) -> Result<Fetched, FetchError> {
    let transient = |message: String| FetchError {
        transient: true,
        message,
    };
    let permanent = |message: String| FetchError {
        transient: false,
        message,
    };
    let mut resp = shared
        .client
        .get(url)
        .header(
            ACCEPT,
            "application/jwk-set+json, application/json;q=0.9, */*;q=0.1",
        )
        .send()
        .await
        .map_err(|e| transient(error_chain(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        let message = format!("HTTP {status}");
        let is_transient = status.is_server_error()
            || status == http::StatusCode::TOO_MANY_REQUESTS
            || status == http::StatusCode::REQUEST_TIMEOUT;
        return Err(FetchError {
            transient: is_transient,
            message,
        });
    }
    let max_age = cache_control_max_age(resp.headers());
    let limit = shared.cfg.max_body_bytes;
    if resp
        .content_length()
        .is_some_and(|l| l > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Err(permanent(format!("JWKS is larger than {limit} bytes")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| transient(format!("reading the body: {}", error_chain(&e))))?
    {
        if body.len() + chunk.len() > limit {
            return Err(permanent(format!("JWKS is larger than {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    let keys = KeySet::from_jwks_json(&body).map_err(permanent)?;
    Ok(Fetched { keys, max_age })
}

/// `Cache-Control: max-age=N` with N > 0. `no-store`/`no-cache` (and `max-age=0`) give `None`:
/// keys must stay in memory between requests, so the global default applies instead.
pub(crate) fn cache_control_max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut max_age = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return None;
            }
            if name.eq_ignore_ascii_case("max-age")
                && let Some(secs) = arg.and_then(|a| a.parse::<u64>().ok())
            {
                max_age = Some(secs);
            }
        }
    }
    max_age.filter(|s| *s > 0).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn cc(values: &[&str]) -> Option<Duration> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        }
        cache_control_max_age(&h)
    }

    #[test]
    fn cache_control_parsing() {
        assert_eq!(cc(&[]), None);
        assert_eq!(cc(&["max-age=300"]), Some(Duration::from_secs(300)));
        assert_eq!(
            cc(&["public, Max-Age=\"60\", must-revalidate"]),
            Some(Duration::from_secs(60))
        );
        assert_eq!(cc(&["public", "max-age=7"]), Some(Duration::from_secs(7)));
        assert_eq!(cc(&["max-age=0"]), None);
        assert_eq!(cc(&["no-cache"]), None);
        assert_eq!(cc(&["max-age=100, no-store"]), None);
        assert_eq!(cc(&["max-age=abc"]), None);
        assert_eq!(cc(&["s-maxage=100"]), None);
    }

    fn state_with(keys: bool, max_age: Option<u64>) -> KeyState {
        let mut st = KeyState::empty(0, 0);
        if keys {
            st.keys = Some(Arc::new(KeySet::from_jwks_json(br#"{"keys":[]}"#).unwrap()));
            st.fetched_at = Some(Instant::now());
        }
        st.max_age = max_age.map(Duration::from_secs);
        st
    }

    #[test]
    fn ttl_precedence_configured_then_max_age_then_default() {
        let cfg = JwksCacheConfig::default();
        let e = UrlEntry::new("http://x/jwks");
        let st = state_with(true, None);
        assert_eq!(
            e.ttl(&st, &cfg),
            (Duration::from_secs(240), TtlSource::Default)
        );
        let st = state_with(true, Some(600));
        assert_eq!(
            e.ttl(&st, &cfg),
            (Duration::from_secs(600), TtlSource::MaxAge)
        );
        let st_small = state_with(true, Some(5));
        assert_eq!(e.ttl(&st_small, &cfg).0, cfg.min_ttl, "max-age floor");
        let st_big = state_with(true, Some(10 * 24 * 3600));
        assert_eq!(e.ttl(&st_big, &cfg).0, cfg.max_ttl, "max-age ceiling");
        e.set_configured_ttl(&[(1, Some(Duration::from_secs(90))), (2, None)]);
        assert_eq!(
            e.ttl(&st, &cfg),
            (Duration::from_secs(90), TtlSource::Configured)
        );
        e.set_configured_ttl(&[
            (1, Some(Duration::from_secs(90))),
            (2, Some(Duration::from_secs(45))),
        ]);
        assert_eq!(e.ttl(&st, &cfg).0, Duration::from_secs(45), "shortest wins");
        e.set_configured_ttl(&[(2, None)]);
        assert_eq!(e.ttl(&st, &cfg).1, TtlSource::MaxAge);
    }

    #[test]
    fn usable_until_ttl_plus_stale_limit() {
        let cfg = JwksCacheConfig {
            default_ttl: Duration::from_secs(10),
            stale_limit: Duration::from_secs(20),
            ..JwksCacheConfig::default()
        };
        let e = UrlEntry::new("http://x/jwks");
        let st = state_with(true, None);
        let at = st.fetched_at.unwrap();
        assert!(e.usable(&st, &cfg, at).is_some());
        assert!(e.usable(&st, &cfg, at + Duration::from_secs(29)).is_some());
        assert!(e.usable(&st, &cfg, at + Duration::from_secs(30)).is_none());
        assert!(e.usable(&state_with(false, None), &cfg, at).is_none());
    }

    #[test]
    fn refresh_is_due_before_expiry_and_backs_off_on_failure() {
        let cfg = JwksCacheConfig {
            default_ttl: Duration::from_secs(100),
            min_refetch_interval: Duration::from_secs(10),
            max_retry_backoff: Duration::from_secs(60),
            ..JwksCacheConfig::default()
        };
        let e = UrlEntry::new("http://x/jwks");
        let mut st = state_with(true, None);
        let at = st.fetched_at.unwrap();
        assert_eq!(e.next_due(&st, &cfg), at + Duration::from_secs(90));
        st.last_attempt = Some(at + Duration::from_secs(90));
        st.consecutive_failures = 1;
        assert_eq!(e.next_due(&st, &cfg), at + Duration::from_secs(100));
        st.consecutive_failures = 3;
        assert_eq!(e.next_due(&st, &cfg), at + Duration::from_secs(130));
        st.consecutive_failures = 30;
        assert_eq!(
            e.next_due(&st, &cfg),
            at + Duration::from_secs(150),
            "capped"
        );
        let fresh = KeyState::empty(0, 0);
        assert!(
            e.next_due(&fresh, &cfg) <= Instant::now(),
            "prefetch at once"
        );
    }

    #[test]
    fn absurd_durations_saturate_instead_of_panicking() {
        let cfg = JwksCacheConfig {
            default_ttl: Duration::MAX,
            stale_limit: Duration::MAX,
            min_refetch_interval: Duration::MAX,
            outage_retry_delay: Duration::MAX,
            max_retry_backoff: Duration::MAX,
            ..JwksCacheConfig::default()
        };
        let e = UrlEntry::new("http://x/jwks");
        let mut st = state_with(true, None);
        assert!(e.usable(&st, &cfg, Instant::now()).is_some());
        assert!(e.next_due(&st, &cfg) > Instant::now());
        st.consecutive_failures = 40;
        st.last_attempt = Some(Instant::now());
        st.last_on_demand = Some(Instant::now());
        let _ = e.next_due(&st, &cfg);
        assert!(e.retry_after_secs(&st, &cfg) > 1);
        st.last_error = Some(FetchError {
            transient: true,
            message: "down".into(),
        });
        assert!(e.retry_after_secs(&st, &cfg) > 1);
        let _ = e.stats(&cfg); // no panic on the entry's own (empty) state either
    }

    #[test]
    fn on_demand_fetches_back_off_from_half_a_second_after_an_outage() {
        let cfg = JwksCacheConfig::default();
        let now = Instant::now();
        let mut st = state_with(true, None);
        assert_eq!(
            UrlEntry::next_on_demand(&st, &cfg),
            None,
            "never fetched on demand"
        );
        // The IdP answered: the normal interval after the latest on-demand fetch.
        st.last_on_demand = Some(now);
        st.last_attempt = Some(now);
        assert_eq!(
            UrlEntry::next_on_demand(&st, &cfg),
            Some(now + Duration::from_secs(10))
        );
        st.last_error = Some(FetchError {
            transient: false,
            message: "HTTP 404".into(),
        });
        st.consecutive_failures = 1;
        assert_eq!(
            UrlEntry::next_on_demand(&st, &cfg),
            Some(now + Duration::from_secs(10)),
            "a 4xx is an answer: the normal interval"
        );
        // The IdP could not be reached: 0.5 s after the attempt, doubling up to 10 s.
        st.last_error = Some(FetchError {
            transient: true,
            message: "connection refused".into(),
        });
        for (failures, ms) in [
            (1, 500),
            (2, 1_000),
            (3, 2_000),
            (4, 4_000),
            (5, 8_000),
            (6, 10_000),
            (40, 10_000),
        ] {
            st.consecutive_failures = failures;
            assert_eq!(
                UrlEntry::next_on_demand(&st, &cfg),
                Some(now + Duration::from_millis(ms)),
                "{failures} failures"
            );
        }
        // Counted from the latest attempt, whoever made it (the background refresher too).
        st.consecutive_failures = 1;
        st.last_attempt = Some(now + Duration::from_secs(3));
        assert_eq!(
            UrlEntry::next_on_demand(&st, &cfg),
            Some(now + Duration::from_millis(3_500))
        );
        // A delay above the interval is capped by it.
        let slow = JwksCacheConfig {
            outage_retry_delay: Duration::from_secs(60),
            ..cfg
        };
        assert_eq!(
            UrlEntry::next_on_demand(&st, &slow),
            Some(now + Duration::from_secs(13))
        );
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        let cfg = JwksCacheConfig::default();
        let e = UrlEntry::new("http://x/jwks");
        let mut st = KeyState::empty(0, 0);
        assert_eq!(e.retry_after_secs(&st, &cfg), 1);
        st.last_on_demand = Some(Instant::now());
        let r = e.retry_after_secs(&st, &cfg);
        assert!((9..=10).contains(&r), "{r}");
    }
}
