//! The engine: everything a check needs and nothing else (the store, the
//! policies, the clock). Commands reach it through their context; a second
//! front end (the gRPC service to come) takes the same handle without the
//! services around it (persistence, metrics, clients, waits, shutdown),
//! which live in [`crate::state::Shared`].

use std::sync::Arc;

use crate::clock::Clock;
use crate::policy::{Policies, Policy};
use crate::store::Store;

/// The store, the policies and the clock, shared by every front end.
pub struct Engine {
    pub store: Store,
    pub policies: Policies,
    pub clock: Arc<dyn Clock>,
}

impl Engine {
    /// An empty store with these policies, deciding on `clock`.
    pub fn new(policies: Vec<Policy>, clock: Arc<dyn Clock>) -> Engine {
        let engine = Engine {
            store: Store::new(),
            policies: Policies::default(),
            clock,
        };
        engine.policies.replace_config(policies);
        engine
    }

    /// The clock's time (ns since the Unix epoch).
    pub fn now(&self) -> u64 {
        self.clock.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::limiter::{Algorithm, Params, Request};

    #[test]
    fn decides_on_its_clock_with_its_policies() {
        let clock = ManualClock::new(1_000_000_000_000);
        let rule = Params::new(Algorithm::FixedWindow, 1, 1_000_000_000);
        let policy = Policy {
            name: "p".into(),
            rules: vec![rule],
            from_config: true,
        };
        let engine = Engine::new(vec![policy], Arc::new(clock.clone()));
        assert_eq!(engine.now(), 1_000_000_000_000);
        let p = engine.policies.get("p").expect("the policy is loaded");
        let allowed = |key: &[u8]| {
            engine
                .store
                .check_policy(&p, key, engine.now(), Request::take(1))
                .expect("no maxmemory")
                .allowed
        };
        assert!(allowed(b"k"));
        assert!(!allowed(b"k"));
        clock.advance(1_000_000_000);
        assert!(allowed(b"k"));
        let inline = |key: &[u8]| {
            let checked = engine
                .store
                .check(key, &rule, engine.now(), Request::take(1));
            checked.expect("an inline key").decision.allowed
        };
        assert!(inline(b"k") && !inline(b"k"));
    }
}
