//! Listings and revocation served by the cluster: linearizable pages with
//! who opened each session, and an operator ending a session as expiry
//! would.

use super::{Net, acquire, granted};
use crate::locks::{ClientCommand, Mode, Seq, SessionMeta, Wait};
use crate::node::ConnId;
use crate::proto::{ProtoError, RequestBody, ResponseBody};
use crate::time::Duration;

#[test]
fn revoking_a_session_expires_it_with_its_lock_delay() {
    let mut net = Net::new(3);
    let leader = net.settle();
    let follower = net.follower_of(leader);
    let (a, b, op) = (ConnId(1), ConnId(2), ConnId(3));
    for c in [a, b] {
        net.hello(leader, c);
    }
    net.hello(follower, op);
    let sa = net.open(leader, a, 1, 10_000);
    let sb = net.open(leader, b, 2, 10_000);
    let held = RequestBody::Log(ClientCommand::Acquire {
        session: sa,
        seq: Seq(1),
        ack: Seq(1),
        lock: "x".to_owned(),
        mode: Mode::Exclusive,
        wait: Wait::Try,
        lock_delay_ms: 3_000,
    });
    let first = granted(net.ask(leader, a, held));
    let waiting = net.request(leader, b, acquire(sb, 1, "x", Wait::Forever));

    // Unknown sessions are refused and nothing is appended.
    let before = net.nodes[&leader].raft().last_index();
    for unknown in [crate::locks::SessionId(999), crate::locks::SessionId(0)] {
        assert_eq!(
            net.ask(
                follower,
                op,
                RequestBody::RevokeSession { session: unknown }
            ),
            Some(Err(ProtoError::UnknownSession))
        );
    }
    assert_eq!(net.nodes[&leader].raft().last_index(), before);

    assert_eq!(
        net.ask(follower, op, RequestBody::RevokeSession { session: sa }),
        Some(Ok(ResponseBody::Revoked { session: sa }))
    );
    let state = net.nodes[&leader].raft().state_machine();
    assert!(state.session(sa).is_none(), "revoked");
    let status = state.lock_status("x").expect("in lock-delay");
    assert!(status.holders.is_empty() && status.delay.is_some());
    assert_eq!(
        net.answer(waiting),
        None,
        "nobody is granted during the delay"
    );
    // Again: it is no longer live.
    assert_eq!(
        net.ask(follower, op, RequestBody::RevokeSession { session: sa }),
        Some(Err(ProtoError::UnknownSession))
    );
    for _ in 0..8 {
        net.request(leader, b, RequestBody::KeepAlive { session: sb });
        net.run_for(Duration::from_millis(500));
    }
    assert!(
        granted(net.answer(waiting)) > first,
        "granted once the delay ended"
    );
}

#[test]
fn listings_name_the_sessions_and_page_on() {
    let mut net = Net::new(3);
    let leader = net.settle();
    let follower = net.follower_of(leader);
    let c = ConnId(1);
    net.hello(follower, c);
    let meta = SessionMeta {
        name: "alice@db1 42".to_owned(),
        host: "db1".to_owned(),
        pid: Some(42),
        labels: Default::default(),
    };
    let open = RequestBody::Log(ClientCommand::OpenSessionWithMeta {
        nonce: 5,
        ttl_ms: 10_000,
        meta: meta.clone(),
    });
    let Some(Ok(ResponseBody::SessionOpened { session, .. })) = net.ask(follower, c, open) else {
        panic!("opens");
    };
    for (seq, lock) in (1..).zip(["a", "b", "c"]) {
        granted(net.ask(follower, c, acquire(session, seq, lock, Wait::Try)));
    }
    let list = |after: Option<String>| RequestBody::ListLocks {
        prefix: String::new(),
        after,
        limit: 2,
    };
    let Some(Ok(ResponseBody::Locks(page))) = net.ask(follower, c, list(None)) else {
        panic!("lists");
    };
    assert_eq!(page.locks.len(), 2);
    assert_eq!(page.locks[0].name, "a");
    assert_eq!(page.locks[0].holders[0].session, session);
    assert_eq!(page.locks[0].holders[0].owner.as_ref(), Some(&meta));
    assert_eq!(page.next.as_deref(), Some("b"));
    let Some(Ok(ResponseBody::Locks(page))) = net.ask(follower, c, list(page.next)) else {
        panic!("lists");
    };
    assert_eq!(page.locks.len(), 1);
    assert_eq!(page.locks[0].name, "c");
    assert_eq!(page.next, None);

    let sessions = RequestBody::ListSessions {
        after: None,
        limit: 0,
    };
    net.hello(leader, ConnId(9));
    let Some(Ok(ResponseBody::Sessions(page))) = net.ask(leader, ConnId(9), sessions) else {
        panic!("lists sessions");
    };
    assert_eq!(page.sessions.len(), 1);
    assert_eq!(page.sessions[0].session, session);
    assert_eq!(page.sessions[0].held, 3);
    assert_eq!(page.sessions[0].owner.as_ref(), Some(&meta));
    assert_eq!(page.next, None);
}
