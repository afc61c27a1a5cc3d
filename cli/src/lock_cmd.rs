//! `distlock lock NAME -- CMD...`: run a command while holding a lock, with
//! the fencing token in its environment (ARCHITECTURE.md §12); and
//! `distlock elect NAME VALUE -- CMD...`, the same while leading an
//! election (whose lock is NAME) with VALUE.

use crate::exit::{EXIT_NOT_ACQUIRED, EXIT_SESSION_LOST, EXIT_UNAVAILABLE};
use distlock_client::{Client, ClientError, ClientOptions, Guard, Leadership};
use distlock_core::client::{ClientError as CoreError, Config};
use distlock_core::locks::FencingToken;
use distlock_core::locks::{Mode, SessionMeta, Wait};
use distlock_transport_tcp::HostPort;
use nix::sys::signal::Signal;
use std::time::Duration;

/// How long to keep trying to reach a server (or open a session) before
/// giving up with [`EXIT_UNAVAILABLE`].
const CONNECT_PATIENCE: Duration = Duration::from_secs(10);

/// What `distlock lock` was asked to do.
#[derive(Debug, Clone)]
pub(crate) struct LockRequest {
    /// The servers to try.
    pub(crate) servers: Vec<HostPort>,
    /// TLS to reach them with (`None`: plain TCP).
    pub(crate) tls: Option<distlock_client::ClientTls>,
    /// The lock's name.
    pub(crate) name: String,
    /// How long to wait; `None` for ever, zero for `--try`.
    pub(crate) wait: Option<Duration>,
    /// The session's TTL.
    pub(crate) ttl: Duration,
    /// Exclusive, shared, or one of a semaphore's permits.
    pub(crate) mode: Mode,
    /// How long the lock stays unavailable if the session is lost holding
    /// it.
    pub(crate) lock_delay: Duration,
    /// The command and its arguments.
    pub(crate) command: Vec<String>,
    /// Who opens the session.
    pub(crate) meta: SessionMeta,
    /// Campaign in the election `name` with this value (`distlock
    /// elect`) rather than take the lock.
    pub(crate) campaign: Option<String>,
    /// No status line while waiting.
    pub(crate) quiet: bool,
}

/// What the command runs under: a lock, or the leadership of an election.
enum Held {
    Lock(Guard),
    Leader(Leadership),
}

impl Held {
    fn token(&self) -> FencingToken {
        match self {
            Self::Lock(g) => g.token(),
            Self::Leader(l) => l.token(),
        }
    }

    /// Gives the lock (or the leadership) back; `false` when the
    /// session turned out lost, so the lock was not held throughout.
    async fn release(self) -> bool {
        let released = match self {
            Self::Lock(g) => g.release().await,
            Self::Leader(l) => l.resign().await,
        };
        !matches!(released, Err(ClientError::Session(CoreError::SessionLost)))
    }
}

/// Runs the command under the lock; returns the process exit status.
pub(crate) async fn run(req: LockRequest) -> i32 {
    // Servers may still be starting: keep trying for a while.
    let connected = Client::connect_within(
        req.servers.clone(),
        ClientOptions {
            lock_delay: req.lock_delay,
            tls: req.tls.clone(),
            session: Config {
                session_meta: Some(req.meta.clone()),
                auth: crate::credentials::token(),
                ..Config::default()
            },
            ..ClientOptions::default()
        },
        CONNECT_PATIENCE,
    )
    .await;
    let client = match connected {
        Ok(c) => c,
        Err(e) => {
            let servers: Vec<&str> = req.servers.iter().map(HostPort::as_str).collect();
            eprintln!(
                "distlock: cannot reach any server of {}: {e}",
                servers.join(", ")
            );
            return EXIT_UNAVAILABLE;
        }
    };
    let session = match tokio::time::timeout(CONNECT_PATIENCE, client.open_session(req.ttl)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            eprintln!("distlock: cannot open a session: {e}");
            return EXIT_UNAVAILABLE;
        }
        Err(_) => {
            eprintln!("distlock: no quorum answered within 10 s");
            return EXIT_UNAVAILABLE;
        }
    };
    let mode = req.mode;
    let wait = match req.wait {
        None => Wait::Forever,
        Some(d) if d.is_zero() => Wait::Try,
        Some(d) => Wait::For(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    };
    let grant = async {
        match &req.campaign {
            None => session
                .lock_with(&req.name, mode, wait)
                .await
                .map(Held::Lock),
            Some(value) => session
                .campaign_with(&req.name, value, wait)
                .await
                .map(Held::Leader),
        }
    };
    let held = crate::waiting::showing(&session, &req.name, req.quiet, grant).await;
    let guard = match held {
        Ok(g) => g,
        Err(ClientError::NotGranted) => {
            let what = if req.campaign.is_some() {
                "is led by someone else"
            } else {
                "is held by someone else"
            };
            eprintln!("distlock: {} {what}", req.name);
            return EXIT_NOT_ACQUIRED;
        }
        Err(e) => {
            eprintln!("distlock: cannot acquire {}: {e}", req.name);
            return EXIT_UNAVAILABLE;
        }
    };
    let token = guard.token();
    let Some((program, args)) = req.command.split_first() else {
        eprintln!("distlock: no command given after --");
        return 64;
    };
    // Caught before the command starts, so that it starts with the
    // default dispositions (exec resets caught signals, not ignored ones):
    // started from a background job or `nohup`, we would otherwise pass
    // on a Ctrl-C or SIGHUP that the command ignores, and wait for ever.
    let mut signals = Forwarded::new();
    let mut child = {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env("DISTLOCK_TOKEN", token.0.to_string())
            .env("DISTLOCK_LOCK", &req.name);
        if let Some(value) = &req.campaign {
            cmd.env("DISTLOCK_VALUE", value);
        }
        #[cfg(unix)]
        cmd.process_group(0);
        match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("distlock: cannot run {program:?}: {e}");
                let _ = guard.release().await;
                return 127;
            }
        }
    };
    // The group's id, kept: `child.id()` is gone once it has been reaped.
    let pgid = child.id();
    let lost = session.lost();
    tokio::pin!(lost);
    let mut interrupted = false;
    let code = loop {
        tokio::select! {
            biased;
            () = &mut lost => {
                eprintln!("distlock: session lost while {program:?} ran; killing its process group");
                signal_group(&child, Signal::SIGKILL);
                let _ = child.wait().await;
                return EXIT_SESSION_LOST;
            }
            status = child.wait() => break status.map_or(1, |s| exit_code(&s)),
            signal = signals.next() => {
                // The command runs in a process group of its own, so the
                // terminal's Ctrl-C reaches only us: pass it on, and keep
                // holding the lock until the command has exited.
                signal_group(&child, signal);
                interrupted = true;
            }
        }
    };
    if interrupted {
        // What the command left behind in its group (a background job of
        // a shell ignores SIGINT) must not outlive the lock it ran under.
        signal_pgid(pgid, Signal::SIGKILL);
    }
    // A revocation (or a lease that ran out between keepalives) may be
    // learnt only now: the command finished, but not under the lock.
    if !guard.release().await || session.is_lost() {
        eprintln!(
            "distlock: session lost before {program:?} finished; the lock was not held throughout"
        );
        return EXIT_SESSION_LOST;
    }
    let _ = session.close().await;
    code
}

/// The shell's convention: the command's status, or 128 + the signal that
/// ended it.
fn exit_code(status: &std::process::ExitStatus) -> i32 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return 128 + signal;
        }
    }
    status.code().unwrap_or(1)
}

/// Sends `signal` to the command's process group (its pgid is its pid).
fn signal_group(child: &tokio::process::Child, signal: Signal) {
    signal_pgid(child.id(), signal);
}

/// Sends `signal` to process group `pgid`, which outlives its leader while
/// any member runs.
fn signal_pgid(pgid: Option<u32>, signal: Signal) {
    let Some(pgid) = pgid.and_then(|p| i32::try_from(p).ok()) else {
        return;
    };
    // Never 0 or 1: those name our own group, or every process.
    if pgid <= 1 {
        return;
    }
    if let Err(e) = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), signal) {
        tracing::debug!(pgid, %signal, error = %e, "signalling the command's process group");
    }
}

/// SIGINT, SIGTERM and SIGHUP as they arrive, to pass on to the command.
struct Forwarded {
    /// `None` if the handlers could not be installed: nothing is passed on.
    streams: Option<[tokio::signal::unix::Signal; 3]>,
}

impl Forwarded {
    fn new() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let streams = (|| {
            Some([
                signal(SignalKind::interrupt()).ok()?,
                signal(SignalKind::terminate()).ok()?,
                signal(SignalKind::hangup()).ok()?,
            ])
        })();
        Self { streams }
    }

    /// The next signal received; pending for ever if none can be.
    async fn next(&mut self) -> Signal {
        let Some([int, term, hup]) = &mut self.streams else {
            return std::future::pending().await;
        };
        tokio::select! {
            Some(()) = int.recv() => Signal::SIGINT,
            Some(()) = term.recv() => Signal::SIGTERM,
            Some(()) = hup.recv() => Signal::SIGHUP,
            else => std::future::pending().await,
        }
    }
}
