//! The keyspace as the admin commands see it: one key's state for
//! `LIMIT.INFO`, dropping it for `LIMIT.RESET`, the count for `DBSIZE`,
//! everything for `FLUSHALL`.

use std::hash::BuildHasher;

use super::shard::{Shard, lock};
use super::slots::Held;
use super::{KeyView, Scope, Store, with_map_key};
use crate::policy::{self, Policy};

impl Store {
    /// The state of (`scope`, `key`) as `LIMIT.INFO` shows it; `None` when fresh.
    pub fn inspect(
        &self,
        scope: Scope<'_>,
        key: &[u8],
        policy: Option<&Policy>,
        now: u64,
    ) -> Option<KeyView> {
        with_map_key(scope, key, |map_key| {
            let hash = self.hasher.hash_one(map_key);
            let shard = self.shard(hash);
            let entry = &shard.slots[shard.find(hash, map_key)?];
            if entry.fresh_at() <= now {
                return None;
            }
            let rules = match (&entry.held, policy) {
                (Held::Inline(state), _) => vec![(entry.params.params(), state.clone())],
                (Held::Policy(held), Some(policy)) => {
                    let mut states = held.states.clone();
                    policy::align_states(&mut states, &policy.rules);
                    policy.rules.iter().copied().zip(states).collect()
                }
                (Held::Policy(_), None) | (Held::Reservations(_), _) => return None,
            };
            Some(KeyView { rules })
        })
    }

    /// Drops the state of (`scope`, `key`); true if there was one.
    pub fn reset(&self, scope: Scope<'_>, key: &[u8], now: u64) -> bool {
        let dropped = with_map_key(scope, key, |map_key| {
            let hash = self.hasher.hash_one(map_key);
            let mut shard = self.shard(hash);
            let Some(i) = shard.find(hash, map_key) else {
                return false;
            };
            shard.remove(hash, i, &self.hasher).fresh_at() > now
        });
        if dropped {
            self.touch();
        }
        dropped
    }

    /// Stored states (including fresh ones not yet swept).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).slots.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every state.
    pub fn clear(&self) {
        for s in self.shards.iter() {
            *lock(s) = Shard::default();
        }
        self.touch();
    }
}
