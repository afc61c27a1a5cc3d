//! Linearizable reads with ReadIndex (thesis §6.4): a read registered at
//! commit index `c` is served once a heartbeat round that started after it
//! reached a majority (so this server was still the leader) and the state
//! machine has applied `c`. The same rounds confirm lease keepalives in the
//! lock service, which is why they are exposed as plain reads.

use super::{Action, PendingRead, Raft, StateMachine};
use crate::ids::LogIndex;

/// A read that cannot be registered here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not the leader (leader: {leader:?})")]
pub struct NotLeader {
    /// The leader this server knows of, if any.
    pub leader: Option<crate::ids::NodeId>,
}

impl<S: StateMachine> Raft<S> {
    /// Registers a linearizable read `id` (chosen by the caller). It ends in
    /// [`Action::ReadReady`] or [`Action::ReadFailed`] with the same id.
    ///
    /// # Errors
    /// When this server is not the leader.
    pub fn read_index(&mut self, id: u64, now: crate::time::Instant) -> Result<(), NotLeader> {
        self.advance_time(now);
        let commit = self.commit;
        let Some(ls) = &mut self.leader_state else {
            return Err(NotLeader {
                leader: self.leader,
            });
        };
        if commit < ls.term_start {
            // The commit index of a new leader may be behind the cluster's
            // until an entry of its own term commits.
            ls.reads_before_start.push(id);
            return Ok(());
        }
        self.register_read(id, commit);
        Ok(())
    }

    fn register_read(&mut self, id: u64, index: LogIndex) {
        let me = self.cfg.id;
        let only_voter = self.membership.voters.len() == 1 && self.membership.is_voter(me);
        let Some(ls) = &mut self.leader_state else {
            return;
        };
        if only_voter {
            self.ready_reads.push_back((id, index));
            return;
        }
        ls.reads.push_back(PendingRead {
            id,
            index,
            round: ls.round + 1,
        });
        ls.round_due = true;
    }

    /// Moves reads whose round a majority acknowledged to the ready queue.
    pub(super) fn advance_reads(&mut self) {
        let me = self.cfg.id;
        let Some(ls) = &mut self.leader_state else {
            return;
        };
        if ls.reads.is_empty() {
            return;
        }
        let mut rounds: Vec<u64> = self
            .membership
            .voters
            .iter()
            .map(|v| {
                if *v == me {
                    ls.round
                } else {
                    ls.progress.get(v).map_or(0, |pr| pr.round_acked)
                }
            })
            .collect();
        let q = self.membership.quorum();
        if rounds.len() < q {
            return;
        }
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        let confirmed = rounds[q - 1];
        while ls.reads.front().is_some_and(|r| r.round <= confirmed) {
            if let Some(r) = ls.reads.pop_front() {
                self.ready_reads.push_back((r.id, r.index));
            }
        }
    }

    /// Called whenever the leader's commit index moves.
    pub(super) fn on_commit_advanced(&mut self) {
        let commit = self.commit;
        let Some(ls) = &mut self.leader_state else {
            return;
        };
        if commit >= ls.term_start && !ls.reads_before_start.is_empty() {
            let waiting = std::mem::take(&mut ls.reads_before_start);
            for id in waiting {
                self.register_read(id, commit);
            }
        }
    }

    /// Hands out confirmed reads the state machine has caught up with.
    /// Confirmed reads survive a step-down: they were linearized while this
    /// server led.
    pub(super) fn release_ready_reads(&mut self) {
        while self
            .ready_reads
            .front()
            .is_some_and(|&(_, index)| index <= self.applied)
        {
            if let Some((id, index)) = self.ready_reads.pop_front() {
                self.actions.push_back(Action::ReadReady { id, index });
            }
        }
    }
}
