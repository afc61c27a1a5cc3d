//! `distlock lock -- CMD` against a real server: holders never overlap,
//! tokens increase, and `--try` on a held lock exits 75.

mod common;

use common::{Server, free_addr};
use std::process::{Command, Stdio};

fn distlock_lock(server: &str, args: &[&str], script: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_distlock"))
        .args(["lock", "test-lock", "--servers", server])
        .args(args)
        .args(["--", "sh", "-c", script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run distlock lock")
}

#[test]
fn concurrent_holders_never_overlap_and_tokens_increase() {
    let dir = tempfile::tempdir().expect("temp dir");
    let client = free_addr();
    let _server = Server::start(&dir.path().join("data"), client, free_addr(), &[]);
    let work = tempfile::tempdir().expect("work dir");
    let counter = work.path().join("counter");
    let tokens = work.path().join("tokens");
    std::fs::write(&counter, "0").expect("init counter");
    // Read, pause, write: any overlap of two holders loses an increment.
    let script = format!(
        "v=$(cat {c}); sleep 0.05; echo $((v+1)) > {c}; echo $DISTLOCK_TOKEN >> {t}",
        c = counter.display(),
        t = tokens.display()
    );
    let server = client.to_string();
    let runs = 8;
    let children: Vec<_> = (0..runs)
        .map(|_| distlock_lock(&server, &["--wait", "60s"], &script))
        .collect();
    let mut ok = 0;
    for mut child in children {
        if child.wait().expect("wait").success() {
            ok += 1;
        }
    }
    assert_eq!(ok, runs, "every run got the lock and succeeded");
    let count: u32 = std::fs::read_to_string(&counter)
        .expect("counter")
        .trim()
        .parse()
        .expect("a number");
    assert_eq!(
        count, runs,
        "the counter equals the successful runs: no overlap"
    );
    let seen: Vec<u64> = std::fs::read_to_string(&tokens)
        .expect("tokens")
        .lines()
        .map(|l| l.trim().parse().expect("a token"))
        .collect();
    assert_eq!(seen.len(), runs as usize);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "tokens strictly increase in holding order: {seen:?}"
    );
}

#[test]
fn try_on_a_held_lock_exits_75_and_the_command_status_is_passed_through() {
    let dir = tempfile::tempdir().expect("temp dir");
    let client = free_addr();
    let _server = Server::start(&dir.path().join("data"), client, free_addr(), &[]);
    let server = client.to_string();
    let work = tempfile::tempdir().expect("work dir");
    let started = work.path().join("started");
    let release = work.path().join("release");
    let script = format!(
        "touch {s}; while [ ! -e {r} ]; do sleep 0.02; done",
        s = started.display(),
        r = release.display()
    );
    let mut holder = distlock_lock(&server, &["--wait", "60s"], &script);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the holder never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = distlock_lock(&server, &["--try"], "exit 0")
        .wait()
        .expect("wait");
    assert_eq!(status.code(), Some(75), "--try on a held lock");
    std::fs::write(&release, "").expect("release the holder");
    assert!(holder.wait().expect("wait").success());
    let status = distlock_lock(&server, &["--try"], "exit 3")
        .wait()
        .expect("wait");
    assert_eq!(status.code(), Some(3), "the command's own status");
}
