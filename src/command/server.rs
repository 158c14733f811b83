//! Server commands: `PING`, `ECHO`, `INFO`, `CONFIG GET`, `DBSIZE`,
//! `FLUSHALL`, `TIME`, `SAVE`, `BGSAVE`, `LASTSAVE`, `SHUTDOWN`.

use std::fmt::Write as _;

use super::args::is;
use super::table::{CommandSpec, Flags, command};
use super::{Ctx, Outcome};
use crate::error::CmdError;
use crate::limiter::Algorithm;
use crate::metrics::{self, Metrics};
use crate::reply::Reply;

/// `DBSIZE`: live limiter states.
pub fn dbsize(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    Ok(Reply::Int(ctx.engine().store.len() as i64).into())
}

/// `FLUSHALL [ASYNC|SYNC]`: drops every state, keeps policies.
pub fn flushall(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    match argv.get(1) {
        None => {}
        Some(mode) if argv.len() == 2 && (is(mode, "ASYNC") || is(mode, "SYNC")) => {}
        Some(_) => return Err(CmdError::Syntax),
    }
    ctx.engine().store.clear();
    Ok(Reply::OK.into())
}

/// `TIME`: seconds and microseconds, as bulk strings.
pub fn time(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let now = ctx.engine().clock.now();
    let secs = now / 1_000_000_000;
    let micros = (now % 1_000_000_000) / 1_000;
    Ok(Reply::Array(vec![
        Reply::text(&secs.to_string()),
        Reply::text(&micros.to_string()),
    ])
    .into())
}

/// `SAVE`: writes a snapshot and answers when it is on disk.
pub fn save(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    if ctx.shared.persistence.in_progress() {
        return Err(CmdError::Line(
            "ERR Background save already in progress".into(),
        ));
    }
    let shared = ctx.shared.clone();
    if !ctx.blocking {
        // Inside EXEC: write on this thread rather than hold the reply.
        return Ok(match crate::persistence::save_blocking(&shared) {
            Ok(()) => Reply::OK,
            Err(e) => Reply::Error(format!("ERR {e}")),
        }
        .into());
    }
    Ok(Outcome::Later(Box::pin(async move {
        match crate::persistence::save(shared).await {
            Ok(()) => Reply::OK,
            Err(e) => Reply::Error(format!("ERR {e}")),
        }
    })))
}

/// `BGSAVE [SCHEDULE]`: starts a snapshot in the background.
pub fn bgsave(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    match argv.get(1) {
        None => {}
        Some(w) if argv.len() == 2 && is(w, "SCHEDULE") => {}
        Some(_) => return Err(CmdError::Syntax),
    }
    let p = &ctx.shared.persistence;
    if p.in_progress() {
        if argv.len() == 2 {
            p.background_request.notify_one();
            return Ok(Reply::Simple("Background saving scheduled").into());
        }
        return Err(CmdError::Line(
            "ERR Background save already in progress".into(),
        ));
    }
    p.background_request.notify_one();
    Ok(Reply::Simple("Background saving started").into())
}

/// `LASTSAVE`: Unix time of the last good snapshot (start-up time before any).
pub fn lastsave(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    Ok(Reply::Int(ctx.shared.persistence.last_save() as i64).into())
}

/// `SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE]`: stops the server, writing a final
/// snapshot unless NOSAVE.
pub fn shutdown(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let (mut save, mut nosave) = (false, false);
    for word in &argv[1..] {
        if is(word, "SAVE") {
            save = true;
        } else if is(word, "NOSAVE") {
            nosave = true;
        } else if !(is(word, "NOW") || is(word, "FORCE")) {
            return Err(CmdError::Syntax);
        }
    }
    if save && nosave {
        return Err(CmdError::Syntax);
    }
    ctx.shared
        .persistence
        .save_on_shutdown
        .store(!nosave, std::sync::atomic::Ordering::Relaxed);
    Ok(Outcome::Shutdown)
}

const CONFIG_HELP: &[&str] = &[
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "HELP",
    "    Print this help.",
];

/// `CONFIG GET pattern [pattern ...]`.
pub fn config_get(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let pairs = ctx.shared.config.visible_settings();
    let fields = pairs
        .into_iter()
        .filter(|(name, _)| {
            argv[2..]
                .iter()
                .any(|p| crate::text::glob_match(p, name.as_bytes()))
        })
        .map(|(name, value)| (Reply::text(name), Reply::text(&value)))
        .collect();
    Ok(Reply::Map(fields).into())
}

/// `CONFIG HELP`.
pub fn config_help(_ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    Ok(Reply::help(CONFIG_HELP).into())
}

/// `INFO [section ...]`.
pub fn info(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let shared = ctx.shared;
    let wanted: Vec<String> = argv[1..]
        .iter()
        .map(|s| String::from_utf8_lossy(s).to_lowercase())
        .collect();
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| w == "all" || w == "default" || w == "everything");
    let show = |name: &str| all || wanted.iter().any(|w| w == name);
    let m = &shared.metrics;
    let mut out = String::new();
    if show("server") {
        let uptime = shared.started.elapsed().as_secs();
        let _ = write!(
            out,
            "# Server\r\nredis_version:{}\r\ntollgate_version:{}\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\n\r\n",
            crate::state::REDIS_VERSION,
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::process::id(),
            shared.port(),
            uptime,
            uptime / 86_400,
        );
    }
    if show("clients") {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\nblocked_clients:{}\r\nmaxclients:{}\r\n\r\n",
            shared.clients.count(),
            shared.waits.waiting(),
            shared.config.max_clients,
        );
    }
    if show("memory") {
        let m = crate::memory::now();
        let store = &shared.engine.store;
        let (maxmemory, policy) = store.maxmemory();
        let _ = write!(
            out,
            "# Memory\r\nused_memory:{}\r\nused_memory_rss:{}\r\nused_memory_dataset:{}\r\nmaxmemory:{}\r\nmaxmemory_policy:{}\r\nmem_fragmentation_ratio:{:.2}\r\nallocator_active:{}\r\nallocator_resident:{}\r\nmem_allocator:{}\r\nlimiter_states:{}\r\n\r\n",
            m.used,
            m.rss,
            store.used_memory(),
            maxmemory,
            policy.name(),
            m.fragmentation(),
            m.allocator_active,
            m.allocator_resident,
            m.allocator,
            store.len(),
        );
    }
    if show("persistence") {
        let st = shared.persistence.status(&shared.engine.store);
        let _ = write!(
            out,
            "# Persistence\r\nloading:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\nrdb_last_bgsave_time_sec:{}\r\nrdb_saves:{}\r\nrdb_last_error:{}\r\nsnapshot_failures:{}\r\nsnapshot_path:{}\r\naof_enabled:0\r\n\r\n",
            st.changes,
            u8::from(st.in_progress),
            st.last_save,
            if st.last_ok { "ok" } else { "err" },
            st.last_duration_ms / 1000,
            st.saves,
            st.last_error.as_deref().unwrap_or(""),
            st.failures,
            shared.persistence.path.display(),
        );
    }
    if show("stats") {
        let get = Metrics::get;
        let _ = write!(
            out,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\nprotocol_errors:{}\r\nacl_access_denied_auth:{}\r\nevicted_clients:{}\r\nevicted_keys:{}\r\nreservations_opened:{}\r\nreservations_settled:{}\r\nreservations_refunded:{}\r\n",
            get(&m.connections_received),
            m.commands(),
            get(&m.rejected_connections),
            get(&m.protocol_errors),
            get(&m.auth_failures),
            get(&shared.clients.evicted),
            shared.engine.store.evicted_keys(),
            get(&m.reservations_opened),
            get(&m.reservations_settled),
            get(&m.reservations_refunded),
        );
        let names = Algorithm::ALL.iter().map(|a| a.name()).chain(["policy"]);
        for (i, name) in names.enumerate() {
            let allowed = m.allowed(i);
            let denied = m.denied(i);
            let _ = write!(
                out,
                "checks_{name}:{}\r\nallowed_{name}:{allowed}\r\ndenied_{name}:{denied}\r\n",
                allowed + denied
            );
        }
        debug_assert_eq!(metrics::POLICY, Algorithm::ALL.len());
        out.push_str("\r\n");
    }
    if show("cluster") {
        let cluster = &shared.cluster;
        let enabled = u8::from(cluster.mode != crate::cluster::ClusterMode::Off);
        let _ = write!(
            out,
            "# Cluster\r\ncluster_enabled:{enabled}\r\ncluster_mode:{}\r\ncluster_slots_served:{}\r\ncluster_moved_replies:{}\r\ncluster_tryagain_replies:{}\r\n\r\n",
            cluster.mode.name(),
            cluster.slots_served(),
            Metrics::get(&m.cluster_moved),
            Metrics::get(&m.cluster_tryagain),
        );
    }
    if show("rls") {
        // Envoy's rate limit service: calls summed over the domains.
        let rls = &shared.rls;
        let counts = rls.counts.read();
        let calls: u64 = counts.iter().flat_map(|(_, a, _)| a.iter()).sum();
        let over: u64 = counts
            .iter()
            .map(|(_, a, _)| a[crate::rls::Answer::OverLimit as usize])
            .sum();
        let shadow: u64 = counts.iter().map(|(_, _, s)| s).sum();
        let _ = write!(
            out,
            "# Rls\r\nrls_enabled:{}\r\nrls_addr:{}\r\nrls_domains:{}\r\nrls_consume:{}\r\nrls_headers:{}\r\nrls_calls:{calls}\r\nrls_over_limit:{over}\r\nrls_shadow_over_limit:{shadow}\r\n\r\n",
            u8::from(shared.config.grpc_addr.is_some()),
            rls.addr().map(|a| a.to_string()).unwrap_or_default(),
            rls.domains().len(),
            rls.options.consume.name(),
            rls.options.headers.name(),
        );
    }
    if show("keyspace") {
        out.push_str("# Keyspace\r\n");
        let keys = shared.engine.store.len();
        if keys > 0 {
            let _ = write!(out, "db0:keys={keys},expires={keys},avg_ttl=0\r\n");
        }
        out.push_str("\r\n");
    }
    if out.ends_with("\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    Ok(Reply::Verbatim(out).into())
}

/// The family's rows of the command table.
pub(super) static ROWS: &[CommandSpec] = &[
    command! { "info", -1, [STALE], (0, 0, 0), "server", "1.0.0",
    "Returns information and statistics about the server.",
    info },
    command! { "config", -2, [ADMIN], (0, 0, 0), "server", "2.0.0",
    "A container for server configuration commands.",
    container, subcommands = CONFIG_SUBCOMMANDS },
    command! { "dbsize", 1, [READONLY, FAST], (0, 0, 0), "server", "1.0.0",
    "Returns the number of live limiter states.",
    dbsize },
    command! { "flushall", -1, [WRITE, DANGEROUS], (0, 0, 0), "server", "1.0.0",
    "Drops all limiter states; keeps policies.",
    flushall },
    command! { "time", 1, [FAST], (0, 0, 0), "server", "2.6.0",
    "Returns the server time.",
    time },
    command! { "save", 1, [ADMIN], (0, 0, 0), "server", "1.0.0",
    "Writes a snapshot to disk synchronously.",
    save },
    command! { "bgsave", -1, [ADMIN], (0, 0, 0), "server", "1.0.0",
    "Writes a snapshot to disk in the background.",
    bgsave },
    command! { "lastsave", 1, [FAST], (0, 0, 0), "server", "1.0.0",
    "Returns the Unix time of the last good snapshot.",
    lastsave },
    command! { "shutdown", -1, [ADMIN], (0, 0, 0), "server", "1.0.0",
    "Stops the server.",
    shutdown },
];

/// `CONFIG`'s subcommands.
static CONFIG_SUBCOMMANDS: &[CommandSpec] = &[
    command! { "config|get", -3, [ADMIN, STALE], (0, 0, 0), "server", "2.0.0",
    "Returns the effective values of configuration parameters.",
    config_get },
    command! { "config|help", 2, [STALE], (0, 0, 0), "server", "5.0.0",
    "Returns helpful text about the different subcommands.",
    config_help },
];

#[cfg(test)]
mod tests {
    use crate::text::{glob_match, glob_match_exact};

    #[test]
    fn globs() {
        assert!(glob_match_exact(b"limits:*", b"limits:42"));
        assert!(!glob_match_exact(b"limits:*", b"LIMITS:42"));
        assert!(glob_match(b"*", b"port"));
        assert!(glob_match(b"PO*", b"port"));
        assert!(glob_match(b"p?rt", b"port"));
        assert!(glob_match(b"*max*", b"maxclients"));
        assert!(!glob_match(b"bind", b"port"));
        assert!(!glob_match(b"p?", b"port"));
    }
}
