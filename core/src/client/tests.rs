//! Tests of the client session state machine.

use super::*;
use crate::ids::NodeId;
use crate::locks::ClientCommand;
use crate::locks::{FencingToken, LockError, Mode, Outcome, Seq, SessionId, Wait};
use crate::proto::{
    ClientFrame, Request, RequestBody, RequestId, Response, ResponseBody, ServerFrame,
};
use crate::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(9);

fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

fn requests(c: &mut ClientSession) -> Vec<Request> {
    let mut out = Vec::new();
    while let Some(f) = c.poll_frame() {
        if let ClientFrame::Request(r) = f {
            out.push(r);
        }
    }
    out
}

fn events(c: &mut ClientSession) -> Vec<ClientEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn answer(
    c: &mut ClientSession,
    id: RequestId,
    result: Result<ResponseBody, ProtoError>,
    now: Instant,
) {
    c.handle_frame(ServerFrame::Response(Response { id, result }), now);
}

fn members() -> Vec<MemberInfo> {
    (1..=3)
        .map(|i| MemberInfo {
            id: NodeId(i),
            client_addr: format!("10.0.0.{i}:7000"),
            ws_addr: None,
        })
        .collect()
}

/// A client whose session s7 was opened at t=0 and acknowledged at t=10 ms.
fn open_client() -> ClientSession {
    let mut c = ClientSession::new(Config::default());
    c.connected(None, ms(0));
    c.handle_frame(
        ServerFrame::Welcome {
            node_id: NodeId(1),
            leader_hint: Some(NodeId(1)),
            members: members(),
        },
        ms(0),
    );
    let op = c.open_session(TTL, 42, ms(0)).expect("opens");
    let reqs = requests(&mut c);
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].body,
        RequestBody::Log(ClientCommand::OpenSession {
            nonce: 42,
            ttl_ms: 9000
        })
    );
    answer(
        &mut c,
        reqs[0].id,
        Ok(ResponseBody::SessionOpened {
            session: SessionId(7),
            ttl_ms: 9000,
        }),
        ms(10),
    );
    assert_eq!(
        events(&mut c),
        [ClientEvent::SessionOpened {
            op,
            result: Ok(SessionId(7))
        }]
    );
    c
}

/// ttl × (1 − 2·1 %) for the default drift.
fn lease() -> Duration {
    TTL * 98 / 100
}

fn seq_ack(body: &RequestBody) -> (Seq, Seq) {
    match body {
        RequestBody::Log(ClientCommand::Acquire { seq, ack, .. })
        | RequestBody::Log(ClientCommand::Release { seq, ack, .. })
        | RequestBody::Log(ClientCommand::CancelWait { seq, ack, .. })
        | RequestBody::Log(ClientCommand::CloseSession { seq, ack, .. }) => (*seq, *ack),
        other => panic!("not a logged request: {other:?}"),
    }
}

fn try_acquire(c: &mut ClientSession, lock: &str, now: Instant) -> OpId {
    c.acquire(lock, Mode::Exclusive, Wait::Try, Duration::ZERO, now)
        .expect("session open")
}

#[test]
fn lease_counts_from_the_open_send_time_not_the_ack() {
    let c = open_client();
    // Sent at 0, acknowledged at 10 ms: the lease counts from 0.
    assert_eq!(c.lease_until(), Some(ms(0) + lease()));
    assert!(c.is_alive(ms(0) + lease() - Duration::from_micros(1)));
    assert!(!c.is_alive(ms(0) + lease()));
}

#[test]
fn slow_keepalive_ack_does_not_extend_past_send_plus_lease() {
    let mut c = open_client();
    c.handle_timeout(ms(3000));
    let ka = requests(&mut c);
    assert_eq!(ka.len(), 1);
    assert_eq!(
        ka[0].body,
        RequestBody::KeepAlive {
            session: SessionId(7)
        }
    );
    // The ack comes 800 ms later (within the request timeout).
    answer(
        &mut c,
        ka[0].id,
        Ok(ResponseBody::KeepAliveAck {
            session: SessionId(7),
        }),
        ms(3800),
    );
    assert_eq!(c.lease_until(), Some(ms(3000) + lease()));
    assert!(!c.is_alive(ms(3000) + lease()));
}

#[test]
fn keepalives_every_third_of_the_ttl() {
    let mut c = open_client();
    assert_eq!(c.poll_timeout(), Some(ms(3000)));
    let mut sent = Vec::new();
    let mut now = ms(10);
    while now < ms(12_500) {
        let Some(t) = c.poll_timeout() else { break };
        if t > ms(12_500) {
            break;
        }
        now = t;
        c.handle_timeout(now);
        for r in requests(&mut c) {
            assert!(matches!(r.body, RequestBody::KeepAlive { .. }));
            sent.push(now);
            answer(
                &mut c,
                r.id,
                Ok(ResponseBody::KeepAliveAck {
                    session: SessionId(7),
                }),
                now,
            );
        }
    }
    assert_eq!(sent, [ms(3000), ms(6000), ms(9000), ms(12_000)]);
    assert!(c.is_alive(ms(12_000) + lease() - Duration::from_micros(1)));
    assert!(events(&mut c).is_empty());
}

#[test]
fn session_lost_fires_once_and_is_final() {
    let mut c = open_client();
    let acq = try_acquire(&mut c, "a", ms(20));
    let reqs = requests(&mut c);
    // The keepalives go unanswered; the connection is dropped and the
    // driver never manages to reconnect.
    c.connection_lost(ms(100));
    let end = ms(0) + lease();
    c.handle_timeout(end - Duration::from_micros(1));
    assert!(c.is_alive(end - Duration::from_micros(1)));
    let _ = events(&mut c);
    c.handle_timeout(end);
    assert!(!c.is_alive(end));
    assert_eq!(
        events(&mut c),
        [
            ClientEvent::Completed {
                op: acq,
                result: Err(ClientError::SessionLost)
            },
            ClientEvent::SessionLost {
                reason: LostReason::LeaseExpired
            },
        ]
    );
    // A late ack (even on a new connection) revives nothing.
    c.connected(Some(NodeId(2)), end + Duration::from_millis(1));
    answer(
        &mut c,
        reqs[0].id,
        Ok(ResponseBody::Lock(Outcome::Granted {
            token: FencingToken(3),
        })),
        end,
    );
    c.handle_timeout(end + Duration::from_secs(5));
    c.connection_lost(end + Duration::from_secs(6));
    assert!(!c.is_alive(end + Duration::from_millis(2)));
    assert!(events(&mut c).iter().all(|e| !matches!(
        e,
        ClientEvent::SessionLost { .. } | ClientEvent::Completed { .. }
    )));
    // Every operation now fails at once.
    let now = end + Duration::from_secs(7);
    assert_eq!(
        c.acquire("b", Mode::Shared, Wait::Try, Duration::ZERO, now),
        Err(ClientError::SessionLost)
    );
    assert_eq!(
        c.release("a", FencingToken(1), now),
        Err(ClientError::SessionLost)
    );
    assert_eq!(c.cancel_wait("a", now), Err(ClientError::SessionLost));
    assert_eq!(c.close(now), Err(ClientError::SessionLost));
    assert_eq!(c.open_session(TTL, 1, now), Err(ClientError::SessionLost));
    assert!(requests(&mut c).is_empty());
}

#[test]
fn unknown_session_on_keepalive_loses_the_session() {
    let mut c = open_client();
    c.handle_timeout(ms(3000));
    let ka = requests(&mut c);
    answer(&mut c, ka[0].id, Err(ProtoError::UnknownSession), ms(3001));
    assert_eq!(
        events(&mut c),
        [ClientEvent::SessionLost {
            reason: LostReason::Rejected(ProtoError::UnknownSession)
        }]
    );
    c.handle_timeout(ms(20_000));
    assert!(events(&mut c).is_empty());
}

#[test]
fn seqs_increase_and_ack_advances_only_past_answered_seqs() {
    let mut c = open_client();
    let a = try_acquire(&mut c, "a", ms(20));
    let b = try_acquire(&mut c, "b", ms(20));
    let r1 = requests(&mut c);
    assert_eq!(seq_ack(&r1[0].body), (Seq(1), Seq(1)));
    assert_eq!(seq_ack(&r1[1].body), (Seq(2), Seq(1)));
    // Seq 2 answered, seq 1 not: the ack stays at 1.
    answer(
        &mut c,
        r1[1].id,
        Ok(ResponseBody::Lock(Outcome::Granted {
            token: FencingToken(5),
        })),
        ms(30),
    );
    assert_eq!(
        events(&mut c),
        [ClientEvent::Completed {
            op: b,
            result: Ok(Outcome::Granted {
                token: FencingToken(5)
            })
        }]
    );
    c.release("b", FencingToken(5), ms(40)).expect("open");
    let r2 = requests(&mut c);
    assert_eq!(seq_ack(&r2[0].body), (Seq(3), Seq(1)));
    // Seq 1 answered (with a final error): the ack moves to 3.
    answer(
        &mut c,
        r1[0].id,
        Err(ProtoError::Lock(LockError::Busy { delayed: false })),
        ms(50),
    );
    assert_eq!(
        events(&mut c),
        [ClientEvent::Completed {
            op: a,
            result: Err(ClientError::Server(ProtoError::Lock(LockError::Busy {
                delayed: false
            })))
        }]
    );
    c.cancel_wait("c", ms(60)).expect("open");
    let r3 = requests(&mut c);
    assert_eq!(seq_ack(&r3[0].body), (Seq(4), Seq(3)));
}

#[test]
fn not_leader_is_retried_with_the_same_seq_after_backoff() {
    let mut c = open_client();
    let op = try_acquire(&mut c, "a", ms(20));
    let first = requests(&mut c);
    answer(
        &mut c,
        first[0].id,
        Err(ProtoError::NotLeader { leader_hint: None }),
        ms(30),
    );
    assert!(events(&mut c).is_empty());
    assert_eq!(c.poll_timeout(), Some(ms(130)));
    c.handle_timeout(ms(129));
    assert!(requests(&mut c).is_empty());
    c.handle_timeout(ms(130));
    let second = requests(&mut c);
    assert_eq!(second.len(), 1);
    assert_ne!(second[0].id, first[0].id);
    assert_eq!(second[0].body, first[0].body);
    answer(&mut c, second[0].id, Err(ProtoError::NoLeader), ms(140));
    // Backoff doubled.
    assert_eq!(c.poll_timeout(), Some(ms(340)));
    c.handle_timeout(ms(340));
    let third = requests(&mut c);
    assert_eq!(seq_ack(&third[0].body), (Seq(1), Seq(1)));
    answer(
        &mut c,
        third[0].id,
        Ok(ResponseBody::Lock(Outcome::Granted {
            token: FencingToken(9),
        })),
        ms(350),
    );
    assert_eq!(
        events(&mut c),
        [ClientEvent::Completed {
            op,
            result: Ok(Outcome::Granted {
                token: FencingToken(9)
            })
        }]
    );
}

#[test]
fn failover_resends_outstanding_requests_with_the_same_seqs() {
    let mut c = open_client();
    try_acquire(&mut c, "a", ms(20));
    c.acquire("w", Mode::Exclusive, Wait::Forever, Duration::ZERO, ms(20))
        .expect("open");
    let before = requests(&mut c);
    assert_eq!(before.len(), 2);
    // The try-acquire times out after 1 s: fail over.
    assert_eq!(c.poll_timeout(), Some(ms(1020)));
    c.handle_timeout(ms(1020));
    assert!(events(&mut c).is_empty());
    // Backoff 100 ms, then a Reconnect naming the next member.
    assert_eq!(c.poll_timeout(), Some(ms(1120)));
    c.handle_timeout(ms(1120));
    let ev = events(&mut c);
    assert_eq!(ev.len(), 1);
    let ClientEvent::Reconnect { to: Some(to) } = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(to.id, NodeId(2), "not the server that just failed");
    c.connected(Some(to.id), ms(1130));
    let frames: Vec<ClientFrame> = std::iter::from_fn(|| c.poll_frame()).collect();
    assert!(matches!(frames[0], ClientFrame::Hello { .. }));
    let after: Vec<&Request> = frames
        .iter()
        .filter_map(|f| match f {
            ClientFrame::Request(r) => Some(r),
            ClientFrame::Hello { .. } => None,
        })
        .collect();
    assert_eq!(after.len(), 4);
    // First, before anything acting on the session: the proof that this
    // client opened it (the nonce it opened it with).
    assert_eq!(
        after[0].body,
        RequestBody::Attach {
            session: SessionId(7),
            secret: 42
        }
    );
    let after = &after[1..];
    assert_eq!(after[0].body, before[0].body);
    assert_eq!(after[1].body, before[1].body);
    assert!(before.iter().all(|b| after.iter().all(|a| a.id != b.id)));
    // A keepalive refreshes the lease on the new server.
    assert_eq!(
        after[2].body,
        RequestBody::KeepAlive {
            session: SessionId(7)
        }
    );
}

#[test]
fn reconnect_is_round_robin_with_doubling_backoff() {
    let mut c = open_client();
    let mut now = ms(100);
    c.connection_lost(now);
    let mut seen = Vec::new();
    for _ in 0..6 {
        let t = c.poll_timeout().expect("backoff");
        seen.push(t - now);
        now = t;
        c.handle_timeout(now);
        let ev = events(&mut c);
        let Some(ClientEvent::Reconnect { to: Some(to) }) = ev.last() else {
            panic!("{ev:?}")
        };
        seen.push(Duration::from_millis(to.id.0));
        c.connection_lost(now);
    }
    let d = Duration::from_millis;
    assert_eq!(
        seen,
        [
            d(100),
            d(2),
            d(200),
            d(3),
            d(400),
            d(1),
            d(800),
            d(2),
            d(1000),
            d(3),
            d(1000),
            d(1)
        ]
    );
}

#[test]
fn waiting_acquires_time_out_only_after_their_wait() {
    let mut c = open_client();
    c.acquire(
        "w",
        Mode::Exclusive,
        Wait::For(5000),
        Duration::ZERO,
        ms(20),
    )
    .expect("open");
    let first = requests(&mut c);
    let seq_of = |r: &Request| match &r.body {
        RequestBody::Log(ClientCommand::Acquire { seq, .. }) => Some(*seq),
        _ => None,
    };
    let seq = first.iter().find_map(seq_of).expect("the acquire was sent");
    // Keepalives get answered, the acquire is not: the wait has no 1 s
    // timeout, but the acquire is asked again (same seq) now and then, in
    // case its answer was lost.
    let mut now = ms(20);
    let mut resent = 0;
    while now < ms(6000) {
        now = c.poll_timeout().expect("timer");
        c.handle_timeout(now);
        for r in requests(&mut c) {
            if let Some(s) = seq_of(&r) {
                assert_eq!(s, seq, "a re-sent acquire keeps its seq");
                resent += 1;
                continue;
            }
            answer(
                &mut c,
                r.id,
                Ok(ResponseBody::KeepAliveAck {
                    session: SessionId(7),
                }),
                now,
            );
        }
        assert!(events(&mut c).is_empty(), "at {now:?}");
    }
    assert!(resent >= 4, "re-sent {resent} times in 6 s");
    // 5 s wait + 1 s slack, from the first send.
    assert_eq!(c.poll_timeout(), Some(ms(6020)));
}

#[test]
fn operations_need_an_open_session() {
    let mut c = ClientSession::new(Config::default());
    c.connected(None, ms(0));
    assert_eq!(
        c.acquire("a", Mode::Exclusive, Wait::Try, Duration::ZERO, ms(0)),
        Err(ClientError::NoSession)
    );
    c.open_session(TTL, 1, ms(0)).expect("opens");
    assert_eq!(
        c.open_session(TTL, 2, ms(0)),
        Err(ClientError::SessionExists)
    );
}

#[test]
fn close_ends_the_session() {
    let mut c = open_client();
    let op = c.close(ms(20)).expect("open");
    let r = requests(&mut c);
    assert_eq!(seq_ack(&r[0].body), (Seq(1), Seq(1)));
    answer(
        &mut c,
        r[0].id,
        Ok(ResponseBody::Lock(Outcome::Closed)),
        ms(30),
    );
    assert_eq!(
        events(&mut c),
        [ClientEvent::Completed {
            op,
            result: Ok(Outcome::Closed)
        }]
    );
    assert!(!c.is_alive(ms(31)));
    assert_eq!(c.close(ms(40)), Err(ClientError::Closed));
    c.handle_timeout(ms(20_000));
    assert!(events(&mut c).is_empty());
    assert!(requests(&mut c).is_empty());
}

#[test]
fn a_follower_s_welcome_moves_the_client_to_the_leader_once() {
    let mut c = open_client();
    let op = try_acquire(&mut c, "a", ms(20));
    let first = requests(&mut c);
    assert_eq!(first.len(), 1);
    // The connection breaks; the client reconnects to server 2, a follower
    // that names server 3 as leader.
    c.connection_lost(ms(30));
    c.handle_timeout(ms(30) + Duration::from_secs(1));
    let _ = events(&mut c);
    c.connected(Some(NodeId(2)), ms(1100));
    let resent = requests(&mut c);
    c.handle_frame(
        ServerFrame::Welcome {
            node_id: NodeId(2),
            leader_hint: Some(NodeId(3)),
            members: members(),
        },
        ms(1100),
    );
    let ev = events(&mut c);
    assert!(
        matches!(&ev[..], [ClientEvent::Reconnect { to: Some(m) }] if m.id == NodeId(3)),
        "{ev:?}"
    );
    // On the leader the acquire is re-sent with the same seq.
    c.connected(Some(NodeId(3)), ms(1101));
    let on_leader = requests(&mut c);
    let acquire = |reqs: &[Request]| {
        reqs.iter()
            .find(|r| matches!(r.body, RequestBody::Log(ClientCommand::Acquire { .. })))
            .map(|r| seq_ack(&r.body))
    };
    assert_eq!(acquire(&first), acquire(&resent));
    assert_eq!(acquire(&first), acquire(&on_leader));
    // A stale hint on the redirected connection is not followed again.
    c.handle_frame(
        ServerFrame::Welcome {
            node_id: NodeId(3),
            leader_hint: Some(NodeId(1)),
            members: members(),
        },
        ms(1101),
    );
    assert_eq!(events(&mut c), []);
    let id = on_leader
        .iter()
        .find(|r| matches!(r.body, RequestBody::Log(ClientCommand::Acquire { .. })))
        .map(|r| r.id)
        .expect("acquire re-sent");
    answer(
        &mut c,
        id,
        Ok(ResponseBody::Lock(Outcome::Granted {
            token: FencingToken(5),
        })),
        ms(1102),
    );
    assert_eq!(
        events(&mut c),
        [ClientEvent::Completed {
            op,
            result: Ok(Outcome::Granted {
                token: FencingToken(5)
            })
        }]
    );
}

/// Answers every request with `error` until the client leaves; returns when
/// it asked to reconnect, and to whom.
fn answer_until_reconnect(
    c: &mut ClientSession,
    error: &ProtoError,
    mut now: Instant,
) -> (Instant, Option<MemberInfo>) {
    for _ in 0..100 {
        for r in requests(c) {
            answer(c, r.id, Err(error.clone()), now);
        }
        for e in events(c) {
            if let ClientEvent::Reconnect { to } = e {
                return (now, to);
            }
        }
        now = c.poll_timeout().expect("something is due").max(now);
        c.handle_timeout(now);
    }
    panic!("the client never left the server");
}

#[test]
fn a_server_that_knows_no_leader_is_left_after_the_patience() {
    let mut c = open_client();
    let _op = try_acquire(&mut c, "a", ms(20));
    let (left_at, to) = answer_until_reconnect(&mut c, &ProtoError::NoLeader, ms(30));
    // Patience 1 s, then the reconnect backoff (100 ms).
    assert!(left_at >= ms(1030), "left at {left_at:?}");
    assert!(left_at <= ms(2500), "left at {left_at:?}");
    assert_eq!(to.map(|m| m.id), Some(NodeId(2)));
}

#[test]
fn a_server_shutting_down_is_left_at_once() {
    let mut c = open_client();
    let _op = try_acquire(&mut c, "a", ms(20));
    let (left_at, to) = answer_until_reconnect(&mut c, &ProtoError::ShuttingDown, ms(30));
    assert!(left_at <= ms(200), "left at {left_at:?}");
    assert_eq!(to.map(|m| m.id), Some(NodeId(2)));
}

fn member(i: u64) -> MemberInfo {
    MemberInfo {
        id: NodeId(i),
        client_addr: format!("10.0.0.{i}:7000"),
        ws_addr: None,
    }
}

/// Connects to `server`, which greets with `members` (and names itself
/// leader if `leads`), refuses everything as shutting down, and returns
/// the server the client moves on to.
fn greet_and_refuse(
    c: &mut ClientSession,
    server: u64,
    members: &[u64],
    leads: bool,
    now: Instant,
) -> Option<NodeId> {
    c.connected(Some(NodeId(server)), now);
    c.handle_frame(
        ServerFrame::Welcome {
            node_id: NodeId(server),
            leader_hint: leads.then_some(NodeId(server)),
            members: members.iter().map(|&i| member(i)).collect(),
        },
        now,
    );
    let (_, to) = answer_until_reconnect(c, &ProtoError::ShuttingDown, now);
    to.map(|m| m.id)
}

/// An open client with an acquire outstanding, which server 1 refused as
/// shutting down: it is on its way to server 2.
fn leaving_server_1() -> ClientSession {
    let mut c = open_client();
    let _op = try_acquire(&mut c, "a", ms(20));
    let (_, to) = answer_until_reconnect(&mut c, &ProtoError::ShuttingDown, ms(30));
    assert_eq!(to.map(|m| m.id), Some(NodeId(2)));
    c
}

#[test]
fn stale_servers_cannot_keep_the_client_from_newer_members() {
    // Servers 1 and 3 were removed and 2 lags behind: each knows an old
    // configuration. Members 4, 5 and 6 were added since.
    let mut c = leaving_server_1();
    // The lagging server knows only the first configuration...
    assert_eq!(
        greet_and_refuse(&mut c, 2, &[1, 2, 3], false, ms(300)),
        Some(NodeId(3))
    );
    // ...and the removed one the configuration that removed it. Had the
    // client taken its list for the whole truth, it would go back to 2,
    // and from there to 3 again, for ever.
    assert_eq!(
        greet_and_refuse(&mut c, 3, &[2, 4, 5], false, ms(600)),
        Some(NodeId(4))
    );
    assert_eq!(
        greet_and_refuse(&mut c, 4, &[4, 5, 6], false, ms(900)),
        Some(NodeId(5))
    );
    let ids = |c: &ClientSession| c.members().iter().map(|m| m.id.0).collect::<Vec<_>>();
    assert_eq!(ids(&c), [1, 2, 3, 4, 5, 6]);
    // A leader's configuration is the newest there is: servers it leaves
    // out are no longer tried.
    assert_eq!(
        greet_and_refuse(&mut c, 5, &[5, 6], true, ms(1200)),
        Some(NodeId(6))
    );
    assert_eq!(ids(&c), [5, 6]);
}

#[test]
fn a_stale_leader_hint_does_not_send_the_client_back_and_forth() {
    // Servers 5 and 6 were removed and know old configurations: 6 names
    // 5 as leader, and 5 refuses as shutting down. Following 6's hint to 5
    // and then going on from 5's place would lead straight back to 6.
    let mut c = leaving_server_1();
    assert_eq!(
        greet_and_refuse(&mut c, 2, &[1, 2, 3, 4, 5, 6, 7], false, ms(300)),
        Some(NodeId(3))
    );
    let mut now = ms(600);
    let mut visited = Vec::new();
    let mut at = 3;
    for _ in 0..8 {
        visited.push(at);
        c.connected(Some(NodeId(at)), now);
        let hint = (at == 6).then_some(NodeId(5));
        c.handle_frame(
            ServerFrame::Welcome {
                node_id: NodeId(at),
                leader_hint: hint,
                members: (1..=7).map(member).collect(),
            },
            now,
        );
        let followed = events(&mut c).into_iter().find_map(|e| match e {
            ClientEvent::Reconnect { to } => to.map(|m| m.id.0),
            _ => None,
        });
        at = match followed {
            Some(next) => next,
            None => {
                let (left, to) = answer_until_reconnect(&mut c, &ProtoError::ShuttingDown, now);
                now = left + Duration::from_millis(10);
                to.map(|m| m.id.0).expect("a next server")
            }
        };
    }
    assert_eq!(visited, [3, 4, 5, 6, 5, 7, 1, 2], "{visited:?}");
}

mod watches;
