//! Single-server membership changes (thesis §4): add a learner, promote it
//! to voter once it has caught up, remove a server (the leader included).
//!
//! A configuration takes effect as soon as its entry is in the log. A leader
//! starts a change only when the previous one has committed and an entry of
//! its own term has committed (the fix to the single-server algorithm
//! published on the Raft mailing list, 2015): otherwise two leaders of
//! different terms could each add a server and form disjoint majorities.

use super::{EntryPayload, MemberAddrs, Membership, Raft, StateMachine};
use crate::ids::{LogIndex, NodeId};
use serde::{Deserialize, Serialize};

/// One change to the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Start replicating to a new server that does not vote yet; every
    /// server learns from the entry where to reach it.
    AddLearner(NodeId, MemberAddrs),
    /// Make a caught-up learner a voter.
    Promote(NodeId),
    /// Remove a voter or learner (possibly the leader itself).
    Remove(NodeId),
    /// A member publishes where it can be reached (its advertised peer,
    /// client and WebSocket addresses), so that every member and client
    /// learns them from the log rather than from a list repeated in every
    /// server's configuration. Voters and learners stay as they are.
    SetAddrs(NodeId, MemberAddrs),
}

/// Why a membership change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MembershipError {
    /// Only the leader changes the configuration.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this server knows of, if any.
        leader: Option<NodeId>,
    },
    /// A previous change, or this leader's first entry, has not committed yet.
    #[error("a membership change is already in progress; retry when it has committed")]
    ChangeInProgress,
    /// The server is already a member.
    #[error("{0} is already a member")]
    AlreadyMember(NodeId),
    /// Only learners can be promoted.
    #[error("{0} is not a learner")]
    NotLearner(NodeId),
    /// The server is not a member.
    #[error("{0} is not a member")]
    NotMember(NodeId),
    /// The learner is too far behind to vote safely.
    #[error("{id} has not caught up (at {match_index}, leader at {last_index})")]
    NotCaughtUp {
        /// The learner.
        id: NodeId,
        /// How far it has replicated.
        match_index: LogIndex,
        /// The leader's last index.
        last_index: LogIndex,
    },
    /// The cluster would be left without voters.
    #[error("cannot remove the last voter")]
    LastVoter,
    /// Node id 0 is reserved.
    #[error("node id 0 is reserved")]
    ZeroId,
    /// Too few of the new configuration's voters answer the leader for it
    /// to commit: appended, it would stop the cluster until they came back.
    #[error(
        "the new configuration needs {needed} voters that answer, and {reachable} do: \
         bring the others back first"
    )]
    QuorumUnreachable {
        /// Its voters that answered within an election timeout.
        reachable: u32,
        /// Its majority.
        needed: u32,
    },
}

/// What a refusal means to whoever asked for a change, and retries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The change is already in effect (an earlier try went through);
    /// for `Promote`, `NotLearner` also covers a server that is no member
    /// at all, which only the configuration tells apart.
    InEffect,
    /// Ask again later: no leader here, a change still committing, a
    /// learner still catching up.
    Wait,
    /// The change cannot be made.
    Final,
}

impl MembershipError {
    /// What this refusal of `change` means.
    #[must_use]
    pub fn meaning(&self, change: &MembershipChange) -> Refusal {
        match (change, self) {
            (
                _,
                Self::NotLeader { .. }
                | Self::ChangeInProgress
                | Self::NotCaughtUp { .. }
                | Self::QuorumUnreachable { .. },
            ) => Refusal::Wait,
            (MembershipChange::AddLearner(..), Self::AlreadyMember(_))
            | (MembershipChange::Remove(_), Self::NotMember(_))
            | (MembershipChange::Promote(_), Self::NotLearner(_)) => Refusal::InEffect,
            _ => Refusal::Final,
        }
    }
}

impl<S: StateMachine> Raft<S> {
    /// Appends a configuration change; returns the index of its entry.
    ///
    /// # Errors
    /// When not leading, while another change is in progress, or when the
    /// change makes no sense for the current configuration.
    pub fn change_membership(
        &mut self,
        change: MembershipChange,
        now: crate::time::Instant,
    ) -> Result<LogIndex, MembershipError> {
        self.advance_time(now);
        let Some(ls) = &self.leader_state else {
            return Err(MembershipError::NotLeader {
                leader: self.leader,
            });
        };
        let mut next: Membership = self.membership.clone();
        // Publishing addresses keeps the voters as they are, so it cannot
        // break the one-change-at-a-time rule that keeps two majorities
        // from disagreeing: it needs neither the previous change nor this
        // leader's first entry committed, and a member publishes at once.
        if let MembershipChange::SetAddrs(id, addrs) = change {
            if !next.contains(id) {
                return Err(MembershipError::NotMember(id));
            }
            next.addrs.insert(id, addrs);
            return Ok(self.append_membership(next));
        }
        if self.commit < ls.term_start || self.commit < self.membership_index {
            return Err(MembershipError::ChangeInProgress);
        }
        match change {
            MembershipChange::AddLearner(id, addrs) => {
                if id.0 == 0 {
                    return Err(MembershipError::ZeroId);
                }
                if next.contains(id) {
                    return Err(MembershipError::AlreadyMember(id));
                }
                next.learners.insert(id);
                next.addrs.insert(id, addrs);
            }
            MembershipChange::Promote(id) => {
                if !next.learners.contains(&id) {
                    return Err(MembershipError::NotLearner(id));
                }
                let match_index = ls
                    .progress
                    .get(&id)
                    .map_or(LogIndex(0), |pr| pr.match_index);
                let last_index = self.log.last_index();
                // A learner that never acknowledged anything may not even be
                // running: as a voter it would only raise the quorum.
                let never_heard = match_index.0 == 0 && last_index.0 > 0;
                if never_heard || match_index.0 + self.cfg.promote_margin < last_index.0 {
                    return Err(MembershipError::NotCaughtUp {
                        id,
                        match_index,
                        last_index,
                    });
                }
                next.learners.remove(&id);
                next.voters.insert(id);
            }
            MembershipChange::SetAddrs(..) => unreachable!("handled above"),
            MembershipChange::Remove(id) => {
                if !next.contains(id) {
                    return Err(MembershipError::NotMember(id));
                }
                if next.voters.len() == 1 && next.voters.contains(&id) {
                    return Err(MembershipError::LastVoter);
                }
                next.voters.remove(&id);
                next.learners.remove(&id);
                next.addrs.remove(&id);
            }
        }
        // The new configuration counts from the moment it is appended:
        // a majority of it must answer, or it can never commit and no one
        // could be elected under it either.
        let reachable = self.voters_heard_since(&next.voters, self.now - self.cfg.election_timeout);
        if reachable < next.quorum() {
            return Err(MembershipError::QuorumUnreachable {
                reachable: u32::try_from(reachable).unwrap_or(u32::MAX),
                needed: u32::try_from(next.quorum()).unwrap_or(u32::MAX),
            });
        }
        Ok(self.append_membership(next))
    }

    /// Appends `next` as the configuration in force from now on.
    fn append_membership(&mut self, next: Membership) -> LogIndex {
        debug_assert!(!next.voters.is_empty(), "a configuration without voters");
        let index = self.append_own(EntryPayload::Membership(next.clone()));
        self.membership = next;
        self.membership_index = index;
        self.sync_progress_with_membership();
        // A smaller quorum may already cover entries waiting to commit.
        self.maybe_commit();
        index
    }
}
