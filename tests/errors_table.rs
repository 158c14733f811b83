//! The README's errors table says what the server says: each row with a
//! command that triggers it is checked against the server's own error line.

mod common;

use common::{TestServer, check, error};
use tollgate::config::Config;

/// (the row's situation, a command that triggers it).
const ROWS: &[(&str, &[&str])] = &[
    ("unknown command", &["x", "a", "b"]),
    ("wrong argument count", &["LIMIT.CHECK"]),
    (
        "option not applicable, repeated, or unknown",
        &["LIMIT.CHECK", "k", "gcra", "1", "1s", "BUCKETS", "2"],
    ),
    (
        "not an integer (Redis's commands, CL.THROTTLE)",
        &["CL.THROTTLE", "k", "abc", "1", "1"],
    ),
    (
        "CL.THROTTLE number out of range",
        &["CL.THROTTLE", "k", "-1", "1", "1"],
    ),
    ("bad duration", &["LIMIT.CHECK", "k", "gcra", "1", "10x"]),
    (
        "duration out of range",
        &["LIMIT.CHECK", "k", "gcra", "1", "0"],
    ),
    (
        "count not an integer or out of range (LIMIT.CHECK, LIMIT.POLICY)",
        &["LIMIT.CHECK", "k", "gcra", "0", "1s"],
    ),
    (
        "rule refills too slowly",
        &["LIMIT.CHECK", "k", "gcra", "1", "366d", "BURST", "1000"],
    ),
    ("unknown algorithm", &["LIMIT.CHECK", "k", "x", "1", "1s"]),
    ("unknown policy", &["LIMIT.CHECK", "k", "POLICY", "api"]),
    ("config-file policy changed", &["LIMIT.POLICY", "DEL", "x"]),
    (
        "other algorithm on a key",
        &["LIMIT.CHECK", "k", "gcra", "1", "1s"],
    ),
];

/// The errors table: situation -> the first `code span` of its error cell.
fn table() -> Vec<(String, String)> {
    let readme = include_str!("../README.md");
    let section = readme.split("\n## Errors\n").nth(1).unwrap();
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| situation") && !l.starts_with("|---"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').splitn(2, " | ").collect();
            let first_code = cells.get(1)?.split('`').nth(1)?;
            Some((cells[0].trim().to_string(), first_code.replace("\\|", "|")))
        })
        .collect()
}

#[tokio::test]
async fn every_checked_row_is_what_the_server_says() {
    let config = Config::from_toml(
        "[[policy]]\nname = \"x\"\nrules = [{ algorithm = \"gcra\", limit = 1, window = \"1s\" }]",
    )
    .unwrap();
    let server = TestServer::manual_with(config).await;
    let mut c = server.conn().await;
    check(&mut c, "LIMIT.CHECK k token_bucket 1 1s").await;
    let rows = table();
    for (situation, cmd) in ROWS {
        let documented = rows
            .iter()
            .find(|(s, _)| s == situation)
            .unwrap_or_else(|| panic!("no README row {situation:?}"))
            .1
            .clone();
        let said = error(&mut c, cmd).await;
        assert_eq!(said.trim_end(), documented.trim_end(), "{situation}");
    }
    server.stop().await;
}
