//! The store's own memory accounting, and `maxmemory`.
//!
//! Each shard counts the bytes it holds: its slot vector's capacity (64
//! bytes a slot), its index, and the heap parts of its states (long keys,
//! sliding logs, bucket lists, a policy key's states). The sum is what
//! `maxmemory` bounds, whatever the allocator does around it.
//!
//! The bound is split evenly among the shards (keys hash evenly, so at a
//! few thousand keys and more the whole of it is usable): a shard never
//! grows past its share to take a new key. Under `noeviction` a new key
//! that does not fit is refused with Redis's `OOM` error; keys already
//! stored keep working. Under `volatile-ttl` the shard first drops the
//! sampled state closest to being fresh again. Dropping a state can only
//! make the limiter more permissive for that key (it starts over, as if
//! its window had passed), which is the trade-off `volatile-ttl` accepts.

use std::hash::BuildHasher;

use super::shard::Shard;
use super::slots::{Entry64, Held, Key, PolicyStates, Reservations};
use crate::limiter::State;

/// What happens when a new key does not fit under `maxmemory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EvictionPolicy {
    /// New keys are refused (`OOM`); stored keys keep working.
    #[default]
    NoEviction,
    /// The sampled state closest to being fresh again is dropped.
    VolatileTtl,
}

impl EvictionPolicy {
    pub const ALL: [EvictionPolicy; 2] = [EvictionPolicy::NoEviction, EvictionPolicy::VolatileTtl];

    /// Redis's name.
    pub fn name(self) -> &'static str {
        match self {
            EvictionPolicy::NoEviction => "noeviction",
            EvictionPolicy::VolatileTtl => "volatile-ttl",
        }
    }

    pub fn parse(text: &str) -> Result<EvictionPolicy, String> {
        EvictionPolicy::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| {
                format!("maxmemory policy must be noeviction or volatile-ttl, not '{text}'")
            })
    }
}

/// States sampled for each eviction (Redis samples 5 keys by default; a
/// shard's slots are in one vector, so sampling more is cheap).
const SAMPLES: usize = 16;

/// Most states evicted after one check grew a state; the shard's next
/// new key makes the rest of the room.
const MAX_EVICTIONS: usize = 64;

impl Entry64 {
    /// Bytes of heap this slot holds beyond its 64 bytes (computed on every
    /// insert and removal: the common slot, an inline key and a state with
    /// no heap part, takes two tests).
    #[inline]
    pub(super) fn heap_bytes(&self) -> usize {
        let key = match &self.key {
            Key::Inline(_) => 0,
            Key::Heap(k) => k.len(),
        };
        match &self.held {
            Held::Inline(State::SlidingLog(s)) => key + s.heap_bytes(),
            Held::Inline(State::SlidingWindow(s)) => key + s.heap_bytes(),
            Held::Inline(_) => key,
            Held::Policy(p) => key + policy_heap_bytes(p),
            Held::Reservations(r) => key + reservations_heap_bytes(r),
        }
    }

    /// Whether a check can change [`Entry64::heap_bytes`].
    #[inline]
    pub(super) fn may_grow(&self) -> bool {
        match &self.held {
            Held::Inline(state) => matches!(state, State::SlidingLog(_) | State::SlidingWindow(_)),
            Held::Policy(_) | Held::Reservations(_) => true,
        }
    }
}

/// Heap bytes of a policy key's states.
#[inline(never)]
fn policy_heap_bytes(p: &PolicyStates) -> usize {
    std::mem::size_of::<PolicyStates>()
        + p.states.capacity() * std::mem::size_of::<State>()
        + p.states.iter().map(State::heap_bytes).sum::<usize>()
}

/// Heap bytes of a key's open reservations (a policy's name counted with
/// each one taken under it).
fn reservations_heap_bytes(r: &Reservations) -> usize {
    // A hash table bucket holds the id and the reservation, plus one
    // control byte.
    let bucket = std::mem::size_of::<(u64, super::Reservation)>() + 1;
    std::mem::size_of::<Reservations>() + r.open.capacity() * bucket + r.names
}

impl Shard {
    /// Bytes this shard holds.
    pub(super) fn bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Entry64>() + self.index.bytes() + self.heap
    }

    /// Makes room for one more slot holding `extra` heap bytes without
    /// passing `budget`: true if there is (growing the slot vector by at
    /// most half, and no further than the budget allows).
    pub(super) fn reserve_within(&mut self, budget: usize, extra: usize) -> bool {
        let slot = std::mem::size_of::<Entry64>();
        let fixed = self.index.bytes_after_insert() + self.heap + extra;
        let (len, cap) = (self.slots.len(), self.slots.capacity());
        let most = budget.saturating_sub(fixed) / slot;
        if len < cap {
            if cap <= most {
                return true;
            }
            // The budget was lowered below what the vector holds: once
            // enough states are evicted, give the spare slots back.
            if len >= most {
                return false;
            }
            self.slots.shrink_to(most);
            return self.slots.capacity() <= most;
        }
        if most <= len {
            return false;
        }
        let grown = (cap + cap / 2).max(cap + 16).min(most);
        self.slots.reserve_exact(grown - len);
        true
    }

    /// Drops the state closest to being fresh among a sample of slots,
    /// never the one of map key `keep`; false if there was none to drop.
    fn evict_one(&mut self, seed: &mut u64, keep: &[u8], hasher: &impl BuildHasher) -> bool {
        let len = self.slots.len();
        let mut best: Option<(u64, usize)> = None;
        for _ in 0..SAMPLES.min(len) {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            let i = (*seed % len as u64) as usize;
            let fresh_at = self.slots[i].fresh_at();
            if best.is_none_or(|(f, _)| fresh_at < f) && self.slots[i].key.as_bytes() != keep {
                best = Some((fresh_at, i));
            }
        }
        let Some((_, i)) = best else {
            return false;
        };
        let hash = hasher.hash_one(self.slots[i].key.as_bytes());
        self.remove(hash, i, hasher);
        true
    }
}

impl super::Store {
    /// Sets `maxmemory` (bytes; 0 for no bound) and what happens past it.
    /// Takes effect for the next new key.
    pub fn set_maxmemory(&self, bytes: u64, policy: EvictionPolicy) {
        use std::sync::atomic::Ordering::Relaxed;
        self.maxmemory.store(bytes, Relaxed);
        self.eviction
            .store(policy == EvictionPolicy::VolatileTtl, Relaxed);
    }

    /// The bound and its policy.
    pub fn maxmemory(&self) -> (u64, EvictionPolicy) {
        use std::sync::atomic::Ordering::Relaxed;
        let policy = if self.eviction.load(Relaxed) {
            EvictionPolicy::VolatileTtl
        } else {
            EvictionPolicy::NoEviction
        };
        (self.maxmemory.load(Relaxed), policy)
    }

    /// Bytes the store holds (what `maxmemory` bounds).
    pub fn used_memory(&self) -> usize {
        self.shards.iter().map(|s| s.lock().bytes()).sum()
    }

    /// States dropped to stay under `maxmemory` so far.
    pub fn evicted_keys(&self) -> u64 {
        self.evicted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A shard's share of `maxmemory`, if there is one.
    pub(super) fn shard_budget(&self) -> Option<usize> {
        let (bytes, _) = self.maxmemory();
        (bytes > 0).then(|| usize::try_from(bytes / super::SHARDS as u64).unwrap_or(usize::MAX))
    }

    /// Makes room in `shard` for a new slot like `entry` (whose key hashes
    /// to `hash`), evicting under `volatile-ttl`; `Err` if it does not fit.
    pub(super) fn make_room(
        &self,
        shard: &mut Shard,
        hash: u64,
        entry: &Entry64,
    ) -> Result<(), super::Refused> {
        if self.maxmemory.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let Some(budget) = self.shard_budget() else {
            return Ok(());
        };
        let extra = entry.heap_bytes();
        let evicting = self.maxmemory().1 == EvictionPolicy::VolatileTtl;
        let mut seed = hash | 1;
        // Each turn evicts one state, so this ends; it takes more than one
        // turn only when the bound was lowered below what is held.
        loop {
            if shard.reserve_within(budget, extra) {
                return Ok(());
            }
            if !evicting || !shard.evict_one(&mut seed, &[], &self.hasher) {
                return Err(super::Refused::OutOfMemory);
            }
            self.counted_eviction();
        }
    }

    /// After the state of `map_key` (hashing to `hash`) grew: under
    /// `volatile-ttl`, evicts other states until the shard is within its
    /// share again.
    pub(super) fn after_growth(&self, shard: &mut Shard, hash: u64, map_key: &[u8]) {
        let Some(budget) = self.shard_budget() else {
            return;
        };
        if self.maxmemory().1 != EvictionPolicy::VolatileTtl {
            return;
        }
        let mut seed = hash | 1;
        for _ in 0..MAX_EVICTIONS {
            if shard.bytes() <= budget || !shard.evict_one(&mut seed, map_key, &self.hasher) {
                return;
            }
            self.counted_eviction();
        }
    }

    fn counted_eviction(&self) {
        self.evicted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.touch();
    }
}
