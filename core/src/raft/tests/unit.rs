//! Unit tests of single-server behaviour: configuration checks, restoring
//! from storage, and the persistence contract seen from one server.

use super::DigestMachine;
use crate::ids::{LogIndex, NodeId, Term};
use crate::raft::{
    Action, Config, ConfigError, Entry, EntryPayload, HardState, Membership, MessageBody,
    ProposeError, Raft, RestoreError, Role, Snapshot, SnapshotMeta, Stored,
};
use crate::time::{Duration, Instant};
use std::sync::Arc;

fn one_voter() -> Stored<u64> {
    Stored::fresh(Membership::with_voters([NodeId(1)]))
}

fn entry(index: u64, term: u64) -> Entry<u64> {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        payload: EntryPayload::Command(index),
    }
}

fn restore(stored: Stored<u64>) -> Result<Raft<DigestMachine>, RestoreError> {
    Raft::new(
        Config::new(NodeId(1)),
        DigestMachine::default(),
        stored,
        1,
        Instant::ZERO,
    )
}

fn drain(r: &mut Raft<DigestMachine>) -> Vec<Action<u64, (u64, u64)>> {
    std::iter::from_fn(|| r.poll_action()).collect()
}

fn three_voters() -> Membership {
    Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)])
}

/// Server 1 of voters 1, 2 and 3, started from `stored`, its start-up
/// actions drained.
fn server_1_of_three(stored: Stored<u64>) -> Raft<DigestMachine> {
    let mut r = restore(stored).expect("starts");
    drain(&mut r);
    r
}

#[test]
fn config_validation_names_the_problem() {
    let mut c = Config::new(NodeId(0));
    assert_eq!(c.validate(), Err(ConfigError::ZeroId));
    c.id = NodeId(1);
    c.heartbeat_interval = Duration::from_millis(100);
    assert!(matches!(
        c.validate(),
        Err(ConfigError::HeartbeatTooSlow { .. })
    ));
    c.heartbeat_interval = Duration::from_millis(50);
    c.max_inflight = 0;
    assert_eq!(
        c.validate(),
        Err(ConfigError::ZeroLimit {
            what: "max_inflight"
        })
    );
}

#[test]
fn restore_rejects_a_log_with_a_gap() {
    let stored = Stored {
        entries: vec![entry(1, 1), entry(3, 1)],
        hard_state: HardState {
            term: Term(1),
            voted_for: None,
        },
        ..one_voter()
    };
    let r = restore(stored);
    assert_eq!(
        r.err(),
        Some(RestoreError::Gap {
            expected: LogIndex(2),
            found: LogIndex(3)
        })
    );
}

#[test]
fn restore_rejects_terms_going_backwards_or_ahead_of_the_hard_state() {
    let stored = Stored {
        entries: vec![entry(1, 2), entry(2, 1)],
        hard_state: HardState {
            term: Term(2),
            voted_for: None,
        },
        ..one_voter()
    };
    let r = restore(stored);
    assert_eq!(
        r.err(),
        Some(RestoreError::TermRegression { index: LogIndex(2) })
    );
    let stored = Stored {
        entries: vec![entry(1, 3)],
        hard_state: HardState {
            term: Term(2),
            voted_for: None,
        },
        ..one_voter()
    };
    let r = restore(stored);
    assert!(matches!(r.err(), Some(RestoreError::TermBehindLog { .. })));
}

#[test]
fn restore_rejects_a_corrupt_snapshot() {
    let meta = SnapshotMeta {
        last_index: LogIndex(5),
        last_term: Term(1),
        membership: Membership::with_voters([NodeId(1)]),
    };
    let snapshot = Some(Snapshot {
        meta,
        data: Arc::from(vec![1u8, 2, 3]),
    });
    let stored = Stored {
        snapshot,
        hard_state: HardState {
            term: Term(1),
            voted_for: None,
        },
        ..one_voter()
    };
    let r = restore(stored);
    assert!(matches!(r.err(), Some(RestoreError::Snapshot(_))));
}

#[test]
fn restore_skips_entries_covered_by_the_snapshot() {
    let mut sm = DigestMachine::default();
    let data = crate::raft::StateMachine::snapshot(&sm);
    let _ = crate::raft::StateMachine::apply(&mut sm, LogIndex(1), &1);
    let meta = SnapshotMeta {
        last_index: LogIndex(2),
        last_term: Term(1),
        membership: Membership::with_voters([NodeId(1)]),
    };
    let stored = Stored {
        snapshot: Some(Snapshot {
            meta,
            data: Arc::from(data),
        }),
        entries: vec![entry(1, 1), entry(2, 1), entry(3, 1)],
        hard_state: HardState {
            term: Term(1),
            voted_for: None,
        },
        ..one_voter()
    };
    let r = restore(stored).expect("restores");
    assert_eq!(r.last_index(), LogIndex(3));
    assert_eq!(r.commit_index(), LogIndex(2));
}

/// A single voter leads only once its vote is durable, and commits only
/// what is durable on its own disk.
#[test]
fn single_voter_waits_for_its_disk() {
    let cfg = Config::new(NodeId(1));
    let mut r =
        Raft::new(cfg, DigestMachine::default(), one_voter(), 7, Instant::ZERO).expect("starts");
    let t = r.poll_timeout().expect("an election timer");
    r.handle_timeout(t);
    let actions = drain(&mut r);
    assert_eq!(
        r.role(),
        Role::Candidate,
        "must not lead before its vote is durable"
    );
    let Some(Action::Persist(p)) = actions
        .into_iter()
        .find(|a| matches!(a, Action::Persist(_)))
    else {
        panic!("the vote must be persisted");
    };
    assert_eq!(
        p.hard_state,
        Some(HardState {
            term: Term(1),
            voted_for: Some(NodeId(1))
        })
    );
    r.persisted(p.seq, t);
    assert!(r.is_leader());
    let (index, _) = r.propose(42).expect("leader takes proposals");
    let persist = drain(&mut r)
        .into_iter()
        .find_map(|a| {
            if let Action::Persist(p) = a {
                Some(p)
            } else {
                None
            }
        })
        .expect("entries to persist");
    assert!(
        r.commit_index() < index,
        "committed before the entry was durable"
    );
    r.persisted(persist.seq, t);
    let applied: Vec<_> = drain(&mut r)
        .into_iter()
        .filter_map(|a| {
            if let Action::Applied { index, output, .. } = a {
                Some((index, output.0))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(applied, vec![(index, 42)]);
}

#[test]
fn followers_refuse_proposals_and_name_the_leader_they_know() {
    let stored = Stored::fresh(Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)]));
    let mut r = Raft::new(
        Config::new(NodeId(2)),
        DigestMachine::default(),
        stored,
        3,
        Instant::ZERO,
    )
    .expect("starts");
    assert_eq!(r.propose(1), Err(ProposeError::NotLeader { leader: None }));
    let hb = crate::raft::Message {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(1),
        body: MessageBody::Heartbeat {
            commit: LogIndex(0),
            round: 1,
        },
    };
    r.handle_message(hb, Instant::from_millis(1));
    assert_eq!(
        r.propose(1),
        Err(ProposeError::NotLeader {
            leader: Some(NodeId(1))
        })
    );
}

/// A hostile peer's heartbeat at term 2^64 - 1 (or entries out of order)
/// changes nothing: the term stays, nothing is persisted, and a correct
/// leader's heartbeat at the next term is still followed.
#[test]
fn implausible_messages_change_nothing() {
    use crate::raft::Message;
    let mut r = server_1_of_three(Stored::fresh(three_voters()));
    let before = r.term();
    let hostile = |term: u64, body: MessageBody<u64>| Message {
        from: NodeId(2),
        to: NodeId(1),
        term: Term(term),
        body,
    };
    let heartbeat = MessageBody::Heartbeat {
        commit: LogIndex(0),
        round: 1,
    };
    r.handle_message(hostile(u64::MAX, heartbeat.clone()), Instant::ZERO);
    r.handle_message(hostile(Term::LIMIT.0, heartbeat.clone()), Instant::ZERO);
    let scrambled = MessageBody::Append {
        prev_index: LogIndex(0),
        prev_term: Term(0),
        entries: vec![entry(2, 1), entry(1, 1)],
        commit: LogIndex(0),
        round: 1,
    };
    r.handle_message(hostile(1, scrambled), Instant::ZERO);
    let overflowing = MessageBody::Append {
        prev_index: LogIndex(u64::MAX),
        prev_term: Term(1),
        entries: vec![entry(0, 1)],
        commit: LogIndex(u64::MAX),
        round: 1,
    };
    r.handle_message(hostile(1, overflowing), Instant::ZERO);
    assert_eq!(r.term(), before, "no implausible term was adopted");
    assert!(drain(&mut r).is_empty(), "nothing was persisted or sent");
    r.handle_message(hostile(before.0 + 1, heartbeat), Instant::ZERO);
    assert_eq!(
        r.term(),
        Term(before.0 + 1),
        "a plausible leader is followed"
    );
    assert_eq!(r.leader(), Some(NodeId(2)));
}

/// A follower takes the leader's commit index only as far as the append
/// it just accepted reaches: entries beyond it may be a stale tail of an
/// older term, not yet cut, that the leader's log does not hold. (The
/// leader's own backtracking never sends such an append, see
/// sim/CANARIES.md `follower_commits_on_append`, so this pins the
/// follower's half of the rule on its own.)
#[test]
fn a_follower_commits_no_further_than_the_append_it_accepted() {
    use crate::raft::Message;
    let stored = Stored {
        // Entry 3 is a stale entry of term 1; the leader of term 2 holds
        // another entry at index 3.
        entries: vec![entry(1, 1), entry(2, 1), entry(3, 1)],
        hard_state: HardState {
            term: Term(2),
            voted_for: None,
        },
        ..Stored::fresh(three_voters())
    };
    let mut r = server_1_of_three(stored);
    let append = MessageBody::Append {
        prev_index: LogIndex(1),
        prev_term: Term(1),
        entries: vec![entry(2, 1)],
        commit: LogIndex(3),
        round: 1,
    };
    r.handle_message(
        Message {
            from: NodeId(2),
            to: NodeId(1),
            term: Term(2),
            body: append,
        },
        Instant::ZERO,
    );
    assert_eq!(r.leader(), Some(NodeId(2)));
    assert_eq!(
        r.commit_index(),
        LogIndex(2),
        "the stale entry 3 must not count as committed"
    );
}

#[test]
fn the_committed_configuration_is_kept_apart_from_a_newer_uncommitted_one() {
    use crate::raft::Message;
    let mut r = server_1_of_three(Stored::fresh(three_voters()));
    let without_3 = Membership::with_voters([NodeId(1), NodeId(2)]);
    // Server 2, leading term 1, sends entry 1 committed and a
    // configuration leaving server 3 out at index 2, not yet committed.
    let append = MessageBody::Append {
        prev_index: LogIndex(0),
        prev_term: Term(0),
        entries: vec![
            entry(1, 1),
            Entry {
                index: LogIndex(2),
                term: Term(1),
                payload: EntryPayload::Membership(without_3.clone()),
            },
        ],
        commit: LogIndex(1),
        round: 1,
    };
    r.handle_message(
        Message {
            from: NodeId(2),
            to: NodeId(1),
            term: Term(1),
            body: append,
        },
        Instant::ZERO,
    );
    assert_eq!(r.commit_index(), LogIndex(1));
    // The configuration in force is the newest in the log, committed or
    // not; the committed one still names server 3, which a later leader
    // may yet keep (it would overwrite index 2).
    assert_eq!(r.membership(), &without_3);
    assert_eq!(r.membership_index(), LogIndex(2));
    assert!(r.committed_membership().is_voter(NodeId(3)));
    assert_eq!(r.committed_membership(), three_voters());
}
