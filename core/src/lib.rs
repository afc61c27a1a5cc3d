//! The sans-IO core of distlock: Raft consensus, and (in later modules) the
//! lock state machine, client session logic and wire types.
//!
//! Nothing here does IO, reads a clock, spawns a thread or draws unseeded
//! randomness: every input carries the current time of the local monotonic
//! clock, and every output is an action for the driver to carry out. The same
//! code therefore runs in production, in the deterministic in-core cluster
//! tests and under the simulator.

pub mod ids;
pub mod raft;
pub mod time;
