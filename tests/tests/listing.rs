//! Who holds what, against real servers: `distlock sessions` and `locks`
//! show the names sessions were opened with, paging through locks while
//! others come and go never skips or repeats one that exists throughout,
//! and `distlock revoke` ends a session as its expiry would, its lock
//! granted to nobody until its lock-delay is over.

use distlock_tests::{
    HeldLock, PATIENCE, Process, Server, client_session, distlock, run_within, wait_until,
};
use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// `distlock ARGS --json --servers SERVERS`, parsed, with its exit status.
fn json_command(servers: &str, args: &[&str]) -> Value {
    let mut cmd = distlock();
    cmd.args(args).args(["--json", "--servers", servers]);
    let out = run_within(&mut cmd, Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn sessions(servers: &str) -> Vec<Value> {
    json_command(servers, &["sessions"])["sessions"]
        .as_array()
        .expect("a list")
        .clone()
}

fn locks(servers: &str, prefix: &str) -> Vec<Value> {
    json_command(servers, &["locks", prefix])["locks"]
        .as_array()
        .expect("a list")
        .clone()
}

#[test]
fn sessions_and_locks_show_who_opened_them() {
    let server = Server::single();
    let servers = server.client_addr.to_string();
    let named = HeldLock::start(
        &servers,
        &["--name", "nightly-backup", "--label", "team=storage"],
        "db/orders",
    );
    let plain = HeldLock::start(&servers, &[], "db/users");

    let listed = sessions(&servers);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let owner = |name: &str| {
        listed
            .iter()
            .find(|s| s["owner"]["name"] == name)
            .unwrap_or_else(|| panic!("a session named {name}: {listed:?}"))
            .clone()
    };
    let backup = owner("nightly-backup");
    assert_eq!(backup["held"], 1);
    assert_eq!(backup["owner"]["labels"]["team"], "storage");
    assert!(backup["owner"]["pid"].as_u64().is_some());
    // The default: USER@HOST PID.
    let other = listed
        .iter()
        .find(|s| s["owner"]["name"] != "nightly-backup")
        .expect("the other session");
    let name = other["owner"]["name"].as_str().expect("named");
    let pid = other["owner"]["pid"].as_u64().expect("a pid");
    assert!(
        name.contains('@') && name.ends_with(&format!(" {pid}")),
        "{name}"
    );

    let db = locks(&servers, "db/");
    let names: Vec<&str> = db
        .iter()
        .map(|l| l["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["db/orders", "db/users"]);
    assert_eq!(db[0]["holders"][0]["owner"]["name"], "nightly-backup");
    assert_eq!(db[0]["holders"][0]["session"], backup["session"]);
    assert!(locks(&servers, "nothing/").is_empty());

    // `status NAME` names the holder too.
    let out = run_within(
        distlock().args(["status", "db/orders", "--servers", &servers]),
        Duration::from_secs(20),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nightly-backup"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(named.finish().success());
    assert!(plain.finish().success());
}

#[test]
fn paging_never_skips_or_repeats_a_lock_that_exists_throughout() {
    let server = Server::single();
    let addr = server.client_addr;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let holder = client_session(&[addr], Duration::from_secs(10)).await;
        let mut stable = Vec::new();
        let mut guards = Vec::new();
        for i in 0..40 {
            let name = format!("k/{i:03}");
            guards.push(holder.lock(&name).await.expect("locks"));
            stable.push(name);
        }
        // Locks between and around the stable ones come and go meanwhile.
        let churner = client_session(&[addr], Duration::from_secs(10)).await;
        let churn = tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                let name = format!("k/{:03}x", n % 45);
                let early = format!("k/{:03}", 100 + n % 7);
                let a = churner.lock(&name).await.expect("churn locks");
                let b = churner.lock(&early).await.expect("churn locks");
                tokio::task::yield_now().await;
                a.release().await.expect("churn releases");
                b.release().await.expect("churn releases");
                n += 1;
            }
        });
        let reader = distlock_client::Client::connect_within(
            vec![addr],
            distlock_client::ClientOptions::default(),
            PATIENCE,
        )
        .await
        .expect("a reader connects");
        for pass in 0..15 {
            let mut seen = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = reader
                    .list_locks("k/", after.as_deref(), 3)
                    .await
                    .expect("lists");
                assert!(page.locks.len() <= 3);
                seen.extend(page.locks.into_iter().map(|l| l.name));
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            assert!(
                seen.windows(2).all(|w| w[0] < w[1]),
                "pass {pass}: names strictly increase (nothing repeated): {seen:?}"
            );
            for name in &stable {
                assert!(
                    seen.contains(name),
                    "pass {pass}: {name} was skipped: {seen:?}"
                );
            }
        }
        churn.abort();
        drop(guards);
    });
}

#[test]
fn revoke_ends_a_session_and_its_lock_delay_holds_the_lock() {
    let server = Server::single();
    let servers = server.client_addr.to_string();
    let holder = HeldLock::start(
        &servers,
        // A long TTL: keepalives every 10 s, so the holder learns of the
        // revocation when it gives the lock back, not from a keepalive.
        &["--name", "stuck-job", "--lock-delay", "3s", "--ttl", "30s"],
        "batch",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let granted = dir.path().join("granted");
    let mut waiter = Process::spawn(
        distlock()
            .args(["lock", "batch", "--name", "next-job", "--servers", &servers])
            .args(["--", "sh", "-c", &format!("touch {}", granted.display())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let session = wait_until("the second job waits", PATIENCE, || {
        let batch = locks(&servers, "batch");
        let lock = batch.first()?;
        (lock["waiters"].as_array()?.len() == 1).then(|| lock["holders"][0]["session"].clone())
    });
    let session = session.as_u64().expect("a session id").to_string();

    // Unknown sessions are refused, changing nothing.
    let out = run_within(
        distlock().args(["revoke", "999999", "--servers", &servers]),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        locks(&servers, "batch")[0]["holders"][0]["session"].to_string(),
        session
    );

    let revoked_at = Instant::now();
    let out = run_within(
        distlock().args(["revoke", &session, "--servers", &servers]),
        Duration::from_secs(20),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Until the waiter holds it, the lock has no holder and is in delay.
    let delay_ms = 3_000;
    wait_until("the next job is granted the lock", PATIENCE, || {
        if granted.exists() {
            return Some(());
        }
        let batch = locks(&servers, "batch");
        let lock = batch.first()?;
        match lock["holders"].as_array()?.first() {
            None => assert_eq!(lock["delay"]["delay_ms"], delay_ms, "{lock}"),
            Some(holder) => assert_eq!(holder["owner"]["name"], "next-job", "{lock}"),
        }
        None
    });
    assert!(
        revoked_at.elapsed() >= Duration::from_millis(delay_ms),
        "granted {:?} after the revocation, before the lock-delay ended",
        revoked_at.elapsed()
    );
    assert!(waiter.wait_exit(PATIENCE).success());
    assert!(granted.exists());
    // The revoked holder learns it lost its session, at the latest when it
    // gives the lock back: exit 70.
    assert_eq!(holder.finish().code(), Some(70));
}
