//! The configurations checked, with bounds that CI explores exhaustively
//! in minutes, and deeper bounds for a longer run.

use crate::setup::{Bounds, Op, Setup, addrs};
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
    }
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
        clients: vec![
            vec![
                Op::Open,
                Op::Acquire {
                    lock: LOCK,
                    mode: Mode::Exclusive,
                },
                Op::Release { lock: LOCK },
                Op::CheckToken { lock: LOCK },
            ],
            vec![
                Op::Open,
                Op::Acquire {
                    lock: LOCK,
                    mode: Mode::Exclusive,
                },
                Op::CheckToken { lock: LOCK },
            ],
        ],
        warm_up_ops: vec![1, 1],
        bounds,
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
        bounds,
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
        bounds,
    }
}

/// Every configuration, by name.
#[must_use]
pub fn by_name(name: &str, bounds: Bounds) -> Option<Setup> {
    match name {
        "three-voters" => Some(three_voters(bounds)),
        "learner-promoted" => Some(learner_promoted(bounds)),
        "voter-removed" => Some(voter_removed(bounds)),
        _ => None,
    }
}

/// The names [`by_name`] knows.
pub const NAMES: [&str; 3] = ["three-voters", "learner-promoted", "voter-removed"];
