//! The command line of ARCHITECTURE.md §12 against real processes: `status --json`,
//! `dev`, and `serve --config FILE.toml`.

use distlock_tests::{
    Cluster, Conn, PATIENCE, Process, client_session, distlock, free_addr, free_port_block,
    run_within, status_json, wait_until, within,
};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

/// `status --json` of a 3-server cluster has the documented cluster
/// fields; `status NAME --json` adds the lock's holders, waiters and mode,
/// for a lock held through the client library (exclusive, with a waiter)
/// and one held by `distlock lock --shared`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_reports_the_cluster_and_a_locks_holders_waiters_and_mode() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let servers = cluster.servers_arg();

    let holder = client_session(&cluster.client_addrs(), Duration::from_secs(10)).await;
    let guard = within("lock", PATIENCE, holder.lock("L"))
        .await
        .expect("locked");
    let waiter = client_session(&cluster.client_addrs(), Duration::from_secs(10)).await;
    let waiter_id = waiter.id();
    let waiting = tokio::spawn(async move {
        let g = waiter.lock("L").await.expect("granted after the holder");
        (waiter, g)
    });
    let mut conn = Conn::connect(cluster.addr(leader)).await;
    conn.wait_lock("L", "the waiter waits", |v| {
        v.is_some_and(|v| v.waiters.iter().any(|w| w.session == waiter_id))
    })
    .await;

    // Members publish their client addresses through the log as they
    // start: wait until all three have.
    let v = tokio::task::spawn_blocking({
        let servers = servers.clone();
        move || {
            distlock_tests::wait_until("every member's address is published", PATIENCE, || {
                let v = status_json(&servers, None);
                let published = v["members"].as_array().is_some_and(|m| {
                    m.iter()
                        .all(|m| m["client_addr"].as_str().is_some_and(|a| !a.is_empty()))
                });
                published.then_some(v)
            })
        }
    })
    .await
    .expect("join");
    assert_eq!(v["leader"], leader, "{v}");
    assert!(v["term"].as_u64().is_some_and(|t| t >= 1), "{v}");
    let commit = v["commit_index"].as_u64().expect("commit_index");
    assert!(commit >= guard.token().0, "the grant is committed: {v}");
    let members = v["members"].as_array().expect("members");
    assert_eq!(members.len(), 3, "{v}");
    for (m, id) in members.iter().zip(1_u64..) {
        assert_eq!(m["id"], id, "{v}");
        assert_eq!(m["client_addr"], cluster.addr(id).to_string(), "{v}");
        let role = if id == leader { "leader" } else { "follower" };
        assert_eq!(m["role"], role, "{v}");
        assert!(
            m["match_index"].is_u64(),
            "the leader reports match indexes: {v}"
        );
    }
    let replicated = members
        .iter()
        .filter(|m| m["match_index"].as_u64().is_some_and(|i| i >= commit))
        .count();
    assert!(replicated >= 2, "a majority has the committed log: {v}");

    // A lock held through the client library, with a waiter.
    let v = tokio::task::spawn_blocking({
        let servers = servers.clone();
        move || status_json(&servers, Some("L"))
    })
    .await
    .expect("join");
    assert_eq!(
        v["leader"], leader,
        "the cluster's fields are there too: {v}"
    );
    assert!(v["term"].is_u64() && v["commit_index"].is_u64(), "{v}");
    assert_eq!(v["members"].as_array().map(Vec::len), Some(3), "{v}");
    assert_eq!(v["mode"], "exclusive", "{v}");
    assert_eq!(
        v["holders"],
        json!([{ "session": holder.id().0, "token": guard.token().0, "owner": null }]),
        "{v}"
    );
    let waiters = v["waiters"].as_array().expect("waiters");
    assert_eq!(waiters.len(), 1, "{v}");
    assert_eq!(waiters[0]["session"], waiter_id.0, "{v}");
    assert_eq!(waiters[0]["mode"], "exclusive", "{v}");

    // A lock held by `distlock lock --shared`.
    let work = tempfile::tempdir().expect("work dir");
    let (token_file, release) = (work.path().join("token"), work.path().join("release"));
    let script = format!(
        "echo $DISTLOCK_TOKEN > {t}.tmp; mv {t}.tmp {t}; while [ ! -e {r} ]; do sleep 0.02; done",
        t = token_file.display(),
        r = release.display()
    );
    let mut cli_holder = Process::spawn(
        distlock()
            .args(["lock", "by-cli", "--shared", "--servers", &servers, "--"])
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let token: u64 = wait_until("distlock lock runs its command", PATIENCE, || {
        std::fs::read_to_string(&token_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    });
    let v = tokio::task::spawn_blocking({
        let servers = servers.clone();
        move || status_json(&servers, Some("by-cli"))
    })
    .await
    .expect("join");
    assert_eq!(v["mode"], "shared", "{v}");
    let holders = v["holders"].as_array().expect("holders");
    assert_eq!(holders.len(), 1, "{v}");
    assert_eq!(holders[0]["token"], token, "{v}");
    assert!(holders[0]["session"].is_u64(), "{v}");
    assert_eq!(v["waiters"], json!([]), "{v}");
    std::fs::write(&release, "").expect("let the command finish");
    let status = cli_holder.wait_exit_async(PATIENCE).await;
    assert!(status.success(), "{status:?}");

    within("release", PATIENCE, guard.release())
        .await
        .expect("released");
    let (_waiter, g) = within("the waiter's grant", PATIENCE, waiting)
        .await
        .expect("join");
    assert!(g.token().0 > token);
}

/// `status NAME` asked right after the leader is killed, while the other
/// two have not yet elected a new one, waits for the election and reads
/// the lock through the new leader: the holder keeps it, same token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_lock_waits_out_an_election() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let holder = client_session(&cluster.client_addrs(), Duration::from_secs(10)).await;
    let guard = within("lock", PATIENCE, holder.lock("E"))
        .await
        .expect("locked");
    cluster.server(leader).kill();
    let survivors: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|&id| id != leader)
        .collect();
    let servers = cluster.servers_arg_of(&survivors);

    let v = tokio::task::spawn_blocking(move || status_json(&servers, Some("E")))
        .await
        .expect("join");
    assert!(
        v["leader"].as_u64().is_some_and(|l| l != leader),
        "a new leader answered: {v}"
    );
    assert_eq!(v["holders"][0]["token"], guard.token().0, "{v}");
}

/// The output of a running `distlock dev`, line by line.
struct Dev {
    process: Process,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    _stderr: tempfile::NamedTempFile,
}

impl Dev {
    fn start(base_port: u16) -> Self {
        let stderr = tempfile::NamedTempFile::new().expect("a file for dev's log");
        let mut process = Process::spawn(
            distlock()
                .args(["dev", "--nodes", "3", "--base-port", &base_port.to_string()])
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(stderr.reopen().expect("reopen")),
        );
        let stdout = process.child().stdout.take().expect("dev's stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            process,
            lines,
            seen: Vec::new(),
            _stderr: stderr,
        }
    }

    /// The first line (of those printed so far or to come) containing
    /// `needle`.
    fn line_with(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "distlock dev printed no line with {needle:?} ({e}); it printed {:?}; log:\n{}",
                    self.seen,
                    std::fs::read_to_string(self._stderr.path()).unwrap_or_default()
                ),
            }
        }
    }
}

/// `distlock dev --nodes 3 --base-port P` prints the `--servers` value
/// (P, P+1, P+2), `distlock lock` works against it, and `signal` stops it
/// (exit 0) and removes its temporary data directory.
fn dev_serves_locks_and_cleans_up_on(signal: &str) {
    let base = free_port_block(&[0, 1, 2, 100, 101, 102, 200, 201, 202]);
    let mut dev = Dev::start(base);
    let servers_line = dev.line_with("--servers");
    let servers = servers_line
        .split_whitespace()
        .last()
        .expect("a --servers value")
        .to_owned();
    let expected: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", base + i)).collect();
    assert_eq!(servers, expected.join(","), "{servers_line}");
    let data_line = dev.line_with("data in ");
    let data_dir = PathBuf::from(
        data_line
            .rsplit_once("data in ")
            .expect("data in DIR")
            .1
            .trim(),
    );
    assert!(
        data_dir.is_dir(),
        "{} exists while dev runs",
        data_dir.display()
    );

    let out = run_within(
        distlock().args([
            "lock",
            "demo",
            "--servers",
            &servers,
            "--",
            "sh",
            "-c",
            "echo $DISTLOCK_TOKEN",
        ]),
        PATIENCE,
    );
    assert!(
        out.status.success(),
        "distlock lock against dev: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout);
    assert!(
        token.trim().parse::<u64>().is_ok_and(|t| t > 0),
        "the command saw a token: {token:?}"
    );

    dev.process.signal(signal);
    let status = dev.process.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "dev exits 0 on SIG{signal}: {status:?}");
    assert!(
        !data_dir.exists(),
        "SIG{signal} removed {}",
        data_dir.display()
    );
}

#[test]
fn dev_serves_locks_and_sigterm_removes_its_data() {
    dev_serves_locks_and_cleans_up_on("TERM");
}

#[test]
fn dev_serves_locks_and_sigint_removes_its_data() {
    dev_serves_locks_and_cleans_up_on("INT");
}

/// A TOML configuration for server `id` of the cluster `clients`/`peers`.
fn config_toml(id: usize, data: &Path, clients: &[SocketAddr], peers: &[SocketAddr]) -> String {
    let table = |addrs: &[SocketAddr]| {
        addrs
            .iter()
            .zip(1..)
            .map(|(a, i)| format!("{i} = \"{a}\"\n"))
            .collect::<String>()
    };
    format!(
        "id = {id}\n\
         data_dir = \"{data}\"\n\
         client_addr = \"{client}\"\n\
         peer_addr = \"{peer}\"\n\
         cluster_id = \"from-config\"\n\
         fsync = \"always\"\n\
         \n\
         [peers]\n{peers_table}\n\
         [client_addrs]\n{clients_table}",
        data = data.display(),
        client = clients[id - 1],
        peer = peers[id - 1],
        peers_table = table(peers),
        clients_table = table(clients),
    )
}

/// Three servers started with nothing but `serve --config FILE.toml` form
/// a cluster with the files' ids, addresses and data directories.
#[test]
fn serve_starts_a_cluster_from_toml_config_files() {
    let home = tempfile::tempdir().expect("temp dir");
    let clients: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    let peers: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    let mut servers = Vec::new();
    for id in 1..=3 {
        let data = home.path().join(format!("data{id}"));
        let file = home.path().join(format!("server{id}.toml"));
        std::fs::write(&file, config_toml(id, &data, &clients, &peers)).expect("write config");
        let log = std::fs::File::create(home.path().join(format!("server{id}.log"))).expect("log");
        servers.push(Process::spawn(
            distlock()
                .arg("serve")
                .arg("--config")
                .arg(&file)
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log),
        ));
    }
    let list = clients
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let v = wait_until("the configured cluster elects a leader", PATIENCE, || {
        let out = run_within(
            distlock().args(["status", "--json", "--servers", &list]),
            PATIENCE,
        );
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        v["leader"].is_u64().then_some(v)
    });
    let members = v["members"].as_array().expect("members");
    assert_eq!(members.len(), 3, "{v}");
    for (m, (id, addr)) in members.iter().zip((1_u64..).zip(&clients)) {
        assert_eq!(m["id"], id, "{v}");
        assert_eq!(m["client_addr"], addr.to_string(), "{v}");
    }

    let out = run_within(
        distlock().args(["lock", "configured", "--servers", &list, "--", "true"]),
        PATIENCE,
    );
    assert!(
        out.status.success(),
        "distlock lock against the configured cluster: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for id in 1..=3 {
        let data = home.path().join(format!("data{id}"));
        let used = std::fs::read_dir(&data).is_ok_and(|mut d| d.next().is_some());
        assert!(used, "server {id} keeps its data in {}", data.display());
    }
    drop(servers);
}

/// A configuration file with an unknown key (top level or table) is
/// refused: non-zero exit, and the message names the key.
#[test]
fn a_config_file_with_an_unknown_key_is_refused_naming_it() {
    let home = tempfile::tempdir().expect("temp dir");
    let data = home.path().join("data");
    let good = config_toml(1, &data, &[free_addr()], &[free_addr()]);
    for (bad, key) in [
        (format!("colour = \"blue\"\n{good}"), "colour"),
        (
            good.replace("[client_addrs]", "[client_adresses]"),
            "client_adresses",
        ),
    ] {
        let file = home.path().join("bad.toml");
        std::fs::write(&file, &bad).expect("write config");
        let out = run_within(
            distlock().arg("serve").arg("--config").arg(&file),
            Duration::from_secs(20),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{key}: {:?} {err}", out.status);
        assert!(err.contains(key), "the message names {key:?}: {err}");
        assert!(!data.exists(), "nothing was started for {key:?}");
    }
}
