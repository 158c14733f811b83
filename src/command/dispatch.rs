//! Running a request: look it up in the table, check arity and
//! authentication once, queue it inside a transaction, or run it (timing a
//! sample of checks for the latency histogram).

use bytes::Bytes;

use super::table::{CommandSpec, Flags};
use super::{Ctx, Outcome, lookup};
use crate::error::CmdError;
use crate::reply::Reply;

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

fn dispatch_inner(
    ctx: &mut Ctx<'_>,
    spec: Option<&CommandSpec>,
    argv: &[&[u8]],
) -> Result<Outcome, CmdError> {
    ctx.shared.metrics.command();
    let Some(spec) = spec else {
        ctx.session.multi_dirty |= ctx.session.multi.is_some();
        return Err(CmdError::unknown_command(argv[0], &argv[1..]));
    };
    if !spec.arity_ok(argv.len()) {
        ctx.session.multi_dirty |= ctx.session.multi.is_some();
        return Err(CmdError::WrongArity(spec.name.to_string()));
    }
    if !ctx.session.authenticated && !spec.flags.contains(Flags::NO_AUTH) {
        ctx.session.multi_dirty |= ctx.session.multi.is_some();
        return Err(CmdError::NoAuth);
    }
    if let Some(queue) = ctx.session.multi.as_mut()
        && !spec.flags.contains(Flags::TX_CONTROL)
    {
        // Queued commands outlive the request buffer: keep copies.
        queue.push(argv.iter().map(|a| Bytes::copy_from_slice(a)).collect());
        return Ok(Reply::Simple("QUEUED").into());
    }
    // One check in SAMPLE_EVERY is timed (two clock reads cost ~4% of a
    // check); only a timed one needs to know its algorithm.
    let is_check = spec.flags.contains(Flags::CHECK);
    let started = (is_check && crate::metrics::sample_this_one()).then(std::time::Instant::now);
    let outcome = (spec.run)(ctx, argv)?;
    if let (Some(started), Outcome::Reply(_)) = (started, &outcome)
        && let Some(series_of) = spec.series
    {
        let series = series_of(argv);
        ctx.shared.metrics.observe_check(series, started.elapsed());
    }
    Ok(outcome)
}
