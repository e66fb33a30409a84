//! A sharded, capacity-bounded map from key to per-key state.
//!
//! Each shard is a `parking_lot::Mutex` around a `hashbrown::HashTable`. The key is hashed once:
//! the hash picks the shard and is reused for the probe, is stored in the slot (cheap equality
//! pre-check, no rehashing when the table grows) and is kept with dirty keys. A lookup borrows the
//! caller's `&str`; the key is copied into an `Arc<str>` only when a new entry is created.
//!
//! Memory: idle entries (the owner says when an entry is idle) are swept when a shard that is about
//! to grow reaches its sweep mark; the mark then becomes twice the surviving size, so sweeping is
//! amortised O(1) per insert and a shard holds at most about twice its live keys. A shard never
//! holds more than its cap (`max_keys / shards`, rounded up): a new key is then refused with
//! [`LimitError::CapacityExceeded`], and full sweeps of a full shard happen at most once per
//! second.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use parking_lot::{Mutex, MutexGuard};

use crate::LimitError;

/// A shard never sweeps below this many entries.
const MIN_SWEEP_MARK: usize = 64;
/// A full shard retries a full sweep at most this often (nanoseconds of the caller's clock).
const FULL_SWEEP_BACKOFF_NS: u64 = 1_000_000_000;

/// One map entry.
pub(crate) struct Slot<V> {
    pub(crate) hash: u64,
    pub(crate) key: Arc<str>,
    pub(crate) value: V,
}

/// One shard. `dirty` is only used by the quota counter (keys changed since the last flush).
pub(crate) struct Shard<V> {
    pub(crate) table: HashTable<Slot<V>>,
    pub(crate) dirty: Vec<(u64, Arc<str>)>,
    sweep_mark: usize,
    cap: usize,
    /// Time (caller's clock, ns) of the last sweep that left the shard full.
    last_full_sweep: Option<u64>,
}

/// Aligns each shard to its own cache line, so two cores locking neighbouring shards do not
/// bounce one line between them.
#[repr(align(64))]
struct Padded<T>(T);

pub(crate) struct ShardedMap<V> {
    shards: Box<[Padded<Mutex<Shard<V>>>]>,
    mask: usize,
    hasher: hashbrown::DefaultHashBuilder,
    max_keys: usize,
}

impl<V> ShardedMap<V> {
    /// `shards` is rounded up to a power of two (at least 1); `max_keys` (at least 1) is split
    /// evenly between shards.
    pub(crate) fn new(shards: usize, max_keys: usize) -> Self {
        let n = shards.max(1).next_power_of_two();
        let max_keys = max_keys.max(1);
        let cap = max_keys.div_ceil(n);
        let shards = (0..n)
            .map(|_| {
                Padded(Mutex::new(Shard {
                    table: HashTable::new(),
                    dirty: Vec::new(),
                    sweep_mark: MIN_SWEEP_MARK.min(cap),
                    cap,
                    last_full_sweep: None,
                }))
            })
            .collect();
        Self {
            shards,
            mask: n - 1,
            hasher: hashbrown::DefaultHashBuilder::default(),
            max_keys,
        }
    }

    pub(crate) fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Locks the shard that owns `hash`.
    pub(crate) fn lock(&self, hash: u64) -> MutexGuard<'_, Shard<V>> {
        // hashbrown uses the low bits for the bucket and the top 7 for its control byte; take the
        // shard index from bits in between so the two do not correlate.
        let idx = ((hash >> 32) as usize) & self.mask;
        self.shards[idx].0.lock()
    }

    /// Runs `f` on every shard in turn, each under its own lock.
    pub(crate) fn for_each_shard(&self, mut f: impl FnMut(&mut Shard<V>)) {
        for s in self.shards.iter() {
            f(&mut s.0.lock());
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock().table.len()).sum()
    }

    pub(crate) fn max_keys(&self) -> usize {
        self.max_keys
    }
}

impl<V> std::fmt::Debug for ShardedMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedMap")
            .field("shards", &self.shards.len())
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

fn eq<V>(hash: u64, key: &str) -> impl Fn(&Slot<V>) -> bool + '_ {
    move |s: &Slot<V>| s.hash == hash && &*s.key == key
}

fn rehash<V>(s: &Slot<V>) -> u64 {
    s.hash
}

impl<V> Shard<V> {
    pub(crate) fn get_mut(&mut self, hash: u64, key: &str) -> Option<&mut V> {
        self.table
            .find_mut(hash, eq(hash, key))
            .map(|s| &mut s.value)
    }

    /// The entry for `key`, created with `make` when absent. Creating may first sweep entries for
    /// which `idle` holds; it fails when the shard is still full afterwards.
    pub(crate) fn get_or_insert_with(
        &mut self,
        hash: u64,
        key: &str,
        now_ns: u64,
        max_keys: usize,
        idle: impl Fn(&V) -> bool,
        make: impl FnOnce() -> V,
    ) -> Result<&mut Slot<V>, LimitError> {
        // Only a shard at its sweep mark needs the extra probe; the usual hit probes once.
        if self.table.len() >= self.sweep_mark && self.table.find(hash, eq(hash, key)).is_none() {
            self.make_room(now_ns, max_keys, idle)?;
        }
        Ok(match self.table.entry(hash, eq(hash, key), rehash) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => v
                .insert(Slot {
                    hash,
                    key: Arc::from(key),
                    value: make(),
                })
                .into_mut(),
        })
    }

    fn make_room(
        &mut self,
        now_ns: u64,
        max_keys: usize,
        idle: impl Fn(&V) -> bool,
    ) -> Result<(), LimitError> {
        let full = self.table.len() >= self.cap;
        let recently_swept = self
            .last_full_sweep
            .is_some_and(|t| now_ns >= t && now_ns - t < FULL_SWEEP_BACKOFF_NS);
        if full && recently_swept {
            return Err(LimitError::CapacityExceeded { max_keys });
        }
        self.sweep(idle);
        if self.table.len() >= self.cap {
            self.last_full_sweep = Some(now_ns);
            return Err(LimitError::CapacityExceeded { max_keys });
        }
        Ok(())
    }

    /// Removes idle entries and resets the sweep mark. Returns how many were removed.
    pub(crate) fn sweep(&mut self, idle: impl Fn(&V) -> bool) -> usize {
        let before = self.table.len();
        self.table.retain(|s| !idle(&s.value));
        let len = self.table.len();
        if self.table.capacity() > 4 * len.max(MIN_SWEEP_MARK) {
            self.table.shrink_to(2 * len, rehash);
        }
        self.sweep_mark = (2 * len).max(MIN_SWEEP_MARK).min(self.cap);
        before - len
    }

    /// Records `key` as changed since the last flush (the caller keeps a per-entry flag so a key
    /// is listed once).
    pub(crate) fn push_dirty(&mut self, hash: u64, key: Arc<str>) {
        self.dirty.push((hash, key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_enforced_and_idle_entries_make_room() {
        let m: ShardedMap<bool> = ShardedMap::new(1, 100);
        let h = |k: &str| m.hash(k);
        let mut s = m.lock(0);
        for i in 0..100 {
            let k = format!("k{i}");
            // Entries are "idle" when their value is true; none is yet.
            s.get_or_insert_with(h(&k), &k, 0, 100, |v| *v, || false)
                .unwrap();
        }
        assert_eq!(s.table.len(), 100);
        let e = s
            .get_or_insert_with(h("new"), "new", 0, 100, |v| *v, || false)
            .err()
            .unwrap();
        assert!(matches!(e, LimitError::CapacityExceeded { max_keys: 100 }));
        // Existing keys still work when full.
        assert!(
            s.get_or_insert_with(h("k5"), "k5", 0, 100, |v| *v, || false)
                .is_ok()
        );
        // Mark half idle: within the back-off a full shard does not sweep again...
        for i in 0..50 {
            let k = format!("k{i}");
            *s.get_mut(h(&k), &k).unwrap() = true;
        }
        assert!(
            s.get_or_insert_with(h("new"), "new", 10, 100, |v| *v, || false)
                .is_err()
        );
        // ...after it, it does and the new key fits.
        s.get_or_insert_with(h("new"), "new", 2_000_000_000, 100, |v| *v, || false)
            .unwrap();
        assert_eq!(s.table.len(), 51);
    }
}
