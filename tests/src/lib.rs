//! The harness of distlock's black-box tests: real `distlock` processes on
//! loopback, spoken to through the command line, the wire protocol and the
//! Rust client library (ARCHITECTURE.md §6.4).
//!
//! - [`distlock_bin`] finds the `distlock` binary next to the test
//!   executable (`target/<profile>/distlock`) and builds it first, once
//!   per test process, so the tests never run a stale binary. [`distlock`]
//!   runs it with a guard on `PATH` against a `kill` misuse that would
//!   signal every process on the machine ([`kill_guard_dir`]).
//! - [`free_addr`] and [`free_port_block`] hand out loopback ports nobody
//!   listens on, never the same port twice in one process.
//! - [`Server`] is one `distlock serve` with its own temporary data
//!   directory and log, which can be killed (`SIGKILL`), stopped
//!   (`SIGTERM`) and restarted on the same data and ports; [`Cluster`] is
//!   three (or `n`) of them. Dropped, they kill their processes; dropped
//!   while a test panics, they print the tail of their logs.
//! - [`Conn`] is a raw wire-protocol connection to one server.
//! - [`client_session`] opens a session with the client library.
//! - [`wait_until`], [`wait_until_async`] and [`within`] wait on a
//!   condition with a deadline: tests poll conditions, they never sleep to
//!   synchronise.
//!
//! ```no_run
//! # async fn example() {
//! use distlock_tests::{Cluster, Conn};
//! let mut cluster = Cluster::start(3);
//! let leader = cluster.leader().await;
//! let mut conn = Conn::connect(cluster.addr(leader)).await;
//! let session = conn.open_session(1, 30_000).await;
//! let token = conn.acquire_try(session, 1, "db").await;
//! # let _ = token;
//! # }
//! ```

mod bin;
mod conn;
mod ports;
mod process;
mod wait;

mod held;
pub use bin::{KILL_GUARD_LOG, distlock, distlock_bin, kill_guard_dir};
pub use conn::{
    Conn, acquire_body, client_session, client_session_with, granted, staying_put,
    wait_keepalive_after,
};
pub use held::HeldLock;
pub use ports::{free_addr, free_port_block};
pub use process::{
    Cluster, Process, Server, member_list, members_json, process_alive, run_within, send_signal,
    status_json,
};
pub use wait::{wait_until, wait_until_async, within};

/// How long a test waits for anything that should happen "soon" (a
/// server to accept, a leader to be elected, a client to fail over)
/// before it fails: generous, because the machine is shared.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);
