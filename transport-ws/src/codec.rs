//! One protocol frame per WebSocket message: a binary message carries its
//! postcard encoding (as a TCP frame's payload, without the length prefix),
//! a text message its JSON (serde_json of the same types, so field and
//! variant names are part of the protocol).

use crate::error::WsError;
use distlock_core::proto::{decode, encode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_tungstenite::tungstenite::Message;

/// How a connection's frames are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Binary messages of postcard (compact; what the Rust client uses).
    Binary,
    /// Text messages of JSON (what browsers and the TypeScript client use).
    Json,
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Encodes `frame` as one message in `encoding`, refusing one above
/// `max_bytes` (the receiver would refuse it anyway; failing here names the
/// culprit).
///
/// # Errors
/// [`WsError::OutgoingTooLarge`] and [`WsError::Encode`].
pub fn encode_message<T: Serialize + ?Sized>(
    frame: &T,
    encoding: Encoding,
    max_bytes: usize,
) -> Result<Message, WsError> {
    let (len, message) = match encoding {
        Encoding::Binary => {
            let mut out = Vec::new();
            encode(frame, &mut out).map_err(|e| WsError::Encode(e.to_string()))?;
            (out.len(), Message::binary(out))
        }
        Encoding::Json => {
            let text = serde_json::to_string(frame).map_err(|e| WsError::Encode(e.to_string()))?;
            (text.len(), Message::text(text))
        }
    };
    if len > max_bytes {
        return Err(WsError::OutgoingTooLarge {
            len: to_u64(len),
            max: to_u64(max_bytes),
        });
    }
    Ok(message)
}

/// What a message turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<T> {
    /// A frame, and how it was encoded.
    Frame(T, Encoding),
    /// A ping or pong (tungstenite answers pings by itself): nothing to do.
    Control,
    /// The other end closed the connection.
    Close,
}

/// Decodes one message as a `T`.
///
/// # Errors
/// [`WsError::Malformed`] when a text message is not the JSON of a `T` or
/// a binary message not its postcard encoding.
pub fn decode_message<T: DeserializeOwned>(message: &Message) -> Result<Decoded<T>, WsError> {
    match message {
        Message::Binary(bytes) => decode::<T>(bytes)
            .map(|f| Decoded::Frame(f, Encoding::Binary))
            .map_err(|e| WsError::Malformed(format!("binary message: {e}"))),
        Message::Text(text) => serde_json::from_str::<T>(text.as_str())
            .map(|f| Decoded::Frame(f, Encoding::Json))
            .map_err(|e| WsError::Malformed(format!("JSON message: {e}"))),
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(Decoded::Control),
        Message::Close(_) => Ok(Decoded::Close),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distlock_core::proto::{ClientFrame, Request, RequestBody, RequestId};

    fn status(id: u64) -> ClientFrame {
        ClientFrame::Request(Request {
            id: RequestId(id),
            body: RequestBody::ClusterStatus,
        })
    }

    #[test]
    fn both_encodings_round_trip() {
        for encoding in [Encoding::Binary, Encoding::Json] {
            let m = encode_message(&status(7), encoding, 1024).expect("encodes");
            assert_eq!(
                decode_message::<ClientFrame>(&m).expect("decodes"),
                Decoded::Frame(status(7), encoding)
            );
        }
        let m = encode_message(&status(7), Encoding::Json, 1024).expect("encodes");
        assert_eq!(
            m,
            Message::text(r#"{"Request":{"id":7,"body":"ClusterStatus"}}"#)
        );
    }

    #[test]
    fn malformed_and_oversized_are_errors() {
        let bad = decode_message::<ClientFrame>(&Message::text("{\"Request\":")).expect_err("bad");
        assert!(matches!(bad, WsError::Malformed(_)), "{bad}");
        assert!(bad.to_proto().is_some());
        let bad = decode_message::<ClientFrame>(&Message::binary(vec![9, 9, 9])).expect_err("bad");
        assert!(matches!(bad, WsError::Malformed(_)), "{bad}");
        let big = encode_message(&status(7), Encoding::Json, 10).expect_err("too large");
        assert!(
            matches!(big, WsError::OutgoingTooLarge { max: 10, .. }),
            "{big}"
        );
        assert_eq!(
            decode_message::<ClientFrame>(&Message::Ping(vec![1].into())).expect("control"),
            Decoded::Control
        );
    }
}
