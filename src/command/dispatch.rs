//! Running a request: look it up in the table, check arity and
//! authentication once, queue it inside a transaction, or run it (timing a
//! sample of checks for the latency histogram).

use bytes::Bytes;

use super::table::{CommandSpec, Flags};
use super::{Ctx, Outcome, lookup};
use crate::cluster::Redirect;
use crate::cluster::moves::Running;
use crate::error::{CmdError, printable};
use crate::reply::Reply;
use crate::state::Shared;

/// What one queued argument costs beyond its bytes (its `Bytes` handle
/// and the allocation's header).
const QUEUED_ARG_OVERHEAD: usize = 48;

/// The key a request will check, for the store to fetch into the cache
/// ahead ([`crate::store::Store::prefetch`]): a check's first key, by the
/// table. The connection asks this of every request of a pipelined batch
/// before running any, so their cache misses overlap. (A policy check's
/// states live under other keys: fetching its key costs a probe, no more.)
pub fn prefetch_key<'a>(
    spec: Option<&CommandSpec>,
    arg: impl FnOnce(usize) -> Option<&'a [u8]>,
) -> Option<&'a [u8]> {
    let spec = spec.filter(|s| s.flags.contains(Flags::CHECK))?;
    arg(usize::try_from(spec.first_key).ok().filter(|&i| i > 0)?)
}

/// Runs one command: looks it up, checks arity and authentication, queues it
/// inside a transaction, or runs it.
pub fn dispatch(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Outcome {
    dispatch_to(ctx, lookup(argv[0]), argv)
}

/// Runs one command already looked up (`spec`: the table's row for
/// `argv[0]`, if any), as a connection's batch does.
pub fn dispatch_to(ctx: &mut Ctx<'_>, spec: Option<&CommandSpec>, argv: &[&[u8]]) -> Outcome {
    match dispatch_inner(ctx, spec, argv) {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Reply(e.into()),
    }
}

/// Whether the session's user may run this command on its key (ACL).
/// Changes to the users are picked up here, at the next command.
#[inline]
fn permitted(ctx: &mut Ctx<'_>, spec: &CommandSpec, argv: &[&[u8]]) -> Result<(), CmdError> {
    let users = &ctx.shared.users;
    let generation = users.generation();
    if generation != ctx.session.acl_generation {
        let current = users.get(&ctx.session.user.name);
        // A deleted user's connection is being closed; until then it keeps
        // what it had.
        let user = current.unwrap_or_else(|| ctx.session.user.clone());
        ctx.session.set_user(user, generation);
    }
    if ctx.session.unrestricted || spec.flags.contains(Flags::NO_AUTH) {
        return Ok(());
    }
    let user = &ctx.session.user;
    if !user.may_run(spec.name) {
        return Err(CmdError::Line(format!(
            "NOPERM User {} has no permissions to run the '{}' command",
            user.name, spec.name
        )));
    }
    let key = usize::try_from(spec.first_key).ok().filter(|&i| i > 0);
    if let Some(key) = key.and_then(|i| argv.get(i))
        && !user.may_access(key)
    {
        return Err(CmdError::Line(
            "NOPERM No permissions to access a key".into(),
        ));
    }
    Ok(())
}

/// In `managed` cluster mode: whether the command's key is served here
/// (`MOVED` to its owner, `CLUSTERDOWN` before any map, `TRYAGAIN` while
/// its slot is handed over). A check on a slot moving out holds the
/// returned guard while it runs.
#[cold]
fn routed_here<'a>(
    shared: &'a Shared,
    spec: &CommandSpec,
    argv: &[&[u8]],
) -> Result<Option<Running<'a>>, CmdError> {
    let key = usize::try_from(spec.first_key).ok().filter(|&i| i > 0);
    let Some(key) = key.and_then(|i| argv.get(i)) else {
        return Ok(None);
    };
    let count = |c: &std::sync::atomic::AtomicU64| {
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    shared.cluster.route(key).map_err(|r| {
        match r {
            Redirect::Moved(_) => count(&shared.metrics.cluster_moved),
            Redirect::Down => {}
            Redirect::TryAgain => count(&shared.metrics.cluster_tryagain),
        }
        CmdError::Line(r.line())
    })
}

fn dispatch_inner(
    ctx: &mut Ctx<'_>,
    spec: Option<&CommandSpec>,
    argv: &[&[u8]],
) -> Result<Outcome, CmdError> {
    ctx.shared.metrics.command();
    let Some(mut spec) = spec else {
        ctx.session.multi_dirty |= ctx.session.multi.is_some();
        return Err(CmdError::unknown_command(argv[0], &argv[1..]));
    };
    // A container's subcommand is a row of its own (as Redis looks it up).
    if let (false, Some(sub)) = (spec.subcommands.is_empty(), argv.get(1)) {
        let Some(found) = spec.subcommand(sub) else {
            ctx.session.multi_dirty |= ctx.session.multi.is_some();
            return Err(CmdError::UnknownSubcommand {
                command: spec.name.to_ascii_uppercase(),
                sub: printable(sub),
            });
        };
        spec = found;
    }
    if !spec.arity_ok(argv.len()) {
        ctx.session.multi_dirty |= ctx.session.multi.is_some();
        return Err(CmdError::WrongArity(spec.name.to_string()));
    }
    if !ctx.session.authenticated && !spec.flags.contains(Flags::NO_AUTH) {
        ctx.session.multi_dirty |= ctx.session.multi.is_some();
        return Err(CmdError::NoAuth);
    }
    if let Err(e) = permitted(ctx, spec, argv) {
        ctx.session.multi_dirty |= ctx.session.multi.is_some();
        return Err(e);
    }
    let shared = ctx.shared;
    let _running = if shared.cluster.routes() {
        match routed_here(shared, spec, argv) {
            Ok(running) => running,
            Err(e) => {
                ctx.session.multi_dirty |= ctx.session.multi.is_some();
                return Err(e);
            }
        }
    } else {
        None
    };
    if let Some(queue) = ctx.session.multi.as_mut()
        && !spec.flags.contains(Flags::TX_CONTROL)
    {
        // Queued commands outlive the request buffer: keep copies, and
        // count them as the input they were (a Bytes and its data each).
        let held: usize = argv.iter().map(|a| a.len() + QUEUED_ARG_OVERHEAD).sum();
        ctx.session.multi_bytes += held;
        if ctx.session.multi_bytes > ctx.shared.config.max_query_buffer_bytes {
            let err = "ERR Protocol error: query buffer limit exceeded";
            return Ok(Outcome::Close(Reply::Error(err.into())));
        }
        queue.push(argv.iter().map(|a| Bytes::copy_from_slice(a)).collect());
        return Ok(Reply::Simple("QUEUED").into());
    }
    // One check in SAMPLE_EVERY is timed (two clock reads cost ~4% of a
    // check); only a timed one needs to know its algorithm.
    let is_check = spec.flags.contains(Flags::CHECK);
    let started = (is_check && crate::metrics::sample_this_one()).then(std::time::Instant::now);
    let Some(run) = spec.run else {
        // A container without a subcommand: its arity already refused it.
        return Err(CmdError::WrongArity(spec.name.to_string()));
    };
    let outcome = run(ctx, argv)?;
    if let (Some(started), Outcome::Reply(_)) = (started, &outcome)
        && let Some(series_of) = spec.series
    {
        let series = series_of(argv);
        ctx.shared.metrics.observe_check(series, started.elapsed());
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::command::Session;
    use crate::config::Config;
    use crate::state::Shared;

    /// Runs each request on one session; what each answered.
    fn run(shared: &Arc<Shared>, authenticated: bool, requests: &[&[&str]]) -> Vec<Reply> {
        let guard = shared.clients.register("a".into(), "b".into());
        let user = shared.users.default_user();
        let mut session = crate::command::Session::new(guard.meta.clone(), user);
        session.authenticated = authenticated;
        let session: &mut Session = &mut session;
        let batch_time = Cell::new(None);
        requests
            .iter()
            .map(|words| {
                let argv: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
                let mut ctx = Ctx {
                    shared,
                    session,
                    blocking: false,
                    batch_time: &batch_time,
                };
                match dispatch(&mut ctx, &argv) {
                    Outcome::Reply(r) | Outcome::Close(r) => r,
                    _ => panic!("{words:?} did not answer at once"),
                }
            })
            .collect()
    }

    fn error(reply: &Reply) -> &str {
        match reply {
            Reply::Error(e) => e,
            other => panic!("not an error: {other:?}"),
        }
    }

    fn shared() -> Arc<Shared> {
        Shared::new(Config::default(), Arc::new(ManualClock::new(1 << 60)))
    }

    #[test]
    fn subcommands_are_rows_with_their_own_arity() {
        let shared = shared();
        let replies = run(
            &shared,
            true,
            &[
                &["CONFIG", "nope"],
                &["client", "Nope", "x"],
                &["LIMIT.POLICY", "x"],
                &["COMMAND", "x"],
                &["CONFIG", "GET"],
                &["client", "id", "x"],
                &["CLIENT", "SETNAME"],
                &["LIMIT.POLICY", "GET"],
                &["COMMAND", "COUNT", "x"],
                &["CONFIG"],
                &["PING", "a", "b"],
            ],
        );
        let said: Vec<&str> = replies.iter().map(error).collect();
        assert_eq!(
            said,
            [
                "ERR unknown subcommand 'nope'. Try CONFIG HELP.",
                "ERR unknown subcommand 'Nope'. Try CLIENT HELP.",
                "ERR unknown subcommand 'x'. Try LIMIT.POLICY HELP.",
                "ERR unknown subcommand 'x'. Try COMMAND HELP.",
                "ERR wrong number of arguments for 'config|get' command",
                "ERR wrong number of arguments for 'client|id' command",
                "ERR wrong number of arguments for 'client|setname' command",
                "ERR wrong number of arguments for 'limit.policy|get' command",
                "ERR wrong number of arguments for 'command|count' command",
                "ERR wrong number of arguments for 'config' command",
                "ERR wrong number of arguments for 'ping' command",
            ]
        );
        // Any case runs the subcommand; COMMAND alone runs the container.
        let ok = run(
            &shared,
            true,
            &[&["client", "ID"], &["Command", "count"], &["COMMAND"]],
        );
        assert!(matches!(ok[0], Reply::Int(_)));
        assert!(matches!(ok[1], Reply::Int(n) if n > 20));
        assert!(matches!(&ok[2], Reply::Array(all) if all.len() > 20));
    }

    #[test]
    fn a_bad_subcommand_is_refused_when_queued() {
        let replies = run(
            &shared(),
            true,
            &[&["MULTI"], &["CONFIG", "nope"], &["PING"], &["EXEC"]],
        );
        assert_eq!(
            error(&replies[1]),
            "ERR unknown subcommand 'nope'. Try CONFIG HELP."
        );
        assert!(matches!(replies[2], Reply::Simple("QUEUED")));
        assert!(error(&replies[3]).starts_with("EXECABORT"));
    }

    #[test]
    fn authentication_is_checked_after_the_row_is_found() {
        let replies = run(&shared(), false, &[&["CONFIG", "GET", "x"], &["nope"]]);
        assert_eq!(error(&replies[0]), "NOAUTH Authentication required.");
        assert!(error(&replies[1]).starts_with("ERR unknown command 'nope'"));
    }

    #[test]
    fn command_info_shows_subcommands() {
        let replies = run(
            &shared(),
            true,
            &[
                &["COMMAND", "INFO", "config|get", "config"],
                &["COMMAND", "DOCS", "client"],
            ],
        );
        let Reply::Array(infos) = &replies[0] else {
            panic!("not an array");
        };
        let fields = |r: &Reply| match r {
            Reply::Array(f) => f.clone(),
            other => panic!("not an info: {other:?}"),
        };
        let get = fields(&infos[0]);
        assert!(matches!(&get[0], Reply::Bulk(n) if &n[..] == b"config|get"));
        assert!(matches!(get[1], Reply::Int(-3)));
        let config = fields(&infos[1]);
        assert!(matches!(&config[9], Reply::Array(subs) if subs.len() == 2));
        let Reply::Map(docs) = &replies[1] else {
            panic!("not a map");
        };
        let Reply::Map(client) = &docs[0].1 else {
            panic!("not a map");
        };
        assert!(client.iter().any(
            |(k, v)| matches!(k, Reply::Bulk(k) if &k[..] == b"subcommands")
                && matches!(v, Reply::Map(subs) if subs.len() == 9)
        ));
    }
}
