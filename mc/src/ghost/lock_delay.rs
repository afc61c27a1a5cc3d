//! Lock-delay, as the committed log gives it: a lock enters lock-delay
//! only when its holder's session expires, never on an explicit release
//! or a close, and for exactly the length that holder asked for when it
//! acquired the lock. Checked on the checker's own replay of the committed
//! log, from the events each entry's application reports.

use super::Ghost;
use distlock_core::ids::LogIndex;
use distlock_core::locks::{ClientCommand, Command, Event, SessionId};
use distlock_core::proto::RequestBody;

/// A command, as traces print requests.
fn what(cmd: &Command) -> String {
    match cmd {
        Command::Client(c) => crate::describe::request(&RequestBody::Log(c.clone())),
        other => format!("{other:?}"),
    }
}

impl Ghost {
    /// Before `cmd` is applied: the lock-delay an acquire asks for, kept
    /// per session and lock until the session's holder of it expires.
    pub(super) fn note_requested_delay(&mut self, cmd: &Command) {
        if let Command::Client(ClientCommand::Acquire {
            session,
            lock,
            lock_delay_ms,
            ..
        }) = cmd
        {
            self.replay
                .delays
                .insert((*session, lock.clone()), *lock_delay_ms);
        }
    }

    /// After entry `index` (`cmd`) was applied: every lock-delay it
    /// started is an expired holder's, of the length it asked for.
    pub(super) fn check_lock_delays(&mut self, index: LogIndex, cmd: &Command, events: &[Event]) {
        let expired: Option<SessionId> = match cmd {
            Command::ExpireSession { session } => Some(*session),
            _ => None,
        };
        for event in events {
            let Event::LockDelayStarted { lock, delay_ms, .. } = event else {
                continue;
            };
            let Some(session) = expired else {
                self.violate(format!(
                    "lock-delay: entry {} ({}) started a {delay_ms} ms lock-delay of {lock}; only a holder's expiry does",
                    index.0,
                    what(cmd)
                ));
                return;
            };
            let asked = self
                .replay
                .delays
                .get(&(session, lock.to_string()))
                .copied();
            if asked != Some(*delay_ms) {
                self.violate(format!(
                    "lock-delay: session {}'s expiry at {} started a {delay_ms} ms lock-delay of {lock}; its holder asked for {} ms",
                    session.0,
                    index.0,
                    asked.unwrap_or(0)
                ));
                return;
            }
        }
    }
}
