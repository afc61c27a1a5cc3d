//! Read-only reports for clients and the command line: a lock's status and
//! the cluster's status.
//!
//! They are printed as JSON by `distlock status --json` (ARCHITECTURE.md §12), so
//! their field names are relied upon by scripts: `leader`, `term`,
//! `commit_index`, `members` (`id`, `client_addr`, `ws_addr`, `role`,
//! `match_index`), and for a lock `mode`, `holders` (`session`, `token`)
//! and `waiters`. Ids, terms, indexes and tokens are plain numbers in JSON.

use crate::ids::{LogIndex, NodeId, Term};
use crate::locks::{FencingToken, LockDelay, LockKind, LockStatus, Mode, SessionId, WaiterInfo};
use serde::{Deserialize, Serialize};

/// A lock's holders, waiters and lock-delay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockStatusView {
    /// How it is held; `None` if nobody holds it (but sessions wait, or it
    /// is in lock-delay).
    pub mode: Option<Mode>,
    /// Reader-writer or a semaphore of some number of permits.
    pub kind: LockKind,
    /// Its holders, by session id.
    pub holders: Vec<HolderView>,
    /// Its queue, first in line first.
    pub waiters: Vec<WaiterView>,
    /// The lock-delay in force, if any: the lock grants nobody until it ends.
    pub delay: Option<LockDelay>,
}

/// A holder of a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderView {
    /// The holding session.
    pub session: SessionId,
    /// Its grant's fencing token.
    pub token: FencingToken,
}

/// A queued acquire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaiterView {
    /// The waiting session.
    pub session: SessionId,
    /// The mode it asked for.
    pub mode: Mode,
    /// How long it may wait in all, in milliseconds; `None` for ever.
    pub timeout_ms: Option<u64>,
}

impl From<LockStatus> for LockStatusView {
    fn from(status: LockStatus) -> Self {
        Self {
            mode: status.mode,
            kind: status.kind,
            holders: status
                .holders
                .into_iter()
                .map(|(session, token)| HolderView { session, token })
                .collect(),
            waiters: status.waiters.iter().map(WaiterView::from).collect(),
            delay: status.delay,
        }
    }
}

impl From<&WaiterInfo> for WaiterView {
    fn from(w: &WaiterInfo) -> Self {
        Self {
            session: w.session,
            mode: w.mode,
            timeout_ms: w.timeout_ms,
        }
    }
}

/// The cluster as one server sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatusView {
    /// The leader's node id, or `None` (JSON `null`) when none is known.
    pub leader: Option<NodeId>,
    /// The reporting server's current term.
    pub term: Term,
    /// The reporting server's commit index.
    pub commit_index: LogIndex,
    /// Every member (voters and learners), by id.
    pub members: Vec<MemberStatus>,
}

/// A member of the cluster in a [`ClusterStatusView`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Its node id.
    pub id: NodeId,
    /// Its client address (`host:port`, TCP).
    pub client_addr: String,
    /// Its WebSocket address (`host:port`), if it serves WebSocket.
    pub ws_addr: Option<String>,
    /// Its part in the cluster.
    pub role: MemberRole,
    /// The highest log index known to be replicated on it; reported by the
    /// leader only (`None` from other servers).
    pub match_index: Option<LogIndex>,
}

/// A member's part in the cluster, as the reporting server knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MemberRole {
    /// The leader the reporting server knows of.
    Leader,
    /// A voter that is not the known leader.
    Follower,
    /// A voter campaigning for leadership (only known of the reporting
    /// server itself; others are reported as followers).
    Candidate,
    /// A member that receives the log but does not vote yet (catching up).
    Learner,
}

#[cfg(test)]
mod tests {
    use super::super::samples::{cluster_status, lock_status, roundtrip, tag_of};
    use super::*;
    use crate::locks::ClientCommand;
    use crate::locks::{Applied, Command, LockState, Seq, Wait};

    #[test]
    fn views_round_trip() {
        roundtrip(&lock_status());
        roundtrip(&cluster_status());
        for (tag, role) in [
            MemberRole::Leader,
            MemberRole::Follower,
            MemberRole::Candidate,
            MemberRole::Learner,
        ]
        .into_iter()
        .enumerate()
        {
            roundtrip(&role);
            assert_eq!(usize::try_from(tag_of(&role)), Ok(tag));
        }
    }

    #[test]
    fn lock_status_view_mirrors_the_state() {
        let mut state = LockState::default();
        let mut out = Applied::default();
        let acquire = |session, wait| {
            Command::Client(ClientCommand::Acquire {
                session: SessionId(session),
                seq: Seq(1),
                ack: Seq(1),
                lock: "a".to_owned(),
                mode: Mode::Exclusive,
                wait,
                lock_delay_ms: 0,
            })
        };
        let commands = [
            Command::Client(ClientCommand::OpenSession {
                nonce: 1,
                ttl_ms: 10_000,
            }),
            Command::Client(ClientCommand::OpenSession {
                nonce: 2,
                ttl_ms: 10_000,
            }),
            acquire(1, Wait::Try),
            acquire(2, Wait::For(5_000)),
        ];
        for (i, command) in (1..).zip(&commands) {
            state.apply_into(LogIndex(i), command, &mut out);
        }
        let status = state.lock_status("a").expect("held");
        let view = LockStatusView::from(status);
        assert_eq!(
            view,
            LockStatusView {
                mode: Some(Mode::Exclusive),
                kind: LockKind::ReadWrite,
                holders: vec![HolderView {
                    session: SessionId(1),
                    token: FencingToken(3)
                }],
                waiters: vec![WaiterView {
                    session: SessionId(2),
                    mode: Mode::Exclusive,
                    timeout_ms: Some(5_000)
                }],
                delay: None,
            }
        );
        roundtrip(&view);
    }
}
