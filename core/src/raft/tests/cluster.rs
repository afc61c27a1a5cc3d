//! A deterministic in-memory cluster: N Raft servers, a network that loses,
//! duplicates, delays and reorders messages and can be partitioned one way
//! or both, disks that lose whatever was not reported durable when their
//! server crashes, and per-server clocks that drift. True time is virtual
//! and jumps to the next event. Every step is checked by [`Invariants`].
//!
//! Its controls use the vocabulary shared by every multi-server harness
//! (docs/SIMULATION.md §11): `cut`, `cut_one_way`, `isolate`, `heal`,
//! `crash`, `restart`, `run_to` (a time), `run_for` (a duration),
//! `run_until` (a condition, within a limit), `leader`.

use super::DigestMachine;
use super::invariants::{Invariants, payload_digest};
use crate::ids::{LogIndex, NodeId, Term};
use crate::raft::{
    Action, Config, Membership, Message, MessageBody, Persist, ProposeError, Raft, Role, Stored,
};
use crate::testkit::links::Links;
use crate::testkit::{Disk, DriftClock};
use crate::time::{Duration, Instant};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::collections::{BTreeMap, VecDeque};

/// One server slot of the cluster.
pub(crate) struct SimNode {
    pub(crate) id: NodeId,
    pub(crate) raft: Option<Raft<DigestMachine>>,
    pub(crate) durable: Disk<u64>,
    /// What the disk will hold once every pending write lands (for checks).
    pub(crate) written: Disk<u64>,
    pending: VecDeque<Persist<u64>>,
    /// When the fsync in progress completes, and how many pending writes it covers.
    sync: Option<(u64, usize)>,
    clock: DriftClock,
    /// Set while the server is stopped by the test and must stay down.
    pub(crate) retired: bool,
    last_role: Option<(Role, Term)>,
}

impl SimNode {
    pub(crate) fn is_up(&self) -> bool {
        self.raft.is_some()
    }

    fn local(&self, true_us: u64) -> Instant {
        self.clock.local(true_us)
    }

    fn true_time_of(&self, deadline: Instant, now: u64) -> u64 {
        self.clock.true_time_of(deadline, now)
    }
}

/// Network behaviour, changeable at any time.
#[derive(Clone, Debug)]
pub(crate) struct NetConfig {
    pub(crate) loss: f64,
    pub(crate) duplicate: f64,
    pub(crate) min_delay_us: u64,
    pub(crate) max_delay_us: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            loss: 0.0,
            duplicate: 0.0,
            min_delay_us: 200,
            max_delay_us: 2_000,
        }
    }
}

/// Disk behaviour.
#[derive(Clone, Debug)]
pub(crate) struct DiskConfig {
    pub(crate) min_fsync_us: u64,
    pub(crate) max_fsync_us: u64,
    /// On a crash, unreported writes may survive in part (torn, not lost whole).
    pub(crate) torn_writes: bool,
}

impl Default for DiskConfig {
    fn default() -> Self {
        Self {
            min_fsync_us: 100,
            max_fsync_us: 1_500,
            torn_writes: true,
        }
    }
}

/// The cluster under test.
pub(crate) struct Cluster {
    pub(crate) seed: u64,
    pub(crate) rng: ChaCha8Rng,
    /// True time in microseconds.
    pub(crate) now: u64,
    pub(crate) nodes: Vec<SimNode>,
    pub(crate) cfg_template: Config,
    initial: Membership,
    /// In-flight messages by (delivery time, sequence).
    net: BTreeMap<(u64, u64), Message<u64>>,
    net_seq: u64,
    pub(crate) net_cfg: NetConfig,
    pub(crate) disk_cfg: DiskConfig,
    /// Links that drop everything.
    links: Links,
    pub(crate) inv: Invariants,
    /// Proposals made: (node, index, term) → command.
    proposals: BTreeMap<(NodeId, LogIndex, Term), u64>,
    pub(crate) steps: u64,
    restarts: u64,
    /// Print persists, role changes and crashes as they happen (seed replays).
    pub(crate) trace: bool,
    /// Snapshot transfers a follower reported complete.
    pub(crate) snapshots_installed: u64,
    /// Messages delivered, by (recipient, kind).
    pub(crate) delivered: BTreeMap<(NodeId, &'static str), u64>,
}

fn kind(body: &MessageBody<u64>) -> &'static str {
    match body {
        MessageBody::PreVote { .. } => "PreVote",
        MessageBody::PreVoteResponse { .. } => "PreVoteResponse",
        MessageBody::Vote { .. } => "Vote",
        MessageBody::VoteResponse { .. } => "VoteResponse",
        MessageBody::Append { .. } => "Append",
        MessageBody::AppendResponse { .. } => "AppendResponse",
        MessageBody::Heartbeat { .. } => "Heartbeat",
        MessageBody::HeartbeatResponse { .. } => "HeartbeatResponse",
        MessageBody::InstallSnapshot { .. } => "InstallSnapshot",
        MessageBody::InstallSnapshotResponse { .. } => "InstallSnapshotResponse",
        MessageBody::TimeoutNow => "TimeoutNow",
    }
}

impl Cluster {
    /// `voters` servers forming the initial cluster plus `spares` servers
    /// that are not started (they may join later as learners).
    pub(crate) fn new(
        seed: u64,
        voters: usize,
        spares: usize,
        cfg: Config,
        max_drift_ppm: i64,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let initial = Membership::with_voters((1..=voters as u64).map(NodeId));
        let mut nodes = Vec::new();
        for i in 1..=(voters + spares) as u64 {
            let drift = if max_drift_ppm > 0 {
                i64::try_from(rng.next_u64() % (2 * max_drift_ppm as u64 + 1)).unwrap_or(0)
                    - max_drift_ppm
            } else {
                0
            };
            nodes.push(SimNode {
                id: NodeId(i),
                raft: None,
                durable: Disk::default(),
                written: Disk::default(),
                pending: VecDeque::new(),
                sync: None,
                clock: DriftClock {
                    offset_us: rng.next_u64() % 1_000_000_000,
                    drift_ppm: drift,
                },
                retired: false,
                last_role: None,
            });
        }
        let mut c = Self {
            seed,
            rng,
            now: 0,
            nodes,
            cfg_template: cfg,
            initial,
            net: BTreeMap::new(),
            net_seq: 0,
            net_cfg: NetConfig::default(),
            disk_cfg: DiskConfig::default(),
            links: Links::default(),
            inv: Invariants::default(),
            proposals: BTreeMap::new(),
            steps: 0,
            restarts: 0,
            delivered: BTreeMap::new(),
            snapshots_installed: 0,
            trace: false,
        };
        for i in 1..=voters as u64 {
            c.start(NodeId(i), true);
        }
        c
    }

    fn slot(&self, id: NodeId) -> usize {
        usize::try_from(id.0 - 1).unwrap_or(usize::MAX)
    }

    pub(crate) fn node(&self, id: NodeId) -> &SimNode {
        &self.nodes[self.slot(id)]
    }

    pub(crate) fn raft(&self, id: NodeId) -> Option<&Raft<DigestMachine>> {
        self.node(id).raft.as_ref()
    }

    /// How many messages of `kind` reached `to`.
    pub(crate) fn delivered_to(&self, to: NodeId, kind: &'static str) -> u64 {
        self.delivered.get(&(to, kind)).copied().unwrap_or(0)
    }

    pub(crate) fn ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Starts (or restarts) a server from its durable disk. `bootstrap`: a
    /// member of the initial cluster (otherwise it joins with no configuration).
    pub(crate) fn start(&mut self, id: NodeId, bootstrap: bool) {
        let slot = self.slot(id);
        let initial = if bootstrap {
            self.initial.clone()
        } else {
            Membership::default()
        };
        let mut cfg = self.cfg_template.clone();
        cfg.id = id;
        let node = &mut self.nodes[slot];
        let stored = Stored {
            hard_state: node.durable.hard_state,
            snapshot: node.durable.snapshot.clone(),
            entries: node.durable.entries.clone(),
            initial_membership: initial,
        };
        let now = node.local(self.now);
        self.restarts += 1;
        let rng_seed = super::mix(self.seed ^ id.0.wrapping_mul(0x1000_0001) ^ self.restarts);
        match Raft::new(cfg, DigestMachine::default(), stored, rng_seed, now) {
            Ok(r) => node.raft = Some(r),
            Err(e) => self
                .inv
                .violation(self.now, format!("{id} cannot restart from its disk: {e}")),
        }
        let node = &mut self.nodes[slot];
        node.written = node.durable.clone();
        node.last_role = None;
        self.inv.on_restart(id);
        self.after_step(id);
    }

    /// Stops a server abruptly: writes not reported durable are lost (or, with
    /// torn writes, partly kept).
    pub(crate) fn crash(&mut self, id: NodeId) {
        if self.trace {
            println!("t={} {id} CRASH", self.now);
        }
        let slot = self.slot(id);
        if self.nodes[slot].raft.is_none() {
            return;
        }
        let torn = self.disk_cfg.torn_writes;
        let keep = if torn {
            self.rng.next_u64() as usize % (self.nodes[slot].pending.len() + 1)
        } else {
            0
        };
        let parts = if torn {
            (self.rng.next_u64() % 5) as usize
        } else {
            0
        };
        let node = &mut self.nodes[slot];
        let pending: Vec<Persist<u64>> = node.pending.drain(..).collect();
        for (i, p) in pending.iter().enumerate() {
            let n = if i < keep {
                4
            } else if i == keep {
                parts
            } else {
                break;
            };
            if let Err(e) = node.durable.apply(p, n) {
                self.inv.violation(self.now, format!("{id}: {e}"));
            }
        }
        node.sync = None;
        node.raft = None;
        node.written = node.durable.clone();
    }

    pub(crate) fn restart(&mut self, id: NodeId) {
        if !self.node(id).is_up() && !self.node(id).retired {
            let bootstrap = self.initial.contains(id);
            self.start(id, bootstrap);
        }
    }

    // ---- network controls ---------------------------------------------------

    /// Blocks both directions between `a` and `b`.
    pub(crate) fn cut(&mut self, a: NodeId, b: NodeId) {
        self.links.cut(a, b);
    }

    /// Blocks one direction.
    pub(crate) fn cut_one_way(&mut self, from: NodeId, to: NodeId) {
        self.links.cut_one_way(from, to);
    }

    /// Cuts `id` off from every other server.
    pub(crate) fn isolate(&mut self, id: NodeId) {
        self.links.isolate(id, self.ids());
    }

    /// Splits the servers into two sides that cannot talk.
    pub(crate) fn partition(&mut self, side: &[NodeId]) {
        self.links.partition(side, &self.ids());
    }

    /// Unblocks both directions between `a` and `b`.
    pub(crate) fn uncut(&mut self, a: NodeId, b: NodeId) {
        self.links.uncut(a, b);
    }

    /// Restores every link.
    pub(crate) fn heal(&mut self) {
        self.links.heal();
    }

    // ---- requests -------------------------------------------------------------

    pub(crate) fn propose(
        &mut self,
        id: NodeId,
        value: u64,
    ) -> Result<(LogIndex, Term), ProposeError> {
        let slot = self.slot(id);
        let Some(raft) = self.nodes[slot].raft.as_mut() else {
            return Err(ProposeError::NotLeader { leader: None });
        };
        let r = raft.propose(value);
        if let Ok((index, term)) = r {
            self.proposals.insert((id, index, term), value);
        }
        self.after_step(id);
        r
    }

    /// Runs `f` on a server's Raft at its local time, then drains it.
    pub(crate) fn with_raft<T>(
        &mut self,
        id: NodeId,
        f: impl FnOnce(&mut Raft<DigestMachine>, Instant) -> T,
    ) -> Option<T> {
        let slot = self.slot(id);
        let now = self.nodes[slot].local(self.now);
        let out = self.nodes[slot].raft.as_mut().map(|r| f(r, now));
        self.after_step(id);
        out
    }

    /// The leader with the highest term among running servers.
    pub(crate) fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|n| {
                n.raft
                    .as_ref()
                    .filter(|r| r.is_leader())
                    .map(|r| (r.term(), n.id))
            })
            .max()
            .map(|(_, id)| id)
    }

    /// Every running server's status, one per line.
    pub(crate) fn dump(&self) -> String {
        let lines: Vec<String> = self
            .nodes
            .iter()
            .map(|n| match &n.raft {
                Some(r) => format!("{:?}", r.status()),
                None => format!("{} down", n.id),
            })
            .collect();
        lines.join("\n")
    }

    // ---- running --------------------------------------------------------------

    fn next_event(&self) -> Option<(u64, Event)> {
        let mut best: Option<(u64, Event)> = self
            .net
            .keys()
            .next()
            .map(|&(t, s)| (t, Event::Deliver(t, s)));
        for (slot, n) in self.nodes.iter().enumerate() {
            if let Some((t, _)) = n.sync {
                if best.as_ref().is_none_or(|(bt, _)| t < *bt) {
                    best = Some((t, Event::Sync(slot)));
                }
            }
            if let Some(deadline) = n.raft.as_ref().and_then(Raft::poll_timeout) {
                let t = n.true_time_of(deadline, self.now);
                if best.as_ref().is_none_or(|(bt, _)| t < *bt) {
                    best = Some((t, Event::Timer(slot)));
                }
            }
        }
        best
    }

    /// Processes events until true time `until`.
    pub(crate) fn run_to(&mut self, until: u64) {
        while let Some((t, ev)) = self.next_event() {
            if t > until || self.inv.failed() {
                break;
            }
            self.now = self.now.max(t);
            self.process(ev);
        }
        self.now = self.now.max(until);
    }

    pub(crate) fn run_for(&mut self, d: Duration) {
        let until = self.now + u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.run_to(until);
    }

    /// Runs until `pred` holds (checked after every event) or `limit` passes.
    pub(crate) fn run_until(
        &mut self,
        limit: Duration,
        mut pred: impl FnMut(&Self) -> bool,
    ) -> bool {
        let until = self.now + u64::try_from(limit.as_micros()).unwrap_or(u64::MAX);
        loop {
            if pred(self) {
                return true;
            }
            if self.inv.failed() {
                return false;
            }
            match self.next_event() {
                Some((t, ev)) if t <= until => {
                    self.now = self.now.max(t);
                    self.process(ev);
                }
                _ => {
                    self.now = until;
                    return pred(self);
                }
            }
        }
    }

    fn process(&mut self, ev: Event) {
        self.steps += 1;
        match ev {
            Event::Deliver(t, s) => {
                let Some(msg) = self.net.remove(&(t, s)) else {
                    return;
                };
                let to = msg.to;
                if self.links.is_cut(msg.from, to) {
                    return;
                }
                let slot = self.slot(to);
                let Some(node) = self.nodes.get_mut(slot) else {
                    return;
                };
                let now = node.local(self.now);
                if let Some(r) = node.raft.as_mut() {
                    *self.delivered.entry((to, kind(&msg.body))).or_default() += 1;
                    r.handle_message(msg, now);
                    self.after_step(to);
                }
            }
            Event::Timer(slot) => {
                let node = &mut self.nodes[slot];
                let now = node.local(self.now);
                let id = node.id;
                if let Some(r) = node.raft.as_mut() {
                    r.handle_timeout(now);
                    self.after_step(id);
                }
            }
            Event::Sync(slot) => {
                let node = &mut self.nodes[slot];
                let Some((_, count)) = node.sync.take() else {
                    return;
                };
                let mut last = None;
                for _ in 0..count {
                    let Some(p) = node.pending.pop_front() else {
                        break;
                    };
                    if let Err(e) = node.durable.apply(&p, 4) {
                        let id = node.id;
                        self.inv.violation(self.now, format!("{id}: {e}"));
                        return;
                    }
                    last = Some(p.seq);
                }
                let id = node.id;
                let now = node.local(self.now);
                if let (Some(seq), Some(r)) = (last, node.raft.as_mut()) {
                    r.persisted(seq, now);
                }
                self.schedule_sync(slot);
                self.after_step(id);
            }
        }
    }

    fn schedule_sync(&mut self, slot: usize) {
        if self.nodes[slot].sync.is_some() || self.nodes[slot].pending.is_empty() {
            return;
        }
        let span = self
            .disk_cfg
            .max_fsync_us
            .saturating_sub(self.disk_cfg.min_fsync_us)
            + 1;
        let at = self.now + self.disk_cfg.min_fsync_us + self.rng.next_u64() % span;
        let count = self.nodes[slot].pending.len();
        self.nodes[slot].sync = Some((at, count));
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.next_u64() as f64 / u64::MAX as f64) < p
    }

    fn enqueue(&mut self, msg: Message<u64>) {
        if self.chance(self.net_cfg.loss) {
            return;
        }
        let copies = if self.chance(self.net_cfg.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let span = self
                .net_cfg
                .max_delay_us
                .saturating_sub(self.net_cfg.min_delay_us)
                + 1;
            let at = self.now + self.net_cfg.min_delay_us + self.rng.next_u64() % span;
            self.net_seq += 1;
            self.net.insert((at, self.net_seq), msg.clone());
        }
    }

    /// Drains a server's actions and checks the invariants.
    fn after_step(&mut self, id: NodeId) {
        let slot = self.slot(id);
        while let Some(action) = self.nodes[slot].raft.as_mut().and_then(Raft::poll_action) {
            match action {
                Action::Persist(p) => {
                    let node = &mut self.nodes[slot];
                    if let Err(e) = node.written.apply(&p, 4) {
                        self.inv.violation(self.now, format!("{id}: {e}"));
                    }
                    let mut prev_term = p.entries.first().and_then(|e| {
                        let prev = e.index.prev();
                        if let Some(s) = &p.snapshot {
                            if s.meta.last_index == prev {
                                return Some(s.meta.last_term);
                            }
                        }
                        if prev == LogIndex(0) {
                            return Some(Term(0));
                        }
                        // Unknown when the predecessor went into a snapshot.
                        node.written.term_at(prev)
                    });
                    if self.trace {
                        let idx: Vec<(u64, u64)> =
                            p.entries.iter().map(|e| (e.index.0, e.term.0)).collect();
                        println!(
                            "t={} {id} persist seq={:?} hs={:?} trunc={:?} snap={:?} entries={idx:?} prev_term={prev_term:?}",
                            self.now,
                            p.seq,
                            p.hard_state,
                            p.truncate_from,
                            p.snapshot
                                .as_ref()
                                .map(|s| (s.meta.last_index, s.meta.last_term))
                        );
                    }
                    for e in &p.entries {
                        self.inv.on_entry(
                            self.now,
                            id,
                            e.index,
                            e.term,
                            payload_digest(&e.payload),
                            prev_term,
                        );
                        prev_term = Some(e.term);
                    }
                    self.nodes[slot].pending.push_back(p);
                    self.schedule_sync(slot);
                }
                Action::Send(msg) => {
                    match msg.body {
                        MessageBody::VoteResponse { granted: true } => {
                            self.inv.on_vote(self.now, msg.from, msg.term, msg.to);
                        }
                        MessageBody::InstallSnapshotResponse {
                            next_offset: None, ..
                        } => self.snapshots_installed += 1,
                        _ => {}
                    }
                    self.enqueue(msg);
                }
                Action::Applied {
                    index,
                    term,
                    output,
                } => {
                    let acked = self.proposals.remove(&(id, index, term));
                    self.inv
                        .on_applied(self.now, id, index, term, output, acked);
                }
                Action::ReadReady { id: read, index } => {
                    self.inv.on_read_ready(self.now, id, read, index)
                }
                Action::ReadFailed { .. } => {}
            }
        }
        let node = &mut self.nodes[slot];
        if let Some(r) = node.raft.as_ref() {
            let role = (r.role(), r.term());
            if node.last_role != Some(role) {
                node.last_role = Some(role);
                if self.trace {
                    println!(
                        "t={} {id} role {:?} {:?} last={:?}",
                        self.now,
                        role.0,
                        role.1,
                        r.last_index()
                    );
                }
                if role.0 == Role::Leader {
                    self.inv.on_leader(self.now, id, r);
                }
            }
            self.inv.on_commit(self.now, id, r);
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Event {
    Deliver(u64, u64),
    Timer(usize),
    Sync(usize),
}
