//! Batch prefetch: the one `unsafe` of the crate (a CPU cache hint).

use std::hash::BuildHasher;
use std::sync::atomic::Ordering;

use super::index::SlotIndex;
use super::keys::with_map_key;
use super::slots::Held;
use super::{PREFETCH_FROM, Scope, Store};

impl Store {
    /// Starts fetching what checks of these inline keys will read: first
    /// every key's index line (no lock), then, with those arriving, every
    /// key's slot (each shard locked briefly, skipped if busy). Checks run
    /// soon after then find both in the cache: the misses of a pipelined
    /// batch overlap instead of coming one after another. Changes nothing.
    pub fn prefetch(&self, keys: &[&[u8]]) {
        let mut hashes = smallvec::SmallVec::<[u64; 64]>::with_capacity(keys.len());
        for key in keys {
            let hash = with_map_key(Scope::Inline, key, |map_key| self.hasher.hash_one(map_key));
            let pad = self.shard_of(hash);
            let mask = pad.index_mask.load(Ordering::Relaxed);
            // A small shard stays in the cache by itself: fetching ahead
            // would only cost (3% with 100 keys).
            if mask < PREFETCH_FROM - 1 {
                continue;
            }
            let base = pad.index_base.load(Ordering::Relaxed);
            prefetch(base.wrapping_add(SlotIndex::home(hash, mask)));
            hashes.push(hash);
        }
        let mut heap = false;
        for &hash in &hashes {
            let Some(shard) = self.shard_of(hash).shard.try_lock() else {
                continue;
            };
            if let Some(i) = shard.index.candidate(hash) {
                prefetch(shard.slots.as_ptr().wrapping_add(i).cast());
                heap |= shard.heap_states;
            }
        }
        if !heap {
            return;
        }
        // Logs and bucket lists live behind a pointer in the slot: with the
        // slots arriving, fetch the lines of each that a check reads.
        for &hash in &hashes {
            let Some(shard) = self.shard_of(hash).shard.try_lock() else {
                continue;
            };
            let Some(slot) = shard.index.candidate(hash).and_then(|i| shard.slots.get(i)) else {
                continue;
            };
            if let Held::Inline(state) = &slot.held
                && let Some(lines) = state.heap_lines()
            {
                lines.into_iter().for_each(|line| prefetch(line.cast()));
            }
        }
    }
}

/// A hint to the CPU to load the cache line at `p`. It reads nothing in
/// the program's sense, so any address (even a stale one) is fine.
#[inline(always)]
pub(super) fn prefetch(p: *const u32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and has no effect but on the cache.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
