//! The connection tasks: accept clients and peers, read their frames into
//! the node's inbox, write what the node sends them; dial every peer and
//! keep a link to it with reconnection and backoff. They decode and encode
//! only; every decision is the node's.

use super::peer_admission::SharedAdmission;
use super::{Input, LINK_QUEUE};
use crate::metrics::{Metrics, Refusal};
use distlock_core::ids::NodeId;
use distlock_core::node::ConnId;
use distlock_core::proto::{ClientFrame, ClusterId, PeerFrame, ProtoError, ServerFrame};
use distlock_transport_tcp::{
    Admission, ClientHello, FrameWriter, HandshakeConfig, HostPort, TransportError, accept_client,
    accept_peer, peer_handshake, read_frame_timeout,
};
use distlock_transport_ws::{ServerWriter, WsError, WsServerConfig, accept_ws_client};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWrite;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// A client that sends nothing (not even a keepalive) for this long is gone.
const CLIENT_IDLE: Duration = Duration::from_secs(600);
/// Peers exchange heartbeats many times a second.
const PEER_IDLE: Duration = Duration::from_secs(30);

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

pub(super) async fn accept_clients(
    listener: TcpListener,
    cluster: ClusterId,
    inbox: mpsc::Sender<Input>,
    metrics: Arc<Metrics>,
) {
    let serve = move |stream, peer, admission, inbox| {
        serve_client(stream, peer, admission, inbox, Arc::clone(&metrics))
    };
    accept_loop(listener, cluster, inbox, serve).await;
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

/// Accepts connections for ever, one task per connection.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    cluster: ClusterId,
    inbox: mpsc::Sender<Input>,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, Admission, mpsc::Sender<Input>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let admission = Admission {
        cluster_id: cluster,
        auth: None,
    };
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            // Out of file descriptors or similar: back off rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve(stream, peer, admission.clone(), inbox.clone()));
    }
}

/// Numbers a client connection whose `Hello` the transport accepted, gives
/// the node its outgoing queue, and hands it the `Hello` (which the node
/// answers with its `Welcome`). `None` when the node is gone.
async fn register_client(
    inbox: &mpsc::Sender<Input>,
    hello: ClientHello,
) -> Option<(
    ConnId,
    mpsc::Sender<ServerFrame>,
    mpsc::Receiver<ServerFrame>,
)> {
    let conn = ConnId(NEXT_CONN.fetch_add(1, Ordering::Relaxed));
    let (tx, rx) = mpsc::channel::<ServerFrame>(LINK_QUEUE);
    inbox
        .send(Input::ClientOpened(conn, tx.clone()))
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

/// One client connection: handshake, then frames in and out until it ends.
async fn serve_client(
    stream: TcpStream,
    peer: SocketAddr,
    admission: Admission,
    inbox: mpsc::Sender<Input>,
    metrics: Arc<Metrics>,
) {
    let config = HandshakeConfig::default();
    let pending = match accept_client(stream, &admission, &config).await {
        Ok(pending) => pending,
        Err(e) => {
            refused(&metrics, Refusal::Handshake, peer, "client", &e);
            return;
        }
    };
    let (mut reader, writer, hello) = pending.into_parts();
    let Some((conn, tx, rx)) = register_client(&inbox, hello).await else {
        return;
    };
    let _counted = Counted::new(&metrics.clients_tcp);
    tokio::spawn(write_frames(writer, rx));
    loop {
        match read_frame_timeout::<_, ClientFrame>(&mut reader, CLIENT_IDLE).await {
            Ok(Some(frame)) => {
                if inbox.send(Input::Client(conn, frame)).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                // Tell the client why, then close: bad input changes nothing.
                if let Some(err) = refusal(&e) {
                    refused(&metrics, Refusal::BadFrame, peer, "client", &err);
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
    metrics: Arc<Metrics>,
) {
    let config = Arc::new(config);
    accept_loop(
        listener,
        cluster,
        inbox,
        move |stream, peer, admission, inbox| {
            serve_ws_client(
                stream,
                peer,
                admission,
                inbox,
                Arc::clone(&config),
                Arc::clone(&metrics),
            )
        },
    )
    .await;
}

/// One WebSocket connection: the HTTP request (the dashboard page, or an
/// upgrade), the handshake, then frames in and out exactly as for a TCP
/// client: the node cannot tell the two apart.
async fn serve_ws_client(
    stream: TcpStream,
    peer: SocketAddr,
    admission: Admission,
    inbox: mpsc::Sender<Input>,
    config: Arc<WsServerConfig>,
    metrics: Arc<Metrics>,
) {
    let pending = match accept_ws_client(stream, &admission, &config).await {
        Ok(pending) => pending,
        Err(e @ (WsError::OriginRefused(_) | WsError::HostRefused(_) | WsError::BadRequest(_))) => {
            refused(&metrics, Refusal::Http, peer, "WebSocket", &e);
            return;
        }
        Err(e @ WsError::Rejected(_)) => {
            refused(&metrics, Refusal::Handshake, peer, "WebSocket", &e);
            return;
        }
        Err(e) => {
            tracing::debug!(error = %e, "WebSocket connection not opened");
            return;
        }
    };
    let (mut reader, writer, hello) = pending.into_parts();
    let Some((conn, tx, rx)) = register_client(&inbox, hello).await else {
        return;
    };
    let _counted = Counted::new(&metrics.clients_ws);
    tokio::spawn(write_ws_frames(writer, rx));
    loop {
        match reader.read_frame_timeout::<ClientFrame>(CLIENT_IDLE).await {
            Ok(Some((frame, _))) => {
                if inbox.send(Input::Client(conn, frame)).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                // Tell the client why, then close: bad input changes
                // nothing (the message was never handed to the node).
                if let Some(err) = e.to_proto() {
                    refused(&metrics, Refusal::BadFrame, peer, "WebSocket", &err);
                    let _ = tx.send(ServerFrame::Error(err)).await;
                }
                break;
            }
        }
    }
    let _ = inbox.send(Input::ClientClosed(conn)).await;
}

/// Writes frames as they come, flushing once per burst; after an error
/// frame (the connection is refused) or when the node drops the link, it
/// closes the WebSocket.
async fn write_ws_frames<S>(mut writer: ServerWriter<S>, mut rx: mpsc::Receiver<ServerFrame>)
where
    S: tokio::io::AsyncRead + AsyncWrite + Unpin,
{
    let mut refusal = None;
    'run: while let Some(frame) = rx.recv().await {
        let mut next = Some(frame);
        while let Some(frame) = next.take() {
            if let ServerFrame::Error(e) = &frame {
                refusal = Some(e.to_string());
            }
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

/// Writes frames as they come, flushing once per burst.
async fn write_frames<W, T>(mut writer: FrameWriter<W>, mut rx: mpsc::Receiver<T>)
where
    W: AsyncWrite + Unpin,
    T: serde::Serialize,
{
    while let Some(frame) = rx.recv().await {
        if !write_burst(&mut writer, &frame, &mut rx).await {
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
) -> bool
where
    W: AsyncWrite + Unpin,
    T: serde::Serialize,
{
    if writer.write_frame(first).await.is_err() {
        return false;
    }
    while let Ok(more) = rx.try_recv() {
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
    metrics: Arc<Metrics>,
) {
    let serve = move |stream, peer, admission, inbox| {
        serve_peer(
            stream,
            peer,
            admission,
            inbox,
            admitted.clone(),
            Arc::clone(&metrics),
        )
    };
    accept_loop(listener, cluster, inbox, serve).await;
}

/// One inbound peer connection: handshake, then its frames into the inbox.
/// A server the admission rules do not admit is turned away before any of
/// its frames reaches Raft (a removed server this one still counts as a
/// member is admitted; pre-vote and the leader lease keep it harmless).
async fn serve_peer(
    stream: TcpStream,
    peer: SocketAddr,
    admission: Admission,
    inbox: mpsc::Sender<Input>,
    admitted: SharedAdmission,
    metrics: Arc<Metrics>,
) {
    let config = HandshakeConfig::default();
    let (from, mut reader, _writer) = match accept_peer(stream, &admission, &config).await {
        Ok(linked) => linked,
        Err(e) => {
            refused(&metrics, Refusal::Handshake, peer, "peer", &e);
            return;
        }
    };
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
        if !write_burst(writer, &frame, rx).await {
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
pub(super) async fn dial_peer(
    addr: HostPort,
    cluster: ClusterId,
    me: NodeId,
    mut rx: mpsc::Receiver<PeerFrame>,
    introduction: watch::Receiver<PeerFrame>,
    up: Arc<AtomicBool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let config = HandshakeConfig::default();
        // A name is resolved again on every dial: the peer may have moved.
        let linked = match TcpStream::connect(addr.as_str()).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                peer_handshake(stream, cluster.clone(), me, None, &config)
                    .await
                    .ok()
            }
            Err(_) => None,
        };
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
