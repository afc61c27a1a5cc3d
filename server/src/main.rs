//! The `distlock` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use distlock_core::ids::NodeId;
use distlock_server::clock::MonotonicClock;
use distlock_server::config::{ServerConfig, parse_members};
use distlock_server::storage::FsyncPolicy;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// distlock: a distributed lock manager with fencing tokens and leases that never end early.
#[derive(Parser, Debug)]
#[command(name = "distlock", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs one server. With no flags: a single-server cluster on
    /// 127.0.0.1:7001 (clients) and 127.0.0.1:7101 (peers), data in ./distlock-data.
    Serve(ServeArgs),
    /// Runs a command while holding a lock; the fencing token is in
    /// $DISTLOCK_TOKEN. Exits with the command's status; 75 if the lock was
    /// not acquired, 69 if no quorum is reachable, 70 if the session was
    /// lost while the command ran (its process group is killed first).
    Lock(LockArgs),
}

#[derive(clap::Args, Debug)]
struct LockArgs {
    /// The lock's name.
    name: String,
    /// Wait at most this long for the lock (e.g. 30s); default: for ever.
    #[arg(long, value_parser = distlock_server::lock_cmd::parse_duration, conflicts_with = "try_")]
    wait: Option<std::time::Duration>,
    /// Give up at once if the lock is held.
    #[arg(long = "try")]
    try_: bool,
    /// The session's TTL.
    #[arg(long, default_value = "10s", value_parser = distlock_server::lock_cmd::parse_duration)]
    ttl: std::time::Duration,
    /// Hold the lock shared (many readers) rather than exclusive.
    #[arg(long)]
    shared: bool,
    /// Servers to talk to (else $DISTLOCK_SERVERS, else 127.0.0.1:7001).
    #[arg(
        long,
        env = "DISTLOCK_SERVERS",
        default_value = "127.0.0.1:7001",
        value_delimiter = ','
    )]
    servers: Vec<SocketAddr>,
    /// The command to run, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// This server's id (1 or more).
    #[arg(long, default_value_t = 1)]
    id: u64,
    /// Where to keep the log and snapshots.
    #[arg(long, default_value = "distlock-data")]
    data_dir: PathBuf,
    /// Address clients connect to.
    #[arg(long, default_value = "127.0.0.1:7001")]
    client_addr: SocketAddr,
    /// Address peers connect to.
    #[arg(long, default_value = "127.0.0.1:7101")]
    peer_addr: SocketAddr,
    /// Every member's peer address, this server's included: 1=HOST:PORT,2=...
    /// (default: this server alone).
    #[arg(long)]
    peers: Option<String>,
    /// Every member's client address, for client failover: 1=HOST:PORT,2=...
    /// (default: only this server's).
    #[arg(long)]
    client_addrs: Option<String>,
    /// The cluster's name; peers and clients naming another are refused.
    #[arg(long, default_value = "distlock")]
    cluster_id: String,
    /// `always` (default): fsync before acknowledging; `never`: for benchmarks only.
    #[arg(long, default_value = "always")]
    fsync: FsyncPolicy,
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<ServerConfig> {
        let id = NodeId(self.id);
        let peers = match &self.peers {
            Some(list) => parse_members("--peers", list)?,
            None => [(id, self.peer_addr)].into(),
        };
        let mut client_addrs = match &self.client_addrs {
            Some(list) => parse_members("--client-addrs", list)?,
            None => Default::default(),
        };
        client_addrs.insert(id, self.client_addr);
        let cfg = ServerConfig {
            id,
            data_dir: self.data_dir,
            client_addr: self.client_addr,
            peer_addr: self.peer_addr,
            peers,
            client_addrs,
            cluster_id: self.cluster_id,
            fsync: self.fsync,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Lock(args) => {
            let request = distlock_server::lock_cmd::LockRequest {
                servers: args.servers,
                name: args.name,
                wait: if args.try_ {
                    Some(std::time::Duration::ZERO)
                } else {
                    args.wait
                },
                ttl: args.ttl,
                shared: args.shared,
                command: args.command,
            };
            let code = runtime.block_on(distlock_server::lock_cmd::run(request));
            std::process::exit(code);
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = args.into_config()?;
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
    distlock_server::runtime::run(cfg, Arc::new(MonotonicClock::new()), first_signal)
        .await
        .with_context(|| format!("distlock server (data in {})", data_dir.display()))
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
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
