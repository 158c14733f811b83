//! Warnings that a client can cause, logged at a bounded rate: the first
//! at once, then at most one a second, each saying how many were left out
//! since the last. A flood of bad passwords or failed accepts costs the log
//! one line a second, not one a request.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Shortest time between two lines of one kind.
const EVERY: Duration = Duration::from_secs(1);

/// One kind of warning.
#[derive(Debug, Default)]
pub struct Throttled {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last: Option<Instant>,
    skipped: u64,
}

impl Throttled {
    /// Whether to log an event that happened at `now`: `Some(n)` with the
    /// number of events left out since the last line, or `None` to leave
    /// this one out.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock();
        match s.last {
            Some(last) if now.saturating_duration_since(last) < EVERY => {
                s.skipped += 1;
                None
            }
            _ => {
                s.last = Some(now);
                Some(std::mem::take(&mut s.skipped))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_with_the_count_left_out() {
        let t = Throttled::default();
        let t0 = Instant::now();
        assert_eq!(t.admit(t0), Some(0));
        for i in 1..=1000 {
            assert_eq!(t.admit(t0 + Duration::from_micros(i)), None);
        }
        assert_eq!(t.admit(t0 + Duration::from_millis(999)), None);
        assert_eq!(t.admit(t0 + EVERY), Some(1001));
        assert_eq!(t.admit(t0 + EVERY), None);
        assert_eq!(t.admit(t0 + 3 * EVERY), Some(1));
    }
}
