//! Costs, refunds, shadow mode, unknown domains, bad calls, overrides
//! and dry runs.

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::RateLimitOverride;
use envoy_types::pb::google::protobuf::UInt64Value;

use super::*;

#[test]
fn hits_addend_is_the_cost_and_a_descriptor_zero_only_looks() {
    let f = fixture();
    let mut r = request(vec![descriptor(&[("org", "1")])]);
    r.hits_addend = 3;
    assert_eq!(f.ok(&r).statuses[0].limit_remaining, 2);
    r.hits_addend = 0; // means 1
    assert_eq!(f.ok(&r).statuses[0].limit_remaining, 1);
    let mut peek = descriptor(&[("org", "1")]);
    peek.hits_addend = Some(UInt64Value { value: 0 });
    r.descriptors = vec![peek.clone()];
    r.hits_addend = 5;
    for _ in 0..3 {
        let s = &f.ok(&r).statuses[0];
        assert_eq!((s.code, s.limit_remaining), (OK, 1), "a peek takes nothing");
    }
    peek.hits_addend = Some(UInt64Value { value: 2 });
    r.descriptors = vec![peek];
    assert_eq!(f.ok(&r).statuses[0].code, OVER, "2 asked, 1 left");
}

#[test]
fn negative_hits_give_units_back_but_never_past_the_capacity() {
    let f = fixture();
    for _ in 0..3 {
        f.one("gcra", "v");
    }
    let mut back = descriptor(&[("gcra", "v")]);
    back.is_negative_hits = true;
    back.hits_addend = Some(UInt64Value { value: 2 });
    let s = f.ok(&request(vec![back.clone()])).statuses[0].clone();
    assert_eq!((s.code, s.limit_remaining), (OK, 2));
    back.hits_addend = Some(UInt64Value { value: 100 });
    assert_eq!(f.ok(&request(vec![back])).statuses[0].limit_remaining, 3);
    let got: Vec<(i32, u32)> = (0..4).map(|_| f.one("gcra", "v")).collect();
    assert_eq!(got, [(OK, 2), (OK, 1), (OK, 0), (OVER, 0)]);
    // The leaky bucket's queue cannot give back.
    let mut leaky = descriptor(&[("leaky_bucket", "v")]);
    leaky.is_negative_hits = true;
    assert!(matches!(
        f.call(&request(vec![leaky])),
        Err(Failure::Precondition(m)) if m.contains("leaky_bucket cannot give units back")
    ));
}

#[test]
fn shadow_descriptors_count_but_answer_ok() {
    let f = fixture();
    let r = request(vec![descriptor(&[("shadow", "s")])]);
    let first = f.call(&r).unwrap();
    assert_eq!((first.response.overall_code, first.shadow_over), (OK, 0));
    let second = f.call(&r).unwrap();
    assert_eq!(second.response.overall_code, OK);
    assert_eq!(second.response.statuses[0].code, OK);
    assert_eq!(second.shadow_over, 1, "over its limit, counted");
    // A call denied by another descriptor takes nothing from the shadow one.
    let f = fixture();
    for _ in 0..2 {
        f.one("user", "u");
    }
    let denied = request(vec![
        descriptor(&[("user", "u")]),
        descriptor(&[("shadow", "t")]),
    ]);
    assert_eq!(f.ok(&denied).overall_code, OVER);
    assert_eq!(
        f.call(&request(vec![descriptor(&[("shadow", "t")])]))
            .unwrap()
            .shadow_over,
        0
    );
}

#[test]
fn unknown_domains_and_unmatched_descriptors_are_not_limited() {
    let f = fixture();
    let mut r = request(vec![
        descriptor(&[("nothing", "here")]),
        descriptor(&[("free", "x")]),
    ]);
    for _ in 0..5 {
        let out = f.call(&r).unwrap();
        assert!(out.known_domain);
        assert_eq!(out.response.overall_code, OK);
        assert!(
            out.response
                .statuses
                .iter()
                .all(|s| s.code == OK && s.current_limit.is_none())
        );
    }
    r.domain = "other".into();
    let out = f.call(&r).unwrap();
    assert!(!out.known_domain);
    assert_eq!(out.response.statuses.len(), 2);
    assert_eq!(f.engine.store.len(), 0, "nothing was stored");
}

#[test]
fn malformed_requests_are_invalid_and_change_nothing() {
    let f = fixture();
    let huge = Some(UInt64Value {
        value: MAX_COUNT + 1,
    });
    let mut costly = descriptor(&[("org", "1")]);
    costly.hits_addend = huge;
    let mut bad_override = descriptor(&[("org", "1")]);
    bad_override.limit = Some(RateLimitOverride {
        requests_per_unit: 5,
        unit: 0,
    });
    let cases = [
        (
            RateLimitRequest {
                domain: String::new(),
                ..request(vec![descriptor(&[("org", "1")])])
            },
            "the domain must not be empty",
        ),
        (request(vec![]), "the descriptor list must not be empty"),
        (request(vec![descriptor(&[])]), "descriptor 0 has 0 entries"),
        (
            request(vec![descriptor(&[("org", "1")]); 65]),
            "65 descriptors: expected at most 64",
        ),
        (
            request(vec![descriptor(&[("org", "1")]), descriptor(&[("", "x")])]),
            "descriptor 1 has an entry with an empty key",
        ),
        (request(vec![costly]), "hits_addend 1000000000001"),
        (
            request(vec![bad_override]),
            "limit override of 5 per unit 0",
        ),
    ];
    for (r, want) in cases {
        match f.call(&r) {
            Err(Failure::Invalid(m)) => assert!(m.contains(want), "{m}"),
            other => panic!("{want}: {other:?}"),
        }
    }
    assert_eq!(f.engine.store.len(), 0);
}

#[test]
fn a_limit_override_replaces_the_configured_numbers() {
    let f = fixture();
    let mut d = descriptor(&[("token_bucket", "v")]);
    d.limit = Some(RateLimitOverride {
        requests_per_unit: 1,
        unit: Unit::Hour as i32,
    });
    let r = request(vec![d]);
    assert_eq!(f.ok(&r).overall_code, OK);
    let second = f.ok(&r);
    assert_eq!(second.overall_code, OVER);
    let limit = second.statuses[0].current_limit.as_ref().unwrap();
    assert_eq!(
        (limit.requests_per_unit, limit.unit),
        (1, Unit::Hour as i32)
    );
}

#[test]
fn a_dry_run_answers_as_if_and_changes_nothing() {
    let f = fixture();
    f.one("org", "dry");
    let mut back = descriptor(&[("org", "dry")]);
    back.is_negative_hits = true;
    let r = request(vec![
        descriptor(&[("org", "dry")]),
        descriptor(&[("shadow", "s")]),
        back,
    ]);
    for _ in 0..3 {
        let out = decide(&f.engine, &f.domains, f.options, &r, f.clock.now(), false).unwrap();
        let s = &out.response.statuses;
        assert_eq!(
            (s[0].code, s[0].limit_remaining),
            (OK, 3),
            "as if one more were taken"
        );
        assert_eq!(s[2].limit_remaining, 4, "a refund only looks");
    }
    assert_eq!(
        f.one("org", "dry"),
        (OK, 3),
        "nothing was taken or given back"
    );
    assert_eq!(f.one("shadow", "s"), (OK, 0));
}

#[test]
fn a_key_of_another_algorithm_and_a_full_store_are_refused() {
    let f = fixture();
    // The descriptor's key checked over RESP under another algorithm.
    let key = store_key("d", [("gcra", "w")]);
    let other = Params::new(Algorithm::FixedWindow, 3, 60 * SECOND);
    f.engine
        .store
        .check(&key, &other, f.clock.now(), Request::take(1))
        .unwrap();
    let r = request(vec![descriptor(&[("gcra", "w")])]);
    match f.call(&r) {
        Err(Failure::Precondition(m)) => {
            assert_eq!(m, "key 'd|gcra=w' holds fixed_window state, not gcra")
        }
        other => panic!("{other:?}"),
    }
    // noeviction at a one-byte bound: a new key does not fit.
    f.engine
        .store
        .set_maxmemory(1, crate::store::EvictionPolicy::NoEviction);
    match f.call(&request(vec![descriptor(&[("gcra", "new")])])) {
        Err(Failure::OutOfMemory(m)) => assert!(m.starts_with("OOM command not allowed")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_largest_cost_accepted_is_denied_and_stores_nothing() {
    let f = fixture();
    for algorithm in Algorithm::ALL {
        let mut d = descriptor(&[(algorithm.name(), "huge")]);
        d.hits_addend = Some(UInt64Value { value: MAX_COUNT });
        let r = f.ok(&request(vec![d]));
        assert_eq!(r.overall_code, OVER, "{algorithm:?}");
    }
    assert_eq!(
        f.engine.store.len(),
        0,
        "no state for a cost that never fits"
    );
}
