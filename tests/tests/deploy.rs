//! A cluster deployed as the README and `distlock serve --help` describe
//! it: each server given its own addresses and every member's peer
//! address (`--peers`), nothing more. Clients given any one server reach
//! every member: the servers publish their client addresses through the
//! log. Also: host names and IPv6 literals wherever an address is taken,
//! advertise addresses, listening on every interface without one refused,
//! and settings from the environment.

use distlock_tests::{
    Cluster, HeldLock, PATIENCE, Process, distlock, free_addr, run_within, wait_until,
};
use std::process::Output;
use std::time::{Duration, Instant};

/// `distlock lock --servers SERVERS ARGS NAME -- sh -c SCRIPT`, run to
/// the end; NAME is `frozen` for a `--try`, else `deploy`.
fn lock(servers: &str, args: &[&str], script: &str, limit: Duration) -> Output {
    let name = if args.contains(&"--try") {
        "frozen"
    } else {
        "deploy"
    };
    let mut cmd = distlock();
    cmd.args(["lock", "--servers", servers])
        .args(args)
        .args([name, "--", "sh", "-c", script]);
    run_within(&mut cmd, limit)
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `distlock lock --servers SERVERS --wait 10s` succeeds.
fn takes_a_lock(servers: &str) {
    let out = lock(servers, &["--wait", "10s"], "true", Duration::from_secs(30));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// Waits until `servers` report every one of `n` members with a client
/// address, and returns them by id.
fn published_client_addrs(servers: &str, n: usize) -> Vec<String> {
    wait_until(
        "every member's client address is published",
        PATIENCE,
        || {
            let mut cmd = distlock();
            cmd.args(["status", "--json", "--servers", servers]);
            let out = run_within(&mut cmd, Duration::from_secs(20));
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let members = v["members"].as_array()?;
            let addrs: Vec<String> = members
                .iter()
                .map(|m| m["client_addr"].as_str().unwrap_or("").to_owned())
                .filter(|a| !a.is_empty())
                .collect();
            (v["leader"].is_u64() && addrs.len() == n).then_some(addrs)
        },
    )
}

/// `distlock status` names every member's client address, though no
/// server was told any address but its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_every_members_client_address() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let addrs = published_client_addrs(&cluster.servers_arg_of(&[leader]), 3);
    let expected: Vec<String> = cluster
        .client_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(addrs, expected);
}

/// A client given only a follower's address takes a lock: it is sent on
/// to the leader, whose address the follower learned from the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_given_only_a_follower_takes_a_lock() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let follower = cluster
        .ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("a follower");
    let out = lock(
        &cluster.servers_arg_of(&[follower]),
        &["--wait", "5s"],
        "test -n \"$DISTLOCK_TOKEN\"",
        Duration::from_secs(30),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// kill -9 each member in turn while it is first in `--servers`: every
/// `distlock lock` still takes the lock, quickly, from the survivors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_any_member_first_in_the_list_leaves_locks_available() {
    let mut cluster = Cluster::start(3);
    cluster.leader().await;
    published_client_addrs(&cluster.servers_arg(), 3);
    for victim in cluster.ids() {
        let others: Vec<u64> = cluster.ids().into_iter().filter(|&i| i != victim).collect();
        let order: Vec<u64> = std::iter::once(victim)
            .chain(others.iter().copied())
            .collect();
        cluster.server(victim).kill();
        let started = Instant::now();
        let out = lock(
            &cluster.servers_arg_of(&order),
            &["--wait", "30s"],
            "test -n \"$DISTLOCK_TOKEN\"",
            Duration::from_secs(60),
        );
        assert_eq!(
            code(&out),
            0,
            "with server {victim} killed: {}",
            stderr(&out)
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "with server {victim} killed the lock took {:?}",
            started.elapsed()
        );
        cluster.server(victim).start();
        // Back in the cluster before the next one dies: it answers status
        // and knows a leader.
        let back = cluster.servers_arg_of(&[victim]);
        wait_until("the restarted server knows a leader", PATIENCE, || {
            let mut cmd = distlock();
            cmd.args(["status", "--json", "--servers", &back]);
            let out = run_within(&mut cmd, Duration::from_secs(20));
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            v["leader"].is_u64().then_some(())
        });
    }
}

/// A holder connected only to the leader keeps its lock when the leader
/// freezes (SIGSTOP) for 4 s of its 5 s TTL: it moves to a survivor whose
/// address it learned from the cluster, and its session stays alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_keeps_its_lock_when_its_leader_freezes() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    published_client_addrs(&cluster.servers_arg(), 3);
    let holder = HeldLock::start(
        &cluster.servers_arg_of(&[leader]),
        &["--ttl", "5s"],
        "frozen",
    );
    let pid = cluster.server(leader).pid().expect("the leader runs");
    distlock_tests::send_signal(i64::from(pid), "STOP");
    // The fault itself: the leader stays frozen this long.
    std::thread::sleep(Duration::from_secs(4));
    distlock_tests::send_signal(i64::from(pid), "CONT");
    // Still the holder: another client cannot take the lock.
    let others = cluster.servers_arg();
    let out = lock(&others, &["--try"], "true", Duration::from_secs(30));
    assert_eq!(code(&out), 75, "the lock was free: {}", stderr(&out));
    let status = holder.finish();
    assert_eq!(status.code(), Some(0), "the holder lost its session");
}

/// Host names wherever an address is taken: the servers listen on and
/// name each other by `localhost:PORT`, and clients dial names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_names_work_for_servers_peers_and_clients() {
    let ports: Vec<(u16, u16)> = (0..3)
        .map(|_| (free_addr().port(), free_addr().port()))
        .collect();
    let peers = ports
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("{}=localhost:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let homes: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let _servers: Vec<Process> = ports
        .iter()
        .enumerate()
        .map(|(i, (c, p))| {
            let mut cmd = distlock();
            cmd.arg("serve")
                .args(["--id", &(i + 1).to_string()])
                .arg("--data-dir")
                .arg(homes[i].path().join("data"))
                .args(["--client-addr", &format!("localhost:{c}")])
                .args(["--peer-addr", &format!("localhost:{p}")])
                .args(["--peers", &peers])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            Process::spawn(&mut cmd)
        })
        .collect();
    let servers = format!("localhost:{}", ports[1].0);
    let addrs = published_client_addrs(&servers, 3);
    let expected: Vec<String> = ports
        .iter()
        .map(|(c, _)| format!("localhost:{c}"))
        .collect();
    assert_eq!(addrs, expected, "members publish their names as given");
    takes_a_lock(&servers);
}

/// An IPv6 literal in brackets works as a listening and a dialled
/// address, where the machine has IPv6 loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_literals_work() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("ipv6_literals_work: no IPv6 loopback here: skipped");
        return;
    }
    let (c, p) = (free_addr().port(), free_addr().port());
    let home = tempfile::tempdir().expect("dir");
    let mut cmd = distlock();
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(home.path().join("data"))
        .args(["--client-addr", &format!("[::1]:{c}")])
        .args(["--peer-addr", &format!("[::1]:{p}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _server = Process::spawn(&mut cmd);
    let servers = format!("[::1]:{c}");
    let addrs = published_client_addrs(&servers, 1);
    assert_eq!(addrs, vec![servers.clone()]);
    takes_a_lock(&servers);
}

/// Listening on every interface with nothing to tell others is refused,
/// saying which flag to add; with an advertise address the server starts
/// and publishes that address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listening_everywhere_needs_an_advertise_address() {
    let home = tempfile::tempdir().expect("dir");
    let c = free_addr().port();
    let mut cmd = distlock();
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(home.path().join("data"))
        .args(["--client-addr", &format!("0.0.0.0:{c}")]);
    let out = run_within(&mut cmd, Duration::from_secs(20));
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("--advertise-client-addr"),
        "{}",
        stderr(&out)
    );
    assert!(
        !home.path().join("data").exists(),
        "refused before touching the disk"
    );

    let p = free_addr().port();
    let mut cmd = distlock();
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(home.path().join("data"))
        .args(["--client-addr", &format!("0.0.0.0:{c}")])
        .args(["--advertise-client-addr", &format!("localhost:{c}")])
        .args(["--peer-addr", &format!("127.0.0.1:{p}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _server = Process::spawn(&mut cmd);
    let addrs = published_client_addrs(&format!("127.0.0.1:{c}"), 1);
    assert_eq!(addrs, vec![format!("localhost:{c}")]);
}

/// Every `serve` setting can come from `DISTLOCK_<FLAG>`, and a flag
/// wins over its variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_settings_come_from_the_environment() {
    let home = tempfile::tempdir().expect("dir");
    let (c, p) = (free_addr(), free_addr());
    let mut cmd = distlock();
    cmd.arg("serve")
        .env("DISTLOCK_DATA_DIR", home.path().join("data"))
        .env("DISTLOCK_CLIENT_ADDR", "127.0.0.1:1")
        .env("DISTLOCK_PEER_ADDR", p.to_string())
        .env("DISTLOCK_ID", "7")
        .env("DISTLOCK_PEERS", format!("7={p}"))
        .env("DISTLOCK_CLUSTER_ID", "from-env")
        .args(["--client-addr", &c.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _server = Process::spawn(&mut cmd);
    wait_until("the server serves", PATIENCE, || {
        home.path().join("data").exists().then_some(())
    });
    let mut status = distlock();
    status.args(["status", "--json", "--servers", &c.to_string()]);
    let v = wait_until("status answers", PATIENCE, || {
        let out = run_within(&mut status, Duration::from_secs(20));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["leader"].is_u64().then_some(v)
    });
    assert_eq!(v["leader"], 7, "the id came from DISTLOCK_ID: {v}");
}

/// Under systemd (`Type=notify`) the server says `READY=1` once it knows
/// a leader, and `STOPPING=1` when SIGTERM starts its drain.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_tells_systemd_when_it_is_ready_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let home = tempfile::tempdir().expect("dir");
    let socket_path = home.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    let (c, p) = (free_addr(), free_addr());
    let mut cmd = distlock();
    cmd.arg("serve")
        .env("NOTIFY_SOCKET", &socket_path)
        .arg("--data-dir")
        .arg(home.path().join("data"))
        .args([
            "--client-addr",
            &c.to_string(),
            "--peer-addr",
            &p.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut server = Process::spawn(&mut cmd);
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification");
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(text.lines().any(|l| l == "READY=1"), "{text}");
    // Ready means serving: a lock can be taken at once.
    let out = lock(
        &c.to_string(),
        &["--wait", "5s"],
        "true",
        Duration::from_secs(30),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    server.signal("TERM");
    let n = socket.recv(&mut buf).expect("a notification");
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(text.lines().any(|l| l == "STOPPING=1"), "{text}");
    assert_eq!(server.wait_exit(PATIENCE).code(), Some(0));
}

/// A second server on a data directory in use is refused and names the
/// holder's pid; a directory is refused under another node id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_serves_one_server_and_one_identity() {
    let home = tempfile::tempdir().expect("dir");
    let data = home.path().join("data");
    let serve = |c: std::net::SocketAddr, p: std::net::SocketAddr, id: &str| {
        let mut cmd = distlock();
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .args(["--id", id])
            .args([
                "--client-addr",
                &c.to_string(),
                "--peer-addr",
                &p.to_string(),
            ]);
        cmd
    };
    let (c, p) = (free_addr(), free_addr());
    let mut first = serve(c, p, "1");
    first
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut first = Process::spawn(&mut first);
    wait_until("the first server serves", PATIENCE, || {
        std::net::TcpStream::connect(c).ok().map(|_| ())
    });
    let out = run_within(&mut serve(free_addr(), free_addr(), "1"), PATIENCE);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains(&format!(
            "in use by another distlock server (pid {})",
            first.pid()
        )),
        "{}",
        stderr(&out)
    );
    first.signal("TERM");
    first.wait_exit(PATIENCE);
    let out = run_within(&mut serve(free_addr(), free_addr(), "2"), PATIENCE);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("belongs to node 1"),
        "{}",
        stderr(&out)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&data).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the data directory is private");
    }
}
