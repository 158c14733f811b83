//! TLS: certificates made here (rcgen), the redis crate's TLS client,
//! client certificates required, optional or not asked for, plain and TLS
//! ports at once, certificates reloaded without dropping connections, and
//! (ignored by default: it needs redis-cli) `redis-cli --tls --cacert`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::net::TcpListener;
use tollgate::clock::SystemClock;
use tollgate::config::{AuthClients, Config};
use tollgate::server::{self, Listeners, Shared};

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as
/// PEM files in a fresh directory.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn new() -> Certs {
        let dir = common::scratch_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        // Each certificate its own name: OpenSSL takes a leaf named as its
        // issuer for self-signed.
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "tollgate test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
        write("ca.pem", ca.pem());
        for (name, sans) in [
            ("server", vec!["127.0.0.1".to_string(), "localhost".into()]),
            ("client", vec!["client".into()]),
        ] {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(sans).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            let cert = params.signed_by(&key, &ca).unwrap();
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}.key"), key.serialize_pem());
        }
        Certs { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    fn config(&self, auth: AuthClients) -> Config {
        Config {
            tls_port: 1, // any non-zero: the test binds its own listener
            tls_cert_file: Some(self.path("server.pem")),
            tls_key_file: Some(self.path("server.key")),
            tls_ca_cert_file: Some(self.path("ca.pem")),
            tls_auth_clients: auth,
            data_dir: common::scratch_dir(),
            ..Config::default()
        }
    }
}

/// A server on a plain and a TLS listener; their addresses.
struct TlsServer {
    shared: Arc<Shared>,
    plain: std::net::SocketAddr,
    tls: std::net::SocketAddr,
    handle: tokio::task::JoinHandle<Result<(), String>>,
}

impl TlsServer {
    async fn start(config: Config) -> TlsServer {
        let shared = Shared::new(config, Arc::new(SystemClock));
        shared.tls.load(&shared.config).unwrap();
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (plain_addr, tls_addr) = (plain.local_addr().unwrap(), tls.local_addr().unwrap());
        let listeners = Listeners {
            plain: Some(plain),
            tls: Some(tls),
        };
        let handle = tokio::spawn(server::serve(
            listeners,
            shared.clone(),
            std::future::pending(),
        ));
        TlsServer {
            shared,
            plain: plain_addr,
            tls: tls_addr,
            handle,
        }
    }

    async fn stop(self) {
        self.shared
            .persistence
            .save_on_shutdown
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.shared.begin_shutdown();
        self.handle.await.unwrap().unwrap();
    }
}

/// A TLS client trusting the test CA, with the client certificate or not.
fn client(certs: &Certs, addr: std::net::SocketAddr, with_cert: bool) -> redis::Client {
    let client_tls = with_cert.then(|| redis::ClientTlsConfig {
        client_cert: certs.read("client.pem"),
        client_key: certs.read("client.key"),
    });
    redis::Client::build_with_tls(
        format!("rediss://127.0.0.1:{}/", addr.port()),
        redis::TlsCertificates {
            client_tls,
            root_cert: Some(certs.read("ca.pem")),
        },
    )
    .unwrap()
}

/// A check over TLS: the decision, or the connection error.
async fn check_over(client: &redis::Client) -> Result<Vec<i64>, String> {
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    redis::cmd("LIMIT.CHECK")
        .arg(&["k", "fixed_window", "10", "1m"])
        .query_async(&mut c)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn client_certificates_required_optional_or_not_asked_for() {
    let certs = Certs::new();
    for (auth, without_cert_ok) in [
        (AuthClients::Yes, false),
        (AuthClients::Optional, true),
        (AuthClients::No, true),
    ] {
        let server = TlsServer::start(certs.config(auth)).await;
        let with = check_over(&client(&certs, server.tls, true)).await;
        let without = check_over(&client(&certs, server.tls, false)).await;
        if auth == AuthClients::No {
            // Not asked for: a client that offers one still connects.
            assert!(with.is_ok(), "{auth:?}: {with:?}");
        } else {
            assert_eq!(with.as_ref().map(|d| d[0]), Ok(1), "{auth:?}");
        }
        assert_eq!(without.is_ok(), without_cert_ok, "{auth:?}: {without:?}");
        // The plain port serves the same state at the same time.
        let plain = redis::Client::open(format!("redis://{}/", server.plain)).unwrap();
        let mut c = plain.get_multiplexed_async_connection().await.unwrap();
        let info: Vec<redis::Value> = redis::cmd("LIMIT.INFO")
            .arg("k")
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(info.len(), 1);
        server.stop().await;
    }
}

#[tokio::test]
async fn certificates_reload_without_dropping_connections() {
    let certs = Certs::new();
    let server = TlsServer::start(certs.config(AuthClients::No)).await;
    let old = client(&certs, server.tls, false);
    let mut open = old.get_multiplexed_async_connection().await.unwrap();
    // A new CA and server certificate replace the files.
    let renewed = Certs::new();
    for f in ["ca.pem", "server.pem", "server.key"] {
        std::fs::copy(renewed.path(f), certs.path(f)).unwrap();
    }
    server::reload_tls(&server.shared);
    // The open connection goes on; a new client must trust the new CA.
    let pong: String = redis::cmd("PING").query_async(&mut open).await.unwrap();
    assert_eq!(pong, "PONG");
    assert!(
        check_over(&client(&renewed, server.tls, false))
            .await
            .is_ok()
    );
    assert!(
        check_over(&client(&Certs::new(), server.tls, false))
            .await
            .is_err()
    );
    // A broken file is not taken: the renewed certificates stay in use.
    std::fs::write(certs.path("server.pem"), "not a certificate").unwrap();
    server::reload_tls(&server.shared);
    assert!(
        check_over(&client(&renewed, server.tls, false))
            .await
            .is_ok()
    );
    server.stop().await;
}

#[test]
fn tls_settings_are_checked_at_start() {
    let certs = Certs::new();
    let missing = |c: Config| c.with_flags(&Default::default()).unwrap_err().to_string();
    let mut c = certs.config(AuthClients::Yes);
    c.tls_ca_cert_file = None;
    assert_eq!(
        missing(c),
        "tls_auth_clients yes needs tls_ca_cert_file (or tls_auth_clients no)"
    );
    let mut c = certs.config(AuthClients::No);
    c.tls_key_file = None;
    assert_eq!(missing(c), "tls_port needs tls_cert_file and tls_key_file");
    // A file that is not PEM stops the start with one line naming it.
    let bad = Config {
        tls_cert_file: Some(certs.path("client.key")),
        ..certs.config(AuthClients::No)
    };
    let err = tollgate::tls::Tls::default().load(&bad).unwrap_err();
    assert!(err.contains("client.key"), "{err}");
    let toml = "tls_port = 6380\ntls_auth_clients = \"sometimes\"\n";
    let err = Config::from_toml(toml).unwrap_err();
    assert!(
        err.contains("invalid tls_auth_clients 'sometimes'"),
        "{err}"
    );
}

/// `redis-cli --tls --cacert` against the binary, TLS only (`--port 0`).
/// Needs redis-cli (Debian: redis-tools); `.ci/run` installs it and runs
/// this with `cargo test --test tls -- --ignored`.
#[test]
#[ignore]
fn redis_cli_speaks_tls() {
    let certs = Certs::new();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = common::scratch_dir();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let mut child = std::process::Command::new(common::proc::BIN)
        .args(["--port", "0", "--tls-port", &port.to_string()])
        .args(["--tls-cert-file", &s(&certs.path("server.pem"))])
        .args(["--tls-key-file", &s(&certs.path("server.key"))])
        .args(["--tls-auth-clients", "no", "--data-dir", &s(&dir)])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let cli = |args: &[&str]| {
        std::process::Command::new("redis-cli")
            .args([
                "--tls",
                "--cacert",
                &s(&certs.path("ca.pem")),
                "-p",
                &port.to_string(),
            ])
            .args(args)
            .output()
            .expect("redis-cli (apt-get install redis-tools)")
    };
    let mut answered = String::new();
    let mut said = String::new();
    for _ in 0..100 {
        let out = cli(&["LIMIT.CHECK", "k", "gcra", "5", "1s"]);
        answered = String::from_utf8_lossy(&out.stdout).to_string();
        said = String::from_utf8_lossy(&out.stderr).to_string();
        if out.status.success() && !answered.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        answered.split_whitespace().collect::<Vec<_>>(),
        ["1", "5", "4", "-1", "200"],
        "redis-cli said: {said}"
    );
}

/// The binary: `kill -HUP` reads renewed certificate files; the open TLS
/// connection goes on, new ones get the new certificate.
#[tokio::test]
async fn sighup_reloads_certificates_in_the_running_binary() {
    let certs = Certs::new();
    let tls_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = common::scratch_dir();
    let s = |p: PathBuf| p.to_str().unwrap().to_string();
    let proc = common::proc::Proc::start(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &s(certs.path("server.pem")),
        "--tls-key-file",
        &s(certs.path("server.key")),
        "--tls-auth-clients",
        "no",
        "--data-dir",
        &s(dir),
    ]);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    let mut open = client(&certs, addr, false)
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let renewed = Certs::new();
    for f in ["server.pem", "server.key"] {
        std::fs::copy(renewed.path(f), certs.path(f)).unwrap();
    }
    proc.signal("HUP");
    proc.wait_log("TLS certificates reloaded");
    let pong: String = redis::cmd("PING").query_async(&mut open).await.unwrap();
    assert_eq!(pong, "PONG");
    assert!(check_over(&client(&renewed, addr, false)).await.is_ok());
    assert!(check_over(&client(&certs, addr, false)).await.is_err());
    proc.signal("TERM");
    assert!(proc.wait());
}
