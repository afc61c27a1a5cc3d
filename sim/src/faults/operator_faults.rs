//! The faults the operator's node carries out (see [`crate::operator`]):
//! membership changes under load (S12), a corrupted disk found at restart,
//! whose server is then replaced (S15), and a scenario file's `join` and
//! `ask` steps.

use super::{Action, Target, Timeline, World, pick, range, side_node};
use crate::operator::{Plan, add_change};
use distlock_core::ids::NodeId;
use distlock_core::raft::{EntryPayload, MembershipChange};
use rand_core::Rng;

/// A membership change a scenario file's `ask` step names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AskedChange {
    /// Promote a learner to voter.
    Promote,
    /// Remove a server.
    Remove,
}

impl World {
    /// Starts a server that joins and has the operator add it, and
    /// promote it when `voter`; binds `label` to it.
    pub(super) fn join(&mut self, voter: bool, label: Option<&str>) {
        let new = self.start_joining();
        let mut changes = vec![add_change(new)];
        if voter {
            changes.push(MembershipChange::Promote(NodeId(new)));
        }
        self.note(format!(
            "membership: s{new} joins as a {}{}",
            if voter { "voter" } else { "learner" },
            label.map_or_else(String::new, |l| format!(" (label {l})"))
        ));
        self.bind(label, new);
        self.run_plan(Plan::Changes(changes));
    }

    /// Has the operator ask `of`, once, to promote or remove `subject`.
    pub(super) fn ask(&mut self, change: AskedChange, subject: &Target, of: &Target) {
        let Some(subject) = self.resolve(subject, "membership request") else {
            return;
        };
        let Some(server) = self.resolve(of, "membership request") else {
            return;
        };
        let change = match change {
            AskedChange::Promote => MembershipChange::Promote(NodeId(subject)),
            AskedChange::Remove => MembershipChange::Remove(NodeId(subject)),
        };
        self.note(format!(
            "membership: ask s{server} once to {}",
            crate::operator::describe(&change)
        ));
        self.run_plan(Plan::AskOnce { server, change });
    }

    /// Draws a membership plan (see [`crate::operator`]), starts what it
    /// needs (a joining server, an isolation, a kill) and hands the
    /// requests to the operator's node.
    pub(super) fn start_membership(&mut self, now: u64, ttl: u64, tl: &mut Timeline) {
        let Some(leader) = self.cluster.leader() else {
            return;
        };
        let plan = match self.rng.next_u64() % 4 {
            0 | 1 => {
                let replace_leader = self.rng.next_u64() % 2 == 0;
                let followers: Vec<u64> = self
                    .cluster
                    .servers
                    .iter()
                    .filter(|s| s.up && s.id != leader)
                    .map(|s| s.id)
                    .collect();
                let old = if replace_leader {
                    leader
                } else if let Some(f) = pick(&mut self.rng, &followers) {
                    f
                } else {
                    return;
                };
                let new = self.start_joining();
                self.note(format!("membership: replace s{old} by s{new}"));
                Plan::replace(new, old)
            }
            2 => {
                let new = self.start_joining();
                self.note(format!(
                    "membership: add blank s{new}, crash it while it catches up"
                ));
                let crash_at = now + range(&mut self.rng, 20_000, 400_000);
                tl.at(crash_at, Action::Kill(vec![new]));
                tl.at(
                    crash_at + range(&mut self.rng, 100_000, ttl),
                    Action::Restart(vec![new]),
                );
                Plan::Changes(vec![add_change(new)])
            }
            _ => {
                let others: Vec<u64> = self
                    .cluster
                    .ids()
                    .into_iter()
                    .filter(|i| *i != leader)
                    .collect();
                self.note(format!(
                    "isolate leader s{leader}, island: ask it to remove {others:?}"
                ));
                self.cluster.isolate(leader);
                tl.at(
                    now + range(&mut self.rng, 500_000, 3 * ttl),
                    Action::HealNetwork,
                );
                Plan::Island { leader, others }
            }
        };
        self.run_plan(plan);
    }

    /// Power-cuts a server and marks its disk corrupt (a record fails its
    /// checksum), restarts it so that it finds out and refuses to start,
    /// and has the operator replace it. One corrupt disk at a time, and
    /// only a server whose loss leaves a majority of every configuration
    /// the cluster may be running ([`Self::loss_leaves_a_majority`]).
    pub(super) fn start_corruption(&mut self) {
        if self.cluster.servers.iter().any(|s| s.disk.faults().corrupt) {
            return;
        }
        let ups: Vec<u64> = self
            .cluster
            .servers
            .iter()
            .filter(|s| s.up)
            .map(|s| s.id)
            .filter(|&id| self.loss_leaves_a_majority(id))
            .collect();
        let Some(victim) = pick(&mut self.rng, &ups) else {
            return;
        };
        let mut tl = Timeline::default();
        self.apply(Action::Kill(vec![victim]), &mut tl);
        if let Some(s) = self.cluster.servers.iter().find(|s| s.id == victim) {
            s.disk.update_faults(|f| f.corrupt = true);
        }
        self.note(format!("corrupt the disk of s{victim}"));
        self.cluster.restart(victim);
        let new = self.start_joining();
        self.note(format!("membership: replace s{victim} by s{new}"));
        self.run_plan(Plan::replace(new, victim));
    }

    /// Whether the other voters of every configuration the cluster may be
    /// running, the latest in each server's durable log (committed or
    /// not), are a majority of it without `victim`. Membership changes the
    /// harness asked for are not the only ones: an island plan's request
    /// may reach the majority's leader after the heal and legitimately
    /// shrink the voters, and no cluster survives losing a majority.
    fn loss_leaves_a_majority(&self, victim: u64) -> bool {
        self.cluster.servers.iter().all(|s| {
            let (snapshot, entries) = s.disk.durable_log();
            let latest = entries
                .iter()
                .rev()
                .find_map(|e| match &e.payload {
                    EntryPayload::Membership(m) => Some(m.clone()),
                    EntryPayload::Command(_) | EntryPayload::Noop => None,
                })
                .or_else(|| snapshot.map(|s| s.meta.membership));
            latest.is_none_or(|m| !m.is_voter(NodeId(victim)) || m.voters.len() > m.quorum())
        })
    }

    /// Starts a server that joins, with a clock and a disk drawn like the
    /// others'.
    fn start_joining(&mut self) -> u64 {
        let bound = self.max_drift_ppm.unsigned_abs();
        let offset = range(&mut self.rng, 0, 1_000_000_000);
        let drift =
            i64::try_from(range(&mut self.rng, 0, 2 * bound)).unwrap_or(0) - self.max_drift_ppm;
        let fsync_us = range(&mut self.rng, 50, 2_000);
        self.cluster.start_joining((offset, drift), fsync_us)
    }

    /// Hands `plan` to the operator's node.
    fn run_plan(&mut self, plan: Plan) {
        let servers = self.cluster.servers.len() as u64;
        let (history, time) = (self.workload.history.clone(), self.workload.time);
        let operator = self
            .operator
            .get_or_insert_with(|| side_node("operator", [10, 0, 4, 1]));
        operator.spawn(crate::operator::run(plan, servers, history, time));
    }
}
