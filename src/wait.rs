//! First-come-first-served queues of `WAIT` callers, one per limiter key.
//!
//! Only the head of a key's queue checks the limiter; it sleeps exactly
//! until the limiter says it would be allowed (a timer, no polling). The
//! others sleep until the head leaves. A waiter that leaves, served or not
//! (its connection closed), drops its [`Ticket`] and wakes the next.
//!
//! Replies held for their leaky-bucket turn are not queued here (the bucket
//! orders them), but they block their connection just the same, so each holds
//! a [`Hold`] and counts among the blocked clients.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, MutexGuard};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct WaitQueues {
    by_key: Mutex<HashMap<Box<[u8]>, KeyQueue>>,
    next_id: AtomicU64,
    held: AtomicUsize,
}

#[derive(Debug)]
struct KeyQueue {
    tickets: VecDeque<u64>,
    notify: Arc<Notify>,
}

/// A place in a key's queue; dropping it leaves the queue.
#[derive(Debug)]
pub struct Ticket {
    queues: Arc<WaitQueues>,
    key: Box<[u8]>,
    id: u64,
    /// Woken whenever someone leaves this key's queue.
    pub notify: Arc<Notify>,
}

impl WaitQueues {
    /// True if someone is waiting on `key`.
    pub fn has_waiters(&self, key: &[u8]) -> bool {
        self.lock().contains_key(key)
    }

    /// Callers blocked: waiting on any key, or holding for their turn.
    pub fn waiting(&self) -> usize {
        let queued: usize = self.lock().values().map(|q| q.tickets.len()).sum();
        queued + self.held.load(Ordering::Relaxed)
    }

    /// Counts a reply held for its turn until the [`Hold`] is dropped.
    pub fn hold(self: &Arc<Self>) -> Hold {
        self.held.fetch_add(1, Ordering::Relaxed);
        Hold {
            queues: self.clone(),
        }
    }

    /// Joins the back of `key`'s queue.
    pub fn join(self: &Arc<Self>, key: &[u8]) -> Ticket {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut map = self.lock();
        let queue = map.entry(Box::from(key)).or_insert_with(|| KeyQueue {
            tickets: VecDeque::new(),
            notify: Arc::new(Notify::new()),
        });
        queue.tickets.push_back(id);
        Ticket {
            queues: self.clone(),
            key: Box::from(key),
            id,
            notify: queue.notify.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Box<[u8]>, KeyQueue>> {
        self.by_key.lock()
    }
}

/// A reply held for its turn; dropping it (sent, or its connection closed)
/// stops counting it.
#[derive(Debug)]
pub struct Hold {
    queues: Arc<WaitQueues>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.queues.held.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Ticket {
    /// True if this ticket is first in its queue.
    pub fn is_head(&self) -> bool {
        let map = self.queues.lock();
        map.get(&self.key)
            .and_then(|q| q.tickets.front())
            .is_some_and(|&id| id == self.id)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut map = self.queues.lock();
        if let Some(queue) = map.get_mut(&self.key) {
            queue.tickets.retain(|&id| id != self.id);
            queue.notify.notify_waiters();
            if queue.tickets.is_empty() {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_is_first_come_first_served() {
        let queues = Arc::new(WaitQueues::default());
        let a = queues.join(b"k");
        let b = queues.join(b"k");
        let other = queues.join(b"other");
        assert!(a.is_head() && !b.is_head() && other.is_head());
        assert_eq!(queues.waiting(), 3);
        drop(a);
        assert!(b.is_head());
        drop(b);
        assert!(!queues.has_waiters(b"k"));
        assert!(queues.has_waiters(b"other"));
    }

    #[test]
    fn held_replies_count_as_blocked_until_dropped() {
        let queues = Arc::new(WaitQueues::default());
        let ticket = queues.join(b"k");
        let a = queues.hold();
        let b = queues.hold();
        assert_eq!(queues.waiting(), 3);
        drop(a);
        drop(ticket);
        assert_eq!(queues.waiting(), 1);
        drop(b);
        assert_eq!(queues.waiting(), 0);
        assert_eq!(
            Arc::strong_count(&queues),
            1,
            "nothing keeps the queues alive"
        );
    }

    #[test]
    fn leaving_from_the_middle_keeps_order() {
        let queues = Arc::new(WaitQueues::default());
        let a = queues.join(b"k");
        let b = queues.join(b"k");
        let c = queues.join(b"k");
        drop(b);
        drop(a);
        assert!(c.is_head());
    }
}
