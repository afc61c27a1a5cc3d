//! The set of peers this server keeps links to: the members its
//! configuration file names, plus every member of the configuration in
//! force, at the address the log gives it (a member added with `distlock
//! members add` after this server started). One dialing task per peer; a
//! peer that leaves the configuration loses its link, unless the
//! configuration file names it.

use super::LINK_QUEUE;
use super::connections::{AdmittedPeers, dial_peer};
use distlock_core::ids::{LogIndex, NodeId};
use distlock_core::proto::{ClusterId, PeerFrame};
use distlock_core::raft::Membership;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What becomes of one peer frame: a network that loses, duplicates,
/// delays and reorders messages, which real TCP links do only across
/// reconnections. The simulation installs one to test Raft against it;
/// servers run without.
pub trait PeerChaos: Send + Sync {
    /// When to deliver `frame`, which `from` sends `to`: no entry drops
    /// it, one delivers it (after that delay; frames sent later may
    /// overtake it), more duplicate it.
    fn deliveries(&self, from: NodeId, to: NodeId, frame: &PeerFrame) -> Vec<std::time::Duration>;
}

pub(super) struct PeerLinks {
    me: NodeId,
    chaos: Option<Arc<dyn PeerChaos>>,
    cluster: ClusterId,
    configured: BTreeMap<NodeId, SocketAddr>,
    links: BTreeMap<NodeId, (SocketAddr, mpsc::Sender<PeerFrame>)>,
    /// Who may link to us: shared with the task accepting peer links.
    admitted: AdmittedPeers,
    /// The configuration the links were last matched against.
    seen: Option<LogIndex>,
}

impl PeerLinks {
    pub(super) fn new(
        me: NodeId,
        cluster: ClusterId,
        configured: BTreeMap<NodeId, SocketAddr>,
        chaos: Option<Arc<dyn PeerChaos>>,
    ) -> Self {
        let admitted: AdmittedPeers =
            Arc::new(std::sync::Mutex::new(configured.keys().copied().collect()));
        Self {
            admitted,
            me,
            chaos,
            cluster,
            configured,
            links: BTreeMap::new(),
            seen: None,
        }
    }

    /// The servers that may link to this one, kept current by
    /// [`Self::follow`].
    pub(super) fn admitted(&self) -> AdmittedPeers {
        self.admitted.clone()
    }

    /// Queues `frame` for peer `to`; drops it when the queue is full or
    /// the peer is unknown (Raft retransmits).
    pub(super) fn send(&self, to: NodeId, frame: PeerFrame) {
        let Some((_, tx)) = self.links.get(&to) else {
            return;
        };
        let Some(chaos) = &self.chaos else {
            let _ = tx.try_send(frame);
            return;
        };
        for delay in chaos.deliveries(self.me, to, &frame) {
            if delay.is_zero() {
                let _ = tx.try_send(frame.clone());
            } else {
                let (tx, frame) = (tx.clone(), frame.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = tx.try_send(frame);
                });
            }
        }
    }

    /// Opens links to members that have none and closes links to servers
    /// that are no longer wanted; cheap when the configuration at `index`
    /// was already seen. Says whether the configuration changed.
    pub(super) fn follow(&mut self, membership: &Membership, index: LogIndex) -> bool {
        if self.seen == Some(index) {
            return false;
        }
        self.seen = Some(index);
        if let Ok(mut admitted) = self.admitted.lock() {
            *admitted = self
                .configured
                .keys()
                .copied()
                .chain(membership.members())
                .collect();
        }
        let mut wanted = self.configured.clone();
        for id in membership.members() {
            let logged = membership.addrs.get(&id).and_then(|a| a.peer.parse().ok());
            if let Some(addr) = logged {
                wanted.insert(id, addr);
            }
        }
        wanted.remove(&self.me);
        // Dropping the sender ends the dialing task.
        self.links
            .retain(|id, (addr, _)| wanted.get(id) == Some(&*addr));
        for (id, addr) in wanted {
            if self.links.contains_key(&id) {
                continue;
            }
            let (tx, rx) = mpsc::channel(LINK_QUEUE);
            tokio::spawn(dial_peer(addr, self.cluster.clone(), self.me, rx));
            if !self.configured.contains_key(&id) {
                tracing::info!(peer = id.0, %addr, "linking to a member the configuration added");
            }
            self.links.insert(id, (addr, tx));
        }
        true
    }
}
