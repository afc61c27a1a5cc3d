//! Helpers shared by the black-box tests: free loopback ports and
//! `distlock serve` processes that are killed when dropped.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

/// A loopback address nobody listens on, never handed out twice in this
/// process (tests run in parallel and each starts servers).
pub fn free_addr() -> SocketAddr {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let addr = l.local_addr().expect("local addr");
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if given.insert(addr.port()) {
            return addr;
        }
    }
}

/// A running `distlock serve`, killed (-9) when dropped.
pub struct Server {
    pub child: Child,
    pub client: SocketAddr,
}

impl Server {
    /// Starts a server; `extra` goes after `serve` (cluster flags).
    pub fn start(data: &Path, client: SocketAddr, peer: SocketAddr, extra: &[String]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_distlock"))
            .arg("serve")
            .args(extra)
            .arg("--data-dir")
            .arg(data)
            .args([
                "--client-addr",
                &client.to_string(),
                "--peer-addr",
                &peer.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start distlock serve");
        Self { child, client }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of `n` servers on fresh ports and data directories.
pub struct Cluster {
    pub servers: Vec<Option<Server>>,
    pub clients: Vec<SocketAddr>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    pub fn start(n: usize) -> Self {
        let dirs: Vec<_> = (0..n)
            .map(|_| tempfile::tempdir().expect("temp dir"))
            .collect();
        let clients: Vec<SocketAddr> = (0..n).map(|_| free_addr()).collect();
        let peers: Vec<SocketAddr> = (0..n).map(|_| free_addr()).collect();
        let list = |addrs: &[SocketAddr]| {
            addrs
                .iter()
                .enumerate()
                .map(|(i, a)| format!("{}={a}", i + 1))
                .collect::<Vec<_>>()
                .join(",")
        };
        let (peer_list, client_list) = (list(&peers), list(&clients));
        let servers = (0..n)
            .map(|i| {
                let extra = [
                    "--id".to_owned(),
                    (i + 1).to_string(),
                    "--peers".to_owned(),
                    peer_list.clone(),
                    "--client-addrs".to_owned(),
                    client_list.clone(),
                ];
                Some(Server::start(dirs[i].path(), clients[i], peers[i], &extra))
            })
            .collect();
        Self {
            servers,
            clients,
            _dirs: dirs,
        }
    }
}
