//! What one server needs to know to run: its id, addresses, the other
//! members, its data directory, and how hard to sync.

use crate::storage::FsyncPolicy;
use distlock_core::ids::NodeId;
use distlock_core::raft::MemberAddrs;
use distlock_transport_tcp::HostPort;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The settings of one server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// This server's id (1 or more).
    pub id: NodeId,
    /// Where the server keeps its log and snapshots.
    pub data_dir: PathBuf,
    /// Where this server listens for clients.
    pub client_addr: SocketAddr,
    /// Where this server listens for peers.
    pub peer_addr: SocketAddr,
    /// Every member's peer address, this server's included.
    pub peers: BTreeMap<NodeId, HostPort>,
    /// Client addresses of other members to tell clients before the
    /// members published their own (an optional override: every member
    /// publishes its address through the log).
    pub client_addrs: BTreeMap<NodeId, HostPort>,
    /// The address clients and members are told to reach this server's
    /// client port at; `None`: `client_addr`.
    pub advertise_client_addr: Option<HostPort>,
    /// The address other members are told to reach this server's peer
    /// port at; `None`: this server's entry in `peers`.
    pub advertise_peer_addr: Option<HostPort>,
    /// Peers and clients must name this cluster.
    pub cluster_id: String,
    /// `always` (default) or `never` (benchmarks only).
    pub fsync: FsyncPolicy,
    /// Raft tuning; the defaults of [`distlock_core::raft::Config::new`]
    /// where `None`.
    pub raft: RaftTuning,
    /// A new server joining a running cluster: with an empty data
    /// directory it waits, without voting, until the leader adds it
    /// (`distlock members add`) and sends it the log. `peers` then names
    /// the members to reach besides this server.
    pub join: bool,
    /// Poll for the next event for this long after each one instead of
    /// sleeping (`--busy-poll`): lower latency for up to two busy threads
    /// while requests keep coming; `None` (the default) sleeps at once.
    pub busy_poll: Option<Duration>,
    /// Make this server the only voter of a new cluster with the state it
    /// holds, before it starts (`--force-new-cluster`: the way out of a
    /// quorum lost for good; see [`crate::runtime::force_new_cluster`]).
    pub force_new_cluster: bool,
    /// Client authentication (`--auth-file`; off by default).
    pub auth: crate::auth::AuthConfig,
    /// Limits on clients (`--limit-*`).
    pub limits: crate::limits::Limits,
}

/// Optional Raft settings of a server (`None`: the core's default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RaftTuning {
    /// Take a snapshot (and compact the log) every this many applied
    /// entries; 0 disables snapshots. Default 50 000.
    pub snapshot_threshold: Option<u64>,
    /// Applied entries kept in the log after a snapshot, so followers that
    /// lag a little get entries rather than the snapshot. Default 5 000.
    pub compaction_margin: Option<u64>,
    /// At most this many entries in one `Append`. Default 512.
    pub max_append_entries: Option<usize>,
    /// At most about this many bytes of entries in one `Append` (one entry
    /// always goes, whatever its size). Default 512 KiB.
    pub max_append_bytes: Option<usize>,
    /// At most this many `Append`s in flight to one follower. Default 64.
    pub max_inflight: Option<usize>,
}

impl RaftTuning {
    /// The core's Raft config for server `id`, with these settings applied.
    #[must_use]
    pub fn apply(&self, id: NodeId) -> distlock_core::raft::Config {
        let mut c = distlock_core::raft::Config::new(id);
        if let Some(n) = self.snapshot_threshold {
            c.snapshot_threshold = n;
        }
        if let Some(n) = self.compaction_margin {
            c.compaction_margin = n;
        }
        if let Some(n) = self.max_append_entries {
            c.max_append_entries = n;
        }
        if let Some(n) = self.max_append_bytes {
            c.max_append_bytes = n;
        }
        if let Some(n) = self.max_inflight {
            c.max_inflight = n;
        }
        c
    }
}

/// A server's WebSocket endpoint (browsers, edge services, the dashboard).
///
/// Kept apart from [`ServerConfig`] so that code building a
/// `ServerConfig` field by field (the simulation) is unaffected; the
/// runtime takes it beside, through [`crate::runtime::RuntimeEnv::files`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WsConfig {
    /// Where this server listens for WebSocket clients; `None`: it does
    /// not.
    pub addr: Option<SocketAddr>,
    /// Where clients are told to reach it; `None`: `addr`.
    pub advertise: Option<HostPort>,
    /// Other members' WebSocket addresses to tell clients before the
    /// members published their own (an optional override).
    pub addrs: BTreeMap<NodeId, HostPort>,
    /// Browser origins (`scheme://host[:port]`, or `*`) allowed to connect
    /// besides the server's own (the dashboard); clients that send no
    /// `Origin` (non-browsers) are always allowed.
    pub allow_origins: Vec<String>,
}

impl WsConfig {
    /// The address `distlock serve` listens on for WebSocket when given no
    /// addresses at all.
    pub const DEFAULT_ADDR: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7201);

    /// Parses a `--ws-addr` value: `HOST:PORT`, or `none` (also `off`) for
    /// no WebSocket endpoint.
    ///
    /// # Errors
    /// [`ConfigError::BadWsAddr`].
    pub fn parse_addr(text: &str) -> Result<Option<HostPort>, ConfigError> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("none") || text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|_| ConfigError::BadWsAddr(text.to_owned()))
    }
}

/// A configuration that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// An entry of `--peers` or `--client-addrs` is not `ID=HOST:PORT`.
    #[error(
        "cannot read {what} entry {entry:?}: expected ID=HOST:PORT, for example 1=127.0.0.1:7101"
    )]
    BadEntry {
        /// Which list.
        what: &'static str,
        /// The entry.
        entry: String,
    },
    /// A `--ws-addr` that is neither `HOST:PORT` nor `none`.
    #[error(
        "cannot read the WebSocket address {0:?}: expected HOST:PORT, or none to turn WebSocket off"
    )]
    BadWsAddr(String),
    /// Node id 0 is reserved.
    #[error("node id 0 is reserved; ids start at 1")]
    ZeroId,
    /// The server's own id is not among the peers.
    #[error("--peers must include this server's own id {0}")]
    SelfNotInPeers(u64),
    /// An address that is not `HOST:PORT`.
    #[error("{what}: {source}")]
    BadAddr {
        /// Which setting.
        what: &'static str,
        /// What is wrong.
        source: distlock_transport_tcp::AddrError,
    },
    /// A listening address whose host name does not resolve.
    #[error("{what} {addr}: cannot resolve the host name: {reason}")]
    Unresolvable {
        /// Which setting.
        what: &'static str,
        /// The address.
        addr: HostPort,
        /// Why.
        reason: String,
    },
    /// Listening on every interface with nothing to tell others.
    #[error(
        "{what} {addr} listens on every interface, which no client or member can dial: \
         add {advertise} HOST:PORT, the address others reach this server at"
    )]
    Unadvertised {
        /// The listening setting.
        what: &'static str,
        /// Its value.
        addr: SocketAddr,
        /// The flag that says what to advertise.
        advertise: &'static str,
    },
    /// `--join` without the addresses of the cluster to join.
    #[error(
        "--join needs --peers naming this server and at least one member of the cluster it joins"
    )]
    JoinWithoutPeers,
    /// A `--busy-poll` window beyond [`crate::runtime::busy_poll::MAX_WINDOW`].
    #[error(
        "--busy-poll {0:?} is too long: at most 10ms (a few hundred µs covers the steps of one request)"
    )]
    BusyPollTooLong(Duration),
    /// The configuration file cannot be read.
    #[error("cannot read the configuration file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The configuration file is not valid TOML of the expected shape.
    #[error("configuration file {path} is invalid: {reason}")]
    FileSyntax {
        /// The file.
        path: String,
        /// What is wrong, with its line.
        reason: String,
    },
    /// The same id appears twice.
    #[error("{what} lists id {id} twice")]
    Duplicate {
        /// Which list.
        what: &'static str,
        /// The id.
        id: u64,
    },
}

/// Parses `1=127.0.0.1:7101,2=...` into a map.
///
/// # Errors
/// On an entry that is not `ID=HOST:PORT`, a zero id, or a duplicate.
pub fn parse_members(
    what: &'static str,
    list: &str,
) -> Result<BTreeMap<NodeId, HostPort>, ConfigError> {
    let mut out = BTreeMap::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || ConfigError::BadEntry {
            what,
            entry: entry.to_owned(),
        };
        let (id, addr) = entry.split_once('=').ok_or_else(bad)?;
        let id: u64 = id.trim().parse().map_err(|_| bad())?;
        let addr: HostPort = addr.trim().parse().map_err(|_| bad())?;
        if id == 0 {
            return Err(ConfigError::ZeroId);
        }
        if out.insert(NodeId(id), addr).is_some() {
            return Err(ConfigError::Duplicate { what, id });
        }
    }
    Ok(out)
}

/// The settings a `--config FILE.toml` may give; each is the flag of the
/// same name (flags given on the command line win). For example:
///
/// ```toml
/// id = 1
/// data_dir = "/var/lib/distlock"
/// client_addr = "10.0.0.1:7001"
/// peer_addr = "10.0.0.1:7101"
/// cluster_id = "prod-locks"
/// fsync = "always"
///
/// [peers]            # every member's peer address, this server's included
/// 1 = "10.0.0.1:7101"
/// 2 = "10.0.0.2:7101"
/// 3 = "10.0.0.3:7101"
///
/// [client_addrs]     # every member's client address, for client failover
/// 1 = "10.0.0.1:7001"
/// 2 = "10.0.0.2:7001"
/// 3 = "10.0.0.3:7001"
/// ```
///
/// and for WebSocket clients and the dashboard (top-level keys before the
/// tables): `ws_addr = "10.0.0.1:7201"` (or `"none"`),
/// `ws_allow_origins = ["https://ops.example.com"]`, and a `[ws_addrs]`
/// table like `[client_addrs]`.
///
/// TLS (docs/SECURITY.md) is a `[tls]` table: `cert`, `key` and `ca` for
/// every listener, and `[tls.client]`, `[tls.ws]`, `[tls.peer]` tables
/// with the same keys for one listener's own.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `--id`.
    pub id: Option<u64>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--client-addr`.
    pub client_addr: Option<HostPort>,
    /// `--peer-addr`.
    pub peer_addr: Option<HostPort>,
    /// `--advertise-client-addr`.
    pub advertise_client_addr: Option<HostPort>,
    /// `--advertise-peer-addr`.
    pub advertise_peer_addr: Option<HostPort>,
    /// `--advertise-ws-addr`.
    pub advertise_ws_addr: Option<HostPort>,
    /// `--peers`, as a table of id = address.
    pub peers: Option<BTreeMap<String, HostPort>>,
    /// `--client-addrs`, as a table of id = address.
    pub client_addrs: Option<BTreeMap<String, HostPort>>,
    /// `--cluster-id`.
    pub cluster_id: Option<String>,
    /// `--fsync`: `always` or `never`.
    pub fsync: Option<String>,
    /// `--ws-addr`: `HOST:PORT`, or `"none"`.
    pub ws_addr: Option<String>,
    /// `--metrics-addr` (`HOST:PORT` or `none`).
    pub metrics_addr: Option<String>,
    /// `--ws-addrs`, as a table of id = address.
    pub ws_addrs: Option<BTreeMap<String, HostPort>>,
    /// `--ws-allow-origin`, as a list.
    pub ws_allow_origins: Option<Vec<String>>,
    /// `--join`.
    pub join: Option<bool>,
    /// `--busy-poll`: a duration such as `"300us"`.
    pub busy_poll: Option<String>,
    /// `--force-new-cluster`.
    pub force_new_cluster: Option<bool>,
    /// `--tls-*`: `[tls]` with `cert`, `key`, `ca`, and `[tls.client]`,
    /// `[tls.ws]`, `[tls.peer]` for one listener's own.
    pub tls: Option<crate::tls::TlsSettings>,
    /// The `[auth]` table.
    pub auth: Option<crate::limits::AuthFileRef>,
    /// The `[limits]` table.
    pub limits: Option<crate::limits::LimitsFile>,
}

impl ConfigFile {
    /// Reads and parses a TOML configuration file.
    ///
    /// # Errors
    /// When the file cannot be read or is not valid.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text).map_err(|reason| ConfigError::FileSyntax {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Parses the text of a configuration file.
    ///
    /// # Errors
    /// What is wrong with it, in words.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim().to_owned())
    }

    /// A table of members as `--peers` would give it.
    ///
    /// # Errors
    /// On a key that is not a node id, or id 0.
    pub fn members(
        what: &'static str,
        table: &BTreeMap<String, HostPort>,
    ) -> Result<BTreeMap<NodeId, HostPort>, ConfigError> {
        let mut out = BTreeMap::new();
        for (key, addr) in table {
            let id: u64 = key.trim().parse().map_err(|_| ConfigError::BadEntry {
                what,
                entry: format!("{key} = {addr}"),
            })?;
            if id == 0 {
                return Err(ConfigError::ZeroId);
            }
            if out.insert(NodeId(id), addr.clone()).is_some() {
                return Err(ConfigError::Duplicate { what, id });
            }
        }
        Ok(out)
    }
}

/// The one address a listening setting names: a literal, or the first
/// address its host name resolves to now.
///
/// # Errors
/// [`ConfigError::Unresolvable`].
pub fn resolve_listen(what: &'static str, addr: &HostPort) -> Result<SocketAddr, ConfigError> {
    let unresolvable = |reason: String| ConfigError::Unresolvable {
        what,
        addr: addr.clone(),
        reason,
    };
    addr.resolve_now()
        .map_err(|e| unresolvable(e.to_string()))?
        .into_iter()
        .next()
        .ok_or_else(|| unresolvable("no address".to_owned()))
}

impl ServerConfig {
    /// A single-server cluster on the default addresses (`distlock serve`).
    #[must_use]
    pub fn single(data_dir: PathBuf) -> Self {
        let client_addr: SocketAddr = ([127, 0, 0, 1], 7001).into();
        let peer_addr: SocketAddr = ([127, 0, 0, 1], 7101).into();
        Self {
            id: NodeId(1),
            data_dir,
            client_addr,
            peer_addr,
            peers: BTreeMap::from([(NodeId(1), HostPort::from(peer_addr))]),
            client_addrs: BTreeMap::new(),
            advertise_client_addr: None,
            advertise_peer_addr: None,
            cluster_id: "distlock".to_owned(),
            fsync: FsyncPolicy::Always,
            raft: RaftTuning::default(),
            join: false,
            busy_poll: None,
            force_new_cluster: false,
            auth: crate::auth::AuthConfig::default(),
            limits: crate::limits::Limits::default(),
        }
    }

    /// Checks the settings fit together.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id.0 == 0 {
            return Err(ConfigError::ZeroId);
        }
        if !self.peers.contains_key(&self.id) {
            return Err(ConfigError::SelfNotInPeers(self.id.0));
        }
        if self.join && self.peers.len() < 2 {
            return Err(ConfigError::JoinWithoutPeers);
        }
        if let Some(window) = self.busy_poll {
            if window > crate::runtime::busy_poll::MAX_WINDOW {
                return Err(ConfigError::BusyPollTooLong(window));
            }
        }
        self.advertised_client()?;
        self.advertised_peer()?;
        Ok(())
    }

    /// Where clients and members reach this server's client port.
    ///
    /// # Errors
    /// [`ConfigError::Unadvertised`] when it listens on every interface
    /// and no advertise address is given.
    pub fn advertised_client(&self) -> Result<HostPort, ConfigError> {
        advertised(
            self.advertise_client_addr.as_ref(),
            None,
            self.client_addr,
            "--client-addr",
            "--advertise-client-addr",
        )
    }

    /// Where members reach this server's peer port: the advertise address,
    /// else this server's entry in `peers`, else `peer_addr`.
    ///
    /// # Errors
    /// As [`Self::advertised_client`].
    pub fn advertised_peer(&self) -> Result<HostPort, ConfigError> {
        advertised(
            self.advertise_peer_addr.as_ref(),
            self.peers.get(&self.id),
            self.peer_addr,
            "--peer-addr",
            "--advertise-peer-addr",
        )
    }

    /// Everything this server publishes about itself: its peer, client and
    /// WebSocket addresses as others must dial them.
    ///
    /// # Errors
    /// As [`Self::advertised_client`].
    pub fn advertised(&self, ws: &WsConfig) -> Result<MemberAddrs, ConfigError> {
        Ok(MemberAddrs {
            peer: self.advertised_peer()?.to_string(),
            client: self.advertised_client()?.to_string(),
            ws: ws.advertised()?.map(|a| a.to_string()),
        })
    }
}

impl WsConfig {
    /// Where WebSocket clients reach this server, if it serves them.
    ///
    /// # Errors
    /// As [`ServerConfig::advertised_client`].
    pub fn advertised(&self) -> Result<Option<HostPort>, ConfigError> {
        let Some(addr) = self.addr else {
            return Ok(None);
        };
        advertised(
            self.advertise.as_ref(),
            None,
            addr,
            "--ws-addr",
            "--advertise-ws-addr",
        )
        .map(Some)
    }
}

/// The first of `advertise` and `named` given, else the listening address
/// itself unless that is `0.0.0.0` or `[::]`.
fn advertised(
    advertise: Option<&HostPort>,
    named: Option<&HostPort>,
    listen: SocketAddr,
    what: &'static str,
    flag: &'static str,
) -> Result<HostPort, ConfigError> {
    let unadvertised = || ConfigError::Unadvertised {
        what,
        addr: listen,
        advertise: flag,
    };
    match advertise.or(named) {
        Some(a) if a.is_unspecified() => Err(unadvertised()),
        Some(a) => Ok(a.clone()),
        None if listen.ip().is_unspecified() => Err(unadvertised()),
        None => Ok(HostPort::from(listen)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_settings_parse() {
        let f = ConfigFile::parse(
            "ws_addr = \"none\"\nws_allow_origins = [\"https://ops.example.com\"]\n\
             [ws_addrs]\n1 = \"127.0.0.1:7201\"\n",
        )
        .expect("parses");
        assert_eq!(
            WsConfig::parse_addr(f.ws_addr.as_deref().unwrap_or("")),
            Ok(None)
        );
        assert_eq!(f.ws_allow_origins.map(|o| o.len()), Some(1));
        assert_eq!(f.ws_addrs.map(|t| t.len()), Some(1));
        assert_eq!(
            WsConfig::parse_addr(" 127.0.0.1:7201 "),
            Ok(Some(HostPort::from(WsConfig::DEFAULT_ADDR)))
        );
        assert_eq!(WsConfig::parse_addr("OFF"), Ok(None));
        assert!(matches!(
            WsConfig::parse_addr("7201"),
            Err(ConfigError::BadWsAddr(_))
        ));
    }

    #[test]
    fn config_files_parse_and_reject_unknown_keys() {
        let f = ConfigFile::parse(
            "id = 2\nfsync = \"never\"\n[peers]\n1 = \"127.0.0.1:7101\"\n2 = \"127.0.0.1:7102\"\n",
        )
        .expect("parses");
        assert_eq!(f.id, Some(2));
        let peers =
            ConfigFile::members("peers", f.peers.as_ref().expect("has peers")).expect("ids");
        assert_eq!(peers.len(), 2);
        let e = ConfigFile::parse("idd = 2\n").expect_err("unknown key");
        assert!(e.contains("idd"), "{e}");
        let e = ConfigFile::parse("client_addr = \"nowhere\"\n").expect_err("bad address");
        assert!(e.contains("client_addr"), "{e}");
        let mut bad = BTreeMap::new();
        bad.insert(
            "one".to_owned(),
            "127.0.0.1:1".parse::<HostPort>().expect("addr"),
        );
        assert!(ConfigFile::members("peers", &bad).is_err());
    }

    #[test]
    fn busy_poll_windows_beyond_the_limit_are_refused() {
        let f = ConfigFile::parse("busy_poll = \"300us\"\n").expect("parses");
        assert_eq!(f.busy_poll.as_deref(), Some("300us"));
        let mut cfg = ServerConfig::single(PathBuf::from("d"));
        cfg.busy_poll = Some(Duration::from_micros(300));
        assert_eq!(cfg.validate(), Ok(()));
        cfg.busy_poll = Some(crate::runtime::busy_poll::MAX_WINDOW);
        assert_eq!(cfg.validate(), Ok(()));
        cfg.busy_poll = Some(Duration::from_millis(11));
        let e = cfg.validate().expect_err("too long");
        assert!(e.to_string().contains("at most 10ms"), "{e}");
    }

    #[test]
    fn members_parse_and_errors_say_what_is_wrong() {
        let m = parse_members("--peers", "1=127.0.0.1:7101, 2=127.0.0.1:7102").expect("parses");
        assert_eq!(m.len(), 2);
        let e = parse_members("--peers", "1=nowhere").expect_err("bad address");
        assert!(e.to_string().contains("expected ID=HOST:PORT"), "{e}");
        assert_eq!(
            parse_members("--peers", "0=127.0.0.1:1"),
            Err(ConfigError::ZeroId)
        );
        assert_eq!(
            parse_members("--peers", "1=127.0.0.1:1,1=127.0.0.1:2"),
            Err(ConfigError::Duplicate {
                what: "--peers",
                id: 1
            })
        );
    }
}
