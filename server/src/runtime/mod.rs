//! The node runtime: one task owns the core [`Node`] and drives it; a
//! storage task group-commits the leader's writes (many `Persist` requests,
//! one fsync) while the node task goes on serving, and a server that does
//! not lead writes and syncs on the node task itself; one task per peer
//! dials it and streams frames from a bounded queue; one pair of tasks per
//! client connection only decodes and encodes. All IO goes through the
//! workspace `tokio` (madsim's under simulation).

pub mod busy_poll;
mod client_gate;
mod connections;
pub mod force_new_cluster;
mod peer_admission;
mod peer_links;
mod service_manager;
mod storage_task;

use crate::auth::{AuthConfig, AuthHandle};
use crate::clock::Clock;
use crate::config::{ServerConfig, WsConfig};
use crate::metrics::http::MetricsConfig;
use crate::metrics::{Metrics, Publisher};
use crate::storage::{
    DataDir, DataDirError, FileStorage, FileStorageOptions, Storage, StorageError,
};
use crate::tls::ServerTlsSet;
use client_gate::Gate;
use connections::{accept_clients, accept_peers, accept_ws_clients};
use distlock_core::ids::NodeId;
use distlock_core::locks::{Command, LockState};
use distlock_core::node::{ConnId, Node, NodeAction, NodeConfig};
use distlock_core::proto::{ClientFrame, ClusterId, MemberInfo, PeerFrame, ServerFrame};
use distlock_core::raft::{
    MemberAddrs, Membership, MessageBody, Persist, PersistSeq, RestoreError,
};
use distlock_transport_ws::{DASHBOARD_HTML, HostPolicy, OriginPolicy, WsServerConfig};
pub use peer_links::PeerChaos;
use peer_links::PeerLinks;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use storage_task::PersistRoute;
use tokio::sync::mpsc;

/// What the connection tasks hand to the node task.
#[derive(Debug)]
pub(crate) enum Input {
    Peer(NodeId, PeerFrame),
    ClientOpened(
        ConnId,
        mpsc::Sender<ServerFrame>,
        distlock_core::auth::Access,
    ),
    Client(ConnId, ClientFrame),
    ClientClosed(ConnId),
}

/// How often the auth file is looked at for changes.
const AUTH_FILE_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Says at start whether clients must authenticate, so that an operator
/// never runs an open server without knowing it.
fn announce_auth(auth: &AuthHandle, cfg: &AuthConfig) {
    match auth.current() {
        Some(a) => {
            tracing::info!(
                principals = a.principal_count(),
                peer_secret = a.peer_token().is_some(),
                "authentication on: clients must present a token or certificate of the auth file"
            );
            if a.peer_token().is_none() {
                tracing::warn!(
                    "the auth file sets no peer_secret: any host that reaches the peer port can claim to be a member"
                );
            }
        }
        None => tracing::warn!(
            remote_admin = cfg.allow_remote_admin,
            "authentication off (no --auth-file): any client that reaches the client ports may take and read every lock{}",
            if cfg.allow_remote_admin {
                ", change the membership and take snapshots"
            } else {
                "; only clients on this host may change the membership or take snapshots"
            }
        ),
    }
}

/// Why a server stopped.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Storage failed (an fsync error is final: the server stops rather
    /// than acknowledge anything it may not have written).
    #[error("storage failed, stopping: {0}")]
    Storage(#[from] StorageError),
    /// The data directory cannot be claimed.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The stored state cannot be a Raft server's.
    #[error("cannot start from the stored state: {0}")]
    Restore(#[from] RestoreError),
    /// `--force-new-cluster` could not be carried out, or was given again
    /// too late.
    #[error(transparent)]
    ForceNewCluster(#[from] force_new_cluster::ForceNewClusterError),
    /// The auth file cannot be used.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthFileError),
    /// A listening address could not be bound.
    #[error("cannot listen on {addr}: {source} (is another server using that address?)")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// How many queued frames a peer or client link holds before dropping
/// (peers) or closing (clients): a slow receiver must not stall the node.
const LINK_QUEUE: usize = 4096;

/// The longest a graceful shutdown waits for the leadership transfer.
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(3);
/// How long a draining server keeps answering `ShuttingDown` so clients
/// learn to move on, once it no longer leads.
const DRAIN_SETTLE: std::time::Duration = std::time::Duration::from_millis(300);

/// The store of `cfg`'s data directory, with its fsync policy.
///
/// # Errors
/// When the directory cannot be created.
pub fn open_storage(cfg: &ServerConfig) -> Result<FileStorage<Command>, RuntimeError> {
    let opts = FileStorageOptions {
        fsync: cfg.fsync,
        ..FileStorageOptions::default()
    };
    Ok(FileStorage::open(&cfg.data_dir, opts)?)
}

/// What a server runs on besides its configuration: the clock, the store,
/// the WebSocket endpoint and, in simulations, a lossy network between
/// peers.
pub struct RuntimeEnv<S> {
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The store.
    pub storage: S,
    /// The WebSocket endpoint (none when its `addr` is `None`).
    pub ws: WsConfig,
    /// Loses, duplicates, delays and reorders peer frames (`None`: they go
    /// as sent).
    pub peer_chaos: Option<Arc<dyn PeerChaos>>,
    /// Other servers run on this server's threads (`distlock dev`): then a
    /// follower must not block them by syncing on its node task, and hands
    /// every write to its storage thread, as a leader does.
    pub shares_thread: bool,
    /// The data directory's claim, held until the server stops (`None`
    /// for a store that is not a directory, such as a simulated disk).
    pub claim: Option<DataDir>,
    /// TLS for each listener (default: none, plain TCP everywhere).
    pub tls: ServerTlsSet,
    /// The metrics, health and readiness endpoint (none when its `addr`
    /// is `None`; the metrics are kept all the same).
    pub metrics: MetricsConfig,
}

impl RuntimeEnv<FileStorage<Command>> {
    /// A server on the data directory that `cfg` names, claimed first (no
    /// second server may use it), with its WebSocket endpoint as `ws` says
    /// and the process's monotonic clock.
    ///
    /// # Errors
    /// An invalid configuration, a directory in use or of another node or
    /// cluster, or one that cannot be created.
    pub fn files(cfg: &ServerConfig, ws: WsConfig) -> Result<Self, RuntimeError> {
        cfg.validate()?;
        let claim = DataDir::claim(&cfg.data_dir, &cfg.cluster_id, cfg.id.0)?;
        let storage = open_storage(cfg)?;
        let mut env = Self::with_storage(Arc::new(crate::clock::MonotonicClock::new()), storage);
        env.ws = ws;
        env.claim = Some(claim);
        Ok(env)
    }
}

impl<S> RuntimeEnv<S> {
    /// A server on `storage`, timed by `clock`, with no WebSocket
    /// endpoint, peer frames sent as they are, and threads of its own.
    pub fn with_storage(clock: Arc<dyn Clock>, storage: S) -> Self {
        Self {
            clock,
            storage,
            ws: WsConfig::default(),
            peer_chaos: None,
            shares_thread: false,
            claim: None,
            tls: ServerTlsSet::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// Runs one server until a graceful shutdown completes or storage fails:
/// the one entry point, for `distlock serve`, `distlock dev` and the
/// simulator alike. When `shutdown` completes the server refuses new
/// requests, hands leadership to the most up-to-date voter if it leads,
/// and returns within a few seconds.
///
/// ```no_run
/// use distlock_server::config::{ServerConfig, WsConfig};
/// use distlock_server::runtime::{RuntimeEnv, run};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// // A single-server cluster on the default addresses, data in ./data,
/// // until `stop` completes (a signal handler, a test's end, ...).
/// let cfg = ServerConfig::single("data".into());
/// let env = RuntimeEnv::files(&cfg, WsConfig::default())?;
/// let stop = std::future::pending::<()>();
/// run(cfg, env, stop).await?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// On an invalid configuration, unreadable or corrupt storage, an address
/// that cannot be bound, or a storage failure while running (fail-stop).
pub async fn run<S>(
    mut cfg: ServerConfig,
    env: RuntimeEnv<S>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RuntimeError>
where
    S: Storage<Command> + Send + 'static,
{
    let RuntimeEnv {
        clock,
        mut storage,
        ws,
        peer_chaos,
        shares_thread,
        claim,
        metrics: metrics_cfg,
        tls,
    } = env;
    let metrics = Metrics::new(claim.as_ref().map(|_| cfg.data_dir.clone()));
    let _claim = claim;
    storage.count_written_bytes(Arc::clone(&metrics.written_bytes));
    cfg.validate()?;
    let advertise = cfg.advertised(&ws)?;
    let mut stored = storage.load()?;
    force_new_cluster::prepare(&mut cfg, &advertise, &mut storage, &mut stored)?;
    let addrs = configured_addrs(&cfg, &ws);
    // What this server tells clients before the configuration carries
    // every member's published addresses: its own, and the overrides.
    let members: Vec<MemberInfo> = addrs
        .iter()
        .map(|(&id, a)| {
            let a = if id == cfg.id { &advertise } else { a };
            MemberInfo {
                id,
                client_addr: a.client.clone(),
                ws_addr: a.ws.clone(),
            }
        })
        .collect();
    // A server that joins a running cluster starts with no configuration:
    // it learns one from the leader.
    if !cfg.join {
        let mut membership = Membership::with_voters(cfg.peers.keys().copied());
        membership.addrs = addrs;
        stored.initial_membership = membership;
    }
    let node_cfg = NodeConfig {
        raft: cfg.raft.apply(cfg.id),
        members,
        advertise: Some(advertise.clone()),
    };
    let seed = seed_from(&clock, cfg.id);
    let mut node = Node::new(node_cfg, LockState::default(), stored, seed, clock.now())?;
    node.set_client_limits(cfg.limits.node());
    let auth = AuthHandle::new(&cfg.auth)?;
    announce_auth(&auth, &cfg.auth);
    if let Some(path) = cfg.auth.file.clone() {
        tokio::spawn(auth.clone().watch(path, AUTH_FILE_POLL));
    }
    let gate = Gate::new(auth.clone(), cfg.limits);

    let (inbox_tx, mut inbox) = mpsc::channel::<Input>(LINK_QUEUE);
    let (persist_tx, persist_rx) = mpsc::unbounded_channel::<Persist<Command>>();
    let (synced_tx, mut synced) = mpsc::unbounded_channel::<Result<PersistSeq, StorageError>>();
    let storage = Arc::new(std::sync::Mutex::new(storage));
    let (busy_poll, _poller) = start_busy_poll(cfg.busy_poll).unzip();
    let storage_done = storage_task::spawn(
        Arc::clone(&storage),
        persist_rx,
        synced_tx,
        busy_poll.clone(),
        Arc::clone(&metrics),
    );
    let mut persists = PersistRoute::new(storage, persist_tx, Arc::clone(&metrics));

    let cluster = ClusterId::new(cfg.cluster_id.clone());
    let client_listener = bind(cfg.client_addr).await?;
    let peer_listener = bind(cfg.peer_addr).await?;
    tokio::spawn(accept_clients(
        client_listener,
        cluster.clone(),
        inbox_tx.clone(),
        Arc::clone(&gate),
        Arc::clone(&metrics),
        tls.client.clone(),
    ));
    let mut peers = PeerLinks::new(
        cfg.id,
        cluster.clone(),
        cfg.peers.clone(),
        peer_chaos,
        tls.peer.clone(),
        auth.clone(),
    );
    follow_membership(&mut peers, &node, true);
    tokio::spawn(accept_peers(
        peer_listener,
        cluster.clone(),
        inbox_tx.clone(),
        peers.admission(),
        auth.clone(),
        Arc::clone(&metrics),
        tls.peer.clone(),
    ));
    if let Some(addr) = ws.addr {
        let listener = bind(addr).await?;
        // The names this server answers to over HTTP: those it advertises,
        // and those of the origins allowed to use it.
        let names = [advertise.ws.clone(), Some(advertise.client.clone())]
            .into_iter()
            .flatten()
            .chain(
                ws.allow_origins
                    .iter()
                    .filter_map(|o| o.split_once("://").map(|(_, host)| host.to_owned())),
            );
        let config = WsServerConfig {
            origins: OriginPolicy::new(&ws.allow_origins),
            hosts: HostPolicy::new(names),
            page: Some(Arc::from(DASHBOARD_HTML)),
            ..WsServerConfig::default()
        };
        tokio::spawn(accept_ws_clients(
            listener,
            cluster.clone(),
            inbox_tx.clone(),
            config,
            Arc::clone(&gate),
            Arc::clone(&metrics),
            tls.ws.clone(),
        ));
        let scheme = if tls.ws.is_some() { "https" } else { "http" };
        tracing::info!(id = cfg.id.0, ws = %addr, "WebSocket clients and the dashboard at {scheme}://{addr}/");
    }
    if let Some(addr) = metrics_cfg.addr {
        let listener = bind(addr).await?;
        tokio::spawn(crate::metrics::http::serve(listener, Arc::clone(&metrics)));
        tracing::info!(id = cfg.id.0, metrics = %addr, "metrics at http://{addr}/metrics, probes at /healthz and /readyz");
    }
    // The last log position tells operators which survivor of a lost
    // quorum is the most up to date (docs/OPERATIONS.md).
    let last_index = node.raft().last_index();
    let last_term = node.raft().term_at(last_index).map_or(0, |t| t.0);
    tracing::info!(
        id = cfg.id.0,
        client = %cfg.client_addr,
        peer = %cfg.peer_addr,
        last_log_index = last_index.0,
        last_log_term = last_term,
        "distlock server started"
    );
    if tls.is_off() {
        tracing::warn!(id = cfg.id.0, "{}", tls.summary());
    } else {
        tracing::info!(id = cfg.id.0, "TLS on: {}", tls.summary());
    }
    if cfg.join && !node.raft().membership().contains(cfg.id) {
        tracing::info!(
            id = cfg.id.0,
            "waiting to join: add this server from the cluster with `distlock members add {} --peer-addr {} --client-addr {}`",
            cfg.id.0,
            cfg.peer_addr,
            cfg.client_addr
        );
    }

    let mut clients: BTreeMap<ConnId, mpsc::Sender<ServerFrame>> = BTreeMap::new();
    let mut publisher = Publisher::new(Arc::clone(&metrics), &node);
    let mut role = (node.raft().role(), node.raft().term());
    // Told to the service manager once a leader is known.
    let mut ready = false;
    // Graceful shutdown: when it started, and when it gives up waiting.
    let mut draining: Option<(tokio::time::Instant, tokio::time::Instant)> = None;
    tokio::pin!(shutdown);
    let result = loop {
        let sleep = node
            .poll_timeout()
            .map_or(std::time::Duration::from_secs(3600), |deadline| {
                deadline.saturating_since(clock.now())
            })
            .min(
                publisher
                    .due()
                    .saturating_duration_since(tokio::time::Instant::now()),
            );
        tokio::select! {
            biased;
            () = &mut shutdown, if draining.is_none() => {
                service_manager::stopping();
                let target = node.start_draining(clock.now());
                tracing::info!(successor = ?target, "shutting down: refusing new requests, handing over leadership");
                let now = tokio::time::Instant::now();
                draining = Some((now, now + DRAIN_LIMIT));
            }
            Some(done) = synced.recv() => match done {
                Ok(seq) => {
                    persists.task_synced(seq);
                    node.persisted(seq, clock.now());
                }
                Err(e) => break Err(storage_failed(&metrics, e)),
            },
            Some(input) = inbox.recv() => {
                feed(&mut node, &mut clients, &mut peers, input, clock.now(), &metrics);
                // Batch: everything already waiting goes in before the drain.
                for _ in 0..1024 {
                    match inbox.try_recv() {
                        Ok(input) => feed(&mut node, &mut clients, &mut peers, input, clock.now(), &metrics),
                        Err(_) => break,
                    }
                }
            }
            () = tokio::time::sleep(sleep) => node.handle_timeout(clock.now()),
        }
        let inline = !shares_thread && !node.raft().is_leader();
        if let Err(e) = drain(
            &mut node,
            &mut persists,
            &mut peers,
            &mut clients,
            &clock,
            inline,
            &metrics,
        )
        .await
        {
            break Err(storage_failed(&metrics, e));
        }
        // The window runs from the end of the work: a follower's inline
        // sync may have taken most of it.
        if let Some(poll) = &busy_poll {
            poll.touch();
        }
        if let Some((since, until)) = draining {
            let now = tokio::time::Instant::now();
            // Leadership gone (or never held) and clients told to move on;
            // or it takes too long: stop anyway.
            if (!node.raft().is_leader() && now >= since + DRAIN_SETTLE) || now >= until {
                break Ok(());
            }
        }
        follow_membership(&mut peers, &node, false);
        if publisher.after_round(&mut node) {
            metrics
                .peers_connected
                .set(i64::try_from(peers.up_count()).unwrap_or(i64::MAX));
        }
        let now_role = (node.raft().role(), node.raft().term());
        if now_role != role {
            role = now_role;
            tracing::info!(role = ?role.0, term = role.1.0, leader = ?node.raft().leader(), "raft role changed");
        }
        if !ready && let Some(leader) = node.raft().leader() {
            ready = true;
            service_manager::ready(leader.0);
        }
    };
    drop(persists);
    let _ = storage_done.await;
    result
}

/// Counts and logs a storage failure, which stops the server.
fn storage_failed(metrics: &Metrics, e: StorageError) -> RuntimeError {
    metrics.storage_errors.inc();
    tracing::error!(event = "storage_failed", error = %e, "storage write or fsync failed: stopping");
    RuntimeError::Storage(e)
}

/// Starts the poller of `serve --busy-poll`, if asked for; it stops when
/// the guard is dropped. The simulator never polls: its time is virtual
/// (see [`busy_poll`]).
fn start_busy_poll(
    window: Option<std::time::Duration>,
) -> Option<(Arc<busy_poll::BusyPoll>, busy_poll::PollerGuard)> {
    if cfg!(madsim) {
        return None;
    }
    let poll = busy_poll::BusyPoll::new(window?);
    let guard = poll.spawn();
    tracing::info!(window = ?poll.window(), "busy polling after each event");
    Some((poll, guard))
}

/// Carries out the node's actions until it has none. With `inline` (a
/// server that does not lead), it writes the log on this task while the
/// storage task is idle (see [`PersistRoute`]), syncs once for the drain,
/// and drains again for what that durability lets it send.
async fn drain<S: Storage<Command>>(
    node: &mut Node,
    persists: &mut PersistRoute<S>,
    peers: &mut PeerLinks,
    clients: &mut BTreeMap<ConnId, mpsc::Sender<ServerFrame>>,
    clock: &Arc<dyn Clock>,
    inline: bool,
    metrics: &Metrics,
) -> Result<(), StorageError> {
    loop {
        while let Some(action) = node.poll_action() {
            match action {
                NodeAction::Persist(p) => {
                    if !persists.persist(p, inline)? {
                        // The storage task is gone: its error is on its way.
                        break;
                    }
                }
                NodeAction::Send { to, frame } => match frame {
                    PeerFrame::Forward { request, .. } if !peers.is_up(to) => {
                        node.forward_undeliverable(request.id);
                    }
                    frame => {
                        metrics.frames_out_peer.inc();
                        if let PeerFrame::Raft(msg) = &frame
                            && let MessageBody::Append { entries, .. } = &msg.body
                        {
                            metrics.append_batch.observe(entries.len() as f64);
                        }
                        peers.send(to, frame);
                    }
                },
                NodeAction::Reply { conn, frame } => {
                    metrics.frames_out_client.inc();
                    if let Some(tx) = clients.get(&conn) {
                        if tx.try_send(frame).is_err() {
                            // Too slow to keep up, or gone: drop the connection.
                            clients.remove(&conn);
                            node.connection_closed(conn);
                        }
                    }
                }
            }
        }
        match persists.sync_here().await? {
            Some(seq) => node.persisted(seq, clock.now()),
            None => return Ok(()),
        }
    }
}

/// Matches the peer links to the configuration in force when it changed
/// (or at `start`), and says so when it leaves this server out.
fn follow_membership(peers: &mut PeerLinks, node: &Node, start: bool) {
    let raft = node.raft();
    // Called after every input: the committed configuration is looked up
    // only when the configuration in force changed, or committed.
    let index = raft.membership_index();
    let settled = raft.commit_index() >= index;
    let changed = peers.follow(raft.membership(), index, settled, || {
        raft.committed_membership()
    });
    if (changed || start) && node.is_removed() {
        tracing::warn!(
            id = node.raft().id().0,
            "this server was removed from the cluster: it serves no clients; stop it"
        );
    }
}

/// Every configured member's addresses, as the configuration names them:
/// the same on every server started with the same `--peers` (and
/// overrides), so that the first configuration is the same everywhere.
/// Each member then publishes its own through the log (`SetAddrs`).
fn configured_addrs(cfg: &ServerConfig, ws: &WsConfig) -> BTreeMap<NodeId, MemberAddrs> {
    cfg.peers
        .iter()
        .map(|(&id, peer)| {
            let addrs = MemberAddrs {
                peer: peer.to_string(),
                client: cfg
                    .client_addrs
                    .get(&id)
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                ws: ws.addrs.get(&id).map(ToString::to_string),
            };
            (id, addrs)
        })
        .collect()
}

fn feed(
    node: &mut Node,
    clients: &mut BTreeMap<ConnId, mpsc::Sender<ServerFrame>>,
    peers: &mut PeerLinks,
    input: Input,
    now: distlock_core::time::Instant,
    metrics: &Metrics,
) {
    match input {
        Input::Peer(from, PeerFrame::Members { index, members }) => {
            peers.vouched(from, index, &members);
        }
        Input::Peer(from, frame) => {
            metrics.frames_in_peer.inc();
            node.handle_peer(from, frame, now);
        }
        Input::ClientOpened(conn, tx, access) => {
            node.set_access(conn, access);
            clients.insert(conn, tx);
        }
        Input::Client(conn, frame) => {
            metrics.frames_in_client.inc();
            node.handle_client(conn, frame, now);
        }
        Input::ClientClosed(conn) => {
            clients.remove(&conn);
            node.connection_closed(conn);
        }
    }
}

async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, RuntimeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RuntimeError::Bind { addr, source })
}

/// Election jitter must differ between servers and between restarts.
fn seed_from(clock: &Arc<dyn Clock>, id: NodeId) -> u64 {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    wall ^ clock.now().as_micros().rotate_left(17) ^ id.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}
