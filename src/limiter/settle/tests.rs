use super::super::testing::*;
use super::super::{Algorithm, Params, Request, Retry, State};
use super::{Adjust, Unsettled};

/// What a look (cost 0) at `now` sees.
fn look(s: &State, p: &Params, now: u64) -> super::super::Decision {
    s.clone().check(p, now, Request::dry(0))
}

/// The algorithms that take a settle.
fn settling() -> impl Iterator<Item = Algorithm> {
    Algorithm::ALL
        .into_iter()
        .filter(|a| *a != Algorithm::LeakyBucket)
}

#[test]
fn settling_lower_gives_the_difference_back_in_every_algorithm_but_the_leaky_bucket() {
    for algorithm in Algorithm::ALL {
        let p = params(algorithm, 10, 60 * SECOND);
        let mut s = State::fresh(&p);
        assert!(take(&mut s, &p, T0, 7).allowed);
        let before = s.clone();
        match s.settle(&p, T0 + SECOND, T0, Adjust::between(7, 3)) {
            Err(Unsettled::NoRefund(_)) => {
                assert_eq!(algorithm, Algorithm::LeakyBucket);
                assert_eq!(s, before, "refused: nothing changes");
            }
            other => {
                assert_eq!(other, Ok(true), "{algorithm:?}");
                let left = look(&s, &p, T0 + SECOND).remaining;
                let was = look(&before, &p, T0 + SECOND).remaining;
                assert_eq!(left, was + 4, "{algorithm:?}: 4 units back");
            }
        }
    }
}

#[test]
fn settling_higher_takes_the_extra_into_debt_until_refill_pays_it_back() {
    for algorithm in settling() {
        let p = params(algorithm, 10, 60 * SECOND);
        let mut s = State::fresh(&p);
        assert!(take(&mut s, &p, T0, 8).allowed);
        // 8 reserved, 15 used: 5 past the capacity.
        assert_eq!(s.settle(&p, T0, T0, Adjust::between(8, 15)), Ok(true));
        let d = look(&s, &p, T0);
        assert!(!d.allowed, "{algorithm:?}: in debt even a look is denied");
        assert_eq!(d.remaining, 0, "{algorithm:?}");
        let Retry::After(wait) = d.retry else {
            panic!("{algorithm:?}: a debt is paid back in time");
        };
        assert!(wait > 0, "{algorithm:?}");
        assert!(!take(&mut s, &p, T0 + wait - 1, 1).allowed, "{algorithm:?}");
        assert!(
            look(&s, &p, T0 + wait).allowed,
            "{algorithm:?}: the debt is paid once retry_after has passed"
        );
    }
    // The bucket refills 1 unit per 6 s: 5 units of debt take 30 s.
    let p = params(Algorithm::TokenBucket, 10, 60 * SECOND);
    let mut s = State::fresh(&p);
    take(&mut s, &p, T0, 10);
    s.settle(&p, T0, T0, Adjust::Charge(5)).unwrap();
    assert_eq!(look(&s, &p, T0).retry, Retry::After(30 * SECOND));
    assert!(!take(&mut s, &p, T0 + 36 * SECOND - 1, 1).allowed);
    assert!(take(&mut s, &p, T0 + 36 * SECOND, 1).allowed);
}

#[test]
fn giving_back_never_goes_past_full() {
    for algorithm in settling() {
        let p = params(algorithm, 10, 60 * SECOND);
        let mut s = State::fresh(&p);
        assert!(take(&mut s, &p, T0, 3).allowed);
        assert_eq!(s.settle(&p, T0, T0, Adjust::GiveBack(100)), Ok(true));
        assert_eq!(look(&s, &p, T0).remaining, 10, "{algorithm:?}");
        assert!(take(&mut s, &p, T0, 10).allowed, "{algorithm:?}");
        assert!(!take(&mut s, &p, T0, 1).allowed, "{algorithm:?}");
    }
}

#[test]
fn a_window_that_has_passed_is_not_touched() {
    let cases = [
        (Algorithm::FixedWindow, 60 * SECOND),
        (Algorithm::SlidingLog, 60 * SECOND),
        // 10 buckets of 6 s: the reservation's bucket weighs until 66 s.
        (Algorithm::SlidingWindow, 66 * SECOND),
    ];
    for (algorithm, passed) in cases {
        let p = params(algorithm, 10, 60 * SECOND);
        let mut s = State::fresh(&p);
        take(&mut s, &p, T0, 10);
        take(&mut s, &p, T0 + passed - SECOND, 0);
        let later = T0 + passed;
        let before = look(&s, &p, later);
        assert_eq!(s.settle(&p, later, T0, Adjust::Charge(50)), Ok(false));
        assert_eq!(s.settle(&p, later, T0, Adjust::GiveBack(5)), Ok(false));
        assert_eq!(look(&s, &p, later), before, "{algorithm:?}");
        // Just before, it is still current.
        let mut s = State::fresh(&p);
        take(&mut s, &p, T0, 10);
        assert_eq!(
            s.settle(&p, later - 1, T0, Adjust::GiveBack(5)),
            Ok(true),
            "{algorithm:?}"
        );
    }
}

#[test]
fn a_log_settles_the_entry_of_the_reservation_not_the_newest() {
    let p = params(Algorithm::SlidingLog, 10, 60 * SECOND);
    let mut s = State::fresh(&p);
    take(&mut s, &p, T0, 5); // the reservation
    take(&mut s, &p, T0 + 10 * SECOND, 3);
    s.settle(&p, T0 + 20 * SECOND, T0, Adjust::GiveBack(5))
        .unwrap();
    assert_eq!(look(&s, &p, T0 + 20 * SECOND).remaining, 7);
    // The 3 units of 10 s still count until 70 s.
    assert_eq!(look(&s, &p, T0 + 60 * SECOND).remaining, 7);
    assert_eq!(look(&s, &p, T0 + 70 * SECOND).remaining, 10);
    // Extra units keep the reservation's time: they leave at 60 s.
    let mut s = State::fresh(&p);
    take(&mut s, &p, T0, 5);
    take(&mut s, &p, T0 + 10 * SECOND, 3);
    s.settle(&p, T0 + 20 * SECOND, T0, Adjust::Charge(4))
        .unwrap();
    let d = look(&s, &p, T0 + 20 * SECOND);
    assert_eq!((d.allowed, d.retry), (false, Retry::After(40 * SECOND)));
    assert_eq!(look(&s, &p, T0 + 60 * SECOND).remaining, 7);
}

#[test]
fn a_sliding_window_settles_the_bucket_of_the_reservation() {
    let p = params(Algorithm::SlidingWindow, 10, 60 * SECOND);
    let mut s = State::fresh(&p);
    take(&mut s, &p, T0, 6); // bucket 0
    take(&mut s, &p, T0 + 12 * SECOND, 4); // bucket 2
    s.settle(&p, T0 + 13 * SECOND, T0, Adjust::GiveBack(6))
        .unwrap();
    let State::SlidingWindow(sw) = &s else {
        unreachable!()
    };
    assert_eq!(sw.buckets.as_slice(), &[(T0 + 12 * SECOND, 4)]);
    assert_eq!(sw.total, 4);
    s.settle(&p, T0 + 13 * SECOND, T0 + SECOND, Adjust::Charge(2))
        .unwrap();
    let State::SlidingWindow(sw) = &s else {
        unreachable!()
    };
    assert_eq!(sw.buckets.as_slice(), &[(T0, 2), (T0 + 12 * SECOND, 4)]);
    assert_eq!(sw.total, 6);
}

#[test]
fn a_fixed_window_charge_after_a_reset_counts_in_the_current_window() {
    let p = params(Algorithm::FixedWindow, 10, 60 * SECOND);
    let mut s = State::fresh(&p);
    assert_eq!(s.settle(&p, T0 + SECOND, T0, Adjust::Charge(4)), Ok(true));
    assert_eq!(look(&s, &p, T0 + SECOND).remaining, 6);
    assert_eq!(s.settle(&p, T0 + SECOND, T0, Adjust::GiveBack(9)), Ok(true));
    assert_eq!(look(&s, &p, T0 + SECOND).remaining, 10);
}

#[test]
fn debt_past_the_longest_refill_is_refused_and_changes_nothing() {
    for algorithm in [Algorithm::TokenBucket, Algorithm::Gcra] {
        let p = params(algorithm, 1, 366 * 24 * 3600 * SECOND);
        let mut s = State::fresh(&p);
        take(&mut s, &p, T0, 1);
        let before = s.clone();
        assert_eq!(
            s.settle(&p, T0, T0, Adjust::Charge(1_000)),
            Err(Unsettled::TooDeep)
        );
        assert_eq!(s, before);
        // 499 more years of debt fit (500 in all).
        assert_eq!(s.settle(&p, T0, T0, Adjust::Charge(499)), Ok(true));
        assert!(!look(&s, &p, T0).allowed);
    }
}
