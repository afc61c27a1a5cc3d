//! The wire protocol (PROTOCOL.md): every message that crosses a connection,
//! as serde types, and the postcard codec that turns them into frames.
//!
//! Two links use these types:
//!
//! - the **client link** (a client or browser to any server):
//!   [`ClientFrame`] upwards, [`ServerFrame`] downwards. A connection opens
//!   with [`ClientFrame::Hello`], answered by [`ServerFrame::Welcome`] or by
//!   [`ServerFrame::Error`] and a close. Then [`Request`]s, each with a
//!   client-chosen [`RequestId`], may be pipelined; their [`Response`]s may
//!   come back in any order, each exactly once.
//! - the **peer link** (server to server): [`PeerFrame`] carries Raft's
//!   messages and the client requests a follower forwards to the leader.
//!
//! A frame is the postcard encoding of one of these values ([`encode`],
//! [`decode`]); the transports add the framing (a big-endian `u32` length
//! over TCP, one binary message over WebSocket) and check every announced
//! length with [`check_frame_len`] before allocating. The same types also
//! serialise to JSON (WebSocket text messages, `distlock status --json`),
//! so field names are part of the protocol too.
//!
//! # Compatibility rules
//!
//! postcard identifies enum variants by position and struct fields by order,
//! so within one [`PROTOCOL_VERSION`]:
//! - variants are never reordered or removed, and new ones go at the end;
//! - fields are never reordered, removed or added;
//! - every `Hello` (client and peer) stays variant 0 of its enum with
//!   `protocol_version: u32` as its first field, in every version, so that
//!   [`peek_hello_version`] can tell a client of another version why it is
//!   refused even when the rest of its `Hello` no longer decodes.
//!
//! The tests pin each enum's variant order against its encoding.

mod client;
mod codec;
mod error;
mod listing;
mod peer;
mod server;
mod view;

#[cfg(any(test, feature = "testkit"))]
mod samples;

/// One value of every variant of every frame type (the samples the codec
/// tests round-trip), for the fuzz targets' seed corpora.
#[cfg(feature = "testkit")]
pub mod sample_frames {
    pub use super::samples::{client_frames, peer_frames, server_frames};
}

pub use client::{ClientFrame, Request, RequestBody, RequestId};
pub use codec::{DecodeError, EncodeError, check_frame_len, decode, encode, peek_hello_version};
pub use error::ProtoError;
pub use listing::{
    HolderEntryView, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, LeaderView, LockEntryView, LockListView,
    SessionEntryView, SessionListView, WaiterEntryView, page_size,
};
pub use peer::{ForwardId, ForwardedRequest, PeerFrame, PeerMessage};
pub use server::{LockEvent, MemberInfo, Response, ResponseBody, ServerFrame, WatchEvent};
pub use view::{
    ClusterStatusView, HolderView, LockStatusView, MemberRole, MemberStatus, WaiterView,
};

use serde::{Deserialize, Serialize};
use std::fmt;

/// The protocol version this build speaks. Both ends of a link must speak
/// the same one; a `Hello` of another version is refused with
/// [`ProtoError::UnsupportedVersion`].
pub const PROTOCOL_VERSION: u32 = 1;

/// The default largest frame, in bytes (1 MiB), excluding the transport's
/// length prefix. Servers refuse larger frames before reading them.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// The most snapshot bytes one [`ResponseBody::SnapshotChunk`] carries:
/// half a frame, so that the answer fits a frame with its envelope, also
/// when a follower relays it from the leader.
pub const SNAPSHOT_CHUNK_MAX: u32 = 512 * 1024;

/// The name of a cluster, chosen by its operator (for example
/// `"prod-locks"`), compared byte for byte.
///
/// Peers refuse servers of another cluster, so a misconfigured address list
/// cannot join two clusters' logs; clients may name the cluster they expect
/// in their `Hello` to be refused by the wrong one. A string rather than a
/// number because operators write it in configuration files and read it in
/// error messages; it is sent once per connection, so its size does not
/// matter. On the wire it is a plain string.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClusterId(pub String);

impl ClusterId {
    /// A cluster id of this name.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A shared secret presented in a `Hello`.
///
/// On the wire it is a plain string. Its `Debug` output is redacted so that
/// logging a frame never logs the secret, and `==` compares in time that does
/// not depend on where the strings differ (only on their lengths).
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuthToken(String);

impl AuthToken {
    /// A token holding this secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself (to send it, or to store it in configuration).
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl PartialEq for AuthToken {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let diff = a
            .iter()
            .zip(b)
            .fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)));
        diff == 0
    }
}

impl Eq for AuthToken {}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_token_is_redacted_and_compares_by_value() {
        let token = AuthToken::new("hunter2");
        let shown = format!(
            "{:?}",
            ClientFrame::Hello {
                protocol_version: PROTOCOL_VERSION,
                cluster_id: None,
                auth: Some(token.clone()),
            }
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(token, AuthToken::new("hunter2"));
        assert_ne!(token, AuthToken::new("hunter3"));
        assert_ne!(token, AuthToken::new("hunter22"));
        assert_eq!(token.expose(), "hunter2");
    }

    #[test]
    fn newtypes_encode_as_their_inner_value() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        encode(&ClusterId::new("prod"), &mut a).expect("encodes");
        encode("prod", &mut b).expect("encodes");
        assert_eq!(a, b);
        a.clear();
        encode(&AuthToken::new("s3cret"), &mut a).expect("encodes");
        assert_eq!(decode::<String>(&a), Ok("s3cret".to_owned()));
        assert_eq!(ClusterId::new("prod").to_string(), "prod");
    }
}
