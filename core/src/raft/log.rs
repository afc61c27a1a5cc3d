//! The in-memory Raft log: the entries after the last compaction point,
//! with the (index, term) of the entry just before them.

use super::types::{Entry, EntryPayload, Membership};
use crate::ids::{LogIndex, Term};

/// Entries `first_index()..=last_index()`, contiguous, plus the position the
/// log was compacted to.
#[derive(Debug)]
#[cfg_attr(feature = "testkit", derive(Clone))]
pub(crate) struct RaftLog<C> {
    /// Index of the entry just before `entries` (0 for an uncompacted log).
    base_index: LogIndex,
    /// Term of that entry.
    base_term: Term,
    entries: Vec<Entry<C>>,
    /// The membership entries among `entries`, oldest first.
    configs: Vec<(LogIndex, Membership)>,
}

impl<C: Clone> RaftLog<C> {
    pub(crate) fn new(base_index: LogIndex, base_term: Term) -> Self {
        Self {
            base_index,
            base_term,
            entries: Vec::new(),
            configs: Vec::new(),
        }
    }

    pub(crate) fn base_index(&self) -> LogIndex {
        self.base_index
    }

    pub(crate) fn first_index(&self) -> LogIndex {
        self.base_index.next()
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        self.base_index.plus(self.entries.len() as u64)
    }

    pub(crate) fn last_term(&self) -> Term {
        self.entries.last().map_or(self.base_term, |e| e.term)
    }

    fn offset(&self, index: LogIndex) -> Option<usize> {
        if index <= self.base_index {
            return None;
        }
        let off = usize::try_from(index.0 - self.base_index.0 - 1).ok()?;
        (off < self.entries.len()).then_some(off)
    }

    /// The term of the entry at `index`, if the log still knows it.
    pub(crate) fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.base_index {
            return Some(self.base_term);
        }
        self.offset(index).map(|o| self.entries[o].term)
    }

    pub(crate) fn entry(&self, index: LogIndex) -> Option<&Entry<C>> {
        self.offset(index).map(|o| &self.entries[o])
    }

    /// Clones up to `max` entries starting at `from`.
    pub(crate) fn slice(&self, from: LogIndex, max: usize) -> Vec<Entry<C>> {
        match self.offset(from) {
            Some(o) => {
                let end = o.saturating_add(max).min(self.entries.len());
                self.entries[o..end].to_vec()
            }
            None => Vec::new(),
        }
    }

    /// Clones up to `max` entries starting at `from`, stopping before the
    /// entry that would take their encoded size above `max_bytes` (the
    /// first entry is always included).
    pub(crate) fn slice_within(&self, from: LogIndex, max: usize, max_bytes: usize) -> Vec<Entry<C>>
    where
        C: serde::Serialize,
    {
        let Some(o) = self.offset(from) else {
            return Vec::new();
        };
        let end = o.saturating_add(max).min(self.entries.len());
        let mut bytes = 0usize;
        let mut out = Vec::new();
        for entry in &self.entries[o..end] {
            let size = postcard::serialize_with_flavor::<_, _, usize>(
                entry,
                postcard::ser_flavors::Size::default(),
            )
            .unwrap_or(usize::MAX);
            bytes = bytes.saturating_add(size);
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(entry.clone());
        }
        out
    }

    pub(crate) fn append(&mut self, entry: Entry<C>) {
        debug_assert_eq!(entry.index, self.last_index().next());
        if let EntryPayload::Membership(m) = &entry.payload {
            self.configs.push((entry.index, m.clone()));
        }
        self.entries.push(entry);
    }

    /// Removes every entry with index `>= from`.
    pub(crate) fn truncate(&mut self, from: LogIndex) {
        if let Some(o) = self.offset(from) {
            self.entries.truncate(o);
            self.configs.retain(|(i, _)| *i < from);
        }
    }

    /// Drops the entries up to and including `index` (which the log must hold).
    pub(crate) fn compact(&mut self, index: LogIndex) {
        let Some(term) = self.term(index) else { return };
        if index <= self.base_index {
            return;
        }
        let n = usize::try_from(index.0 - self.base_index.0).unwrap_or(usize::MAX);
        self.entries.drain(..n.min(self.entries.len()));
        self.configs.retain(|(i, _)| *i > index);
        self.base_index = index;
        self.base_term = term;
    }

    /// Drops everything and starts over after a snapshot at (`index`, `term`).
    pub(crate) fn reset(&mut self, index: LogIndex, term: Term) {
        self.entries.clear();
        self.configs.clear();
        self.base_index = index;
        self.base_term = term;
    }

    /// The last index whose term is `term`, searching no lower than `floor`.
    pub(crate) fn last_index_of_term(&self, term: Term, floor: LogIndex) -> Option<LogIndex> {
        self.entries
            .iter()
            .rev()
            .take_while(|e| e.index > floor && e.term >= term)
            .find(|e| e.term == term)
            .map(|e| e.index)
    }

    /// The first index of the run of entries of the same term that contains
    /// `index`, searching no lower than `floor + 1`.
    pub(crate) fn first_index_of_term_at(&self, index: LogIndex, floor: LogIndex) -> LogIndex {
        let Some(term) = self.term(index) else {
            return index;
        };
        let mut first = index;
        let mut i = index.prev();
        while i > floor && i > self.base_index && self.term(i) == Some(term) {
            first = i;
            i = i.prev();
        }
        first
    }

    /// The membership entries held in the log, oldest first.
    pub(crate) fn memberships(&self) -> impl Iterator<Item = (LogIndex, &Membership)> {
        self.configs.iter().map(|(i, m)| (*i, m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_cut_by_bytes_but_never_empty() {
        let mut log = RaftLog::<String>::new(LogIndex(0), Term(0));
        for i in 1..=10 {
            log.append(Entry {
                index: LogIndex(i),
                term: Term(1),
                payload: EntryPayload::Command("x".repeat(1000)),
            });
        }
        // Each entry encodes to a little over 1000 bytes.
        assert_eq!(log.slice_within(LogIndex(1), 512, 3500).len(), 3);
        assert_eq!(log.slice_within(LogIndex(1), 2, 1 << 20).len(), 2);
        // One entry larger than the budget still goes alone.
        assert_eq!(log.slice_within(LogIndex(4), 512, 10).len(), 1);
        assert_eq!(log.slice_within(LogIndex(11), 512, 10).len(), 0);
    }
}
