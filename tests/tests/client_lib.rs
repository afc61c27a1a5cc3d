//! Tests of the async client library against real `distlock serve`
//! processes on loopback.

use distlock_client::{
    Client, ClientError, ClientOptions, FencedResource, LockEvent, WatchStream, WatchUpdate,
};
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

async fn next_update(stream: &mut WatchStream) -> WatchUpdate {
    within("the next watch update", stream.next())
        .await
        .expect("the watch stream goes on")
}

/// A watch reports each grant and release of its lock in order; when the
/// server it watches through dies, the client fails over, says so
/// (`Resumed`), repeats nothing and reports the next grant from the new
/// server.
#[tokio::test]
async fn a_watch_stream_follows_the_lock_across_a_failover() {
    let mut cluster = Cluster::start(3);
    let clients = cluster.client_addrs();
    // The watcher dials server 1 first and stays there.
    let watcher = Client::connect_within(clients.clone(), staying_put(), PATIENCE)
        .await
        .expect("the watcher connects");
    let mut events = watcher.watch("watched").expect("watch");
    assert_eq!(events.lock_name(), "watched");
    // The watch is asked before this read on the same connection, and the
    // server handles a connection's requests in order: once the read is
    // answered, the watch is in place.
    within("status", watcher.lock_status("watched"))
        .await
        .expect("status");

    let b = client_session(&clients[1..], TTL).await;
    let g1 = within("lock", b.lock("watched")).await.expect("b locks");
    let t1 = g1.token();
    let WatchUpdate::Event(LockEvent::Acquired { session, token, .. }) =
        next_update(&mut events).await
    else {
        panic!("the grant comes first");
    };
    assert_eq!((session, token), (b.id(), t1));
    within("release", g1.release()).await.expect("b releases");
    let WatchUpdate::Event(LockEvent::Released { session, token, .. }) =
        next_update(&mut events).await
    else {
        panic!("then the release");
    };
    assert_eq!((session, token), (b.id(), t1));

    cluster.server(1).kill();
    assert_eq!(
        next_update(&mut events).await,
        WatchUpdate::Resumed,
        "the watch is asked again of another server"
    );
    within("status after the failover", watcher.lock_status("watched"))
        .await
        .expect("status");
    let g2 = within("lock", b.lock("watched"))
        .await
        .expect("b locks again");
    // Each move to another server asks the watch again and says so; a
    // first server that is not the leader sends the client on, so there
    // may be more than one `Resumed`. Events are never repeated.
    let update = loop {
        match next_update(&mut events).await {
            WatchUpdate::Resumed => {}
            update => break update,
        }
    };
    let WatchUpdate::Event(LockEvent::Acquired { session, token, .. }) = update else {
        panic!("the next grant, with nothing repeated before it: {update:?}");
    };
    assert_eq!((session, token), (b.id(), g2.token()));
    assert!(g2.token() > t1);
}

/// One client, two sessions: each holds its own lock and keeps its own
/// lease alive; the locks exclude each other's session like any other;
/// closing one leaves the other working.
#[tokio::test]
async fn two_sessions_of_one_client_hold_two_locks() {
    let server = Server::single();
    let ttl = Duration::from_secs(2);
    let client =
        Client::connect_within(vec![server.client_addr], ClientOptions::default(), PATIENCE)
            .await
            .expect("connects");
    // A refused open is a typed error and leaves the client working.
    let refused = within("open", client.open_session(Duration::from_secs(100_000))).await;
    assert!(
        matches!(
            refused,
            Err(ClientError::Session(
                distlock_core::client::ClientError::Server(distlock_core::proto::ProtoError::Lock(
                    distlock_client::LockError::InvalidTtl { .. }
                ))
            ))
        ),
        "{refused:?}"
    );
    let s1 = within("open", client.open_session(ttl)).await.expect("s1");
    let s2 = within("open", client.open_session(ttl)).await.expect("s2");
    assert_ne!(s1.id(), s2.id());

    let g1 = within("lock", s1.lock("one")).await.expect("s1 locks one");
    let g2 = within("lock", s2.lock("two")).await.expect("s2 locks two");
    assert!(
        within("try_lock", s2.try_lock("one"))
            .await
            .expect("s2 tries one")
            .is_none(),
        "the other session of the same client is excluded"
    );
    let holder =
        |view: Option<distlock_client::LockStatusView>| view.expect("held").holders[0].session;
    assert_eq!(
        holder(client.lock_status("one").await.expect("status")),
        s1.id()
    );
    assert_eq!(
        holder(client.lock_status("two").await.expect("status")),
        s2.id()
    );

    // Both leases are renewed by their own keepalives, past several TTLs.
    let (start1, start2) = (s1.lease_deadline(), s2.lease_deadline());
    let later = tokio::time::Instant::now() + ttl * 2;
    wait_until_async("both sessions renewed past two TTLs", PATIENCE, || {
        let renewed = |d: Option<tokio::time::Instant>, from| d > from && d > Some(later);
        std::future::ready(
            (renewed(s1.lease_deadline(), start1) && renewed(s2.lease_deadline(), start2))
                .then_some(()),
        )
    })
    .await;
    assert!(s1.is_valid() && s2.is_valid());

    drop(g1);
    within("close", s1.close()).await.expect("s1 closes");
    let again = within("try_lock", s2.try_lock("one"))
        .await
        .expect("s2 tries")
        .expect("one is free once s1 closed");
    assert!(s2.is_valid(), "s2 lives on after s1 closed");
    within("release", again.release()).await.expect("release");
    within("release", g2.release()).await.expect("release");
}

/// A caller that drops a waiting `lock()` future withdraws its wait from
/// the lock's queue: the queue is empty again while the holder still
/// holds, and when the holder releases, another client gets the lock at
/// once, not after the abandoned wait's minute-long timeout.
#[tokio::test]
async fn dropping_a_waiting_lock_future_leaves_the_queue() {
    let server = Server::single();
    let addr = server.client_addr;
    let a = client_session(&[addr], TTL).await;
    let b = client_session(&[addr], TTL).await;
    let c = client_session(&[addr], TTL).await;

    let ga = within("lock", a.lock("q")).await.expect("a locks");
    // Boxed, so that dropping it drops the future itself.
    let mut waiting = Box::pin(b.lock_timeout("q", Duration::from_secs(60)));
    let b_id = b.id();
    // Polled once, b's acquire goes out; b is then in the queue...
    assert!(poll_once(&mut waiting).await.is_none());
    wait_until_async("b waits for q", PATIENCE, || async {
        let view = a.lock_status("q").await.ok().flatten()?;
        view.waiters.iter().any(|w| w.session == b_id).then_some(())
    })
    .await;
    // ...until its caller drops the future.
    drop(waiting);
    wait_until_async("b's wait left the queue", PATIENCE, || async {
        let view = a.lock_status("q").await.ok().flatten()?;
        assert_eq!(view.holders[0].session, a.id(), "a still holds q");
        view.waiters.is_empty().then_some(())
    })
    .await;
    assert!(!b.is_lost(), "b's session lives on");

    within("release", ga.release()).await.expect("a releases");
    let gc = within("try_lock", c.try_lock("q"))
        .await
        .expect("c tries")
        .expect("nobody else was in line: c gets q at once");
    within("release", gc.release()).await.expect("c releases");
}

/// Polls `fut` once; `Some` if it completed.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut *fut).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// Dropping a guard releases its lock in the background while the session
/// lives on; a guard whose session handle was dropped still holds its lock
/// (the session stays open for it) until it is dropped in turn.
#[tokio::test]
async fn dropped_guards_release_in_the_background() {
    let server = Server::single();
    let addr = server.client_addr;
    let a = client_session(&[addr], TTL).await;
    let b = client_session(&[addr], TTL).await;

    let g = within("lock", a.lock("g")).await.expect("a locks");
    drop(g);
    let gb = wait_until_async(
        "b gets the lock a's dropped guard released",
        PATIENCE,
        || async { b.try_lock("g").await.ok().flatten() },
    )
    .await;
    assert!(a.is_valid(), "a's session lives on");
    within("release", gb.release()).await.expect("b releases");

    let kept = within("lock", a.lock("kept")).await.expect("a locks kept");
    let last = within("lock", a.lock("last")).await.expect("a locks last");
    let a_id = a.id();
    drop(a);
    // The guards keep the session open: one of them can still release.
    let view = within("status", b.lock_status("kept"))
        .await
        .expect("status")
        .expect("held");
    assert_eq!(
        (view.holders[0].session, view.holders[0].token),
        (a_id, kept.token())
    );
    within("release", kept.release())
        .await
        .expect("the session of a guard is open while the guard lives");
    drop(last);
    wait_until_async(
        "last is free once a's last guard is dropped",
        PATIENCE,
        || async { b.try_lock("last").await.ok().flatten() },
    )
    .await;
}
