//! Snapshots: a round trip reproduces the state exactly (and the same
//! bytes), garbage and inconsistent snapshots are refused, and a refused
//! restore leaves the state as it was.

use super::harness::{Harness, L};
use crate::ids::LogIndex;
use crate::locks::ClientCommand;
use crate::locks::{Command, FencingToken, Limits, LockState, Mode, Seq, Wait};
use crate::raft::StateMachine;

/// A state with something of everything: holders of every mode, queues,
/// a lock-delay, remembered answers, pending waits, ended sessions.
fn complex_history() -> Harness {
    let mut h = Harness::with_limits(Limits {
        max_ended_sessions: 3,
        ..Limits::default()
    });
    let ids: Vec<_> = (0..8).map(|i| h.open_ttl(1_000 + i * 1_000)).collect();
    let t = h.hold(ids[0], L, Mode::Exclusive);
    h.wait(ids[1], L, Mode::Shared);
    h.wait_for(ids[2], L, Mode::Exclusive, Wait::For(250));
    h.wait(ids[3], L, Mode::Shared);
    h.hold(ids[1], "readers", Mode::Shared);
    h.hold(ids[2], "readers", Mode::Shared);
    h.hold(ids[3], "sem", Mode::Semaphore(3));
    h.hold(ids[4], "sem", Mode::Semaphore(3));
    h.hold_with_delay(ids[5], "delayed", Mode::Exclusive, 1_234);
    h.wait_for(ids[6], "delayed", Mode::Exclusive, Wait::For(9_000));
    h.expire(ids[5]);
    h.acquire(ids[6], "sem", Mode::Exclusive, Wait::Try);
    h.release(ids[7], L, FencingToken(1));
    h.release(ids[0], L, t);
    let extra: Vec<_> = (0..5).map(|_| h.open()).collect();
    for id in &extra[..4] {
        h.close(*id);
    }
    h
}

#[test]
fn a_round_trip_reproduces_the_state_and_its_bytes() {
    let mut h = complex_history();
    let bytes = h.sm.snapshot();
    let mut restored = LockState::default();
    restored.restore(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(restored, h.sm);
    assert_eq!(restored.snapshot(), bytes);
    assert_eq!(
        restored.limits().max_ended_sessions,
        3,
        "limits travel in the snapshot"
    );
    // Both go on identically.
    let ids: Vec<_> = h.sm.sessions().map(|(id, _)| id).collect();
    let mut commands = vec![Command::ExpireSession { session: ids[1] }];
    let since =
        h.sm.lock_delays()
            .map(|(_, delay)| delay.since)
            .next()
            .unwrap_or_default();
    commands.push(Command::LockDelayOver {
        lock: "delayed".into(),
        since,
    });
    for (i, id) in ids.iter().enumerate() {
        commands.push(h.acquire_cmd(*id, "sem", Mode::Semaphore(3), Wait::Forever, 0));
        commands.push(Command::Client(ClientCommand::CloseSession {
            session: *id,
            seq: Seq(100 + i as u64),
            ack: Seq(0),
        }));
    }
    for command in &commands {
        h.index += 1;
        let index = LogIndex(h.index);
        assert_eq!(
            restored.apply(index, command),
            h.sm.apply(index, command),
            "{command:?}"
        );
    }
    assert_eq!(restored, h.sm);
}

#[test]
fn snapshots_are_deterministic() {
    assert_eq!(
        complex_history().sm.snapshot(),
        complex_history().sm.snapshot()
    );
    let empty = LockState::default().snapshot();
    let mut restored = complex_history().sm;
    restored.restore(&empty).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(restored, LockState::default());
}

fn assert_refused(state: &mut LockState, bytes: &[u8]) {
    let before = state.clone();
    assert!(state.restore(bytes).is_err(), "accepted {bytes:?}");
    assert_eq!(*state, before, "a refused restore changed the state");
}

#[test]
fn garbage_is_refused_and_changes_nothing() {
    let mut state = complex_history().sm;
    let good = state.snapshot();
    assert_refused(&mut state, b"");
    assert_refused(&mut state, b"DLks");
    assert_refused(&mut state, b"hello world, this is not a snapshot");
    let mut wrong_magic = good.clone();
    wrong_magic[0] ^= 0x20;
    assert_refused(&mut state, &wrong_magic);
    let mut future = good.clone();
    future[4] = 3;
    assert_refused(&mut state, &future);
    let mut trailing = good.clone();
    trailing.push(0);
    assert_refused(&mut state, &trailing);
    for len in 0..good.len() {
        assert_refused(&mut state, &good[..len]);
    }
}

#[test]
fn corrupted_bytes_never_yield_a_broken_state() {
    let state = complex_history().sm;
    let good = state.snapshot();
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    for at in 0..good.len() {
        for _ in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut bytes = good.clone();
            bytes[at] ^= (seed as u8) | 1;
            let mut restored = state.clone();
            if restored.restore(&bytes).is_ok() {
                // Some flips are valid states (another ttl, say): they must
                // be consistent, and read back as written.
                assert_eq!(restored.check_invariants(), Ok(()));
                assert_eq!(restored.snapshot(), bytes, "decoding is canonical");
            } else {
                assert_eq!(restored, state);
            }
        }
    }
}

/// Makes a state inconsistent.
type Breakage = Box<dyn Fn(&mut LockState)>;

#[test]
fn inconsistent_snapshots_are_refused() {
    let h = complex_history();
    let holder = *h
        .sm
        .locks
        .get("readers")
        .and_then(|lock| lock.holders.first().map(|(id, _)| id))
        .unwrap_or_else(|| panic!());
    let breakages: [(&str, Breakage); 5] = [
        (
            "holder's session gone",
            Box::new(move |s| drop(s.sessions.live.remove(&holder))),
        ),
        (
            "token from the future",
            Box::new(|s| s.last_applied = LogIndex(3)),
        ),
        (
            "idle lock",
            Box::new(|s| {
                drop(s.locks.insert(
                    "idle".into(),
                    super::super::lock::Lock::new(crate::locks::LockKind::ReadWrite),
                ))
            }),
        ),
        (
            "two exclusive holders",
            Box::new(|s| {
                for lock in s.locks.values_mut() {
                    for (_, holder) in &mut lock.holders {
                        holder.mode = Mode::Exclusive;
                    }
                }
            }),
        ),
        (
            "a grantable head of queue",
            Box::new(|s| {
                if let Some(lock) = s.locks.get_mut(L) {
                    lock.holders.clear();
                }
            }),
        ),
    ];
    for (what, breakage) in breakages {
        let mut broken = h.sm.clone();
        breakage(&mut broken);
        let bytes = broken.snapshot();
        let mut state = LockState::default();
        assert_refused(&mut state, &bytes);
        assert!(state.restore(&bytes).is_err(), "{what}");
    }
}
