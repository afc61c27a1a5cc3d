//! Backup and disaster recovery against real servers: `distlock snapshot
//! save` and `inspect` under held and waited locks; a cluster that lost
//! two of its three servers for good brought back by `serve
//! --force-new-cluster` on the survivor and grown again with new servers;
//! and a new cluster restored from a backup (`snapshot restore`), whose
//! fencing tokens continue above the backup's.

use distlock_tests::{
    Conn, PATIENCE, Process, Server, client_session, distlock, free_addr, members_json, run_within,
    status_json, wait_until_async, within,
};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

/// Servers `ids` on fresh ports, each given `--id` and `--peers` (every
/// member's peer address) and `flags`, nothing else: they announce their
/// client addresses to each other.
fn servers(ids: &[u64], flags: &[&str]) -> (Vec<Server>, String) {
    let addrs: Vec<(u64, SocketAddr, SocketAddr)> = ids
        .iter()
        .map(|&id| (id, free_addr(), free_addr()))
        .collect();
    let peers = addrs
        .iter()
        .map(|(id, _, peer)| format!("{id}={peer}"))
        .collect::<Vec<_>>()
        .join(",");
    let servers = addrs
        .iter()
        .map(|&(id, client, peer)| {
            let mut extra = vec![
                "--id".to_owned(),
                id.to_string(),
                "--peers".to_owned(),
                peers.clone(),
            ];
            extra.extend(flags.iter().map(|f| (*f).to_owned()));
            Server::new(id, client, peer, extra)
        })
        .collect();
    (servers, peers)
}

/// `--servers` for these servers.
fn servers_arg(servers: &[&Server]) -> String {
    servers
        .iter()
        .map(|s| s.client_addr.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The id of the leader of `servers`, once one of them names a leader
/// that confirms it leads (and, if given, whose members are `members`).
async fn leader_of(servers: &[&Server], members: Option<&[u64]>) -> u64 {
    let addrs: Vec<(u64, SocketAddr)> = servers.iter().map(|s| (s.id, s.client_addr)).collect();
    let members = members.map(<[u64]>::to_vec);
    wait_until_async("a server leads", PATIENCE, || {
        let (addrs, members) = (addrs.clone(), members.clone());
        async move {
            for &(_, addr) in &addrs {
                let Some(view) = Conn::status_once(addr).await else {
                    continue;
                };
                let Some(leader) = view.leader.map(|l| l.0) else {
                    continue;
                };
                let &(_, leader_addr) = addrs.iter().find(|(id, _)| *id == leader)?;
                let confirmed = Conn::status_once(leader_addr).await?;
                let ids: Vec<u64> = confirmed.members.iter().map(|m| m.id.0).collect();
                if confirmed.leader.map(|l| l.0) == Some(leader)
                    && members.as_ref().is_none_or(|m| *m == ids)
                {
                    return Some(leader);
                }
            }
            None
        }
    })
    .await
}

/// Runs `distlock snapshot ARGS` within a minute.
fn snapshot(args: &[&str]) -> Output {
    run_within(
        distlock().arg("snapshot").args(args),
        Duration::from_secs(60),
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `distlock snapshot save FILE`, which must succeed.
fn save(file: &Path, servers: &str) {
    let out = snapshot(&["save", &file.to_string_lossy(), "--servers", servers]);
    assert!(
        out.status.success(),
        "snapshot save failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// `distlock snapshot inspect FILE --json`, which must succeed.
fn inspect(file: &Path) -> serde_json::Value {
    let out = snapshot(&["inspect", &file.to_string_lossy(), "--json"]);
    assert!(
        out.status.success(),
        "inspect failed: {}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON")
}

/// The lock named `name` in `inspect --json` output.
fn lock_in<'v>(snap: &'v serde_json::Value, name: &str) -> &'v serde_json::Value {
    snap["locks"]
        .as_array()
        .and_then(|locks| locks.iter().find(|l| l["lock"] == name))
        .unwrap_or_else(|| panic!("{name} is in the snapshot: {snap}"))
}

/// `distlock lock NAME` holding the lock for as long as it runs: its
/// command waits for its parent, the `distlock` process, to go away.
fn lock_process(name: &str, servers: &str, ttl: &str) -> Process {
    Process::spawn(
        distlock()
            .args(["lock", name, "--ttl", ttl, "--servers", servers, "--"])
            .args([
                "sh",
                "-c",
                "while kill -0 $PPID 2>/dev/null; do sleep 0.1; done",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// `distlock lock NAME --try` running `echo $DISTLOCK_TOKEN`: the token
/// of a new grant.
fn new_grant(name: &str, servers: &str) -> u64 {
    let out = run_within(
        distlock()
            .args(["lock", name, "--try", "--servers", servers, "--"])
            .args(["sh", "-c", "echo $DISTLOCK_TOKEN"]),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "lock {name}: {}", text(&out.stderr));
    text(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("a token: {e}: {}", text(&out.stdout)))
}

/// The token of `name`'s first holder, if held (a linearizable read).
async fn holder_token(conn: &mut Conn, name: &str) -> Option<u64> {
    let view = conn.lock_status(name).await?;
    view.holders.first().map(|h| h.token.0)
}

/// Three servers lose two of their number, data and all. The survivor,
/// restarted with `--force-new-cluster`, serves alone with every lock as
/// it was: the lock of a running `distlock lock` and a client library
/// session's lock with a waiter queued behind it. Two new servers join
/// it; the locks are held by whom they were, or freed by their lease
/// running out, and new grants get higher tokens than every old one. The
/// survivor restarted without the flag, its configuration file still
/// naming the lost servers, stays the member of the new cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_quorum_is_recovered_with_force_new_cluster() {
    let (mut old, _) = servers(&[1, 2, 3], &[]);
    for s in &mut old {
        s.start();
    }
    let all = servers_arg(&old.iter().collect::<Vec<_>>());
    let client_addrs: Vec<SocketAddr> = old.iter().map(|s| s.client_addr).collect();
    let leader = leader_of(&old.iter().collect::<Vec<_>>(), Some(&[1, 2, 3])).await;

    let mut conn = Conn::connect(old[0].client_addr).await;
    let mut by_cmd = lock_process("by-cmd", &all, "10s");
    let cmd_token = conn
        .wait_lock("by-cmd", "distlock lock holds by-cmd", |v| {
            v.is_some_and(|v| v.holders.len() == 1)
        })
        .await
        .map(|v| v.holders[0].token.0)
        .expect("held");
    let ttl = Duration::from_secs(30);
    let holder = client_session(&client_addrs, ttl).await;
    let guard = within("lock", PATIENCE, holder.lock("by-session"))
        .await
        .expect("the holder locks by-session");
    let waiter = client_session(&client_addrs, ttl).await;
    let waiting = tokio::spawn(async move {
        let g = waiter
            .lock("by-session")
            .await
            .expect("the waiter is granted");
        (waiter, g)
    });
    conn.wait_lock("by-session", "the waiter queues", |v| {
        v.is_some_and(|v| v.waiters.len() == 1)
    })
    .await;

    // Saved through a follower first: it relays the chunks from the leader.
    let home = tempfile::tempdir().expect("temp dir");
    let file = home.path().join("before.snap");
    let follower = old.iter().find(|s| s.id != leader).expect("a follower");
    save(&file, &format!("{},{all}", follower.client_addr));
    let snap = inspect(&file);
    let old_max = snap["max_token"].as_u64().expect("a token is held");
    assert_eq!(old_max, cmd_token.max(guard.token().0), "{snap}");
    assert_eq!(lock_in(&snap, "by-cmd")["holders"][0]["token"], cmd_token);
    let by_session = lock_in(&snap, "by-session");
    assert_eq!(by_session["holders"][0]["token"], guard.token().0);
    assert_eq!(by_session["waiters"].as_array().map(Vec::len), Some(1));
    assert!(snap["session_count"].as_u64() >= Some(3), "{snap}");
    let ids: Vec<u64> = snap["members"]
        .as_array()
        .map(|ms| ms.iter().filter_map(|m| m["id"].as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(ids, [1, 2, 3], "{snap}");

    // Two servers are lost for good; the leader survives (it has every
    // committed entry).
    for s in &mut old {
        if s.id != leader {
            s.kill();
            std::fs::remove_dir_all(s.data_dir()).expect("delete the lost data");
        }
    }
    let survivor = old.iter_mut().find(|s| s.id == leader).expect("survivor");
    survivor.kill();
    survivor.start_with(&["--force-new-cluster"]);
    let one = servers_arg(&[survivor]);
    let survivor_client = survivor.client_addr;
    assert_eq!(
        leader_of(&[&*survivor], Some(&[leader])).await,
        leader,
        "the survivor leads a cluster of its own"
    );
    let log = std::fs::read_to_string(survivor.log_path()).unwrap_or_default();
    assert!(
        log.contains("FORCED A NEW CLUSTER"),
        "it says loudly: {log}"
    );

    // Two new servers, under new ids, join it.
    let survivor_peer = format!("{leader}={}", survivor.peer_addr);
    let mut new = Vec::new();
    for id in [4u64, 5] {
        let (client, peer) = (free_addr(), free_addr());
        let extra = vec![
            "--id".to_owned(),
            id.to_string(),
            "--join".to_owned(),
            "--peers".to_owned(),
            format!("{survivor_peer},{id}={peer}"),
        ];
        let mut s = Server::new(id, client, peer, extra);
        s.start();
        let id = id.to_string();
        let (peer, client) = (peer.to_string(), client.to_string());
        let add = ["add", &id, "--peer-addr", &peer, "--client-addr", &client];
        for change in [&add[..], &["promote", &id]] {
            let (code, out) = members_json(&one, change);
            assert_eq!(code, 0, "members {change:?}: {out}");
        }
        new.push(s);
    }
    let mut everyone: Vec<&Server> = vec![&*survivor];
    everyone.extend(new.iter());
    let live = servers_arg(&everyone);
    leader_of(&everyone, Some(&[leader, 4, 5])).await;

    // The session's lock is still held by whom it was, and the waiter
    // still waits.
    let mut conn = Conn::connect(survivor_client).await;
    let view = conn.lock_status("by-session").await.expect("held");
    assert_eq!(view.holders[0].token, guard.token());
    assert_eq!(view.waiters.len(), 1, "{view:?}");
    assert!(!holder.is_lost(), "the holder's session lives on");
    // `distlock lock`'s is held by it still, or was freed when its lease
    // ran out during the outage (it then exited 70, its session lost).
    match holder_token(&mut conn, "by-cmd").await {
        Some(token) => assert_eq!(token, cmd_token),
        None => assert_eq!(by_cmd.wait_exit_async(PATIENCE).await.code(), Some(70)),
    }
    // Its client dies: the new cluster frees the lock when the lease ends.
    by_cmd.kill();
    conn.wait_lock("by-cmd", "by-cmd is freed by its lease", |v| v.is_none())
        .await;
    let token = new_grant("by-cmd", &live);
    assert!(token > old_max, "token {token} above the old {old_max}");

    within("release", PATIENCE, guard.release())
        .await
        .expect("the holder releases");
    let (_waiter, g) = within("hand-off", PATIENCE, waiting)
        .await
        .expect("the waiter task");
    assert!(g.token().0 > token, "tokens keep increasing: {}", g.token());

    // Restarted without the flag, with --peers still naming 2 and 3, the
    // survivor stays a member of the new cluster.
    survivor.terminate();
    survivor.wait_exit_async(PATIENCE).await;
    survivor.start();
    let back = survivor.client_addr;
    wait_until_async(
        "the survivor is back, following a leader",
        PATIENCE,
        || async move { Conn::status_once(back).await.filter(|v| v.leader.is_some()) },
    )
    .await;
    let status = status_json(&servers_arg(&[&*survivor]), None);
    let ids: Vec<u64> = status["members"]
        .as_array()
        .map(|ms| ms.iter().filter_map(|m| m["id"].as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(ids, [leader, 4, 5], "{status}");
    assert!(new_grant("after-restart", &live) > g.token().0);
}

/// A backup restored into a new cluster of three servers. The backup
/// holds two locks of a session whose client has stopped, and whose lease
/// the old cluster lets run out. A damaged or cut copy of the file is
/// refused, as is a data directory in use. In the new cluster the session
/// lives again, with a full TTL, and holds its locks with their tokens
/// until that lease ends too; then new grants get tokens above the
/// backup's index, so above every token it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_cluster_continues_the_fencing_tokens() {
    let mut source = Server::single();
    let mut conn = Conn::connect(source.client_addr).await;
    // A raw session sends no keepalives: its lease runs from its opening.
    let session = conn.open_session(7, 10_000).await;
    let a = conn.acquire_try(session, 1, "a").await;
    let b = conn.acquire_try(session, 2, "b").await;
    let home = tempfile::tempdir().expect("temp dir");
    let file = home.path().join("backup.snap");
    save(&file, &source.client_addr.to_string());
    let snap = inspect(&file);
    let index = snap["index"].as_u64().expect("an index");
    assert_eq!(snap["max_token"], a.0.max(b.0), "{snap}");
    assert!(index >= b.0, "{snap}");
    assert_eq!(lock_in(&snap, "a")["holders"][0]["session"], session.0);
    conn.wait_lock("a", "the old cluster expires the session", |v| v.is_none())
        .await;
    source.terminate();

    // Damage is refused with a clear error.
    let bytes = std::fs::read(&file).expect("read the backup");
    let damaged = home.path().join("damaged.snap");
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    std::fs::write(&damaged, &flipped).expect("write");
    let out = snapshot(&["inspect", &damaged.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("checksum mismatch"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&damaged, &bytes[..bytes.len() - 7]).expect("write");
    let out = snapshot(&["inspect", &damaged.to_string_lossy(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("truncated"),
        "{}",
        text(&out.stderr)
    );

    let (mut new, peers) = servers(&[1, 2, 3], &["--cluster-id", "restored"]);
    for s in &new {
        let id = s.id.to_string();
        let out = snapshot(&[
            "restore",
            &file.to_string_lossy(),
            "--data-dir",
            &s.data_dir().to_string_lossy(),
            "--id",
            &id,
            "--peers",
            &peers,
            "--cluster-id",
            "restored",
        ]);
        assert!(out.status.success(), "restore: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("--cluster-id restored"));
    }
    let again = snapshot(&[
        "restore",
        &file.to_string_lossy(),
        "--data-dir",
        &new[0].data_dir().to_string_lossy(),
        "--id",
        "1",
        "--peers",
        &peers,
    ]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "a data directory in use is refused"
    );
    assert!(
        text(&again.stderr).contains("not empty"),
        "{}",
        text(&again.stderr)
    );

    for s in &mut new {
        s.start();
    }
    let new_refs: Vec<&Server> = new.iter().collect();
    leader_of(&new_refs, Some(&[1, 2, 3])).await;
    let servers = servers_arg(&new_refs);
    // The session lives again: the new leader gave it its full TTL.
    let mut conn = Conn::connect(new[0].client_addr).await;
    let held = conn
        .lock_status("a")
        .await
        .expect("a is held in the restored cluster");
    assert_eq!(held.holders[0].session, session);
    assert_eq!(held.holders[0].token, a);
    assert_eq!(holder_token(&mut conn, "b").await, Some(b.0));
    // With no client keeping it alive, its lease runs out.
    conn.wait_lock("a", "the restored session expires", |v| v.is_none())
        .await;
    let token = new_grant("a", &servers);
    assert!(
        token > index,
        "token {token} above the backup's index {index}"
    );
    let other = new_grant("fresh", &servers);
    assert!(other > token);
}
