use super::*;

#[test]
fn algorithm_names_round_trip_case_insensitively() {
    for a in Algorithm::ALL {
        assert_eq!(Algorithm::parse(a.name().as_bytes()), Some(a));
        assert_eq!(
            Algorithm::parse(a.name().to_uppercase().as_bytes()),
            Some(a)
        );
    }
    assert_eq!(Algorithm::parse(b"token"), None);
}

#[test]
fn fields_round_times_up_to_ms() {
    let d = Decision {
        allowed: false,
        limit: 5,
        remaining: 0,
        retry: Retry::After(1_000_001),
        reset_after: 1,
        delay: 0,
    };
    assert_eq!(d.fields(), [0, 5, 0, 2, 1]);
    let never = Decision::never(5, 3, 0);
    assert_eq!(never.fields(), [0, 5, 3, -1, 0]);
}

#[test]
fn the_refill_bound_is_exact_at_its_edge() {
    let mut p = Params::new(Algorithm::Gcra, 1, MAX_WINDOW_NS);
    p.burst = 500;
    assert!(p.fill_in_range());
    assert_eq!(p.fill_ns(), u128::from(MAX_FILL_NS));
    p.burst = 501;
    assert!(!p.fill_in_range());
    // One ns over the bound after rounding up: 3 per 1 ms, a burst whose
    // refill is MAX_FILL_NS + 1/3 ns.
    let mut q = Params::new(Algorithm::TokenBucket, 3, NANOS_PER_MS);
    q.burst = 3 * (MAX_FILL_NS / NANOS_PER_MS);
    assert!(q.fill_in_range());
    q.burst += 1;
    assert!(!q.fill_in_range());
    assert!(q.fill_ns() > u128::from(MAX_FILL_NS));
    for a in [
        Algorithm::FixedWindow,
        Algorithm::SlidingLog,
        Algorithm::SlidingWindow,
    ] {
        assert!(Params::new(a, 1, MAX_WINDOW_NS).fill_in_range());
    }
}

#[test]
fn state_stays_small() {
    assert!(
        std::mem::size_of::<State>() <= 32,
        "{}",
        std::mem::size_of::<State>()
    );
}
