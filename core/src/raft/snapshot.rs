//! Snapshots and log compaction (thesis §5): taking a snapshot of the state
//! machine every `snapshot_threshold` applied entries, sending it in chunks
//! to followers whose next entry was compacted away, and installing one.

use super::progress::ReplicationState;
use super::{IncomingSnapshot, MessageBody, Raft, Snapshot, SnapshotMeta, StateMachine};
use crate::ids::{LogIndex, NodeId};
use std::sync::Arc;

impl<S: StateMachine> Raft<S> {
    /// Takes a snapshot at the applied index if enough entries were applied
    /// since the last one, and compacts the in-memory log.
    pub(super) fn maybe_snapshot(&mut self) {
        if self.cfg.snapshot_threshold == 0 {
            return;
        }
        let last = self
            .snapshot
            .as_ref()
            .map_or(LogIndex(0), |s| s.meta.last_index);
        if self.applied.0 < last.0 + self.cfg.snapshot_threshold {
            return;
        }
        let Some(last_term) = self.log.term(self.applied) else {
            return;
        };
        let meta = SnapshotMeta {
            last_index: self.applied,
            last_term,
            membership: self.membership_at(self.applied),
        };
        let snap = Snapshot {
            meta,
            data: Arc::from(self.sm.snapshot()),
        };
        self.counters.snapshots_taken += 1;
        self.counters.snapshot_taken_bytes += snap.data.len() as u64;
        self.snapshot = Some(snap.clone());
        self.durability.mark_snapshot(snap);
        let keep_from = LogIndex(self.applied.0.saturating_sub(self.cfg.compaction_margin));
        self.compact_to(keep_from);
    }

    /// A snapshot of the state machine as applied now, at the applied
    /// index, with the configuration in force there: what a backup of a
    /// linearizable read holds once [`super::Action::ReadReady`] said the
    /// state is recent enough. Unlike `maybe_snapshot` it changes
    /// nothing: the log is not compacted and nothing is persisted.
    #[must_use]
    pub fn export_snapshot(&self) -> Snapshot {
        // The applied index never falls below the log's base, whose term
        // the log keeps; a zero term is only possible before anything was
        // applied at all.
        let last_term = self.log.term(self.applied).unwrap_or_default();
        Snapshot {
            meta: SnapshotMeta {
                last_index: self.applied,
                last_term,
                membership: self.membership_at(self.applied),
            },
            data: Arc::from(self.sm.snapshot()),
        }
    }

    fn compact_to(&mut self, index: LogIndex) {
        if index <= self.log.base_index() {
            return;
        }
        self.base_membership = self.membership_at(index);
        self.log.compact(index);
    }

    pub(super) fn start_snapshot_transfer(&mut self, to: NodeId) {
        let Some(last_index) = self.snapshot.as_ref().map(|s| s.meta.last_index) else {
            return;
        };
        if let Some(pr) = self
            .leader_state
            .as_mut()
            .and_then(|ls| ls.progress.get_mut(&to))
        {
            pr.become_snapshot(last_index);
        }
        self.send_snapshot_chunk(to);
    }

    /// Sends the next chunk of the snapshot `to` is receiving, one at a time.
    pub(super) fn send_snapshot_chunk(&mut self, to: NodeId) {
        let Some(snap) = self.snapshot.clone() else {
            return;
        };
        let chunk = self.cfg.snapshot_chunk_bytes;
        let Some(ls) = self.leader_state.as_mut() else {
            return;
        };
        let round = ls.round;
        let Some(pr) = ls.progress.get_mut(&to) else {
            return;
        };
        let ReplicationState::Snapshot { last_index } = pr.state else {
            return;
        };
        if last_index != snap.meta.last_index.0 {
            // A newer snapshot replaced the one being sent: start it over.
            pr.become_snapshot(snap.meta.last_index);
        }
        if pr.snapshot_chunk_sent {
            return;
        }
        let len = snap.data.len() as u64;
        let offset = pr.snapshot_offset.min(len);
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(snap.data.len());
        let end = start.saturating_add(chunk).min(snap.data.len());
        pr.snapshot_chunk_sent = true;
        let body = MessageBody::InstallSnapshot {
            meta: Box::new(snap.meta.clone()),
            offset,
            data: snap.data[start..end].to_vec(),
            done: end == snap.data.len(),
            round,
        };
        self.send(to, body, false);
    }

    pub(super) fn handle_install_snapshot_response(
        &mut self,
        from: NodeId,
        last_index: LogIndex,
        next_offset: Option<u64>,
        round: u64,
    ) {
        let now = self.now;
        let Some(pr) = self
            .leader_state
            .as_mut()
            .and_then(|ls| ls.progress.get_mut(&from))
        else {
            return;
        };
        pr.heard(round, now);
        if pr.state
            != (ReplicationState::Snapshot {
                last_index: last_index.0,
            })
        {
            return;
        }
        match next_offset {
            Some(offset) => {
                pr.snapshot_offset = offset;
                pr.snapshot_chunk_sent = false;
            }
            None => {
                pr.acknowledge(last_index);
                pr.become_probe();
                self.maybe_commit();
            }
        }
        self.send_appends(from);
        self.advance_reads();
    }

    pub(super) fn handle_install_snapshot(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        data: Vec<u8>,
        done: bool,
        round: u64,
    ) {
        self.accept_leader(from);
        let last_index = meta.last_index;
        if last_index <= self.commit {
            // We already have everything it covers.
            self.incoming_snapshot = None;
            let body = MessageBody::InstallSnapshotResponse {
                last_index,
                next_offset: None,
                round,
            };
            self.send(from, body, true);
            return;
        }
        let expected = match &mut self.incoming_snapshot {
            Some(inc) if inc.meta == meta && inc.data.len() as u64 == offset => {
                inc.data.extend_from_slice(&data);
                None
            }
            Some(inc) if inc.meta == meta => Some(inc.data.len() as u64),
            _ if offset == 0 => {
                self.incoming_snapshot = Some(IncomingSnapshot { meta, data });
                None
            }
            _ => Some(0),
        };
        if let Some(next) = expected {
            let body = MessageBody::InstallSnapshotResponse {
                last_index,
                next_offset: Some(next),
                round,
            };
            self.send(from, body, false);
            return;
        }
        if !done {
            let received = self
                .incoming_snapshot
                .as_ref()
                .map_or(0, |inc| inc.data.len() as u64);
            let body = MessageBody::InstallSnapshotResponse {
                last_index,
                next_offset: Some(received),
                round,
            };
            self.send(from, body, false);
            return;
        }
        let Some(inc) = self.incoming_snapshot.take() else {
            return;
        };
        if self.sm.restore(&inc.data).is_err() {
            // A leader sent bytes our state machine cannot read: ask again
            // from the start rather than adopt them.
            let body = MessageBody::InstallSnapshotResponse {
                last_index,
                next_offset: Some(0),
                round,
            };
            self.send(from, body, false);
            return;
        }
        self.install_snapshot(Snapshot {
            meta: inc.meta,
            data: Arc::from(inc.data),
        });
        // Answered once the snapshot is durable.
        let body = MessageBody::InstallSnapshotResponse {
            last_index,
            next_offset: None,
            round,
        };
        self.send(from, body, true);
    }

    /// Adopts a snapshot already loaded into the state machine.
    fn install_snapshot(&mut self, snap: Snapshot) {
        self.counters.snapshots_installed += 1;
        self.counters.snapshot_installed_bytes += snap.data.len() as u64;
        let meta = &snap.meta;
        if self.log.term(meta.last_index) == Some(meta.last_term) {
            // Our log goes on consistently after the snapshot: keep that part.
            self.log.compact(meta.last_index);
        } else {
            self.truncate_log(meta.last_index.next());
            self.durability.reset_to_snapshot(self.commit);
            self.log.reset(meta.last_index, meta.last_term);
        }
        self.base_membership = meta.membership.clone();
        self.commit = meta.last_index;
        self.applied = meta.last_index;
        self.snapshot = Some(snap.clone());
        self.durability.mark_snapshot(snap);
        self.recompute_membership();
    }
}
