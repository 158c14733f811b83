//! docs/PROTOCOL.md's command reference and the command table name the same
//! commands, in the same order, so neither can gain a command the other lacks.

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

use common::{TestServer, error, run};

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
