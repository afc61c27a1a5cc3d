//! Which links between servers are cut, shared by the multi-server
//! harnesses (the Raft cluster, the node network, the service world and
//! the transcripts' network) so that they cut, isolate and heal alike.

use crate::ids::NodeId;
use std::collections::BTreeSet;

/// The cut links, each one way: (from, to).
#[derive(Debug, Default)]
pub(crate) struct Links {
    cut: BTreeSet<(NodeId, NodeId)>,
}

impl Links {
    /// Cuts both directions between `a` and `b`.
    pub(crate) fn cut(&mut self, a: NodeId, b: NodeId) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }

    /// Cuts one direction: what `from` sends `to` is lost.
    pub(crate) fn cut_one_way(&mut self, from: NodeId, to: NodeId) {
        self.cut.insert((from, to));
    }

    /// Cuts `id` off from every other server of `all`.
    pub(crate) fn isolate(&mut self, id: NodeId, all: impl IntoIterator<Item = NodeId>) {
        for other in all {
            if other != id {
                self.cut(id, other);
            }
        }
    }

    /// Splits `all` into `side` and the rest, which cannot talk.
    pub(crate) fn partition(&mut self, side: &[NodeId], all: &[NodeId]) {
        for &a in all {
            for &b in all {
                if side.contains(&a) != side.contains(&b) {
                    self.cut.insert((a, b));
                }
            }
        }
    }

    /// Restores both directions between `a` and `b`.
    pub(crate) fn uncut(&mut self, a: NodeId, b: NodeId) {
        self.cut.remove(&(a, b));
        self.cut.remove(&(b, a));
    }

    /// Restores every link.
    pub(crate) fn heal(&mut self) {
        self.cut.clear();
    }

    /// Whether what `from` sends `to` is lost.
    pub(crate) fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.cut.contains(&(from, to))
    }
}
