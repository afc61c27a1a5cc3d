//! The TCP transport's frame reader and handshakes, fed a hostile stream.
//!
//! Input: a mode byte, a frame-limit byte, then the bytes the other end
//! sends. The mode picks the side under attack: a server accepting a client
//! (`accept_client`, then `ClientFrame`s), a server accepting a peer
//! (`accept_peer`, then `PeerFrame`s), or a client meeting a server
//! (`client_handshake`, then `ServerFrame`s). Every frame that decodes must
//! re-encode and decode to itself.

use distlock_core::proto::{
    AuthToken, ClientFrame, ClusterId, MAX_FRAME_BYTES, PeerFrame, ServerFrame, decode, encode,
};
use distlock_transport_tcp::{
    Admission, FrameReader, HandshakeConfig, accept_client, accept_peer, client_handshake,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWriteExt, DuplexStream};

use crate::input::Input;

/// Frame limits the reader is tried with: tiny ones reach the too-large
/// paths with small inputs.
const LIMITS: [usize; 4] = [MAX_FRAME_BYTES, 64, 7, 0];

/// Runs the target on one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte();
    let limit = LIMITS[usize::from(input.byte() % 4)];
    let stream = input.rest();
    let config = HandshakeConfig {
        // Every byte is there from the start: nothing ever waits, and a
        // target that did would show as a slow unit, not a hang.
        timeout: Duration::from_secs(2),
        max_frame_bytes: limit,
        close_linger: Duration::ZERO,
    };
    let admission = admission(mode & 0x10 != 0);
    block_on(async {
        // Their end must outlive ours, or our writes would fail before our
        // reads see the bytes.
        let (_theirs, ours) = hostile_stream(stream).await;
        match mode % 3 {
            0 => {
                if let Ok(pending) = accept_client(ours, &admission, &config).await {
                    let (mut reader, _writer, hello) = pending.into_parts();
                    assert_eq!(
                        hello.protocol_version,
                        distlock_core::proto::PROTOCOL_VERSION
                    );
                    read_all::<_, ClientFrame>(&mut reader).await;
                }
            }
            1 => {
                if let Ok((_from, mut reader, _writer)) =
                    accept_peer(ours, &admission, &config).await
                {
                    read_all::<_, PeerFrame>(&mut reader).await;
                }
            }
            _ => {
                let cluster = (mode & 0x20 != 0).then(|| ClusterId::new("fuzz"));
                if let Ok((mut reader, _writer, _welcome)) =
                    client_handshake(ours, cluster, admission.auth.clone(), &config).await
                {
                    read_all::<_, ServerFrame>(&mut reader).await;
                }
            }
        }
    });
}

/// What the server requires: cluster `fuzz`, and the secret if `auth`.
#[must_use]
pub fn admission(auth: bool) -> Admission {
    Admission {
        cluster_id: ClusterId::new("fuzz"),
        auth: auth.then(|| AuthToken::new("secret")),
    }
}

/// Runs `fut` to completion on a fresh current-thread runtime with timers.
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime builds")
        .block_on(fut)
}

/// Their end and ours of a connection whose other end has sent `bytes` and shut its
/// write side; what we write is buffered and never read.
pub async fn hostile_stream(bytes: &[u8]) -> (DuplexStream, DuplexStream) {
    let (mut theirs, ours) = tokio::io::duplex(bytes.len() + (1 << 20));
    theirs
        .write_all(bytes)
        .await
        .expect("the pipe holds the whole input");
    theirs.shutdown().await.expect("shutting a pipe down works");
    (theirs, ours)
}

/// Reads frames until the stream ends or fails, checking each round-trips.
async fn read_all<R, T>(reader: &mut FrameReader<R>)
where
    R: AsyncRead + Unpin,
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    while let Ok(Some(frame)) = reader.read_frame::<T>().await {
        round_trips(&frame);
    }
}

/// `frame` encodes, and its encoding decodes back to it.
pub fn round_trips<T>(frame: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let mut bytes = Vec::new();
    encode(frame, &mut bytes).expect("a decoded frame encodes");
    let back: T = decode(&bytes).expect("an encoded frame decodes");
    assert_eq!(&back, frame, "a frame changed through encode and decode");
}
