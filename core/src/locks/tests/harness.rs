//! A tiny driver for tests: applies commands at increasing indexes, numbers
//! each session's requests, and checks every invariant after each apply.

use crate::ids::LogIndex;
use crate::locks::ClientCommand;
use crate::locks::{
    Applied, Command, Event, FencingToken, Limits, LockState, Mode, Reply, Response, Seq,
    SessionId, Wait,
};
use crate::raft::StateMachine;
use std::collections::BTreeMap;

/// The lock most tests use.
pub(super) const L: &str = "L";

pub(super) struct Harness {
    pub(super) sm: LockState,
    /// The index of the last applied command.
    pub(super) index: u64,
    next_seq: BTreeMap<SessionId, u64>,
    next_nonce: u128,
}

impl Harness {
    pub(super) fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    pub(super) fn with_limits(limits: Limits) -> Self {
        Self {
            sm: LockState::new(limits),
            index: 0,
            next_seq: BTreeMap::new(),
            next_nonce: 1,
        }
    }

    /// The index the next command will be applied at.
    pub(super) fn next_index(&self) -> LogIndex {
        LogIndex(self.index + 1)
    }

    /// The token a grant made by the next command will carry.
    pub(super) fn next_token(&self) -> FencingToken {
        FencingToken(self.index + 1)
    }

    pub(super) fn apply(&mut self, command: &Command) -> Applied {
        self.index += 1;
        let out = self.sm.apply(LogIndex(self.index), command);
        if let Err(broken) = self.sm.check_invariants() {
            panic!(
                "invariant broken after {command:?}: {broken:?}\n{:#?}",
                self.sm
            );
        }
        out
    }

    pub(super) fn open(&mut self) -> SessionId {
        self.open_ttl(10_000)
    }

    pub(super) fn open_ttl(&mut self, ttl_ms: u64) -> SessionId {
        let nonce = self.next_nonce;
        self.next_nonce += 1;
        let out = self.apply(&Command::Client(ClientCommand::OpenSession {
            nonce,
            ttl_ms,
        }));
        match out.replies.as_slice() {
            [Reply::SessionOpened { result: Ok(id), .. }] => *id,
            other => panic!("open failed: {other:?}"),
        }
    }

    /// A fresh sequence number for `session`.
    pub(super) fn seq(&mut self, session: SessionId) -> Seq {
        let next = self.next_seq.entry(session).or_insert(1);
        *next += 1;
        Seq(*next - 1)
    }

    pub(super) fn acquire_cmd(
        &mut self,
        session: SessionId,
        lock: &str,
        mode: Mode,
        wait: Wait,
        delay: u64,
    ) -> Command {
        let seq = self.seq(session);
        Command::Client(ClientCommand::Acquire {
            session,
            seq,
            ack: Seq(0),
            lock: lock.into(),
            mode,
            wait,
            lock_delay_ms: delay,
        })
    }

    pub(super) fn acquire(
        &mut self,
        session: SessionId,
        lock: &str,
        mode: Mode,
        wait: Wait,
    ) -> Applied {
        self.acquire_with_delay(session, lock, mode, wait, 0)
    }

    pub(super) fn acquire_with_delay(
        &mut self,
        session: SessionId,
        lock: &str,
        mode: Mode,
        wait: Wait,
        delay: u64,
    ) -> Applied {
        let command = self.acquire_cmd(session, lock, mode, wait, delay);
        self.apply(&command)
    }

    /// Acquires and expects a grant; returns its token.
    pub(super) fn hold(&mut self, session: SessionId, lock: &str, mode: Mode) -> FencingToken {
        self.hold_with_delay(session, lock, mode, 0)
    }

    pub(super) fn hold_with_delay(
        &mut self,
        session: SessionId,
        lock: &str,
        mode: Mode,
        delay: u64,
    ) -> FencingToken {
        let token = self.next_token();
        let out = self.acquire_with_delay(session, lock, mode, Wait::Try, delay);
        assert_eq!(
            single(&out),
            Ok(crate::locks::Outcome::Granted { token }),
            "{out:?}"
        );
        token
    }

    /// Queues an acquire that waits forever; returns its seq.
    pub(super) fn wait(&mut self, session: SessionId, lock: &str, mode: Mode) -> Seq {
        self.wait_for(session, lock, mode, Wait::Forever)
    }

    pub(super) fn wait_for(
        &mut self,
        session: SessionId,
        lock: &str,
        mode: Mode,
        wait: Wait,
    ) -> Seq {
        let command = self.acquire_cmd(session, lock, mode, wait, 0);
        let Command::Client(ClientCommand::Acquire { seq, .. }) = command else {
            unreachable!()
        };
        let out = self.apply(&command);
        assert!(out.replies.is_empty(), "expected to queue: {out:?}");
        assert!(
            matches!(out.events.as_slice(), [Event::WaitStarted { acquire_seq, .. }] if *acquire_seq == seq),
            "{out:?}"
        );
        seq
    }

    pub(super) fn release_cmd(
        &mut self,
        session: SessionId,
        lock: &str,
        token: FencingToken,
    ) -> Command {
        let seq = self.seq(session);
        Command::Client(ClientCommand::Release {
            session,
            seq,
            ack: Seq(0),
            lock: lock.into(),
            token,
        })
    }

    pub(super) fn release(
        &mut self,
        session: SessionId,
        lock: &str,
        token: FencingToken,
    ) -> Applied {
        let command = self.release_cmd(session, lock, token);
        self.apply(&command)
    }

    pub(super) fn cancel(&mut self, session: SessionId, lock: &str) -> Applied {
        let seq = self.seq(session);
        self.apply(&Command::Client(ClientCommand::CancelWait {
            session,
            seq,
            ack: Seq(0),
            lock: lock.into(),
        }))
    }

    pub(super) fn close(&mut self, session: SessionId) -> Applied {
        let seq = self.seq(session);
        self.apply(&Command::Client(ClientCommand::CloseSession {
            session,
            seq,
            ack: Seq(0),
        }))
    }

    pub(super) fn expire(&mut self, session: SessionId) -> Applied {
        self.apply(&Command::ExpireSession { session })
    }

    pub(super) fn timeout(&mut self, session: SessionId, lock: &str, acquire_seq: Seq) -> Applied {
        self.apply(&Command::WaitTimedOut {
            session,
            lock: lock.into(),
            acquire_seq,
        })
    }

    pub(super) fn delay_over(&mut self, lock: &str, since: LogIndex) -> Applied {
        self.apply(&Command::LockDelayOver {
            lock: lock.into(),
            since,
        })
    }

    /// The holders of a lock with their tokens.
    pub(super) fn holders(&self, lock: &str) -> Vec<(SessionId, FencingToken)> {
        self.sm
            .lock_status(lock)
            .map(|s| s.holders)
            .unwrap_or_default()
    }

    /// The sessions queued on a lock, in order.
    pub(super) fn waiters(&self, lock: &str) -> Vec<SessionId> {
        self.sm
            .lock_status(lock)
            .map(|s| s.waiters.iter().map(|w| w.session).collect())
            .unwrap_or_default()
    }
}

/// The one reply of `out`, which must be addressed to a session.
pub(super) fn single(out: &Applied) -> Response {
    match out.replies.as_slice() {
        [Reply::To { response, .. }] => *response,
        other => panic!("expected one reply, got {other:?}"),
    }
}

/// The answer `out` gives to request `seq` of `session`, if any.
pub(super) fn reply_to(out: &Applied, session: SessionId, seq: Seq) -> Option<Response> {
    out.replies.iter().find_map(|reply| match reply {
        Reply::To {
            session: s,
            seq: q,
            response,
        } if *s == session && *q == seq => Some(*response),
        _ => None,
    })
}

/// Whether two states are the same apart from the last applied index (which
/// every apply moves, even a no-op).
pub(super) fn same_state(before: &LockState, after: &LockState) -> bool {
    let mut after = after.clone();
    after.last_applied = before.last_applied;
    after == *before && after.snapshot() == before.snapshot()
}

/// Whether two states agree on everything but the dedupe tables and the
/// last applied index: a refusal that is remembered changes only those.
pub(super) fn same_locks(before: &LockState, after: &LockState) -> bool {
    let strip = |state: &LockState| {
        let mut state = state.clone();
        state.last_applied = LogIndex(0);
        for session in state.sessions.live.values_mut() {
            session.dedupe = crate::locks::dedupe::Dedupe::default();
        }
        state
    };
    strip(before) == strip(after)
}
