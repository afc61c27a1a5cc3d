//! The `distlock` command line: `serve` runs a server of the
//! `distlock-server` library; the other commands are clients built on
//! `distlock-client`. The commands are this binary's own, not a library's.

mod auth_cmd;
mod bench_cmd;
mod credentials;
mod dev_cmd;
mod election_cmd;
mod exit;
mod listing_cmd;
mod lock_cmd;
mod members_cmd;
mod serve_security;
mod snapshot_cmd;
mod status_cmd;
mod tls_args;
mod tls_cmd;
mod waiting;
mod who;

use crate::bench_cmd::BenchRequest;
use crate::dev_cmd::DevCluster;
use crate::exit::parse_duration;
use crate::members_cmd::MembersRequest;
use crate::status_cmd::StatusRequest;
use anyhow::Context;
use clap::{Parser, Subcommand};
use distlock_core::ids::NodeId;
use distlock_server::config::{ConfigFile, ServerConfig, WsConfig, parse_members, resolve_listen};
use distlock_server::metrics::http::MetricsConfig;
use distlock_server::storage::FsyncPolicy;
use distlock_server::tls::{ServerTlsSet, TlsSettings};
use distlock_transport_tcp::HostPort;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// distlock: a distributed lock manager with fencing tokens and leases that never end early.
#[derive(Parser, Debug)]
#[command(name = "distlock", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as `text` (default) or `json` (one object a line, with
    /// every field: for log collectors). Logs go to standard error.
    #[arg(
        long,
        global = true,
        env = "DISTLOCK_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    /// The least severe level logged: error, warn, info (default), debug,
    /// trace, or a filter such as `info,distlock_server=debug`. Without it,
    /// RUST_LOG is read as before.
    #[arg(
        long,
        global = true,
        env = "DISTLOCK_LOG_LEVEL",
        value_name = "LEVEL|FILTER"
    )]
    log_level: Option<String>,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines with key=value fields.
    Text,
    /// One JSON object per line.
    Json,
}

/// Sets up logging as `--log-format` and `--log-level` (else RUST_LOG,
/// else `info`) say.
fn init_logging(format: LogFormat, level: Option<&str>) -> anyhow::Result<()> {
    let filter = match level {
        Some(l) => tracing_subscriber::EnvFilter::try_new(l).with_context(|| {
            format!("--log-level {l:?}: expected error, warn, info, debug, trace or a filter")
        })?,
        None => {
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs one server. With no flags: a single-server cluster on
    /// 127.0.0.1:7001 (clients), 127.0.0.1:7101 (peers) and 127.0.0.1:7201
    /// (WebSocket clients and the dashboard), data in ./distlock-data.
    Serve(Box<ServeArgs>),
    /// Runs a throwaway local cluster in this process (data in a temporary
    /// directory, deleted on Ctrl-C) and prints the --servers value to use.
    Dev(DevArgs),
    /// Runs a command while holding a lock; the fencing token is in
    /// $DISTLOCK_TOKEN. Exits with the command's status; 75 if the lock was
    /// not acquired, 69 if no quorum is reachable, 70 if the session was
    /// lost while the command ran (its process group is killed first).
    /// Ctrl-C, SIGTERM and SIGHUP are passed on to the command's process
    /// group; once the command has exited, what is left of its group is
    /// killed, the lock released, and the exit status is the command's
    /// (128 + the signal that ended it).
    Lock(LockArgs),
    /// Shows the cluster (leader, term, commit index, members) or, given a
    /// lock's name, its holders with their tokens and its waiters.
    Status(StatusArgs),
    /// Measures acquire+release pairs per second and acquire latency with
    /// concurrent clients; client i uses key i mod --keys.
    Bench(BenchArgs),
    /// Changes the cluster's members one server at a time (rolling
    /// updates): start a server with `serve --join`, `add` it, `promote` it
    /// once it has caught up, `remove` the one it replaces.
    Members(MembersArgs),
    /// Backups and disaster recovery: `save` a consistent snapshot of the
    /// lock state (taken through the leader), `inspect` one, `restore` one
    /// into the data directories of a new cluster.
    Snapshot(crate::snapshot_cmd::SnapshotArgs),
    /// TLS helpers: `distlock tls dev-ca DIR --nodes 3` makes a development
    /// CA with a certificate for each server and one for a client.
    Tls(tls_cmd::TlsArgs),
    /// Runs a command while leading an election: campaigns with VALUE,
    /// waits until elected, then runs CMD with its term of office (a
    /// fencing token, higher for every later leader) in $DISTLOCK_TOKEN and
    /// VALUE in $DISTLOCK_VALUE. Exit statuses and signals as for `lock`.
    /// An election is the exclusive lock NAME carrying its leader's value.
    Elect(ElectArgs),
    /// Shows an election's leader: session, name, term of office (token)
    /// and value; exits 3 if nobody leads. With --watch, prints the leader
    /// each time it changes, until interrupted.
    Leader(LeaderArgs),
    /// Lists the locks that are held, waited for or in lock-delay (those
    /// whose names start with PREFIX), with who holds and waits for each:
    /// session, name, host, pid, token.
    Locks(LocksArgs),
    /// Lists the live sessions with who opened them (name, host, pid).
    Sessions(SessionsArgs),
    /// Ends a session as the expiry of its lease would (an operator's
    /// act): its locks are lost, into lock-delay where their acquirers
    /// asked for one, and its command is killed by its `distlock lock`.
    /// Exits 1 if the session is not live.
    Revoke(RevokeArgs),
    /// Prints a completion script for a shell: `distlock completions bash >
    /// /etc/bash_completion.d/distlock` (also zsh, fish, elvish,
    /// powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Bearer tokens for servers started with --auth-file: `new-token`
    /// draws one, `hash-token` prints the digest the auth file stores.
    #[command(subcommand)]
    Auth(auth_cmd::AuthCommand),
}

#[derive(clap::Args, Debug)]
struct MembersArgs {
    #[command(subcommand)]
    change: MembersChange,
    /// Give up (exit 69) when the change has not committed within this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration, global = true)]
    timeout: Duration,
    /// Print one JSON object (ok, id, change, index, already; or ok, error).
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    servers: ServersArg,
}

#[derive(Subcommand, Debug)]
enum MembersChange {
    /// Adds a server (started with `serve --join`) as a learner: it
    /// receives the log but does not vote yet.
    Add {
        /// The new server's id (its `serve --id`).
        id: u64,
        /// Where its peers reach it (its `serve --peer-addr`).
        #[arg(long, value_name = "HOST:PORT")]
        peer_addr: HostPort,
        /// Where its clients reach it (its `serve --client-addr`).
        #[arg(long, value_name = "HOST:PORT")]
        client_addr: HostPort,
        /// Where its WebSocket clients reach it, if anywhere.
        #[arg(long, value_name = "HOST:PORT")]
        ws_addr: Option<HostPort>,
    },
    /// Makes a learner a voter; waits (up to --timeout) until it has caught up.
    Promote {
        /// The learner's id.
        id: u64,
    },
    /// Removes a server (the leader too: it hands over first). Stop the
    /// server afterwards.
    Remove {
        /// The server's id.
        id: u64,
    },
}

/// Where the cluster is, for the commands that talk to one.
#[derive(clap::Args, Debug)]
struct ServersArg {
    /// Servers to talk to, HOST:PORT comma-separated; host names are
    /// resolved on every dial (else $DISTLOCK_SERVERS, else 127.0.0.1:7001).
    #[arg(
        long,
        env = "DISTLOCK_SERVERS",
        default_value = "127.0.0.1:7001",
        value_delimiter = ',',
        global = true
    )]
    servers: Vec<HostPort>,
    #[command(flatten)]
    credentials: credentials::CredentialArgs,
    #[command(flatten)]
    tls: tls_args::ClientTlsArgs,
}

impl ServersArg {
    /// The servers and the TLS settings to reach them with.
    fn load(self) -> anyhow::Result<(Vec<HostPort>, Option<distlock_client::ClientTls>)> {
        Ok((self.servers, self.tls.load()?))
    }
}

#[derive(clap::Args, Debug)]
struct LockArgs {
    /// The lock's name.
    name: String,
    /// Hold the lock shared (many readers) rather than exclusive.
    #[arg(long, conflicts_with = "semaphore")]
    shared: bool,
    /// Hold one of N permits (a counting semaphore: at most N holders at
    /// once); every holder of the lock must name the same N.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    semaphore: Option<u32>,
    #[command(flatten)]
    hold: HoldArgs,
    /// The command to run, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

#[derive(clap::Args, Debug)]
struct ElectArgs {
    /// The election's name.
    name: String,
    /// The value to lead with (an address, say), at most 4,096 bytes.
    value: String,
    #[command(flatten)]
    hold: HoldArgs,
    /// The command to run while leader, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// How `lock` and `elect` wait, hold and name their session.
#[derive(clap::Args, Debug)]
struct HoldArgs {
    /// Wait at most this long for the lock, or to be elected (e.g. 30s);
    /// default: for ever.
    #[arg(long, value_parser = parse_duration, conflicts_with = "try_")]
    wait: Option<Duration>,
    /// Give up at once if the lock is held (another leads).
    #[arg(long = "try")]
    try_: bool,
    /// The session's TTL: how soon the lock (the leadership) passes on if
    /// this process dies.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    ttl: Duration,
    /// If this session is lost while holding the lock, keep the lock
    /// unavailable for this long (for resources that cannot check fencing
    /// tokens) [default: 0s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    lock_delay: Option<Duration>,
    /// The session's name, shown to operators by `locks`, `sessions`,
    /// `leader` and `status NAME` [default: USER@HOST PID].
    #[arg(long = "name", value_name = "NAME")]
    session_name: Option<String>,
    /// A label for the session, shown with its name (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// No status line while waiting (one is kept on stderr, when it is a
    /// terminal, naming the holder and our place in the queue).
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    servers: ServersArg,
}

impl HoldArgs {
    /// The request of `distlock lock` or `elect` (`campaign`); exits 2 on
    /// a bad `--name` or `--label`.
    ///
    /// # Errors
    /// When the TLS files cannot be read.
    fn request(
        self,
        name: String,
        mode: distlock_client::Mode,
        campaign: Option<String>,
        command: Vec<String>,
    ) -> anyhow::Result<lock_cmd::LockRequest> {
        let meta = match who::session_meta(self.session_name.as_deref(), &self.labels) {
            Ok(meta) => meta,
            Err(why) => {
                eprintln!("distlock: {why}");
                std::process::exit(2);
            }
        };
        let (servers, tls) = self.servers.load()?;
        Ok(lock_cmd::LockRequest {
            servers,
            tls,
            name,
            wait: if self.try_ {
                Some(Duration::ZERO)
            } else {
                self.wait
            },
            ttl: self.ttl,
            mode,
            lock_delay: self.lock_delay.unwrap_or_default(),
            command,
            meta,
            campaign,
            quiet: self.quiet,
        })
    }
}

#[derive(clap::Args, Debug)]
struct LeaderArgs {
    /// The election's name.
    name: String,
    /// Keep printing the leader each time it changes.
    #[arg(long)]
    watch: bool,
    /// Print JSON: {"election", "leader": null or {session, token, value,
    /// owner}}, one object per line with --watch.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    servers: ServersArg,
}

#[derive(clap::Args, Debug)]
struct LocksArgs {
    /// Only locks whose names start with this.
    #[arg(default_value = "")]
    prefix: String,
    /// Print one JSON object: {"locks": [...]}, each lock as in the
    /// protocol's `Locks` answer (name, kind, mode, holders with session,
    /// token, since and owner, waiters, delay).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    servers: ServersArg,
}

#[derive(clap::Args, Debug)]
struct SessionsArgs {
    /// Print one JSON object: {"sessions": [...]}, each session as in the
    /// protocol's `Sessions` answer (session, ttl_ms, held, waiting, owner).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    servers: ServersArg,
}

#[derive(clap::Args, Debug)]
struct RevokeArgs {
    /// The session's id, as `distlock sessions` and `distlock locks` show it.
    #[arg(value_parser = listing_cmd::parse_session)]
    session: distlock_core::locks::SessionId,
    #[command(flatten)]
    servers: ServersArg,
}

#[derive(clap::Args, Debug)]
struct StatusArgs {
    /// A lock to show; without it, the cluster.
    name: Option<String>,
    /// Print one JSON object (fields: leader, term, commit_index, members;
    /// with a lock also lock, mode, kind, holders, waiters, lock_delay_ms).
    #[arg(long)]
    json: bool,
    /// Readiness probe: ask the first server that answers whether it is
    /// ready (it knows a leader and is a member: what its /readyz says) and
    /// exit 0 if so, 75 if not, 69 if no server answers.
    #[arg(long, conflicts_with = "name")]
    check: bool,
    #[command(flatten)]
    servers: ServersArg,
}

#[derive(clap::Args, Debug)]
struct BenchArgs {
    /// Concurrent clients, each with its own connection and session.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Distinct locks (1: every client contends for one lock).
    #[arg(long, default_value_t = 64)]
    keys: usize,
    /// How long to measure.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// How long to run before measuring.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Talk WebSocket (binary frames) instead of TCP: --servers are then
    /// the servers' WebSocket addresses (--ws-addr).
    #[arg(long)]
    ws: bool,
    #[command(flatten)]
    servers: ServersArg,
}

#[derive(clap::Args, Debug)]
struct DevArgs {
    /// How many servers.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Server i (from 0) listens for clients on base-port + i and for peers
    /// on base-port + 100 + i.
    #[arg(long, default_value_t = 7001)]
    base_port: u16,
    /// Keep the data here instead of in a temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// `always` (default) or `never` (faster, loses data on a crash).
    #[arg(long, default_value = "always")]
    fsync: FsyncPolicy,
    /// Threads running the servers' network tasks (1: all on one thread).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    worker_threads: u16,
}

/// `distlock serve`'s settings. Each comes from its flag, else from the
/// environment variable `DISTLOCK_<FLAG>` (clap reads it as if it were the
/// flag), else from the `--config` file, else from its default.
#[derive(clap::Args, Debug)]
struct ServeArgs {
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
    worker_threads: u16,
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

fn main() {
    if let Err(e) = run() {
        // The whole chain of causes, on one line each, without a backtrace.
        eprintln!("distlock: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.log_level.as_deref())?;
    match &cli.command {
        Command::Lock(LockArgs {
            hold: HoldArgs { servers, .. },
            ..
        })
        | Command::Elect(ElectArgs {
            hold: HoldArgs { servers, .. },
            ..
        })
        | Command::Leader(LeaderArgs { servers, .. })
        | Command::Locks(LocksArgs { servers, .. })
        | Command::Sessions(SessionsArgs { servers, .. })
        | Command::Revoke(RevokeArgs { servers, .. })
        | Command::Status(StatusArgs { servers, .. })
        | Command::Members(MembersArgs { servers, .. })
        | Command::Bench(BenchArgs { servers, .. }) => servers.credentials.install()?,
        Command::Snapshot(args) => args.credentials().install()?,
        _ => {}
    }
    // A server's work funnels through one node task, so by default it runs
    // every task on one thread: cross-thread wake-ups cost more than they
    // parallelise (measured: +20% pairs/s at 64 clients). Storage IO has
    // its own blocking thread either way.
    let worker_threads = match &cli.command {
        Command::Serve(a) => usize::from(a.worker_threads),
        Command::Dev(a) => usize::from(a.worker_threads),
        _ => 0,
    };
    let mut builder = if worker_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if worker_threads > 1 {
            b.worker_threads(worker_threads);
        }
        b
    };
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(*args)),
        Command::Auth(cmd) => auth_cmd::run(cmd),
        Command::Dev(args) => {
            let dev = DevCluster {
                nodes: args.nodes,
                base_port: args.base_port,
                data_dir: args.data_dir,
                fsync: args.fsync,
            };
            runtime
                .block_on(dev_cmd::run(dev, shutdown_signal()))
                .context("distlock dev")
        }
        Command::Lock(args) => {
            let mode = match (args.shared, args.semaphore) {
                (_, Some(n)) => distlock_client::Mode::Semaphore(n),
                (true, None) => distlock_client::Mode::Shared,
                (false, None) => distlock_client::Mode::Exclusive,
            };
            let request = args.hold.request(args.name, mode, None, args.command)?;
            let code = runtime.block_on(lock_cmd::run(request));
            std::process::exit(code);
        }
        Command::Elect(args) => {
            let mode = distlock_client::Mode::Exclusive;
            let request = args
                .hold
                .request(args.name, mode, Some(args.value), args.command)?;
            let code = runtime.block_on(lock_cmd::run(request));
            std::process::exit(code);
        }
        Command::Leader(args) => {
            let (servers, tls) = args.servers.load()?;
            let code = runtime.block_on(election_cmd::leader(
                &servers,
                tls.as_ref(),
                &args.name,
                args.watch,
                args.json,
            ));
            std::process::exit(code);
        }
        Command::Locks(args) => {
            let (servers, tls) = args.servers.load()?;
            let cluster = listing_cmd::Cluster::new(&servers, tls.as_ref());
            let code = runtime.block_on(listing_cmd::locks(cluster, &args.prefix, args.json));
            std::process::exit(code);
        }
        Command::Sessions(args) => {
            let (servers, tls) = args.servers.load()?;
            let cluster = listing_cmd::Cluster::new(&servers, tls.as_ref());
            let code = runtime.block_on(listing_cmd::sessions(cluster, args.json));
            std::process::exit(code);
        }
        Command::Revoke(args) => {
            let (servers, tls) = args.servers.load()?;
            let cluster = listing_cmd::Cluster::new(&servers, tls.as_ref());
            let code = runtime.block_on(listing_cmd::revoke(cluster, args.session));
            std::process::exit(code);
        }
        Command::Status(args) => {
            let (servers, tls) = args.servers.load()?;
            let request = StatusRequest {
                servers,
                tls,
                lock: args.name,
                json: args.json,
                check: args.check,
            };
            let code = runtime.block_on(status_cmd::run(request));
            std::process::exit(code);
        }
        Command::Members(args) => {
            let change = match args.change {
                MembersChange::Add {
                    id,
                    peer_addr,
                    client_addr,
                    ws_addr,
                } => members_cmd::add(NodeId(id), peer_addr, client_addr, ws_addr),
                MembersChange::Promote { id } => {
                    distlock_core::raft::MembershipChange::Promote(NodeId(id))
                }
                MembersChange::Remove { id } => {
                    distlock_core::raft::MembershipChange::Remove(NodeId(id))
                }
            };
            let (servers, tls) = args.servers.load()?;
            let request = MembersRequest {
                servers,
                tls,
                change,
                timeout: args.timeout,
                json: args.json,
            };
            let code = runtime.block_on(members_cmd::run(request));
            std::process::exit(code);
        }
        Command::Snapshot(args) => {
            let code = runtime.block_on(crate::snapshot_cmd::run(args));
            std::process::exit(code);
        }
        Command::Tls(args) => tls_cmd::run(&args),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "distlock", &mut std::io::stdout());
            Ok(())
        }
        Command::Bench(args) => {
            let (servers, tls) = args.servers.load()?;
            let request = BenchRequest {
                servers,
                tls,
                clients: args.clients,
                keys: args.keys,
                duration: args.duration,
                warmup: args.warmup,
                json: args.json,
                transport: if args.ws {
                    distlock_client::Transport::WebSocket
                } else {
                    distlock_client::Transport::Tcp
                },
            };
            let code = runtime
                .block_on(bench_cmd::run(request))
                .context("distlock bench")?;
            std::process::exit(code);
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
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
