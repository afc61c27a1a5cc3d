//! Pieces shared by the deterministic test harnesses: a drifting clock, a
//! disk that loses what was not reported durable, and the transcript file
//! format (commands and the output they must print), where two states
//! differ, and the cut links of the multi-server test harnesses.

mod clock;
mod difference;
mod disk;
#[cfg(test)]
pub(crate) mod links;
pub mod transcript;

pub use clock::DriftClock;
pub use difference::first_difference;
pub use disk::Disk;
