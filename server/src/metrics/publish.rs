//! The node task's side of metrics and operator logs: after each round of
//! work it notices what changed in the core (leader, configuration,
//! snapshots, expired sessions) and logs it once, and every
//! [`super::PUBLISH_EVERY`] it copies the core's numbers into the atomics
//! that `/metrics` and `/readyz` read.

use super::Metrics;
use distlock_core::ids::{LogIndex, NodeId};
use distlock_core::node::{Node, Notice};
use distlock_core::raft::{RaftCounters, Role};
use prometheus::IntCounter;
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::time::Instant;

/// What the node task last saw, to log changes once.
pub(crate) struct Publisher {
    metrics: Arc<Metrics>,
    due: Instant,
    leader: Option<NodeId>,
    membership_index: Option<LogIndex>,
    members: BTreeSet<NodeId>,
    raft: RaftCounters,
}

/// Raises `counter` to `value` (the core's counts only grow; only the
/// node task writes these).
fn raise(counter: &IntCounter, value: u64) {
    let now = counter.get();
    if value > now {
        counter.inc_by(value - now);
    }
}

fn as_gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Publisher {
    pub(crate) fn new(metrics: Arc<Metrics>, node: &Node) -> Self {
        let mut p = Self {
            metrics,
            due: Instant::now(),
            leader: None,
            membership_index: None,
            members: BTreeSet::new(),
            raft: *node.raft().counters(),
        };
        p.members = members_of(node);
        p.membership_index = Some(node.raft().membership_index());
        p
    }

    /// When the next copy is due (the node task wakes up for it).
    pub(crate) fn due(&self) -> Instant {
        self.due
    }

    /// Called after every round of the node task: logs what changed, and
    /// copies the numbers in when due (then true). A handful of
    /// comparisons unless something happened.
    pub(crate) fn after_round(&mut self, node: &mut Node) -> bool {
        let raft = node.raft();
        let leader = raft.leader();
        if leader != self.leader {
            if let Some(id) = leader {
                tracing::info!(
                    event = "leader_changed",
                    leader = id.0,
                    previous = self.leader.map(|p| p.0),
                    term = raft.term().0,
                    "leader changed: node {} leads term {}",
                    id.0,
                    raft.term().0
                );
            } else {
                tracing::info!(
                    event = "leader_lost",
                    previous = self.leader.map(|p| p.0),
                    term = raft.term().0,
                    "no leader known"
                );
            }
            self.metrics.leader_changes.inc();
            self.leader = leader;
        }
        if Some(raft.membership_index()) != self.membership_index {
            self.membership_index = Some(raft.membership_index());
            let now = members_of(node);
            for id in now.difference(&self.members) {
                tracing::info!(
                    event = "member_added",
                    member = id.0,
                    index = raft.membership_index().0,
                    "member {} added",
                    id.0
                );
            }
            for id in self.members.difference(&now) {
                tracing::info!(
                    event = "member_removed",
                    member = id.0,
                    index = raft.membership_index().0,
                    "member {} removed",
                    id.0
                );
            }
            self.members = now;
        }
        let counters = *raft.counters();
        if counters != self.raft {
            self.log_snapshots(&counters);
            self.raft = counters;
        }
        while let Some(notice) = node.poll_notice() {
            match notice {
                Notice::SessionExpired { session, locks } => {
                    let held: Vec<String> = locks
                        .iter()
                        .map(|(lock, token)| format!("{lock}@{}", token.0))
                        .collect();
                    tracing::info!(
                        event = "session_expired",
                        session = session.0,
                        locks = held.join(","),
                        "session {} expired, losing {} lock(s)",
                        session.0,
                        locks.len()
                    );
                }
            }
        }
        let now = Instant::now();
        if now < self.due {
            return false;
        }
        self.due = now + super::PUBLISH_EVERY;
        self.copy(node);
        true
    }

    fn log_snapshots(&self, c: &RaftCounters) {
        if c.snapshots_taken > self.raft.snapshots_taken {
            tracing::info!(
                event = "snapshot_taken",
                bytes = c.snapshot_taken_bytes - self.raft.snapshot_taken_bytes,
                "snapshot taken"
            );
        }
        if c.snapshots_installed > self.raft.snapshots_installed {
            tracing::info!(
                event = "snapshot_installed",
                bytes = c.snapshot_installed_bytes - self.raft.snapshot_installed_bytes,
                "snapshot received from the leader and installed"
            );
        }
    }

    /// Copies the core's numbers into the metrics.
    fn copy(&self, node: &Node) {
        let m = &self.metrics;
        let raft = node.raft();
        m.term.set(as_gauge(raft.term().0));
        let role = match raft.role() {
            Role::Follower => 0,
            Role::PreCandidate => 1,
            Role::Candidate => 2,
            Role::Leader => 3,
        };
        for (i, g) in m.role.iter().enumerate() {
            g.set(i64::from(i == role));
        }
        m.leader_id.set(as_gauge(raft.leader().map_or(0, |l| l.0)));
        m.commit_index.set(as_gauge(raft.commit_index().0));
        m.applied_index.set(as_gauge(raft.applied_index().0));
        let last = raft.last_index().0;
        m.last_index.set(as_gauge(last));
        m.members.set(as_gauge(self.members.len() as u64));
        m.removed.set(i64::from(node.is_removed()));
        for (peer, matched) in raft.peer_match_indexes() {
            // Labels are looked up here, every PUBLISH_EVERY, not per request.
            m.peer_lag
                .with_label_values(&[&peer.0.to_string()])
                .set(as_gauge(last.saturating_sub(matched.0)));
        }
        if !raft.is_leader() {
            m.peer_lag.reset();
        }
        let c = raft.counters();
        raise(&m.elections, c.elections);
        raise(&m.pre_votes, c.pre_votes);
        raise(&m.snapshots_taken, c.snapshots_taken);
        raise(&m.snapshot_taken_bytes, c.snapshot_taken_bytes);
        raise(&m.snapshots_installed, c.snapshots_installed);
        raise(&m.snapshot_installed_bytes, c.snapshot_installed_bytes);
        let l = node.lock_counters();
        raise(&m.grants, l.grants);
        raise(&m.releases, l.releases);
        raise(&m.expiries, l.expiries);
        raise(&m.timeouts, l.timeouts);
        raise(&m.sessions_opened, l.sessions_opened);
        raise(&m.sessions_closed, l.sessions_closed);
        raise(&m.sessions_expired, l.sessions_expired);
        raise(&m.lock_delays, l.lock_delays);
        m.core_histograms.wait.set(&l.wait_time);
        m.core_histograms.handoff.set(&l.handoff);
        if m.census.wanted() {
            let c = raft.state_machine().census();
            m.sessions.set(as_gauge(c.sessions));
            m.locks_held[0].set(as_gauge(c.exclusive));
            m.locks_held[1].set(as_gauge(c.shared));
            m.locks_held[2].set(as_gauge(c.semaphore));
            m.waiters.set(as_gauge(c.waiters));
            m.lock_delays_active.set(as_gauge(c.delayed));
            m.census.done();
        }
    }
}

fn members_of(node: &Node) -> BTreeSet<NodeId> {
    let m = node.raft().membership();
    m.voters.iter().chain(&m.learners).copied().collect()
}
