//! distlock's fuzz targets. Each module's `run` takes arbitrary bytes and
//! panics only on a bug: a decoder that panics, a node whose state breaks
//! an invariant, a recovery that neither fails with a typed error nor
//! yields a state a server can start from.
//!
//! `scripts/fuzz` builds each target as a libFuzzer binary (`src/bin`);
//! `tests/corpora.rs` replays the committed corpora through the same
//! functions as plain tests, and `src/bin/seeds.rs` writes the seeds those
//! corpora grew from.

pub mod input;
pub mod node;
pub mod snapshot;
pub mod tcp;
pub mod wal;
pub mod ws;

pub mod snapshot_cmd;

/// The target names, as `scripts/fuzz` and the corpus directories know them.
pub const TARGETS: [&str; 5] = ["tcp", "ws", "node", "wal", "snapshot"];

/// Runs target `name` on `data`; `false` for an unknown name.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "tcp" => tcp::run(data),
        "ws" => ws::run(data),
        "node" => node::run(data),
        "wal" => wal::run(data),
        "snapshot" => snapshot::run(data),
        _ => return false,
    }
    true
}
