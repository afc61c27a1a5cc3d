//! The persistence contract's bookkeeping: what of the log and hard state is
//! only in memory, what has been handed to storage, what storage reported
//! durable, and which outgoing messages must wait for which write.
//!
//! Modelled on etcd-io/raft's `unstable`: [`Raft`](super::Raft) changes its
//! log and hard state in memory, tells a [`Durability`] what it changed
//! (`mark_*`, [`Durability::truncate`]), takes one [`Persist`] per drain
//! ([`Durability::take_persist`]) and reports the driver's acknowledgements
//! ([`Durability::persisted`]), which release the messages held for them.
//!
//! # Invariant
//!
//! With `last` the in-memory log's last index, after every method:
//!
//! - `stable_index <= written_index <= last` (nothing is durable that was
//!   not handed to storage, nothing handed to storage that the log no
//!   longer holds; a snapshot handed to storage counts as written up to
//!   its index);
//! - `persisted_seq < next_seq` and `own_vote_seq <= next_seq`: only writes
//!   already issued are reported durable or awaited;
//! - in-flight writes are in issue order, each numbered above
//!   `persisted_seq` and below `next_seq`, and each records an index at most
//!   `written_index`;
//! - held messages are ordered by the write they wait for, each above
//!   `persisted_seq` and at most `next_seq` (the write the next drain takes).

use super::log::RaftLog;
use super::types::{Entry, HardState, Message, Persist, PersistSeq, Snapshot};
use crate::ids::LogIndex;
use std::collections::VecDeque;

/// What has changed in memory but not yet been handed to the driver.
#[derive(Debug, Default)]
#[cfg_attr(feature = "testkit", derive(Clone))]
struct Unsaved {
    hard_state: bool,
    truncate_from: Option<LogIndex>,
    /// First log index not yet handed to storage.
    entries_from: Option<LogIndex>,
    snapshot: Option<Box<Snapshot>>,
}

impl Unsaved {
    fn is_dirty(&self) -> bool {
        self.hard_state
            || self.truncate_from.is_some()
            || self.entries_from.is_some()
            || self.snapshot.is_some()
    }
}

/// The persistence bookkeeping of one Raft server. See the
/// [module documentation](self) for its invariant.
#[derive(Debug)]
#[cfg_attr(feature = "testkit", derive(Clone))]
pub(super) struct Durability<C> {
    unsaved: Unsaved,
    /// The number the next [`Persist`] gets.
    next_seq: u64,
    /// Every write up to this number is durable.
    persisted_seq: u64,
    /// The last log index handed to storage.
    written_index: LogIndex,
    /// Highest index such that the log up to it is durable.
    stable_index: LogIndex,
    /// The last log index each outstanding write makes durable (clipped by
    /// later truncations).
    inflight: VecDeque<(u64, LogIndex)>,
    /// Messages waiting for the write numbered by their first field.
    held: VecDeque<(u64, Message<C>)>,
    /// The write that records this candidate's vote for itself.
    own_vote_seq: u64,
}

impl<C: Clone> Durability<C> {
    /// Bookkeeping for a log restored from storage up to `last`: all of it
    /// durable, nothing pending.
    pub(super) fn new(last: LogIndex) -> Self {
        Self {
            unsaved: Unsaved::default(),
            next_seq: 1,
            persisted_seq: 0,
            written_index: last,
            stable_index: last,
            inflight: VecDeque::new(),
            held: VecDeque::new(),
            own_vote_seq: 0,
        }
    }

    /// Highest index such that the log up to it is durable.
    pub(super) fn stable_index(&self) -> LogIndex {
        self.stable_index
    }

    /// The term or vote changed in memory.
    pub(super) fn mark_hard_state(&mut self) {
        self.unsaved.hard_state = true;
    }

    /// This server voted for itself: the vote changed, and it counts once
    /// the write that records it is durable ([`Self::own_vote_durable`]).
    pub(super) fn mark_own_vote(&mut self) {
        self.unsaved.hard_state = true;
        self.own_vote_seq = self.next_seq;
    }

    /// Whether the write recording this server's latest vote for itself is
    /// durable.
    pub(super) fn own_vote_durable(&self) -> bool {
        self.persisted_seq >= self.own_vote_seq
    }

    /// Entries from `from` on were appended to the in-memory log.
    pub(super) fn mark_entries(&mut self, from: LogIndex) {
        let f = self.unsaved.entries_from.map_or(from, |f| f.min(from));
        self.unsaved.entries_from = Some(f);
    }

    /// A snapshot replaces the state machine (and possibly the log).
    pub(super) fn mark_snapshot(&mut self, snap: Snapshot) {
        self.unsaved.snapshot = Some(Box::new(snap));
    }

    /// Entries `>= from` were removed from the in-memory log: storage loses
    /// them too if it was given them, and nothing after them stays counted
    /// as durable.
    pub(super) fn truncate(&mut self, from: LogIndex) {
        if from <= self.written_index {
            self.unsaved.truncate_from =
                Some(self.unsaved.truncate_from.map_or(from, |t| t.min(from)));
            self.written_index = from.prev();
        }
        self.clip_stable(from.prev());
        if self.unsaved.entries_from.is_some_and(|f| f >= from) {
            self.unsaved.entries_from = None;
        }
        debug_assert!(self.stable_index < from && self.written_index < from);
    }

    /// The log was reset to a divergent snapshot: no entry of the old log
    /// past `keep` counts as durable, and no entry still waits to be written
    /// (the snapshot stands for them).
    pub(super) fn reset_to_snapshot(&mut self, keep: LogIndex) {
        self.clip_stable(keep);
        self.unsaved.entries_from = None;
    }

    fn clip_stable(&mut self, keep: LogIndex) {
        self.stable_index = self.stable_index.min(keep);
        for (_, last) in &mut self.inflight {
            *last = (*last).min(keep);
        }
    }

    /// The write a message queued now depends on: the one the next drain
    /// takes if anything is unsaved, else the last one issued.
    fn current_seq(&self) -> u64 {
        if self.unsaved.is_dirty() {
            self.next_seq
        } else {
            self.next_seq - 1
        }
    }

    /// Returns `msg` if it may go now, or holds it until everything changed
    /// so far is durable. Only `durable` messages (a vote, an append's
    /// acknowledgement, anything stating what must be on disk) wait.
    pub(super) fn send_or_hold(&mut self, msg: Message<C>, durable: bool) -> Option<Message<C>> {
        let dep = self.current_seq();
        if durable && dep > self.persisted_seq {
            debug_assert!(self.held.back().is_none_or(|(d, _)| *d <= dep));
            self.held.push_back((dep, msg));
            None
        } else {
            Some(msg)
        }
    }

    /// Hands everything changed since the last call to storage as one
    /// write, if anything changed. `hard_state` is the term and vote now.
    pub(super) fn take_persist(
        &mut self,
        log: &RaftLog<C>,
        hard_state: HardState,
    ) -> Option<Persist<C>> {
        if !self.unsaved.is_dirty() {
            return None;
        }
        let unsaved = std::mem::take(&mut self.unsaved);
        let seq = self.next_seq;
        self.next_seq += 1;
        let entries: Vec<Entry<C>> = match unsaved.entries_from {
            Some(from) => log.slice(from.max(log.first_index()), usize::MAX),
            None => Vec::new(),
        };
        if let Some(last) = entries.last() {
            self.written_index = last.index;
        }
        if let Some(snap) = &unsaved.snapshot {
            self.written_index = self.written_index.max(snap.meta.last_index);
        }
        self.inflight.push_back((seq, self.written_index));
        self.check(log.last_index());
        Some(Persist {
            seq: PersistSeq(seq),
            hard_state: unsaved.hard_state.then_some(hard_state),
            truncate_from: unsaved.truncate_from,
            entries,
            snapshot: unsaved.snapshot,
        })
    }

    /// Storage reports every write up to `seq` durable. Returns the
    /// messages that waited for it, in the order they were queued, or `None`
    /// when the report is not news. `last` is the in-memory log's last index.
    pub(super) fn persisted(&mut self, seq: PersistSeq, last: LogIndex) -> Option<Vec<Message<C>>> {
        if seq.0 <= self.persisted_seq {
            return None;
        }
        debug_assert!(seq.0 < self.next_seq, "persisted a request never issued");
        self.persisted_seq = seq.0;
        while let Some(&(s, written)) = self.inflight.front() {
            if s > seq.0 {
                break;
            }
            self.stable_index = self.stable_index.max(written).min(last);
            self.inflight.pop_front();
        }
        let mut released = Vec::new();
        while self.held.front().is_some_and(|(dep, _)| *dep <= seq.0) {
            if let Some((_, msg)) = self.held.pop_front() {
                released.push(msg);
            }
        }
        self.check(last);
        Some(released)
    }

    /// Asserts the [invariant](self) (debug builds only).
    pub(super) fn check(&self, last: LogIndex) {
        debug_assert!(
            self.stable_index <= self.written_index && self.written_index <= last,
            "durability: stable {:?} <= written {:?} <= last {last:?} broken",
            self.stable_index,
            self.written_index,
        );
        debug_assert!(self.persisted_seq < self.next_seq && self.own_vote_seq <= self.next_seq);
        // One pass per queue: this runs after every step of a debug build
        // (the simulation's), so it walks each queue once, carrying the
        // previous number, which starts at `persisted_seq` — every number
        // is above it.
        debug_assert!(
            self.inflight
                .iter()
                .try_fold(self.persisted_seq, |prev, &(s, w)| {
                    // Strictly increasing, below next_seq, within what was written.
                    (s > prev && s < self.next_seq && w <= self.written_index).then_some(s)
                })
                .is_some()
        );
        debug_assert!(
            self.held
                .iter()
                .try_fold(self.persisted_seq, |prev, &(d, _)| {
                    // Non-decreasing, above persisted_seq, at most next_seq.
                    (d >= prev && d > self.persisted_seq && d <= self.next_seq).then_some(d)
                })
                .is_some()
        );
    }
}
