//! Linearizable reads through the session's connection: whether a fencing
//! token is still a current grant of its lock (Chubby's CheckSequencer,
//! for a protected resource that wants to ask the cluster rather than
//! remember the highest token it saw), and a lock's holders and waiters.
//! They need no session; like any request they are retried on retryable
//! errors and re-sent after a failover, and they are answered with
//! [`ClientEvent::Read`](crate::client::ClientEvent::Read).

use super::ClientSession;
use crate::client::OpId;
use crate::locks::FencingToken;
use crate::proto::RequestBody;
use crate::time::Instant;

impl ClientSession {
    /// Asks whether `token` is a current grant of `lock`; answered with
    /// [`crate::proto::ResponseBody::TokenValid`].
    pub fn check_token(
        &mut self,
        lock: impl Into<String>,
        token: FencingToken,
        now: Instant,
    ) -> OpId {
        let body = RequestBody::CheckToken {
            lock: lock.into(),
            token,
        };
        self.start(body, None, now)
    }

    /// Asks for `lock`'s holders, waiters and lock-delay; answered with
    /// [`crate::proto::ResponseBody::LockStatus`].
    pub fn lock_status(&mut self, lock: impl Into<String>, now: Instant) -> OpId {
        let body = RequestBody::LockStatus { lock: lock.into() };
        self.start(body, None, now)
    }
}

impl ClientSession {
    /// Sends a request that needs no session and is answered by the
    /// cluster as a whole (the reads above, the listings, a revocation),
    /// retried across failovers like them; answered with
    /// [`ClientEvent::Read`](crate::client::ClientEvent::Read). `None` if
    /// `body` is not such a request.
    pub fn query(&mut self, body: RequestBody, now: Instant) -> Option<OpId> {
        is_read(&body).then(|| self.start(body, None, now))
    }
}

/// Whether `body` is one of the reads above or another [`ClientSession::query`].
pub(super) fn is_read(body: &RequestBody) -> bool {
    matches!(
        body,
        RequestBody::CheckToken { .. }
            | RequestBody::LockStatus { .. }
            | RequestBody::ListLocks { .. }
            | RequestBody::ListSessions { .. }
            | RequestBody::RevokeSession { .. }
            | RequestBody::Leader { .. }
    )
}
