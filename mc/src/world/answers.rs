//! What the clients make of the servers' answers: sessions opened, locks
//! granted and released, reads, membership changes; and the client-side
//! properties checked as each answer arrives (exactly once, at most one
//! holder, ever larger tokens, linearizable token checks).

use super::World;
use crate::client::{ATTACH_ID, Client};
use crate::describe;
use crate::setup::Op;
use distlock_core::ids::NodeId;
use distlock_core::locks::{FencingToken, Mode, Outcome};
use distlock_core::node::ConnId;
use distlock_core::proto::{RequestBody, ResponseBody, ServerFrame};

impl World {
    /// A frame reaches a client (connections deliver at once, in order).
    pub(super) fn client_frame(&mut self, server: NodeId, conn: ConnId, frame: ServerFrame) {
        let c = usize::try_from(conn.0 / 1000).expect("small");
        if self.machines[c].is_some() {
            self.machine_frame(c, server, frame);
            return;
        }
        let ServerFrame::Response(resp) = frame else {
            return;
        };
        let client = &mut self.clients[c];
        if resp.id == ATTACH_ID {
            if let Ok(ResponseBody::Attached { .. }) = resp.result
                && !client.attached.contains(&server)
            {
                client.attached.push(server);
                client.attached.sort_unstable();
            }
            return;
        }
        let Some(&(_, op)) = client.ids.iter().find(|(id, _)| *id == resp.id) else {
            self.ghost.violate(format!(
                "client {c} answered request #{} it never sent",
                resp.id.0
            ));
            return;
        };
        let text = describe::response(&resp.result);
        if self.verbose {
            self.out.push(format!(
                "client {c}: #{} answered by {}: {text}",
                resp.id.0, server.0
            ));
        }
        if let Err(e) = &resp.result
            && Client::retryable(e)
        {
            return;
        }
        self.lease_answered(c, resp.id, &resp.result);
        let client = &mut self.clients[c];
        // Exactly once: every final answer to one request is the same.
        // Membership changes are not session requests and are not
        // deduplicated: a retry of a change already made is refused
        // (`AlreadyMember`, `NotLearner`), which an operator's retry
        // reads as done (node/membership.rs).
        let is_change = matches!(self.setup.clients[c][op], Op::Change(_));
        match client.answers.iter().find(|(o, _)| *o == op) {
            Some(_) if is_change => {}
            Some((_, first)) if *first != text => {
                let first = first.clone();
                self.ghost.violate(format!(
                    "exactly-once: client {c}'s request {op} was answered {first} and, retried, {text}"
                ));
                return;
            }
            Some(_) => return,
            None => client.answers.push((op, text)),
        }
        let current = client.outstanding.as_ref().is_some_and(|o| o.op == op);
        if !current {
            return;
        }
        let o = client.outstanding.take().expect("current");
        client.pc = op + 1;
        let script_op = self.setup.clients[c][op].clone();
        match (&script_op, &resp.result) {
            (Op::Open, Ok(ResponseBody::SessionOpened { session, .. })) => {
                client.session = Some(*session);
            }
            (
                Op::Acquire { lock, mode } | Op::Wait { lock, mode },
                Ok(ResponseBody::Lock(Outcome::Granted { token })),
            ) => {
                self.granted(c, lock, *mode, *token);
            }
            (Op::Release { .. }, Ok(ResponseBody::Lock(Outcome::Released))) => {
                if let RequestBody::Log(distlock_core::locks::ClientCommand::Release {
                    token,
                    ..
                }) = &o.body
                {
                    self.ghost.release_answered_now(*token);
                }
            }
            (Op::CheckToken { .. }, Ok(ResponseBody::TokenValid(valid))) => {
                if let Some(w) = o.read {
                    let released = self.ghost.release_sent_for(w.token);
                    if !*valid && w.granted_before && !released {
                        self.ghost.violate(format!(
                            "stale read: token {} was held throughout client {c}'s check, answered invalid",
                            w.token.0
                        ));
                    }
                    if *valid && w.released_before {
                        self.ghost.violate(format!(
                            "stale read: token {} was released before client {c}'s check, answered valid",
                            w.token.0
                        ));
                    }
                }
            }
            (Op::LockStatus { .. }, Ok(ResponseBody::LockStatus(view))) => {
                self.ghost.status_answered(c, view.as_ref());
            }
            (Op::Change(_), Ok(ResponseBody::MembershipChanged { index })) => {
                self.ghost.membership_answered(*index);
            }
            _ => {}
        }
    }

    /// Client `c` was granted `lock`: it holds it from now on, and no
    /// other client may hold it alongside unless both modes allow it.
    pub(super) fn granted(&mut self, c: usize, lock: &str, mode: Mode, token: FencingToken) {
        let client_now = self.client_clock();
        let client = &mut self.clients[c];
        client.held.push((lock.to_owned(), token, mode));
        match client.granted.iter_mut().find(|(l, _)| l == lock) {
            Some(entry) => entry.1 = entry.1.max(token),
            None => client.granted.push((lock.to_owned(), token)),
        }
        let holders: Vec<(usize, Mode)> = self
            .clients
            .iter()
            .filter(|k| k.lease_runs(client_now))
            .flat_map(|k| {
                k.held
                    .iter()
                    .filter(|(l, ..)| l == lock)
                    .map(|(_, _, m)| (k.index, *m))
            })
            .collect();
        self.ghost.grant_answered_now(lock, token, mode, &holders);
    }
}
