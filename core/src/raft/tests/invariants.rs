//! The safety properties of Raft, checked incrementally after every step of
//! the cluster harness: election safety, log matching, leader completeness,
//! state machine safety, durability of acknowledged proposals, and no double
//! vote across restarts.

use super::mix;
use crate::ids::{LogIndex, NodeId, Term};
use crate::raft::{EntryPayload, Raft, StateMachine};
use std::collections::BTreeMap;

/// A digest of an entry's payload, to compare entries cheaply.
pub(crate) fn payload_digest(p: &EntryPayload<u64>) -> u64 {
    match p {
        EntryPayload::Noop => 1,
        EntryPayload::Command(c) => mix(c.wrapping_add(2)),
        EntryPayload::Membership(m) => m
            .voters
            .iter()
            .fold(3, |h, v| mix(h ^ v.0))
            .wrapping_add(m.learners.iter().fold(5, |h, v| mix(h ^ (v.0 << 32)))),
    }
}

#[derive(Default)]
pub(crate) struct Invariants {
    /// The first violation found, with the true time.
    pub(crate) violations: Vec<String>,
    pub(crate) leaders: BTreeMap<Term, NodeId>,
    /// (index, term) → (payload digest, term of the previous entry).
    entries: BTreeMap<(LogIndex, Term), (u64, Option<Term>)>,
    /// index → term of the committed entry.
    committed: BTreeMap<LogIndex, Term>,
    /// index → (term, command, digest after applying it).
    applied: BTreeMap<LogIndex, (Term, u64, u64)>,
    /// Proposals whose proposer applied them: index → (term, command).
    pub(crate) acked: BTreeMap<LogIndex, (Term, u64)>,
    /// (voter, term) → candidate.
    votes: BTreeMap<(NodeId, Term), NodeId>,
    /// Per server: highest commit index already checked in this incarnation.
    checked_commit: BTreeMap<NodeId, LogIndex>,
    /// Reads registered: (server, read id) → highest index known committed
    /// anywhere when the read was registered.
    reads: BTreeMap<(NodeId, u64), LogIndex>,
    pub(crate) elections: u64,
    pub(crate) reads_ready: u64,
}

impl Invariants {
    pub(crate) fn failed(&self) -> bool {
        !self.violations.is_empty()
    }

    pub(crate) fn violation(&mut self, now: u64, what: String) {
        if self.violations.len() < 5 {
            self.violations.push(format!(
                "t={}.{:06}s: {what}",
                now / 1_000_000,
                now % 1_000_000
            ));
        }
    }

    pub(crate) fn max_committed(&self) -> LogIndex {
        self.committed
            .keys()
            .next_back()
            .copied()
            .unwrap_or(LogIndex(0))
    }

    pub(crate) fn on_restart(&mut self, id: NodeId) {
        self.checked_commit.remove(&id);
    }

    /// Election safety and leader completeness.
    pub(crate) fn on_leader<S: StateMachine>(&mut self, now: u64, id: NodeId, r: &Raft<S>) {
        self.elections += 1;
        let term = r.term();
        if let Some(&other) = self.leaders.get(&term) {
            if other != id {
                self.violation(
                    now,
                    format!("election safety: {other} and {id} both lead {term}"),
                );
            }
        }
        self.leaders.insert(term, id);
        let mut missing = None;
        for (&index, &t) in &self.committed {
            match r.term_at(index) {
                Some(have) if have == t => {}
                None if index <= r.commit_index() => {} // compacted into a snapshot
                other => {
                    missing = Some((index, t, other));
                    break;
                }
            }
        }
        if let Some((index, t, other)) = missing {
            self.violation(
                now,
                format!("leader completeness: new leader {id} of {term} has {other:?} at {index}, committed {t}"),
            );
        }
    }

    /// Log matching: an (index, term) names one entry, with one predecessor.
    pub(crate) fn on_entry(
        &mut self,
        now: u64,
        id: NodeId,
        index: LogIndex,
        term: Term,
        digest: u64,
        prev_term: Option<Term>,
    ) {
        match self.entries.get_mut(&(index, term)) {
            None => {
                self.entries.insert((index, term), (digest, prev_term));
            }
            Some((d, p)) => {
                if *d != digest {
                    let d = *d;
                    self.violation(now, format!("log matching: {id} stores a different entry at ({index}, {term}): {digest:x} vs {d:x}"));
                } else if let (Some(a), Some(b)) = (*p, prev_term) {
                    if a != b {
                        self.violation(now, format!("log matching: {id} has ({index}, {term}) after term {b}, others after {a}"));
                    }
                } else if p.is_none() {
                    *p = prev_term;
                }
            }
        }
    }

    /// State machine safety for every committed index (terms).
    pub(crate) fn on_commit<S: StateMachine>(&mut self, now: u64, id: NodeId, r: &Raft<S>) {
        let commit = r.commit_index();
        let from = self.checked_commit.get(&id).copied().unwrap_or(LogIndex(0));
        if commit <= from {
            return;
        }
        let mut i = from.next();
        while i <= commit {
            if let Some(t) = r.term_at(i) {
                match self.committed.get(&i) {
                    None => {
                        self.committed.insert(i, t);
                    }
                    Some(&c) if c != t => {
                        self.violation(
                            now,
                            format!("state machine safety: {id} commits {t} at {i}, others {c}"),
                        );
                        return;
                    }
                    _ => {}
                }
            }
            i = i.next();
        }
        self.checked_commit.insert(id, commit);
    }

    /// State machine safety for applied commands, and acknowledged proposals.
    pub(crate) fn on_applied(
        &mut self,
        now: u64,
        id: NodeId,
        index: LogIndex,
        term: Term,
        (cmd, digest): (u64, u64),
        acked: Option<u64>,
    ) {
        match self.applied.get(&index) {
            None => {
                self.applied.insert(index, (term, cmd, digest));
            }
            Some(&(t, c, d)) => {
                if (t, c, d) != (term, cmd, digest) {
                    self.violation(
                        now,
                        format!("state machine safety: {id} applied ({term}, {cmd}, {digest:x}) at {index}, others ({t}, {c}, {d:x})"),
                    );
                }
            }
        }
        if let Some(value) = acked {
            if value != cmd {
                self.violation(
                    now,
                    format!("{id} proposed {value} at ({index}, {term}) but applied {cmd}"),
                );
            }
            self.acked.insert(index, (term, cmd));
        }
    }

    /// No server votes for two candidates in one term, restarts included.
    pub(crate) fn on_vote(&mut self, now: u64, voter: NodeId, term: Term, candidate: NodeId) {
        match self.votes.get(&(voter, term)) {
            Some(&c) if c != candidate => {
                self.violation(
                    now,
                    format!("double vote: {voter} voted for {c} and {candidate} in {term}"),
                );
            }
            _ => {
                self.votes.insert((voter, term), candidate);
            }
        }
    }

    pub(crate) fn on_read_registered(&mut self, id: NodeId, read: u64) {
        let floor = self.max_committed();
        self.reads.insert((id, read), floor);
    }

    /// Linearizable reads: a read sees every entry committed before it began.
    pub(crate) fn on_read_ready(&mut self, now: u64, id: NodeId, read: u64, index: LogIndex) {
        self.reads_ready += 1;
        if let Some(floor) = self.reads.remove(&(id, read)) {
            if index < floor {
                self.violation(now, format!("stale read: {id} read {read} at {index}, but {floor} had committed before it began"));
            }
        }
    }

    /// Every acknowledged proposal is in the committed history.
    pub(crate) fn check_acked_durable(&mut self, now: u64) {
        let mut lost = None;
        for (&index, &(term, cmd)) in &self.acked {
            match self.applied.get(&index) {
                Some(&(t, c, _)) if t == term && c == cmd => {}
                other => {
                    lost = Some((index, term, cmd, other.copied()));
                    break;
                }
            }
        }
        if let Some((index, term, cmd, other)) = lost {
            self.violation(
                now,
                format!(
                    "acknowledged proposal {cmd} at ({index}, {term}) lost: history has {other:?}"
                ),
            );
        }
    }
}
