//! Faults drawn from the seed. A [`FaultSet`] names the classes a run may
//! use; [`Timeline`] turns the seed into a schedule of fault starts and
//! their heals (which may overlap), and [`World::apply`] carries each out
//! on the cluster, the client nodes and the network. Steps that act on
//! roles (the leader as elected, a server bound to a label) are in
//! `role_steps`.

use crate::chaos::Storm;
use crate::cluster::Cluster;
use crate::history::Ev;
use crate::workload::{Workload, client_process};
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};
use rand_chacha::ChaCha8Rng;
use rand_core::Rng;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

mod operator_faults;
mod role_steps;

pub use operator_faults::AskedChange;
pub use role_steps::{Awaiting, ELECTION_WAIT_US, Target};

/// The fault classes, by the names `--faults` takes.
pub const CLASSES: &[&str] = &[
    "kill",
    "kill_majority",
    "kill_all",
    "pause",
    "partition",
    "oneway",
    "isolate_leader",
    "loss",
    "disk",
    "clock",
    "client_crash",
    "client_pause",
    "client_cut",
    "membership",
    "chaos",
    "append_cut",
    "rogue",
    "corrupt",
];

/// Which fault classes a run uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultSet {
    /// Enabled classes, a subset of [`CLASSES`] in their order.
    pub classes: Vec<&'static str>,
    /// Let clocks drift beyond the assumed bound (violations of no early
    /// release are then assumption breaches, not bugs).
    pub clock_breach: bool,
}

/// A `--faults` value that names no known class.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault class {0:?}; known: all, none, clock_breach, {list}", list = CLASSES.join(", "))]
pub struct UnknownFault(pub String);

impl FaultSet {
    /// Every class (within the clock bound).
    #[must_use]
    pub fn all() -> Self {
        Self {
            classes: CLASSES.to_vec(),
            clock_breach: false,
        }
    }

    /// Parses `all`, `none` or a comma-separated list of classes.
    ///
    /// # Errors
    /// [`UnknownFault`] for a name that is not a class.
    pub fn parse(s: &str) -> Result<Self, UnknownFault> {
        let mut set = Self::default();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "all" => set.classes = CLASSES.to_vec(),
                "none" => {}
                "clock_breach" => set.clock_breach = true,
                _ => {
                    let Some(c) = CLASSES.iter().find(|c| **c == name) else {
                        return Err(UnknownFault(name.to_owned()));
                    };
                    if !set.classes.contains(c) {
                        set.classes.push(c);
                    }
                }
            }
        }
        set.classes
            .sort_by_key(|c| CLASSES.iter().position(|x| x == c));
        Ok(set)
    }

    /// The canonical spelling (`all`, `none` or the list).
    #[must_use]
    pub fn name(&self) -> String {
        let mut s = if self.classes.len() == CLASSES.len() {
            "all".to_owned()
        } else if self.classes.is_empty() {
            "none".to_owned()
        } else {
            self.classes.join(",")
        };
        if self.clock_breach {
            s.push_str(",clock_breach");
        }
        s
    }
}

/// One step of a fault schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start a fault of this class.
    Start(&'static str),
    /// Kill these servers.
    Kill(Vec<u64>),
    /// Restart these servers.
    Restart(Vec<u64>),
    /// Resume a paused server.
    ResumeServer(u64),
    /// Cut these server pairs from each other (both ways), e.g. a
    /// majority ring or a bridge.
    Cut(Vec<(u64, u64)>),
    /// Heal every network fault.
    HealNetwork,
    /// Clear a server's disk faults.
    ClearDisk(u64),
    /// Bring back a crashed client node (a new client process).
    RestartClient(usize),
    /// Resume a paused client node.
    ResumeClient(usize),
    /// Cut one server off from every other server but the labelled ones
    /// that stay with it (peer links only; no heal of its own), binding
    /// the label to it when one is given.
    Isolate {
        /// Which server.
        who: Target,
        /// The label it is bound to from now on.
        label: Option<String>,
        /// Labels of the servers cut off with it.
        with: Vec<String>,
    },
    /// Drop every `Append` and `Heartbeat` between servers, votes still
    /// flowing, until the network heals.
    CutAllAppends,
    /// Drop every `Append` and `Heartbeat` sent to one server, votes still
    /// flowing, until the network heals, binding the label to it when one
    /// is given.
    CutAppendsInto {
        /// Which server.
        who: Target,
        /// The label it is bound to from now on.
        label: Option<String>,
    },
    /// Start a server that joins, and have the operator add it (and
    /// promote it, for a voter), binding the label to it when one is
    /// given.
    Join {
        /// Promote it once it has caught up.
        voter: bool,
        /// The label it is bound to from now on.
        label: Option<String>,
    },
    /// Have the operator ask one server, once, for a membership change.
    Ask {
        /// The change.
        change: AskedChange,
        /// The server it is about.
        subject: Target,
        /// The server asked.
        of: Target,
    },
    /// Carry out `then` once a leader of a higher term than any leading
    /// now appears, after a delay drawn from `delay_us` (µs, inclusive).
    OnElection {
        /// The delay's range.
        delay_us: (u64, u64),
        /// The step to carry out.
        then: Box<Self>,
    },
    /// An [`Action::OnElection`] waiting (scheduled by it, not written).
    AwaitElection(Awaiting),
}

/// Fault steps ordered by true time (µs), then by insertion.
#[derive(Debug, Default)]
pub struct Timeline {
    steps: BTreeMap<(u64, u64), Action>,
    seq: u64,
}

impl Timeline {
    /// Schedules `action` at true time `t`.
    pub fn at(&mut self, t: u64, action: Action) {
        self.seq += 1;
        self.steps.insert((t, self.seq), action);
    }

    /// The earliest step, removed.
    pub fn pop(&mut self) -> Option<(u64, Action)> {
        self.steps.pop_first().map(|((t, _), a)| (t, a))
    }

    /// The earliest step's time.
    #[must_use]
    pub fn next_at(&self) -> Option<u64> {
        self.steps.keys().next().map(|(t, _)| *t)
    }
}

/// A client node and whether it runs.
pub struct ClientNode {
    /// The madsim node.
    pub node: NodeHandle,
    /// Running (not crashed).
    pub up: bool,
    /// Paused.
    pub paused: bool,
}

/// What the faults act on.
pub struct World {
    /// The servers.
    pub cluster: Cluster,
    /// The client nodes.
    pub clients: Vec<ClientNode>,
    /// The workload they run.
    pub workload: Arc<Workload>,
    /// The fault RNG (its own stream, so faults do not shift with the
    /// scheduler's draws).
    pub rng: ChaCha8Rng,
    /// Session TTLs' upper bound, which scales fault durations.
    pub ttl_max_ms: u64,
    /// Largest clock drift a run may set, ppm.
    pub max_drift_ppm: i64,
    /// Kills wait (up to 500 ms) for a server with unsynced writes and take
    /// it down first: the crash-right-after-a-write adversary.
    pub kill_when_dirty: bool,
    /// How long the pending kill has waited, ms.
    pub dirty_wait_ms: u64,
    /// The operator's node (membership changes), made on first use.
    pub operator: Option<NodeHandle>,
    /// The rogue peer's node (S19), made on first use.
    pub rogue: Option<NodeHandle>,
    /// Servers bound to labels by role steps.
    pub labels: BTreeMap<String, u64>,
}

/// A node of the harness's own (the operator, the rogue peer) at `ip`.
fn side_node(name: &str, ip: [u8; 4]) -> NodeHandle {
    Handle::current()
        .create_node()
        .name(name)
        .ip(std::net::IpAddr::from(ip))
        .build()
}

fn range(rng: &mut ChaCha8Rng, lo: u64, hi: u64) -> u64 {
    lo + rng.next_u64() % (hi.saturating_sub(lo) + 1)
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> Option<T> {
    if items.is_empty() {
        return None;
    }
    items
        .get(usize::try_from(rng.next_u64() % items.len() as u64).unwrap_or(0))
        .copied()
}

impl World {
    fn now(&self) -> u64 {
        self.workload.time.now_us()
    }

    fn note(&self, what: String) {
        self.workload.history.push(self.now(), Ev::Fault { what });
    }

    /// `k` distinct random server ids.
    fn some_servers(&mut self, k: usize) -> Vec<u64> {
        let mut ids = self.cluster.ids();
        let mut out = Vec::new();
        while out.len() < k && !ids.is_empty() {
            let i = usize::try_from(self.rng.next_u64() % ids.len() as u64).unwrap_or(0);
            out.push(ids.remove(i));
        }
        out.sort_unstable();
        out
    }

    /// `k` victims for a kill: servers with unsynced writes first (in
    /// random order), then random others.
    fn victims(&mut self, k: usize) -> Vec<u64> {
        let mut out: Vec<u64> = Vec::new();
        let mut dirty: Vec<u64> = self
            .cluster
            .servers
            .iter()
            .filter(|s| s.up && s.disk.dirty())
            .map(|s| s.id)
            .collect();
        while out.len() < k && !dirty.is_empty() {
            let i = usize::try_from(self.rng.next_u64() % dirty.len() as u64).unwrap_or(0);
            out.push(dirty.remove(i));
        }
        for id in self.some_servers(k) {
            if out.len() < k && !out.contains(&id) {
                out.push(id);
            }
        }
        out.sort_unstable();
        out
    }

    /// Whether a kill should wait another millisecond for a dirty disk.
    fn postpone_kill(&mut self) -> bool {
        if !self.kill_when_dirty {
            return false;
        }
        let dirty = self.cluster.servers.iter().any(|s| s.up && s.disk.dirty());
        if dirty || self.dirty_wait_ms >= 500 {
            self.dirty_wait_ms = 0;
            return false;
        }
        self.dirty_wait_ms += 1;
        true
    }

    /// Starts a client process on client node `i`.
    pub fn spawn_client(&mut self, i: usize) {
        let seed = self.rng.next_u64();
        let w = self.workload.clone();
        if let Some(c) = self.clients.get(i) {
            c.node.spawn(client_process(w, seed));
        }
    }

    /// Carries out one step, scheduling its heal on `tl`.
    pub fn apply(&mut self, action: Action, tl: &mut Timeline) {
        let now = self.now();
        let ttl = self.ttl_max_ms * 1000;
        let n = self.cluster.servers.len();
        match action {
            Action::Start(class) => self.start(class, now, ttl, n, tl),
            Action::Kill(ids) => {
                let tear = self.rng.next_u64() % 2 == 0;
                for id in ids {
                    self.cluster.kill(id, &mut self.rng, tear);
                }
            }
            Action::Restart(ids) => {
                let all_down = self.cluster.servers.iter().all(|s| !s.up);
                for id in ids {
                    self.cluster.restart(id);
                }
                if all_down {
                    self.workload.history.push(now, Ev::ClusterRestart);
                }
            }
            Action::ResumeServer(id) => self.cluster.resume(id),
            Action::Cut(pairs) => {
                for &(a, b) in &pairs {
                    if let (Some(x), Some(y)) = (self.cluster.node_id(a), self.cluster.node_id(b)) {
                        self.cluster.clog(x, y);
                        self.cluster.clog(y, x);
                    }
                }
                self.note(format!("cut links {pairs:?}"));
            }
            Action::HealNetwork => {
                self.cluster.chaos.calm();
                self.cluster.heal_network();
                NetSim::current().update_config(|c| {
                    c.packet_loss_rate = 0.0;
                    c.send_latency = Duration::from_millis(1)..Duration::from_millis(10);
                });
            }
            Action::ClearDisk(id) => {
                if let Some(s) = self.cluster.servers.iter().find(|s| s.id == id) {
                    s.disk.set_faults(s.disk.faults().healed());
                }
                self.note(format!("disk of s{id} healthy"));
            }
            Action::RestartClient(i) => {
                if let Some(c) = self.clients.get_mut(i) {
                    if !c.up {
                        Handle::current().restart(c.node.id());
                        c.up = true;
                        self.note(format!("client node c{i} back"));
                        self.spawn_client(i);
                    }
                }
            }
            Action::ResumeClient(i) => {
                if let Some(c) = self.clients.get_mut(i) {
                    if c.paused && c.up {
                        Handle::current().resume(c.node.id());
                        c.paused = false;
                        self.note(format!("resume client c{i}"));
                    }
                }
            }
            Action::Isolate { who, label, with } => self.isolate(&who, label.as_deref(), &with),
            Action::CutAppendsInto { who, label } => self.cut_appends_into(&who, label.as_deref()),
            Action::Join { voter, label } => self.join(voter, label.as_deref()),
            Action::Ask {
                change,
                subject,
                of,
            } => self.ask(change, &subject, &of),
            Action::CutAllAppends => {
                self.cluster.chaos.cut_all_appends();
                self.note("appends cut on every link (votes still flow)".to_owned());
            }
            Action::OnElection { delay_us, then } => self.on_election(delay_us, then, now, tl),
            Action::AwaitElection(w) => self.await_election(w, now, tl),
        }
    }

    /// Schedules the restart of killed servers: all together, or (half
    /// the time) each after its own delay, so that the first ones back
    /// may form a majority without the others' logs.
    fn restart_later(&mut self, ids: Vec<u64>, now: u64, ttl: u64, tl: &mut Timeline) {
        if self.rng.next_u64() % 2 == 0 {
            let at = now + range(&mut self.rng, 100_000, 2 * ttl);
            tl.at(at, Action::Restart(ids));
            return;
        }
        for id in ids {
            let at = now + range(&mut self.rng, 50_000, 2 * ttl);
            tl.at(at, Action::Restart(vec![id]));
        }
    }

    #[allow(clippy::too_many_lines)]
    fn start(&mut self, class: &'static str, now: u64, ttl: u64, n: usize, tl: &mut Timeline) {
        let minority = (n - 1) / 2;
        let majority = n / 2 + 1;
        if class.starts_with("kill") && self.postpone_kill() {
            tl.at(now + 1_000, Action::Start(class));
            return;
        }
        match class {
            "kill" => {
                let k = usize::try_from(range(&mut self.rng, 1, minority as u64)).unwrap_or(1);
                let ids = self.victims(k);
                self.apply(Action::Kill(ids.clone()), tl);
                self.restart_later(ids, now, ttl, tl);
            }
            "kill_majority" => {
                let ids = self.victims(majority);
                self.apply(Action::Kill(ids.clone()), tl);
                self.restart_later(ids, now, ttl, tl);
            }
            "kill_all" => {
                let ids = self.cluster.ids();
                self.apply(Action::Kill(ids.clone()), tl);
                self.restart_later(ids, now, ttl, tl);
            }
            "pause" => {
                if let Some(id) = pick(&mut self.rng, &self.cluster.ids()) {
                    self.cluster.pause(id);
                    tl.at(
                        now + range(&mut self.rng, 50_000, 3 * ttl),
                        Action::ResumeServer(id),
                    );
                }
            }
            "partition" => {
                let k = usize::try_from(range(&mut self.rng, 1, minority as u64)).unwrap_or(1);
                let side = self.some_servers(k);
                self.cluster.cut_off(side);
                tl.at(
                    now + range(&mut self.rng, 200_000, 3 * ttl),
                    Action::HealNetwork,
                );
            }
            "oneway" => {
                let pair = self.some_servers(2);
                if let [a, b] = pair[..] {
                    if let (Some(x), Some(y)) = (self.cluster.node_id(a), self.cluster.node_id(b)) {
                        self.cluster.clog(x, y);
                        self.note(format!("one-way cut s{a} -> s{b}"));
                    }
                }
                tl.at(
                    now + range(&mut self.rng, 200_000, 3 * ttl),
                    Action::HealNetwork,
                );
            }
            "isolate_leader" => {
                if let Some(l) = self.cluster.leader() {
                    self.note(format!("isolate leader s{l}"));
                    self.cluster.isolate(l);
                    tl.at(
                        now + range(&mut self.rng, 200_000, 3 * ttl),
                        Action::HealNetwork,
                    );
                }
            }
            "loss" => {
                let loss =
                    f64::from(u32::try_from(range(&mut self.rng, 1, 30)).unwrap_or(1)) / 100.0;
                let hi = range(&mut self.rng, 10, 80);
                NetSim::current().update_config(|c| {
                    c.packet_loss_rate = loss;
                    c.send_latency = Duration::from_millis(1)..Duration::from_millis(hi);
                });
                self.note(format!("packet loss {loss}, latency 1..{hi} ms"));
                tl.at(
                    now + range(&mut self.rng, 500_000, 3 * ttl),
                    Action::HealNetwork,
                );
            }
            "disk" => {
                let Some(id) = pick(&mut self.rng, &self.cluster.ids()) else {
                    return;
                };
                let Some(disk) = self
                    .cluster
                    .servers
                    .iter()
                    .find(|s| s.id == id)
                    .map(|s| s.disk.clone())
                else {
                    return;
                };
                let kind = self.rng.next_u64() % 3;
                match kind {
                    0 => {
                        disk.update_faults(|f| f.fail_next_sync = true);
                        self.note(format!("s{id}: next fsync fails"));
                    }
                    1 => {
                        disk.update_faults(|f| f.full = true);
                        self.note(format!("s{id}: disk full"));
                    }
                    _ => {
                        let ms = range(&mut self.rng, 20, 700);
                        disk.update_faults(|f| f.sync_latency = Duration::from_millis(ms));
                        self.note(format!("s{id}: fsync takes {ms} ms"));
                    }
                }
                tl.at(
                    now + range(&mut self.rng, 500_000, 3 * ttl),
                    Action::ClearDisk(id),
                );
            }
            "clock" => {
                if let Some(id) = pick(&mut self.rng, &self.cluster.ids()) {
                    let bound = self.max_drift_ppm.unsigned_abs();
                    let ppm = i64::try_from(range(&mut self.rng, 0, 2 * bound)).unwrap_or(0)
                        - self.max_drift_ppm;
                    if let Some(s) = self.cluster.servers.iter().find(|s| s.id == id) {
                        s.clock.set_drift(ppm);
                    }
                    self.note(format!("s{id} clock drift {ppm} ppm"));
                }
            }
            "client_crash" => {
                let ups: Vec<usize> = (0..self.clients.len())
                    .filter(|&i| self.clients[i].up)
                    .collect();
                if let Some(i) = pick(&mut self.rng, &ups) {
                    Handle::current().kill(self.clients[i].node.id());
                    self.clients[i].up = false;
                    self.clients[i].paused = false;
                    self.note(format!("crash client node c{i}"));
                    tl.at(
                        now + range(&mut self.rng, 100_000, ttl),
                        Action::RestartClient(i),
                    );
                }
            }
            "client_pause" => {
                let ups: Vec<usize> = (0..self.clients.len())
                    .filter(|&i| self.clients[i].up && !self.clients[i].paused)
                    .collect();
                if let Some(i) = pick(&mut self.rng, &ups) {
                    Handle::current().pause(self.clients[i].node.id());
                    self.clients[i].paused = true;
                    self.note(format!("pause client c{i}"));
                    tl.at(
                        now + range(&mut self.rng, 50_000, 3 * ttl),
                        Action::ResumeClient(i),
                    );
                }
            }
            "client_cut" => {
                let all: Vec<usize> = (0..self.clients.len()).collect();
                if let Some(i) = pick(&mut self.rng, &all) {
                    let c = self.clients[i].node.id();
                    for id in self.cluster.ids() {
                        if let Some(s) = self.cluster.node_id(id) {
                            self.cluster.clog(c, s);
                            self.cluster.clog(s, c);
                        }
                    }
                    self.note(format!("cut client c{i} from the cluster"));
                    tl.at(
                        now + range(&mut self.rng, 200_000, 2 * ttl),
                        Action::HealNetwork,
                    );
                }
            }
            "membership" => self.start_membership(now, ttl, tl),
            "corrupt" => self.start_corruption(),
            "rogue" => {
                let peers: Vec<(u64, std::net::SocketAddr)> = self
                    .cluster
                    .ids()
                    .into_iter()
                    .map(|id| (id, crate::cluster::peer_addr(id)))
                    .collect();
                let (history, time) = (self.workload.history.clone(), self.workload.time);
                let rogue = self
                    .rogue
                    .get_or_insert_with(|| side_node("rogue", [10, 0, 5, 1]));
                rogue.spawn(crate::rogue::run(peers, history, time));
            }
            "chaos" => {
                let storm = Storm {
                    drop_per_mille: range(&mut self.rng, 0, 300),
                    dup_per_mille: range(&mut self.rng, 0, 300),
                    delay_per_mille: range(&mut self.rng, 0, 500),
                    max_delay: Duration::from_millis(range(&mut self.rng, 1, 300)),
                };
                self.cluster.chaos.storm(storm);
                self.note(format!(
                    "message chaos: drop {}‰, duplicate {}‰, delay {}‰ up to {:?}",
                    storm.drop_per_mille,
                    storm.dup_per_mille,
                    storm.delay_per_mille,
                    storm.max_delay
                ));
                tl.at(
                    now + range(&mut self.rng, 500_000, 3 * ttl),
                    Action::HealNetwork,
                );
            }
            "append_cut" => {
                let Some(l) = self.cluster.leader() else {
                    return;
                };
                let others: Vec<u64> = self.cluster.ids().into_iter().filter(|i| *i != l).collect();
                if let Some(f) = pick(&mut self.rng, &others) {
                    self.cluster.chaos.cut_appends(l, f);
                    self.note(format!("appends cut s{l} -> s{f} (votes still flow)"));
                    tl.at(
                        now + range(&mut self.rng, 1_000_000, 20_000_000),
                        Action::HealNetwork,
                    );
                }
            }
            _ => {}
        }
    }

    /// Ends every fault: network healed, servers and clients resumed,
    /// dead servers restarted, disks healthy.
    pub fn heal_all(&mut self) {
        let mut tl = Timeline::default();
        self.apply(Action::HealNetwork, &mut tl);
        for id in self.cluster.ids() {
            self.cluster.resume(id);
            if let Some(s) = self.cluster.servers.iter().find(|s| s.id == id) {
                s.disk.set_faults(s.disk.faults().healed());
            }
        }
        let down: Vec<u64> = self
            .cluster
            .servers
            .iter()
            .filter(|s| !s.up)
            .map(|s| s.id)
            .collect();
        let exited = self.cluster.exited();
        self.apply(Action::Restart(down), &mut tl);
        for id in exited {
            self.cluster.restart(id);
        }
        for i in 0..self.clients.len() {
            self.apply(Action::ResumeClient(i), &mut tl);
        }
        self.note("heal all".to_owned());
    }
}
