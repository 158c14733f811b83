//! Connections as an operator manages them: idle timeout (on the server's
//! clock), CLIENT KILL, the input budget all clients share, protected mode
//! and the open-file limit. Loopback only; 127.0.0.2 stands for a client
//! from another host.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::proc::Proc;
use common::{START_NS, TestServer, raw, until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tollgate::config::Config;

const SECOND: u64 = 1_000_000_000;

/// Sends `input` and reads what comes back until `expected` bytes have.
async fn ask(s: &mut TcpStream, input: &[u8], expected: usize) -> Vec<u8> {
    s.write_all(input).await.unwrap();
    let mut out = vec![0; expected];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut out))
        .await
        .expect("answered")
        .unwrap();
    out
}

/// Whether the server has closed `s` (it reads end of file).
async fn closed(s: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

fn manual(server: &TestServer) -> &tollgate::clock::ManualClock {
    server.clock.as_ref().unwrap()
}

/// Finding: no idle timeout, so 10,000 idle sockets held every slot. With
/// `timeout`, a client idle that long is closed, timed on the server's
/// clock; a client whose reply is held by WAIT is not idle.
#[tokio::test]
async fn idle_clients_are_closed_after_timeout() {
    let config = Config {
        timeout_secs: 10,
        ..Config::default()
    };
    let server = TestServer::manual_with(config).await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(ask(&mut idle, b"PING\r\n", 7).await, b"+PONG\r\n");
    until("the idle timer is set", || {
        manual(&server)
            .deadlines()
            .contains(&(START_NS + 10 * SECOND))
    })
    .await;
    // A waiter: its reply is held for 30 s, three timeouts.
    let mut waiter = TcpStream::connect(server.addr).await.unwrap();
    let take = b"LIMIT.CHECK w fixed_window 1 40s\r\n";
    assert_eq!(ask(&mut waiter, take, 4).await, b"*5\r\n");
    let mut rest = vec![0; 64];
    let _ = tokio::time::timeout(Duration::from_millis(200), waiter.read(&mut rest)).await;
    waiter
        .write_all(b"LIMIT.CHECK w fixed_window 1 40s WAIT 60s\r\n")
        .await
        .unwrap();
    until("the waiter sleeps", || {
        manual(&server)
            .deadlines()
            .contains(&(START_NS + 40 * SECOND))
    })
    .await;
    server.advance_ns(10 * SECOND - 1);
    let mut byte = [0u8; 1];
    let still_open = tokio::time::timeout(Duration::from_millis(100), idle.read(&mut byte)).await;
    assert!(still_open.is_err(), "closed before its time");
    server.advance_ns(1);
    assert!(closed(&mut idle).await, "idle past timeout and still open");
    // The waiter is not idle: it gets its answer at 40 s.
    server.advance_ns(30 * SECOND);
    let mut reply = vec![0; 4];
    tokio::time::timeout(Duration::from_secs(10), waiter.read_exact(&mut reply))
        .await
        .expect("the waiter was answered")
        .unwrap();
    assert_eq!(reply, b"*5\r\n");
    // Its idle time counts from the answer, not from its request.
    let mut rest = vec![0; 64];
    let _ = tokio::time::timeout(Duration::from_millis(200), waiter.read(&mut rest)).await;
    assert_eq!(ask(&mut waiter, b"PING\r\n", 7).await, b"+PONG\r\n");
    server.stop().await;
}

/// `CLIENT KILL`, both forms, and `SKIPME`.
#[tokio::test]
async fn client_kill_closes_the_named_clients() {
    let server = TestServer::manual().await;
    let mut admin = TcpStream::connect(server.addr).await.unwrap();
    let mut a = TcpStream::connect(server.addr).await.unwrap();
    let mut b = TcpStream::connect(server.addr).await.unwrap();
    let id_of = |reply: Vec<u8>| -> String {
        String::from_utf8(reply)
            .unwrap()
            .trim_start_matches(':')
            .trim()
            .to_string()
    };
    let a_id = id_of(ask(&mut a, b"CLIENT ID\r\n", 4).await);
    let b_addr = b.local_addr().unwrap().to_string();
    let kill_a = format!("CLIENT KILL ID {a_id}\r\n");
    assert_eq!(ask(&mut admin, kill_a.as_bytes(), 4).await, b":1\r\n");
    assert!(closed(&mut a).await);
    let kill_b = format!("CLIENT KILL {b_addr}\r\n");
    assert_eq!(ask(&mut admin, kill_b.as_bytes(), 5).await, b"+OK\r\n");
    assert!(closed(&mut b).await);
    let none = b"-ERR No such client\r\n";
    assert_eq!(ask(&mut admin, kill_b.as_bytes(), none.len()).await, none);
    // Itself: only with SKIPME no, and the reply comes first.
    assert_eq!(
        ask(&mut admin, b"CLIENT KILL USER default\r\n", 4).await,
        b":0\r\n"
    );
    let me = b"CLIENT KILL USER default SKIPME no\r\n";
    assert_eq!(ask(&mut admin, me, 4).await, b":1\r\n");
    assert!(closed(&mut admin).await);
    let said = raw(
        server.addr,
        b"CLIENT KILL ID 0\r\nCLIENT KILL ID 1 BOGUS x\r\n",
    )
    .await;
    assert_eq!(
        said,
        b"-ERR client-id should be greater than 0\r\n-ERR syntax error\r\n"
    );
    server.stop().await;
}

/// Finding: 20 clients could each hold 64 MB of unfinished input. All
/// clients together hold at most `maxmemory_clients`; past it the one
/// holding the most is closed, never a `CLIENT NO-EVICT on` one.
#[tokio::test]
async fn the_client_holding_the_most_input_is_evicted() {
    let config = Config {
        maxmemory_clients: 100_000,
        ..Config::default()
    };
    let server = TestServer::manual_with(config).await;
    let mut big = TcpStream::connect(server.addr).await.unwrap();
    let mut small = TcpStream::connect(server.addr).await.unwrap();
    // Unfinished requests: a 200 KB argument announced, part of it sent.
    let part = |n: usize| {
        let mut p = b"*2\r\n$4\r\nECHO\r\n$200000\r\n".to_vec();
        p.extend(std::iter::repeat_n(b'x', n));
        p
    };
    big.write_all(&part(60_000)).await.unwrap();
    let clients = server.shared.clients.clone();
    until("the big input is counted", || {
        clients.qbuf_total() >= 60_000
    })
    .await;
    small.write_all(&part(30_000)).await.unwrap();
    until("the small input is counted", || {
        clients.qbuf_total() >= 90_000
    })
    .await;
    // Past the budget: the big one goes, the small one stays.
    small.write_all(&[b'x'; 20_000]).await.unwrap();
    assert!(closed(&mut big).await);
    until("the eviction is counted", || {
        clients.evicted.load(std::sync::atomic::Ordering::Relaxed) == 1
    })
    .await;
    // A no-evict client is passed over: the other is closed instead.
    let mut guarded = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(
        ask(&mut guarded, b"CLIENT NO-EVICT on\r\n", 5).await,
        b"+OK\r\n"
    );
    guarded.write_all(&part(90_000)).await.unwrap();
    assert!(closed(&mut small).await);
    until("the second eviction is counted", || {
        clients.evicted.load(std::sync::atomic::Ordering::Relaxed) == 2
    })
    .await;
    let said = String::from_utf8(raw(server.addr, b"INFO stats\r\n").await).unwrap();
    assert!(said.contains("evicted_clients:2\r\n"), "{said}");
    server.stop().await;
}

/// A client from another host, seen from the server (127.0.0.2 is not
/// loopback to Redis, which counts only 127.0.0.1 and ::1).
async fn from_another_host(server: SocketAddr, input: &[u8]) -> Vec<u8> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut s = socket.connect(server).await.unwrap();
    let _ = s.write_all(input).await;
    let _ = s.shutdown().await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    out
}

/// Finding: `--bind 0.0.0.0` with no password served anyone who reached the
/// port (SHUTDOWN, FLUSHALL, ...). Protected mode, on by default, turns
/// them away with Redis's DENIED word, unless a password is set.
#[tokio::test]
async fn protected_mode_serves_only_loopback_without_a_password() {
    let open = TestServer::manual().await;
    let said = from_another_host(open.addr, b"FLUSHALL\r\n").await;
    assert_eq!(said, tollgate::server::DENIED);
    assert!(
        String::from_utf8_lossy(&said).starts_with("-DENIED tollgate is running in protected mode")
    );
    assert_eq!(raw(open.addr, b"PING\r\n").await, b"+PONG\r\n");
    open.stop().await;
    let with_password = TestServer::manual_with(Config {
        requirepass: Some("pw".into()),
        ..Config::default()
    })
    .await;
    let said = from_another_host(with_password.addr, b"AUTH pw\r\nPING\r\n").await;
    assert_eq!(said, b"+OK\r\n+PONG\r\n");
    with_password.stop().await;
    let unprotected = TestServer::manual_with(Config {
        protected_mode: false,
        ..Config::default()
    })
    .await;
    let said = from_another_host(unprotected.addr, b"PING\r\n").await;
    assert_eq!(said, b"+PONG\r\n");
    unprotected.stop().await;
}

/// Finding: with a file-descriptor limit below max_clients, connections
/// past it were accepted by the kernel and never served. At start the
/// limit is raised if it can be; if not, max_clients is lowered to fit,
/// with a WARN line, as Redis does.
#[test]
fn max_clients_fits_the_open_file_limit() {
    let dir = common::scratch_dir();
    let proc = Proc::start_with_open_files(
        200,
        &["--data-dir", dir.to_str().unwrap(), "--bind", "127.0.0.1"],
    );
    let warned = proc
        .early
        .iter()
        .find(|l| l.contains("max_clients lowered"))
        .cloned()
        .expect("a WARN line at start");
    assert!(
        warned.contains("max_clients 10000 needs 10032 open files"),
        "{warned}"
    );
    assert!(warned.contains("max_clients lowered to 168"), "{warned}");
    let mut c = proc.conn();
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxclients")
        .query(&mut c)
        .unwrap();
    assert_eq!(got, ["maxclients", "168"]);
    // Past the cap every client is answered (none left accepted and
    // unserved): 167 more fill it, the next ones hear that it is full.
    use std::io::{Read, Write};
    let addr: SocketAddr = proc.addr.parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..167 {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"PING\r\n").unwrap();
        let mut pong = [0u8; 7];
        s.read_exact(&mut pong).unwrap();
        assert_eq!(&pong, b"+PONG\r\n");
        held.push(s);
    }
    for _ in 0..20 {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut said = String::new();
        s.read_to_string(&mut said).unwrap();
        assert_eq!(said, "-ERR max number of clients reached\r\n");
    }
    drop(held);
    proc.signal("TERM");
    assert!(proc.wait());
}

/// The server side of a connection as Linux shows it in /proc/net/tcp:
/// its timer field (`02:<ticks>` is the keepalive timer), once it exists.
async fn server_side_timer(server: SocketAddr, client: &TcpStream) -> String {
    let hex = |a: SocketAddr| format!("0100007F:{:04X}", a.port());
    let (local, remote) = (hex(server), hex(client.local_addr().unwrap()));
    for _ in 0..500 {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let found = table.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&local.as_str()) && f.get(2) == Some(&remote.as_str()))
                .then(|| f[5].to_string())
        });
        if let Some(timer) = found {
            return timer;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the server's side of the connection is not in /proc/net/tcp");
}

/// `tcp_keepalive` (300 s by default) arms TCP keepalive on the server's
/// side of every connection, so dead peers are found; 0 turns it off.
#[tokio::test]
async fn connections_keep_alive() {
    let server = TestServer::manual().await;
    let mut c = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(ask(&mut c, b"PING\r\n", 7).await, b"+PONG\r\n");
    let timer = server_side_timer(server.addr, &c).await;
    let (kind, ticks) = timer.split_once(':').unwrap();
    assert_eq!(kind, "02", "no keepalive timer: {timer}");
    // Clock ticks (USER_HZ 100) left until the first probe: 300 s at most.
    let left = u64::from_str_radix(ticks, 16).unwrap();
    assert!((29_000..=30_000).contains(&left), "{timer}");
    server.stop().await;
    let off = TestServer::manual_with(Config {
        tcp_keepalive_secs: 0,
        ..Config::default()
    })
    .await;
    let mut c = TcpStream::connect(off.addr).await.unwrap();
    assert_eq!(ask(&mut c, b"PING\r\n", 7).await, b"+PONG\r\n");
    assert!(server_side_timer(off.addr, &c).await.starts_with("00:"));
    off.stop().await;
}
