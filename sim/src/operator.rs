//! The simulation's operator: membership changes under load (SIMULATION.md,
//! S12), made through the same `ChangeMembership` requests as `distlock
//! members`, from a node of its own that partitions between servers do not
//! touch.
//!
//! Plans, drawn per fault:
//! - replace a follower: start a joining server, add it, promote it once
//!   it has caught up, remove the follower;
//! - replace the leader: the same, removing the leader;
//! - island: isolate the leader, then ask it (and only it) to remove every
//!   other server; a minority must never commit such a change;
//! - blank node crashed mid-catch-up: start and add a joining server that
//!   needs the log or a snapshot, and power-cut it soon after.
//!
//! Every answer is recorded as [`Ev::Membership`]; the checker flags an
//! island change reported committed while the leader was cut off, unless
//! the leader alone was a majority of the new configuration (two voters
//! down to one: recorded with `island: false`).

use crate::clock::TrueTime;
use crate::cluster::{client_addr, ws_addr};
use crate::history::{Ev, History};
use distlock_client::admin::{AskError, ask, cluster_status};
use distlock_core::ids::NodeId;
use distlock_core::proto::{MemberRole, ProtoError, RequestBody, ResponseBody};
use distlock_core::raft::{MemberAddrs, MembershipChange, Refusal};
use std::net::SocketAddr;
use std::time::Duration;

/// What the operator does in one membership fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Add `new`, promote it, remove follower `old`.
    Replace {
        /// The server that joins.
        new: u64,
        /// The server removed.
        old: u64,
    },
    /// Add `new` (it is crashed by a scheduled kill meanwhile).
    AddOnly {
        /// The server that joins.
        new: u64,
    },
    /// Ask isolated leader `leader` to remove each of `others`.
    Island {
        /// The isolated leader.
        leader: u64,
        /// Everyone else.
        others: Vec<u64>,
    },
}

/// How long one change is retried (no leader, change in progress, the
/// learner catching up) before the operator gives up on it.
const CHANGE_PATIENCE: Duration = Duration::from_secs(20);

/// The `AddLearner` change for simulated server `id`.
#[must_use]
pub fn add_change(id: u64) -> MembershipChange {
    MembershipChange::AddLearner(
        NodeId(id),
        MemberAddrs {
            peer: SocketAddr::new(client_addr(id).ip(), 7101).to_string(),
            client: client_addr(id).to_string(),
            ws: Some(ws_addr(id).to_string()),
        },
    )
}

/// Carries out `plan` against servers `1..=servers`.
pub async fn run(plan: Plan, servers: u64, history: History, time: TrueTime) {
    let all: Vec<SocketAddr> = (1..=servers).map(client_addr).collect();
    let record = |change: String, outcome: String, island: bool| {
        history.push(
            time.now_us(),
            Ev::Membership {
                change,
                outcome,
                island,
            },
        );
    };
    match plan {
        Plan::Replace { new, old } => {
            let steps = [
                add_change(new),
                MembershipChange::Promote(NodeId(new)),
                MembershipChange::Remove(NodeId(old)),
            ];
            for change in steps {
                let outcome = change_until_done(&all, &change, time).await;
                let done = outcome.starts_with("committed");
                record(describe(&change), outcome, false);
                if !done {
                    return;
                }
            }
        }
        Plan::AddOnly { new } => {
            let change = add_change(new);
            let outcome = change_until_done(&all, &change, time).await;
            record(describe(&change), outcome, false);
        }
        Plan::Island { leader, others } => {
            // Going from two voters to one, the leader alone is a majority
            // of the new configuration and rightly commits: only changes
            // that leave two voters or more must fail.
            let mut voters = voters_seen_by(client_addr(leader)).await;
            for other in others {
                let change = MembershipChange::Remove(NodeId(other));
                let body = RequestBody::ChangeMembership(change.clone());
                let outcome = match ask(&client_addr(leader).into(), vec![body]).await {
                    Ok((_, answers)) => match answers.first() {
                        Some(ResponseBody::MembershipChanged { index }) => {
                            format!("committed at {}", index.0)
                        }
                        other => format!("unexpected answer {other:?}"),
                    },
                    Err(e) => format!("not done: {e}"),
                };
                let minority = voters.is_some_and(|v| v >= 3);
                if outcome.starts_with("committed") {
                    voters = voters.map(|v| v.saturating_sub(1));
                }
                record(
                    format!("{} via isolated s{leader}", describe(&change)),
                    outcome,
                    minority,
                );
            }
        }
    }
}

/// How many voters the configuration `addr` knows has.
async fn voters_seen_by(addr: SocketAddr) -> Option<usize> {
    let view = cluster_status(&addr.into()).await.ok()?;
    Some(
        view.members
            .iter()
            .filter(|m| m.role != MemberRole::Learner)
            .count(),
    )
}

fn describe(change: &MembershipChange) -> String {
    match change {
        MembershipChange::AddLearner(id, _) => format!("add s{}", id.0),
        MembershipChange::Promote(id) => format!("promote s{}", id.0),
        MembershipChange::Remove(id) => format!("remove s{}", id.0),
        MembershipChange::SetAddrs(id, _) => format!("set addresses of s{}", id.0),
    }
}

/// Asks the servers in turn until the change commits, is found already in
/// effect, is refused for good, or [`CHANGE_PATIENCE`] runs out.
async fn change_until_done(
    servers: &[SocketAddr],
    change: &MembershipChange,
    time: TrueTime,
) -> String {
    let give_up = time.now_us() + u64::try_from(CHANGE_PATIENCE.as_micros()).unwrap_or(u64::MAX);
    let mut last = String::new();
    while time.now_us() < give_up {
        for &addr in servers {
            let body = RequestBody::ChangeMembership(change.clone());
            match ask(&addr.into(), vec![body]).await {
                Ok((_, answers)) => {
                    if let Some(ResponseBody::MembershipChanged { index }) = answers.first() {
                        return format!("committed at {}", index.0);
                    }
                }
                Err(AskError::Refused(ProtoError::Membership(e))) => match e.meaning(change) {
                    Refusal::InEffect => return format!("committed before: {e}"),
                    Refusal::Wait => last = e.to_string(),
                    Refusal::Final => return format!("refused: {e}"),
                },
                Err(e) => last = e.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    format!("gave up: {last}")
}
