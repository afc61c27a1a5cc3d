//! `RevokeSession`, an operator ending a session as its expiry would: the
//! leader checks through ReadIndex that the session is live (an unknown
//! one is refused, changing nothing), then proposes the very
//! `ExpireSession` command its lease timer would, and answers once that
//! entry is applied. Lock-delays, waiters' answers and the timers' disarming
//! follow from the expiry itself.

use super::{Node, Origin};
use crate::ids::LogIndex;
use crate::locks::{Command, Event, SessionId};
use crate::proto::{ProtoError, ResponseBody};
use std::collections::BTreeMap;

/// Revocations proposed by this leader, by the index of their entry.
#[derive(Debug, Default)]
#[cfg_attr(feature = "testkit", derive(Clone))]
pub(super) struct Revokes(BTreeMap<LogIndex, (Origin, SessionId)>);

impl Node {
    /// The ReadIndex of a revocation is confirmed: propose the expiry of a
    /// live session, or refuse.
    pub(super) fn start_revoke(&mut self, origin: Origin, session: SessionId) {
        if self.raft.state_machine().session(session).is_none() {
            self.answer(origin, Err(ProtoError::UnknownSession));
            return;
        }
        match self.raft.propose(Command::ExpireSession { session }) {
            Ok((index, _)) => {
                self.revokes.0.insert(index, (origin, session));
            }
            Err(e) => self.refuse(origin, e),
        }
    }

    /// The entry at `index` was applied with `events`: answers the
    /// revocation proposed there, and those whose entries were replaced (a
    /// lost leadership) before it.
    pub(super) fn settle_revokes(&mut self, index: LogIndex, events: &[Event]) {
        while let Some(entry) = self.revokes.0.first_entry() {
            if *entry.key() > index {
                break;
            }
            let at = *entry.key();
            let (origin, session) = entry.remove();
            let ended = at == index
                && events
                    .iter()
                    .any(|e| matches!(e, Event::SessionEnded { session: s, .. } if *s == session));
            let result = if ended {
                Ok(ResponseBody::Revoked { session })
            } else if at == index {
                // It ended between the check and the entry.
                Err(ProtoError::UnknownSession)
            } else {
                Err(ProtoError::NotLeader {
                    leader_hint: self.raft.leader(),
                })
            };
            self.answer(origin, result);
        }
    }
}
