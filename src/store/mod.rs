//! The keyspace: a sharded map from key to limiter state, built for a small
//! footprint per key.
//!
//! Each shard is a dense vector of 64-byte slots (key inline up to 22 bytes,
//! the numbers packed into 16 bytes, the state in 24) and an open-addressed
//! index of 4-byte slot numbers ([`index::SlotIndex`]), behind one mutex. A check
//! locks one shard only around the pure limiter step, so checks of one key
//! are atomic and checks of other keys run in parallel.
//!
//! A lookup costs two cache misses (the index line, then the slot). The
//! connection layer hides the first for a pipelined batch: it calls
//! [`Store::prefetch`] for every key of the batch before checking any.
//!
//! A state that is back to fresh holds no memory: it is dropped when next
//! touched and by [`Store::sweep`]. When it is fresh follows from the state
//! and the numbers it was last changed under, so no time is stored for it.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::limiter::{Decision, Params, Request, ScaledTime, State};
use crate::policy::{self, Policy};

pub mod index;
mod keys;
mod keyspace;
mod memory;
mod multi;
mod prefetch;
mod refund;
mod reserve;
mod shard;
mod slots;
mod types;
mod walk;

use keys::with_map_key;
pub use keys::{decode_key, encode_key};
pub use memory::EvictionPolicy;
pub use multi::{Part, Rule};
pub use reserve::{MAX_OPEN, Reserved, SettleError, Settled};
use shard::{Locked, PaddedShard, Shard};
use slots::{Entry64, Held, Key, Packed, PolicyStates};
pub use types::{
    Checked, Entry, KeyView, OpenMap, Refused, Reservation, Saved, SavedRef, Scope, Under,
    WrongType,
};
pub use walk::Walked;

/// The sharded keyspace.
#[derive(Debug)]
pub struct Store {
    shards: Box<[PaddedShard]>,
    hasher: foldhash::fast::RandomState,
    /// Set by every change that a snapshot should record.
    changed: AtomicBool,
    /// Every change so far (save points count them).
    changes: crate::striped::StripedCounter,
    /// Held by the one [`Store::walk`] under way.
    walking: parking_lot::Mutex<()>,
    /// `maxmemory` in bytes (0: none) and whether past it states are
    /// evicted (`volatile-ttl`) or new keys refused (see `memory.rs`).
    maxmemory: AtomicU64,
    eviction: AtomicBool,
    evicted: AtomicU64,
    /// Counts reservations made; their ids are this count scrambled.
    reservations: AtomicU64,
}

impl Default for Store {
    fn default() -> Store {
        Store::new()
    }
}

/// Shards per store: enough that threads rarely meet on one.
pub(super) const SHARDS: usize = 64;

/// Index size (entries) from which [`Store::prefetch`] fetches a shard's
/// lines ahead: 1024 entries index at least 384 keys, so 64 such shards hold
/// at least 1.5 MB of slots, about what a core's L2 cache keeps.
pub(super) const PREFETCH_FROM: usize = 1024;

impl Store {
    pub fn new() -> Store {
        let hasher = foldhash::fast::RandomState::default();
        Store {
            shards: (0..SHARDS).map(|_| PaddedShard::default()).collect(),
            // Each process starts its ids elsewhere, so ids restored from a
            // snapshot or moved in from another node do not meet new ones.
            reservations: AtomicU64::new(hasher.hash_one(0x0072_6573_6572_7665_u64)),
            hasher,
            changed: AtomicBool::new(false),
            changes: Default::default(),
            walking: Default::default(),
            maxmemory: AtomicU64::new(0),
            eviction: AtomicBool::new(false),
            evicted: AtomicU64::new(0),
        }
    }

    fn shard_of(&self, hash: u64) -> &PaddedShard {
        &self.shards[(hash >> 32) as usize % SHARDS]
    }

    fn shard(&self, hash: u64) -> Locked<'_> {
        self.shard_of(hash).lock()
    }
    /// Notes a change for the next snapshot (a read first: cheap when set).
    fn touch(&self) {
        self.changes.add(1);
        if !self.changed.load(Ordering::Relaxed) {
            self.changed.store(true, Ordering::Relaxed);
        }
    }

    /// True if anything changed since the last call; clears the flag.
    pub fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::AcqRel)
    }

    /// Marks the store changed again (a snapshot that took the flag failed).
    pub fn mark_changed(&self) {
        self.changed.store(true, Ordering::Relaxed);
    }

    /// How many changes were made so far (never goes back).
    pub fn changes(&self) -> u64 {
        self.changes.sum()
    }

    /// True if anything changed since the last [`Store::take_changed`].
    pub fn has_changes(&self) -> bool {
        self.changed.load(Ordering::Relaxed)
    }

    /// Runs `step` on the slot of `map_key` under its shard's lock; `fresh()`
    /// builds the slot of a key not present, stored only if the step leaves it
    /// not fresh (and it fits under `maxmemory`); a slot the step leaves
    /// fresh is dropped.
    fn apply<T>(
        &self,
        map_key: &[u8],
        now: u64,
        step: impl FnOnce(&mut Entry64) -> Result<T, Refused>,
        fresh: impl FnOnce() -> Entry64,
    ) -> Result<T, Refused> {
        let hash = self.hasher.hash_one(map_key);
        let mut shard = self.shard(hash);
        self.apply_in(&mut shard, hash, map_key, now, step, fresh)
    }

    /// [`Store::apply`] on a shard already locked (`hash`: the map key's).
    #[inline(always)]
    fn apply_in<T>(
        &self,
        shard: &mut Shard,
        hash: u64,
        map_key: &[u8],
        now: u64,
        step: impl FnOnce(&mut Entry64) -> Result<T, Refused>,
        fresh: impl FnOnce() -> Entry64,
    ) -> Result<T, Refused> {
        match shard.find(hash, map_key) {
            Some(i) => {
                let slot = &mut shard.slots[i];
                let grows = slot.may_grow();
                let before = if grows { slot.heap_bytes() } else { 0 };
                let out = step(slot)?;
                if shard.slots[i].fresh_at() <= now {
                    shard.remove(hash, i, &self.hasher);
                } else if grows {
                    let after = shard.slots[i].heap_bytes();
                    shard.heap = shard.heap + after - before;
                    if after > before {
                        self.after_growth(shard, hash, map_key);
                    }
                }
                Ok(out)
            }
            None => {
                let mut entry = fresh();
                let out = step(&mut entry)?;
                if entry.fresh_at() > now {
                    self.make_room(shard, hash, &entry)?;
                    shard.insert(hash, entry, &self.hasher);
                }
                Ok(out)
            }
        }
    }

    /// Checks an inline key under `params`.
    pub fn check(
        &self,
        key: &[u8],
        params: &Params,
        now: u64,
        request: Request,
    ) -> Result<Checked, Refused> {
        self.update(key, params, now, |state| {
            let decision = state.check(params, now, request);
            if !(decision.allowed && request.commit && request.cost > 0) {
                return (
                    Checked {
                        decision,
                        leaky_end: None,
                    },
                    false,
                );
            }
            let leaky_end = match state {
                State::LeakyBucket(lb) => Some(lb.next),
                _ => None,
            };
            (
                Checked {
                    decision,
                    leaky_end,
                },
                true,
            )
        })
    }

    /// Runs `step` on the state of inline `key` (fresh if it has none) under
    /// the key's lock. `step` answers its result and whether it changed the
    /// state; the key then remembers `params`.
    pub fn update<T>(
        &self,
        key: &[u8],
        params: &Params,
        now: u64,
        step: impl FnOnce(&mut State) -> (T, bool),
    ) -> Result<T, Refused> {
        with_map_key(Scope::Inline, key, |map_key| {
            let apply = |entry: &mut Entry64| self.inline_step(key, params, now, entry, step);
            self.apply(map_key, now, apply, || inline_fresh(map_key, params))
        })
    }

    /// The step of an inline check on `entry` (the state of `key`): another
    /// algorithm's state is WRONGTYPE, a fresh one starts over, and the
    /// key remembers `params` when `step` changed it.
    #[inline(always)]
    fn inline_step<T>(
        &self,
        key: &[u8],
        params: &Params,
        now: u64,
        entry: &mut Entry64,
        step: impl FnOnce(&mut State) -> (T, bool),
    ) -> Result<T, Refused> {
        let Held::Inline(state) = &mut entry.held else {
            unreachable!("inline map keys hold inline states");
        };
        if state.algorithm() != params.algorithm {
            return Err(Refused::WrongType(WrongType {
                key: crate::text::printable(key),
                held: state.algorithm().name(),
                wanted: params.algorithm.name(),
            }));
        }
        let held_params = entry.params.params();
        if state.fresh_at(&held_params) <= now {
            *state = State::fresh(params);
        }
        let (out, changed) = step(state);
        if changed {
            entry.params = Packed::new(params);
            self.touch();
        }
        Ok(out)
    }

    /// Checks `key` under every rule of `policy`, all or nothing (refused
    /// only when a new key does not fit under `maxmemory`).
    pub fn check_policy(
        &self,
        policy: &Policy,
        key: &[u8],
        now: u64,
        request: Request,
    ) -> Result<Decision, Refused> {
        self.check_policy_ranked(policy, key, now, request)
            .map(|(d, _)| d)
    }

    /// [`Store::check_policy`], and the position of the rule that decided
    /// (from 0; see [`policy::check_all`]).
    pub fn check_policy_ranked(
        &self,
        policy: &Policy,
        key: &[u8],
        now: u64,
        request: Request,
    ) -> Result<(Decision, usize), Refused> {
        with_map_key(Scope::Policy(&policy.name), key, |map_key| {
            let step = |entry: &mut Entry64| Ok(self.policy_step(policy, now, request, entry));
            self.apply(map_key, now, step, || policy_fresh(map_key, policy))
        })
    }

    /// The step of a policy check on `entry`: every rule, all or nothing;
    /// the decision and the position of the rule that decided.
    fn policy_step(
        &self,
        policy: &Policy,
        now: u64,
        request: Request,
        entry: &mut Entry64,
    ) -> (Decision, usize) {
        let rules = &policy.rules;
        let held = policy_held(entry, rules, now);
        let (decision, reset, rule) = policy::check_all(&mut held.states, rules, now, request);
        if let Some(reset) = reset
            && request.cost > 0
        {
            held.fresh_at = now.saturating_add(reset);
            self.touch();
        }
        (decision, rule)
    }

    /// Gives back the queue slot of an inline leaky bucket request whose
    /// caller left before its turn (only if no one queued behind it).
    pub fn give_back_leaky(&self, key: &[u8], params: &Params, end: ScaledTime, cost: u64) -> bool {
        with_map_key(Scope::Inline, key, |map_key| {
            let hash = self.hasher.hash_one(map_key);
            let mut shard = self.shard(hash);
            let Some(i) = shard.find(hash, map_key) else {
                return false;
            };
            let Held::Inline(State::LeakyBucket(lb)) = &mut shard.slots[i].held else {
                return false;
            };
            let given = lb.give_back(params, end, cost);
            if given {
                self.touch();
            }
            given
        })
    }
}

/// The slot of an inline key with no state yet.
#[inline(always)]
fn inline_fresh(map_key: &[u8], params: &Params) -> Entry64 {
    Entry64 {
        key: Key::new(map_key),
        params: Packed::new(params),
        held: Held::Inline(State::fresh(params)),
    }
}

/// The states of a policy key at `now`: dropped if they are fresh, then
/// one per rule of `rules`.
fn policy_held<'e>(entry: &'e mut Entry64, rules: &[Params], now: u64) -> &'e mut PolicyStates {
    let Held::Policy(held) = &mut entry.held else {
        unreachable!("policy map keys hold policy states");
    };
    if held.fresh_at <= now {
        held.states.clear();
    }
    policy::align_states(&mut held.states, rules);
    held
}

/// The slot of a key under `policy` with no state yet.
fn policy_fresh(map_key: &[u8], policy: &Policy) -> Entry64 {
    Entry64 {
        key: Key::new(map_key),
        params: Packed::default(),
        held: Held::Policy(Box::new(PolicyStates {
            fresh_at: 0,
            states: Vec::with_capacity(policy.rules.len()),
        })),
    }
}

#[cfg(test)]
mod tests;
