//! Linearizable reads for a session's holder or a protected resource:
//! whether a fencing token is still a current grant, and a lock's holders
//! and waiters. The leader answers both after a ReadIndex round, so a
//! deposed leader cannot answer them from stale state.

use super::driver::Command;
use super::{Client, ClientError, Session};
use distlock_core::client::ClientError as CoreError;
use distlock_core::locks::FencingToken;
use distlock_core::proto::{LockStatusView, ResponseBody};
use tokio::sync::oneshot;

impl Client {
    /// Whether `token` is a current grant of `lock` (Chubby's
    /// CheckSequencer): a resource that cannot remember the highest token
    /// it saw asks this before acting for a holder. Needs no session.
    ///
    /// ```no_run
    /// # async fn example(client: distlock_client::Client, token: distlock_client::FencingToken) -> Result<(), distlock_client::ClientError> {
    /// if !client.check_token("orders-db", token).await? {
    ///     // The writer's grant has ended: refuse its write.
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::Session`] when the cluster refuses or the session is
    /// lost; [`ClientError::Closed`] if the driver stopped.
    pub async fn check_token(&self, lock: &str, token: FencingToken) -> Result<bool, ClientError> {
        let answer = self
            .read(|reply| Command::CheckToken {
                lock: lock.to_owned(),
                token,
                reply,
            })
            .await?;
        match answer {
            ResponseBody::TokenValid(valid) => Ok(valid),
            _ => Err(ClientError::Session(CoreError::UnexpectedAnswer)),
        }
    }

    /// `lock`'s holders (with their tokens), waiters and lock-delay;
    /// `None` when it is free with nobody waiting. Needs no session.
    ///
    /// ```no_run
    /// # async fn example(client: distlock_client::Client) -> Result<(), distlock_client::ClientError> {
    /// if let Some(view) = client.lock_status("orders-db").await? {
    ///     for holder in &view.holders {
    ///         println!("held by session {} with token {}", holder.session, holder.token);
    ///     }
    ///     println!("{} waiting", view.waiters.len());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Self::check_token`].
    pub async fn lock_status(&self, lock: &str) -> Result<Option<LockStatusView>, ClientError> {
        let answer = self
            .read(|reply| Command::LockStatus {
                lock: lock.to_owned(),
                reply,
            })
            .await?;
        match answer {
            ResponseBody::LockStatus(view) => Ok(view),
            _ => Err(ClientError::Session(CoreError::UnexpectedAnswer)),
        }
    }

    pub(super) async fn read(
        &self,
        command: impl FnOnce(super::driver::ReadReply) -> Command,
    ) -> Result<ResponseBody, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(command(reply))?;
        rx.await
            .map_err(|_| self.commands.closed())?
            .map_err(ClientError::Session)
    }
}

impl Session {
    /// [`Client::check_token`] on this session's client.
    ///
    /// # Errors
    /// As [`Client::check_token`].
    pub async fn check_token(&self, lock: &str, token: FencingToken) -> Result<bool, ClientError> {
        self.client().check_token(lock, token).await
    }

    /// [`Client::lock_status`] on this session's client.
    ///
    /// # Errors
    /// As [`Client::lock_status`].
    pub async fn lock_status(&self, lock: &str) -> Result<Option<LockStatusView>, ClientError> {
        self.client().lock_status(lock).await
    }
}
