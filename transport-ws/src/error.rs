//! [`WsError`]: why a WebSocket connection, or one of its messages, failed.

use distlock_core::proto::ProtoError;
use distlock_transport_tcp::TransportError;
use std::io;
use std::time::Duration;

/// Why a WebSocket connection or one of its messages failed.
///
/// The variants mirror [`TransportError`] where the two transports share a
/// meaning (so callers treat both alike), plus what only HTTP and
/// WebSocket can go wrong with: the upgrade, the browser `Origin`, and
/// messages of the wrong kind.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// The underlying stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The WebSocket layer failed (a protocol violation by the other end,
    /// or the connection broke).
    #[error("websocket error: {0}")]
    WebSocket(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    /// The other end sent a message above the limit; it was not read whole.
    #[error("incoming message of {len} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// Its size as far as it was announced.
        len: u64,
        /// The largest size accepted.
        max: u64,
    },
    /// This side tried to send a message above its limit; nothing was sent.
    #[error("outgoing message of {len} bytes exceeds the limit of {max} bytes")]
    OutgoingTooLarge {
        /// The encoded size.
        len: u64,
        /// The largest size allowed.
        max: u64,
    },
    /// A message is not the JSON (text) or postcard (binary) encoding of
    /// the expected frame.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A value could not be encoded (a bug, never bad input).
    #[error("cannot encode a frame: {0}")]
    Encode(String),
    /// The handshake (HTTP upgrade and `Hello`/`Welcome`) did not complete
    /// within its deadline.
    #[error("handshake did not complete within {0:?}")]
    HandshakeTimeout(Duration),
    /// No message arrived within the idle deadline.
    #[error("no message received for {0:?}: connection idle")]
    IdleTimeout(Duration),
    /// The connection closed before the handshake completed.
    #[error("connection closed by the remote end during the handshake")]
    Closed,
    /// The remote end refused this side with a protocol error.
    #[error("refused by the remote end: {0}")]
    Refused(#[source] ProtoError),
    /// This side refused the remote end; it was sent this error and the
    /// connection was closed.
    #[error("refused the remote end: {0}")]
    Rejected(#[source] ProtoError),
    /// The browser's `Origin` is not on the allow-list; the upgrade was
    /// answered `403 Forbidden`.
    #[error("origin {0:?} is not allowed")]
    OriginRefused(String),
    /// The request's `Host` is none of the server's names (DNS
    /// rebinding); it was answered `403 Forbidden`.
    #[error("host name {0:?} is not one of this server's")]
    HostRefused(String),
    /// The HTTP request was not a WebSocket upgrade; it was answered (the
    /// dashboard page, or an HTTP error) and the connection closed.
    #[error("answered a plain HTTP request with status {0}")]
    Http(u16),
    /// The HTTP request head could not be read (too large or malformed);
    /// it was answered `400 Bad Request`.
    #[error("bad HTTP request: {0}")]
    BadRequest(String),
    /// The other end sent a well-formed frame that makes no sense at this
    /// point of the handshake.
    #[error("unexpected frame during the handshake: expected {expected}, got {got}")]
    UnexpectedFrame {
        /// What was expected.
        expected: &'static str,
        /// What came.
        got: &'static str,
    },
}

impl WsError {
    /// The protocol error to answer the remote end whose message failed
    /// this way, if it is its fault and it can still be told.
    #[must_use]
    pub fn to_proto(&self) -> Option<ProtoError> {
        match self {
            Self::MessageTooLarge { len, max } => Some(ProtoError::FrameTooLarge {
                len: *len,
                max: *max,
            }),
            Self::Malformed(reason) => Some(ProtoError::Malformed {
                reason: reason.clone(),
            }),
            _ => None,
        }
    }

    /// Sorts a tungstenite error: capacity errors become
    /// [`WsError::MessageTooLarge`], I/O errors [`WsError::Io`], a close
    /// [`WsError::Closed`].
    pub(crate) fn from_ws(e: tokio_tungstenite::tungstenite::Error) -> Self {
        use tokio_tungstenite::tungstenite::Error as E;
        use tokio_tungstenite::tungstenite::error::CapacityError;
        match e {
            E::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                Self::MessageTooLarge {
                    len: u64::try_from(size).unwrap_or(u64::MAX),
                    max: u64::try_from(max_size).unwrap_or(u64::MAX),
                }
            }
            E::Io(e) => Self::Io(e),
            E::ConnectionClosed | E::AlreadyClosed => Self::Closed,
            other => Self::WebSocket(Box::new(other)),
        }
    }
}

impl From<WsError> for TransportError {
    /// For code that handles both transports' errors in one place.
    fn from(e: WsError) -> Self {
        match e {
            WsError::Io(e) => Self::Io(e),
            WsError::MessageTooLarge { len, max } => Self::FrameTooLarge { len, max },
            WsError::OutgoingTooLarge { len, max } => Self::OutgoingFrameTooLarge { len, max },
            WsError::HandshakeTimeout(d) => Self::HandshakeTimeout(d),
            WsError::IdleTimeout(d) => Self::IdleTimeout(d),
            WsError::Closed => Self::Closed,
            WsError::Refused(e) => Self::Refused(e),
            WsError::Rejected(e) => Self::Rejected(e),
            WsError::UnexpectedFrame { expected, got } => Self::UnexpectedFrame { expected, got },
            other @ (WsError::WebSocket(_)
            | WsError::Malformed(_)
            | WsError::Encode(_)
            | WsError::OriginRefused(_)
            | WsError::HostRefused(_)
            | WsError::Http(_)
            | WsError::BadRequest(_)) => Self::Io(io::Error::other(other.to_string())),
        }
    }
}
