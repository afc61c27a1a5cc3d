//! A small cluster of real [`Node`]s driven by a script of client frames,
//! peer frames, message deliveries and losses, time steps and restarts.
//!
//! Input: a configuration byte (one server or three; whether the script
//! may forge peer frames), then operations. Frames are decoded from the
//! input with the wire codec, so the seeds are the protocol's samples.
//! Honest peer messages travel through the codec too.
//!
//! Checked after every step, on every server: the lock state's invariants;
//! the persistence contract (a model disk); applied ≤ committed ≤ last
//! index; the term and the commit index never go back (until a restart).
//! Without forged peer frames (Raft does not withstand a lying member),
//! also across servers: one leader per term, and committed entries agree.

use distlock_core::ids::{LogIndex, NodeId, Term};
use distlock_core::locks::Outcome;
use distlock_core::locks::{Command, LockState};
use distlock_core::node::{ConnId, Node, NodeAction, NodeConfig};
use distlock_core::proto::{
    ClientFrame, MAX_FRAME_BYTES, MemberInfo, PeerFrame, Response, ResponseBody, ServerFrame,
    decode, encode,
};
use distlock_core::raft::{Config, Membership, Role, Stored};
use distlock_core::testkit::Disk;
use distlock_core::time::{Duration, Instant};
use std::collections::{BTreeMap, VecDeque};

use crate::input::Input;

/// Operations per input, at most: longer scripts add little but time.
const MAX_STEPS: usize = 400;
/// Deliveries and timer firings one `settle` performs at most.
const SETTLE_ROUNDS: usize = 300;

/// Runs the target on one input.
pub fn run(data: &[u8]) {
    reach(data);
}

/// How far a script got: the highest commit index, the answers sent to
/// clients, and how many of those were grants. Runs the target.
pub fn reach(data: &[u8]) -> Reach {
    let mut input = Input::new(data);
    let setup = input.byte();
    let n = if setup & 1 == 0 { 1 } else { 3 };
    let forging = setup & 2 != 0;
    let mut net = Net::new(n, forging);
    for _ in 0..MAX_STEPS {
        if input.is_empty() {
            break;
        }
        let op = input.byte();
        let to = NodeId(1 + u64::from(input.byte()) % n);
        match (op & 0x0f) % 9 {
            0 | 1 => {
                let conn = ConnId(u64::from(op >> 4));
                if let Ok(frame) = decode::<ClientFrame>(input.chunk()) {
                    let now = net.now;
                    if let Some(s) = net.servers.get_mut(&to) {
                        s.node.handle_client(conn, frame, now);
                    }
                }
            }
            2 => {
                let from = NodeId(u64::from(op >> 4));
                let bytes = input.chunk();
                if forging && let Ok(frame) = decode::<PeerFrame>(bytes) {
                    let now = net.now;
                    if let Some(s) = net.servers.get_mut(&to) {
                        s.node.handle_peer(from, frame, now);
                    }
                }
            }
            3 => net.advance(Duration::from_millis(u64::from(input.u16()))),
            4 => {
                for _ in 0..=(op >> 4) {
                    net.deliver_one();
                }
            }
            5 => {
                net.queue.pop_front();
            }
            6 => {
                if let Some(s) = net.servers.get_mut(&to) {
                    s.node.connection_closed(ConnId(u64::from(op >> 4)));
                }
            }
            7 => net.settle(),
            _ => net.restart(to),
        }
        net.drain_all();
        net.check();
    }
    net.reach
}

/// See [`reach`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Reach {
    /// The highest commit index of any server.
    pub commit: u64,
    /// Frames sent to clients.
    pub replies: usize,
    /// Of those, the answers that granted a lock.
    pub grants: usize,
}

/// One server: its node, its disk, and what was seen of it since it started.
struct Server {
    node: Node,
    disk: Disk<Command>,
    term: Term,
    commit: LogIndex,
}

struct Net {
    ids: Vec<NodeId>,
    members: Vec<MemberInfo>,
    servers: BTreeMap<NodeId, Server>,
    now: Instant,
    /// Peer frames in flight: (from, to, encoded frame).
    queue: VecDeque<(NodeId, NodeId, Vec<u8>)>,
    forging: bool,
    /// The leader seen in each term.
    leaders: BTreeMap<Term, NodeId>,
    restarts: u64,
    reach: Reach,
}

impl Net {
    fn new(n: u64, forging: bool) -> Self {
        let ids: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let members = ids
            .iter()
            .map(|&id| MemberInfo {
                id,
                client_addr: format!("127.0.0.1:{}", 7000 + id.0),
                ws_addr: None,
            })
            .collect();
        let mut net = Self {
            ids: ids.clone(),
            members,
            servers: BTreeMap::new(),
            now: Instant::ZERO,
            queue: VecDeque::new(),
            forging,
            leaders: BTreeMap::new(),
            restarts: 0,
            reach: Reach::default(),
        };
        for id in ids {
            net.start(id, Disk::default());
        }
        net
    }

    fn start(&mut self, id: NodeId, disk: Disk<Command>) {
        let cfg = NodeConfig {
            raft: Config::new(id),
            members: self.members.clone(),
            advertise: None,
        };
        let stored = Stored {
            hard_state: disk.hard_state,
            snapshot: disk.snapshot.clone(),
            entries: disk.entries.clone(),
            initial_membership: Membership::with_voters(self.ids.clone()),
        };
        let seed = id.0 * 7919 + self.restarts;
        let node = Node::new(cfg, LockState::default(), stored, seed, self.now)
            .expect("a server restarts from what it persisted");
        let term = node.raft().term();
        let commit = node.raft().commit_index();
        self.servers.insert(
            id,
            Server {
                node,
                disk,
                term,
                commit,
            },
        );
    }

    /// A crash: what was persisted survives, nothing else.
    fn restart(&mut self, id: NodeId) {
        if let Some(s) = self.servers.remove(&id) {
            self.restarts += 1;
            self.queue.retain(|(from, to, _)| *from != id && *to != id);
            self.start(id, s.disk);
        }
    }

    /// Carries out every server's actions: persists are written to its disk
    /// and reported at once, peer frames queued (encoded, as on the wire).
    fn drain_all(&mut self) {
        for id in self.ids.clone() {
            let Some(s) = self.servers.get_mut(&id) else {
                continue;
            };
            loop {
                let mut last_persist = None;
                while let Some(action) = s.node.poll_action() {
                    match action {
                        NodeAction::Persist(p) => {
                            if let Err(broken) = s.disk.apply(&p, 4) {
                                panic!("server {id:?} broke the persistence contract: {broken}");
                            }
                            last_persist = Some(p.seq);
                        }
                        NodeAction::Send { to, frame } => {
                            let mut bytes = Vec::new();
                            encode(&frame, &mut bytes).expect("a peer frame encodes");
                            assert!(
                                bytes.len() <= MAX_FRAME_BYTES,
                                "server {id:?} sent a peer frame of {} bytes",
                                bytes.len()
                            );
                            self.queue.push_back((id, to, bytes));
                        }
                        NodeAction::Reply { frame, .. } => {
                            let mut bytes = Vec::new();
                            encode(&frame, &mut bytes).expect("a server frame encodes");
                            self.reach.replies += 1;
                            if matches!(
                                &frame,
                                ServerFrame::Response(Response {
                                    result: Ok(ResponseBody::Lock(Outcome::Granted { .. })),
                                    ..
                                })
                            ) {
                                self.reach.grants += 1;
                            }
                        }
                    }
                }
                match last_persist {
                    Some(seq) => s.node.persisted(seq, self.now),
                    None => break,
                }
            }
        }
    }

    fn deliver_one(&mut self) {
        if let Some((from, to, bytes)) = self.queue.pop_front() {
            let frame: PeerFrame = decode(&bytes).expect("a frame a server sent decodes");
            let now = self.now;
            if let Some(s) = self.servers.get_mut(&to) {
                s.node.handle_peer(from, frame, now);
            }
        }
    }

    fn next_timer(&self) -> Option<Instant> {
        self.servers
            .values()
            .filter_map(|s| s.node.poll_timeout())
            .min()
    }

    fn fire_due(&mut self) {
        let now = self.now;
        for s in self.servers.values_mut() {
            if s.node.poll_timeout().is_some_and(|t| t <= now) {
                s.node.handle_timeout(now);
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now = self.now + by;
        self.fire_due();
    }

    /// Delivers everything in flight; while no leader has committed an
    /// entry of its term, also moves time to the next timer (to elect
    /// one). Stops when quiet, or at the bound.
    fn settle(&mut self) {
        for _ in 0..SETTLE_ROUNDS {
            if self.queue.is_empty() {
                let led = self.servers.values().any(|s| {
                    let raft = s.node.raft();
                    raft.is_leader() && raft.has_committed_own_term()
                });
                if led {
                    return;
                }
                match self.next_timer() {
                    Some(t)
                        if t > self.now
                            && t.saturating_since(self.now) < Duration::from_secs(60) =>
                    {
                        self.now = t;
                    }
                    Some(t) if t <= self.now => {}
                    _ => return,
                }
                self.fire_due();
            } else {
                self.deliver_one();
            }
            self.drain_all();
            self.check();
        }
    }

    fn check(&mut self) {
        for (id, s) in &mut self.servers {
            let raft = s.node.raft();
            if let Err(broken) = raft.state_machine().broken_invariant() {
                panic!("server {id:?}: lock state invariant broken: {broken}");
            }
            let (term, commit) = (raft.term(), raft.commit_index());
            assert!(term >= s.term, "server {id:?}: term went back");
            assert!(commit >= s.commit, "server {id:?}: commit index went back");
            assert!(
                raft.applied_index() <= commit,
                "server {id:?}: applied beyond commit"
            );
            assert!(
                commit <= raft.last_index(),
                "server {id:?}: committed beyond its log"
            );
            s.term = term;
            s.commit = commit;
            self.reach.commit = self.reach.commit.max(commit.0);
            if !self.forging && raft.role() == Role::Leader {
                let leader = *self.leaders.entry(term).or_insert(*id);
                assert_eq!(leader, *id, "two leaders in term {term:?}");
            }
        }
        if !self.forging {
            self.check_committed_agree();
        }
    }

    /// Entries committed on two servers have the same term at each index.
    fn check_committed_agree(&self) {
        let servers: Vec<_> = self.servers.iter().collect();
        for (i, (a_id, a)) in servers.iter().enumerate() {
            for (b_id, b) in &servers[i + 1..] {
                let (ra, rb) = (a.node.raft(), b.node.raft());
                let top = ra.commit_index().min(rb.commit_index());
                let low = top.0.saturating_sub(64);
                for index in (low..=top.0).map(LogIndex) {
                    if let (Some(ta), Some(tb)) = (ra.term_at(index), rb.term_at(index)) {
                        assert_eq!(
                            ta, tb,
                            "servers {a_id:?} and {b_id:?} committed different entries at {index:?}"
                        );
                    }
                }
            }
        }
    }
}
