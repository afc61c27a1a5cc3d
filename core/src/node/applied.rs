//! What Raft's outputs do to the node: the lease timers kept in step
//! with leadership (ARCHITECTURE.md §4, rules 1, 3 and 4), applied entries
//! answered to the clients that wait for them and shown to watchers, and
//! linearizable reads served once their ReadIndex round is confirmed.

use super::{ConnId, Node, NodeAction, ReadKind};
use crate::ids::LogIndex;
use crate::locks::{Event, LockError, Reply};
use crate::proto::{
    LeaderView, LockListView, LockStatusView, PeerFrame, ProtoError, ResponseBody, ServerFrame,
    SessionListView, WatchEvent, page_size,
};
use crate::raft::Action;

impl Node {
    /// After every input: keeps the lease timers in step with leadership,
    /// and proposes the expiries, wait timeouts and delay ends that ran
    /// out. Returns how many commands it proposed.
    pub(super) fn run_lease_timers(&mut self) -> usize {
        let leading = self.raft.is_leader().then(|| self.raft.term());
        if leading != self.led_term {
            if leading.is_some() {
                // ARCHITECTURE.md §4, lease rule 4: every lease, wait and delay at full length
                // from this election.
                self.timers.reset(self.now, self.raft.state_machine());
            } else {
                self.timers.clear();
            }
            // Kept snapshots are only served by the leader that took them.
            self.exports.clear();
            self.led_term = leading;
        }
        // Rule 3: nothing expires before an entry of our term has committed.
        if leading.is_none() || !self.raft.has_committed_own_term() {
            return 0;
        }
        let due = self.timers.take_due(self.now);
        let proposed = due.len();
        for command in due {
            // Refused only while handing leadership over; the timer is
            // re-armed and fires again.
            let _ = self.raft.propose(command);
        }
        proposed
    }

    /// Turns Raft's actions into ours, answering what was applied.
    pub(super) fn drain_raft(&mut self) {
        loop {
            loop {
                self.drain_raft_once();
                // Becoming leader or committing our term's first entry
                // happens while draining; what that lets us propose is
                // drained too.
                if self.run_lease_timers() == 0 {
                    break;
                }
            }
            self.settle_membership_changes();
            self.announce_membership();
            self.reroute_forwards();
            // A leader publishing its own addresses appends here.
            if !self.publish_addrs() {
                break;
            }
        }
    }

    fn drain_raft_once(&mut self) {
        self.stats
            .after_install(self.raft.counters().snapshots_installed);
        while let Some(action) = self.raft.poll_action() {
            match action {
                Action::Persist(p) => self.actions.push_back(NodeAction::Persist(p)),
                Action::Send(msg) => {
                    self.actions.push_back(NodeAction::Send {
                        to: msg.to,
                        frame: PeerFrame::Raft(msg),
                    });
                }
                Action::Applied { index, output, .. } => {
                    self.settle_revokes(index, &output.events);
                    for event in &output.events {
                        self.on_applied_event(index, event);
                    }
                    for reply in output.replies {
                        self.on_applied_reply(reply, &output.events);
                    }
                }
                Action::ReadReady { id, .. } => self.read_ready(id),
                Action::ReadFailed { id } => {
                    if let Some((origin, _)) = self.reads.remove(&id) {
                        let hint = self.raft.leader();
                        self.answer(origin, Err(ProtoError::NotLeader { leader_hint: hint }));
                    }
                }
            }
        }
    }

    fn on_applied_event(&mut self, index: LogIndex, event: &Event) {
        let leading = self.led_term.is_some();
        if leading {
            self.timers.on_event(self.now, event);
        }
        if let Event::SessionEnded { session, .. } = event {
            self.forget_owner(*session);
        }
        self.stats.on_event(self.now, event, leading);
        let (Event::Acquired { lock, .. }
        | Event::Released { lock, .. }
        | Event::Expired { lock, .. }
        | Event::Proclaimed { lock, .. }) = event
        else {
            return;
        };
        let Some(conns) = self.watchers.get(lock) else {
            return;
        };
        let Some(watch) = WatchEvent::from_event(index, event) else {
            return;
        };
        let conns: Vec<ConnId> = conns.iter().copied().collect();
        for conn in conns {
            self.reply_frame(conn, ServerFrame::Watch(watch.clone()));
        }
    }

    fn on_applied_reply(&mut self, reply: Reply, events: &[Event]) {
        match reply {
            Reply::To {
                session,
                seq,
                response,
            } => {
                // A retry of a queued acquire: its real answer comes later.
                if matches!(response, Ok(crate::locks::Outcome::Pending)) {
                    return;
                }
                if matches!(response, Err(crate::locks::LockError::TimedOut)) {
                    self.stats.on_timed_out();
                }
                let Some(origins) = self.waiting.remove(&(session, seq)) else {
                    return;
                };
                let result = response.map(ResponseBody::Lock).map_err(ProtoError::Lock);
                for origin in origins {
                    self.answer(origin, result.clone());
                }
            }
            Reply::SessionOpened { nonce, result } => {
                let Some(origins) = self.opening.remove(&nonce) else {
                    return;
                };
                let result = result
                    .map(|session| {
                        let ttl_ms = events
                            .iter()
                            .find_map(|e| match e {
                                Event::SessionOpened { session: s, ttl_ms } if *s == session => {
                                    Some(*ttl_ms)
                                }
                                _ => None,
                            })
                            .or_else(|| {
                                self.raft.state_machine().session(session).map(|i| i.ttl_ms)
                            })
                            .unwrap_or(0);
                        ResponseBody::SessionOpened { session, ttl_ms }
                    })
                    .map_err(ProtoError::Lock);
                for origin in origins {
                    self.answer(origin, result.clone());
                }
            }
        }
    }

    fn read_ready(&mut self, id: u64) {
        let Some((origin, kind)) = self.reads.remove(&id) else {
            return;
        };
        let state = self.raft.state_machine();
        let result = match kind {
            ReadKind::KeepAlive { session, arrival } => match state.session(session) {
                // The expiry is proposed: acknowledging would promise a
                // lease whose locks are about to be handed on.
                Some(info)
                    if self.led_term.is_some()
                        && !self.timers.keepalive(session, arrival, info.ttl_ms) =>
                {
                    Err(ProtoError::Lock(LockError::SessionExpired))
                }
                Some(_) => Ok(ResponseBody::KeepAliveAck { session }),
                None => Err(ProtoError::UnknownSession),
            },
            ReadKind::CheckToken { lock, token } => {
                Ok(ResponseBody::TokenValid(state.check_token(&lock, token)))
            }
            ReadKind::LockStatus { lock } => Ok(ResponseBody::LockStatus(
                state.lock_status(&lock).map(LockStatusView::from),
            )),
            ReadKind::TakeSnapshot { max_len } => Ok(self.take_snapshot(max_len)),
            ReadKind::ListLocks {
                prefix,
                after,
                limit,
            } => {
                let page = state.list_locks(&prefix, after.as_deref(), page_size(limit));
                Ok(ResponseBody::Locks(LockListView::new(state, page)))
            }
            ReadKind::ListSessions { after, limit } => {
                let page = state.list_sessions(after, page_size(limit));
                Ok(ResponseBody::Sessions(SessionListView::new(state, page)))
            }
            ReadKind::Revoke { session } => {
                self.start_revoke(origin, session);
                return;
            }
            ReadKind::Leader { election } => {
                Ok(ResponseBody::Leader(LeaderView::of(state, &election)))
            }
        };
        self.answer(origin, result);
    }
}
