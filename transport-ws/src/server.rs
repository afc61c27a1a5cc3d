//! The server side of a WebSocket connection: the HTTP request (the
//! dashboard page, or an upgrade checked against the `Origin` allow-list),
//! then the same `Hello`/`Welcome` opening as over TCP, all under the
//! handshake deadline.

use crate::codec::Encoding;
use crate::error::WsError;
use crate::host::HostPolicy;
use crate::http::{Prefixed, read_head, respond};
use crate::link::{WsReader, WsWriter, split};
use crate::origin::OriginPolicy;
use distlock_core::proto::{
    ClientFrame, PROTOCOL_VERSION, ProtoError, ServerFrame, peek_hello_version,
};
use distlock_transport_tcp::{Admission, ClientHello, HandshakeConfig, WelcomeInfo};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The reading half of a server-side connection.
pub type ServerReader<S> = WsReader<Prefixed<S>>;

/// The writing half of a server-side connection.
pub type ServerWriter<S> = WsWriter<Prefixed<S>>;

/// How a server accepts WebSocket connections.
#[derive(Clone, Debug, Default)]
pub struct WsServerConfig {
    /// The deadline, the message limit (tungstenite's message and frame
    /// limits are set to it) and the refusal linger, as over TCP.
    pub handshake: HandshakeConfig,
    /// Which browser origins may upgrade.
    pub origins: OriginPolicy,
    /// Which `Host` names any request may carry (DNS rebinding).
    pub hosts: HostPolicy,
    /// The page `GET /` answers (the dashboard); `None` answers 404.
    pub page: Option<Arc<str>>,
}

/// tungstenite's settings for a connection limited to `max_bytes` per
/// message: a longer message (or frame) fails as soon as its length is
/// announced, before its payload is buffered.
pub(crate) fn ws_config(max_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(max_bytes))
        .max_frame_size(Some(max_bytes))
        .read_buffer_size(READ_BUFFER_BYTES)
}

/// How much tungstenite reads at a time. It zeroes that much before every
/// read, and its default (128 KiB) made the zeroing cost more than the
/// read for this protocol's messages, which are a few hundred bytes; a
/// larger frame still gets room for its announced length.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// A connection whose `Hello` was accepted, waiting for the server
/// runtime's `Welcome` or refusal.
#[derive(Debug)]
pub struct PendingWsClient<S> {
    reader: ServerReader<S>,
    writer: ServerWriter<S>,
    hello: ClientHello,
    config: HandshakeConfig,
}

impl<S: AsyncRead + AsyncWrite + Unpin> PendingWsClient<S> {
    /// The client's `Hello`.
    #[must_use]
    pub const fn hello(&self) -> &ClientHello {
        &self.hello
    }

    /// The encoding the client chose (that of its `Hello`); every frame
    /// to it goes in this encoding.
    #[must_use]
    pub const fn encoding(&self) -> Encoding {
        self.writer.encoding()
    }

    /// Sends the `Welcome` and hands over the open connection.
    ///
    /// # Errors
    /// [`WsError::HandshakeTimeout`]; I/O and WebSocket errors.
    pub async fn welcome(
        self,
        welcome: WelcomeInfo,
    ) -> Result<(ServerReader<S>, ServerWriter<S>), WsError> {
        let Self {
            reader,
            mut writer,
            config,
            ..
        } = self;
        within(config.timeout, async {
            writer.write_frame(&welcome.into_frame()).await?;
            writer.flush().await
        })
        .await?;
        Ok((reader, writer))
    }

    /// Refuses the client: sends `ServerFrame::Error(error)` and a close.
    /// Returns [`WsError::Rejected`] for the caller's log.
    pub async fn refuse(self, error: ProtoError) -> WsError {
        close_with(self.reader, self.writer, error.clone(), &self.config).await;
        WsError::Rejected(error)
    }

    /// The connection and the `Hello`, without answering (the caller then
    /// owes the client a `Welcome` or an error).
    pub fn into_parts(self) -> (ServerReader<S>, ServerWriter<S>, ClientHello) {
        (self.reader, self.writer, self.hello)
    }
}

async fn within<T>(
    limit: std::time::Duration,
    fut: impl Future<Output = Result<T, WsError>>,
) -> Result<T, WsError> {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or(Err(WsError::HandshakeTimeout(limit)))
}

/// Accepts one connection on the WebSocket port.
///
/// A plain `GET /` is answered with the configured page, anything else
/// that is not an upgrade with an HTTP error, and the connection closed
/// ([`WsError::Http`]). An upgrade from a browser origin the policy does
/// not allow is answered `403` ([`WsError::OriginRefused`]). Otherwise the
/// connection is upgraded and its first message must be a `Hello` (JSON
/// or postcard: the choice sets the connection's encoding) of this
/// protocol version, for this cluster, with the credentials `admission`
/// requires; a refusal is sent as `ServerFrame::Error` and a close
/// ([`WsError::Rejected`]).
///
/// # Errors
/// As said, and [`WsError::HandshakeTimeout`], [`WsError::Closed`],
/// [`WsError::BadRequest`], I/O and WebSocket errors.
pub async fn accept_ws_client<S>(
    mut stream: S,
    admission: &Admission,
    config: &WsServerConfig,
) -> Result<PendingWsClient<S>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limit = config.handshake.timeout;
    let upgraded = within(limit, async {
        let (head, bytes) = match read_head(&mut stream).await {
            Ok(read) => read,
            Err(e @ WsError::BadRequest(_)) => {
                let _ = respond(&mut stream, 400, "text/plain", e.to_string().as_bytes()).await;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if !config.hosts.allows(head.host.as_deref()) {
            let _ = respond(
                &mut stream,
                403,
                "text/plain",
                b"unknown host name: this server answers to its own names and IP addresses only \
                  (see --advertise-ws-addr)\n",
            )
            .await;
            return Err(WsError::HostRefused(head.host.unwrap_or_default()));
        }
        if !head.upgrade {
            let status = serve_plain(&mut stream, &head.method, &head.path, config).await;
            return Err(WsError::Http(status));
        }
        if !config
            .origins
            .allows(head.origin.as_deref(), head.host.as_deref())
        {
            let _ = respond(
                &mut stream,
                403,
                "text/plain",
                b"this origin may not open a WebSocket to distlock (see --ws-allow-origin)\n",
            )
            .await;
            return Err(WsError::OriginRefused(head.origin.unwrap_or_default()));
        }
        tokio_tungstenite::accept_async_with_config(
            Prefixed::new(bytes, stream),
            Some(ws_config(config.handshake.max_frame_bytes)),
        )
        .await
        .map_err(WsError::from_ws)
    })
    .await?;
    // The encoding is not known before the first message; the writer is
    // rebuilt with it below.
    let (mut reader, writer) = split(upgraded, Encoding::Json, config.handshake.max_frame_bytes);
    let first = within(limit, first_message(&mut reader)).await;
    let (checked, encoding) = match first {
        Ok(Some((checked, encoding))) => (checked, encoding),
        Ok(None) => return Err(WsError::Closed),
        Err(e) => {
            if let Some(refusal) = e.to_proto() {
                close_with(reader, writer, refusal.clone(), &config.handshake).await;
                return Err(WsError::Rejected(refusal));
            }
            return Err(e);
        }
    };
    let writer = writer.with_encoding(encoding);
    let hello = match checked.and_then(|hello| check_hello(hello, admission)) {
        Ok(hello) => hello,
        Err(refusal) => {
            close_with(reader, writer, refusal.clone(), &config.handshake).await;
            return Err(WsError::Rejected(refusal));
        }
    };
    Ok(PendingWsClient {
        reader,
        writer,
        hello,
        config: config.handshake.clone(),
    })
}

/// Answers a request that is not an upgrade; returns its status.
async fn serve_plain<S: AsyncWrite + Unpin>(
    stream: &mut S,
    method: &str,
    path: &str,
    config: &WsServerConfig,
) -> u16 {
    let path = path.split('?').next().unwrap_or_default();
    let (status, kind, body): (u16, &str, &[u8]) = match (method, path, &config.page) {
        ("GET", "/" | "/index.html", Some(page)) => {
            (200, "text/html; charset=utf-8", page.as_bytes())
        }
        ("GET", _, _) => (404, "text/plain", b"not found: the dashboard is at /\n"),
        _ => (
            405,
            "text/plain",
            b"only GET and WebSocket upgrades are served here\n",
        ),
    };
    let _ = respond(stream, status, kind, body).await;
    status
}

/// The first frame, and its encoding. The outer error ends the
/// connection (with an answer if [`WsError::to_proto`] gives one); the
/// inner one is a refusal to send.
async fn first_message<T>(
    reader: &mut WsReader<T>,
) -> Result<Option<(Result<ClientFrame, ProtoError>, Encoding)>, WsError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    match reader.read_frame::<ClientFrame>().await {
        Ok(Some((frame, encoding))) => Ok(Some((Ok(frame), encoding))),
        Ok(None) => Ok(None),
        Err(WsError::Malformed(reason)) => {
            // A Hello of another protocol version may not decode at all:
            // say why it is refused if its version can be read.
            let refusal = reader
                .last_raw()
                .and_then(|(raw, encoding)| hello_version(&raw, encoding).map(|v| (v, encoding)))
                .filter(|(v, _)| *v != PROTOCOL_VERSION)
                .map(|(client, encoding)| {
                    (
                        ProtoError::UnsupportedVersion {
                            server: PROTOCOL_VERSION,
                            client,
                        },
                        encoding,
                    )
                });
            match refusal {
                Some((e, encoding)) => Ok(Some((Err(e), encoding))),
                None => Err(WsError::Malformed(reason)),
            }
        }
        Err(e) => Err(e),
    }
}

/// The `protocol_version` of a `Hello` that does not decode whole.
fn hello_version(raw: &[u8], encoding: Encoding) -> Option<u32> {
    match encoding {
        Encoding::Binary => peek_hello_version(raw),
        Encoding::Json => {
            let value: serde_json::Value = serde_json::from_slice(raw).ok()?;
            let v = value.get("Hello")?.get("protocol_version")?.as_u64()?;
            u32::try_from(v).ok()
        }
    }
}

fn check_hello(frame: ClientFrame, admission: &Admission) -> Result<ClientHello, ProtoError> {
    match frame {
        ClientFrame::Request(_) => Err(ProtoError::HelloRequired),
        ClientFrame::Hello {
            protocol_version,
            cluster_id,
            auth,
        } => {
            if protocol_version != PROTOCOL_VERSION {
                return Err(ProtoError::UnsupportedVersion {
                    server: PROTOCOL_VERSION,
                    client: protocol_version,
                });
            }
            if cluster_id
                .as_ref()
                .is_some_and(|id| *id != admission.cluster_id)
            {
                return Err(ProtoError::WrongCluster);
            }
            if admission
                .auth
                .as_ref()
                .is_some_and(|expected| auth.as_ref() != Some(expected))
            {
                return Err(ProtoError::Unauthorized);
            }
            Ok(ClientHello {
                protocol_version,
                cluster_id,
                auth,
                identity: None,
            })
        }
    }
}

/// Sends `error` and a close, then drains briefly what the other end
/// still sends. Errors are ignored: the connection is being abandoned.
pub(crate) async fn close_with<T>(
    reader: WsReader<T>,
    mut writer: WsWriter<T>,
    error: ProtoError,
    config: &HandshakeConfig,
) where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let reason = error.to_string();
    let sent = tokio::time::timeout(config.timeout, async {
        writer.write_frame(&ServerFrame::Error(error)).await?;
        writer.close(Some(&reason)).await
    })
    .await;
    if matches!(sent, Ok(Ok(()))) {
        reader.drain(config.close_linger).await;
    }
}
