//! The checked system: real [`Node`]s (Raft, the lock state machine and
//! the lease timers, unchanged), each with a disk that keeps only what was
//! reported durable, a network that may deliver any message in flight in
//! any order (or duplicate, or never deliver it), per-server clocks (tied
//! to a true time in timed configurations: [`time`]), and the clients:
//! scripted ([`answers`]: what they make of what they are answered) or
//! run by the client library's session machine ([`library`]). A [`Step`]
//! is one input to one real component.

use crate::client::{ATTACH_ID, Client, Outstanding, ReadWindow, TTL_MS};
use crate::describe;
use crate::ghost::Ghost;
use crate::setup::{Op, Setup};
use distlock_core::ids::NodeId;
use distlock_core::locks::{Command, LockState};
use distlock_core::node::{ConnId, Node, NodeAction, NodeConfig};
use distlock_core::proto::{
    ClientFrame, MemberInfo, PROTOCOL_VERSION, PeerFrame, Request, RequestBody, RequestId,
};
use distlock_core::raft::{Config, Membership, Persist, Role, Stored};
use distlock_core::testkit::Disk;
use distlock_core::time::Instant;
use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

pub mod answers;
pub mod library;
pub mod time;

/// One server: the real node, its disk, the writes it asked for that are
/// not durable yet, and its local clock.
#[derive(Clone)]
pub struct Server {
    /// Its id.
    pub id: NodeId,
    /// The real server state machine.
    pub node: Node,
    /// What survives a crash.
    pub disk: Disk<Command>,
    /// Writes issued and not yet durable, oldest first.
    pub pending: VecDeque<Persist<Command>>,
    /// Its local monotonic clock.
    pub clock: Instant,
    /// How many times it restarted.
    pub restarts: u32,
    /// Cached fingerprint; `None` after any change.
    fp: Option<u64>,
}

/// A peer message in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The sender.
    pub from: NodeId,
    /// The addressee.
    pub to: NodeId,
    /// The frame.
    pub frame: PeerFrame,
    /// Its encoding, which orders the network canonically.
    pub key: Vec<u8>,
}

impl Envelope {
    /// Its description, as traces print it.
    #[must_use]
    pub fn text(&self) -> String {
        describe::frame(self.from.0, self.to.0, &self.frame)
    }
}

/// What may happen next: one input to one real component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The network delivers message `i` (an index into `World::net`).
    Deliver(usize),
    /// The network delivers message `i` and keeps a copy in flight.
    Duplicate(usize),
    /// The network loses message `i`.
    Drop(usize),
    /// The server's next timer fires: its clock jumps to the deadline.
    Timer(NodeId),
    /// With true time ([`crate::setup::Clocks`]): the leader's timers fire
    /// late, when its next lease timer falls due, as after a pause through
    /// its heartbeats.
    Pause(NodeId),
    /// The server's oldest pending write becomes durable.
    Persist(NodeId),
    /// The server crashes, losing what was not durable, and restarts from
    /// its disk.
    Crash(NodeId),
    /// The client sends its current request (again) to the server.
    Send {
        /// The client.
        client: usize,
        /// The server.
        server: NodeId,
    },
    /// A library client's next timer fires: true time moves to when its
    /// clock reads the deadline.
    ClientTimer(usize),
    /// A library client that asked to (re)connect is connected to the
    /// server.
    Dial {
        /// The client.
        client: usize,
        /// The server.
        server: NodeId,
    },
    /// A library client starts its script's next request.
    Issue(usize),
}

/// Budgets left of the bounded kinds of step.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Budget {
    /// Crashes left.
    pub crashes: u32,
    /// Duplications left.
    pub duplicates: u32,
    /// Explicit drops left.
    pub drops: u32,
    /// Leader heartbeat timers left.
    pub leader_ticks: u32,
    /// Election timers left.
    pub elections: u32,
    /// Library clients' timers left.
    pub client_ticks: u32,
}

/// The whole system in one state.
#[derive(Clone)]
pub struct World {
    /// What is being checked.
    pub setup: Arc<Setup>,
    /// The servers, in id order.
    pub servers: Vec<Server>,
    /// Messages in flight, ordered by description (a multiset).
    pub net: Vec<Envelope>,
    /// The clients (a library client's answers and lease too).
    pub clients: Vec<Client>,
    /// Each client's session machine, for the library clients.
    pub machines: Vec<Option<library::Machine>>,
    /// History the properties need.
    pub ghost: Ghost,
    /// Bounded steps left.
    pub budget: Budget,
    /// What the last step printed (for traces), when `verbose`.
    pub out: Vec<String>,
    /// Whether steps describe what they do (traces), or run silently
    /// (the search).
    pub verbose: bool,
    /// Messages lost because the network was full.
    pub overflow: u64,
    /// The warm-up is over (the planted driver bug acts only after it).
    pub warmed: bool,
    /// A directed start is being taken: the network holds any number of
    /// messages (the start says which are lost).
    directing: bool,
    /// True time, with [`crate::setup::Clocks`] (else it stays zero).
    pub now: Instant,
}

/// Collects what is fed to it and hashes it in one pass: fingerprints are
/// streamed through `Debug` in many small pieces, which a hasher would
/// pay for one by one.
#[derive(Default)]
struct BufHasher(Vec<u8>);

impl Hasher for BufHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
    fn finish(&self) -> u64 {
        let mut h = DefaultHasher::new();
        h.write(&self.0);
        h.finish()
    }
}

impl std::fmt::Write for BufHasher {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn conn(client: usize, server: NodeId) -> ConnId {
    ConnId(client as u64 * 1000 + server.0)
}

fn seed(id: NodeId, restarts: u32) -> u64 {
    id.0 * 7919 + u64::from(restarts) * 104_729
}

impl World {
    /// The cluster as first started, before anything happened.
    ///
    /// # Panics
    /// When the setup is not a valid cluster.
    #[must_use]
    pub fn new(setup: Setup) -> Self {
        assert!(
            setup
                .clocks
                .as_ref()
                .is_none_or(|c| c.server_ppm.len() == setup.servers.len()),
            "{}: one clock rate per server",
            setup.name
        );
        let setup = Arc::new(setup);
        let servers = setup
            .servers
            .iter()
            .map(|&id| {
                let node = Self::boot(&setup, id, &Disk::default(), 0, Instant::ZERO);
                Server {
                    id,
                    node,
                    disk: Disk::default(),
                    pending: VecDeque::new(),
                    clock: Instant::ZERO,
                    restarts: 0,
                    fp: None,
                }
            })
            .collect();
        let clients = (0..setup.clients.len()).map(Client::new).collect();
        let machines = (0..setup.clients.len())
            .map(|c| {
                setup.library.contains(&c).then(|| {
                    let clocks = setup.clocks.as_ref();
                    let clocks = clocks.expect("library clients need true time");
                    assert!(
                        setup.clients[c].iter().all(library::runs),
                        "{}: client {c}'s script is beyond a library client",
                        setup.name
                    );
                    library::Machine::new(clocks.max_drift_ppm)
                })
            })
            .collect();
        let b = &setup.bounds;
        let budget = Budget {
            crashes: b.crashes,
            duplicates: b.duplicates,
            drops: b.drops,
            leader_ticks: b.leader_ticks,
            elections: b.elections,
            client_ticks: b.client_ticks,
        };
        let mut ghost = Ghost::default();
        if setup.bounds.snapshot_every > 0 {
            ghost.keep_states();
        }
        Self {
            servers,
            net: Vec::new(),
            clients,
            machines,
            ghost,
            budget,
            out: Vec::new(),
            verbose: false,
            overflow: 0,
            warmed: false,
            directing: false,
            now: Instant::ZERO,
            setup,
        }
    }

    fn boot(setup: &Setup, id: NodeId, disk: &Disk<Command>, restarts: u32, now: Instant) -> Node {
        let members = setup
            .servers
            .iter()
            .map(|&m| MemberInfo {
                id: m,
                client_addr: format!("10.0.0.{}:7000", m.0),
                ws_addr: None,
            })
            .collect();
        let mut raft = Config::new(id);
        raft.max_append_entries = setup.bounds.append_entries;
        if setup.bounds.snapshot_every > 0 {
            raft.snapshot_threshold = setup.bounds.snapshot_every;
            raft.compaction_margin = 0;
        }
        let cfg = NodeConfig {
            raft,
            members,
            advertise: None,
        };
        let initial = if setup.voters.contains(&id) {
            Membership::with_voters(setup.voters.iter().copied())
        } else {
            Membership::default()
        };
        let stored = Stored {
            hard_state: disk.hard_state,
            snapshot: disk.snapshot.clone(),
            entries: disk.entries.clone(),
            initial_membership: initial,
        };
        Node::new(cfg, LockState::default(), stored, seed(id, restarts), now)
            .expect("a disk written only through the persistence contract restores")
    }

    /// Records a line of what a step did, when describing.
    fn note(&mut self, line: impl FnOnce(&Self) -> String) {
        if self.verbose {
            let text = line(self);
            self.out.push(text);
        }
    }

    fn pos(&self, id: NodeId) -> usize {
        self.servers
            .iter()
            .position(|s| s.id == id)
            .expect("a server of the setup")
    }

    /// Every step possible in this state, within the bounds.
    #[must_use]
    pub fn steps(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        for (i, env) in self.net.iter().enumerate() {
            // Identical copies are one choice.
            if i > 0 && self.net[i - 1] == *env {
                continue;
            }
            steps.push(Step::Deliver(i));
            if self.budget.duplicates > 0 {
                steps.push(Step::Duplicate(i));
            }
            if self.budget.drops > 0 {
                steps.push(Step::Drop(i));
            }
        }
        for s in &self.servers {
            if !s.pending.is_empty() {
                steps.push(Step::Persist(s.id));
            }
        }
        for s in &self.servers {
            if self.timer_allowed(s) {
                steps.push(Step::Timer(s.id));
                if self.pause_allowed(s) {
                    steps.push(Step::Pause(s.id));
                }
            }
        }
        for (c, m) in self.machines.iter().enumerate() {
            let Some(m) = m else { continue };
            if self.may_issue(c) {
                steps.push(Step::Issue(c));
            }
            if self.budget.client_ticks > 0 && m.session.poll_timeout().is_some() {
                steps.push(Step::ClientTimer(c));
            }
            if let Some(to) = m.dial {
                for s in &self.servers {
                    if to.is_none_or(|t| t == s.id) {
                        steps.push(Step::Dial {
                            client: c,
                            server: s.id,
                        });
                    }
                }
            }
        }
        for (c, client) in self.clients.iter().enumerate() {
            if self.machines[c].is_none() && self.client_may_send(client) {
                // A request goes first to the client's own server (client 0
                // to server 2, client 1 to server 3: followers, which
                // forward to the leader); a retry
                // may go to any.
                let home = self.servers[(c + 1) % self.servers.len()].id;
                for s in &self.servers {
                    if client.outstanding.is_some() || s.id == home {
                        steps.push(Step::Send {
                            client: c,
                            server: s.id,
                        });
                    }
                }
            }
        }
        if self.budget.crashes > 0 {
            for s in &self.servers {
                steps.push(Step::Crash(s.id));
            }
        }
        steps
    }

    fn timer_allowed(&self, s: &Server) -> bool {
        let raft = s.node.raft();
        if raft.role() == Role::Leader {
            return self.budget.leader_ticks > 0;
        }
        // A server waiting to join (empty configuration) never campaigns.
        if raft.membership().is_empty() || !raft.membership().is_voter(s.id) {
            return false;
        }
        self.budget.elections > 0 && raft.term().0 < self.setup.bounds.max_term
    }

    fn client_may_send(&self, client: &Client) -> bool {
        let script = &self.setup.clients[client.index];
        match &client.outstanding {
            Some(o) => o.sends < self.setup.bounds.sends_per_op,
            // A token check waits for a token to check.
            None => script.get(client.pc).is_some_and(|op| match op {
                Op::CheckToken { lock } => self.ghost.newest_grant.contains_key(*lock),
                _ => true,
            }),
        }
    }

    /// Carries out `step`; what happened is left in `self.out`.
    ///
    /// # Panics
    /// When the step is not possible in this state, or when the core
    /// breaks one of its own assertions.
    pub fn apply(&mut self, step: &Step) {
        self.out.clear();
        match *step {
            Step::Deliver(i) => {
                let env = self.net.remove(i);
                self.note(|_| format!("receive {}", env.text()));
                self.deliver(env);
            }
            Step::Duplicate(i) => {
                self.budget.duplicates -= 1;
                let env = self.net[i].clone();
                self.note(|_| format!("receive (a copy stays) {}", env.text()));
                self.deliver(env);
            }
            Step::Drop(i) => {
                self.budget.drops -= 1;
                let env = self.net.remove(i);
                self.note(|_| format!("dropped {}", env.text()));
            }
            Step::Timer(id) => {
                let p = self.pos(id);
                let deadline = self.servers[p].node.poll_timeout();
                self.fire(p, deadline);
            }
            Step::Pause(id) => {
                let p = self.pos(id);
                let deadline = self.servers[p].node.lease_deadline();
                self.note(|_| format!("{}: paused through its heartbeats", id.0));
                self.fire(p, deadline);
            }
            Step::Persist(id) => {
                let p = self.pos(id);
                let s = &mut self.servers[p];
                let w = s.pending.pop_front().expect("a pending write");
                let lies = self.setup.bounds.disk_lies && self.warmed;
                if !lies && let Err(e) = s.disk.apply(&w, 4) {
                    self.ghost.violate(format!("persistence contract: {e}"));
                }
                let now = s.clock;
                s.node.persisted(w.seq, now);
                self.note(|_| format!("{}: durable up to #{}", id.0, w.seq.0));
                self.drain(p);
            }
            Step::Crash(id) => {
                self.budget.crashes -= 1;
                let p = self.pos(id);
                let setup = Arc::clone(&self.setup);
                let s = &mut self.servers[p];
                s.restarts += 1;
                s.pending.clear();
                s.node = Self::boot(&setup, id, &s.disk, s.restarts, s.clock);
                self.note(|_| format!("{}: crashed and restarted from its disk", id.0));
                // Its clients' connections broke.
                for c in &mut self.clients {
                    c.greeted.retain(|&g| g != id);
                    c.attached.retain(|&g| g != id);
                }
                self.drain(p);
                for c in 0..self.machines.len() {
                    if self.machines[c]
                        .as_ref()
                        .is_some_and(|m| m.server == Some(id))
                    {
                        self.disconnect(c);
                    }
                }
            }
            Step::Send { client, server } => self.send(client, server),
            Step::ClientTimer(c) => self.client_timer(c),
            Step::Dial { client, server } => self.dial(client, server),
            Step::Issue(c) => self.issue(c),
        }
        self.pump();
        if !self.warmed && self.setup.bounds.snapshot_every > 0 {
            // The search observes after every step; before it starts, a
            // server that snapshots may compact entries away in the
            // warm-up, so the history follows it from the first step.
            self.ghost.observe(&self.servers);
        }
        if self.verbose {
            let states: Vec<String> = self
                .servers
                .iter()
                .map(|s| describe::server(&s.node))
                .collect();
            self.out.extend(states);
        }
    }

    fn deliver(&mut self, env: Envelope) {
        let p = self.pos(env.to);
        let s = &mut self.servers[p];
        let now = s.clock;
        s.node.handle_peer(env.from, env.frame, now);
        self.drain(p);
    }

    fn send(&mut self, c: usize, server: NodeId) {
        let op = {
            let client = &self.clients[c];
            match &client.outstanding {
                Some(o) => o.op,
                None => client.pc,
            }
        };
        let script_op = self.setup.clients[c][op].clone();
        if self.clients[c].outstanding.is_none() {
            let newest = match &script_op {
                Op::CheckToken { lock } => self.ghost.newest_grant.get(*lock).copied(),
                _ => None,
            };
            let ttl_ms = self.setup.clocks.as_ref().map_or(TTL_MS, |k| k.ttl_ms);
            let delay = self.setup.lock_delay_ms;
            let body = self.clients[c].body_for(&script_op, newest, ttl_ms, delay);
            let Some(body) = body else {
                self.note(|_| {
                    format!(
                        "client {c}: skips {} (nothing to ask)",
                        script_op.describe()
                    )
                });
                self.clients[c].pc += 1;
                return;
            };
            if let RequestBody::LockStatus { lock } = &body {
                self.ghost.status_sent(c, lock);
            }
            let read = match &body {
                RequestBody::CheckToken { token, .. } => Some(ReadWindow {
                    token: *token,
                    granted_before: self.ghost.grant_answered(*token),
                    released_before: self.ghost.release_answered(*token),
                }),
                _ => None,
            };
            if let RequestBody::Log(distlock_core::locks::ClientCommand::Release {
                token, ..
            }) = &body
            {
                // From the moment it asks to release, the client no longer
                // uses the lock.
                let client = &mut self.clients[c];
                client.held.retain(|(_, t, _)| t != token);
                self.ghost.release_sent(*token);
            }
            self.clients[c].outstanding = Some(Outstanding {
                op,
                body,
                sends: 0,
                read,
            });
        }
        let p = self.pos(server);
        let client = &mut self.clients[c];
        let o = client.outstanding.as_mut().expect("set above");
        o.sends += 1;
        let id = RequestId(client.ids.len() as u64 + 1);
        client.ids.push((id, op));
        let body = o.body.clone();
        if matches!(
            body,
            RequestBody::KeepAlive { .. }
                | RequestBody::Log(distlock_core::locks::ClientCommand::OpenSession { .. })
        ) && self.setup.clocks.is_some()
        {
            let at = self.client_clock();
            self.clients[c].lease_sends.push((id, at));
        }
        let client = &mut self.clients[c];
        let greet = !client.greeted.contains(&server);
        if greet {
            client.greeted.push(server);
            client.greeted.sort_unstable();
        }
        self.note(|_| {
            format!(
                "client {c}: sends #{} {} to {}",
                id.0,
                describe::request(&body),
                server.0
            )
        });
        let s = &mut self.servers[p];
        let now = s.clock;
        if greet {
            let hello = ClientFrame::Hello {
                protocol_version: PROTOCOL_VERSION,
                cluster_id: None,
                auth: None,
            };
            s.node.handle_client(conn(c, server), hello, now);
        }
        let client = &self.clients[c];
        if let (Some(session), false) = (client.session, client.attached.contains(&server)) {
            let attach = RequestBody::Attach {
                session,
                secret: client.nonce(),
            };
            let frame = ClientFrame::Request(Request {
                id: ATTACH_ID,
                body: attach,
            });
            s.node.handle_client(conn(c, server), frame, now);
        }
        s.node.handle_client(
            conn(c, server),
            ClientFrame::Request(Request { id, body }),
            now,
        );
        self.drain(p);
    }

    /// Carries out what server `p` asked for after an input.
    fn drain(&mut self, p: usize) {
        // Every input reaches a server through here: its fingerprint is
        // stale from now on.
        self.servers[p].fp = None;
        let id = self.servers[p].id;
        while let Some(action) = self.servers[p].node.poll_action() {
            match action {
                NodeAction::Persist(w) => self.servers[p].pending.push_back(w),
                NodeAction::Send { to, frame } => {
                    if let PeerFrame::Raft(msg) = &frame {
                        let s = &self.servers[p];
                        self.ghost.check_sent(msg, &s.disk, s.node.raft());
                    }
                    if !self.directing && self.net.len() >= self.setup.bounds.in_flight
                        || !self.setup.servers.contains(&to)
                    {
                        self.overflow += 1;
                        continue;
                    }
                    let key = postcard::to_allocvec(&(id, to, &frame)).expect("frames encode");
                    let env = Envelope {
                        from: id,
                        to,
                        frame,
                        key,
                    };
                    let at = self.net.partition_point(|e| e.key <= env.key);
                    self.net.insert(at, env);
                }
                NodeAction::Reply { conn, frame } => self.client_frame(id, conn, frame),
            }
        }
    }

    /// Records what this state adds to the history and checks every
    /// property; the first broken one, if any.
    pub fn check(&mut self) -> Option<String> {
        self.ghost.observe(&self.servers);
        for session in std::mem::take(&mut self.ghost.expired) {
            self.check_no_early_release(session);
        }
        self.ghost.violation.clone()
    }

    /// The state's fingerprint: equal states (up to collisions) have equal
    /// fingerprints. Each server's part is cached between steps that do
    /// not touch it.
    pub fn fingerprint(&mut self) -> u64 {
        let mut h = DefaultHasher::new();
        for s in &mut self.servers {
            let fp = *s.fp.get_or_insert_with(|| {
                let mut h = BufHasher::default();
                s.node.fingerprint(&mut h);
                let disk = (s.disk.hard_state, &s.disk.snapshot, &s.disk.entries);
                h.0 = postcard::to_extend(&disk, std::mem::take(&mut h.0)).expect("encodes");
                for w in &s.pending {
                    let parts = (
                        w.seq,
                        w.hard_state,
                        w.truncate_from,
                        &w.entries,
                        &w.snapshot,
                    );
                    h.0 = postcard::to_extend(&parts, std::mem::take(&mut h.0)).expect("encodes");
                }
                h.write_u64(s.clock.as_micros());
                h.finish()
            });
            fp.hash(&mut h);
        }
        self.now.hash(&mut h);
        for e in &self.net {
            e.key.hash(&mut h);
        }
        format!("{:?}", self.clients).hash(&mut h);
        format!("{:?}", self.machines).hash(&mut h);
        self.ghost.hash(&mut h);
        self.budget.hash(&mut h);
        h.finish()
    }

    /// Runs, in a fixed order, every delivery and write until nothing is
    /// left in flight; fires server `first`'s timer first. Used to reach
    /// the initial state of a check (a leader elected, warm-up requests
    /// answered) without exploring how.
    pub fn settle(&mut self, first: Option<NodeId>) {
        if let Some(id) = first {
            self.apply(&Step::Timer(id));
        }
        loop {
            if !self.net.is_empty() {
                self.apply(&Step::Deliver(0));
                continue;
            }
            if let Some(s) = self.servers.iter().find(|s| !s.pending.is_empty()) {
                let id = s.id;
                self.apply(&Step::Persist(id));
                continue;
            }
            break;
        }
    }

    /// The warm-up: server 1 is elected, then each client's first
    /// requests are asked of server 1 and answered, all in one fixed
    /// order, and the budgets are restored.
    pub fn warm_up(&mut self) {
        let budget = self.budget.clone();
        self.budget.leader_ticks = u32::MAX;
        self.budget.elections = u32::MAX;
        self.budget.drops = u32::MAX;
        self.budget.crashes = u32::MAX;
        self.budget.client_ticks = u32::MAX;
        let first = self.setup.servers[0];
        self.settle(Some(first));
        // A heartbeat round spreads the commit index.
        self.settle(Some(first));
        for c in 0..self.clients.len() {
            let ops = self.setup.warm_up_ops[c];
            if self.machines[c].is_some() && ops > 0 {
                self.apply(&Step::Dial {
                    client: c,
                    server: first,
                });
                self.settle(None);
            }
            for _ in 0..ops {
                let step = match self.machines[c] {
                    Some(_) => Step::Issue(c),
                    None => Step::Send {
                        client: c,
                        server: first,
                    },
                };
                self.apply(&step);
                self.settle(None);
            }
        }
        self.settle(Some(first));
        let setup = Arc::clone(&self.setup);
        self.directing = true;
        for cmd in &setup.prefix {
            if let Err(e) = crate::prefix::run(self, cmd) {
                panic!("{}: the directed start fails at {cmd:?}: {e}", setup.name);
            }
        }
        self.directing = false;
        self.budget = budget;
        self.out.clear();
        self.warmed = true;
    }
}
