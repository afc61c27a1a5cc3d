//! `distlock lock NAME -- CMD...`: run a command while holding a lock, with
//! the fencing token in its environment (ARCHITECTURE.md §12).

use crate::exit::{EXIT_NOT_ACQUIRED, EXIT_SESSION_LOST, EXIT_UNAVAILABLE};
use distlock_client::{Client, ClientError, ClientOptions};
use distlock_core::locks::{Mode, Wait};
use distlock_transport_tcp::HostPort;
use std::time::Duration;

/// How long to keep trying to reach a server (or open a session) before
/// giving up with [`EXIT_UNAVAILABLE`].
const CONNECT_PATIENCE: Duration = Duration::from_secs(10);

/// What `distlock lock` was asked to do.
#[derive(Debug, Clone)]
pub(crate) struct LockRequest {
    /// The servers to try.
    pub(crate) servers: Vec<HostPort>,
    /// The lock's name.
    pub(crate) name: String,
    /// How long to wait; `None` for ever, zero for `--try`.
    pub(crate) wait: Option<Duration>,
    /// The session's TTL.
    pub(crate) ttl: Duration,
    /// Hold it shared rather than exclusive.
    pub(crate) shared: bool,
    /// The command and its arguments.
    pub(crate) command: Vec<String>,
}

/// Runs the command under the lock; returns the process exit status.
pub(crate) async fn run(req: LockRequest) -> i32 {
    // Servers may still be starting: keep trying for a while.
    let connected = Client::connect_within(
        req.servers.clone(),
        ClientOptions::default(),
        CONNECT_PATIENCE,
    )
    .await;
    let client = match connected {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "distlock: cannot reach any server of {:?}: {e}",
                req.servers
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
    let mode = if req.shared {
        Mode::Shared
    } else {
        Mode::Exclusive
    };
    let wait = match req.wait {
        None => Wait::Forever,
        Some(d) if d.is_zero() => Wait::Try,
        Some(d) => Wait::For(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    };
    let guard = match session.lock_with(&req.name, mode, wait).await {
        Ok(g) => g,
        Err(ClientError::NotGranted) => {
            eprintln!("distlock: {} is held by someone else", req.name);
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
    let mut child = {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env("DISTLOCK_TOKEN", token.0.to_string())
            .env("DISTLOCK_LOCK", &req.name);
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
    let lost = session.lost();
    let code = tokio::select! {
        biased;
        () = lost => {
            eprintln!("distlock: session lost while {program:?} ran; killing its process group");
            kill_group(&child);
            let _ = child.wait().await;
            return EXIT_SESSION_LOST;
        }
        status = child.wait() => match status {
            Ok(s) => s.code().unwrap_or(1),
            Err(_) => 1,
        },
    };
    let _ = guard.release().await;
    let _ = session.close().await;
    code
}

fn kill_group(child: &tokio::process::Child) {
    let Some(pid) = child.id() else { return };
    // Never 0 or 1: `kill -- -1` would signal every process we may signal.
    if pid <= 1 {
        return;
    }
    // The command runs in its own process group (pgid = its pid). The `--`
    // matters: without it procps' kill reads `-PID` as options and signals
    // minus its first digit, which for a pid starting with 1 is -1: every
    // process.
    let _ = std::process::Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{pid}")])
        .status();
}
