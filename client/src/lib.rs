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
mod commands;
mod driver;
mod election;
mod fenced;
mod link;
mod listing;
mod reads;
mod session;
pub mod stream;
mod watch;

pub use election::{Leadership, Observer};
pub use fenced::{FencedResource, StaleToken};

// The README's examples are compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
pub use session::{Guard, Session};
pub use watch::WatchStream;

use commands::Commands;
pub use commands::Refusal;
use distlock_core::client::{ClientError as CoreError, Config};
pub use distlock_transport_tcp::HostPort;
pub use distlock_transport_tcp::tls::{ClientTls, PemSource, TlsError};
use driver::{Command, Driver, DriverConfig};
use link::dial;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
// The core's types that this API takes and returns, so that a user needs
// no other crate to name them.
pub use distlock_core::client::{
    ClientError as SessionError, Config as SessionConfig, LostReason, WatchUpdate,
};
pub use distlock_core::ids::LogIndex;
pub use distlock_core::locks::SessionMeta;
pub use distlock_core::locks::{FencingToken, LockError, Mode, Outcome, SessionId, Wait};
pub use distlock_core::proto::{
    HolderEntryView, LeaderView, LockEntryView, LockListView, SessionEntryView, SessionListView,
    WaiterEntryView,
};
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
    /// The cluster turned this client away for good (it wants TLS, or a
    /// credential, cluster id or protocol version it accepts): the client
    /// has stopped, and every call says why.
    #[error("refused by the server: {0}")]
    Refused(#[from] Refusal),
}

impl ClientError {
    /// Whether this is a connection whose TLS handshake failed.
    fn is_tls_handshake(&self) -> bool {
        matches!(self, Self::Connect(e)
            if matches!(e.get_ref().and_then(|i| i.downcast_ref::<TlsError>()),
                Some(TlsError::Handshake { .. })))
    }
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
///     // The rest as `ClientOptions::default()` has them (TLS off).
///     ..Default::default()
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

impl ClientOptions {
    /// These options, presenting `token` (a principal's bearer token) in
    /// every connection's `Hello`: servers started with `--auth-file`
    /// refuse connections without one (`ProtoError::Unauthorized`).
    #[must_use]
    pub fn with_auth_token(mut self, token: impl Into<String>) -> Self {
        self.session.auth = Some(distlock_core::proto::AuthToken::new(token));
        self
    }
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

/// A connection to a distlock cluster, driven by a background task, and
/// the sessions, reads and watches that share it.
///
/// Cheap to clone; the driver stops once the client and everything made
/// from it (sessions, guards, watches) are dropped, after closing the
/// sessions whose handles were dropped (for up to 5 s).
#[derive(Clone, Debug)]
pub struct Client {
    commands: Commands,
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
    /// The last attempt's error once `patience` has passed; at once, a
    /// failed TLS handshake (a certificate this client does not trust, or
    /// that does not name the server): a server still starting refuses
    /// the connection instead, so waiting would not help.
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
                Err(e) if tokio::time::Instant::now() >= deadline || e.is_tls_handshake() => {
                    return Err(e);
                }
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
        let (commands, commands_rx, refusal) = Commands::new();
        let driver = Driver::new(
            DriverConfig {
                session: options.session,
                servers,
                next_server: i + 1,
                dial_timeout: options.connect_timeout,
                transport: options.transport,
                tls: options.tls,
                // Drawn at the edge, as the nonces are: the core only
                // spreads backoffs with it.
                jitter_seed: jitter_seed(),
            },
            commands_rx,
            refusal,
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
        self.commands.send(Command::Open {
            slot,
            ttl,
            nonce: random_nonce(),
            reply,
            lost: lost_tx,
            lease: lease_tx,
        })?;
        let id = rx.await.map_err(|_| self.commands.closed())??;
        Ok(Session::new(id, slot, self.clone(), lost, lease))
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
        self.commands.send(Command::Watch {
            lock: lock.to_owned(),
            id,
            updates,
        })?;
        Ok(WatchStream::new(
            lock.to_owned(),
            id,
            rx,
            self.commands.clone(),
        ))
    }
}

/// A seed for the reconnect backoff's jitter: the OS-seeded keys of
/// [`RandomState`] hashing the time. Unlike [`random_nonce`] it takes no
/// process-wide counter, so under the simulator (which seeds those keys and
/// the clock per run) a seed behaves the same alone as inside a sweep.
///
/// [`RandomState`]: std::collections::hash_map::RandomState
fn jitter_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(t);
    h.finish()
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
