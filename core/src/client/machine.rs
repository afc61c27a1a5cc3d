//! [`ClientSession`]: the client's session state machine.

use super::{ClientError, ClientEvent, Config, OpId};
use crate::ids::NodeId;
use crate::locks::ClientCommand;
use crate::locks::{FencingToken, Mode, Seq, SessionId, Wait};
use crate::proto::{
    ClientFrame, MemberInfo, PROTOCOL_VERSION, Request, RequestBody, RequestId, ServerFrame,
};
use crate::time::{Duration, Instant};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::collections::{BTreeMap, VecDeque};

mod answers;
mod lease;
mod reads;
mod servers;
mod watches;

pub use lease::lease_length;

/// Where the session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SessionState {
    /// Not opened yet.
    None,
    /// `OpenSession` is outstanding as this operation.
    Opening(OpId),
    /// Open, alive until `lease_until` on the local clock.
    Open {
        id: SessionId,
        ttl: Duration,
        lease_until: Instant,
        /// The nonce it was opened with: what proves, on each new
        /// connection, that this client speaks for it (`Attach`).
        secret: u128,
    },
    /// Closed by this client.
    Closed,
    /// Lost (final).
    Lost,
}

/// The state of the connection the driver holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Conn {
    /// The driver is dialling (after [`ClientEvent::Reconnect`], or the
    /// first connection).
    Connecting,
    /// Frames flow to this server.
    Connected,
    /// Waiting before asking for a reconnection.
    Backoff { until: Instant },
}

/// An operation not answered yet.
#[derive(Clone, Debug)]
struct Op {
    /// The request, with its seq fixed; the ack is refreshed on every send.
    body: RequestBody,
    /// Its seq, for logged session requests.
    seq: Option<Seq>,
    /// The id of its latest send on the current connection.
    rid: Option<RequestId>,
    /// When it was first sent (the lease of a new session counts from it).
    first_sent: Option<Instant>,
    /// When the current send times out; `None` for no timeout.
    deadline: Option<Instant>,
    /// When to send it again after a retryable answer.
    retry_at: Option<Instant>,
    /// The next retry backoff.
    backoff: Duration,
}

/// What a request id in flight stands for.
#[derive(Clone, Copy, Debug)]
enum InFlight {
    /// A caller's operation.
    Op(OpId),
    /// A keepalive sent at `sent_at`.
    KeepAlive { sent_at: Instant, deadline: Instant },
    /// The session's `Attach` on this connection.
    Attach,
}

/// A client's session with a distlock cluster, sans-IO.
///
/// The driver dials a first server, calls [`Self::connected`], and after
/// every input drains [`Self::poll_frame`] (to send on the current
/// connection), [`Self::poll_event`], and arms a timer at
/// [`Self::poll_timeout`] that calls [`Self::handle_timeout`].
///
/// ```
/// use distlock_core::client::{ClientEvent, ClientSession, Config};
/// use distlock_core::locks::SessionId;
/// use distlock_core::proto::{ClientFrame, Response, ResponseBody, ServerFrame};
/// use distlock_core::time::{Duration, Instant};
///
/// let mut client = ClientSession::with_jitter(Config::default(), 42);
/// let now = Instant::ZERO;
/// client.connected(None, now); // the driver has dialled a server
/// let op = client.open_session(Duration::from_secs(10), 0x5eed, now)?;
///
/// // The driver sends the frames: the `Hello`, then the request.
/// assert!(matches!(client.poll_frame(), Some(ClientFrame::Hello { .. })));
/// let Some(ClientFrame::Request(open)) = client.poll_frame() else { panic!() };
///
/// // The server's answer comes back as a frame.
/// let answer = ResponseBody::SessionOpened { session: SessionId(3), ttl_ms: 10_000 };
/// client.handle_frame(ServerFrame::Response(Response::ok(open.id, answer)), now);
/// assert_eq!(
///     client.poll_event(),
///     Some(ClientEvent::SessionOpened { op, result: Ok(SessionId(3)) })
/// );
/// // The lease counts from the request's send time, less the drift margin.
/// assert!(client.is_alive(now + Duration::from_secs(9)));
/// // A keepalive is due a third of the TTL later.
/// assert!(client.poll_timeout().is_some());
/// # Ok::<(), distlock_core::client::ClientError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ClientSession {
    config: Config,
    session: SessionState,
    conn: Conn,
    members: Vec<MemberInfo>,
    next_member: usize,
    reconnect_backoff: Duration,
    /// Whether the current connection was opened to follow a `Welcome`'s
    /// leader hint: a second hint on it is not followed, so stale hints
    /// cannot bounce the client between servers.
    followed_hint: bool,
    /// Since when the connected server has answered only that it knows no
    /// leader.
    leaderless_since: Option<Instant>,
    next_op: u64,
    next_rid: u64,
    next_seq: u64,
    ops: BTreeMap<OpId, Op>,
    in_flight: BTreeMap<RequestId, InFlight>,
    next_keepalive: Option<Instant>,
    frames: VecDeque<ClientFrame>,
    events: VecDeque<ClientEvent>,
    watches: BTreeMap<String, watches::Watched>,
    /// Spreads reconnect backoffs (see [`Self::with_jitter`]); `None`
    /// keeps them exact.
    jitter: Option<ChaCha8Rng>,
}

impl ClientSession {
    /// A client with no session yet. The driver is expected to dial a
    /// configured server and call [`Self::connected`] (or
    /// [`Self::connection_lost`]).
    #[must_use]
    pub fn new(config: Config) -> Self {
        let reconnect_backoff = config.backoff_min;
        Self {
            config,
            session: SessionState::None,
            conn: Conn::Connecting,
            members: Vec::new(),
            next_member: 0,
            reconnect_backoff,
            followed_hint: false,
            leaderless_since: None,
            next_op: 1,
            next_rid: 1,
            next_seq: 1,
            ops: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            next_keepalive: None,
            frames: VecDeque::new(),
            events: VecDeque::new(),
            watches: BTreeMap::new(),
            jitter: None,
        }
    }

    /// As [`Self::new`], with each reconnect backoff drawn between half and
    /// all of its nominal length (doubling from
    /// [`Config::backoff_min`] to [`Config::backoff_max`]), from a
    /// generator seeded with `seed`: clients that lost the same server do
    /// not all dial the next one at the same instant. The driver draws the
    /// seed; the same seed gives the same backoffs.
    #[must_use]
    pub fn with_jitter(config: Config, seed: u64) -> Self {
        Self {
            jitter: Some(ChaCha8Rng::seed_from_u64(seed)),
            ..Self::new(config)
        }
    }

    // ----- queries -----

    /// The session, once open (and until closed or lost).
    #[must_use]
    pub const fn session_id(&self) -> Option<SessionId> {
        match self.session {
            SessionState::Open { id, .. } => Some(id),
            _ => None,
        }
    }

    /// Whether the session's local lease still runs at `now`: the cluster
    /// cannot have expired it yet (ARCHITECTURE.md §4, lease rule 5).
    #[must_use]
    pub fn is_alive(&self, now: Instant) -> bool {
        matches!(self.session, SessionState::Open { lease_until, .. } if now < lease_until)
    }

    /// When the local lease runs out, while the session is open.
    #[must_use]
    pub const fn lease_until(&self) -> Option<Instant> {
        match self.session {
            SessionState::Open { lease_until, .. } => Some(lease_until),
            _ => None,
        }
    }

    /// Whether frames flow on a connection: `false` while dialling or
    /// backing off. A driver that shares one connection between several
    /// machines reads a change to `false` after an input as this machine
    /// giving the connection up (a timeout, a server that cannot serve).
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.conn == Conn::Connected
    }

    /// Whether no operation is outstanding (keepalives aside).
    #[must_use]
    pub fn is_idle(&self) -> bool {
        self.ops.is_empty()
    }

    /// Whether the session is over: closed by this client or lost.
    #[must_use]
    pub const fn is_ended(&self) -> bool {
        matches!(self.session, SessionState::Closed | SessionState::Lost)
    }

    /// The servers this session fails over between: every member a
    /// `Welcome` named, in the order first heard of, less those a leader's
    /// configuration has since left out.
    #[must_use]
    pub fn members(&self) -> &[MemberInfo] {
        &self.members
    }

    // ----- outputs -----

    /// The next frame to send on the current connection.
    pub fn poll_frame(&mut self) -> Option<ClientFrame> {
        self.frames.pop_front()
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must be called next, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut add = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        add(self.lease_until());
        match self.conn {
            Conn::Backoff { until } => add(Some(until)),
            Conn::Connecting => {}
            Conn::Connected => {
                add(self.next_keepalive);
                for op in self.ops.values() {
                    add(op.deadline);
                    add(op.retry_at);
                }
                for f in self.in_flight.values() {
                    if let InFlight::KeepAlive { deadline, .. } = f {
                        add(Some(*deadline));
                    }
                }
            }
        }
        next
    }

    // ----- commands -----

    /// Opens the session with this lease length; `nonce` must be random
    /// (drawn by the caller), so that a retry answers the same session.
    ///
    /// # Errors
    /// [`ClientError::SessionExists`] if a session is open or opening,
    /// [`ClientError::SessionLost`] / [`ClientError::Closed`] once ended.
    pub fn open_session(
        &mut self,
        ttl: Duration,
        nonce: u128,
        now: Instant,
    ) -> Result<OpId, ClientError> {
        self.check_lease(now);
        match self.session {
            SessionState::None => {}
            SessionState::Opening(_) | SessionState::Open { .. } => {
                return Err(ClientError::SessionExists);
            }
            SessionState::Closed => return Err(ClientError::Closed),
            SessionState::Lost => return Err(ClientError::SessionLost),
        }
        let ttl_ms = millis(ttl);
        let open = match &self.config.session_meta {
            Some(meta) => ClientCommand::OpenSessionWithMeta {
                nonce,
                ttl_ms,
                meta: meta.clone(),
            },
            None => ClientCommand::OpenSession { nonce, ttl_ms },
        };
        let op = self.start(RequestBody::Log(open), None, now);
        self.session = SessionState::Opening(op);
        Ok(op)
    }

    /// Asks for `lock`. Answered [`Outcome::Granted`](crate::locks::Outcome::Granted) or an error; a waiting
    /// acquire is answered when it leaves the queue.
    ///
    /// # Errors
    /// When no session is open ([`ClientError::NoSession`],
    /// [`ClientError::SessionLost`], [`ClientError::Closed`]).
    pub fn acquire(
        &mut self,
        lock: impl Into<String>,
        mode: Mode,
        wait: Wait,
        lock_delay: Duration,
        now: Instant,
    ) -> Result<OpId, ClientError> {
        self.command(now, |session, seq| ClientCommand::Acquire {
            session,
            seq,
            ack: seq,
            lock: lock.into(),
            mode,
            wait,
            lock_delay_ms: millis(lock_delay),
        })
    }

    /// Campaigns in `election` with `value`: answered
    /// [`Outcome::Granted`] once this session leads (the token is its term
    /// of office), or an error. Resign with [`Self::release`].
    ///
    /// # Errors
    /// When no session is open.
    pub fn campaign(
        &mut self,
        election: impl Into<String>,
        value: impl Into<String>,
        wait: Wait,
        lock_delay: Duration,
        now: Instant,
    ) -> Result<OpId, ClientError> {
        self.command(now, |session, seq| ClientCommand::Campaign {
            session,
            seq,
            ack: seq,
            election: election.into(),
            value: value.into(),
            wait,
            lock_delay_ms: millis(lock_delay),
        })
    }

    /// As the leader of `election` with term of office `token`, replaces
    /// the value it leads with; answered [`Outcome::Proclaimed`].
    ///
    /// # Errors
    /// When no session is open.
    pub fn proclaim(
        &mut self,
        election: impl Into<String>,
        token: FencingToken,
        value: impl Into<String>,
        now: Instant,
    ) -> Result<OpId, ClientError> {
        self.command(now, |session, seq| ClientCommand::Proclaim {
            session,
            seq,
            ack: seq,
            election: election.into(),
            token,
            value: value.into(),
        })
    }

    /// Sends the session command `make` builds from the session and a new
    /// sequence number (acknowledging everything before it).
    fn command(
        &mut self,
        now: Instant,
        make: impl FnOnce(SessionId, Seq) -> ClientCommand,
    ) -> Result<OpId, ClientError> {
        let session = self.live_session(now)?;
        let seq = self.take_seq();
        Ok(self.start(RequestBody::Log(make(session, seq)), Some(seq), now))
    }

    /// Gives back the grant `token` of `lock`.
    ///
    /// # Errors
    /// When no session is open.
    pub fn release(
        &mut self,
        lock: impl Into<String>,
        token: FencingToken,
        now: Instant,
    ) -> Result<OpId, ClientError> {
        self.command(now, |session, seq| ClientCommand::Release {
            session,
            seq,
            ack: seq,
            lock: lock.into(),
            token,
        })
    }

    /// Withdraws this session's queued acquire of `lock`.
    ///
    /// # Errors
    /// When no session is open.
    pub fn cancel_wait(
        &mut self,
        lock: impl Into<String>,
        now: Instant,
    ) -> Result<OpId, ClientError> {
        self.command(now, |session, seq| ClientCommand::CancelWait {
            session,
            seq,
            ack: seq,
            lock: lock.into(),
        })
    }

    /// Closes the session, releasing its locks. Keepalives continue until
    /// the close is answered.
    ///
    /// # Errors
    /// When no session is open.
    pub fn close(&mut self, now: Instant) -> Result<OpId, ClientError> {
        self.command(now, |session, seq| ClientCommand::CloseSession {
            session,
            seq,
            ack: seq,
        })
    }

    // ----- inputs -----

    /// The driver has a new connection (to `server`, if it knows which):
    /// sends `Hello`, then every outstanding request again with the same
    /// seqs, and a keepalive.
    pub fn connected(&mut self, server: Option<NodeId>, now: Instant) {
        if let Some(server) = server
            && !self.followed_hint
            && let Some(pos) = self.members.iter().position(|m| m.id == server)
        {
            self.next_member = pos + 1;
        }
        self.check_lease(now);
        self.conn = Conn::Connected;
        self.in_flight.clear();
        self.frames.clear();
        self.frames.push_back(ClientFrame::Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: self.config.cluster_id.clone(),
            auth: self.config.auth.clone(),
        });
        // Before anything that acts on the session: the server checks
        // requests in the order they arrive.
        if let SessionState::Open { id, secret, .. } = self.session {
            let rid = self.take_rid();
            self.in_flight.insert(rid, InFlight::Attach);
            self.frames.push_back(ClientFrame::Request(Request {
                id: rid,
                body: RequestBody::Attach {
                    session: id,
                    secret,
                },
            }));
        }
        self.resend_watches();
        let ids: Vec<OpId> = self.ops.keys().copied().collect();
        for id in ids {
            self.send_op(id, now);
        }
        if matches!(self.session, SessionState::Open { .. }) {
            self.send_keepalive(now);
        }
    }

    /// The current connection failed (or a dial did): after a backoff
    /// (100 ms doubling to 1 s, jittered if made [`Self::with_jitter`]) a
    /// [`ClientEvent::Reconnect`] names the next server to try.
    pub fn connection_lost(&mut self, now: Instant) {
        self.check_lease(now);
        if matches!(self.conn, Conn::Backoff { .. }) {
            return;
        }
        self.forget_connection();
        self.followed_hint = false;
        let wait = match self.jitter.as_mut() {
            // Between half and all of the nominal backoff ("equal jitter"):
            // spread, yet still growing with each failure.
            Some(rng) => {
                let us = u64::try_from(self.reconnect_backoff.as_micros()).unwrap_or(u64::MAX);
                let half = us / 2;
                let spread = (us - half).saturating_add(1);
                Duration::from_micros(half + rng.next_u64() % spread)
            }
            None => self.reconnect_backoff,
        };
        debug_assert!(wait <= self.reconnect_backoff);
        self.conn = Conn::Backoff { until: now + wait };
        self.reconnect_backoff = (self.reconnect_backoff * 2).min(self.config.backoff_max);
    }

    /// A frame arrived on the current connection.
    pub fn handle_frame(&mut self, frame: ServerFrame, now: Instant) {
        self.check_lease(now);
        if self.conn != Conn::Connected {
            return;
        }
        match frame {
            ServerFrame::Welcome {
                node_id,
                members,
                leader_hint,
            } => {
                self.learn_members(node_id, leader_hint, members);
                self.reconnect_backoff = self.config.backoff_min;
                self.follow_leader_hint(node_id, leader_hint);
            }
            ServerFrame::Response(response) => self.on_response(response, now),
            ServerFrame::Watch(event) => self.on_watch_event(event),
            ServerFrame::Error(_) => self.connection_lost(now),
        }
    }

    /// Time passed: expires the lease, times out requests, retries, sends
    /// keepalives and asks for reconnections as due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.check_lease(now);
        match self.conn {
            Conn::Connecting => {}
            Conn::Backoff { until } => {
                if now >= until {
                    self.conn = Conn::Connecting;
                    let to = self.next_target();
                    self.events.push_back(ClientEvent::Reconnect { to });
                }
            }
            Conn::Connected => {
                let op_timed_out = self
                    .ops
                    .values()
                    .any(|op| op.deadline.is_some_and(|d| now >= d));
                let ka_timed_out = self
                    .in_flight
                    .values()
                    .any(|f| matches!(f, InFlight::KeepAlive { deadline, .. } if now >= *deadline));
                if op_timed_out || ka_timed_out {
                    self.connection_lost(now);
                    return;
                }
                let due: Vec<OpId> = self
                    .ops
                    .iter()
                    .filter(|(_, op)| op.retry_at.is_some_and(|t| now >= t))
                    .map(|(id, _)| *id)
                    .collect();
                for id in due {
                    // Re-asking a waiting acquire on the same connection
                    // keeps its deadline: the wait does not start over.
                    let keep = self
                        .ops
                        .get(&id)
                        .filter(|op| waits(&op.body))
                        .and_then(|op| op.deadline);
                    self.send_op(id, now);
                    if let (Some(d), Some(op)) = (keep, self.ops.get_mut(&id)) {
                        op.deadline = Some(d);
                    }
                }
                if self.next_keepalive.is_some_and(|t| now >= t) {
                    self.send_keepalive(now);
                }
            }
        }
    }

    // ----- internals -----

    fn live_session(&mut self, now: Instant) -> Result<SessionId, ClientError> {
        self.check_lease(now);
        match self.session {
            SessionState::Open { id, .. } => Ok(id),
            SessionState::None | SessionState::Opening(_) => Err(ClientError::NoSession),
            SessionState::Closed => Err(ClientError::Closed),
            SessionState::Lost => Err(ClientError::SessionLost),
        }
    }

    fn take_seq(&mut self) -> Seq {
        let seq = Seq(self.next_seq);
        self.next_seq += 1;
        seq
    }

    /// The lowest seq not yet answered.
    fn ack(&self) -> Seq {
        self.ops
            .values()
            .filter_map(|op| op.seq)
            .min()
            .unwrap_or(Seq(self.next_seq))
    }

    pub(super) fn start(&mut self, body: RequestBody, seq: Option<Seq>, now: Instant) -> OpId {
        let id = OpId(self.next_op);
        self.next_op += 1;
        self.ops.insert(
            id,
            Op {
                body,
                seq,
                rid: None,
                first_sent: None,
                deadline: None,
                retry_at: None,
                backoff: self.config.backoff_min,
            },
        );
        if self.conn == Conn::Connected {
            self.send_op(id, now);
        }
        id
    }

    fn timeout_of(&self, body: &RequestBody) -> Option<Duration> {
        match body {
            RequestBody::Log(
                ClientCommand::Acquire { wait, .. } | ClientCommand::Campaign { wait, .. },
            ) => match wait {
                Wait::Try | Wait::For(0) => Some(self.config.request_timeout),
                Wait::For(ms) => Some(Duration::from_millis(*ms) + self.config.wait_slack),
                Wait::Forever => None,
            },
            _ => Some(self.config.request_timeout),
        }
    }

    /// Sends (or re-sends) an operation with a fresh request id, its seq
    /// unchanged and the current ack.
    fn send_op(&mut self, id: OpId, now: Instant) {
        let ack = self.ack();
        let rid = self.take_rid();
        let Some(op) = self.ops.get(&id) else { return };
        let timeout = self.timeout_of(&op.body);
        let Some(op) = self.ops.get_mut(&id) else {
            return;
        };
        if let Some(old) = op.rid.replace(rid) {
            self.in_flight.remove(&old);
        }
        set_ack(&mut op.body, ack);
        op.first_sent.get_or_insert(now);
        op.deadline = timeout.map(|t| now + t);
        // A waiting acquire is asked again now and then: its answer may have
        // been lost with a forwarded request or a reply, and the cluster
        // answers a retry from its dedupe table (or not at all while it is
        // still queued), so re-sending is free of side effects.
        op.retry_at = waits(&op.body).then(|| now + self.config.request_timeout);
        self.in_flight.insert(rid, InFlight::Op(id));
        self.frames.push_back(ClientFrame::Request(Request {
            id: rid,
            body: op.body.clone(),
        }));
    }

    fn send_keepalive(&mut self, now: Instant) {
        let SessionState::Open { id, ttl, .. } = self.session else {
            return;
        };
        self.next_keepalive = Some(now + ttl / 3);
        let rid = self.take_rid();
        self.in_flight.insert(
            rid,
            InFlight::KeepAlive {
                sent_at: now,
                deadline: now + self.config.request_timeout,
            },
        );
        self.frames.push_back(ClientFrame::Request(Request {
            id: rid,
            body: RequestBody::KeepAlive { session: id },
        }));
    }

    fn take_rid(&mut self) -> RequestId {
        let rid = RequestId(self.next_rid);
        self.next_rid += 1;
        rid
    }

    fn retry_later(&mut self, id: OpId, now: Instant) {
        let max = self.config.backoff_max;
        if let Some(op) = self.ops.get_mut(&id) {
            if let Some(rid) = op.rid.take() {
                self.in_flight.remove(&rid);
            }
            op.deadline = None;
            op.retry_at = Some(now + op.backoff);
            op.backoff = (op.backoff * 2).min(max);
        }
    }
}

/// The event failing operation `op` (whose request is `body`).
fn failure(op: OpId, body: &RequestBody, error: ClientError) -> ClientEvent {
    if reads::is_read(body) {
        return ClientEvent::Read {
            op,
            result: Err(error),
        };
    }
    match body {
        RequestBody::Log(
            ClientCommand::OpenSession { .. } | ClientCommand::OpenSessionWithMeta { .. },
        ) => ClientEvent::SessionOpened {
            op,
            result: Err(error),
        },
        _ => ClientEvent::Completed {
            op,
            result: Err(error),
        },
    }
}

/// Writes `ack` into a logged request.
fn set_ack(body: &mut RequestBody, new: Seq) {
    match body {
        RequestBody::Log(ClientCommand::CloseSession { ack, .. })
        | RequestBody::Log(ClientCommand::Acquire { ack, .. })
        | RequestBody::Log(ClientCommand::Release { ack, .. })
        | RequestBody::Log(ClientCommand::CancelWait { ack, .. })
        | RequestBody::Log(ClientCommand::Campaign { ack, .. })
        | RequestBody::Log(ClientCommand::Proclaim { ack, .. }) => *ack = new,
        _ => {}
    }
}

/// Whether a request may stay unanswered for long: an acquire that queues.
fn waits(body: &RequestBody) -> bool {
    matches!(
        body,
        RequestBody::Log(
            ClientCommand::Acquire {
                wait: Wait::For(1..) | Wait::Forever,
                ..
            } | ClientCommand::Campaign {
                wait: Wait::For(1..) | Wait::Forever,
                ..
            }
        )
    )
}

/// A duration in whole milliseconds, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
