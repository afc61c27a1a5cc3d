//! [`Session`]: an owner of locks on a [`Client`]'s connection, and the
//! [`Guard`]s of the locks it holds. Both release in the background when
//! dropped: a guard its lock, the last of a session's handle and guards
//! the session itself.

use super::driver::{Command, OpReply, Slot};
use super::{Client, ClientError, CoreError, WatchStream};
use crate::commands::Commands;
use distlock_core::locks::{FencingToken, LockError, Mode, Outcome, SessionId, Wait};
use distlock_core::proto::ProtoError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch as state};

/// What a session's handle and its guards share: when the last of them is
/// dropped, the driver closes the session in the background.
#[derive(Debug)]
pub(super) struct SessionLink {
    pub(super) slot: Slot,
    pub(super) commands: Commands,
}

impl SessionLink {
    /// Sends the command `make` builds around the reply channel, and
    /// waits for its answer: `expected`, or the error.
    async fn op(
        &self,
        make: impl FnOnce(OpReply) -> Command,
        expected: Outcome,
    ) -> Result<(), ClientError> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(make(reply))?;
        match rx.await.map_err(|_| self.commands.closed())? {
            Ok(outcome) if outcome == expected => Ok(()),
            Ok(_) => Err(ClientError::Session(CoreError::UnexpectedAnswer)),
            Err(e) => Err(ClientError::Session(e)),
        }
    }
}

impl Drop for SessionLink {
    fn drop(&mut self) {
        let _ = self
            .commands
            .send(Command::SessionDropped { slot: self.slot });
    }
}

/// Withdraws a waiting acquire whose caller stopped waiting (dropped the
/// future), so that the lock's queue does not keep it.
struct CancelOnDrop<'a> {
    link: &'a SessionLink,
    lock: &'a str,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.link.commands.send(Command::CancelWait {
                slot: self.link.slot,
                lock: self.lock.to_owned(),
            });
        }
    }
}

/// An open session: the owner of locks. Its locks are released when it is
/// closed, or by the cluster when its lease runs out. Once this handle and
/// every [`Guard`] of it are dropped, the session is closed in the
/// background (see [`Session::abandon`] to let it expire instead).
#[derive(Debug)]
pub struct Session {
    id: SessionId,
    pub(super) link: Arc<SessionLink>,
    client: Client,
    lost: state::Receiver<bool>,
    lease: state::Receiver<Option<tokio::time::Instant>>,
}

impl Session {
    pub(super) fn new(
        id: SessionId,
        slot: Slot,
        client: Client,
        lost: state::Receiver<bool>,
        lease: state::Receiver<Option<tokio::time::Instant>>,
    ) -> Self {
        Self {
            id,
            link: Arc::new(SessionLink {
                slot,
                commands: client.commands.clone(),
            }),
            client,
            lost,
            lease,
        }
    }

    /// The session's id.
    #[must_use]
    pub const fn id(&self) -> SessionId {
        self.id
    }

    /// Takes `lock` exclusively, waiting for as long as it takes
    /// (dropping the future withdraws the wait).
    ///
    /// ```no_run
    /// # async fn example(session: distlock_client::Session) -> Result<(), distlock_client::ClientError> {
    /// let guard = session.lock("orders-db").await?;
    /// println!("writing with token {}", guard.token());
    /// guard.release().await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::Session`] when the session is lost or the cluster
    /// refuses; [`ClientError::NotGranted`] if the wait is cancelled.
    pub async fn lock(&self, lock: &str) -> Result<Guard, ClientError> {
        self.lock_with(lock, Mode::Exclusive, Wait::Forever).await
    }

    /// Takes `lock` exclusively if it is free now; `None` if it is held.
    ///
    /// ```no_run
    /// # async fn example(session: distlock_client::Session) -> Result<(), distlock_client::ClientError> {
    /// match session.try_lock("cron/nightly").await? {
    ///     Some(guard) => guard.release().await?,
    ///     None => println!("another runner has it"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Self::lock`].
    pub async fn try_lock(&self, lock: &str) -> Result<Option<Guard>, ClientError> {
        match self.lock_with(lock, Mode::Exclusive, Wait::Try).await {
            Ok(g) => Ok(Some(g)),
            Err(ClientError::NotGranted) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Takes `lock` exclusively, waiting at most `timeout` (in whole
    /// milliseconds).
    ///
    /// ```no_run
    /// # async fn example(session: distlock_client::Session) -> Result<(), distlock_client::ClientError> {
    /// use std::time::Duration;
    /// let guard = session.lock_timeout("orders-db", Duration::from_secs(30)).await?;
    /// # drop(guard);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::NotGranted`] if the wait times out; otherwise as
    /// [`Self::lock`].
    pub async fn lock_timeout(&self, lock: &str, timeout: Duration) -> Result<Guard, ClientError> {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.lock_with(lock, Mode::Exclusive, Wait::For(ms)).await
    }

    /// Takes `lock` in `mode`, waiting as `wait` says.
    ///
    /// Dropping the future while it waits withdraws the wait from the
    /// lock's queue (in the background), so that the next in line gets the
    /// lock when it is released; a grant that crosses the withdrawal is
    /// released at once.
    ///
    /// ```no_run
    /// # async fn example(session: distlock_client::Session) -> Result<(), distlock_client::ClientError> {
    /// use distlock_client::{Mode, Wait};
    /// use std::time::Duration;
    ///
    /// // One of three permits, waiting up to 5 s...
    /// let permit = session.lock_with("encoders", Mode::Semaphore(3), Wait::For(5_000)).await?;
    /// permit.release().await?;
    /// // ...or waiting for ever, but giving up from outside: the wait
    /// // leaves the queue when the future is dropped.
    /// let gave_up = tokio::time::timeout(
    ///     Duration::from_secs(1),
    ///     session.lock_with("reports", Mode::Shared, Wait::Forever),
    /// )
    /// .await;
    /// # drop(gave_up);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::NotGranted`] when the lock is busy, the wait timed
    /// out or was cancelled; [`ClientError::Session`] for every other
    /// refusal and when the session is lost; [`ClientError::Closed`] if the
    /// driver stopped.
    pub async fn lock_with(
        &self,
        lock: &str,
        mode: Mode,
        wait: Wait,
    ) -> Result<Guard, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.link.commands.send(Command::Acquire {
            slot: self.link.slot,
            lock: lock.to_owned(),
            mode,
            wait,
            lock_delay: self.client.lock_delay,
            reply,
        })?;
        let mut cancel = CancelOnDrop {
            link: &self.link,
            lock,
            armed: matches!(wait, Wait::Forever | Wait::For(1..)),
        };
        let answer = rx.await;
        cancel.armed = false;
        match answer.map_err(|_| self.link.commands.closed())? {
            Ok(Outcome::Granted { token }) => Ok(Guard {
                lock: lock.to_owned(),
                token,
                link: Arc::clone(&self.link),
                released: false,
            }),
            Ok(_) => Err(ClientError::Session(CoreError::UnexpectedAnswer)),
            Err(CoreError::Server(ProtoError::Lock(
                LockError::Busy { .. } | LockError::TimedOut | LockError::Cancelled,
            ))) => Err(ClientError::NotGranted),
            Err(e) => Err(ClientError::Session(e)),
        }
    }

    /// Resolves once the session is lost (its lease ran out before a
    /// keepalive was acknowledged, or the cluster ended it) or the driver
    /// stopped. From then on, no guard of it protects anything.
    ///
    /// ```no_run
    /// # async fn example(session: distlock_client::Session) -> Result<(), distlock_client::ClientError> {
    /// # async fn do_the_work(_: distlock_client::FencingToken) {}
    /// let guard = session.lock("orders-db").await?;
    /// tokio::select! {
    ///     () = do_the_work(guard.token()) => guard.release().await?,
    ///     // Stop at once: another holder may have the lock already.
    ///     () = session.lost() => eprintln!("lost the session; stopped"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.lost.clone();
        async move {
            let _ = rx.wait_for(|lost| *lost).await;
        }
    }

    /// When the session's local lease runs out, as of the last acknowledged
    /// keepalive: until then the cluster cannot have expired the session
    /// (its lease counts from the keepalive's *send* time, shortened for
    /// clock drift). `None` once the session is lost or closed.
    #[must_use]
    pub fn lease_deadline(&self) -> Option<tokio::time::Instant> {
        *self.lease.borrow()
    }

    /// Whether the session's local lease still runs now: a holder should
    /// act on a guard only while this holds (and present its token).
    ///
    /// ```no_run
    /// # fn example(session: &distlock_client::Session, guard: &distlock_client::Guard) {
    /// if session.is_valid() {
    ///     // write, presenting guard.token()
    /// }
    /// // When the lease runs out unless a keepalive is acknowledged first:
    /// let _deadline = session.lease_deadline();
    /// # }
    /// ```
    #[must_use]
    pub fn is_valid(&self) -> bool {
        !self.is_lost()
            && self
                .lease_deadline()
                .is_some_and(|d| tokio::time::Instant::now() < d)
    }

    /// Whether the session is known to be lost.
    #[must_use]
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// The client this session belongs to.
    #[must_use]
    pub const fn client(&self) -> &Client {
        &self.client
    }

    /// Watches `lock`, as [`Client::watch`].
    ///
    /// # Errors
    /// As [`Client::watch`].
    pub fn watch(&self, lock: &str) -> Result<WatchStream, ClientError> {
        self.client.watch(lock)
    }

    /// Stops keeping the session alive without closing it: the cluster
    /// expires it once its lease runs out (releasing its locks then, and
    /// applying their lock-delays), as if this process had died. Guards of
    /// it can no longer be released.
    ///
    /// ```no_run
    /// # async fn example(session: distlock_client::Session) {
    /// session.abandon();
    /// # }
    /// ```
    pub fn abandon(self) {
        let _ = self.link.commands.send(Command::Abandon {
            slot: self.link.slot,
        });
    }

    /// Closes the session, releasing every lock it holds.
    ///
    /// ```no_run
    /// # async fn example(client: distlock_client::Client) -> Result<(), distlock_client::ClientError> {
    /// use std::time::Duration;
    /// let session = client.open_session(Duration::from_secs(10)).await?;
    /// let _held = session.lock("a").await?;
    /// session.close().await?; // "a" is free again
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::Session`] if the session is lost already or the
    /// cluster refuses; [`ClientError::Closed`] if the driver stopped.
    pub async fn close(self) -> Result<(), ClientError> {
        let slot = self.link.slot;
        self.link
            .op(|reply| Command::Close { slot, reply }, Outcome::Closed)
            .await
    }
}

/// A granted lock. Release it with [`Guard::release`]; a guard dropped
/// unreleased asks for the release in the background (without blocking or
/// waiting for the answer). A guard keeps its session open.
///
/// ```no_run
/// # async fn example(session: distlock_client::Session) -> Result<(), distlock_client::ClientError> {
/// {
///     let guard = session.lock("orders-db").await?;
///     assert_eq!(guard.lock_name(), "orders-db");
///     // ... work, presenting guard.token() ...
/// } // dropped: released in the background
/// let again = session.lock("orders-db").await?;
/// again.release().await?; // released, and the answer awaited
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Guard {
    pub(super) lock: String,
    pub(super) token: FencingToken,
    pub(super) link: Arc<SessionLink>,
    pub(super) released: bool,
}

impl Guard {
    /// The lock's name.
    #[must_use]
    pub fn lock_name(&self) -> &str {
        &self.lock
    }

    /// The grant's fencing token: present it to the protected resource
    /// with every write.
    #[must_use]
    pub const fn token(&self) -> FencingToken {
        self.token
    }

    /// Releases the lock and waits for the cluster's answer.
    ///
    /// # Errors
    /// [`ClientError::Session`] if the session is lost (the lock is gone
    /// anyway) or the cluster refuses; [`ClientError::Closed`] if the
    /// driver stopped.
    pub async fn release(mut self) -> Result<(), ClientError> {
        self.released = true;
        let (slot, lock, token) = (self.link.slot, self.lock.clone(), self.token);
        let release = |reply| Command::Release {
            slot,
            lock,
            token,
            reply,
        };
        self.link.op(release, Outcome::Released).await
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.released {
            let (reply, _) = oneshot::channel();
            let _ = self.link.commands.send(Command::Release {
                slot: self.link.slot,
                lock: std::mem::take(&mut self.lock),
                token: self.token,
                reply,
            });
        }
    }
}
