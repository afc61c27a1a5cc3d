//! A deterministic world for the lock service: servers running [`Node`]
//! on simulated disks and drifting clocks, clients running the sans-IO
//! [`ClientSession`] with a small lock workload, a fenced resource, and a
//! network that delays, loses and partitions. True time is virtual and
//! jumps to the next event; the properties of ARCHITECTURE.md §1 are checked as the
//! world runs (see [`super::checks`]).
//!
//! Its controls use the vocabulary shared by every multi-server harness
//! (docs/SIMULATION.md §11): `isolate`, `heal`,
//! `crash`, `restart`, `run_to` (a time), `run_for` (a duration),
//! `run_until` (a condition, within a limit), `leader`; a client's link
//! to a server is cut with `cut_client`.

use super::checks::{Checks, Resource};
use crate::client::{self, ClientEvent, ClientSession, OpId};
use crate::ids::NodeId;
use crate::locks::{Command, FencingToken, LockState, Mode, Outcome, SessionId, Wait};
use crate::node::{ConnId, Node, NodeAction, NodeConfig};
use crate::proto::{ClientFrame, MemberInfo, PeerFrame, ServerFrame};
use crate::raft::{Config, Membership, Persist, Stored};
use crate::testkit::links::Links;
use crate::testkit::{Disk, DriftClock};
use crate::time::{Duration, Instant};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

mod clients;

/// One server slot.
pub(crate) struct Server {
    pub(crate) id: NodeId,
    pub(crate) node: Option<Node>,
    durable: Disk<Command>,
    pending: VecDeque<Persist<Command>>,
    sync: Option<(u64, usize)>,
    pub(crate) clock: DriftClock,
}

/// What a workload client is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Work {
    /// Waiting until the given true time to do the next thing.
    Idle {
        until: u64,
    },
    Opening(OpId),
    Acquiring {
        lock: String,
        op: OpId,
    },
    /// Holding `lock`; releases at true time `release_at`.
    Holding {
        lock: String,
        token: FencingToken,
        release_at: u64,
    },
    Releasing(OpId),
}

/// One client process: a session, a connection, a workload.
pub(crate) struct Client {
    pub(crate) name: usize,
    pub(crate) session: ClientSession,
    pub(crate) clock: DriftClock,
    /// The server and connection it talks to.
    pub(crate) conn: Option<(NodeId, ConnId)>,
    pub(crate) work: Work,
    /// Paused (GC, SIGSTOP) until this true time: no input is processed.
    pub(crate) paused_until: Option<u64>,
    /// Stopped for good (crashed client).
    pub(crate) dead: bool,
    /// Sessions this client process opened, oldest first.
    pub(crate) sessions: Vec<SessionId>,
    pub(crate) grants: u64,
    /// Frames that arrived while paused, read on resume.
    inbox: VecDeque<ServerFrame>,
    /// Driven by the test (`open`, `acquire`...) instead of the workload.
    pub(crate) scripted: bool,
}

#[derive(Debug)]
enum Msg {
    Peer {
        from: NodeId,
        to: NodeId,
        frame: PeerFrame,
    },
    ToServer {
        client: usize,
        server: NodeId,
        conn: ConnId,
        frame: ClientFrame,
    },
    ToClient {
        server: NodeId,
        conn: ConnId,
        frame: ServerFrame,
    },
}

/// Knobs of a run.
#[derive(Clone, Debug)]
pub(crate) struct WorldConfig {
    pub(crate) servers: u64,
    pub(crate) clients: usize,
    pub(crate) locks: usize,
    pub(crate) ttl_ms: (u64, u64),
    pub(crate) lock_delay_ms: u64,
    pub(crate) max_drift_ppm: i64,
    pub(crate) peer_loss: f64,
    /// Chance that a peer message is delivered twice.
    pub(crate) peer_duplicate: f64,
    pub(crate) delay_us: (u64, u64),
    pub(crate) fsync_us: (u64, u64),
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            servers: 3,
            clients: 4,
            locks: 2,
            ttl_ms: (2_000, 4_000),
            lock_delay_ms: 0,
            max_drift_ppm: 10_000,
            peer_loss: 0.0,
            peer_duplicate: 0.0,
            delay_us: (200, 2_000),
            fsync_us: (100, 1_500),
        }
    }
}

pub(crate) struct World {
    pub(crate) cfg: WorldConfig,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) now: u64,
    pub(crate) servers: Vec<Server>,
    pub(crate) clients: Vec<Client>,
    members: Vec<MemberInfo>,
    net: BTreeMap<(u64, u64), Msg>,
    net_seq: u64,
    /// Client connections are TCP: frames arrive in order. The latest
    /// delivery time scheduled per (connection, towards the server).
    conn_clock: BTreeMap<(ConnId, bool), u64>,
    next_conn: u64,
    /// Cut links between servers.
    links: Links,
    /// Blocked (client, server) pairs, both directions.
    client_cut: BTreeSet<(usize, NodeId)>,
    /// Servers frozen (a stalled process or disk) until the given true time.
    paused_servers: BTreeMap<NodeId, u64>,
    /// Clients whose next response is dropped (the connection stays up).
    drop_next_response: BTreeSet<usize>,
    /// When false, clients stop starting new work (liveness phase).
    pub(crate) workload: bool,
    pub(crate) resource: Resource,
    pub(crate) checks: Checks,
    restarts: u64,
    seed: u64,
    /// Print client events (seed replays).
    pub(crate) trace: bool,
}

fn range(rng: &mut ChaCha8Rng, (lo, hi): (u64, u64)) -> u64 {
    lo + rng.next_u64() % (hi - lo + 1)
}

impl World {
    pub(crate) fn new(seed: u64, cfg: WorldConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let ids: Vec<NodeId> = (1..=cfg.servers).map(NodeId).collect();
        let members: Vec<MemberInfo> = ids
            .iter()
            .map(|&id| MemberInfo {
                id,
                client_addr: format!("10.0.0.{}:7001", id.0),
                ws_addr: None,
            })
            .collect();
        let drift = |rng: &mut ChaCha8Rng| {
            let m = cfg.max_drift_ppm;
            if m == 0 {
                0
            } else {
                i64::try_from(rng.next_u64() % (2 * m as u64 + 1)).unwrap_or(0) - m
            }
        };
        let servers = ids
            .iter()
            .map(|&id| Server {
                id,
                node: None,
                durable: Disk::default(),
                pending: VecDeque::new(),
                sync: None,
                clock: DriftClock {
                    offset_us: rng.next_u64() % 1_000_000_000,
                    drift_ppm: drift(&mut rng),
                },
            })
            .collect();
        let clients = (0..cfg.clients)
            .map(|name| Client {
                name,
                session: ClientSession::new(client::Config::default()),
                clock: DriftClock {
                    offset_us: rng.next_u64() % 1_000_000_000,
                    drift_ppm: drift(&mut rng),
                },
                conn: None,
                work: Work::Idle { until: 0 },
                paused_until: None,
                dead: false,
                sessions: Vec::new(),
                grants: 0,
                inbox: VecDeque::new(),
                scripted: false,
            })
            .collect();
        let mut w = Self {
            cfg,
            rng,
            now: 0,
            servers,
            clients,
            members,
            net: BTreeMap::new(),
            net_seq: 0,
            conn_clock: BTreeMap::new(),
            next_conn: 0,
            links: Links::default(),
            client_cut: BTreeSet::new(),
            paused_servers: BTreeMap::new(),
            drop_next_response: BTreeSet::new(),
            workload: true,
            resource: Resource::default(),
            checks: Checks::default(),
            restarts: 0,
            seed,
            trace: false,
        };
        for id in ids {
            w.start(id);
        }
        for c in 0..w.clients.len() {
            let server = NodeId(1 + (c as u64 % w.cfg.servers));
            w.connect(c, server);
        }
        w
    }

    fn slot(id: NodeId) -> usize {
        usize::try_from(id.0 - 1).unwrap_or(usize::MAX)
    }

    /// The servers' Raft status, the leader's locks and the clients' states.
    pub(crate) fn dump(&self, locks: usize) -> String {
        let mut out = Vec::new();
        for s in &self.servers {
            match &s.node {
                Some(n) => {
                    let st = n.raft().status();
                    out.push(format!(
                        "{}: {:?} term {:?} leader {:?} commit {:?} applied {:?} sessions {} timed {}",
                        s.id, st.role, st.term, st.leader, st.commit_index, st.applied_index,
                        n.raft().state_machine().session_count(), n.lease_timer_count()
                    ));
                    if n.raft().is_leader() {
                        for l in 0..locks {
                            let name = format!("lock-{l}");
                            out.push(format!(
                                "  {name}: {:?}",
                                n.raft().state_machine().lock_status(&name)
                            ));
                        }
                    }
                }
                None => out.push(format!("{}: down", s.id)),
            }
        }
        for c in &self.clients {
            out.push(format!(
                "client {}: session {:?} alive {} work {:?} conn {:?} paused {:?}",
                c.name,
                c.session.session_id(),
                c.session.is_alive(c.clock.local(self.now)),
                c.work,
                c.conn,
                c.paused_until
            ));
        }
        out.join("\n")
    }

    pub(crate) fn leader(&self) -> Option<NodeId> {
        self.servers
            .iter()
            .filter_map(|s| {
                s.node
                    .as_ref()
                    .filter(|n| n.raft().is_leader())
                    .map(|n| (n.raft().term(), s.id))
            })
            .max()
            .map(|(_, id)| id)
    }

    // ---- servers --------------------------------------------------------

    pub(crate) fn start(&mut self, id: NodeId) {
        let slot = Self::slot(id);
        let ids: Vec<NodeId> = self.servers.iter().map(|s| s.id).collect();
        let mut raft = Config::new(id);
        // Small snapshots, so that installs and restores (and the sessions,
        // dedupe tables and lease state they carry) are part of every run.
        raft.snapshot_threshold = 64;
        raft.compaction_margin = 16;
        let cfg = NodeConfig {
            raft,
            members: self.members.clone(),
            advertise: None,
        };
        let s = &mut self.servers[slot];
        let stored = Stored {
            hard_state: s.durable.hard_state,
            snapshot: s.durable.snapshot.clone(),
            entries: s.durable.entries.clone(),
            initial_membership: Membership::with_voters(ids),
        };
        self.restarts += 1;
        let seed = self.seed ^ id.0.wrapping_mul(0x9e37_79b9) ^ self.restarts;
        let now = s.clock.local(self.now);
        match Node::new(cfg, LockState::default(), stored, seed, now) {
            Ok(n) => s.node = Some(n),
            Err(e) => self
                .checks
                .violation(self.now, format!("{id} cannot restart: {e}")),
        }
    }

    /// Kills a server: unsynced writes are lost; its client connections
    /// break at once (as with a killed process).
    pub(crate) fn crash(&mut self, id: NodeId) {
        let slot = Self::slot(id);
        let s = &mut self.servers[slot];
        if s.node.take().is_none() {
            return;
        }
        s.pending.clear();
        s.sync = None;
        for c in 0..self.clients.len() {
            if self.clients[c].conn.is_some_and(|(srv, _)| srv == id) {
                self.clients[c].conn = None;
                let now = self.client_now(c);
                if self.clients[c].paused_until.is_none() {
                    self.clients[c].session.connection_lost(now);
                    self.drain_client(c);
                }
            }
        }
    }

    pub(crate) fn server(&self, id: NodeId) -> Option<&Node> {
        self.servers[Self::slot(id)].node.as_ref()
    }

    pub(crate) fn restart(&mut self, id: NodeId) {
        if self.servers[Self::slot(id)].node.is_none() {
            self.start(id);
        }
    }

    /// Cuts `id` off from every other server.
    pub(crate) fn isolate(&mut self, id: NodeId) {
        self.links.isolate(id, self.servers.iter().map(|s| s.id));
    }

    /// Cuts a client off from a server (both ways).
    pub(crate) fn cut_client(&mut self, client: usize, server: NodeId) {
        self.client_cut.insert((client, server));
    }

    /// Restores every link, between servers and to clients.
    pub(crate) fn heal(&mut self) {
        self.links.heal();
        self.client_cut.clear();
    }

    /// Freezes a server: its timers, disk and inbox stop until `for_us` passes.
    pub(crate) fn pause_server(&mut self, id: NodeId, for_us: u64) {
        self.paused_servers.insert(id, self.now + for_us);
    }

    /// Drops the next response to client `c` on its current connection.
    pub(crate) fn drop_next_response(&mut self, c: usize) {
        self.drop_next_response.insert(c);
    }

    fn server_paused(&self, id: NodeId) -> Option<u64> {
        self.paused_servers
            .get(&id)
            .copied()
            .filter(|&t| t > self.now)
    }

    pub(crate) fn pause_client(&mut self, c: usize, for_us: u64) {
        self.clients[c].paused_until = Some(self.now + for_us);
    }

    fn drain_server(&mut self, id: NodeId) {
        let slot = Self::slot(id);
        let Some(node) = self.servers[slot].node.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        while let Some(a) = node.poll_action() {
            out.push(a);
        }
        for a in out {
            match a {
                NodeAction::Persist(p) => {
                    self.servers[slot].pending.push_back(p);
                    self.schedule_sync(slot);
                }
                NodeAction::Send { to, frame } => {
                    if self.chance(self.cfg.peer_loss) {
                        continue;
                    }
                    if self.chance(self.cfg.peer_duplicate) {
                        self.enqueue(Msg::Peer {
                            from: id,
                            to,
                            frame: frame.clone(),
                        });
                    }
                    self.enqueue(Msg::Peer {
                        from: id,
                        to,
                        frame,
                    });
                }
                NodeAction::Reply { conn, frame } => self.enqueue(Msg::ToClient {
                    server: id,
                    conn,
                    frame,
                }),
            }
        }
        self.checks
            .after_server_step(self.now, id, &self.servers, &self.clients);
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.next_u64() % 1_000_000) < (p * 1e6) as u64
    }

    fn schedule_sync(&mut self, slot: usize) {
        if self.servers[slot].sync.is_some() || self.servers[slot].pending.is_empty() {
            return;
        }
        let at = self.now + range(&mut self.rng, self.cfg.fsync_us);
        let count = self.servers[slot].pending.len();
        self.servers[slot].sync = Some((at, count));
    }

    fn enqueue(&mut self, msg: Msg) {
        let mut at = self.now + range(&mut self.rng, self.cfg.delay_us);
        let ordered = match &msg {
            Msg::ToServer { conn, .. } => Some((*conn, true)),
            Msg::ToClient { conn, .. } => Some((*conn, false)),
            Msg::Peer { .. } => None,
        };
        if let Some(key) = ordered {
            let last = self.conn_clock.entry(key).or_insert(0);
            at = at.max(*last);
            *last = at;
        }
        self.net_seq += 1;
        self.net.insert((at, self.net_seq), msg);
    }

    // ---- clients --------------------------------------------------------

    fn next_event(&self) -> Option<(u64, Ev)> {
        let mut best: Option<(u64, Ev)> = self.net.keys().next().map(|&(t, s)| (t, Ev::Net(t, s)));
        let mut consider = |t: u64, ev: Ev| {
            if best.as_ref().is_none_or(|(bt, _)| t < *bt) {
                best = Some((t, ev));
            }
        };
        for (slot, s) in self.servers.iter().enumerate() {
            if let Some(until) = self
                .paused_servers
                .get(&s.id)
                .copied()
                .filter(|&t| t > self.now)
            {
                consider(until, Ev::ServerTimer(slot));
                continue;
            }
            if let Some((t, _)) = s.sync {
                consider(t, Ev::Sync(slot));
            }
            if let Some(d) = s.node.as_ref().and_then(Node::poll_timeout) {
                consider(s.clock.true_time_of(d, self.now), Ev::ServerTimer(slot));
            }
        }
        for c in 0..self.clients.len() {
            if let Some(t) = self.client_deadline(c) {
                consider(t.max(self.now), Ev::Client(c));
            }
        }
        best
    }

    pub(crate) fn run_to(&mut self, until: u64) {
        while let Some((t, ev)) = self.next_event() {
            if t > until || self.checks.failed() {
                break;
            }
            self.now = self.now.max(t);
            self.process(ev);
        }
        self.now = self.now.max(until);
    }

    pub(crate) fn run_for(&mut self, d: Duration) {
        self.run_to(self.now + u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Runs until `pred` holds or `limit` passes; returns whether it held.
    pub(crate) fn run_until(&mut self, limit: Duration, pred: impl Fn(&Self) -> bool) -> bool {
        let until = self.now + u64::try_from(limit.as_micros()).unwrap_or(u64::MAX);
        while self.now < until && !self.checks.failed() {
            if pred(self) {
                return true;
            }
            self.run_to((self.now + 10_000).min(until));
        }
        pred(self)
    }

    fn process(&mut self, ev: Ev) {
        match ev {
            Ev::Net(t, s) => {
                let Some(msg) = self.net.remove(&(t, s)) else {
                    return;
                };
                self.deliver(msg);
            }
            Ev::Sync(slot) => {
                let s = &mut self.servers[slot];
                let Some((_, count)) = s.sync.take() else {
                    return;
                };
                let mut last = None;
                for _ in 0..count {
                    let Some(p) = s.pending.pop_front() else {
                        break;
                    };
                    if let Err(e) = s.durable.apply(&p, 4) {
                        let id = s.id;
                        self.checks.violation(self.now, format!("{id}: {e}"));
                        return;
                    }
                    last = Some(p.seq);
                }
                let now = s.clock.local(self.now);
                let id = s.id;
                if let (Some(seq), Some(node)) = (last, s.node.as_mut()) {
                    node.persisted(seq, now);
                }
                self.schedule_sync(slot);
                self.drain_server(id);
            }
            Ev::ServerTimer(slot) => {
                let id = self.servers[slot].id;
                self.with_server(id, Node::handle_timeout);
            }
            Ev::Client(c) => {
                if self.clients[c].paused_until.is_some_and(|p| p <= self.now) {
                    self.clients[c].paused_until = None;
                    // Half the processes that wake from a pause finish the
                    // write they were in the middle of before looking at
                    // their lease: the zombie the fencing token is for.
                    if let Work::Holding { lock, token, .. } = self.clients[c].work.clone() {
                        if !self.clients[c].scripted && self.rng.next_u64() % 2 == 0 {
                            self.write_unchecked(c, &lock, token);
                        }
                    }
                }
                if self.clients[c].paused_until.is_some() {
                    return;
                }
                let now = self.client_now(c);
                while let Some(frame) = self.clients[c].inbox.pop_front() {
                    self.clients[c].session.handle_frame(frame, now);
                }
                self.clients[c].session.handle_timeout(now);
                self.drain_client(c);
                self.step_workload(c);
            }
        }
    }

    /// Runs `f` on a running server at its local time, then drains it.
    fn with_server(&mut self, id: NodeId, f: impl FnOnce(&mut Node, Instant)) {
        let s = &mut self.servers[Self::slot(id)];
        let now = s.clock.local(self.now);
        if let Some(node) = s.node.as_mut() {
            f(node, now);
            self.drain_server(id);
        }
    }

    fn deliver(&mut self, msg: Msg) {
        let to_server = match &msg {
            Msg::Peer { to, .. } => Some(*to),
            Msg::ToServer { server, .. } => Some(*server),
            Msg::ToClient { .. } => None,
        };
        if let Some(until) = to_server.and_then(|id| self.server_paused(id)) {
            self.net_seq += 1;
            self.net.insert((until, self.net_seq), msg);
            return;
        }
        match msg {
            Msg::Peer { from, to, frame } => {
                if self.links.is_cut(from, to) {
                    return;
                }
                self.with_server(to, |node, now| node.handle_peer(from, frame, now));
            }
            Msg::ToServer {
                client,
                server,
                conn,
                frame,
            } => {
                if self.client_cut.contains(&(client, server)) {
                    return;
                }
                self.with_server(server, |node, now| node.handle_client(conn, frame, now));
            }
            Msg::ToClient {
                server,
                conn,
                frame,
            } => {
                let Some(c) = self
                    .clients
                    .iter()
                    .position(|cl| cl.conn == Some((server, conn)))
                else {
                    return;
                };
                if self.client_cut.contains(&(c, server)) || self.clients[c].dead {
                    return;
                }
                if matches!(frame, ServerFrame::Response(_)) && self.drop_next_response.remove(&c) {
                    return;
                }
                if self.clients[c].paused_until.is_some() {
                    // A paused process reads its socket when it resumes.
                    self.clients[c].inbox.push_back(frame);
                    return;
                }
                let now = self.client_now(c);
                self.clients[c].session.handle_frame(frame, now);
                self.drain_client(c);
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Ev {
    Net(u64, u64),
    Sync(usize),
    ServerTimer(usize),
    Client(usize),
}
