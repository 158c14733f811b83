//! Reservations: units taken now against an estimate (`LIMIT.RESERVE`),
//! settled later at the true cost (`LIMIT.SETTLE`) or given back
//! (`LIMIT.REFUND`); see [`crate::limiter::settle`] for what a settle does
//! to each algorithm.
//!
//! A key's open reservations live in a slot of their own
//! ([`Scope::Reservations`] before the key), so snapshots, `maxmemory` and
//! cluster moves carry them with the key. The slot and the key's state are
//! locked together (in shard order) for a reserve and for a settle, so each
//! is atomic. A reservation not settled by its deadline counts as settled at
//! its estimate: its units stay taken, and it is forgotten (the slot is
//! dropped once its last deadline passes).

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::multi::{Part, Rule};
use super::shard::{Locked, Shard};
use super::slots::{Entry64, Held, Key, Packed, Reservations};
use super::{
    OpenMap, Refused, Reservation, SHARDS, Scope, Store, Under, encode_key, inline_fresh,
    policy_fresh,
};
use crate::limiter::settle::{Adjust, Unsettled};
use crate::limiter::{Decision, Request, State};
use crate::policy::{self, Policy};

/// Most open reservations one key may hold.
pub const MAX_OPEN: usize = 65_536;

/// The answer to a reserve: the check's decision and, when admitted, the
/// reservation's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    pub decision: Decision,
    pub id: Option<u64>,
}

/// The answer to a settle: the key's decision for a look afterwards, and
/// whether the reservation's window was still current (else nothing changed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    pub decision: Decision,
    pub in_window: bool,
    /// The units the reservation took.
    pub reserved: u64,
}

/// Why a settle changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettleError {
    /// No open reservation of that id on the key: never made, settled or
    /// refunded already, or past its deadline.
    #[error("no open reservation")]
    NoReservation,
    /// The policy the reservation was taken under is gone.
    #[error("unknown policy '{0}'")]
    NoPolicy(String),
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Unsettled(#[from] Unsettled),
}

/// The two shards a reserve or settle works on, locked in shard order (one
/// lock when they are the same shard).
struct Pair<'a> {
    state: Locked<'a>,
    other: Option<Locked<'a>>,
}

impl Pair<'_> {
    fn reservations(&mut self) -> &mut Shard {
        match &mut self.other {
            Some(s) => s,
            None => &mut self.state,
        }
    }
}

fn map_key(scope: Scope<'_>, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 8);
    encode_key(&mut out, scope, key);
    out
}

impl Store {
    fn lock_pair(&self, state: u64, reservations: u64) -> Pair<'_> {
        let index = |hash: u64| (hash >> 32) as usize % SHARDS;
        let (a, b) = (index(state), index(reservations));
        if a == b {
            return Pair {
                state: self.shards[a].lock(),
                other: None,
            };
        }
        if a < b {
            let state = self.shards[a].lock();
            let other = Some(self.shards[b].lock());
            Pair { state, other }
        } else {
            let other = Some(self.shards[b].lock());
            let state = self.shards[a].lock();
            Pair { state, other }
        }
    }

    /// A new id, not among `taken`.
    fn new_id(&self, taken: &OpenMap) -> u64 {
        loop {
            let n = self.reservations.fetch_add(1, Ordering::Relaxed);
            let id = scramble(n);
            if !taken.contains_key(&id) {
                return id;
            }
        }
    }

    /// Checks `part` for its cost and, when admitted, records a
    /// reservation of that cost that times out at `deadline`. A reserve
    /// that cannot be recorded (`maxmemory`, [`MAX_OPEN`]) takes nothing.
    pub fn reserve(&self, part: Part<'_>, now: u64, deadline: u64) -> Result<Reserved, Refused> {
        let state_key = part.map_key();
        let res_key = map_key(Scope::Reservations, part.key);
        let (sh, rh) = (
            self.hasher.hash_one(&state_key),
            self.hasher.hash_one(&res_key),
        );
        let mut pair = self.lock_pair(sh, rh);
        let before = pair
            .state
            .find(sh, &state_key)
            .map(|i| pair.state.slots[i].clone());
        let request = Request::take(part.cost);
        let decision = match part.rule {
            Rule::Inline(params) => {
                let step = |entry: &mut Entry64| {
                    self.inline_step(part.key, params, now, entry, |state| {
                        let d = state.check(params, now, request);
                        (d, d.allowed && part.cost > 0)
                    })
                };
                let fresh = || inline_fresh(&state_key, params);
                self.apply_in(&mut pair.state, sh, &state_key, now, step, fresh)?
            }
            Rule::Policy(p) => {
                let step = |entry: &mut Entry64| Ok(self.policy_step(p, now, request, entry).0);
                let fresh = || policy_fresh(&state_key, p);
                self.apply_in(&mut pair.state, sh, &state_key, now, step, fresh)?
            }
        };
        if !decision.allowed {
            return Ok(Reserved { decision, id: None });
        }
        let under = match part.rule {
            Rule::Inline(params) => Under::Inline(*params),
            Rule::Policy(p) => Under::Policy(p.name.as_str().into()),
        };
        let record = |entry: &mut Entry64| {
            let Held::Reservations(r) = &mut entry.held else {
                unreachable!("reservation map keys hold reservations");
            };
            if r.open.len() >= MAX_OPEN || r.open.len() >= 2 * r.pruned_len.max(8) {
                r.open.retain(|_, r| r.deadline > now);
                r.pruned_len = r.open.len();
                r.count_names();
            }
            if r.open.len() >= MAX_OPEN {
                return Err(Refused::TooManyReservations);
            }
            let id = self.new_id(&r.open);
            let reservation = Reservation {
                id,
                under,
                taken_at: now,
                units: part.cost,
                deadline,
            };
            r.names += reservation.under.name_len();
            r.open.insert(id, reservation);
            r.fresh_at = r.fresh_at.max(deadline);
            Ok(id)
        };
        let fresh = || Entry64 {
            key: Key::new(&res_key),
            params: Packed::default(),
            held: Held::Reservations(Box::new(Reservations::new(OpenMap::default()))),
        };
        let shard = pair.reservations();
        match self.apply_in(shard, rh, &res_key, now, record, fresh) {
            Ok(id) => {
                self.touch();
                Ok(Reserved {
                    decision,
                    id: Some(id),
                })
            }
            Err(e) => {
                if part.cost > 0 {
                    self.give_back(&mut pair.state, sh, &state_key, before);
                }
                Err(e)
            }
        }
    }

    /// Settles reservation `id` on `key` at `actual` units (a refund is 0):
    /// the difference from its estimate is given back or taken, and the
    /// reservation is closed. `policy_of` finds the policy of a reservation
    /// taken under one. On an error nothing changes.
    pub fn settle(
        &self,
        key: &[u8],
        id: u64,
        actual: u64,
        now: u64,
        policy_of: impl Fn(&str) -> Option<Arc<Policy>>,
    ) -> Result<Settled, SettleError> {
        let res_key = map_key(Scope::Reservations, key);
        let rh = self.hasher.hash_one(&res_key);
        let under = {
            let shard = self.shard(rh);
            let found = shard.find(rh, &res_key).and_then(|i| {
                let Held::Reservations(r) = &shard.slots[i].held else {
                    return None;
                };
                r.open.get(&id).filter(|r| r.deadline > now)
            });
            found.ok_or(SettleError::NoReservation)?.under.clone()
        };
        let policy = match &under {
            Under::Inline(_) => None,
            Under::Policy(name) => {
                Some(policy_of(name).ok_or_else(|| SettleError::NoPolicy(name.to_string()))?)
            }
        };
        let state_key = match &policy {
            Some(p) => map_key(Scope::Policy(&p.name), key),
            None => map_key(Scope::Inline, key),
        };
        let sh = self.hasher.hash_one(&state_key);
        let mut pair = self.lock_pair(sh, rh);
        // Again under both locks: another settle may have come first.
        let shard = pair.reservations();
        let open = shard.find(rh, &res_key).and_then(|i| {
            let Held::Reservations(r) = &shard.slots[i].held else {
                return None;
            };
            r.open.get(&id).filter(|r| r.deadline > now).cloned()
        });
        let Some(reservation) = open else {
            return Err(SettleError::NoReservation);
        };
        let adjust = Adjust::between(reservation.units, actual);
        let look = Request::dry(0);
        let taken_at = reservation.taken_at;
        let (decision, in_window) = match (&reservation.under, &policy) {
            (Under::Inline(params), _) => {
                let step = |entry: &mut Entry64| {
                    self.inline_step(key, params, now, entry, |state| {
                        match state.settle(params, now, taken_at, adjust) {
                            Ok(in_window) => {
                                let d = state.check(params, now, look);
                                (Ok((d, in_window)), in_window)
                            }
                            Err(e) => (Err(e), false),
                        }
                    })
                };
                let fresh = || inline_fresh(&state_key, params);
                self.apply_in(&mut pair.state, sh, &state_key, now, step, fresh)??
            }
            (Under::Policy(_), Some(p)) => {
                let step =
                    |entry: &mut Entry64| Ok(self.policy_settle(p, now, taken_at, adjust, entry));
                let fresh = || policy_fresh(&state_key, p);
                self.apply_in(&mut pair.state, sh, &state_key, now, step, fresh)??
            }
            (Under::Policy(_), None) => unreachable!("the policy was found above"),
        };
        // Found again: the state's step may have moved slots of a shared
        // shard, or (under volatile-ttl, making room for the state) evicted
        // the reservations, which settles them at their estimates anyway.
        let shard = pair.reservations();
        if let Some(slot) = shard.find(rh, &res_key) {
            let before = shard.slots[slot].heap_bytes();
            let Held::Reservations(r) = &mut shard.slots[slot].held else {
                unreachable!("reservation map keys hold reservations");
            };
            if let Some(gone) = r.open.remove(&id) {
                r.names -= gone.under.name_len();
            }
            let empty = r.open.is_empty();
            // The shard's byte count follows the slot's (a policy's name left).
            shard.heap = shard.heap + shard.slots[slot].heap_bytes() - before;
            if empty {
                shard.remove(rh, slot, &self.hasher);
            }
        }
        self.touch();
        Ok(Settled {
            decision,
            in_window,
            reserved: reservation.units,
        })
    }

    /// Settles a reservation on a key under `policy`: every rule, all or
    /// nothing; then a look at the key.
    fn policy_settle(
        &self,
        policy: &Policy,
        now: u64,
        taken_at: u64,
        adjust: Adjust,
        entry: &mut Entry64,
    ) -> Result<(Decision, bool), Unsettled> {
        let rules = &policy.rules;
        let held = super::policy_held(entry, rules, now);
        let mut states = held.states.clone();
        let mut in_window = false;
        for (state, rule) in states.iter_mut().zip(rules) {
            in_window |= state.settle(rule, now, taken_at, adjust)?;
        }
        if in_window {
            held.fresh_at = states
                .iter()
                .zip(rules)
                .map(|(s, r)| State::fresh_at(s, r))
                .max()
                .unwrap_or(0);
            held.states = states;
            self.touch();
        }
        let (decision, _, _) = policy::check_all(&mut held.states, rules, now, Request::dry(0));
        Ok((decision, in_window))
    }

    /// The open reservations of `key` at `now` (for `LIMIT.INFO`).
    pub fn reservations(&self, key: &[u8], now: u64) -> Vec<Reservation> {
        let res_key = map_key(Scope::Reservations, key);
        let rh = self.hasher.hash_one(&res_key);
        let shard = self.shard(rh);
        let Some(i) = shard.find(rh, &res_key) else {
            return Vec::new();
        };
        match &shard.slots[i].held {
            Held::Reservations(r) => {
                let open = r.open.values().filter(|r| r.deadline > now).cloned();
                let mut open: Vec<Reservation> = open.collect();
                open.sort_by_key(|r| (r.taken_at, r.id));
                open
            }
            _ => Vec::new(),
        }
    }
}

/// A bijection of `u64` (SplitMix64's finalizer): distinct counts give
/// distinct ids, which do not reveal how many came before.
fn scramble(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;
