//! Time sources. Every limiter decision takes `now` as an argument, and every
//! reply held for later (WAIT, a leaky bucket's turn) sleeps on the same
//! clock, so tests drive both by hand.
//!
//! Times are nanoseconds since the Unix epoch (wall clock), so that state
//! written to disk stays meaningful across restarts.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// Nanoseconds in one millisecond.
pub const NANOS_PER_MS: u64 = 1_000_000;

/// A sleep on a [`Clock`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A source of the current time in nanoseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    /// The current time, in nanoseconds since the Unix epoch.
    fn now(&self) -> u64;

    /// Completes once the clock reads `deadline_ns` or later.
    fn sleep_until(&self, deadline_ns: u64) -> Sleep;
}

/// The machine's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    fn sleep_until(&self, deadline_ns: u64) -> Sleep {
        let left = deadline_ns.saturating_sub(self.now());
        Box::pin(tokio::time::sleep(Duration::from_nanos(left)))
    }
}

/// A clock that only moves when told to, with timers that fire when it
/// passes their deadline; for tests.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<Manual>,
}

#[derive(Debug, Default)]
struct Manual {
    now: AtomicU64,
    next_id: AtomicU64,
    /// Pending sleeps by id: (deadline, the waker of their last poll).
    timers: Mutex<BTreeMap<u64, (u64, Waker)>>,
}

impl ManualClock {
    /// A clock stopped at `start_ns`.
    pub fn new(start_ns: u64) -> Self {
        let inner = Manual {
            now: AtomicU64::new(start_ns),
            ..Manual::default()
        };
        ManualClock {
            inner: Arc::new(inner),
        }
    }

    /// Moves the clock forward by `ns` nanoseconds.
    pub fn advance(&self, ns: u64) {
        self.inner.now.fetch_add(ns, Ordering::SeqCst);
        self.wake_due();
    }

    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance_ms(&self, ms: u64) {
        self.advance(ms.saturating_mul(NANOS_PER_MS));
    }

    /// Sets the clock to `ns`.
    pub fn set(&self, ns: u64) {
        self.inner.now.store(ns, Ordering::SeqCst);
        self.wake_due();
    }

    /// The deadlines of the sleeps pending now, earliest first: what the
    /// server is waiting for, exactly.
    pub fn deadlines(&self) -> Vec<u64> {
        let mut out: Vec<u64> = self.inner.timers.lock().values().map(|t| t.0).collect();
        out.sort_unstable();
        out
    }

    fn wake_due(&self) {
        let now = self.now();
        let due: Vec<Waker> = {
            let mut timers = self.inner.timers.lock();
            let ids: Vec<u64> = timers
                .iter()
                .filter(|(_, (deadline, _))| *deadline <= now)
                .map(|(&id, _)| id)
                .collect();
            ids.iter()
                .filter_map(|id| timers.remove(id))
                .map(|t| t.1)
                .collect()
        };
        due.into_iter().for_each(Waker::wake);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.inner.now.load(Ordering::SeqCst)
    }

    fn sleep_until(&self, deadline_ns: u64) -> Sleep {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        Box::pin(ManualSleep {
            clock: self.clone(),
            id,
            deadline: deadline_ns,
        })
    }
}

/// A sleep on a [`ManualClock`]: pending (and listed in `deadlines`) until
/// the clock reaches its deadline; dropping it cancels it.
struct ManualSleep {
    clock: ManualClock,
    id: u64,
    deadline: u64,
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut timers = self.clock.inner.timers.lock();
        // Read under the lock: an advance either came before (and is seen
        // here) or comes after (and finds this timer to wake).
        if self.clock.now() >= self.deadline {
            timers.remove(&self.id);
            return Poll::Ready(());
        }
        timers.insert(self.id, (self.deadline, cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        self.clock.inner.timers.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(5);
        assert_eq!(clock.now(), 5);
        clock.advance_ms(2);
        assert_eq!(clock.now(), 2_000_005);
        clock.set(1);
        assert_eq!(clock.now(), 1);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now() > 1_577_836_800 * 1_000_000_000);
    }

    #[tokio::test]
    async fn manual_timers_fire_exactly_at_their_deadline() {
        let clock = ManualClock::new(100);
        let fired = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for deadline in [150u64, 120, 150] {
            let (clock, fired) = (clock.clone(), fired.clone());
            tasks.push(tokio::spawn(async move {
                clock.sleep_until(deadline).await;
                fired.fetch_add(1, Ordering::SeqCst);
            }));
        }
        while clock.deadlines().len() < 3 {
            tokio::task::yield_now().await;
        }
        assert_eq!(clock.deadlines(), [120, 150, 150]);
        clock.advance(19);
        tokio::task::yield_now().await;
        assert_eq!(clock.deadlines(), [120, 150, 150], "119 is before 120");
        clock.advance(1);
        assert_eq!(clock.deadlines(), [150, 150]);
        clock.set(150);
        assert!(clock.deadlines().is_empty());
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(fired.load(Ordering::SeqCst), 3);
        // A sleep already due completes at once; a dropped one is forgotten.
        clock.sleep_until(150).await;
        drop(clock.sleep_until(10_000));
        assert!(clock.deadlines().is_empty());
    }
}
