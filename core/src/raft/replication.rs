//! Log replication (thesis §3.5): batched, pipelined AppendEntries with
//! per-follower flow control, fast conflict backtracking, heartbeats that
//! carry the commit index, and commitment by counting replicas of
//! current-term entries only (§3.6.2).

use super::progress::{Progress, ReplicationState};
use super::{AppendConflict, Entry, MessageBody, Raft, Role, StateMachine};
use crate::ids::{LogIndex, NodeId, Term};

impl<S: StateMachine> Raft<S> {
    /// Leader/candidate contact from the leader of our term.
    pub(super) fn accept_leader(&mut self, from: NodeId) {
        if self.role != Role::Follower || self.leader != Some(from) {
            self.become_follower(self.term, Some(from));
        } else {
            self.leader_contact = Some(self.now);
            self.reset_election_deadline();
        }
    }

    pub(super) fn handle_append(
        &mut self,
        from: NodeId,
        mut prev_index: LogIndex,
        mut prev_term: Term,
        mut entries: Vec<Entry<S::Command>>,
        leader_commit: LogIndex,
        round: u64,
    ) {
        self.accept_leader(from);
        // Everything up to our commit index is known to match the leader's
        // log (and may be compacted away): start after it.
        if prev_index < self.commit {
            let skip = usize::try_from(self.commit.0 - prev_index.0)
                .unwrap_or(usize::MAX)
                .min(entries.len());
            entries.drain(..skip);
            prev_index = self.commit;
            prev_term = match self.log.term(self.commit) {
                Some(t) => t,
                None => return,
            };
            if entries
                .first()
                .is_some_and(|e| e.index != prev_index.next())
            {
                // The message ends at or before our commit index.
                entries.clear();
            }
        }
        match self.log.term(prev_index) {
            Some(t) if t == prev_term => {}
            found => {
                let conflict = match found {
                    None => AppendConflict {
                        rejected: prev_index,
                        conflict_term: None,
                        hint_index: self.log.last_index().next(),
                    },
                    Some(t) => AppendConflict {
                        rejected: prev_index,
                        conflict_term: Some(t),
                        hint_index: self.log.first_index_of_term_at(prev_index, self.commit),
                    },
                };
                self.send(
                    from,
                    MessageBody::AppendResponse {
                        result: Err(conflict),
                        round,
                    },
                    true,
                );
                return;
            }
        }
        let last_new = prev_index.plus(entries.len() as u64);
        let skip = entries
            .iter()
            .take_while(|e| self.log.term(e.index) == Some(e.term))
            .count();
        if skip < entries.len() {
            let from_index = entries[skip].index;
            if from_index <= self.log.last_index() {
                debug_assert!(
                    from_index > self.commit,
                    "a leader contradicted a committed entry"
                );
                self.truncate_log(from_index);
            }
            let mut membership_changed = false;
            for e in entries.into_iter().skip(skip) {
                membership_changed |= matches!(e.payload, super::EntryPayload::Membership(_));
                self.log.append(e);
            }
            if membership_changed {
                self.recompute_membership();
            }
            self.mark_entries_unsaved(from_index);
        }
        let new_commit = leader_commit.min(last_new);
        if new_commit > self.commit {
            self.commit = new_commit;
            debug_assert!(self.commit <= self.log.last_index());
        }
        // Acknowledged only once durable: the leader counts it toward commit.
        self.send(
            from,
            MessageBody::AppendResponse {
                result: Ok(last_new),
                round,
            },
            true,
        );
    }

    pub(super) fn handle_heartbeat(&mut self, from: NodeId, commit: LogIndex, round: u64) {
        self.accept_leader(from);
        // The leader sends min(its commit, our match): our log matches up to it.
        let c = commit.min(self.log.last_index());
        if c > self.commit {
            self.commit = c;
            debug_assert!(self.commit <= self.log.last_index());
        }
        self.send(from, MessageBody::HeartbeatResponse { round }, true);
    }

    pub(super) fn handle_heartbeat_response(&mut self, from: NodeId, round: u64) {
        let (last, now) = (self.log.last_index(), self.now);
        let Some(pr) = self
            .leader_state
            .as_mut()
            .and_then(|ls| ls.progress.get_mut(&from))
        else {
            return;
        };
        pr.heard(round, now);
        if pr.match_index < last && pr.state == ReplicationState::Probe {
            pr.probe_sent = false;
        }
        self.send_appends(from);
        self.advance_reads();
    }

    pub(super) fn handle_append_response(
        &mut self,
        from: NodeId,
        result: Result<LogIndex, AppendConflict>,
        round: u64,
    ) {
        let now = self.now;
        let Some(ls) = self.leader_state.as_mut() else {
            return;
        };
        let Some(pr) = ls.progress.get_mut(&from) else {
            return;
        };
        pr.heard(round, now);
        match result {
            Ok(matched) => {
                let news = pr.acknowledge(matched);
                match pr.state {
                    ReplicationState::Probe => pr.become_replicate(),
                    ReplicationState::Snapshot { last_index } if matched.0 >= last_index => {
                        pr.become_replicate()
                    }
                    _ => {}
                }
                if news {
                    self.maybe_commit();
                    self.maybe_send_timeout_now(from);
                }
            }
            Err(c) => {
                let stale = match pr.state {
                    ReplicationState::Replicate => c.rejected <= pr.match_index,
                    ReplicationState::Probe => c.rejected != pr.next_index.prev(),
                    ReplicationState::Snapshot { .. } => true,
                };
                if !stale {
                    let hint = match c.conflict_term {
                        Some(t) => self
                            .log
                            .last_index_of_term(t, pr.match_index)
                            .map_or(c.hint_index, LogIndex::next),
                        None => c.hint_index,
                    };
                    pr.next_index = hint.min(c.rejected).max(pr.match_index.next());
                    pr.become_probe();
                }
            }
        }
        self.send_appends(from);
        self.advance_reads();
    }

    /// Sends `to` as many AppendEntries as flow control allows.
    pub(super) fn send_appends(&mut self, to: NodeId) {
        loop {
            let last = self.log.last_index();
            let Some(ls) = &self.leader_state else { return };
            let Some(pr) = ls.progress.get(&to) else {
                return;
            };
            if let ReplicationState::Snapshot { .. } = pr.state {
                self.send_snapshot_chunk(to);
                return;
            }
            if !pr.can_send(self.cfg.max_inflight) {
                return;
            }
            let probing = pr.state == ReplicationState::Probe;
            if !probing && pr.next_index > last {
                return;
            }
            let prev_index = pr.next_index.prev();
            let Some(prev_term) = self.log.term(prev_index) else {
                // The entries it needs were compacted: send the snapshot.
                self.start_snapshot_transfer(to);
                return;
            };
            let entries = self.log.slice_within(
                pr.next_index,
                self.cfg.max_append_entries,
                self.cfg.max_append_bytes,
            );
            let sent_last = entries.last().map_or(prev_index, |e| e.index);
            let round = ls.round;
            let commit = self.commit;
            if let Some(pr) = self
                .leader_state
                .as_mut()
                .and_then(|ls| ls.progress.get_mut(&to))
            {
                if probing {
                    pr.probe_sent = true;
                } else {
                    pr.next_index = sent_last.next();
                    pr.inflight.push_back(sent_last);
                }
                pr.commit_sent = pr.commit_sent.max(commit.min(sent_last));
            }
            self.send(
                to,
                MessageBody::Append {
                    prev_index,
                    prev_term,
                    entries,
                    commit,
                    round,
                },
                false,
            );
            if probing {
                return;
            }
        }
    }

    /// Commits the highest index a quorum holds, if it is of this term.
    pub(super) fn maybe_commit(&mut self) {
        let Some(ls) = &self.leader_state else { return };
        let me = self.cfg.id;
        let matches: Vec<LogIndex> = self
            .membership
            .voters
            .iter()
            .map(|v| {
                if *v == me {
                    self.durability.stable_index()
                } else {
                    ls.progress.get(v).map_or(LogIndex(0), |pr| pr.match_index)
                }
            })
            .collect();
        let Some(candidate) = self.quorum_max(matches) else {
            return;
        };
        // Only entries of the current term are committed by counting
        // replicas; earlier ones commit with them (thesis §3.6.2, Figure 3.7).
        if candidate > self.commit && self.log.term(candidate) == Some(self.term) {
            debug_assert!(
                candidate <= self.log.last_index(),
                "a quorum matched past the leader's log"
            );
            self.commit = candidate;
            self.on_commit_advanced();
        }
    }

    /// Leader work batched until the drain: reads waiting for the first
    /// commit of the term, heartbeat rounds, new entries, commit notices.
    pub(super) fn leader_flush(&mut self) {
        let Some(ls) = &mut self.leader_state else {
            return;
        };
        let round_due = std::mem::take(&mut ls.round_due);
        let append_due = std::mem::take(&mut ls.append_due);
        if round_due {
            ls.round += 1;
        }
        let peers: Vec<NodeId> = ls.progress.keys().copied().collect();
        let round = ls.round;
        for id in peers {
            if append_due {
                self.send_appends(id);
            }
            let commit = self.commit;
            let Some(pr) = self
                .leader_state
                .as_mut()
                .and_then(|ls| ls.progress.get_mut(&id))
            else {
                continue;
            };
            let notice = commit.min(pr.match_index);
            if round_due || notice > pr.commit_sent {
                pr.commit_sent = pr.commit_sent.max(notice);
                self.send(
                    id,
                    MessageBody::Heartbeat {
                        commit: notice,
                        round,
                    },
                    false,
                );
            }
        }
        if round_due {
            self.advance_reads();
        }
    }

    /// Keeps the leader's progress map in step with the configuration.
    pub(super) fn sync_progress_with_membership(&mut self) {
        let me = self.cfg.id;
        let next = self.log.last_index().next();
        let Some(ls) = &mut self.leader_state else {
            return;
        };
        let members: Vec<NodeId> = self.membership.members().filter(|&m| m != me).collect();
        ls.progress.retain(|id, _| members.contains(id));
        for m in members {
            ls.progress.entry(m).or_insert_with(|| Progress::new(next));
        }
        ls.append_due = true;
    }
}
