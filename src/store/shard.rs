//! A shard: a dense vector of slots and its open-addressed index behind one
//! lock, padded to its own cache lines.

use std::hash::BuildHasher;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use parking_lot::{Mutex, MutexGuard};

use super::index::SlotIndex;
use super::slots::{Entry64, Held, Key, inline_eq};

/// One shard: dense slots and an index of slot numbers by key hash.
#[derive(Debug, Default)]
pub(super) struct Shard {
    pub(super) index: SlotIndex,
    pub(super) slots: Vec<Entry64>,
    /// Set once any slot has held a state with heap parts (a log or bucket
    /// list), which [`Store::prefetch`] then fetches too.
    pub(super) heap_states: bool,
    /// While a snapshot walks this shard: the slots below this position
    /// are written. [`Shard::remove`] keeps every slot not yet written at
    /// or above it (0 when no walk is under way).
    pub(super) walked: usize,
    /// Heap bytes of the slots' states and keys (see `memory.rs`).
    pub(super) heap: usize,
}

/// A shard's lock, and where its index lives for [`Store::prefetch`]
/// (published under the lock, read without it: a stale pair only makes a
/// prefetch useless, never wrong).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(super) struct PaddedShard {
    pub(super) shard: Mutex<Shard>,
    pub(super) index_base: AtomicPtr<u32>,
    pub(super) index_mask: AtomicUsize,
}

/// A locked shard; republishes the index's place when unlocked.
pub(super) struct Locked<'a> {
    pub(super) guard: MutexGuard<'a, Shard>,
    pub(super) pad: &'a PaddedShard,
}

impl Deref for Locked<'_> {
    type Target = Shard;
    fn deref(&self) -> &Shard {
        &self.guard
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Shard {
        &mut self.guard
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let (base, mask) = self.guard.index.layout();
        if self.pad.index_base.load(Ordering::Relaxed).cast_const() != base {
            self.pad
                .index_base
                .store(base.cast_mut(), Ordering::Relaxed);
        }
        if self.pad.index_mask.load(Ordering::Relaxed) != mask {
            self.pad.index_mask.store(mask, Ordering::Relaxed);
        }
    }
}

impl PaddedShard {
    pub(super) fn lock(&self) -> Locked<'_> {
        Locked {
            guard: self.shard.lock(),
            pad: self,
        }
    }
}

impl Shard {
    pub(super) fn find(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let slots = &self.slots;
        match Key::new_inline(key) {
            // Inline keys compare as fixed-size arrays.
            Some(inline) => self.index.find(
                hash,
                |i| matches!(&slots[i].key, Key::Inline(k) if inline_eq(k, &inline)),
            ),
            None => self.index.find(hash, |i| slots[i].key.as_bytes() == key),
        }
    }

    pub(super) fn insert(&mut self, hash: u64, entry: Entry64, hasher: &impl BuildHasher) -> usize {
        if let Held::Inline(state) = &entry.held {
            self.heap_states |= state.heap_lines().is_some();
        }
        self.heap += entry.heap_bytes();
        let i = self.slots.len();
        self.slots.push(entry);
        let slots = &self.slots;
        self.index
            .insert(hash, i, |j| hasher.hash_one(slots[j].key.as_bytes()));
        i
    }

    /// Removes slot `i` (whose key hashes to `hash`), moving the last slot
    /// into its place.
    ///
    /// While a snapshot walks the shard, the last slot (not yet written)
    /// must not move below [`Shard::walked`], where the walk would miss it:
    /// then the last written slot moves into the hole instead, the last
    /// slot into its place, and the walk's mark steps back by one.
    pub(super) fn remove(&mut self, hash: u64, i: usize, hasher: &impl BuildHasher) -> Entry64 {
        let slots = &self.slots;
        self.index
            .remove(hash, i, |j| hasher.hash_one(slots[j].key.as_bytes()));
        let last = self.slots.len() - 1;
        let walked = self.walked;
        let hole = if i < walked && walked <= last {
            let written = walked - 1;
            if written != i {
                self.move_slot(written, i, hasher);
            }
            self.walked = written;
            written
        } else {
            i
        };
        if hole != last {
            let moved = hasher.hash_one(self.slots[last].key.as_bytes());
            self.index.repoint(moved, last, hole);
        }
        let removed = self.slots.swap_remove(hole);
        self.walked = self.walked.min(self.slots.len());
        self.heap -= removed.heap_bytes();
        removed
    }

    /// Swaps slot `from` into position `to`, whose own slot (already out of
    /// the index) goes to `from`.
    fn move_slot(&mut self, from: usize, to: usize, hasher: &impl BuildHasher) {
        let moved = hasher.hash_one(self.slots[from].key.as_bytes());
        self.index.repoint(moved, from, to);
        self.slots.swap(from, to);
    }

    /// Gives memory back after many removals.
    pub(super) fn shrink(&mut self, hasher: &impl BuildHasher) {
        if self.slots.capacity() > 64 && self.slots.len() < self.slots.capacity() / 4 {
            self.slots.shrink_to(self.slots.len() * 2);
            let slots = &self.slots;
            self.index
                .shrink(|j| hasher.hash_one(slots[j].key.as_bytes()));
        }
    }
}

pub(super) fn lock(s: &PaddedShard) -> Locked<'_> {
    s.lock()
}
