//! The opening of a connection (PROTOCOL.md §3), under a deadline.
//!
//! Client link: the client sends [`ClientFrame::Hello`] and waits for
//! [`ServerFrame::Welcome`] or [`ServerFrame::Error`] ([`client_handshake`]).
//! The server reads and checks the `Hello` ([`accept_client`]) and, if the
//! transport accepts it, hands a [`PendingClient`] to the server runtime,
//! which answers with the `Welcome` the node dictates
//! ([`PendingClient::welcome`]) or refuses ([`PendingClient::refuse`]).
//!
//! Peer link: the dialling server sends [`PeerFrame::Hello`]
//! ([`peer_handshake`]); the accepting server checks it and learns the
//! dialler's [`NodeId`] ([`accept_peer`]). The peer protocol has no
//! `Welcome`: a refused dialler reads [`PeerFrame::Error`] as its first
//! frame, then end of stream.
//!
//! Every refusal is sent as an error frame, flushed, followed by a write
//! shutdown and a short linger that drains what the refused side still
//! sends (so that closing does not reset the connection before the error is
//! read); then the connection is dropped.

use crate::error::{FrameError, TransportError};
use crate::frame::{FrameReader, FrameWriter};
use distlock_core::ids::NodeId;
use distlock_core::proto::{
    AuthToken, ClientFrame, ClusterId, MAX_FRAME_BYTES, MemberInfo, PROTOCOL_VERSION, PeerFrame,
    ProtoError, ServerFrame, decode, peek_hello_version,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadHalf, WriteHalf};

/// The default handshake deadline.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The default time a refusing side keeps draining a refused connection.
pub const DEFAULT_CLOSE_LINGER: Duration = Duration::from_millis(500);

/// Bytes a refusing side drains at most before dropping the connection.
const LINGER_DRAIN_BYTES: usize = 64 * 1024;

/// The reading half of a connection, framed.
pub type Reader<S> = FrameReader<ReadHalf<S>>;

/// The writing half of a connection, framed.
pub type Writer<S> = FrameWriter<WriteHalf<S>>;

/// Limits of a connection's opening.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeConfig {
    /// Deadline for the whole handshake (default 5 s).
    pub timeout: Duration,
    /// Largest frame payload accepted and sent on the connection (default
    /// [`MAX_FRAME_BYTES`]).
    pub max_frame_bytes: usize,
    /// How long a refusing side drains the refused connection before
    /// dropping it (default 500 ms).
    pub close_linger: Duration,
}

impl Default for HandshakeConfig {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_frame_bytes: MAX_FRAME_BYTES,
            close_linger: DEFAULT_CLOSE_LINGER,
        }
    }
}

/// What an accepting server requires of a `Hello`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admission {
    /// This server's cluster. A client naming another is refused
    /// ([`ProtoError::WrongCluster`]); so is a peer of another cluster.
    pub cluster_id: ClusterId,
    /// The shared secret, if the cluster has one: a `Hello` without it, or
    /// with another, is refused ([`ProtoError::Unauthorized`]). `None`
    /// accepts any credentials.
    pub auth: Option<AuthToken>,
}

impl Admission {
    fn check_auth(&self, auth: Option<&AuthToken>) -> Result<(), ProtoError> {
        match &self.auth {
            Some(expected) if auth != Some(expected) => Err(ProtoError::Unauthorized),
            _ => Ok(()),
        }
    }
}

/// The server's answer to an accepted client `Hello`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WelcomeInfo {
    /// The server answering.
    pub node_id: NodeId,
    /// The leader it knows of, if any.
    pub leader_hint: Option<NodeId>,
    /// Every member of the cluster with its client addresses.
    pub members: Vec<MemberInfo>,
}

impl WelcomeInfo {
    /// The `Welcome` frame carrying it.
    #[must_use]
    pub fn into_frame(self) -> ServerFrame {
        ServerFrame::Welcome {
            node_id: self.node_id,
            leader_hint: self.leader_hint,
            members: self.members,
        }
    }
}

/// A client's `Hello`, as accepted by the transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHello {
    /// The protocol version (always [`PROTOCOL_VERSION`] once accepted).
    pub protocol_version: u32,
    /// The cluster the client expects, if it named one (it matched).
    pub cluster_id: Option<ClusterId>,
    /// The credentials it presented (already checked against
    /// [`Admission::auth`] if that is set).
    pub auth: Option<AuthToken>,
    /// The identity of the client's verified TLS certificate, if it
    /// presented one (`None` on a plain connection).
    pub identity: Option<String>,
}

/// Runs `fut` under the handshake deadline.
async fn within<T>(
    limit: Duration,
    fut: impl Future<Output = Result<T, TransportError>>,
) -> Result<T, TransportError> {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or(Err(TransportError::HandshakeTimeout(limit)))
}

fn split<S: AsyncRead + AsyncWrite>(stream: S, config: &HandshakeConfig) -> (Reader<S>, Writer<S>) {
    let (r, w) = tokio::io::split(stream);
    (
        FrameReader::with_max_frame_bytes(r, config.max_frame_bytes),
        FrameWriter::with_max_frame_bytes(w, config.max_frame_bytes),
    )
}

/// Opens a client connection: sends `Hello` and waits for the server's
/// `Welcome`.
///
/// # Errors
/// [`TransportError::Refused`] when the server answers an error;
/// [`TransportError::HandshakeTimeout`] when no answer completes within
/// `config.timeout`; [`TransportError::Closed`],
/// [`TransportError::UnexpectedFrame`], and the frame and I/O errors.
pub async fn client_handshake<S>(
    stream: S,
    cluster_id: Option<ClusterId>,
    auth: Option<AuthToken>,
    config: &HandshakeConfig,
) -> Result<(Reader<S>, Writer<S>, WelcomeInfo), TransportError>
where
    S: AsyncRead + AsyncWrite,
{
    let (mut reader, mut writer) = split(stream, config);
    let welcome = within(config.timeout, async {
        writer
            .write_frame(&ClientFrame::Hello {
                protocol_version: PROTOCOL_VERSION,
                cluster_id,
                auth,
            })
            .await?;
        writer.flush().await?;
        let first = reader
            .read_frame::<ServerFrame>()
            .await
            .map_err(|e| match e {
                FrameError::TooLarge { len, .. } if looks_like_tls(len) => {
                    TransportError::ServerWantsTls
                }
                e => e.into(),
            })?;
        match first {
            Some(ServerFrame::Welcome {
                node_id,
                leader_hint,
                members,
            }) => Ok(WelcomeInfo {
                node_id,
                leader_hint,
                members,
            }),
            Some(ServerFrame::Error(e)) => Err(TransportError::Refused(e)),
            Some(other) => Err(TransportError::UnexpectedFrame {
                expected: "Welcome",
                got: server_frame_name(&other),
            }),
            None => Err(TransportError::Closed),
        }
    })
    .await?;
    Ok((reader, writer, welcome))
}

/// A client connection whose `Hello` the transport accepted, waiting for
/// the server runtime's answer.
#[derive(Debug)]
pub struct PendingClient<S> {
    reader: Reader<S>,
    writer: Writer<S>,
    hello: ClientHello,
    config: HandshakeConfig,
}

impl<S: AsyncRead + AsyncWrite> PendingClient<S> {
    /// The client's `Hello`.
    #[must_use]
    pub const fn hello(&self) -> &ClientHello {
        &self.hello
    }

    /// Sends the `Welcome` and hands over the open connection.
    ///
    /// # Errors
    /// [`TransportError::HandshakeTimeout`] if the `Welcome` cannot be
    /// written within the handshake deadline; I/O errors.
    pub async fn welcome(
        self,
        welcome: WelcomeInfo,
    ) -> Result<(Reader<S>, Writer<S>), TransportError> {
        let Self {
            reader,
            mut writer,
            config,
            ..
        } = self;
        within(config.timeout, async {
            writer.write_frame(&welcome.into_frame()).await?;
            writer.flush().await?;
            Ok(())
        })
        .await?;
        Ok((reader, writer))
    }

    /// Refuses the client: sends `ServerFrame::Error(error)`, flushes and
    /// closes. Returns [`TransportError::Rejected`] for the caller's log.
    pub async fn refuse(self, error: ProtoError) -> TransportError {
        close_with(
            self.reader,
            self.writer,
            &ServerFrame::Error(error.clone()),
            &self.config,
        )
        .await;
        TransportError::Rejected(error)
    }

    /// The connection and the `Hello`, without answering (the caller then
    /// owes the client a `Welcome` or an error).
    pub fn into_parts(self) -> (Reader<S>, Writer<S>, ClientHello) {
        (self.reader, self.writer, self.hello)
    }
}

/// Accepts a client connection: reads its first frame, which must be a
/// `Hello` of this protocol version, for this cluster (or none named), with
/// the credentials `admission` requires.
///
/// On success the caller answers through the returned [`PendingClient`].
/// On a refusal, the client is sent `ServerFrame::Error`, the connection is
/// closed, and [`TransportError::Rejected`] tells why.
///
/// # Errors
/// [`TransportError::Rejected`] (`UnsupportedVersion`, `WrongCluster`,
/// `Unauthorized`, `HelloRequired`, `FrameTooLarge`, `Malformed`);
/// [`TransportError::HandshakeTimeout`] when no `Hello` arrives within
/// `config.timeout`; [`TransportError::Closed`], truncation and I/O errors
/// (nothing is sent then).
pub async fn accept_client<S>(
    stream: S,
    admission: &Admission,
    config: &HandshakeConfig,
) -> Result<PendingClient<S>, TransportError>
where
    S: AsyncRead + AsyncWrite,
{
    let (mut reader, writer) = split(stream, config);
    let checked = within(config.timeout, async {
        Ok(match first_frame::<_, ClientFrame>(&mut reader).await? {
            Err(refusal) => Err(refusal),
            Ok(ClientFrame::Request(_)) => Err(ProtoError::HelloRequired),
            Ok(ClientFrame::Hello {
                protocol_version,
                cluster_id,
                auth,
            }) => check_version(protocol_version)
                .and_then(|()| match &cluster_id {
                    Some(id) if *id != admission.cluster_id => Err(ProtoError::WrongCluster),
                    _ => Ok(()),
                })
                .and_then(|()| admission.check_auth(auth.as_ref()))
                .map(|()| ClientHello {
                    protocol_version,
                    cluster_id,
                    auth,
                    identity: None,
                }),
        })
    })
    .await?;
    match checked {
        Ok(hello) => Ok(PendingClient {
            reader,
            writer,
            hello,
            config: config.clone(),
        }),
        Err(refusal) => {
            close_with(reader, writer, &ServerFrame::Error(refusal.clone()), config).await;
            Err(TransportError::Rejected(refusal))
        }
    }
}

/// Opens a peer connection: sends `PeerFrame::Hello` and flushes it.
///
/// The peer protocol has no `Welcome`: if the accepting server refuses, the
/// first frame read from the returned reader is `PeerFrame::Error`, then
/// the stream ends.
///
/// # Errors
/// [`TransportError::HandshakeTimeout`] when the `Hello` cannot be written
/// within `config.timeout`; I/O errors.
pub async fn peer_handshake<S>(
    stream: S,
    cluster_id: ClusterId,
    from: NodeId,
    auth: Option<AuthToken>,
    config: &HandshakeConfig,
) -> Result<(Reader<S>, Writer<S>), TransportError>
where
    S: AsyncRead + AsyncWrite,
{
    let (reader, mut writer) = split(stream, config);
    within(config.timeout, async {
        writer
            .write_frame(&PeerFrame::Hello {
                protocol_version: PROTOCOL_VERSION,
                cluster_id,
                from,
                auth,
            })
            .await?;
        writer.flush().await?;
        Ok(())
    })
    .await?;
    Ok((reader, writer))
}

/// Accepts a peer connection: reads its first frame, which must be a
/// `PeerFrame::Hello` of this protocol version and cluster with the
/// credentials `admission` requires, and returns the dialler's node id.
///
/// Whether that node is a member, and not this server itself, is for the
/// caller to check (refusing with [`send_peer_error`]).
///
/// # Errors
/// As [`accept_client`], the refusal being sent as `PeerFrame::Error`.
pub async fn accept_peer<S>(
    stream: S,
    admission: &Admission,
    config: &HandshakeConfig,
) -> Result<(NodeId, Reader<S>, Writer<S>), TransportError>
where
    S: AsyncRead + AsyncWrite,
{
    let (mut reader, writer) = split(stream, config);
    let checked = within(config.timeout, async {
        Ok(match first_frame::<_, PeerFrame>(&mut reader).await? {
            Err(refusal) => Err(refusal),
            Ok(PeerFrame::Hello {
                protocol_version,
                cluster_id,
                from,
                auth,
            }) => check_version(protocol_version)
                .and_then(|()| {
                    if cluster_id == admission.cluster_id {
                        Ok(())
                    } else {
                        Err(ProtoError::WrongCluster)
                    }
                })
                .and_then(|()| admission.check_auth(auth.as_ref()))
                .map(|()| from),
            Ok(_) => Err(ProtoError::HelloRequired),
        })
    })
    .await?;
    match checked {
        Ok(from) => Ok((from, reader, writer)),
        Err(refusal) => {
            close_with(reader, writer, &PeerFrame::Error(refusal.clone()), config).await;
            Err(TransportError::Rejected(refusal))
        }
    }
}

/// Refuses a peer connection after [`accept_peer`] (for example, a node id
/// that is not a member): sends `PeerFrame::Error(error)`, flushes and
/// closes. Returns [`TransportError::Rejected`] for the caller's log.
pub async fn send_peer_error<S>(
    reader: Reader<S>,
    writer: Writer<S>,
    error: ProtoError,
    config: &HandshakeConfig,
) -> TransportError
where
    S: AsyncRead + AsyncWrite,
{
    close_with(reader, writer, &PeerFrame::Error(error.clone()), config).await;
    TransportError::Rejected(error)
}

const fn check_version(version: u32) -> Result<(), ProtoError> {
    if version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(ProtoError::UnsupportedVersion {
            server: PROTOCOL_VERSION,
            client: version,
        })
    }
}

/// Reads a connection's first frame as a `T`. The outer error ends the
/// connection silently; the inner one is the refusal to send.
async fn first_frame<R, T>(
    reader: &mut FrameReader<R>,
) -> Result<Result<T, ProtoError>, TransportError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let bytes = match reader.read_frame_bytes().await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(TransportError::Closed),
        Err(e @ FrameError::TooLarge { .. }) => {
            return e.to_proto().ok_or_else(|| e.into()).map(Err);
        }
        Err(e) => return Err(e.into()),
    };
    Ok(
        decode::<T>(bytes).map_err(|e| match peek_hello_version(bytes) {
            Some(version) if version != PROTOCOL_VERSION => ProtoError::UnsupportedVersion {
                server: PROTOCOL_VERSION,
                client: version,
            },
            _ => ProtoError::from(e),
        }),
    )
}

/// Sends `frame`, flushes, shuts the write side down, drains briefly what
/// the other side still sends, and drops the connection. Errors are
/// ignored: the connection is being abandoned.
async fn close_with<S, F>(
    reader: Reader<S>,
    mut writer: Writer<S>,
    frame: &F,
    config: &HandshakeConfig,
) where
    S: AsyncRead + AsyncWrite,
    F: Serialize,
{
    let sent = tokio::time::timeout(config.timeout, async {
        writer.write_frame(frame).await?;
        writer.shutdown().await
    })
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        return;
    }
    let mut rest = reader.into_inner();
    let _ = tokio::time::timeout(config.close_linger, async {
        let mut scratch = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_DRAIN_BYTES {
            match rest.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// Whether a frame length read from a server is really the head of a TLS
/// record (content type 21 alert or 22 handshake, then version 3.x): a
/// plain client met a TLS port, which answered its `Hello` with an alert.
#[must_use]
pub const fn looks_like_tls(len: u64) -> bool {
    let head = (len >> 16) & 0xffff;
    head == 0x1503 || head == 0x1603
}

const fn server_frame_name(frame: &ServerFrame) -> &'static str {
    match frame {
        ServerFrame::Welcome { .. } => "Welcome",
        ServerFrame::Response(_) => "Response",
        ServerFrame::Watch(_) => "Watch",
        ServerFrame::Error(_) => "Error",
    }
}
