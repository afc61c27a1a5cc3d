//! The values Raft exchanges with its driver and its peers: log entries,
//! membership, snapshots, hard state, peer messages and the replicated state
//! machine trait.

use crate::ids::{LogIndex, NodeId, Term};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Arc;

/// The deterministic state machine that the log replicates.
///
/// `apply` MUST be a pure function of the state, the command and the index:
/// no clock, no randomness, no IO. Every replica applies the same commands in
/// the same order and must end in the same state.
pub trait StateMachine {
    /// A command carried by the log.
    type Command: Clone + Debug + Serialize + DeserializeOwned;
    /// What applying a command answers (handed to the driver with
    /// [`crate::raft::Action::Applied`]).
    type Output: Debug;

    /// Applies one committed command at `index`.
    fn apply(&mut self, index: LogIndex, command: &Self::Command) -> Self::Output;

    /// Serialises the whole state (as of the last applied index).
    fn snapshot(&self) -> Vec<u8>;

    /// Replaces the whole state with a snapshot made by [`Self::snapshot`].
    ///
    /// # Errors
    /// When the bytes are not a valid snapshot; the state is then unchanged.
    fn restore(&mut self, data: &[u8]) -> Result<(), SnapshotError>;
}

/// A snapshot that could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid snapshot: {reason}")]
pub struct SnapshotError {
    /// What was wrong with it.
    pub reason: &'static str,
}

/// What one log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryPayload<C> {
    /// Appended by every new leader so it can commit entries of its own term.
    Noop,
    /// A command for the state machine.
    Command(C),
    /// A new cluster configuration; it takes effect as soon as it is in the log.
    Membership(Membership),
}

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<C> {
    /// Its position.
    pub index: LogIndex,
    /// The term of the leader that created it.
    pub term: Term,
    /// What it carries.
    pub payload: EntryPayload<C>,
}

/// Which servers vote and which only receive the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Servers counted in elections and commit quorums.
    pub voters: BTreeSet<NodeId>,
    /// Servers that receive the log but do not vote (catching up).
    pub learners: BTreeSet<NodeId>,
    /// Where members can be reached, as far as this configuration knows.
    /// Raft never reads it: it travels in the log so that every server
    /// learns how to reach a member added after it started.
    pub addrs: BTreeMap<NodeId, MemberAddrs>,
}

/// How to reach one server, as the runtime's configuration spells it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAddrs {
    /// Where peers connect (`host:port`).
    pub peer: String,
    /// Where clients connect (`host:port`).
    pub client: String,
    /// Where WebSocket clients connect, if it serves them.
    pub ws: Option<String>,
}

impl Membership {
    /// A configuration of the given voters and no learners.
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Self {
            voters: voters.into_iter().collect(),
            learners: BTreeSet::new(),
            addrs: BTreeMap::new(),
        }
    }

    /// Whether it names no server at all (a server waiting to join).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty() && self.learners.is_empty()
    }

    /// Whether `id` votes.
    #[must_use]
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    /// Whether `id` is a voter or a learner.
    #[must_use]
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }

    /// Every member, voters and learners, in id order.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.union(&self.learners).copied()
    }

    /// How many votes make a majority of the voters.
    #[must_use]
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }
}

/// What a snapshot covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The last log index the snapshot includes.
    pub last_index: LogIndex,
    /// The term of that entry.
    pub last_term: Term,
    /// The configuration in force at `last_index`.
    pub membership: Membership,
}

/// A state machine snapshot with its position in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Where it sits in the log.
    pub meta: SnapshotMeta,
    /// [`StateMachine::snapshot`] bytes; shared, as a leader sends it to many followers.
    pub data: Arc<[u8]>,
}

/// The part of a server's state that must survive restarts besides the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term the server has seen.
    pub term: Term,
    /// Whom it voted for in `term`.
    pub voted_for: Option<NodeId>,
}

/// Numbers the [`Persist`] requests of one server, in the order they were issued.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct PersistSeq(pub u64);

/// One write the driver must make durable.
///
/// The parts MUST be written in this order: hard state, truncation,
/// snapshot, entries. A crash may keep any prefix of the requests issued
/// (and of the parts of one request), but once
/// [`crate::raft::Raft::persisted`] was called with `seq`, this request and
/// every earlier one MUST survive any crash.
///
/// Why this order: a term is durable before any entry of that term; a
/// truncation removes only uncommitted entries that follow a conflicting one,
/// so losing a snapshot written after it loses nothing committed; and
/// entries may start right after a snapshot in the same request, so they
/// must not land before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Persist<C> {
    /// Report this to `persisted` once the write is durable.
    pub seq: PersistSeq,
    /// New term and vote.
    pub hard_state: Option<HardState>,
    /// Discard every stored entry with this index or higher.
    pub truncate_from: Option<LogIndex>,
    /// Append these: contiguous, following the stored log after truncation,
    /// or right after this request's snapshot; entries at or below a stored
    /// snapshot's index may be skipped.
    pub entries: Vec<Entry<C>>,
    /// Store this snapshot (atomically: all or nothing). Once it is durable,
    /// stored entries with index `<= meta.last_index` are no longer needed and
    /// MUST NOT be used at restart.
    pub snapshot: Option<Box<Snapshot>>,
}

/// Why a follower refused an AppendEntries, with hints to find the match fast.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendConflict {
    /// The `prev_index` that did not match.
    pub rejected: LogIndex,
    /// The follower's entry term at `rejected`, or `None` if its log is shorter.
    pub conflict_term: Option<Term>,
    /// The first index of `conflict_term` in the follower's log, or its last index + 1.
    pub hint_index: LogIndex,
}

/// What a peer message asks or answers. The envelope is [`Message`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody<C> {
    /// "Would you vote for me in term `Message::term`?" Changes nobody's state.
    PreVote {
        /// The candidate's last log index.
        last_index: LogIndex,
        /// The term of that entry.
        last_term: Term,
    },
    /// Answer to [`MessageBody::PreVote`].
    PreVoteResponse {
        /// Whether the vote would be granted.
        granted: bool,
    },
    /// RequestVote.
    Vote {
        /// The candidate's last log index.
        last_index: LogIndex,
        /// The term of that entry.
        last_term: Term,
        /// Sent after a leadership transfer: voters ignore their leader lease.
        transfer: bool,
    },
    /// Answer to [`MessageBody::Vote`].
    VoteResponse {
        /// Whether the vote was granted.
        granted: bool,
    },
    /// AppendEntries.
    Append {
        /// The index just before `entries`.
        prev_index: LogIndex,
        /// The term of the entry at `prev_index`.
        prev_term: Term,
        /// New entries, possibly none.
        entries: Vec<Entry<C>>,
        /// The leader's commit index.
        commit: LogIndex,
        /// The leader's heartbeat round (ReadIndex and keepalive confirmation).
        round: u64,
    },
    /// Answer to [`MessageBody::Append`].
    AppendResponse {
        /// `Ok(match_index)`: the follower's log matches the leader's up to it,
        /// durably.
        result: Result<LogIndex, AppendConflict>,
        /// The round of the message answered.
        round: u64,
    },
    /// Leader liveness and commit propagation; carries no entries.
    Heartbeat {
        /// `min(leader commit, follower's match index)`: safe to commit.
        commit: LogIndex,
        /// The leader's heartbeat round.
        round: u64,
    },
    /// Answer to [`MessageBody::Heartbeat`].
    HeartbeatResponse {
        /// The round of the heartbeat answered.
        round: u64,
    },
    /// One chunk of a snapshot.
    InstallSnapshot {
        /// The snapshot being sent.
        meta: Box<SnapshotMeta>,
        /// Where `data` starts within the snapshot bytes.
        offset: u64,
        /// The chunk.
        data: Vec<u8>,
        /// Whether this is the last chunk.
        done: bool,
        /// The leader's heartbeat round.
        round: u64,
    },
    /// Answer to [`MessageBody::InstallSnapshot`].
    InstallSnapshotResponse {
        /// The snapshot the answer is about.
        last_index: LogIndex,
        /// The offset the follower expects next; `None` once it installed the
        /// snapshot (or already had everything it covers).
        next_offset: Option<u64>,
        /// The round of the message answered.
        round: u64,
    },
    /// Leadership transfer: "start an election now".
    TimeoutNow,
}

/// A message between two servers of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message<C> {
    /// The sender.
    pub from: NodeId,
    /// The addressee.
    pub to: NodeId,
    /// The sender's term (for `PreVote`, the term it would campaign in).
    pub term: Term,
    /// What it says.
    pub body: MessageBody<C>,
}

/// A server's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking for pre-votes; has not changed its term.
    PreCandidate,
    /// Asking for votes in a new term.
    Candidate,
    /// Leads its term.
    Leader,
}
