//! What the driver exchanges with a [`Raft`](super::Raft) besides peer
//! messages: the actions it must carry out, the stored state it restarts
//! from, the errors of its requests, and the status it can observe.

#[cfg(doc)]
use super::Raft;
use super::{
    ConfigError, HardState, Membership, ReplicationState, Role, Snapshot, SnapshotError,
    StateMachine,
};
use super::{Entry, Message, Persist};
use crate::ids::{LogIndex, NodeId, Term};

/// What the driver must do next. Drained with [`Raft::poll_action`].
#[derive(Debug)]
#[cfg_attr(feature = "testkit", derive(Clone))]
pub enum Action<C, O> {
    /// The driver MUST make this durable, in issue order after every earlier
    /// `Persist`, and then call [`Raft::persisted`] with its `seq` (one call
    /// may cover many requests: group commit). If the write fails the server
    /// MUST stop (fail-stop): a failed fsync is never retried.
    Persist(Persist<C>),
    /// The driver SHOULD deliver this to `msg.to`; it MAY drop, delay,
    /// duplicate or reorder it. Everything it depends on is already durable.
    Send(Message<C>),
    /// A committed command was applied to the state machine at `index`;
    /// `output` is what applying it answered. Emitted on every server, in
    /// log order.
    Applied {
        /// The entry's index.
        index: LogIndex,
        /// The entry's term: with `index`, identifies the entry proposed.
        term: Term,
        /// The state machine's answer.
        output: O,
    },
    /// The read registered with [`Raft::read_index`] as `id` is confirmed:
    /// the state machine now reflects every write committed before the read
    /// was registered, so the driver MAY serve it from the state machine now.
    ReadReady {
        /// The read's id.
        id: u64,
        /// The commit index the read observed.
        index: LogIndex,
    },
    /// The read `id` could not be confirmed (leadership was lost); the
    /// driver MUST NOT serve it here and SHOULD retry on the new leader.
    ReadFailed {
        /// The read's id.
        id: u64,
    },
}

/// The [`Action`] type of a `Raft<S>`.
pub type RaftAction<S> = Action<<S as StateMachine>::Command, <S as StateMachine>::Output>;

/// What a restarting server read back from its storage.
#[derive(Clone, Debug)]
pub struct Stored<C> {
    /// Term and vote.
    pub hard_state: HardState,
    /// The latest durable snapshot.
    pub snapshot: Option<Snapshot>,
    /// The durable log; entries at or below the snapshot's index are ignored.
    pub entries: Vec<Entry<C>>,
    /// The configuration of a brand-new cluster, used when neither the
    /// snapshot nor the log holds one. Empty for a server that joins an
    /// existing cluster (it learns the configuration from the leader).
    pub initial_membership: Membership,
}

impl<C> Stored<C> {
    /// The state of a server that has never run.
    #[must_use]
    pub fn fresh(initial_membership: Membership) -> Self {
        Self {
            hard_state: HardState::default(),
            snapshot: None,
            entries: Vec::new(),
            initial_membership,
        }
    }
}

/// Stored state that cannot be a Raft server's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The snapshot could not be loaded into the state machine.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The stored log has a hole after the snapshot.
    #[error("stored log is not contiguous: expected entry {expected}, found {found}")]
    Gap {
        /// The index that should come next.
        expected: LogIndex,
        /// The index found.
        found: LogIndex,
    },
    /// Terms in the stored log go backwards.
    #[error("stored log term goes backwards at {index}")]
    TermRegression {
        /// Where.
        index: LogIndex,
    },
    /// The log holds entries of a term newer than the stored current term.
    #[error("stored log holds term {log_term} newer than the stored current term {term}")]
    TermBehindLog {
        /// The hard state's term.
        term: Term,
        /// The last entry's term.
        log_term: Term,
    },
}

/// A proposal that was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader takes proposals.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this server knows of, if any.
        leader: Option<NodeId>,
    },
    /// The leader is handing over leadership and takes nothing new.
    #[error("leadership transfer in progress")]
    Transferring,
}

/// A leadership transfer that cannot start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// Only the leader can transfer leadership.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this server knows of, if any.
        leader: Option<NodeId>,
    },
    /// The target does not vote.
    #[error("{0} is not a voter")]
    NotVoter(NodeId),
    /// There is no other voter to hand leadership to.
    #[error("no other voter to transfer leadership to")]
    NoTarget,
}

/// A snapshot of one follower's replication, for [`Status`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The follower.
    pub id: NodeId,
    /// Highest index known replicated there.
    pub match_index: LogIndex,
    /// Next index the leader will send.
    pub next_index: LogIndex,
    /// How the leader replicates to it.
    pub state: ReplicationState,
}

/// Counts of what this server's Raft did since it started, for metrics:
/// the driver reads them (plain numbers, no atomics: the core stays free of
/// any metrics library) and exports them as counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RaftCounters {
    /// Real elections started (terms this server campaigned in).
    pub elections: u64,
    /// Pre-vote rounds started.
    pub pre_votes: u64,
    /// Snapshots taken of the state machine.
    pub snapshots_taken: u64,
    /// Their bytes, summed.
    pub snapshot_taken_bytes: u64,
    /// Snapshots received from a leader and installed.
    pub snapshots_installed: u64,
    /// Their bytes, summed.
    pub snapshot_installed_bytes: u64,
}

/// An observability snapshot of a server's Raft state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This server.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: Term,
    /// The leader it follows (itself when leading).
    pub leader: Option<NodeId>,
    /// Whom it voted for in `term`.
    pub voted_for: Option<NodeId>,
    /// Highest index known committed.
    pub commit_index: LogIndex,
    /// Highest index applied to the state machine.
    pub applied_index: LogIndex,
    /// Its last log index.
    pub last_index: LogIndex,
    /// The term of its last entry.
    pub last_term: Term,
    /// Highest index durable in its own storage.
    pub stable_index: LogIndex,
    /// The index its latest snapshot covers.
    pub snapshot_index: LogIndex,
    /// The configuration in force (the latest in its log).
    pub membership: Membership,
    /// When leading: every other member's replication.
    pub peers: Vec<PeerStatus>,
}
