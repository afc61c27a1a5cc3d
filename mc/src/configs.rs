//! The configurations checked, with bounds that CI explores exhaustively
//! in minutes, and deeper bounds for a longer run.

use crate::setup::{Bounds, Clocks, Op, Setup, addrs};
use distlock_core::ids::NodeId;
use distlock_core::locks::Mode;
use distlock_core::raft::MembershipChange;

const LOCK: &str = "L";

fn ids(n: u64) -> Vec<NodeId> {
    (1..=n).map(NodeId).collect()
}

/// The bounds CI runs (each configuration well under five minutes on two
/// cores).
#[must_use]
pub fn ci_bounds() -> Bounds {
    Bounds {
        depth: 7,
        max_term: 3,
        crashes: 1,
        duplicates: 0,
        drops: 0,
        in_flight: 4,
        leader_ticks: 1,
        elections: 2,
        sends_per_op: 2,
        disk_lies: false,
        append_entries: distlock_core::raft::Config::new(NodeId(1)).max_append_entries,
        snapshot_every: 0,
        client_ticks: 0,
    }
}

/// A client's script: open a session, try to take `lock` exclusively.
fn open_and_take(lock: &'static str) -> Vec<Op> {
    vec![
        Op::Open,
        Op::Acquire {
            lock,
            mode: Mode::Exclusive,
        },
    ]
}

/// Two clients contending for lock `L`: client 0 takes it, releases it
/// and checks the newest token; client 1 takes it and checks the newest
/// token.
fn contending_clients() -> Vec<Vec<Op>> {
    let mut first = open_and_take(LOCK);
    first.extend([Op::Release { lock: LOCK }, Op::CheckToken { lock: LOCK }]);
    let mut second = open_and_take(LOCK);
    second.push(Op::CheckToken { lock: LOCK });
    vec![first, second]
}

/// Three voters; two clients with sessions open contend for one lock,
/// each through a follower: one takes, releases it and checks the newest
/// token, the other takes it and checks the newest token.
#[must_use]
pub fn three_voters(bounds: Bounds) -> Setup {
    Setup {
        name: "three-voters",
        about: "3 voters, two clients contending for one exclusive lock, a token check",
        servers: ids(3),
        voters: ids(3),
        clients: contending_clients(),
        warm_up_ops: vec![1, 1],
        prefix: Vec::new(),
        bounds,
        clocks: None,
        library: Vec::new(),
        lock_delay_ms: 0,
    }
}

/// Two voters; an operator adds server 3 as a learner and promotes it,
/// while a client takes a lock.
#[must_use]
pub fn learner_promoted(bounds: Bounds) -> Setup {
    let joiner = NodeId(3);
    Setup {
        name: "learner-promoted",
        about: "2 voters, server 3 joins as a learner and is promoted, a client takes a lock",
        servers: ids(3),
        voters: ids(2),
        clients: vec![
            vec![
                Op::Change(MembershipChange::AddLearner(joiner, addrs(joiner))),
                Op::Change(MembershipChange::Promote(joiner)),
            ],
            vec![
                Op::Open,
                Op::Acquire {
                    lock: LOCK,
                    mode: Mode::Exclusive,
                },
            ],
        ],
        warm_up_ops: vec![1, 1],
        prefix: Vec::new(),
        bounds,
        clocks: None,
        library: Vec::new(),
        lock_delay_ms: 0,
    }
}

/// Three voters; an operator removes the leader, while a client takes a
/// lock.
#[must_use]
pub fn voter_removed(bounds: Bounds) -> Setup {
    Setup {
        name: "voter-removed",
        about: "3 voters, the leader (server 1) is removed, a client takes a lock",
        servers: ids(3),
        voters: ids(3),
        clients: vec![
            vec![Op::Change(MembershipChange::Remove(NodeId(1)))],
            vec![
                Op::Open,
                Op::Acquire {
                    lock: LOCK,
                    mode: Mode::Exclusive,
                },
            ],
        ],
        warm_up_ops: vec![0, 1],
        prefix: Vec::new(),
        bounds,
        clocks: None,
        library: Vec::new(),
        lock_delay_ms: 0,
    }
}

/// The single-server membership change schedule of 2015, from a directed
/// start: four voters and server 5, a caught-up learner. Leader 1 is
/// asked to promote 5 and the change reaches server 5 alone; server 2 is
/// elected by 2, 3 and 4 and at once asked to remove server 1; its
/// appends reach server 3 alone; then server 1 campaigns among 1, 4 and
/// 5, which lack server 2's entries. The new configurations' majorities
/// ({1, 4, 5} of five, {2, 3} of three) share no server: only the rule
/// that a leader changes the configuration after an entry of its own term
/// has committed keeps server 2's change from committing, and server 1
/// from being elected without it.
#[must_use]
pub fn membership_overlap(bounds: Bounds) -> Setup {
    let learner = NodeId(5);
    Setup {
        name: "membership-overlap",
        about: "4 voters and a learner from a directed start: a promotion held by the old leader, a removal asked of the new one at once",
        servers: ids(5),
        voters: ids(4),
        clients: vec![
            vec![
                Op::Change(MembershipChange::AddLearner(learner, addrs(learner))),
                Op::Change(MembershipChange::Promote(learner)),
            ],
            vec![Op::Change(MembershipChange::Remove(NodeId(1)))],
        ],
        warm_up_ops: vec![1, 0],
        prefix: vec![
            "send 0 1",
            "settle 1 5",
            "elect 2 among 2 3 4",
            // Server 3 answers the new leader, so that a configuration
            // of 2, 3 and 4 counts as reachable.
            "timer 2",
            "settle 2 3",
            "send 1 2",
            "settle 2 3",
            "elect 1 among 1 4 5",
        ],
        bounds,
        clocks: None,
        library: Vec::new(),
        lock_delay_ms: 0,
    }
}

/// Figure 8 of the Raft paper, from a directed start: server 1 (leading
/// term 1) holds a client's acquire that no one else has; server 2 has led
/// term 2 with its own first entry at that index on its disk alone; server
/// 1 has just been elected again, in term 3, with server 3's vote. Appends
/// carry one entry each, so one can end between the old term's entry and
/// the new leader's first (a whole-log append would hide the schedule: see
/// [`Bounds::append_entries`]). Its bounds are [`bounds_for`]'s.
#[must_use]
pub fn figure_eight(bounds: Bounds) -> Setup {
    Setup {
        name: "figure-8",
        about: "3 voters from a directed start: an old term's entry on a new leader, a later term's entry elsewhere",
        servers: ids(3),
        voters: ids(3),
        clients: vec![open_and_take(LOCK)],
        warm_up_ops: vec![1],
        prefix: vec![
            // The acquire reaches the leader and is durable there alone.
            "send 0 1",
            "settle 1",
            // Server 2 leads term 2; its first entry stays on its disk.
            "elect 2 among 2 3",
            "depose 2",
            // Server 1 leads term 3 with server 3's vote.
            "elect 1 among 1 3",
            // Its first appends go out; server 2 hears only that term 3
            // has a leader.
            "timer 1",
            "deliver 1->2 t3 Heartbeat commit=0 round=2",
            "drop-between 1 2",
            "sync 2",
        ],
        bounds,
        clocks: None,
        library: Vec::new(),
        lock_delay_ms: 0,
    }
}

/// Three voters from a settled start: client 0 holds the lock (its grant
/// committed everywhere) and client 1 has a session. Client 0 releases it
/// and checks its token; client 1 tries to take it and checks the newest
/// token. Lock-table bugs (a second exclusive holder, a released token
/// still valid, a retried request applied twice) are a handful of steps
/// deep from here, where the quiet start spends most of its depth on
/// opening sessions and the first grant.
#[must_use]
pub fn lock_held(bounds: Bounds) -> Setup {
    Setup {
        name: "lock-held",
        about: "3 voters, client 0 holding the lock: it releases and checks its token, client 1 tries to take it",
        servers: ids(3),
        voters: ids(3),
        clients: contending_clients(),
        warm_up_ops: vec![2, 1],
        prefix: Vec::new(),
        bounds,
        clocks: None,
        library: Vec::new(),
        lock_delay_ms: 0,
    }
}

/// Three voters from a directed start: a client's acquire is committed
/// (and answered) on servers 1 and 2 alone, then leader 1 hears from
/// nobody and steps down. Server 3, which lacks the entry, may campaign:
/// the voters' log check is all that keeps it from leading without a
/// committed entry.
#[must_use]
pub fn stale_candidate(bounds: Bounds) -> Setup {
    Setup {
        name: "stale-candidate",
        about: "3 voters from a directed start: an entry committed on servers 1 and 2 only, leader 1 deposed",
        servers: ids(3),
        voters: ids(3),
        clients: vec![open_and_take(LOCK)],
        warm_up_ops: vec![1],
        prefix: vec!["send 0 1", "settle 1 2", "depose 1"],
        bounds,
        clocks: None,
        library: Vec::new(),
        lock_delay_ms: 0,
    }
}

/// Three voters from a directed start: server 3 holds an entry of term 1
/// that nobody else has (leader 1 lost it in a crash before its write was
/// durable), and server 2 leads term 2 with its own entry at that index.
/// Server 3's stale tail must be cut before it takes any commit index
/// beyond what matches the leader. Appends carry one entry each, so an
/// append could end before the divergence.
#[must_use]
pub fn stale_tail(bounds: Bounds) -> Setup {
    Setup {
        name: "stale-tail",
        about: "3 voters from a directed start: server 3 holds a stale entry after one that matches, server 2 leads with its own there",
        servers: ids(3),
        voters: ids(3),
        clients: vec![open_and_take(LOCK), open_and_take("M")],
        warm_up_ops: vec![1, 1],
        prefix: vec![
            // Entry 4 reaches every disk; no acknowledgement arrives, so
            // it is not committed.
            "send 0 1",
            "deliver 1->2 t1 Append prev=3/1 entries=[4/1] commit=3 round=3",
            "deliver 1->3 t1 Append prev=3/1 entries=[4/1] commit=3 round=3",
            "sync 1 2 3",
            "drop-all",
            // Entry 5 reaches server 3's disk alone; server 1 crashes
            // before writing it.
            "send 1 1",
            "deliver 1->3 t1 Append prev=4/1 entries=[5/1] commit=3 round=3",
            "sync 3",
            "drop-all",
            "crash 1",
            // Server 2 leads term 2, its first entry at index 5.
            "elect 2 among 1 2",
        ],
        bounds,
        clocks: None,
        library: Vec::new(),
        lock_delay_ms: 0,
    }
}

/// Three voters from a settled start, every mode: client 0 holds `L`
/// shared and the one permit of semaphore `S`, and reads `L`'s status;
/// client 1 takes `L` shared beside it, client 2 tries for a permit of
/// `S`. A shared grant may not be refused, a second permit may not be
/// granted, and the status read must answer a status `L` had between its
/// send and its answer, while client 1's grant changes it.
#[must_use]
pub fn lock_modes(bounds: Bounds) -> Setup {
    let shared = Op::Acquire {
        lock: LOCK,
        mode: Mode::Shared,
    };
    let permit = Op::Acquire {
        lock: "S",
        mode: Mode::Semaphore(1),
    };
    Setup {
        name: "lock-modes",
        about: "3 voters, client 0 holding L shared and semaphore S's one permit reads L's status; client 1 takes L shared, client 2 tries for S",
        servers: ids(3),
        voters: ids(3),
        clients: vec![
            vec![
                Op::Open,
                shared.clone(),
                permit.clone(),
                Op::LockStatus { lock: LOCK },
            ],
            vec![Op::Open, shared],
            vec![Op::Open, permit],
        ],
        warm_up_ops: vec![3, 1, 1],
        prefix: Vec::new(),
        bounds,
        clocks: None,
        library: Vec::new(),
        lock_delay_ms: 0,
    }
}

/// Three voters that snapshot every two applied entries and keep no log
/// behind a snapshot, from a directed start: client 0 held the lock and
/// released it, and client 1 was granted it, through leader 1 and server 2
/// alone, so both snapshot past server 3, which lags at the warm-up's
/// end. The leader can only send server 3 its snapshot; any server may
/// crash and restart from its own. Client 0 checks its released token,
/// client 1 its own, through any server. Every snapshot written must
/// restore to the state the committed log gives at its index.
#[must_use]
pub fn snapshot_install(bounds: Bounds) -> Setup {
    Setup {
        name: "snapshot-install",
        about: "3 voters snapshotting every 2 entries, server 3 behind the leader's snapshot: a release and a grant committed without it, then token checks",
        servers: ids(3),
        voters: ids(3),
        clients: contending_clients(),
        warm_up_ops: vec![2, 1],
        prefix: vec!["send 0 1", "settle 1 2", "send 1 1", "settle 1 2"],
        bounds,
        clocks: None,
        library: Vec::new(),
        lock_delay_ms: 0,
    }
}

/// The drift bound of the timed configurations: the client library's
/// default assumption, 1 %.
const DRIFT_PPM: i64 = 10_000;

/// 1 s sessions, the servers' clocks at `server_ppm` and the clients' 1 %
/// slow, and clients that assume the 1 % bound.
fn drifting(server_ppm: Vec<i64>) -> Clocks {
    Clocks {
        ttl_ms: 1_000,
        max_drift_ppm: u32::try_from(DRIFT_PPM).unwrap_or(u32::MAX),
        server_ppm,
        client_ppm: -DRIFT_PPM,
    }
}

/// Three voters keeping true time, from a settled start: client 0 holds
/// the lock under a 1 s session and keeps it alive; client 1 has a
/// session and tries to take the lock. Servers 1 and 2 run fast and
/// server 3 and the clients slow, at the drift bound: the extremes that
/// shorten the cluster's count of a lease against the client's. A leader
/// may pause through its heartbeats to the moment a lease timer falls
/// due, so that an expiry is a few steps deep rather than twenty
/// heartbeats; the property this adds is no early release.
#[must_use]
pub fn lease_expiry(bounds: Bounds) -> Setup {
    let mut holder = open_and_take(LOCK);
    holder.push(Op::KeepAlive);
    Setup {
        name: "lease-expiry",
        about: "3 voters keeping true time, drifting clocks: client 0 holds the lock on a 1 s lease and keeps it alive, client 1 tries to take it",
        servers: ids(3),
        voters: ids(3),
        clients: vec![holder, open_and_take(LOCK)],
        warm_up_ops: vec![2, 1],
        prefix: Vec::new(),
        bounds,
        clocks: Some(drifting(vec![DRIFT_PPM, DRIFT_PPM, -DRIFT_PPM])),
        library: Vec::new(),
        lock_delay_ms: 0,
    }
}

/// Three voters keeping true time, the lock's holder run by the client
/// library's own session machine ([`crate::world::library`]) rather than
/// scripted: it keeps its session alive on its own timers and counts its
/// lease by its own bookkeeping, which is what the no-early-release
/// property then reads. From a directed start: its first keepalive has
/// just gone to leader 1, whose heartbeat fell due with it, so the
/// keepalive's read round races the leader's timers and its lease timers.
/// Client 1, scripted, may open a session and try to take the lock.
#[must_use]
pub fn library_lease(bounds: Bounds) -> Setup {
    Setup {
        name: "library-lease",
        about: "3 voters keeping true time, drifting clocks: the client library's session machine holds the lock on a 1 s lease, its keepalive in flight; client 1 may try to take the lock",
        servers: ids(3),
        voters: ids(3),
        clients: vec![open_and_take(LOCK), open_and_take(LOCK)],
        warm_up_ops: vec![2, 0],
        prefix: vec!["client-timer 0", "timer 1"],
        bounds,
        clocks: Some(drifting(vec![DRIFT_PPM, DRIFT_PPM, -DRIFT_PPM])),
        library: vec![0],
        lock_delay_ms: 200,
    }
}

/// Three voters keeping true time, from a directed start: client 0 holds
/// the lock under a 1 s session and kept it alive 50 ms after client 1,
/// which opened its session with it, queued for the lock (waiting as long
/// as it takes). Client 1's session falls due first: its expiry must take
/// its place in the queue with it, and answer its wait, rather than leave
/// a dead session to be granted the lock. Client 0 then releases the lock.
#[must_use]
pub fn waiter_expiry(bounds: Bounds) -> Setup {
    let mut holder = open_and_take(LOCK);
    holder.extend([Op::KeepAlive, Op::Release { lock: LOCK }]);
    Setup {
        name: "waiter-expiry",
        about: "3 voters keeping true time, from a directed start: client 1 queued for the lock client 0 holds and keeps alive; client 1's session falls due first",
        servers: ids(3),
        voters: ids(3),
        clients: vec![
            holder,
            vec![
                Op::Open,
                Op::Wait {
                    lock: LOCK,
                    mode: Mode::Exclusive,
                },
            ],
        ],
        warm_up_ops: vec![2, 1],
        prefix: vec![
            "send 1 1",
            "settle 1 2 3",
            // A heartbeat tick that moves true time on (the first is due
            // already), then client 0's keepalive.
            "timer 1",
            "settle 1 2 3",
            "timer 1",
            "settle 1 2 3",
            "send 0 1",
            "settle 1 2 3",
        ],
        bounds,
        clocks: Some(drifting(vec![DRIFT_PPM, DRIFT_PPM, -DRIFT_PPM])),
        library: Vec::new(),
        lock_delay_ms: 200,
    }
}

/// Three voters keeping true time, from a directed start: client 0 holds
/// the lock under a 1 s session; server 2 led term 2 (its first entry
/// committed everywhere) and still believes it leads, cut off, while
/// server 3 has just been elected in term 3 with server 1's vote, its
/// first entry on its own disk alone. Client 0's keepalive goes first to
/// server 2, the stale leader; no other client contends (the property is
/// checked when the expiry commits, and a second client's requests would
/// multiply the interleavings). The new leader runs fast, the stale one
/// and the clients slow. Lease rules 2 (a keepalive is acknowledged only
/// after a quorum round) and 4 (a new leader counts every lease afresh
/// from its election) are what keep the new leader from expiring a lease
/// its holder still counts on.
#[must_use]
pub fn lease_failover(bounds: Bounds) -> Setup {
    let mut holder = open_and_take(LOCK);
    holder.push(Op::KeepAlive);
    Setup {
        name: "lease-failover",
        about: "3 voters keeping true time, from a directed start: a stale leader, a new one elected, a keepalive to the stale one",
        servers: ids(3),
        voters: ids(3),
        clients: vec![holder],
        warm_up_ops: vec![2],
        prefix: vec![
            "elect 2 among 1 2 3",
            "timer 2",
            "settle 1 2 3",
            "elect 3 among 1 3",
        ],
        bounds,
        clocks: Some(drifting(vec![DRIFT_PPM, -DRIFT_PPM, DRIFT_PPM])),
        library: Vec::new(),
        lock_delay_ms: 0,
    }
}

/// The bounds CI explores `name` with: [`ci_bounds`], except for
/// `figure-8`, whose schedule after its directed start is 13 steps long
/// (an append, its refusal, the old entry alone, its write and its
/// acknowledgement; server 3's timer, server 2's pre-vote and vote rounds
/// with their writes): one entry per append, up to term 4, no crash, no
/// client retry, no heartbeat timer, two election timers, 7 messages in
/// flight; and `lock-held`, whose release and token check through the
/// settled leader take 12 steps: no crash, no election, no retry (a
/// retried release is 10 steps deep with `sends=2`, a longer run);
/// `stale-candidate` to depth 14, where server 3's whole campaign fits;
/// and `stale-tail`, whose leader stays (no election, no crash): every
/// interleaving of its appends to server 3, one entry each, with a
/// message duplicated and two heartbeat rounds; `lock-modes` to depth 13
/// with no crash, timer or retry (its grants and reads need none); and
/// `snapshot-install` to depth 12 with one crash, no election timer and
/// no retry; and the timed ones,
/// `lease-expiry`, `library-lease`, `waiter-expiry` and `lease-failover`,
/// with no crash, no election timer and no retry but two leader timers (a
/// heartbeat and a pause to a lease deadline), to depths 8, 8, 9 and 12:
/// an expiry's proposal, its write, its append and acknowledgement, after
/// the keepalive's read round in `library-lease` (which may fire two of
/// its client's timers) and after the new leader's first commit in
/// `lease-failover`.
#[must_use]
pub fn bounds_for(name: &str) -> Bounds {
    let ci = ci_bounds();
    let timed = Bounds {
        crashes: 0,
        elections: 0,
        sends_per_op: 1,
        leader_ticks: 2,
        ..ci
    };
    match name {
        "figure-8" => Bounds {
            depth: 13,
            max_term: 4,
            crashes: 0,
            in_flight: 7,
            leader_ticks: 0,
            elections: 2,
            sends_per_op: 1,
            append_entries: 1,
            ..ci
        },
        "lock-held" => Bounds {
            depth: 12,
            crashes: 0,
            elections: 0,
            sends_per_op: 1,
            ..ci
        },
        "stale-candidate" => Bounds { depth: 14, ..ci },
        "stale-tail" => Bounds {
            depth: 12,
            crashes: 0,
            duplicates: 1,
            leader_ticks: 2,
            elections: 0,
            sends_per_op: 1,
            append_entries: 1,
            ..ci
        },
        "lock-modes" => Bounds {
            depth: 13,
            crashes: 0,
            leader_ticks: 0,
            elections: 0,
            sends_per_op: 1,
            ..ci
        },
        "snapshot-install" => Bounds {
            depth: 12,
            elections: 0,
            sends_per_op: 1,
            snapshot_every: 2,
            ..ci
        },
        "lease-expiry" => Bounds { depth: 8, ..timed },
        "waiter-expiry" => Bounds { depth: 9, ..timed },
        "library-lease" => Bounds {
            depth: 8,
            client_ticks: 2,
            ..timed
        },
        "lease-failover" => Bounds { depth: 12, ..timed },
        _ => ci,
    }
}

/// Every configuration, by name.
#[must_use]
pub fn by_name(name: &str, bounds: Bounds) -> Option<Setup> {
    match name {
        "three-voters" => Some(three_voters(bounds)),
        "learner-promoted" => Some(learner_promoted(bounds)),
        "voter-removed" => Some(voter_removed(bounds)),
        "figure-8" => Some(figure_eight(bounds)),
        "lock-held" => Some(lock_held(bounds)),
        "stale-candidate" => Some(stale_candidate(bounds)),
        "stale-tail" => Some(stale_tail(bounds)),
        "lock-modes" => Some(lock_modes(bounds)),
        "membership-overlap" => Some(membership_overlap(bounds)),
        "snapshot-install" => Some(snapshot_install(bounds)),
        "lease-expiry" => Some(lease_expiry(bounds)),
        "waiter-expiry" => Some(waiter_expiry(bounds)),
        "library-lease" => Some(library_lease(bounds)),
        "lease-failover" => Some(lease_failover(bounds)),
        _ => None,
    }
}

/// The names [`by_name`] knows.
pub const NAMES: [&str; 14] = [
    "three-voters",
    "learner-promoted",
    "voter-removed",
    "figure-8",
    "lock-held",
    "stale-candidate",
    "stale-tail",
    "lock-modes",
    "membership-overlap",
    "snapshot-install",
    "lease-expiry",
    "library-lease",
    "waiter-expiry",
    "lease-failover",
];
