//! Criterion benchmarks of the lock state machine on one core: the hot path
//! (acquire+release pairs over many locks), a long FIFO hand-off on one
//! lock, and snapshots of a million sessions and locks.
//!
//! Run with `cargo bench --bench locks`.

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use distlock_core::ids::LogIndex;
use distlock_core::locks::ClientCommand;
use distlock_core::locks::{
    Applied, Command, FencingToken, Limits, LockState, Mode, Seq, SessionId, Wait,
};
use distlock_core::raft::StateMachine;
use std::hint::black_box;
use std::time::Duration;

/// Applies commands at increasing indexes, numbering requests per session.
struct Driver {
    state: LockState,
    index: u64,
    out: Applied,
}

impl Driver {
    fn new(limits: Limits) -> Self {
        Self {
            state: LockState::new(limits),
            index: 0,
            out: Applied::default(),
        }
    }

    fn apply(&mut self, command: &Command) {
        self.index += 1;
        self.out.clear();
        self.state
            .apply_into(LogIndex(self.index), command, &mut self.out);
    }

    fn open(&mut self, nonce: u128) -> SessionId {
        self.apply(&Command::Client(ClientCommand::OpenSession {
            nonce,
            ttl_ms: 10_000,
        }));
        SessionId(self.index)
    }
}

fn acquire(session: SessionId, seq: u64, lock: String, wait: Wait) -> Command {
    let (seq, ack) = (Seq(seq), Seq(seq));
    Command::Client(ClientCommand::Acquire {
        session,
        seq,
        ack,
        lock,
        mode: Mode::Exclusive,
        wait,
        lock_delay_ms: 0,
    })
}

fn release(session: SessionId, seq: u64, lock: String, token: FencingToken) -> Command {
    Command::Client(ClientCommand::Release {
        session,
        seq: Seq(seq),
        ack: Seq(seq),
        lock,
        token,
    })
}

/// Gives a prebuilt request a fresh sequence number (a reused one would be
/// a retry, answered from the dedupe table) and, for a release, its token.
fn renumber(command: &mut Command, next: u64, token: FencingToken) {
    match command {
        Command::Client(ClientCommand::Acquire { seq, ack, .. }) => {
            (*seq, *ack) = (Seq(next), Seq(next))
        }
        Command::Client(ClientCommand::Release {
            seq, ack, token: t, ..
        }) => (*seq, *ack, *t) = (Seq(next), Seq(next), token),
        _ => {}
    }
}

/// 10,000 distinct locks, each acquired then released, by 64 sessions in
/// turn: 20,000 commands per iteration.
fn acquire_release_pairs(c: &mut Criterion) {
    const LOCKS: usize = 10_000;
    const SESSIONS: usize = 64;
    let mut driver = Driver::new(Limits::default());
    let sessions: Vec<SessionId> = (0..SESSIONS).map(|i| driver.open(i as u128)).collect();
    let mut pairs: Vec<(Command, Command)> = (0..LOCKS)
        .map(|i| {
            let session = sessions[i % SESSIONS];
            let name = format!("lock-{i:05}");
            (
                acquire(session, 0, name.clone(), Wait::Try),
                release(session, 0, name, FencingToken(0)),
            )
        })
        .collect();
    let mut seqs = [0u64; SESSIONS];
    let mut group = c.benchmark_group("locks");
    group.throughput(Throughput::Elements(2 * LOCKS as u64));
    group.bench_function("acquire_release_10k_locks", |b| {
        b.iter(|| {
            for (i, (acquire, release)) in pairs.iter_mut().enumerate() {
                let seq = &mut seqs[i % SESSIONS];
                *seq += 1;
                renumber(acquire, *seq, FencingToken(0));
                driver.apply(acquire);
                let token = FencingToken(driver.index);
                *seq += 1;
                renumber(release, *seq, token);
                driver.apply(release);
            }
            black_box(&driver.out);
        });
    });
    assert_eq!(
        driver.state.lock_count(),
        0,
        "every pair was granted and released"
    );
    group.finish();
}

/// One lock, 1,000 sessions queued behind its holder, then drained by 1,000
/// releases each handing it to the next: 2,000 commands per iteration.
fn one_lock_1000_waiters(c: &mut Criterion) {
    const WAITERS: usize = 1_000;
    let mut template = Driver::new(Limits::default());
    let sessions: Vec<SessionId> = (0..=WAITERS).map(|i| template.open(i as u128)).collect();
    template.apply(&acquire(sessions[0], 1, "hot".into(), Wait::Try));
    let first_token = FencingToken(template.index);
    let base = template.index;
    let mut commands = Vec::with_capacity(2 * WAITERS);
    for session in &sessions[1..] {
        commands.push(acquire(*session, 1, "hot".into(), Wait::Forever));
    }
    // Release k (at index base + WAITERS + k + 1) grants waiter k + 1 that
    // index as its token.
    for (k, session) in sessions[..WAITERS].iter().enumerate() {
        let token = if k == 0 {
            first_token
        } else {
            FencingToken(base + (WAITERS + k) as u64)
        };
        commands.push(release(*session, 2, "hot".into(), token));
    }
    let mut group = c.benchmark_group("locks");
    group.throughput(Throughput::Elements(commands.len() as u64));
    group.bench_function("one_lock_1000_waiters", |b| {
        b.iter_batched(
            || Driver {
                state: template.state.clone(),
                index: template.index,
                out: Applied::default(),
            },
            |mut driver| {
                for command in &commands {
                    driver.apply(command);
                }
                assert_eq!(
                    driver.state.lock_status("hot").map(|s| s.holders),
                    Some(vec![(sessions[WAITERS], FencingToken(driver.index))])
                );
                driver
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

/// A million sessions, each holding its own lock.
fn snapshot_1m(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let limits = Limits {
        max_sessions: N as u32,
        ..Limits::default()
    };
    let mut driver = Driver::new(limits);
    for i in 0..N {
        let session = driver.open(i as u128);
        driver.apply(&acquire(session, 1, format!("lock-{i:07}"), Wait::Try));
    }
    assert_eq!(
        (driver.state.session_count(), driver.state.lock_count()),
        (N, N)
    );
    let bytes = driver.state.snapshot();
    eprintln!(
        "snapshot of {N} sessions and {N} locks: {} bytes",
        bytes.len()
    );
    let mut group = c.benchmark_group("locks");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("snapshot_1m_sessions_and_locks", |b| {
        b.iter(|| black_box(driver.state.snapshot()))
    });
    group.bench_function("restore_1m_sessions_and_locks", |b| {
        b.iter_batched(
            LockState::default,
            |mut state| {
                assert_eq!(state.restore(&bytes), Ok(()));
                state
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(
    benches,
    acquire_release_pairs,
    one_lock_1000_waiters,
    snapshot_1m
);
criterion_main!(benches);
