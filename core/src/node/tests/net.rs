//! The node tests' cluster: servers running [`Node`] on instant links and
//! instant disks, driven by the vocabulary shared by every multi-server
//! harness (docs/SIMULATION.md §11; the Raft cluster
//! `raft::tests::cluster`, the service world `service_tests::world`):
//! `cut`, `cut_one_way`, `isolate`, `heal`, `crash`, `restart`, `run_to`
//! (a time), `run_for` (a duration), `run_until` (a condition, within a
//! limit), `leader`.

use super::{acquire, granted};
use crate::ids::NodeId;
use crate::locks::{ClientCommand, Command, LockState, SessionId, Wait};
use crate::node::{ConnId, Node, NodeAction, NodeConfig};
use crate::proto::{
    ClientFrame, MemberInfo, PROTOCOL_VERSION, PeerFrame, ProtoError, Request, RequestBody,
    RequestId, ResponseBody, ServerFrame,
};
use crate::raft::{Config, MemberAddrs, Membership, Stored};
use crate::testkit::Disk;
use crate::testkit::links::Links;
use crate::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// N servers with instant links and instant disks; time jumps to the next
/// timer when nothing is in flight. A crashed server is frozen (its node
/// kept for inspection) until restarted from its disk.
pub(super) struct Net {
    pub(super) nodes: BTreeMap<NodeId, Node>,
    configs: BTreeMap<NodeId, NodeConfig>,
    disks: BTreeMap<NodeId, Disk<Command>>,
    down: BTreeSet<NodeId>,
    pub(super) now: Instant,
    queue: VecDeque<(NodeId, NodeId, PeerFrame)>,
    /// Frames each server sent to its clients.
    pub(super) replies: Vec<(NodeId, ConnId, ServerFrame)>,
    next_request: u64,
    links: Links,
    /// A one-way delay: frames from the first server to the second wait in
    /// `delayed` until the test releases them.
    pub(super) delay: Option<(NodeId, NodeId)>,
    pub(super) delayed: VecDeque<PeerFrame>,
    /// How many times each server started (seeds each start differently).
    starts: BTreeMap<NodeId, u64>,
}

impl Net {
    pub(super) fn new(n: u64) -> Self {
        Self::with(n, false)
    }

    /// With `publishing`, each server is told only its own addresses, as
    /// `distlock serve --peers ...` is, and publishes them.
    pub(super) fn with(n: u64, publishing: bool) -> Self {
        let ids: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let members: Vec<MemberInfo> = ids
            .iter()
            .map(|&id| MemberInfo {
                id,
                client_addr: format!("127.0.0.1:{}", 7000 + id.0),
                ws_addr: None,
            })
            .collect();
        let mut configs = BTreeMap::new();
        for &id in &ids {
            let own = members.iter().find(|m| m.id == id).cloned();
            let cfg = NodeConfig {
                raft: Config::new(id),
                members: if publishing {
                    own.iter().cloned().collect()
                } else {
                    members.clone()
                },
                advertise: own.filter(|_| publishing).map(|m| MemberAddrs {
                    peer: format!("127.0.0.1:{}", 7100 + id.0),
                    client: m.client_addr,
                    ws: m.ws_addr,
                }),
            };
            configs.insert(id, cfg);
        }
        let mut net = Self {
            nodes: BTreeMap::new(),
            configs,
            disks: BTreeMap::new(),
            down: BTreeSet::new(),
            now: Instant::ZERO,
            queue: VecDeque::new(),
            replies: Vec::new(),
            next_request: 0,
            links: Links::default(),
            delay: None,
            delayed: VecDeque::new(),
            starts: BTreeMap::new(),
        };
        for &id in &ids {
            net.disks.insert(id, Disk::default());
            net.start(id, Membership::with_voters(ids.clone()));
        }
        net
    }

    /// Starts `id` from its disk (a fresh disk holds `initial`).
    fn start(&mut self, id: NodeId, initial: Membership) {
        let disk = &self.disks[&id];
        let stored = Stored {
            hard_state: disk.hard_state,
            snapshot: disk.snapshot.clone(),
            entries: disk.entries.clone(),
            initial_membership: initial,
        };
        let starts = self.starts.entry(id).or_default();
        let seed = id.0 * 7919 + *starts;
        *starts += 1;
        let node = Node::new(
            self.configs[&id].clone(),
            LockState::default(),
            stored,
            seed,
            self.now,
        )
        .expect("starts");
        self.nodes.insert(id, node);
        self.down.remove(&id);
        self.drain(id);
    }

    /// Stops `id`: it hears nothing and does nothing until restarted.
    /// Its disks are instant, so it loses nothing it wrote.
    pub(super) fn crash(&mut self, id: NodeId) {
        self.down.insert(id);
    }

    /// Starts a crashed `id` again from its disk.
    pub(super) fn restart(&mut self, id: NodeId) {
        assert!(self.down.contains(&id), "server {id} is not down");
        let voters = self.configs.keys().copied();
        self.start(id, Membership::with_voters(voters));
    }

    /// Cuts both directions between `a` and `b`.
    pub(super) fn cut(&mut self, a: NodeId, b: NodeId) {
        self.links.cut(a, b);
    }

    /// Cuts one direction: what `from` sends `to` is lost.
    pub(super) fn cut_one_way(&mut self, from: NodeId, to: NodeId) {
        self.links.cut_one_way(from, to);
    }

    /// Cuts `id` off from every other server.
    pub(super) fn isolate(&mut self, id: NodeId) {
        self.links.isolate(id, self.configs.keys().copied());
    }

    /// Restores every link.
    pub(super) fn heal(&mut self) {
        self.links.heal();
    }

    pub(super) fn drain(&mut self, id: NodeId) {
        loop {
            let Some(node) = self.nodes.get_mut(&id) else {
                return;
            };
            let mut last_persist = None;
            while let Some(action) = node.poll_action() {
                match action {
                    NodeAction::Persist(p) => {
                        if let Some(disk) = self.disks.get_mut(&id) {
                            disk.apply(&p, usize::MAX)
                                .unwrap_or_else(|e| panic!("server {id} broke the contract: {e}"));
                        }
                        last_persist = Some(p.seq);
                    }
                    NodeAction::Send { to, frame } => self.queue.push_back((id, to, frame)),
                    NodeAction::Reply { conn, frame } => self.replies.push((id, conn, frame)),
                }
            }
            match last_persist {
                Some(seq) => node.persisted(seq, self.now),
                None => return,
            }
        }
    }

    /// Delivers everything in flight, then fires timers, until `until`.
    pub(super) fn run_to(&mut self, until: Instant) {
        loop {
            while let Some((from, to, frame)) = self.queue.pop_front() {
                if self.links.is_cut(from, to)
                    || self.down.contains(&from)
                    || self.down.contains(&to)
                {
                    continue;
                }
                if self.delay == Some((from, to)) {
                    self.delayed.push_back(frame);
                    continue;
                }
                if let Some(node) = self.nodes.get_mut(&to) {
                    node.handle_peer(from, frame, self.now);
                    self.drain(to);
                }
            }
            let next = self
                .nodes
                .iter()
                .filter(|(id, _)| !self.down.contains(id))
                .filter_map(|(&id, n)| n.poll_timeout().map(|t| (t, id)))
                .min();
            match next {
                Some((t, id)) if t <= until => {
                    self.now = self.now.max(t);
                    if let Some(node) = self.nodes.get_mut(&id) {
                        node.handle_timeout(self.now);
                    }
                    self.drain(id);
                }
                _ => {
                    self.now = self.now.max(until);
                    return;
                }
            }
        }
    }

    pub(super) fn run_for(&mut self, d: Duration) {
        self.run_to(self.now + d);
    }

    /// Runs until `pred` holds (checked every 10 ms) or `limit` passes;
    /// whether it held.
    pub(super) fn run_until(&mut self, limit: Duration, pred: impl Fn(&Self) -> bool) -> bool {
        let until = self.now + limit;
        while !pred(self) {
            if self.now >= until {
                return false;
            }
            self.run_to((self.now + Duration::from_millis(10)).min(until));
        }
        true
    }

    /// Delivers the oldest frame held back by `delay`.
    pub(super) fn release_delayed(&mut self) {
        let Some((from, to)) = self.delay else {
            return;
        };
        if let Some(frame) = self.delayed.pop_front() {
            if let Some(node) = self.nodes.get_mut(&to) {
                node.handle_peer(from, frame, self.now);
            }
            self.drain(to);
        }
    }

    pub(super) fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|(id, n)| !self.down.contains(id) && n.raft().is_leader())
            .max_by_key(|(_, n)| n.raft().term())
            .map(|(id, _)| *id)
    }

    /// A server other than `leader`.
    pub(super) fn follower_of(&self, leader: NodeId) -> NodeId {
        self.nodes
            .keys()
            .copied()
            .find(|&id| id != leader)
            .expect("a follower")
    }

    /// Runs until a leader has committed an entry of its term; that leader.
    pub(super) fn settle(&mut self) -> NodeId {
        let settled = |net: &Self| {
            net.leader()
                .filter(|l| net.nodes[l].raft().has_committed_own_term())
        };
        assert!(
            self.run_until(Duration::from_secs(5), |net| settled(net).is_some()),
            "no leader"
        );
        settled(self).expect("a leader")
    }

    /// Sends a client frame to `server` and runs until it is answered.
    pub(super) fn send(&mut self, server: NodeId, conn: ConnId, frame: ClientFrame) {
        if let Some(node) = self.nodes.get_mut(&server) {
            node.handle_client(conn, frame, self.now);
        }
        self.drain(server);
        self.run_for(Duration::from_millis(5));
    }

    pub(super) fn hello(&mut self, server: NodeId, conn: ConnId) {
        let hello = ClientFrame::Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: None,
            auth: None,
        };
        self.send(server, conn, hello);
    }

    /// Sends a request; returns its id.
    pub(super) fn request(&mut self, server: NodeId, conn: ConnId, body: RequestBody) -> RequestId {
        self.next_request += 1;
        let id = RequestId(self.next_request);
        self.send(server, conn, ClientFrame::Request(Request { id, body }));
        id
    }

    /// Sends a request and returns its answer, if it came.
    pub(super) fn ask(
        &mut self,
        server: NodeId,
        conn: ConnId,
        body: RequestBody,
    ) -> Option<Result<ResponseBody, ProtoError>> {
        let id = self.request(server, conn, body);
        self.answer(id)
    }

    pub(super) fn answer(&self, id: RequestId) -> Option<Result<ResponseBody, ProtoError>> {
        self.replies.iter().rev().find_map(|(_, _, f)| match f {
            ServerFrame::Response(r) if r.id == id => Some(r.result.clone()),
            _ => None,
        })
    }

    pub(super) fn open(
        &mut self,
        server: NodeId,
        conn: ConnId,
        nonce: u128,
        ttl_ms: u64,
    ) -> SessionId {
        let id = self.request(
            server,
            conn,
            RequestBody::Log(ClientCommand::OpenSession { nonce, ttl_ms }),
        );
        match self.answer(id) {
            Some(Ok(ResponseBody::SessionOpened { session, ttl_ms: t })) => {
                assert_eq!(t, ttl_ms);
                session
            }
            other => panic!("open answered {other:?}"),
        }
    }

    /// Asks `server`, on a new connection `conn`, for `lock`'s status;
    /// returns the token of its one holder.
    pub(super) fn sole_holder(&mut self, server: NodeId, conn: ConnId, lock: &str) -> u64 {
        self.hello(server, conn);
        let body = RequestBody::LockStatus {
            lock: lock.to_owned(),
        };
        match self.ask(server, conn, body) {
            Some(Ok(ResponseBody::LockStatus(Some(view)))) if view.holders.len() == 1 => {
                view.holders[0].token.0
            }
            other => panic!("{lock} has one holder on {server:?}: {other:?}"),
        }
    }

    /// Settles the cluster; a client of one follower opens a session and
    /// is granted `lock`. (leader, follower, connection, session, token).
    pub(super) fn holder_on_a_follower(
        &mut self,
        lock: &str,
    ) -> (NodeId, NodeId, ConnId, SessionId, u64) {
        let leader = self.settle();
        let follower = self
            .nodes
            .keys()
            .copied()
            .find(|&i| i != leader)
            .expect("follower");
        let c = ConnId(1);
        self.hello(follower, c);
        let s = self.open(follower, c, 9, 10_000);
        let token = granted(self.ask(follower, c, acquire(s, 1, lock, Wait::Try)));
        (leader, follower, c, s, token)
    }
}
