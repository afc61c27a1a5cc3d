//! History variables and the properties checked in every state.
//!
//! The history is part of the state (and of its fingerprint): two states
//! that differ only in what happened before them may break a property in
//! one and not the other.
//!
//! Raft (thesis §3.6, Figure 3.2):
//! - election safety: at most one leader per term, ever;
//! - log matching: two logs with an entry of the same index and term are
//!   identical up to it;
//! - leader completeness: an entry committed by the leader of term `c` is
//!   in the log of every leader of a later term;
//! - state machine safety: no two servers ever commit (hence apply)
//!   different entries at one index, and a server never loses a committed
//!   entry;
//! - durability: a committed entry stays on the disks of a majority of
//!   the voters that committed it, and every Raft message goes out only
//!   once what it states (term, vote, acknowledged entries) is on its
//!   sender's disk;
//!
//! the lock service:
//! - the lock state's own invariants hold on every server (at most one
//!   exclusive holder, holders' tokens are grants, …);
//! - at the clients: no two clients hold one lock at once when either
//!   holds it exclusively, and each lock's grants carry ever larger tokens;
//! - exactly once: every final answer to one request (retries included)
//!   is the same, as the clients receive them and as the committed log,
//!   replayed, gives them;
//! - linearizable reads: a token check answers what was true at some
//!   moment between its send and its answer, and a lock-status read
//!   answers a status the committed state had between them;
//! - a membership change answered as done is committed;
//! - lock-delay (`ghost/lock_delay.rs`): only a holder's expiry starts
//!   one, of the length that holder asked for;
//! - snapshot fidelity (`ghost/snapshots.rs`): a snapshot restores to the state
//!   the committed log gives at its index.

use crate::world::Server;
use distlock_core::ids::{LogIndex, NodeId, Term};
use distlock_core::locks::{
    Applied, Command, FencingToken, LockState, Mode, Outcome, Reply, Seq, SessionId,
};
use distlock_core::proto::LockStatusView;
use distlock_core::raft::{Entry, EntryPayload, Message, MessageBody, Raft, Role};
use distlock_core::testkit::Disk;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

mod lock_delay;
mod snapshots;

/// An entry known committed.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Committed {
    /// Its term.
    pub term: Term,
    /// A digest of its payload.
    pub digest: u64,
    /// The lowest term of a server seen holding it committed: the entry
    /// was committed by the leader of that term or an earlier one.
    pub by_term: Term,
    /// The voters of the configuration of the server that first held it
    /// committed (the leader that committed it).
    pub voters: Vec<NodeId>,
}

/// The committed log replayed through a lock state machine of the
/// checker's own, with the first answer to each request. Left out of the
/// fingerprint and of equality: it is a function of the committed entries,
/// which are in both.
#[derive(Clone, Debug, Default)]
pub struct Replay {
    state: LockState,
    /// The last index replayed.
    upto: LogIndex,
    /// The first answer the log gave each (session, seq).
    answers: BTreeMap<(SessionId, Seq), String>,
    /// With snapshots on ([`Ghost::keep_states`]): the state after each
    /// index, to compare the servers' snapshots with (shared, as the
    /// search clones the world at every step).
    states: Option<BTreeMap<LogIndex, Arc<LockState>>>,
    /// Snapshots compared already: their index and a digest of their
    /// bytes (a snapshot sent to followers is the same snapshot).
    compared: BTreeSet<(LogIndex, u64)>,
    /// The lock-delay each session's latest acquire of each lock asked for.
    delays: BTreeMap<(SessionId, String), u64>,
}

impl Hash for Replay {
    fn hash<H: Hasher>(&self, _: &mut H) {}
}

impl PartialEq for Replay {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Replay {}

/// A lock-status read sent and not yet checked: every status its lock had
/// in the committed state from its send on (a linearizable answer is one
/// of them), and its first final answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct StatusRead {
    /// The client.
    pub client: usize,
    /// The lock read.
    pub lock: String,
    /// The statuses the committed state went through since the send: the
    /// answer a server would give, as `Debug` (compared) and as traces
    /// print it.
    pub seen: Vec<(String, String)>,
    /// The first final answer, once it came, the same two ways.
    pub answer: Option<(String, String)>,
}

/// The history.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
pub struct Ghost {
    /// The leader of each term.
    pub leaders: BTreeMap<Term, NodeId>,
    /// Every index known committed.
    pub committed: BTreeMap<LogIndex, Committed>,
    /// Per lock, the newest token whose grant was answered.
    pub newest_grant: BTreeMap<String, FencingToken>,
    /// Tokens whose grant was answered.
    pub grants: Vec<FencingToken>,
    /// Tokens whose release was sent, and whether it was answered.
    pub releases: BTreeMap<FencingToken, bool>,
    /// Membership changes answered done, not yet seen committed.
    pub changes_answered: Vec<LogIndex>,
    /// The committed log, replayed.
    pub replay: Replay,
    /// Sessions whose expiry the last observation found committed (the
    /// world checks them against their clients' leases, then clears it).
    pub expired: Vec<SessionId>,
    /// Lock-status reads in flight or answered and not yet checked.
    pub status_reads: Vec<StatusRead>,
    /// The first property broken.
    pub violation: Option<String>,
}

/// A status as compared (`Debug`, every field) and as printed.
fn status_texts(view: Option<&LockStatusView>) -> (String, String) {
    (format!("{view:?}"), crate::describe::status(view))
}

/// Entry `index` as server `s` last wrote it (pending writes, newest
/// first, then its disk).
fn written(s: &Server, index: LogIndex) -> Option<&Entry<Command>> {
    s.pending
        .iter()
        .rev()
        .find_map(|w| w.entries.iter().find(|e| e.index == index))
        .or_else(|| s.disk.entries.iter().find(|e| e.index == index))
}

fn digest<T: std::fmt::Debug>(value: &T) -> u64 {
    let mut h = DefaultHasher::new();
    format!("{value:?}").hash(&mut h);
    h.finish()
}

impl Ghost {
    /// Records a broken property (the first one is kept).
    pub fn violate(&mut self, what: String) {
        if self.violation.is_none() {
            self.violation = Some(what);
        }
    }

    /// Whether the grant of `token` was answered.
    #[must_use]
    pub fn grant_answered(&self, token: FencingToken) -> bool {
        self.grants.contains(&token)
    }

    /// Whether the release of `token` was answered.
    #[must_use]
    pub fn release_answered(&self, token: FencingToken) -> bool {
        self.releases.get(&token) == Some(&true)
    }

    /// Whether the release of `token` was sent.
    #[must_use]
    pub fn release_sent_for(&self, token: FencingToken) -> bool {
        self.releases.contains_key(&token)
    }

    /// A client asks to release `token`.
    pub fn release_sent(&mut self, token: FencingToken) {
        self.releases.entry(token).or_insert(false);
    }

    /// The release of `token` was answered.
    pub fn release_answered_now(&mut self, token: FencingToken) {
        self.releases.insert(token, true);
    }

    /// A grant of `lock` was answered; `holders` are the clients that now
    /// hold it (the grantee among them), with their modes.
    pub fn grant_answered_now(
        &mut self,
        lock: &str,
        token: FencingToken,
        mode: Mode,
        holders: &[(usize, Mode)],
    ) {
        let exclusive = holders.iter().any(|(_, m)| *m == Mode::Exclusive);
        let permits = holders
            .iter()
            .filter(|(_, m)| matches!(m, Mode::Semaphore(_)))
            .count();
        let over = match mode {
            Mode::Semaphore(n) => permits > usize::try_from(n).unwrap_or(usize::MAX),
            _ => false,
        };
        if (exclusive && holders.len() > 1) || over {
            self.violate(format!(
                "mutual exclusion: clients {holders:?} hold {lock} at once ({mode:?} grant of token {})",
                token.0
            ));
        }
        let newest = *self.newest_grant.entry(lock.to_owned()).or_insert(token);
        if mode == Mode::Exclusive && token < newest {
            self.violate(format!(
                "tokens: an exclusive grant of {lock} carries token {} after token {} was granted",
                token.0, newest.0
            ));
        }
        self.newest_grant.insert(lock.to_owned(), newest.max(token));
        self.grants.push(token);
        self.grants.sort_unstable();
    }

    /// The committed state's status of `lock`, as a server answers it.
    fn status_now(&self, lock: &str) -> (String, String) {
        let view = self
            .replay
            .state
            .lock_status(lock)
            .map(distlock_core::proto::LockStatusView::from);
        status_texts(view.as_ref())
    }

    /// Client `client` sent a status read of `lock` (a retry keeps the
    /// window of the first send).
    pub fn status_sent(&mut self, client: usize, lock: &str) {
        if self.status_reads.iter().any(|r| r.client == client) {
            return;
        }
        let seen = vec![self.status_now(lock)];
        self.status_reads.push(StatusRead {
            client,
            lock: lock.to_owned(),
            seen,
            answer: None,
        });
    }

    /// Client `client`'s status read was answered `view`; it is checked
    /// once the commits of this step are seen.
    pub fn status_answered(&mut self, client: usize, view: Option<&LockStatusView>) {
        let answer = status_texts(view);
        if let Some(r) = self
            .status_reads
            .iter_mut()
            .find(|r| r.client == client && r.answer.is_none())
        {
            r.answer = Some(answer);
        }
    }

    /// Every answered status read must have answered a status its lock
    /// had in the committed state at some moment since its send.
    fn check_status_reads(&mut self) {
        let (answered, open): (Vec<StatusRead>, Vec<StatusRead>) =
            std::mem::take(&mut self.status_reads)
                .into_iter()
                .partition(|r| r.answer.is_some());
        self.status_reads = open;
        for r in answered {
            let (answer, shown) = r.answer.unwrap_or_default();
            if !r.seen.iter().any(|(s, _)| *s == answer) {
                let went: Vec<&str> = r.seen.iter().map(|(_, s)| s.as_str()).collect();
                self.violate(format!(
                    "stale read: client {}'s status of {} was answered {shown}, which the committed state never was between its send and its answer (it went through {})",
                    r.client,
                    r.lock,
                    went.join(", then ")
                ));
            }
        }
    }

    /// A membership change was answered done at `index`.
    pub fn membership_answered(&mut self, index: LogIndex) {
        if !self.committed.contains_key(&index) {
            self.changes_answered.push(index);
        }
    }

    /// Records what the servers show now and checks the Raft and state
    /// machine properties.
    pub fn observe(&mut self, servers: &[Server]) {
        for s in servers {
            let raft = s.node.raft();
            if raft.role() == Role::Leader {
                match self.leaders.get(&raft.term()) {
                    Some(&other) if other != s.id => self.violate(format!(
                        "election safety: {} and {} both led term {}",
                        other.0,
                        s.id.0,
                        raft.term().0
                    )),
                    Some(_) => {}
                    None => {
                        self.leaders.insert(raft.term(), s.id);
                    }
                }
            }
            self.observe_commits(s);
            if let Err(what) = raft.state_machine().broken_invariant() {
                self.violate(format!("lock state invariant on {}: {what}", s.id.0));
            }
        }
        self.check_durable(servers);
        self.check_snapshots(servers);
        self.check_log_matching(servers);
        self.check_leader_completeness(servers);
        self.check_status_reads();
        for index in std::mem::take(&mut self.changes_answered) {
            if !self.committed.contains_key(&index) {
                self.violate(format!(
                    "membership: a change was answered done at {} before it committed",
                    index.0
                ));
            }
        }
    }

    /// Replays one committed entry, keeping the state it leads to when
    /// snapshots are compared.
    fn replay_entry(&mut self, index: LogIndex, payload: &EntryPayload<Command>) {
        self.replay.upto = index;
        if let EntryPayload::Command(cmd) = payload {
            self.replay_command(index, cmd);
        }
        if let Some(states) = &mut self.replay.states {
            states.insert(index, Arc::new(self.replay.state.clone()));
        }
    }

    /// Exactly once, in the log: a request applied again (a retry that
    /// reached the log twice) must be answered as the first time, from the
    /// dedupe table.
    fn replay_command(&mut self, index: LogIndex, cmd: &Command) {
        if let Command::ExpireSession { session } = cmd
            && self.replay.state.sessions().any(|(s, _)| s == *session)
        {
            self.expired.push(*session);
        }
        self.note_requested_delay(cmd);
        let mut out = Applied::default();
        self.replay.state.apply_into(index, cmd, &mut out);
        self.check_lock_delays(index, cmd, &out.events);
        for i in 0..self.status_reads.len() {
            let now = self.status_now(&self.status_reads[i].lock);
            let r = &mut self.status_reads[i];
            // Reads answered in this step count it too: the answer may
            // come from the state this very step committed.
            if r.seen.last().map(|(s, _)| s) != Some(&now.0) {
                r.seen.push(now);
            }
        }
        for reply in out.replies {
            let Reply::To {
                session,
                seq,
                response,
            } = reply
            else {
                continue;
            };
            if response == Ok(Outcome::Pending) {
                continue;
            }
            let text = format!("{response:?}");
            match self.replay.answers.get(&(session, seq)) {
                Some(first) if *first != text => {
                    let what = format!(
                        "exactly-once: the log answers request {} of session {} {first} and, at {}, {text}",
                        seq.0, session.0, index.0
                    );
                    self.violate(what);
                }
                Some(_) => {}
                None => {
                    self.replay.answers.insert((session, seq), text);
                }
            }
        }
    }

    fn observe_commits(&mut self, s: &Server) {
        let raft = s.node.raft();
        let base = raft.log_base();
        // A server that snapshots compacts its log in the very step that
        // committed its last entries: those the history has not replayed
        // are still in the server's writes, pending or durable.
        let mut i = base.next().min(self.replay.upto.next());
        while i <= raft.commit_index() {
            let Some(entry) = raft.entry(i).or_else(|| written(s, i)) else {
                if i <= base {
                    self.violate(format!(
                        "checker: {} compacted committed entry {} before the history saw it",
                        s.id.0, i.0
                    ));
                }
                break;
            };
            let by_term = raft.term();
            match self.committed.get_mut(&i) {
                // Entries of one index and term are one entry (log
                // matching, checked below, compares their payloads).
                Some(known) if known.term != entry.term => {
                    let here = entry;
                    let what = format!(
                        "state machine safety: {} holds {}/{} committed, but {}/{} was committed there",
                        s.id.0, i.0, here.term.0, i.0, known.term.0
                    );
                    self.violate(what);
                    return;
                }
                Some(known) => known.by_term = known.by_term.min(by_term),
                None => {
                    if i == self.replay.upto.next() {
                        self.replay_entry(i, &entry.payload);
                    }
                    let here = Committed {
                        term: entry.term,
                        digest: digest(&entry.payload),
                        by_term,
                        voters: raft.membership().voters.iter().copied().collect(),
                    };
                    self.committed.insert(i, here);
                }
            }
            i = i.next();
        }
        // A server never forgets a committed entry it held (a crash may
        // lose only what was not durable, and committed entries are
        // durable on a majority, not necessarily here: so only the
        // in-memory log's terms are compared).
        for (&index, known) in self.committed.range(base.next()..) {
            match raft.term_at(index) {
                Some(t) if t != known.term && index <= raft.commit_index() => {
                    self.violate(format!(
                        "state machine safety: {} has {}/{} committed where {}/{} was committed",
                        s.id.0, index.0, t.0, index.0, known.term.0
                    ));
                    return;
                }
                _ => {}
            }
        }
    }

    /// Every committed entry is durable on a majority of the voters that
    /// committed it: on their disks, not merely in their memory.
    fn check_durable(&mut self, servers: &[Server]) {
        for (&index, known) in &self.committed {
            let holding = known
                .voters
                .iter()
                .filter(|v| {
                    servers.iter().any(|s| {
                        s.id == **v
                            && (s.disk.term_at(index) == Some(known.term)
                                || s.disk
                                    .snapshot
                                    .as_ref()
                                    .is_some_and(|snap| snap.meta.last_index >= index))
                    })
                })
                .count();
            if holding < known.voters.len() / 2 + 1 {
                let what = format!(
                    "durability: committed entry {}/{} is on the disks of {holding} of voters {:?}",
                    index.0,
                    known.term.0,
                    known.voters.iter().map(|v| v.0).collect::<Vec<_>>()
                );
                self.violate(what);
                return;
            }
        }
    }

    /// The persistence contract, seen from the network: a message goes
    /// out only once what it states is durable on the sender's disk (a
    /// term, a vote, the entries an acknowledgement covers).
    pub fn check_sent(
        &mut self,
        msg: &Message<Command>,
        disk: &Disk<Command>,
        raft: &Raft<LockState>,
    ) {
        let hs = disk.hard_state;
        let (from, term) = (msg.from.0, msg.term.0);
        let broken = match &msg.body {
            MessageBody::PreVote { .. } | MessageBody::PreVoteResponse { .. } => None,
            MessageBody::Vote { .. }
                if hs.term < msg.term
                    || (hs.term == msg.term && hs.voted_for != Some(msg.from)) =>
            {
                Some(format!(
                    "{from} asks for votes in term {term}, its disk holds {hs:?}"
                ))
            }
            MessageBody::VoteResponse { granted: true }
                if hs.term < msg.term || (hs.term == msg.term && hs.voted_for != Some(msg.to)) =>
            {
                Some(format!(
                    "{from} grants its vote in term {term} to {}, its disk holds {hs:?}",
                    msg.to.0
                ))
            }
            MessageBody::AppendResponse { result: Ok(m), .. }
                if m.0 > 0 && disk.term_at(*m).is_none_or(|t| Some(t) != raft.term_at(*m)) =>
            {
                Some(format!(
                    "{from} acknowledges its log up to {} in term {term}, its disk ends at {}",
                    m.0,
                    disk.last_index().0
                ))
            }
            // A leader's messages and an acknowledgement state its term.
            // (A rejection may carry a term not yet durable: it only
            // makes a deposed leader step down.)
            MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. }
            | MessageBody::AppendResponse { result: Ok(_), .. }
                if hs.term < msg.term =>
            {
                Some(format!(
                    "{from} sends {} in term {term}, its disk holds term {}",
                    crate::describe::frame(
                        from,
                        msg.to.0,
                        &distlock_core::proto::PeerFrame::Raft(msg.clone())
                    ),
                    hs.term.0
                ))
            }
            _ => None,
        };
        if let Some(what) = broken {
            self.violate(format!("persistence: {what}"));
        }
    }

    fn check_log_matching(&mut self, servers: &[Server]) {
        for (a, sa) in servers.iter().enumerate() {
            for sb in &servers[a + 1..] {
                let (ra, rb) = (sa.node.raft(), sb.node.raft());
                let low = ra.log_base().max(rb.log_base()).next();
                let high = ra.last_index().min(rb.last_index());
                let mut matched = false;
                let mut i = high;
                while i >= low && i.0 > 0 {
                    let (ea, eb) = (ra.entry(i), rb.entry(i));
                    let same_term = ea.map(|e| e.term) == eb.map(|e| e.term);
                    if matched && !same_term {
                        self.violate(format!(
                            "log matching: {} and {} agree on a later entry but differ at {}",
                            sa.id.0, sb.id.0, i.0
                        ));
                        return;
                    }
                    if same_term {
                        matched = true;
                        if ea != eb {
                            self.violate(format!(
                                "log matching: {} and {} hold different entries {}/{}",
                                sa.id.0,
                                sb.id.0,
                                i.0,
                                ea.map_or(0, |e| e.term.0)
                            ));
                            return;
                        }
                    }
                    i = LogIndex(i.0 - 1);
                }
            }
        }
    }

    fn check_leader_completeness(&mut self, servers: &[Server]) {
        for s in servers {
            let raft = s.node.raft();
            if raft.role() != Role::Leader {
                continue;
            }
            let base = raft.log_base();
            for (&index, known) in self.committed.range(base.next()..) {
                if known.by_term < raft.term() && raft.term_at(index) != Some(known.term) {
                    let what = format!(
                        "leader completeness: {} leads term {} without entry {}/{} committed in term {}",
                        s.id.0,
                        raft.term().0,
                        index.0,
                        known.term.0,
                        known.by_term.0
                    );
                    self.violate(what);
                    return;
                }
            }
        }
    }
}
