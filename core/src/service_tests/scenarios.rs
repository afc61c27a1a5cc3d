//! Named scenarios of SIMULATION.md §6 on the lock-service world, each with an
//! assertion that the fault it is about really happened, so a pass is
//! never vacuous. Every check of the world runs throughout.

use super::world::{Work, World, WorldConfig};
use crate::ids::NodeId;
use crate::locks::Wait;
use crate::time::Duration;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A world with no workload clients: the scenario drives its own.
fn world(seed: u64, servers: u64) -> World {
    let cfg = WorldConfig {
        servers,
        clients: 0,
        ..WorldConfig::default()
    };
    let mut w = World::new(seed, cfg);
    assert!(w.run_until(secs(5), |w| w.leader().is_some()), "no leader");
    w
}

fn assert_clean(w: &World) {
    assert!(
        !w.checks.failed(),
        "violations:\n{}",
        w.checks.violations.join("\n")
    );
}

/// The session a scripted client holds.
fn session_of(w: &World, c: usize) -> crate::locks::SessionId {
    w.clients[c].session.session_id().expect("an open session")
}

fn leader_has_session(w: &World, s: crate::locks::SessionId) -> bool {
    w.leader()
        .and_then(|l| {
            w.servers[usize::try_from(l.0 - 1).unwrap_or(0)]
                .node
                .as_ref()
        })
        .is_some_and(|n| n.raft().state_machine().session(s).is_some())
}

/// S1: a holder pauses (GC, SIGSTOP) for 3×TTL. The cluster expires it
/// only after its lease ran out, another client takes the lock with a
/// higher token, and the zombie's write with its old token is rejected by
/// the resource; its library reports the session lost.
#[test]
fn s1_paused_holder_writes_after_expiry() {
    let mut w = world(1, 3);
    let a = w.add_scripted_client(NodeId(1));
    let b = w.add_scripted_client(NodeId(2));
    assert!(w.open(a, secs(2), secs(3)) && w.open(b, secs(2), secs(3)));
    let sa = session_of(&w, a);
    let ta = w
        .acquire(a, "L", Wait::Try, Duration::ZERO, secs(2))
        .expect("A acquires");
    w.write_unchecked(a, "L", ta);
    w.pause_client(a, 6_000_000);
    let tb = w
        .acquire(b, "L", Wait::Forever, Duration::ZERO, secs(5))
        .expect("B acquires after A expires");
    assert!(tb > ta);
    assert!(!leader_has_session(&w, sa), "A's session was expired");
    w.write_unchecked(b, "L", tb);
    w.run_for(secs(4));
    // A resumes and, before looking at its lease, writes with its old token.
    let rejected_before = w.resource.rejected;
    w.write_unchecked(a, "L", ta);
    assert_eq!(
        w.resource.rejected,
        rejected_before + 1,
        "the zombie's write was accepted"
    );
    w.run_for(ms(100));
    assert!(
        w.clients[a].session.session_id().is_none()
            || !w.clients[a]
                .session
                .is_alive(w.clients[a].clock.local(w.now))
    );
    assert_clean(&w);
}

/// S2: the leader and a holder are partitioned from the majority; the
/// holder keeps renewing with the old leader. The old leader must not
/// extend the lease past what the new leader honours: the new leader
/// grants the lock to a waiter only after the holder's lease ran out.
#[test]
fn s2_stale_leader_acks_keepalives_during_a_leader_change() {
    let mut w = world(2, 5);
    let old = w.leader().expect("leader");
    let a = w.add_scripted_client(old);
    let other = NodeId(if old.0 == 1 { 2 } else { 1 });
    let b = w.add_scripted_client(other);
    assert!(w.open(a, secs(3), secs(3)) && w.open(b, secs(3), secs(3)));
    let ta = w
        .acquire(a, "L", Wait::Try, Duration::ZERO, secs(2))
        .expect("A acquires");
    w.isolate(old);
    for s in 0..5 {
        let id = NodeId(s + 1);
        if id != old {
            w.cut_client(a, id);
        }
    }
    let tb = w
        .acquire(b, "L", Wait::Forever, Duration::ZERO, secs(15))
        .expect("B acquires on the majority side");
    assert!(tb > ta);
    assert!(
        w.leader().is_some_and(|l| l != old),
        "a leader change happened while A's lease was outstanding"
    );
    w.heal();
    w.run_for(secs(3));
    assert_clean(&w);
}

/// S7: a waiter's session expires while it is queued. It is never granted
/// the lock; the next waiter is (etcd #11456).
#[test]
fn s7_waiter_session_expires_while_queued() {
    let mut w = world(7, 3);
    let a = w.add_scripted_client(NodeId(1));
    let b = w.add_scripted_client(NodeId(2));
    let c = w.add_scripted_client(NodeId(3));
    for x in [a, b, c] {
        assert!(w.open(x, secs(2), secs(3)));
    }
    let sb = session_of(&w, b);
    w.acquire(a, "L", Wait::Try, Duration::ZERO, secs(2))
        .expect("A acquires");
    assert!(
        w.acquire(b, "L", Wait::Forever, Duration::ZERO, ms(50))
            .is_none()
    );
    assert!(
        w.acquire(c, "L", Wait::Forever, Duration::ZERO, ms(50))
            .is_none()
    );
    // B's keepalives stop reaching the cluster.
    for s in 1..=3 {
        w.cut_client(b, NodeId(s));
    }
    assert!(
        w.run_until(secs(8), |w| !leader_has_session(w, sb)),
        "B's session expired while queued"
    );
    // A keeps its session alive meanwhile, then releases.
    assert!(
        w.clients[a]
            .session
            .is_alive(w.clients[a].clock.local(w.now))
    );
    assert!(w.release(a, secs(2)));
    assert!(
        w.run_until(secs(3), |w| matches!(
            w.clients[c].work,
            Work::Holding { .. }
        )),
        "C gets L"
    );
    assert!(
        !matches!(w.clients[b].work, Work::Holding { .. }),
        "B must never hold L"
    );
    w.heal();
    w.run_for(secs(2));
    assert!(
        !matches!(w.clients[b].work, Work::Holding { .. }),
        "B must never hold L"
    );
    assert_clean(&w);
}

/// S18: a lock whose holder's session expired stays unavailable for its
/// lock-delay; an explicitly released one does not.
#[test]
fn s18_lock_delay_after_expiry_but_not_after_release() {
    let mut w = world(18, 3);
    let (a, b, d, e) = (
        w.add_scripted_client(NodeId(1)),
        w.add_scripted_client(NodeId(2)),
        w.add_scripted_client(NodeId(3)),
        w.add_scripted_client(NodeId(1)),
    );
    for x in [a, b, d, e] {
        assert!(w.open(x, secs(2), secs(3)));
    }
    // Explicit release: no delay.
    w.acquire(d, "M", Wait::Try, secs(5), secs(2))
        .expect("D acquires M with a 5 s lock-delay");
    assert!(w.release(d, secs(2)));
    assert!(
        w.acquire(e, "M", Wait::Try, Duration::ZERO, secs(1))
            .is_some(),
        "no lock-delay after a release"
    );
    // Expiry: the lock stays unavailable for the delay.
    let sa = session_of(&w, a);
    let delay = ms(1_500);
    w.acquire(a, "L", Wait::Try, delay, secs(2))
        .expect("A acquires L with a lock-delay");
    assert!(
        w.acquire(b, "L", Wait::Forever, Duration::ZERO, ms(50))
            .is_none()
    );
    for s in 1..=3 {
        w.cut_client(a, NodeId(s));
    }
    assert!(
        w.run_until(secs(8), |w| !leader_has_session(w, sa)),
        "A's session expired"
    );
    let expired_at = w.now;
    assert!(
        w.run_until(secs(6), |w| matches!(
            w.clients[b].work,
            Work::Holding { .. }
        )),
        "B gets L after the delay"
    );
    let waited = w.now - expired_at;
    // The leader's clock may run 1% fast.
    assert!(
        waited >= 1_470_000,
        "B was granted {waited} us after the expiry, before the 1.5 s lock-delay"
    );
    assert_clean(&w);
}

/// S6: an acquire is applied but its answer is lost; the client times out,
/// fails over to another server and retries with the same seq. It learns
/// the same token, and the lock was granted once.
#[test]
fn s6_ambiguous_acquire_and_failover() {
    let mut w = world(6, 3);
    let a = w.add_scripted_client(NodeId(1));
    assert!(w.open(a, secs(5), secs(3)));
    let first_server = w.clients[a].conn.map(|(s, _)| s);
    w.drop_next_response(a);
    let token = w
        .acquire(a, "L", Wait::Try, Duration::ZERO, secs(5))
        .expect("A learns its grant after failing over");
    assert_ne!(
        w.clients[a].conn.map(|(s, _)| s),
        first_server,
        "A failed over to another server"
    );
    let leader = w.leader().expect("leader");
    let status = w
        .server(leader)
        .and_then(|n| n.raft().state_machine().lock_status("L"))
        .expect("L is held");
    assert_eq!(status.holders.len(), 1);
    assert_eq!(
        status.holders[0].1, token,
        "the retry was answered with the first grant's token"
    );
    assert_clean(&w);
}

/// S8: the leader's process stalls for longer than the clients' TTL while
/// they keep their sessions alive through a new leader. When it resumes,
/// its timers say every session is overdue; nothing it proposes in its old
/// term may expire them.
#[test]
fn s8_stalled_leader_resumes_with_stale_timers() {
    let mut w = world(8, 3);
    let old = w.leader().expect("leader");
    let follower = NodeId(if old.0 == 1 { 2 } else { 1 });
    let a = w.add_scripted_client(follower);
    assert!(w.open(a, secs(2), secs(3)));
    let sa = session_of(&w, a);
    w.acquire(a, "L", Wait::Try, Duration::ZERO, secs(2))
        .expect("A acquires");
    w.pause_server(old, 5_000_000);
    assert!(
        w.run_until(secs(3), |w| w.leader().is_some_and(|l| l != old)),
        "a new leader while the old one stalls"
    );
    w.run_for(secs(4));
    // The old leader has resumed by now and learned of the new term.
    w.run_for(secs(2));
    assert!(
        leader_has_session(&w, sa),
        "A's session must survive the stale leader's timers"
    );
    assert!(
        w.clients[a]
            .session
            .is_alive(w.clients[a].clock.local(w.now))
    );
    assert_clean(&w);
}

/// S9: the holder dies for good while leaders churn faster than the TTL.
/// ARCHITECTURE.md §4, lease rule 4 chooses the safe side: every new leader gives every
/// session its full TTL again, so the orphaned lock is not freed while the
/// churn lasts; once leadership is stable it is freed within TTL plus an
/// election.
#[test]
fn s9_leader_churn_with_a_dead_holder() {
    let mut w = world(9, 3);
    let a = w.add_scripted_client(NodeId(1));
    let b = w.add_scripted_client(NodeId(2));
    assert!(w.open(a, secs(2), secs(3)) && w.open(b, secs(10), secs(3)));
    w.acquire(a, "L", Wait::Try, Duration::ZERO, secs(2))
        .expect("A acquires");
    assert!(
        w.acquire(b, "L", Wait::Forever, Duration::ZERO, ms(50))
            .is_none()
    );
    w.clients[a].dead = true;
    let mut churns = 0;
    for _ in 0..8 {
        // Every TTL/2, cut the leader off long enough for an election.
        if let Some(l) = w.leader() {
            w.isolate(l);
            churns += 1;
        }
        w.run_for(ms(500));
        w.heal();
        w.run_for(ms(500));
        assert!(
            !matches!(w.clients[b].work, Work::Holding { .. }),
            "freed during churn #{churns}"
        );
    }
    assert!(churns >= 6, "the leader changed {churns} times");
    let calm = w.now;
    assert!(
        w.run_until(secs(6), |w| matches!(
            w.clients[b].work,
            Work::Holding { .. }
        )),
        "freed after the churn"
    );
    assert!(
        w.now - calm <= 2_000_000 + 1_500_000,
        "freed {} us after the churn stopped",
        w.now - calm
    );
    assert_clean(&w);
}

/// S13: a server that was cut off while the others compacted their logs
/// catches up by snapshot, then leads; the tokens it grants are above every
/// earlier one and it holds exactly the others' state.
#[test]
fn s13_snapshot_install_then_the_lagging_server_leads() {
    let mut w = world(13, 5);
    let lagging = NodeId(5);
    let first = w.leader().expect("leader");
    let start = if first == lagging { NodeId(1) } else { first };
    let a = w.add_scripted_client(start);
    assert!(w.open(a, secs(10), secs(3)));
    w.isolate(lagging);
    let mut last = crate::locks::FencingToken(0);
    for _ in 0..50 {
        last = w
            .acquire(a, "L", Wait::Try, Duration::ZERO, secs(2))
            .expect("A acquires");
        assert!(w.release(a, secs(2)));
    }
    w.heal();
    assert!(
        w.run_until(secs(5), |w| {
            let leader_commit = w
                .leader()
                .and_then(|l| w.server(l))
                .map(|n| n.raft().commit_index());
            w.server(lagging)
                .is_some_and(|n| Some(n.raft().applied_index()) >= leader_commit)
        }),
        "the lagging server caught up"
    );
    assert!(
        w.server(lagging)
            .is_some_and(|n| n.raft().status().snapshot_index.0 > 0),
        "it caught up by snapshot"
    );
    // Depose leaders until the lagging server wins an election.
    for _ in 0..30 {
        if w.leader() == Some(lagging) {
            break;
        }
        if let Some(l) = w.leader() {
            w.isolate(l);
        }
        w.run_for(ms(800));
        w.heal();
        w.run_for(ms(300));
    }
    assert_eq!(w.leader(), Some(lagging), "the lagging server leads");
    let b = w.add_scripted_client(lagging);
    assert!(w.open(b, secs(10), secs(3)));
    let t = w
        .acquire(b, "L", Wait::Forever, Duration::ZERO, secs(5))
        .expect("B acquires via the new leader");
    assert!(t > last, "token {t} after {last}");
    assert_clean(&w);
}

/// S14: every server crashes at once; writes not yet fsynced are lost. After
/// the restart, the acknowledged grant is still there, leases count afresh
/// from the new leader (rule 6), and tokens continue upward.
#[test]
fn s14_whole_cluster_crash_loses_only_unsynced_writes() {
    let mut w = world(14, 3);
    let a = w.add_scripted_client(NodeId(1));
    let b = w.add_scripted_client(NodeId(2));
    assert!(w.open(a, secs(2), secs(3)) && w.open(b, secs(10), secs(3)));
    let sa = session_of(&w, a);
    let ta = w
        .acquire(a, "L", Wait::Try, Duration::ZERO, secs(2))
        .expect("A acquires");
    assert!(
        w.acquire(b, "L", Wait::Forever, Duration::ZERO, ms(50))
            .is_none()
    );
    for s in 1..=3 {
        w.crash(NodeId(s));
    }
    w.run_for(secs(4));
    for s in 1..=3 {
        w.restart(NodeId(s));
    }
    assert!(
        w.run_until(secs(5), |w| w.leader().is_some()),
        "a leader after the restart"
    );
    let holder = w
        .leader()
        .and_then(|l| w.server(l))
        .and_then(|n| n.raft().state_machine().lock_status("L"))
        .map(|s| s.holders);
    assert_eq!(
        holder,
        Some(vec![(sa, ta)]),
        "the acknowledged grant survived the crash"
    );
    assert!(
        w.run_until(secs(10), |w| matches!(
            w.clients[b].work,
            Work::Holding { .. }
        )),
        "B's queued acquire is granted once A's session expires"
    );
    let Work::Holding { token: tb, .. } = w.clients[b].work.clone() else {
        unreachable!("checked above")
    };
    assert!(tb > ta, "token {tb} after {ta}");
    assert_clean(&w);
}
