//! The in-process rate limiter: an exact sliding log, or a conservative sliding window of
//! sub-window counters for very high rates.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::{Clock, SystemClock, duration_to_ns};
use crate::shard::ShardedMap;
use crate::{Decision, Limit, LimitError, RateLimiter, ns_to_duration};

/// Sub-windows of the counter mode: one window of `per` is cut into this many.
pub(crate) const SUB_WINDOWS: u64 = 60;
const SLOTS: usize = SUB_WINDOWS as usize + 1;

/// Settings of [`LocalRateLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimiterConfig {
    /// Number of lock shards, rounded up to a power of two. Default 64.
    pub shards: usize,
    /// Most keys tracked at once (split evenly between shards). A new key beyond it is refused
    /// with [`LimitError::CapacityExceeded`]. Default 1,000,000.
    pub max_keys: usize,
    /// Limits with `rate` up to this use the exact sliding log (8 bytes per admitted request in
    /// the window); above it, the counter mode (61 counters per key, fixed size). Default 1024.
    pub exact_log_max: u64,
}

impl Default for RateLimiterConfig {
    fn default() -> Self {
        Self {
            shards: 64,
            max_keys: 1_000_000,
            exact_log_max: 1024,
        }
    }
}

/// In-process rate limiter. See the crate docs for the algorithm and its guarantees.
#[derive(Debug)]
pub struct LocalRateLimiter {
    map: ShardedMap<RateState>,
    clock: Arc<dyn Clock>,
    exact_log_max: u64,
}

impl LocalRateLimiter {
    /// A limiter on the system clock.
    pub fn new(cfg: RateLimiterConfig) -> Self {
        Self::with_clock(cfg, Arc::new(SystemClock::new()))
    }

    /// A limiter on the given clock (tests pass a [`crate::ManualClock`]).
    pub fn with_clock(cfg: RateLimiterConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            map: ShardedMap::new(cfg.shards, cfg.max_keys),
            clock,
            exact_log_max: cfg.exact_log_max,
        }
    }

    /// The synchronous decision behind [`RateLimiter::check`]: admits and records one request for
    /// `key` if `limit` allows it. Callers holding the concrete type can use it to skip the boxed
    /// future of the trait call.
    pub fn check_now(&self, key: &str, limit: Limit) -> Result<Decision, LimitError> {
        let now = self.now_ns();
        self.with_state(key, limit, now, |st| {
            let d = st.decision(now, limit, true);
            if d.allowed {
                st.admit(now);
            }
            d
        })
    }

    /// Number of keys currently tracked (idle ones included until swept).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every key whose window holds no request. Returns how many were dropped. Sweeping
    /// also happens on its own as shards grow; this is for a periodic janitor or tests.
    pub fn sweep(&self) -> usize {
        let now = self.now_ns();
        let mut removed = 0;
        self.map
            .for_each_shard(|s| removed += s.sweep(|st| st.is_idle(now)));
        removed
    }

    pub(crate) fn now_ns(&self) -> u64 {
        duration_to_ns(self.clock.monotonic())
    }

    /// Runs `f` on the (pruned, mode-adjusted) state of `key` under its shard lock.
    pub(crate) fn with_state<R>(
        &self,
        key: &str,
        limit: Limit,
        now: u64,
        f: impl FnOnce(&mut RateState) -> R,
    ) -> Result<R, LimitError> {
        let hash = self.map.hash(key);
        let mut shard = self.map.lock(hash);
        let exact_max = self.exact_log_max;
        let slot = shard.get_or_insert_with(
            hash,
            key,
            now,
            self.map.max_keys(),
            |st: &RateState| st.is_idle(now),
            || RateState::new(limit, now, exact_max),
        )?;
        let st = &mut slot.value;
        st.prepare(now, limit, exact_max);
        Ok(f(st))
    }
}

impl Default for LocalRateLimiter {
    fn default() -> Self {
        Self::new(RateLimiterConfig::default())
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn check(&self, key: &str, limit: Limit) -> Result<Decision, LimitError> {
        self.check_now(key, limit)
    }
}

/// Per-key state. Timestamps are monotonic nanoseconds.
#[derive(Debug)]
pub(crate) struct RateState {
    /// The `per` of the last limit seen, in nanoseconds.
    per: u64,
    window: Window,
}

#[derive(Debug)]
enum Window {
    /// Admission times inside the window, oldest first.
    Log(VecDeque<u64>),
    Counters(Box<Counters>),
}

/// A ring of `SLOTS` counters of `width` nanoseconds each; `newest` is the absolute index
/// (`time / width`) of the newest one. Counters with absolute index in `newest - SUB_WINDOWS ..=
/// newest` are live.
#[derive(Debug)]
struct Counters {
    width: u64,
    newest: u64,
    total: u64,
    counts: [u64; SLOTS],
}

impl Counters {
    fn new(per: u64, now: u64) -> Self {
        let width = per.div_ceil(SUB_WINDOWS).max(1);
        Self {
            width,
            newest: now / width,
            total: 0,
            counts: [0; SLOTS],
        }
    }

    fn slot(idx: u64) -> usize {
        (idx % SLOTS as u64) as usize
    }

    /// Moves the ring to the counter holding `now`, clearing counters that fell out.
    fn advance(&mut self, now: u64) {
        let cur = now / self.width;
        if cur <= self.newest {
            return;
        }
        if cur - self.newest >= SLOTS as u64 {
            self.counts = [0; SLOTS];
            self.total = 0;
        } else {
            for idx in self.newest + 1..=cur {
                let s = Self::slot(idx);
                self.total -= self.counts[s];
                self.counts[s] = 0;
            }
        }
        self.newest = cur;
    }

    /// The time at which the counter with absolute index `idx` stops being live.
    fn expiry_of(&self, idx: u64) -> u64 {
        idx.saturating_add(SUB_WINDOWS + 1)
            .saturating_mul(self.width)
    }

    /// Time until the `n` oldest recorded requests have left the window (`n >= 1`).
    fn until_expired(&self, n: u64, now: u64) -> u64 {
        let mut acc = 0;
        for idx in self.newest.saturating_sub(SUB_WINDOWS)..=self.newest {
            acc += self.counts[Self::slot(idx)];
            if acc >= n {
                return self.expiry_of(idx).saturating_sub(now);
            }
        }
        // Fewer than `n` recorded: the next admission (now) would be the one.
        self.expiry_of(self.newest).saturating_sub(now)
    }
}

impl RateState {
    fn new(limit: Limit, now: u64, exact_max: u64) -> Self {
        let per = duration_to_ns(limit.per);
        let window = if limit.rate <= exact_max {
            Window::Log(VecDeque::new())
        } else {
            Window::Counters(Box::new(Counters::new(per, now)))
        };
        Self { per, window }
    }

    /// Whether the state holds no request that still counts.
    pub(crate) fn is_idle(&self, now: u64) -> bool {
        match &self.window {
            Window::Log(log) => log
                .back()
                .is_none_or(|&t| t.saturating_add(self.per) <= now),
            Window::Counters(c) => c.total == 0 || c.expiry_of(c.newest) <= now,
        }
    }

    /// Drops what left the window and adapts the state to a changed `limit`. Changes never admit
    /// more than the new limit allows; switching representation or `per` in counter mode may
    /// briefly admit less (see crate docs).
    pub(crate) fn prepare(&mut self, now: u64, limit: Limit, exact_max: u64) {
        let per = duration_to_ns(limit.per);
        let want_log = limit.rate <= exact_max;
        match &mut self.window {
            Window::Log(log) if want_log => {
                self.per = per;
                while log.front().is_some_and(|&t| t.saturating_add(per) <= now) {
                    log.pop_front();
                }
                // Nothing is dropped for a lowered rate: a later raise must still see every
                // request. The log never exceeds the highest rate it ran under (<= exact_max).
                if log.capacity() > 64 && log.capacity() > 4 * log.len() {
                    log.shrink_to(2 * log.len());
                }
            }
            Window::Log(log) => {
                // Log -> counters: every logged time lands in its own counter, exactly.
                let mut c = Counters::new(per, now);
                for &t in log.iter() {
                    if t.saturating_add(per) > now {
                        let idx = t / c.width;
                        if idx + SUB_WINDOWS >= c.newest {
                            c.counts[Counters::slot(idx)] += 1;
                            c.total += 1;
                        }
                    }
                }
                self.per = per;
                self.window = Window::Counters(Box::new(c));
            }
            Window::Counters(c) => {
                c.advance(now);
                if want_log && c.total <= exact_max {
                    // Counters -> log: a request counted in a counter happened before that
                    // counter's end, so log it at the end (capped at now). (With more than
                    // `exact_max` counted the key stays in counter mode, exact for any rate,
                    // until enough have left.)
                    let mut log = VecDeque::with_capacity(usize_of(c.total));
                    for idx in c.newest.saturating_sub(SUB_WINDOWS)..=c.newest {
                        let at = (idx + 1).saturating_mul(c.width).saturating_sub(1).min(now);
                        for _ in 0..c.counts[Counters::slot(idx)] {
                            log.push_back(at);
                        }
                    }
                    self.per = per;
                    self.window = Window::Log(log);
                    // Entries that are already out of the new window go now.
                    self.prepare(now, limit, exact_max);
                } else if per != self.per {
                    // New counter width: move what is live into the current counter, as if it
                    // had all just happened (never earlier than it did).
                    let total = c.total;
                    **c = Counters::new(per, now);
                    c.counts[Counters::slot(c.newest)] = total;
                    c.total = total;
                    self.per = per;
                }
            }
        }
    }

    /// Requests currently counted in the window.
    fn count(&self) -> u64 {
        match &self.window {
            Window::Log(log) => log.len() as u64,
            Window::Counters(c) => c.total,
        }
    }

    /// Time until the `n` oldest counted requests have left the window, assuming `admitting`
    /// one more at `now`.
    fn until_expired(&self, n: u64, now: u64) -> u64 {
        match &self.window {
            Window::Log(log) => match log.get(usize_of(n - 1)) {
                Some(&t) => t.saturating_add(self.per).saturating_sub(now),
                None => self.per,
            },
            Window::Counters(c) => c.until_expired(n, now),
        }
    }

    /// The decision for one request at `now` (after [`RateState::prepare`]). With `admitting`,
    /// an allowed decision describes the state after that request is recorded; without, the
    /// state as it is (a peek).
    pub(crate) fn decision(&self, now: u64, limit: Limit, admitting: bool) -> Decision {
        let count = self.count();
        if count < limit.rate {
            let used = count + u64::from(admitting);
            let reset = if used == 0 {
                0
            } else {
                // Remaining grows again when the oldest request leaves.
                self.until_expired(1, now)
            };
            Decision::allowed(limit.rate, limit.rate - used, ns_to_duration(reset))
        } else {
            let wait = if limit.rate == 0 {
                self.per
            } else {
                // Admitted once `count - rate + 1` requests have left.
                self.until_expired(count - limit.rate + 1, now)
            };
            Decision::refused(limit.rate, ns_to_duration(wait))
        }
    }

    /// Records one admitted request at `now`.
    pub(crate) fn admit(&mut self, now: u64) {
        match &mut self.window {
            Window::Log(log) => log.push_back(now),
            Window::Counters(c) => {
                c.advance(now);
                c.counts[Counters::slot(c.newest)] += 1;
                c.total += 1;
            }
        }
    }
}

fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const S: u64 = 1_000_000_000;

    fn lim(rate: u64, secs: u64) -> Limit {
        Limit::new(rate, Duration::from_secs(secs))
    }

    fn run(st: &mut RateState, now: u64, l: Limit, exact_max: u64) -> Decision {
        st.prepare(now, l, exact_max);
        let d = st.decision(now, l, true);
        if d.allowed {
            st.admit(now);
        }
        d
    }

    #[test]
    fn counters_never_admit_more_than_rate_in_any_window() {
        // rate 120 per 60 s in counter mode; one request every 100 ms for 10 minutes.
        let l = lim(120, 60);
        let mut st = RateState::new(l, 0, 10);
        let mut admitted = Vec::new();
        for i in 0..6_000u64 {
            let now = i * S / 10;
            if run(&mut st, now, l, 10).allowed {
                admitted.push(now);
            }
        }
        // Sliding check over every admitted time.
        for (i, &t) in admitted.iter().enumerate() {
            let in_window = admitted[i..]
                .iter()
                .take_while(|&&u| u < t + 60 * S)
                .count();
            assert!(in_window <= 120, "window at {t} holds {in_window}");
        }
        // And it is not wildly conservative: at least rate per (per + one sub-window).
        assert!(admitted.len() >= 120 * 9, "admitted {}", admitted.len());
    }

    #[test]
    fn switching_modes_keeps_the_count() {
        let small = lim(5, 10);
        let big = lim(50, 10);
        let mut st = RateState::new(small, 0, 10);
        for i in 0..5 {
            assert!(run(&mut st, i * S, small, 10).allowed);
        }
        assert!(!run(&mut st, 5 * S, small, 10).allowed);
        // Rate raised into counter mode: the 5 stay counted.
        let d = run(&mut st, 5 * S, big, 10);
        assert!(d.allowed);
        assert_eq!(d.remaining, 50 - 6);
        // Back to the log with rate 5: still full.
        let d = run(&mut st, 6 * S, small, 10);
        assert!(!d.allowed);
        // All of them have left 10 s + one sub-window after the last one.
        let d = run(&mut st, 5 * S + 10 * S + S, small, 10);
        assert!(d.allowed);
    }
}
