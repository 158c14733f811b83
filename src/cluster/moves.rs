//! Slots on the move: what a node knows of the migrations its map names,
//! and where that changes the routing of their slots.
//!
//! The source keeps serving a moving slot while it waits for the target and
//! while it copies the slot's states there (noting the keys checked
//! meanwhile); then it stops (`TRYAGAIN`) until the checks already running
//! on the slot end, sends the noted keys' states again, and from then on
//! sends its clients there (`MOVED`). The target serves the slots once it holds their
//! states. The next pushed map (without the migration) makes that the map.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::map::{Migration, Node};

/// Where a move stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Source: waiting for the target, still serving the slots (the keys
    /// checked are noted, to be sent again at the end).
    Waiting,
    /// Source: copying the slots' states while still serving them (the
    /// keys checked are noted, to be sent again at the end).
    Copying,
    /// Source: copying the final states; checks on the slots are refused
    /// with `TRYAGAIN` for that long.
    Finishing,
    /// Done: the source sends clients to the target, the target serves.
    Finished,
    /// Given up before the target could have taken the slots (the source
    /// serves them again): why.
    Failed(String),
    /// Given up when the last states got no answer, so the target may
    /// serve the slots: the source keeps refusing them (`TRYAGAIN`) until
    /// a new map says who owns them. Why.
    Uncertain(String),
}

/// Which side of a move this node is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Out,
    In,
}

/// One move as this node sees it.
#[derive(Debug, Clone)]
pub struct Move {
    pub side: Side,
    /// The other node: the target of an outgoing move, the source of an
    /// incoming one.
    pub peer: Node,
    pub migration: Migration,
    pub stage: Stage,
    /// States copied.
    pub states: usize,
}

impl Move {
    /// `MIGRATION-STATUS`'s line.
    pub fn line(&self) -> String {
        let side = match self.side {
            Side::Out => "out",
            Side::In => "in",
        };
        let stage = match &self.stage {
            Stage::Waiting => "WAITING".to_string(),
            Stage::Copying => "COPYING".to_string(),
            Stage::Finishing => "FINISHING".to_string(),
            Stage::Finished => "FINISHED".to_string(),
            Stage::Failed(why) => format!("FAILED {why}"),
            Stage::Uncertain(why) => format!("UNCERTAIN {why}"),
        };
        format!(
            "{side} {} {} {stage} {} states",
            self.peer.id,
            self.migration.ranges_text(),
            self.states
        )
    }
}

/// How a slot on the move is routed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    /// As the map says.
    Map,
    /// Served here, counted as running until its guard drops, and the key
    /// noted (to be sent again at the end of the move).
    CountedChanged,
    /// Refused for a moment: `TRYAGAIN`.
    Pause,
    /// Served elsewhere: `MOVED` there.
    Elsewhere(Node),
    /// Served here (imported).
    Here,
}

/// How `slot` is routed now, given the moves of the current map (called on
/// their read lock, so a stage cannot change while a check counts itself
/// in `running`).
pub fn routing(moves: &[Move], slot: u16, running: &AtomicUsize) -> Routing {
    let Some(m) = moves.iter().find(|m| m.migration.covers(slot)) else {
        return Routing::Map;
    };
    match (m.side, &m.stage) {
        // Noted from the start: a check routed before the copy begins may
        // change its state after the copy passed it.
        (Side::Out, Stage::Waiting | Stage::Copying) => {
            running.fetch_add(1, Ordering::AcqRel);
            Routing::CountedChanged
        }
        (Side::Out, Stage::Finishing | Stage::Uncertain(_)) => Routing::Pause,
        (Side::Out, Stage::Finished) => Routing::Elsewhere(m.peer.clone()),
        (Side::In, Stage::Finished) => Routing::Here,
        _ => Routing::Map,
    }
}

/// A check running on a slot that is moving out; counted until dropped.
#[derive(Debug)]
pub struct Running<'a>(pub(super) &'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
