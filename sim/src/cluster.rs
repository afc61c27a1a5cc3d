//! The simulated cluster: N servers, each a madsim node at its own IP whose
//! `init` runs the real [`run`] on the node's [`SimDisk`] and
//! [`SimClock`] (both owned here, so they outlive kills and restarts), plus
//! the network controls the faults use. Server roles are learned from the
//! runtime's own "raft role changed" log line through a tracing layer, so
//! the harness can find the leader without a backdoor into the server.

use crate::chaos::ChaosNet;
use crate::clock::{SimClock, TrueTime};
use crate::history::{Ev, History};
use crate::storage::SimDisk;
use crate::tls::SimTls;
use distlock_core::ids::NodeId;
use distlock_server::config::WsConfig;
use distlock_server::config::{RaftTuning, ServerConfig};
use distlock_server::runtime::{PeerChaos, RuntimeEnv, run};
use distlock_server::storage::FsyncPolicy;
use distlock_transport_tcp::HostPort;
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// Where clients reach server `id`.
#[must_use]
pub fn client_addr(id: u64) -> SocketAddr {
    SocketAddr::new(server_ip(id), 7001)
}

/// Where WebSocket clients reach server `id`.
#[must_use]
pub fn ws_addr(id: u64) -> SocketAddr {
    SocketAddr::new(server_ip(id), 7201)
}

/// Where peers reach server `id`.
#[must_use]
pub fn peer_addr(id: u64) -> SocketAddr {
    SocketAddr::new(server_ip(id), 7101)
}

/// Server `id`'s simulated address.
#[must_use]
pub fn server_ip(id: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 1, u8::try_from(id).unwrap_or(255)))
}

/// Latest role and term each server logged (shared with the tracing layer).
pub type Roles = Arc<Mutex<BTreeMap<u64, (String, u64)>>>;

/// Which madsim node runs which server (shared with the tracing layer).
pub type ServerNodes = Arc<Mutex<Vec<(madsim::task::NodeId, u64)>>>;

/// One server slot.
pub struct Server {
    /// Its Raft id (1-based).
    pub id: u64,
    /// Its madsim node.
    pub node: NodeHandle,
    /// Its disk.
    pub disk: SimDisk,
    /// Its clock.
    pub clock: Arc<SimClock>,
    /// Whether its process is running (not killed).
    pub up: bool,
    /// Whether its process is paused.
    pub paused: bool,
}

/// The servers and the network between them.
pub struct Cluster {
    /// The servers, `servers[i].id == i + 1`.
    pub servers: Vec<Server>,
    handle: Handle,
    history: History,
    time: TrueTime,
    roles: Roles,
    /// Servers whose runtime returned, until restarted.
    exited: Arc<Mutex<BTreeSet<u64>>>,
    /// Links clogged by [`Self::clog`], to heal.
    clogged: BTreeSet<(madsim::task::NodeId, madsim::task::NodeId)>,
    /// madsim node → server id, for the tracing layer.
    nodes: ServerNodes,
    /// The message-level chaos every server's peer links go through.
    pub chaos: Arc<ChaosNet>,
    /// Every server's peer address, as configured at its start.
    peers: BTreeMap<NodeId, SocketAddr>,
    raft: RaftTuning,
    /// TLS on every listener and peer link (`None`: plain TCP).
    tls: Option<Arc<SimTls>>,
}

impl Cluster {
    /// Starts `n` servers with the given clocks' (offset µs, drift ppm),
    /// disks' fsync latencies (µs) and Raft tuning; `nodes` learns which
    /// madsim node is which server.
    #[must_use]
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        n: u64,
        clocks: &[(u64, i64)],
        fsync_us: &[u64],
        raft: RaftTuning,
        history: History,
        time: TrueTime,
        roles: Roles,
        nodes: ServerNodes,
        chaos: Arc<ChaosNet>,
        tls: Option<Arc<SimTls>>,
    ) -> Self {
        let mut cluster = Self {
            chaos,
            servers: Vec::new(),
            handle: Handle::current(),
            history,
            time,
            roles,
            nodes,
            exited: Arc::new(Mutex::new(BTreeSet::new())),
            clogged: BTreeSet::new(),
            peers: (1..=n).map(|i| (NodeId(i), peer_addr(i))).collect(),
            raft,
            tls,
        };
        for id in 1..=n {
            let at = usize::try_from(id - 1).unwrap_or(0);
            let (offset, drift) = clocks.get(at).copied().unwrap_or((0, 0));
            let latency = fsync_us.get(at).copied().unwrap_or(0);
            cluster.spawn(id, false, offset, drift, latency);
        }
        cluster
    }

    /// Starts a new server (the next id) with `serve --join`: empty, not
    /// voting, waiting to be added. Returns its id.
    pub fn start_joining(&mut self, clock: (u64, i64), fsync_us: u64) -> u64 {
        let id = self.servers.len() as u64 + 1;
        self.peers.insert(NodeId(id), peer_addr(id));
        self.spawn(id, true, clock.0, clock.1, fsync_us);
        self.note(format!("start s{id}, joining"));
        id
    }

    fn spawn(&mut self, id: u64, join: bool, offset: u64, drift: i64, fsync_us: u64) {
        let time = self.time;
        let clock = Arc::new(SimClock::new(time, offset, drift));
        let disk = SimDisk::with_latency(std::time::Duration::from_micros(fsync_us));
        let cfg = ServerConfig {
            id: NodeId(id),
            data_dir: "/sim".into(),
            client_addr: client_addr(id),
            peer_addr: peer_addr(id),
            peers: self
                .peers
                .iter()
                .map(|(&i, a)| (i, HostPort::from(a)))
                .collect(),
            // As `distlock serve --peers` alone: each server publishes its
            // own client and WebSocket addresses through the log.
            client_addrs: BTreeMap::new(),
            advertise_client_addr: None,
            advertise_peer_addr: None,
            cluster_id: "sim".to_owned(),
            fsync: FsyncPolicy::Always,
            raft: self.raft,
            join,
            busy_poll: None,
            force_new_cluster: false,
            // The simulated operator reaches the servers from its own
            // (non-loopback) address.
            auth: distlock_server::auth::AuthConfig {
                allow_remote_admin: true,
                ..distlock_server::auth::AuthConfig::default()
            },
            limits: distlock_server::limits::Limits::default(),
        };
        let (d, c, h, ex, ch) = (
            disk.clone(),
            clock.clone(),
            self.history.clone(),
            self.exited.clone(),
            self.chaos.clone(),
        );
        // A server whose certificates cannot be loaded runs without TLS,
        // and the clients, which then fail their handshakes, show it.
        let tls = self
            .tls
            .as_ref()
            .and_then(|t| t.server(id).ok())
            .unwrap_or_default();
        let node = self
            .handle
            .create_node()
            .name(format!("s{id}"))
            .ip(server_ip(id))
            .init(move || {
                let (cfg, disk, clock, history, exited, tls) = (
                    cfg.clone(),
                    d.clone(),
                    c.clone(),
                    h.clone(),
                    ex.clone(),
                    tls.clone(),
                );
                let chaos: Arc<dyn PeerChaos> = ch.clone();
                let ws = WsConfig {
                    addr: Some(ws_addr(id)),
                    advertise: None,
                    addrs: BTreeMap::new(),
                    allow_origins: Vec::new(),
                };
                async move {
                    let env = RuntimeEnv {
                        clock,
                        storage: disk.storage(),
                        ws,
                        peer_chaos: Some(chaos),
                        // Each simulated server is a node of its own.
                        shares_thread: false,
                        claim: None,
                        metrics: Default::default(),
                        tls,
                    };
                    let result = run(cfg, env, std::future::pending()).await;
                    let why = match result {
                        Ok(()) => "shut down".to_owned(),
                        Err(e) => e.to_string(),
                    };
                    history.push(time.now_us(), Ev::Exit { node: id, why });
                    exited
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(id);
                }
            })
            .build();
        self.nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((node.id(), id));
        self.servers.push(Server {
            id,
            node,
            disk,
            clock,
            up: true,
            paused: false,
        });
    }

    fn slot(&mut self, id: u64) -> Option<&mut Server> {
        self.servers.iter_mut().find(|s| s.id == id)
    }

    fn note(&self, what: String) {
        self.history.push(self.time.now_us(), Ev::Fault { what });
    }

    /// The madsim node id of server `id`.
    #[must_use]
    pub fn node_id(&self, id: u64) -> Option<madsim::task::NodeId> {
        self.servers
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.node.id())
    }

    /// Every server's id.
    #[must_use]
    pub fn ids(&self) -> Vec<u64> {
        self.servers.iter().map(|s| s.id).collect()
    }

    /// The running leader of the highest term, if the logs name one.
    #[must_use]
    pub fn leader(&self) -> Option<u64> {
        self.leader_term().map(|(id, _)| id)
    }

    /// The running leader of the highest term and that term.
    #[must_use]
    pub fn leader_term(&self) -> Option<(u64, u64)> {
        let roles = self
            .roles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        roles
            .iter()
            .filter(|(id, (role, _))| {
                role == "Leader" && self.servers.iter().any(|s| s.id == **id && s.up)
            })
            .max_by_key(|(_, (_, term))| *term)
            .map(|(id, (_, term))| (*id, *term))
    }

    /// Power-cuts server `id`: its unsynced writes are (mostly) lost.
    pub fn kill(&mut self, id: u64, rng: &mut ChaCha8Rng, may_tear: bool) {
        let handle = self.handle.clone();
        let Some(s) = self.slot(id) else { return };
        if !s.up {
            return;
        }
        let report = s.disk.crash(rng, may_tear);
        handle.kill(s.node.id());
        s.up = false;
        s.paused = false;
        self.roles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
        self.note(format!(
            "kill s{id} (unsynced {}, kept {}, torn {})",
            report.unsynced, report.kept, report.torn
        ));
    }

    /// Restarts a killed (or exited) server on what its disk kept.
    pub fn restart(&mut self, id: u64) {
        let handle = self.handle.clone();
        let exited = self
            .exited
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
        let Some(s) = self.slot(id) else { return };
        if s.up && !exited {
            return;
        }
        if exited && s.disk.faults().corrupt {
            // It refused its corrupt disk; starting it again changes
            // nothing until an operator gives it a new one.
            return;
        }
        if s.up {
            // It exited on its own (fail-stop): the process is gone, its
            // cache with it.
            let mut rng = <ChaCha8Rng as rand_core::SeedableRng>::seed_from_u64(id);
            s.disk.crash(&mut rng, false);
        }
        handle.kill(s.node.id());
        handle.restart(s.node.id());
        s.up = true;
        s.paused = false;
        self.note(format!("restart s{id}"));
    }

    /// Servers whose runtime returned (fail-stop) and that are not yet restarted.
    #[must_use]
    pub fn exited(&self) -> Vec<u64> {
        self.exited
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .copied()
            .collect()
    }

    /// Freezes server `id` (GC pause, SIGSTOP).
    pub fn pause(&mut self, id: u64) {
        let handle = self.handle.clone();
        let Some(s) = self.slot(id) else { return };
        if !s.up || s.paused {
            return;
        }
        handle.pause(s.node.id());
        s.paused = true;
        self.note(format!("pause s{id}"));
    }

    /// Unfreezes server `id`.
    pub fn resume(&mut self, id: u64) {
        let handle = self.handle.clone();
        let Some(s) = self.slot(id) else { return };
        if !s.paused {
            return;
        }
        handle.resume(s.node.id());
        s.paused = false;
        self.note(format!("resume s{id}"));
    }

    /// Drops everything sent from node `from` to node `to` (one way).
    pub fn clog(&mut self, from: madsim::task::NodeId, to: madsim::task::NodeId) {
        NetSim::current().clog_link(from, to);
        self.clogged.insert((from, to));
    }

    /// Cuts the servers into the given groups (by server id): links
    /// between groups are clogged both ways; clients are not affected.
    pub fn partition(&mut self, groups: &[Vec<u64>]) {
        for (i, a) in groups.iter().enumerate() {
            for b in groups.iter().skip(i + 1) {
                for &x in a {
                    for &y in b {
                        if let (Some(nx), Some(ny)) = (self.node_id(x), self.node_id(y)) {
                            self.clog(nx, ny);
                            self.clog(ny, nx);
                        }
                    }
                }
            }
        }
        self.note(format!("partition {groups:?}"));
    }

    /// Cuts server `id` off from every other server (a partition of it
    /// alone against the rest); returns the rest.
    pub fn isolate(&mut self, id: u64) -> Vec<u64> {
        self.cut_off(vec![id])
    }

    /// Cuts the servers of `group` off from every other server (a
    /// partition of them against the rest); returns the rest.
    pub fn cut_off(&mut self, group: Vec<u64>) -> Vec<u64> {
        let rest: Vec<u64> = self
            .ids()
            .into_iter()
            .filter(|i| !group.contains(i))
            .collect();
        self.partition(&[group, rest.clone()]);
        rest
    }

    /// Heals every clogged link.
    pub fn heal_network(&mut self) {
        let net = NetSim::current();
        for (a, b) in std::mem::take(&mut self.clogged) {
            net.unclog_link(a, b);
        }
        self.note("heal network".to_owned());
    }

    /// Server disks' contract breaches, as history records.
    pub fn record_disk_breaches(&self) {
        for s in &self.servers {
            for what in s.disk.contract_breaches() {
                self.history
                    .push(self.time.now_us(), Ev::DiskContract { node: s.id, what });
            }
        }
    }
}

/// A tracing layer that turns the runtime's "raft role changed" lines into
/// [`Ev::Role`] records, attributed to the madsim node that logged them.
pub struct RoleLayer {
    /// madsim node → server id.
    pub nodes: ServerNodes,
    /// Latest role per server.
    pub roles: Roles,
    /// Where to record.
    pub history: History,
    /// True time.
    pub time: TrueTime,
}

#[derive(Default)]
struct RoleFields {
    message: String,
    role: String,
    term: u64,
}

impl Visit for RoleFields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "role" => self.role = format!("{value:?}"),
            _ => {}
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "term" {
            self.term = value;
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        }
    }
}

impl RoleLayer {
    /// Whether a callsite can carry the role line (a runtime event with a
    /// `role` field). Everything else — madsim's per-task spans, entered
    /// and left on every poll, the runtime's other lines, whose messages
    /// would be formatted only to be compared, and every other crate's
    /// events — is switched off at the callsite, so neither the registry
    /// nor [`RoleLayer::on_event`] does work for it. Those spans and events
    /// have no effect on the run (no draws, no clock reads), only on its
    /// cost.
    fn wants(metadata: &tracing::Metadata<'_>) -> bool {
        metadata.is_event()
            && metadata.target().starts_with("distlock_server")
            && metadata.fields().field("role").is_some()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RoleLayer {
    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if Self::wants(metadata) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(&self, metadata: &tracing::Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        Self::wants(metadata)
    }

    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if !event.metadata().target().starts_with("distlock_server") {
            return;
        }
        let mut f = RoleFields::default();
        event.record(&mut f);
        if f.message != "raft role changed" {
            return;
        }
        let here = madsim::plugin::node();
        let node = self
            .nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(n, _)| *n == here)
            .map(|(_, id)| *id);
        let Some(node) = node else { return };
        self.roles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(node, (f.role.clone(), f.term));
        self.history.push(
            self.time.now_us(),
            Ev::Role {
                node,
                role: f.role,
                term: f.term,
            },
        );
    }
}
