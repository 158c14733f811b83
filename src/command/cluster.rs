//! Cluster commands as Redis 7 answers them (`CLUSTER SLOTS`, `SHARDS`,
//! `NODES`, `INFO`, `MYID`, `KEYSLOT`, `COUNTKEYSINSLOT`; `READONLY`,
//! `READWRITE`, `ASKING`), and the map an operator pushes
//! (`TOLLGATE.CLUSTER CONFIG`).

use std::fmt::Write as _;
use std::sync::Arc;

use super::migrate::{import, status as migration_status};
use super::table::{CommandSpec, Flags, command};
use super::{Ctx, Outcome};
use crate::cluster::{ClusterMode, Node, SLOTS, SlotMap, keyslot};
use crate::error::CmdError;
use crate::reply::Reply;

/// The map clients are shown: the pushed one (`managed`), or this node
/// owning every slot (`emulated`, at the address the client reached).
fn shown_map(ctx: &Ctx<'_>) -> Result<Option<Arc<SlotMap>>, CmdError> {
    let cluster = &ctx.shared.cluster;
    match cluster.mode {
        ClusterMode::Off => Err(disabled()),
        ClusterMode::Managed => Ok(cluster.map()),
        ClusterMode::Emulated => {
            let ip = match &ctx.shared.config.cluster_announce_ip {
                Some(ip) => ip.clone(),
                None => local_ip(&ctx.session.client.laddr),
            };
            let me = Node {
                id: cluster.id().to_string(),
                ip,
                port: ctx.shared.port(),
            };
            Ok(Some(Arc::new(SlotMap::single(me))))
        }
    }
}

/// The IP of a `ip:port` (or `[v6]:port`) local address.
fn local_ip(laddr: &str) -> String {
    laddr
        .parse::<std::net::SocketAddr>()
        .map_or_else(|_| "127.0.0.1".into(), |a| a.ip().to_string())
}

fn disabled() -> CmdError {
    CmdError::invalid("This instance has cluster support disabled")
}

fn node_reply(node: &Node) -> Reply {
    Reply::Array(vec![
        Reply::text(&node.ip),
        Reply::Int(i64::from(node.port)),
        Reply::text(&node.id),
    ])
}

/// `CLUSTER SLOTS`.
fn slots(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let Some(map) = shown_map(ctx)? else {
        return Ok(Reply::Array(Vec::new()).into());
    };
    let ranges = map.ranges().into_iter().map(|(start, end, shard)| {
        let shard = &map.shards[shard];
        let mut entry = vec![Reply::Int(i64::from(start)), Reply::Int(i64::from(end))];
        entry.push(node_reply(&shard.master));
        entry.extend(shard.replicas.iter().map(node_reply));
        Reply::Array(entry)
    });
    Ok(Reply::Array(ranges.collect()).into())
}

fn shard_node(node: &Node, role: &'static str) -> Reply {
    Reply::map([
        ("id", Reply::text(&node.id)),
        ("port", Reply::Int(i64::from(node.port))),
        ("ip", Reply::text(&node.ip)),
        ("endpoint", Reply::text(&node.ip)),
        ("role", Reply::text(role)),
        ("replication-offset", Reply::Int(0)),
        ("health", Reply::text("online")),
    ])
}

/// `CLUSTER SHARDS`.
fn shards(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let Some(map) = shown_map(ctx)? else {
        return Ok(Reply::Array(Vec::new()).into());
    };
    let ranges = map.ranges();
    let shards = map.shards.iter().enumerate().map(|(i, shard)| {
        let slots = ranges
            .iter()
            .filter(|r| r.2 == i)
            .flat_map(|&(start, end, _)| {
                [Reply::Int(i64::from(start)), Reply::Int(i64::from(end))]
            });
        let nodes = std::iter::once(shard_node(&shard.master, "master"))
            .chain(shard.replicas.iter().map(|r| shard_node(r, "replica")));
        Reply::map([
            ("slots", Reply::Array(slots.collect())),
            ("nodes", Reply::Array(nodes.collect())),
        ])
    });
    Ok(Reply::Array(shards.collect()).into())
}

/// `CLUSTER NODES`: Redis's text format, a line per node.
fn nodes(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let map = shown_map(ctx)?;
    let my_id = ctx.shared.cluster.id();
    let mut out = String::new();
    let Some(map) = map else {
        // No map yet: this node alone, serving nothing.
        let port = ctx.shared.port();
        let ip = local_ip(&ctx.session.client.laddr);
        let _ = writeln!(
            out,
            "{my_id} {ip}:{port}@{} myself,master - 0 0 0 connected",
            u32::from(port) + 10000
        );
        return Ok(Reply::Verbatim(out).into());
    };
    let ranges = map.ranges();
    for (i, shard) in map.shards.iter().enumerate() {
        let slots: Vec<String> = ranges
            .iter()
            .filter(|r| r.2 == i)
            .map(|&(s, e, _)| {
                if s == e {
                    s.to_string()
                } else {
                    format!("{s}-{e}")
                }
            })
            .collect();
        let line = |node: &Node, role: &str, master: &str, slots: &[String]| {
            let me = if node.id == my_id { "myself," } else { "" };
            let mut line = format!(
                "{} {}:{}@{} {me}{role} {master} 0 0 {} connected",
                node.id,
                node.ip,
                node.port,
                u32::from(node.port) + 10000,
                i + 1
            );
            for s in slots {
                line.push(' ');
                line.push_str(s);
            }
            line.push('\n');
            line
        };
        out.push_str(&line(&shard.master, "master", "-", &slots));
        for r in &shard.replicas {
            out.push_str(&line(r, "slave", &shard.master.id, &[]));
        }
    }
    Ok(Reply::Verbatim(out).into())
}

/// `CLUSTER INFO`.
fn info(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let map = shown_map(ctx)?;
    let (assigned, nodes, size) = map.as_ref().map_or((0, 1, 0), |m| {
        let nodes = m.shards.iter().map(|s| 1 + s.replicas.len()).sum();
        (SLOTS, nodes, m.shards.len())
    });
    let state = if assigned == SLOTS { "ok" } else { "fail" };
    let text = format!(
        "cluster_state:{state}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{assigned}\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:{nodes}\r\ncluster_size:{size}\r\ncluster_current_epoch:{size}\r\ncluster_my_epoch:{}\r\n",
        usize::from(size > 0)
    );
    Ok(Reply::Verbatim(text).into())
}

/// `CLUSTER MYID` and `TOLLGATE.CLUSTER MYID`.
fn myid(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    if ctx.shared.cluster.mode == ClusterMode::Off {
        return Err(disabled());
    }
    Ok(Reply::text(ctx.shared.cluster.id()).into())
}

/// `CLUSTER KEYSLOT key`.
fn keyslot_cmd(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    shown_map(ctx)?;
    Ok(Reply::Int(i64::from(keyslot(argv[2]))).into())
}

/// `CLUSTER COUNTKEYSINSLOT slot`: a walk over the store.
fn countkeysinslot(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    shown_map(ctx)?;
    // Redis's two answers: not a number, then out of range.
    let slot = crate::text::ascii_i64(argv[2]).ok_or(CmdError::NotInteger)?;
    let slot = u16::try_from(slot)
        .ok()
        .filter(|&s| usize::from(s) < SLOTS)
        .ok_or_else(|| CmdError::invalid("Invalid slot"))?;
    let mut count = 0i64;
    ctx.engine().store.for_each(|map_key, _, _| {
        if let Some((_, key)) = crate::store::decode_key(map_key)
            && keyslot(key) == slot
        {
            count += 1;
        }
    });
    Ok(Reply::Int(count).into())
}

/// `READONLY`, `READWRITE`, `ASKING`: `OK` in cluster mode.
fn cluster_ok(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    shown_map(ctx)?;
    Ok(Reply::OK.into())
}

/// `TOLLGATE.CLUSTER CONFIG json`.
fn configure(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let cluster = &ctx.shared.cluster;
    if cluster.mode != ClusterMode::Managed {
        return Err(CmdError::invalid("cluster_mode is not managed"));
    }
    let json = std::str::from_utf8(argv[2])
        .map_err(|_| CmdError::invalid("invalid cluster config: not UTF-8"))?;
    let outgoing = cluster
        .configure(json)
        .map_err(|e| CmdError::invalid(format!("invalid cluster config: {e}")))?;
    tracing::info!("cluster: slot map applied ({} bytes)", json.len());
    for migration in outgoing {
        super::migrate::start(ctx.shared, migration);
    }
    Ok(Reply::OK.into())
}

const CLUSTER_HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "COUNTKEYSINSLOT <slot>",
    "    Return the number of keys in <slot>.",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "MYID",
    "    Return the node id.",
    "RLS <request> [DRYRUN]",
    "    Decide rate limit service descriptors forwarded by another node (an encoded",
    "    envoy.service.ratelimit.v3.RateLimitRequest; answers the encoded response).",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port@bus-port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
    "SHARDS",
    "    Return information about slot range mappings and the nodes serving them.",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, master and replicas IP addresses, ports and ids",
    "HELP",
    "    Print this help.",
];

const TOLLGATE_CLUSTER_HELP: &[&str] = &[
    "TOLLGATE.CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONFIG <json>",
    "    Apply the whole slot map (managed mode): shards with slot_ranges, master, replicas,",
    "    migrations.",
    "IMPORT <source-id> BEGIN|PART <bytes>|SYNC|FORGET <keys>|END",
    "    Take the states of slots moving here (sent by the source node).",
    "MIGRATION-STATUS",
    "    Return a line per slot migration of the current map.",
    "MYID",
    "    Return the node id.",
    "RLS <request> [DRYRUN]",
    "    Decide rate limit service descriptors forwarded by another node (an encoded",
    "    envoy.service.ratelimit.v3.RateLimitRequest; answers the encoded response).",
    "HELP",
    "    Print this help.",
];

fn cluster_help(_ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    Ok(Reply::help(CLUSTER_HELP).into())
}

fn tollgate_cluster_help(_ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    Ok(Reply::help(TOLLGATE_CLUSTER_HELP).into())
}

/// The family's rows of the command table.
pub(super) static ROWS: &[CommandSpec] = &[
    command! { "cluster", -2, [], (0, 0, 0), "cluster", "3.0.0",
    "A container for Redis Cluster commands.",
    container, subcommands = CLUSTER_SUBCOMMANDS },
    command! { "readonly", 1, [FAST], (0, 0, 0), "cluster", "3.0.0",
    "Enables read-only queries for a connection to a replica (OK: no replicas).",
    cluster_ok },
    command! { "readwrite", 1, [FAST], (0, 0, 0), "cluster", "3.0.0",
    "Enables read-write queries for a connection (OK).",
    cluster_ok },
    command! { "asking", 1, [FAST], (0, 0, 0), "cluster", "3.0.0",
    "Signals that a cluster client is following an -ASK redirect (OK).",
    cluster_ok },
    command! { "tollgate.cluster", -2, [], (0, 0, 0), "cluster", "0.1.0",
    "A container for tollgate's managed cluster commands.",
    container, subcommands = TOLLGATE_CLUSTER_SUBCOMMANDS },
];

static CLUSTER_SUBCOMMANDS: &[CommandSpec] = &[
    command! { "cluster|countkeysinslot", 3, [STALE], (0, 0, 0), "cluster", "3.0.0",
    "Returns the number of keys in a hash slot.",
    countkeysinslot },
    command! { "cluster|help", 2, [STALE], (0, 0, 0), "cluster", "5.0.0",
    "Returns helpful text about the different subcommands.",
    cluster_help },
    command! { "cluster|info", 2, [STALE], (0, 0, 0), "cluster", "3.0.0",
    "Returns information about the state of a node.",
    info },
    command! { "cluster|keyslot", 3, [STALE], (0, 0, 0), "cluster", "3.0.0",
    "Returns the hash slot for a key.",
    keyslot_cmd },
    command! { "cluster|myid", 2, [STALE], (0, 0, 0), "cluster", "3.0.0",
    "Returns the ID of a node.",
    myid },
    command! { "cluster|nodes", 2, [STALE], (0, 0, 0), "cluster", "3.0.0",
    "Returns the cluster configuration for a node.",
    nodes },
    command! { "cluster|shards", 2, [STALE], (0, 0, 0), "cluster", "7.0.0",
    "Returns the mapping of cluster slots to shards.",
    shards },
    command! { "cluster|slots", 2, [STALE], (0, 0, 0), "cluster", "3.0.0",
    "Returns the mapping of cluster slots to nodes.",
    slots },
];

static TOLLGATE_CLUSTER_SUBCOMMANDS: &[CommandSpec] = &[
    command! { "tollgate.cluster|config", 3, [ADMIN, DANGEROUS], (0, 0, 0), "cluster", "0.1.0",
    "Applies the whole slot map (managed mode).",
    configure },
    command! { "tollgate.cluster|help", 2, [STALE], (0, 0, 0), "cluster", "0.1.0",
    "Returns helpful text about the different subcommands.",
    tollgate_cluster_help },
    command! { "tollgate.cluster|import", -4, [ADMIN, DANGEROUS], (0, 0, 0), "cluster", "0.1.0",
    "Takes the states of slots moving here from another node (BEGIN, PART, SYNC, FORGET, END).",
    import, max = 5 },
    command! { "tollgate.cluster|migration-status", 2, [STALE], (0, 0, 0), "cluster", "0.1.0",
    "Returns a line per slot migration of the current map.",
    migration_status },
    command! { "tollgate.cluster|myid", 2, [STALE], (0, 0, 0), "cluster", "0.1.0",
    "Returns the ID of this node.",
    myid },
    command! { "tollgate.cluster|rls", -3, [WRITE, ADMIN], (0, 0, 0), "cluster", "0.1.0",
    "Decides rate limit service descriptors forwarded by another node (managed mode).",
    rls, max = 4 },
];

/// `TOLLGATE.CLUSTER RLS <RateLimitRequest> [DRYRUN]`: the descriptors of
/// this node's slots, forwarded by the node Envoy called; answers the
/// encoded RateLimitResponse. DRYRUN changes nothing.
fn rls(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    use prost::Message;
    if ctx.shared.cluster.mode != ClusterMode::Managed {
        return Err(CmdError::invalid("cluster_mode is not managed"));
    }
    let request = envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest::decode(argv[2])
        .map_err(|e| CmdError::invalid(format!("invalid rate limit request: {e}")))?;
    let commit = match argv.get(3) {
        None => true,
        Some(word) if word.eq_ignore_ascii_case(b"DRYRUN") => false,
        Some(_) => return Err(CmdError::Syntax),
    };
    let response = crate::rls::forward::decide_here(ctx.shared, &request, commit)
        .map_err(|f| CmdError::Line(f.line()))?;
    Ok(Reply::Bulk(response.encode_to_vec().into()).into())
}
