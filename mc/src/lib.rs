//! Explicit-state model checking of distlock's real core.
//!
//! The checker drives the unchanged sans-IO [`distlock_core::node::Node`]
//! (Raft, the lock state machine, lease timers, forwarding) of every
//! server of a small cluster through every interleaving of its inputs,
//! within bounds: a message delivered, duplicated or lost; a timer fired;
//! a write made durable; a server crashed and restarted from its disk; a
//! client request sent or retried at any server. Timed configurations
//! also keep the true time, with every clock drifting at the bound, and
//! check that no lease ends at the cluster while its holder counts on it. No model of the protocol
//! is written beside the code: each step is a call into the core, and each
//! state is the core's own state, cloned and fingerprinted through hooks of
//! its `testkit` feature.
//!
//! - [`setup`]: what a check explores (servers, clients' scripts, bounds);
//! - [`configs`]: the configurations CI checks;
//! - [`world`]: the system and its steps;
//! - [`ghost`]: the history and the properties checked in every state;
//! - [`check`]: the depth-first search;
//! - [`trace`]: counterexamples as transcripts, and their replay.
//!
//! Why a checker of its own rather than a library such as `stateright`:
//! the state is the core's (cloned, fingerprinted by the core's own hook),
//! a counterexample must print in the core's transcript vocabulary and
//! replay through its transcript runner, and the search needs exact depth
//! bounds with per-step budgets (crashes, duplicates); the whole search is
//! a hundred lines.

pub mod check;
pub mod client;
pub mod configs;
pub mod describe;
pub mod ghost;
pub mod prefix;
pub mod setup;
pub mod trace;
pub mod world;
