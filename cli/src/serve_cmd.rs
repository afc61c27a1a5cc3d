//! `distlock serve`: its settings (flags, environment, configuration
//! file) folded into the server's configuration, and the server run until
//! SIGINT or SIGTERM, with TLS certificates reloaded on SIGHUP.

use crate::exit::parse_duration;
use crate::{serve_security, tls_args};
use anyhow::Context;
use distlock_core::ids::NodeId;
use distlock_server::config::{ConfigFile, ServerConfig, WsConfig, parse_members, resolve_listen};
use distlock_server::metrics::http::MetricsConfig;
use distlock_server::storage::FsyncPolicy;
use distlock_server::tls::{ServerTlsSet, TlsSettings};
use distlock_transport_tcp::HostPort;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `distlock serve`'s settings. Each comes from its flag, else from the
/// environment variable `DISTLOCK_<FLAG>` (clap reads it as if it were the
/// flag), else from the `--config` file, else from its default.
#[derive(clap::Args, Debug)]
pub(crate) struct ServeArgs {
    /// Read settings from this TOML file (keys as the flags below, with
    /// underscores; [peers], [client_addrs] and [ws_addrs] tables of
    /// id = "HOST:PORT"). Flags and environment variables win over the file.
    #[arg(long, env = "DISTLOCK_CONFIG")]
    config: Option<PathBuf>,
    /// This server's id (1 or more) [default: 1].
    #[arg(long, env = "DISTLOCK_ID")]
    id: Option<u64>,
    /// Where to keep the log and snapshots [default: distlock-data].
    #[arg(long, env = "DISTLOCK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on for clients; a host name is resolved once, at
    /// start [default: 127.0.0.1:7001].
    #[arg(long, env = "DISTLOCK_CLIENT_ADDR", value_name = "HOST:PORT")]
    client_addr: Option<HostPort>,
    /// Address to listen on for peers [default: 127.0.0.1:7101].
    #[arg(long, env = "DISTLOCK_PEER_ADDR", value_name = "HOST:PORT")]
    peer_addr: Option<HostPort>,
    /// The client address that clients and members are told to dial
    /// (required when --client-addr is 0.0.0.0 or [::]) [default: --client-addr].
    #[arg(long, env = "DISTLOCK_ADVERTISE_CLIENT_ADDR", value_name = "HOST:PORT")]
    advertise_client_addr: Option<HostPort>,
    /// The peer address that members are told to dial [default: this
    /// server's entry in --peers].
    #[arg(long, env = "DISTLOCK_ADVERTISE_PEER_ADDR", value_name = "HOST:PORT")]
    advertise_peer_addr: Option<HostPort>,
    /// The WebSocket address that clients are told to dial (required when
    /// --ws-addr is 0.0.0.0 or [::]) [default: --ws-addr].
    #[arg(long, env = "DISTLOCK_ADVERTISE_WS_ADDR", value_name = "HOST:PORT")]
    advertise_ws_addr: Option<HostPort>,
    /// Every member's peer address, this server's included: 1=HOST:PORT,2=...
    /// (default: this server alone). All a cluster needs: each server
    /// publishes its own client and WebSocket addresses through the log.
    #[arg(long, env = "DISTLOCK_PEERS", value_name = "ID=HOST:PORT,...")]
    peers: Option<String>,
    /// Optional: other members' client addresses to tell clients before
    /// those members have published their own: 1=HOST:PORT,2=...
    #[arg(long, env = "DISTLOCK_CLIENT_ADDRS", value_name = "ID=HOST:PORT,...")]
    client_addrs: Option<String>,
    /// The cluster's name; peers and clients naming another are refused [default: distlock].
    #[arg(long, env = "DISTLOCK_CLUSTER_ID")]
    cluster_id: Option<String>,
    /// `always` (default): fsync before acknowledging; `never`: for benchmarks only.
    #[arg(long, env = "DISTLOCK_FSYNC")]
    fsync: Option<FsyncPolicy>,
    /// Address for WebSocket clients (browsers, edge services) and the
    /// dashboard at http://ADDR/, or `none` for neither. Default:
    /// 127.0.0.1:7201 when no --client-addr is given either (plain
    /// `serve`), else none: a member given its addresses gets WebSocket
    /// only when asked, so that servers sharing a host never collide.
    #[arg(long, env = "DISTLOCK_WS_ADDR", value_name = "HOST:PORT|none")]
    ws_addr: Option<String>,
    /// Optional: other members' WebSocket addresses to tell clients before
    /// those members have published their own: 1=HOST:PORT,2=...
    #[arg(long, env = "DISTLOCK_WS_ADDRS", value_name = "ID=HOST:PORT,...")]
    ws_addrs: Option<String>,
    /// Address of the HTTP endpoint for Prometheus (/metrics) and probes
    /// (/healthz, /readyz), or `none`. Default: 127.0.0.1:9464 when no
    /// --client-addr is given either (plain `serve`), else none, as for
    /// --ws-addr: give each server of a host its own.
    #[arg(long, env = "DISTLOCK_METRICS_ADDR", value_name = "HOST:PORT|none")]
    metrics_addr: Option<String>,
    /// Browser origins allowed to open WebSockets besides the server's own
    /// (the dashboard), comma-separated, e.g. https://ops.example.com;
    /// `*` allows any (development only). Non-browser clients send no
    /// origin and are always allowed.
    #[arg(
        long = "ws-allow-origin",
        env = "DISTLOCK_WS_ALLOW_ORIGIN",
        value_delimiter = ','
    )]
    ws_allow_origin: Vec<String>,
    /// Threads running the server's network tasks (default 1: the node
    /// task, connections and peer links share one thread, which measured
    /// fastest; storage IO always has its own thread).
    #[arg(long, env = "DISTLOCK_WORKER_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) worker_threads: u16,
    /// After each event, poll for the next one for this long (e.g. 300us)
    /// instead of sleeping until woken: lower latency where waking a
    /// thread is slow (virtual machines), at the price of up to two busy
    /// threads while requests keep coming. Off by default; at most 10ms.
    #[arg(long, env = "DISTLOCK_BUSY_POLL", value_name = "DURATION", value_parser = parse_duration)]
    busy_poll: Option<Duration>,
    /// Take a Raft snapshot (compacting the stored log) every N applied entries;
    /// 0 never (default 50000). For tests: small values snapshot often.
    #[arg(long, env = "DISTLOCK_SNAPSHOT_EVERY", value_name = "N", hide = true)]
    snapshot_every: Option<u64>,
    /// Join a running cluster as a new server: start empty and without a
    /// vote, and wait for `distlock members add` (run against the cluster)
    /// to add it as a learner; --peers names this server and the members.
    #[arg(long, env = "DISTLOCK_JOIN")]
    join: bool,
    /// Disaster recovery after a quorum was lost for good: make this
    /// server (the most up-to-date survivor) the only voter of a new
    /// cluster with the state it holds, durably, then serve. Entries it
    /// holds that were not known committed commit too. The old members are
    /// retired: never start them again with their data. Remove the flag
    /// afterwards and add new servers under new ids (`serve --join`,
    /// `members add`, `members promote`).
    #[arg(long)]
    force_new_cluster: bool,
    #[command(flatten)]
    security: serve_security::SecurityArgs,
    #[command(flatten)]
    tls: tls_args::ServeTlsArgs,
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<(ServerConfig, WsConfig, MetricsConfig, TlsSettings)> {
        let file = match &self.config {
            Some(path) => ConfigFile::load(path)?,
            None => ConfigFile::default(),
        };
        let tls = self
            .tls
            .settings()
            .or(&file.tls.clone().unwrap_or_default());
        let (auth, limits) = self.security.resolve(&file)?;
        let client_addr_given = self.client_addr.is_some() || file.client_addr.is_some();
        let ws_listen = match self.ws_addr.as_deref().or(file.ws_addr.as_deref()) {
            Some(text) => WsConfig::parse_addr(text)?,
            None if client_addr_given => None,
            None => Some(HostPort::from(WsConfig::DEFAULT_ADDR)),
        };
        let metrics_listen = match self
            .metrics_addr
            .as_deref()
            .or(file.metrics_addr.as_deref())
        {
            Some(text) => WsConfig::parse_addr(text).map_err(|_| {
                anyhow::anyhow!(
                    "cannot read the metrics address {text:?}: expected HOST:PORT, or none"
                )
            })?,
            None if client_addr_given => None,
            None => Some(HostPort::from(MetricsConfig::DEFAULT_ADDR)),
        };
        let metrics = MetricsConfig {
            addr: metrics_listen
                .as_ref()
                .map(|a| resolve_listen("--metrics-addr", a))
                .transpose()?,
        };
        let ws_addrs = match (&self.ws_addrs, &file.ws_addrs) {
            (Some(list), _) => parse_members("--ws-addrs", list)?,
            (None, Some(table)) => ConfigFile::members("ws_addrs", table)?,
            (None, None) => Default::default(),
        };
        let ws = WsConfig {
            addr: ws_listen
                .as_ref()
                .map(|a| resolve_listen("--ws-addr", a))
                .transpose()?,
            advertise: self
                .advertise_ws_addr
                .or(file.advertise_ws_addr)
                .or_else(|| ws_listen.as_ref().and_then(named)),
            addrs: ws_addrs,
            allow_origins: if self.ws_allow_origin.is_empty() {
                file.ws_allow_origins.clone().unwrap_or_default()
            } else {
                self.ws_allow_origin.clone()
            },
        };
        let id = NodeId(self.id.or(file.id).unwrap_or(1));
        let client_listen = self
            .client_addr
            .or(file.client_addr)
            .unwrap_or_else(|| HostPort::from(SocketAddr::from(([127, 0, 0, 1], 7001))));
        let client_addr = resolve_listen("--client-addr", &client_listen)?;
        let peer_addr = resolve_listen(
            "--peer-addr",
            &self
                .peer_addr
                .or(file.peer_addr)
                .unwrap_or_else(|| HostPort::from(SocketAddr::from(([127, 0, 0, 1], 7101)))),
        )?;
        let advertise_peer_addr = self.advertise_peer_addr.or(file.advertise_peer_addr);
        let peers = match (&self.peers, &file.peers) {
            (Some(list), _) => parse_members("--peers", list)?,
            (None, Some(table)) => ConfigFile::members("peers", table)?,
            (None, None) => [(
                id,
                advertise_peer_addr
                    .clone()
                    .unwrap_or_else(|| HostPort::from(peer_addr)),
            )]
            .into(),
        };
        let client_addrs = match (&self.client_addrs, &file.client_addrs) {
            (Some(list), _) => parse_members("--client-addrs", list)?,
            (None, Some(table)) => ConfigFile::members("client_addrs", table)?,
            (None, None) => Default::default(),
        };
        let fsync = match (self.fsync, &file.fsync) {
            (Some(f), _) => f,
            (None, Some(text)) => text
                .parse()
                .with_context(|| format!("fsync = {text:?} in the configuration file"))?,
            (None, None) => FsyncPolicy::Always,
        };
        let cfg = ServerConfig {
            auth,
            limits,
            id,
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("distlock-data")),
            client_addr,
            peer_addr,
            peers,
            client_addrs,
            advertise_client_addr: self
                .advertise_client_addr
                .or(file.advertise_client_addr)
                .or_else(|| named(&client_listen)),
            advertise_peer_addr,
            cluster_id: self
                .cluster_id
                .or(file.cluster_id)
                .unwrap_or_else(|| "distlock".to_owned()),
            fsync,
            raft: distlock_server::config::RaftTuning {
                snapshot_threshold: self.snapshot_every,
                compaction_margin: None,
                max_append_entries: None,
                max_append_bytes: None,
                max_inflight: None,
            },
            join: self.join || file.join.unwrap_or(false),
            force_new_cluster: self.force_new_cluster || file.force_new_cluster.unwrap_or(false),
            busy_poll: match (self.busy_poll, &file.busy_poll) {
                (Some(d), _) => Some(d),
                (None, Some(text)) => Some(parse_duration(text).map_err(|e| {
                    anyhow::anyhow!("busy_poll = {text:?} in the configuration file: {e}")
                })?),
                (None, None) => None,
            }
            .filter(|d| !d.is_zero()),
        };
        cfg.validate()?;
        ws.advertised()?;
        Ok((cfg, ws, metrics, tls))
    }
}

/// A listening address given as a host name, which is then also the
/// name others are told (rather than the address it resolved to here).
fn named(listen: &HostPort) -> Option<HostPort> {
    listen.socket_addr().is_none().then(|| listen.clone())
}

pub(crate) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let (cfg, ws, metrics, tls) = args.into_config()?;
    let tls = tls.load()?;
    if cfg.fsync == FsyncPolicy::Never {
        tracing::warn!(
            "--fsync never: acknowledged locks can be lost in a crash; use only for benchmarks"
        );
        eprintln!(
            "WARNING: --fsync never: acknowledged locks can be lost in a crash. Benchmarks only."
        );
    }
    let data_dir = cfg.data_dir.clone();
    let first_signal = async {
        shutdown_signal().await;
        // A second signal stops at once.
        tokio::spawn(async {
            shutdown_signal().await;
            eprintln!("second signal: exiting now");
            std::process::exit(130);
        });
    };
    let mut env = distlock_server::runtime::RuntimeEnv::files(&cfg, ws)?;
    // Always: a SIGHUP must never stop a server (its default action).
    tokio::spawn(reload_tls_on_sighup(tls.clone()));
    env.tls = tls;
    env.metrics = metrics;
    distlock_server::runtime::run(cfg, env, first_signal)
        .await
        .with_context(|| format!("distlock server (data in {})", data_dir.display()))
}

/// Reads the TLS files again on every SIGHUP: new handshakes use the new
/// certificates, open connections keep theirs. A reload that fails keeps
/// the certificates in force and says why.
async fn reload_tls_on_sighup(tls: ServerTlsSet) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: TLS certificates will not reload");
            return;
        };
        while hup.recv().await.is_some() {
            if tls.is_off() {
                tracing::info!("SIGHUP: no TLS settings to reload");
                continue;
            }
            match tls.reload() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificates reloaded"),
                Err(e) => tracing::error!(
                    error = %e,
                    "SIGHUP: TLS certificates not reloaded, the previous ones stay in force"
                ),
            }
        }
    }
    #[cfg(not(unix))]
    drop(tls);
}

/// Completes on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            biased;
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
