//! Hooks for explicit-state model checking (the `testkit` feature):
//! fingerprinting a server (see `raft::Raft::fingerprint`) and reading
//! when its lease timers fall due.

use super::Node;
use crate::raft::HashWriter;
use crate::time::Instant;
use std::fmt::Write as _;
use std::hash::Hasher;

impl Node {
    /// When the next of this server's lease timers (a session's deadline,
    /// a wait's timeout, a lock-delay's end) falls due, if it keeps them
    /// now: a checker lets the server's timer fire late, at that moment,
    /// as if the process had paused through its heartbeats.
    #[must_use]
    pub fn lease_deadline(&self) -> Option<Instant> {
        if self.raft.has_committed_own_term() {
            self.timers.next()
        } else {
            None
        }
    }

    /// Feeds everything that decides this server's future behaviour into
    /// `h` (its Raft's fingerprint included); only the metrics kept in
    /// `stats` are left out.
    pub fn fingerprint<H: Hasher>(&self, h: &mut H) {
        // Destructured so that a new field does not compile until it is
        // either hashed or deliberately left out here.
        let Self {
            raft,
            members,
            now,
            timers,
            led_term,
            greeted,
            attached,
            waiting,
            opening,
            forwarded,
            forward_of,
            next_forward,
            known_leader,
            reads,
            next_read,
            watchers,
            exports,
            revokes,
            pending_changes,
            announced,
            draining,
            advertise,
            publish_at,
            addrs_checked,
            clients,
            actions,
            stats: _,
        } = self;
        raft.fingerprint(h);
        let _ = write!(
            HashWriter(h),
            "{members:?}{now:?}{timers:?}{led_term:?}{greeted:?}{attached:?}{waiting:?}\
             {opening:?}{forwarded:?}{forward_of:?}{next_forward:?}{known_leader:?}{reads:?}\
             {next_read:?}{watchers:?}{exports:?}{revokes:?}{pending_changes:?}{announced:?}\
             {draining:?}{advertise:?}{publish_at:?}{addrs_checked:?}{clients:?}{actions:?}"
        );
    }
}
