//! Which servers may open a peer link to this one.
//!
//! A server that is neither configured nor a member is turned away before
//! any of its frames reaches Raft: a stray or rogue process must not make
//! members adopt its term (SIMULATION.md, S19). But a server that was down, or
//! cut off, while the configuration changed knows only an old one, in
//! which the members added since do not appear; turning them away (and
//! not linking to them) would keep it from ever catching up, and from
//! counting towards the majority it is part of. So a peer this server
//! already admits may vouch for the members of a newer configuration than
//! this server's own (its
//! [`PeerFrame::Members`](distlock_core::proto::PeerFrame::Members)
//! frame): they are admitted, and linked to, until this server's own
//! configuration is as new as the one vouched for. A rogue, admitted by no
//! one, can vouch for no one.

use distlock_core::ids::{LogIndex, NodeId};
use distlock_transport_tcp::HostPort;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// The admission rules, kept by the node task and read by the tasks that
/// accept peer links.
pub(super) type SharedAdmission = Arc<Mutex<PeerAdmission>>;

/// Members a voucher named, with their peer addresses when readable.
type Vouched = BTreeMap<NodeId, Option<HostPort>>;

#[derive(Debug, Default)]
pub(super) struct PeerAdmission {
    /// The configured peers and the members of the configuration in force.
    own: BTreeSet<NodeId>,
    /// The log index of the configuration in force.
    own_index: LogIndex,
    /// By voucher: the newer configuration it named, and its members.
    vouched: BTreeMap<NodeId, (LogIndex, Vouched)>,
}

impl PeerAdmission {
    pub(super) fn new(configured: impl IntoIterator<Item = NodeId>) -> Self {
        Self {
            own: configured.into_iter().collect(),
            ..Self::default()
        }
    }

    /// The configuration in force changed: `own` is now whom it and the
    /// configuration file name. Vouches for configurations no newer than
    /// it have served their purpose.
    pub(super) fn follow(&mut self, own: BTreeSet<NodeId>, index: LogIndex) {
        self.own = own;
        self.own_index = index;
        self.vouched.retain(|_, (vouched, _)| *vouched > index);
    }

    /// Whether `id` may link to this server.
    pub(super) fn admits(&self, id: NodeId) -> bool {
        self.own.contains(&id) || self.vouched.values().any(|(_, m)| m.contains_key(&id))
    }

    /// Admitted peer `from` follows the configuration at `index`, with
    /// `members` at these peer addresses. Returns the servers this admits
    /// that were not admitted before (none if `from` is not admitted, or
    /// its configuration is no newer than this server's).
    pub(super) fn vouch(
        &mut self,
        from: NodeId,
        index: LogIndex,
        members: &[(NodeId, String)],
    ) -> Vec<NodeId> {
        if index <= self.own_index || !self.admits(from) {
            return Vec::new();
        }
        let new: Vec<NodeId> = members
            .iter()
            .map(|(id, _)| *id)
            .filter(|&id| !self.admits(id))
            .collect();
        let named = members
            .iter()
            .map(|(id, addr)| (*id, addr.parse().ok()))
            .collect();
        self.vouched.insert(from, (index, named));
        new
    }

    /// Where to reach the servers admitted only on a peer's word.
    pub(super) fn vouched_addrs(&self) -> BTreeMap<NodeId, HostPort> {
        self.vouched
            .values()
            .flat_map(|(_, members)| members.iter())
            .filter(|(id, _)| !self.own.contains(id))
            .filter_map(|(id, addr)| addr.clone().map(|a| (*id, a)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(list: &[u64]) -> Vec<(NodeId, String)> {
        list.iter()
            .map(|&i| (NodeId(i), format!("10.0.0.{i}:7101")))
            .collect()
    }

    fn ids(list: &[u64]) -> Vec<NodeId> {
        list.iter().copied().map(NodeId).collect()
    }

    #[test]
    fn a_known_peer_vouches_for_the_members_of_a_newer_configuration() {
        let mut a = PeerAdmission::new(ids(&[1, 2, 3]));
        a.follow(ids(&[1, 2, 3]).into_iter().collect(), LogIndex(10));
        assert!(!a.admits(NodeId(4)));
        // A stranger's word counts for nothing.
        assert_eq!(a.vouch(NodeId(9), LogIndex(50), &named(&[4, 9])), []);
        assert!(!a.admits(NodeId(4)));
        // Nor does an old configuration.
        assert_eq!(a.vouch(NodeId(2), LogIndex(10), &named(&[2, 4])), []);
        // A member's word for a newer one does, and passes on.
        assert_eq!(
            a.vouch(NodeId(2), LogIndex(40), &named(&[2, 3, 4])),
            ids(&[4])
        );
        assert_eq!(
            a.vouch(NodeId(4), LogIndex(50), &named(&[3, 4, 5])),
            ids(&[5])
        );
        assert!(a.admits(NodeId(5)));
        let addrs: Vec<(u64, String)> = a
            .vouched_addrs()
            .into_iter()
            .map(|(id, addr)| (id.0, addr.to_string()))
            .collect();
        assert_eq!(
            addrs,
            [
                (4, "10.0.0.4:7101".to_owned()),
                (5, "10.0.0.5:7101".to_owned())
            ]
        );
        // Once this server's own configuration caught up, it alone counts.
        a.follow(ids(&[1, 2, 3, 4]).into_iter().collect(), LogIndex(40));
        assert!(a.admits(NodeId(5)), "vouched for at 50, newer than 40");
        a.follow(ids(&[1, 2, 3, 4]).into_iter().collect(), LogIndex(60));
        assert!(!a.admits(NodeId(5)));
        assert!(a.vouched_addrs().is_empty());
    }
}
