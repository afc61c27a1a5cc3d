//! Table tests: every command kind against every lock state, checking the
//! replies, the events, and that refusals change nothing (or nothing but
//! the remembered answer).

use super::harness::{Harness, L, same_locks, same_state, single};
use crate::ids::LogIndex;
use crate::locks::{
    Event, FencingToken, LockError, LockKind, Mode, Outcome, Reply, Seq, SessionId, Wait,
};
use std::sync::Arc;

const X: Mode = Mode::Exclusive;
const S: Mode = Mode::Shared;

/// The states lock `L` can be in, seen from session `me`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    ExclusiveMine,
    ExclusiveOther,
    SharedMine,
    SharedOther,
    /// Semaphore(3) with one holder.
    SemaphorePartly,
    /// Semaphore(2) with two holders.
    SemaphoreFull,
    /// Nobody holds it; it is in lock-delay after a holder expired.
    Delayed,
    /// `other` holds it exclusively, `third` waits for it exclusively.
    Waiters,
    /// `other` holds it shared, `third` waits for it exclusively.
    SharedBehindExclusive,
    /// `other` holds it exclusively, `me` waits for it exclusively.
    MeWaiting,
}

const STATES: [State; 11] = [
    State::Free,
    State::ExclusiveMine,
    State::ExclusiveOther,
    State::SharedMine,
    State::SharedOther,
    State::SemaphorePartly,
    State::SemaphoreFull,
    State::Delayed,
    State::Waiters,
    State::SharedBehindExclusive,
    State::MeWaiting,
];

struct Fixture {
    h: Harness,
    me: SessionId,
    my_token: Option<FencingToken>,
    my_wait: Option<Seq>,
    delay_since: Option<LogIndex>,
}

fn fixture(state: State) -> Fixture {
    let mut h = Harness::new();
    let me = h.open();
    let other = h.open();
    let third = h.open();
    let (mut my_token, mut my_wait, mut delay_since) = (None, None, None);
    match state {
        State::Free => {}
        State::ExclusiveMine => my_token = Some(h.hold(me, L, X)),
        State::ExclusiveOther => drop(h.hold(other, L, X)),
        State::SharedMine => my_token = Some(h.hold(me, L, S)),
        State::SharedOther => drop(h.hold(other, L, S)),
        State::SemaphorePartly => drop(h.hold(other, L, Mode::Semaphore(3))),
        State::SemaphoreFull => {
            h.hold(other, L, Mode::Semaphore(2));
            h.hold(third, L, Mode::Semaphore(2));
        }
        State::Delayed => {
            let gone = h.open();
            h.hold_with_delay(gone, L, X, 5_000);
            delay_since = Some(h.next_index());
            h.expire(gone);
        }
        State::Waiters => {
            h.hold(other, L, X);
            h.wait(third, L, X);
        }
        State::SharedBehindExclusive => {
            h.hold(other, L, S);
            h.wait(third, L, X);
        }
        State::MeWaiting => {
            h.hold(other, L, X);
            my_wait = Some(h.wait(me, L, X));
        }
    }
    Fixture {
        h,
        me,
        my_token,
        my_wait,
        delay_since,
    }
}

/// What an acquire by `me` is expected to get.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Granted,
    Queued,
    Busy,
    BusyDelayed,
    Held,
    Waiting,
    Mismatch(LockKind),
    SemMismatch(u32),
}
use Expect::{Busy, BusyDelayed, Granted as G, Held, Mismatch, Queued as Q, SemMismatch, Waiting};

const RW: Expect = Mismatch(LockKind::ReadWrite);
const SEM2: Expect = Mismatch(LockKind::Semaphore(2));
const SEM3: Expect = Mismatch(LockKind::Semaphore(3));

/// The requests of the acquire table's columns.
const REQUESTS: [(Mode, Wait); 7] = [
    (X, Wait::Try),
    (S, Wait::Try),
    (Mode::Semaphore(3), Wait::Try),
    (Mode::Semaphore(2), Wait::Try),
    (X, Wait::Forever),
    (S, Wait::For(100)),
    (Mode::Semaphore(3), Wait::Forever),
];

#[rustfmt::skip]
const ACQUIRE_TABLE: [(State, [Expect; 7]); 11] = [
    //                              TryX   TryS   TrySem3 TrySem2 WaitX WaitS WaitSem3
    (State::Free,                  [G,     G,     G,      G,      G,    G,    G]),
    (State::ExclusiveMine,         [Held,  Held,  Held,   Held,   Held, Held, Held]),
    (State::ExclusiveOther,        [Busy,  Busy,  RW,     RW,     Q,    Q,    RW]),
    (State::SharedMine,            [Held,  Held,  Held,   Held,   Held, Held, Held]),
    (State::SharedOther,           [Busy,  G,     RW,     RW,     Q,    G,    RW]),
    (State::SemaphorePartly,       [SEM3,  SEM3,  G,      SemMismatch(3), SEM3, SEM3, G]),
    (State::SemaphoreFull,         [SEM2,  SEM2,  SemMismatch(2), Busy, SEM2, SEM2, SemMismatch(2)]),
    (State::Delayed,               [BusyDelayed, BusyDelayed, BusyDelayed, BusyDelayed, Q, Q, Q]),
    (State::Waiters,               [Busy,  Busy,  RW,     RW,     Q,    Q,    RW]),
    // FIFO: a shared request behind a waiting exclusive one waits.
    (State::SharedBehindExclusive, [Busy,  Busy,  RW,     RW,     Q,    Q,    RW]),
    (State::MeWaiting,             [Waiting, Waiting, Waiting, Waiting, Waiting, Waiting, Waiting]),
];

#[test]
fn acquire_in_every_state() {
    assert_eq!(ACQUIRE_TABLE.map(|(state, _)| state), STATES);
    for (state, row) in ACQUIRE_TABLE {
        for ((mode, wait), expect) in REQUESTS.into_iter().zip(row) {
            let Fixture {
                mut h,
                me,
                my_token,
                ..
            } = fixture(state);
            let before = h.sm.clone();
            let waiters_before = h.waiters(L);
            let token = h.next_token();
            let command = h.acquire_cmd(me, L, mode, wait, 0);
            let out = h.apply(&command);
            let case = format!("{state:?} {mode:?} {wait:?}: {out:?}");
            let error = match expect {
                G => {
                    assert_eq!(single(&out), Ok(Outcome::Granted { token }), "{case}");
                    let acquired = Event::Acquired {
                        lock: Arc::from(L),
                        session: me,
                        token,
                        mode,
                    };
                    assert_eq!(out.events, [acquired], "{case}");
                    assert!(h.holders(L).contains(&(me, token)), "{case}");
                    assert!(h.sm.check_token(L, token), "{case}");
                    continue;
                }
                Q => {
                    assert!(out.replies.is_empty(), "{case}");
                    let Some(Event::WaitStarted {
                        session,
                        timeout_ms,
                        ..
                    }) = out.events.first()
                    else {
                        panic!("{case}");
                    };
                    assert_eq!(
                        (*session, *timeout_ms, out.events.len()),
                        (me, wait.timeout_ms(), 1),
                        "{case}"
                    );
                    let mut expected = waiters_before;
                    expected.push(me);
                    assert_eq!(h.waiters(L), expected, "{case}");
                    continue;
                }
                Busy => LockError::Busy { delayed: false },
                BusyDelayed => LockError::Busy { delayed: true },
                Held => LockError::AlreadyHeld {
                    token: my_token.unwrap_or_default(),
                },
                Waiting => LockError::AlreadyWaiting,
                Mismatch(kind) => LockError::ModeMismatch { kind },
                SemMismatch(n) => LockError::SemaphoreMismatch { n },
            };
            assert_eq!(single(&out), Err(error), "{case}");
            assert!(out.events.is_empty(), "{case}");
            assert!(same_locks(&before, &h.sm), "{case}");
            // The refusal is remembered: a retry gets it again and changes nothing.
            let after = h.sm.clone();
            let retry = h.apply(&command);
            assert_eq!(retry, out, "retry of {case}");
            assert!(same_state(&after, &h.sm), "retry of {case}");
        }
    }
}

#[test]
fn release_in_every_state() {
    for state in STATES {
        let Fixture {
            mut h,
            me,
            my_token,
            ..
        } = fixture(state);
        let before = h.sm.clone();
        let token = my_token.unwrap_or(FencingToken(2));
        let out = h.release(me, L, token);
        let case = format!("{state:?}: {out:?}");
        if my_token.is_some() {
            assert_eq!(single(&out), Ok(Outcome::Released), "{case}");
            assert_eq!(
                out.events,
                [Event::Released {
                    lock: Arc::from(L),
                    session: me,
                    token
                }],
                "{case}"
            );
            assert_eq!(h.sm.lock_status(L), None, "{case}");
            assert!(!h.sm.check_token(L, token), "{case}");
        } else {
            assert_eq!(single(&out), Err(LockError::NotHolder), "{case}");
            assert!(
                out.events.is_empty() && same_locks(&before, &h.sm),
                "{case}"
            );
        }
    }
    // The right lock with the wrong token changes nothing either.
    let Fixture {
        mut h,
        me,
        my_token,
        ..
    } = fixture(State::ExclusiveMine);
    let before = h.sm.clone();
    let wrong = FencingToken(my_token.unwrap_or_default().0 + 1);
    assert_eq!(single(&h.release(me, L, wrong)), Err(LockError::NotHolder));
    assert!(same_locks(&before, &h.sm));
}

#[test]
fn cancel_wait_in_every_state() {
    for state in STATES {
        let Fixture {
            mut h, me, my_wait, ..
        } = fixture(state);
        let before = h.sm.clone();
        let seq = h.seq(me);
        let out = h.apply(&crate::locks::Command::Client(
            crate::locks::ClientCommand::CancelWait {
                session: me,
                seq,
                ack: Seq(0),
                lock: L.into(),
            },
        ));
        let case = format!("{state:?}: {out:?}");
        if let Some(acquire_seq) = my_wait {
            let expected = [
                Reply::To {
                    session: me,
                    seq: acquire_seq,
                    response: Err(LockError::Cancelled),
                },
                Reply::To {
                    session: me,
                    seq,
                    response: Ok(Outcome::WaitCancelled),
                },
            ];
            assert_eq!(out.replies, expected, "{case}");
            assert_eq!(
                out.events,
                [Event::WaitEnded {
                    session: me,
                    lock: Arc::from(L),
                    acquire_seq
                }],
                "{case}"
            );
            assert!(h.waiters(L).is_empty(), "{case}");
        } else {
            assert_eq!(single(&out), Err(LockError::NotWaiting), "{case}");
            assert!(
                out.events.is_empty() && same_locks(&before, &h.sm),
                "{case}"
            );
        }
    }
}

#[test]
fn wait_timed_out_in_every_state() {
    for state in STATES {
        let Fixture {
            mut h, me, my_wait, ..
        } = fixture(state);
        let before = h.sm.clone();
        let acquire_seq = my_wait.unwrap_or(Seq(1));
        let out = h.timeout(me, L, acquire_seq);
        let case = format!("{state:?}: {out:?}");
        if my_wait.is_some() {
            assert_eq!(
                out.replies,
                [Reply::To {
                    session: me,
                    seq: acquire_seq,
                    response: Err(LockError::TimedOut)
                }]
            );
            assert_eq!(
                out.events,
                [Event::WaitEnded {
                    session: me,
                    lock: Arc::from(L),
                    acquire_seq
                }],
                "{case}"
            );
            assert!(h.waiters(L).is_empty(), "{case}");
        } else {
            assert!(out.is_empty() && same_state(&before, &h.sm), "{case}");
        }
    }
}

#[test]
fn lock_delay_over_in_every_state() {
    for state in STATES {
        let Fixture {
            mut h, delay_since, ..
        } = fixture(state);
        let before = h.sm.clone();
        // A stale or wrong `since` never ends anything.
        let wrong = LogIndex(delay_since.map_or(1, |since| since.0 - 1));
        let out = h.delay_over(L, wrong);
        assert!(
            out.is_empty() && same_state(&before, &h.sm),
            "{state:?}: {out:?}"
        );
        if let Some(since) = delay_since {
            let out = h.delay_over(L, since);
            assert_eq!(out.events, [Event::LockDelayEnded { lock: Arc::from(L) }]);
            assert!(out.replies.is_empty());
            assert_eq!(h.sm.lock_status(L), None, "an idle lock is forgotten");
        }
    }
}

#[test]
fn close_and_expire_in_every_state() {
    for expired in [false, true] {
        for state in STATES {
            let Fixture {
                mut h,
                me,
                my_token,
                my_wait,
                ..
            } = fixture(state);
            let before = h.sm.clone();
            let seq = h.seq(me);
            let out = if expired {
                h.expire(me)
            } else {
                h.apply(&crate::locks::Command::Client(
                    crate::locks::ClientCommand::CloseSession {
                        session: me,
                        seq,
                        ack: Seq(0),
                    },
                ))
            };
            let case = format!("{state:?} expired={expired}: {out:?}");
            let lost = if expired {
                LockError::SessionExpired
            } else {
                LockError::SessionClosed
            };
            let mut replies = Vec::new();
            let mut events = Vec::new();
            if !expired {
                replies.push(Reply::To {
                    session: me,
                    seq,
                    response: Ok(Outcome::Closed),
                });
            }
            if let Some(acquire_seq) = my_wait {
                replies.push(Reply::To {
                    session: me,
                    seq: acquire_seq,
                    response: Err(lost),
                });
                events.push(Event::WaitEnded {
                    session: me,
                    lock: Arc::from(L),
                    acquire_seq,
                });
            }
            if let Some(token) = my_token {
                let lock = Arc::from(L);
                events.push(if expired {
                    Event::Expired {
                        lock,
                        session: me,
                        token,
                    }
                } else {
                    Event::Released {
                        lock,
                        session: me,
                        token,
                    }
                });
            }
            events.push(Event::SessionEnded {
                session: me,
                expired,
            });
            assert_eq!(out.replies, replies, "{case}");
            assert_eq!(out.events, events, "{case}");
            assert_eq!(h.sm.session(me), None, "{case}");
            if my_token.is_some() {
                assert_eq!(h.sm.lock_status(L), None, "{case}");
            } else if my_wait.is_none() {
                assert_eq!(before.locks, h.sm.locks, "{case}");
            }
        }
    }
}

#[test]
fn requests_of_unknown_sessions_change_nothing() {
    let Fixture { mut h, .. } = fixture(State::Waiters);
    let ghost = SessionId(9_999);
    let before = h.sm.clone();
    let commands = [
        h.acquire_cmd(ghost, L, X, Wait::Forever, 0),
        h.release_cmd(ghost, L, FencingToken(4)),
        crate::locks::Command::Client(crate::locks::ClientCommand::CancelWait {
            session: ghost,
            seq: Seq(1),
            ack: Seq(0),
            lock: L.into(),
        }),
        crate::locks::Command::Client(crate::locks::ClientCommand::CloseSession {
            session: ghost,
            seq: Seq(1),
            ack: Seq(0),
        }),
    ];
    for command in &commands {
        let out = h.apply(command);
        assert_eq!(single(&out), Err(LockError::SessionNotFound), "{command:?}");
        assert!(out.events.is_empty());
    }
    for command in [
        crate::locks::Command::ExpireSession { session: ghost },
        crate::locks::Command::WaitTimedOut {
            session: ghost,
            lock: L.into(),
            acquire_seq: Seq(1),
        },
    ] {
        assert!(h.apply(&command).is_empty(), "{command:?}");
    }
    assert!(same_state(&before, &h.sm));
}

#[test]
fn invalid_requests_change_nothing_at_all() {
    let Fixture { mut h, me, .. } = fixture(State::ExclusiveOther);
    let long = "x".repeat(513);
    let cases = [
        ("", X, 0, LockError::InvalidName { len: 0, max: 512 }),
        (
            long.as_str(),
            X,
            0,
            LockError::InvalidName { len: 513, max: 512 },
        ),
        (
            L,
            X,
            60_001,
            LockError::InvalidLockDelay {
                delay_ms: 60_001,
                max_ms: 60_000,
            },
        ),
        (L, Mode::Semaphore(0), 0, LockError::InvalidSemaphore),
    ];
    for (name, mode, delay, error) in cases {
        let before = h.sm.clone();
        let command = h.acquire_cmd(me, name, mode, Wait::Forever, delay);
        let out = h.apply(&command);
        assert_eq!(single(&out), Err(error));
        assert!(out.events.is_empty());
        assert!(same_state(&before, &h.sm), "{error:?}");
    }
    // The longest name is fine.
    let name = "y".repeat(512);
    let token = h.next_token();
    let out = h.acquire(me, &name, X, Wait::Try);
    assert_eq!(single(&out), Ok(Outcome::Granted { token }));
    for ttl_ms in [0, 999, 300_001] {
        let before = h.sm.clone();
        let out = h.apply(&crate::locks::Command::Client(
            crate::locks::ClientCommand::OpenSession { nonce: 77, ttl_ms },
        ));
        let error = LockError::InvalidTtl {
            ttl_ms,
            min_ms: 1_000,
            max_ms: 300_000,
        };
        assert_eq!(
            out.replies,
            [Reply::SessionOpened {
                nonce: 77,
                result: Err(error)
            }]
        );
        assert!(out.events.is_empty() && same_state(&before, &h.sm));
    }
}
