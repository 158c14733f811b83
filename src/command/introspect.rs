//! `COMMAND`: answered from the same table that dispatches.
//!
//! # Format
//! ```text
//! COMMAND | COMMAND COUNT | COMMAND LIST | COMMAND INFO [name ...] | COMMAND DOCS [name ...]
//! ```

use super::table::{Flags, command};
use super::{COMMANDS, CommandSpec, Ctx, Outcome, lookup};
use crate::error::CmdError;
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
        Reply::Array(c.subcommands.iter().map(info_of).collect()),
    ])
}

fn docs_of(c: &CommandSpec) -> Reply {
    let mut fields = vec![
        ("summary", Reply::text(c.summary)),
        ("since", Reply::text(c.since)),
        ("group", Reply::text(c.group)),
    ];
    if !c.subcommands.is_empty() {
        let subs = c
            .subcommands
            .iter()
            .map(|s| (Reply::text(s.name), docs_of(s)));
        fields.push(("subcommands", Reply::Map(subs.collect())));
    }
    Reply::map(fields)
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

/// A command or, as `container|sub`, a subcommand, by name.
fn find(name: &[u8]) -> Option<&'static CommandSpec> {
    match name.iter().position(|&b| b == b'|') {
        None => lookup(name),
        Some(bar) => lookup(&name[..bar])?.subcommand(&name[bar + 1..]),
    }
}

/// `COMMAND`: every command's details.
pub fn command(_ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    Ok(Reply::Array(COMMANDS.iter().copied().map(info_of).collect()).into())
}

/// `COMMAND COUNT`: how many commands (subcommands not counted).
pub fn count(_ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    Ok(Reply::Int(COMMANDS.len() as i64).into())
}

/// `COMMAND LIST`: every command's name (Redis 7 also lists subcommands,
/// `config|get`; tollgate lists the commands `COMMAND COUNT` counts, as it
/// always has).
pub fn list(_ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let names = COMMANDS.iter().map(|c| Reply::text(c.name)).collect();
    Ok(Reply::Array(names).into())
}

/// `COMMAND INFO [name ...]`: details of the named commands (nil for an
/// unknown one), or of all.
pub fn info(_ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let names = &argv[2..];
    if names.is_empty() {
        return command(_ctx, argv);
    }
    let infos = names.iter().map(|n| find(n).map_or(Reply::Null, info_of));
    Ok(Reply::Array(infos.collect()).into())
}

/// `COMMAND DOCS [name ...]`: summary, since and group of the named
/// commands (unknown ones left out), or of all.
pub fn docs(_ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let names = &argv[2..];
    let chosen: Vec<&CommandSpec> = if names.is_empty() {
        COMMANDS.clone()
    } else {
        names.iter().filter_map(|n| find(n)).collect()
    };
    let docs = chosen
        .into_iter()
        .map(|c| (Reply::text(c.name), docs_of(c)));
    Ok(Reply::Map(docs.collect()).into())
}

/// `COMMAND HELP`.
pub fn help(_ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    Ok(Reply::help(COMMAND_HELP).into())
}

/// The family's rows of the command table.
pub(super) static ROWS: &[CommandSpec] = &[
    command! { "command", -1, [STALE], (0, 0, 0), "server", "2.8.13",
    "Returns detailed information about all commands.",
    command, subcommands = SUBCOMMANDS },
];

/// `COMMAND`'s subcommands.
static SUBCOMMANDS: &[CommandSpec] = &[
    command! { "command|count", 2, [STALE], (0, 0, 0), "server", "2.8.13",
    "Returns a count of commands.",
    count },
    command! { "command|list", -2, [STALE], (0, 0, 0), "server", "7.0.0",
    "Returns a list of command names.",
    list },
    command! { "command|info", -2, [STALE], (0, 0, 0), "server", "2.8.13",
    "Returns information about one, multiple or all commands.",
    info },
    command! { "command|docs", -2, [STALE], (0, 0, 0), "server", "7.0.0",
    "Returns documentary information about one, multiple or all commands.",
    docs },
    command! { "command|help", 2, [STALE], (0, 0, 0), "server", "5.0.0",
    "Returns helpful text about the different subcommands.",
    help },
];
