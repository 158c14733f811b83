use super::super::testing::*;
use super::super::{Algorithm, Request, State};
use super::NoRefund;

/// Units a dry check at `now` sees as remaining.
fn remaining(s: &State, p: &super::Params, now: u64) -> u64 {
    s.clone().check(p, now, Request::dry(0)).remaining
}

#[test]
fn a_refund_gives_back_what_was_taken_in_every_algorithm_but_the_leaky_bucket() {
    for algorithm in Algorithm::ALL {
        let p = params(algorithm, 10, 60 * SECOND);
        let mut s = State::fresh(&p);
        assert!(take(&mut s, &p, T0, 7).allowed);
        let before = remaining(&s, &p, T0);
        match s.refund(&p, T0, 4) {
            Err(NoRefund(a)) => {
                assert_eq!(a, Algorithm::LeakyBucket, "{algorithm:?}");
                assert_eq!(remaining(&s, &p, T0), before, "refused: nothing changes");
            }
            Ok(given) => {
                assert_eq!(given, 4, "{algorithm:?}");
                assert_eq!(remaining(&s, &p, T0), before + 4, "{algorithm:?}");
            }
        }
    }
}

#[test]
fn a_refund_never_goes_past_full() {
    for algorithm in Algorithm::ALL {
        if algorithm == Algorithm::LeakyBucket {
            continue;
        }
        let p = params(algorithm, 10, 60 * SECOND);
        let mut s = State::fresh(&p);
        assert!(take(&mut s, &p, T0, 3).allowed);
        assert_eq!(s.refund(&p, T0, 100), Ok(3), "{algorithm:?}");
        assert_eq!(remaining(&s, &p, T0), 10, "{algorithm:?}");
        // A fresh key has nothing to give: the capacity stays 10.
        assert_eq!(s.refund(&p, T0, 5), Ok(0), "{algorithm:?}");
        assert!(take(&mut s, &p, T0, 10).allowed, "{algorithm:?}");
        assert!(
            !take(&mut s, &p, T0, 1).allowed,
            "{algorithm:?}: never above capacity"
        );
    }
}

#[test]
fn a_fixed_window_refund_touches_only_the_current_window() {
    let p = params(Algorithm::FixedWindow, 5, 60 * SECOND);
    let mut s = State::fresh(&p);
    assert!(take(&mut s, &p, T0, 5).allowed);
    // The next window: the units counted before have ended anyway.
    assert_eq!(s.refund(&p, T0 + 60 * SECOND, 5), Ok(0));
    assert!(take(&mut s, &p, T0 + 60 * SECOND, 5).allowed);
    assert!(!take(&mut s, &p, T0 + 60 * SECOND, 1).allowed);
}

#[test]
fn log_refunds_take_the_newest_units_first() {
    let p = params(Algorithm::SlidingLog, 4, 10 * SECOND);
    let mut s = State::fresh(&p);
    assert!(take(&mut s, &p, T0, 2).allowed);
    assert!(take(&mut s, &p, T0 + 5 * SECOND, 2).allowed);
    assert_eq!(s.refund(&p, T0 + 5 * SECOND, 3), Ok(3));
    // One unit of T0's entry is left: it leaves at T0 + 10 s.
    let d = s.clone().check(&p, T0 + 6 * SECOND, Request::dry(4));
    assert!(!d.allowed);
    assert_eq!(d.retry, super::super::Retry::After(4 * SECOND));
}

#[test]
fn a_gcra_refund_moves_the_tat_back_exactly() {
    // T = 60 s / 7: not a whole number of nanoseconds.
    let p = params(Algorithm::Gcra, 7, 60 * SECOND);
    let mut s = State::fresh(&p);
    assert!(take(&mut s, &p, T0, 7).allowed);
    assert_eq!(s.refund(&p, T0, 2), Ok(2));
    assert!(take(&mut s, &p, T0, 2).allowed);
    assert!(!take(&mut s, &p, T0, 1).allowed);
}
