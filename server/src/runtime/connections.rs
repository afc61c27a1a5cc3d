//! The connection tasks: accept clients and peers, read their frames into
//! the node's inbox, write what the node sends them; dial every peer and
//! keep a link to it with reconnection and backoff. They decode and encode
//! only; every decision is the node's.

use super::peer_admission::SharedAdmission;
use super::{Input, LINK_QUEUE};
use distlock_core::ids::NodeId;
use distlock_core::node::ConnId;
use distlock_core::proto::{ClientFrame, ClusterId, PeerFrame, ProtoError, ServerFrame};
use distlock_transport_tcp::{
    Admission, ClientHello, FrameWriter, HandshakeConfig, HostPort, TransportError, accept_client,
    accept_peer, peer_handshake, read_frame_timeout,
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

pub(super) async fn accept_clients(
    listener: TcpListener,
    cluster: ClusterId,
    inbox: mpsc::Sender<Input>,
) {
    accept_loop(listener, cluster, inbox, serve_client).await;
}

/// Accepts connections for ever, one task per connection.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    cluster: ClusterId,
    inbox: mpsc::Sender<Input>,
    serve: F,
) where
    F: Fn(TcpStream, Admission, mpsc::Sender<Input>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
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
        tokio::spawn(serve(stream, admission.clone(), inbox.clone()));
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
async fn serve_client(stream: TcpStream, admission: Admission, inbox: mpsc::Sender<Input>) {
    let config = HandshakeConfig::default();
    let Ok(pending) = accept_client(stream, &admission, &config).await else {
        return;
    };
    let (mut reader, writer, hello) = pending.into_parts();
    let Some((conn, tx, rx)) = register_client(&inbox, hello).await else {
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
) {
    let config = Arc::new(config);
    accept_loop(listener, cluster, inbox, move |stream, admission, inbox| {
        serve_ws_client(stream, admission, inbox, Arc::clone(&config))
    })
    .await;
}

/// One WebSocket connection: the HTTP request (the dashboard page, or an
/// upgrade), the handshake, then frames in and out exactly as for a TCP
/// client: the node cannot tell the two apart.
async fn serve_ws_client(
    stream: TcpStream,
    admission: Admission,
    inbox: mpsc::Sender<Input>,
    config: Arc<WsServerConfig>,
) {
    let pending = match accept_ws_client(stream, &admission, &config).await {
        Ok(pending) => pending,
        Err(e) => {
            tracing::debug!(error = %e, "WebSocket connection not opened");
            return;
        }
    };
    let (mut reader, writer, hello) = pending.into_parts();
    let Some((conn, tx, rx)) = register_client(&inbox, hello).await else {
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
) {
    let serve =
        move |stream, admission, inbox| serve_peer(stream, admission, inbox, admitted.clone());
    accept_loop(listener, cluster, inbox, serve).await;
}

/// One inbound peer connection: handshake, then its frames into the inbox.
/// A server the admission rules do not admit is turned away before any of
/// its frames reaches Raft (a removed server this one still counts as a
/// member is admitted; pre-vote and the leader lease keep it harmless).
async fn serve_peer(
    stream: TcpStream,
    admission: Admission,
    inbox: mpsc::Sender<Input>,
    admitted: SharedAdmission,
) {
    let config = HandshakeConfig::default();
    let Ok((from, mut reader, _writer)) = accept_peer(stream, &admission, &config).await else {
        return;
    };
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
