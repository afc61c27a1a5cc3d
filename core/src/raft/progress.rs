//! What a leader knows about each follower's log, and how much it may send
//! it before hearing back (flow control).

use crate::ids::LogIndex;
use crate::time::Instant;
use std::collections::VecDeque;

/// How the leader currently replicates to one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicationState {
    /// Looking for the point where the logs match: one AppendEntries at a time.
    Probe,
    /// Logs match: stream entries, up to the in-flight limit.
    Replicate,
    /// Sending a snapshot that ends at `last_index`.
    Snapshot {
        /// The snapshot's last index.
        last_index: u64,
    },
}

#[derive(Debug)]
#[cfg_attr(feature = "testkit", derive(Clone))]
pub(crate) struct Progress {
    /// Highest index known durably replicated on the follower.
    pub(crate) match_index: LogIndex,
    /// Next index to send.
    pub(crate) next_index: LogIndex,
    pub(crate) state: ReplicationState,
    /// In `Probe`: an AppendEntries is outstanding; wait for its answer or
    /// the next heartbeat before sending another.
    pub(crate) probe_sent: bool,
    /// In `Replicate`: the last index of every AppendEntries in flight.
    pub(crate) inflight: VecDeque<LogIndex>,
    /// In `Snapshot`: the next byte offset to send, and whether a chunk is
    /// outstanding.
    pub(crate) snapshot_offset: u64,
    pub(crate) snapshot_chunk_sent: bool,
    /// When the follower last answered this leader (check-quorum and
    /// membership changes count the voters that answered recently).
    pub(crate) heard_at: Option<Instant>,
    /// The highest heartbeat round the follower acknowledged in this term.
    pub(crate) round_acked: u64,
    /// The highest commit index already sent to the follower.
    pub(crate) commit_sent: LogIndex,
    /// `match_index` at the previous heartbeat tick, to notice lost appends.
    pub(crate) match_at_tick: LogIndex,
}

impl Progress {
    pub(crate) fn new(next_index: LogIndex) -> Self {
        Self {
            match_index: LogIndex(0),
            next_index,
            state: ReplicationState::Probe,
            probe_sent: false,
            inflight: VecDeque::new(),
            snapshot_offset: 0,
            snapshot_chunk_sent: false,
            heard_at: None,
            round_acked: 0,
            commit_sent: LogIndex(0),
            match_at_tick: LogIndex(0),
        }
    }

    pub(crate) fn become_probe(&mut self) {
        self.state = ReplicationState::Probe;
        self.probe_sent = false;
        self.inflight.clear();
        self.next_index = self.next_index.max(self.match_index.next());
    }

    pub(crate) fn become_replicate(&mut self) {
        self.state = ReplicationState::Replicate;
        self.probe_sent = false;
        self.inflight.clear();
        self.next_index = self.match_index.next();
    }

    pub(crate) fn become_snapshot(&mut self, last_index: LogIndex) {
        self.state = ReplicationState::Snapshot {
            last_index: last_index.0,
        };
        self.inflight.clear();
        self.probe_sent = false;
        self.snapshot_offset = 0;
        self.snapshot_chunk_sent = false;
    }

    /// Records a successful append up to `index`; returns whether it was news.
    pub(crate) fn acknowledge(&mut self, index: LogIndex) -> bool {
        while self.inflight.front().is_some_and(|&i| i <= index) {
            self.inflight.pop_front();
        }
        if index > self.match_index {
            self.match_index = index;
            self.next_index = self.next_index.max(index.next());
            true
        } else {
            false
        }
    }

    /// The follower answered, at `now`, acknowledging heartbeat `round`.
    pub(crate) fn heard(&mut self, round: u64, now: Instant) {
        self.heard_at = Some(now);
        self.round_acked = self.round_acked.max(round);
    }

    /// Called every heartbeat interval. A follower that acknowledged nothing
    /// for a whole interval while appends were in flight has probably lost
    /// them (or restarted): probe again from its match index.
    pub(crate) fn on_heartbeat_tick(&mut self) {
        self.probe_sent = false;
        self.snapshot_chunk_sent = false;
        if self.state == ReplicationState::Replicate
            && !self.inflight.is_empty()
            && self.match_index == self.match_at_tick
        {
            self.become_probe();
            self.next_index = self.match_index.next();
        }
        self.match_at_tick = self.match_index;
    }

    /// Whether an AppendEntries with entries may be sent now.
    pub(crate) fn can_send(&self, max_inflight: usize) -> bool {
        match self.state {
            ReplicationState::Probe => !self.probe_sent,
            ReplicationState::Replicate => self.inflight.len() < max_inflight,
            ReplicationState::Snapshot { .. } => false,
        }
    }
}
