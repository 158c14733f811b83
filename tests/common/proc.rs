//! The `tollgate` binary run as an operator runs it, for process tests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

/// A running tollgate process, the address it listens on, and its log.
pub struct Proc {
    pub child: Child,
    pub addr: String,
    /// The log lines before it listened (the start-up line among them).
    pub early: Vec<String>,
    log: mpsc::Receiver<String>,
}

impl Proc {
    /// Starts the binary on a free port and waits until it listens.
    pub fn start(args: &[&str]) -> Proc {
        let mut command = Command::new(BIN);
        command.args(["--port", "0"]).args(args);
        Proc::start_command(command)
    }

    /// Starts the binary with at most `files` open files (`ulimit -n`).
    pub fn start_with_open_files(files: u32, args: &[&str]) -> Proc {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {files} && exec \"$0\" \"$@\""))
            .arg(BIN)
            .args(["--port", "0"])
            .args(args);
        Proc::start_command(command)
    }

    fn start_command(mut command: Command) -> Proc {
        let mut child = command
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, log) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut early = Vec::new();
        loop {
            let Ok(line) = log.recv_timeout(Duration::from_secs(20)) else {
                let _ = child.kill();
                let status = child.wait();
                panic!("tollgate did not start: {status:?}");
            };
            // TLS only (`--port 0` with `--tls-port`): its one listener.
            let listening = line
                .split("listening on ")
                .nth(1)
                .or_else(|| line.split("listening for TLS on ").nth(1));
            if let Some(addr) = listening {
                let addr = addr.trim().replace("0.0.0.0", "127.0.0.1");
                return Proc {
                    child,
                    addr,
                    early,
                    log,
                };
            }
            early.push(line);
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> String {
        self.addr.rsplit(':').next().unwrap().to_string()
    }

    pub fn conn(&self) -> redis::Connection {
        let client = redis::Client::open(format!("redis://{}/", self.addr)).unwrap();
        client.get_connection().unwrap()
    }

    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }

    /// Waits for the process to end; answers whether it exited 0.
    pub fn wait(mut self) -> bool {
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("tollgate did not stop");
    }

    /// Waits until a log line contains `text`.
    pub fn wait_log(&self, text: &str) -> String {
        loop {
            let line = self
                .log
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no log line with {text:?}"));
            if line.contains(text) {
                return line;
            }
        }
    }
}

impl Drop for Proc {
    /// A test that fails midway leaves no server behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion; answers (success, stderr).
pub fn run_to_end(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("TOLLGATE_REQUIREPASS")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
