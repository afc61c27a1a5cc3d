//! A seeded randomized run: random commands (with retries, stale timers and
//! nonsense mixed in) from a few clients on a few locks, checking after each
//! apply every invariant, exactly-once answers, token order, and that a
//! snapshot restores to the same state and bytes.

use super::harness::Harness;
use crate::ids::LogIndex;
use crate::locks::ClientCommand;
use crate::locks::{
    Applied, Command, Event, FencingToken, LockError, LockState, Mode, Outcome, Reply, Response,
    Seq, SessionId, Wait,
};
use crate::raft::StateMachine;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const LOCKS: [&str; 4] = ["a", "b", "c", "d"];

/// xorshift64*: tiny, seeded, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// What a client knows: its session, its next seq, what is unanswered.
#[derive(Default)]
struct Client {
    next_seq: u64,
    unanswered: BTreeSet<u64>,
    sent: Vec<Command>,
}

impl Client {
    fn header(&mut self) -> (Seq, Seq) {
        self.next_seq += 1;
        let seq = self.next_seq;
        self.unanswered.insert(seq);
        let ack = self.unanswered.first().copied().unwrap_or(seq);
        (Seq(seq), Seq(ack))
    }
}

struct Run {
    rng: Rng,
    h: Harness,
    clients: BTreeMap<SessionId, Client>,
    /// Every final answer given, to check retries get the same one.
    answers: BTreeMap<(SessionId, Seq), Response>,
    last_token: BTreeMap<Arc<str>, FencingToken>,
    /// How often each kind of event and answer was seen, to check the run
    /// reaches every corner.
    seen: BTreeMap<&'static str, usize>,
}

impl Run {
    fn client(&mut self) -> Option<SessionId> {
        let ids: Vec<SessionId> = self.clients.keys().copied().collect();
        (!ids.is_empty()).then(|| self.rng.pick(&ids))
    }

    fn random_command(&mut self) -> Option<Command> {
        // Weights: few opens and ends, so that queues get long.
        let kind = [0, 1, 2, 3, 3, 3, 3, 3, 3, 3, 6, 6, 6, 7, 8, 9, 10, 10][self.rng.below(18)];
        if kind == 0 || self.clients.len() < 3 {
            let nonce = self.rng.below(40) as u128;
            let ttl_ms = self.rng.pick(&[500, 1_000, 5_000]);
            return Some(Command::Client(ClientCommand::OpenSession {
                nonce,
                ttl_ms,
            }));
        }
        let id = self.client()?;
        let lock = self.rng.pick(&LOCKS);
        let command = match kind {
            1 => {
                let (seq, ack) = self.clients.get_mut(&id)?.header();
                Command::Client(ClientCommand::CloseSession {
                    session: id,
                    seq,
                    ack,
                })
            }
            2 => Command::ExpireSession { session: id },
            3..=5 => {
                let mode = self.rng.pick(&[
                    Mode::Exclusive,
                    Mode::Shared,
                    Mode::Semaphore(2),
                    Mode::Semaphore(3),
                ]);
                let wait = self.rng.pick(&[
                    Wait::Try,
                    Wait::For(0),
                    Wait::For(100),
                    Wait::Forever,
                    Wait::Forever,
                ]);
                let lock_delay_ms = self.rng.pick(&[0, 0, 500]);
                let (seq, ack) = self.clients.get_mut(&id)?.header();
                Command::Client(ClientCommand::Acquire {
                    session: id,
                    seq,
                    ack,
                    lock: lock.into(),
                    mode,
                    wait,
                    lock_delay_ms,
                })
            }
            6 => {
                let held = self
                    .h
                    .sm
                    .lock_status(lock)
                    .and_then(|s| s.holders.into_iter().find(|(s, _)| *s == id));
                let token = match held {
                    Some((_, token)) if self.rng.below(10) > 0 => token,
                    _ => FencingToken(self.rng.below(self.h.index as usize + 2) as u64),
                };
                let (seq, ack) = self.clients.get_mut(&id)?.header();
                Command::Client(ClientCommand::Release {
                    session: id,
                    seq,
                    ack,
                    lock: lock.into(),
                    token,
                })
            }
            7 => {
                let (seq, ack) = self.clients.get_mut(&id)?.header();
                Command::Client(ClientCommand::CancelWait {
                    session: id,
                    seq,
                    ack,
                    lock: lock.into(),
                })
            }
            8 => {
                let waits: Vec<_> = self.h.sm.timed_waits().collect();
                if waits.is_empty() || self.rng.below(4) == 0 {
                    let acquire_seq = Seq(self.rng.below(20) as u64);
                    Command::WaitTimedOut {
                        session: id,
                        lock: lock.into(),
                        acquire_seq,
                    }
                } else {
                    let wait = &waits[self.rng.below(waits.len())];
                    Command::WaitTimedOut {
                        session: wait.session,
                        lock: wait.lock.to_string(),
                        acquire_seq: wait.seq,
                    }
                }
            }
            9 => {
                let delays: Vec<_> = self
                    .h
                    .sm
                    .lock_delays()
                    .map(|(name, d)| (name.to_string(), d.since))
                    .collect();
                if delays.is_empty() || self.rng.below(4) == 0 {
                    let since = LogIndex(self.rng.below(self.h.index as usize + 1) as u64);
                    Command::LockDelayOver {
                        lock: lock.into(),
                        since,
                    }
                } else {
                    let (lock, since) = delays[self.rng.below(delays.len())].clone();
                    Command::LockDelayOver { lock, since }
                }
            }
            _ => {
                // A retry (or a duplicate delivered late) of an earlier request.
                let sent = &self.clients.get(&id)?.sent;
                if sent.is_empty() {
                    return None;
                }
                let command = sent[self.rng.below(sent.len())].clone();
                return Some(command);
            }
        };
        if let Some(client) = self.clients.get_mut(&id) {
            if client.sent.len() > 16 {
                client.sent.remove(0);
            }
            client.sent.push(command.clone());
        }
        Some(command)
    }

    fn observe(&mut self, out: &Applied) {
        for event in &out.events {
            *self.seen.entry(event_kind(event)).or_default() += 1;
        }
        for reply in &out.replies {
            if let Reply::To {
                response: Err(error),
                ..
            } = reply
            {
                *self.seen.entry(error_kind(error)).or_default() += 1;
            }
            if let Reply::To {
                response: Ok(Outcome::Pending),
                ..
            } = reply
            {
                *self.seen.entry("pending").or_default() += 1;
            }
            match reply {
                Reply::SessionOpened { result: Ok(id), .. } => {
                    self.clients.entry(*id).or_default();
                }
                Reply::SessionOpened { result: Err(_), .. } => {}
                Reply::To {
                    session,
                    seq,
                    response,
                } => {
                    if *response == Ok(Outcome::Pending) {
                        continue;
                    }
                    if let Some(client) = self.clients.get_mut(session) {
                        client.unanswered.remove(&seq.0);
                    }
                    let forgotten = matches!(
                        response,
                        Err(LockError::StaleSequence { .. }
                            | LockError::SessionNotFound
                            | LockError::SessionExpired
                            | LockError::SessionClosed)
                    );
                    if forgotten {
                        continue;
                    }
                    let first = *self.answers.entry((*session, *seq)).or_insert(*response);
                    assert_eq!(
                        first, *response,
                        "a retry of {session:?} {seq:?} got another answer"
                    );
                }
            }
        }
        for event in &out.events {
            match event {
                Event::SessionEnded { session, .. } => drop(self.clients.remove(session)),
                Event::Acquired {
                    lock, token, mode, ..
                } => {
                    let last = self
                        .last_token
                        .insert(Arc::clone(lock), *token)
                        .unwrap_or_default();
                    if *mode == Mode::Exclusive {
                        assert!(*token > last, "exclusive tokens of {lock} must increase");
                    } else {
                        assert!(*token >= last, "tokens of {lock} must not decrease");
                    }
                }
                _ => {}
            }
        }
    }

    fn check(&self) {
        let sm = &self.h.sm;
        for name in LOCKS {
            let Some(status) = sm.lock_status(name) else {
                continue;
            };
            let exclusive = status.mode == Some(Mode::Exclusive);
            assert!(
                !exclusive || status.holders.len() == 1,
                "one exclusive holder at most"
            );
            if let Some(Mode::Semaphore(n)) = status.mode {
                assert!(
                    status.holders.len() <= n as usize,
                    "holders never exceed the semaphore"
                );
            }
            for (session, token) in &status.holders {
                assert!(
                    sm.session(*session).is_some(),
                    "every holder's session is live"
                );
                assert!(sm.check_token(name, *token));
            }
            for waiter in &status.waiters {
                assert!(
                    sm.session(waiter.session).is_some(),
                    "no waiter of an ended session"
                );
            }
        }
        let bytes = sm.snapshot();
        let mut restored = LockState::default();
        assert_eq!(restored.restore(&bytes), Ok(()));
        assert_eq!(restored.snapshot(), bytes, "snapshot, restore, same bytes");
        assert_eq!(&restored, sm);
    }
}

fn event_kind(event: &Event) -> &'static str {
    match event {
        Event::SessionOpened { .. } => "opened",
        Event::SessionEnded { expired: false, .. } => "closed",
        Event::SessionEnded { expired: true, .. } => "expired",
        Event::Acquired { .. } => "acquired",
        Event::Released { .. } => "released",
        Event::Expired { .. } => "lost",
        Event::WaitStarted { .. } => "wait started",
        Event::WaitEnded { .. } => "wait ended",
        Event::LockDelayStarted { .. } => "delay started",
        Event::LockDelayEnded { .. } => "delay ended",
        Event::Proclaimed { .. } => "proclaimed",
    }
}

fn error_kind(error: &LockError) -> &'static str {
    match error {
        LockError::StaleSequence { .. } => "stale",
        LockError::Busy { delayed: true } => "busy delayed",
        LockError::Busy { delayed: false } => "busy",
        LockError::TimedOut => "timed out",
        LockError::Cancelled => "cancelled",
        LockError::AlreadyHeld { .. } => "already held",
        LockError::AlreadyWaiting => "already waiting",
        LockError::ModeMismatch { .. } | LockError::SemaphoreMismatch { .. } => "mismatch",
        LockError::NotHolder => "not holder",
        LockError::SessionClosed | LockError::SessionExpired => "session ended",
        _ => "other error",
    }
}

fn run(seed: u64, steps: usize, seen: &mut BTreeMap<&'static str, usize>) {
    let mut run = Run {
        rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
        h: Harness::new(),
        clients: BTreeMap::new(),
        answers: BTreeMap::new(),
        last_token: BTreeMap::new(),
        seen: std::mem::take(seen),
    };
    for _ in 0..steps {
        let Some(command) = run.random_command() else {
            continue;
        };
        // The harness checks every internal invariant after each apply.
        let out = run.h.apply(&command);
        run.observe(&out);
        run.check();
    }
    *seen = run.seen;
}

#[test]
fn random_commands_keep_every_invariant() {
    let mut seen = BTreeMap::new();
    for seed in 1..=24 {
        run(seed, 2_000, &mut seen);
    }
    let corners = [
        "opened",
        "closed",
        "expired",
        "acquired",
        "released",
        "lost",
        "wait started",
        "wait ended",
        "delay started",
        "delay ended",
        "pending",
        "stale",
        "busy delayed",
        "busy",
        "timed out",
        "cancelled",
        "already held",
        "already waiting",
        "mismatch",
        "not holder",
        "session ended",
    ];
    for corner in corners {
        assert!(
            seen.get(corner).copied().unwrap_or(0) > 0,
            "never reached {corner}: {seen:?}"
        );
    }
}
