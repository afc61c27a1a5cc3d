//! The driver task: owns the [`ClientSession`], the current connection and
//! the timer, and carries requests and answers between them and the
//! handles. A connection is TCP or WebSocket ([`Transport`]); the session
//! cannot tell them apart.

use crate::stream::{ServerStream, open_stream};
use distlock_core::client::{ClientError as CoreError, ClientEvent, ClientSession};
use distlock_core::ids::NodeId;
use distlock_core::locks::{FencingToken, Mode, Outcome, SessionId, Wait};
use distlock_core::proto::MemberInfo;
use distlock_core::proto::{ResponseBody, ServerFrame};
use distlock_core::time::Instant;
use distlock_transport_tcp::HostPort;
use distlock_transport_tcp::tls::ClientTls;
use distlock_transport_tcp::{FrameReader, FrameWriter, HandshakeConfig};
use distlock_transport_ws::{Encoding, WsReader, WsWriter, ws_upgrade};
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::WriteHalf;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::Transport;

/// An answer to an operation, as the core gives it.
pub(super) type OpReply = oneshot::Sender<Result<Outcome, CoreError>>;

/// A request from a handle to the driver.
#[derive(Debug)]
pub(super) enum Command {
    Open {
        ttl: Duration,
        nonce: u128,
        reply: oneshot::Sender<Result<SessionId, CoreError>>,
    },
    Acquire {
        lock: String,
        mode: Mode,
        wait: Wait,
        lock_delay: Duration,
        reply: OpReply,
    },
    Release {
        lock: String,
        token: FencingToken,
        reply: OpReply,
    },
    Close {
        reply: OpReply,
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
}

/// An answer to a read, as the core gives it.
pub(super) type ReadReply = oneshot::Sender<Result<ResponseBody, CoreError>>;

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

/// One live connection: its writer, and the task reading it into the
/// driver's frame channel under a generation number.
struct Conn {
    writer: LinkWriter,
    reader: JoinHandle<()>,
    generation: u64,
}

/// A dialled connection, ready for the session's `Hello`.
pub(super) enum Link {
    Tcp(ServerStream),
    Ws(WsReader<ServerStream>, WsWriter<ServerStream>),
}

/// The writing half of the current connection.
enum LinkWriter {
    Tcp(FrameWriter<WriteHalf<ServerStream>>),
    Ws(WsWriter<ServerStream>),
}

impl LinkWriter {
    async fn write_frame(&mut self, frame: &distlock_core::proto::ClientFrame) -> bool {
        match self {
            Self::Tcp(w) => w.write_frame(frame).await.is_ok(),
            Self::Ws(w) => w.write_frame(frame).await.is_ok(),
        }
    }

    async fn flush(&mut self) -> bool {
        match self {
            Self::Tcp(w) => w.flush().await.is_ok(),
            Self::Ws(w) => w.flush().await.is_ok(),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A frame (or `None`: the connection ended) from connection `generation`.
type Incoming = (u64, Option<ServerFrame>);

pub(super) struct Driver {
    session: ClientSession,
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
    replies: HashMap<distlock_core::client::OpId, Reply>,
    lost: watch::Sender<bool>,
    /// The local lease's end, published for [`super::Session::lease_deadline`].
    lease: watch::Sender<Option<tokio::time::Instant>>,
}

/// Dials `addr` within `limit`, and upgrades the connection to WebSocket
/// (binary frames) if that is the transport.
pub(super) async fn dial(
    addr: &str,
    limit: Duration,
    transport: Transport,
    tls: Option<&ClientTls>,
) -> std::io::Result<Link> {
    let stream = open_stream(addr, tls, limit).await?;
    match transport {
        Transport::Tcp => Ok(Link::Tcp(stream)),
        Transport::WebSocket => {
            let config = HandshakeConfig {
                timeout: limit,
                ..HandshakeConfig::default()
            };
            let (reader, writer) = ws_upgrade(stream, addr, Encoding::Binary, &config)
                .await
                .map_err(std::io::Error::other)?;
            Ok(Link::Ws(reader, writer))
        }
    }
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        session: ClientSession,
        servers: Vec<HostPort>,
        next_server: usize,
        dial_timeout: Duration,
        transport: Transport,
        tls: Option<ClientTls>,
        commands: mpsc::UnboundedReceiver<Command>,
        lost: watch::Sender<bool>,
        lease: watch::Sender<Option<tokio::time::Instant>>,
    ) -> Self {
        let (frames_tx, frames_rx) = mpsc::unbounded_channel();
        Self {
            session,
            servers,
            failed_dials: 0,
            next_server,
            dial_timeout,
            transport,
            tls,
            origin: tokio::time::Instant::now(),
            conn: None,
            generation: 0,
            frames_tx,
            frames_rx,
            commands,
            replies: HashMap::new(),
            lost,
            lease,
        }
    }

    fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    fn deadline(&self) -> Option<tokio::time::Instant> {
        let t = self.session.poll_timeout()?;
        self.origin
            .checked_add(Duration::from_micros(t.as_micros()))
    }

    /// Takes `link` as the current connection and tells the core.
    fn attach(&mut self, link: Link, server: Option<distlock_core::ids::NodeId>) {
        self.generation += 1;
        let generation = self.generation;
        let tx = self.frames_tx.clone();
        let (reader, writer) = match link {
            Link::Tcp(stream) => {
                let (r, w) = tokio::io::split(stream);
                let reader = tokio::spawn(async move {
                    let mut reader = FrameReader::new(r);
                    loop {
                        let frame = reader.read_frame::<ServerFrame>().await.ok().flatten();
                        let end = frame.is_none();
                        if tx.send((generation, frame)).is_err() || end {
                            return;
                        }
                    }
                });
                (reader, LinkWriter::Tcp(FrameWriter::new(w)))
            }
            Link::Ws(mut r, w) => {
                let reader = tokio::spawn(async move {
                    loop {
                        let frame = r.read_frame::<ServerFrame>().await.ok().flatten();
                        let frame = frame.map(|(f, _)| f);
                        let end = frame.is_none();
                        if tx.send((generation, frame)).is_err() || end {
                            return;
                        }
                    }
                });
                (reader, LinkWriter::Ws(w))
            }
        };
        self.conn = Some(Conn {
            writer,
            reader,
            generation,
        });
        let now = self.now();
        self.session.connected(server, now);
    }

    /// Runs until every handle is gone. `first` is the connection
    /// [`super::Client::connect`] made.
    pub(super) async fn run(mut self, first: Link) {
        self.attach(first, None);
        self.pump().await;
        loop {
            let deadline = self.deadline();
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
                cmd = self.commands.recv() => {
                    let Some(cmd) = cmd else { break };
                    self.command(cmd);
                }
                Some((generation, frame)) = self.frames_rx.recv() => {
                    if self.conn.as_ref().is_some_and(|c| c.generation == generation) {
                        let now = self.now();
                        match frame {
                            Some(frame) => self.session.handle_frame(frame, now),
                            None => {
                                self.conn = None;
                                self.session.connection_lost(now);
                            }
                        }
                    }
                }
                () = sleep => {
                    let now = self.now();
                    self.session.handle_timeout(now);
                }
            }
            self.pump().await;
        }
    }

    fn command(&mut self, cmd: Command) {
        let now = self.now();
        match cmd {
            Command::Open { ttl, nonce, reply } => {
                match self.session.open_session(ttl, nonce, now) {
                    Ok(op) => {
                        self.replies.insert(op, Reply::Open(reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Acquire {
                lock,
                mode,
                wait,
                lock_delay,
                reply,
            } => {
                match self
                    .session
                    .acquire(lock.clone(), mode, wait, lock_delay, now)
                {
                    Ok(op) => {
                        self.replies.insert(op, Reply::Acquire { lock, reply });
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Release { lock, token, reply } => {
                let r = self.session.release(lock, token, now);
                self.started(r, reply);
            }
            Command::Close { reply } => {
                let r = self.session.close(now);
                self.started(r, reply);
            }
            Command::CheckToken { lock, token, reply } => {
                let op = self.session.check_token(lock, token, now);
                self.replies.insert(op, Reply::Read(reply));
            }
            Command::LockStatus { lock, reply } => {
                let op = self.session.lock_status(lock, now);
                self.replies.insert(op, Reply::Read(reply));
            }
        }
    }

    fn started(&mut self, r: Result<distlock_core::client::OpId, CoreError>, reply: OpReply) {
        match r {
            Ok(op) => {
                self.replies.insert(op, Reply::Op(reply));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Sends the core's frames and acts on its events until it has none,
    /// then publishes the lease's end.
    async fn pump(&mut self) {
        self.pump_events().await;
        let until = self.session.lease_until().and_then(|t| {
            self.origin
                .checked_add(Duration::from_micros(t.as_micros()))
        });
        self.lease.send_if_modified(|old| {
            let changed = *old != until;
            *old = until;
            changed
        });
    }

    async fn pump_events(&mut self) {
        loop {
            self.flush_frames().await;
            let Some(event) = self.session.poll_event() else {
                break;
            };
            match event {
                ClientEvent::SessionOpened { op, result } => {
                    if let Some(Reply::Open(tx)) = self.replies.remove(&op) {
                        let _ = tx.send(result);
                    }
                }
                ClientEvent::Completed { op, result } => match self.replies.remove(&op) {
                    Some(Reply::Op(tx)) => {
                        let _ = tx.send(result);
                    }
                    Some(Reply::Acquire { lock, reply }) => {
                        if let Err(Ok(Outcome::Granted { token })) = reply.send(result) {
                            tracing::debug!(%lock, %token, "acquire abandoned by its caller: releasing the grant");
                            let now = self.now();
                            let _ = self.session.release(lock, token, now);
                        }
                    }
                    _ => {}
                },
                ClientEvent::Read { op, result } => {
                    if let Some(Reply::Read(tx)) = self.replies.remove(&op) {
                        let _ = tx.send(result);
                    }
                }
                ClientEvent::SessionLost { reason } => {
                    tracing::warn!(?reason, "distlock session lost");
                    self.lost.send_replace(true);
                }
                ClientEvent::Reconnect { to } => {
                    self.conn = None;
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
                            self.session.connection_lost(now);
                        }
                    }
                }
            }
        }
    }

    /// Where to dial next: the member the session names, at the address
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

    /// Writes every frame the core has queued on the current connection;
    /// a failed write loses the connection.
    async fn flush_frames(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            while self.session.poll_frame().is_some() {}
            return;
        };
        let mut wrote = false;
        let mut ok = true;
        while let Some(frame) = self.session.poll_frame() {
            if !conn.writer.write_frame(&frame).await {
                ok = false;
                break;
            }
            wrote = true;
        }
        if ok && wrote {
            ok = conn.writer.flush().await;
        }
        if !ok {
            self.conn = None;
            let now = self.now();
            self.session.connection_lost(now);
        }
    }
}
