//! The committed log as a witness (SCENARIOS §3.4): after a run, the most
//! up-to-date durable log in the cluster (highest last term, then highest
//! last index) holds every committed entry. Replaying it through the real
//! lock state machine gives every grant the cluster made, with its token,
//! and every request it answered "granted"; the checker then joins those
//! with what clients were told. The replay also notes every explicit
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

/// Replays the most up-to-date of `disks` and returns the record of the
/// grants it made (`None` when no disk holds anything, or the snapshot
/// cannot be read).
#[must_use]
pub fn committed_grants<'a>(disks: impl IntoIterator<Item = &'a SimDisk>) -> Option<Ev> {
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
    let mut grants = Vec::new();
    let mut answers = Vec::new();
    let mut release_handoffs = 0;
    let mut delayed_releases = Vec::new();
    let mut first_answers: BTreeMap<(u64, u64), (Response, bool)> = BTreeMap::new();
    let mut answer_conflicts = Vec::new();
    for entry in entries.iter().filter(|e| e.index.0 > from_index) {
        if let EntryPayload::Command(cmd) = &entry.payload {
            let applied = state.apply(entry.index, cmd);
            for (lock, session) in explicit_releases(&applied.events) {
                if state
                    .lock_status(lock)
                    .and_then(|s| s.delay)
                    .is_some_and(|d| d.since == entry.index)
                {
                    delayed_releases.push((lock.to_string(), session, entry.index.0));
                }
                if applied
                    .events
                    .iter()
                    .any(|e| matches!(e, Event::Acquired { lock: l, .. } if l.as_ref() == lock))
                {
                    release_handoffs += 1;
                }
            }
            for reply in applied.replies {
                let Reply::To {
                    session,
                    seq,
                    response,
                } = reply
                else {
                    continue;
                };
                if let Ok(Outcome::Granted { token }) = response {
                    answers.push((session.0, seq.0, token.0));
                }
                if !from_the_request(&response) {
                    continue;
                }
                match first_answers.entry((session.0, seq.0)) {
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert((response, false));
                    }
                    std::collections::btree_map::Entry::Occupied(mut o) => {
                        let (first, retried) = o.get_mut();
                        *retried = true;
                        if *first != response {
                            answer_conflicts.push((
                                session.0,
                                seq.0,
                                format!("{first:?}"),
                                format!("{response:?}"),
                            ));
                        }
                    }
                }
            }
            for event in applied.events {
                if let Event::Acquired {
                    lock,
                    session,
                    token,
                    ..
                } = event
                {
                    grants.push((lock.to_string(), session.0, token.0));
                }
            }
        }
    }
    Some(Ev::CommittedLog {
        from_index,
        to_index: entries.last().map_or(from_index, |e| e.index.0),
        grants,
        answers,
        release_handoffs,
        delayed_releases,
        retries_answered: first_answers
            .values()
            .filter(|(_, retried)| *retried)
            .count() as u64,
        answer_conflicts,
    })
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
