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
    pub migrations: Vec<Migration>,
}

/// Slots this shard's master moves, with their states, to another master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Migration {
    pub slot_ranges: Vec<SlotRange>,
    pub node_id: String,
    pub ip: String,
    pub port: u16,
}

impl Migration {
    pub fn covers(&self, slot: u16) -> bool {
        self.slot_ranges
            .iter()
            .any(|r| (r.start..=r.end).contains(&slot))
    }

    /// The target as a node.
    pub fn target(&self) -> Node {
        Node {
            id: self.node_id.clone(),
            ip: self.ip.clone(),
            port: self.port,
        }
    }

    /// The ranges as `0-100,200-300`.
    pub fn ranges_text(&self) -> String {
        let parts: Vec<String> = self
            .slot_ranges
            .iter()
            .map(|r| format!("{}-{}", r.start, r.end))
            .collect();
        parts.join(",")
    }
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
        for (i, shard) in shards.iter().enumerate() {
            for m in &shard.migrations {
                let target = shards.iter().position(|s| s.master.id == m.node_id);
                if target.is_none() || target == Some(i) {
                    return Err(format!(
                        "migration target {} is not another shard's master",
                        m.node_id
                    ));
                }
                for r in &m.slot_ranges {
                    let owned = r.start <= r.end
                        && usize::from(r.end) < SLOTS
                        && (r.start..=r.end).all(|s| usize::from(owner[usize::from(s)]) == i);
                    if !owned {
                        return Err(format!(
                            "migration of slots {}-{} from a shard that does not own them",
                            r.start, r.end
                        ));
                    }
                }
            }
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

    /// The migrations out of this node's shard.
    pub fn outgoing(&self) -> &[Migration] {
        self.mine.map_or(&[], |i| &self.shards[i].migrations)
    }

    /// The migrations into node `my_id`, each with its source master.
    pub fn incoming<'a>(
        &'a self,
        my_id: &'a str,
    ) -> impl Iterator<Item = (&'a Node, &'a Migration)> {
        self.shards.iter().flat_map(move |s| {
            s.migrations
                .iter()
                .filter(move |m| m.node_id == my_id)
                .map(move |m| (&s.master, m))
        })
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
