//! The connection tasks: accept clients and peers, read their frames into
//! the node's inbox, write what the node sends them; dial every peer and
//! keep a link to it with reconnection and backoff. They decode and encode
//! only; every decision is the node's.

use super::peer_admission::SharedAdmission;
use super::{Input, LINK_QUEUE};
use distlock_core::ids::NodeId;
use distlock_core::node::ConnId;
use distlock_core::proto::{ClientFrame, ClusterId, PeerFrame, ProtoError, ServerFrame};
use distlock_transport_tcp::tls::{MaybeTls, ServerTls, certifies_node};
use distlock_transport_tcp::{
    Admission, ClientHello, FrameWriter, HandshakeConfig, HostPort, TransportError, accept_client,
    accept_peer, peer_handshake, read_frame_timeout, send_peer_error,
};
use distlock_transport_ws::{ServerWriter, WsServerConfig, accept_ws_client};
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

/// A connection as the handshakes see it: plain, or inside TLS.
type Stream = MaybeTls<TcpStream>;

pub(super) async fn accept_clients(
    listener: TcpListener,
    cluster: ClusterId,
    inbox: mpsc::Sender<Input>,
    tls: Option<Arc<ServerTls>>,
) {
    accept_loop(listener, cluster, inbox, tls, serve_client).await;
}

/// Accepts connections for ever, one task per connection; with `tls`,
/// each task first runs the TLS handshake, under the handshake deadline.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    cluster: ClusterId,
    inbox: mpsc::Sender<Input>,
    tls: Option<Arc<ServerTls>>,
    serve: F,
) where
    F: Fn(Stream, Admission, mpsc::Sender<Input>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let serve = Arc::new(serve);
    let admission = Admission {
        cluster_id: cluster,
        auth: None,
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors or similar: back off rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (serve, admission, inbox, tls) = (
            Arc::clone(&serve),
            admission.clone(),
            inbox.clone(),
            tls.clone(),
        );
        tokio::spawn(async move {
            let stream = match tls {
                None => MaybeTls::Plain(stream),
                Some(tls) => {
                    let limit = HandshakeConfig::default().timeout;
                    match tokio::time::timeout(limit, tls.accept(stream)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    }
                }
            };
            serve(stream, admission, inbox).await;
        });
    }
}

/// Numbers a client connection whose `Hello` the transport accepted, gives
/// the node its outgoing queue, and hands it the `Hello` (which the node
/// answers with its `Welcome`), with the identity of the client's verified
/// TLS certificate, if any. `None` when the node is gone.
async fn register_client(
    inbox: &mpsc::Sender<Input>,
    hello: ClientHello,
    identity: Option<String>,
) -> Option<(
    ConnId,
    mpsc::Sender<ServerFrame>,
    mpsc::Receiver<ServerFrame>,
)> {
    let conn = ConnId(NEXT_CONN.fetch_add(1, Ordering::Relaxed));
    let (tx, rx) = mpsc::channel::<ServerFrame>(LINK_QUEUE);
    inbox
        .send(Input::ClientOpened(conn, tx.clone(), identity))
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
async fn serve_client(stream: Stream, admission: Admission, inbox: mpsc::Sender<Input>) {
    let config = HandshakeConfig::default();
    let identity = stream.peer_identity();
    let Ok(pending) = accept_client(stream, &admission, &config).await else {
        return;
    };
    let (mut reader, writer, hello) = pending.into_parts();
    let Some((conn, tx, rx)) = register_client(&inbox, hello, identity).await else {
        return;
    };
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
    tls: Option<Arc<ServerTls>>,
) {
    let config = Arc::new(config);
    accept_loop(
        listener,
        cluster,
        inbox,
        tls,
        move |stream, admission, inbox| {
            serve_ws_client(stream, admission, inbox, Arc::clone(&config))
        },
    )
    .await;
}

/// One WebSocket connection: the HTTP request (the dashboard page, or an
/// upgrade), the handshake, then frames in and out exactly as for a TCP
/// client: the node cannot tell the two apart.
async fn serve_ws_client(
    stream: Stream,
    admission: Admission,
    inbox: mpsc::Sender<Input>,
    config: Arc<WsServerConfig>,
) {
    let identity = stream.peer_identity();
    let pending = match accept_ws_client(stream, &admission, &config).await {
        Ok(pending) => pending,
        Err(e) => {
            tracing::debug!(error = %e, "WebSocket connection not opened");
            return;
        }
    };
    let (mut reader, writer, hello) = pending.into_parts();
    let Some((conn, tx, rx)) = register_client(&inbox, hello, identity).await else {
        return;
    };
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
    tls: Option<Arc<ServerTls>>,
) {
    let serve =
        move |stream, admission, inbox| serve_peer(stream, admission, inbox, admitted.clone());
    accept_loop(listener, cluster, inbox, tls, serve).await;
}

/// One inbound peer connection: handshake, then its frames into the inbox.
/// A server the admission rules do not admit is turned away before any of
/// its frames reaches Raft (a removed server this one still counts as a
/// member is admitted; pre-vote and the leader lease keep it harmless).
/// Over TLS, the peer's certificate must name the node its `Hello`
/// claims to be (`node-<id>`): a peer cannot claim another member's id.
async fn serve_peer(
    stream: Stream,
    admission: Admission,
    inbox: mpsc::Sender<Input>,
    admitted: SharedAdmission,
) {
    let config = HandshakeConfig::default();
    let tls = stream.is_tls();
    let certified = stream.peer_certificate().cloned();
    let Ok((from, mut reader, writer)) = accept_peer(stream, &admission, &config).await else {
        return;
    };
    if tls && !certified.is_some_and(|der| certifies_node(&der, from)) {
        tracing::warn!(
            peer = from.0,
            "refused a peer link: its certificate does not name node-{}",
            from.0
        );
        send_peer_error(reader, writer, ProtoError::Unauthorized, &config).await;
        return;
    }
    let known = admitted.lock().is_ok_and(|a| a.admits(from));
    if !known {
        tracing::warn!(
            peer = from.0,
            "refused a peer link from a server that is not a member"
        );
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
pub(super) struct PeerDial {
    pub(super) addr: HostPort,
    /// The peer's id: over TLS, its certificate must name it.
    pub(super) id: NodeId,
    pub(super) cluster: ClusterId,
    pub(super) me: NodeId,
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
    peer_handshake(stream, dial.cluster.clone(), dial.me, None, config)
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
