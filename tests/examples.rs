//! The Rust client example finds the server from its argument or REDIS_URL.

mod common;

use common::TestServer;

/// The example binary `cargo test` built next to this test.
fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    dir.join("examples").join(name)
}

#[tokio::test]
async fn the_client_example_takes_its_address_from_an_argument_or_redis_url() {
    let server = TestServer::real().await;
    let url = server.url();
    let by_arg = tokio::process::Command::new(example("client"))
        .arg(&url)
        .env_remove("REDIS_URL")
        .output()
        .await
        .unwrap();
    let by_env = tokio::process::Command::new(example("client"))
        .env("REDIS_URL", &url)
        .output()
        .await
        .unwrap();
    for out in [by_arg, by_env] {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(&format!("connecting to {url}")), "{text}");
        assert!(text.contains("allowed: "), "{text}");
        assert!(text.contains("with WAIT: [1, 20,"), "{text}");
    }
    server.stop().await;
}
