//! Pieces shared by the deterministic test harnesses: a drifting clock and
//! a disk that loses what was not reported durable.

mod clock;
mod disk;

pub(crate) use clock::DriftClock;
pub(crate) use disk::Disk;
