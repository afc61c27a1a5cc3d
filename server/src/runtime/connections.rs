//! The connection tasks: accept clients and peers, read their frames into
//! the node's inbox, write what the node sends them; dial every peer and
//! keep a link to it with reconnection and backoff. They decode and encode
//! only; every decision is the node's.

use super::client_gate::{FrameClock, Gate, InFlight, RequestGate, Tick, Ticket};
use super::peer_admission::SharedAdmission;
use super::{Input, LINK_QUEUE};
use crate::auth::AuthHandle;
use crate::metrics::{Metrics, Refusal};
use distlock_core::auth::Access;
use distlock_core::ids::NodeId;
use distlock_core::node::ConnId;
use distlock_core::proto::{ClientFrame, ClusterId, PeerFrame, ProtoError, Response, ServerFrame};
use distlock_transport_tcp::tls::{MaybeTls, ServerTls, certifies_node};
use distlock_transport_tcp::{
    Admission, ClientHello, FrameWriter, HandshakeConfig, HostPort, Metered, TransportError,
    accept_client, accept_peer, peer_handshake, read_frame_timeout, send_peer_error,
};
use distlock_transport_ws::{
    ServerReader, ServerWriter, WsError, WsServerConfig, accept_ws_client,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// A client that sends nothing (not even a keepalive) for this long is gone.
const CLIENT_IDLE: Duration = Duration::from_secs(600);
/// Peers exchange heartbeats many times a second.
const PEER_IDLE: Duration = Duration::from_secs(30);

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// A connection as the handshakes see it: plain, or inside TLS.
type Stream = MaybeTls<TcpStream>;

/// The connection, after the TLS handshake (under the handshake deadline)
/// when the listener runs TLS; why not when that handshake fails.
async fn secure(stream: TcpStream, tls: Option<&ServerTls>) -> Result<Stream, String> {
    let Some(tls) = tls else {
        return Ok(MaybeTls::Plain(stream));
    };
    let limit = HandshakeConfig::default().timeout;
    match tokio::time::timeout(limit, tls.accept(stream)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
        Err(_) => Err("TLS handshake timed out".to_owned()),
    }
}

pub(super) async fn accept_clients(
    listener: TcpListener,
    cluster: ClusterId,
    inbox: mpsc::Sender<Input>,
    gate: Arc<Gate>,
    metrics: Arc<Metrics>,
    tls: Option<Arc<ServerTls>>,
) {
    loop {
        let (stream, source) = accept(&listener).await;
        match gate.enter(source.ip()) {
            Ok(ticket) => {
                let admission = client_admission(&cluster);
                tokio::spawn(serve_client(
                    stream,
                    admission,
                    inbox.clone(),
                    Arc::clone(&gate),
                    ticket,
                    Arc::clone(&metrics),
                    tls.clone(),
                ));
            }
            Err(refusal) => {
                refused(&metrics, Refusal::Limit, source, "client", &refusal);
                let tls = tls.clone();
                tokio::spawn(async move {
                    if let Ok(stream) = secure(stream, tls.as_deref()).await {
                        refuse_at_once(stream, refusal).await;
                    }
                });
            }
        }
    }
}

/// Counts and logs a refused connection, once, with why and from where.
fn refused(
    metrics: &Metrics,
    why: Refusal,
    peer: SocketAddr,
    listener: &str,
    detail: &dyn std::fmt::Display,
) {
    metrics.refused(why);
    tracing::info!(
        event = "connection_refused",
        reason = ?why,
        peer_addr = %peer,
        listener,
        detail = %detail,
        "refused a {listener} connection from {peer}: {detail}"
    );
}

/// Keeps a client gauge up while a connection lives.
struct Counted(prometheus::IntGauge);

impl Counted {
    fn new(g: &prometheus::IntGauge) -> Self {
        g.inc();
        Self(g.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Where a client connection comes from, for counting and logging its
/// refusals.
#[derive(Clone, Copy)]
struct Source<'a> {
    metrics: &'a Metrics,
    addr: SocketAddr,
    listener: &'static str,
}

impl Source<'_> {
    fn refused(&self, why: Refusal, detail: &dyn std::fmt::Display) {
        refused(self.metrics, why, self.addr, self.listener, detail);
    }
}

/// The next connection; on errors (out of file descriptors or similar) it
/// backs off rather than spin.
async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        if let Ok((stream, source)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            return (stream, source);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Client credentials are checked by the runtime (which learns the
/// principal), not by the transport.
fn client_admission(cluster: &ClusterId) -> Admission {
    Admission {
        cluster_id: cluster.clone(),
        auth: None,
    }
}

/// Refuses a connection over the limits before reading anything: its
/// first frame is the error, then the connection closes (after draining
/// what it sent for a moment, so the close does not reset it).
async fn refuse_at_once<S: AsyncRead + AsyncWrite + Unpin>(stream: S, refusal: ProtoError) {
    let (mut r, w) = tokio::io::split(stream);
    let mut writer = FrameWriter::new(w);
    if writer
        .write_frame(&ServerFrame::Error(refusal))
        .await
        .is_ok()
        && writer.flush().await.is_ok()
    {
        let _ = writer.shutdown().await;
        let mut sink = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while matches!(r.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

/// Numbers a client connection whose `Hello` the transport accepted and
/// the runtime authenticated, gives the node its outgoing queue and
/// access, and hands it the `Hello` (which the node answers with its
/// `Welcome`). `None` when the node is gone.
async fn register_client(
    inbox: &mpsc::Sender<Input>,
    hello: ClientHello,
    access: Access,
) -> Option<(
    ConnId,
    mpsc::Sender<ServerFrame>,
    mpsc::Receiver<ServerFrame>,
)> {
    let conn = ConnId(NEXT_CONN.fetch_add(1, Ordering::Relaxed));
    let (tx, rx) = mpsc::channel::<ServerFrame>(LINK_QUEUE);
    inbox
        .send(Input::ClientOpened(conn, tx.clone(), access))
        .await
        .ok()?;
    let hello = ClientFrame::Hello {
        protocol_version: hello.protocol_version,
        cluster_id: hello.cluster_id,
        auth: hello.auth,
    };
    inbox.send(Input::Client(conn, hello)).await.ok()?;
    Some((conn, tx, rx))
}

/// What the reading loop does with one frame of a client: hand it to the
/// node, or answer a request the limits refuse at once. False when the
/// node is gone.
async fn pass_on(
    conn: ConnId,
    frame: ClientFrame,
    requests: &mut RequestGate,
    inbox: &mpsc::Sender<Input>,
    tx: &mpsc::Sender<ServerFrame>,
) -> bool {
    if let ClientFrame::Request(request) = &frame
        && let Err(e) = requests.admit()
    {
        let answer = ServerFrame::Response(Response {
            id: request.id,
            result: Err(e),
        });
        return tx.send(answer).await.is_ok();
    }
    inbox.send(Input::Client(conn, frame)).await.is_ok()
}

/// One client connection: handshake, authentication, then frames in and
/// out until it ends.
async fn serve_client(
    stream: TcpStream,
    admission: Admission,
    inbox: mpsc::Sender<Input>,
    gate: Arc<Gate>,
    _ticket: Ticket,
    metrics: Arc<Metrics>,
    tls: Option<Arc<ServerTls>>,
) {
    let Ok(addr) = stream.peer_addr() else {
        return;
    };
    let source = Source {
        metrics: &metrics,
        addr,
        listener: "client",
    };
    let stream = match secure(stream, tls.as_deref()).await {
        Ok(stream) => stream,
        Err(e) => {
            source.refused(Refusal::Handshake, &e);
            return;
        }
    };
    let identity = stream.peer_identity();
    let stream = Metered::new(stream);
    let meter = stream.meter();
    let config = HandshakeConfig::default();
    let pending = match accept_client(stream, &admission, &config).await {
        Ok(pending) => pending,
        Err(e) => {
            source.refused(Refusal::Handshake, &e);
            return;
        }
    };
    let access = match authenticate(&gate, source, pending.hello(), identity.as_deref()) {
        Ok(access) => access,
        Err(refusal) => {
            let _ = pending.refuse(refusal).await;
            return;
        }
    };
    let (reader, writer, hello) = pending.into_parts();
    let Some((conn, tx, rx)) = register_client(&inbox, hello, access).await else {
        return;
    };
    let _counted = Counted::new(&metrics.clients_tcp);
    let in_flight = InFlight::default();
    tokio::spawn(write_frames(writer, rx, in_flight.clone()));
    let clock = FrameClock::new(meter, gate.limits.frame_timeout, CLIENT_IDLE);
    let requests = RequestGate::new(&gate.limits, in_flight);
    read_client(reader, conn, clock, requests, &inbox, &tx, source).await;
}

/// The access a client's `Hello` and the identity of its verified TLS
/// certificate (if any) prove, or why it is refused.
fn authenticate(
    gate: &Gate,
    source: Source<'_>,
    hello: &ClientHello,
    identity: Option<&str>,
) -> Result<Access, ProtoError> {
    let identity = identity.or(hello.identity.as_deref());
    gate.auth
        .access(source.addr.ip(), hello.auth.as_ref(), identity)
        .inspect_err(|refusal| source.refused(Refusal::Auth, refusal))
}

/// The reading half of a client connection, of either transport.
trait ClientReader {
    /// The next frame; `Ok(None)` at the end of the connection; on a
    /// broken frame, the error that explains it, if any. Cancel-safe.
    async fn next_frame(&mut self) -> Result<Option<ClientFrame>, Option<ProtoError>>;
}

impl<S: AsyncRead + AsyncWrite> ClientReader for distlock_transport_tcp::Reader<S> {
    async fn next_frame(&mut self) -> Result<Option<ClientFrame>, Option<ProtoError>> {
        self.read_frame::<ClientFrame>()
            .await
            .map_err(|e| refusal(&TransportError::from(e)))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ClientReader for ServerReader<S> {
    async fn next_frame(&mut self) -> Result<Option<ClientFrame>, Option<ProtoError>> {
        self.read_frame::<ClientFrame>()
            .await
            .map(|read| read.map(|(frame, _)| frame))
            .map_err(|e| e.to_proto())
    }
}

/// Reads a client's frames into the node's inbox until the connection
/// ends, stays idle too long or lets a frame trickle past its deadline,
/// then tells the node it closed. Bad input is explained to the client
/// and changes nothing.
async fn read_client(
    mut reader: impl ClientReader,
    conn: ConnId,
    mut clock: FrameClock,
    mut requests: RequestGate,
    inbox: &mpsc::Sender<Input>,
    tx: &mpsc::Sender<ServerFrame>,
    source: Source<'_>,
) {
    loop {
        let read = tokio::time::timeout(clock.period(), reader.next_frame()).await;
        let Ok(read) = read else {
            match clock.tick() {
                Tick::Wait => continue,
                Tick::Idle => break,
                Tick::Overdue(err) => {
                    let _ = tx.send(ServerFrame::Error(err)).await;
                    break;
                }
            }
        };
        clock.frame_done();
        match read {
            Ok(Some(frame)) => {
                if !pass_on(conn, frame, &mut requests, inbox, tx).await {
                    break;
                }
            }
            Ok(None) => break,
            Err(err) => {
                if let Some(err) = err {
                    source.refused(Refusal::BadFrame, &err);
                    let _ = tx.send(ServerFrame::Error(err)).await;
                }
                break;
            }
        }
    }
    let _ = inbox.send(Input::ClientClosed(conn)).await;
}

pub(super) async fn accept_ws_clients(
    listener: TcpListener,
    cluster: ClusterId,
    inbox: mpsc::Sender<Input>,
    config: WsServerConfig,
    gate: Arc<Gate>,
    metrics: Arc<Metrics>,
    tls: Option<Arc<ServerTls>>,
) {
    let config = Arc::new(config);
    loop {
        let (stream, source) = accept(&listener).await;
        match gate.enter(source.ip()) {
            Ok(ticket) => {
                tokio::spawn(serve_ws_client(
                    stream,
                    client_admission(&cluster),
                    inbox.clone(),
                    Arc::clone(&config),
                    Arc::clone(&gate),
                    ticket,
                    Arc::clone(&metrics),
                    tls.clone(),
                ));
            }
            Err(refusal) => {
                refused(&metrics, Refusal::Limit, source, "WebSocket", &refusal);
                let tls = tls.clone();
                tokio::spawn(async move {
                    if let Ok(stream) = secure(stream, tls.as_deref()).await {
                        refuse_http(stream, refusal).await;
                    }
                });
            }
        }
    }
}

/// Refuses a WebSocket connection over the limits with `503` before
/// reading its request.
async fn refuse_http<S: AsyncWrite + Unpin>(mut stream: S, refusal: ProtoError) {
    let body = format!("{refusal}\n");
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// One WebSocket connection: the HTTP request (the dashboard page, or an
/// upgrade), the handshake, then frames in and out exactly as for a TCP
/// client: the node cannot tell the two apart.
#[allow(clippy::too_many_arguments)] // One connection's whole context.
async fn serve_ws_client(
    stream: TcpStream,
    admission: Admission,
    inbox: mpsc::Sender<Input>,
    config: Arc<WsServerConfig>,
    gate: Arc<Gate>,
    _ticket: Ticket,
    metrics: Arc<Metrics>,
    tls: Option<Arc<ServerTls>>,
) {
    let Ok(addr) = stream.peer_addr() else {
        return;
    };
    let source = Source {
        metrics: &metrics,
        addr,
        listener: "WebSocket",
    };
    let stream = match secure(stream, tls.as_deref()).await {
        Ok(stream) => stream,
        Err(e) => {
            source.refused(Refusal::Handshake, &e);
            return;
        }
    };
    let identity = stream.peer_identity();
    let stream = Metered::new(stream);
    let meter = stream.meter();
    let pending = match accept_ws_client(stream, &admission, &config).await {
        Ok(pending) => pending,
        Err(e @ (WsError::OriginRefused(_) | WsError::HostRefused(_) | WsError::BadRequest(_))) => {
            source.refused(Refusal::Http, &e);
            return;
        }
        Err(e @ WsError::Rejected(_)) => {
            source.refused(Refusal::Handshake, &e);
            return;
        }
        Err(e) => {
            tracing::debug!(error = %e, "WebSocket connection not opened");
            return;
        }
    };
    let access = match authenticate(&gate, source, pending.hello(), identity.as_deref()) {
        Ok(access) => access,
        Err(refusal) => {
            let _ = pending.refuse(refusal).await;
            return;
        }
    };
    let (mut reader, writer, hello) = pending.into_parts();
    reader.set_meter(Arc::clone(&meter));
    let Some((conn, tx, rx)) = register_client(&inbox, hello, access).await else {
        return;
    };
    let _counted = Counted::new(&metrics.clients_ws);
    let in_flight = InFlight::default();
    tokio::spawn(write_ws_frames(writer, rx, in_flight.clone()));
    let clock = FrameClock::new(meter, gate.limits.frame_timeout, CLIENT_IDLE);
    let requests = RequestGate::new(&gate.limits, in_flight);
    read_client(reader, conn, clock, requests, &inbox, &tx, source).await;
}

/// Writes frames as they come, flushing once per burst; after an error
/// frame (the connection is refused) or when the node drops the link, it
/// closes the WebSocket.
async fn write_ws_frames<S>(
    mut writer: ServerWriter<S>,
    mut rx: mpsc::Receiver<ServerFrame>,
    in_flight: InFlight,
) where
    S: tokio::io::AsyncRead + AsyncWrite + Unpin,
{
    let mut refusal = None;
    'run: while let Some(frame) = rx.recv().await {
        let mut next = Some(frame);
        while let Some(frame) = next.take() {
            if let ServerFrame::Error(e) = &frame {
                refusal = Some(e.to_string());
            }
            count_answer(&in_flight, &frame);
            if writer.write_frame(&frame).await.is_err() {
                return;
            }
            if refusal.is_some() {
                break 'run;
            }
            next = rx.try_recv().ok();
        }
        if writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.close(refusal.as_deref()).await;
}

/// The error frame that explains a broken frame to the client, if any.
fn refusal(e: &TransportError) -> Option<ProtoError> {
    match e {
        TransportError::FrameTooLarge { len, max } => Some(ProtoError::FrameTooLarge {
            len: *len,
            max: *max,
        }),
        TransportError::Malformed(d) => Some(ProtoError::Malformed {
            reason: d.to_string(),
        }),
        _ => None,
    }
}

/// A response written answers one request in flight.
fn count_answer(in_flight: &InFlight, frame: &ServerFrame) {
    if let ServerFrame::Response(_) = frame {
        in_flight.answered();
    }
}

/// Writes a client's frames as they come, flushing once per burst.
async fn write_frames<W>(
    mut writer: FrameWriter<W>,
    mut rx: mpsc::Receiver<ServerFrame>,
    in_flight: InFlight,
) where
    W: AsyncWrite + Unpin,
{
    let seen = |frame: &ServerFrame| count_answer(&in_flight, frame);
    while let Some(frame) = rx.recv().await {
        if !write_burst(&mut writer, &frame, &mut rx, &seen).await {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// Writes `first` and every frame already queued behind it, then flushes:
/// one write to the socket per burst. False when the link failed.
async fn write_burst<W, T>(
    writer: &mut FrameWriter<W>,
    first: &T,
    rx: &mut mpsc::Receiver<T>,
    seen: &impl Fn(&T),
) -> bool
where
    W: AsyncWrite + Unpin,
    T: serde::Serialize,
{
    seen(first);
    if writer.write_frame(first).await.is_err() {
        return false;
    }
    while let Ok(more) = rx.try_recv() {
        seen(&more);
        if writer.write_frame(&more).await.is_err() {
            return false;
        }
    }
    writer.flush().await.is_ok()
}

pub(super) async fn accept_peers(
    listener: TcpListener,
    cluster: ClusterId,
    inbox: mpsc::Sender<Input>,
    admitted: SharedAdmission,
    auth: AuthHandle,
    metrics: Arc<Metrics>,
    tls: Option<Arc<ServerTls>>,
) {
    loop {
        let (stream, source) = accept(&listener).await;
        // The cluster secret in force now (the auth file may have changed).
        let admission = Admission {
            cluster_id: cluster.clone(),
            auth: auth.peer_token(),
        };
        tokio::spawn(serve_peer(
            stream,
            source,
            admission,
            inbox.clone(),
            admitted.clone(),
            Arc::clone(&metrics),
            tls.clone(),
        ));
    }
}

/// One inbound peer connection: handshake, then its frames into the inbox.
/// A server the admission rules do not admit is turned away before any of
/// its frames reaches Raft (a removed server this one still counts as a
/// member is admitted; pre-vote and the leader lease keep it harmless).
/// Over TLS, the peer's certificate must name the node its `Hello`
/// claims to be (`node-<id>`): a peer cannot claim another member's id.
async fn serve_peer(
    stream: TcpStream,
    peer: SocketAddr,
    admission: Admission,
    inbox: mpsc::Sender<Input>,
    admitted: SharedAdmission,
    metrics: Arc<Metrics>,
    tls: Option<Arc<ServerTls>>,
) {
    let config = HandshakeConfig::default();
    let stream = match secure(stream, tls.as_deref()).await {
        Ok(stream) => stream,
        Err(e) => {
            refused(&metrics, Refusal::Handshake, peer, "peer", &e);
            return;
        }
    };
    let secured = stream.is_tls();
    let certified = stream.peer_certificate().cloned();
    let (from, mut reader, writer) = match accept_peer(stream, &admission, &config).await {
        Ok(linked) => linked,
        Err(e) => {
            refused(&metrics, Refusal::Handshake, peer, "peer", &e);
            return;
        }
    };
    if secured && !certified.is_some_and(|der| certifies_node(&der, from)) {
        let why = format!("its certificate does not name node-{}", from.0);
        refused(&metrics, Refusal::Auth, peer, "peer", &why);
        send_peer_error(reader, writer, ProtoError::Unauthorized, &config).await;
        return;
    }
    let known = admitted.lock().is_ok_and(|a| a.admits(from));
    if !known {
        let why = format!("server {} is not a member", from.0);
        refused(&metrics, Refusal::NotMember, peer, "peer", &why);
        return;
    }
    while let Ok(Some(frame)) = read_frame_timeout::<_, PeerFrame>(&mut reader, PEER_IDLE).await {
        if inbox.send(Input::Peer(from, frame)).await.is_err() {
            return;
        }
    }
}

/// Writes the frames queued for a peer until the link fails (true: dial
/// again) or nothing more will be queued (false).
async fn forward_frames<W>(writer: &mut FrameWriter<W>, rx: &mut mpsc::Receiver<PeerFrame>) -> bool
where
    W: AsyncWrite + Unpin,
{
    while let Some(frame) = rx.recv().await {
        if !write_burst(writer, &frame, rx, &|_| {}).await {
            return true;
        }
    }
    false
}

/// Keeps a link to one peer: dial, handshake, tell the peer the
/// configuration this server follows (`introduction`, a
/// [`PeerFrame::Members`]),
/// stream frames; on any error back off (100 ms doubling to 2 s) and dial
/// again.
pub(super) struct PeerDial {
    pub(super) addr: HostPort,
    /// The peer's id: over TLS, its certificate must name it.
    pub(super) id: NodeId,
    pub(super) cluster: ClusterId,
    pub(super) me: NodeId,
    /// The cluster secret, read again on every dial (the auth file may
    /// have changed).
    pub(super) auth: AuthHandle,
    pub(super) tls: Option<Arc<ServerTls>>,
}

/// Dials a peer once: TCP, TLS if configured, the `Hello`.
async fn dial_once(
    dial: &PeerDial,
    config: &HandshakeConfig,
) -> Option<(
    distlock_transport_tcp::Reader<Stream>,
    distlock_transport_tcp::Writer<Stream>,
)> {
    // A name is resolved again on every dial: the peer may have moved.
    let stream = TcpStream::connect(dial.addr.as_str()).await.ok()?;
    let _ = stream.set_nodelay(true);
    let stream = match &dial.tls {
        None => MaybeTls::Plain(stream),
        Some(tls) => {
            match tokio::time::timeout(config.timeout, tls.connect_peer(stream, dial.id)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::warn!(addr = %dial.addr, error = %e, "peer link refused");
                    return None;
                }
                Err(_) => return None,
            }
        }
    };
    let token = dial.auth.peer_token();
    peer_handshake(stream, dial.cluster.clone(), dial.me, token, config)
        .await
        .ok()
}

pub(super) async fn dial_peer(
    dial: PeerDial,
    mut rx: mpsc::Receiver<PeerFrame>,
    introduction: watch::Receiver<PeerFrame>,
    up: Arc<AtomicBool>,
) {
    let addr = &dial.addr;
    let mut backoff = Duration::from_millis(100);
    loop {
        let config = HandshakeConfig::default();
        let linked = dial_once(&dial, &config).await;
        if let Some((_reader, mut writer)) = linked {
            tracing::debug!(%addr, "peer link up");
            backoff = Duration::from_millis(100);
            let members = introduction.borrow().clone();
            let introduced =
                writer.write_frame(&members).await.is_ok() && writer.flush().await.is_ok();
            up.store(introduced, Ordering::Relaxed);
            if introduced && !forward_frames(&mut writer, &mut rx).await {
                return;
            }
            up.store(false, Ordering::Relaxed);
        }
        // Frames queued meanwhile are stale by the time we reconnect.
        while rx.try_recv().is_ok() {}
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
