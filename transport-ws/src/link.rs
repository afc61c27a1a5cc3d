//! The two halves of an open WebSocket connection, framed: [`WsReader`]
//! reads protocol frames (either encoding), [`WsWriter`] writes them in the
//! connection's encoding, in batches.

use crate::codec::{Decoded, Encoding, decode_message, encode_message};
use crate::error::WsError;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Reads frames from a WebSocket connection.
#[derive(Debug)]
pub struct WsReader<T> {
    inner: SplitStream<WebSocketStream<T>>,
    /// The last message that did not decode, kept so the handshake can
    /// still read the protocol version of a `Hello` of another version.
    last_malformed: Option<(Vec<u8>, Encoding)>,
    /// Told of every message taken from the stream, control messages
    /// included, so that bytes still arriving mean a message under way.
    meter: Option<std::sync::Arc<distlock_transport_tcp::Meter>>,
}

/// Writes frames to a WebSocket connection in one encoding.
#[derive(Debug)]
pub struct WsWriter<T> {
    inner: SplitSink<WebSocketStream<T>, Message>,
    encoding: Encoding,
    max_bytes: usize,
}

/// Splits an open connection into its framed halves.
pub(crate) fn split<T>(
    ws: WebSocketStream<T>,
    encoding: Encoding,
    max_bytes: usize,
) -> (WsReader<T>, WsWriter<T>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let (sink, stream) = ws.split();
    (
        WsReader {
            inner: stream,
            last_malformed: None,
            meter: None,
        },
        WsWriter {
            inner: sink,
            encoding,
            max_bytes,
        },
    )
}

impl<T: AsyncRead + AsyncWrite + Unpin> WsReader<T> {
    /// Reads the next frame and the encoding it came in. `Ok(None)` when
    /// the connection closed. Pings and pongs are skipped (tungstenite
    /// answers pings itself).
    ///
    /// Cancel-safe: a message is taken from the stream only when it is
    /// returned.
    ///
    /// # Errors
    /// [`WsError::Malformed`] for a message that is not an `F` (the
    /// connection is still in step, but the protocol closes it);
    /// [`WsError::MessageTooLarge`] (no longer usable); I/O and WebSocket
    /// errors.
    pub async fn read_frame<F: DeserializeOwned>(
        &mut self,
    ) -> Result<Option<(F, Encoding)>, WsError> {
        loop {
            let message = match self.inner.next().await {
                None => return Ok(None),
                Some(Ok(message)) => {
                    if let Some(meter) = &self.meter {
                        meter.frame_done();
                    }
                    message
                }
                Some(Err(e)) => {
                    return match WsError::from_ws(e) {
                        WsError::Closed => Ok(None),
                        other => Err(other),
                    };
                }
            };
            match decode_message::<F>(&message) {
                Ok(Decoded::Frame(frame, encoding)) => return Ok(Some((frame, encoding))),
                Ok(Decoded::Control) => {}
                Ok(Decoded::Close) => return Ok(None),
                Err(e) => {
                    self.last_malformed = match &message {
                        Message::Binary(b) => Some((b.to_vec(), Encoding::Binary)),
                        Message::Text(t) => Some((t.as_bytes().to_vec(), Encoding::Json)),
                        _ => None,
                    };
                    return Err(e);
                }
            }
        }
    }

    /// Marks `meter` at every message read (see
    /// [`distlock_transport_tcp::Meter::frame_done`]).
    pub fn set_meter(&mut self, meter: std::sync::Arc<distlock_transport_tcp::Meter>) {
        self.meter = Some(meter);
    }

    /// The raw bytes and encoding of the last message that failed to
    /// decode, if any (taken: a second call gives `None`).
    pub fn last_raw(&mut self) -> Option<(Vec<u8>, Encoding)> {
        self.last_malformed.take()
    }

    /// [`Self::read_frame`] failing with [`WsError::IdleTimeout`] when
    /// nothing arrives within `idle`.
    ///
    /// # Errors
    /// As [`Self::read_frame`].
    pub async fn read_frame_timeout<F: DeserializeOwned>(
        &mut self,
        idle: Duration,
    ) -> Result<Option<(F, Encoding)>, WsError> {
        tokio::time::timeout(idle, self.read_frame())
            .await
            .unwrap_or(Err(WsError::IdleTimeout(idle)))
    }

    /// Reads (and drops) what the other end still sends, for at most
    /// `linger`, so that closing does not reset the connection before the
    /// other end has read our last messages.
    pub async fn drain(mut self, linger: Duration) {
        let _ = tokio::time::timeout(linger, async {
            while let Some(Ok(_)) = self.inner.next().await {}
        })
        .await;
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> WsWriter<T> {
    /// The encoding frames are written in.
    #[must_use]
    pub const fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The same writer, writing in `encoding` from now on.
    #[must_use]
    pub fn with_encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Queues one frame as one message; nothing is flushed (call
    /// [`Self::flush`] after the batch).
    ///
    /// # Errors
    /// [`WsError::OutgoingTooLarge`] (nothing queued), [`WsError::Encode`],
    /// I/O and WebSocket errors.
    pub async fn write_frame<F: Serialize + ?Sized>(&mut self, frame: &F) -> Result<(), WsError> {
        let message = encode_message(frame, self.encoding, self.max_bytes)?;
        self.inner.feed(message).await.map_err(WsError::from_ws)
    }

    /// Sends every queued message.
    ///
    /// # Errors
    /// I/O and WebSocket errors.
    pub async fn flush(&mut self) -> Result<(), WsError> {
        self.inner.flush().await.map_err(WsError::from_ws)
    }

    /// Sends the queued messages and a close: `1000` (normal), or `1008`
    /// (policy violation) with `reason` when the other end broke the
    /// protocol.
    ///
    /// # Errors
    /// I/O and WebSocket errors.
    pub async fn close(&mut self, reason: Option<&str>) -> Result<(), WsError> {
        let frame = match reason {
            None => CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            },
            Some(text) => CloseFrame {
                code: CloseCode::Policy,
                // A close reason must fit a control frame (123 bytes).
                reason: truncate(text, 120).into(),
            },
        };
        self.inner
            .send(Message::Close(Some(frame)))
            .await
            .map_err(WsError::from_ws)
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
