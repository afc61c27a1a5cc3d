//! Forcing a new one-voter cluster out of one server's stored state: the
//! way out of a quorum lost for good (`distlock serve
//! --force-new-cluster`, after etcd's flag of the same name).
//!
//! Raft commits nothing while a majority of its voters is gone, and no
//! exchange of messages can change that: a configuration that drops the
//! lost voters must itself be committed by a majority of the old one. So
//! the change is made outside the protocol, to one server's durable state
//! before it starts ([`Stored::force_single_voter`]): a configuration
//! entry naming it as the only voter is appended to its log, in a term
//! above every term it has seen. Started, the server elects itself and
//! commits that entry and, with it, every entry before it, also those that
//! were never known to be committed. What the old cluster acknowledged is
//! kept if this server had it (so the operator picks the most up-to-date
//! survivor); what it never acknowledged may take effect as well, as with
//! etcd.
//!
//! Safety rests on what happens outside this server: the other servers of
//! the old configuration must never run again with their data. They still
//! follow the old configuration, in which a majority of them could elect a
//! leader of their own, and a leader of a higher term that reached this
//! server would make it follow. The runtime therefore retires them: it
//! refuses their peer links for good.

use super::{Entry, EntryPayload, HardState, MemberAddrs, Membership, Persist, PersistSeq, Stored};
use crate::ids::{LogIndex, NodeId, Term};

/// What [`Stored::force_single_voter`] changed. The driver MUST make
/// `persist` durable before starting Raft on the changed [`Stored`]:
/// otherwise a crash would bring the server back in its old cluster after
/// it may have committed entries alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForcedCluster<C> {
    /// The configuration in force before: its members but this server are
    /// the servers to retire.
    pub previous: Membership,
    /// The index of the configuration entry that makes this server the
    /// only voter.
    pub index: LogIndex,
    /// Its term, above every term this server had seen.
    pub term: Term,
    /// The new hard state and the entry, to write as one request.
    pub persist: Persist<C>,
}

/// A stored state that cannot be forced into a new cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ForceError {
    /// The server knows no configuration: it was started to join a cluster
    /// and never received one, so it has no state worth keeping.
    #[error(
        "this server never belonged to a cluster (it knows no configuration): there is nothing to recover from it"
    )]
    NoConfiguration,
}

impl<C> Stored<C> {
    /// The index of the last entry: the log's, or the snapshot's when the
    /// log holds nothing after it.
    #[must_use]
    pub fn last_index(&self) -> LogIndex {
        let floor = self
            .snapshot
            .as_ref()
            .map_or(LogIndex(0), |s| s.meta.last_index);
        self.entries.last().map_or(floor, |e| e.index).max(floor)
    }

    /// The configuration in force at restart: the latest in the log after
    /// the snapshot, else the snapshot's, else the initial one.
    #[must_use]
    pub fn membership(&self) -> &Membership {
        let floor = self
            .snapshot
            .as_ref()
            .map_or(LogIndex(0), |s| s.meta.last_index);
        let logged = self.entries.iter().rev().find_map(|e| match &e.payload {
            EntryPayload::Membership(m) if e.index > floor => Some(m),
            _ => None,
        });
        logged
            .or_else(|| self.snapshot.as_ref().map(|s| &s.meta.membership))
            .unwrap_or(&self.initial_membership)
    }

    /// Whether `id` is already the only member, a voter (forcing would
    /// change nothing).
    #[must_use]
    pub fn is_sole_voter(&self, id: NodeId) -> bool {
        let m = self.membership();
        m.learners.is_empty() && m.voters.len() == 1 && m.voters.contains(&id)
    }
}

impl<C: Clone> Stored<C> {
    /// Makes server `id` the only voter of a new cluster with the state it
    /// holds, reachable at `addrs`: appends the configuration entry and
    /// raises the term (see the `raft::force` module documentation). The caller
    /// persists [`ForcedCluster::persist`] before starting Raft.
    ///
    /// # Errors
    /// [`ForceError::NoConfiguration`] for a server that never had one.
    pub fn force_single_voter(
        &mut self,
        id: NodeId,
        addrs: MemberAddrs,
    ) -> Result<ForcedCluster<C>, ForceError> {
        let previous = self.membership().clone();
        if previous.is_empty() {
            return Err(ForceError::NoConfiguration);
        }
        let index = self.last_index().next();
        let last_term = self.entries.last().map_or(Term(0), |e| e.term);
        // Above every term seen: no other server's entry can share this
        // (index, term), whatever the old cluster did meanwhile.
        let term = self.hard_state.term.max(last_term).next();
        let membership = Membership {
            voters: [id].into_iter().collect(),
            learners: Default::default(),
            addrs: [(id, addrs)].into_iter().collect(),
        };
        let entry = Entry {
            index,
            term,
            payload: EntryPayload::Membership(membership),
        };
        self.hard_state = HardState {
            term,
            voted_for: None,
        };
        self.entries.push(entry.clone());
        debug_assert!(
            self.is_sole_voter(id),
            "the forced configuration is in force"
        );
        debug_assert_eq!(self.last_index(), index);
        Ok(ForcedCluster {
            previous,
            index,
            term,
            persist: Persist {
                seq: PersistSeq(0),
                hard_state: Some(self.hard_state),
                truncate_from: None,
                entries: vec![entry],
                snapshot: None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locks::{Command, LockState};
    use crate::raft::{Config, Raft, Snapshot, SnapshotMeta, StateMachine};
    use crate::time::{Duration, Instant};
    use std::sync::Arc;

    fn addrs(n: u64) -> MemberAddrs {
        MemberAddrs {
            peer: format!("10.0.0.{n}:7101"),
            client: format!("10.0.0.{n}:7001"),
            ws: None,
        }
    }

    fn noop(index: u64, term: u64) -> Entry<Command> {
        Entry {
            index: LogIndex(index),
            term: Term(term),
            payload: EntryPayload::Noop,
        }
    }

    /// A server of {1, 2, 3} whose log runs to 12 in term 3 (after a
    /// snapshot at 10), with an uncommitted configuration at 12.
    fn stored() -> Stored<Command> {
        let three = Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)]);
        let mut four = three.clone();
        four.learners.insert(NodeId(4));
        Stored {
            hard_state: HardState {
                term: Term(3),
                voted_for: Some(NodeId(2)),
            },
            snapshot: Some(Snapshot {
                meta: SnapshotMeta {
                    last_index: LogIndex(10),
                    last_term: Term(2),
                    membership: three,
                },
                data: Arc::from(LockState::default().snapshot()),
            }),
            entries: vec![
                noop(9, 2),
                noop(10, 2),
                noop(11, 3),
                Entry {
                    index: LogIndex(12),
                    term: Term(3),
                    payload: EntryPayload::Membership(four),
                },
            ],
            initial_membership: Membership::with_voters([NodeId(1)]),
        }
    }

    #[test]
    fn the_configuration_in_force_is_the_latest_logged_one() {
        let mut s = stored();
        assert_eq!(s.last_index(), LogIndex(12));
        assert!(s.membership().learners.contains(&NodeId(4)));
        s.entries.truncate(3);
        assert_eq!(s.membership().voters.len(), 3);
        assert!(s.membership().learners.is_empty());
        s.entries.clear();
        assert_eq!(s.last_index(), LogIndex(10));
        s.snapshot = None;
        assert_eq!(s.last_index(), LogIndex(0));
        assert!(s.is_sole_voter(NodeId(1)), "the initial configuration");
        assert!(!s.is_sole_voter(NodeId(2)));
    }

    #[test]
    fn forcing_appends_a_one_voter_configuration_in_a_new_term() {
        let mut s = stored();
        let forced = s.force_single_voter(NodeId(1), addrs(1)).expect("forced");
        assert_eq!(forced.index, LogIndex(13));
        assert_eq!(forced.term, Term(4));
        assert_eq!(forced.previous.members().count(), 4);
        assert_eq!(
            forced.persist.hard_state,
            Some(HardState {
                term: Term(4),
                voted_for: None
            })
        );
        assert_eq!(forced.persist.entries.len(), 1);
        assert!(s.is_sole_voter(NodeId(1)));
        assert_eq!(s.membership().addrs.get(&NodeId(1)), Some(&addrs(1)));

        // Started, it elects itself and commits everything it holds.
        let mut raft = Raft::new(
            Config::new(NodeId(1)),
            LockState::default(),
            s,
            1,
            Instant::ZERO,
        )
        .expect("starts");
        let mut now = Instant::ZERO;
        for _ in 0..200 {
            now = now + Duration::from_millis(20);
            raft.handle_timeout(now);
            while let Some(action) = raft.poll_action() {
                if let crate::raft::Action::Persist(p) = action {
                    raft.persisted(p.seq, now);
                }
            }
            if raft.commit_index() > LogIndex(13) {
                break;
            }
        }
        assert!(raft.is_leader());
        assert!(raft.term() > Term(4));
        assert!(raft.commit_index() > LogIndex(13), "{raft:?}");
        assert_eq!(raft.membership().voters.len(), 1);
    }

    #[test]
    fn a_server_that_never_joined_cannot_be_forced() {
        let mut s: Stored<Command> = Stored::fresh(Membership::default());
        assert_eq!(
            s.force_single_voter(NodeId(5), addrs(5)),
            Err(ForceError::NoConfiguration)
        );
        assert_eq!(s.last_index(), LogIndex(0));
        assert!(s.entries.is_empty());
    }
}
