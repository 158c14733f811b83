//! Moving slots with their states between managed nodes: the source's
//! side (a thread per migration the pushed map names) and the target's
//! `TOLLGATE.CLUSTER IMPORT`.
//!
//! The source first makes sure the target has the map (`IMPORT <id>
//! BEGIN`, retried for up to 10 s while it keeps serving the slots). Then
//! it stops serving them (`TRYAGAIN`) once the checks running on them end,
//! copies their states into one snapshot-format buffer, sends it in parts
//! of 512 KiB (`IMPORT <id> PART <bytes>`, then `END`), and from the
//! target's `OK` on sends their clients there (`MOVED`) and drops its own
//! copies. The pause lasts one walk of the store and the transfer. If
//! anything fails, the source serves the slots again and the status says
//! why.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Ctx, Outcome};
use crate::cluster::peer::Peer;
use crate::cluster::{Migration, Side, Stage, keyslot};
use crate::error::CmdError;
use crate::reply::Reply;
use crate::state::Shared;

/// Bytes of states per `IMPORT ... PART` request (under the default
/// `proto-max-bulk-len` of 1 MiB).
const PART: usize = 512 * 1024;

/// How long the source waits for the target to know the migration.
const TARGET_WAIT: Duration = Duration::from_secs(10);

/// How long the source waits for the checks running on the slots.
const RUNNING_WAIT: Duration = Duration::from_secs(5);

/// Why a move out ended early, and whether the target may have the slots.
enum Ended {
    /// Before the final states were sent: the source serves them again.
    Before(String),
    /// While or after they were sent: nobody serves them until a new map.
    After(String),
}

/// Starts the source's side of `migration` on a thread of its own.
pub fn start(shared: &Arc<Shared>, migration: Migration) {
    let shared = shared.clone();
    std::thread::Builder::new()
        .name("tollgate-migrate".into())
        .spawn(move || {
            let target = migration.node_id.clone();
            let stage = match move_out(&shared, &migration) {
                Ok(states) => {
                    tracing::info!(
                        "cluster: slots {} moved to {target} ({states} states)",
                        migration.ranges_text()
                    );
                    shared
                        .cluster
                        .set_stage(Side::Out, &target, Stage::Finished, states);
                    return;
                }
                Err(e) => e,
            };
            let ranges = migration.ranges_text();
            let stage = match stage {
                Ended::Before(why) => {
                    tracing::error!("cluster: slots {ranges} not moved to {target}: {why}; still served here");
                    Stage::Failed(why)
                }
                Ended::After(why) => {
                    tracing::error!(
                        "cluster: slots {ranges} may or may not have moved to {target}: {why}; refused here (TRYAGAIN) until a new map says who owns them"
                    );
                    Stage::Uncertain(why)
                }
            };
            shared.cluster.set_stage(Side::Out, &target, stage, 0);
        })
        .map_or_else(
            |e| tracing::error!("cluster: cannot start a migration thread: {e}"),
            |_| (),
        );
}

/// The source's side: answers how many states moved.
fn move_out(shared: &Shared, m: &Migration) -> Result<usize, Ended> {
    let cluster = &shared.cluster;
    let me = cluster.id().to_string();
    let addr = format!("{}:{}", m.ip, m.port);
    let password = shared.config.requirepass.as_deref();
    let deadline = Instant::now() + TARGET_WAIT;
    let mut peer = loop {
        let tried = Peer::connect(&addr, password).and_then(|mut p| {
            p.ask(&[b"TOLLGATE.CLUSTER", b"IMPORT", me.as_bytes(), b"BEGIN"])?;
            Ok(p)
        });
        match tried {
            Ok(p) => break p,
            Err(e) if Instant::now() > deadline => {
                return Err(Ended::Before(format!("{addr}: {e}")));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    if !cluster.begin_final_copy(&m.node_id, RUNNING_WAIT) {
        return Err(Ended::Before(
            "checks on the slots did not end within 5 s".into(),
        ));
    }
    let paused = Instant::now();
    let in_move = |map_key: &[u8]| {
        crate::store::decode_key(map_key).is_some_and(|(_, key)| m.covers(keyslot(key)))
    };
    let store = &shared.engine.store;
    let now = shared.engine.clock.now();
    let states = crate::snapshot::encode_keeping(store, &[], now, &in_move);
    for part in states.chunks(PART) {
        peer.ask(&[b"TOLLGATE.CLUSTER", b"IMPORT", me.as_bytes(), b"PART", part])
            .map_err(|e| Ended::Before(format!("{addr}: {e}")))?;
    }
    // Past this request the target may serve the slots, reply or not.
    let moved = peer
        .ask(&[b"TOLLGATE.CLUSTER", b"IMPORT", me.as_bytes(), b"END"])
        .map_err(|e| Ended::After(format!("{addr}: {e}")))?;
    let moved: usize = moved.parse().unwrap_or(0);
    // From here the target serves the slots: the copies here are stale.
    cluster.set_stage(Side::Out, &m.node_id, Stage::Finished, moved);
    let pause = paused.elapsed();
    store.retain(|map_key| !in_move(map_key));
    tracing::info!(
        "cluster: slots {} paused for {} ms while handed over ({} bytes of states)",
        m.ranges_text(),
        pause.as_millis(),
        states.len()
    );
    Ok(moved)
}

/// `TOLLGATE.CLUSTER IMPORT source-id BEGIN|PART bytes|END`: the target's
/// side. `END` applies what the parts hold (every state in the migration's
/// slots, or nothing) and answers how many states were taken.
pub fn import(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let cluster = &ctx.shared.cluster;
    let source = String::from_utf8_lossy(argv[2]).into_owned();
    let Some(migration) = cluster.incoming_from(&source) else {
        return Err(CmdError::invalid(format!(
            "no migration from {} into this node in its map",
            crate::text::printable(argv[2])
        )));
    };
    let step = argv[3].to_ascii_uppercase();
    let mut imports = cluster.imports.lock();
    match (step.as_slice(), argv.len()) {
        (b"BEGIN", 4) => {
            imports.insert(source, Vec::new());
            Ok(Reply::OK.into())
        }
        (b"PART", 5) => {
            let Some(buffer) = imports.get_mut(&source) else {
                return Err(CmdError::invalid("IMPORT PART before BEGIN"));
            };
            buffer.extend_from_slice(argv[4]);
            if buffer.len() > ctx.shared.config.max_query_buffer_bytes.max(1 << 30) {
                imports.remove(&source);
                return Err(CmdError::invalid("IMPORT too large"));
            }
            Ok(Reply::OK.into())
        }
        (b"END", 4) => {
            let Some(buffer) = imports.remove(&source) else {
                return Err(CmdError::invalid("IMPORT END before BEGIN"));
            };
            drop(imports);
            let contents = crate::snapshot::decode(&buffer, std::path::Path::new("import"))
                .map_err(|e| CmdError::invalid(e.to_string()))?;
            let outside = contents.entries.iter().any(|(k, _)| {
                crate::store::decode_key(k).is_none_or(|(_, key)| !migration.covers(keyslot(key)))
            });
            if outside {
                return Err(CmdError::invalid(
                    "IMPORT holds a state outside the migration's slots",
                ));
            }
            let engine = ctx.engine();
            let now = engine.now();
            let mut taken = 0;
            for (key, entry) in contents.entries {
                if entry.fresh_at > now {
                    engine.store.insert_raw(key, entry);
                    taken += 1;
                }
            }
            cluster.set_stage(Side::In, &source, Stage::Finished, taken);
            tracing::info!(
                "cluster: slots {} taken over from {source} ({taken} states)",
                migration.ranges_text()
            );
            Ok(Reply::Int(taken as i64).into())
        }
        _ => Err(CmdError::Syntax),
    }
}

/// `TOLLGATE.CLUSTER MIGRATION-STATUS`: a line per move of the current map.
pub fn status(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let lines = ctx.shared.cluster.move_lines();
    Ok(Reply::Array(lines.iter().map(|l| Reply::text(l)).collect()).into())
}
