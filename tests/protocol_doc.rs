//! docs/PROTOCOL.md's command reference and the command table name the same
//! commands, in the same order, so neither can gain a command the other lacks;
//! and every error the document quotes is what the server says.

use tollgate::command::COMMANDS;

#[test]
fn the_reference_lists_every_command_of_the_table() {
    let doc = include_str!("../docs/PROTOCOL.md");
    let reference = doc
        .split("\n## Command reference\n")
        .nth(1)
        .expect("a command reference section");
    let reference = reference.split("\n## ").next().unwrap();
    let documented: Vec<String> = reference
        .lines()
        .filter_map(|l| l.strip_prefix("### `"))
        .map(|l| l.trim_end_matches('`').to_ascii_lowercase())
        .collect();
    let table: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
    assert_eq!(documented, table);
    // Each entry's syntax starts with its own name.
    for name in &table {
        let entry = reference
            .split(&format!("### `{}`", name.to_ascii_uppercase()))
            .nth(1)
            .unwrap();
        let first = entry.trim_start().lines().next().unwrap();
        assert!(
            first.starts_with(&format!("`{}", name.to_ascii_uppercase())),
            "{name}: {first}"
        );
    }
}

mod common;

use common::{TestServer, check, error, run};

/// docs/PROTOCOL.md with its line breaks folded, as a reader sees it.
fn doc_text() -> String {
    include_str!("../docs/PROTOCOL.md")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Errors the command reference quotes word for word, each with a command
/// that draws it: the server says exactly what the document says.
#[tokio::test]
async fn documented_errors_are_what_the_server_says() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    let doc = doc_text();
    let cases: &[(&[&str], &str)] = &[
        (&["SELECT", "1"], "ERR DB index is out of range"),
        (&["EXEC"], "ERR EXEC without MULTI"),
        (&["DISCARD"], "ERR DISCARD without MULTI"),
        (&["HELLO", "4"], "NOPROTO unsupported protocol version"),
        (
            &["HELLO", "x"],
            "ERR Protocol version is not an integer or out of range",
        ),
        (
            &["AUTH", "pw"],
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ),
        (
            &["CONFIG", "SET", "port", "1"],
            "ERR unknown subcommand 'SET'. Try CONFIG HELP.",
        ),
        (
            &["CLIENT", "SETINFO", "x", "y"],
            "ERR Unrecognized option 'x'",
        ),
        (
            &["CLIENT", "x"],
            "ERR unknown subcommand 'x'. Try CLIENT HELP.",
        ),
        (
            &["COMMAND", "x"],
            "ERR unknown subcommand 'x'. Try COMMAND HELP.",
        ),
        (
            &["LIMIT.POLICY", "x"],
            "ERR unknown subcommand 'x'. Try LIMIT.POLICY HELP.",
        ),
        (
            &["LIMIT.CHECK", "k", "POLICY", "x"],
            "ERR unknown policy 'x'",
        ),
        (
            &["CL.THROTTLE", "k", "-1", "1", "1"],
            "ERR invalid max_burst '-1': expected an integer from 0 to 999999999999",
        ),
        (&["SHUTDOWN", "SAVE", "NOSAVE"], "ERR syntax error"),
    ];
    for (cmd, said) in cases {
        assert!(
            doc.contains(said),
            "docs/PROTOCOL.md does not quote {said:?}"
        );
        assert_eq!(error(&mut c, cmd).await, *said, "{cmd:?}");
    }
    // Transactions.
    assert_eq!(run(&mut c, &["MULTI"]).await.unwrap(), redis::Value::Okay);
    let nested = "ERR MULTI calls can not be nested";
    assert!(doc.contains(nested));
    assert_eq!(error(&mut c, &["MULTI"]).await, nested);
    // A nested MULTI is refused without aborting; a command that fails to
    // queue aborts the transaction.
    error(&mut c, &["NOPE"]).await;
    let aborted = "EXECABORT Transaction discarded because of previous errors.";
    assert!(doc.contains(aborted));
    assert_eq!(error(&mut c, &["EXEC"]).await, aborted);
    server.stop().await;
}

/// Every error docs/PROTOCOL.md quotes (a backticked line starting with one
/// of Redis's error words), with placeholders (`<name>`) and a trailing
/// `...` standing for any text.
fn documented_errors(doc: &str) -> Vec<String> {
    const WORDS: [&str; 12] = [
        "CROSSSLOT ",
        "TRYAGAIN ",
        "MOVED ",
        "CLUSTERDOWN ",
        "OOM ",
        "NOPERM ",
        "ERR ",
        "WRONGTYPE ",
        "NOAUTH ",
        "NOPROTO ",
        "EXECABORT ",
        "WRONGPASS ",
    ];
    let is_error = |line: &str| WORDS.iter().any(|w| line.starts_with(w));
    // Lines of code blocks, then inline quotes outside them.
    let mut found: Vec<String> = Vec::new();
    let mut prose = String::new();
    for (i, part) in doc.split("```").enumerate() {
        if i % 2 == 1 {
            found.extend(part.lines().filter(|l| is_error(l)).map(str::to_string));
        } else {
            prose.push_str(part);
            prose.push('\n');
        }
    }
    let prose = prose.split_whitespace().collect::<Vec<_>>().join(" ");
    found.extend(
        prose
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|quoted| is_error(quoted))
            .map(str::to_string),
    );
    found.sort();
    found.dedup();
    found
}

/// Whether the server's `said` fits the documented `form`: its literal
/// pieces in order, `<...>` and a trailing `...` standing for any text.
fn fits(form: &str, said: &str) -> bool {
    let (form, open_end) = match form.strip_suffix("...") {
        Some(f) => (f, true),
        None => (form, false),
    };
    let mut pieces = Vec::new();
    let mut rest = form;
    while let Some(open) = rest.find('<') {
        let close = rest[open..].find('>').map_or(rest.len(), |c| open + c + 1);
        pieces.push(&rest[..open]);
        rest = &rest[close..];
    }
    let placeholder_end = rest.is_empty() && !pieces.is_empty();
    pieces.push(rest);
    let mut at = 0;
    for (i, piece) in pieces.iter().enumerate() {
        let Some(found) = said[at..].find(piece) else {
            return false;
        };
        if i == 0 && found != 0 {
            return false;
        }
        at += found + piece.len();
    }
    open_end || placeholder_end || at == said.len()
}

#[test]
fn error_forms_fit_what_they_stand_for() {
    assert!(fits("ERR syntax error", "ERR syntax error"));
    assert!(!fits("ERR syntax error", "ERR syntax error!"));
    assert!(fits("NOAUTH ...", "NOAUTH Authentication required."));
    assert!(!fits("NOAUTH ...", "ERR NOAUTH"));
    let form = "WRONGTYPE key 'k' holds <algorithm> state, not <algorithm>";
    assert!(fits(
        form,
        "WRONGTYPE key 'k' holds gcra state, not fixed_window"
    ));
    assert!(!fits(
        form,
        "WRONGTYPE key 'j' holds gcra state, not fixed_window"
    ));
    assert!(fits(
        "ERR snapshot <path>: <reason>",
        "ERR snapshot /x: denied"
    ));
}

/// Every error the document quotes is drawn from a server here and fits
/// what the server says, or is named with the test that draws it (errors
/// that need a failing disk or a shutdown in flight).
#[tokio::test]
async fn every_documented_error_is_what_the_server_says() {
    let elsewhere: &[(&str, &str)] = &[
        ("ERR server is shutting down", include_str!("wait.rs")),
        (
            "OOM command not allowed when used memory > 'maxmemory'.",
            include_str!("memory.rs"),
        ),
        ("ERR Invalid slot", include_str!("cluster.rs")),
        (
            "ERR leaky_bucket cannot give units back: its queue holds turns already promised; it takes no reservations",
            include_str!("reserve.rs"),
        ),
        (
            "ERR the extra units would leave the key in debt for more than 183000d; nothing changed",
            include_str!("reserve.rs"),
        ),
        (
            "ERR the key holds 65536 open reservations, the most a key may hold",
            include_str!("reserve.rs"),
        ),
        (
            "ERR unknown policy 'x' (the reservation's policy was deleted; it stays open until its timeout)",
            include_str!("reserve.rs"),
        ),
        (
            "ERR invalid numkeys 'x': expected an integer from 1 to 64",
            include_str!("checkall.rs"),
        ),
        (
            "CROSSSLOT Keys in request don't hash to the same slot",
            include_str!("checkall.rs"),
        ),
        (
            "ERR invalid rate limit request: ...",
            include_str!("rls_cluster.rs"),
        ),
        (
            "ERR the domain must not be empty",
            include_str!("rls_cluster.rs"),
        ),
        (
            "ERR This instance has cluster support disabled",
            include_str!("cluster.rs"),
        ),
        (
            "ERR cluster_mode is not managed",
            include_str!("cluster.rs"),
        ),
        (
            "TRYAGAIN Slot is being moved, try again",
            include_str!("cluster.rs"),
        ),
        (
            "ERR no migration from <id> into this node in its map",
            include_str!("cluster.rs"),
        ),
        (
            "ERR IMPORT holds a state outside the migration's slots",
            include_str!("cluster.rs"),
        ),
        ("ERR IMPORT PART before BEGIN", include_str!("cluster.rs")),
        (
            "ERR invalid cluster config: <reason>",
            include_str!("cluster.rs"),
        ),
        ("MOVED <slot> <ip>:<port>", include_str!("cluster.rs")),
        (
            "CLUSTERDOWN Hash slot not served",
            include_str!("cluster.rs"),
        ),
        (
            "ERR policies come from the config file in cluster_mode managed (the same file on every node, reloaded with SIGHUP)",
            include_str!("cluster.rs"),
        ),
        (
            "ERR snapshot <path>: <reason>",
            include_str!("persistence.rs"),
        ),
        ("ERR Protocol error: ...", include_str!("robustness.rs")),
        (
            "ERR Protocol error: invalid multibulk length",
            include_str!("robustness.rs"),
        ),
        (
            "ERR Protocol error: invalid bulk length",
            include_str!("robustness.rs"),
        ),
        (
            "ERR Protocol error: query buffer limit exceeded",
            include_str!("robustness.rs"),
        ),
        (
            "ERR Protocol error: unauthenticated multibulk length",
            include_str!("security.rs"),
        ),
        (
            "ERR Protocol error: unauthenticated bulk length",
            include_str!("security.rs"),
        ),
        (
            "ERR policy 'x' has more than 32 rules",
            include_str!("security.rs"),
        ),
        (
            "ERR too many policies: at most 10000",
            include_str!("security.rs"),
        ),
        ("ERR No such client", include_str!("connections.rs")),
        (
            "ERR client-id should be greater than 0",
            include_str!("connections.rs"),
        ),
        (
            "ERR Background save already in progress",
            include_str!("../src/command/server.rs"),
        ),
    ];
    let mut config = tollgate::config::Config::from_toml(
        "[[policy]]\nname = \"x\"\nrules = [{ algorithm = \"gcra\", limit = 5, window = \"1s\" }]\n",
    )
    .unwrap();
    config.port = 0;
    let open = TestServer::manual_with(config.clone()).await;
    config.requirepass = Some("pw".into());
    let locked = TestServer::manual_with(config).await;
    let mut c = open.conn().await;
    let mut l = locked.conn().await;
    check(&mut c, "LIMIT.CHECK k token_bucket 1 1s").await;
    let drawn: &[(bool, &[&str], &str)] = &[
        (
            false,
            &["x", "a", "b"],
            "ERR unknown command 'x', with args beginning with: 'a' 'b' ",
        ),
        (
            false,
            &["LIMIT.CHECK", "k"],
            "ERR wrong number of arguments for 'limit.check' command",
        ),
        (
            false,
            &["ECHO"],
            "ERR wrong number of arguments for '<name>' command",
        ),
        (false, &["SHUTDOWN", "SAVE", "NOSAVE"], "ERR syntax error"),
        (
            false,
            &["SELECT", "x"],
            "ERR value is not an integer or out of range",
        ),
        (true, &["DBSIZE"], "NOAUTH Authentication required."),
        (true, &["DBSIZE"], "NOAUTH ..."),
        (
            true,
            &["AUTH", "nope"],
            "WRONGPASS invalid username-password pair or user is disabled.",
        ),
        (true, &["AUTH", "nope"], "WRONGPASS ..."),
        (
            true,
            &["HELLO", "3"],
            "NOAUTH HELLO must be called with the client already authenticated, ...",
        ),
        (
            false,
            &["LIMIT.CHECK", "j", "gcra", "1", "10x"],
            "ERR invalid window '10x': expected an integer with optional ms|s|m|h|d suffix",
        ),
        (
            false,
            &["LIMIT.CHECK", "j", "gcra", "1", "0"],
            "ERR invalid window ...",
        ),
        (
            false,
            &["LIMIT.CHECK", "j", "gcra", "0", "1s"],
            "ERR invalid limit ...",
        ),
        (
            false,
            &["LIMIT.CHECK", "j", "nope", "1", "1s"],
            "ERR unknown algorithm ...",
        ),
        (
            false,
            &["LIMIT.CHECK", "k", "gcra", "1", "1s"],
            "WRONGTYPE key 'k' holds token_bucket state, not gcra",
        ),
        (
            false,
            &["LIMIT.CHECK", "k", "gcra", "1", "1s"],
            "WRONGTYPE key 'k' holds <algorithm> state, not <algorithm>",
        ),
        (false, &["CL.THROTTLE", "k", "1", "1", "1"], "WRONGTYPE ..."),
        (
            false,
            &["LIMIT.POLICY", "DEL", "x"],
            "ERR policy 'x' is defined in the config file",
        ),
        (
            false,
            &["LIMIT.CHECK", "j", "POLICY", "nope"],
            "ERR unknown policy 'x'",
        ),
        (
            false,
            &["CONFIG", "x"],
            "ERR unknown subcommand 'x'. Try <COMMAND> HELP.",
        ),
        (
            false,
            &["CONFIG", "GET"],
            "ERR wrong number of arguments for 'config|get' command",
        ),
        (
            false,
            &["LIMIT.POLICY", "x"],
            "ERR unknown subcommand 'x'. Try LIMIT.POLICY HELP.",
        ),
        (
            false,
            &["CLIENT", "x"],
            "ERR unknown subcommand 'x'. Try CLIENT HELP.",
        ),
        (
            false,
            &["CLIENT", "SETINFO", "x", "y"],
            "ERR Unrecognized option 'x'",
        ),
        (
            false,
            &["CL.THROTTLE", "j", "-1", "1", "1"],
            "ERR invalid max_burst '-1': expected an integer from 0 to 999999999999",
        ),
        (
            false,
            &["CL.THROTTLE", "j", "1", "1000000000000", "1"],
            "ERR zero rates are not supported: ...",
        ),
        (
            false,
            &["HELLO", "4"],
            "NOPROTO unsupported protocol version",
        ),
        (
            false,
            &["LIMIT.CHECK", "j", "gcra", "1", "366d", "BURST", "1000"],
            "ERR invalid rule: refilling from empty (BURST * window / limit) would take more than 183000d",
        ),
        (
            false,
            &["CL.THROTTLE", "j", "1000", "1", "31622400"],
            "ERR invalid rule: refilling from empty ((max_burst + 1) * period / count_per_period) would take more than 183000d",
        ),
        (
            false,
            &["LIMIT.POLICY", "SET", "a b", "gcra", "1", "1s"],
            "ERR invalid policy name 'x': expected 1 to 128 printable characters without spaces",
        ),
        (
            false,
            &["CONFIG", "SET", "port", "1"],
            "ERR unknown subcommand 'SET'. Try CONFIG HELP.",
        ),
        (
            false,
            &["COMMAND", "x"],
            "ERR unknown subcommand 'x'. Try COMMAND HELP.",
        ),
        (
            false,
            &["HELLO", "x"],
            "ERR Protocol version is not an integer or out of range",
        ),
        (
            false,
            &["HELLO", "3", "x"],
            "ERR Syntax error in HELLO option 'x'",
        ),
        (
            false,
            &["AUTH", "pw"],
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ),
        (
            false,
            &["ACL", "SETUSER", "u", "+@x"],
            "ERR Error in ACL SETUSER modifier '+@x': Unknown category",
        ),
        (
            false,
            &["ACL", "SETUSER", "u", "+x"],
            "ERR Error in ACL SETUSER modifier '+x': Unknown command",
        ),
        (
            false,
            &["ACL", "SETUSER", "u", "x"],
            "ERR Error in ACL SETUSER modifier 'x': Syntax error",
        ),
        (
            false,
            &["ACL", "DELUSER", "default"],
            "ERR The 'default' user cannot be removed",
        ),
        (
            false,
            &["ACL", "LOAD"],
            "ERR This tollgate instance is not configured to use an ACL file. Set aclfile in the config file and restart.",
        ),
        (false, &["ACL", "CAT", "x"], "ERR Unknown category 'x'"),
        (
            false,
            &["ACL", "x"],
            "ERR unknown subcommand 'x'. Try ACL HELP.",
        ),
        (false, &["SELECT", "1"], "ERR DB index is out of range"),
        (
            false,
            &["LIMIT.PENDING", "k", "COUNT", "x"],
            "ERR invalid count 'x': expected an integer from 1 to 65536",
        ),
        (
            false,
            &["LIMIT.TOP", "COUNT", "x"],
            "ERR invalid count 'x': expected an integer from 1 to 100",
        ),
        (
            false,
            &["LIMIT.SETTLE", "k", "x", "1"],
            "ERR invalid reservation id 'x': expected 16 hexadecimal digits",
        ),
        (
            false,
            &["LIMIT.SETTLE", "k", "0123456789abcdef", "x"],
            "ERR invalid actual 'x': expected an integer from 0 to 1000000000000",
        ),
        (
            false,
            &["LIMIT.RESERVE", "k", "gcra", "1", "1s", "TIMEOUT", "x"],
            "ERR invalid timeout 'x': expected a duration from 1ms to 1d",
        ),
        (false, &["EXEC"], "ERR EXEC without MULTI"),
        (false, &["DISCARD"], "ERR DISCARD without MULTI"),
    ];
    for &(on_locked, cmd, form) in drawn {
        let said = error(if on_locked { &mut l } else { &mut c }, cmd).await;
        // The document names a bad name 'x' where these send another.
        let said = said.replace("'nope'", "'x'").replace("'a b'", "'x'");
        assert!(fits(form, &said), "{cmd:?}: {said:?} does not fit {form:?}");
    }
    // A restricted user: NOPERM for a command and for a key.
    let setuser = &[
        "ACL",
        "SETUSER",
        "observer",
        "on",
        ">secret",
        "+@read",
        "~limits:*",
    ];
    assert_eq!(run(&mut c, setuser).await.unwrap(), redis::Value::Okay);
    let mut o = open.conn().await;
    run(&mut o, &["AUTH", "observer", "secret"]).await.unwrap();
    let noperm_run = "NOPERM User observer has no permissions to run the 'limit.check' command";
    let noperm_key = "NOPERM No permissions to access a key";
    let said = error(&mut o, &["LIMIT.CHECK", "limits:1", "gcra", "1", "1s"]).await;
    assert_eq!(said, noperm_run);
    assert_eq!(error(&mut o, &["LIMIT.INFO", "other"]).await, noperm_key);
    let separately = [noperm_run, noperm_key];
    // The transaction errors are drawn by the test above.
    let transactions = [
        "ERR MULTI calls can not be nested",
        "EXECABORT Transaction discarded because of previous errors.",
    ];
    let mut undrawn = Vec::new();
    for form in documented_errors(include_str!("../docs/PROTOCOL.md")) {
        let covered = drawn.iter().any(|&(_, _, f)| f == form)
            || transactions.contains(&form.as_str())
            || separately.contains(&form.as_str())
            || elsewhere.iter().any(|&(f, test)| {
                let fixed = f.split('<').next().unwrap().trim_end_matches("...");
                f == form && test.contains(fixed)
            });
        if !covered {
            undrawn.push(form);
        }
    }
    assert!(
        undrawn.is_empty(),
        "docs/PROTOCOL.md quotes errors no test draws: {undrawn:#?}"
    );
    open.stop().await;
    locked.stop().await;
}
