//! Tunables of one Raft server, with their validation.

use crate::ids::NodeId;
use crate::time::Duration;

/// How one server runs Raft. Every server of a cluster should use the same
/// timing values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This server's id.
    pub id: NodeId,
    /// The minimum election timeout; each timeout is drawn uniformly from
    /// `[election_timeout, 2 × election_timeout)`. Also the check-quorum
    /// period and the leader lease that makes voters ignore disruptive
    /// candidates.
    pub election_timeout: Duration,
    /// How often a leader sends heartbeats.
    pub heartbeat_interval: Duration,
    /// At most this many entries in one AppendEntries.
    pub max_append_entries: usize,
    /// At most this many bytes of encoded entries in one AppendEntries
    /// (at least one entry is always sent): with the peer frame limit
    /// twice as large, no run of legal entries makes a frame too large.
    pub max_append_bytes: usize,
    /// At most this many AppendEntries in flight to one follower.
    pub max_inflight: usize,
    /// Take a snapshot once this many entries were applied since the last
    /// one; 0 disables snapshots.
    pub snapshot_threshold: u64,
    /// Keep this many applied entries in memory after a snapshot, so
    /// followers that lag a little get entries rather than a snapshot.
    pub compaction_margin: u64,
    /// The size of one InstallSnapshot chunk.
    pub snapshot_chunk_bytes: usize,
    /// Run a pre-vote round before incrementing the term (Raft thesis §9.6).
    pub pre_vote: bool,
    /// A leader that has not heard from a majority for an election timeout
    /// steps down; voters ignore candidates while they hear from a leader.
    pub check_quorum: bool,
    /// A learner may be promoted once it is within this many entries of the
    /// leader's log.
    pub promote_margin: u64,
}

/// A configuration that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Node id 0 is reserved.
    #[error("node id 0 is reserved; use 1 or more")]
    ZeroId,
    /// Heartbeats must come several times per election timeout.
    #[error(
        "heartbeat interval {heartbeat:?} must be at most a third of the election timeout {election:?}"
    )]
    HeartbeatTooSlow {
        /// The heartbeat interval given.
        heartbeat: Duration,
        /// The election timeout given.
        election: Duration,
    },
    /// A size limit of zero would stop replication.
    #[error("{what} must be at least 1")]
    ZeroLimit {
        /// Which limit.
        what: &'static str,
    },
}

impl Config {
    /// Defaults suited to a LAN: 150 ms election timeout, 50 ms heartbeats.
    #[must_use]
    pub fn new(id: NodeId) -> Self {
        Self {
            id,
            election_timeout: Duration::from_millis(150),
            heartbeat_interval: Duration::from_millis(50),
            max_append_entries: 512,
            max_append_bytes: 512 * 1024,
            max_inflight: 64,
            snapshot_threshold: 50_000,
            compaction_margin: 5_000,
            snapshot_chunk_bytes: 512 * 1024,
            pre_vote: true,
            check_quorum: true,
            promote_margin: 1_000,
        }
    }

    /// Checks that the values can work together.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id.0 == 0 {
            return Err(ConfigError::ZeroId);
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval * 3 > self.election_timeout
        {
            return Err(ConfigError::HeartbeatTooSlow {
                heartbeat: self.heartbeat_interval,
                election: self.election_timeout,
            });
        }
        for (what, v) in [
            ("max_append_entries", self.max_append_entries),
            ("max_append_bytes", self.max_append_bytes),
            ("max_inflight", self.max_inflight),
            ("snapshot_chunk_bytes", self.snapshot_chunk_bytes),
        ] {
            if v == 0 {
                return Err(ConfigError::ZeroLimit { what });
            }
        }
        Ok(())
    }
}
