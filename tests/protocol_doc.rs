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
