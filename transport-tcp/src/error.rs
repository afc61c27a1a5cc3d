//! The transport's errors: [`FrameError`] for one frame read or written,
//! [`TransportError`] for a connection (handshakes, deadlines, refusals).

use distlock_core::proto::{DecodeError, EncodeError, ProtoError};
use std::io;
use std::time::Duration;

/// Why a frame could not be read or written.
///
/// After any error while reading, the stream's framing is lost: the caller
/// must close the connection (after answering [`FrameError::to_proto`], if it
/// is a server).
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The underlying stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The peer announced a frame above the limit; nothing of its payload
    /// was read or allocated.
    #[error("incoming frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced length.
        len: u64,
        /// The largest length accepted.
        max: u64,
    },
    /// This side tried to send a frame above its limit (a bug or an
    /// unchunked message); nothing was queued.
    #[error("outgoing frame of {len} bytes exceeds the limit of {max} bytes")]
    OutgoingTooLarge {
        /// The encoded length.
        len: u64,
        /// The largest length allowed.
        max: u64,
    },
    /// The stream ended inside a frame (its length prefix or its payload).
    #[error("connection closed in the middle of a frame: got {received} of {expected} bytes")]
    Truncated {
        /// Bytes of the frame received, length prefix included.
        received: u64,
        /// Bytes the frame should have had (4 while the prefix is incomplete).
        expected: u64,
    },
    /// The payload is not the postcard encoding of the expected message.
    #[error("malformed frame: {0}")]
    Malformed(#[from] DecodeError),
    /// The value could not be encoded (a bug, never bad input).
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl FrameError {
    /// The protocol error to answer a peer whose frame failed this way, if
    /// the failure is its fault and it can still be told (an I/O error or a
    /// truncated frame leaves nobody to tell; an outgoing or encoding error
    /// is ours).
    #[must_use]
    pub fn to_proto(&self) -> Option<ProtoError> {
        match self {
            Self::TooLarge { len, max } => Some(ProtoError::FrameTooLarge {
                len: *len,
                max: *max,
            }),
            Self::Malformed(e) => Some(ProtoError::from(*e)),
            Self::Io(_)
            | Self::OutgoingTooLarge { .. }
            | Self::Truncated { .. }
            | Self::Encode(_) => None,
        }
    }
}

/// Why a connection failed or was refused.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The underlying stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The peer announced a frame above the limit.
    #[error("incoming frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The announced length.
        len: u64,
        /// The largest length accepted.
        max: u64,
    },
    /// This side tried to send a frame above its limit.
    #[error("outgoing frame of {len} bytes exceeds the limit of {max} bytes")]
    OutgoingFrameTooLarge {
        /// The encoded length.
        len: u64,
        /// The largest length allowed.
        max: u64,
    },
    /// The stream ended inside a frame.
    #[error("connection closed in the middle of a frame: got {received} of {expected} bytes")]
    Truncated {
        /// Bytes of the frame received, length prefix included.
        received: u64,
        /// Bytes the frame should have had.
        expected: u64,
    },
    /// A frame could not be decoded.
    #[error("malformed frame: {0}")]
    Malformed(#[source] DecodeError),
    /// A value could not be encoded (a bug, never bad input).
    #[error(transparent)]
    Encode(EncodeError),
    /// The handshake did not complete within its deadline.
    #[error("handshake did not complete within {0:?}")]
    HandshakeTimeout(Duration),
    /// No frame arrived within the idle deadline.
    #[error("no frame received for {0:?}: connection idle")]
    IdleTimeout(Duration),
    /// The connection closed (cleanly, between frames) before the handshake
    /// completed.
    #[error("connection closed by the remote end during the handshake")]
    Closed,
    /// The remote end refused this side with a protocol error (a
    /// `ServerFrame::Error` or `PeerFrame::Error`).
    #[error("refused by the remote end: {0}")]
    Refused(#[source] ProtoError),
    /// This side refused the remote end; it was sent this error and the
    /// connection was closed.
    #[error("refused the remote end: {0}")]
    Rejected(#[source] ProtoError),
    /// A plain connection reached a port that speaks TLS.
    #[error("the server speaks TLS on this port: connect with --tls-ca FILE (or --tls)")]
    ServerWantsTls,
    /// The remote end sent a well-formed frame that makes no sense at this
    /// point of the handshake.
    #[error("unexpected frame during the handshake: expected {expected}, got {got}")]
    UnexpectedFrame {
        /// What was expected.
        expected: &'static str,
        /// What came.
        got: &'static str,
    },
}

impl From<FrameError> for TransportError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Io(e) => Self::Io(e),
            FrameError::TooLarge { len, max } => Self::FrameTooLarge { len, max },
            FrameError::OutgoingTooLarge { len, max } => Self::OutgoingFrameTooLarge { len, max },
            FrameError::Truncated { received, expected } => Self::Truncated { received, expected },
            FrameError::Malformed(e) => Self::Malformed(e),
            FrameError::Encode(e) => Self::Encode(e),
        }
    }
}
