//! `LIMIT.TOP`: the heaviest keys by checks or by denials over the last
//! minute or two (see [`crate::metrics::top`] for how they are counted and
//! how exact the counts are).
//!
//! # Format
//! ```text
//! LIMIT.TOP [CHECKS|DENIALS] [COUNT n]
//! ```
//! The reply: one `[key, count, error]` array per key, heaviest first.

use super::args::{Args, is};
use super::limit::set_once;
use super::table::{CommandSpec, Flags, command};
use super::{Ctx, Outcome};
use crate::error::CmdError;
use crate::limiter::rule::parse_count_in;
use crate::metrics::top::Ranking;
use crate::reply::Reply;

/// Most keys one LIMIT.TOP answers.
pub const MAX_COUNT: u64 = 100;

/// `LIMIT.TOP`.
pub fn top(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let mut args = Args::new(&argv[1..]);
    let (mut ranking, mut count) = (None, None);
    while let Some(word) = args.next_arg() {
        if is(word, "CHECKS") {
            set_once(&mut ranking, Ranking::Checks)?;
        } else if is(word, "DENIALS") {
            set_once(&mut ranking, Ranking::Denials)?;
        } else if is(word, "COUNT") {
            let n = parse_count_in("count", args.required()?, 1, MAX_COUNT)?;
            set_once(&mut count, n as usize)?;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let now = ctx.now();
    let ranking = ranking.unwrap_or(Ranking::Checks);
    let count = count.unwrap_or(10);
    // Under ACL key patterns a user sees only the keys it may access.
    let session = &ctx.session;
    let mut heavy = ctx.shared.metrics.top.heaviest(ranking, 256, now);
    heavy.retain(|h| session.unrestricted || session.user.may_access(&h.key));
    heavy.truncate(count);
    let rows = heavy
        .into_iter()
        .map(|h| {
            Reply::Array(vec![
                Reply::Bulk(bytes::Bytes::from(h.key.into_vec())),
                Reply::Int(h.count.min(i64::MAX as u64) as i64),
                Reply::Int(h.error.min(i64::MAX as u64) as i64),
            ])
        })
        .collect();
    Ok(Reply::Array(rows).into())
}

pub(super) static ROWS: &[CommandSpec] = &[command! {
"limit.top", -1, [READONLY], (0, 0, 0), "tollgate", "0.1.0",
"Lists the keys checked or denied most over the last minute or two.",
top, max = 4 }];
