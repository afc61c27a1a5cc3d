//! Raft consensus as a pure state machine (Ongaro's thesis), driven by events.
//!
//! [`Raft`] owns the replicated [`StateMachine`], the in-memory log and every
//! protocol timer, but does no IO and reads no clock. The driver:
//!
//! 1. feeds inputs: [`Raft::handle_message`], [`Raft::handle_timeout`],
//!    [`Raft::persisted`], and requests ([`Raft::propose`],
//!    [`Raft::read_index`], [`Raft::change_membership`],
//!    [`Raft::transfer_leadership`]), each with the current time of the
//!    local monotonic clock;
//! 2. drains [`Raft::poll_action`] until it returns `None`, doing what each
//!    [`Action`] says it MUST;
//! 3. sleeps until [`Raft::poll_timeout`] or the next input.
//!
//! Work is batched on drain: proposals made between two drains go out in one
//! AppendEntries per follower and one [`Persist`] (group commit).
//!
//! Safety rests on the persistence contract: every message that depends on
//! state not yet durable (a vote, a term, an appended entry) is held back
//! until the driver reports [`Raft::persisted`]; a leader counts its own log
//! towards a commit only once it is durable, while it sends entries to its
//! followers in parallel with its own write (thesis §10.2.1).

mod config;
mod durability;
mod election;
mod force;
mod interface;
mod log;
mod marks;
mod membership;
#[cfg(feature = "testkit")]
mod model_hooks;
#[cfg(feature = "testkit")]
pub(crate) use model_hooks::HashWriter;
mod plausible;
mod progress;
mod read;
mod replication;
mod snapshot;
mod types;

pub use config::{Config, ConfigError};
pub use force::{ForceError, ForcedCluster};
pub use interface::{
    Action, PeerStatus, ProposeError, RaftAction, RaftCounters, RestoreError, Status, Stored,
    TransferError,
};
pub use membership::{MembershipChange, MembershipError, Refusal};
pub use plausible::Implausible;
pub use progress::ReplicationState;
pub use read::NotLeader;
pub use types::{
    AppendConflict, Entry, EntryPayload, HardState, MemberAddrs, Membership, Message, MessageBody,
    Persist, PersistSeq, Role, Snapshot, SnapshotError, SnapshotMeta, StateMachine,
};

use crate::ids::{LogIndex, NodeId, Term};
use crate::time::Instant;
use durability::Durability;
use log::RaftLog;
use progress::Progress;
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::collections::{BTreeMap, VecDeque};

/// A read waiting for its heartbeat round to reach a majority.
#[derive(Debug)]
#[cfg_attr(feature = "testkit", derive(Clone))]
struct PendingRead {
    id: u64,
    index: LogIndex,
    round: u64,
}

/// State only a leader has.
#[derive(Debug)]
#[cfg_attr(feature = "testkit", derive(Clone))]
struct LeaderState {
    progress: BTreeMap<NodeId, Progress>,
    /// The current heartbeat round; every message to followers carries it.
    round: u64,
    /// A new round must be broadcast at the next flush.
    round_due: bool,
    /// New entries must be sent at the next flush.
    append_due: bool,
    /// The index of this term's first entry: reads and configuration
    /// changes wait until it commits.
    term_start: LogIndex,
    /// Reads registered before `term_start` committed.
    reads_before_start: Vec<u64>,
    /// Reads waiting for their round.
    reads: VecDeque<PendingRead>,
    /// A leadership transfer in progress: target and give-up time.
    transfer: Option<(NodeId, Instant)>,
    heartbeat_deadline: Instant,
    check_quorum_deadline: Instant,
}

/// A snapshot being received in chunks.
#[derive(Debug)]
#[cfg_attr(feature = "testkit", derive(Clone))]
struct IncomingSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// One Raft server. See the [module documentation](self) for how to drive
/// it, and the [crate documentation](crate) for a compiled driver loop; in
/// short:
///
/// ```
/// use distlock_core::ids::NodeId;
/// use distlock_core::locks::LockState;
/// use distlock_core::raft::{Config, Membership, Raft, Stored};
/// use distlock_core::time::Instant;
///
/// let me = NodeId(1);
/// let stored = Stored::fresh(Membership::with_voters([me]));
/// let raft = Raft::new(Config::new(me), LockState::default(), stored, 42, Instant::ZERO)?;
/// // Inputs: handle_timeout, handle_message, persisted, propose, read_index.
/// // Outputs: drain poll_action after each input; arm a timer at poll_timeout.
/// assert!(raft.poll_timeout().is_some());
/// # Ok::<(), distlock_core::raft::RestoreError>(())
/// ```
pub struct Raft<S: StateMachine> {
    cfg: Config,
    rng: ChaCha8Rng,
    sm: S,
    now: Instant,

    term: Term,
    voted_for: Option<NodeId>,
    log: RaftLog<S::Command>,
    /// The latest snapshot, sent to followers that lag behind the log.
    snapshot: Option<Snapshot>,
    /// Membership in force at the log's base (compaction point).
    base_membership: Membership,
    /// Membership in force: the latest in the log.
    membership: Membership,
    /// The index of the entry that set `membership`.
    membership_index: LogIndex,

    role: Role,
    leader: Option<NodeId>,
    commit: LogIndex,
    applied: LogIndex,

    election_deadline: Instant,
    /// Last time the current leader was heard from.
    leader_contact: Option<Instant>,
    votes: BTreeMap<NodeId, bool>,
    leader_state: Option<LeaderState>,
    incoming_snapshot: Option<IncomingSnapshot>,
    /// Reads confirmed by a quorum, waiting for `applied` to reach them.
    ready_reads: VecDeque<(u64, LogIndex)>,

    /// What of the log and hard state is durable, and the messages that
    /// wait for it.
    durability: Durability<S::Command>,

    actions: VecDeque<RaftAction<S>>,
    counters: RaftCounters,
}

impl<S: StateMachine> Raft<S> {
    /// Starts a server from what its storage holds (or [`Stored::fresh`]).
    /// `rng_seed` seeds the election-timeout jitter; `now` is the local clock.
    ///
    /// # Errors
    /// When the configuration is invalid or the stored state is inconsistent.
    pub fn new(
        cfg: Config,
        mut sm: S,
        stored: Stored<S::Command>,
        rng_seed: u64,
        now: Instant,
    ) -> Result<Self, RestoreError> {
        cfg.validate()?;
        let (mut log, base_membership) = match &stored.snapshot {
            Some(snap) => {
                sm.restore(&snap.data)?;
                (
                    RaftLog::new(snap.meta.last_index, snap.meta.last_term),
                    snap.meta.membership.clone(),
                )
            }
            None => (
                RaftLog::new(LogIndex(0), Term(0)),
                stored.initial_membership.clone(),
            ),
        };
        for entry in stored.entries {
            if entry.index <= log.base_index() {
                continue;
            }
            let expected = log.last_index().next();
            if entry.index != expected {
                return Err(RestoreError::Gap {
                    expected,
                    found: entry.index,
                });
            }
            if entry.term < log.last_term() {
                return Err(RestoreError::TermRegression { index: entry.index });
            }
            log.append(entry);
        }
        if log.last_term() > stored.hard_state.term {
            return Err(RestoreError::TermBehindLog {
                term: stored.hard_state.term,
                log_term: log.last_term(),
            });
        }
        let base = log.base_index();
        let last = log.last_index();
        let mut raft = Self {
            rng: ChaCha8Rng::seed_from_u64(rng_seed),
            sm,
            now,
            term: stored.hard_state.term,
            voted_for: stored.hard_state.voted_for,
            log,
            snapshot: stored.snapshot,
            membership: base_membership.clone(),
            base_membership,
            membership_index: base,
            role: Role::Follower,
            leader: None,
            commit: base,
            applied: base,
            election_deadline: now,
            leader_contact: None,
            votes: BTreeMap::new(),
            leader_state: None,
            incoming_snapshot: None,
            ready_reads: VecDeque::new(),
            durability: Durability::new(last),
            actions: VecDeque::new(),
            counters: RaftCounters::default(),
            cfg,
        };
        raft.recompute_membership();
        raft.reset_election_deadline();
        Ok(raft)
    }

    // ---- getters -------------------------------------------------------

    /// This server's id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// Its settings.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Its current term.
    #[must_use]
    pub fn term(&self) -> Term {
        self.term
    }

    /// Its role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether it leads its term.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// The leader it knows of (itself when leading).
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Highest index known committed.
    #[must_use]
    pub fn commit_index(&self) -> LogIndex {
        self.commit
    }

    /// Highest index applied to the state machine.
    #[must_use]
    pub fn applied_index(&self) -> LogIndex {
        self.applied
    }

    /// Its last log index.
    #[must_use]
    pub fn last_index(&self) -> LogIndex {
        self.log.last_index()
    }

    /// The term of the entry at `index`, while the log (or its compaction
    /// point) still knows it.
    #[must_use]
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        self.log.term(index)
    }

    /// The configuration in force.
    #[must_use]
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The configuration in force at the commit index: the newest one
    /// known committed. It differs from [`Self::membership`] while a
    /// newer configuration sits uncommitted in the log, which a new
    /// leader may yet overwrite: the servers it names are members until
    /// then, whatever the uncommitted one says.
    #[must_use]
    pub fn committed_membership(&self) -> Membership {
        self.membership_at(self.commit.max(self.log.base_index()))
    }

    /// The log index of the configuration in force (the snapshot's when
    /// it comes from a snapshot or from the initial configuration). It
    /// changes whenever the configuration does.
    #[must_use]
    pub fn membership_index(&self) -> LogIndex {
        self.membership_index
    }

    /// Whether this leader has committed an entry of its own term (reads,
    /// lease acknowledgements and configuration changes wait for it).
    #[must_use]
    pub fn has_committed_own_term(&self) -> bool {
        self.leader_state
            .as_ref()
            .is_some_and(|ls| self.commit >= ls.term_start)
    }

    /// The replicated state machine (for reads confirmed by
    /// [`Action::ReadReady`]).
    #[must_use]
    pub fn state_machine(&self) -> &S {
        &self.sm
    }

    /// What this server did since it started (elections, snapshots), for
    /// metrics.
    #[must_use]
    pub fn counters(&self) -> &RaftCounters {
        &self.counters
    }

    /// The highest index known replicated on each other member; empty
    /// unless this server leads. Unlike [`Raft::status`] it allocates
    /// nothing.
    pub fn peer_match_indexes(&self) -> impl Iterator<Item = (NodeId, LogIndex)> + '_ {
        self.leader_state
            .iter()
            .flat_map(|ls| ls.progress.iter().map(|(&id, pr)| (id, pr.match_index)))
    }

    /// An observability snapshot.
    #[must_use]
    pub fn status(&self) -> Status {
        let peers = self.leader_state.as_ref().map_or_else(Vec::new, |ls| {
            ls.progress
                .iter()
                .map(|(&id, pr)| PeerStatus {
                    id,
                    match_index: pr.match_index,
                    next_index: pr.next_index,
                    state: pr.state,
                })
                .collect()
        });
        Status {
            id: self.cfg.id,
            role: self.role,
            term: self.term,
            leader: self.leader,
            voted_for: self.voted_for,
            commit_index: self.commit,
            applied_index: self.applied,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            stable_index: self.durability.stable_index(),
            snapshot_index: self
                .snapshot
                .as_ref()
                .map_or(LogIndex(0), |s| s.meta.last_index),
            membership: self.membership.clone(),
            peers,
        }
    }

    // ---- driver API ----------------------------------------------------

    /// The next thing to do, or `None` when there is nothing left. Call it
    /// until `None` after every input; pending work (replication, the next
    /// persist, applying committed entries) is prepared here, batched over
    /// every input since the previous drain.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<RaftAction<S>> {
        if self.actions.is_empty() {
            let before = self.marks();
            self.flush();
            self.check_marks(before);
        }
        self.actions.pop_front()
    }

    /// When [`Raft::handle_timeout`] must be called next (local clock).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.leader_state {
            Some(ls) => {
                let mut t = ls.heartbeat_deadline.min(ls.check_quorum_deadline);
                if let Some((_, until)) = ls.transfer {
                    t = t.min(until);
                }
                Some(t)
            }
            None => Some(self.election_deadline),
        }
    }

    /// Fires every timer due at `now`. Spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let before = self.marks();
        self.advance_time(now);
        if self.leader_state.is_some() {
            self.leader_tick();
        } else if self.now >= self.election_deadline {
            self.election_timeout_fired();
        }
        self.check_marks(before);
    }

    /// Reports that every [`Persist`] up to and including `seq` is durable.
    pub fn persisted(&mut self, seq: PersistSeq, now: Instant) {
        let before = self.marks();
        self.persisted_inner(seq, now);
        self.check_marks(before);
    }

    fn persisted_inner(&mut self, seq: PersistSeq, now: Instant) {
        self.advance_time(now);
        let Some(released) = self.durability.persisted(seq, self.log.last_index()) else {
            return;
        };
        for msg in released {
            // A message built in an older term is stale: its premises may
            // have been overwritten since (a later leader truncated the log).
            if msg.term >= self.term || matches!(msg.body, MessageBody::PreVote { .. }) {
                self.actions.push_back(Action::Send(msg));
            }
        }
        match self.role {
            Role::Leader => self.maybe_commit(),
            // A single voter wins as soon as its own vote is durable.
            Role::Candidate if self.tally() == Some(true) => self.become_leader(),
            _ => {}
        }
    }

    /// Handles a message from a peer.
    pub fn handle_message(&mut self, msg: Message<S::Command>, now: Instant) {
        self.advance_time(now);
        if msg.to != self.cfg.id || msg.from == self.cfg.id {
            return;
        }
        // A message no correct server sends (a hostile or broken peer)
        // changes nothing: above all, a term near 2^64 is never adopted.
        if plausible::check(&msg).is_err() {
            return;
        }
        let before = self.marks();
        self.step(msg);
        self.check_marks(before);
    }

    /// Appends a command to the log. Returns the (index, term) that
    /// [`Action::Applied`] will report once it commits; if a different term
    /// is ever applied at that index, the proposal was lost.
    ///
    /// # Errors
    /// When this server is not the leader or is handing leadership over.
    pub fn propose(&mut self, command: S::Command) -> Result<(LogIndex, Term), ProposeError> {
        let Some(ls) = &self.leader_state else {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        };
        if ls.transfer.is_some() {
            return Err(ProposeError::Transferring);
        }
        let index = self.append_own(EntryPayload::Command(command));
        debug_assert!(index > self.commit && self.log.last_index() == index);
        Ok((index, self.term))
    }

    // ---- internals shared by the submodules -------------------------------

    fn advance_time(&mut self, now: Instant) {
        debug_assert!(
            now >= self.now,
            "time went backwards: {now:?} < {:?}",
            self.now
        );
        self.now = self.now.max(now);
    }

    fn reset_election_deadline(&mut self) {
        let base = self.cfg.election_timeout;
        let micros = u64::try_from(base.as_micros()).unwrap_or(u64::MAX).max(1);
        let jitter = self.rng.next_u64() % micros;
        self.election_deadline = self.now + base + crate::time::Duration::from_micros(jitter);
    }

    /// Appends an entry of this leader's term and schedules its replication.
    fn append_own(&mut self, payload: EntryPayload<S::Command>) -> LogIndex {
        let index = self.log.last_index().next();
        self.log.append(Entry {
            index,
            term: self.term,
            payload,
        });
        self.mark_entries_unsaved(index);
        if let Some(ls) = &mut self.leader_state {
            ls.append_due = true;
        }
        index
    }

    fn mark_entries_unsaved(&mut self, from: LogIndex) {
        self.durability.mark_entries(from);
    }

    /// Removes entries `>= from` from memory and, if they were handed to
    /// storage, from storage too.
    fn truncate_log(&mut self, from: LogIndex) {
        debug_assert!(
            self.role != Role::Leader,
            "a leader truncated its own log at {from:?}"
        );
        debug_assert!(
            from > self.commit,
            "truncated committed entries from {from:?}"
        );
        self.log.truncate(from);
        self.durability.truncate(from);
        if self.membership_index >= from {
            self.recompute_membership();
        }
    }

    /// Queues a message. `durable` messages state something that must be on
    /// disk before anyone hears it, so they wait for the current persist.
    fn send(&mut self, to: NodeId, body: MessageBody<S::Command>, durable: bool) {
        self.send_with_term(to, self.term, body, durable);
    }

    fn send_with_term(
        &mut self,
        to: NodeId,
        term: Term,
        body: MessageBody<S::Command>,
        durable: bool,
    ) {
        let msg = Message {
            from: self.cfg.id,
            to,
            term,
            body,
        };
        if let Some(msg) = self.durability.send_or_hold(msg, durable) {
            self.actions.push_back(Action::Send(msg));
        }
    }

    /// Prepares everything batched since the last drain.
    fn flush(&mut self) {
        self.apply_committed();
        if self.leader_state.is_some() {
            self.leader_flush();
        }
        self.flush_persist();
        self.release_ready_reads();
    }

    fn flush_persist(&mut self) {
        let hard_state = HardState {
            term: self.term,
            voted_for: self.voted_for,
        };
        if let Some(persist) = self.durability.take_persist(&self.log, hard_state) {
            self.actions.push_back(Action::Persist(persist));
        }
    }

    /// Applies committed entries, then takes a snapshot if one is due.
    fn apply_committed(&mut self) {
        while self.applied < self.commit {
            let index = self.applied.next();
            let Some(entry) = self.log.entry(index) else {
                // Compacted away: only possible if a snapshot covered it.
                self.applied = index;
                continue;
            };
            let term = entry.term;
            if let EntryPayload::Command(cmd) = &entry.payload {
                let output = self.sm.apply(index, cmd);
                self.actions.push_back(Action::Applied {
                    index,
                    term,
                    output,
                });
            }
            self.applied = index;
        }
        debug_assert_eq!(
            self.applied, self.commit,
            "committed entries left unapplied"
        );
        self.maybe_snapshot();
        if self.role == Role::Leader
            && !self.membership.is_voter(self.cfg.id)
            && self.commit >= self.membership_index
        {
            self.step_down_removed();
        }
    }

    /// Replaces `membership` with the latest configuration in the log.
    fn recompute_membership(&mut self) {
        let latest = self.log.memberships().last().map(|(i, m)| (i, m.clone()));
        match latest {
            Some((index, m)) => {
                self.membership = m;
                self.membership_index = index;
            }
            None => {
                self.membership = self.base_membership.clone();
                self.membership_index = self.log.base_index();
            }
        }
        self.sync_progress_with_membership();
    }

    /// The configuration in force at `index` (which must be at or after the
    /// log's base).
    fn membership_at(&self, index: LogIndex) -> Membership {
        self.log
            .memberships()
            .take_while(|(i, _)| *i <= index)
            .last()
            .map_or_else(|| self.base_membership.clone(), |(_, m)| m.clone())
    }

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        debug_assert!(term >= self.term, "stepped down to an older term");
        if term > self.term {
            self.term = term;
            self.voted_for = None;
            self.durability.mark_hard_state();
        }
        if self.role == Role::Leader {
            self.abort_leadership();
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.leader_contact = leader.map(|_| self.now);
        self.votes.clear();
        self.reset_election_deadline();
    }

    fn quorum_max(&self, mut values: Vec<LogIndex>) -> Option<LogIndex> {
        let q = self.membership.quorum();
        if values.len() < q {
            return None;
        }
        values.sort_unstable_by(|a, b| b.cmp(a));
        Some(values[q - 1])
    }
}

impl<S: StateMachine> std::fmt::Debug for Raft<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Raft")
            .field("id", &self.cfg.id)
            .field("role", &self.role)
            .field("term", &self.term)
            .field("commit", &self.commit)
            .field("last_index", &self.log.last_index())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
