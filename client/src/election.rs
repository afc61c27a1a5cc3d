//! Leader election (etcd's `Election`, Curator's `LeaderLatch`) on
//! sessions and locks: an election is an exclusive lock whose holder
//! leads with a value. [`Session::campaign`] waits to be elected and
//! gives a [`Leadership`] whose fencing token identifies its term of
//! office (a later leader's is higher); the leader
//! [`proclaims`](Leadership::proclaim) new values and
//! [`resigns`](Leadership::resign); anyone [observes](Session::observe)
//! who leads and with what value.
//!
//! Leadership lasts as long as the session: if it is lost, so is the
//! leadership, and the next campaigner in line is elected.

use super::driver::Command;
use super::{Client, ClientError, Guard, Session};
use distlock_core::client::ClientError as CoreError;
use distlock_core::locks::{FencingToken, LockError, Outcome, Wait};
use distlock_core::proto::{LeaderView, ProtoError, RequestBody, ResponseBody};
use std::time::Duration;
use tokio::sync::oneshot;

/// How often [`Observer::next`] reads the leader while it has not changed.
const OBSERVE_EVERY: Duration = Duration::from_millis(100);

/// This session's term of office as an election's leader. Dropping it
/// resigns in the background, as a dropped [`Guard`] releases.
#[derive(Debug)]
pub struct Leadership {
    guard: Guard,
}

impl Leadership {
    /// The election's name.
    #[must_use]
    pub fn election(&self) -> &str {
        self.guard.lock_name()
    }

    /// The term of office: the grant's fencing token.
    #[must_use]
    pub const fn token(&self) -> FencingToken {
        self.guard.token()
    }

    /// Replaces the value this leader leads with.
    ///
    /// # Errors
    /// [`ClientError::Session`] if this term of office is over (the session
    /// was lost) or the value is too long; [`ClientError::Closed`] if the
    /// driver stopped.
    pub async fn proclaim(&self, value: &str) -> Result<(), ClientError> {
        let (reply, rx) = oneshot::channel();
        self.guard.link.commands.send(Command::Proclaim {
            slot: self.guard.link.slot,
            election: self.election().to_owned(),
            token: self.token(),
            value: value.to_owned(),
            reply,
        })?;
        match rx.await.map_err(|_| self.guard.link.commands.closed())? {
            Ok(Outcome::Proclaimed) => Ok(()),
            Ok(_) => Err(ClientError::Session(CoreError::UnexpectedAnswer)),
            Err(e) => Err(ClientError::Session(e)),
        }
    }

    /// Resigns: the next campaigner in line is elected.
    ///
    /// # Errors
    /// As [`Guard::release`].
    pub async fn resign(self) -> Result<(), ClientError> {
        self.guard.release().await
    }
}

impl Session {
    /// Campaigns in `election` with `value` and waits until elected.
    ///
    /// # Errors
    /// [`ClientError::Session`] when the cluster refuses (a value over
    /// 4,096 bytes) or the session is lost; [`ClientError::Closed`] if the
    /// driver stopped.
    pub async fn campaign(&self, election: &str, value: &str) -> Result<Leadership, ClientError> {
        self.campaign_with(election, value, Wait::Forever).await
    }

    /// Campaigns, waiting as `wait` says.
    ///
    /// # Errors
    /// [`ClientError::NotGranted`] when another leads and the wait ran out;
    /// otherwise as [`Self::campaign`].
    pub async fn campaign_with(
        &self,
        election: &str,
        value: &str,
        wait: Wait,
    ) -> Result<Leadership, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.link.commands.send(Command::Campaign {
            slot: self.link.slot,
            election: election.to_owned(),
            value: value.to_owned(),
            wait,
            lock_delay: self.client().lock_delay,
            reply,
        })?;
        match rx.await.map_err(|_| self.link.commands.closed())? {
            Ok(Outcome::Granted { token }) => Ok(Leadership {
                guard: Guard {
                    lock: election.to_owned(),
                    token,
                    link: std::sync::Arc::clone(&self.link),
                    released: false,
                },
            }),
            Ok(_) => Err(ClientError::Session(CoreError::UnexpectedAnswer)),
            Err(CoreError::Server(ProtoError::Lock(
                LockError::Busy { .. } | LockError::TimedOut | LockError::Cancelled,
            ))) => Err(ClientError::NotGranted),
            Err(e) => Err(ClientError::Session(e)),
        }
    }

    /// The leader of `election` now (a linearizable read): its session,
    /// term of office, value and owner; `None` when nobody leads.
    ///
    /// # Errors
    /// [`ClientError::Session`] when the cluster refuses;
    /// [`ClientError::Closed`] if the driver stopped.
    pub async fn leader(&self, election: &str) -> Result<Option<LeaderView>, ClientError> {
        self.client().leader(election).await
    }

    /// Follows `election`'s leader: [`Observer::next`] gives the leader
    /// each time it changes (another session, term of office or value).
    #[must_use]
    pub fn observe(&self, election: &str) -> Observer<'_> {
        Observer {
            session: self,
            election: election.to_owned(),
            last: None,
        }
    }
}

impl Client {
    /// The leader of `election` now (a linearizable read): its session,
    /// term of office, value and owner; `None` when nobody leads. Needs no
    /// session.
    ///
    /// # Errors
    /// [`ClientError::Session`] when the cluster refuses;
    /// [`ClientError::Closed`] if the driver stopped.
    pub async fn leader(&self, election: &str) -> Result<Option<LeaderView>, ClientError> {
        let body = RequestBody::Leader {
            election: election.to_owned(),
        };
        match self.read(|reply| Command::Query { body, reply }).await? {
            ResponseBody::Leader(view) => Ok(view),
            _ => Err(ClientError::Session(CoreError::UnexpectedAnswer)),
        }
    }
}

/// The successive leaders of an election, from [`Session::observe`].
#[derive(Debug)]
pub struct Observer<'a> {
    session: &'a Session,
    election: String,
    /// What was given last; `None` before the first.
    last: Option<Option<LeaderView>>,
}

impl Observer<'_> {
    /// The leader once it differs from the one given last (the first call
    /// gives the current one at once); `None` inside means nobody leads.
    /// Each value is a linearizable read; a change that is undone between
    /// two reads (100 ms apart) may go unseen, a term of office that
    /// lasts is not.
    ///
    /// # Errors
    /// As [`Session::leader`].
    pub async fn next(&mut self) -> Result<Option<LeaderView>, ClientError> {
        loop {
            let now = self.session.leader(&self.election).await?;
            if self.last.as_ref() != Some(&now) {
                self.last = Some(now.clone());
                return Ok(now);
            }
            tokio::time::sleep(OBSERVE_EVERY).await;
        }
    }
}
