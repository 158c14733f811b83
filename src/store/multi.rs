//! Several keys checked at once, all or nothing: either every key admits
//! the request and each takes its cost, or none takes anything.
//!
//! The shards of the keys are locked in shard order (so two checks naming
//! the same keys in another order cannot deadlock), every key is checked
//! in turn as a single check would be, and if any is denied (or a new key
//! does not fit under `maxmemory`) every key gets back the state it had.
//! Nothing else sees the states in between. (An eviction under
//! `volatile-ttl` that one of the checks caused is not undone: it only
//! dropped another key's state.)

use std::hash::BuildHasher;

use super::shard::{Locked, Shard};
use super::slots::Entry64;
use super::{Refused, SHARDS, Scope, Store, encode_key, inline_fresh, policy_fresh};
use crate::limiter::{Decision, Params, Request};
use crate::policy::Policy;

/// What one key is checked under.
#[derive(Debug, Clone, Copy)]
pub enum Rule<'a> {
    Inline(&'a Params),
    Policy(&'a Policy),
}

/// One key of a multi-key check, and the units it takes.
#[derive(Debug, Clone, Copy)]
pub struct Part<'a> {
    pub key: &'a [u8],
    pub rule: Rule<'a>,
    /// Units to take; 0 only looks.
    pub cost: u64,
}

impl Part<'_> {
    pub(super) fn map_key(&self) -> Vec<u8> {
        let scope = match self.rule {
            Rule::Inline(_) => Scope::Inline,
            Rule::Policy(p) => Scope::Policy(&p.name),
        };
        let mut out = Vec::with_capacity(self.key.len() + 8);
        encode_key(&mut out, scope, self.key);
        out
    }
}

impl Store {
    /// Checks every part under its rule for its cost, all or nothing;
    /// answers whether all were admitted and each part's decision (in
    /// order; a key named twice is checked twice, the second time after the
    /// first). When not all are admitted, or `commit` is false (a dry run),
    /// no state changes.
    pub fn check_many(
        &self,
        parts: &[Part<'_>],
        now: u64,
        commit: bool,
    ) -> Result<(bool, Vec<Decision>), Refused> {
        let map_keys: Vec<Vec<u8>> = parts.iter().map(Part::map_key).collect();
        let hashes: Vec<u64> = map_keys.iter().map(|k| self.hasher.hash_one(k)).collect();
        let shard_index = |hash: u64| (hash >> 32) as usize % SHARDS;
        let mut order: Vec<usize> = hashes.iter().map(|&h| shard_index(h)).collect();
        order.sort_unstable();
        order.dedup();
        let mut locked: Vec<Locked<'_>> = order.iter().map(|&i| self.shards[i].lock()).collect();
        // Where the shard of a hash sits in `locked`.
        let at = |hash: u64| order.binary_search(&shard_index(hash)).unwrap_or(0);
        // What each key held, to give back if the check is not admitted.
        let mut before: Vec<(usize, Option<Entry64>)> = Vec::new();
        for i in 0..parts.len() {
            if map_keys[..i].contains(&map_keys[i]) {
                continue;
            }
            let s = &locked[at(hashes[i])];
            let held = s.find(hashes[i], &map_keys[i]).map(|j| s.slots[j].clone());
            before.push((i, held));
        }
        let mut decisions = Vec::with_capacity(parts.len());
        let mut failed = None;
        for (i, part) in parts.iter().enumerate() {
            let (hash, map_key) = (hashes[i], map_keys[i].as_slice());
            let request = Request {
                cost: part.cost,
                commit,
                max_wait: None,
            };
            let checked = match part.rule {
                Rule::Inline(params) => {
                    let step = |entry: &mut Entry64| {
                        self.inline_step(part.key, params, now, entry, |state| {
                            let d = state.check(params, now, request);
                            (d, d.allowed && request.commit && request.cost > 0)
                        })
                    };
                    let fresh = || inline_fresh(map_key, params);
                    self.apply_in(&mut locked[at(hash)], hash, map_key, now, step, fresh)
                }
                Rule::Policy(policy) => {
                    let step =
                        |entry: &mut Entry64| Ok(self.policy_step(policy, now, request, entry).0);
                    let fresh = || policy_fresh(map_key, policy);
                    self.apply_in(&mut locked[at(hash)], hash, map_key, now, step, fresh)
                }
            };
            match checked {
                Ok(d) => decisions.push(d),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let admitted = failed.is_none() && decisions.iter().all(|d| d.allowed);
        if !admitted && commit {
            for (i, held) in before.into_iter().rev() {
                self.give_back(&mut locked[at(hashes[i])], hashes[i], &map_keys[i], held);
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok((admitted, decisions)),
        }
    }

    /// Puts back what `map_key` held before a check that was not admitted.
    pub(super) fn give_back(
        &self,
        shard: &mut Shard,
        hash: u64,
        map_key: &[u8],
        held: Option<Entry64>,
    ) {
        match (shard.find(hash, map_key), held) {
            (Some(i), Some(old)) => {
                shard.heap = shard.heap - shard.slots[i].heap_bytes() + old.heap_bytes();
                shard.slots[i] = old;
            }
            (Some(i), None) => {
                shard.remove(hash, i, &self.hasher);
            }
            (None, Some(old)) => {
                shard.insert(hash, old, &self.hasher);
            }
            (None, None) => {}
        }
    }
}
