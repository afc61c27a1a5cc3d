//! The WebSocket transport's decoders: one message's JSON or postcard, and
//! a whole hostile connection (HTTP upgrade, WebSocket framing, `Hello`,
//! then frames).
//!
//! Input: a mode byte, then the message's text or bytes, or the bytes the
//! client sends. Every frame that decodes must re-encode (in the encoding
//! it came in) and decode to itself.

use distlock_core::proto::{ClientFrame, MAX_FRAME_BYTES, ServerFrame};
use distlock_transport_tcp::HandshakeConfig;
use distlock_transport_ws::tokio_tungstenite::tungstenite::Message;
use distlock_transport_ws::{
    Decoded, Encoding, HostPolicy, OriginPolicy, WsServerConfig, accept_ws_client, decode_message,
    encode_message,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::time::Duration;

use crate::input::Input;
use crate::tcp::{admission, block_on, hostile_stream};

/// Runs the target on one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte();
    let rest = input.rest();
    let text = || Message::text(String::from_utf8_lossy(rest).into_owned());
    match mode % 5 {
        0 => message::<ClientFrame>(&text()),
        1 => message::<ClientFrame>(&Message::binary(rest.to_vec())),
        2 => message::<ServerFrame>(&text()),
        3 => message::<ServerFrame>(&Message::binary(rest.to_vec())),
        _ => connection(mode, rest),
    }
}

/// Decodes one message; a frame must survive a round trip in its encoding.
fn message<T>(message: &Message)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    if let Ok(Decoded::Frame(frame, encoding)) = decode_message::<T>(message) {
        round_trips(&frame, encoding);
    }
}

fn round_trips<T>(frame: &T, encoding: Encoding)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let again = encode_message(frame, encoding, usize::MAX).expect("a decoded frame encodes");
    match decode_message::<T>(&again) {
        Ok(Decoded::Frame(back, enc)) => {
            assert_eq!(enc, encoding, "the encoding changed");
            assert_eq!(&back, frame, "a frame changed through encode and decode");
        }
        other => panic!("a re-encoded frame does not decode: {other:?}"),
    }
}

/// A server accepting a connection that sends `bytes`.
fn connection(mode: u8, bytes: &[u8]) {
    let config = WsServerConfig {
        handshake: HandshakeConfig {
            timeout: Duration::from_secs(2),
            max_frame_bytes: if mode & 0x10 == 0 {
                MAX_FRAME_BYTES
            } else {
                64
            },
            close_linger: Duration::ZERO,
        },
        origins: OriginPolicy::new(["http://allowed.example"]),
        hosts: HostPolicy::new(["distlock.example"]),
        page: Some("<html></html>".into()),
    };
    let admission = admission(mode & 0x20 != 0);
    block_on(async {
        let (_theirs, ours) = hostile_stream(bytes).await;
        if let Ok(pending) = accept_ws_client(ours, &admission, &config).await {
            let (mut reader, _writer, _hello) = pending.into_parts();
            while let Ok(Some((frame, encoding))) = reader.read_frame::<ClientFrame>().await {
                round_trips(&frame, encoding);
            }
        }
    });
}
