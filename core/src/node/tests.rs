//! Tests of the server state machine on a small in-memory cluster: client
//! requests end to end, forwarding, keepalives, and the leader's lease
//! timers under failover (ARCHITECTURE.md §4), on the cluster of [`net`];
//! transcripts of the same in [`transcript`].

mod admin;
mod faults;
mod lease;
mod net;
mod transcript;

use super::{ConnId, NodeAction};
use crate::locks::{ClientCommand, LockError, Mode, Outcome, Seq, SessionId, Wait};
use crate::proto::{
    ClientFrame, PeerFrame, ProtoError, Request, RequestBody, RequestId, ResponseBody, ServerFrame,
};
use crate::time::Duration;
use net::Net;

fn acquire(session: SessionId, seq: u64, lock: &str, wait: Wait) -> RequestBody {
    RequestBody::Log(ClientCommand::Acquire {
        session,
        seq: Seq(seq),
        ack: Seq(seq),
        lock: lock.to_owned(),
        mode: Mode::Exclusive,
        wait,
        lock_delay_ms: 0,
    })
}

fn granted(r: Option<Result<ResponseBody, ProtoError>>) -> u64 {
    match r {
        Some(Ok(ResponseBody::Lock(Outcome::Granted { token }))) => token.0,
        other => panic!("expected a grant, got {other:?}"),
    }
}

#[test]
fn requests_before_hello_are_refused_and_versions_checked() {
    let mut net = Net::new(1);
    let leader = net.settle();
    let id = net.request(leader, ConnId(1), RequestBody::ClusterStatus);
    assert_eq!(net.answer(id), Some(Err(ProtoError::HelloRequired)));
    net.send(
        leader,
        ConnId(2),
        ClientFrame::Hello {
            protocol_version: 99,
            cluster_id: None,
            auth: None,
        },
    );
    assert!(net.replies.iter().any(|(_, c, f)| *c == ConnId(2)
        && matches!(
            f,
            ServerFrame::Error(ProtoError::UnsupportedVersion { client: 99, .. })
        )));
}

#[test]
fn acquire_release_and_hand_off_on_one_server() {
    let mut net = Net::new(1);
    let leader = net.settle();
    let (a, b) = (ConnId(1), ConnId(2));
    net.hello(leader, a);
    net.hello(leader, b);
    let sa = net.open(leader, a, 1, 10_000);
    let sb = net.open(leader, b, 2, 10_000);
    let t1 = granted(net.ask(leader, a, acquire(sa, 1, "db", Wait::Try)));
    let busy = net.request(leader, b, acquire(sb, 1, "db", Wait::Try));
    assert_eq!(
        net.answer(busy),
        Some(Err(ProtoError::Lock(LockError::Busy { delayed: false })))
    );
    let queued = net.request(leader, b, acquire(sb, 2, "db", Wait::Forever));
    assert_eq!(
        net.answer(queued),
        None,
        "a queued acquire is answered when granted"
    );
    let release = RequestBody::Log(ClientCommand::Release {
        session: sa,
        seq: Seq(2),
        ack: Seq(2),
        lock: "db".to_owned(),
        token: crate::locks::FencingToken(t1),
    });
    let r = net.request(leader, a, release);
    assert_eq!(
        net.answer(r),
        Some(Ok(ResponseBody::Lock(Outcome::Released)))
    );
    let t2 = granted(net.answer(queued));
    assert!(t2 > t1, "tokens increase: {t1} then {t2}");
}

#[test]
fn followers_forward_and_answer_their_own_clients() {
    let mut net = Net::new(3);
    let (_, follower, c, s, token) = net.holder_on_a_follower("x");
    assert!(
        net.replies
            .iter()
            .all(|(server, conn, _)| *conn != c || *server == follower)
    );
    let check = net.request(
        follower,
        c,
        RequestBody::CheckToken {
            lock: "x".to_owned(),
            token: crate::locks::FencingToken(token),
        },
    );
    assert_eq!(net.answer(check), Some(Ok(ResponseBody::TokenValid(true))));
    let ka = net.request(follower, c, RequestBody::KeepAlive { session: s });
    assert_eq!(
        net.answer(ka),
        Some(Ok(ResponseBody::KeepAliveAck { session: s }))
    );
    let unknown = net.request(
        follower,
        c,
        RequestBody::KeepAlive {
            session: SessionId(999),
        },
    );
    // A session this connection never opened nor attached: refused
    // before anything looks it up.
    assert_eq!(net.answer(unknown), Some(Err(ProtoError::NotAttached)));
}

/// Requests a follower forwarded to a leader that then died, a read and a
/// log request, are sent again to the next leader and answered, instead of
/// waiting for the client to give up on them; the acquire's answer is the
/// lock's one holder. (The old leader never saw them; see the next test
/// for one it had committed.)
#[test]
fn requests_forwarded_to_a_fallen_leader_are_sent_to_the_next() {
    let mut net = Net::new(3);
    let (leader, follower, c, s, token) = net.holder_on_a_follower("x");

    net.crash(leader);
    let status_of = |lock: &str| RequestBody::LockStatus {
        lock: lock.to_owned(),
    };
    let status = net.request(follower, c, status_of("x"));
    let lock_y = net.request(follower, c, acquire(s, 2, "y", Wait::Try));
    assert_eq!(net.answer(status), None, "the old leader is gone");
    assert_eq!(net.answer(lock_y), None, "the old leader is gone");
    let next = net.settle();
    assert_ne!(next, leader);
    match net.answer(status) {
        Some(Ok(ResponseBody::LockStatus(Some(view)))) => {
            assert_eq!(view.holders.len(), 1, "{view:?}");
            assert_eq!(view.holders[0].token.0, token, "{view:?}");
        }
        other => panic!("the next leader answers the read: {other:?}"),
    }
    let token_y = granted(net.answer(lock_y));
    assert_eq!(net.sole_holder(next, ConnId(2), "y"), token_y);
}

/// An acquire a follower forwarded, which the leader committed without
/// the follower hearing of it (neither the entry nor the answer reached
/// it) before the leader died, is sent again to the next leader. Resending
/// it must cost nothing: the client gets one answer, the grant the old
/// leader committed, and the lock one holder. (The answer itself comes
/// from the follower applying the committed entry, which the next leader
/// replicates; this test passes without the resend too. What it guards is
/// that the resend adds no second answer or grant.)
#[test]
fn a_rerouted_request_the_old_leader_committed_is_answered_with_its_grant() {
    let mut net = Net::new(3);
    let (leader, follower, c, s, _) = net.holder_on_a_follower("x");
    net.cut_one_way(leader, follower);
    let lock_y = net.request(follower, c, acquire(s, 2, "y", Wait::Try));
    net.run_for(Duration::from_millis(50));
    assert_eq!(net.answer(lock_y), None, "nothing reached the follower");
    // The old leader committed the grant.
    let committed = net.sole_holder(leader, ConnId(2), "y");
    net.heal();
    net.crash(leader);
    let next = net.settle();
    assert_ne!(next, leader);
    net.run_for(Duration::from_millis(100));
    let answers: Vec<_> = net
        .replies
        .iter()
        .filter_map(|(_, _, f)| match f {
            ServerFrame::Response(r) if r.id == lock_y => Some(r.result.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(granted(net.answer(lock_y)), committed);
    assert_eq!(net.sole_holder(next, ConnId(3), "y"), committed);
}

/// ARCHITECTURE.md §4, lease rule 1: only the leader expires, by committing ExpireSession;
/// a session kept alive lives on, one left alone expires after its TTL and
/// its lock goes to the waiter.
#[test]
fn the_leader_expires_sessions_that_stop_keeping_alive() {
    let mut net = Net::new(3);
    let leader = net.settle();
    let (a, b) = (ConnId(1), ConnId(2));
    net.hello(leader, a);
    net.hello(leader, b);
    let sa = net.open(leader, a, 1, 2_000);
    let sb = net.open(leader, b, 2, 2_000);
    granted(net.ask(leader, a, acquire(sa, 1, "l", Wait::Try)));
    let waiting = net.request(leader, b, acquire(sb, 1, "l", Wait::Forever));
    // b keeps alive for 6 s; a does not.
    for _ in 0..10 {
        net.request(leader, b, RequestBody::KeepAlive { session: sb });
        net.run_for(Duration::from_millis(600));
    }
    let t = granted(net.answer(waiting));
    assert!(t > 0);
    assert!(
        net.nodes[&leader]
            .raft()
            .state_machine()
            .session(sa)
            .is_none(),
        "a expired"
    );
    assert!(
        net.nodes[&leader]
            .raft()
            .state_machine()
            .session(sb)
            .is_some(),
        "b kept alive"
    );
}

/// ARCHITECTURE.md §4, lease rule 4: a new leader gives every session its full TTL from
/// its election, so a failover never shortens a lease.
#[test]
fn a_new_leader_extends_every_lease_to_full_length() {
    let mut net = Net::new(3);
    let leader = net.settle();
    let c = ConnId(1);
    net.hello(leader, c);
    let s = net.open(leader, c, 1, 3_000);
    let opened_at = net.now;
    net.run_for(Duration::from_millis(2_000));
    net.crash(leader);
    let new_leader = net.settle();
    assert_ne!(new_leader, leader);
    let elected_at = net.now;
    assert!(net.nodes[&new_leader].lease_timer_count() == 1);
    // Past the old deadline (opened + ttl), not past election + ttl: alive.
    assert!(elected_at + Duration::from_millis(2_900) > opened_at + Duration::from_millis(3_000));
    net.run_to(elected_at + Duration::from_millis(2_900));
    assert!(
        net.nodes[&new_leader]
            .raft()
            .state_machine()
            .session(s)
            .is_some(),
        "expired before election + ttl"
    );
    net.run_to(elected_at + Duration::from_millis(3_700));
    assert!(
        net.nodes[&new_leader]
            .raft()
            .state_machine()
            .session(s)
            .is_none(),
        "never expired"
    );
}

#[test]
fn watchers_see_applied_events() {
    let mut net = Net::new(1);
    let leader = net.settle();
    let (w, c) = (ConnId(1), ConnId(2));
    net.hello(leader, w);
    net.hello(leader, c);
    let id = net.request(
        leader,
        w,
        RequestBody::Watch {
            lock: "q".to_owned(),
        },
    );
    assert_eq!(net.answer(id), Some(Ok(ResponseBody::Watching)));
    let s = net.open(leader, c, 5, 10_000);
    granted(net.ask(leader, c, acquire(s, 1, "q", Wait::Try)));
    assert!(
        net.replies
            .iter()
            .any(|(_, conn, f)| *conn == w && matches!(f, ServerFrame::Watch(_)))
    );
}

/// Graceful shutdown: the leader hands over, and refuses new requests so
/// that clients move on; sessions and locks stay.
#[test]
fn draining_hands_leadership_over_and_refuses_new_requests() {
    let mut net = Net::new(3);
    let leader = net.settle();
    let c = ConnId(1);
    net.hello(leader, c);
    let s = net.open(leader, c, 1, 10_000);
    granted(net.ask(leader, c, acquire(s, 1, "l", Wait::Try)));
    let now = net.now;
    let target = net
        .nodes
        .get_mut(&leader)
        .and_then(|n| n.start_draining(now));
    assert!(target.is_some(), "a leader names a successor");
    net.drain(leader);
    net.run_for(Duration::from_millis(200));
    assert_eq!(net.leader(), target, "leadership moved to the successor");
    let refused = net.ask(leader, c, RequestBody::KeepAlive { session: s });
    assert_eq!(refused, Some(Err(ProtoError::ShuttingDown)));
    let new_leader = target.expect("target");
    let c2 = ConnId(2);
    net.hello(new_leader, c2);
    // The client that moved proves it opened the session (its nonce, 1).
    assert_eq!(
        net.ask(
            new_leader,
            c2,
            RequestBody::Attach {
                session: s,
                secret: 1
            }
        ),
        Some(Ok(ResponseBody::Attached { session: s }))
    );
    assert_eq!(
        net.ask(new_leader, c2, RequestBody::KeepAlive { session: s }),
        Some(Ok(ResponseBody::KeepAliveAck { session: s }))
    );
}

/// A session id and a token are not enough to act on someone else's
/// session: another connection's release, close and keepalive are refused
/// `NotAttached` and change nothing; a wrong secret is refused
/// `NotSessionOwner`; the right one attaches, on a follower too.
#[test]
fn only_a_connection_that_proves_the_session_acts_for_it() {
    let mut net = Net::new(3);
    let leader = net.settle();
    let owner = ConnId(1);
    net.hello(leader, owner);
    let nonce = 0xfeed_beef_u128 << 64;
    let s = net.open(leader, owner, nonce, 10_000);
    let token = granted(net.ask(leader, owner, acquire(s, 1, "l", Wait::Try)));
    let stranger = ConnId(2);
    let follower = net.follower_of(leader);
    for server in [leader, follower] {
        net.hello(server, stranger);
        let release = RequestBody::Log(ClientCommand::Release {
            session: s,
            seq: Seq(1 << 62),
            ack: Seq(1 << 62),
            lock: "l".to_owned(),
            token: crate::locks::FencingToken(token),
        });
        assert_eq!(
            net.ask(server, stranger, release),
            Some(Err(ProtoError::NotAttached))
        );
        let close = RequestBody::Log(ClientCommand::CloseSession {
            session: s,
            seq: Seq(1 << 62),
            ack: Seq(1 << 62),
        });
        assert_eq!(
            net.ask(server, stranger, close),
            Some(Err(ProtoError::NotAttached))
        );
        let wrong = RequestBody::Attach {
            session: s,
            secret: nonce + 1,
        };
        assert_eq!(
            net.ask(server, stranger, wrong),
            Some(Err(ProtoError::NotSessionOwner))
        );
    }
    let held = net.nodes[&leader]
        .raft()
        .state_machine()
        .check_token("l", crate::locks::FencingToken(token));
    assert!(held, "the owner still holds the lock");
    let right = RequestBody::Attach {
        session: s,
        secret: nonce,
    };
    assert_eq!(
        net.ask(follower, stranger, right),
        Some(Ok(ResponseBody::Attached { session: s }))
    );
    assert_eq!(
        net.ask(follower, stranger, RequestBody::KeepAlive { session: s }),
        Some(Ok(ResponseBody::KeepAliveAck { session: s }))
    );
}

/// Servers told only their own addresses publish them through the log:
/// every server's `Welcome` then names every member's client address, and
/// a server that starts again finds them in its log.
#[test]
fn servers_publish_their_own_addresses() {
    let mut net = Net::with(3, true);
    net.settle();
    net.run_for(Duration::from_secs(2));
    for (&id, node) in &net.nodes {
        let ServerFrame::Welcome { members, .. } = node.welcome() else {
            panic!("a welcome");
        };
        let addrs: Vec<(u64, String)> = members
            .iter()
            .map(|m| (m.id.0, m.client_addr.clone()))
            .collect();
        assert_eq!(
            addrs,
            vec![
                (1, "127.0.0.1:7001".to_owned()),
                (2, "127.0.0.1:7002".to_owned()),
                (3, "127.0.0.1:7003".to_owned()),
            ],
            "server {id} tells its clients every member's address"
        );
        assert!(
            !node.addrs_unpublished(),
            "server {id} has nothing left to publish"
        );
        assert_eq!(
            node.publish_deadline(),
            None,
            "server {id} keeps no publish timer"
        );
    }
}

/// A request a follower forwards over a link the runtime knows is down is
/// answered `LeaderUnreachable` at once, naming the leader, and the
/// follower keeps nothing of it.
#[test]
fn a_forward_the_runtime_cannot_deliver_is_answered_at_once() {
    let mut net = Net::new(3);
    let leader = net.settle();
    let follower = net.follower_of(leader);
    let conn = ConnId(1);
    net.hello(follower, conn);
    let id = RequestId(99);
    let request = ClientFrame::Request(Request {
        id,
        body: RequestBody::LockStatus {
            lock: "a".to_owned(),
        },
    });
    let node = net.nodes.get_mut(&follower).expect("follower");
    node.handle_client(conn, request, net.now);
    let mut forwarded = None;
    while let Some(action) = node.poll_action() {
        if let NodeAction::Send {
            to,
            frame: PeerFrame::Forward { request, .. },
        } = action
        {
            assert_eq!(to, leader);
            forwarded = Some(request.id);
        }
    }
    let fid = forwarded.expect("the follower forwards to the leader");
    node.forward_undeliverable(fid);
    net.drain(follower);
    assert_eq!(
        net.answer(id),
        Some(Err(ProtoError::LeaderUnreachable { leader }))
    );
    assert!(net.nodes[&follower].forwarded.is_empty());
}

/// A request whose own fields the state machine would refuse (a name
/// longer than the limit, a semaphore of 0) is refused before it enters
/// the log, by the leader and by a follower alike; the session's next
/// request goes through.
#[test]
fn requests_refused_for_their_own_fields_never_enter_the_log() {
    let mut net = Net::new(3);
    let leader = net.settle();
    let follower = net.follower_of(leader);
    let c = ConnId(1);
    net.hello(leader, c);
    net.hello(follower, c);
    let s = net.open(leader, c, 5, 10_000);
    net.run_for(Duration::from_millis(50));
    let attach = RequestBody::Attach {
        session: s,
        secret: 5,
    };
    assert_eq!(
        net.ask(follower, c, attach),
        Some(Ok(ResponseBody::Attached { session: s }))
    );
    let before = net.nodes[&leader].raft().last_index();
    let huge = "x".repeat(600_000);
    for server in [leader, follower] {
        let answer = net.ask(server, c, acquire(s, 1, &huge, Wait::Try));
        assert!(
            matches!(
                answer,
                Some(Err(ProtoError::Lock(LockError::InvalidName { .. })))
            ),
            "{answer:?}"
        );
    }
    let zero = RequestBody::Log(ClientCommand::Acquire {
        session: s,
        seq: Seq(1),
        ack: Seq(1),
        lock: "l".to_owned(),
        mode: Mode::Semaphore(0),
        wait: Wait::Try,
        lock_delay_ms: 0,
    });
    assert!(matches!(
        net.ask(leader, c, zero),
        Some(Err(ProtoError::Lock(LockError::InvalidSemaphore)))
    ));
    assert_eq!(
        net.nodes[&leader].raft().last_index(),
        before,
        "nothing was proposed"
    );
    granted(net.ask(leader, c, acquire(s, 1, "l", Wait::Try)));
}
