//! Tyk's per-endpoint circuit breaker (`circuit_breakers`), as a pure state machine: the gateway
//! keeps one [`CircuitBreaker`] per [`crate::traffic::BreakerId`] (behind a lock), asks
//! [`CircuitBreaker::allow`] before the upstream call and reports with
//! [`CircuitBreaker::record`] after it. Time is passed in.
//!
//! Tyk uses a rate breaker (`circuit.NewRateBreaker(threshold_percent, samples)`):
//! - failures and successes are counted in a rolling 10-second window (ten 1-second buckets);
//!   a **failure** is an upstream error (connect, timeout) or a 5xx answer;
//! - after a failure, the breaker **trips** when the window holds at least `samples` requests and
//!   the failure ratio is at least `threshold_percent`; while open, requests get 503
//!   `Service temporarily unavailable.` without reaching the upstream;
//! - **half-open** (unless `disable_half_open_state`): once the back-off since the last failure has
//!   passed (500 ms, then ×1.5 each time, at most 60 s; Tyk adds ±50 % jitter, Gatehouse uses the
//!   middle value), one request is let through; if it succeeds the breaker closes (counters
//!   cleared), if it fails the back-off grows;
//! - `return_to_service_after` seconds after each trip the breaker is reset (closed, counters
//!   cleared), half-open or not.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::traffic::BreakerSettings;

/// Tyk's message while the breaker is open (status 503).
pub const BREAKER_OPEN: &str = "Service temporarily unavailable.";

const BUCKETS: usize = 10;
const BUCKET: Duration = Duration::from_secs(1);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What [`CircuitBreaker::allow`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: call the upstream.
    Closed,
    /// Half-open: this request is the probe; call the upstream.
    Probe,
    /// Open: answer 503 [`BREAKER_OPEN`].
    Open,
}

/// How an upstream call ended, for the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer below 500.
    Success,
    /// No answer (connect error, timeout) or a 5xx answer.
    Failure,
}

impl Outcome {
    /// The outcome of an answer with this status.
    pub fn of_status(status: u16) -> Self {
        if status >= 500 {
            Self::Failure
        } else {
            Self::Success
        }
    }
}

/// One breaker's state.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    settings: BreakerSettings,
    /// (bucket start, successes, failures), oldest first.
    window: VecDeque<(Instant, u64, u64)>,
    tripped: bool,
    last_failure: Option<Instant>,
    backoff: Duration,
    resets: VecDeque<Instant>,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            window: VecDeque::with_capacity(BUCKETS),
            tripped: false,
            last_failure: None,
            backoff: FIRST_BACKOFF,
            resets: VecDeque::new(),
        }
    }

    /// Whether the breaker is open (tripped) at `now`, after pending resets.
    pub fn is_open(&mut self, now: Instant) -> bool {
        self.apply_resets(now);
        self.tripped
    }

    /// May a request go upstream now?
    pub fn allow(&mut self, now: Instant) -> Admission {
        self.apply_resets(now);
        if !self.tripped {
            return Admission::Closed;
        }
        if !self.settings.half_open {
            return Admission::Open;
        }
        let since = self.last_failure.map_or(Duration::MAX, |t| now - t);
        if since > self.backoff {
            self.backoff = (self.backoff.mul_f64(1.5)).min(MAX_BACKOFF);
            Admission::Probe
        } else {
            Admission::Open
        }
    }

    /// Records how a call the breaker let through ended.
    pub fn record(&mut self, outcome: Outcome, now: Instant) {
        self.apply_resets(now);
        match outcome {
            Outcome::Success => {
                self.backoff = FIRST_BACKOFF;
                if self.tripped {
                    self.reset();
                }
                self.count(now, 1, 0);
            }
            Outcome::Failure => {
                self.count(now, 0, 1);
                self.last_failure = Some(now);
                let (ok, failed) = self.totals();
                let samples = ok + failed;
                if samples >= self.settings.samples
                    && failed as f64 / samples as f64 >= self.settings.threshold
                {
                    self.tripped = true;
                    if self.resets.len() < 64 {
                        self.resets
                            .push_back(now + self.settings.return_to_service_after);
                    }
                }
            }
        }
    }

    fn reset(&mut self) {
        self.tripped = false;
        self.window.clear();
        self.backoff = FIRST_BACKOFF;
    }

    fn apply_resets(&mut self, now: Instant) {
        while self.resets.front().is_some_and(|t| *t <= now) {
            self.resets.pop_front();
            self.reset();
        }
    }

    fn count(&mut self, now: Instant, ok: u64, failed: u64) {
        while self.window.front().is_some_and(|(start, _, _)| {
            now.saturating_duration_since(*start) >= BUCKET * BUCKETS as u32
        }) {
            self.window.pop_front();
        }
        match self.window.back_mut() {
            Some((start, s, f)) if now.saturating_duration_since(*start) < BUCKET => {
                *s += ok;
                *f += failed;
            }
            _ => self.window.push_back((now, ok, failed)),
        }
    }

    fn totals(&self) -> (u64, u64) {
        self.window
            .iter()
            .fold((0, 0), |(s, f), (_, a, b)| (s + a, f + b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(half_open: bool) -> BreakerSettings {
        BreakerSettings {
            threshold: 0.5,
            samples: 4,
            return_to_service_after: Duration::from_secs(30),
            half_open,
        }
    }

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn trips_at_the_ratio_once_there_are_enough_samples() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(settings(false));
        // Three failures are not enough samples.
        for i in 0..3 {
            assert_eq!(b.allow(ms(t0, i)), Admission::Closed);
            b.record(Outcome::Failure, ms(t0, i));
        }
        assert!(!b.is_open(ms(t0, 3)));
        b.record(Outcome::Success, ms(t0, 4));
        // 4 samples, 3 failed, but the trip is decided on a failure: the next one.
        assert!(!b.is_open(ms(t0, 5)));
        b.record(Outcome::Failure, ms(t0, 6));
        assert!(b.is_open(ms(t0, 7)));
        assert_eq!(b.allow(ms(t0, 7)), Admission::Open);
        assert_eq!(Outcome::of_status(503), Outcome::Failure);
        assert_eq!(Outcome::of_status(404), Outcome::Success);
    }

    #[test]
    fn below_the_ratio_it_stays_closed() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(settings(true));
        for i in 0..10 {
            b.record(Outcome::Success, ms(t0, i));
        }
        for i in 10..14 {
            b.record(Outcome::Failure, ms(t0, i));
        }
        assert_eq!(b.allow(ms(t0, 20)), Admission::Closed);
    }

    #[test]
    fn old_samples_leave_the_window() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(settings(false));
        for i in 0..3 {
            b.record(Outcome::Failure, ms(t0, i));
        }
        // Eleven seconds later the three failures are gone: one more is 1 sample of 4.
        b.record(Outcome::Failure, ms(t0, 11_000));
        assert!(!b.is_open(ms(t0, 11_001)));
    }

    #[test]
    fn returns_to_service_after_the_period() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(settings(false));
        for i in 0..4 {
            b.record(Outcome::Failure, ms(t0, i));
        }
        assert_eq!(b.allow(ms(t0, 29_000)), Admission::Open);
        assert_eq!(b.allow(ms(t0, 30_003)), Admission::Closed);
        // The counters were cleared: one failure does not trip it again.
        b.record(Outcome::Failure, ms(t0, 30_004));
        assert_eq!(b.allow(ms(t0, 30_005)), Admission::Closed);
    }

    #[test]
    fn half_open_lets_single_probes_through_with_a_growing_backoff() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(settings(true));
        for i in 0..4 {
            b.record(Outcome::Failure, ms(t0, i));
        }
        assert_eq!(b.allow(ms(t0, 400)), Admission::Open);
        assert_eq!(b.allow(ms(t0, 600)), Admission::Probe);
        // Only one probe per back-off.
        assert_eq!(b.allow(ms(t0, 601)), Admission::Open);
        b.record(Outcome::Failure, ms(t0, 650));
        // Back-off is now 750 ms after the failed probe.
        assert_eq!(b.allow(ms(t0, 1_300)), Admission::Open);
        assert_eq!(b.allow(ms(t0, 1_401)), Admission::Probe);
        b.record(Outcome::Success, ms(t0, 1_450));
        assert_eq!(b.allow(ms(t0, 1_451)), Admission::Closed);
    }
}
