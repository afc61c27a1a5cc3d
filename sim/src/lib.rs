//! Deterministic simulation of distlock (docs/SIMULATION.md).
//!
//! Under madsim this crate runs the REAL server runtime
//! ([`distlock_server::runtime::run`]) on 3 or 5 simulated
//! nodes with a simulated disk ([`storage::SimStorage`]) and a drifting clock
//! ([`clock::SimClock`]) each, and the REAL client library on client nodes
//! doing random lock work against a fenced resource. Faults (crashes with
//! loss of unsynced writes, pauses, partitions, packet loss, disk faults,
//! clock drift) come from a seeded RNG; everything observable is recorded in
//! a [`history::History`] whose hash identifies the run, and
//! [`checks`] verifies the properties of ARCHITECTURE.md §1 over it.
//!
//! The whole crate is `cfg(madsim)`: a normal build compiles it to nothing.

#![cfg(madsim)]

pub mod batch;
pub mod chaos;
pub mod checks;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod export;
pub mod faults;
pub mod history;
pub mod operator;
pub mod report;
pub mod resource;
pub mod rogue;
pub mod run;
pub mod scenario_file;
pub mod scenarios;
pub mod snapshot_fidelity;
pub mod storage;
pub mod tls;
pub mod witness;
pub mod workload;

pub use run::{SimConfig, Summary, run_seed};
