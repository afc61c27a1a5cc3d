//! Sessions and exactly-once: opens deduplicated by nonce, requests of ended
//! sessions, retries answered from the dedupe table, acknowledgements, and
//! the limits that keep all of it bounded.

use super::harness::{Harness, L, reply_to, same_locks, same_state, single};
use crate::locks::{
    ClientCommand, Command, Event, FencingToken, Limits, LockError, Mode, Outcome, Reply, Seq,
    SessionId, Wait,
};

const X: Mode = Mode::Exclusive;

fn open(h: &mut Harness, nonce: u128, ttl_ms: u64) -> Result<SessionId, LockError> {
    let out = h.apply(&Command::Client(ClientCommand::OpenSession {
        nonce,
        ttl_ms,
    }));
    match out.replies.as_slice() {
        [Reply::SessionOpened { nonce: n, result }] if *n == nonce => *result,
        other => panic!("{other:?}"),
    }
}

fn acquire(session: SessionId, seq: u64, ack: u64, wait: Wait) -> Command {
    Command::Client(ClientCommand::Acquire {
        session,
        seq: Seq(seq),
        ack: Seq(ack),
        lock: L.into(),
        mode: X,
        wait,
        lock_delay_ms: 0,
    })
}

#[test]
fn a_retried_open_answers_the_same_session_once() {
    let mut h = Harness::new();
    let index = h.next_index();
    let out = h.apply(&Command::Client(ClientCommand::OpenSession {
        nonce: 42,
        ttl_ms: 5_000,
    }));
    let id = SessionId(index.0);
    assert_eq!(
        out.replies,
        [Reply::SessionOpened {
            nonce: 42,
            result: Ok(id)
        }]
    );
    assert_eq!(
        out.events,
        [Event::SessionOpened {
            session: id,
            ttl_ms: 5_000
        }]
    );
    let before = h.sm.clone();
    let out = h.apply(&Command::Client(ClientCommand::OpenSession {
        nonce: 42,
        ttl_ms: 9_000,
    }));
    assert_eq!(
        out.replies,
        [Reply::SessionOpened {
            nonce: 42,
            result: Ok(id)
        }]
    );
    assert!(out.events.is_empty() && same_state(&before, &h.sm));
    assert_eq!(
        h.sm.session(id).map(|s| s.ttl_ms),
        Some(5_000),
        "the retry's ttl is ignored"
    );
}

#[test]
fn a_retried_open_of_an_ended_session_opens_nothing() {
    let mut h = Harness::new();
    let closed = open(&mut h, 1, 5_000);
    let expired = open(&mut h, 2, 5_000);
    let (Ok(closed), Ok(expired)) = (closed, expired) else {
        panic!("open failed")
    };
    h.close(closed);
    h.expire(expired);
    assert_eq!(open(&mut h, 1, 5_000), Err(LockError::SessionClosed));
    assert_eq!(open(&mut h, 2, 5_000), Err(LockError::SessionExpired));
    assert_eq!(h.sm.session_count(), 0);
}

#[test]
fn requests_of_ended_sessions_are_refused_with_the_reason() {
    let mut h = Harness::new();
    let [closed, expired] = [(); 2].map(|()| h.open());
    h.close(closed);
    h.expire(expired);
    for (id, error) in [
        (closed, LockError::SessionClosed),
        (expired, LockError::SessionExpired),
    ] {
        let before = h.sm.clone();
        let commands = [
            h.acquire_cmd(id, L, X, Wait::Try, 0),
            h.release_cmd(id, L, FencingToken(1)),
            Command::Client(ClientCommand::CancelWait {
                session: id,
                seq: Seq(50),
                ack: Seq(0),
                lock: L.into(),
            }),
        ];
        for command in &commands {
            assert_eq!(single(&h.apply(command)), Err(error), "{command:?}");
        }
        assert!(
            h.expire(id).is_empty(),
            "expiring an ended session is a no-op"
        );
        assert!(same_state(&before, &h.sm));
    }
    // A retried close whose answer was lost is answered again.
    let close = Command::Client(ClientCommand::CloseSession {
        session: closed,
        seq: Seq(1),
        ack: Seq(0),
    });
    assert_eq!(single(&h.apply(&close)), Ok(Outcome::Closed));
    let close = Command::Client(ClientCommand::CloseSession {
        session: expired,
        seq: Seq(1),
        ack: Seq(0),
    });
    assert_eq!(single(&h.apply(&close)), Err(LockError::SessionExpired));
}

#[test]
fn ended_sessions_are_forgotten_oldest_first() {
    let mut h = Harness::with_limits(Limits {
        max_ended_sessions: 2,
        ..Limits::default()
    });
    let ids: Vec<SessionId> = (10..13)
        .map(|nonce| open(&mut h, nonce, 5_000))
        .collect::<Result<_, _>>()
        .unwrap();
    for id in &ids {
        h.expire(*id);
    }
    let command = acquire(ids[0], 1, 0, Wait::Try);
    assert_eq!(single(&h.apply(&command)), Err(LockError::SessionNotFound));
    let command = acquire(ids[1], 1, 0, Wait::Try);
    assert_eq!(single(&h.apply(&command)), Err(LockError::SessionExpired));
    // The forgotten session's nonce opens a new session.
    let index = h.next_index();
    assert_eq!(open(&mut h, 10, 5_000), Ok(SessionId(index.0)));
}

#[test]
fn a_retry_is_answered_identically_and_applied_once() {
    let mut h = Harness::new();
    let [a, b] = [(); 2].map(|()| h.open());
    let command = acquire(a, 1, 1, Wait::Try);
    let first = h.apply(&command);
    let token = FencingToken(h.index);
    assert_eq!(single(&first), Ok(Outcome::Granted { token }));
    let before = h.sm.clone();
    let retry = h.apply(&command);
    assert_eq!(retry.replies, first.replies);
    assert!(retry.events.is_empty() && same_state(&before, &h.sm));
    // Even after the lock changed hands, the retry gets the original answer.
    let release = Command::Client(ClientCommand::Release {
        session: a,
        seq: Seq(2),
        ack: Seq(1),
        lock: L.into(),
        token,
    });
    assert_eq!(single(&h.apply(&release)), Ok(Outcome::Released));
    h.hold(b, L, X);
    let before = h.sm.clone();
    assert_eq!(h.apply(&command).replies, first.replies);
    assert_eq!(single(&h.apply(&release)), Ok(Outcome::Released));
    assert!(same_state(&before, &h.sm), "neither retry was applied");
}

#[test]
fn a_retried_wait_that_is_still_queued_says_pending_then_its_answer() {
    let mut h = Harness::new();
    let [a, b] = [(); 2].map(|()| h.open());
    let token = h.hold(a, L, X);
    let command = acquire(b, 1, 1, Wait::Forever);
    assert!(h.apply(&command).replies.is_empty());
    let before = h.sm.clone();
    let retry = h.apply(&command);
    assert_eq!(single(&retry), Ok(Outcome::Pending));
    assert!(retry.events.is_empty() && same_state(&before, &h.sm));
    assert_eq!(h.waiters(L), [b], "queued once");
    let granted = h.next_token();
    h.release(a, L, token);
    assert_eq!(
        single(&h.apply(&command)),
        Ok(Outcome::Granted { token: granted })
    );
}

#[test]
fn acknowledged_answers_are_forgotten_and_their_retries_refused() {
    let mut h = Harness::new();
    let a = h.open();
    let first = acquire(a, 1, 1, Wait::Try);
    let token = FencingToken(h.next_index().0);
    h.apply(&first);
    // seq 2 acknowledges everything below 2.
    let release = Command::Client(ClientCommand::Release {
        session: a,
        seq: Seq(2),
        ack: Seq(2),
        lock: L.into(),
        token,
    });
    h.apply(&release);
    let before = h.sm.clone();
    let out = h.apply(&first);
    assert_eq!(
        single(&out),
        Err(LockError::StaleSequence { floor: Seq(2) })
    );
    assert!(out.events.is_empty() && same_state(&before, &h.sm));
    // An acknowledgement beyond the request itself is capped at the request.
    let third = Command::Client(ClientCommand::CancelWait {
        session: a,
        seq: Seq(3),
        ack: Seq(100),
        lock: L.into(),
    });
    assert_eq!(single(&h.apply(&third)), Err(LockError::NotWaiting));
    assert_eq!(
        single(&h.apply(&third)),
        Err(LockError::NotWaiting),
        "still remembered"
    );
}

#[test]
fn a_retry_still_acknowledges() {
    let mut h = Harness::new();
    let a = h.open();
    let first = Command::Client(ClientCommand::CancelWait {
        session: a,
        seq: Seq(1),
        ack: Seq(1),
        lock: L.into(),
    });
    let second = Command::Client(ClientCommand::CancelWait {
        session: a,
        seq: Seq(2),
        ack: Seq(1),
        lock: L.into(),
    });
    h.apply(&first);
    h.apply(&second);
    // The answer to 1 arrived meanwhile: the retry of 2 acknowledges it.
    let retry = Command::Client(ClientCommand::CancelWait {
        session: a,
        seq: Seq(2),
        ack: Seq(2),
        lock: L.into(),
    });
    assert_eq!(single(&h.apply(&retry)), Err(LockError::NotWaiting));
    assert_eq!(
        single(&h.apply(&first)),
        Err(LockError::StaleSequence { floor: Seq(2) })
    );
}

#[test]
fn a_grant_after_its_wait_was_acknowledged_is_sent_but_not_remembered() {
    let mut h = Harness::new();
    let [a, b] = [(); 2].map(|()| h.open());
    let token = h.hold(a, L, X);
    h.apply(&acquire(b, 1, 1, Wait::Forever));
    // A client that acknowledges past its own pending wait.
    let other = Command::Client(ClientCommand::CancelWait {
        session: b,
        seq: Seq(2),
        ack: Seq(2),
        lock: "other".into(),
    });
    h.apply(&other);
    let granted = h.next_token();
    let out = h.release(a, L, token);
    assert_eq!(
        reply_to(&out, b, Seq(1)),
        Some(Ok(Outcome::Granted { token: granted }))
    );
    let retry = h.apply(&acquire(b, 1, 1, Wait::Forever));
    assert_eq!(
        single(&retry),
        Err(LockError::StaleSequence { floor: Seq(2) })
    );
}

#[test]
fn too_many_unacknowledged_answers_are_refused_without_a_trace() {
    let mut h = Harness::with_limits(Limits {
        max_unacked_per_session: 3,
        ..Limits::default()
    });
    let a = h.open();
    for seq in 1..=3 {
        let command = Command::Client(ClientCommand::CancelWait {
            session: a,
            seq: Seq(seq),
            ack: Seq(1),
            lock: L.into(),
        });
        assert_eq!(single(&h.apply(&command)), Err(LockError::NotWaiting));
    }
    let before = h.sm.clone();
    let fourth = acquire(a, 4, 1, Wait::Try);
    assert_eq!(
        single(&h.apply(&fourth)),
        Err(LockError::TooManyUnacknowledged { max: 3 })
    );
    assert!(same_state(&before, &h.sm));
    // Acknowledging makes room.
    let fourth = acquire(a, 4, 3, Wait::Try);
    assert!(matches!(
        single(&h.apply(&fourth)),
        Ok(Outcome::Granted { .. })
    ));
}

#[test]
fn too_many_sessions_are_refused() {
    let mut h = Harness::with_limits(Limits {
        max_sessions: 2,
        ..Limits::default()
    });
    let a = h.open();
    h.open();
    let before = h.sm.clone();
    assert_eq!(
        open(&mut h, 99, 5_000),
        Err(LockError::TooManySessions { max: 2 })
    );
    assert!(same_state(&before, &h.sm));
    h.close(a);
    assert!(open(&mut h, 99, 5_000).is_ok());
}

#[test]
fn too_many_locks_per_session_are_refused_and_the_refusal_remembered() {
    let mut h = Harness::with_limits(Limits {
        max_locks_per_session: 2,
        ..Limits::default()
    });
    let [a, b] = [(); 2].map(|()| h.open());
    let token = h.hold(a, "one", X);
    h.hold(b, "two", X);
    h.wait(a, "two", X);
    let before = h.sm.clone();
    let command = h.acquire_cmd(a, "three", X, Wait::Try, 0);
    assert_eq!(
        single(&h.apply(&command)),
        Err(LockError::TooManyLocks { max: 2 })
    );
    let command_wait = h.acquire_cmd(a, "two-b", X, Wait::Forever, 0);
    assert_eq!(
        single(&h.apply(&command_wait)),
        Err(LockError::TooManyLocks { max: 2 })
    );
    assert!(same_locks(&before, &h.sm));
    // A late duplicate must not be applied once there is room again.
    h.release(a, "one", token);
    assert_eq!(
        single(&h.apply(&command)),
        Err(LockError::TooManyLocks { max: 2 })
    );
    assert_eq!(h.sm.lock_status("three"), None);
}

#[test]
fn too_many_waiters_per_lock_are_refused() {
    let mut h = Harness::with_limits(Limits {
        max_waiters_per_lock: 1,
        ..Limits::default()
    });
    let [a, b, c] = [(); 3].map(|()| h.open());
    h.hold(a, L, X);
    h.wait(b, L, X);
    let before = h.sm.clone();
    let out = h.acquire(c, L, X, Wait::Forever);
    assert_eq!(single(&out), Err(LockError::TooManyWaiters { max: 1 }));
    assert!(out.events.is_empty() && same_locks(&before, &h.sm));
    // A try is not a waiter: it is only busy.
    assert_eq!(
        single(&h.acquire(c, L, X, Wait::Try)),
        Err(LockError::Busy { delayed: false })
    );
}

#[test]
fn wait_for_zero_is_a_try() {
    let mut h = Harness::new();
    let [a, b] = [(); 2].map(|()| h.open());
    h.hold(a, L, X);
    assert_eq!(
        single(&h.acquire(b, L, X, Wait::For(0))),
        Err(LockError::Busy { delayed: false })
    );
    assert!(h.waiters(L).is_empty());
}
