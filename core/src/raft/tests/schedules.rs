//! Randomized fault schedules over the cluster harness. Each seed draws a
//! cluster size, timing and batching parameters, a network and disk profile,
//! then a few seconds of random faults (crashes with torn writes, restarts,
//! partitions one way and both, leader isolation, membership changes,
//! leadership transfers) interleaved with proposals and reads; then heals
//! everything and requires a leader and a fresh commit within a bound.
//!
//! `DISTLOCK_RAFT_SCHEDULES=N` raises the number of seeds (default 4,000
//! over the four tests); `DISTLOCK_RAFT_SEED=S` replays one seed with a trace (`replay_schedule`,
//! an ignored test).

use super::cluster::Cluster;
use super::mix;
use crate::ids::NodeId;
use crate::raft::{Config, MemberAddrs, MembershipChange};
use crate::time::Duration;
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::collections::BTreeSet;

/// What one schedule did, for coverage reporting.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Coverage {
    pub(crate) steps: u64,
    pub(crate) elections: u64,
    pub(crate) acked: u64,
    pub(crate) crashes: u64,
    pub(crate) membership_changes: u64,
    pub(crate) snapshots_installed: u64,
    pub(crate) reads: u64,
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, xs: &[T]) -> T {
    xs[(rng.next_u64() % xs.len() as u64) as usize]
}

fn range(rng: &mut ChaCha8Rng, lo: u64, hi: u64) -> u64 {
    lo + rng.next_u64() % (hi - lo + 1)
}

/// Runs the schedule of one seed; `Err` carries the violations found.
pub(crate) fn run_schedule(seed: u64, trace: bool) -> Result<Coverage, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ 0x5eed));
    let voters = pick(&mut rng, &[1, 3, 3, 5, 5]);
    let mut cfg = Config::new(NodeId(1));
    cfg.snapshot_threshold = pick(&mut rng, &[0, 12, 40, 150]);
    cfg.compaction_margin = pick(&mut rng, &[0, 3, 20]);
    cfg.snapshot_chunk_bytes = pick(&mut rng, &[100, 300, 4096]);
    cfg.max_append_entries = pick(&mut rng, &[1, 3, 64]);
    cfg.max_inflight = pick(&mut rng, &[1, 4, 32]);
    cfg.promote_margin = 20;
    let mut c = Cluster::new(seed, voters, 2, cfg, 10_000);
    c.trace = trace;
    c.net_cfg.loss = pick(&mut rng, &[0.0, 0.02, 0.1, 0.25]);
    c.net_cfg.duplicate = pick(&mut rng, &[0.0, 0.05, 0.2]);
    c.net_cfg.min_delay_us = range(&mut rng, 100, 1_000);
    c.net_cfg.max_delay_us = c.net_cfg.min_delay_us + pick(&mut rng, &[500, 5_000, 40_000]);
    c.disk_cfg.min_fsync_us = range(&mut rng, 50, 500);
    c.disk_cfg.max_fsync_us = c.disk_cfg.min_fsync_us + pick(&mut rng, &[200, 3_000, 60_000]);
    let fault_end = range(&mut rng, 3_000_000, 10_000_000);
    // A third of the seeds churn leaders hard: short gaps, and the leader is
    // cut off or crashed after most steps, which builds the divergent logs
    // of the thesis' Figure 3.7 far more often than uniform faults do.
    let churn = rng.next_u64() % 3 == 0;
    let mut cov = Coverage::default();
    let mut value = seed << 24;
    let mut joined: BTreeSet<NodeId> = (1..=voters as u64).map(NodeId).collect();
    let mut read_id = 0;
    let say = |c: &Cluster, what: &str| {
        if trace {
            println!("t={:.6} {what}", c.now as f64 / 1e6);
        }
    };

    while c.now < fault_end && !c.inv.failed() {
        let gap = if churn {
            range(&mut rng, 2_000, 40_000)
        } else {
            range(&mut rng, 5_000, 150_000)
        };
        c.run_to(c.now + gap);
        if churn {
            if let Some(l) = c.leader() {
                match rng.next_u64() % 4 {
                    0 => c.isolate(l),
                    1 => {
                        c.crash(l);
                        cov.crashes += 1;
                    }
                    _ => c.heal(),
                }
            }
            let down: Vec<NodeId> = c
                .nodes
                .iter()
                .filter(|n| !n.is_up() && joined.contains(&n.id) && !n.retired)
                .map(|n| n.id)
                .collect();
            if down.len() > 1 || rng.next_u64() % 3 == 0 {
                if let Some(&id) = down.first() {
                    c.restart(id);
                }
            }
        }
        let up: Vec<NodeId> = c.nodes.iter().filter(|n| n.is_up()).map(|n| n.id).collect();
        let down: Vec<NodeId> = c
            .nodes
            .iter()
            .filter(|n| !n.is_up() && joined.contains(&n.id) && !n.retired)
            .map(|n| n.id)
            .collect();
        let leader = c.leader();
        match rng.next_u64() % 100 {
            0..=49 => {
                let target = leader.or_else(|| up.first().copied());
                if let Some(t) = target {
                    for _ in 0..range(&mut rng, 1, 6) {
                        value += 1;
                        let _ = c.propose(t, value);
                    }
                }
            }
            50..=57 => {
                if !up.is_empty() {
                    let victim = pick(&mut rng, &up);
                    say(&c, &format!("crash {victim}"));
                    c.crash(victim);
                    cov.crashes += 1;
                }
            }
            58..=67 => {
                if !down.is_empty() {
                    let id = pick(&mut rng, &down);
                    say(&c, &format!("restart {id}"));
                    c.restart(id);
                }
            }
            68..=72 => {
                let ids = c.ids();
                let side: Vec<NodeId> = ids
                    .iter()
                    .copied()
                    .filter(|_| rng.next_u64() % 2 == 0)
                    .collect();
                say(&c, &format!("partition {side:?}"));
                c.partition(&side);
            }
            73..=75 => {
                if let Some(l) = leader {
                    say(&c, &format!("isolate leader {l}"));
                    c.isolate(l);
                }
            }
            76..=78 => {
                let ids = c.ids();
                let (a, b) = (pick(&mut rng, &ids), pick(&mut rng, &ids));
                if a != b {
                    say(&c, &format!("cut {a} -> {b}"));
                    c.cut_one_way(a, b);
                }
            }
            79..=85 => {
                say(&c, "heal");
                c.heal();
            }
            86..=92 => {
                if let Some(l) = leader {
                    let members = c
                        .raft(l)
                        .map(|r| r.membership().clone())
                        .unwrap_or_default();
                    let change = match rng.next_u64() % 3 {
                        0 => c
                            .ids()
                            .into_iter()
                            .find(|id| !joined.contains(id))
                            .map(|id| MembershipChange::AddLearner(id, MemberAddrs::default())),
                        1 => members
                            .learners
                            .iter()
                            .next()
                            .copied()
                            .map(MembershipChange::Promote),
                        _ => {
                            let all: Vec<NodeId> = members.members().collect();
                            (!all.is_empty())
                                .then(|| MembershipChange::Remove(pick(&mut rng, &all)))
                        }
                    };
                    if let Some(change) = change {
                        if let MembershipChange::AddLearner(id, _) = &change {
                            joined.insert(*id);
                            c.start(*id, false);
                        }
                        let r = c.with_raft(l, |r, now| r.change_membership(change.clone(), now));
                        say(&c, &format!("membership {change:?} at {l}: {r:?}"));
                        if matches!(r, Some(Ok(_))) {
                            cov.membership_changes += 1;
                        }
                    }
                }
            }
            93..=95 => {
                if let Some(l) = leader {
                    let r = c.with_raft(l, |r, now| r.transfer_leadership(None, now));
                    say(&c, &format!("transfer from {l}: {r:?}"));
                }
            }
            _ => {
                if let Some(l) = leader {
                    read_id += 1;
                    c.inv.on_read_registered(l, read_id);
                    let _ = c.with_raft(l, |r, now| r.read_index(read_id, now));
                    cov.reads += 1;
                }
            }
        }
    }

    // Liveness: heal everything; a leader must emerge and commit a fresh
    // proposal that every running voter applies, within a bound.
    say(&c, "liveness phase");
    c.heal();
    c.net_cfg.loss = 0.0;
    c.net_cfg.duplicate = 0.0;
    c.net_cfg.max_delay_us = c.net_cfg.max_delay_us.min(c.net_cfg.min_delay_us + 5_000);
    c.disk_cfg.max_fsync_us = c.disk_cfg.max_fsync_us.min(c.disk_cfg.min_fsync_us + 3_000);
    for id in c.ids() {
        if joined.contains(&id) {
            c.restart(id);
        }
    }
    let elected = c.run_until(Duration::from_secs(10), |c| {
        c.leader()
            .and_then(|l| c.raft(l))
            .is_some_and(|r| r.has_committed_own_term())
    });
    if !elected && !c.inv.failed() {
        let states = c.dump();
        c.inv.violation(
            c.now,
            format!("liveness: no leader committed within 10 s of healing\n{states}"),
        );
    }
    // A proposal to a leader that is deposed meanwhile may be lost: that is
    // allowed, so propose again to each new leader until one is applied.
    let deadline = c.now + 10_000_000;
    let mut proposed: Option<(NodeId, crate::ids::Term, crate::ids::LogIndex)> = None;
    let mut done = false;
    while !done && c.now < deadline && !c.inv.failed() {
        if let Some(l) = c.leader() {
            let term = c.raft(l).map(|r| r.term());
            if proposed.is_none_or(|(pl, pt, _)| (pl, Some(pt)) != (l, term)) {
                value += 1;
                if let Ok((index, term)) = c.propose(l, value) {
                    proposed = Some((l, term, index));
                }
            }
        }
        c.run_for(Duration::from_millis(20));
        done = proposed.is_some_and(|(l, _, index)| {
            c.raft(l).is_some_and(|r| {
                c.inv.acked.contains_key(&index)
                    && r.membership()
                        .voters
                        .iter()
                        .all(|v| c.raft(*v).is_none_or(|vr| vr.applied_index() >= index))
            })
        });
    }
    if !done && !c.inv.failed() {
        let states = c.dump();
        c.inv.violation(
            c.now,
            format!("liveness: no proposal applied by all voters 10 s after healing\n{states}"),
        );
    }
    c.inv.check_acked_durable(c.now);
    cov.steps = c.steps;
    cov.elections = c.inv.elections;
    cov.acked = c.inv.acked.len() as u64;
    cov.snapshots_installed = c.snapshots_installed;
    if c.inv.failed() {
        Err(c.inv.violations.join("\n"))
    } else {
        Ok(cov)
    }
}

fn schedules_per_part() -> u64 {
    std::env::var("DISTLOCK_RAFT_SCHEDULES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(1000, |n| n.div_ceil(4))
}

fn run_part(part: u64) {
    let n = schedules_per_part();
    let mut total = Coverage::default();
    for i in 0..n {
        let seed = part * 1_000_000_000 + i;
        match run_schedule(seed, false) {
            Ok(cov) => {
                total.steps += cov.steps;
                total.elections += cov.elections;
                total.acked += cov.acked;
                total.crashes += cov.crashes;
                total.membership_changes += cov.membership_changes;
                total.snapshots_installed += cov.snapshots_installed;
                total.reads += cov.reads;
            }
            Err(e) => panic!(
                "schedule seed {seed} violated Raft safety or liveness:\n{e}\n\
                 replay: DISTLOCK_RAFT_SEED={seed} cargo test -p distlock-core --lib replay_schedule -- --ignored --nocapture"
            ),
        }
    }
    println!("{n} schedules: {total:?}");
    // A pass must not be vacuous: the faults and features really happened.
    assert!(total.elections > n, "too few elections: {total:?}");
    assert!(
        total.acked > n * 10,
        "too few acknowledged proposals: {total:?}"
    );
    assert!(total.crashes > n, "too few crashes: {total:?}");
    assert!(
        total.membership_changes > n / 10,
        "too few membership changes: {total:?}"
    );
    assert!(total.reads > n / 10, "too few reads: {total:?}");
    assert!(
        total.snapshots_installed > n / 10,
        "too few snapshot installs: {total:?}"
    );
}

#[test]
fn random_schedules_part_1() {
    run_part(1);
}

#[test]
fn random_schedules_part_2() {
    run_part(2);
}

#[test]
fn random_schedules_part_3() {
    run_part(3);
}

#[test]
fn random_schedules_part_4() {
    run_part(4);
}

/// Replays `DISTLOCK_RAFT_SEED` with a trace of the faults injected, the
/// persists and the role changes. A tool, not a check: run it with
/// `--ignored`.
#[test]
#[ignore = "replays DISTLOCK_RAFT_SEED; run with --ignored"]
fn replay_schedule() {
    let seed = std::env::var("DISTLOCK_RAFT_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .expect("set DISTLOCK_RAFT_SEED to the seed to replay");
    match run_schedule(seed, true) {
        Ok(cov) => println!("seed {seed} passed: {cov:?}"),
        Err(e) => panic!("seed {seed} failed:\n{e}"),
    }
}
