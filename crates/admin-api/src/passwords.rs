//! Password hashing and checking (argon2id) off the async workers, on a bounded pool.
//!
//! One argon2id hash or check takes about 19 MiB and tens of milliseconds of one core. Run on the
//! async worker threads, a flood of sign-ups or sign-ins would stall every task on them, and in
//! `gatehouse serve` those are the gateway's threads too. So every hash and check of the
//! dashboard and the portal goes through one [`PasswordPool`]:
//!
//! - the work runs on tokio's blocking threads, at most `permits` at a time (default: half the
//!   cores, at least one, so the gateway always keeps a core; this also bounds the memory);
//! - at most `queue` more requests wait for a permit; beyond that the caller gets
//!   [`PasswordError::Busy`] at once, which the handlers answer with 503 and `Retry-After`;
//! - a permit is held until the blocking work ends, even when the request that asked for it is
//!   gone (a client that hangs up frees no permit early, so the bound holds).
//!
//! The pool also keeps a running average of how long a hash took, queue included
//! ([`PasswordPool::typical_hash_time`]); a sign-up for a taken email waits that long instead of
//! hashing, so its answer takes about as long as a real sign-up's without costing a hash.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

/// Requests waiting for a permit at most, by default.
pub const DEFAULT_QUEUE: usize = 64;
/// Seconds a client is told to wait (`Retry-After`) when the pool is full.
pub const BUSY_RETRY_AFTER: i64 = 1;

/// Why a hash or a check did not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Every permit is taken and the queue is full: answer 503 with `Retry-After`.
    #[error("the server is busy checking passwords; try again in a second")]
    Busy,
    /// The hash could not be computed (should not happen with valid parameters).
    #[error("cannot hash the password: {0}")]
    Failed(String),
}

/// The bounded pool every argon2 hash and check goes through (see the module docs).
pub struct PasswordPool {
    permits: Arc<Semaphore>,
    queue: usize,
    waiting: AtomicUsize,
    argon: Argon2<'static>,
    /// Running average of a hash's time (waiting included), microseconds; 0 before the first.
    typical_us: AtomicU64,
}

impl std::fmt::Debug for PasswordPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordPool")
            .field("available", &self.permits.available_permits())
            .field("queue", &self.queue)
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .finish()
    }
}

impl Default for PasswordPool {
    fn default() -> Self {
        Self::new(default_permits(), DEFAULT_QUEUE)
    }
}

/// Half the cores, at least one.
pub fn default_permits() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() / 2)
        .unwrap_or(1)
        .max(1)
}

/// Keeps the count of waiting requests right when a wait is abandoned.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordPool {
    /// A pool running at most `permits` hashes at once with at most `queue` requests waiting.
    pub fn new(permits: usize, queue: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            queue,
            waiting: AtomicUsize::new(0),
            argon: Argon2::default(),
            typical_us: AtomicU64::new(0),
        }
    }

    /// Runs `work` on a blocking thread under a permit, or says the pool is busy.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(PasswordError::Busy);
                }
                let _waiting = Waiting(&self.waiting);
                Arc::clone(&self.permits)
                    .acquire_owned()
                    .await
                    .map_err(|_| PasswordError::Busy)?
            }
        };
        let argon = self.argon.clone();
        tokio::task::spawn_blocking(move || {
            let out = work(&argon);
            drop(permit);
            out
        })
        .await
        .map_err(|e| PasswordError::Failed(e.to_string()))
    }

    /// An argon2id PHC string for `password`.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let started = Instant::now();
        let password = password.to_owned();
        let hashed = self
            .run(move |argon| {
                argon
                    .hash_password(password.as_bytes())
                    .map(|h| h.to_string())
                    .map_err(|e| PasswordError::Failed(e.to_string()))
            })
            .await??;
        self.observe(started.elapsed());
        Ok(hashed)
    }

    /// Whether `password` matches the PHC string `hash` (an unreadable hash matches nothing).
    pub async fn verify(&self, password: &str, hash: &str) -> Result<bool, PasswordError> {
        let password = password.to_owned();
        let hash = hash.to_owned();
        self.run(
            move |argon| match argon2::password_hash::phc::PasswordHash::new(&hash) {
                Ok(h) => argon.verify_password(password.as_bytes(), &h).is_ok(),
                Err(_) => false,
            },
        )
        .await
    }

    /// The usual time of a [`PasswordPool::hash`] call lately (waiting included), once one was
    /// measured.
    pub fn typical_hash_time(&self) -> Option<Duration> {
        match self.typical_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Takes about as long as a sign-up's hash without hashing: waits the typical hash time, or
    /// hashes `password` once when none was measured yet (a fresh process).
    pub async fn spend_a_hash_time(&self, password: &str) -> Result<(), PasswordError> {
        match self.typical_hash_time() {
            Some(t) => {
                tokio::time::sleep(t).await;
                Ok(())
            }
            None => self.hash(password).await.map(|_| ()),
        }
    }

    fn observe(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        // An average over about the last eight hashes; races between two updates lose one
        // sample, which does not matter for an average.
        let old = self.typical_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            us
        } else {
            old.saturating_mul(7).saturating_add(us) / 8
        };
        self.typical_us.store(new.max(1), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_and_verifies() {
        let pool = PasswordPool::new(1, 4);
        assert_eq!(pool.typical_hash_time(), None);
        let h = pool.hash("correct horse battery").await.unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(pool.verify("correct horse battery", &h).await.unwrap());
        assert!(!pool.verify("wrong horse battery", &h).await.unwrap());
        assert!(!pool.verify("anything", "not a phc string").await.unwrap());
        assert!(pool.typical_hash_time().is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_is_refused_at_once_and_permits_bound_the_work() {
        let pool = Arc::new(PasswordPool::new(1, 2));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Arc::new(parking_lot::Mutex::new(release_rx));
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let (pool, running, most, rx) = (
                Arc::clone(&pool),
                Arc::clone(&running),
                Arc::clone(&most),
                Arc::clone(&release_rx),
            );
            tasks.push(tokio::spawn(async move {
                pool.run(move |_| {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let _ = rx.lock().recv();
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        // One runs, two wait: the queue (2) is full now.
        for _ in 0..200 {
            if pool.waiting.load(Ordering::SeqCst) == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(pool.waiting.load(Ordering::SeqCst), 2);
        assert_eq!(pool.hash("one more").await, Err(PasswordError::Busy));
        for _ in 0..3 {
            release_tx.send(()).unwrap();
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1, "one permit, one at a time");
        assert_eq!(pool.waiting.load(Ordering::SeqCst), 0);
        // And the pool works again.
        assert!(pool.hash("after the flood").await.is_ok());
    }

    #[tokio::test]
    async fn an_abandoned_wait_leaves_the_queue() {
        let pool = Arc::new(PasswordPool::new(1, 1));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let p = Arc::clone(&pool);
        let holder = tokio::spawn(async move {
            p.run(move |_| {
                let _ = release_rx.recv();
            })
            .await
        });
        while pool.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        // A waiter that gives up (a client that hung up) frees its place in the queue.
        let gave_up =
            tokio::time::timeout(Duration::from_millis(50), pool.hash("waiting in vain")).await;
        assert!(gave_up.is_err());
        assert_eq!(pool.waiting.load(Ordering::SeqCst), 0);
        release_tx.send(()).unwrap();
        holder.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_taken_email_spends_the_typical_time_without_hashing() {
        let pool = PasswordPool::new(1, 4);
        pool.observe(Duration::from_millis(40));
        let t = Instant::now();
        pool.spend_a_hash_time("x").await.unwrap();
        assert!(t.elapsed() >= Duration::from_millis(40));
        // The average follows new samples.
        pool.observe(Duration::from_millis(120));
        assert_eq!(pool.typical_hash_time(), Some(Duration::from_millis(50)));
    }

    #[test]
    fn default_permits_leave_a_core() {
        let n = default_permits();
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        assert!(n >= 1 && (n < cores || cores == 1), "{n} of {cores}");
    }
}
