//! Where the runtime reads time: the core only ever sees instants of the
//! local monotonic clock, passed in with every input.

use distlock_core::time::Instant;

/// A source of local monotonic time. The simulation supplies a drifting one.
pub trait Clock: Send + Sync + 'static {
    /// The current reading.
    fn now(&self) -> Instant;
}

/// The process's monotonic clock, counted from when it was created.
#[derive(Debug)]
pub struct MonotonicClock {
    origin: std::time::Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            origin: std::time::Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Instant {
        let micros = u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX);
        Instant::from_micros(micros)
    }
}
