//! Fingerprinting a server for explicit-state model checking (the
//! `testkit` feature); see `raft::Raft::fingerprint`.

use super::Node;
use crate::raft::HashWriter;
use std::fmt::Write as _;
use std::hash::Hasher;

impl Node {
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
