//! A tollgate server on 127.0.0.1:0 for one test, with a manual or real clock.
#![allow(dead_code)]

pub mod proc;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tollgate::clock::{Clock, ManualClock, SystemClock};
use tollgate::config::Config;
use tollgate::server::{self, Shared};

/// 2026-01-01T00:00:00Z, aligned to every window the tests use.
pub const START_NS: u64 = 1_767_225_600_000_000_000;

pub struct TestServer {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    pub clock: Option<ManualClock>,
    pub handle: JoinHandle<Result<(), String>>,
}

impl TestServer {
    /// A server whose time moves only when the test says so.
    pub async fn manual() -> TestServer {
        TestServer::manual_with(Config::default()).await
    }

    pub async fn manual_with(config: Config) -> TestServer {
        let clock = ManualClock::new(START_NS);
        TestServer::start(config, Arc::new(clock.clone()), Some(clock)).await
    }

    /// A server on the real clock (for WAIT and the leaky bucket's spacing).
    pub async fn real() -> TestServer {
        TestServer::start(Config::default(), Arc::new(SystemClock), None).await
    }

    pub async fn real_with(config: Config) -> TestServer {
        TestServer::start(config, Arc::new(SystemClock), None).await
    }

    async fn start(
        config: Config,
        clock: Arc<dyn Clock>,
        manual: Option<ManualClock>,
    ) -> TestServer {
        TestServer::start_with(config, clock, manual, false).await
    }

    async fn start_with(
        mut config: Config,
        clock: Arc<dyn Clock>,
        manual: Option<ManualClock>,
        restore: bool,
    ) -> TestServer {
        if config.data_dir == Config::default().data_dir {
            // Never write into the repository: each server gets its own directory.
            config.data_dir = scratch_dir();
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared::new(config, clock);
        if let Some(path) = &shared.config.aclfile {
            let pass = shared.config.requirepass.as_deref();
            let catalog = &tollgate::command::ACL_CATALOG;
            shared.users.load(path, pass, catalog).unwrap();
        }
        if restore {
            tollgate::persistence::load_into(&shared, false).unwrap();
        }
        let handle = tokio::spawn(server::run(
            listener,
            shared.clone(),
            std::future::pending(),
        ));
        TestServer {
            addr,
            shared,
            clock: manual,
            handle,
        }
    }

    /// A server on a manual clock set to `now_ns` that first restores the
    /// snapshot in `config.data_dir`, as the binary does.
    pub async fn restoring(config: Config, now_ns: u64) -> TestServer {
        let clock = ManualClock::new(now_ns);
        TestServer::start_with(config, Arc::new(clock.clone()), Some(clock), true).await
    }

    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).unwrap()
    }

    /// A RESP2 connection through the redis crate.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        connect(&self.client()).await
    }

    /// A RESP3 connection through the redis crate.
    pub async fn conn3(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(format!("{}?protocol=resp3", self.url())).unwrap();
        connect(&client).await
    }

    pub fn advance_ms(&self, ms: u64) {
        self.clock.as_ref().expect("a manual clock").advance_ms(ms);
    }

    pub fn advance_ns(&self, ns: u64) {
        self.clock.as_ref().expect("a manual clock").advance(ns);
    }

    /// Stops the server as SIGTERM does (with the final snapshot).
    pub async fn stop_saving(self) -> Result<(), String> {
        self.shared.begin_shutdown();
        self.handle.await.unwrap()
    }

    /// Stops the server without a final snapshot and waits until it has.
    pub async fn stop(self) {
        self.shared
            .persistence
            .save_on_shutdown
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.shared.begin_shutdown();
        self.handle.await.unwrap().unwrap();
    }
}

/// A new empty directory under the system's temp dir.
pub fn scratch_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tollgate-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A connection whose replies may take as long as a WAIT does (the redis
/// crate gives up after 500 ms by default).
pub async fn connect(client: &redis::Client) -> redis::aio::MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(std::time::Duration::from_secs(60)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

/// One INFO section as text.
pub async fn info(conn: &mut redis::aio::MultiplexedConnection, section: &str) -> String {
    redis::cmd("INFO")
        .arg(section)
        .query_async(conn)
        .await
        .unwrap()
}

/// Runs the check `words` `times` times inside MULTI/EXEC, where no reply is
/// held (the leaky bucket otherwise answers at each request's real-time turn).
pub async fn checks_in_multi(
    conn: &mut redis::aio::MultiplexedConnection,
    words: &str,
    times: usize,
) -> Vec<Vec<i64>> {
    let words: Vec<&str> = words.split_whitespace().collect();
    let mut pipe = redis::pipe();
    pipe.atomic();
    for _ in 0..times {
        let cmd = pipe.cmd(words[0]);
        for w in &words[1..] {
            cmd.arg(*w);
        }
    }
    pipe.query_async(conn).await.unwrap()
}

/// Runs a command given as words and answers the reply value.
pub async fn run(
    conn: &mut redis::aio::MultiplexedConnection,
    words: &[&str],
) -> redis::RedisResult<redis::Value> {
    let mut cmd = redis::cmd(words[0]);
    for w in &words[1..] {
        cmd.arg(*w);
    }
    cmd.query_async(conn).await
}

/// Runs a check and answers the five integers.
pub async fn check(conn: &mut redis::aio::MultiplexedConnection, words: &str) -> Vec<i64> {
    let words: Vec<&str> = words.split_whitespace().collect();
    let mut cmd = redis::cmd(words[0]);
    for w in &words[1..] {
        cmd.arg(*w);
    }
    cmd.query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("{words:?}: {e}"))
}

/// Runs a command expected to fail and answers the error line.
pub async fn error(conn: &mut redis::aio::MultiplexedConnection, words: &[&str]) -> String {
    match run(conn, words).await {
        Ok(v) => panic!("{words:?} answered {v:?}, expected an error"),
        Err(e) => error_line(&e),
    }
}

/// The full error line as the server sent it (code and message).
pub fn error_line(e: &redis::RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => e.to_string(),
    }
}

/// Sends raw bytes on a fresh socket and reads until the server has answered
/// `expect_bytes` bytes or closed.
pub async fn raw(addr: SocketAddr, input: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(input).await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out)).await;
    out
}

/// A request in RESP, as clients send it: an array of bulk strings.
pub fn request(args: &[&[u8]]) -> Vec<u8> {
    tollgate::resp::encode_request(args)
}

/// Waits (real time, up to 10 s) until `f` holds: the server has caught up.
pub async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}
