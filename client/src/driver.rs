//! The driver task: owns the session state machines, the current
//! connection and the timer, and carries requests and answers between
//! them and the handles.
//!
//! One connection serves every session of a [`super::Client`]: the
//! protocol lets a connection speak for several sessions (each attaches
//! itself on every new connection). Each session is a
//! [`ClientSession`] of its own, with its own keepalives, lease and seqs;
//! one more machine, the *primary*, holds no session and decides where the
//! connection goes (members, leader hints, the jittered reconnect backoff)
//! and carries the reads and watches. The machines' request ids are kept
//! apart on the wire by the machine's number in their top bits. A session
//! machine that gives the connection up (a request or keepalive timed out,
//! the server cannot serve) takes it down for all: the primary then backs
//! off and picks the next server, and every machine re-sends what it has
//! outstanding there.

use super::Transport;
use super::commands::Refusal;
use super::link::{Conn, Incoming, Link, Received, dial};
use distlock_core::client::{
    ClientError as CoreError, ClientEvent, ClientSession, Config, OpId, WatchUpdate,
};
use distlock_core::ids::NodeId;
use distlock_core::locks::{FencingToken, Mode, Outcome, SessionId, Wait};
use distlock_core::proto::{ClientFrame, MemberInfo, RequestId, ResponseBody, ServerFrame};
use distlock_core::time::Instant;
use distlock_transport_tcp::HostPort;
use distlock_transport_tcp::tls::ClientTls;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// An answer to an operation, as the core gives it.
pub(super) type OpReply = oneshot::Sender<Result<Outcome, CoreError>>;

/// An answer to a read, as the core gives it.
pub(super) type ReadReply = oneshot::Sender<Result<ResponseBody, CoreError>>;

/// The number of a session's machine in the driver (0 is the primary).
pub(super) type Slot = u64;

/// How many low bits of a wire request id are the machine's own id; the
/// bits above are its [`Slot`].
const RID_BITS: u32 = 40;

/// How long the driver stays once every handle is gone, to finish closing
/// the sessions whose handles were dropped.
const LINGER: Duration = Duration::from_secs(5);

/// A request from a handle to the driver.
#[derive(Debug)]
pub(super) enum Command {
    Open {
        slot: Slot,
        ttl: Duration,
        nonce: u128,
        reply: oneshot::Sender<Result<SessionId, CoreError>>,
        lost: watch::Sender<bool>,
        lease: watch::Sender<Option<tokio::time::Instant>>,
    },
    Acquire {
        slot: Slot,
        lock: String,
        mode: Mode,
        wait: Wait,
        lock_delay: Duration,
        reply: OpReply,
    },
    /// The caller of a waiting acquire gave up: withdraw it from the queue.
    CancelWait {
        slot: Slot,
        lock: String,
    },
    Release {
        slot: Slot,
        lock: String,
        token: FencingToken,
        reply: OpReply,
    },
    Close {
        slot: Slot,
        reply: OpReply,
    },
    /// Every handle of the session is gone: close it in the background.
    SessionDropped {
        slot: Slot,
    },
    /// Stop keeping the session alive without closing it.
    Abandon {
        slot: Slot,
    },
    CheckToken {
        lock: String,
        token: FencingToken,
        reply: ReadReply,
    },
    LockStatus {
        lock: String,
        reply: ReadReply,
    },
    /// A campaign: answered like an acquire (and released if its caller
    /// gave up by the time it is elected).
    Campaign {
        slot: Slot,
        election: String,
        value: String,
        wait: Wait,
        lock_delay: Duration,
        reply: OpReply,
    },
    Proclaim {
        slot: Slot,
        election: String,
        token: FencingToken,
        value: String,
        reply: OpReply,
    },
    /// Any other request the core sends as a query (listings, revocation,
    /// an election's leader).
    Query {
        body: distlock_core::proto::RequestBody,
        reply: ReadReply,
    },
    Watch {
        lock: String,
        id: u64,
        updates: mpsc::UnboundedSender<WatchUpdate>,
    },
    Unwatch {
        lock: String,
        id: u64,
    },
}

/// Where an operation's answer goes.
enum Reply {
    Open(oneshot::Sender<Result<SessionId, CoreError>>),
    Op(OpReply),
    Read(ReadReply),
    /// An acquire: if its caller gave up waiting (dropped the future) by
    /// the time it is granted, the grant is released at once rather than
    /// held by nobody until the session ends.
    Acquire {
        lock: String,
        reply: OpReply,
    },
}

/// A session's machine and what the driver publishes of it.
struct SessionSlot {
    machine: ClientSession,
    lost: watch::Sender<bool>,
    /// The local lease's end, for [`super::Session::lease_deadline`].
    lease: watch::Sender<Option<tokio::time::Instant>>,
    /// Every handle is gone: the session is closed if open, and forgotten
    /// once it has ended.
    dropped: bool,
}

/// Settings the driver needs beyond the machines'.
pub(super) struct DriverConfig {
    pub(super) session: Config,
    pub(super) servers: Vec<HostPort>,
    /// Where the round robin over `servers` continues.
    pub(super) next_server: usize,
    pub(super) dial_timeout: Duration,
    pub(super) transport: Transport,
    /// TLS for every connection, when the servers run it.
    pub(super) tls: Option<ClientTls>,
    /// Seeds the reconnect backoff's jitter.
    pub(super) jitter_seed: u64,
}

pub(super) struct Driver {
    primary: ClientSession,
    sessions: BTreeMap<Slot, SessionSlot>,
    /// The configuration of each new session's machine.
    session_config: Config,
    servers: Vec<HostPort>,
    /// Dials that failed since the last connection.
    failed_dials: u32,
    next_server: usize,
    dial_timeout: Duration,
    transport: Transport,
    tls: Option<ClientTls>,
    origin: tokio::time::Instant,
    conn: Option<Conn>,
    generation: u64,
    frames_tx: mpsc::UnboundedSender<Incoming>,
    frames_rx: mpsc::UnboundedReceiver<Incoming>,
    commands: mpsc::UnboundedReceiver<Command>,
    replies: HashMap<(Slot, OpId), Reply>,
    /// Each watched lock's streams, by id.
    watchers: BTreeMap<String, BTreeMap<u64, mpsc::UnboundedSender<WatchUpdate>>>,
    /// Filled when a server turns this client away for good; the driver
    /// then stops, and the handles report it.
    refusal: Arc<OnceLock<Refusal>>,
}

/// The wire id of machine `slot`'s request `id`.
fn wire_rid(slot: Slot, id: RequestId) -> RequestId {
    debug_assert!(id.0 < 1 << RID_BITS, "a machine's request ids fit");
    RequestId((slot << RID_BITS) | (id.0 & ((1 << RID_BITS) - 1)))
}

/// The machine and its own id of wire request id `id`.
const fn split_rid(id: RequestId) -> (Slot, RequestId) {
    (id.0 >> RID_BITS, RequestId(id.0 & ((1 << RID_BITS) - 1)))
}

impl Driver {
    pub(super) fn new(
        config: DriverConfig,
        commands: mpsc::UnboundedReceiver<Command>,
        refusal: Arc<OnceLock<Refusal>>,
    ) -> Self {
        let (frames_tx, frames_rx) = mpsc::unbounded_channel();
        // The sessions' machines follow the connection the primary picks.
        let session_config = Config {
            follow_leader: false,
            ..config.session.clone()
        };
        Self {
            primary: ClientSession::with_jitter(config.session, config.jitter_seed),
            sessions: BTreeMap::new(),
            session_config,
            servers: config.servers,
            failed_dials: 0,
            next_server: config.next_server,
            dial_timeout: config.dial_timeout,
            transport: config.transport,
            tls: config.tls,
            origin: tokio::time::Instant::now(),
            conn: None,
            generation: 0,
            frames_tx,
            frames_rx,
            commands,
            replies: HashMap::new(),
            watchers: BTreeMap::new(),
            refusal,
        }
    }

    fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    fn to_tokio(&self, t: Instant) -> Option<tokio::time::Instant> {
        self.origin
            .checked_add(Duration::from_micros(t.as_micros()))
    }

    fn deadline(&self) -> Option<tokio::time::Instant> {
        let t = std::iter::once(self.primary.poll_timeout())
            .chain(self.sessions.values().map(|s| s.machine.poll_timeout()))
            .flatten()
            .min()?;
        self.to_tokio(t)
    }

    fn machine(&mut self, slot: Slot) -> Option<&mut ClientSession> {
        if slot == 0 {
            Some(&mut self.primary)
        } else {
            self.sessions.get_mut(&slot).map(|s| &mut s.machine)
        }
    }

    /// Takes `link` as the current connection and tells every machine.
    fn attach(&mut self, link: Link, server: Option<NodeId>) {
        self.generation += 1;
        self.conn = Some(Conn::start(
            link,
            self.generation,
            server,
            self.frames_tx.clone(),
        ));
        let now = self.now();
        self.primary.connected(server, now);
        for s in self.sessions.values_mut() {
            s.machine.connected(server, now);
        }
    }

    /// The connection is gone (or given up): every machine learns it, the
    /// primary backs off before picking the next server.
    fn lose_connection(&mut self, now: Instant) {
        self.conn = None;
        self.primary.connection_lost(now);
        for s in self.sessions.values_mut() {
            if s.machine.is_connected() {
                s.machine.connection_lost(now);
            }
        }
    }

    /// Runs until every handle is gone and the sessions they dropped are
    /// closed (or [`LINGER`] has passed). `first` is the connection
    /// [`super::Client::connect`] made.
    pub(super) async fn run(mut self, first: Link) {
        self.attach(first, None);
        self.pump().await;
        let mut linger_until = None;
        // Refused: what is pending is dropped, and its callers are told why.
        while self.refusal.get().is_none() {
            if let Some(end) = linger_until
                && (self.sessions.is_empty() || tokio::time::Instant::now() >= end)
            {
                break;
            }
            let deadline = match (self.deadline(), linger_until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            // `biased`: an unbiased select draws from a process-global RNG,
            // which makes simulated runs differ between reruns of a seed.
            tokio::select! {
                biased;
                cmd = self.commands.recv(), if linger_until.is_none() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => linger_until = Some(tokio::time::Instant::now() + LINGER),
                },
                Some((generation, received)) = self.frames_rx.recv() => {
                    if self.conn.as_ref().is_some_and(|c| c.generation == generation) {
                        match received {
                            Received::Frame(frame) => self.on_frame(Some(frame)),
                            Received::Ended => self.on_frame(None),
                            Received::SpeaksTls => self.refuse(Refusal::WantsTls),
                        }
                    }
                }
                () = sleep => {
                    let now = self.now();
                    self.primary.handle_timeout(now);
                    for s in self.sessions.values_mut() {
                        s.machine.handle_timeout(now);
                    }
                }
            }
            self.pump().await;
        }
    }

    fn on_frame(&mut self, frame: Option<ServerFrame>) {
        let now = self.now();
        match frame {
            None => self.lose_connection(now),
            Some(ServerFrame::Response(mut response)) => {
                let (slot, id) = split_rid(response.id);
                response.id = id;
                if let Some(m) = self.machine(slot) {
                    m.handle_frame(ServerFrame::Response(response), now);
                }
            }
            Some(welcome @ ServerFrame::Welcome { .. }) => {
                for s in self.sessions.values_mut() {
                    s.machine.handle_frame(welcome.clone(), now);
                }
                self.primary.handle_frame(welcome, now);
            }
            Some(ServerFrame::Error(e)) if Refusal::of_error(&e).is_some() => {
                self.refuse(Refusal::Server(e));
            }
            // Watch events and other connection-level errors: the primary's.
            Some(frame) => self.primary.handle_frame(frame, now),
        }
    }

    /// A server turned this client away for a reason no retry changes.
    fn refuse(&mut self, why: Refusal) {
        tracing::debug!(reason = %why, "distlock client refused by the server; stopping");
        self.conn = None;
        let _ = self.refusal.set(why);
    }

    fn command(&mut self, cmd: Command) {
        let now = self.now();
        match cmd {
            Command::Open {
                slot,
                ttl,
                nonce,
                reply,
                lost,
                lease,
            } => {
                let mut machine = ClientSession::new(self.session_config.clone());
                if let Some(conn) = &self.conn {
                    machine.connected(conn.server, now);
                }
                match machine.open_session(ttl, nonce, now) {
                    Ok(op) => {
                        self.replies.insert((slot, op), Reply::Open(reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        return;
                    }
                }
                self.sessions.insert(
                    slot,
                    SessionSlot {
                        machine,
                        lost,
                        lease,
                        dropped: false,
                    },
                );
            }
            Command::Acquire {
                slot,
                lock,
                mode,
                wait,
                lock_delay,
                reply,
            } => {
                let Some(m) = self.machine(slot) else { return };
                match m.acquire(lock.clone(), mode, wait, lock_delay, now) {
                    Ok(op) => {
                        self.replies
                            .insert((slot, op), Reply::Acquire { lock, reply });
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::CancelWait { slot, lock } => {
                if let Some(m) = self.machine(slot) {
                    // Answered `WaitCancelled`, or `NotWaiting` if the
                    // grant came first (then it is released as abandoned).
                    let _ = m.cancel_wait(lock, now);
                }
            }
            Command::Release {
                slot,
                lock,
                token,
                reply,
            } => {
                let Some(m) = self.machine(slot) else { return };
                let r = m.release(lock, token, now);
                self.started(slot, r, reply);
            }
            Command::Close { slot, reply } => {
                let Some(m) = self.machine(slot) else { return };
                let r = m.close(now);
                self.started(slot, r, reply);
            }
            Command::SessionDropped { slot } => {
                if let Some(s) = self.sessions.get_mut(&slot) {
                    s.dropped = true;
                    if s.machine.session_id().is_some() {
                        let _ = s.machine.close(now);
                    }
                }
            }
            Command::Abandon { slot } => {
                self.sessions.remove(&slot);
                self.replies.retain(|(s, _), _| *s != slot);
            }
            Command::CheckToken { lock, token, reply } => {
                let op = self.primary.check_token(lock, token, now);
                self.replies.insert((0, op), Reply::Read(reply));
            }
            Command::LockStatus { lock, reply } => {
                let op = self.primary.lock_status(lock, now);
                self.replies.insert((0, op), Reply::Read(reply));
            }
            Command::Watch { lock, id, updates } => {
                self.primary.watch(lock.clone());
                self.watchers.entry(lock).or_default().insert(id, updates);
            }
            Command::Unwatch { lock, id } => {
                if let Some(w) = self.watchers.get_mut(&lock) {
                    w.remove(&id);
                    if w.is_empty() {
                        self.watchers.remove(&lock);
                        self.primary.unwatch(&lock);
                    }
                }
            }
            Command::Campaign {
                slot,
                election,
                value,
                wait,
                lock_delay,
                reply,
            } => {
                let Some(m) = self.machine(slot) else { return };
                match m.campaign(election.clone(), value, wait, lock_delay, now) {
                    Ok(op) => {
                        let lock = election;
                        self.replies
                            .insert((slot, op), Reply::Acquire { lock, reply });
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Proclaim {
                slot,
                election,
                token,
                value,
                reply,
            } => {
                let Some(m) = self.machine(slot) else { return };
                let r = m.proclaim(election, token, value, now);
                self.started(slot, r, reply);
            }
            Command::Query { body, reply } => match self.primary.query(body, now) {
                Some(op) => {
                    self.replies.insert((0, op), Reply::Read(reply));
                }
                None => {
                    let _ = reply.send(Err(CoreError::UnexpectedAnswer));
                }
            },
        }
    }

    fn started(&mut self, slot: Slot, r: Result<OpId, CoreError>, reply: OpReply) {
        match r {
            Ok(op) => {
                self.replies.insert((slot, op), Reply::Op(reply));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Sends the machines' frames and acts on their events until none has
    /// any, then forgets the ended sessions nobody holds and publishes the
    /// leases' ends.
    async fn pump(&mut self) {
        loop {
            self.flush_frames().await;
            let mut progressed = false;
            while let Some(event) = self.primary.poll_event() {
                progressed = true;
                self.primary_event(event).await;
            }
            let slots: Vec<Slot> = self.sessions.keys().copied().collect();
            for slot in slots {
                while let Some(event) = self
                    .sessions
                    .get_mut(&slot)
                    .and_then(|s| s.machine.poll_event())
                {
                    progressed = true;
                    self.session_event(slot, event);
                }
            }
            // A session that gave the connection up takes it down for all.
            if self.conn.is_some() && self.sessions.values().any(|s| !s.machine.is_connected()) {
                let now = self.now();
                self.lose_connection(now);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        self.sessions
            .retain(|_, s| !(s.dropped && s.machine.is_idle() && s.machine.session_id().is_none()));
        for s in self.sessions.values() {
            let until = s.machine.lease_until().and_then(|t| {
                self.origin
                    .checked_add(Duration::from_micros(t.as_micros()))
            });
            s.lease.send_if_modified(|old| {
                let changed = *old != until;
                *old = until;
                changed
            });
        }
    }

    async fn primary_event(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::Reconnect { to } => {
                let now = self.now();
                self.conn = None;
                for s in self.sessions.values_mut() {
                    if s.machine.is_connected() {
                        s.machine.connection_lost(now);
                    }
                }
                let (addr, id) = self.reconnect_target(to);
                match dial(&addr, self.dial_timeout, self.transport, self.tls.as_ref()).await {
                    Ok(link) => {
                        tracing::debug!(%addr, "distlock client connected");
                        self.failed_dials = 0;
                        self.attach(link, id);
                    }
                    Err(e) => {
                        tracing::debug!(%addr, error = %e, "distlock client dial failed");
                        self.failed_dials += 1;
                        let now = self.now();
                        self.primary.connection_lost(now);
                    }
                }
            }
            ClientEvent::Watch { lock, update } => {
                if let Some(w) = self.watchers.get_mut(&lock) {
                    w.retain(|_, tx| tx.send(update).is_ok());
                }
            }
            ClientEvent::Read { op, result } => {
                if let Some(Reply::Read(tx)) = self.replies.remove(&(0, op)) {
                    let _ = tx.send(result);
                }
            }
            // The primary opens no session and takes no locks.
            ClientEvent::SessionOpened { .. }
            | ClientEvent::Completed { .. }
            | ClientEvent::SessionLost { .. } => {}
        }
    }

    fn session_event(&mut self, slot: Slot, event: ClientEvent) {
        let now = self.now();
        let Some(s) = self.sessions.get_mut(&slot) else {
            return;
        };
        match event {
            ClientEvent::SessionOpened { op, result } => {
                // No handle is made of a refused open: forget the machine.
                s.dropped |= result.is_err();
                if let Some(Reply::Open(tx)) = self.replies.remove(&(slot, op))
                    && let Err(Ok(_)) = tx.send(result)
                {
                    // The caller stopped waiting for the session: nobody
                    // will use it.
                    s.dropped = true;
                    let _ = s.machine.close(now);
                }
            }
            ClientEvent::Completed { op, result } => match self.replies.remove(&(slot, op)) {
                Some(Reply::Op(tx)) => {
                    let _ = tx.send(result);
                }
                Some(Reply::Acquire { lock, reply }) => {
                    if let Err(Ok(Outcome::Granted { token })) = reply.send(result) {
                        tracing::debug!(%lock, %token, "acquire abandoned by its caller: releasing the grant");
                        let _ = s.machine.release(lock, token, now);
                    }
                }
                _ => {}
            },
            ClientEvent::Read { op, result } => {
                if let Some(Reply::Read(tx)) = self.replies.remove(&(slot, op)) {
                    let _ = tx.send(result);
                }
            }
            ClientEvent::SessionLost { reason } => {
                tracing::warn!(?reason, "distlock session lost");
                s.lost.send_replace(true);
            }
            // The connection is the primary's to move; watches are its too.
            ClientEvent::Reconnect { .. } | ClientEvent::Watch { .. } => {}
        }
    }

    /// Where to dial next: the member the primary names, at the address
    /// for this transport. A member with no such address (not published
    /// yet, or no WebSocket endpoint), no member named, or every other try
    /// after a failed dial goes to the addresses this client was given
    /// instead, round robin: the members' own addresses may not be
    /// reachable from where this client runs, and the given ones may be.
    fn reconnect_target(&mut self, to: Option<MemberInfo>) -> (String, Option<NodeId>) {
        let member = to.and_then(|m| {
            let addr = match self.transport {
                Transport::Tcp => Some(m.client_addr),
                Transport::WebSocket => m.ws_addr,
            };
            addr.filter(|a| !a.is_empty()).map(|a| (a, m.id))
        });
        match member {
            Some((addr, id)) if self.failed_dials.is_multiple_of(2) || self.servers.is_empty() => {
                (addr, Some(id))
            }
            _ => {
                let i = self.next_server % self.servers.len().max(1);
                self.next_server = i + 1;
                let addr = self.servers.get(i).map(ToString::to_string);
                (addr.unwrap_or_default(), None)
            }
        }
    }

    /// Writes every frame the machines have queued on the current
    /// connection, the primary's first (its `Hello` opens a new one; the
    /// sessions' own `Hello`s are dropped); a failed write loses the
    /// connection. Without a connection the frames are dropped: the
    /// machines send again what matters on the next one.
    async fn flush_frames(&mut self) {
        let mut out = Vec::new();
        while let Some(frame) = self.primary.poll_frame() {
            out.push(tag(0, frame));
        }
        for (slot, s) in &mut self.sessions {
            while let Some(frame) = s.machine.poll_frame() {
                if !matches!(frame, ClientFrame::Hello { .. }) {
                    out.push(tag(*slot, frame));
                }
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if !conn.send(&out).await {
            let now = self.now();
            self.lose_connection(now);
        }
    }
}

/// `frame` with its request id moved into machine `slot`'s part of the
/// wire's ids.
fn tag(slot: Slot, frame: ClientFrame) -> ClientFrame {
    match frame {
        ClientFrame::Request(mut r) => {
            r.id = wire_rid(slot, r.id);
            ClientFrame::Request(r)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_ids_keep_the_machines_apart_and_come_back_whole() {
        for (slot, id) in [
            (0, 1),
            (1, 1),
            (7, 12345),
            ((1 << 24) - 1, (1 << RID_BITS) - 1),
        ] {
            let wire = wire_rid(slot, RequestId(id));
            assert_eq!(split_rid(wire), (slot, RequestId(id)));
        }
        assert_ne!(wire_rid(1, RequestId(1)), wire_rid(2, RequestId(1)));
        assert_eq!(wire_rid(0, RequestId(9)), RequestId(9));
    }
}
