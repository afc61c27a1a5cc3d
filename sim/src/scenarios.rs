//! Named scenarios (SIMULATION.md §6): each is a [`SimConfig`] for a seed
//! — which fault classes, which scripted steps, which knobs — plus the
//! coverage counters that must be non-zero over a batch of seeds, so a
//! pass is never vacuous. Scenarios the harness cannot express would be
//! listed in [`UNSUPPORTED`] with the reason; all of S1–S21 run. Each is
//! also a file in `sim/scenarios/` ([`crate::scenario_file`]); a change
//! here needs the same change there (`tests/scenario_files.rs` compares).

use crate::faults::{Action, FaultSet};
use crate::run::SimConfig;
use distlock_server::config::RaftTuning;
use std::time::Duration;

/// A scenario: its config for a seed and node count, and its coverage.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// `S1`...`S21`.
    pub id: &'static str,
    /// What it is about.
    pub title: &'static str,
    /// Coverage counters that must be positive, summed over the batch.
    pub coverage: &'static [&'static str],
    build: fn(&mut SimConfig),
}

impl Scenario {
    /// The config of this scenario for `seed` on `nodes` servers.
    #[must_use]
    pub fn config(&self, seed: u64, nodes: u64) -> SimConfig {
        let mut cfg = SimConfig::new(seed);
        cfg.nodes = nodes;
        (self.build)(&mut cfg);
        cfg
    }
}

fn faults(list: &str) -> FaultSet {
    // The lists below are literals of known classes.
    FaultSet::parse(list).unwrap_or_default()
}

fn secs(cfg: &mut SimConfig, s: u64) {
    cfg.duration = Duration::from_secs(s);
}

/// Every scenario the harness runs.
pub const ALL: &[Scenario] = &[
    Scenario {
        id: "S1",
        title: "paused holder writes after its lease ran out (zombie)",
        coverage: &["client_pauses_while_held", "writes_rejected"],
        build: |c| {
            c.faults = faults("client_pause");
            c.careless_per_mille = 1000;
            c.fault_gap_ms = 2_000;
            secs(c, 60);
        },
    },
    Scenario {
        id: "S2",
        title: "stale leader keeps clients while the majority elects another",
        coverage: &["leader_isolations", "leader_elections"],
        build: |c| {
            c.faults = faults("isolate_leader");
            c.fault_gap_ms = 4_000;
            secs(c, 60);
        },
    },
    Scenario {
        id: "S3",
        title: "token checks (linearizable reads) while the leader is isolated and replaced",
        coverage: &[
            "token_checks_valid",
            "token_checks_invalid",
            "leader_isolations",
        ],
        build: |c| {
            c.faults = faults("isolate_leader,partition");
            c.fault_gap_ms = 3_000;
            secs(c, 60);
        },
    },
    Scenario {
        id: "S4",
        title: "clock drift changes within the bound on every server",
        coverage: &["drift_changes"],
        build: |c| {
            c.faults = faults("clock,isolate_leader");
            c.fault_gap_ms = 2_000;
            secs(c, 60);
        },
    },
    Scenario {
        id: "S5",
        title: "clocks drifting 15x beyond the bound: early releases are reported as assumption breaches, fenced exclusion still holds",
        coverage: &[
            "drift_changes",
            "client_pauses_while_held",
            "writes_rejected",
            "assumption_breaches",
        ],
        build: |c| {
            c.faults = faults("clock,client_pause,isolate_leader,clock_breach");
            c.careless_per_mille = 500;
            c.fault_gap_ms = 2_000;
            secs(c, 60);
        },
    },
    Scenario {
        id: "S6",
        title: "ambiguous acquires: lost answers, crashed servers, failover, peer frames dropped, duplicated and reordered",
        coverage: &[
            "ambiguous",
            "retries_answered",
            "server_kills",
            "frames_dropped",
            "frames_duplicated",
            "frames_delayed",
            "ws_sessions",
        ],
        build: |c| {
            c.faults = faults("kill,loss,chaos");
            c.fault_gap_ms = 2_000;
            secs(c, 60);
        },
    },
    Scenario {
        id: "S7",
        title: "a waiter's session lapses while it is cut from the cluster",
        coverage: &["client_cuts", "lost_while_holding"],
        build: |c| {
            c.faults = faults("client_cut");
            c.fault_gap_ms = 3_000;
            c.ttl_ms = (1_000, 2_500);
            secs(c, 60);
        },
    },
    Scenario {
        id: "S8",
        title: "stalled leader (process pause, slow disk) resumes",
        coverage: &["server_pauses", "slow_disks"],
        build: |c| {
            c.faults = faults("pause,disk");
            c.fault_gap_ms = 2_000;
            secs(c, 60);
        },
    },
    Scenario {
        id: "S9",
        title: "dead holders and leader churn: orphaned locks come free",
        coverage: &["client_crashes", "leader_isolations"],
        build: |c| {
            c.faults = faults("client_crash,isolate_leader");
            c.fault_gap_ms = 2_500;
            secs(c, 60);
        },
    },
    Scenario {
        id: "S10",
        title: "majority ring, then bridge, then one-way cuts",
        coverage: &["oneway_cuts"],
        build: |c| {
            c.faults = faults("oneway");
            c.fault_gap_ms = 6_000;
            c.nodes = 5;
            c.script = vec![
                (
                    5_000,
                    Action::Cut(vec![(1, 3), (1, 4), (2, 4), (2, 5), (3, 5)]),
                ),
                (25_000, Action::HealNetwork),
                (30_000, Action::Cut(vec![(1, 4), (1, 5), (2, 4), (2, 5)])),
                (50_000, Action::HealNetwork),
            ];
            secs(c, 70);
        },
    },
    Scenario {
        id: "S11",
        title: "one-way link loss between servers, appends cut while votes flow, lossy network",
        coverage: &["oneway_cuts", "lossy_periods", "appends_cut"],
        build: |c| {
            c.faults = faults("oneway,loss,append_cut");
            c.fault_gap_ms = 2_500;
            secs(c, 60);
        },
    },
    Scenario {
        id: "S13",
        title: "snapshots every 20 entries: a lagging follower catches up by InstallSnapshot, restarts restore from snapshots",
        coverage: &[
            "snapshots_taken",
            "snapshots_installed",
            "snapshot_restores",
            "server_kills",
        ],
        build: |c| {
            c.raft = RaftTuning {
                snapshot_threshold: Some(20),
                compaction_margin: Some(5),
                ..RaftTuning::default()
            };
            c.faults = faults("kill,isolate_leader");
            c.fault_gap_ms = 5_000;
            c.clients = 6;
            c.script = vec![
                // s3 falls behind while the others commit (and compact)
                // hundreds of entries, then must take a snapshot; a crash
                // soon after the heal may land mid-install.
                (3_000, Action::Cut(vec![(3, 1), (3, 2), (3, 4), (3, 5)])),
                (25_000, Action::HealNetwork),
                (25_400, Action::Kill(vec![3])),
                (27_000, Action::Restart(vec![3])),
                // s2 is down a while, restarts from its own snapshot, and
                // catches up from the leader's.
                (32_000, Action::Kill(vec![2])),
                (50_000, Action::Restart(vec![2])),
            ];
            secs(c, 60);
        },
    },
    Scenario {
        id: "S12",
        title: "membership changes under load: replace a follower or the leader, island removals, a blank node crashed while catching up",
        coverage: &[
            "joins",
            "membership_changes",
            "leader_removals",
            "island_minority_attempts",
            "snapshots_installed",
        ],
        build: |c| {
            // Small snapshots, so a blank server often needs one.
            c.raft = RaftTuning {
                snapshot_threshold: Some(64),
                compaction_margin: Some(16),
                ..RaftTuning::default()
            };
            c.faults = faults("membership,kill,loss");
            c.clients = 8;
            c.fault_gap_ms = 3_000;
            secs(c, 60);
        },
    },
    Scenario {
        id: "S14",
        title: "whole-cluster crashes losing unsynced writes, torn tails",
        coverage: &[
            "cluster_restarts",
            "unsynced_at_kill",
            "torn_writes",
            "kills_while_held",
        ],
        build: |c| {
            c.faults = faults("kill,kill_all,kill_majority");
            // Slow enough devices, and enough clients writing, that a kill
            // often finds unsynced writes.
            c.fsync_us = (2_000, 40_000);
            c.clients = 8;
            c.kill_when_dirty = true;
            c.fault_gap_ms = 2_500;
            secs(c, 60);
        },
    },
    Scenario {
        id: "S15",
        title: "a disk found corrupt at restart: the server refuses to start and is replaced",
        coverage: &["corruptions_detected", "membership_changes", "server_kills"],
        build: |c| {
            c.faults = faults("corrupt,kill");
            c.fault_gap_ms = 4_000;
            secs(c, 60);
        },
    },
    Scenario {
        id: "S16",
        title: "fsync errors (fail-stop), slow fsyncs, full disks",
        coverage: &["fsync_errors", "disk_full", "slow_disks", "fail_stops"],
        build: |c| {
            c.faults = faults("disk,kill");
            c.fault_gap_ms = 2_000;
            secs(c, 60);
        },
    },
    Scenario {
        id: "S17",
        title: "client cut from the cluster but not from the resource",
        coverage: &["client_cuts", "writes_accepted"],
        build: |c| {
            c.faults = faults("client_cut,client_pause");
            c.careless_per_mille = 300;
            c.fault_gap_ms = 2_500;
            secs(c, 60);
        },
    },
    Scenario {
        id: "S18",
        title: "lock-delay: a lock whose holder's session expired is granted to nobody for 3 s; a released one is handed over at once",
        coverage: &[
            "lock_delay_handoffs",
            "release_handoffs",
            "client_crashes",
            "client_cuts",
        ],
        build: |c| {
            c.faults = faults("client_crash,client_cut");
            c.lock_delay_ms = 3_000;
            c.clients = 6;
            c.fault_gap_ms = 2_000;
            secs(c, 60);
        },
    },
    Scenario {
        id: "S19",
        title: "a rogue peer (no member) sends votes and appends a million terms ahead",
        coverage: &["rogue_links", "leader_isolations", "server_kills"],
        build: |c| {
            c.faults = faults("rogue,kill,isolate_leader");
            c.fault_gap_ms = 2_500;
            secs(c, 60);
        },
    },
    Scenario {
        id: "S20",
        title: "swarm: every fault class, then the liveness phase",
        coverage: &[
            "server_kills",
            "partitions",
            "cluster_restarts",
            "fsync_errors",
            "ws_sessions",
            "snapshots_installed",
        ],
        build: |c| {
            c.faults = FaultSet::all();
            // Snapshots now and then, so the swarm mixes them with
            // everything else.
            c.raft = RaftTuning {
                snapshot_threshold: Some(150),
                compaction_margin: Some(30),
                ..RaftTuning::default()
            };
            secs(c, 120);
        },
    },
    Scenario {
        id: "S21",
        title: "TLS on every link: servers' ports, mutual TLS between peers, clients over TLS and wss, through crashes and a leader cut off",
        coverage: &[
            "tls_sessions",
            "ws_sessions",
            "server_kills",
            "leader_elections",
        ],
        build: |c| {
            c.tls = true;
            c.faults = faults("kill,isolate_leader");
            c.fault_gap_ms = 3_000;
            secs(c, 40);
        },
    },
];

/// Scenarios not run, and why.
pub const UNSUPPORTED: &[(&str, &str)] = &[];

/// The scenario named `id`.
#[must_use]
pub fn by_id(id: &str) -> Option<&'static Scenario> {
    ALL.iter().find(|s| s.id.eq_ignore_ascii_case(id))
}
