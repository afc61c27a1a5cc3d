//! Who holds what: paged listings of the cluster's locks and live
//! sessions (with who opened each), every lock under a prefix as one
//! list, and an operator's revocation of a session. Each goes through the
//! session's connection like the other reads and is retried across
//! failovers; the listings are linearizable (the leader answers after a
//! ReadIndex round).

use super::driver::Command;
use super::{Client, ClientError};
use distlock_core::client::ClientError as CoreError;
use distlock_core::locks::SessionId;
use distlock_core::proto::{
    LockEntryView, LockListView, RequestBody, ResponseBody, SessionListView,
};

impl Client {
    /// One page of up to `limit` locks (0 for the server's default, 100;
    /// at most 1 000) whose names start with `prefix` and sort after
    /// `after` (the previous page's `next`). Only locks with holders,
    /// waiters or a lock-delay exist.
    ///
    /// # Errors
    /// [`ClientError::Session`] when the cluster refuses;
    /// [`ClientError::Closed`] if the driver stopped.
    pub async fn list_locks(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<LockListView, ClientError> {
        let body = RequestBody::ListLocks {
            prefix: prefix.to_owned(),
            after: after.map(str::to_owned),
            limit,
        };
        match self.query(body).await? {
            ResponseBody::Locks(page) => Ok(page),
            _ => Err(ClientError::Session(CoreError::UnexpectedAnswer)),
        }
    }

    /// Every lock whose name starts with `prefix`, page after page. Each
    /// page is a linearizable read; a lock that exists throughout is listed
    /// exactly once, one created or freed meanwhile may or may not be.
    ///
    /// # Errors
    /// As [`Self::list_locks`].
    pub async fn all_locks(&self, prefix: &str) -> Result<Vec<LockEntryView>, ClientError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self.list_locks(prefix, after.as_deref(), 0).await?;
            all.extend(page.locks);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// One page of up to `limit` live sessions with ids above `after`,
    /// with who opened them.
    ///
    /// # Errors
    /// As [`Self::list_locks`].
    pub async fn list_sessions(
        &self,
        after: Option<SessionId>,
        limit: u32,
    ) -> Result<SessionListView, ClientError> {
        match self
            .query(RequestBody::ListSessions { after, limit })
            .await?
        {
            ResponseBody::Sessions(page) => Ok(page),
            _ => Err(ClientError::Session(CoreError::UnexpectedAnswer)),
        }
    }

    /// Ends `session` as the expiry of its lease would (an operator's act):
    /// its locks are lost, into lock-delay where their acquirers asked for
    /// one.
    ///
    /// # Errors
    /// [`ClientError::Session`] with
    /// [`ProtoError::UnknownSession`](distlock_core::proto::ProtoError::UnknownSession)
    /// if it is not live (nothing changes); otherwise as
    /// [`Self::list_locks`].
    pub async fn revoke(&self, session: SessionId) -> Result<(), ClientError> {
        match self.query(RequestBody::RevokeSession { session }).await? {
            ResponseBody::Revoked { .. } => Ok(()),
            _ => Err(ClientError::Session(CoreError::UnexpectedAnswer)),
        }
    }

    async fn query(&self, body: RequestBody) -> Result<ResponseBody, ClientError> {
        self.read(|reply| Command::Query { body, reply }).await
    }
}
