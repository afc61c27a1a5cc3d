//! Rolling updates through membership changes: new servers join as
//! learners (`serve --join`, `distlock members add`), catch up, are
//! promoted to voters, and the servers they replace are removed and
//! stopped, while a client holds a lock and another waits for it.

use distlock_tests::{
    Cluster, Conn, PATIENCE, client_session, client_session_with, members_json, status_json,
    staying_put, wait_keepalive_after, wait_until_async, within,
};
use std::time::Duration;

const TTL: Duration = Duration::from_secs(10);

/// The ids `distlock status --json` lists as members, with their roles.
fn member_roles(status: &serde_json::Value) -> Vec<(u64, String)> {
    status["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    (
                        m["id"].as_u64().unwrap_or(0),
                        m["role"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Replaces servers 1, 2 and 3 by 4, 5 and 6 one at a time (the leader
/// among them, whenever its turn comes). Throughout, a client holds L with
/// the same token and session. It was given server 3 alone and stays on
/// it until 3 is removed last (and, still running, sends its clients on),
/// so it can only fail over because its server told it of the members
/// added meanwhile. A second client waits for L and is granted it, with a
/// higher token, once the holder releases on the new servers. A change
/// repeated is done, not an error; `distlock members` told only of the
/// removed server finds the members; removing the last voter is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_every_server_keeps_locks_sessions_and_token_order() {
    let mut cluster = Cluster::start(3);
    cluster.leader().await;
    let holder = client_session_with(&[cluster.addr(3)], TTL, staying_put()).await;
    let guard = within("lock", PATIENCE, holder.lock("L"))
        .await
        .expect("the holder locks L");
    let t0 = guard.token();

    for (old, new) in [(1, 4), (2, 5), (3, 6)] {
        let servers = cluster.servers_arg();
        let (peer, client) = {
            let s = cluster.join(new);
            (s.peer_addr.to_string(), s.client_addr.to_string())
        };
        let id = new.to_string();
        let add = ["add", &id, "--peer-addr", &peer, "--client-addr", &client];
        let (code, out) = members_json(&servers, &add);
        assert_eq!(code, 0, "members add {new}: {out}");
        assert_eq!(out["ok"], true, "{out}");
        let status = status_json(&servers, None);
        assert!(
            member_roles(&status).contains(&(new, "learner".to_owned())),
            "{new} is a learner: {status}"
        );
        // Adding it again changes nothing and is not an error.
        let (code, out) = members_json(&servers, &add);
        assert_eq!(
            (code, &out["already"]),
            (0, &serde_json::json!(true)),
            "{out}"
        );

        let (code, out) = members_json(&servers, &["promote", &id]);
        assert_eq!(code, 0, "members promote {new}: {out}");
        let (code, out) = members_json(&servers, &["remove", &old.to_string()]);
        assert_eq!(code, 0, "members remove {old}: {out}");
        // Server 3 is left running after its removal: it must send its
        // clients on, and lead `distlock members` to the members.
        if old != 3 {
            cluster.server(old).terminate();
            cluster.server(old).wait_exit_async(PATIENCE).await;
        }

        let running = cluster.running();
        let live = cluster.servers_arg_of(&running);
        let status = status_json(&live, Some("L"));
        let ids: Vec<u64> = member_roles(&status).iter().map(|(id, _)| *id).collect();
        let mut expected: Vec<u64> = (old + 1..=3).chain(4..=new).collect();
        expected.sort_unstable();
        assert_eq!(ids, expected, "members after replacing {old}: {status}");
        assert_eq!(
            status["holders"][0]["token"], t0.0,
            "the holder keeps L: {status}"
        );
        assert!(!holder.is_lost(), "the holder's session survives");
    }

    // The holder's first servers are all gone; it still reaches the
    // cluster, and its session is still the one that holds L.
    wait_keepalive_after(&holder, tokio::time::Instant::now(), TTL).await;
    let waiter = client_session(&cluster.client_addrs_of(&[4, 5, 6]), TTL).await;
    let waiting = tokio::spawn(async move {
        let g = waiter.lock("L").await.expect("the waiter is granted L");
        (waiter, g)
    });
    let mut conn = Conn::connect(cluster.addr(4)).await;
    conn.wait_lock("L", "the waiter queues for L", |v| {
        v.is_some_and(|v| v.waiters.len() == 1)
    })
    .await;
    within("release", PATIENCE, guard.release())
        .await
        .expect("the holder releases L through the new servers");
    let (_waiter, g) = within("hand-off", PATIENCE, waiting)
        .await
        .expect("the waiter task");
    assert!(
        g.token() > t0,
        "tokens keep increasing: {} after {}",
        g.token(),
        t0
    );

    // Told only of removed server 3, `members` finds the members it names.
    let (code, out) = members_json(&cluster.servers_arg_of(&[3]), &["remove", "5"]);
    assert_eq!(code, 0, "{out}");
    let live = cluster.servers_arg_of(&[4, 5, 6]);
    let (code, out) = members_json(&live, &["remove", "6"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = members_json(&live, &["remove", "4", "--timeout", "5s"]);
    assert_eq!(code, 1, "the last voter cannot go: {out}");
    assert!(
        out["error"]
            .as_str()
            .is_some_and(|e| e.contains("last voter")),
        "{out}"
    );
}

/// A server that was down while the configuration changed knows only the
/// old one when it comes back, in which the members added meanwhile do
/// not appear. Server 3 is down while 4 and 5 replace 1 and 2, which are
/// left running. When 3 comes back, 1 and 2, whom it knows, vouch for 4
/// and 5, so 3 lets them link to it and catches up from their leader; then
/// 5 is killed, and 3 and 4 alone are the majority of {3, 4, 5} that grants
/// a lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_missed_a_membership_change_catches_up_from_the_new_members() {
    let mut cluster = Cluster::start(3);
    cluster.leader().await;
    cluster.server(3).kill();
    let servers = cluster.servers_arg_of(&[1, 2]);
    for new in [4, 5] {
        let (peer, client) = {
            let s = cluster.join(new);
            (s.peer_addr.to_string(), s.client_addr.to_string())
        };
        let id = new.to_string();
        let add = ["add", &id, "--peer-addr", &peer, "--client-addr", &client];
        for change in [&add[..], &["promote", &id]] {
            let (code, out) = members_json(&servers, change);
            assert_eq!(code, 0, "members {change:?}: {out}");
        }
    }
    let live = cluster.servers_arg_of(&[4, 5]);
    for old in ["1", "2"] {
        let (code, out) = members_json(&live, &["remove", old]);
        assert_eq!(code, 0, "members remove {old}: {out}");
    }

    cluster.server(3).restart();
    let three = cluster.addr(3);
    wait_until_async("3 hears from 4 or 5 as leader", PATIENCE, || async move {
        Conn::status_once(three)
            .await
            .and_then(|view| view.leader.map(|l| l.0))
            .filter(|leader| [4, 5].contains(leader))
    })
    .await;
    cluster.server(5).kill();
    let session = within(
        "a session on {3, 4}",
        PATIENCE,
        client_session(&cluster.client_addrs_of(&[3, 4]), TTL),
    )
    .await;
    let guard = within("lock", PATIENCE, session.lock("L"))
        .await
        .expect("3 and 4 grant L");
    let status = status_json(&cluster.servers_arg_of(&[3]), Some("L"));
    let ids: Vec<u64> = member_roles(&status).iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [3, 4, 5], "{status}");
    assert_eq!(status["holders"][0]["token"], guard.token().0, "{status}");
}
