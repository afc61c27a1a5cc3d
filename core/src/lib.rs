//! The sans-IO core of distlock: Raft consensus ([`raft`]) and the lock
//! state machine it replicates ([`locks`]); the leader's timers, client
//! session logic and wire types follow.
//!
//! Nothing here does IO, reads a clock, spawns a thread or draws unseeded
//! randomness: every input carries the current time of the local monotonic
//! clock, and every output is an action for the driver to carry out. The same
//! code therefore runs in production, in the deterministic in-core cluster
//! tests and under the simulator.
//!
//! # Driving a Raft server
//!
//! A driver owns one [`raft::Raft`], feeds it inputs and carries out its
//! actions. This single-voter example shows every duty; a real driver sends
//! messages over the network and writes to disk.
//!
//! ```
//! use distlock_core::ids::{LogIndex, NodeId};
//! use distlock_core::raft::{Action, Config, Membership, Raft, SnapshotError, StateMachine, Stored};
//! use distlock_core::time::Instant;
//!
//! /// The replicated state: a counter.
//! #[derive(Default)]
//! struct Counter(u64);
//!
//! impl StateMachine for Counter {
//!     type Command = u64;
//!     type Output = u64;
//!     fn apply(&mut self, _index: LogIndex, add: &u64) -> u64 {
//!         self.0 += add;
//!         self.0
//!     }
//!     fn snapshot(&self) -> Vec<u8> {
//!         self.0.to_le_bytes().to_vec()
//!     }
//!     fn restore(&mut self, data: &[u8]) -> Result<(), SnapshotError> {
//!         let bytes = data.try_into().map_err(|_| SnapshotError { reason: "not 8 bytes" })?;
//!         self.0 = u64::from_le_bytes(bytes);
//!         Ok(())
//!     }
//! }
//!
//! let me = NodeId(1);
//! let stored = Stored::fresh(Membership::with_voters([me])); // or what the disk holds
//! let mut raft = Raft::new(Config::new(me), Counter::default(), stored, 42, Instant::ZERO)?;
//! let mut now = Instant::ZERO;
//! let mut results = Vec::new();
//! for step in 0..100 {
//!     // 1. Inputs: timers (and, in a cluster, messages from peers).
//!     if let Some(deadline) = raft.poll_timeout() {
//!         now = now.max(deadline);
//!         raft.handle_timeout(now);
//!     }
//!     if raft.is_leader() && step == 50 {
//!         raft.propose(5).expect("the leader takes proposals");
//!     }
//!     // 2. Drain the actions until none is left, doing what each MUST.
//!     while let Some(action) = raft.poll_action() {
//!         match action {
//!             // Write durably (fsync), then report it; here: at once.
//!             Action::Persist(p) => raft.persisted(p.seq, now),
//!             Action::Send(msg) => unreachable!("one server has no peers: {msg:?}"),
//!             Action::Applied { output, .. } => results.push(output),
//!             Action::ReadReady { .. } | Action::ReadFailed { .. } => {}
//!         }
//!     }
//! }
//! assert!(raft.is_leader());
//! assert_eq!(results, [5]);
//! # Ok::<(), distlock_core::raft::RestoreError>(())
//! ```

pub mod auth;
pub mod client;
pub mod ids;
pub mod locks;
pub mod node;
pub mod proto;
pub mod raft;
pub mod time;

#[cfg(test)]
mod service_tests;
/// Deterministic-harness helpers (a disk model that checks the persistence
/// contract, a drifting clock), shared with the `distlock-sim` crate.
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
