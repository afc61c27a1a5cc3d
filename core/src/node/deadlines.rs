//! A set of keyed deadlines ordered by time: arm, disarm, and take the ones
//! that are due. The leader keeps one per kind of lease timer.

use crate::time::Instant;
use std::collections::{BTreeMap, BTreeSet};

/// Deadlines by key; at most one per key.
#[derive(Debug)]
#[cfg_attr(feature = "testkit", derive(Clone))]
pub(crate) struct Deadlines<K: Ord + Clone> {
    by_key: BTreeMap<K, Instant>,
    by_time: BTreeSet<(Instant, K)>,
}

impl<K: Ord + Clone> Default for Deadlines<K> {
    fn default() -> Self {
        Self {
            by_key: BTreeMap::new(),
            by_time: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Clone> Deadlines<K> {
    /// Sets `key`'s deadline to `at`, replacing any earlier one.
    pub(crate) fn arm(&mut self, key: K, at: Instant) {
        if let Some(old) = self.by_key.insert(key.clone(), at) {
            self.by_time.remove(&(old, key.clone()));
        }
        self.by_time.insert((at, key));
        debug_assert_eq!(self.by_key.len(), self.by_time.len());
    }

    /// Moves `key`'s deadline to `at` if that is later (leases only grow).
    pub(crate) fn extend(&mut self, key: &K, at: Instant) {
        if self.by_key.get(key).is_some_and(|&old| old < at) {
            self.arm(key.clone(), at);
        }
    }

    pub(crate) fn disarm(&mut self, key: &K) {
        if let Some(old) = self.by_key.remove(key) {
            self.by_time.remove(&(old, key.clone()));
        }
        debug_assert_eq!(self.by_key.len(), self.by_time.len());
    }

    /// `key`'s deadline, if armed.
    pub(crate) fn deadline(&self, key: &K) -> Option<Instant> {
        self.by_key.get(key).copied()
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|(t, _)| *t)
    }

    /// Keys whose deadline is at or before `now`, earliest first. They stay
    /// armed: the caller re-arms them (a retry time) or disarms them.
    pub(crate) fn due(&self, now: Instant) -> Vec<K> {
        self.by_time
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, k)| k.clone())
            .collect()
    }

    pub(crate) fn clear(&mut self) {
        self.by_key.clear();
        self.by_time.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }
}
