//! One distlock server as a pure state machine: Raft replicating the lock
//! state machine, the leader's lease timers (ARCHITECTURE.md §4), and the routing of
//! client requests. The runtime feeds it frames, timeouts and persistence
//! reports, and carries out its [`NodeAction`]s; it holds no protocol logic.
//!
//! How requests are served:
//! - `Log` requests (open, close, acquire, release, cancel) are proposed by
//!   the leader; a follower forwards them. Every server registers the
//!   requests of its own clients and answers them when *it* applies the
//!   entry that answers them, so a grant is answered by the waiter's server
//!   as it applies the release that granted it (ARCHITECTURE.md §13), and a client
//!   that moved to another server after a failover is answered there.
//! - `KeepAlive`, `CheckToken` and `LockStatus` are served by the leader
//!   through ReadIndex: a keepalive is acknowledged only after a heartbeat
//!   round that started after it arrived reached a majority, and only once
//!   an entry of the leader's term has committed (ARCHITECTURE.md §4, lease rules 2-3).
//! - `ClusterStatus` is answered locally; `Watch` subscribes the connection
//!   to a lock's applied events on this server.
//! - `TakeSnapshot` (a backup) is a ReadIndex read too; the leader keeps
//!   the encoded state for the `SnapshotChunk` requests that fetch the
//!   rest of it (see `node::snapshot_export`).
//!
//! Only the leader expires sessions, times out waits and ends lock-delays,
//! by proposing commands; a new leader first resets every such timer to its
//! full length (rule 4).

mod access;
mod applied;
mod attach;
mod deadlines;
mod forwarding;
mod lease_timers;
mod membership;
#[cfg(feature = "testkit")]
mod model_hooks;
mod publish;
mod revoke;
mod snapshot_export;
mod stats;
mod status;
#[cfg(test)]
mod tests;

use crate::ids::{LogIndex, NodeId, Term};
use crate::locks::{ClientCommand, Command, FencingToken, LockState, Seq, SessionId};
use crate::proto::{
    ClientFrame, ForwardId, MemberInfo, PROTOCOL_VERSION, PeerFrame, ProtoError, Request,
    RequestBody, RequestId, Response, ResponseBody, ServerFrame,
};
use crate::raft::{self, Persist, Raft, RestoreError, Stored};
use crate::time::Instant;
pub use access::ClientLimits;
use forwarding::Forwarded;
use lease_timers::LeaseTimers;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

pub use stats::{DURATION_BOUNDS_US, DurationBuckets, LockCounters, Notice};

/// A client connection, numbered by the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// What the runtime must do next. Drained with [`Node::poll_action`].
#[derive(Debug)]
#[cfg_attr(feature = "testkit", derive(Clone))]
pub enum NodeAction {
    /// MUST be written durably, in order, then reported with
    /// [`Node::persisted`] (see [`raft::Action::Persist`]).
    Persist(Persist<Command>),
    /// SHOULD be sent to peer `to`; MAY be lost.
    Send {
        /// The peer.
        to: NodeId,
        /// The frame.
        frame: PeerFrame,
    },
    /// MUST be sent on connection `conn` only; dropped if it is gone.
    Reply {
        /// The connection.
        conn: ConnId,
        /// The frame.
        frame: ServerFrame,
    },
}

/// Where an answer must go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Origin {
    /// A client of this server.
    Local { conn: ConnId, id: RequestId },
    /// A request another server forwarded to us (we lead).
    Remote { node: NodeId, id: ForwardId },
}

/// A linearizable read waiting for ReadIndex.
#[derive(Debug)]
#[cfg_attr(feature = "testkit", derive(Clone))]
enum ReadKind {
    KeepAlive {
        session: SessionId,
        arrival: Instant,
    },
    CheckToken {
        lock: String,
        token: FencingToken,
    },
    LockStatus {
        lock: String,
    },
    TakeSnapshot {
        max_len: u32,
    },
    ListLocks {
        prefix: String,
        after: Option<String>,
        limit: u32,
    },
    ListSessions {
        after: Option<SessionId>,
        limit: u32,
    },
    /// A revocation first checks, linearizably, that the session is live.
    Revoke {
        session: SessionId,
    },
    Leader {
        election: String,
    },
}

/// Configuration of a server.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Raft's settings (this server's id among them).
    pub raft: raft::Config,
    /// Every member's addresses, for `Welcome` and status.
    pub members: Vec<MemberInfo>,
    /// This server's own addresses, published through the log for every
    /// member and client to learn (see `publish`); `None` publishes
    /// nothing.
    pub advertise: Option<raft::MemberAddrs>,
}

/// One server. See the [module documentation](self).
///
/// A driver feeds it client and peer frames, timeouts and persistence
/// reports, and drains [`Node::poll_action`] after each input. A server
/// alone, with one client taking a lock:
///
/// ```
/// use distlock_core::ids::NodeId;
/// use distlock_core::locks::{ClientCommand, LockState, Mode, Outcome, Seq, SessionId, Wait};
/// use distlock_core::node::{ConnId, Node, NodeAction, NodeConfig};
/// use distlock_core::proto::{
///     ClientFrame, PROTOCOL_VERSION, Request, RequestBody, RequestId, ResponseBody, ServerFrame,
/// };
/// use distlock_core::raft::{self, Membership, Stored};
/// use distlock_core::time::Instant;
///
/// let me = NodeId(1);
/// let config = NodeConfig { raft: raft::Config::new(me), members: Vec::new(), advertise: None };
/// let stored = Stored::fresh(Membership::with_voters([me])); // or what the disk holds
/// let mut node = Node::new(config, LockState::default(), stored, 7, Instant::ZERO)?;
/// let mut now = Instant::ZERO;
///
/// // Time passes; each action is done (persisted at once, answers kept).
/// fn run(node: &mut Node, now: &mut Instant, frames: &mut Vec<ServerFrame>) {
///     for _ in 0..50 {
///         if let Some(t) = node.poll_timeout() {
///             *now = (*now).max(t);
///             node.handle_timeout(*now);
///         }
///         while let Some(action) = node.poll_action() {
///             match action {
///                 NodeAction::Persist(p) => node.persisted(p.seq, *now),
///                 NodeAction::Reply { frame, .. } => frames.push(frame),
///                 NodeAction::Send { .. } => unreachable!("a single server has no peers"),
///             }
///         }
///     }
/// }
/// let mut frames = Vec::new();
/// run(&mut node, &mut now, &mut frames);
/// assert!(node.raft().is_leader());
///
/// let conn = ConnId(1);
/// let hello = ClientFrame::Hello { protocol_version: PROTOCOL_VERSION, cluster_id: None, auth: None };
/// node.handle_client(conn, hello, now);
/// let open = ClientCommand::OpenSession { nonce: 99, ttl_ms: 10_000 };
/// let request = |id, command| ClientFrame::Request(Request { id: RequestId(id), body: RequestBody::Log(command) });
/// node.handle_client(conn, request(1, open), now);
/// run(&mut node, &mut now, &mut frames);
/// let session: SessionId = frames.iter().find_map(|f| match f {
///     ServerFrame::Response(r) => match &r.result {
///         Ok(ResponseBody::SessionOpened { session, .. }) => Some(*session),
///         _ => None,
///     },
///     _ => None,
/// }).expect("the session is open");
///
/// let acquire = ClientCommand::Acquire {
///     session, seq: Seq(1), ack: Seq(1), lock: "db".into(),
///     mode: Mode::Exclusive, wait: Wait::Try, lock_delay_ms: 0,
/// };
/// node.handle_client(conn, request(2, acquire), now);
/// run(&mut node, &mut now, &mut frames);
/// assert!(frames.iter().any(|f| matches!(
///     f,
///     ServerFrame::Response(r) if r.id == RequestId(2)
///         && matches!(r.result, Ok(ResponseBody::Lock(Outcome::Granted { .. })))
/// )));
/// # Ok::<(), distlock_core::raft::RestoreError>(())
/// ```
#[cfg_attr(feature = "testkit", derive(Clone))]
pub struct Node {
    raft: Raft<LockState>,
    members: Vec<MemberInfo>,
    now: Instant,
    timers: LeaseTimers,
    /// The term in which this server last became leader and reset its timers.
    led_term: Option<Term>,
    /// Clients that said `Hello`.
    greeted: BTreeSet<ConnId>,
    /// The sessions each connection may act for (see `attach`).
    attached: BTreeMap<ConnId, BTreeSet<SessionId>>,
    /// Log requests of our clients, by the (session, seq) that answers them.
    waiting: BTreeMap<(SessionId, Seq), Vec<Origin>>,
    /// Session opens of our clients, by nonce.
    opening: BTreeMap<u128, Vec<Origin>>,
    /// Requests forwarded to the leader, awaiting a `ForwardReply` (or, for
    /// log requests, our own apply), both ways round.
    forwarded: BTreeMap<ForwardId, Forwarded>,
    forward_of: BTreeMap<(ConnId, RequestId), ForwardId>,
    /// The last forward id used; starts at a point drawn from the seed, so
    /// that a leader's late answer to a forward of an earlier start of this
    /// server matches none of this start's (`forwarding::first_forward_id`).
    next_forward: u64,
    /// The leader this server knew when it last looked: when that changes,
    /// requests forwarded to another one are asked again
    /// (`reroute_forwards`).
    known_leader: Option<NodeId>,
    reads: BTreeMap<u64, (Origin, ReadKind)>,
    next_read: u64,
    watchers: BTreeMap<Arc<str>, BTreeSet<ConnId>>,
    /// Snapshots this leader took for backups, kept while they are fetched.
    exports: snapshot_export::Exports,
    /// Revocations this leader appended, answered when they apply.
    revokes: revoke::Revokes,
    /// Membership changes this leader appended, answered when they commit.
    pending_changes: Vec<membership::PendingChange>,
    /// The configuration our clients last heard of in a `Welcome`.
    announced: LogIndex,
    /// Shutting down: new client requests are refused with `ShuttingDown`
    /// so clients move to another server.
    draining: bool,
    /// This server's own addresses, to publish in the configuration.
    advertise: Option<raft::MemberAddrs>,
    /// When to ask the leader again to publish them.
    publish_at: Option<Instant>,
    /// The configuration found to carry them (no need to look again until
    /// it changes).
    addrs_checked: Option<LogIndex>,
    /// Who each client is, and what it holds against its limits.
    clients: access::Clients,
    actions: VecDeque<NodeAction>,
    stats: stats::Stats,
}

impl Node {
    /// Starts a server from its stored state.
    ///
    /// # Errors
    /// When the configuration or the stored state is invalid.
    pub fn new(
        cfg: NodeConfig,
        state: LockState,
        stored: Stored<Command>,
        rng_seed: u64,
        now: Instant,
    ) -> Result<Self, RestoreError> {
        let raft = Raft::new(cfg.raft, state, stored, rng_seed, now)?;
        let announced = raft.membership_index();
        Ok(Self {
            raft,
            members: cfg.members,
            now,
            timers: LeaseTimers::default(),
            led_term: None,
            greeted: BTreeSet::new(),
            attached: BTreeMap::new(),
            waiting: BTreeMap::new(),
            opening: BTreeMap::new(),
            forwarded: BTreeMap::new(),
            forward_of: BTreeMap::new(),
            known_leader: None,
            next_forward: forwarding::first_forward_id(rng_seed),
            reads: BTreeMap::new(),
            next_read: 0,
            watchers: BTreeMap::new(),
            exports: snapshot_export::Exports::default(),
            pending_changes: Vec::new(),
            revokes: revoke::Revokes::default(),
            announced,
            draining: false,
            advertise: cfg.advertise,
            publish_at: None,
            addrs_checked: None,
            clients: access::Clients::default(),
            actions: VecDeque::new(),
            stats: stats::Stats::default(),
        })
    }

    /// The Raft server inside (status, state machine).
    #[must_use]
    pub fn raft(&self) -> &Raft<LockState> {
        &self.raft
    }

    /// What the lock service did on this server since it started, for
    /// metrics.
    #[must_use]
    pub fn lock_counters(&self) -> &LockCounters {
        &self.stats.counters
    }

    /// The next notice for the operator's log (see [`Notice`]), if any.
    pub fn poll_notice(&mut self) -> Option<Notice> {
        self.stats.notices.pop_front()
    }

    /// Starts a graceful shutdown: new client requests are refused with
    /// `ShuttingDown` (clients fail over with their sessions), and a leader
    /// hands leadership to the most up-to-date voter. Returns the transfer
    /// target when this server leads.
    pub fn start_draining(&mut self, now: Instant) -> Option<NodeId> {
        self.advance_clock(now);
        self.draining = true;
        self.raft.transfer_leadership(None, now).ok()
    }

    /// How many sessions the leader's lease timers track here (0 on a
    /// server that does not lead).
    #[must_use]
    pub fn lease_timer_count(&self) -> usize {
        self.timers.session_count()
    }

    // ---- inputs ---------------------------------------------------------

    /// A frame from client connection `conn`.
    pub fn handle_client(&mut self, conn: ConnId, frame: ClientFrame, now: Instant) {
        self.advance_clock(now);
        match frame {
            ClientFrame::Hello {
                protocol_version, ..
            } => {
                if protocol_version != PROTOCOL_VERSION {
                    let err = ProtoError::UnsupportedVersion {
                        server: PROTOCOL_VERSION,
                        client: protocol_version,
                    };
                    self.reply_frame(conn, ServerFrame::Error(err));
                    return;
                }
                self.greeted.insert(conn);
                let welcome = self.welcome();
                self.reply_frame(conn, welcome);
            }
            ClientFrame::Request(Request { id, body }) => {
                let origin = Origin::Local { conn, id };
                if !self.greeted.contains(&conn) {
                    self.answer(origin, Err(ProtoError::HelloRequired));
                    return;
                }
                // A removed server only waits to be stopped: its clients
                // move on, as from one shutting down.
                if self.draining || self.is_removed() {
                    self.answer(origin, Err(ProtoError::ShuttingDown));
                    return;
                }
                let body = match self.admit(conn, body) {
                    Ok(body) => body,
                    Err(e) => {
                        self.answer(origin, Err(e));
                        return;
                    }
                };
                if !self.may_act(conn, &body) {
                    self.answer(origin, Err(ProtoError::NotAttached));
                    return;
                }
                self.serve(origin, body);
            }
        }
    }

    /// A client connection closed: forget its watches and registrations.
    pub fn connection_closed(&mut self, conn: ConnId) {
        self.greeted.remove(&conn);
        self.attached.remove(&conn);
        self.forget_connection(conn);
        for set in self.watchers.values_mut() {
            set.remove(&conn);
        }
        self.watchers.retain(|_, set| !set.is_empty());
        let mine = |o: &Origin| matches!(o, Origin::Local { conn: c, .. } if *c == conn);
        for list in self.waiting.values_mut().chain(self.opening.values_mut()) {
            list.retain(|o| !mine(o));
        }
        self.waiting.retain(|_, l| !l.is_empty());
        self.opening.retain(|_, l| !l.is_empty());
        self.forwarded.retain(|_, f| f.conn != conn);
        self.forward_of.retain(|(c, _), _| *c != conn);
    }

    /// A frame from peer `from`.
    pub fn handle_peer(&mut self, from: NodeId, frame: PeerFrame, now: Instant) {
        self.advance_clock(now);
        match frame {
            PeerFrame::Raft(msg) if msg.from == from => self.raft.handle_message(msg, now),
            PeerFrame::Forward { origin, request } if origin == from => {
                self.serve(
                    Origin::Remote {
                        node: from,
                        id: request.id,
                    },
                    request.body,
                );
            }
            PeerFrame::ForwardReply { id, result } => {
                if let Some(f) = self.forwarded.remove(&id) {
                    self.answer(
                        Origin::Local {
                            conn: f.conn,
                            id: f.id,
                        },
                        result,
                    );
                }
            }
            // Handshakes, errors and introductions are the transport's
            // business.
            _ => {}
        }
        self.run_lease_timers();
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance_clock(now);
        self.exports.expire(now);
        self.raft.handle_timeout(now);
        self.run_lease_timers();
    }

    /// Persists up to `seq` are durable.
    pub fn persisted(&mut self, seq: raft::PersistSeq, now: Instant) {
        self.advance_clock(now);
        self.raft.persisted(seq, now);
        self.run_lease_timers();
    }

    // ---- outputs --------------------------------------------------------

    /// The next thing to do; call until `None` after every input.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<NodeAction> {
        if self.actions.is_empty() {
            self.drain_raft();
        }
        self.actions.pop_front()
    }

    /// When [`Node::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let raft = self.raft.poll_timeout();
        let leases = if self.raft.has_committed_own_term() {
            self.timers.next()
        } else {
            None
        };
        [raft, leases, self.publish_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    // ---- routing --------------------------------------------------------

    /// Moves the local clock to `now` (it never goes back). Fires no timer:
    /// timers fire in [`Self::handle_timeout`].
    fn advance_clock(&mut self, now: Instant) {
        debug_assert!(now >= self.now, "time went backwards");
        self.now = self.now.max(now);
    }

    fn serve(&mut self, origin: Origin, body: RequestBody) {
        match body {
            RequestBody::Log(command) => self.serve_log(origin, command),
            RequestBody::KeepAlive { session } => {
                self.serve_read(
                    origin,
                    ReadKind::KeepAlive {
                        session,
                        arrival: self.now,
                    },
                );
            }
            RequestBody::CheckToken { lock, token } => {
                self.serve_read(origin, ReadKind::CheckToken { lock, token });
            }
            RequestBody::LockStatus { lock } => {
                self.serve_read(origin, ReadKind::LockStatus { lock })
            }
            RequestBody::ClusterStatus => {
                let status = self.cluster_status();
                self.answer(origin, Ok(ResponseBody::ClusterStatus(status)));
            }
            RequestBody::Watch { lock } => {
                if let Origin::Local { conn, .. } = origin {
                    self.watchers
                        .entry(Arc::from(lock.as_str()))
                        .or_default()
                        .insert(conn);
                    self.record_watch(conn, &lock, true);
                }
                self.answer(origin, Ok(ResponseBody::Watching));
            }
            RequestBody::Unwatch { lock } => {
                if let Origin::Local { conn, .. } = origin {
                    if let Some(set) = self.watchers.get_mut(lock.as_str()) {
                        set.remove(&conn);
                    }
                    self.record_watch(conn, &lock, false);
                }
                self.answer(origin, Ok(ResponseBody::Unwatched));
            }
            RequestBody::ChangeMembership(change) => self.serve_membership(origin, change),
            RequestBody::Attach { session, secret } => self.serve_attach(origin, session, secret),
            RequestBody::TakeSnapshot { max_len } => {
                self.serve_read(origin, ReadKind::TakeSnapshot { max_len });
            }
            RequestBody::SnapshotChunk {
                index,
                offset,
                max_len,
            } => self.serve_snapshot_chunk(origin, index, offset, max_len),
            RequestBody::ListLocks {
                prefix,
                after,
                limit,
            } => self.serve_read(
                origin,
                ReadKind::ListLocks {
                    prefix,
                    after,
                    limit,
                },
            ),
            RequestBody::ListSessions { after, limit } => {
                self.serve_read(origin, ReadKind::ListSessions { after, limit });
            }
            RequestBody::RevokeSession { session } => {
                self.serve_read(origin, ReadKind::Revoke { session });
            }
            RequestBody::Leader { election } => {
                self.serve_read(origin, ReadKind::Leader { election });
            }
        }
    }

    fn serve_log(&mut self, origin: Origin, command: ClientCommand) {
        if let Err(e) = self.raft.state_machine().precheck(&command) {
            self.answer(origin, Err(ProtoError::Lock(e)));
            return;
        }
        if let Origin::Local { .. } = origin {
            // Registered before proposing or forwarding: whichever server
            // proposes it, we answer when we apply it.
            match &command {
                ClientCommand::OpenSession { nonce, .. }
                | ClientCommand::OpenSessionWithMeta { nonce, .. } => {
                    self.opening.entry(*nonce).or_default().push(origin)
                }
                ClientCommand::CloseSession { session, seq, .. }
                | ClientCommand::Acquire { session, seq, .. }
                | ClientCommand::Release { session, seq, .. }
                | ClientCommand::CancelWait { session, seq, .. }
                | ClientCommand::Campaign { session, seq, .. }
                | ClientCommand::Proclaim { session, seq, .. } => {
                    // A client re-asks a waiting acquire now and then: keep
                    // one registration per connection, the latest.
                    let list = self.waiting.entry((*session, *seq)).or_default();
                    list.retain(|o| !same_connection(o, &origin));
                    list.push(origin);
                }
            }
        }
        self.route_log(origin, command);
    }

    /// Proposes a log request if this server leads, else forwards it.
    fn route_log(&mut self, origin: Origin, command: ClientCommand) {
        if self.raft.is_leader() {
            if let Err(e) = self.raft.propose(Command::Client(command)) {
                self.refuse(origin, e);
            }
            return;
        }
        self.forward(origin, RequestBody::Log(command));
    }

    fn serve_read(&mut self, origin: Origin, kind: ReadKind) {
        if !self.raft.is_leader() {
            let body = match kind {
                ReadKind::KeepAlive { session, .. } => RequestBody::KeepAlive { session },
                ReadKind::CheckToken { lock, token } => RequestBody::CheckToken { lock, token },
                ReadKind::LockStatus { lock } => RequestBody::LockStatus { lock },
                ReadKind::TakeSnapshot { max_len } => RequestBody::TakeSnapshot { max_len },
                ReadKind::ListLocks {
                    prefix,
                    after,
                    limit,
                } => RequestBody::ListLocks {
                    prefix,
                    after,
                    limit,
                },
                ReadKind::ListSessions { after, limit } => {
                    RequestBody::ListSessions { after, limit }
                }
                ReadKind::Revoke { session } => RequestBody::RevokeSession { session },
                ReadKind::Leader { election } => RequestBody::Leader { election },
            };
            self.forward(origin, body);
            return;
        }
        self.next_read += 1;
        let id = self.next_read;
        match self.raft.read_index(id, self.now) {
            Ok(()) => {
                self.reads.insert(id, (origin, kind));
            }
            Err(e) => self.answer(
                origin,
                Err(ProtoError::NotLeader {
                    leader_hint: e.leader,
                }),
            ),
        }
    }

    fn refuse(&mut self, origin: Origin, e: raft::ProposeError) {
        let err = match e {
            raft::ProposeError::NotLeader { leader } => ProtoError::NotLeader {
                leader_hint: leader,
            },
            raft::ProposeError::Transferring => ProtoError::ShuttingDown,
        };
        self.unregister(origin);
        self.answer(origin, Err(err));
    }

    /// Drops `origin`'s registrations (its request was refused outright).
    fn unregister(&mut self, origin: Origin) {
        for list in self.waiting.values_mut().chain(self.opening.values_mut()) {
            list.retain(|o| *o != origin);
        }
        self.waiting.retain(|_, l| !l.is_empty());
        self.opening.retain(|_, l| !l.is_empty());
    }

    fn answer(&mut self, origin: Origin, result: Result<ResponseBody, ProtoError>) {
        match origin {
            Origin::Local { conn, id } => {
                if let Some(fid) = self.forward_of.remove(&(conn, id)) {
                    self.forwarded.remove(&fid);
                }
                // The connection that opened a session speaks for it.
                if let Ok(ResponseBody::SessionOpened { session, .. }) = &result {
                    self.attach(conn, *session);
                    self.record_owner(conn, *session);
                }
                if let Err(e) = &result {
                    // A refused log request is answered now, not at apply.
                    if matches!(
                        e,
                        ProtoError::NotLeader { .. }
                            | ProtoError::NoLeader
                            | ProtoError::ShuttingDown
                    ) {
                        self.unregister(origin);
                    }
                }
                self.reply_frame(conn, ServerFrame::Response(Response { id, result }));
            }
            Origin::Remote { node, id } => {
                self.actions.push_back(NodeAction::Send {
                    to: node,
                    frame: PeerFrame::ForwardReply { id, result },
                });
            }
        }
    }

    fn reply_frame(&mut self, conn: ConnId, frame: ServerFrame) {
        self.actions.push_back(NodeAction::Reply { conn, frame });
    }
}

fn same_connection(a: &Origin, b: &Origin) -> bool {
    matches!((a, b), (Origin::Local { conn: x, .. }, Origin::Local { conn: y, .. }) if x == y)
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("raft", &self.raft)
            .finish_non_exhaustive()
    }
}
