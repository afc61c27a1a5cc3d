//! Servers die or stop under clients of the Rust client library and raw
//! protocol clients (issue 4 item 8): kill -9 the leader while a lock is
//! held and waited for; kill -9 all three and restart; SIGTERM a client's
//! server and the leader.

use distlock_client::{Guard, Session};
use distlock_core::locks::{FencingToken, Outcome, SessionId};
use distlock_core::proto::{LockStatusView, ResponseBody};
use distlock_tests::{
    Cluster, Conn, PATIENCE, client_session, client_session_with, status_json, staying_put,
    wait_keepalive_after, within,
};
use std::net::SocketAddr;
use std::time::Duration;

const TTL: Duration = Duration::from_secs(10);

/// Every client address with `first`'s in front: a new client dials it
/// first.
fn starting_at(cluster: &Cluster, first: u64) -> Vec<SocketAddr> {
    let mut addrs = vec![cluster.addr(first)];
    addrs.extend(
        cluster
            .ids()
            .into_iter()
            .filter(|&id| id != first)
            .map(|id| cluster.addr(id)),
    );
    addrs
}

/// (session, token) of every holder.
fn holders(view: Option<&LockStatusView>) -> Vec<(SessionId, FencingToken)> {
    view.map(|v| v.holders.iter().map(|h| (h.session, h.token)).collect())
        .unwrap_or_default()
}

/// The waiting sessions, first in line first.
fn waiters(view: Option<&LockStatusView>) -> Vec<SessionId> {
    view.map(|v| v.waiters.iter().map(|w| w.session).collect())
        .unwrap_or_default()
}

/// Starts `session` waiting (for ever) for `lock` in a task; the task
/// gives back the session and its guard.
fn wait_for(session: Session, lock: &'static str) -> tokio::task::JoinHandle<(Session, Guard)> {
    tokio::spawn(async move {
        let guard = session.lock(lock).await.expect("the waiter is granted");
        (session, guard)
    })
}

/// kill -9 the leader while one client holds L and two wait for it: the
/// holder keeps L with the same token and its session (now kept alive by
/// the survivors), the queue keeps its order, and once the holder
/// releases, the waiters are served first come, first served, with higher
/// and higher tokens. Every client started on the leader, so every client
/// failed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_keeps_the_holder_and_serves_the_waiters_in_fifo_order() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let servers = starting_at(&cluster, leader);
    let holder = client_session(&servers, TTL).await;
    let w1 = client_session(&servers, TTL).await;
    let w2 = client_session(&servers, TTL).await;
    let (h_id, w1_id, w2_id) = (holder.id(), w1.id(), w2.id());

    let guard = within("lock", PATIENCE, holder.lock("L"))
        .await
        .expect("the holder locks L");
    let t0 = guard.token();
    let mut conn = Conn::connect(cluster.addr(leader)).await;
    let w1_task = wait_for(w1, "L");
    conn.wait_lock("L", "w1 waits for L", |v| waiters(v) == [w1_id])
        .await;
    let w2_task = wait_for(w2, "L");
    conn.wait_lock("L", "w1 then w2 wait for L", |v| {
        waiters(v) == [w1_id, w2_id]
    })
    .await;
    drop(conn);

    cluster.server(leader).kill();
    let killed = tokio::time::Instant::now();
    let new_leader = cluster.leader_other_than(Some(leader)).await;
    let mut conn = Conn::connect(cluster.addr(new_leader)).await;
    let view = conn.lock_status("L").await;
    assert_eq!(holders(view.as_ref()), [(h_id, t0)], "{view:?}");
    assert_eq!(waiters(view.as_ref()), [w1_id, w2_id], "{view:?}");

    // The holder's session lives on: a keepalive sent after the kill was
    // acknowledged, and its client works on a surviving server.
    wait_keepalive_after(&holder, killed, TTL).await;
    let other = within(
        "try_lock after the kill",
        PATIENCE,
        holder.try_lock("L-other"),
    )
    .await
    .expect("the holder works after failover")
    .expect("a free lock is granted");
    assert!(other.token() > t0);
    assert!(!w1_task.is_finished() && !w2_task.is_finished());

    within("release", PATIENCE, guard.release())
        .await
        .expect("the holder releases L");
    let (w1, g1) = within("w1's grant", PATIENCE, w1_task)
        .await
        .expect("join w1");
    let t1 = g1.token();
    assert!(t1 > other.token() && t1 > t0, "token {t1} after {t0}");
    let view = conn.lock_status("L").await;
    assert_eq!(holders(view.as_ref()), [(w1_id, t1)], "{view:?}");
    assert_eq!(waiters(view.as_ref()), [w2_id], "w2 still waits: {view:?}");
    assert!(!w2_task.is_finished());

    within("release", PATIENCE, g1.release())
        .await
        .expect("w1 releases L");
    let (w2, g2) = within("w2's grant", PATIENCE, w2_task)
        .await
        .expect("join w2");
    let t2 = g2.token();
    assert!(t2 > t1, "token {t2} after {t1}");
    let view = conn.lock_status("L").await;
    assert_eq!(holders(view.as_ref()), [(w2_id, t2)], "{view:?}");
    assert!(waiters(view.as_ref()).is_empty(), "{view:?}");

    // The waiters' sessions, too, are kept alive by the survivors.
    for s in [&holder, &w1, &w2] {
        wait_keepalive_after(s, killed, TTL).await;
    }
}

/// kill -9 all three servers while locks are held, restart all three on
/// the same data: the same sessions hold the same locks with the same
/// tokens (`distlock status NAME --json`), and the next grants' tokens are
/// higher than any before.
#[tokio::test]
async fn killing_all_three_and_restarting_keeps_the_locks_and_tokens_go_on_upward() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let mut conn = Conn::connect(cluster.addr(leader)).await;
    let s1 = conn.open_session(101, 60_000).await;
    let s2 = conn.open_session(102, 60_000).await;
    let held = [
        ("alpha", s1, conn.acquire_try(s1, 1, "alpha").await),
        ("beta", s2, conn.acquire_try(s2, 1, "beta").await),
        ("gamma", s1, conn.acquire_try(s1, 2, "gamma").await),
    ];
    let highest = held.iter().map(|h| h.2).max().expect("three grants");
    drop(conn);

    cluster.kill_all();
    cluster.restart_stopped();
    let leader = cluster.leader().await;

    let servers = cluster.servers_arg();
    for (lock, session, token) in held {
        let v = status_json(&servers, Some(lock));
        assert_eq!(v["lock"], lock, "{v}");
        assert_eq!(v["mode"], "exclusive", "{v}");
        assert_eq!(
            v["holders"],
            // Sessions opened without a name have no owner.
            serde_json::json!([{ "session": session.0, "token": token.0, "owner": null }]),
            "{lock} is still held by the same session with the same token: {v}"
        );
    }

    let mut conn = Conn::connect(cluster.addr(leader)).await;
    // A new connection speaks for the sessions once it proves it opened them.
    conn.attach(s1, 101).await;
    conn.attach(s2, 102).await;
    let t4 = conn.acquire_try(s2, 2, "delta").await;
    assert!(t4 > highest, "token {t4} after a restart, {highest} before");
    assert_eq!(
        conn.release(s1, 3, "alpha", held[0].2).await,
        Ok(ResponseBody::Lock(Outcome::Released))
    );
    let t5 = conn.acquire_try(s2, 3, "alpha").await;
    assert!(t5 > t4, "token {t5} after {t4}");
}

/// A client stays on a follower (no following the leader); SIGTERM that
/// follower: it exits 0 within a few seconds, and the client goes on on
/// another server with its session and lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_a_clients_server_moves_it_on_with_its_session_and_lock() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let follower = cluster.follower_of(leader);
    let client = client_session_with(&starting_at(&cluster, follower), TTL, staying_put()).await;
    sigterm_moves_the_client_on(&mut cluster, follower, client).await;
}

/// The same with the leader, where clients go by default: it hands over
/// leadership, exits 0 within a few seconds, and its clients go on with
/// their sessions and locks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_the_leader_moves_its_clients_on_with_their_sessions_and_locks() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let client = client_session(&starting_at(&cluster, leader), TTL).await;
    sigterm_moves_the_client_on(&mut cluster, leader, client).await;
    assert_ne!(cluster.leader_other_than(Some(leader)).await, leader);
}

/// `client` (on server `victim`) takes a lock; `victim` gets SIGTERM.
async fn sigterm_moves_the_client_on(cluster: &mut Cluster, victim: u64, client: Session) {
    let guard = within("lock", PATIENCE, client.lock("graceful"))
        .await
        .expect("the client locks");
    let token = guard.token();

    let server = cluster.server(victim);
    server.terminate();
    let exit = server.wait_exit_async(Duration::from_secs(10)).await;
    assert!(
        exit.success(),
        "server {victim} exits 0 on SIGTERM: {exit:?}"
    );
    let stopped = tokio::time::Instant::now();

    wait_keepalive_after(&client, stopped, TTL).await;
    let other = within("try_lock after SIGTERM", PATIENCE, client.try_lock("after"))
        .await
        .expect("the client works on another server")
        .expect("a free lock is granted");
    assert!(other.token() > token);
    let leader = cluster.leader().await;
    let mut conn = Conn::connect(cluster.addr(leader)).await;
    let view = conn.lock_status("graceful").await;
    assert_eq!(holders(view.as_ref()), [(client.id(), token)], "{view:?}");
    assert!(!client.is_lost());
    within("release", PATIENCE, guard.release())
        .await
        .expect("the client releases");
    assert!(
        conn.lock_status("graceful")
            .await
            .is_none_or(|v| v.holders.is_empty())
    );
}
