//! Named scenarios: FIFO hand-off, shared and semaphore queues, lock-delay,
//! timeouts and the cascades of closing or expiring a session.

use super::harness::{Harness, L, reply_to, single};
use crate::ids::LogIndex;
use crate::locks::{
    Event, FencingToken, LockDelay, LockError, LockKind, Mode, Outcome, Seq, SessionId, TimedWait,
    Wait,
};
use std::sync::Arc;

const X: Mode = Mode::Exclusive;
const S: Mode = Mode::Shared;

fn granted(token: FencingToken) -> Option<Result<Outcome, LockError>> {
    Some(Ok(Outcome::Granted { token }))
}

#[test]
fn waiters_are_granted_in_fifo_order_with_the_releasing_entrys_token() {
    let mut h = Harness::new();
    let ids: Vec<SessionId> = (0..4).map(|_| h.open()).collect();
    let mut token = h.hold(ids[0], L, X);
    let seqs: Vec<Seq> = ids[1..].iter().map(|id| h.wait(*id, L, X)).collect();
    assert_eq!(h.waiters(L), ids[1..]);
    for (i, (id, seq)) in ids[1..].iter().zip(&seqs).enumerate() {
        let next = h.next_token();
        let out = h.release(ids[i], L, token);
        assert_eq!(out.replies.len(), 2, "{out:?}");
        assert_eq!(reply_to(&out, *id, *seq), granted(next));
        let expected = [
            Event::Released {
                lock: Arc::from(L),
                session: ids[i],
                token,
            },
            Event::WaitEnded {
                session: *id,
                lock: Arc::from(L),
                acquire_seq: *seq,
            },
            Event::Acquired {
                lock: Arc::from(L),
                session: *id,
                token: next,
                mode: X,
            },
        ];
        assert_eq!(out.events, expected);
        assert!(next > token, "tokens increase");
        token = next;
    }
    h.release(ids[3], L, token);
    assert_eq!(h.sm.lock_count(), 0);
}

#[test]
fn consecutive_shared_waiters_are_granted_together_and_stop_at_an_exclusive_one() {
    let mut h = Harness::new();
    let [w, r1, r2, x, r3] = [(); 5].map(|()| h.open());
    let token = h.hold(w, L, X);
    let s1 = h.wait(r1, L, S);
    let s2 = h.wait(r2, L, S);
    let sx = h.wait(x, L, X);
    let s3 = h.wait(r3, L, S);
    let shared = h.next_token();
    let out = h.release(w, L, token);
    assert_eq!(reply_to(&out, r1, s1), granted(shared));
    assert_eq!(reply_to(&out, r2, s2), granted(shared));
    assert_eq!(
        out.replies.len(),
        3,
        "the exclusive waiter and the reader behind it wait: {out:?}"
    );
    assert_eq!(h.waiters(L), [x, r3]);
    h.release(r1, L, shared);
    assert_eq!(h.waiters(L), [x, r3], "one reader still holds it");
    let exclusive = h.next_token();
    let out = h.release(r2, L, shared);
    assert_eq!(reply_to(&out, x, sx), granted(exclusive));
    let last = h.next_token();
    let out = h.release(x, L, exclusive);
    assert_eq!(reply_to(&out, r3, s3), granted(last));
}

#[test]
fn a_reader_behind_a_waiting_writer_waits_even_while_readers_hold_the_lock() {
    let mut h = Harness::new();
    let [r1, w, r2] = [(); 3].map(|()| h.open());
    let token = h.hold(r1, L, S);
    let sw = h.wait(w, L, X);
    let out = h.acquire(r2, L, S, Wait::Try);
    assert_eq!(
        single(&out),
        Err(LockError::Busy { delayed: false }),
        "no writer starvation"
    );
    let s2 = h.wait(r2, L, S);
    let next = h.next_token();
    let out = h.release(r1, L, token);
    assert_eq!(reply_to(&out, w, sw), granted(next));
    assert_eq!(reply_to(&out, r2, s2), None);
}

#[test]
fn a_timed_out_head_lets_the_readers_behind_it_in() {
    let mut h = Harness::new();
    let [r1, w, r2] = [(); 3].map(|()| h.open());
    h.hold(r1, L, S);
    let sw = h.wait_for(w, L, X, Wait::For(500));
    let s2 = h.wait(r2, L, S);
    let next = h.next_token();
    let out = h.timeout(w, L, sw);
    assert_eq!(reply_to(&out, w, sw), Some(Err(LockError::TimedOut)));
    assert_eq!(
        reply_to(&out, r2, s2),
        granted(next),
        "granted by the timeout entry"
    );
    assert_eq!(h.holders(L).len(), 2);
}

#[test]
fn semaphore_grants_up_to_n_and_queues_the_rest() {
    let mut h = Harness::new();
    let ids: Vec<SessionId> = (0..5).map(|_| h.open()).collect();
    let sem = Mode::Semaphore(2);
    let t0 = h.hold(ids[0], L, sem);
    h.hold(ids[1], L, sem);
    let s2 = h.wait(ids[2], L, sem);
    let s3 = h.wait(ids[3], L, sem);
    assert_eq!(
        single(&h.acquire(ids[4], L, sem, Wait::Try)),
        Err(LockError::Busy { delayed: false })
    );
    assert_eq!(
        single(&h.acquire(ids[4], L, Mode::Semaphore(3), Wait::Try)),
        Err(LockError::SemaphoreMismatch { n: 2 })
    );
    assert_eq!(
        single(&h.acquire(ids[4], L, X, Wait::Try)),
        Err(LockError::ModeMismatch {
            kind: LockKind::Semaphore(2)
        })
    );
    let next = h.next_token();
    let out = h.release(ids[0], L, t0);
    assert_eq!(reply_to(&out, ids[2], s2), granted(next));
    assert_eq!(reply_to(&out, ids[3], s3), None);
    assert_eq!(h.holders(L).len(), 2);
    assert_eq!(h.sm.lock_status(L).map(|s| s.mode), Some(Some(sem)));
}

#[test]
fn a_lock_forgotten_when_idle_can_change_kind() {
    let mut h = Harness::new();
    let a = h.open();
    let token = h.hold(a, L, Mode::Semaphore(2));
    h.release(a, L, token);
    assert_eq!(h.sm.lock_count(), 0);
    h.hold(a, L, X);
    assert_eq!(
        h.sm.lock_status(L).map(|s| s.kind),
        Some(LockKind::ReadWrite)
    );
}

#[test]
fn an_expired_holder_leaves_the_lock_delayed_then_the_delay_hands_it_on() {
    let mut h = Harness::new();
    let [a, b, c] = [(); 3].map(|()| h.open());
    let token = h.hold_with_delay(a, L, X, 5_000);
    let sb = h.wait(b, L, X);
    let since = h.next_index();
    let out = h.expire(a);
    let expected = [
        Event::Expired {
            lock: Arc::from(L),
            session: a,
            token,
        },
        Event::LockDelayStarted {
            lock: Arc::from(L),
            since,
            delay_ms: 5_000,
        },
        Event::SessionEnded {
            session: a,
            expired: true,
        },
    ];
    assert_eq!(out.events, expected);
    assert!(out.replies.is_empty(), "nobody is granted during the delay");
    assert!(!h.sm.check_token(L, token));
    assert_eq!(
        single(&h.acquire(c, L, X, Wait::Try)),
        Err(LockError::Busy { delayed: true })
    );
    let sc = h.wait(c, L, X);
    assert_eq!(
        h.sm.lock_delays().collect::<Vec<_>>(),
        [(
            &Arc::from(L),
            LockDelay {
                since,
                delay_ms: 5_000
            }
        )]
    );
    let next = h.next_token();
    let out = h.delay_over(L, since);
    assert_eq!(out.events[0], Event::LockDelayEnded { lock: Arc::from(L) });
    assert_eq!(reply_to(&out, b, sb), granted(next));
    assert_eq!(reply_to(&out, c, sc), None);
    assert_eq!(h.sm.lock_delays().count(), 0);
}

#[test]
fn no_lock_delay_after_a_release_or_a_close() {
    let mut h = Harness::new();
    let [a, b] = [(); 2].map(|()| h.open());
    let token = h.hold_with_delay(a, L, X, 5_000);
    let sb = h.wait(b, L, X);
    let next = h.next_token();
    let out = h.release(a, L, token);
    assert_eq!(reply_to(&out, b, sb), granted(next));
    assert!(
        !out.events
            .iter()
            .any(|e| matches!(e, Event::LockDelayStarted { .. }))
    );
    let c = h.open();
    let command = h.acquire_cmd(c, L, X, Wait::Forever, 5_000);
    let crate::locks::Command::Client(crate::locks::ClientCommand::Acquire { seq: sc, .. }) =
        command
    else {
        unreachable!()
    };
    h.apply(&command);
    // b chose no delay at acquire (the harness's waits use 0): even expiry is free.
    let after = h.next_token();
    let out = h.expire(b);
    assert_eq!(reply_to(&out, c, sc), granted(after));
    let d = h.open();
    let sd = h.wait(d, L, X);
    let last = h.next_token();
    let out = h.close(c);
    assert_eq!(
        reply_to(&out, d, sd),
        granted(last),
        "close frees at once, whatever the delay"
    );
}

#[test]
fn a_stale_lock_delay_over_does_not_end_a_newer_delay() {
    let mut h = Harness::new();
    let [a, b, c] = [(); 3].map(|()| h.open());
    let sem = Mode::Semaphore(2);
    h.hold_with_delay(a, L, sem, 1_000);
    h.hold_with_delay(b, L, sem, 3_000);
    let first = h.next_index();
    h.expire(a);
    let second = h.next_index();
    let out = h.expire(b);
    assert!(out.events.contains(&Event::LockDelayStarted {
        lock: Arc::from(L),
        since: second,
        delay_ms: 3_000
    }));
    let sc = h.wait(c, L, sem);
    assert!(
        h.delay_over(L, first).is_empty(),
        "the first delay was replaced"
    );
    let token = h.next_token();
    let out = h.delay_over(L, second);
    assert_eq!(reply_to(&out, c, sc), granted(token));
    // A delay that ended and a new one started: the old timer is stale too.
    let d = h.open();
    h.close(c);
    h.hold_with_delay(d, L, X, 2_000);
    let third = h.next_index();
    h.expire(d);
    assert!(h.delay_over(L, second).is_empty());
    assert_eq!(
        h.sm.lock_status(L).and_then(|s| s.delay),
        Some(LockDelay {
            since: third,
            delay_ms: 2_000
        })
    );
}

#[test]
fn a_replaced_delay_keeps_the_longer_length() {
    let mut h = Harness::new();
    let [a, b] = [(); 2].map(|()| h.open());
    h.hold_with_delay(a, L, S, 4_000);
    h.hold_with_delay(b, L, S, 1_000);
    h.expire(a);
    let since = h.next_index();
    h.expire(b);
    assert_eq!(
        h.sm.lock_status(L).and_then(|s| s.delay),
        Some(LockDelay {
            since,
            delay_ms: 4_000
        })
    );
}

#[test]
fn a_timeout_for_a_wait_that_is_no_longer_current_is_a_no_op() {
    let mut h = Harness::new();
    let [a, b] = [(); 2].map(|()| h.open());
    let token = h.hold(a, L, X);
    let old = h.wait_for(b, L, X, Wait::For(100));
    h.cancel(b, L);
    let new = h.wait_for(b, L, X, Wait::For(100));
    assert!(
        h.timeout(b, L, old).is_empty(),
        "the old wait was cancelled"
    );
    assert_eq!(h.waiters(L), [b]);
    // Granted before its timer fired: the timer is stale.
    let next = h.next_token();
    h.release(a, L, token);
    assert!(h.timeout(b, L, new).is_empty());
    assert_eq!(h.holders(L), [(b, next)]);
}

#[test]
fn closing_a_holder_hands_its_locks_on_with_the_close_entrys_token() {
    let mut h = Harness::new();
    let [a, b, c] = [(); 3].map(|()| h.open());
    h.hold(a, "one", X);
    h.hold(a, "two", X);
    h.hold(b, "three", X);
    let sa = h.wait(a, "three", X);
    let sb = h.wait(b, "one", X);
    let sc = h.wait(c, "two", S);
    let index = h.next_index();
    let out = h.close(a);
    let token = FencingToken(index.0);
    assert_eq!(reply_to(&out, b, sb), granted(token));
    assert_eq!(reply_to(&out, c, sc), granted(token));
    assert_eq!(reply_to(&out, a, sa), Some(Err(LockError::SessionClosed)));
    assert_eq!(
        out.replies.len(),
        4,
        "the close, one cancelled wait, two grants"
    );
    assert_eq!(
        out.events.last(),
        Some(&Event::SessionEnded {
            session: a,
            expired: false
        })
    );
    assert_eq!(h.holders("one"), [(b, token)]);
    assert_eq!(h.holders("two"), [(c, token)]);
    assert_eq!(h.waiters("three"), []);
}

#[test]
fn expiring_a_holder_without_lock_delay_hands_its_locks_on_at_once() {
    let mut h = Harness::new();
    let [a, b] = [(); 2].map(|()| h.open());
    h.hold(a, L, X);
    let sb = h.wait(b, L, X);
    let index = h.next_index();
    let out = h.expire(a);
    assert_eq!(reply_to(&out, b, sb), granted(FencingToken(index.0)));
    assert_eq!(h.sm.session(a), None);
}

#[test]
fn queries_for_a_new_leader_list_sessions_timed_waits_and_delays() {
    let mut h = Harness::new();
    let a = h.open_ttl(2_000);
    let b = h.open_ttl(30_000);
    let c = h.open();
    h.hold_with_delay(a, L, X, 700);
    let sb = h.wait_for(b, L, X, Wait::For(1_500));
    h.wait(c, L, X);
    let expected = TimedWait {
        session: b,
        lock: Arc::from(L),
        seq: sb,
        timeout_ms: 1_500,
    };
    assert_eq!(h.sm.timed_waits().collect::<Vec<_>>(), [expected]);
    assert_eq!(
        h.sm.sessions().collect::<Vec<_>>(),
        [(a, 2_000), (b, 30_000), (c, 10_000)]
    );
    assert_eq!(
        h.sm.session(a).map(|s| (s.ttl_ms, s.held, s.waiting)),
        Some((2_000, 1, 0))
    );
    let since = h.next_index();
    h.expire(a);
    assert_eq!(
        h.sm.lock_delays().map(|(_, d)| d).collect::<Vec<_>>(),
        [LockDelay {
            since,
            delay_ms: 700
        }]
    );
    assert_eq!((h.sm.session_count(), h.sm.lock_count()), (2, 1));
    let status =
        h.sm.lock_status(L)
            .unwrap_or_else(|| panic!("L is delayed"));
    assert_eq!(
        (status.mode, status.holders.len(), status.waiters.len()),
        (None, 0, 2)
    );
    assert_eq!(h.sm.last_applied(), LogIndex(h.index));
}

#[test]
fn tokens_of_a_lock_strictly_increase_with_every_exclusive_grant() {
    let mut h = Harness::new();
    let [a, b] = [(); 2].map(|()| h.open());
    let mut last = FencingToken(0);
    for i in 0..20 {
        let who = if i % 2 == 0 { a } else { b };
        let token = h.hold(who, L, X);
        assert!(token > last);
        last = token;
        h.release(who, L, token);
    }
}
