//! The verified-token cache: a client reusing its access token pays the signature check once.
//!
//! Keyed by the whole token string and the validator's configuration fingerprint (so an API with
//! other allowed issuers or other key sources never sees another API's verdict). Bounded: each of
//! the shards evicts its oldest insertion when full (FIFO; tokens are short-lived and re-inserted
//! after a miss, so recency tracking would buy little and cost a write on every hit). Reads take a
//! shard's read lock only.
//!
//! An entry records what made it valid — the key-set generation of the JWKS URL that verified it
//! and the cache's flush epoch — and the validator treats an entry as a miss when either moved,
//! so a key-set change or a flush invalidates entries without scanning. Time claims are stored and
//! re-checked on every hit; an entry is never served past `exp` (+ skew).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::RwLock;

use crate::validator::VerifiedToken;

/// Default bound on the number of cached tokens.
pub const DEFAULT_TOKEN_CACHE_CAPACITY: usize = 100_000;

const SHARDS: usize = 64;

/// A validator's configuration fingerprint (truncated SHA-256).
pub(crate) type Fingerprint = [u8; 16];

/// Which key source verified a cached token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VerifiedBy {
    /// A configured key (index in the validator's sources).
    Static { slot: usize },
    /// A JWKS URL (index in the validator's sources) at a key-set generation.
    Jwks { slot: usize, generation: u64 },
}

/// One cache entry.
#[derive(Debug, Clone)]
pub(crate) struct CachedToken {
    pub token: Arc<VerifiedToken>,
    pub verified_by: VerifiedBy,
    /// The `JwksCache` flush epoch when verification started.
    pub epoch: u64,
}

struct Slot {
    seq: u64,
    /// One entry per validator fingerprint that verified this token (almost always one).
    entries: Vec<(Fingerprint, CachedToken)>,
}

/// Hashes only the last [`TAIL`] bytes of each write, with a per-process random SipHash key.
///
/// The tail of a token is its signature. Only verified tokens are inserted, and their signatures
/// cannot be chosen by a client, so tail hashing keeps the map's collision resistance while a
/// lookup hashes 32 bytes instead of the whole token (keys are still compared in full).
#[derive(Clone)]
struct TailHash(RandomState);

const TAIL: usize = 32;

struct TailHasher(DefaultHasher);

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(&bytes[bytes.len().saturating_sub(TAIL)..]);
    }
    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

impl BuildHasher for TailHash {
    type Hasher = TailHasher;
    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0.build_hasher())
    }
}

struct Shard {
    map: HashMap<Arc<str>, Slot, TailHash>,
    /// Insertion order; an item is live while its `seq` matches the slot's.
    order: VecDeque<(Arc<str>, u64)>,
    next_seq: u64,
}

/// Counters of a [`VerifiedTokenCache`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCacheStats {
    /// The bound on entries.
    pub capacity: usize,
    /// Tokens currently held.
    pub entries: usize,
    /// Lookups answered from the cache (signature check skipped).
    pub hits: u64,
    /// Lookups that found nothing usable.
    pub misses: u64,
    /// Entries found but unusable because the key set changed or a flush happened.
    pub invalidated: u64,
    /// Entries added.
    pub insertions: u64,
    /// Entries pushed out by the bound.
    pub evictions: u64,
}

/// One shard with its own counters, on its own cache lines (no false sharing between shards).
#[repr(align(128))]
struct ShardSlot {
    lock: RwLock<Shard>,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidated: AtomicU64,
    insertions: AtomicU64,
    evictions: AtomicU64,
}

/// A bounded, sharded cache of verified tokens, shared by all validators (see the module docs).
pub struct VerifiedTokenCache {
    shards: Box<[ShardSlot]>,
    shard_capacity: usize,
    capacity: usize,
    hasher: TailHash,
}

impl std::fmt::Debug for VerifiedTokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokenCache")
            .field("stats", &self.stats())
            .finish()
    }
}

impl VerifiedTokenCache {
    /// A cache holding at most about `capacity` tokens (0 disables caching).
    pub fn new(capacity: usize) -> Arc<Self> {
        let shards = if capacity < 4 * SHARDS { 1 } else { SHARDS };
        let shard_capacity = capacity.div_ceil(shards);
        let hasher = TailHash(RandomState::new());
        Arc::new(Self {
            shards: (0..shards)
                .map(|_| ShardSlot {
                    lock: RwLock::new(Shard {
                        map: HashMap::with_hasher(hasher.clone()),
                        order: VecDeque::new(),
                        next_seq: 0,
                    }),
                    hits: AtomicU64::new(0),
                    misses: AtomicU64::new(0),
                    invalidated: AtomicU64::new(0),
                    insertions: AtomicU64::new(0),
                    evictions: AtomicU64::new(0),
                })
                .collect(),
            shard_capacity,
            capacity,
            hasher,
        })
    }

    /// The default cache ([`DEFAULT_TOKEN_CACHE_CAPACITY`] entries).
    pub fn with_default_capacity() -> Arc<Self> {
        Self::new(DEFAULT_TOKEN_CACHE_CAPACITY)
    }

    fn shard(&self, token: &str) -> &ShardSlot {
        if self.shards.len() == 1 {
            return &self.shards[0];
        }
        // The map hashes the tail too (see `TailHash`); mix differently for the shard index.
        let h = self.hasher.hash_one(token).rotate_left(29);
        #[allow(clippy::cast_possible_truncation)]
        &self.shards[(h as usize) % self.shards.len()]
    }

    /// The entry for `(fp, token)`, if any. Counts nothing: the caller reports the outcome.
    pub(crate) fn get(&self, fp: &Fingerprint, token: &str) -> Option<CachedToken> {
        if self.capacity == 0 {
            return None;
        }
        let shard = self.shard(token).lock.read();
        shard
            .map
            .get(token)?
            .entries
            .iter()
            .find(|(f, _)| f == fp)
            .map(|(_, e)| e.clone())
    }

    pub(crate) fn note_hit(&self, token: &str) {
        self.shard(token).hits.fetch_add(1, Relaxed);
    }

    pub(crate) fn note_miss(&self, token: &str, invalidated: bool) {
        let slot = self.shard(token);
        slot.misses.fetch_add(1, Relaxed);
        if invalidated {
            slot.invalidated.fetch_add(1, Relaxed);
        }
    }

    /// Adds or replaces the entry for `(fp, token)`, evicting the oldest tokens when full.
    pub(crate) fn insert(&self, fp: Fingerprint, token: &str, entry: CachedToken) {
        if self.capacity == 0 {
            return;
        }
        let shard_slot = self.shard(token);
        let mut shard = shard_slot.lock.write();
        if let Some(slot) = shard.map.get_mut(token) {
            match slot.entries.iter_mut().find(|(f, _)| *f == fp) {
                Some((_, e)) => *e = entry,
                None => slot.entries.push((fp, entry)),
            }
            return;
        }
        let mut evicted = 0;
        while shard.map.len() >= self.shard_capacity {
            let Some((key, seq)) = shard.order.pop_front() else {
                break;
            };
            if shard.map.get(&key).is_some_and(|s| s.seq == seq) {
                shard.map.remove(&key);
                evicted += 1;
            }
        }
        let key: Arc<str> = Arc::from(token);
        let seq = shard.next_seq;
        shard.next_seq += 1;
        shard.order.push_back((Arc::clone(&key), seq));
        shard.map.insert(
            key,
            Slot {
                seq,
                entries: vec![(fp, entry)],
            },
        );
        // Removed entries leave stale order items behind; compact when they pile up.
        if shard.order.len() > 2 * self.shard_capacity + 16 {
            let Shard { map, order, .. } = &mut *shard;
            order.retain(|(k, s)| map.get(k).is_some_and(|slot| slot.seq == *s));
        }
        drop(shard);
        shard_slot.insertions.fetch_add(1, Relaxed);
        if evicted > 0 {
            shard_slot.evictions.fetch_add(evicted, Relaxed);
        }
    }

    /// Drops the entry for `(fp, token)` (an expired token).
    pub(crate) fn remove(&self, fp: &Fingerprint, token: &str) {
        if self.capacity == 0 {
            return;
        }
        let mut shard = self.shard(token).lock.write();
        if let Some(slot) = shard.map.get_mut(token) {
            slot.entries.retain(|(f, _)| f != fp);
            if slot.entries.is_empty() {
                shard.map.remove(token);
            }
        }
    }

    /// Drops every entry.
    pub fn clear(&self) {
        for s in &self.shards {
            let mut s = s.lock.write();
            s.map.clear();
            s.order.clear();
        }
    }

    /// Tokens currently held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock.read().map.len()).sum()
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters, for metrics.
    pub fn stats(&self) -> TokenCacheStats {
        let sum = |f: fn(&ShardSlot) -> &AtomicU64| -> u64 {
            self.shards.iter().map(|s| f(s).load(Relaxed)).sum()
        };
        TokenCacheStats {
            capacity: self.capacity,
            entries: self.len(),
            hits: sum(|s| &s.hits),
            misses: sum(|s| &s.misses),
            invalidated: sum(|s| &s.invalidated),
            insertions: sum(|s| &s.insertions),
            evictions: sum(|s| &s.evictions),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::Algorithm;

    fn entry() -> CachedToken {
        CachedToken {
            token: Arc::new(VerifiedToken {
                claims: serde_json::Map::new(),
                exp: None,
                iat: None,
                nbf: None,
                alg: Algorithm::RS256,
                kid: None,
                jwks_url: None,
            }),
            verified_by: VerifiedBy::Static { slot: 0 },
            epoch: 0,
        }
    }

    #[test]
    fn bounded_fifo_eviction() {
        let c = VerifiedTokenCache::new(10);
        for i in 0..25 {
            c.insert([0; 16], &format!("tok-{i}"), entry());
        }
        assert_eq!(c.len(), 10);
        assert!(c.get(&[0; 16], "tok-14").is_none());
        assert!(c.get(&[0; 16], "tok-15").is_some());
        assert!(c.get(&[0; 16], "tok-24").is_some());
        let s = c.stats();
        assert_eq!((s.insertions, s.evictions, s.entries), (25, 15, 10));
    }

    #[test]
    fn sharded_bound_holds() {
        let c = VerifiedTokenCache::new(1000);
        for i in 0..5000 {
            c.insert(
                [1; 16],
                &format!("token-number-{i}-signature{i:08}"),
                entry(),
            );
        }
        assert!(c.len() <= 1000 + SHARDS, "{}", c.len());
        assert!(c.len() > 500, "{}", c.len());
    }

    #[test]
    fn fingerprints_are_separate_and_remove_and_clear_work() {
        let c = VerifiedTokenCache::new(10);
        c.insert([1; 16], "t", entry());
        assert!(c.get(&[2; 16], "t").is_none());
        c.insert([2; 16], "t", entry());
        assert!(c.get(&[1; 16], "t").is_some() && c.get(&[2; 16], "t").is_some());
        assert_eq!(c.len(), 1);
        c.remove(&[1; 16], "t");
        assert!(c.get(&[1; 16], "t").is_none() && c.get(&[2; 16], "t").is_some());
        c.remove(&[2; 16], "t");
        assert!(c.is_empty());
        // Re-inserting after removals keeps the bound and the order consistent.
        for round in 0..50 {
            for i in 0..10 {
                c.insert([1; 16], &format!("r{i}"), entry());
            }
            c.remove(&[1; 16], &format!("r{}", round % 10));
        }
        assert!(c.len() <= 10);
        c.clear();
        assert!(c.is_empty());
    }

    #[test]
    fn tokens_sharing_a_tail_are_still_distinct_keys() {
        let c = VerifiedTokenCache::new(10);
        let tail = "x".repeat(64);
        c.insert([0; 16], &format!("a.b.{tail}"), entry());
        assert!(c.get(&[0; 16], &format!("a.b.{tail}")).is_some());
        assert!(c.get(&[0; 16], &format!("a.c.{tail}")).is_none());
        c.insert([0; 16], &format!("a.c.{tail}"), entry());
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn capacity_zero_disables() {
        let c = VerifiedTokenCache::new(0);
        c.insert([0; 16], "t", entry());
        assert!(c.get(&[0; 16], "t").is_none());
        assert_eq!(c.len(), 0);
    }
}
