//! Snapshot fidelity (SIMULATION.md §5.4): a snapshot stands for the state
//! its log prefix produces, so it must equal what replaying that prefix
//! gives. A server restored from a snapshot that lost part of the state (a
//! session's remembered answers, say) applies later entries differently
//! from its peers, and the harm shows only when such an entry comes (a
//! retry applied twice); comparing the snapshots themselves sees the loss
//! whenever the disks hold one.
//!
//! After a run, for every pair of disks A and B where A's log (its snapshot
//! and the entries after it) reaches B's snapshot index with the same term
//! there, A's prefix up to that index is, by log matching, the one B's
//! snapshot summarises: replaying A's snapshot and entries up to it must
//! give exactly the state B's snapshot restores to.

use crate::checks::Violation;
use crate::storage::SimDisk;
use distlock_core::locks::{Command, LockState};
use distlock_core::raft::{Entry, EntryPayload, Snapshot, StateMachine};
use distlock_core::testkit::first_difference;

/// What the comparison found: violations, and how many snapshots were
/// compared with a replay (coverage).
#[derive(Debug, Default)]
pub struct Fidelity {
    /// One per snapshot that differs from its prefix's replay.
    pub violations: Vec<Violation>,
    /// Snapshots compared.
    pub compared: u64,
}

/// Compares every server's snapshot with the replay of another server's log
/// that covers it; `t` is the true time to report violations at. `disks`
/// pairs each server's id with its disk; disks marked corrupt are left out.
#[must_use]
pub fn check<'a>(disks: impl IntoIterator<Item = (u64, &'a SimDisk)>, t: u64) -> Fidelity {
    let logs: Vec<(u64, Option<Snapshot>, Vec<Entry<Command>>)> = disks
        .into_iter()
        .filter(|(_, d)| !d.faults().corrupt)
        .map(|(id, d)| {
            let (s, e) = d.durable_log();
            (id, s, e)
        })
        .collect();
    let mut out = Fidelity::default();
    for (b_id, b_snap, _) in &logs {
        let Some(b_snap) = b_snap else { continue };
        let at = b_snap.meta.last_index.0;
        let mut restored = LockState::default();
        if restored.restore(&b_snap.data).is_err() {
            continue;
        }
        // One replay is enough: every log that covers the index agrees up
        // to it.
        let Some((a_id, replayed)) = logs.iter().filter(|(a_id, _, _)| a_id != b_id).find_map(
            |(a_id, a_snap, a_entries)| {
                replay_to(a_snap.as_ref(), a_entries, b_snap).map(|s| (a_id, s))
            },
        ) else {
            continue;
        };
        out.compared += 1;
        if replayed != restored {
            out.violations.push(Violation {
                property: "snapshot_fidelity",
                t,
                detail: format!(
                    "s{b_id}'s snapshot at index {at} differs from s{a_id}'s log replayed to that index: {}",
                    first_difference(&replayed, &restored)
                ),
            });
        }
    }
    out
}

/// The state `snap`'s log reaches at `target`'s index, when it holds that
/// index with `target`'s term after a strictly earlier snapshot (an equal
/// one would compare a snapshot with a copy of itself).
fn replay_to(
    snap: Option<&Snapshot>,
    entries: &[Entry<Command>],
    target: &Snapshot,
) -> Option<LockState> {
    let from = snap.map_or(0, |s| s.meta.last_index.0);
    let at = target.meta.last_index.0;
    if from >= at {
        return None;
    }
    let last = entries.iter().find(|e| e.index.0 == at)?;
    if last.term != target.meta.last_term {
        return None;
    }
    let mut state = LockState::default();
    if let Some(s) = snap {
        state.restore(&s.data).ok()?;
    }
    for entry in entries
        .iter()
        .filter(|e| e.index.0 > from && e.index.0 <= at)
    {
        if let EntryPayload::Command(cmd) = &entry.payload {
            let _ = state.apply(entry.index, cmd);
        }
    }
    Some(state)
}
