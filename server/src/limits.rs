//! Limits on what clients may hold and send, each answered with a typed
//! error (`ProtoError::TooManyConnections`, `TooManySessions`,
//! `TooManyWatches`, `TooManyInFlight`, `RateLimited`, `FrameTimeout`).
//! The defaults are generous for applications and bound what one host
//! can take from a server.

use distlock_core::node::ClientLimits;
use std::time::Duration;

/// The limits of one server (`--limit-*`, the `[limits]` table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Client connections (TCP and WebSocket together) at once.
    pub connections: u32,
    /// Client connections at once from one source address.
    pub connections_per_source: u32,
    /// Live sessions one principal may open through this server.
    pub sessions_per_principal: u32,
    /// Locks one connection may watch.
    pub watches_per_connection: u32,
    /// Unanswered requests on one connection.
    pub in_flight: u32,
    /// Requests per second one connection may send, sustained (bursts of
    /// as many again).
    pub rate: u32,
    /// How long a frame may take to arrive once its first byte has.
    pub frame_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        let node = ClientLimits::default();
        Self {
            connections: 8192,
            connections_per_source: 1024,
            sessions_per_principal: node.sessions_per_principal,
            watches_per_connection: node.watches_per_connection,
            in_flight: 4096,
            rate: 20_000,
            frame_timeout: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// The limits the node enforces.
    #[must_use]
    pub const fn node(&self) -> ClientLimits {
        ClientLimits {
            sessions_per_principal: self.sessions_per_principal,
            watches_per_connection: self.watches_per_connection,
        }
    }
}

/// The `[limits]` table of a configuration file; each key is the
/// `--limit-*` flag of the same name.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// `--limit-connections`.
    pub connections: Option<u32>,
    /// `--limit-connections-per-source`.
    pub connections_per_source: Option<u32>,
    /// `--limit-sessions-per-principal`.
    pub sessions_per_principal: Option<u32>,
    /// `--limit-watches`.
    pub watches: Option<u32>,
    /// `--limit-in-flight`.
    pub in_flight: Option<u32>,
    /// `--limit-rate`.
    pub rate: Option<u32>,
    /// `--limit-frame-timeout`, a duration such as `"10s"`.
    pub frame_timeout: Option<String>,
}

/// The `[auth]` table of a configuration file.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFileRef {
    /// `--auth-file`.
    pub file: Option<std::path::PathBuf>,
    /// `--auth-allow-remote-admin`.
    pub allow_remote_admin: Option<bool>,
}

#[cfg(test)]
mod tests {
    use crate::config::ConfigFile;

    #[test]
    fn the_auth_and_limits_tables_parse() {
        let file = ConfigFile::parse(
            "id = 1\n[auth]\nfile = \"/etc/distlock/auth.toml\"\nallow_remote_admin = false\n\
             [limits]\nconnections = 100\nrate = 50\nframe_timeout = \"3s\"\n",
        )
        .expect("parses");
        let auth = file.auth.expect("[auth]");
        assert_eq!(
            auth.file.as_deref(),
            Some(std::path::Path::new("/etc/distlock/auth.toml"))
        );
        let limits = file.limits.expect("[limits]");
        assert_eq!(limits.connections, Some(100));
        assert_eq!(limits.rate, Some(50));
        assert_eq!(limits.frame_timeout.as_deref(), Some("3s"));
        assert!(ConfigFile::parse("[limits]\nbogus = 1\n").is_err());
    }
}
