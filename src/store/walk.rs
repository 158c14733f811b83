//! Walks over every state: the sweep that drops fresh ones, and the export
//! and import a snapshot uses.

use std::hash::BuildHasher;

use super::shard::lock;
use super::slots::{Entry64, Held, Key, Packed, PolicyStates};
use super::{Entry, SHARDS, Saved, SavedRef, Store};

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

    /// Visits every stored state with its map key and fresh time, one shard
    /// at a time (each shard is locked only while it is visited).
    pub fn for_each(&self, mut f: impl FnMut(&[u8], u64, SavedRef<'_>)) {
        for s in self.shards.iter() {
            let shard = lock(s);
            for e in &shard.slots {
                let view = match &e.held {
                    Held::Inline(state) => SavedRef::Inline {
                        params: e.params.params(),
                        state,
                    },
                    Held::Policy(p) => SavedRef::Policy(&p.states),
                };
                f(e.key.as_bytes(), e.fresh_at(), view);
            }
        }
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
        shard.insert(hash, slot, &self.hasher);
    }
}
