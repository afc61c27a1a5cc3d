//! A simulated disk for harnesses: what a server's storage holds durably,
//! updated by applying `Persist` requests (whole, or a prefix of their parts
//! to model a crash in the middle of a write) and checking the persistence
//! contract as it goes.

use crate::ids::{LogIndex, Term};
use crate::raft::{Entry, HardState, Persist, Snapshot};

/// What a server's disk holds durably.
#[derive(Clone, Debug)]
pub struct Disk<C> {
    /// The durable term and vote.
    pub hard_state: HardState,
    /// The durable snapshot.
    pub snapshot: Option<Snapshot>,
    /// Contiguous, starting right after the snapshot (or at 1).
    pub entries: Vec<Entry<C>>,
}

impl<C: Clone> Disk<C> {
    /// The index of the last durable entry (or of the snapshot).
    #[must_use]
    pub fn last_index(&self) -> LogIndex {
        self.entries
            .last()
            .map(|e| e.index)
            .or_else(|| self.snapshot.as_ref().map(|s| s.meta.last_index))
            .unwrap_or(LogIndex(0))
    }

    /// The term of the entry at `index`, if the disk has it.
    #[must_use]
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if let Some(s) = &self.snapshot {
            if s.meta.last_index == index {
                return Some(s.meta.last_term);
            }
        }
        let first = self.entries.first()?.index;
        if index < first {
            return None;
        }
        let off = usize::try_from(index.0 - first.0).ok()?;
        self.entries.get(off).map(|e| e.term)
    }

    /// Applies the first `parts` parts of a persist request, in the order the
    /// contract fixes; checks the contract on the way.
    ///
    /// # Errors
    /// A message naming the broken contract rule.
    pub fn apply(&mut self, p: &Persist<C>, parts: usize) -> Result<(), String> {
        if parts == 0 {
            return Ok(());
        }
        if let Some(hs) = p.hard_state {
            if hs.term < self.hard_state.term {
                return Err(format!(
                    "hard state term went back from {:?} to {:?}",
                    self.hard_state.term, hs.term
                ));
            }
            self.hard_state = hs;
        }
        if parts == 1 {
            return Ok(());
        }
        if let Some(from) = p.truncate_from {
            self.entries.retain(|e| e.index < from);
        }
        if parts == 2 {
            return Ok(());
        }
        if let Some(s) = &p.snapshot {
            let newer = self
                .snapshot
                .as_ref()
                .is_none_or(|old| old.meta.last_index < s.meta.last_index);
            if newer {
                self.snapshot = Some((**s).clone());
                self.entries.retain(|e| e.index > s.meta.last_index);
                if self
                    .entries
                    .first()
                    .is_some_and(|e| e.index != s.meta.last_index.next())
                {
                    self.entries.clear();
                }
            }
        }
        if parts == 3 {
            return Ok(());
        }
        let floor = self
            .snapshot
            .as_ref()
            .map_or(LogIndex(0), |s| s.meta.last_index);
        for e in p.entries.iter().filter(|e| e.index > floor) {
            let expected = self.last_index().next();
            if e.index != expected {
                return Err(format!(
                    "persist appends {:?} but the disk ends before {expected:?}",
                    e.index
                ));
            }
            self.entries.push(e.clone());
        }
        Ok(())
    }
}

impl<C> Default for Disk<C> {
    fn default() -> Self {
        Self {
            hard_state: HardState::default(),
            snapshot: None,
            entries: Vec::new(),
        }
    }
}
