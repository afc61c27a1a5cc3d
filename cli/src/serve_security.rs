//! The `serve` flags of authentication (`--auth-*`) and client limits
//! (`--limit-*`), with the `[auth]` and `[limits]` tables of the
//! configuration file beneath them.

use crate::exit::parse_duration;
use distlock_server::auth::AuthConfig;
use distlock_server::config::ConfigFile;
use distlock_server::limits::Limits;
use std::path::PathBuf;
use std::time::Duration;

/// `serve`'s authentication and limit flags.
#[derive(clap::Args, Debug)]
pub(crate) struct SecurityArgs {
    /// Turns authentication on: principals, their bearer-token digests or
    /// certificate identities, their roles, and the peers' cluster secret
    /// (format in docs/SECURITY.md). Read again whenever it changes.
    /// Without it, any client that reaches the client ports may take and
    /// read every lock.
    #[arg(long, env = "DISTLOCK_AUTH_FILE", value_name = "FILE")]
    auth_file: Option<PathBuf>,
    /// Without --auth-file, let clients on other hosts change the
    /// membership and take snapshots (by default only clients connecting
    /// from a loopback address may).
    #[arg(long, env = "DISTLOCK_AUTH_ALLOW_REMOTE_ADMIN")]
    auth_allow_remote_admin: bool,
    /// Client connections at once, TCP and WebSocket together [default: 8192].
    #[arg(long, env = "DISTLOCK_LIMIT_CONNECTIONS", value_name = "N")]
    limit_connections: Option<u32>,
    /// Client connections at once from one address [default: 1024].
    #[arg(long, env = "DISTLOCK_LIMIT_CONNECTIONS_PER_SOURCE", value_name = "N")]
    limit_connections_per_source: Option<u32>,
    /// Live sessions one principal may open through this server (without
    /// authentication, one source address is one principal) [default: 1024].
    #[arg(long, env = "DISTLOCK_LIMIT_SESSIONS_PER_PRINCIPAL", value_name = "N")]
    limit_sessions_per_principal: Option<u32>,
    /// Locks one connection may watch [default: 256].
    #[arg(long, env = "DISTLOCK_LIMIT_WATCHES", value_name = "N")]
    limit_watches: Option<u32>,
    /// Unanswered requests on one connection [default: 4096].
    #[arg(long, env = "DISTLOCK_LIMIT_IN_FLIGHT", value_name = "N")]
    limit_in_flight: Option<u32>,
    /// Requests per second on one connection, sustained [default: 20000].
    #[arg(long, env = "DISTLOCK_LIMIT_RATE", value_name = "N")]
    limit_rate: Option<u32>,
    /// How long a frame may take to arrive once it has started [default: 10s].
    #[arg(long, env = "DISTLOCK_LIMIT_FRAME_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    limit_frame_timeout: Option<Duration>,
}

impl SecurityArgs {
    /// The authentication and limits these flags and `file` give (flags
    /// win).
    ///
    /// # Errors
    /// A limit of zero, or a duration in the file that does not parse.
    pub(crate) fn resolve(&self, file: &ConfigFile) -> anyhow::Result<(AuthConfig, Limits)> {
        let auth_table = file.auth.clone().unwrap_or_default();
        let auth = AuthConfig {
            file: self.auth_file.clone().or(auth_table.file),
            allow_remote_admin: self.auth_allow_remote_admin
                || auth_table.allow_remote_admin.unwrap_or(false),
        };
        let t = file.limits.clone().unwrap_or_default();
        let d = Limits::default();
        let frame_timeout = match (self.limit_frame_timeout, &t.frame_timeout) {
            (Some(v), _) => v,
            (None, Some(text)) => parse_duration(text).map_err(|e| {
                anyhow::anyhow!("limits.frame_timeout = {text:?} in the configuration file: {e}")
            })?,
            (None, None) => d.frame_timeout,
        };
        let limits = Limits {
            connections: pick(
                "connections",
                self.limit_connections,
                t.connections,
                d.connections,
            )?,
            connections_per_source: pick(
                "connections-per-source",
                self.limit_connections_per_source,
                t.connections_per_source,
                d.connections_per_source,
            )?,
            sessions_per_principal: pick(
                "sessions-per-principal",
                self.limit_sessions_per_principal,
                t.sessions_per_principal,
                d.sessions_per_principal,
            )?,
            watches_per_connection: pick(
                "watches",
                self.limit_watches,
                t.watches,
                d.watches_per_connection,
            )?,
            in_flight: pick("in-flight", self.limit_in_flight, t.in_flight, d.in_flight)?,
            rate: pick("rate", self.limit_rate, t.rate, d.rate)?,
            frame_timeout,
        };
        if limits.frame_timeout.is_zero() {
            anyhow::bail!("--limit-frame-timeout must be above zero");
        }
        Ok((auth, limits))
    }
}

fn pick(name: &str, flag: Option<u32>, file: Option<u32>, default: u32) -> anyhow::Result<u32> {
    let v = flag.or(file).unwrap_or(default);
    if v == 0 {
        anyhow::bail!("--limit-{name} must be at least 1");
    }
    Ok(v)
}
