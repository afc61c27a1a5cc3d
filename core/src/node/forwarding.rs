//! Requests a follower sends on to its leader: forwarding, answering at
//! once when the runtime has no link to the leader, and asking the next
//! leader again when leadership moves.
//!
//! A leader answers a forward by (origin server, forward id) alone, so the
//! ids must not repeat across the origin's restarts either: a forward sent
//! just before a crash can reach the leader after the restarted server has
//! forwarded requests of its own (it waited behind a partition, or in a
//! socket the leader had not read yet), and the leader's answer to it goes
//! to the new run. Ids counted from 1 at every start made that answer the
//! answer to whichever new request had the same number: in the simulator a
//! probe's acquire was answered with another session's keepalive
//! acknowledgement, gave up, and left its grant to a client that never
//! learnt of it. Each start therefore counts from a point drawn from its
//! seed (see [`first_forward_id`]).

use super::{ConnId, Node, NodeAction, Origin};
use crate::ids::NodeId;
use crate::proto::{ForwardId, ForwardedRequest, PeerFrame, ProtoError, RequestBody, RequestId};

/// A request of one of our clients, sent on to the leader.
#[derive(Debug)]
#[cfg_attr(feature = "testkit", derive(Clone))]
pub(super) struct Forwarded {
    pub(super) conn: ConnId,
    pub(super) id: RequestId,
    /// The leader it went to.
    pub(super) to: NodeId,
    /// The request, kept to ask the next leader should this one fall
    /// (all but membership changes, see `reroute_forwards`).
    pub(super) resend: Option<RequestBody>,
}

/// Where a start's forward ids begin, drawn from the seed the runtime
/// draws afresh at every start: two starts of one server then count over
/// ranges that overlap only if their starting points, 63 random bits each,
/// fall within a few forwards of each other. The top bit is left clear so
/// that the count never wraps.
pub(super) fn first_forward_id(seed: u64) -> u64 {
    // splitmix64's output function: nearby seeds (a test's 1, 2, 3) land
    // far apart.
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) >> 1
}

impl Node {
    /// A forward id this start has not used (see the module documentation
    /// for why not simply 1, 2, 3 ...).
    pub(super) fn new_forward_id(&mut self) -> ForwardId {
        self.next_forward = self.next_forward.wrapping_add(1);
        ForwardId(self.next_forward)
    }

    /// Sends a request on to the leader, or refuses it when none is known.
    pub(super) fn forward(&mut self, origin: Origin, body: RequestBody) {
        let Origin::Local { conn, id } = origin else {
            // Forwarded to us, but we do not lead (any more): say so.
            self.answer(
                origin,
                Err(ProtoError::NotLeader {
                    leader_hint: self.raft.leader(),
                }),
            );
            return;
        };
        let Some(leader) = self.raft.leader().filter(|&l| l != self.raft.id()) else {
            self.unregister(origin);
            self.answer(origin, Err(ProtoError::NoLeader));
            return;
        };
        let fid = self.new_forward_id();
        // A membership change or a revocation sent twice would be refused the
        // second time, hiding that the first took effect.
        let resend = (!matches!(
            body,
            RequestBody::ChangeMembership(_) | RequestBody::RevokeSession { .. }
        ))
        .then(|| body.clone());
        self.forwarded.insert(
            fid,
            Forwarded {
                conn,
                id,
                to: leader,
                resend,
            },
        );
        self.forward_of.insert((conn, id), fid);
        let request = ForwardedRequest { id: fid, body };
        self.actions.push_back(NodeAction::Send {
            to: leader,
            frame: PeerFrame::Forward {
                origin: self.raft.id(),
                request,
            },
        });
    }

    /// The runtime has no link to the leader that request `id` was
    /// forwarded to: the client is told at once, to try another server,
    /// rather than left waiting for an answer that cannot come.
    pub fn forward_undeliverable(&mut self, id: ForwardId) {
        // Not a client's (this server publishing its addresses): the
        // publishing timer retries.
        let Some(f) = self.forwarded.remove(&id) else {
            return;
        };
        self.forward_of.remove(&(f.conn, f.id));
        let origin = Origin::Local {
            conn: f.conn,
            id: f.id,
        };
        self.unregister(origin);
        self.answer(origin, Err(ProtoError::LeaderUnreachable { leader: f.to }));
    }

    /// Once this server follows another leader (or leads), sends it again
    /// what was forwarded to the old one, which may never answer; the
    /// client would otherwise wait out its own timeout and retry. This is
    /// that retry, sooner: a read changes nothing, and a log request
    /// carries its (session, seq) or nonce, so one that the old leader
    /// managed to commit is answered from the dedupe table, not applied
    /// twice. Membership changes are left to their caller, which tells a
    /// repeated change from a refused one.
    pub(super) fn reroute_forwards(&mut self) {
        let leader = self.raft.leader();
        if leader == self.known_leader {
            return;
        }
        self.known_leader = leader;
        let Some(leader) = leader else {
            return;
        };
        let stale: Vec<ForwardId> = self
            .forwarded
            .iter()
            .filter(|(_, f)| f.to != leader && f.resend.is_some())
            .map(|(&fid, _)| fid)
            .collect();
        for fid in stale {
            let Some(Forwarded {
                conn,
                id,
                resend: Some(body),
                ..
            }) = self.forwarded.remove(&fid)
            else {
                continue;
            };
            self.forward_of.remove(&(conn, id));
            let origin = Origin::Local { conn, id };
            match body {
                // Still registered to be answered when applied here.
                RequestBody::Log(command) => self.route_log(origin, command),
                body => self.serve(origin, body),
            }
        }
    }
}
