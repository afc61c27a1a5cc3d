//! Pieces shared by the deterministic test harnesses: a drifting clock, a
//! disk that loses what was not reported durable, and the transcript file
//! format (commands and the output they must print).

mod clock;
mod disk;
pub mod transcript;

pub use clock::DriftClock;
pub use disk::Disk;
