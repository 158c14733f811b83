//! Named policies: several rules checked together, all or nothing.
//!
//! A policy's state for a key is one store entry holding every rule's state,
//! so one lock covers the whole check: either every rule consumes or none does.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::limiter::{Decision, Params, Request, Retry, State};

/// A named list of rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub rules: Vec<Params>,
    /// Defined in the config file: cannot be changed at run time.
    pub from_config: bool,
}

/// Most rules in one policy: a policy check walks every rule of a key, so
/// this bounds what one check can cost (a day, an hour, a minute and a
/// second limit, each with a burst, is 4).
pub const MAX_RULES: usize = 32;
/// Most policies a server holds (config file and run time together).
pub const MAX_POLICIES: usize = 10_000;

/// Why a policy could not be set or deleted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy '{0}' is defined in the config file")]
    FromConfig(String),
    #[error("too many policies: at most {MAX_POLICIES}")]
    TooMany,
}

/// The error for a policy of more than [`MAX_RULES`] rules.
pub fn too_many_rules(name: &str) -> String {
    format!("policy '{name}' has more than {MAX_RULES} rules")
}

/// What replacing the config-file policies changed, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyChanges {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    /// Run-time policies (LIMIT.POLICY SET) that a config policy replaced.
    pub replaced_run_time: Vec<String>,
}

impl std::fmt::Display for PolicyChanges {
    /// `added a, b; changed c; removed d`, or `no policy changed`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        let added: Vec<&String> = self.added.iter().chain(&self.replaced_run_time).collect();
        for (what, names) in [
            ("added", added),
            ("changed", self.changed.iter().collect()),
            ("removed", self.removed.iter().collect()),
        ] {
            if !names.is_empty() {
                let names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
                parts.push(format!("{what} {}", names.join(", ")));
            }
        }
        if parts.is_empty() {
            f.write_str("no policy changed")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

/// The policies known to the server, by name.
#[derive(Debug, Default)]
pub struct Policies {
    by_name: RwLock<BTreeMap<String, Arc<Policy>>>,
}

impl Policies {
    pub fn get(&self, name: &str) -> Option<Arc<Policy>> {
        self.read().get(name).cloned()
    }

    /// Names in sorted order.
    pub fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Every policy, in name order.
    pub fn all(&self) -> Vec<Arc<Policy>> {
        self.read().values().cloned().collect()
    }

    /// Adds or replaces a policy, unless a config-file policy holds the name.
    pub fn set(&self, policy: Policy) -> Result<(), PolicyError> {
        let mut map = self.write();
        if let Some(old) = map.get(&policy.name)
            && old.from_config
            && !policy.from_config
        {
            return Err(PolicyError::FromConfig(policy.name));
        }
        if map.len() >= MAX_POLICIES && !map.contains_key(&policy.name) {
            return Err(PolicyError::TooMany);
        }
        map.insert(policy.name.clone(), Arc::new(policy));
        Ok(())
    }

    /// Deletes a run-time policy; `Ok(false)` if there is none of that name.
    pub fn delete(&self, name: &str) -> Result<bool, PolicyError> {
        let mut map = self.write();
        match map.get(name) {
            None => Ok(false),
            Some(p) if p.from_config => Err(PolicyError::FromConfig(name.to_string())),
            Some(_) => Ok(map.remove(name).is_some()),
        }
    }

    /// Replaces every config-file policy with `policies`, keeping run-time
    /// ones unless a config policy takes their name. Answers what changed.
    pub fn replace_config(&self, policies: Vec<Policy>) -> PolicyChanges {
        let mut map = self.write();
        let mut changes = PolicyChanges::default();
        let old: BTreeMap<String, Arc<Policy>> =
            map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        map.retain(|_, p| !p.from_config);
        for p in policies {
            match old.get(&p.name) {
                None => changes.added.push(p.name.clone()),
                Some(o) if !o.from_config => changes.replaced_run_time.push(p.name.clone()),
                Some(o) if o.rules != p.rules => changes.changed.push(p.name.clone()),
                Some(_) => {}
            }
            map.insert(p.name.clone(), Arc::new(p));
        }
        changes.removed = old
            .values()
            .filter(|o| o.from_config && !map.contains_key(&o.name))
            .map(|o| o.name.clone())
            .collect();
        changes
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Arc<Policy>>> {
        self.by_name.read()
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Arc<Policy>>> {
        self.by_name.write()
    }
}

/// Lines a key's rule states up with `rules`: a state is kept where the rule
/// at its position has the same algorithm, and is fresh otherwise.
pub fn align_states(states: &mut Vec<State>, rules: &[Params]) {
    states.truncate(rules.len());
    for (i, rule) in rules.iter().enumerate() {
        match states.get(i) {
            Some(s) if s.algorithm() == rule.algorithm => {}
            Some(_) => states[i] = State::fresh(rule),
            None => states.push(State::fresh(rule)),
        }
    }
}

/// Checks every rule, all or nothing, and answers the most restrictive
/// rule's decision: when denied, the denying rule with the largest retry;
/// when allowed, the rule with the least remaining. The second value is the
/// latest reset time of all rules when the request consumed, else `None`;
/// the third, the position of the rule that decided (from 0; the first of
/// equals).
pub fn check_all(
    states: &mut [State],
    rules: &[Params],
    now: u64,
    request: Request,
) -> (Decision, Option<u64>, usize) {
    let look = Request {
        commit: false,
        ..request
    };
    let mut verdict: Option<(Decision, usize)> = None;
    let mut all_allowed = true;
    for (i, (state, rule)) in states.iter_mut().zip(rules).enumerate() {
        let d = state.check(rule, now, look);
        all_allowed &= d.allowed;
        verdict = Some(match verdict {
            None => (d, i),
            Some(v) => most_restrictive(v, (d, i)),
        });
    }
    let (mut verdict, mut decided) = verdict.expect("a policy has at least one rule");
    let mut latest_reset = None;
    if all_allowed {
        let mut delay = 0;
        if request.commit {
            let mut committed: Option<(Decision, usize)> = None;
            let mut reset = 0;
            for (i, (state, rule)) in states.iter_mut().zip(rules).enumerate() {
                let d = state.check(rule, now, request);
                delay = delay.max(d.delay);
                reset = reset.max(d.reset_after);
                committed = Some(match committed {
                    None => (d, i),
                    Some(v) => most_restrictive(v, (d, i)),
                });
            }
            (verdict, decided) = committed.unwrap_or((verdict, decided));
            latest_reset = Some(reset);
        }
        verdict.delay = delay;
    }
    (verdict, latest_reset, decided)
}

/// Of two decisions (each with its rule's position), the one the caller
/// should see.
fn most_restrictive(a: (Decision, usize), b: (Decision, usize)) -> (Decision, usize) {
    match (a.0.allowed, b.0.allowed) {
        (true, false) => b,
        (false, true) => a,
        (false, false) => {
            if retry_rank(b.0.retry) > retry_rank(a.0.retry) {
                b
            } else {
                a
            }
        }
        (true, true) => {
            if b.0.remaining < a.0.remaining {
                b
            } else {
                a
            }
        }
    }
}

fn retry_rank(r: Retry) -> u128 {
    match r {
        Retry::After(ns) => u128::from(ns),
        Retry::Never => u128::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::Algorithm;

    const SECOND: u64 = 1_000_000_000;

    fn rules() -> Vec<Params> {
        vec![
            Params::new(Algorithm::TokenBucket, 10, SECOND),
            Params::new(Algorithm::FixedWindow, 3, 60 * SECOND),
        ]
    }

    #[test]
    fn all_or_nothing() {
        let rules = rules();
        let mut states = Vec::new();
        align_states(&mut states, &rules);
        for left in [2, 1, 0] {
            let (d, _, _) = check_all(&mut states, &rules, 0, Request::take(1));
            assert!(d.allowed);
            assert_eq!(d.remaining, left, "least remaining wins");
        }
        let before = states.clone();
        let (d, _, _) = check_all(&mut states, &rules, 0, Request::take(1));
        assert!(!d.allowed);
        assert_eq!(d.retry, Retry::After(60 * SECOND));
        assert_eq!(states, before, "a denial consumes nowhere");
    }

    #[test]
    fn config_policies_are_read_only() {
        let p = Policies::default();
        p.set(Policy {
            name: "api".into(),
            rules: rules(),
            from_config: true,
        })
        .unwrap();
        let run_time = Policy {
            name: "api".into(),
            rules: rules(),
            from_config: false,
        };
        assert_eq!(p.set(run_time), Err(PolicyError::FromConfig("api".into())));
        assert!(p.delete("api").is_err());
        assert_eq!(p.delete("nope"), Ok(false));
    }

    #[test]
    fn changed_rules_keep_state_where_algorithm_matches() {
        let mut rules = rules();
        let mut states = Vec::new();
        align_states(&mut states, &rules);
        check_all(&mut states, &rules, 0, Request::take(3));
        rules[0].algorithm = Algorithm::Gcra;
        align_states(&mut states, &rules);
        assert_eq!(states[0], State::fresh(&rules[0]));
        let (d, _, _) = check_all(&mut states, &rules, 0, Request::take(1));
        assert!(!d.allowed, "the fixed window kept its count");
    }
}
