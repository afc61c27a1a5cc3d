//! The set of peers this server keeps links to: the members its
//! configuration file names, plus every member of the configuration in
//! force and of the one in force at the commit index, at the address the
//! log gives it (a member added with `distlock members add` after this
//! server started). One dialing task per peer; a
//! peer that leaves the configuration loses its link, unless the
//! configuration file names it. Every link tells its peer which
//! configuration this server follows (see [`super::peer_admission`]).

use super::LINK_QUEUE;
use super::connections::{PeerDial, dial_peer};
use super::peer_admission::{PeerAdmission, SharedAdmission};
use distlock_core::ids::{LogIndex, NodeId};
use distlock_core::proto::{ClusterId, PeerFrame};
use distlock_core::raft::Membership;
use distlock_transport_tcp::HostPort;
use distlock_transport_tcp::tls::ServerTls;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// What becomes of one peer frame: a network that loses, duplicates,
/// delays and reorders messages, which real TCP links do only across
/// reconnections. The simulation installs one to test Raft against it;
/// servers run without.
pub trait PeerChaos: Send + Sync {
    /// When to deliver `frame`, which `from` sends `to`: no entry drops
    /// it, one delivers it (after that delay; frames sent later may
    /// overtake it), more duplicate it.
    fn deliveries(&self, from: NodeId, to: NodeId, frame: &PeerFrame) -> Vec<Duration>;
}

pub(super) struct PeerLinks {
    me: NodeId,
    chaos: Option<Arc<dyn PeerChaos>>,
    /// Mutual TLS for the links this server dials (`None`: plain TCP).
    tls: Option<Arc<ServerTls>>,
    cluster: ClusterId,
    configured: BTreeMap<NodeId, HostPort>,
    links: BTreeMap<NodeId, Link>,
    /// Who may link to us: shared with the task accepting peer links.
    admission: SharedAdmission,
    /// The frame every new link opens with: the configuration this
    /// server follows.
    introduction: watch::Sender<PeerFrame>,
    /// The cluster secret each dialing task presents.
    auth: crate::auth::AuthHandle,
    /// The configuration the links were last matched against, and
    /// whether it had committed then.
    seen: Option<(LogIndex, bool)>,
    /// The peer addresses, as the log gives them, of its members and of
    /// the members of the configuration in force at the commit index.
    logged: BTreeMap<NodeId, HostPort>,
}

/// The link to one peer: where it dials, its queue, and whether it is up
/// (set by its dialing task).
struct Link {
    addr: HostPort,
    tx: mpsc::Sender<PeerFrame>,
    up: Arc<AtomicBool>,
}

impl PeerLinks {
    pub(super) fn new(
        me: NodeId,
        cluster: ClusterId,
        configured: BTreeMap<NodeId, HostPort>,
        chaos: Option<Arc<dyn PeerChaos>>,
        tls: Option<Arc<ServerTls>>,
        auth: crate::auth::AuthHandle,
    ) -> Self {
        let admission = PeerAdmission::new(configured.keys().copied());
        let (introduction, _) = watch::channel(PeerFrame::Members {
            index: LogIndex(0),
            members: Vec::new(),
        });
        Self {
            admission: Arc::new(std::sync::Mutex::new(admission)),
            introduction,
            auth,
            me,
            chaos,
            tls,
            cluster,
            configured,
            links: BTreeMap::new(),
            seen: None,
            logged: BTreeMap::new(),
        }
    }

    /// The servers that may link to this one, kept current by
    /// [`Self::follow`].
    pub(super) fn admission(&self) -> SharedAdmission {
        self.admission.clone()
    }

    /// Queues `frame` for peer `to`; drops it when the queue is full or
    /// the peer is unknown (Raft retransmits).
    pub(super) fn send(&self, to: NodeId, frame: PeerFrame) {
        let Some(Link { tx, .. }) = self.links.get(&to) else {
            return;
        };
        let Some(chaos) = &self.chaos else {
            let _ = tx.try_send(frame);
            return;
        };
        let mut delays = chaos.deliveries(self.me, to, &frame);
        // The last delivery takes the frame itself: most frames are
        // delivered once, and an append's entries are not worth copying.
        let Some(last) = delays.pop() else {
            return;
        };
        let deliver = |frame: PeerFrame, delay: Duration| {
            if delay.is_zero() {
                let _ = tx.try_send(frame);
            } else {
                let tx = tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = tx.try_send(frame);
                });
            }
        };
        for delay in delays {
            deliver(frame.clone(), delay);
        }
        deliver(frame, last);
    }

    /// How many peer links are up.
    pub(super) fn up_count(&self) -> usize {
        self.links
            .values()
            .filter(|l| l.up.load(Ordering::Relaxed))
            .count()
    }

    /// Whether the link to `to` is connected now (a frame sent may still
    /// be lost; one sent on a link that is down surely is).
    pub(super) fn is_up(&self, to: NodeId) -> bool {
        self.links
            .get(&to)
            .is_some_and(|link| link.up.load(Ordering::Relaxed))
    }

    /// Opens links to members that have none and closes links to servers
    /// that are no longer wanted; cheap when the configuration at `index`
    /// was already seen, in the same state (`settled`: it has committed).
    /// Says whether anything changed.
    ///
    /// The members of the configuration in force at the commit index
    /// (`committed`, asked only on a change) stay admitted and linked to
    /// too: a configuration still uncommitted in this server's log (one it
    /// appended as a leader cut off, say) may leave out the leader that
    /// will overwrite it, and turning that leader away, or not answering
    /// it, would keep this server from ever catching up. Once it commits,
    /// the servers it left out are turned away and unlinked (unless the
    /// configuration file names them). The committed configuration is
    /// looked up only then, not each time the commit index passes an
    /// older one still in the log: until the newest commits, the set may
    /// hold more servers than needed, never fewer.
    pub(super) fn follow(
        &mut self,
        membership: &Membership,
        index: LogIndex,
        settled: bool,
        committed: impl FnOnce() -> Membership,
    ) -> bool {
        if self.seen == Some((index, settled)) {
            return false;
        }
        self.seen = Some((index, settled));
        let committed = committed();
        self.logged = membership
            .members()
            .chain(committed.members())
            .filter_map(|id| {
                let addrs = membership
                    .addrs
                    .get(&id)
                    .or_else(|| committed.addrs.get(&id))?;
                Some((id, addrs.peer.parse().ok()?))
            })
            .collect();
        if let Ok(mut admission) = self.admission.lock() {
            let own = self
                .configured
                .keys()
                .copied()
                .chain(membership.members())
                .chain(committed.members());
            admission.follow(own.collect(), index);
        }
        let members = membership
            .members()
            .filter_map(|id| {
                let addr = self.logged.get(&id).or_else(|| self.configured.get(&id))?;
                Some((id, addr.to_string()))
            })
            .collect();
        let introduction = PeerFrame::Members { index, members };
        self.introduction.send_replace(introduction.clone());
        for link in self.links.values() {
            let _ = link.tx.try_send(introduction.clone());
        }
        self.relink();
        true
    }

    /// Peer `from` follows the configuration at `index` with `members`
    /// (a [`PeerFrame::Members`]): if that admits servers this one did not
    /// know of, links to them too.
    pub(super) fn vouched(&mut self, from: NodeId, index: LogIndex, members: &[(NodeId, String)]) {
        let admitted = match self.admission.lock() {
            Ok(mut admission) => admission.vouch(from, index, members),
            Err(_) => return,
        };
        if admitted.is_empty() {
            return;
        }
        for id in admitted {
            tracing::info!(
                peer = id.0,
                voucher = from.0,
                %index,
                "admitting a member of a newer configuration than this server knows"
            );
        }
        self.relink();
    }

    /// Matches the links to the servers wanted: the configured ones, the
    /// members of the configuration in force and those peers vouched for.
    fn relink(&mut self) {
        let mut wanted = self.configured.clone();
        if let Ok(admission) = self.admission.lock() {
            wanted.extend(admission.vouched_addrs());
        }
        wanted.extend(self.logged.iter().map(|(id, addr)| (*id, addr.clone())));
        wanted.remove(&self.me);
        // Dropping the sender ends the dialing task.
        self.links
            .retain(|id, link| wanted.get(id) == Some(&link.addr));
        for (id, addr) in wanted {
            if self.links.contains_key(&id) {
                continue;
            }
            let (tx, rx) = mpsc::channel(LINK_QUEUE);
            let introduction = self.introduction.subscribe();
            let up = Arc::new(AtomicBool::new(false));
            let dial = PeerDial {
                addr: addr.clone(),
                id,
                cluster: self.cluster.clone(),
                me: self.me,
                auth: self.auth.clone(),
                tls: self.tls.clone(),
            };
            tokio::spawn(dial_peer(dial, rx, introduction, up.clone()));
            if !self.configured.contains_key(&id) {
                tracing::info!(peer = id.0, %addr, "linking to a member the configuration added");
            }
            self.links.insert(id, Link { addr, tx, up });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthConfig, AuthHandle};

    fn voters(ids: &[u64]) -> Membership {
        let mut m = Membership::with_voters(ids.iter().map(|&i| NodeId(i)));
        for &i in ids {
            let addrs = distlock_core::raft::MemberAddrs {
                // Nothing listens there: the dialing tasks just retry.
                peer: format!("127.0.0.{i}:9"),
                ..Default::default()
            };
            m.addrs.insert(NodeId(i), addrs);
        }
        m
    }

    fn admits(links: &PeerLinks, id: u64) -> bool {
        links.admission.lock().is_ok_and(|a| a.admits(NodeId(id)))
    }

    fn linked(links: &PeerLinks, id: u64) -> bool {
        links.links.contains_key(&NodeId(id))
    }

    #[tokio::test]
    async fn a_server_left_out_by_a_configuration_is_kept_until_it_commits() {
        let auth = AuthHandle::new(&AuthConfig::default()).expect("no auth file");
        let cluster = ClusterId("test".to_owned());
        let mut links = PeerLinks::new(NodeId(1), cluster, BTreeMap::new(), None, None, auth);
        let four = voters(&[1, 2, 3, 4]);
        let three = voters(&[1, 2, 3]);
        assert!(links.follow(&four, LogIndex(5), true, || four.clone()));
        assert!(admits(&links, 4) && linked(&links, 4));
        // Appended, not committed: it may yet be overwritten by a leader
        // it leaves out, which must still reach this server and hear its
        // answers.
        assert!(links.follow(&three, LogIndex(9), false, || four.clone()));
        assert!(admits(&links, 4) && linked(&links, 4));
        assert!(!links.follow(&three, LogIndex(9), false, || four.clone()));
        // Committed: server 4 is gone for good.
        assert!(links.follow(&three, LogIndex(9), true, || three.clone()));
        assert!(!admits(&links, 4) && !linked(&links, 4));
        assert!(admits(&links, 3) && linked(&links, 3));
        assert!(!links.follow(&three, LogIndex(9), true, || three.clone()));
    }
}
