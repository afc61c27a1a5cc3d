//! Watches of locks through the session's connection: asked on the
//! current connection, asked again on every new one (a watch belongs to a
//! connection on the server's side), and their events passed on without
//! repeating, across a failover, one already reported.

use super::{ClientSession, Conn};
use crate::client::{ClientEvent, WatchUpdate};
use crate::ids::LogIndex;
use crate::proto::{ClientFrame, Request, RequestBody, WatchEvent};

/// One watched lock.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Watched {
    /// Whether `Watch` was sent on some connection already: asking again on
    /// a later one is a resumption, which may have missed events.
    asked: bool,
    /// The log index of the last event reported.
    last: Option<LogIndex>,
    /// Events at or below this index were reported before the latest
    /// reconnection: a server that applied less than the previous one
    /// sends them again.
    skip_through: Option<LogIndex>,
}

impl ClientSession {
    /// Watches `lock`: its events come out as [`ClientEvent::Watch`] from
    /// the next entry the connected server applies, and the watch is asked
    /// again on every new connection. Watching a lock watched already does
    /// nothing. Needs no session.
    pub fn watch(&mut self, lock: impl Into<String>) {
        let lock = lock.into();
        if self.watches.contains_key(&lock) {
            return;
        }
        self.watches.insert(lock.clone(), Watched::default());
        if self.conn == Conn::Connected {
            self.ask_watch(lock);
        }
    }

    /// Stops watching `lock`; no event of it comes out afterwards.
    pub fn unwatch(&mut self, lock: &str) {
        if self.watches.remove(lock).is_some() && self.conn == Conn::Connected {
            let rid = self.take_rid();
            self.frames.push_back(ClientFrame::Request(Request {
                id: rid,
                body: RequestBody::Unwatch {
                    lock: lock.to_owned(),
                },
            }));
        }
    }

    /// The locks watched, by name.
    pub fn watched(&self) -> impl Iterator<Item = &str> {
        self.watches.keys().map(String::as_str)
    }

    /// On a new connection: asks every watch again, and reports the
    /// resumption of those asked before.
    pub(super) fn resend_watches(&mut self) {
        let locks: Vec<String> = self.watches.keys().cloned().collect();
        for lock in locks {
            self.ask_watch(lock);
        }
    }

    fn ask_watch(&mut self, lock: String) {
        let Some(w) = self.watches.get_mut(&lock) else {
            return;
        };
        let resumed = w.asked;
        w.asked = true;
        w.skip_through = w.last;
        // The answer (`Watching`) is not waited for: events follow it on
        // this connection, and a server that cannot serve is found out by
        // the session's own requests.
        let rid = self.take_rid();
        self.frames.push_back(ClientFrame::Request(Request {
            id: rid,
            body: RequestBody::Watch { lock: lock.clone() },
        }));
        if resumed {
            self.events.push_back(ClientEvent::Watch {
                lock,
                update: WatchUpdate::Resumed,
            });
        }
    }

    /// An event of a lock on the current connection.
    pub(super) fn on_watch_event(&mut self, event: WatchEvent) {
        let Some(w) = self.watches.get_mut(&*event.lock) else {
            return;
        };
        let index = event.event.index();
        if w.skip_through.is_some_and(|s| index <= s) {
            return;
        }
        debug_assert!(
            w.last.is_none_or(|l| l <= index),
            "watch events of one connection come in log order"
        );
        w.last = Some(index);
        self.events.push_back(ClientEvent::Watch {
            lock: event.lock.to_string(),
            update: WatchUpdate::Event(event.event),
        });
    }
}
