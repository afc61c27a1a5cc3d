//! Scenario tests, each named after the section of Ongaro's thesis
//! ("Consensus: Bridging Theory and Practice", 2014) whose rule it pins
//! down. They run on the same harness as the random schedules, so every
//! safety invariant is checked after every step here too.

use super::cluster::Cluster;
use crate::ids::{LogIndex, NodeId};
use crate::raft::{Config, MemberAddrs, MembershipChange, ProposeError, Role};
use crate::time::Duration;

fn cfg() -> Config {
    let mut c = Config::new(NodeId(1));
    c.snapshot_threshold = 0;
    c
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn n(i: u64) -> NodeId {
    NodeId(i)
}

/// Runs until some server leads with its term's first entry committed.
fn settled_leader(c: &mut Cluster) -> NodeId {
    assert!(
        c.run_until(Duration::from_secs(5), |c| c
            .leader()
            .and_then(|l| c.raft(l))
            .is_some_and(|r| r.has_committed_own_term())),
        "no leader within 5 s:\n{}",
        c.dump()
    );
    c.leader().expect("a leader")
}

/// Proposes `count` values at the leader and waits until the leader applied them.
fn commit_values(c: &mut Cluster, leader: NodeId, count: u64) -> LogIndex {
    let mut last = LogIndex(0);
    for v in 0..count {
        last = c
            .propose(leader, 1000 + v)
            .expect("leader accepts proposals")
            .0;
    }
    assert!(
        c.run_until(Duration::from_secs(5), |c| c
            .raft(leader)
            .is_some_and(|r| r.applied_index() >= last)),
        "proposals did not commit:\n{}",
        c.dump()
    );
    last
}

fn assert_clean(c: &Cluster) {
    assert!(
        !c.inv.failed(),
        "invariant violated:\n{}",
        c.inv.violations.join("\n")
    );
}

/// §3.6.1: a server whose log lacks committed entries cannot be elected.
#[test]
fn election_restriction_3_6_1() {
    let mut c = Cluster::new(11, 3, 0, cfg(), 0);
    let leader = settled_leader(&mut c);
    let stale = c
        .ids()
        .into_iter()
        .find(|&i| i != leader)
        .expect("a follower");
    let other = c
        .ids()
        .into_iter()
        .find(|&i| i != leader && i != stale)
        .expect("another follower");
    c.isolate(stale);
    let last = commit_values(&mut c, leader, 10);
    c.crash(leader);
    c.heal();
    // Only `other` holds the committed entries; `stale` must never win.
    let elected = c.run_until(Duration::from_secs(5), |c| {
        c.leader()
            .and_then(|l| c.raft(l))
            .is_some_and(|r| r.has_committed_own_term())
    });
    assert!(elected, "no new leader:\n{}", c.dump());
    assert_eq!(c.leader(), Some(other));
    assert!(
        !c.inv.leaders.values().any(|&l| l == stale),
        "the stale server led a term"
    );
    assert!(c.raft(other).is_some_and(|r| r.term_at(last).is_some()));
    assert_clean(&c);
}

/// §3.6.2 (Figure 3.7, "Figure 8" of the Raft paper): a leader must not
/// commit an entry of an earlier term by counting replicas, because a
/// server holding a conflicting entry of a newer term can still be elected
/// and overwrite it.
#[test]
fn figure_8_old_term_entries_commit_only_with_current_term_3_6_2() {
    let mut cfg = cfg();
    cfg.max_append_entries = 1;
    cfg.max_inflight = 1;
    let mut c = Cluster::new(8, 5, 0, cfg, 0);
    let l1 = settled_leader(&mut c);
    let others: Vec<NodeId> = c.ids().into_iter().filter(|&i| i != l1).collect();
    let a = others[0];
    // 1. l1 replicates an entry of its term to `a` only.
    for i in c.ids() {
        c.isolate(i);
    }
    c.uncut(l1, a);
    let (k, _) = c.propose(l1, 7).expect("leader");
    assert!(c.run_until(Duration::from_secs(2), |c| {
        c.raft(a).is_some_and(|r| r.last_index() >= k)
    }));
    c.crash(l1);
    // 2. The other three elect `x`, which appends its own entry at k and is
    //    cut off before anyone else gets it.
    let rest = [others[1], others[2], others[3]];
    for &p in &rest {
        for &q in &rest {
            if p != q {
                c.uncut(p, q);
            }
        }
    }
    assert!(c.run_until(Duration::from_secs(5), |c| {
        rest.iter()
            .any(|&i| c.raft(i).is_some_and(|r| r.is_leader()))
    }));
    let x = rest
        .iter()
        .copied()
        .find(|&i| c.raft(i).is_some_and(|r| r.is_leader()))
        .expect("x");
    c.isolate(x);
    assert!(c.run_until(ms(500), |c| {
        c.raft(x).is_some_and(|r| r.status().stable_index >= k)
    }));
    assert_eq!(
        c.raft(x).and_then(|r| r.term_at(k)),
        c.raft(x).map(|r| r.term())
    );
    c.crash(x);
    // 3. l1 returns; it or `a` leads a newer term and replicates the old
    //    entry at k to a majority, one entry per message.
    c.restart(l1);
    let live: Vec<NodeId> = c.ids().into_iter().filter(|&i| i != x).collect();
    for &p in &live {
        for &q in &live {
            if p != q {
                c.uncut(p, q);
            }
        }
    }
    assert!(c.run_until(Duration::from_secs(5), |c| {
        c.leader().is_some_and(|l| l != x)
    }));
    let l3 = c.leader().expect("leader");
    let replicas = |c: &Cluster| {
        c.raft(l3).map_or(0, |r| {
            r.status()
                .peers
                .iter()
                .filter(|p| p.match_index >= k)
                .count()
        })
    };
    assert!(c.run_until(Duration::from_secs(2), |c| replicas(c) >= 2));
    // A majority (l3 and two followers) holds the old-term entry at k, but
    // this term's entry has not reached a majority: k must not be committed.
    c.isolate(l3);
    assert!(
        c.raft(l3).is_some_and(|r| r.commit_index() < k),
        "an entry of an older term was committed by counting replicas"
    );
    // 4. x comes back and, with its newer entry at k, can win and overwrite it.
    c.crash(l3);
    c.restart(x);
    c.heal();
    for i in c.ids() {
        if i != l3 {
            c.uncut(i, x);
        }
    }
    c.isolate(l3);
    let _ = settled_leader(&mut c);
    c.run_for(Duration::from_secs(1));
    assert_clean(&c);
}

/// §9.6: a server that was partitioned away does not disrupt the cluster
/// when it returns, because its pre-votes fail while the others hear from
/// their leader; its term never grows.
#[test]
fn pre_vote_rejoining_partitioned_server_9_6() {
    let mut c = Cluster::new(21, 3, 0, cfg(), 5_000);
    let leader = settled_leader(&mut c);
    let term = c.raft(leader).map(|r| r.term()).expect("term");
    let f = c
        .ids()
        .into_iter()
        .find(|&i| i != leader)
        .expect("follower");
    c.isolate(f);
    c.run_for(Duration::from_secs(5));
    assert_eq!(
        c.raft(f).map(|r| r.term()),
        Some(term),
        "pre-vote must keep the isolated server's term"
    );
    c.heal();
    c.run_for(Duration::from_secs(2));
    assert_eq!(
        c.leader(),
        Some(leader),
        "the returning server disrupted the leader"
    );
    assert_eq!(c.raft(leader).map(|r| r.term()), Some(term));
    assert!(c.raft(f).is_some_and(|r| r.leader() == Some(leader)));
    assert_clean(&c);
}

/// §6.2 (check-quorum): a leader that stops hearing from a majority steps
/// down within about an election timeout, so it stops serving reads and
/// acknowledging anything.
#[test]
fn check_quorum_isolated_leader_steps_down_6_2() {
    let mut c = Cluster::new(31, 3, 0, cfg(), 5_000);
    let leader = settled_leader(&mut c);
    c.isolate(leader);
    let stepped_down = c.run_until(ms(400), |c| {
        c.raft(leader).is_some_and(|r| r.role() != Role::Leader)
    });
    assert!(stepped_down, "isolated leader kept leading:\n{}", c.dump());
    // The majority side elects a new leader in a newer term.
    assert!(c.run_until(Duration::from_secs(2), |c| {
        c.leader().is_some_and(|l| l != leader)
    }));
    assert_clean(&c);
}

/// §3.10: leadership transfer hands over in about one round trip, refusing
/// proposals meanwhile, and the target leads the next term.
#[test]
fn leadership_transfer_3_10() {
    let mut c = Cluster::new(41, 5, 0, cfg(), 5_000);
    let leader = settled_leader(&mut c);
    let _ = commit_values(&mut c, leader, 5);
    let target = c
        .ids()
        .into_iter()
        .rev()
        .find(|&i| i != leader)
        .expect("target");
    let term = c.raft(leader).map(|r| r.term()).expect("term");
    let r = c.with_raft(leader, |r, now| r.transfer_leadership(Some(target), now));
    assert_eq!(r, Some(Ok(target)));
    assert_eq!(c.propose(leader, 1), Err(ProposeError::Transferring));
    // Far below an election timeout: no timer had to fire.
    assert!(
        c.run_until(ms(60), |c| c.raft(target).is_some_and(|r| r.is_leader())),
        "transfer did not complete quickly:\n{}",
        c.dump()
    );
    assert_eq!(c.raft(target).map(|r| r.term()), Some(term.next()));
    let _ = settled_leader(&mut c);
    let _ = commit_values(&mut c, target, 3);
    assert_clean(&c);
}

/// §4.1–4.2: membership changes while a voter is down: a new server joins
/// as a learner, catches up, is promoted, and the dead voter is removed;
/// when the removed server comes back it does not disrupt the cluster.
#[test]
fn membership_change_while_a_server_is_down_4() {
    let mut c = Cluster::new(51, 3, 1, cfg(), 5_000);
    let leader = settled_leader(&mut c);
    let down = c
        .ids()
        .into_iter()
        .find(|&i| i != leader && i.0 <= 3)
        .expect("a follower");
    c.crash(down);
    let _ = commit_values(&mut c, leader, 20);
    c.start(n(4), false);
    let r = c.with_raft(leader, |r, now| {
        r.change_membership(
            MembershipChange::AddLearner(n(4), MemberAddrs::default()),
            now,
        )
    });
    assert!(matches!(r, Some(Ok(_))), "{r:?}");
    assert!(c.run_until(Duration::from_secs(3), |c| {
        c.raft(n(4)).is_some_and(|r4| {
            c.raft(leader)
                .is_some_and(|l| r4.applied_index() >= l.commit_index())
        })
    }));
    let promote = c.with_raft(leader, |r, now| {
        r.change_membership(MembershipChange::Promote(n(4)), now)
    });
    assert!(matches!(promote, Some(Ok(_))), "{promote:?}");
    assert!(c.run_until(Duration::from_secs(3), |c| {
        c.raft(leader)
            .is_some_and(|r| r.commit_index() >= r.last_index())
    }));
    let remove = c.with_raft(leader, |r, now| {
        r.change_membership(MembershipChange::Remove(down), now)
    });
    assert!(matches!(remove, Some(Ok(_))), "{remove:?}");
    let _ = commit_values(&mut c, leader, 5);
    let members = c
        .raft(leader)
        .map(|r| r.membership().clone())
        .expect("membership");
    assert!(members.is_voter(n(4)) && !members.contains(down) && members.voters.len() == 3);
    let term = c.raft(leader).map(|r| r.term());
    c.restart(down);
    c.run_for(Duration::from_secs(3));
    assert_eq!(
        c.leader(),
        Some(leader),
        "the removed server disrupted the cluster"
    );
    assert_eq!(c.raft(leader).map(|r| r.term()), term);
    assert_clean(&c);
}

/// With one of three voters down, removing another live one would leave a
/// configuration of the leader and the dead voter, which could neither
/// commit nor ever elect anyone while that voter stays down: the leader
/// refuses it and appends nothing. Removing the dead voter is fine.
#[test]
fn a_change_whose_majority_does_not_answer_is_refused() {
    let mut c = Cluster::new(52, 3, 0, cfg(), 5_000);
    let leader = settled_leader(&mut c);
    let followers: Vec<NodeId> = c.ids().into_iter().filter(|&i| i != leader).collect();
    let (down, live) = (followers[0], followers[1]);
    c.crash(down);
    let _ = commit_values(&mut c, leader, 5);
    // Long enough for the leader to notice it no longer hears from `down`.
    c.run_for(Duration::from_secs(1));
    let last = c.raft(leader).map(|r| r.last_index());
    let refused = c.with_raft(leader, |r, now| {
        r.change_membership(MembershipChange::Remove(live), now)
    });
    assert!(
        matches!(
            refused,
            Some(Err(crate::raft::MembershipError::QuorumUnreachable {
                reachable: 1,
                needed: 2
            }))
        ),
        "{refused:?}"
    );
    assert_eq!(c.raft(leader).map(|r| r.last_index()), last);
    let removed = c.with_raft(leader, |r, now| {
        r.change_membership(MembershipChange::Remove(down), now)
    });
    assert!(matches!(removed, Some(Ok(_))), "{removed:?}");
    let _ = commit_values(&mut c, leader, 3);
    assert_clean(&c);
}

/// §4.2.2: a leader that removes itself keeps leading until the change
/// commits, then steps down and hands over at once.
#[test]
fn removing_the_leader_4_2_2() {
    let mut c = Cluster::new(61, 3, 0, cfg(), 5_000);
    let leader = settled_leader(&mut c);
    let r = c.with_raft(leader, |r, now| {
        r.change_membership(MembershipChange::Remove(leader), now)
    });
    assert!(matches!(r, Some(Ok(_))), "{r:?}");
    assert!(
        c.run_until(ms(100), |c| c.leader().is_some_and(|l| l != leader)),
        "no quick handover:\n{}",
        c.dump()
    );
    let new_leader = settled_leader(&mut c);
    let _ = commit_values(&mut c, new_leader, 3);
    assert!(
        !c.raft(new_leader)
            .is_some_and(|r| r.membership().contains(leader))
    );
    c.run_for(Duration::from_secs(2));
    assert_eq!(
        c.leader(),
        Some(new_leader),
        "the removed leader disrupted the cluster"
    );
    assert_clean(&c);
}

/// A 3-server cluster with snapshots every 20 entries, where one follower
/// was cut off while 100 entries committed and compacted: returns the
/// cluster just healed, the lagging follower and the last committed index.
fn follower_behind_a_snapshot(seed: u64, chunk_bytes: usize) -> (Cluster, NodeId, LogIndex) {
    let mut cfg = cfg();
    cfg.snapshot_threshold = 20;
    cfg.compaction_margin = 0;
    cfg.snapshot_chunk_bytes = chunk_bytes;
    let mut c = Cluster::new(seed, 3, 0, cfg, 5_000);
    let leader = settled_leader(&mut c);
    let lagging = c
        .ids()
        .into_iter()
        .find(|&i| i != leader)
        .expect("follower");
    c.isolate(lagging);
    let last = commit_values(&mut c, leader, 100);
    c.heal();
    (c, lagging, last)
}

/// §5.3: a follower whose next entries were compacted receives the
/// snapshot in chunks and continues from it.
#[test]
fn snapshot_to_lagging_follower_5_3() {
    let (mut c, lagging, last) = follower_behind_a_snapshot(71, 128);
    assert!(
        c.run_until(Duration::from_secs(5), |c| c
            .raft(lagging)
            .is_some_and(|r| r.applied_index() >= last)),
        "lagging follower did not catch up:\n{}",
        c.dump()
    );
    assert!(
        c.delivered_to(lagging, "InstallSnapshot") >= 6,
        "the snapshot was not sent in chunks"
    );
    assert!(
        c.raft(lagging)
            .is_some_and(|r| r.status().snapshot_index.0 > 0)
    );
    assert_clean(&c);
}

/// §5.3: a follower that crashes in the middle of receiving a snapshot
/// restarts from its durable state and receives the snapshot again.
#[test]
fn restart_in_the_middle_of_a_snapshot_install_5_3() {
    let (mut c, lagging, last) = follower_behind_a_snapshot(81, 64);
    assert!(c.run_until(
        Duration::from_secs(2),
        |c| c.delivered_to(lagging, "InstallSnapshot") >= 3
    ));
    assert!(
        c.raft(lagging).is_some_and(|r| r.applied_index() < last),
        "install finished too early to test"
    );
    c.crash(lagging);
    c.run_for(ms(300));
    c.restart(lagging);
    assert!(
        c.run_until(Duration::from_secs(5), |c| c
            .raft(lagging)
            .is_some_and(|r| r.applied_index() >= last)),
        "follower did not finish the install after restarting:\n{}",
        c.dump()
    );
    // 716 bytes in 64-byte chunks is 12 chunks; it needed them all again.
    assert!(c.delivered_to(lagging, "InstallSnapshot") >= 3 + 12);
    assert_clean(&c);
}

/// §6.4: ReadIndex serves a read only after a heartbeat round confirms
/// leadership; an isolated leader's reads fail instead of going stale.
#[test]
fn read_index_needs_a_quorum_round_6_4() {
    let mut c = Cluster::new(91, 3, 0, cfg(), 5_000);
    let leader = settled_leader(&mut c);
    let _ = commit_values(&mut c, leader, 3);
    c.inv.on_read_registered(leader, 1);
    let _ = c.with_raft(leader, |r, now| r.read_index(1, now));
    assert!(
        c.run_until(ms(50), |c| c.inv.reads_ready >= 1),
        "read not served"
    );
    c.isolate(leader);
    c.inv.on_read_registered(leader, 2);
    let _ = c.with_raft(leader, |r, now| r.read_index(2, now));
    c.run_for(Duration::from_secs(1));
    assert_eq!(c.inv.reads_ready, 1, "an isolated leader served a read");
    assert_clean(&c);
}

/// A learner that never acknowledged anything (it may not even run) is not
/// promoted: as a voter it would only raise the quorum. Once it has caught
/// up, it is.
#[test]
fn a_learner_never_heard_from_is_not_promoted() {
    let mut c = Cluster::new(52, 3, 1, cfg(), 5_000);
    let leader = settled_leader(&mut c);
    let _ = commit_values(&mut c, leader, 5);
    let add = c.with_raft(leader, |r, now| {
        r.change_membership(
            MembershipChange::AddLearner(n(4), MemberAddrs::default()),
            now,
        )
    });
    assert!(matches!(add, Some(Ok(_))), "{add:?}");
    let _ = commit_values(&mut c, leader, 1);
    let promote = c.with_raft(leader, |r, now| {
        r.change_membership(MembershipChange::Promote(n(4)), now)
    });
    assert!(
        matches!(
            promote,
            Some(Err(crate::raft::MembershipError::NotCaughtUp { .. }))
        ),
        "{promote:?}"
    );
    c.start(n(4), false);
    // Caught up as the leader sees it: it has heard the learner's answers.
    assert!(c.run_until(Duration::from_secs(3), |c| {
        c.raft(leader).is_some_and(|l| {
            let status = l.status();
            status
                .peers
                .iter()
                .any(|p| p.id == n(4) && p.match_index >= status.commit_index)
        })
    }));
    let promote = c.with_raft(leader, |r, now| {
        r.change_membership(MembershipChange::Promote(n(4)), now)
    });
    assert!(matches!(promote, Some(Ok(_))), "{promote:?}");
}

/// A cut between the leader and one follower of three costs no commit:
/// the leader commits with the other follower, and the cut-off one, whose
/// pre-votes the other refuses while it hears from the leader, catches up
/// once the link heals.
#[test]
fn a_link_cut_between_the_leader_and_one_follower_costs_no_commit() {
    let mut c = Cluster::new(31, 3, 0, cfg(), 0);
    let leader = settled_leader(&mut c);
    let cut_off = c
        .ids()
        .into_iter()
        .find(|&i| i != leader)
        .expect("a follower");
    c.cut(leader, cut_off);
    let last = commit_values(&mut c, leader, 3);
    c.run_for(Duration::from_secs(1));
    assert_eq!(c.leader(), Some(leader), "the leader kept its term");
    c.heal();
    assert!(
        c.run_until(Duration::from_secs(5), |c| c
            .raft(cut_off)
            .is_some_and(|r| r.applied_index() >= last)),
        "the cut-off follower did not catch up:\n{}",
        c.dump()
    );
    assert_clean(&c);
}
