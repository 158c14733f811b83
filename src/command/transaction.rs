//! Transactions: `MULTI`, `EXEC`, `DISCARD`. Queueing itself is dispatch's
//! (every command but these is queued between `MULTI` and `EXEC`).

use super::table::{CommandSpec, Flags, command};
use super::{Ctx, Outcome, dispatch};
use crate::error::CmdError;
use crate::reply::Reply;

/// `MULTI`.
pub fn multi(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    if ctx.session.multi.is_some() {
        return Err(CmdError::Line("ERR MULTI calls can not be nested".into()));
    }
    ctx.session.multi = Some(Vec::new());
    ctx.session.multi_dirty = false;
    Ok(Reply::OK.into())
}

/// `DISCARD`.
pub fn discard(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    if ctx.session.end_multi().is_none() {
        return Err(CmdError::Line("ERR DISCARD without MULTI".into()));
    }
    ctx.session.multi_dirty = false;
    Ok(Reply::OK.into())
}

/// `EXEC`: runs the queued commands in order; none of them waits.
pub fn exec(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let dirty = ctx.session.multi_dirty;
    let Some(queued) = ctx.session.end_multi() else {
        return Err(CmdError::Line("ERR EXEC without MULTI".into()));
    };
    if dirty {
        return Err(CmdError::Line(
            "EXECABORT Transaction discarded because of previous errors.".into(),
        ));
    }
    let mut replies = Vec::with_capacity(queued.len());
    for argv in queued {
        let mut inner = Ctx {
            shared: ctx.shared,
            session: &mut *ctx.session,
            blocking: false,
            batch_time: ctx.batch_time,
        };
        let args: smallvec::SmallVec<[&[u8]; 8]> = argv.iter().map(|a| &a[..]).collect();
        match dispatch(&mut inner, &args) {
            Outcome::Reply(r) | Outcome::Close(r) => replies.push(r),
            Outcome::Later(_) => replies.push(Reply::Error(
                "ERR command cannot wait inside a transaction".into(),
            )),
            Outcome::Shutdown => return Ok(Outcome::Shutdown),
        }
    }
    Ok(Reply::Array(replies).into())
}

/// The family's rows of the command table.
pub(super) static ROWS: &[CommandSpec] = &[
    command! { "multi", 1, [FAST, TX_CONTROL], (0, 0, 0), "transactions", "1.2.0",
    "Starts a transaction.",
    multi },
    command! { "exec", 1, [TX_CONTROL], (0, 0, 0), "transactions", "1.2.0",
    "Runs all commands in a transaction.",
    exec },
    command! { "discard", 1, [FAST, TX_CONTROL], (0, 0, 0), "transactions", "2.0.0",
    "Discards a transaction.",
    discard },
];
