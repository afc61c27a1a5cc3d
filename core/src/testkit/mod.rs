//! Pieces shared by the deterministic test harnesses: a drifting clock and
//! a disk that loses what was not reported durable.

mod clock;
mod disk;

pub use clock::DriftClock;
pub use disk::Disk;
