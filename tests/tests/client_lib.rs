//! Tests of the async client library against real `distlock serve`
//! processes on loopback.

use distlock_client::{Client, ClientError, ClientOptions, FencedResource};
use distlock_tests::{
    Cluster, Conn, PATIENCE, Server, client_session, client_session_with, staying_put,
    wait_until_async,
};
use std::time::Duration;

const TTL: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    distlock_tests::within(what, PATIENCE, fut).await
}

#[tokio::test]
async fn lock_excludes_then_passes_on_with_a_higher_token() {
    let server = Server::single();
    let addr = server.client_addr;

    let a = client_session(&[addr], TTL).await;
    let b = client_session(&[addr], TTL).await;
    assert_ne!(a.id(), b.id());

    let ga = within("lock", a.lock("db")).await.expect("a locks");
    let t1 = ga.token();
    assert!(
        within("try_lock", b.try_lock("db"))
            .await
            .expect("b tries")
            .is_none(),
        "the lock is held by a"
    );
    // A timed wait gives up while a holds it.
    assert!(matches!(
        within(
            "lock_timeout",
            b.lock_timeout("db", Duration::from_millis(200))
        )
        .await,
        Err(ClientError::NotGranted)
    ));

    let resource = FencedResource::new();
    resource.check_and_record("db", t1).expect("first token");
    resource
        .check_and_record("db", t1)
        .expect("same holder again");

    within("release", ga.release()).await.expect("a releases");
    let gb = within("try_lock", b.try_lock("db"))
        .await
        .expect("b tries again")
        .expect("b gets the lock");
    let t2 = gb.token();
    assert!(t2 > t1, "token {t2} after {t1}");

    resource.check_and_record("db", t2).expect("newer token");
    let stale = resource
        .check_and_record("db", t1)
        .expect_err("the old holder's token is stale");
    assert_eq!((stale.token, stale.highest), (t1, t2));
    assert_eq!(resource.highest("db"), Some(t2));
    // Another lock's tokens are independent.
    resource.check_and_record("other", t1).expect("other lock");

    // A waiting lock is granted once the holder's session closes.
    let a_id = a.id();
    let waiter = tokio::spawn(async move { a.lock("db").await.map(|g| (g.token(), a)) });
    let mut conn = Conn::connect(addr).await;
    conn.wait_lock("db", "a waits for db", |v| {
        v.is_some_and(|v| v.waiters.iter().any(|w| w.session == a_id))
    })
    .await;
    within("close", b.close()).await.expect("b closes");
    let (t3, a) = within("waiting lock", waiter)
        .await
        .expect("join")
        .expect("a gets the lock after b closed");
    assert!(t3 > t2, "token {t3} after {t2}");
    within("close", a.close()).await.expect("a closes");
}

#[tokio::test]
async fn client_fails_over_and_keeps_its_lock() {
    let mut cluster = Cluster::start(3);
    let clients = cluster.client_addrs();

    // The client dials the first configured server, server 1, and stays
    // there (it does not move to the leader).
    let options = ClientOptions {
        session: distlock_core::client::Config {
            follow_leader: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let a = client_session_with(&clients, TTL, options).await;
    let guard = within("lock", a.lock("shared-db")).await.expect("a locks");
    cluster.server(1).kill();

    // Another client, on the other servers, finds the lock still held.
    let b = client_session(&clients[1..], TTL).await;
    assert!(
        within("try_lock", b.try_lock("shared-db"))
            .await
            .expect("b tries")
            .is_none(),
        "the lock is still held after server 1 died"
    );
    // The first client has failed over: its session still works, and its
    // lease is kept alive past several keepalive rounds.
    let other = within("try_lock after failover", a.try_lock("after-failover"))
        .await
        .expect("a works after failover")
        .expect("a free lock is granted");
    assert!(other.token() > guard.token());
    let mut renewals = 0;
    let mut last = a.lease_deadline();
    wait_until_async(
        "two keepalives acknowledged after the failover",
        PATIENCE,
        || {
            let now = a.lease_deadline();
            if now > last {
                renewals += 1;
                last = now;
            }
            std::future::ready((renewals >= 2).then_some(()))
        },
    )
    .await;
    assert!(!a.is_lost(), "the session survived the failover");
    assert!(
        within("try_lock", b.try_lock("shared-db"))
            .await
            .expect("b tries")
            .is_none(),
        "the lock is still held"
    );
    within("release", guard.release())
        .await
        .expect("a releases");
    let gb = within("try_lock", b.try_lock("shared-db"))
        .await
        .expect("b tries")
        .expect("b gets the lock");
    assert!(gb.token() > other.token());
}

#[tokio::test]
async fn session_is_lost_when_the_cluster_is_gone() {
    let mut server = Server::single();
    let addr = server.client_addr;
    let client = wait_until_async("the server accepts", PATIENCE, || async {
        Client::connect(vec![addr], ClientOptions::default())
            .await
            .ok()
    })
    .await;
    let s = within("open", client.open_session(Duration::from_secs(2)))
        .await
        .expect("session opened");
    let lost = s.lost();
    let guard = within("lock", s.lock("x")).await.expect("locked");
    server.kill();
    within("lost", lost).await;
    assert!(s.is_lost());
    assert!(matches!(
        s.try_lock("y").await,
        Err(ClientError::Session(
            distlock_core::client::ClientError::SessionLost
        ))
    ));
    assert!(guard.release().await.is_err());
    // Only one session per client.
    assert!(client.open_session(Duration::from_secs(2)).await.is_err());
}

/// A caller that stops waiting for a lock (drops the future, here through
/// a timeout around a wait-for-ever acquire) must not leave the lock held
/// by nobody: when the queued acquire is granted later, the library
/// releases it at once, and others can take the lock.
#[tokio::test]
async fn an_abandoned_wait_does_not_keep_the_lock_once_granted() {
    let server = Server::single();
    let addr = server.client_addr;
    let a = client_session(&[addr], TTL).await;
    let b = client_session(&[addr], TTL).await;
    let c = client_session(&[addr], TTL).await;

    let ga = within("lock", a.lock("q")).await.expect("a locks");
    // b queues for ever, then gives up on the caller's side only.
    let abandoned = tokio::time::timeout(Duration::from_millis(300), b.lock("q")).await;
    assert!(abandoned.is_err(), "b cannot get q while a holds it");
    within("release", ga.release()).await.expect("a releases");

    // b's queued acquire is granted and released by the library; then c
    // gets the lock.
    let gc = wait_until_async("c gets the lock b abandoned", PATIENCE, || async {
        c.try_lock("q").await.ok().flatten()
    })
    .await;
    within("release", gc.release()).await.expect("c releases");
}

/// `check_token` and `lock_status` read the cluster's current state: the
/// holder's token is valid while it holds the lock and is not once the
/// next holder has it; the status names the holder, its token and the
/// waiter, and then the new holder. Asked of a follower, they still answer
/// (the follower relays them to the leader).
#[tokio::test]
async fn token_checks_and_lock_status_follow_the_holders() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let follower = cluster.follower_of(leader);
    let a = client_session_with(&[cluster.addr(follower)], TTL, staying_put()).await;
    let b = client_session(&cluster.client_addrs(), TTL).await;

    assert_eq!(
        within("status", a.lock_status("q")).await.expect("status"),
        None
    );
    let ga = within("lock", a.lock("q")).await.expect("a locks");
    let t1 = ga.token();
    assert!(
        within("check", a.check_token("q", t1))
            .await
            .expect("check")
    );
    let waiting = tokio::spawn(async move {
        let g = b.lock("q").await.expect("b is granted q");
        (b, g)
    });
    wait_until_async("b waits for q", PATIENCE, || async {
        let view = a.lock_status("q").await.ok().flatten()?;
        (view.waiters.len() == 1).then_some(view)
    })
    .await;
    let view = within("status", a.lock_status("q"))
        .await
        .expect("status")
        .expect("q is held");
    assert_eq!(view.holders.len(), 1);
    assert_eq!(
        (view.holders[0].session, view.holders[0].token),
        (a.id(), t1)
    );

    within("release", ga.release()).await.expect("a releases");
    let (b, gb) = within("hand-off", waiting).await.expect("the waiter task");
    assert!(gb.token() > t1);
    assert!(
        !within("check", a.check_token("q", t1))
            .await
            .expect("check")
    );
    assert!(
        within("check", b.check_token("q", gb.token()))
            .await
            .expect("check")
    );
    let view = within("status", a.lock_status("q"))
        .await
        .expect("status")
        .expect("q is held");
    assert_eq!(view.holders[0].session, b.id());
}
