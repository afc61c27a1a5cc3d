//! A drifting local clock for harnesses: the reading of one node's monotonic
//! clock as a function of the simulator's true time.

use crate::time::Instant;

/// `local = offset + true × (1 + drift_ppm / 10⁶)`, in microseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct DriftClock {
    /// The local reading at true time zero, in microseconds.
    pub offset_us: u64,
    /// How fast (positive) or slow the clock runs, in parts per million.
    pub drift_ppm: i64,
}

impl DriftClock {
    /// The local reading at true time `true_us`.
    #[must_use]
    pub fn local(&self, true_us: u64) -> Instant {
        let skew = (i128::from(true_us) * i128::from(self.drift_ppm)) / 1_000_000;
        let local = i128::from(self.offset_us) + i128::from(true_us) + skew;
        Instant::from_micros(u64::try_from(local.max(0)).unwrap_or(0))
    }

    /// The earliest true time at which the local clock reads `deadline` or later.
    #[must_use]
    pub fn true_time_of(&self, deadline: Instant, now: u64) -> u64 {
        if self.local(now) >= deadline {
            return now;
        }
        let want = i128::from(deadline.as_micros()) - i128::from(self.offset_us);
        let mut t =
            u64::try_from((want * 1_000_000 / (1_000_000 + i128::from(self.drift_ppm))).max(0))
                .unwrap_or(0);
        t = t.max(now);
        while self.local(t) < deadline {
            t += 1;
        }
        t
    }
}
