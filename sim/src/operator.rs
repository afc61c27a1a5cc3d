//! The simulation's operator: membership changes under load (SIMULATION.md,
//! S12), made through the same `ChangeMembership` requests as `distlock
//! members`, from a node of its own that partitions between servers do not
//! touch.
//!
//! Plans, drawn per fault (or written in a scenario file's timeline):
//! - replace a follower: start a joining server, add it, promote it once
//!   it has caught up, remove the follower;
//! - replace the leader: the same, removing the leader;
//! - island: isolate the leader, then ask it (and only it) to remove every
//!   other server; a minority must never commit such a change;
//! - blank node crashed mid-catch-up: start and add a joining server that
//!   needs the log or a snapshot, and power-cut it soon after;
//! - a scenario file's `join` (add a server, and promote it) and `ask` (one
//!   change asked once of one server, such as a leader just elected).
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
    /// Make these changes in order, each asked of the servers in turn until
    /// it commits; stop at the first that does not.
    Changes(Vec<MembershipChange>),
    /// Ask isolated leader `leader` to remove each of `others`.
    Island {
        /// The isolated leader.
        leader: u64,
        /// Everyone else.
        others: Vec<u64>,
    },
    /// Ask server `server` once for `change`, whatever it is now (a
    /// scenario file's `ask`: a leader just elected, or one just cut off).
    AskOnce {
        /// The server asked.
        server: u64,
        /// The change.
        change: MembershipChange,
    },
}

impl Plan {
    /// Add `new`, promote it, remove `old`.
    #[must_use]
    pub fn replace(new: u64, old: u64) -> Self {
        Self::Changes(vec![
            add_change(new),
            MembershipChange::Promote(NodeId(new)),
            MembershipChange::Remove(NodeId(old)),
        ])
    }
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
    let record = |change: String, outcome: String, island: bool, asked: u64| {
        history.push(
            time.now_us(),
            Ev::Membership {
                change,
                outcome,
                island,
                asked,
            },
        );
    };
    match plan {
        Plan::Changes(steps) => {
            for change in steps {
                let asked = time.now_us();
                let outcome = change_until_done(&all, &change, time).await;
                let done = outcome.starts_with("committed");
                record(describe(&change), outcome, false, asked);
                if !done {
                    return;
                }
            }
        }
        Plan::AskOnce { server, change } => {
            let asked = time.now_us();
            let outcome = ask_once(client_addr(server), &change).await;
            record(
                format!("{} asked of s{server}", describe(&change)),
                outcome,
                false,
                asked,
            );
        }
        Plan::Island { leader, others } => {
            // Going from two voters to one, the leader alone is a majority
            // of the new configuration and rightly commits: only changes
            // that leave two voters or more must fail.
            let mut voters = voters_seen_by(client_addr(leader)).await;
            for other in others {
                let change = MembershipChange::Remove(NodeId(other));
                let asked = time.now_us();
                let outcome = ask_once(client_addr(leader), &change).await;
                let minority = voters.is_some_and(|v| v >= 3);
                if outcome.starts_with("committed") {
                    voters = voters.map(|v| v.saturating_sub(1));
                }
                record(
                    format!("{} via isolated s{leader}", describe(&change)),
                    outcome,
                    minority,
                    asked,
                );
            }
        }
    }
}

/// Asks `addr` once for `change`: "committed at N", or why not.
async fn ask_once(addr: SocketAddr, change: &MembershipChange) -> String {
    let body = RequestBody::ChangeMembership(change.clone());
    match ask(&addr.into(), vec![body]).await {
        Ok((_, answers)) => match answers.first() {
            Some(ResponseBody::MembershipChanged { index }) => format!("committed at {}", index.0),
            other => format!("unexpected answer {other:?}"),
        },
        Err(e) => format!("not done: {e}"),
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

pub(crate) fn describe(change: &MembershipChange) -> String {
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
