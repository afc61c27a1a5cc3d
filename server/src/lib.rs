//! The distlock server as a library: the runtime that drives the sans-IO
//! core over TCP and WebSocket with durable storage ([`runtime`],
//! [`storage`]), and its configuration ([`config`]). The `distlock`
//! command line (the `distlock` package) and the simulator run it; the
//! client lives in `distlock-client`.

pub mod auth;
pub mod clock;
pub mod config;
pub mod limits;
pub mod metrics;
pub mod runtime;
pub mod storage;
pub mod tls;
