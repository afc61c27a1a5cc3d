//! The committed log as a witness (SIMULATION.md §5.4): after a run, the most
//! up-to-date durable log in the cluster (highest last term, then highest
//! last index) holds every committed entry. Replaying it through the real
//! lock state machine gives every grant the cluster made, with its token;
//! the checker then joins those with what clients were told. The replay
//! also notes every explicit
//! release that started a lock-delay (S18: only an expiry may), and every
//! request the log answered twice differently (a retry must get the first
//! answer again: exactly once).
//!
//! Why that log: a log whose last entry has the highest term agrees, up to
//! that entry, with the log of that term's leader, which held every entry
//! committed before; an entry committed later in that term is durable on a
//! majority, whose logs would be longer in the same term.

use crate::history::Ev;
use crate::storage::SimDisk;
use distlock_core::locks::{Command, Event, LockError, LockState, Outcome, Reply, Response};
use distlock_core::raft::{EntryPayload, StateMachine};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

/// Replays the most up-to-date of `disks` and returns what it found (the
/// [`Ev::CommittedLog`] record: grants, releases, answers; `None` when no
/// disk holds anything, or the snapshot cannot be read).
#[must_use]
pub fn replay_committed_log<'a>(disks: impl IntoIterator<Item = &'a SimDisk>) -> Option<Ev> {
    let logs: Vec<_> = disks.into_iter().map(SimDisk::durable_log).collect();
    let last = |log: &(
        Option<distlock_core::raft::Snapshot>,
        Vec<distlock_core::raft::Entry<Command>>,
    )| {
        match (log.1.last(), &log.0) {
            (Some(e), _) => (e.term.0, e.index.0),
            (None, Some(s)) => (s.meta.last_term.0, s.meta.last_index.0),
            (None, None) => (0, 0),
        }
    };
    let (snapshot, entries) = logs.into_iter().max_by_key(|l| last(l))?;
    let mut state = LockState::default();
    let mut from_index = 0;
    if let Some(s) = &snapshot {
        state.restore(&s.data).ok()?;
        from_index = s.meta.last_index.0;
    }
    let mut facts = Facts::default();
    for entry in entries.iter().filter(|e| e.index.0 > from_index) {
        if let EntryPayload::Command(cmd) = &entry.payload {
            let applied = state.apply(entry.index, cmd);
            facts.releases(entry.index.0, &applied.events, &state);
            facts.replies(applied.replies);
            facts.grants(applied.events);
        }
    }
    Some(Ev::CommittedLog {
        from_index,
        to_index: entries.last().map_or(from_index, |e| e.index.0),
        grants: facts.grants,
        release_handoffs: facts.release_handoffs,
        delayed_releases: facts.delayed_releases,
        retries_answered: facts
            .first_answers
            .values()
            .filter(|(_, retried)| *retried)
            .count() as u64,
        answer_conflicts: facts.answer_conflicts,
    })
}

/// What the replay gathers, entry by entry (see [`Ev::CommittedLog`]).
#[derive(Default)]
struct Facts {
    grants: Vec<(String, u64, u64)>,
    release_handoffs: u64,
    delayed_releases: Vec<(String, u64, u64)>,
    /// Each request's first answer, and whether a retry was answered too.
    first_answers: BTreeMap<(u64, u64), (Response, bool)>,
    answer_conflicts: Vec<(u64, u64, String, String)>,
}

impl Facts {
    /// Every grant of one entry.
    fn grants(&mut self, events: Vec<Event>) {
        for event in events {
            if let Event::Acquired {
                lock,
                session,
                token,
                ..
            } = event
            {
                self.grants.push((lock.to_string(), session.0, token.0));
            }
        }
    }

    /// Every explicit release of the entry at `index`: whether it started a
    /// lock-delay (it must not), and whether it handed the lock over.
    fn releases(&mut self, index: u64, events: &[Event], state: &LockState) {
        for (lock, session) in explicit_releases(events) {
            if state
                .lock_status(lock)
                .and_then(|s| s.delay)
                .is_some_and(|d| d.since.0 == index)
            {
                self.delayed_releases
                    .push((lock.to_string(), session, index));
            }
            if events
                .iter()
                .any(|e| matches!(e, Event::Acquired { lock: l, .. } if l.as_ref() == lock))
            {
                self.release_handoffs += 1;
            }
        }
    }

    /// Every answer: grants, and any request answered twice differently.
    fn replies(&mut self, replies: Vec<Reply>) {
        for reply in replies {
            let Reply::To {
                session,
                seq,
                response,
            } = reply
            else {
                continue;
            };
            if !from_the_request(&response) {
                continue;
            }
            match self.first_answers.entry((session.0, seq.0)) {
                Entry::Vacant(v) => {
                    v.insert((response, false));
                }
                Entry::Occupied(mut o) => {
                    let (first, retried) = o.get_mut();
                    *retried = true;
                    if *first != response {
                        self.answer_conflicts.push((
                            session.0,
                            seq.0,
                            format!("{first:?}"),
                            format!("{response:?}"),
                        ));
                    }
                }
            }
        }
    }
}

/// Whether an answer is the request's own, which every retry must get
/// again: not "still queued" (a later entry answers), and not a refusal
/// made before the request was looked at (its session has ended, it is
/// older than what the client acknowledged, or too many were
/// unacknowledged), which a retry may legitimately meet where the first
/// attempt did not.
fn from_the_request(response: &Response) -> bool {
    !matches!(
        response,
        Ok(Outcome::Pending)
            | Err(LockError::SessionNotFound
                | LockError::SessionExpired
                | LockError::SessionClosed
                | LockError::StaleSequence { .. }
                | LockError::TooManyUnacknowledged { .. })
    )
}

/// (lock, session) of every grant the events end by an explicit release
/// or close, on a lock no expiry in the same events touched (an expiry may
/// start a delay that the release then leaves in force).
fn explicit_releases(events: &[Event]) -> Vec<(&str, u64)> {
    let expired = |lock: &str| {
        events
            .iter()
            .any(|e| matches!(e, Event::Expired { lock: l, .. } if l.as_ref() == lock))
    };
    events
        .iter()
        .filter_map(|e| match e {
            Event::Released { lock, session, .. } if !expired(lock) => {
                Some((lock.as_ref(), session.0))
            }
            _ => None,
        })
        .collect()
}
