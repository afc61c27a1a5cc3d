//! The distlock server: the runtime that drives the sans-IO core over TCP
//! with durable storage, and the pieces the `distlock` command line uses
//! (the command modules are left out of simulation builds: they use process,
//! signal and task-set APIs the simulator does not provide).

pub mod admin;
#[cfg(not(madsim))]
pub mod bench_cmd;
pub mod client;
pub mod clock;
pub mod config;
#[cfg(not(madsim))]
pub mod dev_cmd;
#[cfg(not(madsim))]
pub mod lock_cmd;
#[cfg(not(madsim))]
pub mod members_cmd;
pub mod runtime;
#[cfg(not(madsim))]
pub mod snapshot_cmd;
#[cfg(not(madsim))]
pub mod status_cmd;
pub mod storage;
