//! Pieces shared by the deterministic test harnesses: a drifting clock, a
//! disk that loses what was not reported durable, and the transcript file
//! format (commands and the output they must print), and the cut links
//! of the multi-server test harnesses.

mod clock;
mod disk;
#[cfg(test)]
pub(crate) mod links;
pub mod transcript;

pub use clock::DriftClock;
pub use disk::Disk;
