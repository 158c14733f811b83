//! Refunds through the store: units given back to a key under its rule or
//! policy (see [`crate::limiter::refund`] for what each algorithm does).

use std::hash::BuildHasher;

use super::multi::{Part, Rule};
use super::{Held, Refused, Scope, Store, with_map_key};
use crate::limiter::refund::NoRefund;
use crate::limiter::{Algorithm, Decision, Request};
use crate::policy;

impl Store {
    /// Gives `units` back to `part`'s key at `now` and answers the key's
    /// decision for a look afterwards (cost 0). A key with no state has
    /// nothing to give. Under a policy every rule gets the units back; a
    /// leaky bucket (inline, or any rule of the policy) refuses and nothing
    /// changes.
    pub fn refund(&self, part: Part<'_>, now: u64, units: u64) -> Result<Decision, Refused> {
        let look = Request::dry(0);
        match part.rule {
            Rule::Inline(params) => {
                if params.algorithm == Algorithm::LeakyBucket {
                    return Err(NoRefund(Algorithm::LeakyBucket).into());
                }
                self.update(part.key, params, now, |state| {
                    let given = state.refund(params, now, units).unwrap_or(0);
                    (state.check(params, now, look), given > 0)
                })
            }
            Rule::Policy(p) => {
                if p.rules
                    .iter()
                    .any(|r| r.algorithm == Algorithm::LeakyBucket)
                {
                    return Err(NoRefund(Algorithm::LeakyBucket).into());
                }
                with_map_key(Scope::Policy(&p.name), part.key, |map_key| {
                    let hash = self.hasher.hash_one(map_key);
                    let mut shard = self.shard(hash);
                    let Some(i) = shard.find(hash, map_key) else {
                        return self.check_policy(p, part.key, now, look);
                    };
                    let Held::Policy(held) = &mut shard.slots[i].held else {
                        unreachable!("policy map keys hold policy states");
                    };
                    if held.fresh_at > now {
                        policy::align_states(&mut held.states, &p.rules);
                        for (state, rule) in held.states.iter_mut().zip(&p.rules) {
                            let _ = state.refund(rule, now, units);
                        }
                        self.touch();
                    }
                    drop(shard);
                    self.check_policy(p, part.key, now, look)
                })
            }
        }
    }
}
