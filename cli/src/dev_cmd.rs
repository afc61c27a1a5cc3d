//! `distlock dev --nodes 3`: a throwaway local cluster in one process, for
//! trying distlock out and for developing against it. Its servers are real
//! (the same runtime, storage and fsync as `serve`); only their data lives
//! in a temporary directory that is removed when the cluster stops.

use distlock_client::admin::ask;
use distlock_core::ids::NodeId;
use distlock_core::proto::{RequestBody, ResponseBody};
use distlock_server::config::{ServerConfig, WsConfig};
use distlock_server::metrics::http::MetricsConfig;
use distlock_server::runtime;
use distlock_server::storage::FsyncPolicy;
use distlock_transport_tcp::HostPort;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

/// How a dev cluster is laid out.
#[derive(Clone, Debug)]
pub(crate) struct DevCluster {
    /// How many servers (1 to 9).
    pub(crate) nodes: u16,
    /// Server `i` (from 0) takes client port `base_port + i`, peer port
    /// `base_port + 100 + i` and WebSocket (and dashboard) port
    /// `base_port + 200 + i`.
    pub(crate) base_port: u16,
    /// Where to keep the data; `None`: a temporary directory removed at exit.
    pub(crate) data_dir: Option<PathBuf>,
    /// How hard to sync.
    pub(crate) fsync: FsyncPolicy,
}

/// Why a dev cluster could not run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DevError {
    /// The node count is out of range.
    #[error("--nodes must be between 1 and 9, not {0}")]
    Nodes(u16),
    /// The ports do not fit.
    #[error(
        "--base-port {0} leaves no room for the servers' ports (base + 200 + nodes must be below 65536)"
    )]
    Ports(u16),
    /// The data directory could not be made.
    #[error("cannot create the data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A server stopped with an error.
    #[error("server {id} stopped: {source}")]
    Server {
        /// Its id.
        id: u64,
        /// Why.
        source: runtime::RuntimeError,
    },
}

impl DevCluster {
    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    /// The client addresses, as `--servers` wants them.
    #[must_use]
    pub(crate) fn servers(&self) -> Vec<SocketAddr> {
        (0..self.nodes)
            .map(|i| Self::addr(self.base_port + i))
            .collect()
    }

    /// The WebSocket addresses (each also serves the dashboard).
    #[must_use]
    pub(crate) fn ws_servers(&self) -> Vec<SocketAddr> {
        (0..self.nodes)
            .map(|i| Self::addr(self.base_port + 200 + i))
            .collect()
    }

    fn configs(&self, root: &std::path::Path) -> Vec<(ServerConfig, WsConfig)> {
        let ids = (1..=u64::from(self.nodes)).map(NodeId);
        let peers: BTreeMap<NodeId, SocketAddr> = ids
            .clone()
            .zip(0..)
            .map(|(id, i)| (id, Self::addr(self.base_port + 100 + i)))
            .collect();
        let clients: BTreeMap<NodeId, SocketAddr> = ids
            .clone()
            .zip(0..)
            .map(|(id, i)| (id, Self::addr(self.base_port + i)))
            .collect();
        let ws: BTreeMap<NodeId, SocketAddr> = ids
            .clone()
            .zip(0..)
            .map(|(id, i)| (id, Self::addr(self.base_port + 200 + i)))
            .collect();
        ids.map(|id| {
            let cfg = ServerConfig {
                id,
                data_dir: root.join(format!("node{}", id.0)),
                client_addr: clients[&id],
                peer_addr: peers[&id],
                peers: peers.iter().map(|(&i, a)| (i, HostPort::from(a))).collect(),
                client_addrs: clients
                    .iter()
                    .map(|(&i, a)| (i, HostPort::from(a)))
                    .collect(),
                advertise_client_addr: None,
                advertise_peer_addr: None,
                cluster_id: "distlock-dev".to_owned(),
                fsync: self.fsync,
                raft: distlock_server::config::RaftTuning::default(),
                join: false,
                busy_poll: None,
                force_new_cluster: false,
                auth: distlock_server::auth::AuthConfig::default(),
                limits: distlock_server::limits::Limits::default(),
            };
            let ws = WsConfig {
                addr: Some(ws[&id]),
                advertise: None,
                addrs: ws.iter().map(|(&i, a)| (i, HostPort::from(a))).collect(),
                allow_origins: Vec::new(),
            };
            (cfg, ws)
        })
        .collect()
    }
}

/// Removes a temporary data directory when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the cluster until `shutdown` completes, then stops every server
/// gracefully. Prints the `--servers` value once a leader is elected.
///
/// # Errors
/// On a bad layout, a data directory that cannot be made, or a server
/// that fails.
pub(crate) async fn run(
    dev: DevCluster,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DevError> {
    if !(1..=9).contains(&dev.nodes) {
        return Err(DevError::Nodes(dev.nodes));
    }
    if u32::from(dev.base_port) + 300 + u32::from(dev.nodes) > 65535 || dev.base_port == 0 {
        return Err(DevError::Ports(dev.base_port));
    }
    let (root, _cleanup) = match &dev.data_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let dir = std::env::temp_dir().join(format!("distlock-dev-{}", std::process::id()));
            (dir.clone(), Some(TempDir(dir)))
        }
    };
    std::fs::create_dir_all(&root).map_err(|source| DevError::DataDir {
        path: root.clone(),
        source,
    })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    for (cfg, ws) in dev.configs(&root) {
        let mut stop = stop_rx.clone();
        let id = cfg.id.0;
        // Metrics and probes at BASE+300+i, beside clients (BASE+i),
        // peers (+100) and WebSocket (+200).
        let metrics = MetricsConfig {
            addr: u16::try_from(id - 1)
                .ok()
                .map(|i| DevCluster::addr(dev.base_port + 300 + i)),
        };
        servers.spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            let run = async {
                let mut env = runtime::RuntimeEnv::files(&cfg, ws)?;
                // The servers share this process's runtime threads.
                env.shares_thread = true;
                env.metrics = metrics;
                runtime::run(cfg, env, stopped).await
            };
            run.await.map_err(|source| DevError::Server { id, source })
        });
    }
    let list = dev
        .servers()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    tokio::pin!(shutdown);
    let addrs = dev.servers();
    let ready = wait_for_leader(&addrs);
    let outcome = tokio::select! {
        () = ready => {
            println!("distlock dev: {} servers running, data in {}", dev.nodes, root.display());
            println!("  --servers {list}");
            println!("  export DISTLOCK_SERVERS={list}");
            let ws = dev.ws_servers();
            let ws_list = ws.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
            println!("  WebSocket (browsers, bench --ws): {ws_list}");
            println!("  dashboard: http://{}/", ws[0]);
            println!("  try: distlock lock demo -- echo \"holding demo with token $DISTLOCK_TOKEN\"");
            println!("Ctrl-C stops the cluster{}.", if dev.data_dir.is_none() { " and deletes its data" } else { "" });
            tokio::select! {
                () = &mut shutdown => Ok(()),
                Some(done) = servers.join_next() => first_failure(done),
            }
        }
        () = &mut shutdown => Ok(()),
        Some(done) = servers.join_next() => first_failure(done),
    };
    // Every server stops before the data directory goes away.
    eprintln!("distlock dev: stopping");
    stop_tx.send_replace(true);
    while let Some(done) = servers.join_next().await {
        if let Err(e) = first_failure(done) {
            eprintln!("distlock dev: {e}");
        }
    }
    outcome
}

fn first_failure(
    done: Result<Result<(), DevError>, tokio::task::JoinError>,
) -> Result<(), DevError> {
    match done {
        Ok(r) => r,
        // A server task that panicked has already printed why.
        Err(_) => Ok(()),
    }
}

/// Completes once some server reports a leader.
async fn wait_for_leader(servers: &[SocketAddr]) {
    loop {
        for &addr in servers {
            if let Ok((_, answers)) =
                ask(&HostPort::from(addr), vec![RequestBody::ClusterStatus]).await
            {
                if let Some(ResponseBody::ClusterStatus(v)) = answers.first() {
                    if v.leader.is_some() {
                        return;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
