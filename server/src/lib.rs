//! The distlock server: the runtime that drives the sans-IO core over TCP
//! with durable storage, and the pieces the `distlock` command line uses.

pub mod bench_cmd;
pub mod client;
pub mod clock;
pub mod config;
pub mod dev_cmd;
pub mod lock_cmd;
pub mod runtime;
pub mod status_cmd;
pub mod storage;
