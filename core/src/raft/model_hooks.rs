//! Hooks for explicit-state model checking (the `testkit` feature): a
//! server can be cloned, to branch from one state into each of its
//! successors, and fingerprinted, to recognise a state already explored.
//!
//! The fingerprint covers every field that can change what the server does
//! next; it leaves out only the counters kept for metrics. It is streamed
//! through each field's `Debug` form: every collection here is ordered
//! (`BTreeMap`, `Vec`, `VecDeque`), so equal states print alike.

use super::{Raft, StateMachine};
use std::fmt::Write as _;
use std::hash::Hasher;

impl<S> Clone for Raft<S>
where
    S: StateMachine + Clone,
    S::Output: Clone,
{
    fn clone(&self) -> Self {
        Self {
            cfg: self.cfg.clone(),
            rng: self.rng.clone(),
            sm: self.sm.clone(),
            now: self.now,
            term: self.term,
            voted_for: self.voted_for,
            log: self.log.clone(),
            snapshot: self.snapshot.clone(),
            base_membership: self.base_membership.clone(),
            membership: self.membership.clone(),
            membership_index: self.membership_index,
            role: self.role,
            leader: self.leader,
            commit: self.commit,
            applied: self.applied,
            election_deadline: self.election_deadline,
            leader_contact: self.leader_contact,
            votes: self.votes.clone(),
            leader_state: self.leader_state.clone(),
            incoming_snapshot: self.incoming_snapshot.clone(),
            ready_reads: self.ready_reads.clone(),
            durability: self.durability.clone(),
            actions: self.actions.clone(),
            counters: self.counters,
        }
    }
}

/// Feeds formatted text into a hasher without building a string.
pub(crate) struct HashWriter<'a, H: Hasher>(pub(crate) &'a mut H);

impl<H: Hasher> std::fmt::Write for HashWriter<'_, H> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.write(s.as_bytes());
        Ok(())
    }
}

impl<S> Raft<S>
where
    S: StateMachine + std::fmt::Debug,
{
    /// Feeds everything that decides this server's future behaviour into
    /// `h`: two servers with equal fingerprints act alike on equal inputs
    /// (up to hash collisions). Only the metrics counters are left out.
    pub fn fingerprint<H: Hasher>(&self, h: &mut H) {
        // Destructured so that a new field does not compile until it is
        // either hashed or deliberately left out here.
        let Self {
            cfg,
            rng,
            sm,
            now,
            term,
            voted_for,
            log,
            snapshot,
            base_membership,
            membership,
            membership_index,
            role,
            leader,
            commit,
            applied,
            election_deadline,
            leader_contact,
            votes,
            leader_state,
            incoming_snapshot,
            ready_reads,
            durability,
            actions,
            counters: _,
        } = self;
        h.write_u128(rng.get_word_pos());
        h.write(&rng.get_seed());
        // The state machine is left out: `apply` is a pure function
        // (StateMachine's contract), so it is determined by the snapshot
        // and the entries applied after it, which are hashed. Entries are
        // hashed through their encoding, much cheaper than `Debug`.
        let _ = sm;
        let mut bytes = Vec::new();
        let mut index = log.first_index();
        while let Some(entry) = log.entry(index) {
            bytes = postcard::to_extend(entry, bytes).unwrap_or_default();
            index = index.next();
        }
        h.write(&bytes);
        let _ = write!(
            HashWriter(h),
            "{cfg:?}{now:?}{term:?}{voted_for:?}{:?}{:?}{snapshot:?}{base_membership:?}\
             {membership:?}{membership_index:?}{role:?}{leader:?}{commit:?}{applied:?}\
             {election_deadline:?}{leader_contact:?}{votes:?}{leader_state:?}\
             {incoming_snapshot:?}{ready_reads:?}{durability:?}{actions:?}",
            log.base_index(),
            log.term(log.base_index()),
        );
    }
}

impl<S: StateMachine> Raft<S> {
    /// The log entry at `index`, while the in-memory log holds it (not
    /// compacted into a snapshot), for checkers comparing servers' logs.
    #[must_use]
    pub fn entry(&self, index: crate::ids::LogIndex) -> Option<&super::Entry<S::Command>> {
        self.log.entry(index)
    }

    /// The index the in-memory log starts after (its snapshot's, or 0).
    #[must_use]
    pub fn log_base(&self) -> crate::ids::LogIndex {
        self.log.base_index()
    }

    /// The highest index durable in this server's own storage, as Raft
    /// knows it (without building a whole [`super::Status`]).
    #[must_use]
    pub fn stable_index(&self) -> crate::ids::LogIndex {
        self.durability.stable_index()
    }
}
