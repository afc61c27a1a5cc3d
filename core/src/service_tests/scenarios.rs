//! Named scenarios of SCENARIOS.md on the lock-service world, each with an
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
    assert!(
        w.run_until_pred(secs(5), |w| w.leader().is_some()),
        "no leader"
    );
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
    w.isolate_server(old);
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
        w.run_until_pred(secs(8), |w| !leader_has_session(w, sb)),
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
        w.run_until_pred(secs(3), |w| matches!(
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
        w.run_until_pred(secs(8), |w| !leader_has_session(w, sa)),
        "A's session expired"
    );
    let expired_at = w.now;
    assert!(
        w.run_until_pred(secs(6), |w| matches!(
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
