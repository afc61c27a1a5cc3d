//! Timeline steps aimed at roles rather than at fixed servers: which
//! server leads is decided by the election timers, so a schedule that must
//! catch "the leader, just elected" cannot name it in advance.
//!
//! - [`Target`] names the server a step acts on: the current leader, a
//!   server an earlier step bound to a label, or "another" server (running,
//!   not the leader, bound to no label), drawn from the fault RNG.
//! - [`Action::Isolate`] cuts one server's peer links (clients still reach
//!   it), but to the labelled servers cut off with it, and may bind a
//!   label to it.
//! - [`Action::CutAppendsInto`] drops the appends and heartbeats sent to
//!   one server, its votes still flowing, and may bind a label to it.
//! - [`Action::OnElection`] holds a step until a new leader appears: it
//!   notes the highest term any server leads now, looks every millisecond
//!   of simulated time (re-scheduling itself on the [`Timeline`], so the
//!   run stays deterministic) for a leader of a higher term, and then
//!   carries the step out after a delay drawn from the fault RNG. It gives
//!   up, with a note in the history, after [`ELECTION_WAIT_US`].

use super::{Action, Timeline, World, pick, range};
use std::fmt;

/// How long an election trigger waits for a new leader, µs of true time.
pub const ELECTION_WAIT_US: u64 = 10_000_000;

/// How often an election trigger looks for a new leader, µs. A new
/// leader's first appends are already on their way when it is seen (the
/// runtime logs the role after sending), so finer looks would not catch
/// it earlier in any way that matters.
const POLL_US: u64 = 1_000;

/// The server a role step acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The running leader of the highest term, when the step is carried
    /// out.
    Leader,
    /// The server an earlier step bound to this label.
    Label(String),
    /// A running server that is neither the leader nor bound to a label,
    /// drawn when the step is carried out.
    Other,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Leader => f.write_str("the leader"),
            Self::Label(l) => write!(f, "label {l}"),
            Self::Other => f.write_str("another server"),
        }
    }
}

/// An election trigger waiting for its leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Awaiting {
    /// Fire for a leader of a term above this one.
    pub above: u64,
    /// Give up at this true time, µs.
    pub until_us: u64,
    /// The delay after the election, drawn from this range (µs, inclusive).
    pub delay_us: (u64, u64),
    /// What to do then.
    pub then: Box<Action>,
}

impl World {
    /// The server `who` names now, if any runs; a miss is noted with
    /// `what` the step would have done.
    pub(super) fn resolve(&mut self, who: &Target, what: &str) -> Option<u64> {
        let id = match who {
            Target::Leader => self.cluster.leader(),
            Target::Label(l) => self.labels.get(l).copied(),
            Target::Other => {
                let leader = self.cluster.leader();
                let others: Vec<u64> = self
                    .cluster
                    .servers
                    .iter()
                    .filter(|s| s.up && Some(s.id) != leader)
                    .map(|s| s.id)
                    .filter(|id| !self.labels.values().any(|l| l == id))
                    .collect();
                pick(&mut self.rng, &others)
            }
        };
        if id.is_none() {
            self.note(format!("role step: no server is {who} now; {what} skipped"));
        }
        id
    }

    /// Binds `label`, if given, to server `id`.
    pub(super) fn bind(&mut self, label: Option<&str>, id: u64) {
        if let Some(l) = label {
            self.labels.insert(l.to_owned(), id);
        }
    }

    /// Cuts `who`, with the servers labelled in `with`, off from every
    /// other server (peer links only) and binds `label` to it.
    pub(super) fn isolate(&mut self, who: &Target, label: Option<&str>, with: &[String]) {
        let Some(id) = self.resolve(who, "isolation") else {
            return;
        };
        let mut group = vec![id];
        for l in with {
            match self.labels.get(l) {
                Some(&other) => group.push(other),
                None => self.note(format!(
                    "role step: no server is label {l} now; isolated without it"
                )),
            }
        }
        group.sort_unstable();
        group.dedup();
        let also = if group.len() > 1 {
            format!(" with {group:?}")
        } else {
            String::new()
        };
        // The first word keeps coverage apart: "isolate" counts as a
        // leader isolation, a labelled server's is not one.
        match who {
            Target::Leader => self.note(format!(
                "isolate leader s{id}{}{also}",
                label.map_or_else(String::new, |l| format!(" (label {l})"))
            )),
            Target::Label(l) => self.note(format!("label {l}: isolate s{id}{also}")),
            Target::Other => self.note(format!("another server: isolate s{id}{also}")),
        }
        self.cluster.cut_off(group);
        self.bind(label, id);
    }

    /// Drops the appends and heartbeats sent to `who` until the network
    /// heals, and binds `label` to it.
    pub(super) fn cut_appends_into(&mut self, who: &Target, label: Option<&str>) {
        let Some(id) = self.resolve(who, "append cut") else {
            return;
        };
        self.note(format!(
            "appends into s{id} cut (votes still flow){}",
            label.map_or_else(String::new, |l| format!(" (label {l})"))
        ));
        self.cluster.chaos.cut_appends_into(id);
        self.bind(label, id);
    }

    /// Starts an election trigger at `now`: the term to beat is the highest
    /// any running server leads now (0 when none does, so that any leader
    /// seen later is new).
    pub(super) fn on_election(
        &mut self,
        delay_us: (u64, u64),
        then: Box<Action>,
        now: u64,
        tl: &mut Timeline,
    ) {
        let above = self.cluster.leader_term().map_or(0, |(_, term)| term);
        tl.at(
            now + POLL_US,
            Action::AwaitElection(Awaiting {
                above,
                until_us: now + ELECTION_WAIT_US,
                delay_us,
                then,
            }),
        );
    }

    /// One look of an election trigger: fire, give up, or look again.
    pub(super) fn await_election(&mut self, w: Awaiting, now: u64, tl: &mut Timeline) {
        match self.cluster.leader_term() {
            Some((id, term)) if term > w.above => {
                let delay = range(&mut self.rng, w.delay_us.0, w.delay_us.1);
                self.note(format!(
                    "elected: s{id} leads term {term} (above {}); in {delay} µs: {:?}",
                    w.above, w.then
                ));
                tl.at(now + delay, *w.then);
            }
            _ if now >= w.until_us => self.note(format!(
                "role step: no leader above term {} within {} s; {:?} dropped",
                w.above,
                ELECTION_WAIT_US / 1_000_000,
                w.then
            )),
            _ => tl.at(now + POLL_US, Action::AwaitElection(w)),
        }
    }
}
