//! The keyspace: a sharded map from key to limiter state.
//!
//! Each check locks one shard of the map (dashmap) only around the pure
//! limiter step, so checks of one key are atomic and checks of other keys
//! run in parallel. A state that is back to fresh holds no memory: it is
//! dropped when next touched and by [`Store::sweep`].

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;

use crate::limiter::leaky_bucket::LeakyBucket;
use crate::limiter::{Algorithm, Decision, Params, Request, ScaledTime, State};
use crate::policy::{self, Policy};

/// Which limiter a check addresses: a key checked inline, or a key under a
/// policy. The two never share state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    Inline,
    Policy(&'a str),
}

/// One key's state and when it becomes fresh again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When the state is back to fresh (ns since the epoch), under the
    /// numbers of the last check that consumed.
    pub fresh_at: u64,
    pub slot: Slot,
}

/// The state of an inline key (with the numbers it was last checked under)
/// or of a key under a policy (one state per rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    Inline { params: Params, state: State },
    Policy(Vec<State>),
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
pub struct Snapshot {
    pub rules: Vec<(Params, State)>,
}

thread_local! {
    static KEY_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

const TAG_INLINE: u8 = 0;
const TAG_POLICY: u8 = 1;

/// Builds the map key for (`scope`, `key`) in a reused buffer and passes it to `f`.
fn with_map_key<R>(scope: Scope<'_>, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    KEY_BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        encode_key(&mut buf, scope, key);
        f(&buf)
    })
}

/// The map key: a tag byte, for policies the name's length and the name,
/// then the client's key.
pub fn encode_key(out: &mut Vec<u8>, scope: Scope<'_>, key: &[u8]) {
    match scope {
        Scope::Inline => out.push(TAG_INLINE),
        Scope::Policy(name) => {
            out.push(TAG_POLICY);
            let len = u32::try_from(name.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
        }
    }
    out.extend_from_slice(key);
}

/// Splits a map key back into its scope and the client's key.
pub fn decode_key(map_key: &[u8]) -> Option<(Scope<'_>, &[u8])> {
    let (&tag, rest) = map_key.split_first()?;
    match tag {
        TAG_INLINE => Some((Scope::Inline, rest)),
        TAG_POLICY => {
            let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let name = std::str::from_utf8(rest.get(4..4 + len)?).ok()?;
            Some((Scope::Policy(name), &rest[4 + len..]))
        }
        _ => None,
    }
}

/// The sharded keyspace.
#[derive(Debug, Default)]
pub struct Store {
    map: DashMap<Box<[u8]>, Entry>,
    /// Set by every change that a snapshot should record.
    changed: AtomicBool,
}

impl Store {
    pub fn new() -> Store {
        Store::default()
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
                    None,
                );
            }
            let leaky_end = match state {
                State::LeakyBucket(lb) => Some(lb.next),
                _ => None,
            };
            let fresh_at = now.saturating_add(decision.reset_after);
            (
                Checked {
                    decision,
                    leaky_end,
                },
                Some(fresh_at),
            )
        })
    }

    /// Runs `step` on the state of inline `key` (fresh if it has none) under
    /// the key's lock. `step` answers its result and, if it changed the
    /// state, when the state is fresh again; the key then remembers `params`.
    pub fn update<T>(
        &self,
        key: &[u8],
        params: &Params,
        now: u64,
        step: impl FnOnce(&mut State) -> (T, Option<u64>),
    ) -> Result<T, WrongType> {
        with_map_key(Scope::Inline, key, |map_key| {
            let apply = |entry: &mut Entry| -> Result<T, WrongType> {
                let Slot::Inline {
                    params: held,
                    state,
                } = &mut entry.slot
                else {
                    unreachable!("inline map keys hold inline slots");
                };
                if state.algorithm() != params.algorithm {
                    return Err(WrongType {
                        key: crate::error::printable(key),
                        held: state.algorithm().name(),
                        wanted: params.algorithm.name(),
                    });
                }
                if entry.fresh_at <= now {
                    *state = State::fresh(params, now);
                }
                let (out, fresh_at) = step(state);
                if let Some(fresh_at) = fresh_at {
                    *held = *params;
                    entry.fresh_at = fresh_at;
                    self.touch();
                }
                Ok(out)
            };
            self.apply(map_key, now, apply, || Entry {
                fresh_at: 0,
                slot: Slot::Inline {
                    params: *params,
                    state: State::fresh(params, now),
                },
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
            let step = |entry: &mut Entry| -> Result<Decision, WrongType> {
                let Slot::Policy(states) = &mut entry.slot else {
                    unreachable!("policy map keys hold policy slots");
                };
                if entry.fresh_at <= now {
                    states.clear();
                }
                policy::align_states(states, rules, now);
                let (decision, reset) = policy::check_all(states, rules, now, request);
                if let Some(reset) = reset
                    && request.cost > 0
                {
                    entry.fresh_at = now.saturating_add(reset);
                    self.touch();
                }
                Ok(decision)
            };
            let fresh = || Entry {
                fresh_at: 0,
                slot: Slot::Policy(Vec::with_capacity(rules.len())),
            };
            match self.apply(map_key, now, step, fresh) {
                Ok(d) => d,
                Err(_) => unreachable!("policy checks never see another type"),
            }
        })
    }

    /// Runs `step` on the entry at `map_key` under its shard's lock. A key
    /// not present gets `fresh()`, which is stored only if the step leaves it
    /// not fresh; an entry the step leaves fresh is removed.
    fn apply<T>(
        &self,
        map_key: &[u8],
        now: u64,
        step: impl FnOnce(&mut Entry) -> Result<T, WrongType>,
        fresh: impl FnOnce() -> Entry,
    ) -> Result<T, WrongType> {
        if let Some(mut entry) = self.map.get_mut(map_key) {
            let out = step(&mut entry)?;
            let stale = entry.fresh_at <= now;
            drop(entry);
            if stale {
                self.map.remove_if(map_key, |_, e| e.fresh_at <= now);
            }
            return Ok(out);
        }
        match self.map.entry(Box::from(map_key)) {
            MapEntry::Occupied(mut o) => {
                // Another client inserted it between our two lookups.
                let out = step(o.get_mut())?;
                if o.get().fresh_at <= now {
                    o.remove();
                }
                Ok(out)
            }
            MapEntry::Vacant(v) => {
                let mut entry = fresh();
                let out = step(&mut entry)?;
                if entry.fresh_at > now {
                    v.insert(entry);
                }
                Ok(out)
            }
        }
    }

    /// Gives back the queue slot of an inline leaky bucket request whose
    /// caller left before its turn (only if no one queued behind it).
    pub fn give_back_leaky(&self, key: &[u8], params: &Params, end: ScaledTime, cost: u64) -> bool {
        with_map_key(Scope::Inline, key, |map_key| {
            let Some(mut entry) = self.map.get_mut(map_key) else {
                return false;
            };
            let Slot::Inline {
                state: State::LeakyBucket(lb),
                ..
            } = &mut entry.slot
            else {
                return false;
            };
            let given: &mut LeakyBucket = lb;
            if !given.give_back(params, end, cost) {
                return false;
            }
            entry.fresh_at = given.next.ns;
            self.touch();
            true
        })
    }

    /// The state of (`scope`, `key`) as `LIMIT.INFO` shows it; `None` when fresh.
    pub fn inspect(
        &self,
        scope: Scope<'_>,
        key: &[u8],
        policy: Option<&Policy>,
        now: u64,
    ) -> Option<Snapshot> {
        with_map_key(scope, key, |map_key| {
            let entry = self.map.get(map_key)?;
            if entry.fresh_at <= now {
                return None;
            }
            let rules = match (&entry.slot, policy) {
                (Slot::Inline { params, state }, _) => vec![(*params, state.clone())],
                (Slot::Policy(states), Some(policy)) => {
                    let mut states = states.clone();
                    policy::align_states(&mut states, &policy.rules, now);
                    policy.rules.iter().copied().zip(states).collect()
                }
                (Slot::Policy(_), None) => return None,
            };
            Some(Snapshot { rules })
        })
    }

    /// Drops the state of (`scope`, `key`); true if there was one.
    pub fn reset(&self, scope: Scope<'_>, key: &[u8], now: u64) -> bool {
        let dropped = with_map_key(scope, key, |map_key| {
            self.map
                .remove(map_key)
                .is_some_and(|(_, e)| e.fresh_at > now)
        });
        if dropped {
            self.touch();
        }
        dropped
    }

    /// Live states (including fresh ones not yet swept).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Drops every state.
    pub fn clear(&self) {
        self.map.clear();
        self.touch();
    }

    /// Drops every state that is fresh at `now`; answers how many.
    pub fn sweep(&self, now: u64) -> usize {
        let before = self.map.len();
        self.map.retain(|_, e| e.fresh_at > now);
        before.saturating_sub(self.map.len())
    }

    /// Counts live states per algorithm (policy states count per rule).
    pub fn count_by_algorithm(&self) -> [usize; 6] {
        let mut counts = [0; 6];
        for entry in self.map.iter() {
            let mut add = |s: &State| {
                let i = Algorithm::ALL
                    .iter()
                    .position(|a| *a == s.algorithm())
                    .unwrap_or(0);
                counts[i] += 1;
            };
            match &entry.slot {
                Slot::Inline { state, .. } => add(state),
                Slot::Policy(states) => states.iter().for_each(add),
            }
        }
        counts
    }

    /// Visits every entry (shard by shard) with its map key.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &Entry)) {
        for item in self.map.iter() {
            f(item.key(), item.value());
        }
    }

    /// Inserts an entry as it was saved (used when restoring).
    pub fn insert_raw(&self, map_key: Box<[u8]>, entry: Entry) {
        self.map.insert(map_key, entry);
    }
}

#[cfg(test)]
mod tests {
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
        let dry = Request {
            cost: 1,
            commit: false,
            max_wait: None,
        };
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
        let dry = Request {
            cost: 1,
            commit: false,
            max_wait: None,
        };
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
