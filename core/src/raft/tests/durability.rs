//! Table tests of the persistence bookkeeping alone ([`Durability`]), with
//! an in-memory log beside it the way `Raft` keeps one.

use crate::ids::{LogIndex, NodeId, Term};
use crate::raft::durability::Durability;
use crate::raft::log::RaftLog;
use crate::raft::{Entry, EntryPayload, HardState, Membership, Message, MessageBody, PersistSeq};
use crate::raft::{Snapshot, SnapshotMeta};
use std::sync::Arc;

/// One step of a table case.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// Append entries up to this index (term 1) and mark them.
    Append(u64),
    /// The term or vote changed.
    HardState,
    /// This server voted for itself.
    OwnVote,
    /// Truncate the log from this index.
    Truncate(u64),
    /// Queue a message to this peer, which must (`true`) or need not wait
    /// for durability; expect it to go at once (`true`) or be held.
    Send(u64, bool, bool),
    /// The drain: take the next write, expecting (seq, first entry, last
    /// entry, truncate_from, hard state) or nothing.
    Take(Option<(u64, u64, u64, Option<u64>, bool)>),
    /// Storage reports writes up to this seq durable; expect these peers'
    /// messages released (`None`: the report is not news).
    Persisted(u64, Option<&'static [u64]>),
    /// Adopt a divergent snapshot at this index, keeping the durable log up
    /// to the second.
    Snapshot(u64, u64),
    /// Expect (stable index, own vote durable).
    Expect(u64, bool),
}

fn msg(to: u64) -> Message<u64> {
    Message {
        from: NodeId(1),
        to: NodeId(to),
        term: Term(1),
        body: MessageBody::VoteResponse { granted: true },
    }
}

fn run(name: &str, ops: &[Op]) {
    let mut log: RaftLog<u64> = RaftLog::new(LogIndex(0), Term(0));
    let mut d: Durability<u64> = Durability::new(LogIndex(0));
    let hs = HardState {
        term: Term(1),
        voted_for: None,
    };
    for (step, op) in ops.iter().enumerate() {
        let at = format!("{name}, step {step} ({op:?})");
        match *op {
            Op::Append(to) => {
                let from = log.last_index().next();
                for i in from.0..=to {
                    log.append(Entry {
                        index: LogIndex(i),
                        term: Term(1),
                        payload: EntryPayload::Command(i),
                    });
                }
                d.mark_entries(from);
            }
            Op::HardState => d.mark_hard_state(),
            Op::OwnVote => d.mark_own_vote(),
            Op::Truncate(from) => {
                log.truncate(LogIndex(from));
                d.truncate(LogIndex(from));
            }
            Op::Send(to, durable, goes) => {
                assert_eq!(d.send_or_hold(msg(to), durable).is_some(), goes, "{at}");
            }
            Op::Take(want) => {
                let got = d.take_persist(&log, hs).map(|p| {
                    (
                        p.seq.0,
                        p.entries.first().map_or(0, |e| e.index.0),
                        p.entries.last().map_or(0, |e| e.index.0),
                        p.truncate_from.map(|t| t.0),
                        p.hard_state.is_some(),
                    )
                });
                assert_eq!(got, want, "{at}");
            }
            Op::Persisted(seq, want) => {
                let got = d
                    .persisted(PersistSeq(seq), log.last_index())
                    .map(|ms| ms.iter().map(|m| m.to.0).collect::<Vec<_>>());
                assert_eq!(got.as_deref(), want, "{at}");
            }
            Op::Snapshot(index, keep) => {
                log.truncate(LogIndex(index + 1));
                d.truncate(LogIndex(index + 1));
                d.reset_to_snapshot(LogIndex(keep));
                log.reset(LogIndex(index), Term(2));
                d.mark_snapshot(Snapshot {
                    meta: SnapshotMeta {
                        last_index: LogIndex(index),
                        last_term: Term(2),
                        membership: Membership::default(),
                    },
                    data: Arc::from(Vec::new()),
                });
            }
            Op::Expect(stable, vote) => {
                assert_eq!(d.stable_index(), LogIndex(stable), "{at}");
                assert_eq!(d.own_vote_durable(), vote, "{at}");
            }
        }
        d.check(log.last_index());
    }
}

#[test]
fn nothing_changed_means_no_write_and_nothing_held() {
    use Op::*;
    run(
        "idle",
        &[
            Take(None),
            Send(2, true, true),
            Persisted(0, None),
            Expect(0, true),
        ],
    );
}

#[test]
fn entries_become_stable_only_when_their_write_is_reported() {
    use Op::*;
    run(
        "entries",
        &[
            Append(3),
            Take(Some((1, 1, 3, None, false))),
            Expect(0, true),
            Append(5),
            Take(Some((2, 4, 5, None, false))),
            Persisted(1, Some(&[])),
            Expect(3, true),
            Persisted(1, None),
            Persisted(2, Some(&[])),
            Expect(5, true),
        ],
    );
}

#[test]
fn a_durable_message_waits_for_the_write_of_what_changed_before_it() {
    use Op::*;
    run(
        "held",
        &[
            HardState,
            Send(2, true, false), // waits for write 1 (not yet taken)
            Send(3, false, true), // goes now
            Take(Some((1, 0, 0, None, true))),
            Send(4, true, false), // clean since: waits for write 1 too
            Append(1),
            Send(5, true, false), // waits for write 2
            Take(Some((2, 1, 1, None, false))),
            Persisted(1, Some(&[2, 4])),
            Persisted(2, Some(&[5])),
            Expect(1, true),
        ],
    );
}

#[test]
fn the_own_vote_counts_once_its_write_is_durable() {
    use Op::*;
    run(
        "own vote",
        &[
            OwnVote,
            Expect(0, false),
            Take(Some((1, 0, 0, None, true))),
            Expect(0, false),
            Persisted(1, Some(&[])),
            Expect(0, true),
        ],
    );
}

#[test]
fn a_truncation_of_written_entries_reaches_storage_and_clips_in_flight_writes() {
    use Op::*;
    run(
        "truncate written",
        &[
            Append(4),
            Take(Some((1, 1, 4, None, false))),
            Truncate(3),
            Append(5),
            Take(Some((2, 3, 5, Some(3), false))),
            // Write 1 wrote up to 4, but 3 and 4 were replaced: only 2 is
            // durable until write 2 is.
            Persisted(1, Some(&[])),
            Expect(2, true),
            Persisted(2, Some(&[])),
            Expect(5, true),
        ],
    );
}

#[test]
fn a_truncation_of_unwritten_entries_never_reaches_storage() {
    use Op::*;
    run(
        "truncate unwritten",
        &[
            Append(2),
            Take(Some((1, 1, 2, None, false))),
            Append(4),
            Truncate(4),
            Take(Some((2, 3, 3, None, false))),
            Truncate(3),
            Persisted(2, Some(&[])),
            Expect(2, true),
            Take(Some((3, 0, 0, Some(3), false))),
        ],
    );
}

#[test]
fn a_divergent_snapshot_keeps_only_the_durable_prefix_it_is_told() {
    use Op::*;
    run(
        "snapshot",
        &[
            Append(4),
            Take(Some((1, 1, 4, None, false))),
            Persisted(1, Some(&[])),
            Expect(4, true),
            Snapshot(6, 2),
            Expect(2, true),
            // Nothing of the old log is rewritten: the snapshot stands for it.
            Take(Some((2, 0, 0, None, false))),
            Persisted(2, Some(&[])),
            Expect(6, true),
        ],
    );
}
