//! Safe to expose: what a client that has not authenticated may do, and
//! what no client can do to the others. One test per finding of the probe
//! (issue 10), over real sockets on loopback.

mod common;

use common::{TestServer, raw, request};
use tollgate::config::Config;

fn with_password() -> Config {
    Config {
        requirepass: Some("pw".into()),
        ..Config::default()
    }
}

/// Finding: a client that never authenticates could make the server buffer
/// 64 MB (an unfinished request of 62 bulks of 1 MiB). Before AUTH only
/// Redis's small requests are read: the header of a larger one closes the
/// connection at once, before its body is buffered.
#[tokio::test]
async fn before_auth_only_small_requests_are_read() {
    let server = TestServer::manual_with(with_password()).await;
    // An unfinished 62 x 1 MiB request: refused at the first header.
    let mut big = b"*62\r\n$1048576\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 4096));
    let said = raw(server.addr, &big).await;
    assert_eq!(
        said,
        b"-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
    let bulk = b"*2\r\n$4\r\nAUTH\r\n$16385\r\n";
    let said = raw(server.addr, bulk).await;
    assert_eq!(
        said,
        b"-ERR Protocol error: unauthenticated bulk length\r\n"
    );
    // Ten arguments are fine (and answered NOAUTH).
    let ten: Vec<&[u8]> = std::iter::once(&b"LIMIT.INFO"[..])
        .chain(std::iter::repeat_n(&b"k"[..], 9))
        .collect();
    let said = raw(server.addr, &request(&ten)).await;
    assert_eq!(said, b"-NOAUTH Authentication required.\r\n");
    // After AUTH, the same connection may send the large request: AUTH and
    // the request arrive in one read, so the request is read after AUTH
    // has run, with the limits it earned.
    let mut input = request(&[b"AUTH", b"pw"]);
    let payload = vec![b'y'; 100_000];
    input.extend(request(&[b"ECHO", &payload]));
    let eleven: Vec<&[u8]> = std::iter::once(&b"LIMIT.INFO"[..])
        .chain(std::iter::repeat_n(&b"k"[..], 10))
        .collect();
    input.extend(request(&eleven));
    let said = raw(server.addr, &input).await;
    let mut expected = b"+OK\r\n$100000\r\n".to_vec();
    expected.extend(&payload);
    expected.extend(b"\r\n-ERR syntax error\r\n");
    assert_eq!(said, expected);
    server.stop().await;
}

/// With no password set, every client is authenticated from the start and
/// has the full limits.
#[tokio::test]
async fn without_a_password_the_full_limits_apply() {
    let server = TestServer::manual().await;
    let payload = vec![b'z'; 50_000];
    let said = raw(server.addr, &request(&[b"ECHO", &payload])).await;
    assert_eq!(&said[..9], b"$50000\r\nz");
    server.stop().await;
}

/// Finding: `*-2` answered the decoder crate's internal text
/// ("isize_to_usize"). Redis ignores a count of zero or less; so does
/// tollgate, and its protocol errors are in its own words.
#[tokio::test]
async fn negative_counts_are_ignored_as_redis_does() {
    let server = TestServer::manual().await;
    let said = raw(server.addr, b"*-2\r\n*0\r\nPING\r\n").await;
    assert_eq!(said, b"+PONG\r\n");
    server.stop().await;
}

/// Finding: `CONFIG GET requirepass` printed the password. It says whether
/// one is set, never what it is.
#[tokio::test]
async fn config_get_never_shows_the_password() {
    let server = TestServer::manual_with(with_password()).await;
    let said = raw(server.addr, b"AUTH pw\r\nCONFIG GET requirepass\r\n").await;
    assert_eq!(
        said,
        b"+OK\r\n*2\r\n$11\r\nrequirepass\r\n$8\r\n(hidden)\r\n"
    );
    server.stop().await;
    let open = TestServer::manual().await;
    let said = raw(open.addr, b"CONFIG GET requirepass\r\n").await;
    assert_eq!(said, b"*2\r\n$11\r\nrequirepass\r\n$0\r\n\r\n");
    open.stop().await;
}

/// Finding: 200,000 wrong AUTH attempts on one connection took 0.1 s and
/// logged nothing. Each is counted in INFO (Redis's
/// `acl_access_denied_auth`) and in /metrics; the log gets at most a line a
/// second (`throttle_log`'s unit test).
#[tokio::test]
async fn failed_auth_attempts_are_counted() {
    let server = TestServer::manual_with(with_password()).await;
    let mut input = b"AUTH nope\r\n".repeat(1000);
    input.extend(b"HELLO 3 AUTH default nope\r\nAUTH pw\r\nINFO stats\r\n");
    let said = String::from_utf8(raw(server.addr, &input).await).unwrap();
    assert_eq!(said.matches("-WRONGPASS").count(), 1001);
    assert!(said.contains("acl_access_denied_auth:1001\r\n"), "{said}");
    server.stop().await;
}

/// Finding: one `LIMIT.POLICY SET` of 300,000 rules made each check of that
/// policy allocate 6 MB. A policy has at most 32 rules, a server at most
/// 10,000 policies; past either, a clear error and nothing changes.
#[tokio::test]
async fn policies_are_bounded() {
    let server = TestServer::manual().await;
    let set = |name: &str, rules: usize| {
        let mut words = format!("LIMIT.POLICY SET {name}");
        for i in 0..rules {
            words += &format!(" fixed_window {} 1s", i + 1);
        }
        words + "\r\n"
    };
    let said = raw(server.addr, set("p", 32).as_bytes()).await;
    assert_eq!(said, b"+OK\r\n");
    let said = raw(server.addr, set("x", 33).as_bytes()).await;
    assert_eq!(said, b"-ERR policy 'x' has more than 32 rules\r\n");
    // The finding's size, as a RESP array (an inline request is at most 64 KiB).
    let mut huge: Vec<Vec<u8>> = vec![b"LIMIT.POLICY".to_vec(), b"SET".to_vec(), b"q".to_vec()];
    for _ in 0..300_000 {
        huge.extend([b"gcra".to_vec(), b"1".to_vec(), b"1s".to_vec()]);
    }
    let huge: Vec<&[u8]> = huge.iter().map(Vec::as_slice).collect();
    let said = raw(server.addr, &request(&huge)).await;
    assert_eq!(said, b"-ERR policy 'q' has more than 32 rules\r\n");
    let said = raw(server.addr, b"LIMIT.POLICY GET q\r\n").await;
    assert_eq!(said, b"$-1\r\n");
    // 10,000 policies in all ("p" and 9,999 more), then no more.
    let mut input = String::new();
    for i in 1..10_000 {
        input += &set(&format!("n{i}"), 1);
    }
    input += &set("one-too-many", 1);
    input += &set("p", 1); // replacing one is still allowed
    let said = String::from_utf8(raw(server.addr, input.as_bytes()).await).unwrap();
    assert_eq!(said.matches("+OK").count(), 10_000);
    assert!(said.contains("-ERR too many policies: at most 10000\r\n"));
    server.stop().await;
}

#[test]
fn the_config_file_holds_the_same_bounds() {
    let rules: Vec<String> = (0..33)
        .map(|i| {
            format!(
                "{{ algorithm = \"gcra\", limit = {}, window = \"1s\" }}",
                i + 1
            )
        })
        .collect();
    let toml = format!(
        "[[policy]]\nname = \"big\"\nrules = [{}]\n",
        rules.join(", ")
    );
    let err = Config::from_toml(&toml).unwrap_err();
    assert!(err.contains("policy 'big' has more than 32 rules"), "{err}");
}

/// Finding (issue 11): the MULTI queue was unbounded and not counted: 2M
/// queued commands took RSS to 865 MB. Queued commands count against the
/// client's query buffer limit, as the input they came from did, and stop
/// counting at EXEC, DISCARD or RESET.
#[tokio::test]
async fn a_transaction_queue_counts_against_the_query_buffer_limit() {
    let server = TestServer::manual_with(Config {
        max_query_buffer_bytes: 40_000,
        ..Config::default()
    })
    .await;
    // 100 commands of about 320 bytes each (their arguments and a handle
    // for each) fit; DISCARD gives it all back,
    // so the same again fits, and EXEC runs them.
    let queue = |n: usize| {
        let mut input = b"MULTI\r\n".to_vec();
        for i in 0..n {
            input.extend(request(&[
                b"LIMIT.CHECK",
                format!("key:{i:0>60}").as_bytes(),
                b"gcra",
                b"10",
                b"1s",
            ]));
        }
        input
    };
    let mut input = queue(100);
    input.extend(b"DISCARD\r\n");
    input.extend(queue(100));
    input.extend(b"EXEC\r\n");
    let said = String::from_utf8(raw(server.addr, &input).await).unwrap();
    assert_eq!(said.matches("+QUEUED").count(), 200, "{said}");
    assert!(said.contains("+QUEUED\r\n*100\r\n"), "the EXEC ran");
    // 200 in one transaction pass the limit: the client is closed, as
    // with any input past it.
    let said = String::from_utf8(raw(server.addr, &queue(200)).await).unwrap();
    assert!(
        said.ends_with("-ERR Protocol error: query buffer limit exceeded\r\n"),
        "{said}"
    );
    assert!(said.matches("+QUEUED").count() < 150);
    server.stop().await;
}
