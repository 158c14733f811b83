//! The registry of connected clients, behind `CLIENT LIST`, `CLIENT KILL`,
//! `INFO clients` and the budget all clients' unanswered input shares
//! (`maxmemory_clients`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::Notify;

/// What the server knows of one connection.
#[derive(Debug)]
pub struct ClientMeta {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub created: Instant,
    pub name: Mutex<Option<String>>,
    pub lib_name: Mutex<Option<String>>,
    pub lib_ver: Mutex<Option<String>>,
    pub resp: AtomicU8,
    /// The user it runs as (`default` until `AUTH`).
    pub user: Mutex<String>,
    /// When it last sent a request (ns on the server's clock).
    pub last_active_ns: AtomicU64,
    /// Bytes of input it has sent and not yet had answered.
    qbuf: AtomicUsize,
    /// `CLIENT NO-EVICT on`: never closed for the shared input budget.
    pub no_evict: AtomicBool,
    killed: AtomicBool,
    kill_signal: Notify,
}

impl ClientMeta {
    /// The line `CLIENT LIST` and `CLIENT INFO` show, in Redis's field
    /// format, at `now_ns` on the server's clock.
    pub fn info_line(&self, now_ns: u64) -> String {
        let get = |m: &Mutex<Option<String>>| m.lock().clone().unwrap_or_default();
        let idle =
            now_ns.saturating_sub(self.last_active_ns.load(Ordering::Relaxed)) / 1_000_000_000;
        let flags = if self.no_evict.load(Ordering::Relaxed) {
            "e"
        } else {
            "N"
        };
        format!(
            "id={} addr={} laddr={} fd=-1 name={} age={} idle={idle} flags={flags} db=0 sub=0 psub=0 ssub=0 multi=-1 watch=0 qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=NULL user={} redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            get(&self.name),
            self.created.elapsed().as_secs(),
            self.qbuf(),
            self.user.lock(),
            self.resp.load(Ordering::Relaxed),
            get(&self.lib_name),
            get(&self.lib_ver),
        )
    }

    /// Bytes of unanswered input.
    pub fn qbuf(&self) -> usize {
        self.qbuf.load(Ordering::Relaxed)
    }

    /// Asks the connection to close (`CLIENT KILL`, the input budget). Its
    /// pending replies are dropped, which gives back what they hold.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Relaxed);
        // A stored permit: the connection wakes even if it is not waiting yet.
        self.kill_signal.notify_one();
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Relaxed)
    }

    /// Completes once the connection has been asked to close.
    pub async fn killed(&self) {
        if !self.is_killed() {
            self.kill_signal.notified().await;
        }
    }
}

/// What `CLIENT KILL` closes: every client matching all the given fields.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KillFilter {
    pub id: Option<u64>,
    pub addr: Option<String>,
    pub laddr: Option<String>,
    pub user: Option<String>,
    /// The calling connection, left alone (`SKIPME yes`).
    pub skip: Option<u64>,
}

impl KillFilter {
    fn matches(&self, c: &ClientMeta) -> bool {
        self.id.is_none_or(|id| id == c.id)
            && self.addr.as_ref().is_none_or(|a| *a == c.addr)
            && self.laddr.as_ref().is_none_or(|a| *a == c.laddr)
            && self.user.as_ref().is_none_or(|u| *u == *c.user.lock())
            && self.skip != Some(c.id)
    }
}

/// Every connected client, by id.
#[derive(Debug, Default)]
pub struct Clients {
    next_id: AtomicU64,
    by_id: Mutex<BTreeMap<u64, Arc<ClientMeta>>>,
    /// Unanswered input of all clients together.
    qbuf_total: AtomicUsize,
    /// Clients closed because all input together passed the budget.
    pub evicted: AtomicU64,
}

impl Clients {
    /// Registers a new connection; it is removed when the guard drops.
    pub fn register(self: &Arc<Self>, addr: String, laddr: String) -> ClientGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let meta = Arc::new(ClientMeta {
            id,
            addr,
            laddr,
            created: Instant::now(),
            name: Mutex::new(None),
            lib_name: Mutex::new(None),
            lib_ver: Mutex::new(None),
            resp: AtomicU8::new(2),
            user: Mutex::new("default".into()),
            last_active_ns: AtomicU64::new(0),
            qbuf: AtomicUsize::new(0),
            no_evict: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            kill_signal: Notify::new(),
        });
        self.lock().insert(id, meta.clone());
        ClientGuard {
            clients: self.clone(),
            meta,
        }
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }

    pub fn all(&self) -> Vec<Arc<ClientMeta>> {
        self.lock().values().cloned().collect()
    }

    /// Closes every client `filter` matches; how many.
    pub fn kill(&self, filter: &KillFilter) -> usize {
        let matching: Vec<Arc<ClientMeta>> = self
            .lock()
            .values()
            .filter(|c| filter.matches(c) && !c.is_killed())
            .cloned()
            .collect();
        matching.iter().for_each(|c| c.kill());
        matching.len()
    }

    /// Unanswered input of all clients together.
    pub fn qbuf_total(&self) -> usize {
        self.qbuf_total.load(Ordering::Relaxed)
    }

    /// Records that `client` now holds `bytes` of unanswered input. If all
    /// clients together then hold more than `budget` (0: no budget), the
    /// one holding the most (never a no-evict one) is closed, and returned.
    pub fn set_qbuf(
        &self,
        client: &ClientMeta,
        bytes: usize,
        budget: u64,
    ) -> Option<Arc<ClientMeta>> {
        // A client being closed no longer counts (its share was given back).
        let bytes = if client.is_killed() { 0 } else { bytes };
        let before = client.qbuf.swap(bytes, Ordering::Relaxed);
        if bytes == before {
            return None;
        }
        let total = if bytes > before {
            self.qbuf_total.fetch_add(bytes - before, Ordering::Relaxed) + (bytes - before)
        } else {
            self.qbuf_total.fetch_sub(before - bytes, Ordering::Relaxed) - (before - bytes)
        };
        if budget == 0 || (total as u64) <= budget {
            return None;
        }
        // Chosen and killed under the lock: two clients passing the budget
        // at once evict two clients, never the same one twice.
        let by_id = self.lock();
        let biggest = by_id
            .values()
            .filter(|c| !c.no_evict.load(Ordering::Relaxed) && !c.is_killed() && c.qbuf() > 0)
            .max_by_key(|c| c.qbuf())
            .cloned()?;
        // Counted before the kill, so that whoever sees the client closed
        // also sees the eviction counted.
        self.evicted.fetch_add(1, Ordering::Relaxed);
        biggest.kill();
        drop(by_id);
        // Its input is dropped with it: give its share back now.
        let held = biggest.qbuf.swap(0, Ordering::Relaxed);
        self.qbuf_total.fetch_sub(held, Ordering::Relaxed);
        Some(biggest)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<ClientMeta>>> {
        self.by_id.lock()
    }
}

/// Keeps a client registered while the connection lives.
#[derive(Debug)]
pub struct ClientGuard {
    clients: Arc<Clients>,
    pub meta: Arc<ClientMeta>,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.clients.lock().remove(&self.meta.id);
        let held = self.meta.qbuf.swap(0, Ordering::Relaxed);
        self.clients.qbuf_total.fetch_sub(held, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_biggest_input_is_evicted_first_but_never_a_no_evict_client() {
        let clients = Arc::new(Clients::default());
        let a = clients.register("a:1".into(), "l".into());
        let b = clients.register("b:1".into(), "l".into());
        let c = clients.register("c:1".into(), "l".into());
        assert!(clients.set_qbuf(&a.meta, 400, 1000).is_none());
        assert!(clients.set_qbuf(&b.meta, 500, 1000).is_none());
        assert_eq!(clients.qbuf_total(), 900);
        c.meta.no_evict.store(true, Ordering::Relaxed);
        // c passes the budget, but b holds the most evictable input.
        let evicted = clients.set_qbuf(&c.meta, 600, 1000).expect("over budget");
        assert_eq!(evicted.id, b.meta.id);
        assert!(b.meta.is_killed() && !a.meta.is_killed() && !c.meta.is_killed());
        assert_eq!(clients.evicted.load(Ordering::Relaxed), 1);
        // The evicted client's share is given back at once.
        assert_eq!(clients.qbuf_total(), 1000);
        assert!(clients.set_qbuf(&b.meta, 700, 1000).is_none());
        drop(b);
        assert_eq!(clients.qbuf_total(), 1000);
        assert!(clients.set_qbuf(&a.meta, 0, 1000).is_none());
        assert_eq!(clients.qbuf_total(), 600);
        // No budget: nothing is ever evicted.
        assert!(clients.set_qbuf(&a.meta, 1 << 40, 0).is_none());
    }

    #[test]
    fn kill_filters_must_all_match() {
        let clients = Arc::new(Clients::default());
        let a = clients.register("1.1.1.1:1".into(), "l:1".into());
        let b = clients.register("2.2.2.2:2".into(), "l:1".into());
        let by_addr = KillFilter {
            addr: Some("2.2.2.2:2".into()),
            ..KillFilter::default()
        };
        assert_eq!(clients.kill(&by_addr), 1);
        assert!(b.meta.is_killed() && !a.meta.is_killed());
        // Already closing: not counted again.
        assert_eq!(clients.kill(&by_addr), 0);
        let everyone_but_a = KillFilter {
            laddr: Some("l:1".into()),
            user: Some("default".into()),
            skip: Some(a.meta.id),
            ..KillFilter::default()
        };
        assert_eq!(clients.kill(&everyone_but_a), 0);
        let nobody = KillFilter {
            id: Some(a.meta.id),
            user: Some("someone".into()),
            ..KillFilter::default()
        };
        assert_eq!(clients.kill(&nobody), 0);
        assert!(!a.meta.is_killed());
    }
}
