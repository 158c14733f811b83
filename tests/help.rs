//! Every "Try X HELP." error points at a HELP that exists and answers as
//! Redis's do: an array of status lines, naming each subcommand.

mod common;

use common::{TestServer, error, run};
use redis::Value;

#[tokio::test]
async fn every_try_help_error_points_at_a_working_help() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    let subcommands: [(&str, &[&str]); 4] = [
        ("LIMIT.POLICY", &["SET", "GET", "DEL", "LIST", "HELP"]),
        ("CONFIG", &["GET", "HELP"]),
        ("COMMAND", &["COUNT", "LIST", "INFO", "DOCS", "HELP"]),
        (
            "CLIENT",
            &[
                "ID", "GETNAME", "SETNAME", "SETINFO", "LIST", "INFO", "HELP",
            ],
        ),
    ];
    for (command, subs) in subcommands {
        let e = error(&mut c, &[command, "NOPE"]).await;
        let named = e
            .split("Try ")
            .nth(1)
            .and_then(|rest| rest.strip_suffix(" HELP."))
            .unwrap_or_else(|| panic!("{command}: {e}"));
        assert_eq!(named, command);
        let Value::Array(lines) = run(&mut c, &[named, "HELP"]).await.unwrap() else {
            panic!("{command} HELP is not an array");
        };
        let lines: Vec<String> = lines
            .into_iter()
            .map(|l| match l {
                Value::SimpleString(s) => s,
                other => panic!("{command} HELP line {other:?} is not a status line"),
            })
            .collect();
        assert!(
            lines[0].starts_with(&format!("{command} <subcommand>")),
            "{}",
            lines[0]
        );
        for sub in subs {
            assert!(
                lines.iter().any(|l| l.starts_with(sub)),
                "{command} HELP does not name {sub}: {lines:?}"
            );
        }
        let extra = error(&mut c, &[command, "HELP", "x"]).await;
        assert!(
            extra.starts_with("ERR wrong number of arguments"),
            "{extra}"
        );
    }
    server.stop().await;
}
