use super::*;

fn catalog() -> Catalog {
    let e = |name, categories: &[&'static str]| Entry {
        name,
        categories: categories.to_vec(),
    };
    Catalog {
        entries: vec![
            e("limit.check", &["@write", "@fast"]),
            e("limit.info", &["@read", "@fast"]),
            e("config|get", &["@admin", "@slow", "@dangerous"]),
            e("config|help", &["@slow"]),
            e("ping", &["@fast", "@connection"]),
        ],
    }
}

#[test]
fn rules_apply_in_order() {
    let c = catalog();
    let mut u = User::new("observer");
    u.apply_all(&["on", ">secret", "+@read", "+ping", "~limits:*"], &c)
        .unwrap();
    assert!(u.may_run("limit.info") && u.may_run("ping"));
    assert!(!u.may_run("limit.check") && !u.may_run("config|get"));
    assert!(u.may_access(b"limits:42") && !u.may_access(b"other"));
    assert!(u.accepts(b"secret") && !u.accepts(b"Secret") && !u.accepts(b""));
    // A container names all its subcommands; one subcommand only itself.
    u.apply_all(&["+config"], &c).unwrap();
    assert!(u.may_run("config|get") && u.may_run("config|help"));
    u.apply_all(&["-config|get"], &c).unwrap();
    assert!(!u.may_run("config|get") && u.may_run("config|help"));
    // -@x from everything leaves the rest.
    let mut admin = User::new("a");
    admin
        .apply_all(
            &["on", "nopass", "allcommands", "-@dangerous", "allkeys"],
            &c,
        )
        .unwrap();
    assert!(admin.may_run("limit.check") && !admin.may_run("config|get"));
    assert!(!admin.unrestricted());
    admin.apply_all(&["+@all"], &c).unwrap();
    assert!(admin.unrestricted() && admin.accepts(b"anything"));
}

#[test]
fn a_bad_rule_changes_nothing() {
    let c = catalog();
    let mut u = User::new("u");
    let before = u.clone();
    let err = u.apply_all(&["on", "+@read", "+nope"], &c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Error in ACL SETUSER modifier '+nope': Unknown command"
    );
    let err = u.apply_all(&["+@nope"], &c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Error in ACL SETUSER modifier '+@nope': Unknown category"
    );
    let err = u.apply_all(&["bogus"], &c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Error in ACL SETUSER modifier 'bogus': Syntax error"
    );
    assert_eq!(u, before);
}

#[test]
fn passwords_are_kept_only_as_digests() {
    let c = catalog();
    let mut u = User::new("u");
    let hex = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";
    u.apply_all(&["on", &format!("#{hex}"), ">other"], &c)
        .unwrap();
    // "secret"'s SHA-256, given as a digest, opens the user.
    assert!(u.accepts(b"secret") && u.accepts(b"other") && !u.accepts(b"x"));
    let line = u.describe();
    assert!(
        line.contains(&format!("#{hex}")) && !line.contains("secret"),
        "{line}"
    );
    u.apply_all(&["<other"], &c).unwrap();
    assert!(!u.accepts(b"other"));
    u.apply_all(&["off"], &c).unwrap();
    assert!(!u.accepts(b"secret"));
    assert!(u.apply_all(&["#abc"], &c).is_err());
    let upper = format!("#{}", hex.to_uppercase());
    assert!(
        u.apply_all(&[upper.as_str()], &c).is_err(),
        "upper case is refused, as Redis"
    );
}

#[test]
fn an_aclfile_loads_all_or_nothing() {
    let c = catalog();
    let text = "# users\nuser observer on >s +@read ~limits:*\n\nuser app on nopass allkeys +@all -@dangerous &*\n";
    let users = users::parse_file(text, Some("pw"), &c).unwrap();
    assert_eq!(
        users.keys().collect::<Vec<_>>(),
        ["app", "default", "observer"]
    );
    // Without a default line, default stands for requirepass.
    assert!(users["default"].accepts(b"pw") && !users["default"].accepts(b"x"));
    let bad = "user a on\nuser b on +nope\n";
    let err = users::parse_file(bad, None, &c).unwrap_err();
    assert_eq!(
        err,
        "line 2: Error in ACL SETUSER modifier '+nope': Unknown command"
    );
    assert!(users::parse_file("user a on\nuser a off\n", None, &c).is_err());
    assert!(users::parse_file("group a\n", None, &c).is_err());
}
