use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gatehouse_ratelimit::{Limit, LimitError, LocalRateLimiter, RateLimiter, RateLimiterConfig};

use crate::{clock, ms, secs};

fn limiter(clock: &Arc<gatehouse_ratelimit::ManualClock>) -> LocalRateLimiter {
    LocalRateLimiter::with_clock(RateLimiterConfig::default(), clock.clone())
}

/// `free_after`: when the first admitted request has left (counter mode is up to one sub-window,
/// per / 60, stricter than the log).
async fn exactly_n_admitted_under_concurrency(cfg: RateLimiterConfig, free_after: Duration) {
    let c = clock();
    let rl: Arc<dyn RateLimiter> = Arc::new(LocalRateLimiter::with_clock(cfg, c.clone()));
    let limit = Limit::new(100, secs(60));
    let admitted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let rl = rl.clone();
        let admitted = admitted.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                let d = rl.check("rate-limit-gold-abc", limit).await.unwrap();
                if d.allowed {
                    admitted.fetch_add(1, Ordering::Relaxed);
                } else {
                    assert_eq!(d.remaining, 0);
                    assert!(d.retry_after.is_some());
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(admitted.load(Ordering::Relaxed), 100);
    // The clock did not move, so nothing more gets in...
    assert!(
        !rl.check("rate-limit-gold-abc", limit)
            .await
            .unwrap()
            .allowed
    );
    // ...until the window has passed.
    c.advance(free_after - ms(1));
    assert!(
        !rl.check("rate-limit-gold-abc", limit)
            .await
            .unwrap()
            .allowed
    );
    c.advance(ms(1));
    assert!(
        rl.check("rate-limit-gold-abc", limit)
            .await
            .unwrap()
            .allowed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_per_minute_with_fifty_clients_admits_exactly_hundred() {
    exactly_n_admitted_under_concurrency(RateLimiterConfig::default(), secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counter_mode_is_exact_under_concurrency_too() {
    exactly_n_admitted_under_concurrency(
        RateLimiterConfig {
            exact_log_max: 10,
            ..RateLimiterConfig::default()
        },
        secs(61),
    )
    .await;
}

#[test]
fn os_threads_race_for_the_same_key() {
    let c = clock();
    let rl = Arc::new(limiter(&c));
    let limit = Limit::new(1000, secs(1));
    let admitted: u64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let rl = rl.clone();
                s.spawn(move || {
                    (0..500)
                        .filter(|_| rl.check_now("k", limit).unwrap().allowed)
                        .count() as u64
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(admitted, 1000);
}

#[test]
fn remaining_counts_down_and_reset_points_at_the_oldest_request() {
    let c = clock();
    let rl = limiter(&c);
    let limit = Limit::new(5, secs(60));
    let mut remaining = Vec::new();
    for _ in 0..5 {
        let d = rl.check_now("k", limit).unwrap();
        assert!(d.allowed);
        assert_eq!(d.limit, 5);
        assert_eq!(d.retry_after, None);
        remaining.push(d.remaining);
        c.advance(secs(1));
    }
    assert_eq!(remaining, [4, 3, 2, 1, 0]);
    // Now at t=5 s; the oldest request (t=0) leaves at t=60 s.
    let d = rl.check_now("k", limit).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.remaining, 0);
    assert_eq!(d.reset, secs(55));
    assert_eq!(d.retry_after, Some(secs(55)));
    // Sub-second remainders round up, to at least 1 s.
    c.advance(ms(54_700));
    let d = rl.check_now("k", limit).unwrap();
    assert_eq!(d.reset, ms(300));
    assert_eq!(d.reset_secs(), 1);
    assert_eq!(d.retry_after, Some(secs(1)));
}

#[test]
fn first_request_resets_after_a_full_window() {
    let c = clock();
    let rl = limiter(&c);
    let d = rl.check_now("k", Limit::new(3, secs(10))).unwrap();
    assert_eq!((d.allowed, d.remaining, d.reset), (true, 2, secs(10)));
    c.advance(secs(4));
    let d = rl.check_now("k", Limit::new(3, secs(10))).unwrap();
    // The oldest (t=0) still frees first, at t=10.
    assert_eq!((d.remaining, d.reset), (1, secs(6)));
}

#[test]
fn window_slides() {
    let c = clock();
    let rl = limiter(&c);
    let limit = Limit::new(3, secs(10));
    // Requests at t = 0, 1, 2.
    for _ in 0..3 {
        assert!(rl.check_now("k", limit).unwrap().allowed);
        c.advance(secs(1));
    }
    // t = 3 .. 9.999: full.
    assert!(!rl.check_now("k", limit).unwrap().allowed);
    c.advance(ms(6_999));
    let d = rl.check_now("k", limit).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.reset, ms(1));
    // t = 10: the t=0 request left; one slot.
    c.advance(ms(1));
    let d = rl.check_now("k", limit).unwrap();
    assert!(d.allowed);
    assert_eq!(d.remaining, 0);
    assert_eq!(d.reset, secs(1)); // t=1 leaves at 11
    assert!(!rl.check_now("k", limit).unwrap().allowed);
    // t = 11: t=1 left.
    c.advance(secs(1));
    assert!(rl.check_now("k", limit).unwrap().allowed);
    // Any window of 10 s holds at most 3: t=2, 10, 11 are in (1, 11].
    assert!(!rl.check_now("k", limit).unwrap().allowed);
}

#[test]
fn refused_requests_do_not_extend_the_block() {
    let c = clock();
    let rl = limiter(&c);
    let limit = Limit::new(2, secs(10));
    assert!(rl.check_now("k", limit).unwrap().allowed);
    assert!(rl.check_now("k", limit).unwrap().allowed);
    // Hammering for 10 s...
    for _ in 0..100 {
        assert!(!rl.check_now("k", limit).unwrap().allowed);
        c.advance(ms(99));
    }
    // ...is forgotten once the admitted ones leave (t = 10 s).
    c.advance(ms(100));
    let d = rl.check_now("k", limit).unwrap();
    assert!(d.allowed);
    assert_eq!(d.remaining, 1);
}

#[test]
fn fractional_tyk_rate_half_per_second_is_one_per_two_seconds() {
    let c = clock();
    let rl = limiter(&c);
    let limit = Limit::from_tyk(0.5, 1.0).unwrap();
    let d = rl.check_now("k", limit).unwrap();
    assert!(d.allowed);
    assert_eq!((d.limit, d.remaining, d.reset), (1, 0, secs(2)));
    c.advance(secs(1));
    let d = rl.check_now("k", limit).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.retry_after, Some(secs(1)));
    c.advance(secs(1));
    assert!(rl.check_now("k", limit).unwrap().allowed);
    // Over 20 s: exactly 10 admitted (one per 2 s), polled every 100 ms.
    let mut n = 0;
    for _ in 0..200 {
        c.advance(ms(100));
        n += u32::from(rl.check_now("k", limit).unwrap().allowed);
    }
    assert_eq!(n, 10);
}

#[test]
fn fractional_rate_above_one_keeps_the_average() {
    let c = clock();
    let rl = limiter(&c);
    // 2.5 per second -> 2 per 800 ms. Polled every 10 ms for 10 s: admitted at 0 and 10 ms,
    // then at 800 and 810 ms, ...: 13 pairs start within 10 s, 26 requests (2.5/s plus the
    // initial burst of 2 vs 1.5 average).
    let limit = Limit::from_tyk(2.5, 1.0).unwrap();
    let mut n = 0;
    for _ in 0..1000 {
        n += u32::from(rl.check_now("k", limit).unwrap().allowed);
        c.advance(ms(10));
    }
    assert_eq!(n, 26);
}

#[test]
fn keys_are_independent() {
    let c = clock();
    let rl = limiter(&c);
    let limit = Limit::new(1, secs(60));
    assert!(rl.check_now("rate-limit-a", limit).unwrap().allowed);
    assert!(!rl.check_now("rate-limit-a", limit).unwrap().allowed);
    assert!(rl.check_now("rate-limit-b", limit).unwrap().allowed);
}

#[test]
fn lowering_the_limit_applies_at_once() {
    let c = clock();
    let rl = limiter(&c);
    for _ in 0..7 {
        assert!(rl.check_now("k", Limit::new(10, secs(60))).unwrap().allowed);
        c.advance(secs(1));
    }
    let d = rl.check_now("k", Limit::new(5, secs(60))).unwrap();
    assert!(!d.allowed);
    // Admitted again when all but 4 of the 7 have left: the 3rd (t=2 s) leaves at 62 s; now 7 s.
    assert_eq!(d.reset, secs(55));
    // Raised again: all 7 still count.
    let d = rl.check_now("k", Limit::new(20, secs(60))).unwrap();
    assert!(d.allowed);
    assert_eq!(d.remaining, 20 - 8);
}

#[test]
fn zero_rate_refuses_everything() {
    let c = clock();
    let rl = limiter(&c);
    let d = rl.check_now("k", Limit::new(0, secs(5))).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.retry_after, Some(secs(5)));
}

#[test]
fn counter_mode_never_admits_more_than_rate_in_any_window() {
    let c = clock();
    let rl = LocalRateLimiter::with_clock(
        RateLimiterConfig {
            exact_log_max: 0,
            ..RateLimiterConfig::default()
        },
        c.clone(),
    );
    let limit = Limit::new(50, secs(6));
    let mut admitted = Vec::new();
    let mut t = 0u64;
    // Bursty traffic: 20 requests every 700 ms, for 60 s.
    for _ in 0..86 {
        for _ in 0..20 {
            if rl.check_now("k", limit).unwrap().allowed {
                admitted.push(t);
            }
        }
        c.advance(ms(700));
        t += 700;
    }
    for (i, &a) in admitted.iter().enumerate() {
        let n = admitted[i..].iter().take_while(|&&b| b < a + 6_000).count();
        assert!(n <= 50, "window from {a} ms holds {n}");
    }
    // Not much stricter than the log: per + one sub-window (6.1 s) per 50.
    assert!(admitted.len() >= 450, "admitted {}", admitted.len());
}

#[test]
fn idle_keys_are_evicted_and_the_key_count_is_capped() {
    let c = clock();
    let rl = LocalRateLimiter::with_clock(
        RateLimiterConfig {
            shards: 4,
            max_keys: 400,
            exact_log_max: 1024,
        },
        c.clone(),
    );
    let limit = Limit::new(10, secs(1));
    let mut refused_new = 0;
    for i in 0..1000 {
        match rl.check_now(&format!("k{i}"), limit) {
            Ok(d) => assert!(d.allowed),
            Err(LimitError::CapacityExceeded { max_keys }) => {
                assert_eq!(max_keys, 400);
                refused_new += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(rl.len() <= 400);
    assert_eq!(rl.len() + refused_new, 1000);
    // Existing keys keep working when full.
    assert!(rl.check_now("k0", limit).unwrap().allowed);
    // Once the window has passed every key is idle: new keys fit again (swept on demand inside
    // the shard; the one-second back-off for full shards has passed as well).
    c.advance(secs(2));
    for i in 1000..1200 {
        assert!(rl.check_now(&format!("k{i}"), limit).unwrap().allowed);
    }
    assert!(rl.len() <= 400);
    // An explicit sweep empties it once everything is idle.
    c.advance(secs(2));
    assert!(rl.sweep() > 0);
    assert!(rl.is_empty());
}

#[test]
fn idle_keys_do_not_pile_up_between_sweeps() {
    let c = clock();
    let rl = LocalRateLimiter::with_clock(
        RateLimiterConfig {
            shards: 1,
            max_keys: 1_000_000,
            exact_log_max: 1024,
        },
        c.clone(),
    );
    let limit = Limit::new(1, ms(10));
    // 100,000 one-off keys, each idle 10 ms after its request; 10 new keys per millisecond.
    for i in 0..100_000 {
        rl.check_now(&format!("k{i}"), limit).unwrap();
        if i % 10 == 9 {
            c.advance(ms(1));
        }
    }
    // About 100 keys are live at any time; the amortised sweep keeps the table within a small
    // multiple of that.
    assert!(rl.len() <= 400, "{} keys tracked", rl.len());
}
