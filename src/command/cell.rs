//! `CL.THROTTLE`, compatible with redis-cell.
//!
//! # Format
//! ```text
//! CL.THROTTLE key max_burst count_per_period period [quantity]
//!   -> [limited 0|1, limit, remaining, retry_after_s or -1, reset_after_s]
//! ```
//!
//! The key holds GCRA state: the same key may be checked with
//! `LIMIT.CHECK key gcra ...` and reads the same theoretical arrival time.

use super::args::parse_i64;
use super::table::{CommandSpec, Flags, command};
use super::{Ctx, Outcome};
use crate::error::{CmdError, printable};
use crate::limiter::gcra::Gcra;
use crate::limiter::rule::{RuleError, count_in};
use crate::limiter::{
    Algorithm, MAX_COUNT, MAX_FILL_NS, MAX_FILL_TEXT, MAX_WINDOW_NS, Params, ScaledTime, State,
    cell,
};
use crate::metrics::Metrics;
use crate::reply::Reply;

const MAX_PERIOD_S: u64 = MAX_WINDOW_NS / 1_000_000_000;

/// A number in redis-cell's form: not an integer is Redis's error, out of
/// range the rule grammar's (`invalid max_burst '-1': expected ...`).
fn number(name: &'static str, arg: &[u8], min: u64, max: u64) -> Result<u64, CmdError> {
    let n = parse_i64(arg)?;
    let refused = || RuleError::Count {
        name,
        value: printable(arg),
        min,
        max,
    };
    let n = u64::try_from(n).map_err(|_| refused())?;
    Ok(count_in(name, n, min, max).map_err(|_| refused())?)
}

/// The metrics series of `CL.THROTTLE`: GCRA's.
pub fn series(_argv: &[&[u8]]) -> usize {
    Metrics::series(Algorithm::Gcra)
}

/// `CL.THROTTLE`.
pub fn throttle(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let key = &argv[1];
    let max_burst = number("max_burst", argv[2], 0, MAX_COUNT - 1)?;
    let count = number("count_per_period", argv[3], 1, MAX_COUNT)?;
    let period = number("period", argv[4], 1, MAX_PERIOD_S)?;
    let quantity = match argv.get(5) {
        Some(q) => number("quantity", q, 0, MAX_COUNT)?,
        None => 1,
    };
    let interval = cell::emission_interval(count, period);
    if interval == 0 {
        return Err(CmdError::invalid(
            "zero rates are not supported: count_per_period / period is above one per nanosecond",
        ));
    }
    if cell::tolerance(max_burst, interval) > i128::from(MAX_FILL_NS) {
        return Err(CmdError::invalid(format!(
            "invalid rule: refilling from empty ((max_burst + 1) * period / count_per_period) would take more than {MAX_FILL_TEXT}"
        )));
    }
    let params = Params {
        burst: max_burst + 1,
        ..Params::new(Algorithm::Gcra, count, period * 1_000_000_000)
    };
    let now = ctx.now();
    let reply = ctx.engine().store.update(key, &params, now, |state| {
        let State::Gcra(gcra) = state else {
            unreachable!("the store checked the algorithm");
        };
        let stored = gcra.tat.ns();
        let tat = (stored > u128::from(now)).then_some(stored);
        let (reply, new_tat) = cell::throttle(tat, now, max_burst, interval, quantity);
        let changed = new_tat.filter(|&t| t > u128::from(now)).inspect(|&t| {
            *gcra = Gcra {
                tat: ScaledTime::new(t, 0),
            };
        });
        (reply, changed.is_some())
    })?;
    let series = Metrics::series(Algorithm::Gcra);
    let clock = &*ctx.shared.engine.clock;
    ctx.shared
        .metrics
        .decided(series, argv[1], !reply.limited, clock);
    Ok(Reply::decision(reply.fields()).into())
}

/// The family's rows of the command table.
pub(super) static ROWS: &[CommandSpec] = &[
    command! { "cl.throttle", -5, [WRITE, FAST, CHECK], (1, 1, 1), "tollgate", "0.1.0",
    "GCRA rate limiting, answering exactly as redis-cell's CL.THROTTLE.",
    throttle, max = 6, series = series },
];
