//! ACL users over real sockets: an aclfile in Redis's format, AUTH and
//! HELLO as a user, NOPERM for commands and keys (inside MULTI too), changes
//! that reach connected clients, DELUSER closing its clients, passwords
//! never shown, and ACL LOAD all or nothing.

mod common;

use common::{TestServer, error, raw, run};
use redis::Value;
use tollgate::config::Config;

/// "secret"'s SHA-256, as an aclfile may give it.
const SECRET_SHA: &str = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";

async fn server_with(aclfile: &str) -> (TestServer, std::path::PathBuf) {
    let dir = common::scratch_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("users.acl");
    std::fs::write(&path, aclfile).unwrap();
    let config = Config {
        aclfile: Some(path.clone()),
        ..Config::default()
    };
    (TestServer::manual_with(config).await, path)
}

/// A file written for Redis (channels, `&*`, `#<sha256>`, comments).
const REDIS_FILE: &str = "\
# written for Redis 7
user default off
user admin on >adminpw ~* &* +@all
user observer on #2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b resetchannels +@read +limit.info -@admin ~limits:*
user app on >apppw allkeys allchannels +@all -@dangerous
";

#[tokio::test]
async fn users_from_a_redis_acl_file() {
    let (server, _) = server_with(REDIS_FILE).await;
    // default is off: nothing works before AUTH, and AUTH as default fails.
    let said = raw(
        server.addr,
        b"PING\r\nAUTH whatever\r\nAUTH observer secret\r\nLIMIT.INFO limits:1\r\nACL WHOAMI\r\n",
    )
    .await;
    assert_eq!(
        String::from_utf8(said).unwrap(),
        "-NOAUTH Authentication required.\r\n-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n*0\r\n-NOPERM User observer has no permissions to run the 'acl|whoami' command\r\n"
    );
    let mut o = server.conn().await;
    run(&mut o, &["HELLO", "2", "AUTH", "observer", "secret"])
        .await
        .unwrap();
    // Read commands on its keys; not checks, not other keys, not admin.
    assert_eq!(
        run(&mut o, &["LIMIT.INFO", "limits:1"]).await.unwrap(),
        Value::Array(vec![])
    );
    assert_eq!(
        error(&mut o, &["LIMIT.CHECK", "limits:1", "gcra", "1", "1s"]).await,
        "NOPERM User observer has no permissions to run the 'limit.check' command"
    );
    assert_eq!(
        error(&mut o, &["LIMIT.INFO", "users:1"]).await,
        "NOPERM No permissions to access a key"
    );
    assert_eq!(
        error(&mut o, &["CONFIG", "GET", "port"]).await,
        "NOPERM User observer has no permissions to run the 'config|get' command"
    );
    // The app may check but not run dangerous commands.
    let mut a = server.conn().await;
    run(&mut a, &["AUTH", "app", "apppw"]).await.unwrap();
    let checked = run(&mut a, &["LIMIT.CHECK", "users:1", "gcra", "5", "1s"])
        .await
        .unwrap();
    assert!(matches!(checked, Value::Array(_)));
    assert_eq!(
        error(&mut a, &["FLUSHALL"]).await,
        "NOPERM User app has no permissions to run the 'flushall' command"
    );
    // Passwords are shown only as SHA-256.
    let mut admin = server.conn().await;
    run(&mut admin, &["AUTH", "admin", "adminpw"])
        .await
        .unwrap();
    let listed: Vec<String> = redis::cmd("ACL")
        .arg("LIST")
        .query_async(&mut admin)
        .await
        .unwrap();
    let observer = listed
        .iter()
        .find(|l| l.starts_with("user observer"))
        .unwrap();
    assert!(
        observer.contains(&format!("#{SECRET_SHA}")) && observer.contains("~limits:*"),
        "{observer}"
    );
    assert!(
        listed
            .iter()
            .all(|l| !l.contains("adminpw") && !l.contains("apppw"))
    );
    let users: Vec<String> = redis::cmd("ACL")
        .arg("USERS")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(users, ["admin", "app", "default", "observer"]);
    server.stop().await;
}

#[tokio::test]
async fn changes_reach_connected_clients_and_deleted_users_are_closed() {
    let (server, _) = server_with("user default on nopass ~* +@all\n").await;
    let mut admin = server.conn().await;
    let set = &["ACL", "SETUSER", "bob", "on", ">pw", "+@all", "~*"];
    assert_eq!(run(&mut admin, set).await.unwrap(), Value::Okay);
    let mut bob = server.conn().await;
    run(&mut bob, &["AUTH", "bob", "pw"]).await.unwrap();
    run(&mut bob, &["DBSIZE"]).await.unwrap();
    // Taken away while connected: the next command is refused.
    run(&mut admin, &["ACL", "SETUSER", "bob", "-dbsize"])
        .await
        .unwrap();
    assert_eq!(
        error(&mut bob, &["DBSIZE"]).await,
        "NOPERM User bob has no permissions to run the 'dbsize' command"
    );
    // Inside MULTI the refusal is at once and aborts the transaction.
    run(&mut bob, &["MULTI"]).await.unwrap();
    error(&mut bob, &["DBSIZE"]).await;
    assert!(error(&mut bob, &["EXEC"]).await.starts_with("EXECABORT"));
    // GETUSER shows the rules and the digest, never the password.
    let got = run(&mut admin, &["ACL", "GETUSER", "bob"]).await.unwrap();
    let text = format!("{got:?}");
    assert!(
        text.contains("+@all -dbsize") && !text.contains("\"pw\""),
        "{text}"
    );
    // Deleted: its connection is closed.
    let deleted = run(&mut admin, &["ACL", "DELUSER", "bob", "nobody"])
        .await
        .unwrap();
    assert_eq!(deleted, Value::Int(1));
    let gone = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if run(&mut bob, &["PING"]).await.is_err() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    assert!(gone.await.is_ok(), "bob's connection stayed open");
    server.stop().await;
}

#[tokio::test]
async fn acl_load_is_all_or_nothing() {
    let (server, path) =
        server_with("user default on nopass ~* +@all\nuser a on >x +@all ~*\n").await;
    let mut c = server.conn().await;
    std::fs::write(
        &path,
        "user default on nopass ~* +@all\nuser b on >y +nope\n",
    )
    .unwrap();
    let said = error(&mut c, &["ACL", "LOAD"]).await;
    assert!(
        said.contains("line 2: Error in ACL SETUSER modifier '+nope': Unknown command"),
        "{said}"
    );
    let users: Vec<String> = redis::cmd("ACL")
        .arg("USERS")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(users, ["a", "default"]);
    std::fs::write(
        &path,
        "user default on nopass ~* +@all\nuser b on >y +@read ~*\n",
    )
    .unwrap();
    assert_eq!(run(&mut c, &["ACL", "LOAD"]).await.unwrap(), Value::Okay);
    let users: Vec<String> = redis::cmd("ACL")
        .arg("USERS")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(users, ["b", "default"]);
    let cats: Vec<String> = redis::cmd("ACL")
        .arg("CAT")
        .query_async(&mut c)
        .await
        .unwrap();
    for needed in [
        "read",
        "write",
        "admin",
        "fast",
        "slow",
        "dangerous",
        "connection",
    ] {
        assert!(
            cats.iter().any(|c| c == needed),
            "{needed} missing from {cats:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn requirepass_is_the_default_users_password() {
    let server = TestServer::manual_with(Config {
        requirepass: Some("pw".into()),
        ..Config::default()
    })
    .await;
    let said = raw(
        server.addr,
        b"AUTH default pw\r\nACL WHOAMI\r\nCLIENT INFO\r\n",
    )
    .await;
    let said = String::from_utf8(said).unwrap();
    assert!(said.starts_with("+OK\r\n$7\r\ndefault\r\n"), "{said}");
    assert!(said.contains(" user=default "), "{said}");
    server.stop().await;
}
