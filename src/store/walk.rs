//! Walks over every state: the sweep that drops fresh ones, and the export
//! and import a snapshot uses.

use std::hash::BuildHasher;

use super::SavedRef;
use super::shard::lock;
use super::slots::{Entry64, Held, Key, Packed, PolicyStates, Reservations};
use super::{Entry, SHARDS, Saved, Store};

/// What [`Store::walk`] shows its visitor.
#[derive(Debug)]
pub enum Walked<'a> {
    /// A state, under its shard's lock: map key, fresh time, state.
    State(&'a [u8], u64, SavedRef<'a>),
    /// The end of a slice: no lock is held.
    Unlocked,
}

impl Store {
    /// Drops every state that is fresh at `now`, shard by shard; answers how many.
    pub fn sweep(&self, now: u64) -> usize {
        (0..SHARDS).map(|i| self.sweep_shard(i, now)).sum()
    }

    /// How many shards [`Store::sweep_shard`] takes in turn.
    pub fn shard_count(&self) -> usize {
        SHARDS
    }

    /// Drops the fresh states of shard `i` only: the sweeper visits one
    /// shard at a time, so no lock is held long and the work is spread out.
    pub fn sweep_shard(&self, i: usize, now: u64) -> usize {
        let mut shard = lock(&self.shards[i % SHARDS]);
        let mut dropped = 0;
        let mut j = 0;
        while j < shard.slots.len() {
            if shard.slots[j].fresh_at() <= now {
                let hash = self.hasher.hash_one(shard.slots[j].key.as_bytes());
                shard.remove(hash, j, &self.hasher);
                dropped += 1;
            } else {
                j += 1;
            }
        }
        shard.shrink(&self.hasher);
        dropped
    }

    /// Drops every state whose map key `keep` refuses (a cluster node's
    /// slots once moved away); answers how many.
    pub fn retain(&self, mut keep: impl FnMut(&[u8]) -> bool) -> usize {
        let mut dropped = 0;
        for s in self.shards.iter() {
            let mut shard = lock(s);
            let mut j = 0;
            while j < shard.slots.len() {
                if keep(shard.slots[j].key.as_bytes()) {
                    j += 1;
                } else {
                    let hash = self.hasher.hash_one(shard.slots[j].key.as_bytes());
                    shard.remove(hash, j, &self.hasher);
                    dropped += 1;
                }
            }
            shard.shrink(&self.hasher);
        }
        if dropped > 0 {
            self.touch();
        }
        dropped
    }

    /// Visits every stored state with its map key and fresh time, one shard
    /// at a time (each shard is locked only while it is visited).
    pub fn for_each(&self, mut f: impl FnMut(&[u8], u64, SavedRef<'_>)) {
        for s in self.shards.iter() {
            let shard = lock(s);
            for e in &shard.slots {
                f(e.key.as_bytes(), e.fresh_at(), e.view());
            }
        }
    }

    /// Visits every state as a snapshot writes them, locking a shard for
    /// at most `slice` slots at a time: `f` sees each state
    /// ([`Walked::State`]) under its shard's lock, then [`Walked::Unlocked`]
    /// after each slice with no lock held, where it does its slow work.
    /// Checks go on between slices.
    ///
    /// Every state present from the start to the end of the walk is visited
    /// (once, or again if it was dropped and created anew meanwhile), as it
    /// was at one moment of the walk; states created during the walk may be
    /// visited or not. Walks take turns. An error from `f` ends the walk.
    pub fn walk<E>(
        &self,
        slice: usize,
        mut f: impl FnMut(Walked<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let _one_walk = self.walking.lock();
        let slice = slice.max(1);
        for s in self.shards.iter() {
            // Slots present now only ever move down (see `Shard::remove`).
            let end = lock(s).slots.len();
            let result = (|| loop {
                let mut shard = lock(s);
                let from = shard.walked;
                let to = (from + slice).min(end).min(shard.slots.len());
                if from >= to {
                    return Ok(());
                }
                for e in &shard.slots[from..to] {
                    f(Walked::State(e.key.as_bytes(), e.fresh_at(), e.view()))?;
                }
                shard.walked = to;
                drop(shard);
                f(Walked::Unlocked)?;
            })();
            lock(s).walked = 0;
            result?;
        }
        Ok(())
    }

    /// The state stored under `map_key`, as snapshots exchange it (a
    /// cluster node sends the keys that changed while it moved their slots).
    pub fn export(&self, map_key: &[u8]) -> Option<Entry> {
        let hash = self.hasher.hash_one(map_key);
        let shard = self.shard(hash);
        let e = &shard.slots[shard.find(hash, map_key)?];
        Some(Entry {
            fresh_at: e.fresh_at(),
            slot: e.view().to_owned(),
        })
    }

    /// Inserts (or replaces) a state as it was saved (used when restoring).
    pub fn insert_raw(&self, map_key: Box<[u8]>, entry: Entry) {
        let (params, held) = match entry.slot {
            Saved::Inline { params, state } => (Packed::new(&params), Held::Inline(state)),
            Saved::Policy(states) => (
                Packed::default(),
                Held::Policy(Box::new(PolicyStates {
                    fresh_at: entry.fresh_at,
                    states,
                })),
            ),
            Saved::Reservations(list) => (
                Packed::default(),
                Held::Reservations(Box::new(Reservations::new(
                    list.into_iter().map(|r| (r.id, r)).collect(),
                ))),
            ),
        };
        let hash = self.hasher.hash_one(&*map_key);
        let mut shard = self.shard(hash);
        if let Some(i) = shard.find(hash, &map_key) {
            shard.remove(hash, i, &self.hasher);
        }
        let slot = Entry64 {
            key: Key::new(&map_key),
            params,
            held,
        };
        // Under maxmemory, grow as a check would. This process hashes keys
        // to shards with its own seed, so a shard may get more than its
        // share: it is loaded anyway, growing by a sixteenth at a time.
        if let Some(budget) = self.shard_budget()
            && !shard.reserve_within(budget, slot.heap_bytes())
            && shard.slots.len() == shard.slots.capacity()
        {
            let step = (shard.slots.len() / 16).max(16);
            shard.slots.reserve_exact(step);
        }
        shard.insert(hash, slot, &self.hasher);
    }
}
