//! Moving slots with their states between managed nodes: the source's
//! side (a thread per migration the pushed map names) and the target's
//! `TOLLGATE.CLUSTER IMPORT`.
//!
//! The source first makes sure the target has the map (`IMPORT <id>
//! BEGIN`, retried for up to 10 s while it keeps serving the slots). It
//! copies the slots' states while still serving them, and sends them in
//! parts of 512 KiB (`PART`, then `SYNC`); every key checked on the slots
//! since the map came is noted meanwhile. Then it stops serving the slots (`TRYAGAIN`) once the checks
//! running on them end, sends the noted keys' states again (`FORGET` the
//! noted keys, their states as they are now, `END`), and from the target's
//! answer on sends their clients there (`MOVED`) and drops its own copies.
//! The pause lasts as long as sending what changed during the copy. If
//! anything fails before `END`, the source serves the slots again and the
//! status says why.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Ctx, Outcome};
use crate::cluster::peer::{Failed, Peer};
use crate::cluster::{Import, Migration, Side, Stage, keyslot};
use crate::error::CmdError;
use crate::reply::Reply;
use crate::state::Shared;
use crate::store::{Scope, Store};

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

/// Sends `states` (snapshot format) in parts after `IMPORT <me> BEGIN`.
fn send_parts(peer: &mut Peer, me: &[u8], states: &[u8]) -> Result<(), Failed> {
    peer.ask(&[b"TOLLGATE.CLUSTER", b"IMPORT", me, b"BEGIN"])?;
    for part in states.chunks(PART) {
        peer.ask(&[b"TOLLGATE.CLUSTER", b"IMPORT", me, b"PART", part])?;
    }
    Ok(())
}

/// The source's side: answers how many states moved.
fn move_out(shared: &Shared, m: &Migration) -> Result<usize, Ended> {
    let cluster = &shared.cluster;
    let me = cluster.id().to_string();
    let me = me.as_bytes();
    let addr = format!("{}:{}", m.ip, m.port);
    let before = |e: Failed| Ended::Before(format!("{addr}: {e}"));
    let password = shared.config.requirepass.as_deref();
    let deadline = Instant::now() + TARGET_WAIT;
    let mut peer = loop {
        let tried = Peer::connect(&addr, password).and_then(|mut p| {
            p.ask(&[b"TOLLGATE.CLUSTER", b"IMPORT", me, b"BEGIN"])?;
            Ok(p)
        });
        match tried {
            Ok(p) => break p,
            Err(e) if Instant::now() > deadline => return Err(before(e)),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let in_move = |map_key: &[u8]| {
        crate::store::decode_key(map_key).is_some_and(|(_, key)| m.covers(keyslot(key)))
    };
    let store = &shared.engine.store;
    // 1. Copy while still serving (the keys checked since the map came are
    //    noted, so a change the copy missed is sent again at the end).
    cluster.set_stage(Side::Out, &m.node_id, Stage::Copying, 0);
    let now = shared.engine.clock.now();
    let copy = crate::snapshot::encode_keeping(store, &[], now, &in_move);
    send_parts(&mut peer, me, &copy).map_err(before)?;
    peer.ask(&[b"TOLLGATE.CLUSTER", b"IMPORT", me, b"SYNC"])
        .map_err(before)?;
    // 2. Pause the slots, then send again what changed since the copy.
    if !cluster.begin_final_copy(&m.node_id, RUNNING_WAIT) {
        return Err(Ended::Before(
            "checks on the slots did not end within 5 s".into(),
        ));
    }
    let paused = Instant::now();
    let changed = cluster.take_changed();
    let last = Store::new();
    let policies = shared.engine.policies.names();
    // A key's states, and its open reservations, which move with it.
    let scopes = [Scope::Inline, Scope::Reservations]
        .into_iter()
        .chain(policies.iter().map(|p| Scope::Policy(p)));
    let scopes: Vec<Scope<'_>> = scopes.collect();
    let mut map_key = Vec::new();
    for key in &changed {
        for scope in &scopes {
            map_key.clear();
            crate::store::encode_key(&mut map_key, *scope, key);
            if let Some(entry) = store.export(&map_key) {
                last.insert_raw(map_key.as_slice().into(), entry);
            }
        }
    }
    let now = shared.engine.clock.now();
    let states = crate::snapshot::encode(&last, &[], now);
    send_parts(&mut peer, me, &states).map_err(before)?;
    let mut forget = Vec::new();
    for key in &changed {
        if forget.len() + key.len() + 4 > PART {
            peer.ask(&[b"TOLLGATE.CLUSTER", b"IMPORT", me, b"FORGET", &forget])
                .map_err(before)?;
            forget.clear();
        }
        forget.extend_from_slice(&(key.len() as u32).to_le_bytes());
        forget.extend_from_slice(key);
    }
    peer.ask(&[b"TOLLGATE.CLUSTER", b"IMPORT", me, b"FORGET", &forget])
        .map_err(before)?;
    // Once this request is sent the target may serve the slots, unless it
    // refuses it (then it took nothing): with no answer, nobody may.
    let taken = peer
        .ask(&[b"TOLLGATE.CLUSTER", b"IMPORT", me, b"END"])
        .map_err(|e| match e {
            Failed::Refused(e) => Ended::Before(format!("{addr}: {e}")),
            Failed::Lost(e) => Ended::After(format!("{addr}: {e}")),
        })?;
    let taken: usize = taken.parse().unwrap_or(0);
    // From here the target serves the slots: the copies here are stale.
    cluster.set_stage(Side::Out, &m.node_id, Stage::Finished, taken);
    let pause = paused.elapsed();
    store.retain(|map_key| !in_move(map_key));
    tracing::info!(
        "cluster: slots {} paused for {} ms while handed over ({} keys checked during the copy of {} bytes of states)",
        m.ranges_text(),
        pause.as_millis(),
        changed.len(),
        copy.len()
    );
    Ok(taken)
}

/// States as a snapshot holds them: map key and state.
type States = Vec<(Box<[u8]>, crate::store::Entry)>;

/// The states an import holds, refused whole if any lies outside the
/// migration's slots.
fn decode_import(states: &[u8], migration: &Migration) -> Result<States, CmdError> {
    let contents = crate::snapshot::decode(states, std::path::Path::new("import"))
        .map_err(|e| CmdError::invalid(e.to_string()))?;
    let outside = contents.entries.iter().any(|(k, _)| {
        crate::store::decode_key(k).is_none_or(|(_, key)| !migration.covers(keyslot(key)))
    });
    if outside {
        return Err(CmdError::invalid(
            "IMPORT holds a state outside the migration's slots",
        ));
    }
    Ok(contents.entries)
}

/// `TOLLGATE.CLUSTER IMPORT source-id BEGIN | PART bytes | SYNC | FORGET
/// keys | END`: the target's side. `SYNC` takes what the parts hold (the
/// source still serves the slots); `FORGET` names keys whose states here
/// go before `END`, which takes the last states and from then on serves
/// the slots, answering how many states it took.
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
    if step.as_slice() == b"BEGIN" && argv.len() == 4 {
        imports.insert(source, Import::default());
        return Ok(Reply::OK.into());
    }
    let Some(import) = imports.get_mut(&source) else {
        return Err(CmdError::invalid(format!(
            "IMPORT {} before BEGIN",
            String::from_utf8_lossy(&step)
        )));
    };
    match (step.as_slice(), argv.len()) {
        (b"PART", 5) => {
            import.states.extend_from_slice(argv[4]);
            Ok(Reply::OK.into())
        }
        (b"FORGET", 5) => {
            let mut rest = argv[4];
            while let Some((len, tail)) = rest.split_first_chunk::<4>() {
                let len = u32::from_le_bytes(*len) as usize;
                let key = tail.get(..len).ok_or(CmdError::Syntax)?;
                import.forget.push(key.to_vec());
                rest = &tail[len..];
            }
            Ok(Reply::OK.into())
        }
        (b"SYNC" | b"END", 4) => {
            let import = imports.remove(&source).unwrap_or_default();
            drop(imports);
            let entries = decode_import(&import.states, &migration)?;
            let engine = ctx.engine();
            let now = engine.now();
            for key in &import.forget {
                engine.store.reset(Scope::Inline, key, now);
                engine.store.reset(Scope::Reservations, key, now);
                for name in engine.policies.names() {
                    engine.store.reset(Scope::Policy(&name), key, now);
                }
            }
            let mut taken = 0;
            for (key, entry) in entries {
                if entry.fresh_at > now {
                    engine.store.insert_raw(key, entry);
                    taken += 1;
                }
            }
            if step.as_slice() == b"END" {
                cluster.set_stage(Side::In, &source, Stage::Finished, taken);
                tracing::info!(
                    "cluster: slots {} taken over from {source} ({taken} states in the last part)",
                    migration.ranges_text()
                );
            }
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
