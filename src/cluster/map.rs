//! The slot map an operator pushes (`TOLLGATE.CLUSTER CONFIG`), in
//! Dragonfly's JSON shape: checked whole before it is used.

use serde::{Deserialize, Serialize};

/// Slots in a Redis Cluster.
pub const SLOTS: usize = 16384;

/// A node as the map names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub id: String,
    pub ip: String,
    pub port: u16,
}

/// Slots `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
}

/// One shard: its slots, the master that serves them, its replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    pub slot_ranges: Vec<SlotRange>,
    pub master: Node,
    #[serde(default)]
    pub replicas: Vec<Node>,
    #[serde(default)]
    pub migrations: Vec<serde_json::Value>,
}

/// A whole, valid map: every slot owned by exactly one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMap {
    pub shards: Vec<Shard>,
    /// The shard of each slot.
    owner: Vec<u16>,
    /// The shard this node is the master of, if any.
    mine: Option<usize>,
}

/// Where a slot is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'a> {
    Me,
    Other(&'a Node),
}

impl SlotMap {
    /// Parses and checks a map for the node `my_id`.
    pub fn parse(json: &str, my_id: &str) -> Result<SlotMap, String> {
        let shards: Vec<Shard> = serde_json::from_str(json).map_err(|e| e.to_string())?;
        SlotMap::new(shards, my_id)
    }

    /// Checks `shards` for the node `my_id`: full coverage, no overlap, ids
    /// well formed and distinct, this node present, no migrations.
    pub fn new(shards: Vec<Shard>, my_id: &str) -> Result<SlotMap, String> {
        const NONE: u16 = u16::MAX;
        let mut owner = vec![NONE; SLOTS];
        let mut ids = std::collections::HashSet::new();
        for (i, shard) in shards.iter().enumerate() {
            if !shard.migrations.is_empty() {
                return Err("migrations are not supported yet".into());
            }
            for node in std::iter::once(&shard.master).chain(&shard.replicas) {
                if !valid_id(&node.id) {
                    return Err(format!("node id '{}' is not 40 hex digits", node.id));
                }
                if !ids.insert(node.id.as_str()) {
                    return Err(format!("node id {} appears twice", node.id));
                }
            }
            for r in &shard.slot_ranges {
                if r.start > r.end || usize::from(r.end) >= SLOTS {
                    return Err(format!(
                        "slot range {}-{} is not within 0-16383 in order",
                        r.start, r.end
                    ));
                }
                for slot in r.start..=r.end {
                    if owner[usize::from(slot)] != NONE {
                        return Err(format!("slot {slot} is in two ranges"));
                    }
                    owner[usize::from(slot)] = i as u16;
                }
            }
        }
        if let Some(slot) = owner.iter().position(|&o| o == NONE) {
            return Err(format!("slot {slot} is in no range"));
        }
        if !ids.contains(my_id) {
            return Err(format!("this node ({my_id}) is not in the map"));
        }
        let mine = shards.iter().position(|s| s.master.id == my_id);
        Ok(SlotMap {
            shards,
            owner,
            mine,
        })
    }

    /// The map of a single node that owns every slot (`emulated` mode).
    pub fn single(me: Node) -> SlotMap {
        SlotMap {
            shards: vec![Shard {
                slot_ranges: vec![SlotRange {
                    start: 0,
                    end: (SLOTS - 1) as u16,
                }],
                master: me,
                replicas: Vec::new(),
                migrations: Vec::new(),
            }],
            owner: vec![0; SLOTS],
            mine: Some(0),
        }
    }

    /// Who serves `slot`.
    pub fn owner(&self, slot: u16) -> Owner<'_> {
        let shard = usize::from(self.owner[usize::from(slot) % SLOTS]);
        if Some(shard) == self.mine {
            Owner::Me
        } else {
            Owner::Other(&self.shards[shard].master)
        }
    }

    /// The ranges of each shard, merged and in slot order: (start, end,
    /// shard index), as `CLUSTER SLOTS` lists them.
    pub fn ranges(&self) -> Vec<(u16, u16, usize)> {
        let mut out: Vec<(u16, u16, usize)> = Vec::new();
        for (slot, &shard) in self.owner.iter().enumerate() {
            let (slot, shard) = (slot as u16, usize::from(shard));
            match out.last_mut() {
                Some(last) if last.2 == shard && last.1 + 1 == slot => last.1 = slot,
                _ => out.push((slot, slot, shard)),
            }
        }
        out
    }

    /// The JSON this map was given as (for `nodes.json`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.shards).unwrap_or(serde_json::Value::Null)
    }
}

/// A node id as Redis makes them: 40 lower-case hex digits.
pub fn valid_id(id: &str) -> bool {
    id.len() == 40 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
