//! Elections: pre-vote (thesis §9.6), votes with the election restriction
//! (§3.6), the leader lease that makes voters ignore disruptive candidates
//! (§4.2.3), check-quorum and leadership transfer (§3.10); plus the term
//! rules that every incoming message goes through first.

use super::{Action, LeaderState, Message, MessageBody, Raft, Role, StateMachine};
use crate::ids::{LogIndex, NodeId, Term};
use std::collections::{BTreeMap, VecDeque};

impl<S: StateMachine> Raft<S> {
    /// Routes one message after applying the term rules.
    pub(super) fn step(&mut self, msg: Message<S::Command>) {
        // Servers outside our configuration (removed ones) are not refused
        // here: a server whose log lags behind a configuration change must
        // still be able to vote for the new voters. Pre-vote and the leader
        // lease keep a removed server from disrupting anything, and its
        // stale log keeps it from winning.
        if msg.term > self.term {
            match &msg.body {
                MessageBody::PreVote { .. } | MessageBody::PreVoteResponse { granted: true } => {}
                MessageBody::Vote { transfer, .. } if !*transfer && self.in_leader_lease() => {
                    return;
                }
                MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. } => {
                    self.become_follower(msg.term, Some(msg.from))
                }
                _ => self.become_follower(msg.term, None),
            }
        } else if msg.term < self.term {
            match msg.body {
                // A deposed leader learns our term and steps down.
                MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. } => {
                    self.send(msg.from, MessageBody::HeartbeatResponse { round: 0 }, false);
                }
                MessageBody::PreVote { .. } => {
                    self.send(
                        msg.from,
                        MessageBody::PreVoteResponse { granted: false },
                        false,
                    );
                }
                _ => {}
            }
            return;
        }
        match msg.body {
            MessageBody::PreVote {
                last_index,
                last_term,
            } => {
                self.handle_pre_vote(msg.from, msg.term, last_index, last_term);
            }
            MessageBody::PreVoteResponse { granted } => {
                self.handle_pre_vote_response(msg.from, msg.term, granted)
            }
            MessageBody::Vote {
                last_index,
                last_term,
                ..
            } => self.handle_vote(msg.from, last_index, last_term),
            MessageBody::VoteResponse { granted } => self.handle_vote_response(msg.from, granted),
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
                round,
            } => {
                self.handle_append(msg.from, prev_index, prev_term, entries, commit, round);
            }
            MessageBody::AppendResponse { result, round } => {
                self.handle_append_response(msg.from, result, round)
            }
            MessageBody::Heartbeat { commit, round } => {
                self.handle_heartbeat(msg.from, commit, round)
            }
            MessageBody::HeartbeatResponse { round } => {
                self.handle_heartbeat_response(msg.from, round)
            }
            MessageBody::InstallSnapshot {
                meta,
                offset,
                data,
                done,
                round,
            } => {
                self.handle_install_snapshot(msg.from, *meta, offset, data, done, round);
            }
            MessageBody::InstallSnapshotResponse {
                last_index,
                next_offset,
                round,
            } => {
                self.handle_install_snapshot_response(msg.from, last_index, next_offset, round);
            }
            MessageBody::TimeoutNow => {
                if self.leader == Some(msg.from) && self.role == Role::Follower {
                    self.campaign(true);
                }
            }
        }
    }

    /// Whether a leader was heard from recently enough that a candidate
    /// asking for votes is probably disruptive rather than needed.
    fn in_leader_lease(&self) -> bool {
        if !self.cfg.check_quorum {
            return false;
        }
        match self.role {
            Role::Leader => true,
            _ => {
                self.leader.is_some()
                    && self
                        .leader_contact
                        .is_some_and(|t| self.now < t + self.cfg.election_timeout)
            }
        }
    }

    /// Whether a candidate's log is at least as up to date as ours (§3.6.1).
    fn candidate_log_ok(&self, last_index: LogIndex, last_term: Term) -> bool {
        let (my_index, my_term) = (self.log.last_index(), self.log.last_term());
        last_term > my_term || (last_term == my_term && last_index >= my_index)
    }

    fn handle_pre_vote(&mut self, from: NodeId, term: Term, last_index: LogIndex, last_term: Term) {
        let granted = term > self.term
            && !self.in_leader_lease()
            && self.candidate_log_ok(last_index, last_term);
        let reply_term = if granted { term } else { self.term };
        self.send_with_term(
            from,
            reply_term,
            MessageBody::PreVoteResponse { granted },
            false,
        );
    }

    fn handle_vote(&mut self, from: NodeId, last_index: LogIndex, last_term: Term) {
        let free =
            self.voted_for == Some(from) || (self.voted_for.is_none() && self.leader.is_none());
        let granted = free && self.candidate_log_ok(last_index, last_term);
        if granted && self.voted_for.is_none() {
            self.voted_for = Some(from);
            self.durability.mark_hard_state();
        }
        if granted {
            self.reset_election_deadline();
        }
        // The answer waits for the vote to be durable: a restarted server
        // must never vote twice in one term.
        self.send(from, MessageBody::VoteResponse { granted }, true);
    }

    fn handle_pre_vote_response(&mut self, from: NodeId, term: Term, granted: bool) {
        if self.role != Role::PreCandidate || term != self.term.next() {
            return;
        }
        self.votes.insert(from, granted);
        match self.tally() {
            Some(true) => self.campaign(false),
            Some(false) => self.become_follower(self.term, None),
            None => {}
        }
    }

    fn handle_vote_response(&mut self, from: NodeId, granted: bool) {
        if self.role != Role::Candidate {
            return;
        }
        self.votes.insert(from, granted);
        match self.tally() {
            Some(true) => self.become_leader(),
            Some(false) => self.become_follower(self.term, None),
            None => {}
        }
    }

    /// `Some(true)` once a majority granted, `Some(false)` once a majority
    /// refused. A candidate's own vote counts only once it is durable: a
    /// single voter that led a term before its vote was on disk could, after
    /// a crash, lead the same term again and write different entries under
    /// the same (index, term) (its learners would keep the first ones).
    pub(super) fn tally(&self) -> Option<bool> {
        let q = self.membership.quorum();
        let mut yes = 0;
        let mut no = 0;
        let own_vote_durable =
            self.role == Role::PreCandidate || self.durability.own_vote_durable();
        for (id, &g) in &self.votes {
            if *id == self.cfg.id && !own_vote_durable {
                continue;
            }
            if self.membership.is_voter(*id) {
                if g {
                    yes += 1;
                } else {
                    no += 1;
                }
            }
        }
        if yes >= q {
            Some(true)
        } else if no >= q {
            Some(false)
        } else {
            None
        }
    }

    /// Whether this server may stand for election: it votes in its latest
    /// configuration, or that configuration may not have committed yet and
    /// it votes in the one before. The second case is a leader that
    /// appended its own removal and lost leadership (or restarted) before
    /// the change committed: it may hold the only copy of the newest
    /// entries, so the old majority cannot elect anyone else, and it must be
    /// able to lead once more to commit them (then it steps down as usual).
    /// Once the removal has committed, a majority of the new configuration
    /// drops its vote requests, so it can never win or disrupt.
    fn can_campaign(&self) -> bool {
        let me = self.cfg.id;
        if self.membership.is_voter(me) {
            return true;
        }
        if self.membership_index <= self.commit {
            return false;
        }
        let latest = self.membership_index;
        self.log
            .memberships()
            .filter(|(i, _)| *i < latest)
            .last()
            .map_or(&self.base_membership, |(_, m)| m)
            .is_voter(me)
    }

    pub(super) fn election_timeout_fired(&mut self) {
        if !self.can_campaign() {
            // Learners and removed servers never campaign.
            self.reset_election_deadline();
            return;
        }
        if self.cfg.pre_vote {
            self.pre_campaign();
        } else {
            self.campaign(false);
        }
    }

    fn pre_campaign(&mut self) {
        self.start_ballot(Role::PreCandidate);
        if self.tally() == Some(true) {
            self.campaign(false);
            return;
        }
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        let next_term = self.term.next();
        for v in self.other_voters() {
            self.send_with_term(
                v,
                next_term,
                MessageBody::PreVote {
                    last_index,
                    last_term,
                },
                false,
            );
        }
    }

    /// Enters `role` with only our own vote, forgetting the leader.
    fn start_ballot(&mut self, role: Role) {
        if role == Role::Candidate {
            self.counters.elections += 1;
        } else {
            self.counters.pre_votes += 1;
        }
        self.role = role;
        self.leader = None;
        self.leader_contact = None;
        self.votes = BTreeMap::from([(self.cfg.id, true)]);
        self.reset_election_deadline();
    }

    /// The voters to canvass: every voter but us.
    fn other_voters(&self) -> Vec<NodeId> {
        let me = self.cfg.id;
        self.membership
            .voters
            .iter()
            .copied()
            .filter(|&v| v != me)
            .collect()
    }

    /// Starts a real election in a new term. `transfer`: asked by the leader
    /// (TimeoutNow), so voters ignore their leader lease.
    pub(super) fn campaign(&mut self, transfer: bool) {
        if !self.can_campaign() {
            return;
        }
        self.term = self.term.next();
        self.voted_for = Some(self.cfg.id);
        self.durability.mark_own_vote();
        // Our own vote counts once it is durable, so even a single voter
        // wins only later, in `persisted`.
        self.start_ballot(Role::Candidate);
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        for v in self.other_voters() {
            self.send(
                v,
                MessageBody::Vote {
                    last_index,
                    last_term,
                    transfer,
                },
                true,
            );
        }
    }

    pub(super) fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        self.votes.clear();
        let term_start = self.log.last_index().next();
        self.leader_state = Some(LeaderState {
            progress: BTreeMap::new(),
            round: 0,
            round_due: true,
            append_due: true,
            term_start,
            reads_before_start: Vec::new(),
            reads: VecDeque::new(),
            transfer: None,
            heartbeat_deadline: self.now + self.cfg.heartbeat_interval,
            check_quorum_deadline: self.now + self.cfg.election_timeout,
        });
        self.sync_progress_with_membership();
        let index = self.append_own(super::EntryPayload::Noop);
        debug_assert_eq!(index, term_start);
    }

    /// Leaves leadership: unconfirmed reads fail, the transfer ends.
    pub(super) fn abort_leadership(&mut self) {
        if let Some(ls) = self.leader_state.take() {
            for id in ls.reads_before_start {
                self.actions.push_back(Action::ReadFailed { id });
            }
            for r in ls.reads {
                self.actions.push_back(Action::ReadFailed { id: r.id });
            }
        }
    }

    pub(super) fn leader_tick(&mut self) {
        let now = self.now;
        let Some(ls) = &mut self.leader_state else {
            return;
        };
        if now >= ls.heartbeat_deadline {
            ls.heartbeat_deadline = now + self.cfg.heartbeat_interval;
            ls.round_due = true;
            for pr in ls.progress.values_mut() {
                pr.on_heartbeat_tick();
            }
            ls.append_due = true;
        }
        if ls.transfer.is_some_and(|(_, until)| now >= until) {
            ls.transfer = None;
        }
        if now >= ls.check_quorum_deadline {
            // The period began at the last check (or at election), one
            // election timeout before this deadline was due.
            let period_start = ls.check_quorum_deadline - self.cfg.election_timeout;
            ls.check_quorum_deadline = now + self.cfg.election_timeout;
            if self.cfg.check_quorum
                && self.voters_heard_since(&self.membership.voters, period_start)
                    < self.membership.quorum()
            {
                self.become_follower(self.term, None);
            }
        }
    }

    /// How many of `voters` answered this leader at or after `since`,
    /// this leader itself included (check-quorum; membership changes).
    pub(super) fn voters_heard_since(
        &self,
        voters: &std::collections::BTreeSet<NodeId>,
        since: crate::time::Instant,
    ) -> usize {
        let Some(ls) = &self.leader_state else {
            return 0;
        };
        voters
            .iter()
            .filter(|&&id| {
                id == self.cfg.id
                    || ls
                        .progress
                        .get(&id)
                        .and_then(|pr| pr.heard_at)
                        .is_some_and(|t| t >= since)
            })
            .count()
    }

    /// Starts handing leadership to `to` (or the most up-to-date voter).
    ///
    /// # Errors
    /// When not leading, or the target cannot lead.
    pub fn transfer_leadership(
        &mut self,
        to: Option<NodeId>,
        now: crate::time::Instant,
    ) -> Result<NodeId, super::TransferError> {
        self.advance_time(now);
        let me = self.cfg.id;
        let Some(ls) = &self.leader_state else {
            return Err(super::TransferError::NotLeader {
                leader: self.leader,
            });
        };
        let target = match to {
            Some(t) if t != me => {
                if !self.membership.is_voter(t) {
                    return Err(super::TransferError::NotVoter(t));
                }
                t
            }
            _ => ls
                .progress
                .iter()
                .filter(|(id, _)| self.membership.is_voter(**id))
                .max_by_key(|(id, pr)| (pr.match_index, std::cmp::Reverse(**id)))
                .map(|(id, _)| *id)
                .ok_or(super::TransferError::NoTarget)?,
        };
        let until = self.now + self.cfg.election_timeout;
        if let Some(ls) = &mut self.leader_state {
            ls.transfer = Some((target, until));
        }
        self.maybe_send_timeout_now(target);
        Ok(target)
    }

    /// Sends TimeoutNow to the transfer target once its log is complete.
    pub(super) fn maybe_send_timeout_now(&mut self, target: NodeId) {
        let last = self.log.last_index();
        let Some(ls) = &self.leader_state else { return };
        if ls.transfer.map(|(t, _)| t) != Some(target) {
            return;
        }
        if ls
            .progress
            .get(&target)
            .is_some_and(|pr| pr.match_index >= last)
        {
            self.send(target, MessageBody::TimeoutNow, false);
        } else if let Some(ls) = &mut self.leader_state {
            ls.append_due = true;
        }
    }

    /// A leader whose removal committed hands over to the most up-to-date
    /// voter at once rather than letting the cluster wait for a timeout.
    pub(super) fn step_down_removed(&mut self) {
        let last = self.log.last_index();
        let successor = self.leader_state.as_ref().and_then(|ls| {
            ls.progress
                .iter()
                .filter(|(id, pr)| self.membership.is_voter(**id) && pr.match_index >= last)
                .map(|(id, _)| *id)
                .next()
        });
        if let Some(s) = successor {
            self.send(s, MessageBody::TimeoutNow, false);
        }
        self.become_follower(self.term, None);
    }
}
