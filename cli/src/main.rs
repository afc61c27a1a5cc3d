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
mod serve_cmd;
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
use crate::serve_cmd::{ServeArgs, serve, shutdown_signal};
use crate::status_cmd::StatusRequest;
use anyhow::Context;
use clap::{Parser, Subcommand};
use distlock_core::ids::NodeId;
use distlock_server::storage::FsyncPolicy;
use distlock_transport_tcp::HostPort;
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
