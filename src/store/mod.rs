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
use std::sync::atomic::{AtomicBool, Ordering};

use crate::limiter::{Decision, Params, Request, ScaledTime, State};
use crate::policy::{self, Policy};

pub mod index;
mod keys;
mod prefetch;
mod shard;
mod slots;
mod walk;

use keys::with_map_key;
pub use keys::{decode_key, encode_key};
use shard::{Locked, PaddedShard, Shard, lock};
use slots::{Entry64, Held, Key, Packed, PolicyStates};

/// Which limiter a check addresses: a key checked inline, or a key under a
/// policy. The two never share state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    Inline,
    Policy(&'a str),
}

/// A key's state as snapshots exchange it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When the state is back to fresh (ns since the epoch).
    pub fresh_at: u64,
    pub slot: Saved,
}

/// The state of an inline key (with the numbers it was last changed under)
/// or of a key under a policy (one state per rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    Inline { params: Params, state: State },
    Policy(Vec<State>),
}

/// A borrowed view of a stored state (see [`Store::for_each`]).
#[derive(Debug, Clone, Copy)]
pub enum SavedRef<'a> {
    Inline { params: Params, state: &'a State },
    Policy(&'a [State]),
}

impl SavedRef<'_> {
    pub fn to_owned(self) -> Saved {
        match self {
            SavedRef::Inline { params, state } => Saved::Inline {
                params,
                state: state.clone(),
            },
            SavedRef::Policy(states) => Saved::Policy(states.to_vec()),
        }
    }
}

/// A check against a key that holds another algorithm's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key '{key}' holds {held} state, not {wanted}")]
pub struct WrongType {
    pub key: String,
    pub held: &'static str,
    pub wanted: &'static str,
}

/// The result of a check, and what a waiter needs to give its place back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub decision: Decision,
    /// For an admitted inline leaky bucket request: where its units end.
    pub leaky_end: Option<ScaledTime>,
}

/// What `LIMIT.INFO` shows of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyView {
    pub rules: Vec<(Params, State)>,
}

/// The sharded keyspace.
#[derive(Debug)]
pub struct Store {
    shards: Box<[PaddedShard]>,
    hasher: foldhash::fast::RandomState,
    /// Set by every change that a snapshot should record.
    changed: AtomicBool,
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
        Store {
            shards: (0..SHARDS).map(|_| PaddedShard::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
            changed: AtomicBool::new(false),
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
        if !self.changed.load(Ordering::Relaxed) {
            self.changed.store(true, Ordering::Relaxed);
        }
    }

    /// True if anything changed since the last call; clears the flag.
    pub fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::AcqRel)
    }

    /// True if anything changed since the last [`Store::take_changed`].
    pub fn has_changes(&self) -> bool {
        self.changed.load(Ordering::Relaxed)
    }

    /// Runs `step` on the slot of `map_key` under its shard's lock; `fresh()`
    /// builds the slot of a key not present, stored only if the step leaves it
    /// not fresh; a slot the step leaves fresh is dropped.
    fn apply<T>(
        &self,
        map_key: &[u8],
        now: u64,
        step: impl FnOnce(&mut Entry64) -> Result<T, WrongType>,
        fresh: impl FnOnce() -> Entry64,
    ) -> Result<T, WrongType> {
        let hash = self.hasher.hash_one(map_key);
        let mut shard = self.shard(hash);
        match shard.find(hash, map_key) {
            Some(i) => {
                let out = step(&mut shard.slots[i])?;
                if shard.slots[i].fresh_at() <= now {
                    shard.remove(hash, i, &self.hasher);
                }
                Ok(out)
            }
            None => {
                let mut entry = fresh();
                let out = step(&mut entry)?;
                if entry.fresh_at() > now {
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
    ) -> Result<Checked, WrongType> {
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
    ) -> Result<T, WrongType> {
        with_map_key(Scope::Inline, key, |map_key| {
            let apply = |entry: &mut Entry64| {
                let Held::Inline(state) = &mut entry.held else {
                    unreachable!("inline map keys hold inline states");
                };
                if state.algorithm() != params.algorithm {
                    return Err(WrongType {
                        key: crate::text::printable(key),
                        held: state.algorithm().name(),
                        wanted: params.algorithm.name(),
                    });
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
            };
            self.apply(map_key, now, apply, || Entry64 {
                key: Key::new(map_key),
                params: Packed::new(params),
                held: Held::Inline(State::fresh(params)),
            })
        })
    }

    /// Checks `key` under every rule of `policy`, all or nothing.
    pub fn check_policy(
        &self,
        policy: &Policy,
        key: &[u8],
        now: u64,
        request: Request,
    ) -> Decision {
        let rules = &policy.rules;
        with_map_key(Scope::Policy(&policy.name), key, |map_key| {
            let step = |entry: &mut Entry64| {
                let Held::Policy(held) = &mut entry.held else {
                    unreachable!("policy map keys hold policy states");
                };
                if held.fresh_at <= now {
                    held.states.clear();
                }
                policy::align_states(&mut held.states, rules);
                let (decision, reset) = policy::check_all(&mut held.states, rules, now, request);
                if let Some(reset) = reset
                    && request.cost > 0
                {
                    held.fresh_at = now.saturating_add(reset);
                    self.touch();
                }
                Ok(decision)
            };
            let fresh = || Entry64 {
                key: Key::new(map_key),
                params: Packed::default(),
                held: Held::Policy(Box::new(PolicyStates {
                    fresh_at: 0,
                    states: Vec::with_capacity(rules.len()),
                })),
            };
            match self.apply(map_key, now, step, fresh) {
                Ok(d) => d,
                Err(_) => unreachable!("policy checks never see another type"),
            }
        })
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
                (Held::Policy(_), None) => return None,
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

#[cfg(test)]
mod tests {
    use super::slots::{INLINE_KEY, MS, inline_eq};
    use super::*;
    use crate::limiter::{Algorithm, Retry};

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn map_keys_round_trip_and_never_collide() {
        let mut a = Vec::new();
        encode_key(&mut a, Scope::Inline, b"k");
        let mut b = Vec::new();
        encode_key(&mut b, Scope::Policy("api"), b"k");
        assert_ne!(a, b);
        assert_eq!(decode_key(&a), Some((Scope::Inline, &b"k"[..])));
        assert_eq!(decode_key(&b), Some((Scope::Policy("api"), &b"k"[..])));
        assert_eq!(decode_key(&[9]), None);
        assert_eq!(decode_key(&[1, 200, 0, 0, 0]), None);
    }

    #[test]
    fn fresh_states_are_not_stored() {
        let store = Store::new();
        let p = Params::new(Algorithm::TokenBucket, 10, SECOND);
        let dry = Request::dry(1);
        store.check(b"k", &p, 0, dry).unwrap();
        store.check(b"k", &p, 0, Request::take(0)).unwrap();
        assert_eq!(store.len(), 0);
        store.check(b"k", &p, 0, Request::take(1)).unwrap();
        assert_eq!(store.len(), 1);
        // Full again after 100 ms: swept.
        assert_eq!(store.sweep(100_000_000 - 1), 0);
        assert_eq!(store.sweep(100_000_000), 1);
        assert!(store.is_empty());
    }

    #[test]
    fn another_algorithm_is_wrongtype_and_changes_nothing() {
        let store = Store::new();
        let tb = Params::new(Algorithm::TokenBucket, 1, SECOND);
        store.check(b"k", &tb, 0, Request::take(1)).unwrap();
        let gcra = Params::new(Algorithm::Gcra, 1, SECOND);
        let err = store.check(b"k", &gcra, 0, Request::take(1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "key 'k' holds token_bucket state, not gcra"
        );
        let d = store
            .check(b"k", &tb, 0, Request::take(1))
            .unwrap()
            .decision;
        assert_eq!(d.retry, Retry::After(SECOND));
    }

    #[test]
    fn changes_are_flagged_for_snapshots() {
        let store = Store::new();
        let p = Params::new(Algorithm::Gcra, 1, SECOND);
        let dry = Request::dry(1);
        store.check(b"k", &p, 0, dry).unwrap();
        assert!(!store.take_changed(), "a dry run changes nothing");
        store.check(b"k", &p, 0, Request::take(1)).unwrap();
        assert!(store.take_changed());
        store.check(b"k", &p, 0, Request::take(1)).unwrap();
        assert!(!store.take_changed(), "a denial changes nothing");
        assert!(store.reset(Scope::Inline, b"k", 0));
        assert!(store.take_changed());
    }

    #[test]
    fn slots_stay_64_bytes() {
        assert_eq!(std::mem::size_of::<Key>(), 24);
        assert_eq!(std::mem::size_of::<Held>(), 24);
        assert_eq!(std::mem::size_of::<Entry64>(), 64);
    }

    #[test]
    fn inline_keys_compare_on_every_byte() {
        let base = Key::new_inline(&[b'a'; 22]).unwrap();
        assert!(inline_eq(&base, &base));
        for i in 0..=INLINE_KEY {
            let mut other = base;
            other[i] ^= 1;
            assert!(!inline_eq(&base, &other), "byte {i}");
        }
    }

    #[test]
    fn keys_and_numbers_pack_losslessly() {
        for k in [&b""[..], b"k", &[7u8; 22], &[9u8; 23], &[1u8; 300]] {
            assert_eq!(Key::new(k).as_bytes(), k);
        }
        let max = crate::limiter::MAX_COUNT;
        for a in Algorithm::ALL {
            for (limit, burst, window) in [
                (1, 1, MS),
                (max, max, crate::limiter::MAX_WINDOW_NS),
                (12345, 999_999_999_999, 1500 * MS),
            ] {
                let p = Params {
                    algorithm: a,
                    limit,
                    burst,
                    window,
                    buckets: if a.uses_buckets() { 1000 } else { 0 },
                };
                assert_eq!(Packed::new(&p).params(), p);
            }
        }
    }

    #[test]
    fn many_keys_survive_removals_in_any_order() {
        let store = Store::new();
        let p = Params::new(Algorithm::FixedWindow, 10, SECOND);
        let key = |i: u32| format!("key:{i:08}-with-a-long-enough-tail-{}", i % 3).into_bytes();
        for i in 0..5000 {
            store
                .check(&key(i), &p, 0, Request::take(1 + u64::from(i % 5)))
                .unwrap();
        }
        assert_eq!(store.len(), 5000);
        for i in (0..5000).step_by(2) {
            assert!(store.reset(Scope::Inline, &key(i), 0), "{i}");
        }
        assert_eq!(store.len(), 2500);
        for i in 0..5000 {
            let info = store.inspect(Scope::Inline, &key(i), None, 0);
            assert_eq!(info.is_some(), i % 2 == 1, "{i}");
        }
        let d = store
            .check(&key(7), &p, 0, Request::take(1))
            .unwrap()
            .decision;
        assert_eq!(d.remaining, 10 - 3 - 1);
        // All fresh at the next window: swept, and the memory shrinks.
        assert_eq!(store.sweep(SECOND), 2500);
        assert!(store.is_empty());
    }

    #[test]
    fn prefetch_changes_nothing_even_while_the_index_grows() {
        let store = Store::new();
        // Half the keys hold logs (heap parts, fetched too).
        let p = |i: u32| {
            let algorithm = [Algorithm::FixedWindow, Algorithm::SlidingLog][i as usize % 2];
            Params::new(algorithm, 10, SECOND)
        };
        let long = [b'x'; 40];
        store.prefetch(&[b"cold", &long]);
        assert!(store.is_empty());
        // Enough keys that every shard's index passes PREFETCH_FROM.
        let n = (SHARDS * PREFETCH_FROM) as u32;
        for i in 0..n {
            let key = i.to_le_bytes();
            // Ask ahead for the key and for ones not there yet.
            store.prefetch(&[&key, &(i + 1).to_le_bytes(), &long]);
            store.check(&key, &p(i), 0, Request::take(1)).unwrap();
        }
        assert_eq!(store.len(), n as usize);
        let big = store
            .shards
            .iter()
            .filter(|s| s.index_mask.load(Ordering::Relaxed) >= PREFETCH_FROM - 1);
        assert_eq!(big.count(), SHARDS);
        for i in (0..n).step_by(7) {
            store.prefetch(&[&i.to_le_bytes()]);
            let d = store
                .check(&i.to_le_bytes(), &p(i), 0, Request::take(1))
                .unwrap()
                .decision;
            assert_eq!(d.remaining, 8, "key {i}");
        }
    }

    #[test]
    fn short_and_long_keys_map_the_same_way() {
        // Map keys are built on the stack below 64 bytes, in a buffer above.
        let store = Store::new();
        let p = Params::new(Algorithm::Gcra, 5, SECOND);
        let keys: Vec<Vec<u8>> = [1, 62, 63, 64, 65, 300]
            .iter()
            .map(|&n| vec![b'k'; n])
            .collect();
        for key in &keys {
            store.check(key, &p, 0, Request::take(2)).unwrap();
        }
        for key in &keys {
            let d = store.check(key, &p, 0, Request::take(1)).unwrap().decision;
            assert_eq!(d.remaining, 2, "key of {} bytes", key.len());
        }
        let mut seen = Vec::new();
        store.for_each(|map_key, _, _| seen.push(decode_key(map_key).unwrap().1.to_vec()));
        seen.sort();
        assert_eq!(seen, keys);
    }

    #[test]
    fn stale_entries_restart_fresh_on_access() {
        let store = Store::new();
        let p = Params::new(Algorithm::FixedWindow, 1, SECOND);
        assert!(
            store
                .check(b"k", &p, 0, Request::take(1))
                .unwrap()
                .decision
                .allowed
        );
        assert!(
            !store
                .check(b"k", &p, 1, Request::take(1))
                .unwrap()
                .decision
                .allowed
        );
        assert!(
            store
                .check(b"k", &p, SECOND, Request::take(1))
                .unwrap()
                .decision
                .allowed
        );
    }
}
