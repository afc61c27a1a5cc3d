//! Connections to servers: dialling over TCP or WebSocket ([`dial`]), and
//! the live connection ([`Conn`]): its writing half, and a task reading
//! the other half into the driver's frame channel under a generation
//! number, so that frames of a replaced connection are told apart.
//!
//! Everything about reaching a server (transports, TLS) is here.

use super::Transport;
use crate::stream::{ServerStream, open_stream};
use distlock_core::ids::NodeId;
use distlock_core::proto::{ClientFrame, ServerFrame};
use distlock_transport_tcp::tls::ClientTls;
use distlock_transport_tcp::{
    FrameError, FrameReader, FrameWriter, HandshakeConfig, looks_like_tls,
};
use distlock_transport_ws::{Encoding, WsReader, WsWriter, ws_upgrade};
use std::time::Duration;
use tokio::io::WriteHalf;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What connection `generation` delivered.
pub(super) type Incoming = (u64, Received);

/// One thing read from a connection.
pub(super) enum Received {
    Frame(ServerFrame),
    /// The connection ended (closed, failed, or sent what is not a frame).
    Ended,
    /// The server answered with a TLS alert: the port speaks TLS and this
    /// connection does not.
    SpeaksTls,
}

/// A dialled connection, ready for the `Hello`.
pub(super) enum Link {
    Tcp(ServerStream),
    Ws(WsReader<ServerStream>, WsWriter<ServerStream>),
}

/// Dials `addr` within `limit` (over TLS with `tls`), and upgrades the
/// connection to WebSocket (binary frames) if that is the transport.
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

/// The writing half of the current connection.
enum LinkWriter {
    Tcp(FrameWriter<WriteHalf<ServerStream>>),
    Ws(WsWriter<ServerStream>),
}

/// One live connection.
pub(super) struct Conn {
    writer: LinkWriter,
    reader: JoinHandle<()>,
    /// Tells this connection's frames from those of the ones before.
    pub(super) generation: u64,
    /// The server at the other end, when known.
    pub(super) server: Option<NodeId>,
}

impl Conn {
    /// Takes `link` and starts the task that reads it into `frames`.
    pub(super) fn start(
        link: Link,
        generation: u64,
        server: Option<NodeId>,
        frames: mpsc::UnboundedSender<Incoming>,
    ) -> Self {
        let (reader, writer) = match link {
            Link::Tcp(stream) => {
                let (r, w) = tokio::io::split(stream);
                let reader = tokio::spawn(async move {
                    let mut reader = FrameReader::new(r);
                    loop {
                        let received = match reader.read_frame::<ServerFrame>().await {
                            Ok(Some(frame)) => Received::Frame(frame),
                            Err(FrameError::TooLarge { len, .. }) if looks_like_tls(len) => {
                                Received::SpeaksTls
                            }
                            Ok(None) | Err(_) => Received::Ended,
                        };
                        let end = !matches!(received, Received::Frame(_));
                        if frames.send((generation, received)).is_err() || end {
                            return;
                        }
                    }
                });
                (reader, LinkWriter::Tcp(FrameWriter::new(w)))
            }
            Link::Ws(mut r, w) => {
                let reader = tokio::spawn(async move {
                    loop {
                        let received = match r.read_frame::<ServerFrame>().await {
                            Ok(Some((frame, _))) => Received::Frame(frame),
                            Ok(None) | Err(_) => Received::Ended,
                        };
                        let end = !matches!(received, Received::Frame(_));
                        if frames.send((generation, received)).is_err() || end {
                            return;
                        }
                    }
                });
                (reader, LinkWriter::Ws(w))
            }
        };
        Self {
            writer,
            reader,
            generation,
            server,
        }
    }

    /// Writes `frames` and flushes; `false` if the connection failed.
    pub(super) async fn send(&mut self, frames: &[ClientFrame]) -> bool {
        if frames.is_empty() {
            return true;
        }
        for frame in frames {
            let ok = match &mut self.writer {
                LinkWriter::Tcp(w) => w.write_frame(frame).await.is_ok(),
                LinkWriter::Ws(w) => w.write_frame(frame).await.is_ok(),
            };
            if !ok {
                return false;
            }
        }
        match &mut self.writer {
            LinkWriter::Tcp(w) => w.flush().await.is_ok(),
            LinkWriter::Ws(w) => w.flush().await.is_ok(),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
