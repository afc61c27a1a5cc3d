//! The properties of ARCHITECTURE.md §1 checked while the lock-service world runs:
//! mutual exclusion at a fenced resource and at the level of the clients'
//! own lease beliefs, one holder per token, and no early release (no
//! server ever ends a session while its client's local lease says it is
//! alive). Liveness is checked by the schedules.

use super::world::{Client, Server, Work};
use crate::ids::NodeId;
use crate::locks::FencingToken;
use std::collections::BTreeMap;

/// A resource that checks fencing tokens: it accepts a write only if its
/// token is at least the highest it accepted for that lock.
#[derive(Debug, Default)]
pub(crate) struct Resource {
    /// Per lock: the highest token accepted and the client that used it.
    highest: BTreeMap<String, (FencingToken, usize)>,
    pub(crate) accepted: u64,
    pub(crate) rejected: u64,
}

impl Resource {
    pub(crate) fn write(&mut self, lock: &str, token: FencingToken, client: usize) -> bool {
        match self.highest.get(lock) {
            Some(&(t, _)) if token < t => {
                self.rejected += 1;
                false
            }
            _ => {
                self.highest.insert(lock.to_owned(), (token, client));
                self.accepted += 1;
                true
            }
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Checks {
    pub(crate) violations: Vec<String>,
    /// (lock, token) → the client granted it.
    grants: BTreeMap<(String, FencingToken), usize>,
    /// Sessions of clients seen ended by a server (coverage).
    ended_sessions: std::collections::BTreeSet<crate::locks::SessionId>,
}

fn at(now: u64) -> String {
    format!("t={}.{:06}s", now / 1_000_000, now % 1_000_000)
}

impl Checks {
    /// How many client sessions a server was seen to end.
    pub(crate) fn expiries_seen(&self) -> u64 {
        self.ended_sessions.len() as u64
    }

    pub(crate) fn failed(&self) -> bool {
        !self.violations.is_empty()
    }

    pub(crate) fn violation(&mut self, now: u64, what: String) {
        if self.violations.len() < 5 {
            self.violations.push(format!("{}: {what}", at(now)));
        }
    }

    /// No lost grant: a "granted" answer names an entry a majority stored
    /// (some server applied it, and only committed entries are applied);
    /// and an exclusive grant's token belongs to one client only.
    pub(crate) fn on_grant(
        &mut self,
        now: u64,
        client: usize,
        lock: &str,
        token: FencingToken,
        servers: &[Server],
    ) {
        let applied = servers
            .iter()
            .filter_map(|s| s.node.as_ref())
            .any(|n| n.raft().applied_index().0 >= token.0);
        if !applied {
            self.violation(
                now,
                format!("client {client} was granted {lock} at {token}, which no server applied"),
            );
        }
        match self.grants.get(&(lock.to_owned(), token)) {
            Some(&other) if other != client => {
                self.violation(
                    now,
                    format!("token {token} of {lock} granted to clients {other} and {client}"),
                );
            }
            _ => {
                self.grants.insert((lock.to_owned(), token), client);
            }
        }
    }

    /// Mutual exclusion: when the resource accepts a write with token `t`,
    /// no other client may still believe, on its own clock, that it holds
    /// the lock with an older token — the cluster released it early.
    pub(crate) fn on_write(
        &mut self,
        now: u64,
        client: usize,
        lock: &str,
        token: FencingToken,
        accepted: bool,
        clients: &[Client],
    ) {
        if !accepted {
            return;
        }
        for other in clients.iter().filter(|o| o.name != client) {
            let Work::Holding {
                lock: l, token: t, ..
            } = &other.work
            else {
                continue;
            };
            if l == lock && *t < token && other.session.is_alive(other.clock.local(now)) {
                let what = format!(
                    "mutual exclusion: client {client} wrote {lock} with token {token} while client {} still held it with {t} on a live lease",
                    other.name
                );
                self.violation(now, what);
            }
        }
    }

    /// No early release: a server that applied past a session's creation
    /// must still have it while its client's lease is alive.
    pub(crate) fn after_server_step(
        &mut self,
        now: u64,
        id: NodeId,
        servers: &[Server],
        clients: &[Client],
    ) {
        let Some(server) = servers.iter().find(|s| s.id == id) else {
            return;
        };
        let Some(node) = server.node.as_ref() else {
            return;
        };
        let state = node.raft().state_machine();
        for c in clients {
            let Some(session) = c.session.session_id() else {
                continue;
            };
            if state.last_applied().0 < session.0 || state.session(session).is_some() {
                continue;
            }
            self.ended_sessions.insert(session);
            if c.session.is_alive(c.clock.local(now)) {
                let lease_until = c.session.lease_until();
                self.violation(
                    now,
                    format!("early release: {id} ended session {session} of client {} whose lease runs until {lease_until:?} (client clock now {:?})", c.name, c.clock.local(now)),
                );
            }
        }
    }
}
