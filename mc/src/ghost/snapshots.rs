//! Snapshot fidelity: a snapshot stands for the state its log prefix
//! produces, so it must restore to exactly the state the committed log,
//! replayed by the checker, has at its index. A snapshot that lost part of
//! the state (a session's remembered answers, say) is seen the moment a
//! server writes it, rather than when a retry reaches a server restored
//! from it and is applied twice.

use super::Ghost;
use crate::world::Server;
use distlock_core::ids::NodeId;
use distlock_core::locks::LockState;
use distlock_core::raft::{Snapshot, StateMachine};
use distlock_core::testkit::first_difference;
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

impl Ghost {
    /// Keeps the replayed state after every committed index, so that
    /// snapshots can be compared with it (configurations that snapshot).
    pub fn keep_states(&mut self) {
        self.replay.states.get_or_insert_with(BTreeMap::new);
    }

    /// Compares every snapshot the servers wrote or are writing with the
    /// replay at its index.
    pub(super) fn check_snapshots(&mut self, servers: &[Server]) {
        if self.replay.states.is_none() {
            return;
        }
        for s in servers {
            let writing = s.pending.iter().filter_map(|w| w.snapshot.as_deref());
            for snap in writing.chain(s.disk.snapshot.as_ref()) {
                self.check_snapshot(s.id, snap);
            }
        }
    }

    fn check_snapshot(&mut self, id: NodeId, snap: &Snapshot) {
        let at = snap.meta.last_index;
        let mut h = DefaultHasher::new();
        snap.data.hash(&mut h);
        let key = (at, h.finish());
        if self.replay.compared.contains(&key) {
            return;
        }
        let Some(replayed) = self.replay.states.as_ref().and_then(|m| m.get(&at)) else {
            // A server applies only what it holds committed, which the
            // history records in the same observation, before this check.
            self.violate(format!(
                "checker: {}'s snapshot at index {} is past the replayed log",
                id.0, at.0
            ));
            return;
        };
        let replayed = Arc::clone(replayed);
        self.replay.compared.insert(key);
        let mut restored = LockState::default();
        if let Err(e) = restored.restore(&snap.data) {
            self.violate(format!(
                "snapshot fidelity: {}'s snapshot at index {} does not restore: {}",
                id.0, at.0, e.reason
            ));
            return;
        }
        if restored != *replayed {
            self.violate(format!(
                "snapshot fidelity: {}'s snapshot at index {} differs from the committed log replayed to it: {}",
                id.0,
                at.0,
                first_difference(&*replayed, &restored)
            ));
        }
    }
}
