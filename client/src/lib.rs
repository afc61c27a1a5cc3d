//! The Rust client of distlock, a distributed lock service with fencing
//! tokens and leases that never end early: a thin tokio driver of the
//! sans-IO [`ClientSession`](distlock_core::client::ClientSession). It
//! depends on the core and the transports only, not on the server.
//!
//! [`Client::connect`] dials the first reachable configured server and
//! spawns one driver task that owns the session state machine, the TCP
//! connection and the timer. The session logic (keepalives, the local
//! lease, exactly-once retries, failover between members) is all the
//! core's; the driver only carries frames, timer expiries and connection
//! changes to it, dials where it asks
//! ([`ClientEvent::Reconnect`](distlock_core::client::ClientEvent::Reconnect)), and
//! hands each answer to the caller that waits for it.
//!
//! A [`Client`] holds at most one session ([`Client::open_session`]); open
//! more sessions with more clients. A [`Session`] takes locks as
//! [`Guard`]s whose [`FencingToken`] the protected resource checks — with
//! a [`FencedResource`], for example, or by asking the cluster with
//! [`Session::check_token`] — so that a holder that lost its lock (paused
//! past its lease, say) cannot overwrite the next holder's work.
//! [`Session::lock_status`] reads a lock's holders and waiters.
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
mod reads;
pub mod stream;

pub use fenced::{FencedResource, StaleToken};

use distlock_core::client::{ClientError as CoreError, ClientSession, Config};
pub use distlock_transport_tcp::HostPort;
pub use distlock_transport_tcp::tls::{ClientTls, PemSource, TlsError};
use driver::{Command, Driver, dial};
use std::future::Future;
// The core's types that this API takes and returns, so that a user needs
// no other crate to name them.
pub use distlock_core::client::{ClientError as SessionError, LostReason};
pub use distlock_core::locks::{FencingToken, LockError, Mode, Outcome, SessionId, Wait};
pub use distlock_core::proto::{HolderView, LockStatusView, ProtoError, WaiterView};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Why a client operation failed.
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

/// Settings of a [`Client`].
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
    /// TLS for every connection (default `None`: plain TCP): the CA to
    /// trust, and a client certificate if the servers want one
    /// ([`ClientTls::load`]). Over WebSocket this is `wss`.
    pub tls: Option<ClientTls>,
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
            tls: None,
        }
    }
}

/// A connection to a distlock cluster, driven by a background task.
///
/// Cheap to clone; the driver stops once the client, its session and every
/// guard are dropped.
#[derive(Clone, Debug)]
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    lost: watch::Receiver<bool>,
    lease: watch::Receiver<Option<tokio::time::Instant>>,
    lock_delay: Duration,
}

impl Client {
    /// [`Client::connect`], tried again every 100 ms until a server
    /// accepts or `patience` has passed: for callers that may start while
    /// the servers are still starting.
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
            match dial(
                addr.as_str(),
                options.connect_timeout,
                options.transport,
                options.tls.as_ref(),
            )
            .await
            {
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
        let (lost_tx, lost) = watch::channel(false);
        let (lease_tx, lease) = watch::channel(None);
        let driver = Driver::new(
            ClientSession::new(options.session),
            servers,
            i + 1,
            options.connect_timeout,
            options.transport,
            options.tls,
            commands_rx,
            lost_tx,
            lease_tx,
        );
        tokio::spawn(driver.run(stream));
        Ok(Self {
            commands,
            lost,
            lease,
            lock_delay: options.lock_delay,
        })
    }

    /// [`Self::connect`] over WebSocket: `servers` are the servers'
    /// WebSocket addresses (`--ws-addr`). Same API, same failover.
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

    /// Opens this client's session with a lease of `ttl` (the cluster may
    /// clamp it), with a fresh random nonce.
    ///
    /// # Errors
    /// [`ClientError::Session`] if the cluster refuses, if this client has
    /// a session already, or once it was lost or closed;
    /// [`ClientError::Closed`] if the driver stopped.
    pub async fn open_session(&self, ttl: Duration) -> Result<Session, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Open {
                ttl,
                nonce: random_nonce(),
                reply,
            })
            .map_err(|_| ClientError::Closed)?;
        let id = rx.await.map_err(|_| ClientError::Closed)??;
        Ok(Session {
            id,
            client: self.clone(),
        })
    }
}

/// An open session: the owner of locks. Its locks are released when it is
/// closed, or by the cluster when its lease runs out.
#[derive(Debug)]
pub struct Session {
    id: SessionId,
    client: Client,
}

impl Session {
    /// The session's id.
    #[must_use]
    pub const fn id(&self) -> SessionId {
        self.id
    }

    /// Takes `lock` exclusively, waiting for as long as it takes.
    ///
    /// # Errors
    /// [`ClientError::Session`] when the session is lost or the cluster
    /// refuses; [`ClientError::NotGranted`] if the wait is cancelled.
    pub async fn lock(&self, lock: &str) -> Result<Guard, ClientError> {
        self.lock_with(lock, Mode::Exclusive, Wait::Forever).await
    }

    /// Takes `lock` exclusively if it is free now; `None` if it is held.
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
    /// # Errors
    /// [`ClientError::NotGranted`] if the wait times out; otherwise as
    /// [`Self::lock`].
    pub async fn lock_timeout(&self, lock: &str, timeout: Duration) -> Result<Guard, ClientError> {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.lock_with(lock, Mode::Exclusive, Wait::For(ms)).await
    }

    /// Takes `lock` in `mode`, waiting as `wait` says.
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
        self.client
            .commands
            .send(Command::Acquire {
                lock: lock.to_owned(),
                mode,
                wait,
                lock_delay: self.client.lock_delay,
                reply,
            })
            .map_err(|_| ClientError::Closed)?;
        match rx.await.map_err(|_| ClientError::Closed)? {
            Ok(Outcome::Granted { token }) => Ok(Guard {
                lock: lock.to_owned(),
                token,
                commands: self.client.commands.clone(),
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
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.client.lost.clone();
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
        *self.client.lease.borrow()
    }

    /// Whether the session's local lease still runs now: a holder should
    /// act on a guard only while this holds (and present its token).
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
        *self.client.lost.borrow()
    }

    /// Closes the session, releasing every lock it holds.
    ///
    /// # Errors
    /// [`ClientError::Session`] if the session is lost already or the
    /// cluster refuses; [`ClientError::Closed`] if the driver stopped.
    pub async fn close(self) -> Result<(), ClientError> {
        let (reply, rx) = oneshot::channel();
        self.client
            .commands
            .send(Command::Close { reply })
            .map_err(|_| ClientError::Closed)?;
        match rx.await.map_err(|_| ClientError::Closed)? {
            Ok(Outcome::Closed) => Ok(()),
            Ok(_) => Err(ClientError::Session(CoreError::UnexpectedAnswer)),
            Err(e) => Err(ClientError::Session(e)),
        }
    }
}

/// A granted lock. Release it with [`Guard::release`]; a guard dropped
/// unreleased asks for the release in the background (without waiting for
/// the answer).
#[derive(Debug)]
pub struct Guard {
    lock: String,
    token: FencingToken,
    commands: mpsc::UnboundedSender<Command>,
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
        self.commands
            .send(Command::Release {
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
            let _ = self.commands.send(Command::Release {
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
