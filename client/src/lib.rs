//! The Rust client of distlock, a distributed lock service with fencing
//! tokens and leases that never end early: a thin tokio driver of the
//! sans-IO [`ClientSession`](distlock_core::client::ClientSession). It
//! depends on the core and the transports only, not on the server.
//!
//! [`Client::connect`] dials the first reachable configured server and
//! spawns one driver task that owns the connection, the timer and the
//! session state machines. The session logic (keepalives, the local
//! lease, exactly-once retries, failover between members, watches) is all
//! the core's; the driver only carries frames, timer expiries and
//! connection changes to it, dials where it asks
//! ([`ClientEvent::Reconnect`](distlock_core::client::ClientEvent::Reconnect))
//! after a jittered, doubling backoff, and hands each answer to the caller
//! that waits for it.
//!
//! A [`Client`] holds any number of sessions ([`Client::open_session`]),
//! all on its one connection, each with its own lease and keepalives. A
//! [`Session`] takes locks as [`Guard`]s whose [`FencingToken`] the
//! protected resource checks — with a [`FencedResource`], for example, or
//! by asking the cluster with [`Client::check_token`] — so that a holder
//! that lost its lock (paused past its lease, say) cannot overwrite the
//! next holder's work. [`Client::lock_status`] reads a lock's holders and
//! waiters, and [`Client::watch`] streams its events.
//!
//! Dropping things does what one would expect, in the background (drop
//! never blocks): a dropped [`Guard`] releases its lock; a dropped
//! `lock()` future that was waiting leaves the lock's queue; a dropped
//! [`WatchStream`] stops the watch; a [`Session`] whose handle and guards
//! are all dropped is closed.
//!
//! ```no_run
//! use distlock_client::{Client, ClientOptions, FencedResource, HostPort};
//! use std::time::Duration;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! // Any member will do: the client learns the others from the cluster.
//! let servers: Vec<HostPort> = vec!["node1.example.com:7001".parse()?, "[::1]:7001".parse()?];
//! let client = Client::connect(servers, ClientOptions::default()).await?;
//! let session = client.open_session(Duration::from_secs(10)).await?;
//!
//! let storage = FencedResource::new();
//! let guard = session.lock("orders-db").await?;
//! // Every write to the protected resource carries the token.
//! storage.check_and_record("orders-db", guard.token())?;
//! guard.release().await?;
//!
//! session.close().await?;
//! # Ok(())
//! # }
//! ```

pub mod admin;
mod driver;
mod fenced;
mod link;
mod reads;
mod watch;

pub use fenced::{FencedResource, StaleToken};

// The README's examples are compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
pub use watch::WatchStream;

use distlock_core::client::{ClientError as CoreError, Config};
pub use distlock_transport_tcp::HostPort;
use driver::{Command, Driver, DriverConfig, Slot};
use link::dial;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
// The core's types that this API takes and returns, so that a user needs
// no other crate to name them.
pub use distlock_core::client::{
    ClientError as SessionError, Config as SessionConfig, LostReason, WatchUpdate,
};
pub use distlock_core::ids::LogIndex;
pub use distlock_core::locks::{FencingToken, LockError, Mode, Outcome, SessionId, Wait};
pub use distlock_core::proto::{HolderView, LockEvent, LockStatusView, ProtoError, WaiterView};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch as state};

/// Why a client operation failed.
///
/// ```no_run
/// # async fn example(session: distlock_client::Session) -> Result<(), distlock_client::ClientError> {
/// use distlock_client::{ClientError, SessionError};
/// use std::time::Duration;
///
/// match session.lock_timeout("nightly-report", Duration::from_secs(5)).await {
///     Ok(guard) => guard.release().await?,
///     // Someone else held it for the whole 5 s.
///     Err(ClientError::NotGranted) => {}
///     // The session's lease ran out: stop using what it locked.
///     Err(ClientError::Session(SessionError::SessionLost)) => return Ok(()),
///     Err(other) => return Err(other),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No configured server accepted a connection.
    #[error("could not connect to any distlock server: {0}")]
    Connect(#[source] std::io::Error),
    /// The session refused or failed the operation (lost, closed, or a
    /// final error from the cluster).
    #[error(transparent)]
    Session(#[from] CoreError),
    /// The lock is held by others (a try or a timed wait gave up, or the
    /// wait was cancelled).
    #[error("the lock was not granted")]
    NotGranted,
    /// The client's driver has stopped.
    #[error("the client is closed")]
    Closed,
}

/// Settings of a [`Client`]: everything about reaching the cluster.
///
/// ```
/// use distlock_client::{ClientOptions, Transport};
/// use std::time::Duration;
///
/// let options = ClientOptions {
///     connect_timeout: Duration::from_millis(500),
///     // Every acquire asks that the lock stay unavailable for 10 s if its
///     // holder's session is lost.
///     lock_delay: Duration::from_secs(10),
///     transport: Transport::WebSocket,
///     session: distlock_client::SessionConfig {
///         backoff_max: Duration::from_secs(2),
///         ..Default::default()
///     },
/// };
/// # drop(options);
/// ```
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The session state machine's settings (timeouts, backoffs, cluster
    /// id, credentials).
    pub session: Config,
    /// How long one dial may take (default 1 s).
    pub connect_timeout: Duration,
    /// The lock-delay asked for with every acquire (default zero).
    pub lock_delay: Duration,
    /// How to reach the servers (default TCP). Over WebSocket the
    /// addresses are the servers' WebSocket addresses, and failover follows
    /// the members' WebSocket addresses.
    pub transport: Transport,
}

/// How a [`Client`] reaches the servers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// Length-prefixed frames over TCP (the servers' client addresses).
    #[default]
    Tcp,
    /// Binary WebSocket messages (the servers' WebSocket addresses): for
    /// edge services and networks that pass only HTTP.
    WebSocket,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            session: Config::default(),
            connect_timeout: Duration::from_secs(1),
            lock_delay: Duration::ZERO,
            transport: Transport::Tcp,
        }
    }
}

/// A connection to a distlock cluster, driven by a background task, and
/// the sessions, reads and watches that share it.
///
/// Cheap to clone; the driver stops once the client and everything made
/// from it (sessions, guards, watches) are dropped, after closing the
/// sessions whose handles were dropped (for up to 5 s).
#[derive(Clone, Debug)]
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    /// Numbers sessions and watches for the driver.
    next_id: Arc<AtomicU64>,
    lock_delay: Duration,
}

impl Client {
    /// [`Client::connect`], tried again every 100 ms until a server
    /// accepts or `patience` has passed: for callers that may start while
    /// the servers are still starting.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use distlock_client::{Client, ClientOptions, HostPort};
    /// use std::time::Duration;
    ///
    /// let servers: Vec<HostPort> = vec!["node1.example.com:7001".parse()?, "node2.example.com:7001".parse()?];
    /// let client = Client::connect_within(servers, ClientOptions::default(), Duration::from_secs(30)).await?;
    /// # drop(client);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The last attempt's error once `patience` has passed.
    pub async fn connect_within(
        servers: impl IntoIterator<Item = impl Into<HostPort>>,
        options: ClientOptions,
        patience: Duration,
    ) -> Result<Self, ClientError> {
        let servers: Vec<HostPort> = servers.into_iter().map(Into::into).collect();
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match Self::connect(servers.clone(), options.clone()).await {
                Ok(c) => return Ok(c),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Dials the configured servers in order until one accepts, then
    /// spawns the driver task (on the current tokio runtime). Later
    /// failovers go to every member the cluster names, and to `servers`
    /// when a member's address is unknown or fails. A server is a
    /// [`HostPort`] (`"node1.example.com:7001"`, `"[::1]:7001"`) or a
    /// `SocketAddr`; host names are resolved again on every dial.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use distlock_client::{Client, ClientOptions, HostPort};
    /// use std::net::SocketAddr;
    ///
    /// let name: HostPort = "node1.example.com:7001".parse()?;
    /// let by_name = Client::connect([name], ClientOptions::default()).await?;
    /// let addr: SocketAddr = "[::1]:7001".parse()?;
    /// let by_address = Client::connect([addr], ClientOptions::default()).await?;
    /// let parsed: HostPort = "10.0.0.1:7001".parse()?;
    /// let mixed = Client::connect(vec![parsed, HostPort::from(addr)], ClientOptions::default()).await?;
    /// # drop((by_name, by_address, mixed));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::Connect`] when no server accepts (or `servers` is
    /// empty).
    pub async fn connect(
        servers: impl IntoIterator<Item = impl Into<HostPort>>,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let servers: Vec<HostPort> = servers.into_iter().map(Into::into).collect();
        let mut last = std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no server addresses were given",
        );
        let mut first = None;
        for (i, addr) in servers.iter().enumerate() {
            match dial(addr.as_str(), options.connect_timeout, options.transport).await {
                Ok(stream) => {
                    first = Some((i, stream));
                    break;
                }
                Err(e) => last = e,
            }
        }
        let Some((i, stream)) = first else {
            return Err(ClientError::Connect(last));
        };
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let driver = Driver::new(
            DriverConfig {
                session: options.session,
                servers,
                next_server: i + 1,
                dial_timeout: options.connect_timeout,
                transport: options.transport,
                // Drawn at the edge, as the nonces are: the core only
                // spreads backoffs with it.
                jitter_seed: random_nonce() as u64,
            },
            commands_rx,
        );
        tokio::spawn(driver.run(stream));
        Ok(Self {
            commands,
            // 0 is the driver's own machine.
            next_id: Arc::new(AtomicU64::new(1)),
            lock_delay: options.lock_delay,
        })
    }

    /// [`Self::connect`] over WebSocket: `servers` are the servers'
    /// WebSocket addresses (`--ws-addr`). Same API, same failover.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use distlock_client::{Client, ClientOptions, HostPort};
    ///
    /// let ws: HostPort = "node1.example.com:7201".parse()?;
    /// let client = Client::connect_ws([ws], ClientOptions::default()).await?;
    /// # drop(client);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Self::connect`].
    pub async fn connect_ws(
        servers: impl IntoIterator<Item = impl Into<HostPort>>,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        Self::connect(
            servers,
            ClientOptions {
                transport: Transport::WebSocket,
                ..options
            },
        )
        .await
    }

    /// Opens a new session with a lease of `ttl` (the cluster may clamp
    /// it), with a fresh random nonce. A client may hold any number of
    /// sessions: each has its own lease, keepalives and locks, and all
    /// share the client's connection. Dropping the future before it is
    /// answered closes the session the cluster may have opened.
    ///
    /// ```no_run
    /// # async fn example(client: distlock_client::Client) -> Result<(), distlock_client::ClientError> {
    /// use std::time::Duration;
    ///
    /// // Two owners in one process: each holds its own locks.
    /// let ingest = client.open_session(Duration::from_secs(10)).await?;
    /// let report = client.open_session(Duration::from_secs(30)).await?;
    /// let a = ingest.lock("ingest").await?;
    /// let b = report.lock("report").await?;
    /// assert_ne!(ingest.id(), report.id());
    /// # drop((a, b));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::Session`] if the cluster refuses;
    /// [`ClientError::Closed`] if the driver stopped.
    pub async fn open_session(&self, ttl: Duration) -> Result<Session, ClientError> {
        let slot = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, rx) = oneshot::channel();
        let (lost_tx, lost) = state::channel(false);
        let (lease_tx, lease) = state::channel(None);
        self.commands
            .send(Command::Open {
                slot,
                ttl,
                nonce: random_nonce(),
                reply,
                lost: lost_tx,
                lease: lease_tx,
            })
            .map_err(|_| ClientError::Closed)?;
        let id = rx.await.map_err(|_| ClientError::Closed)??;
        Ok(Session {
            id,
            link: Arc::new(SessionLink {
                slot,
                commands: self.commands.clone(),
            }),
            client: self.clone(),
            lost,
            lease,
        })
    }

    /// Watches `lock`: its grants, releases and expiries as a
    /// [`WatchStream`], from the next one the connected server applies on.
    /// Needs no session; watching a lock nobody has taken yet is fine.
    ///
    /// ```no_run
    /// # async fn example(client: distlock_client::Client) -> Result<(), distlock_client::ClientError> {
    /// use distlock_client::{LockEvent, WatchUpdate};
    /// use futures_core::Stream;
    ///
    /// fn takes_a_stream(_: impl Stream<Item = WatchUpdate>) {}
    /// let events = client.watch("orders-db")?;
    /// takes_a_stream(events);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::Closed`] if the driver stopped.
    pub fn watch(&self, lock: &str) -> Result<WatchStream, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (updates, rx) = mpsc::unbounded_channel();
        self.commands
            .send(Command::Watch {
                lock: lock.to_owned(),
                id,
                updates,
            })
            .map_err(|_| ClientError::Closed)?;
        Ok(WatchStream::new(
            lock.to_owned(),
            id,
            rx,
            self.commands.clone(),
        ))
    }
}

/// What a session's handle and its guards share: when the last of them is
/// dropped, the driver closes the session in the background.
#[derive(Debug)]
struct SessionLink {
    slot: Slot,
    commands: mpsc::UnboundedSender<Command>,
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
    link: Arc<SessionLink>,
    client: Client,
    lost: state::Receiver<bool>,
    lease: state::Receiver<Option<tokio::time::Instant>>,
}

impl Session {
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
        self.link
            .commands
            .send(Command::Acquire {
                slot: self.link.slot,
                lock: lock.to_owned(),
                mode,
                wait,
                lock_delay: self.client.lock_delay,
                reply,
            })
            .map_err(|_| ClientError::Closed)?;
        let mut cancel = CancelOnDrop {
            link: &self.link,
            lock,
            armed: matches!(wait, Wait::Forever | Wait::For(1..)),
        };
        let answer = rx.await;
        cancel.armed = false;
        match answer.map_err(|_| ClientError::Closed)? {
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
        let (reply, rx) = oneshot::channel();
        self.link
            .commands
            .send(Command::Close {
                slot: self.link.slot,
                reply,
            })
            .map_err(|_| ClientError::Closed)?;
        match rx.await.map_err(|_| ClientError::Closed)? {
            Ok(Outcome::Closed) => Ok(()),
            Ok(_) => Err(ClientError::Session(CoreError::UnexpectedAnswer)),
            Err(e) => Err(ClientError::Session(e)),
        }
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
    lock: String,
    token: FencingToken,
    link: Arc<SessionLink>,
    released: bool,
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
        let (reply, rx) = oneshot::channel();
        self.link
            .commands
            .send(Command::Release {
                slot: self.link.slot,
                lock: self.lock.clone(),
                token: self.token,
                reply,
            })
            .map_err(|_| ClientError::Closed)?;
        match rx.await.map_err(|_| ClientError::Closed)? {
            Ok(Outcome::Released) => Ok(()),
            Ok(_) => Err(ClientError::Session(CoreError::UnexpectedAnswer)),
            Err(e) => Err(ClientError::Session(e)),
        }
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

/// A random 128-bit nonce: the OS-seeded keys of [`RandomState`] hashing
/// the time and a process-wide counter.
///
/// [`RandomState`]: std::collections::hash_map::RandomState
fn random_nonce() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(t);
        h.write_u64(n);
        h.write_u64(salt);
        h.finish()
    };
    (u128::from(half(1)) << 64) | u128::from(half(2))
}
