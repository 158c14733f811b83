//! The registry of connected clients, behind `CLIENT LIST` and `INFO clients`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};
use std::time::Instant;

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
}

impl ClientMeta {
    /// The line `CLIENT LIST` and `CLIENT INFO` show, in Redis's field format.
    pub fn info_line(&self) -> String {
        let get = |m: &Mutex<Option<String>>| m.lock().clone().unwrap_or_default();
        format!(
            "id={} addr={} laddr={} fd=-1 name={} age={} idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 watch=0 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=NULL user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            get(&self.name),
            self.created.elapsed().as_secs(),
            self.resp.load(Ordering::Relaxed),
            get(&self.lib_name),
            get(&self.lib_ver),
        )
    }
}

/// Every connected client, by id.
#[derive(Debug, Default)]
pub struct Clients {
    next_id: AtomicU64,
    by_id: Mutex<BTreeMap<u64, Arc<ClientMeta>>>,
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
    }
}
