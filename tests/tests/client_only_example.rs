//! The example application in `examples/client-only`, which depends on
//! `distlock-client` alone (and tokio), builds, runs against a real server
//! and takes a lock with a fencing token.

use distlock_tests::{Server, run_within};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[test]
fn an_application_built_on_distlock_client_alone_takes_a_lock() {
    let server = Server::single();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args(["run", "--quiet", "-p", "distlock-example-client-only"])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--")
        .arg(server.client_addr.to_string());
    let out = run_within(&mut cmd, Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("holding example-resource with token"),
        "{stdout}"
    );
}
