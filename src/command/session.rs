//! Connection commands: `PING`, `ECHO`, `HELLO`, `AUTH`, `QUIT`, `RESET`,
//! `SELECT`, `CLIENT ...`.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::args::{Args, is, parse_i64};
use super::table::{CommandSpec, Flags, command};
use super::{Ctx, Outcome};
use crate::clients::KillFilter;
use crate::error::{CmdError, printable};
use crate::reply::Reply;

const AUTH_WITHOUT_PASSWORD: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";

/// Checks a username and password against the users (ACL); the session
/// runs as that user from now on.
fn authenticate(ctx: &mut Ctx<'_>, user: &[u8], pass: &[u8]) -> Result<(), CmdError> {
    let users = &ctx.shared.users;
    let generation = users.generation();
    if let Some(found) = users.authenticate(user, pass) {
        *ctx.session.client.user.lock() = found.name.clone();
        ctx.session.set_user(found, generation);
        ctx.session.authenticated = true;
        return Ok(());
    }
    let metrics = &ctx.shared.metrics;
    metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
    if let Some(left_out) = metrics.auth_failure_log.admit(std::time::Instant::now()) {
        tracing::warn!(
            client = ctx.session.client.id,
            addr = %ctx.session.client.addr,
            user = %printable(user),
            more_since_last_line = left_out,
            "AUTH failed: wrong user or password"
        );
    }
    Err(CmdError::WrongPass)
}

/// `AUTH [username] password`.
pub fn auth(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    match argv.len() {
        2 => {
            if ctx.shared.users.default_user().nopass {
                return Err(CmdError::Line(AUTH_WITHOUT_PASSWORD.into()));
            }
            authenticate(ctx, b"default", argv[1])?;
        }
        3 => authenticate(ctx, argv[1], argv[2])?,
        _ => return Err(CmdError::Syntax),
    }
    Ok(Reply::OK.into())
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`.
pub fn hello(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let mut args = Args::new(&argv[1..]);
    let mut protocol = ctx.session.protocol;
    if let Some(ver) = args.next_arg() {
        let ver = parse_i64(ver).map_err(|_| {
            CmdError::Line("ERR Protocol version is not an integer or out of range".into())
        })?;
        protocol = match ver {
            2 => 2,
            3 => 3,
            _ => return Err(CmdError::NoProto),
        };
    }
    let mut name = None;
    let mut credentials = None;
    while let Some(word) = args.next_arg() {
        if is(word, "AUTH") {
            let user = args.required()?;
            let pass = args.required()?;
            credentials = Some((user, pass));
        } else if is(word, "SETNAME") {
            name = Some(valid_client_name(args.required()?)?);
        } else {
            return Err(CmdError::Line(format!(
                "ERR Syntax error in HELLO option '{}'",
                printable(word)
            )));
        }
    }
    if let Some((user, pass)) = credentials {
        authenticate(ctx, user, pass)?;
    }
    if !ctx.session.authenticated {
        return Err(CmdError::Line("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into()));
    }
    if let Some(name) = name {
        *ctx.session.client.name.lock() = name;
    }
    ctx.session.protocol = protocol;
    ctx.session.client.resp.store(protocol, Ordering::Relaxed);
    Ok(Reply::map([
        ("server", Reply::text("tollgate")),
        ("version", Reply::text(crate::state::REDIS_VERSION)),
        ("proto", Reply::Int(i64::from(protocol))),
        ("id", Reply::Int(ctx.session.client.id as i64)),
        ("mode", Reply::text("standalone")),
        ("role", Reply::text("master")),
        ("modules", Reply::Array(Vec::new())),
    ])
    .into())
}

/// `QUIT`.
pub fn quit(_ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    Ok(Outcome::Close(Reply::OK))
}

/// `RESET`: back to a new connection's state.
pub fn reset(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let s = &mut *ctx.session;
    s.end_multi();
    s.protocol = 2;
    s.client.resp.store(2, Ordering::Relaxed);
    let default = ctx.shared.users.default_user();
    *s.client.user.lock() = default.name.clone();
    s.authenticated = default.enabled && default.nopass;
    s.set_user(default, ctx.shared.users.generation());
    *s.client.name.lock() = None;
    Ok(Reply::Simple("RESET").into())
}

/// `SELECT index`: only database 0 exists.
pub fn select(_ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    match parse_i64(argv[1])? {
        0 => Ok(Reply::OK.into()),
        _ => Err(CmdError::Line("ERR DB index is out of range".into())),
    }
}

/// A client name: printable, no spaces; empty clears the name.
fn valid_client_name(name: &[u8]) -> Result<Option<String>, CmdError> {
    if name.is_empty() {
        return Ok(None);
    }
    if name.iter().all(|b| (b'!'..=b'~').contains(b)) {
        Ok(Some(String::from_utf8_lossy(name).into_owned()))
    } else {
        Err(CmdError::Line(
            "ERR Client names cannot contain spaces, newlines or special characters.".into(),
        ))
    }
}

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ID",
    "    Return the ID of the current connection.",
    "GETNAME",
    "    Return the name of the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are:",
    "    * LIB-NAME: the client lib name.",
    "    * LIB-VER: the client lib version.",
    "LIST",
    "    Return information about client connections.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * ID <client-id>",
    "      Kill connections by client id.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "HELP",
    "    Print this help.",
];

/// `CLIENT ID`.
pub fn client_id(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    Ok(Reply::Int(ctx.session.client.id as i64).into())
}

/// `CLIENT SETNAME name` (empty clears it).
pub fn client_setname(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    *ctx.session.client.name.lock() = valid_client_name(argv[2])?;
    Ok(Reply::OK.into())
}

/// `CLIENT GETNAME`: the name, or nil.
pub fn client_getname(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    Ok(match ctx.session.client.name.lock().as_deref() {
        Some(n) => Reply::text(n),
        None => Reply::Null,
    }
    .into())
}

/// `CLIENT SETINFO LIB-NAME|LIB-VER value`.
pub fn client_setinfo(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let me = &ctx.session.client;
    let value = String::from_utf8_lossy(argv[3]).into_owned();
    if value.contains(|c: char| c == ' ' || c.is_control()) {
        return Err(CmdError::Line(
            "ERR lib-name and lib-ver cannot contain spaces, newlines or special characters."
                .into(),
        ));
    }
    if is(argv[2], "LIB-NAME") {
        *me.lib_name.lock() = Some(value);
    } else if is(argv[2], "LIB-VER") {
        *me.lib_ver.lock() = Some(value);
    } else {
        return Err(CmdError::Line(format!(
            "ERR Unrecognized option '{}'",
            printable(argv[2])
        )));
    }
    Ok(Reply::OK.into())
}

/// `CLIENT LIST`: one line per connected client.
pub fn client_list(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let now = ctx.now();
    let mut text = String::new();
    for c in ctx.shared.clients.all() {
        text.push_str(&c.info_line(now));
        text.push('\n');
    }
    Ok(Reply::Verbatim(text).into())
}

/// `CLIENT INFO`: this connection's line.
pub fn client_info(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let line = ctx.session.client.info_line(ctx.now());
    Ok(Reply::Verbatim(format!("{line}\n")).into())
}

/// `CLIENT KILL addr:port`, or `CLIENT KILL filter value ...` with `ID`,
/// `ADDR`, `LADDR`, `USER` and `SKIPME` (Redis's forms): `OK` or the
/// number closed.
pub fn client_kill(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let clients = &ctx.shared.clients;
    if argv.len() == 3 {
        // The old form: one address, the caller included.
        let filter = KillFilter {
            addr: Some(String::from_utf8_lossy(argv[2]).into_owned()),
            ..KillFilter::default()
        };
        return match clients.kill(&filter) {
            0 => Err(CmdError::Line("ERR No such client".into())),
            _ => Ok(Reply::OK.into()),
        };
    }
    let mut filter = KillFilter::default();
    let mut skip_me = true;
    let mut args = Args::new(&argv[2..]);
    while let Some(field) = args.next_arg() {
        let value = args.required().map_err(|_| CmdError::Syntax)?;
        let text = || String::from_utf8_lossy(value).into_owned();
        if is(field, "ID") {
            let id = parse_i64(value)
                .ok()
                .and_then(|id| u64::try_from(id).ok())
                .filter(|&id| id > 0)
                .ok_or_else(|| CmdError::Line("ERR client-id should be greater than 0".into()))?;
            filter.id = Some(id);
        } else if is(field, "ADDR") {
            filter.addr = Some(text());
        } else if is(field, "LADDR") {
            filter.laddr = Some(text());
        } else if is(field, "USER") {
            filter.user = Some(text());
        } else if is(field, "SKIPME") {
            skip_me = if is(value, "YES") {
                true
            } else if is(value, "NO") {
                false
            } else {
                return Err(CmdError::Syntax);
            };
        } else {
            return Err(CmdError::Syntax);
        }
    }
    filter.skip = skip_me.then_some(ctx.session.client.id);
    Ok(Reply::Int(clients.kill(&filter) as i64).into())
}

/// `CLIENT NO-EVICT on|off`.
pub fn client_no_evict(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let on = if is(argv[2], "ON") {
        true
    } else if is(argv[2], "OFF") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    ctx.session.client.no_evict.store(on, Ordering::Relaxed);
    Ok(Reply::OK.into())
}

/// `CLIENT HELP`.
pub fn client_help(_ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    Ok(Reply::help(CLIENT_HELP).into())
}

/// `PING [message]` (the table allows at most one argument).
pub fn ping(_ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    Ok(match argv.get(1) {
        None => Reply::Simple("PONG"),
        Some(message) => Reply::Bulk(Bytes::copy_from_slice(message)),
    }
    .into())
}

/// `ECHO message`.
pub fn echo(_ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    Ok(Reply::Bulk(Bytes::copy_from_slice(argv[1])).into())
}

/// The family's rows of the command table.
pub(super) static ROWS: &[CommandSpec] = &[
    command! { "ping", -1, [FAST, STALE], (0, 0, 0), "connection", "1.0.0",
    "Returns the server's liveliness response.",
    ping, max = 2 },
    command! { "echo", 2, [FAST], (0, 0, 0), "connection", "1.0.0",
    "Returns the given string.",
    echo },
    command! { "hello", -1, [NO_AUTH, FAST], (0, 0, 0), "connection", "6.0.0",
    "Handshakes with the server: protocol version, authentication, name.",
    hello },
    command! { "auth", -2, [NO_AUTH, FAST], (0, 0, 0), "connection", "1.0.0",
    "Authenticates the connection.",
    auth },
    command! { "quit", -1, [NO_AUTH, FAST, TX_CONTROL], (0, 0, 0), "connection", "1.0.0",
    "Closes the connection.",
    quit },
    command! { "reset", 1, [NO_AUTH, FAST, TX_CONTROL], (0, 0, 0), "connection", "6.2.0",
    "Resets the connection.",
    reset },
    command! { "select", 2, [FAST], (0, 0, 0), "connection", "1.0.0",
    "Changes the selected database (only 0 exists).",
    select },
    command! { "client", -2, [ADMIN], (0, 0, 0), "connection", "2.4.0",
    "A container for client connection commands.",
    container, subcommands = CLIENT_SUBCOMMANDS },
];

/// `CLIENT`'s subcommands.
static CLIENT_SUBCOMMANDS: &[CommandSpec] = &[
    command! { "client|id", 2, [STALE], (0, 0, 0), "connection", "5.0.0",
    "Returns the unique client ID of the connection.",
    client_id },
    command! { "client|setname", 3, [STALE], (0, 0, 0), "connection", "2.6.9",
    "Sets the connection name.",
    client_setname },
    command! { "client|getname", 2, [STALE], (0, 0, 0), "connection", "2.6.9",
    "Returns the name of the connection.",
    client_getname },
    command! { "client|setinfo", 4, [STALE], (0, 0, 0), "connection", "7.2.0",
    "Sets information specific to the client or connection.",
    client_setinfo },
    command! { "client|list", -2, [ADMIN, STALE], (0, 0, 0), "connection", "2.4.0",
    "Lists open connections.",
    client_list },
    command! { "client|info", 2, [STALE], (0, 0, 0), "connection", "6.2.0",
    "Returns information about the connection.",
    client_info },
    command! { "client|kill", -3, [ADMIN, STALE], (0, 0, 0), "connection", "2.4.0",
    "Terminates open connections.",
    client_kill },
    command! { "client|no-evict", 3, [ADMIN, STALE], (0, 0, 0), "connection", "7.0.0",
    "Sets the client eviction mode of the connection.",
    client_no_evict },
    command! { "client|help", 2, [STALE], (0, 0, 0), "connection", "5.0.0",
    "Returns helpful text about the different subcommands.",
    client_help },
];
