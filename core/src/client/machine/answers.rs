//! What the session makes of the server's answers: keepalive
//! acknowledgements that extend the lease, the answers of attaches and
//! operations, retries of retryable errors, and the session's loss when
//! the cluster says it is gone.

use super::{ClientSession, InFlight, SessionState, failure, reads};
use crate::client::{ClientError, ClientEvent, LostReason, OpId};
use crate::locks::{ClientCommand, LockError, Outcome};
use crate::proto::{ProtoError, RequestBody, Response, ResponseBody};
use crate::time::{Duration, Instant};

impl ClientSession {
    pub(super) fn on_response(&mut self, response: Response, now: Instant) {
        let Some(what) = self.in_flight.remove(&response.id) else {
            return;
        };
        if self.server_cannot_serve(&response.result, now) {
            // What was in flight is re-sent, same seqs, to the next server.
            self.connection_lost(now);
            return;
        }
        match what {
            InFlight::KeepAlive { sent_at, .. } => match response.result {
                Ok(ResponseBody::KeepAliveAck { .. }) => self.extend_lease(sent_at),
                Err(ProtoError::UnknownSession)
                | Err(ProtoError::Lock(
                    LockError::SessionExpired
                    | LockError::SessionNotFound
                    | LockError::SessionClosed,
                )) => {
                    if matches!(self.session, SessionState::Open { .. }) {
                        let reason = match response.result {
                            Err(e) => LostReason::Rejected(e),
                            Ok(_) => LostReason::LeaseExpired,
                        };
                        self.lose(reason);
                    }
                }
                // Retryable or odd: the next keepalive comes soon enough;
                // bring it forward to the backoff if that is sooner.
                _ => {
                    let soon = now + self.config.backoff_min;
                    self.next_keepalive = self.next_keepalive.map(|t| t.min(soon));
                }
            },
            InFlight::Attach => match response.result {
                Err(e @ (ProtoError::UnknownSession | ProtoError::NotSessionOwner)) => {
                    if matches!(self.session, SessionState::Open { .. }) {
                        self.lose(LostReason::Rejected(e));
                    }
                }
                // Attached; or refused for now, and the requests after it
                // are refused `NotAttached`, which moves the client on.
                _ => {}
            },
            InFlight::Op(id) => {
                if let Some(op) = self.ops.get_mut(&id) {
                    op.rid = None;
                    op.deadline = None;
                }
                self.on_op_answer(id, response.result, now);
            }
        }
    }

    fn on_op_answer(&mut self, id: OpId, result: Result<ResponseBody, ProtoError>, now: Instant) {
        let is_open = matches!(self.session, SessionState::Opening(op) if op == id);
        let is_read = self.ops.get(&id).is_some_and(|op| reads::is_read(&op.body));
        match result {
            Err(e) if e.is_retryable() => self.retry_later(id, now),
            Ok(
                body @ (ResponseBody::TokenValid(_)
                | ResponseBody::LockStatus(_)
                | ResponseBody::Locks(_)
                | ResponseBody::Sessions(_)
                | ResponseBody::Revoked { .. }
                | ResponseBody::Leader(_)),
            ) if is_read => {
                self.ops.remove(&id);
                self.events.push_back(ClientEvent::Read {
                    op: id,
                    result: Ok(body),
                });
            }
            // A retry of a still-queued acquire: unanswered, ask again later.
            Ok(ResponseBody::Lock(Outcome::Pending)) => self.retry_later(id, now),
            Ok(ResponseBody::SessionOpened { session, ttl_ms }) if is_open => {
                let Some(op) = self.ops.remove(&id) else {
                    return;
                };
                let ttl = Duration::from_millis(ttl_ms);
                let from = op.first_sent.unwrap_or(now);
                let secret = match &op.body {
                    RequestBody::Log(
                        ClientCommand::OpenSession { nonce, .. }
                        | ClientCommand::OpenSessionWithMeta { nonce, .. },
                    ) => *nonce,
                    _ => 0,
                };
                self.session = SessionState::Open {
                    id: session,
                    ttl,
                    lease_until: from + self.lease_len(ttl),
                    secret,
                };
                self.next_keepalive = Some(from + ttl / 3);
                self.events.push_back(ClientEvent::SessionOpened {
                    op: id,
                    result: Ok(session),
                });
                self.check_lease(now);
            }
            Err(e) if is_open => {
                self.ops.remove(&id);
                self.session = SessionState::None;
                self.events.push_back(ClientEvent::SessionOpened {
                    op: id,
                    result: Err(ClientError::Server(e)),
                });
            }
            Ok(ResponseBody::Lock(outcome)) => {
                let Some(op) = self.ops.remove(&id) else {
                    return;
                };
                let closing = matches!(
                    op.body,
                    RequestBody::Log(ClientCommand::CloseSession { .. })
                );
                self.events.push_back(ClientEvent::Completed {
                    op: id,
                    result: Ok(outcome),
                });
                if closing && matches!(self.session, SessionState::Open { .. }) {
                    self.session = SessionState::Closed;
                    self.fail_all(&ClientError::Closed);
                }
            }
            Err(
                e @ ProtoError::Lock(
                    LockError::SessionExpired
                    | LockError::SessionNotFound
                    | LockError::SessionClosed,
                ),
            ) => {
                self.ops.remove(&id);
                self.events.push_back(ClientEvent::Completed {
                    op: id,
                    result: Err(ClientError::SessionLost),
                });
                self.lose(LostReason::Rejected(e));
            }
            Err(e) => {
                if let Some(op) = self.ops.remove(&id) {
                    self.events
                        .push_back(failure(id, &op.body, ClientError::Server(e)));
                }
            }
            Ok(_) => {
                if let Some(op) = self.ops.remove(&id) {
                    self.events
                        .push_back(failure(id, &op.body, ClientError::UnexpectedAnswer));
                }
                if is_open {
                    self.session = SessionState::None;
                }
            }
        }
    }
}
