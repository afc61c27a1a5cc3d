//! A session's table of answers for exactly-once requests (Raft thesis
//! §6.3): a retried request is answered from here instead of being applied
//! again.
//!
//! The client sends, with every request, its lowest unanswered sequence
//! number (`ack`); answers below it were delivered and are dropped, and a
//! request below that floor can only be a stale duplicate.

use super::command::Seq;
use super::response::Response;
use serde::{Deserialize, Serialize};

/// What is remembered about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Slot {
    /// A queued acquire, to be answered by a later entry.
    Pending,
    /// The answer given.
    Done(Response),
}

/// What the table knows about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Seen {
    /// Never seen: apply it.
    New,
    /// Below the floor: its answer is forgotten.
    Stale(Seq),
    /// Seen and still queued.
    Pending,
    /// Seen and answered with this.
    Done(Response),
}

/// One session's remembered answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Dedupe {
    /// Every request below this was acknowledged by the client.
    floor: Seq,
    /// Requests at or above `floor` that were applied, sorted by seq. A
    /// sorted `Vec` rather than a map: a session usually has one or two
    /// unacknowledged requests, and a million sessions must stay small.
    slots: Vec<(Seq, Slot)>,
}

impl Dedupe {
    fn find(&self, seq: Seq) -> Result<usize, usize> {
        self.slots.binary_search_by_key(&seq, |(s, _)| *s)
    }

    pub(super) fn seen(&self, seq: Seq) -> Seen {
        if seq < self.floor {
            return Seen::Stale(self.floor);
        }
        match self.find(seq) {
            Err(_) => Seen::New,
            Ok(at) => match self.slots[at].1 {
                Slot::Pending => Seen::Pending,
                Slot::Done(response) => Seen::Done(response),
            },
        }
    }

    /// The floor after request `seq` acknowledges everything below `ack`.
    /// An `ack` above `seq` is impossible for a correct client (this request
    /// is itself unanswered), so it is capped at `seq` and never forgets the
    /// request being applied.
    pub(super) fn floor_after(&self, seq: Seq, ack: Seq) -> Seq {
        self.floor.max(ack.min(seq))
    }

    /// How many answers would be kept once the floor is `floor`.
    pub(super) fn kept_above(&self, floor: Seq) -> usize {
        self.slots.len() - self.slots.partition_point(|(seq, _)| *seq < floor)
    }

    /// Forgets every answer below `floor`.
    pub(super) fn trim(&mut self, floor: Seq) {
        if floor <= self.floor {
            return;
        }
        self.floor = floor;
        let below = self.slots.partition_point(|(seq, _)| *seq < floor);
        self.slots.drain(..below);
    }

    /// Remembers the answer to `seq` (below the floor it was acknowledged
    /// already, so there is nothing to remember).
    pub(super) fn answer(&mut self, seq: Seq, response: Response) {
        self.put(seq, Slot::Done(response));
    }

    /// Remembers that `seq` is queued.
    pub(super) fn pend(&mut self, seq: Seq) {
        self.put(seq, Slot::Pending);
    }

    fn put(&mut self, seq: Seq, slot: Slot) {
        if seq < self.floor {
            return;
        }
        // Requests mostly come in order: append.
        if self.slots.last().is_none_or(|(last, _)| *last < seq) {
            self.slots.push((seq, slot));
            return;
        }
        match self.find(seq) {
            Ok(at) => self.slots[at].1 = slot,
            Err(at) => self.slots.insert(at, (seq, slot)),
        }
    }

    pub(super) fn floor(&self) -> Seq {
        self.floor
    }

    pub(super) fn slots(&self) -> impl Iterator<Item = (Seq, Slot)> + '_ {
        self.slots.iter().copied()
    }
}
