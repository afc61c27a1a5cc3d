//! Per-node clocks for the simulation. madsim has one virtual clock for
//! the whole world ([`TrueTime`]); each server instead reads a
//! [`SimClock`]: an offset plus the true time scaled by a drift rate, which
//! the harness may change mid-run (the reading stays continuous). The clock
//! lives outside the node, so it survives restarts like a hardware clock.

use distlock_core::testkit::DriftClock;
use distlock_core::time::Instant;
use distlock_server::clock::Clock;
use std::sync::Mutex;

/// The simulator's true time, counted from the start of the run.
#[derive(Clone, Copy, Debug)]
pub struct TrueTime {
    start: tokio::time::Instant,
}

impl TrueTime {
    /// True time starts now.
    #[must_use]
    pub fn start() -> Self {
        Self {
            start: tokio::time::Instant::now(),
        }
    }

    /// Microseconds of true time since the start.
    #[must_use]
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The true-time image (µs since start) of a virtual instant.
    #[must_use]
    pub fn of(&self, t: tokio::time::Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.start).as_micros()).unwrap_or(u64::MAX)
    }
}

/// `local = base_local + (true − base_true) × (1 + drift)`; changing the
/// drift re-bases, so the reading never jumps.
#[derive(Debug)]
struct Segment {
    base_true_us: u64,
    clock: DriftClock,
}

/// One server's monotonic clock.
#[derive(Debug)]
pub struct SimClock {
    time: TrueTime,
    segment: Mutex<Segment>,
}

impl SimClock {
    /// A clock reading `offset_us` now and running `drift_ppm` fast (or
    /// slow, if negative).
    #[must_use]
    pub fn new(time: TrueTime, offset_us: u64, drift_ppm: i64) -> Self {
        Self {
            time,
            segment: Mutex::new(Segment {
                base_true_us: time.now_us(),
                clock: DriftClock {
                    offset_us,
                    drift_ppm,
                },
            }),
        }
    }

    fn segment(&self) -> std::sync::MutexGuard<'_, Segment> {
        self.segment
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The reading at true time `true_us` (not before the last re-base).
    #[must_use]
    pub fn local_at(&self, true_us: u64) -> Instant {
        let s = self.segment();
        s.clock.local(true_us.saturating_sub(s.base_true_us))
    }

    /// Changes the drift rate from now on.
    pub fn set_drift(&self, drift_ppm: i64) {
        let now = self.time.now_us();
        let mut s = self.segment();
        let reading = s.clock.local(now.saturating_sub(s.base_true_us));
        *s = Segment {
            base_true_us: now,
            clock: DriftClock {
                offset_us: reading.as_micros(),
                drift_ppm,
            },
        };
    }

    /// The current drift rate.
    #[must_use]
    pub fn drift_ppm(&self) -> i64 {
        self.segment().clock.drift_ppm
    }
}

impl Clock for SimClock {
    fn now(&self) -> Instant {
        self.local_at(self.time.now_us())
    }
}
