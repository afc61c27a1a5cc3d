//! Benchmarks of the sans-IO Raft core, driven through its public API only.
//!
//! * `commit_3_nodes/batch_N`: committed entries per second when the leader
//!   of a 3-node cluster takes proposals in batches of N. The cluster lives
//!   in memory: every `Send` goes straight into the addressee's
//!   `handle_message` (no loss, no serialisation) and every `Persist` is
//!   acknowledged as soon as its node's drain ends (group commit on an
//!   infinitely fast disk). What is left is the CPU cost of the consensus
//!   core itself, on one thread for all three nodes: the ceiling a server
//!   can reach before network and fsync costs are added. One iteration ends
//!   when the leader has emitted `Applied` for the whole batch; the commit
//!   notices still travelling to the followers are delivered at the start of
//!   the next iteration, so the followers' apply work is in the steady state
//!   too.
//! * `handle_append/N`: what one follower spends on one AppendEntries of N
//!   entries in a steady stream: `handle_message`, the drain (which applies
//!   the entries the message reports committed and issues the `Persist`),
//!   `persisted`, and the drain that releases the acknowledgement. Each
//!   message extends the follower's log, so it never sees a duplicate.
//!
//! Both run long enough to cross the default snapshot threshold, so the cost
//! of snapshots and log compaction is included, amortised.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use distlock_core::ids::{LogIndex, NodeId, Term};
use distlock_core::raft::{
    Action, Config, Entry, EntryPayload, Membership, Message, MessageBody, Raft, SnapshotError,
    StateMachine, Stored,
};
use distlock_core::time::Instant;
use std::cell::Cell;
use std::collections::VecDeque;
use std::hint::black_box;

/// Batch sizes of `commit_3_nodes`.
const BATCHES: [u64; 4] = [1, 16, 64, 256];
/// Entries per message of `handle_append`.
const APPEND_SIZES: [u64; 2] = [1, 64];
/// Give up on a batch that has not committed after this many delivery rounds
/// (a healthy cluster needs three).
const MAX_ROUNDS: usize = 1_000;

/// The cheapest useful state machine: a running sum of the commands, so the
/// benchmarks measure Raft rather than the application.
#[derive(Debug, Default)]
struct Sum {
    total: u64,
}

impl StateMachine for Sum {
    type Command = u64;
    type Output = u64;

    fn apply(&mut self, _index: LogIndex, command: &u64) -> u64 {
        self.total = self.total.wrapping_add(*command);
        self.total
    }

    fn snapshot(&self) -> Vec<u8> {
        self.total.to_le_bytes().to_vec()
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), SnapshotError> {
        let bytes: [u8; 8] = data.try_into().map_err(|_| SnapshotError {
            reason: "a Sum snapshot is 8 bytes",
        })?;
        self.total = u64::from_le_bytes(bytes);
        Ok(())
    }
}

/// A brand-new server of the cluster of voters `1..=size`.
fn new_node(id: u64, size: u64) -> Raft<Sum> {
    let membership = Membership::with_voters((1..=size).map(NodeId));
    Raft::new(
        Config::new(NodeId(id)),
        Sum::default(),
        Stored::fresh(membership),
        id,
        Instant::ZERO,
    )
    .expect("the default config and a fresh store are valid")
}

/// Drains `node` the way a driver with an instant disk would: actions until
/// `None`, then `persisted` with the last `Persist` seen (group commit), and
/// again until a drain issues no `Persist`. Messages go to `out`. Returns
/// the highest index reported `Applied`, if any.
fn drain(node: &mut Raft<Sum>, now: Instant, out: &mut VecDeque<Message<u64>>) -> Option<LogIndex> {
    let mut applied = None;
    loop {
        let mut last_persist = None;
        while let Some(action) = node.poll_action() {
            match action {
                Action::Send(msg) => out.push_back(msg),
                Action::Persist(persist) => last_persist = Some(persist.seq),
                Action::Applied { index, .. } => applied = Some(index),
                Action::ReadReady { .. } | Action::ReadFailed { .. } => {}
            }
        }
        match last_persist {
            Some(seq) => node.persisted(seq, now),
            None => return applied,
        }
    }
}

/// A cluster in memory with a fake clock and a lossless, instant network.
struct Cluster {
    nodes: Vec<Raft<Sum>>,
    /// The highest index each node reported `Applied`.
    applied: Vec<LogIndex>,
    /// Messages sent and not yet delivered, in send order.
    net: VecDeque<Message<u64>>,
    /// The clock shared by every node, in microseconds.
    now: u64,
    /// The next command to propose.
    next_command: u64,
}

impl Cluster {
    fn new(size: u64) -> Self {
        Self {
            nodes: (1..=size).map(|id| new_node(id, size)).collect(),
            applied: vec![LogIndex(0); usize::try_from(size).expect("cluster size fits usize")],
            net: VecDeque::new(),
            now: 0,
            next_command: 0,
        }
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.now)
    }

    fn slot(id: NodeId) -> usize {
        usize::try_from(id.0 - 1).expect("node ids are small")
    }

    fn leader(&self) -> Option<usize> {
        self.nodes.iter().position(Raft::is_leader)
    }

    /// Fires the timers due now, delivers every message in flight, and
    /// drains every node.
    fn round(&mut self) {
        let now = self.now();
        for node in &mut self.nodes {
            if node.poll_timeout().is_some_and(|t| t <= now) {
                node.handle_timeout(now);
            }
        }
        for msg in std::mem::take(&mut self.net) {
            self.nodes[Self::slot(msg.to)].handle_message(msg, now);
        }
        for (node, applied) in self.nodes.iter_mut().zip(&mut self.applied) {
            if let Some(index) = drain(node, now, &mut self.net) {
                *applied = index;
            }
        }
    }

    /// Runs the election timers until a leader has committed an entry of its
    /// own term (so it takes proposals and commits them at once).
    fn elect(&mut self) -> usize {
        for _ in 0..100 {
            let next_timer = self
                .nodes
                .iter()
                .filter_map(Raft::poll_timeout)
                .min()
                .expect("every node has a timer");
            self.now = self.now.max(next_timer.as_micros());
            for _ in 0..MAX_ROUNDS {
                self.round();
                self.now += 1;
                if self.net.is_empty() {
                    break;
                }
            }
            let ready = self
                .leader()
                .filter(|&l| self.nodes[l].has_committed_own_term());
            if let Some(leader) = ready {
                return leader;
            }
        }
        panic!("no leader after 100 election timeouts");
    }

    /// Proposes `n` commands on `leader` and runs delivery rounds, one
    /// microsecond apart, until the leader has applied them all.
    fn commit_batch(&mut self, leader: usize, n: u64) {
        let mut last = LogIndex(0);
        for _ in 0..n {
            let (index, _) = self.nodes[leader]
                .propose(self.next_command)
                .expect("the leader keeps leading an undisturbed cluster");
            self.next_command += 1;
            last = index;
        }
        for _ in 0..MAX_ROUNDS {
            self.now += 1;
            self.round();
            if self.applied[leader] >= last {
                return;
            }
        }
        panic!("a batch of {n} did not commit in {MAX_ROUNDS} rounds");
    }
}

fn bench_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit_3_nodes");
    for n in BATCHES {
        group.throughput(Throughput::Elements(n));
        // One cluster for warm-up and every sample: the log keeps growing
        // and crossing the snapshot threshold, as on a server under load.
        let mut cluster = Cluster::new(3);
        let leader = cluster.elect();
        group.bench_function(format!("batch_{n}"), |b| {
            b.iter(|| cluster.commit_batch(leader, n));
        });
    }
    group.finish();
}

/// A follower (node 2 of 3) fed AppendEntries from a leader (node 1) of term 1.
struct Follower {
    raft: Raft<Sum>,
    out: VecDeque<Message<u64>>,
}

const LEADER: NodeId = NodeId(1);
const TERM: Term = Term(1);

impl Follower {
    fn new() -> Self {
        Self {
            raft: new_node(2, 3),
            out: VecDeque::new(),
        }
    }

    /// Handles one AppendEntries completely; returns the index the follower
    /// acknowledged, or `None` if it refused the entries.
    fn handle(&mut self, msg: Message<u64>) -> Option<LogIndex> {
        // The clock stands still: the follower's election timer never fires.
        let now = Instant::ZERO;
        self.raft.handle_message(msg, now);
        drain(&mut self.raft, now, &mut self.out);
        self.out.drain(..).find_map(|reply| match reply.body {
            MessageBody::AppendResponse {
                result: Ok(index), ..
            } => Some(index),
            _ => None,
        })
    }
}

/// The AppendEntries that carries entries `prev + 1 ..= prev + n` of term 1
/// and reports everything up to `prev` committed, as a pipelining leader does.
fn append_message(prev: LogIndex, n: u64) -> Message<u64> {
    let entries = (1..=n)
        .map(|k| Entry {
            index: prev.plus(k),
            term: TERM,
            payload: EntryPayload::Command(k),
        })
        .collect();
    let prev_term = if prev == LogIndex(0) { Term(0) } else { TERM };
    let body = MessageBody::Append {
        prev_index: prev,
        prev_term,
        entries,
        commit: prev,
        round: 0,
    };
    Message {
        from: LEADER,
        to: NodeId(2),
        term: TERM,
        body,
    }
}

fn bench_handle_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("handle_append");
    for n in APPEND_SIZES {
        group.throughput(Throughput::Elements(n));
        // One follower for warm-up and every sample, its log ever growing.
        let mut follower = Follower::new();
        let first = follower.handle(append_message(LogIndex(0), n));
        assert_eq!(
            first,
            Some(LogIndex(n)),
            "the follower must accept the first append"
        );
        let next_prev = Cell::new(LogIndex(n));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_batched(
                || {
                    let prev = next_prev.get();
                    next_prev.set(prev.plus(n));
                    append_message(prev, n)
                },
                |msg| black_box(follower.handle(msg)),
                BatchSize::SmallInput,
            );
            assert_eq!(
                follower.raft.last_index(),
                next_prev.get(),
                "the follower must have accepted every append"
            );
        });
    }
    group.finish();
}

criterion_group!(benches, bench_commit, bench_handle_append);
criterion_main!(benches);
