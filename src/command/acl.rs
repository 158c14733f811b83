//! `ACL`: users as Redis 7 manages them (see [`crate::acl`]).
//!
//! # Format
//! ```text
//! ACL WHOAMI | USERS | LIST | GETUSER name | SETUSER name [rule ...]
//!     | DELUSER name [name ...] | CAT [category] | LOAD | HELP
//! ```

use super::table::{CommandSpec, Flags, command};
use super::{ACL_CATALOG, Ctx, Outcome};
use crate::clients::KillFilter;
use crate::error::{CmdError, printable};
use crate::reply::Reply;

fn text_args<'a>(argv: &'a [&'a [u8]]) -> Vec<String> {
    argv.iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// `ACL WHOAMI`.
pub fn whoami(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    Ok(Reply::text(&ctx.session.user.name).into())
}

/// `ACL USERS`.
pub fn users(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let names = ctx.shared.users.names();
    Ok(Reply::Array(names.iter().map(|n| Reply::text(n)).collect()).into())
}

/// `ACL LIST`.
pub fn list(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let lines = ctx.shared.users.all();
    Ok(Reply::Array(lines.iter().map(|u| Reply::text(&u.describe())).collect()).into())
}

/// `ACL GETUSER name`.
pub fn getuser(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let Some(user) = std::str::from_utf8(argv[2])
        .ok()
        .and_then(|n| ctx.shared.users.get(n))
    else {
        return Ok(Reply::Null.into());
    };
    let strings = |items: Vec<String>| Reply::Array(items.iter().map(|s| Reply::text(s)).collect());
    let mut flags = vec![if user.enabled { "on" } else { "off" }.to_string()];
    if user.nopass {
        flags.push("nopass".into());
    }
    let patterns = |prefix: char, items: &[String]| {
        items
            .iter()
            .map(|k| format!("{prefix}{k}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    Ok(Reply::map([
        ("flags", strings(flags)),
        ("passwords", strings(user.password_hexes())),
        ("commands", Reply::text(&user.command_rules.join(" "))),
        ("keys", Reply::text(&patterns('~', &user.keys))),
        ("channels", Reply::text(&patterns('&', &user.channels))),
        ("selectors", Reply::Array(Vec::new())),
    ])
    .into())
}

/// `ACL SETUSER name [rule ...]`.
pub fn setuser(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let words = text_args(&argv[2..]);
    let rules: Vec<&str> = words.iter().map(String::as_str).collect();
    let name = String::from_utf8_lossy(argv[2]);
    let name = name.as_ref();
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(CmdError::Line(format!(
            "ERR Usernames can't contain spaces or null characters: '{}'",
            printable(argv[2])
        )));
    }
    ctx.shared
        .users
        .set(name, &rules[1..], &ACL_CATALOG)
        .map_err(|e| CmdError::Line(format!("ERR {e}")))?;
    Ok(Reply::OK.into())
}

/// `ACL DELUSER name [name ...]`: the clients of a deleted user are closed.
pub fn deluser(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let names = text_args(&argv[2..]);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let deleted = ctx
        .shared
        .users
        .delete(&names)
        .map_err(|e| CmdError::Line(e.into()))?;
    for name in names {
        let filter = KillFilter {
            user: Some(name.to_string()),
            ..KillFilter::default()
        };
        ctx.shared.clients.kill(&filter);
    }
    Ok(Reply::Int(deleted as i64).into())
}

/// `ACL CAT [category]`.
pub fn cat(_ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let catalog = &*ACL_CATALOG;
    let Some(category) = argv.get(2) else {
        let all = catalog.categories();
        return Ok(Reply::Array(all.iter().map(|c| Reply::text(c)).collect()).into());
    };
    let wanted = format!(
        "@{}",
        String::from_utf8_lossy(category).to_ascii_lowercase()
    );
    if !catalog.categories().contains(&wanted[1..]) {
        return Err(CmdError::Line(format!(
            "ERR Unknown category '{}'",
            printable(category)
        )));
    }
    let names = catalog
        .entries
        .iter()
        .filter(|e| e.categories.contains(&wanted.as_str()))
        .map(|e| Reply::text(e.name));
    Ok(Reply::Array(names.collect()).into())
}

/// `ACL LOAD`: the aclfile again, all or nothing.
pub fn load(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let config = &ctx.shared.config;
    let Some(path) = &config.aclfile else {
        return Err(CmdError::Line("ERR This tollgate instance is not configured to use an ACL file. Set aclfile in the config file and restart.".into()));
    };
    ctx.shared
        .users
        .load(path, config.requirepass.as_deref(), &ACL_CATALOG)
        .map_err(|e| CmdError::Line(format!("ERR {e}")))?;
    Ok(Reply::OK.into())
}

const ACL_HELP: &[&str] = &[
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "GETUSER <username>",
    "    Get the user's details.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Print this help.",
];

/// `ACL HELP`.
pub fn help(_ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    Ok(Reply::help(ACL_HELP).into())
}

/// The family's rows of the command table.
pub(super) static ROWS: &[CommandSpec] = &[command! { "acl", -2, [], (0, 0, 0), "server", "6.0.0",
"A container for Access List Control commands.",
container, subcommands = SUBCOMMANDS }];

/// `ACL`'s subcommands.
static SUBCOMMANDS: &[CommandSpec] = &[
    command! { "acl|whoami", 2, [STALE], (0, 0, 0), "server", "6.0.0",
    "Returns the authenticated username of the current connection.",
    whoami },
    command! { "acl|users", 2, [ADMIN, STALE], (0, 0, 0), "server", "6.0.0",
    "Lists all ACL users.",
    users },
    command! { "acl|list", 2, [ADMIN, STALE], (0, 0, 0), "server", "6.0.0",
    "Dumps the effective rules in ACL file format.",
    list },
    command! { "acl|getuser", 3, [ADMIN, STALE], (0, 0, 0), "server", "6.0.0",
    "Lists the ACL rules of a user.",
    getuser },
    command! { "acl|setuser", -3, [ADMIN, STALE], (0, 0, 0), "server", "6.0.0",
    "Creates and modifies an ACL user and its rules.",
    setuser },
    command! { "acl|deluser", -3, [ADMIN, STALE], (0, 0, 0), "server", "6.0.0",
    "Deletes ACL users, and terminates their connections.",
    deluser },
    command! { "acl|cat", -2, [STALE], (0, 0, 0), "server", "6.0.0",
    "Lists the ACL categories, or the commands inside a category.",
    cat },
    command! { "acl|load", 2, [ADMIN, STALE], (0, 0, 0), "server", "6.0.0",
    "Reloads the rules from the configured ACL file.",
    load },
    command! { "acl|help", 2, [STALE], (0, 0, 0), "server", "6.0.0",
    "Returns helpful text about the different subcommands.",
    help },
];
