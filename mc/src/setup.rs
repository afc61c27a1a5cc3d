//! What a check explores: the cluster's initial configuration, what each
//! client asks in order, and the bounds that keep the state space finite.

use distlock_core::ids::NodeId;
use distlock_core::locks::{Mode, Wait};
use distlock_core::raft::{MemberAddrs, MembershipChange};
use distlock_core::time::Instant;

/// One request of a client's script, asked in order; each is retried (with
/// the same session and sequence number) until it gets a final answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Open a session.
    Open,
    /// Try to take `lock` in `mode` (no waiting).
    Acquire {
        /// The lock.
        lock: &'static str,
        /// How.
        mode: Mode,
    },
    /// Take `lock` in `mode`, queueing until it is granted or the session
    /// ends.
    Wait {
        /// The lock.
        lock: &'static str,
        /// How.
        mode: Mode,
    },
    /// Release `lock` (a no-op if the client does not hold it).
    Release {
        /// The lock.
        lock: &'static str,
    },
    /// Check the newest token granted on `lock` (to any client), once one
    /// was granted.
    CheckToken {
        /// The lock.
        lock: &'static str,
    },
    /// Read `lock`'s status (holders, waiters, delay).
    LockStatus {
        /// The lock.
        lock: &'static str,
    },
    /// Keep the session alive.
    KeepAlive,
    /// An operator's membership change.
    Change(MembershipChange),
}

impl Op {
    /// How an acquire waits: `Op::Wait` queues until granted, anything
    /// else only tries.
    #[must_use]
    pub const fn wait(&self) -> Wait {
        match self {
            Self::Wait { .. } => Wait::Forever,
            _ => Wait::Try,
        }
    }

    /// The text a trace shows for it.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Open => "open".into(),
            Self::Acquire { lock, mode } => {
                format!("acquire {lock} {}", crate::describe::mode(*mode))
            }
            Self::Wait { lock, mode } => {
                format!("wait for {lock} {}", crate::describe::mode(*mode))
            }
            Self::Release { lock } => format!("release {lock}"),
            Self::CheckToken { lock } => format!("check-token {lock}"),
            Self::LockStatus { lock } => format!("lock-status {lock}"),
            Self::KeepAlive => "keepalive".into(),
            Self::Change(MembershipChange::AddLearner(id, _)) => format!("add-learner {id}"),
            Self::Change(MembershipChange::Promote(id)) => format!("promote {id}"),
            Self::Change(MembershipChange::Remove(id)) => format!("remove {id}"),
            Self::Change(MembershipChange::SetAddrs(id, _)) => format!("set-addrs {id}"),
        }
    }
}

/// Limits on the exploration. Every one of them bounds a kind of step; a
/// state whose every step is beyond a bound is a leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Steps after the initial state.
    pub depth: usize,
    /// No server starts an election beyond this term.
    pub max_term: u64,
    /// Crashes (each followed at once by a restart from the disk).
    pub crashes: u32,
    /// Messages delivered and kept in flight to be delivered again.
    pub duplicates: u32,
    /// Messages dropped explicitly. A message never delivered is already
    /// a lost one, since every state is checked; explicit drops only make
    /// room under `in_flight`.
    pub drops: u32,
    /// Peer messages in flight at once; a server sending beyond it loses
    /// the message (the network may lose anything).
    pub in_flight: usize,
    /// Heartbeat timers a leader may fire, all leaders together.
    pub leader_ticks: u32,
    /// Election timers that may fire (a follower or candidate timing
    /// out), all servers together.
    pub elections: u32,
    /// Sends of one client request (the first and its retries).
    pub sends_per_op: u32,
    /// A planted bug in the checker's own driver, for its tests: the disk
    /// reports writes durable without keeping them.
    pub disk_lies: bool,
    /// The servers' `max_append_entries`: how many entries one append
    /// carries. The core's default sends a short log whole, so an append
    /// that ends inside what a follower must receive (between an old
    /// term's entries and the new leader's first) needs a smaller one.
    pub append_entries: usize,
    /// The servers' `snapshot_threshold` (0: never): a server snapshots
    /// its state every this many applied entries and keeps no log behind
    /// the snapshot, so that a lagging follower is sent it and a crashed
    /// server restarts from it.
    pub snapshot_every: u64,
    /// Timers the library clients may fire (keepalives, retries, timeouts,
    /// reconnections, their lease running out), all clients together.
    pub client_ticks: u32,
}

/// Clocks tied to one true time, for configurations whose properties
/// need it (a lease against its expiry). Without them every server's
/// clock is its own, unrelated to the others': time then bounds nothing,
/// which over-approximates any drift for the properties that do not
/// mention time, and no lease is short enough to run out.
///
/// With them the checker keeps the true time. Each clock runs at a fixed
/// rate off it, `1 + ppm / 10⁶`, within the drift bound the client
/// assumes; true time moves only when a timer fires (the step moves it to
/// the moment the server's clock reads the deadline, unless it is already
/// later: a timer may fire late, never early), and every message and
/// request takes no true time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clocks {
    /// The sessions' TTL, in milliseconds (the core's least is 1 000).
    pub ttl_ms: u64,
    /// The drift bound the clients assume (`Config::max_drift_ppm` of the
    /// client library).
    pub max_drift_ppm: u32,
    /// Each server's clock rate off true time, in parts per million, in
    /// server order (each within the bound).
    pub server_ppm: Vec<i64>,
    /// The clients' clock rate.
    pub client_ppm: i64,
}

impl Clocks {
    /// What a clock running at `ppm` reads at true time `t`.
    #[must_use]
    pub fn local(ppm: i64, t: Instant) -> Instant {
        let us = i128::from(t.as_micros()) * (1_000_000 + i128::from(ppm)) / 1_000_000;
        Instant::from_micros(u64::try_from(us).unwrap_or(0))
    }

    /// The first true time at which a clock running at `ppm` reads at
    /// least `reading`.
    #[must_use]
    pub fn true_time(ppm: i64, reading: Instant) -> Instant {
        let rate = 1_000_000 + i128::from(ppm);
        let us = (i128::from(reading.as_micros()) * 1_000_000 + rate - 1) / rate;
        let t = Instant::from_micros(u64::try_from(us).unwrap_or(u64::MAX));
        debug_assert!(Self::local(ppm, t) >= reading);
        t
    }
}

/// A configuration to check.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Its name, as the command line and the reports spell it.
    pub name: &'static str,
    /// What it checks, in a sentence.
    pub about: &'static str,
    /// Every server, in id order.
    pub servers: Vec<NodeId>,
    /// The voters of the cluster as first started; a server outside
    /// them starts empty, waiting to be added.
    pub voters: Vec<NodeId>,
    /// Each client's script.
    pub clients: Vec<Vec<Op>>,
    /// How many of each script's first requests are answered during the
    /// deterministic warm-up, before the exhaustive exploration starts.
    pub warm_up_ops: Vec<usize>,
    /// Steps taken after the warm-up, to start the search from a chosen
    /// state (see [`crate::prefix`]); empty for the quiet cluster.
    pub prefix: Vec<&'static str>,
    /// The bounds of the exhaustive part.
    pub bounds: Bounds,
    /// True time and drifting clocks, or `None` for unrelated clocks.
    pub clocks: Option<Clocks>,
    /// The clients run by the client library's session machine
    /// ([`crate::world::library`]) rather than scripted, by index; they
    /// need true time.
    pub library: Vec<usize>,
    /// The lock-delay every acquire asks for, ms (0: none).
    pub lock_delay_ms: u64,
}

/// The addresses a server added by a membership change publishes.
#[must_use]
pub fn addrs(id: NodeId) -> MemberAddrs {
    MemberAddrs {
        peer: format!("10.0.0.{}:7100", id.0),
        client: format!("10.0.0.{}:7000", id.0),
        ws: None,
    }
}

#[cfg(test)]
mod tests {
    use super::Clocks;
    use distlock_core::time::Instant;

    #[test]
    fn a_timer_fires_at_the_first_true_time_its_clock_reads_the_deadline() {
        for ppm in [-10_000, -1, 0, 1, 10_000, 499_999] {
            for us in [0, 1, 999, 1_000_000, 1_234_567, 987_654_321] {
                let reading = Instant::from_micros(us);
                let t = Clocks::true_time(ppm, reading);
                assert!(Clocks::local(ppm, t) >= reading, "{ppm} {us}");
                if t > Instant::ZERO {
                    let before = Instant::from_micros(t.as_micros() - 1);
                    assert!(Clocks::local(ppm, before) < reading, "{ppm} {us}");
                }
            }
        }
    }
}
