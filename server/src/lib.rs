//! The distlock server: the runtime that drives the core, its durable
//! storage, and (later) the `distlock` command line (work in progress).

pub mod storage;
