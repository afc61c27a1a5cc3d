//! Real processes: any child ([`Process`]), one `distlock serve`
//! ([`Server`]) and a cluster of them ([`Cluster`]).

use crate::PATIENCE;
use crate::bin::distlock;
use crate::conn::Conn;
use crate::ports::free_addr;
use crate::wait::{wait_until, wait_until_async};
use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

/// Sends `signal` (`"KILL"`, `"TERM"`, `"INT"`, ...) to `pid`; a negative
/// `pid` names a process group. Uses the `kill` command, so the tests need
/// no `unsafe` and no signal crate.
///
/// # Panics
/// When the `kill` command cannot run.
pub fn send_signal(pid: i64, signal: &str) -> bool {
    Command::new("kill")
        .args(["-s", signal, "--", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .expect("run the kill command")
        .success()
}

/// Whether process `pid` exists and is not a zombie (Linux `/proc`).
#[must_use]
pub fn process_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) S ...": the state follows the last ')'.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// Runs `cmd` to completion with its output captured.
///
/// # Panics
/// When it cannot start, or runs longer than `limit` (it is then killed).
pub fn run_within(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("collect the output"),
        Err(_) => {
            send_signal(i64::from(pid), "KILL");
            let out = rx.recv().ok().and_then(Result::ok);
            panic!(
                "{cmd:?} did not finish within {limit:?}; stderr:\n{}",
                out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                    .unwrap_or_default()
            );
        }
    }
}

/// `distlock status [lock] --json --servers <servers>`, parsed.
///
/// # Panics
/// When the command fails or does not print one JSON object.
#[must_use]
pub fn status_json(servers: &str, lock: Option<&str>) -> serde_json::Value {
    let mut cmd = distlock();
    cmd.arg("status")
        .args(lock)
        .args(["--json", "--servers", servers]);
    let (code, value) = json_of(&mut cmd, Duration::from_secs(20));
    assert_eq!(code, 0, "distlock status failed ({code}): {value}");
    value
}

/// Runs `distlock members ARGS --json --servers SERVERS` and returns its
/// JSON answer with its exit status.
///
/// # Panics
/// When it prints no JSON object or does not finish within a minute.
#[must_use]
pub fn members_json(servers: &str, args: &[&str]) -> (i32, serde_json::Value) {
    let mut cmd = distlock();
    cmd.arg("members")
        .args(args)
        .args(["--json", "--servers", servers]);
    json_of(&mut cmd, Duration::from_secs(60))
}

/// Runs `cmd` within `limit`; its exit status and the one JSON object it
/// printed.
fn json_of(cmd: &mut Command, limit: Duration) -> (i32, serde_json::Value) {
    let out = run_within(cmd, limit);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{cmd:?} printed {stdout:?} ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(value.is_object(), "not a JSON object: {value}");
    (out.status.code().unwrap_or(-1), value)
}

/// A child process, killed (`SIGKILL`) and reaped when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
    exited: Option<ExitStatus>,
}

impl Process {
    /// Starts `cmd`.
    ///
    /// # Panics
    /// When it cannot start.
    pub fn spawn(cmd: &mut Command) -> Self {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Self {
            child,
            exited: None,
        }
    }

    /// Its process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child itself (to take its pipes).
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Sends `signal` unless it has exited (and been reaped) already.
    pub fn signal(&mut self, signal: &str) {
        if self.try_exit().is_none() {
            send_signal(i64::from(self.pid()), signal);
        }
    }

    /// `kill -9`, then reaps it.
    pub fn kill(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }

    /// Its exit status, if it has exited.
    ///
    /// # Panics
    /// When waiting fails.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("wait for a child");
        }
        self.exited
    }

    /// Waits for it to exit.
    ///
    /// # Panics
    /// When it is still running after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        wait_until(&format!("process {} exits", self.pid()), limit, || {
            self.try_exit()
        })
    }

    /// As [`Self::wait_exit`], without blocking the async runtime's thread.
    ///
    /// # Panics
    /// When it is still running after `limit`.
    pub async fn wait_exit_async(&mut self, limit: Duration) -> ExitStatus {
        let what = format!("process {} exits", self.pid());
        wait_until_async(&what, limit, || std::future::ready(self.try_exit())).await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One `distlock serve`, with its own temporary directory holding its
/// data (`data/`) and its log (`server.log`, stdout and stderr of every
/// start). It can be killed, stopped and restarted on the same data and
/// ports; dropped, it is killed, and dropped during a panic it prints the
/// end of its log.
#[derive(Debug)]
pub struct Server {
    /// Its node id.
    pub id: u64,
    /// Where clients connect.
    pub client_addr: SocketAddr,
    /// Where peers connect.
    pub peer_addr: SocketAddr,
    extra: Vec<String>,
    home: tempfile::TempDir,
    process: Option<Process>,
    starts: u32,
}

impl Server {
    /// A single-server cluster on fresh ports, started.
    #[must_use]
    pub fn single() -> Self {
        let mut s = Self::new(1, free_addr(), free_addr(), Vec::new());
        s.start();
        s
    }

    /// A server not started yet; `extra` goes after `serve` (cluster
    /// flags).
    ///
    /// # Panics
    /// When the temporary directory cannot be made.
    #[must_use]
    pub fn new(
        id: u64,
        client_addr: SocketAddr,
        peer_addr: SocketAddr,
        extra: Vec<String>,
    ) -> Self {
        Self {
            id,
            client_addr,
            peer_addr,
            extra,
            home: tempfile::tempdir().expect("temp dir"),
            process: None,
            starts: 0,
        }
    }

    /// Its data directory (the same across restarts).
    #[must_use]
    pub fn data_dir(&self) -> PathBuf {
        self.home.path().join("data")
    }

    /// Its log file.
    #[must_use]
    pub fn log_path(&self) -> PathBuf {
        self.home.path().join("server.log")
    }

    /// Starts (or restarts) the process on the same data and ports.
    ///
    /// # Panics
    /// When it is running already or cannot start.
    pub fn start(&mut self) {
        self.start_with(&[]);
    }

    /// As [`Self::start`], with `flags` added for this start only (e.g.
    /// `--force-new-cluster`).
    ///
    /// # Panics
    /// When it is running already or cannot start.
    pub fn start_with(&mut self, flags: &[&str]) {
        assert!(!self.is_running(), "server {} is running already", self.id);
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the server log");
        let _ = writeln!(log, "--- distlock-tests: start {} ---", self.starts);
        let err = log.try_clone().expect("clone the log handle");
        let mut cmd = distlock();
        cmd.arg("serve")
            .env("NO_COLOR", "1")
            .args(&self.extra)
            .args(flags)
            .arg("--data-dir")
            .arg(self.data_dir())
            .args([
                "--client-addr",
                &self.client_addr.to_string(),
                "--peer-addr",
                &self.peer_addr.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        self.process = Some(Process::spawn(&mut cmd));
    }

    /// Alias of [`Self::start`] for a server that was stopped.
    pub fn restart(&mut self) {
        self.start();
    }

    /// Whether its process is running (started and not exited).
    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|p| p.try_exit().is_none())
    }

    /// Its process id while it runs.
    pub fn pid(&mut self) -> Option<u32> {
        self.process
            .as_mut()
            .filter(|p| p.exited.is_none())
            .map(|p| p.pid())
    }

    /// `kill -9`, and reaps it.
    pub fn kill(&mut self) {
        if let Some(p) = &mut self.process {
            p.kill();
        }
    }

    /// Sends `SIGTERM` (a graceful stop); see [`Self::wait_exit`].
    pub fn terminate(&mut self) {
        if let Some(p) = &mut self.process {
            p.signal("TERM");
        }
    }

    /// Waits for the process to exit.
    ///
    /// # Panics
    /// When it was never started or still runs after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        self.process
            .as_mut()
            .expect("the server was started")
            .wait_exit(limit)
    }

    /// As [`Self::wait_exit`], without blocking the async runtime's thread.
    ///
    /// # Panics
    /// When it was never started or still runs after `limit`.
    pub async fn wait_exit_async(&mut self, limit: Duration) -> ExitStatus {
        self.process
            .as_mut()
            .expect("the server was started")
            .wait_exit_async(limit)
            .await
    }

    /// The last `lines` lines of its log.
    #[must_use]
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "=== server {} ({}) log tail ===\n{}",
                self.id,
                self.client_addr,
                self.log_tail(40)
            );
        }
    }
}

/// Servers `1..=n` on fresh ports and data directories, started as the
/// README says: each told its own addresses and every member's peer
/// address (`--peers`), nothing more.
#[derive(Debug)]
pub struct Cluster {
    servers: Vec<Server>,
}

impl Cluster {
    /// Starts `n` servers.
    #[must_use]
    pub fn start(n: usize) -> Self {
        Self::start_with(n, &[])
    }

    /// Starts `n` servers, each given `flags` too (after its cluster flags).
    #[must_use]
    pub fn start_with(n: usize, flags: &[&str]) -> Self {
        let mut c = Self::configured(n);
        for s in &mut c.servers {
            s.extra.extend(flags.iter().map(|f| (*f).to_owned()));
            s.start();
        }
        c
    }

    /// `n` servers configured as a cluster but not started.
    #[must_use]
    pub fn configured(n: usize) -> Self {
        let clients: Vec<SocketAddr> = (0..n).map(|_| free_addr()).collect();
        let peers: Vec<SocketAddr> = (0..n).map(|_| free_addr()).collect();
        let peer_list = member_list(&peers);
        let servers = (0..n)
            .map(|i| {
                let id = i as u64 + 1;
                let extra = vec![
                    "--id".to_owned(),
                    id.to_string(),
                    "--peers".to_owned(),
                    peer_list.clone(),
                ];
                Server::new(id, clients[i], peers[i], extra)
            })
            .collect();
        Self { servers }
    }

    /// Server `id` (from 1).
    ///
    /// # Panics
    /// When there is no such server.
    pub fn server(&mut self, id: u64) -> &mut Server {
        self.servers
            .iter_mut()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("no server {id}"))
    }

    /// Starts a new server `id` with `serve --join`, told the peer
    /// addresses of every server of this cluster; `distlock members add`
    /// makes it a member.
    ///
    /// # Panics
    /// When `id` is taken.
    pub fn join(&mut self, id: u64) -> &mut Server {
        assert!(!self.ids().contains(&id), "server {id} exists already");
        let (client, peer) = (free_addr(), free_addr());
        let mut peers: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("{}={}", s.id, s.peer_addr))
            .collect();
        peers.push(format!("{id}={peer}"));
        let extra = vec![
            "--id".to_owned(),
            id.to_string(),
            "--join".to_owned(),
            "--peers".to_owned(),
            peers.join(","),
        ];
        self.servers.push(Server::new(id, client, peer, extra));
        let server = self.server(id);
        server.start();
        server
    }

    /// A server other than `leader`.
    ///
    /// # Panics
    /// When there is none.
    #[must_use]
    pub fn follower_of(&self, leader: u64) -> u64 {
        self.ids()
            .into_iter()
            .find(|&id| id != leader)
            .unwrap_or_else(|| panic!("no server besides {leader}"))
    }

    /// Every server's id.
    #[must_use]
    pub fn ids(&self) -> Vec<u64> {
        self.servers.iter().map(|s| s.id).collect()
    }

    /// Server `id`'s client address.
    ///
    /// # Panics
    /// When there is no such server.
    #[must_use]
    pub fn addr(&self, id: u64) -> SocketAddr {
        self.servers
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("no server {id}"))
            .client_addr
    }

    /// Every server's client address, in id order.
    #[must_use]
    pub fn client_addrs(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|s| s.client_addr).collect()
    }

    /// The client addresses of servers `ids`, in that order.
    #[must_use]
    pub fn client_addrs_of(&self, ids: &[u64]) -> Vec<SocketAddr> {
        ids.iter().map(|&id| self.addr(id)).collect()
    }

    /// The client addresses as `--servers` wants them.
    #[must_use]
    pub fn servers_arg(&self) -> String {
        self.servers_arg_of(&self.ids())
    }

    /// The client addresses of servers `ids` as `--servers` wants them.
    #[must_use]
    pub fn servers_arg_of(&self, ids: &[u64]) -> String {
        self.client_addrs_of(ids)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The ids of the servers whose processes run.
    pub fn running(&mut self) -> Vec<u64> {
        self.servers
            .iter_mut()
            .filter_map(|s| s.is_running().then_some(s.id))
            .collect()
    }

    /// `kill -9` every server.
    pub fn kill_all(&mut self) {
        for s in &mut self.servers {
            s.kill();
        }
    }

    /// Starts every server that is not running.
    pub fn restart_stopped(&mut self) {
        for s in &mut self.servers {
            if !s.is_running() {
                s.start();
            }
        }
    }

    /// The leader, once one is elected among the running servers: a
    /// running server names it and it confirms it leads.
    ///
    /// # Panics
    /// When there is none within [`PATIENCE`].
    pub async fn leader(&mut self) -> u64 {
        self.leader_other_than(None).await
    }

    /// As [`Self::leader`], but waits for a leader other than `old`.
    ///
    /// # Panics
    /// When there is none within [`PATIENCE`].
    pub async fn leader_other_than(&mut self, old: Option<u64>) -> u64 {
        let running = self.running();
        let addrs: Vec<(u64, SocketAddr)> = running.iter().map(|&id| (id, self.addr(id))).collect();
        wait_until_async("a running server leads the cluster", PATIENCE, || {
            let addrs = addrs.clone();
            async move {
                for &(_, addr) in &addrs {
                    let Some(view) = Conn::status_once(addr).await else {
                        continue;
                    };
                    let Some(leader) = view.leader.map(|l| l.0) else {
                        continue;
                    };
                    if Some(leader) == old {
                        continue;
                    }
                    let Some(&(_, leader_addr)) = addrs.iter().find(|(id, _)| *id == leader) else {
                        continue;
                    };
                    let confirmed = Conn::status_once(leader_addr)
                        .await
                        .is_some_and(|v| v.leader.map(|l| l.0) == Some(leader));
                    if confirmed {
                        return Some(leader);
                    }
                }
                None
            }
        })
        .await
    }
}

/// `1=A1,2=A2,...`: server `i + 1` at `addrs[i]`, as `--peers`,
/// `--client-addrs` and `--ws-addrs` take them.
#[must_use]
pub fn member_list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{}={a}", i + 1))
        .collect::<Vec<_>>()
        .join(",")
}
