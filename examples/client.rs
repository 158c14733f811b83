//! Using tollgate from Rust with the `redis` crate.
//!
//! Start the server (`cargo run --release`), then
//!
//! ```sh
//! cargo run --example client                              # redis://127.0.0.1:6379/
//! cargo run --example client -- redis://10.0.0.5:7000/    # an address as the argument
//! REDIS_URL=redis://:secret@127.0.0.1:6379/ cargo run --example client
//! ```

use std::time::Duration;

/// The server's URL: the first argument, else `REDIS_URL`, else the default.
fn server_url() -> String {
    std::env::args()
        .nth(1)
        .or_else(|| std::env::var("REDIS_URL").ok())
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".into())
}

#[tokio::main]
async fn main() -> redis::RedisResult<()> {
    let url = server_url();
    println!("connecting to {url}");
    let client = redis::Client::open(url.as_str())?;
    // WAIT and the leaky bucket hold replies: allow the client to wait longer
    // than the longest WAIT you send (the crate's default is 500 ms).
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;

    // 10 requests per second per user, bursts of 20.
    let (allowed, limit, remaining, retry_after_ms, reset_after_ms): (i64, i64, i64, i64, i64) =
        redis::cmd("LIMIT.CHECK")
            .arg("user:42")
            .arg("token_bucket")
            .arg(10)
            .arg("1s")
            .arg("BURST")
            .arg(20)
            .query_async(&mut conn)
            .await?;
    if allowed == 1 {
        println!("allowed: {remaining} of {limit} left, full again in {reset_after_ms} ms");
    } else {
        println!("denied: retry in {retry_after_ms} ms");
    }

    // Wait up to 2 s for a turn instead of being denied.
    let reply: Vec<i64> = redis::cmd("LIMIT.CHECK")
        .arg("user:42")
        .arg("token_bucket")
        .arg(10)
        .arg("1s")
        .arg("BURST")
        .arg(20)
        .arg("WAIT")
        .arg("2s")
        .query_async(&mut conn)
        .await?;
    println!("with WAIT: {reply:?}");
    Ok(())
}
