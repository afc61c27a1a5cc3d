//! `distlock lock NAME -- CMD...`: run a command while holding a lock, with
//! the fencing token in its environment (ARCHITECTURE.md §12).

use crate::client::{Client, ClientError, ClientOptions};
use distlock_core::locks::{Mode, Wait};
use distlock_transport_tcp::HostPort;
use std::time::Duration;

/// Exit status when the lock was not acquired (try, or timeout).
pub const EXIT_NOT_ACQUIRED: i32 = 75;
/// Exit status when no quorum is reachable.
pub const EXIT_UNAVAILABLE: i32 = 69;
/// Exit status when the session was lost while the command ran (its
/// process group is killed first).
pub const EXIT_SESSION_LOST: i32 = 70;

/// How long to keep trying to reach a server (or open a session) before
/// giving up with [`EXIT_UNAVAILABLE`].
const CONNECT_PATIENCE: Duration = Duration::from_secs(10);

/// What `distlock lock` was asked to do.
#[derive(Debug, Clone)]
pub struct LockRequest {
    /// The servers to try.
    pub servers: Vec<HostPort>,
    /// The lock's name.
    pub name: String,
    /// How long to wait; `None` for ever, zero for `--try`.
    pub wait: Option<Duration>,
    /// The session's TTL.
    pub ttl: Duration,
    /// Hold it shared rather than exclusive.
    pub shared: bool,
    /// The command and its arguments.
    pub command: Vec<String>,
}

/// Parses `300us`, `500ms`, `30s`, `2m`, `1h` (a bare number is seconds),
/// to the microsecond.
///
/// # Errors
/// When the text is not such a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((t, "s"), |i| t.split_at(i));
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 30s or 2m"))?;
    let micros_per_unit = match unit {
        "us" | "µs" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use us, ms, s, m or h)"
            ));
        }
    };
    // Whole microseconds, rounded: 0.3ms is 300 µs, not 299.999.
    let micros = (value * micros_per_unit).round();
    if !(0.0..1e15).contains(&micros) {
        return Err(format!("{text:?} is not a duration"));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(Duration::from_micros(micros as u64))
}

/// Runs the command under the lock; returns the process exit status.
pub async fn run(req: LockRequest) -> i32 {
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

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_parse_in_the_usual_units() {
        assert_eq!(parse_duration("300us"), Ok(Duration::from_micros(300)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
        assert_eq!(parse_duration("0.3ms"), Ok(Duration::from_micros(300)));
        assert!(parse_duration("99999999999h").is_err());
    }
}
