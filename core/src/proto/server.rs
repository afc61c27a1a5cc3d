//! What a server sends to a client: [`ServerFrame`], carrying the
//! `Welcome`, [`Response`]s and watch events.

use super::client::RequestId;
use super::error::ProtoError;
use super::listing::{LeaderView, LockListView, SessionListView};
use super::view::{ClusterStatusView, LockStatusView};
use crate::ids::{LogIndex, NodeId, Term};
use crate::locks::{Event, FencingToken, Mode, Outcome, SessionId};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A frame from a server to a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The answer to an accepted `Hello`.
    Welcome {
        /// The server answering.
        node_id: NodeId,
        /// The leader it knows of, if any.
        leader_hint: Option<NodeId>,
        /// Every member of the cluster with its client addresses, so that a
        /// client given one address can fail over to the others.
        members: Vec<MemberInfo>,
    },
    /// The answer to one request.
    Response(Response),
    /// An event of a watched lock.
    Watch(WatchEvent),
    /// A connection-level error; the server closes the connection after it.
    Error(ProtoError),
}

/// A member of the cluster as a client sees it: where to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Its node id.
    pub id: NodeId,
    /// Its client address (`host:port`, TCP).
    pub client_addr: String,
    /// Its WebSocket address (`host:port`), if it serves WebSocket.
    pub ws_addr: Option<String>,
}

/// The answer to one [`super::Request`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: RequestId,
    /// What it produced.
    pub result: Result<ResponseBody, ProtoError>,
}

impl Response {
    /// A success.
    #[must_use]
    pub const fn ok(id: RequestId, body: ResponseBody) -> Self {
        Self {
            id,
            result: Ok(body),
        }
    }

    /// A failure.
    #[must_use]
    pub const fn err(id: RequestId, error: ProtoError) -> Self {
        Self {
            id,
            result: Err(error),
        }
    }
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseBody {
    /// To `OpenSession`.
    SessionOpened {
        /// The new session (also the answer to a retry with the same nonce).
        session: SessionId,
        /// Its lease length.
        ttl_ms: u64,
    },
    /// To `KeepAlive`: the lease is extended, counting from when the client
    /// sent the keepalive.
    KeepAliveAck {
        /// The session kept alive.
        session: SessionId,
    },
    /// To `Acquire`, `Release`, `CancelWait` and `CloseSession`.
    ///
    /// Every request gets exactly one response: a server holds a queued
    /// acquire's response until the acquire leaves the queue, so
    /// [`Outcome::Pending`] (what the state machine answers to a retry of a
    /// queued acquire) is not sent to clients; a client receiving it treats
    /// the request as unanswered and retries it later with the same seq.
    Lock(Outcome),
    /// To `CheckToken`: whether the token is a current grant of the lock.
    TokenValid(bool),
    /// To `LockStatus`; `None` when the lock is free, with no waiters and
    /// no lock-delay.
    LockStatus(Option<LockStatusView>),
    /// To `ClusterStatus`.
    ClusterStatus(ClusterStatusView),
    /// To `Watch`: events follow as [`ServerFrame::Watch`].
    Watching,
    /// To `Unwatch`: no further events of the lock follow.
    Unwatched,
    /// To `ChangeMembership`: the new configuration committed at `index`.
    MembershipChanged {
        /// The log index of the configuration entry.
        index: LogIndex,
    },
    /// To `TakeSnapshot` and `SnapshotChunk`: bytes `offset..offset +
    /// data.len()` of a snapshot of `total_len` bytes. The whole is the
    /// postcard encoding of a [`crate::raft::Snapshot`]: its position in
    /// the log, the configuration in force there, and the lock state.
    SnapshotChunk {
        /// The last log index the snapshot reflects; fencing tokens and
        /// session ids in it are at most this.
        index: LogIndex,
        /// The term of the entry at `index`.
        term: Term,
        /// Where `data` starts.
        offset: u64,
        /// The length of the whole snapshot.
        total_len: u64,
        /// The chunk; empty only for an empty rest.
        data: Vec<u8>,
    },
    /// This connection now speaks for `session` (an `Attach`).
    Attached {
        /// The session.
        session: SessionId,
    },
    /// To `ListLocks`: one page of locks.
    Locks(LockListView),
    /// To `ListSessions`: one page of sessions.
    Sessions(SessionListView),
    /// To `RevokeSession`: the session has ended, as by expiry.
    Revoked {
        /// The session ended.
        session: SessionId,
    },
    /// To `Leader`: the election's leader and its value; `None` when
    /// nobody leads.
    Leader(Option<LeaderView>),
}

/// An event of a watched lock, in log order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// The lock's name (shared between the watchers of one lock).
    pub lock: Arc<str>,
    /// What happened.
    pub event: LockEvent,
}

/// What happened to a watched lock: the watchable subset of
/// [`crate::locks::Event`], with the log index of the entry whose
/// application produced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockEvent {
    /// A session was granted the lock.
    Acquired {
        /// The log index of the entry that granted it.
        index: LogIndex,
        /// The new holder.
        session: SessionId,
        /// The grant's fencing token.
        token: FencingToken,
        /// How it is held.
        mode: Mode,
    },
    /// A holder released the lock (by `Release` or by closing its session).
    Released {
        /// The log index of the entry that released it.
        index: LogIndex,
        /// The former holder.
        session: SessionId,
        /// The token of the ended grant.
        token: FencingToken,
    },
    /// A holder lost the lock because its session expired.
    Expired {
        /// The log index of the `ExpireSession` entry.
        index: LogIndex,
        /// The former holder.
        session: SessionId,
        /// The token of the ended grant.
        token: FencingToken,
    },
    /// An election's leader proclaimed a new value (read it with
    /// `RequestBody::Leader`).
    Proclaimed {
        /// The log index of the `Proclaim` entry.
        index: LogIndex,
        /// The leader.
        session: SessionId,
        /// Its term of office.
        token: FencingToken,
    },
}

impl LockEvent {
    /// The log index of the entry that produced the event.
    #[must_use]
    pub const fn index(&self) -> LogIndex {
        match self {
            Self::Acquired { index, .. }
            | Self::Released { index, .. }
            | Self::Expired { index, .. }
            | Self::Proclaimed { index, .. } => *index,
        }
    }
}

impl WatchEvent {
    /// The watch event for an event of the entry applied at `index`; `None`
    /// for the events watches do not see (sessions, waits, lock-delays).
    #[must_use]
    pub fn from_event(index: LogIndex, event: &Event) -> Option<Self> {
        let (lock, event) = match event {
            Event::Acquired {
                lock,
                session,
                token,
                mode,
            } => (
                lock,
                LockEvent::Acquired {
                    index,
                    session: *session,
                    token: *token,
                    mode: *mode,
                },
            ),
            Event::Released {
                lock,
                session,
                token,
            } => (
                lock,
                LockEvent::Released {
                    index,
                    session: *session,
                    token: *token,
                },
            ),
            Event::Expired {
                lock,
                session,
                token,
            } => (
                lock,
                LockEvent::Expired {
                    index,
                    session: *session,
                    token: *token,
                },
            ),
            Event::Proclaimed {
                lock,
                session,
                token,
            } => (
                lock,
                LockEvent::Proclaimed {
                    index,
                    session: *session,
                    token: *token,
                },
            ),
            Event::SessionOpened { .. }
            | Event::SessionEnded { .. }
            | Event::WaitStarted { .. }
            | Event::WaitEnded { .. }
            | Event::LockDelayStarted { .. }
            | Event::LockDelayEnded { .. } => return None,
        };
        Some(Self {
            lock: Arc::clone(lock),
            event,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::samples::{
        lock_events, proto_errors, response_bodies, roundtrip, server_frames, tag_of,
    };
    use super::*;
    use crate::locks::ClientCommand;
    use crate::locks::{Applied, Command, LockState, Seq, Wait};

    fn server_frame_tag(frame: &ServerFrame) -> u32 {
        match frame {
            ServerFrame::Welcome { .. } => 0,
            ServerFrame::Response(_) => 1,
            ServerFrame::Watch(_) => 2,
            ServerFrame::Error(_) => 3,
        }
    }

    fn response_body_tag(body: &ResponseBody) -> u32 {
        match body {
            ResponseBody::SessionOpened { .. } => 0,
            ResponseBody::KeepAliveAck { .. } => 1,
            ResponseBody::Lock(_) => 2,
            ResponseBody::TokenValid(_) => 3,
            ResponseBody::LockStatus(_) => 4,
            ResponseBody::ClusterStatus(_) => 5,
            ResponseBody::Watching => 6,
            ResponseBody::Unwatched => 7,
            ResponseBody::MembershipChanged { .. } => 8,
            ResponseBody::SnapshotChunk { .. } => 9,
            ResponseBody::Attached { .. } => 10,
            ResponseBody::Locks(_) => 11,
            ResponseBody::Sessions(_) => 12,
            ResponseBody::Revoked { .. } => 13,
            ResponseBody::Leader(_) => 14,
        }
    }

    fn lock_event_tag(event: &LockEvent) -> u32 {
        match event {
            LockEvent::Acquired { .. } => 0,
            LockEvent::Released { .. } => 1,
            LockEvent::Expired { .. } => 2,
            LockEvent::Proclaimed { .. } => 3,
        }
    }

    fn proto_error_tag(error: &ProtoError) -> u32 {
        match error {
            ProtoError::UnsupportedVersion { .. } => 0,
            ProtoError::WrongCluster => 1,
            ProtoError::Unauthorized => 2,
            ProtoError::HelloRequired => 3,
            ProtoError::FrameTooLarge { .. } => 4,
            ProtoError::Malformed { .. } => 5,
            ProtoError::NotLeader { .. } => 6,
            ProtoError::NoLeader => 7,
            ProtoError::Lock(_) => 8,
            ProtoError::ShuttingDown => 9,
            ProtoError::Overloaded => 10,
            ProtoError::Timeout => 11,
            ProtoError::UnknownSession => 12,
            ProtoError::Membership(_) => 13,
            ProtoError::LeaderUnreachable { .. } => 14,
            ProtoError::SnapshotUnavailable { .. } => 15,
            ProtoError::NotAttached => 16,
            ProtoError::NotSessionOwner => 17,
            ProtoError::Forbidden { .. } => 18,
            ProtoError::TooManyConnections { .. } => 19,
            ProtoError::TooManySessions { .. } => 20,
            ProtoError::TooManyWatches { .. } => 21,
            ProtoError::TooManyInFlight { .. } => 22,
            ProtoError::RateLimited { .. } => 23,
            ProtoError::FrameTimeout { .. } => 24,
        }
    }

    /// Round-trips every value, checks its tag against `tag`, and that the
    /// tags seen are exactly `0..count`.
    fn check_all<T>(values: &[T], tag: fn(&T) -> u32, count: u32)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let mut seen = Vec::new();
        for value in values {
            roundtrip(value);
            assert_eq!(tag_of(value), tag(value), "{value:?}");
            seen.push(tag(value));
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, (0..count).collect::<Vec<_>>());
    }

    #[test]
    fn every_server_frame_round_trips_with_its_pinned_tag() {
        check_all(&server_frames(), server_frame_tag, 4);
        check_all(&response_bodies(), response_body_tag, 15);
        check_all(&lock_events(), lock_event_tag, 4);
        check_all(&proto_errors(), proto_error_tag, 25);
    }

    #[test]
    fn watch_events_follow_the_state_machine() {
        let mut state = LockState::default();
        let mut out = Applied::default();
        let mut events = Vec::new();
        let s = SessionId(1);
        let commands = [
            Command::Client(ClientCommand::OpenSession {
                nonce: 1,
                ttl_ms: 10_000,
            }),
            Command::Client(ClientCommand::Acquire {
                session: s,
                seq: Seq(1),
                ack: Seq(1),
                lock: "a".to_owned(),
                mode: Mode::Exclusive,
                wait: Wait::Try,
                lock_delay_ms: 0,
            }),
            Command::Client(ClientCommand::Release {
                session: s,
                seq: Seq(2),
                ack: Seq(2),
                lock: "a".to_owned(),
                token: FencingToken(2),
            }),
            Command::Client(ClientCommand::Acquire {
                session: s,
                seq: Seq(3),
                ack: Seq(3),
                lock: "a".to_owned(),
                mode: Mode::Shared,
                wait: Wait::Try,
                lock_delay_ms: 0,
            }),
            Command::ExpireSession { session: s },
        ];
        for (i, command) in (1..).zip(&commands) {
            out.clear();
            state.apply_into(LogIndex(i), command, &mut out);
            events.extend(
                out.events
                    .iter()
                    .filter_map(|e| WatchEvent::from_event(LogIndex(i), e)),
            );
        }
        let lock: Arc<str> = Arc::from("a");
        assert_eq!(
            events,
            [
                WatchEvent {
                    lock: Arc::clone(&lock),
                    event: LockEvent::Acquired {
                        index: LogIndex(2),
                        session: s,
                        token: FencingToken(2),
                        mode: Mode::Exclusive
                    }
                },
                WatchEvent {
                    lock: Arc::clone(&lock),
                    event: LockEvent::Released {
                        index: LogIndex(3),
                        session: s,
                        token: FencingToken(2)
                    }
                },
                WatchEvent {
                    lock: Arc::clone(&lock),
                    event: LockEvent::Acquired {
                        index: LogIndex(4),
                        session: s,
                        token: FencingToken(4),
                        mode: Mode::Shared
                    }
                },
                WatchEvent {
                    lock,
                    event: LockEvent::Expired {
                        index: LogIndex(5),
                        session: s,
                        token: FencingToken(4)
                    }
                },
            ]
        );
        assert_eq!(events[3].event.index(), LogIndex(5));
        assert_eq!(
            WatchEvent::from_event(LogIndex(9), &Event::LockDelayEnded { lock: "a".into() }),
            None
        );
    }

    #[test]
    fn response_constructors() {
        assert_eq!(
            Response::ok(RequestId(1), ResponseBody::Watching).result,
            Ok(ResponseBody::Watching)
        );
        assert_eq!(
            Response::err(RequestId(2), ProtoError::Timeout),
            Response {
                id: RequestId(2),
                result: Err(ProtoError::Timeout)
            }
        );
    }
}
