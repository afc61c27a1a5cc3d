//! Requests a follower sends on to its leader: forwarding, answering at
//! once when the runtime has no link to the leader, and asking the next
//! leader again when leadership moves.

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

impl Node {
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
        self.next_forward += 1;
        let fid = ForwardId(self.next_forward);
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
