//! An application that needs only `distlock-client`: it takes a lock,
//! writes through a fenced resource with the lock's token, and releases.
//!
//! `cargo run -p distlock-example-client-only -- 127.0.0.1:7001` against a
//! running `distlock serve`; with `--check` it only checks its arguments
//! and exits (the test suite builds and runs it that way).

use distlock_client::{Client, ClientOptions, FencedResource, HostPort, Mode, Wait};
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check_only = args.iter().any(|a| a == "--check");
    let servers: Vec<HostPort> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    if servers.is_empty() {
        return Err("usage: distlock-example-client-only HOST:PORT... [--check]".into());
    }
    if check_only {
        println!(
            "would lock example-resource through {} server(s)",
            servers.len()
        );
        return Ok(());
    }
    // The servers may still be starting: keep trying for a few seconds.
    let client =
        Client::connect_within(servers, ClientOptions::default(), Duration::from_secs(10)).await?;
    let session = client.open_session(Duration::from_secs(10)).await?;
    let guard = session
        .lock_with("example-resource", Mode::Exclusive, Wait::Forever)
        .await?;
    let resource = FencedResource::new();
    resource.check_and_record("example-resource", guard.token())?;
    println!("holding example-resource with token {}", guard.token());
    guard.release().await?;
    session.close().await?;
    Ok(())
}
