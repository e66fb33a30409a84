//! Time sources: the system clock for production, a manual clock for tests.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where the limiters read the time.
///
/// Two readings, because the two kinds of counter need different things:
/// - rate-limit windows are short and only live in memory, so they use [`Clock::monotonic`], which
///   never jumps when an operator or NTP sets the wall clock;
/// - quota windows are long and must survive a restart, so they use [`Clock::unix`].
pub trait Clock: Send + Sync + fmt::Debug {
    /// Time since an arbitrary fixed origin (the clock's creation). Never goes backwards.
    fn monotonic(&self) -> Duration;
    /// Wall-clock time since the unix epoch.
    fn unix(&self) -> Duration;
}

/// The real clock: [`Instant`] for monotonic time, [`SystemTime`] for unix time.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose monotonic origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }

    fn unix(&self) -> Duration {
        // A wall clock before 1970 is a broken host; treat it as the epoch rather than panic.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// A clock that only moves when told to, so tests never sleep.
///
/// [`ManualClock::advance`] moves both readings together; [`ManualClock::set_unix`] moves the wall
/// clock alone (a restart after downtime, or an operator setting the clock).
#[derive(Debug)]
pub struct ManualClock {
    monotonic_ns: AtomicU64,
    unix_ns: AtomicU64,
}

impl ManualClock {
    /// Monotonic time starts at zero; unix time at `unix`.
    pub fn new(unix: Duration) -> Self {
        Self {
            monotonic_ns: AtomicU64::new(0),
            unix_ns: AtomicU64::new(duration_to_ns(unix)),
        }
    }

    /// Moves both readings forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ns = duration_to_ns(by);
        self.monotonic_ns.fetch_add(ns, Ordering::SeqCst);
        self.unix_ns.fetch_add(ns, Ordering::SeqCst);
    }

    /// Sets the wall clock; the monotonic reading does not move.
    pub fn set_unix(&self, unix: Duration) {
        self.unix_ns.store(duration_to_ns(unix), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.monotonic_ns.load(Ordering::SeqCst))
    }

    fn unix(&self) -> Duration {
        Duration::from_nanos(self.unix_ns.load(Ordering::SeqCst))
    }
}

/// Nanoseconds, saturating at `u64::MAX` (about 584 years).
pub(crate) fn duration_to_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Duration::from_secs(1_000));
        assert_eq!(c.monotonic(), Duration::ZERO);
        assert_eq!(c.unix(), Duration::from_secs(1_000));
        c.advance(Duration::from_millis(1_500));
        assert_eq!(c.monotonic(), Duration::from_millis(1_500));
        assert_eq!(c.unix(), Duration::from_millis(1_001_500));
        c.set_unix(Duration::from_secs(5));
        assert_eq!(c.unix(), Duration::from_secs(5));
        assert_eq!(c.monotonic(), Duration::from_millis(1_500));
    }

    #[test]
    fn system_clock_is_sane() {
        let c = SystemClock::new();
        let a = c.monotonic();
        assert!(c.monotonic() >= a);
        // After 2020-01-01.
        assert!(c.unix() > Duration::from_secs(1_577_836_800));
    }
}
