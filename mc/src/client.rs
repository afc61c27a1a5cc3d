//! The checker's clients: each runs a script of requests against the real
//! servers, over connections that deliver at once, and retries a request
//! (same session, same sequence number) at any server until it gets a final
//! answer. What they were answered feeds the client-side properties.

use crate::setup::Op;
use distlock_core::ids::NodeId;
use distlock_core::locks::{ClientCommand, FencingToken, Mode, Seq, SessionId};
use distlock_core::proto::{ProtoError, RequestBody, RequestId, ResponseBody};
use distlock_core::raft::MembershipError;
use distlock_core::time::{Duration, Instant};

/// A session TTL far beyond any clock the bounds let a server reach, so
/// that no lease expires inside a check (see `docs/SIMULATION.md`), unless
/// the configuration keeps true time ([`crate::setup::Clocks`]) and sets
/// its own.
pub const TTL_MS: u64 = 300_000;

/// The request id of a client's `Attach`, sent before its first request
/// on a new connection (as the client library does).
pub const ATTACH_ID: RequestId = RequestId(u64::MAX);

/// A request sent and not yet finally answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outstanding {
    /// Its position in the script.
    pub op: usize,
    /// What was sent (every retry sends the same body).
    pub body: RequestBody,
    /// How many times it was sent.
    pub sends: u32,
    /// For a token check: whether the token had been granted (answered) and
    /// not yet released when the check was sent, and whether its release
    /// had already been answered then.
    pub read: Option<ReadWindow>,
}

/// What a linearizable read may answer, fixed when it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadWindow {
    /// The token checked.
    pub token: FencingToken,
    /// Its grant was answered before the check was sent.
    pub granted_before: bool,
    /// Its release was answered before the check was sent.
    pub released_before: bool,
}

/// One client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// Its number (0-based).
    pub index: usize,
    /// The next request of its script.
    pub pc: usize,
    /// Its session, once opened.
    pub session: Option<SessionId>,
    /// The last sequence number used.
    pub seq: u64,
    /// Servers this client said `Hello` to on its current connection.
    pub greeted: Vec<NodeId>,
    /// Servers that attached its session to its connection.
    pub attached: Vec<NodeId>,
    /// The request in flight.
    pub outstanding: Option<Outstanding>,
    /// Locks it believes it holds, with their token and mode.
    pub held: Vec<(String, FencingToken, Mode)>,
    /// The newest token it was ever granted, per lock.
    pub granted: Vec<(String, FencingToken)>,
    /// Every request id it sent, with the script position it was for.
    pub ids: Vec<(RequestId, usize)>,
    /// The first final answer to each script position.
    pub answers: Vec<(usize, String)>,
    /// Tokens whose release it sent, and whether that was answered.
    pub releases: Vec<(FencingToken, bool)>,
    /// With true time: the sends of its open and keepalives, with what its
    /// clock read then (its lease counts from the send).
    pub lease_sends: Vec<(RequestId, Instant)>,
    /// With true time: when its lease runs out on its own clock, by the
    /// client library's rule (`distlock_core::client::lease_length` from
    /// the send of each acknowledged open or keepalive).
    pub lease_until: Option<Instant>,
}

impl Client {
    /// A client that has asked nothing yet.
    #[must_use]
    pub fn new(index: usize) -> Self {
        Self {
            index,
            pc: 0,
            session: None,
            seq: 0,
            greeted: Vec::new(),
            attached: Vec::new(),
            outstanding: None,
            held: Vec::new(),
            granted: Vec::new(),
            ids: Vec::new(),
            answers: Vec::new(),
            releases: Vec::new(),
            lease_sends: Vec::new(),
            lease_until: None,
        }
    }

    /// The nonce that makes its session open exactly once, however often
    /// retried.
    #[must_use]
    pub fn nonce(&self) -> u128 {
        1000 + self.index as u128
    }

    /// The newest token granted on `lock`.
    #[must_use]
    pub fn token_of(&self, lock: &str) -> Option<FencingToken> {
        self.granted
            .iter()
            .find(|(l, _)| l == lock)
            .map(|(_, t)| *t)
    }

    /// Whether, by its own clock reading `clock`, it still holds what it
    /// was granted: while its lease runs, and always in a configuration
    /// without true time (where no lease is counted).
    #[must_use]
    pub fn lease_runs(&self, clock: Instant) -> bool {
        self.lease_until.is_none_or(|until| clock < until)
    }

    /// Extends its lease for the acknowledged open or keepalive `id`.
    pub fn lease_acknowledged(&mut self, id: RequestId, len: Duration) {
        if let Some(&(_, sent)) = self.lease_sends.iter().find(|(r, _)| *r == id) {
            let until = sent + len;
            self.lease_until = Some(self.lease_until.map_or(until, |u| u.max(until)));
        }
    }

    /// The body of script request `op`, or `None` when it needs nothing
    /// sent (a release of a lock not held, a request needing a session
    /// that never opened). Sessions open with `ttl_ms`; acquires ask for
    /// `lock_delay_ms`.
    pub fn body_for(
        &mut self,
        op: &Op,
        newest: Option<FencingToken>,
        ttl_ms: u64,
        lock_delay_ms: u64,
    ) -> Option<RequestBody> {
        let needs_session = !matches!(op, Op::Open | Op::Change(_));
        if needs_session && self.session.is_none() {
            return None;
        }
        let session = self.session.unwrap_or(SessionId(0));
        let mut next_seq = || {
            self.seq += 1;
            Seq(self.seq)
        };
        Some(match op {
            Op::Open => RequestBody::Log(ClientCommand::OpenSession {
                nonce: self.nonce(),
                ttl_ms,
            }),
            Op::Acquire { lock, mode } | Op::Wait { lock, mode } => {
                let seq = next_seq();
                RequestBody::Log(ClientCommand::Acquire {
                    session,
                    seq,
                    ack: seq,
                    lock: (*lock).to_owned(),
                    mode: *mode,
                    wait: op.wait(),
                    lock_delay_ms,
                })
            }
            Op::Release { lock } => {
                let token = self.held.iter().find(|(l, ..)| l == lock)?.1;
                let seq = next_seq();
                RequestBody::Log(ClientCommand::Release {
                    session,
                    seq,
                    ack: seq,
                    lock: (*lock).to_owned(),
                    token,
                })
            }
            Op::CheckToken { lock } => RequestBody::CheckToken {
                lock: (*lock).to_owned(),
                token: newest?,
            },
            Op::LockStatus { lock } => RequestBody::LockStatus {
                lock: (*lock).to_owned(),
            },
            Op::KeepAlive => RequestBody::KeepAlive { session },
            Op::Change(change) => RequestBody::ChangeMembership(change.clone()),
        })
    }

    /// Whether an error answer says the request may be asked again (it was
    /// not served, or not here): every transport-level refusal. Lock errors
    /// are final answers.
    #[must_use]
    pub fn retryable(e: &ProtoError) -> bool {
        match e {
            ProtoError::Lock(_) => false,
            ProtoError::Membership(m) => matches!(
                m,
                MembershipError::NotLeader { .. }
                    | MembershipError::ChangeInProgress
                    | MembershipError::NotCaughtUp { .. }
            ),
            _ => true,
        }
    }

    /// The text kept to compare answers to one request.
    #[must_use]
    pub fn answer_key(result: &Result<ResponseBody, ProtoError>) -> String {
        crate::describe::response(result)
    }
}
