//! What one server needs to know to run: its id, addresses, the other
//! members, its data directory, and how hard to sync.

use crate::storage::FsyncPolicy;
use distlock_core::ids::NodeId;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The settings of one server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// This server's id (1 or more).
    pub id: NodeId,
    /// Where the server keeps its log and snapshots.
    pub data_dir: PathBuf,
    /// Where clients connect.
    pub client_addr: SocketAddr,
    /// Where peers connect.
    pub peer_addr: SocketAddr,
    /// Every member's peer address, this server's included.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Every member's client address, for failover (this server's included).
    pub client_addrs: BTreeMap<NodeId, SocketAddr>,
    /// Peers and clients must name this cluster.
    pub cluster_id: String,
    /// `always` (default) or `never` (benchmarks only).
    pub fsync: FsyncPolicy,
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
    /// Node id 0 is reserved.
    #[error("node id 0 is reserved; ids start at 1")]
    ZeroId,
    /// The server's own id is not among the peers.
    #[error("--peers must include this server's own id {0}")]
    SelfNotInPeers(u64),
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
) -> Result<BTreeMap<NodeId, SocketAddr>, ConfigError> {
    let mut out = BTreeMap::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || ConfigError::BadEntry {
            what,
            entry: entry.to_owned(),
        };
        let (id, addr) = entry.split_once('=').ok_or_else(bad)?;
        let id: u64 = id.trim().parse().map_err(|_| bad())?;
        let addr: SocketAddr = addr.trim().parse().map_err(|_| bad())?;
        if id == 0 {
            return Err(ConfigError::ZeroId);
        }
        if out.insert(NodeId(id), addr).is_some() {
            return Err(ConfigError::Duplicate { what, id });
        }
    }
    Ok(out)
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
            peers: BTreeMap::from([(NodeId(1), peer_addr)]),
            client_addrs: BTreeMap::from([(NodeId(1), client_addr)]),
            cluster_id: "distlock".to_owned(),
            fsync: FsyncPolicy::Always,
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
