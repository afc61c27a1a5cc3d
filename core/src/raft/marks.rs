//! Postconditions of every input to [`Raft`]: what may only move one way
//! (term, commit, applied; a leader's own log), and how the indexes relate,
//! checked in debug builds (and so in the simulation) right after the
//! input changed the state.

use super::{Raft, Role, StateMachine};
use crate::ids::{LogIndex, Term};

/// The watermarks before an input.
#[derive(Clone, Copy, Debug)]
pub(super) struct Marks {
    term: Term,
    commit: LogIndex,
    applied: LogIndex,
    last: LogIndex,
    leading: bool,
}

impl<S: StateMachine> Raft<S> {
    pub(super) fn marks(&self) -> Marks {
        Marks {
            term: self.term,
            commit: self.commit,
            applied: self.applied,
            last: self.log.last_index(),
            leading: self.role == Role::Leader,
        }
    }

    /// Asserts what an input may not have broken, given the marks taken
    /// before it.
    pub(super) fn check_marks(&self, before: Marks) {
        if !cfg!(debug_assertions) {
            return;
        }
        let last = self.log.last_index();
        debug_assert!(
            self.term >= before.term,
            "term went back from {:?} to {:?}",
            before.term,
            self.term
        );
        debug_assert!(
            self.commit >= before.commit,
            "commit went back from {:?} to {:?}",
            before.commit,
            self.commit
        );
        debug_assert!(self.applied >= before.applied, "applied went back");
        debug_assert!(
            self.applied <= self.commit && self.commit <= last,
            "applied {:?} <= commit {:?} <= last {last:?} broken",
            self.applied,
            self.commit,
        );
        if before.leading && self.role == Role::Leader && self.term == before.term {
            debug_assert!(last >= before.last, "a leader truncated its own log");
        }
        debug_assert_eq!(
            self.role == Role::Leader,
            self.leader_state.is_some(),
            "leader state without the role, or the role without it"
        );
        if self.role == Role::Leader {
            debug_assert_eq!(self.leader, Some(self.cfg.id));
            debug_assert_eq!(
                self.voted_for,
                Some(self.cfg.id),
                "a leader voted for another"
            );
        }
        self.durability.check(last);
    }
}
