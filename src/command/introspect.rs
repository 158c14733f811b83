//! `COMMAND`: answered from the same table that dispatches.
//!
//! # Format
//! ```text
//! COMMAND | COMMAND COUNT | COMMAND LIST | COMMAND INFO [name ...] | COMMAND DOCS [name ...]
//! ```

use super::args::is;
use super::table::{Flags, command};
use super::{COMMANDS, CommandSpec, Ctx, Outcome, lookup};
use crate::error::{CmdError, printable};
use crate::reply::Reply;

fn info_of(c: &CommandSpec) -> Reply {
    let set = |names: Vec<&'static str>| Reply::Set(names.into_iter().map(Reply::Simple).collect());
    Reply::Array(vec![
        Reply::text(c.name),
        Reply::Int(i64::from(c.arity)),
        set(c.flags.redis_names()),
        Reply::Int(i64::from(c.first_key)),
        Reply::Int(i64::from(c.last_key)),
        Reply::Int(i64::from(c.step)),
        set(c.acl_categories()),
        Reply::Set(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ])
}

fn docs_of(c: &CommandSpec) -> Reply {
    Reply::map([
        ("summary", Reply::text(c.summary)),
        ("since", Reply::text(c.since)),
        ("group", Reply::text(c.group)),
    ])
}

const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all commands.",
    "COUNT",
    "    Return the total number of commands in this server.",
    "LIST",
    "    Return a list of all commands in this server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple commands.",
    "    If no command names are given, details for all commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "HELP",
    "    Print this help.",
];

/// `COMMAND` and its subcommands.
pub fn command(_ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let Some(sub) = argv.get(1) else {
        return Ok(Reply::Array(COMMANDS.iter().copied().map(info_of).collect()).into());
    };
    let names = &argv[2..];
    let reply = if is(sub, "HELP") && names.is_empty() {
        Reply::help(COMMAND_HELP)
    } else if is(sub, "COUNT") && names.is_empty() {
        Reply::Int(COMMANDS.len() as i64)
    } else if is(sub, "LIST") {
        Reply::Array(COMMANDS.iter().map(|c| Reply::text(c.name)).collect())
    } else if is(sub, "INFO") {
        if names.is_empty() {
            Reply::Array(COMMANDS.iter().copied().map(info_of).collect())
        } else {
            Reply::Array(
                names
                    .iter()
                    .map(|n| lookup(n).map_or(Reply::Null, info_of))
                    .collect(),
            )
        }
    } else if is(sub, "DOCS") {
        let chosen: Vec<&CommandSpec> = if names.is_empty() {
            COMMANDS.clone()
        } else {
            names.iter().filter_map(|n| lookup(n)).collect()
        };
        Reply::Map(
            chosen
                .into_iter()
                .map(|c| (Reply::text(c.name), docs_of(c)))
                .collect(),
        )
    } else if is(sub, "COUNT") || is(sub, "HELP") {
        let sub = String::from_utf8_lossy(sub).to_lowercase();
        return Err(CmdError::WrongArity(format!("command|{sub}")));
    } else {
        return Err(CmdError::UnknownSubcommand {
            command: "COMMAND".into(),
            sub: printable(sub),
        });
    };
    Ok(reply.into())
}

/// The family's rows of the command table.
pub(super) static ROWS: &[CommandSpec] = &[
    command! { "command", -1, [STALE], (0, 0, 0), "server", "2.8.13",
    "Returns detailed information about all commands.",
    command },
];
