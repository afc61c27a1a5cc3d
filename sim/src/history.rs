//! The recorded history of one simulated run: every client operation
//! (invoke and return, with true times), every belief a holder had about its
//! lease, every write at the fenced resource, server role changes and exits,
//! and the fault timeline. The checkers read it; `--history` writes it as
//! JSON lines; its hash (over the JSON of every record, in order) is the
//! run's `trace_hash`, equal for equal seeds.

use serde::Serialize;
use std::hash::Hasher;
use std::sync::{Arc, Mutex};

/// How a lock was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeKind {
    /// The only holder.
    Exclusive,
    /// One of many readers.
    Shared,
    /// One of at most `n` holders.
    Semaphore(u32),
}

/// What an acquire returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "is")]
pub enum AcquireResult {
    /// Granted with this fencing token.
    Granted {
        /// The token.
        token: u64,
    },
    /// Busy, timed out or cancelled: definitely not granted.
    NotGranted,
    /// Failed (session lost, refused) or no answer in time: the grant may
    /// or may not have happened.
    Failed {
        /// Why.
        error: String,
    },
}

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "ev")]
pub enum Ev {
    /// A fault was injected or healed.
    Fault {
        /// What, in words.
        what: String,
    },
    /// Every server was down at once and the cluster came back (S14).
    ClusterRestart,
    /// The operator asked for a membership change and got this answer.
    Membership {
        /// `add s4`, `remove s1 via isolated s2`...
        change: String,
        /// `committed at N`, `committed before: ...`, `refused: ...`,
        /// `not done: ...`, `gave up: ...`.
        outcome: String,
        /// Asked of a leader cut off from the majority: it must never
        /// commit.
        island: bool,
        /// When the operator asked (true time, µs); 0 in histories
        /// written before it was recorded.
        #[serde(default)]
        asked: u64,
    },
    /// A server's Raft role changed (from its log line).
    Role {
        /// The server.
        node: u64,
        /// `Leader`, `Follower`, `Candidate`...
        role: String,
        /// Its term.
        term: u64,
    },
    /// A server's runtime returned (fail-stop on a storage error, say).
    Exit {
        /// The server.
        node: u64,
        /// Why.
        why: String,
    },
    /// The simulated disk saw a request that breaks the persistence contract.
    DiskContract {
        /// The server.
        node: u64,
        /// What was wrong.
        what: String,
    },
    /// A client opened a session.
    SessionOpened {
        /// The client process.
        client: u64,
        /// The session.
        session: u64,
        /// Its TTL.
        ttl_ms: u64,
        /// Over WebSocket (else TCP).
        ws: bool,
    },
    /// A holder asked whether its token is still a current grant (the
    /// record's time is when the answer came).
    TokenCheck {
        /// The session asking.
        session: u64,
        /// The lock.
        lock: String,
        /// The token checked.
        token: u64,
        /// When the check was sent.
        invoked: u64,
        /// The answer; `None` when there was none in time or it failed.
        valid: Option<bool>,
    },
    /// The grants of the committed log, replayed after the run
    /// ([`crate::witness`]): (lock, session, token) for every grant of an
    /// entry after `from_index` (the snapshot's) up to `to_index`.
    CommittedLog {
        /// Grants at or before this index are in a snapshot, not checked.
        from_index: u64,
        /// The last entry replayed.
        to_index: u64,
        /// (lock, session, token) in log order.
        grants: Vec<(String, u64, u64)>,
        /// Explicit releases (or closes) that left a waiter queued: how
        /// many handed the lock over in the same entry.
        release_handoffs: u64,
        /// (lock, session, index) of every explicit release (or close)
        /// whose entry started a lock-delay on that lock: S18 allows a
        /// delay only after an expiry.
        delayed_releases: Vec<(String, u64, u64)>,
        /// How many requests (session, seq) the log answered more than
        /// once (a retry that reached the log again).
        retries_answered: u64,
        /// (session, seq, first answer, later answer) of every request the
        /// log answered twice differently: exactly-once broken.
        answer_conflicts: Vec<(u64, u64, String, String)>,
    },
    /// Every acquire of the run asks for this lock-delay.
    LockDelaySetting {
        /// The delay, ms.
        ms: u64,
    },
    /// The liveness probe opened this session (it asks for every lock).
    ProbeSession {
        /// The session.
        session: u64,
    },
    /// An acquire was sent.
    AcquireInvoke {
        /// Operation id (unique in the run).
        op: u64,
        /// The client process.
        client: u64,
        /// Its session.
        session: u64,
        /// The lock.
        lock: String,
        /// The mode asked for.
        mode: ModeKind,
    },
    /// An acquire returned.
    AcquireReturn {
        /// Operation id.
        op: u64,
        /// The outcome.
        result: AcquireResult,
        /// The session's lease deadline (true µs) as the client saw it.
        deadline: Option<u64>,
    },
    /// A holder's belief about its lease, sampled while holding.
    Belief {
        /// The session.
        session: u64,
        /// The lock.
        lock: String,
        /// The grant.
        token: u64,
        /// The lease deadline (true µs), if the session is still open.
        deadline: Option<u64>,
    },
    /// A holder started releasing (or closing its session, or stopped
    /// using the lock): from here on it no longer claims the lock.
    ReleaseInvoke {
        /// The session.
        session: u64,
        /// The lock.
        lock: String,
        /// The grant.
        token: u64,
    },
    /// A write reached the fenced resource.
    Write {
        /// The client process.
        client: u64,
        /// Its session.
        session: u64,
        /// The lock.
        lock: String,
        /// The token presented.
        token: u64,
        /// Whether the resource accepted it.
        accepted: bool,
    },
    /// The liveness probe tried a lock after the heal.
    Probe {
        /// The lock.
        lock: String,
        /// Whether it was granted within the bound.
        granted: bool,
        /// How long after the heal it was granted (or gave up), µs.
        after_us: u64,
    },
    /// After the heal, the voters of the leader's configuration that had
    /// not replicated what was committed when the probe first asked, once
    /// every one had or the bound ran out (voters whose disk was destroyed
    /// are not asked to).
    CatchUp {
        /// The voters still behind (empty: all caught up).
        lagging: Vec<u64>,
        /// When the question was settled, µs after the heal.
        after_us: u64,
    },
}

/// One record: true time (µs since the start) and what happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Record {
    /// True time, microseconds since the start of the run.
    pub t: u64,
    /// What happened.
    #[serde(flatten)]
    pub ev: Ev,
}

/// The history of a run, shared by every task that records into it.
#[derive(Clone, Debug, Default)]
pub struct History {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    records: Vec<Record>,
    hasher: Fnv,
}

/// FNV-1a, 64 bits: a hash with no per-process keys, so equal histories
/// hash equal in every process.
#[derive(Debug)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl History {
    /// An empty history.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends a record.
    pub fn push(&self, t: u64, ev: Ev) {
        let record = Record { t, ev };
        let mut inner = self.inner();
        // Serialising a plain enum cannot fail; an empty line would still
        // be hashed deterministically if it did.
        let line = serde_json::to_string(&record).unwrap_or_default();
        inner.hasher.write(line.as_bytes());
        inner.hasher.write(b"\n");
        inner.records.push(record);
    }

    /// A copy of every record so far.
    #[must_use]
    pub fn records(&self) -> Vec<Record> {
        self.inner().records.clone()
    }

    /// The hash of every record so far.
    #[must_use]
    pub fn hash(&self) -> u64 {
        self.inner().hasher.finish()
    }

    /// How many records there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner().records.len()
    }

    /// Whether nothing was recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The history as JSON lines.
    #[must_use]
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for r in &self.inner().records {
            out.push_str(&serde_json::to_string(r).unwrap_or_default());
            out.push('\n');
        }
        out
    }
}
