//! What a server's lock service did, counted as it applies the log, for the
//! runtime to export as metrics and log: plain numbers and a small queue
//! of notices, so that the core depends on no metrics or logging library.
//!
//! Every server applies every entry, so the counters agree across members
//! (up to how far each has applied); notices are raised by the leader only,
//! so that an operator sees each of them once per cluster.

use crate::locks::{Event, FencingToken, SessionId};
use crate::time::{Duration, Instant};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// The upper bounds, in microseconds, of [`DurationBuckets`]: 100 µs to
/// about a minute, roughly ×2.5 apart (the last bucket is everything
/// above).
pub const DURATION_BOUNDS_US: [u64; 14] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    5_000_000, 60_000_000,
];

/// A histogram of durations with fixed buckets ([`DURATION_BOUNDS_US`]):
/// counts only, no allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DurationBuckets {
    /// How many fell in each bucket (not cumulative); the last counts those
    /// above every bound.
    pub counts: [u64; DURATION_BOUNDS_US.len() + 1],
    /// The sum of every duration, in microseconds.
    pub sum_us: u64,
}

impl DurationBuckets {
    /// Counts one duration.
    pub fn observe(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = DURATION_BOUNDS_US.partition_point(|&b| b < us);
        self.counts[i] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// How many durations were counted.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Something an operator must hear about once, raised by the leader as it
/// applies the entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A session's lease ran out: it lost these locks.
    SessionExpired {
        /// The session.
        session: SessionId,
        /// The locks it held, with the tokens of the ended grants.
        locks: Vec<(Arc<str>, FencingToken)>,
    },
}

/// Counters of the lock service on this server since it started.
#[derive(Clone, Debug, Default)]
pub struct LockCounters {
    /// Locks granted (a shared lock granted to two sessions counts twice).
    pub grants: u64,
    /// Grants ended by their holder (release, or its session closing).
    pub releases: u64,
    /// Grants ended because the holder's session expired.
    pub expiries: u64,
    /// Sessions opened.
    pub sessions_opened: u64,
    /// Sessions closed by their client.
    pub sessions_closed: u64,
    /// Sessions whose lease ran out.
    pub sessions_expired: u64,
    /// Acquires that joined a queue.
    pub waits: u64,
    /// Queued acquires that gave up at their timeout.
    pub timeouts: u64,
    /// Lock-delays started.
    pub lock_delays: u64,
    /// How long queued acquires stayed queued (granted, timed out,
    /// cancelled or ended with their session), as this server applied them.
    pub wait_time: DurationBuckets,
    /// How long a lock that had waiters stayed without a holder: from the
    /// end of a grant to the next grant (zero but for the commit of the
    /// release; a lock-delay after an expiry adds its length).
    pub handoff: DurationBuckets,
}

/// The counters plus what they need to measure durations.
#[derive(Debug, Default)]
#[cfg_attr(feature = "testkit", derive(Clone))]
pub(super) struct Stats {
    pub(super) counters: LockCounters,
    /// When each queued acquire joined its queue, by (session, acquire seq).
    /// Only contended acquires are here.
    wait_started: BTreeMap<(SessionId, crate::locks::Seq), Instant>,
    /// Queued acquires per lock, to know whether a freed lock has waiters.
    queued: BTreeMap<Arc<str>, u32>,
    /// When a lock with waiters was freed, until its next grant.
    freed: BTreeMap<Arc<str>, Instant>,
    pub(super) notices: VecDeque<Notice>,
    /// The locks a session lost to its expiry in the entry being applied,
    /// waiting for the entry's `SessionEnded` (only while leading).
    expiring: Vec<(SessionId, Arc<str>, FencingToken)>,
    /// Raft's count of installed snapshots when last looked at.
    installed_seen: u64,
}

impl Stats {
    /// Counts one applied event; `leading` raises notices.
    pub(super) fn on_event(&mut self, now: Instant, event: &Event, leading: bool) {
        let c = &mut self.counters;
        match event {
            Event::SessionOpened { .. } => c.sessions_opened += 1,
            Event::SessionEnded { session, expired } => {
                if *expired {
                    c.sessions_expired += 1;
                    if leading {
                        let locks = self
                            .expiring
                            .iter()
                            .filter(|(s, _, _)| s == session)
                            .map(|(_, l, t)| (Arc::clone(l), *t))
                            .collect();
                        self.expiring.retain(|(s, _, _)| s != session);
                        self.notices.push_back(Notice::SessionExpired {
                            session: *session,
                            locks,
                        });
                    }
                } else {
                    c.sessions_closed += 1;
                }
            }
            Event::Acquired { lock, .. } => {
                c.grants += 1;
                if let Some(at) = self.freed.remove(lock) {
                    c.handoff.observe(now.saturating_since(at));
                }
            }
            Event::Released { lock, .. } => {
                c.releases += 1;
                self.on_freed(now, lock);
            }
            Event::Expired {
                lock,
                session,
                token,
            } => {
                c.expiries += 1;
                if leading {
                    self.expiring.push((*session, Arc::clone(lock), *token));
                }
                self.on_freed(now, lock);
            }
            Event::WaitStarted {
                session,
                lock,
                acquire_seq,
                ..
            } => {
                c.waits += 1;
                self.wait_started.insert((*session, *acquire_seq), now);
                *self.queued.entry(Arc::clone(lock)).or_insert(0) += 1;
            }
            Event::WaitEnded {
                session,
                lock,
                acquire_seq,
            } => {
                if let Some(at) = self.wait_started.remove(&(*session, *acquire_seq)) {
                    c.wait_time.observe(now.saturating_since(at));
                }
                if let Some(n) = self.queued.get_mut(lock) {
                    *n -= 1;
                    if *n == 0 {
                        self.queued.remove(lock);
                    }
                }
            }
            Event::LockDelayStarted { .. } => c.lock_delays += 1,
            // A new value for an election's leader changes no lock.
            Event::LockDelayEnded { .. } | Event::Proclaimed { .. } => {}
        }
    }

    /// Counts an acquire answered `TimedOut`.
    pub(super) fn on_timed_out(&mut self) {
        self.counters.timeouts += 1;
    }

    fn on_freed(&mut self, now: Instant, lock: &Arc<str>) {
        if self.queued.contains_key(lock) {
            self.freed.entry(Arc::clone(lock)).or_insert(now);
        }
    }

    /// Forgets the timing of waits once a snapshot replaced the state (the
    /// waits it held are not ours to time): `installed` is Raft's count of
    /// installed snapshots.
    pub(super) fn after_install(&mut self, installed: u64) {
        if installed == self.installed_seen {
            return;
        }
        self.installed_seen = installed;
        self.wait_started.clear();
        self.queued.clear();
        self.freed.clear();
        self.expiring.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_count_each_duration_once() {
        let mut b = DurationBuckets::default();
        b.observe(Duration::from_micros(100));
        b.observe(Duration::from_micros(101));
        b.observe(Duration::from_secs(3600));
        assert_eq!(b.counts[0], 1);
        assert_eq!(b.counts[1], 1);
        assert_eq!(b.counts[DURATION_BOUNDS_US.len()], 1);
        assert_eq!(b.count(), 3);
        assert_eq!(b.sum_us, 100 + 101 + 3_600_000_000);
    }

    #[test]
    fn a_freed_lock_with_waiters_times_its_handoff() {
        let mut s = Stats::default();
        let t0 = Instant::from_micros(1_000);
        let lock: Arc<str> = Arc::from("a");
        let start = Event::WaitStarted {
            session: SessionId(2),
            lock: Arc::clone(&lock),
            acquire_seq: crate::locks::Seq(1),
            timeout_ms: None,
        };
        s.on_event(t0, &start, true);
        let t1 = t0 + Duration::from_millis(5);
        let expired = Event::Expired {
            lock: Arc::clone(&lock),
            session: SessionId(1),
            token: FencingToken(7),
        };
        s.on_event(t1, &expired, true);
        s.on_event(
            t1,
            &Event::SessionEnded {
                session: SessionId(1),
                expired: true,
            },
            true,
        );
        let t2 = t1 + Duration::from_millis(20);
        let ended = Event::WaitEnded {
            session: SessionId(2),
            lock: Arc::clone(&lock),
            acquire_seq: crate::locks::Seq(1),
        };
        s.on_event(t2, &ended, true);
        let granted = Event::Acquired {
            lock: Arc::clone(&lock),
            session: SessionId(2),
            token: FencingToken(9),
            mode: crate::locks::Mode::Exclusive,
        };
        s.on_event(t2, &granted, true);
        let c = &s.counters;
        assert_eq!(
            (c.grants, c.expiries, c.sessions_expired, c.waits),
            (1, 1, 1, 1)
        );
        assert_eq!(c.wait_time.sum_us, 25_000);
        assert_eq!(c.handoff.sum_us, 20_000);
        assert_eq!(
            s.notices.pop_front(),
            Some(Notice::SessionExpired {
                session: SessionId(1),
                locks: vec![(lock, FencingToken(7))],
            })
        );
    }
}
