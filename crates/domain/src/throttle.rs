//! Sign-in throttling: slows password guessing per account and per client address.
//!
//! Rules (the same for dashboard admins and portal developers):
//! - **per account**: after [`ThrottleRules::account_free`] failed sign-ins within
//!   [`ThrottleRules::window`], each further attempt must wait a delay that doubles with every
//!   failure (from [`ThrottleRules::base_delay`] up to [`ThrottleRules::max_delay`]). A successful
//!   sign-in clears the account's record. The account is never locked for good, so an attacker
//!   cannot lock a real user out for longer than the maximum delay.
//! - **per address**: after [`ThrottleRules::address_max`] failures within the window, the
//!   address waits until the window of its first counted failure ends.
//!
//! The state is bounded ([`ThrottleRules::max_entries`]): when full, expired records are dropped
//! first, then the oldest. Time is passed in (unix seconds), so this module does no I/O.

use std::collections::HashMap;

/// The thresholds of a [`LoginThrottle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRules {
    /// Seconds over which failures are counted.
    pub window: i64,
    /// Failures per account before delays start.
    pub account_free: u32,
    /// The first delay, in seconds.
    pub base_delay: i64,
    /// The longest delay, in seconds.
    pub max_delay: i64,
    /// Failures per address within the window before the address must wait.
    pub address_max: u32,
    /// Records kept at most (accounts plus addresses).
    pub max_entries: usize,
}

impl Default for ThrottleRules {
    fn default() -> Self {
        Self {
            window: 15 * 60,
            account_free: 5,
            base_delay: 30,
            max_delay: 15 * 60,
            address_max: 30,
            max_entries: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    first: i64,
    last: i64,
    failures: u32,
}

/// Which rule refused an attempt, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Seconds until the next attempt is allowed (at least 1).
    pub retry_after: i64,
    /// `true` when the address rule refused, `false` for the account rule.
    pub by_address: bool,
}

/// Failed sign-ins per account and per address. Not thread-safe by itself: wrap it in a mutex.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    rules: ThrottleRules,
    accounts: HashMap<String, Record>,
    addresses: HashMap<String, Record>,
}

impl LoginThrottle {
    /// A throttle with these rules.
    pub fn new(rules: ThrottleRules) -> Self {
        Self {
            rules,
            accounts: HashMap::new(),
            addresses: HashMap::new(),
        }
    }

    /// Whether an attempt for `account` (normalised by the caller) from `address` may be checked
    /// now. Call before verifying the password, so a throttled attempt costs no hash.
    pub fn check(&self, account: &str, address: &str, now: i64) -> Result<(), Throttled> {
        let r = &self.rules;
        if let Some(a) = self.addresses.get(address)
            && now - a.first < r.window
            && a.failures >= r.address_max
        {
            return Err(Throttled {
                retry_after: (a.first + r.window - now).max(1),
                by_address: true,
            });
        }
        if let Some(a) = self.accounts.get(account)
            && now - a.last < r.window
            && a.failures >= r.account_free
        {
            let over = a.failures - r.account_free;
            let delay = r
                .base_delay
                .saturating_mul(1_i64 << over.min(30))
                .min(r.max_delay);
            let until = a.last + delay;
            if now < until {
                return Err(Throttled {
                    retry_after: (until - now).max(1),
                    by_address: false,
                });
            }
        }
        Ok(())
    }

    /// Records a failed attempt.
    pub fn failure(&mut self, account: &str, address: &str, now: i64) {
        let window = self.rules.window;
        self.make_room(now);
        for (map, key, sliding) in [
            (&mut self.accounts, account, true),
            (&mut self.addresses, address, false),
        ] {
            let rec = map.entry(key.to_owned()).or_insert(Record {
                first: now,
                last: now,
                failures: 0,
            });
            // The account window slides with each failure (delays keep growing while guessing
            // goes on); the address window is fixed from its first failure.
            let reference = if sliding { rec.last } else { rec.first };
            if now - reference >= window {
                *rec = Record {
                    first: now,
                    last: now,
                    failures: 0,
                };
            }
            rec.failures = rec.failures.saturating_add(1);
            rec.last = now;
        }
    }

    /// Records a successful sign-in: the account's failures are forgotten (the address's are
    /// not, so one valid account does not launder guesses at others).
    pub fn success(&mut self, account: &str) {
        self.accounts.remove(account);
    }

    /// Records kept (accounts plus addresses).
    pub fn len(&self) -> usize {
        self.accounts.len() + self.addresses.len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn make_room(&mut self, now: i64) {
        if self.len() + 2 <= self.rules.max_entries {
            return;
        }
        let window = self.rules.window;
        self.accounts.retain(|_, r| now - r.last < window);
        self.addresses.retain(|_, r| now - r.first < window);
        while self.len() + 2 > self.rules.max_entries {
            // Still full: drop the record with the oldest last failure.
            let oldest_account = self
                .accounts
                .iter()
                .min_by_key(|(_, r)| r.last)
                .map(|(k, r)| (k.clone(), r.last));
            let oldest_address = self
                .addresses
                .iter()
                .min_by_key(|(_, r)| r.last)
                .map(|(k, r)| (k.clone(), r.last));
            match (oldest_account, oldest_address) {
                (Some((k, a)), Some((_, b))) if a <= b => {
                    self.accounts.remove(&k);
                }
                (_, Some((k, _))) => {
                    self.addresses.remove(&k);
                }
                (Some((k, _)), None) => {
                    self.accounts.remove(&k);
                }
                (None, None) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000;

    #[test]
    fn an_account_gets_growing_delays_after_the_free_failures() {
        let mut t = LoginThrottle::new(ThrottleRules::default());
        for i in 0..5 {
            assert!(t.check("a@x.io", "1.1.1.1", T0 + i).is_ok(), "attempt {i}");
            t.failure("a@x.io", "1.1.1.1", T0 + i);
        }
        // Five failures: the sixth attempt waits 30 s from the last failure.
        let e = t.check("a@x.io", "1.1.1.1", T0 + 4).unwrap_err();
        assert_eq!(
            e,
            Throttled {
                retry_after: 30,
                by_address: false
            }
        );
        assert!(t.check("a@x.io", "1.1.1.1", T0 + 33).is_err());
        assert!(t.check("a@x.io", "1.1.1.1", T0 + 34).is_ok());
        t.failure("a@x.io", "1.1.1.1", T0 + 34);
        // Six failures: 60 s, then 120 s, ... capped at 15 minutes.
        assert_eq!(
            t.check("a@x.io", "9.9.9.9", T0 + 34)
                .unwrap_err()
                .retry_after,
            60
        );
        let mut now = T0 + 34;
        for _ in 0..10 {
            now += 901;
            t.failure("a@x.io", "1.1.1.1", now);
        }
        // Failures 901 s apart slide the window: the record is reset each time (window 900 s).
        assert!(t.check("a@x.io", "1.1.1.1", now).is_ok());
        for i in 0..20 {
            t.failure("a@x.io", &format!("10.0.0.{i}"), now + i);
        }
        assert_eq!(
            t.check("a@x.io", "8.8.8.8", now + 19)
                .unwrap_err()
                .retry_after,
            900
        );
        // Another account from another address is not affected.
        assert!(t.check("b@x.io", "8.8.8.8", now + 19).is_ok());
    }

    #[test]
    fn success_clears_the_account_but_not_the_address() {
        let rules = ThrottleRules {
            address_max: 6,
            ..Default::default()
        };
        let mut t = LoginThrottle::new(rules);
        for i in 0..5 {
            t.failure("a@x.io", "1.1.1.1", T0 + i);
        }
        assert!(t.check("a@x.io", "2.2.2.2", T0 + 5).is_err());
        t.success("a@x.io");
        assert!(t.check("a@x.io", "2.2.2.2", T0 + 5).is_ok());
        t.failure("b@x.io", "1.1.1.1", T0 + 6);
        let e = t.check("c@x.io", "1.1.1.1", T0 + 7).unwrap_err();
        assert!(e.by_address);
        // The address waits until the window of its first failure ends.
        assert_eq!(e.retry_after, 900 - 7);
        assert!(t.check("c@x.io", "1.1.1.1", T0 + 900).is_ok());
    }

    #[test]
    fn state_is_bounded() {
        let rules = ThrottleRules {
            max_entries: 50,
            ..Default::default()
        };
        let mut t = LoginThrottle::new(rules);
        for i in 0..1000 {
            t.failure(&format!("u{i}"), &format!("a{i}"), T0 + i);
            assert!(t.len() <= 50, "{} records", t.len());
        }
        // The newest records are the ones kept.
        t.failure("u999", "a999", T0 + 1000);
        assert!(t.accounts.contains_key("u999"));
        assert!(!t.accounts.contains_key("u0"));
    }
}
