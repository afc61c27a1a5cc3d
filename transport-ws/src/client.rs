//! The client side of a WebSocket connection: the HTTP upgrade over a
//! stream the caller dialled (so it runs under the simulation too), then
//! `Hello` and the server's `Welcome`, under the handshake deadline.

use crate::codec::Encoding;
use crate::error::WsError;
use crate::link::{WsReader, WsWriter, split};
use crate::server::ws_config;
use distlock_core::proto::{AuthToken, ClientFrame, ClusterId, PROTOCOL_VERSION, ServerFrame};
use distlock_transport_tcp::{HandshakeConfig, WelcomeInfo};
use tokio::io::{AsyncRead, AsyncWrite};

/// Opens a client connection over `stream`: upgrades to WebSocket at
/// `ws://{host}/`, sends `Hello` in `encoding` and waits for the server's
/// `Welcome`.
///
/// # Errors
/// [`WsError::Refused`] when the server answers an error;
/// [`WsError::HandshakeTimeout`]; [`WsError::Closed`];
/// [`WsError::UnexpectedFrame`]; WebSocket errors (an upgrade the server
/// answered with an HTTP error among them) and I/O errors.
pub async fn ws_client_handshake<S>(
    stream: S,
    host: &str,
    encoding: Encoding,
    cluster_id: Option<ClusterId>,
    auth: Option<AuthToken>,
    config: &HandshakeConfig,
) -> Result<(WsReader<S>, WsWriter<S>, WelcomeInfo), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limit = config.timeout;
    let opened = async {
        let (mut reader, mut writer) =
            upgrade(stream, host, encoding, config.max_frame_bytes).await?;
        writer
            .write_frame(&ClientFrame::Hello {
                protocol_version: PROTOCOL_VERSION,
                cluster_id,
                auth,
            })
            .await?;
        writer.flush().await?;
        match reader.read_frame::<ServerFrame>().await? {
            Some((
                ServerFrame::Welcome {
                    node_id,
                    leader_hint,
                    members,
                },
                _,
            )) => Ok((
                reader,
                writer,
                WelcomeInfo {
                    node_id,
                    leader_hint,
                    members,
                },
            )),
            Some((ServerFrame::Error(e), _)) => Err(WsError::Refused(e)),
            Some((other, _)) => Err(WsError::UnexpectedFrame {
                expected: "Welcome",
                got: frame_name(&other),
            }),
            None => Err(WsError::Closed),
        }
    };
    tokio::time::timeout(limit, opened)
        .await
        .unwrap_or(Err(WsError::HandshakeTimeout(limit)))
}

async fn upgrade<S>(
    stream: S,
    host: &str,
    encoding: Encoding,
    max_bytes: usize,
) -> Result<(WsReader<S>, WsWriter<S>), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let url = format!("ws://{host}/");
    let (ws, _response) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config(max_bytes)))
            .await
            .map_err(WsError::from_ws)?;
    Ok(split(ws, encoding, max_bytes))
}

/// Upgrades `stream` to WebSocket at `ws://{host}/` without opening the
/// protocol: for a caller (the client library's session) that sends its
/// own `Hello` and reads the `Welcome` itself.
///
/// # Errors
/// [`WsError::HandshakeTimeout`] after `config.timeout`; WebSocket errors
/// (an upgrade answered with an HTTP error among them) and I/O errors.
pub async fn ws_upgrade<S>(
    stream: S,
    host: &str,
    encoding: Encoding,
    config: &HandshakeConfig,
) -> Result<(WsReader<S>, WsWriter<S>), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(
        config.timeout,
        upgrade(stream, host, encoding, config.max_frame_bytes),
    )
    .await
    .unwrap_or(Err(WsError::HandshakeTimeout(config.timeout)))
}

const fn frame_name(frame: &ServerFrame) -> &'static str {
    match frame {
        ServerFrame::Welcome { .. } => "Welcome",
        ServerFrame::Response(_) => "Response",
        ServerFrame::Watch(_) => "Watch",
        ServerFrame::Error(_) => "Error",
    }
}
