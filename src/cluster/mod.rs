//! Cluster mode: keys hash to Redis Cluster's 16384 slots, and a node
//! serves the slots a pushed map gives it (`managed`), or all of them
//! (`emulated`). No gossip, no consensus: the map comes from outside, the
//! way Dragonfly's managed cluster mode takes it, and clients route with the
//! Redis Cluster protocol they already speak (`CLUSTER SLOTS`, `MOVED`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

pub mod assign;
pub mod map;
pub mod moves;
pub mod peer;

pub use map::{Migration, Node, Owner, SLOTS, SlotMap};
use moves::{Move, Routing, Running};
pub use moves::{Side, Stage};

/// How this node takes part in a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterMode {
    /// Not at all: `CLUSTER ...` is refused, as in Redis.
    #[default]
    Off,
    /// One node that owns every slot.
    Emulated,
    /// The slots a pushed map gives it.
    Managed,
}

impl ClusterMode {
    pub fn name(self) -> &'static str {
        match self {
            ClusterMode::Off => "off",
            ClusterMode::Emulated => "emulated",
            ClusterMode::Managed => "managed",
        }
    }

    pub fn parse(text: &str) -> Result<ClusterMode, String> {
        [
            ClusterMode::Off,
            ClusterMode::Emulated,
            ClusterMode::Managed,
        ]
        .into_iter()
        .find(|m| m.name().eq_ignore_ascii_case(text))
        .ok_or_else(|| format!("cluster_mode must be off, emulated or managed, not '{text}'"))
    }
}

/// The slot of `key`, as Redis Cluster computes it (CRC16 XMODEM mod
/// 16384, of the `{hash tag}` when there is a non-empty one).
pub fn keyslot(key: &[u8]) -> u16 {
    redis_protocol::redis_keyslot(key)
}

/// The file beside the snapshot that keeps the node id and the map.
pub const FILE_NAME: &str = "nodes.json";

/// What `nodes.json` holds.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    id: String,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

/// Target: what a move has sent so far.
#[derive(Debug, Default)]
pub struct Import {
    /// The states, in the snapshot format.
    pub states: Vec<u8>,
    /// Keys whose states here are to be dropped before the states are taken.
    pub forget: Vec<Vec<u8>>,
}

/// Why a keyed command is not served here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// `MOVED <slot> <ip>:<port>`.
    Moved(String),
    /// No map yet (`managed` mode).
    Down,
    /// The slot is being handed over this moment: `TRYAGAIN`.
    TryAgain,
}

impl Redirect {
    /// The error line a client is answered, as Redis words it.
    pub fn line(&self) -> String {
        match self {
            Redirect::Moved(to) => format!("MOVED {to}"),
            Redirect::Down => "CLUSTERDOWN Hash slot not served".into(),
            Redirect::TryAgain => "TRYAGAIN Slot is being moved, try again".into(),
        }
    }

    /// Where a `MOVED` points (`ip:port`).
    pub fn address(&self) -> Option<&str> {
        match self {
            Redirect::Moved(to) => to.split_once(' ').map(|(_, addr)| addr),
            _ => None,
        }
    }
}

/// This node's cluster state.
#[derive(Debug)]
pub struct Cluster {
    pub mode: ClusterMode,
    id: String,
    map: RwLock<Option<Arc<SlotMap>>>,
    file: PathBuf,
    /// The migrations of the current map, as this node sees them.
    moves: RwLock<Vec<Move>>,
    /// Whether `moves` has any (read on every routed command).
    moving: AtomicBool,
    /// Checks running on slots moving out.
    running: AtomicUsize,
    /// Target: what a move being received has sent so far, by source id.
    pub imports: parking_lot::Mutex<std::collections::HashMap<String, Import>>,
    /// Source: the keys checked on slots being copied out.
    changed: parking_lot::Mutex<std::collections::HashSet<Vec<u8>>>,
}

impl Cluster {
    /// The state for `mode`, with the id and map kept in `data_dir` (made
    /// and saved at the first start). Off: nothing is read or written.
    pub fn open(mode: ClusterMode, data_dir: &Path) -> Result<Cluster, String> {
        let file = data_dir.join(FILE_NAME);
        let mut cluster = Cluster {
            mode,
            id: String::new(),
            map: RwLock::new(None),
            file,
            moves: RwLock::new(Vec::new()),
            moving: AtomicBool::new(false),
            running: AtomicUsize::new(0),
            imports: Default::default(),
            changed: Default::default(),
        };
        if mode == ClusterMode::Off {
            return Ok(cluster);
        }
        let shown = || {
            // Named in full, as the working directory may not be obvious.
            let full = std::env::current_dir().map(|d| d.join(&cluster.file));
            full.unwrap_or_else(|_| cluster.file.clone())
                .display()
                .to_string()
        };
        match std::fs::read_to_string(&cluster.file) {
            Ok(text) => {
                let saved: Saved =
                    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", shown()))?;
                if !map::valid_id(&saved.id) {
                    return Err(format!(
                        "{}: node id '{}' is not 40 hex digits",
                        shown(),
                        saved.id
                    ));
                }
                cluster.id = saved.id;
                if let (ClusterMode::Managed, Some(config)) = (mode, saved.config) {
                    let shards =
                        serde_json::from_value(config).map_err(|e| format!("{}: {e}", shown()))?;
                    let map = SlotMap::new(shards, &cluster.id)
                        .map_err(|e| format!("{}: {e}", shown()))?;
                    *cluster.map.get_mut() = Some(Arc::new(map));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                cluster.id = new_id(data_dir);
                cluster
                    .save(None)
                    .map_err(|e| format!("{}: {e}", shown()))?;
            }
            Err(e) => return Err(format!("{}: {e}", shown())),
        }
        Ok(cluster)
    }

    /// Cluster mode off.
    pub fn off() -> Cluster {
        Cluster {
            mode: ClusterMode::Off,
            id: String::new(),
            map: RwLock::new(None),
            file: PathBuf::new(),
            moves: RwLock::new(Vec::new()),
            moving: AtomicBool::new(false),
            running: AtomicUsize::new(0),
            imports: Default::default(),
            changed: Default::default(),
        }
    }

    /// The node id (empty when the mode is off).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The pushed map (`managed` mode), if any.
    pub fn map(&self) -> Option<Arc<SlotMap>> {
        self.map.read().clone()
    }

    /// Whether keyed commands must be routed here (only `managed` mode
    /// sends clients elsewhere).
    #[inline]
    pub fn routes(&self) -> bool {
        self.mode == ClusterMode::Managed
    }

    /// Whether `key` is served here; else where it is. A check on a slot
    /// that is moving out is counted until the returned guard drops.
    pub fn route(&self, key: &[u8]) -> Result<Option<Running<'_>>, Redirect> {
        let map = self.map.read();
        let Some(map) = map.as_ref() else {
            return Err(Redirect::Down);
        };
        let slot = keyslot(key);
        let moved = |node: &Node| Redirect::Moved(format!("{slot} {}:{}", node.ip, node.port));
        if self.moving.load(Ordering::Acquire) {
            match moves::routing(&self.moves.read(), slot, &self.running) {
                Routing::Map => {}
                Routing::CountedChanged => {
                    self.changed.lock().insert(key.to_vec());
                    return Ok(Some(Running(&self.running)));
                }
                Routing::Pause => return Err(Redirect::TryAgain),
                Routing::Elsewhere(node) => return Err(moved(&node)),
                Routing::Here => return Ok(None),
            }
        }
        match map.owner(slot) {
            Owner::Me => Ok(None),
            Owner::Other(node) => Err(moved(node)),
        }
    }

    /// Slots this node serves: all in `emulated` mode, its map's (finished
    /// moves counted) in `managed` mode.
    pub fn slots_served(&self) -> usize {
        match self.mode {
            ClusterMode::Off => 0,
            ClusterMode::Emulated => SLOTS,
            ClusterMode::Managed => (0..SLOTS as u16).filter(|&s| self.serves(s)).count(),
        }
    }

    /// Whether this node serves `slot` now (`managed` mode): as its map
    /// says, unless a finished move took it away or brought it here.
    fn serves(&self, slot: u16) -> bool {
        let Some(map) = self.map() else {
            return false;
        };
        let moved = self.moving.load(Ordering::Acquire)
            && self
                .moves
                .read()
                .iter()
                .any(|m| m.migration.covers(slot) && m.stage == Stage::Finished);
        (map.owner(slot) == Owner::Me) != moved
    }

    /// The moves of the current map, as `MIGRATION-STATUS` lines.
    pub fn move_lines(&self) -> Vec<String> {
        self.moves.read().iter().map(Move::line).collect()
    }

    /// Source: stops serving the slots moving to `target` once the checks
    /// running on them end (at most `wait`); false if they did not.
    pub fn begin_final_copy(&self, target: &str, wait: std::time::Duration) -> bool {
        self.set_stage(Side::Out, target, Stage::Finishing, 0);
        let deadline = std::time::Instant::now() + wait;
        while self.running.load(Ordering::Acquire) > 0 {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_micros(20));
        }
        true
    }

    /// Source: the keys checked on slots moving out since the map that
    /// started the move (taken once the slots are paused: all of them).
    pub fn take_changed(&self) -> Vec<Vec<u8>> {
        self.changed.lock().drain().collect()
    }

    /// Records where the move to or from `peer` stands.
    pub fn set_stage(&self, side: Side, peer: &str, stage: Stage, states: usize) {
        let mut moves = self.moves.write();
        if let Some(m) = moves
            .iter_mut()
            .find(|m| m.side == side && m.peer.id == peer)
        {
            m.stage = stage;
            m.states = states;
        }
    }

    /// Target: the migration from `source` into this node, if the map has one.
    pub fn incoming_from(&self, source: &str) -> Option<Migration> {
        let moves = self.moves.read();
        let m = moves
            .iter()
            .find(|m| m.side == Side::In && m.peer.id == source)?;
        Some(m.migration.clone())
    }

    /// The slots whose states this node keeps in its snapshots (in
    /// `managed` mode with a map, those it serves, a finished move counted
    /// before the next map says so), looked up once for a whole save or
    /// load; `None`: all of them.
    pub fn kept_slots(&self) -> Option<Vec<bool>> {
        if !self.routes() || self.map.read().is_none() {
            return None;
        }
        Some((0..SLOTS as u16).map(|s| self.serves(s)).collect())
    }

    /// Checks and applies a whole map, then saves it; on error nothing
    /// changes. Answers the migrations out of this node, which the caller
    /// carries out (a map without them ends any earlier ones: it is the
    /// truth from now on).
    pub fn configure(&self, json: &str) -> Result<Vec<Migration>, String> {
        let map = SlotMap::parse(json, &self.id)?;
        let mut current = self.map.write();
        self.save(Some(map.to_json()))
            .map_err(|e| format!("cannot save {}: {e}", self.file.display()))?;
        let outgoing = map.outgoing().to_vec();
        let mut moves: Vec<Move> = outgoing
            .iter()
            .map(|m| Move {
                side: Side::Out,
                peer: m.target(),
                migration: m.clone(),
                stage: Stage::Waiting,
                states: 0,
            })
            .collect();
        moves.extend(map.incoming(&self.id).map(|(source, m)| Move {
            side: Side::In,
            peer: source.clone(),
            migration: m.clone(),
            stage: Stage::Waiting,
            states: 0,
        }));
        let mut current_moves = self.moves.write();
        self.moving.store(!moves.is_empty(), Ordering::Release);
        *current_moves = moves;
        // A new map starts its moves afresh: keys noted for older ones go.
        self.changed.lock().clear();
        *current = Some(Arc::new(map));
        Ok(outgoing)
    }

    /// Writes `nodes.json` atomically (temporary file, rename).
    fn save(&self, config: Option<serde_json::Value>) -> std::io::Result<()> {
        let saved = Saved {
            id: self.id.clone(),
            config,
        };
        let text = serde_json::to_string_pretty(&saved)?;
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.file.with_extension("json.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &self.file)
    }
}

/// A new node id: 40 hex digits of a SHA-256 over the time, the process
/// and the data directory (unique enough among a cluster's nodes).
fn new_id(data_dir: &Path) -> String {
    use sha2::{Digest, Sha256};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = Sha256::new();
    h.update(now.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(data_dir.as_os_str().as_encoded_bytes());
    let digest = h.finalize();
    digest.iter().take(20).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
