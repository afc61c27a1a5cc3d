//! What a client sends to a server: [`ClientFrame`], carrying a `Hello`
//! and then [`Request`]s.

use super::{AuthToken, ClusterId};
use crate::locks::{Command, FencingToken, Mode, Seq, SessionId, Wait};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A frame from a client to a server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// The first frame of every connection; answered by
    /// [`super::ServerFrame::Welcome`] or by [`super::ServerFrame::Error`]
    /// and a close. Must stay variant 0 with `protocol_version` first (see
    /// [`super::peek_hello_version`]).
    Hello {
        /// [`super::PROTOCOL_VERSION`] of the client.
        protocol_version: u32,
        /// The cluster the client expects; `None` accepts any.
        cluster_id: Option<ClusterId>,
        /// Credentials, if the cluster requires them.
        auth: Option<AuthToken>,
    },
    /// A request; answered by one [`super::Response`] with the same id.
    Request(Request),
}

/// A client-chosen request number, echoed in the response so that a client
/// can keep many requests in flight on one connection.
///
/// Ids are per connection; a client must not reuse one while its request is
/// unanswered. They have nothing to do with [`Seq`], which numbers a
/// session's requests across connections for exactly-once delivery.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// One request of a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Echoed in the response.
    pub id: RequestId,
    /// What is asked.
    pub body: RequestBody,
}

/// What a client can ask.
///
/// The variants that carry `(session, seq, ack)` and `OpenSession` become
/// log commands ([`RequestBody::into_command`]) and are applied exactly once
/// however often they are retried. `KeepAlive` is answered by the leader
/// without the log. `CheckToken`, `LockStatus` and `ClusterStatus` are
/// linearizable reads. `Watch` and `Unwatch` concern the connection they
/// arrive on and are served by that server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestBody {
    /// Opens a session. Answered [`super::ResponseBody::SessionOpened`].
    OpenSession {
        /// Random, chosen once per session by the client: a retry with the
        /// same nonce answers the same session rather than opening another.
        nonce: u128,
        /// The session's lease length (1 s to 300 s by default).
        ttl_ms: u64,
    },
    /// Extends a session's lease. Not logged: the leader answers
    /// [`super::ResponseBody::KeepAliveAck`] once a heartbeat round that
    /// started after the keepalive arrived has reached a majority
    /// (DESIGN §4 rule 2). The client counts the lease from the time it
    /// sent the acknowledged keepalive.
    KeepAlive {
        /// The session to keep alive.
        session: SessionId,
    },
    /// Ends a session, releasing its locks without lock-delay.
    CloseSession {
        /// The session.
        session: SessionId,
        /// This request's number within the session.
        seq: Seq,
        /// The session's lowest unanswered sequence number.
        ack: Seq,
    },
    /// Asks for a lock. Answered with [`crate::locks::Outcome::Granted`] or
    /// an error; a queued acquire is answered when it leaves the queue.
    Acquire {
        /// The session.
        session: SessionId,
        /// This request's number within the session.
        seq: Seq,
        /// The session's lowest unanswered sequence number.
        ack: Seq,
        /// The lock's name (1 to 512 bytes of UTF-8 by default).
        lock: String,
        /// How to hold it.
        mode: Mode,
        /// Whether and how long to wait if it is busy.
        wait: Wait,
        /// How long the lock stays unavailable if this session expires
        /// while holding it (0 to 60 s by default).
        lock_delay_ms: u64,
    },
    /// Gives a lock back.
    Release {
        /// The session.
        session: SessionId,
        /// This request's number within the session.
        seq: Seq,
        /// The session's lowest unanswered sequence number.
        ack: Seq,
        /// The lock's name.
        lock: String,
        /// The token of the grant being released.
        token: FencingToken,
    },
    /// Withdraws a queued acquire (which is then answered
    /// [`crate::locks::LockError::Cancelled`]).
    CancelWait {
        /// The session.
        session: SessionId,
        /// This request's number within the session.
        seq: Seq,
        /// The session's lowest unanswered sequence number.
        ack: Seq,
        /// The lock waited for.
        lock: String,
    },
    /// Whether `token` is a current grant of `lock` (Chubby's
    /// CheckSequencer). Answered [`super::ResponseBody::TokenValid`].
    CheckToken {
        /// The lock's name.
        lock: String,
        /// The token to check.
        token: FencingToken,
    },
    /// A lock's holders and waiters. Answered
    /// [`super::ResponseBody::LockStatus`].
    LockStatus {
        /// The lock's name.
        lock: String,
    },
    /// The cluster's leader, term, commit index and members. Answered
    /// [`super::ResponseBody::ClusterStatus`].
    ClusterStatus,
    /// Streams the lock's events on this connection as
    /// [`super::ServerFrame::Watch`] frames, from the next applied entry on.
    /// Answered [`super::ResponseBody::Watching`].
    Watch {
        /// The lock's name.
        lock: String,
    },
    /// Stops a watch. Answered [`super::ResponseBody::Unwatched`].
    Unwatch {
        /// The lock's name.
        lock: String,
    },
}

impl RequestBody {
    /// Whether this request becomes a log command.
    #[must_use]
    pub const fn is_command(&self) -> bool {
        matches!(
            self,
            Self::OpenSession { .. }
                | Self::CloseSession { .. }
                | Self::Acquire { .. }
                | Self::Release { .. }
                | Self::CancelWait { .. }
        )
    }

    /// The log command this request becomes, if it becomes one (see
    /// [`Self::is_command`]). Clones the lock name; prefer
    /// [`Self::into_command`] on the hot path.
    #[must_use]
    pub fn to_command(&self) -> Option<Command> {
        if self.is_command() {
            self.clone().into_command().ok()
        } else {
            None
        }
    }

    /// The log command this request becomes, without copying it.
    ///
    /// # Errors
    /// Gives the request back when it is not a log command.
    pub fn into_command(self) -> Result<Command, Self> {
        Ok(match self {
            Self::OpenSession { nonce, ttl_ms } => Command::OpenSession { nonce, ttl_ms },
            Self::CloseSession { session, seq, ack } => Command::CloseSession { session, seq, ack },
            Self::Acquire {
                session,
                seq,
                ack,
                lock,
                mode,
                wait,
                lock_delay_ms,
            } => Command::Acquire {
                session,
                seq,
                ack,
                lock,
                mode,
                wait,
                lock_delay_ms,
            },
            Self::Release {
                session,
                seq,
                ack,
                lock,
                token,
            } => Command::Release {
                session,
                seq,
                ack,
                lock,
                token,
            },
            Self::CancelWait {
                session,
                seq,
                ack,
                lock,
            } => Command::CancelWait {
                session,
                seq,
                ack,
                lock,
            },
            other @ (Self::KeepAlive { .. }
            | Self::CheckToken { .. }
            | Self::LockStatus { .. }
            | Self::ClusterStatus
            | Self::Watch { .. }
            | Self::Unwatch { .. }) => return Err(other),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::samples::{client_frames, request_bodies, roundtrip, tag_of};
    use super::*;

    /// The variant's position, which is its tag on the wire. Exhaustive, so
    /// a new variant must be added here (and to the samples).
    fn client_frame_tag(frame: &ClientFrame) -> u32 {
        match frame {
            ClientFrame::Hello { .. } => 0,
            ClientFrame::Request(_) => 1,
        }
    }

    fn request_body_tag(body: &RequestBody) -> u32 {
        match body {
            RequestBody::OpenSession { .. } => 0,
            RequestBody::KeepAlive { .. } => 1,
            RequestBody::CloseSession { .. } => 2,
            RequestBody::Acquire { .. } => 3,
            RequestBody::Release { .. } => 4,
            RequestBody::CancelWait { .. } => 5,
            RequestBody::CheckToken { .. } => 6,
            RequestBody::LockStatus { .. } => 7,
            RequestBody::ClusterStatus => 8,
            RequestBody::Watch { .. } => 9,
            RequestBody::Unwatch { .. } => 10,
        }
    }

    #[test]
    fn every_client_frame_round_trips_with_its_pinned_tag() {
        let frames = client_frames();
        let mut seen = Vec::new();
        for frame in &frames {
            roundtrip(frame);
            assert_eq!(tag_of(frame), client_frame_tag(frame), "{frame:?}");
            seen.push(client_frame_tag(frame));
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, [0, 1]);

        let mut seen = Vec::new();
        for body in request_bodies() {
            roundtrip(&body);
            assert_eq!(tag_of(&body), request_body_tag(&body), "{body:?}");
            seen.push(request_body_tag(&body));
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, (0..=10).collect::<Vec<_>>());
    }

    #[test]
    fn wire_format_is_pinned() {
        let mut out = Vec::new();
        super::super::encode(
            &ClientFrame::Request(Request {
                id: RequestId(7),
                body: RequestBody::ClusterStatus,
            }),
            &mut out,
        )
        .expect("encodes");
        assert_eq!(out, [1, 7, 8]);
        out.clear();
        super::super::encode(
            &ClientFrame::Hello {
                protocol_version: 1,
                cluster_id: Some(ClusterId::new("ab")),
                auth: None,
            },
            &mut out,
        )
        .expect("encodes");
        assert_eq!(out, [0, 1, 1, 2, b'a', b'b', 0]);
    }

    #[test]
    fn commands_map_field_for_field() {
        let (s, q, a) = (SessionId(3), Seq(5), Seq(4));
        let cases = [
            (
                RequestBody::OpenSession {
                    nonce: u128::MAX - 1,
                    ttl_ms: 10_000,
                },
                Command::OpenSession {
                    nonce: u128::MAX - 1,
                    ttl_ms: 10_000,
                },
            ),
            (
                RequestBody::CloseSession {
                    session: s,
                    seq: q,
                    ack: a,
                },
                Command::CloseSession {
                    session: s,
                    seq: q,
                    ack: a,
                },
            ),
            (
                RequestBody::Acquire {
                    session: s,
                    seq: q,
                    ack: a,
                    lock: "db".to_owned(),
                    mode: Mode::Semaphore(3),
                    wait: Wait::For(1_500),
                    lock_delay_ms: 250,
                },
                Command::Acquire {
                    session: s,
                    seq: q,
                    ack: a,
                    lock: "db".to_owned(),
                    mode: Mode::Semaphore(3),
                    wait: Wait::For(1_500),
                    lock_delay_ms: 250,
                },
            ),
            (
                RequestBody::Release {
                    session: s,
                    seq: q,
                    ack: a,
                    lock: "db".to_owned(),
                    token: FencingToken(77),
                },
                Command::Release {
                    session: s,
                    seq: q,
                    ack: a,
                    lock: "db".to_owned(),
                    token: FencingToken(77),
                },
            ),
            (
                RequestBody::CancelWait {
                    session: s,
                    seq: q,
                    ack: a,
                    lock: "db".to_owned(),
                },
                Command::CancelWait {
                    session: s,
                    seq: q,
                    ack: a,
                    lock: "db".to_owned(),
                },
            ),
        ];
        for (body, command) in cases {
            assert!(body.is_command());
            assert_eq!(body.to_command().as_ref(), Some(&command));
            assert_eq!(body.into_command(), Ok(command));
        }
    }

    #[test]
    fn other_requests_are_not_commands() {
        let mut others = 0;
        for body in request_bodies() {
            let logged = matches!(
                body,
                RequestBody::OpenSession { .. }
                    | RequestBody::CloseSession { .. }
                    | RequestBody::Acquire { .. }
                    | RequestBody::Release { .. }
                    | RequestBody::CancelWait { .. }
            );
            assert_eq!(body.is_command(), logged, "{body:?}");
            assert_eq!(body.to_command().is_some(), logged, "{body:?}");
            match body.clone().into_command() {
                Ok(_) => assert!(logged),
                Err(back) => {
                    assert_eq!(back, body);
                    others += 1;
                }
            }
        }
        // KeepAlive, CheckToken, LockStatus, ClusterStatus, Watch, Unwatch.
        assert_eq!(others, 6);
    }
}
