//! Integration tests of gatehouse-ratelimit. Time only moves through `ManualClock` or tokio's
//! paused clock: no test sleeps for real and no assertion depends on how fast it ran.

mod quota;
mod rate;
mod session;

use std::sync::Arc;
use std::time::Duration;

use gatehouse_ratelimit::ManualClock;

/// 2026-01-01T00:00:00Z.
pub const T0: Duration = Duration::from_secs(1_767_225_600);

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(T0))
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}
