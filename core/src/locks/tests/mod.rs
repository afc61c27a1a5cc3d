//! Tests of the lock state machine: a small driver (`harness`), tables of
//! every command against every lock state (`table`), named scenarios
//! (`scenarios`), sessions and exactly-once (`sessions`), snapshots
//! (`snapshots`) and a seeded randomized run checking invariants (`random`).

mod election;
mod harness;
mod listing;
mod random;
mod scenarios;
mod sessions;
mod snapshots;
mod table;
