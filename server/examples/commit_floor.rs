//! The disk's floor under a commit: how long until a majority of N
//! servers, writing one small record each *at the same moment to the same
//! disk*, have it durable.
//!
//! A distlock commit needs a majority of the servers to have written and
//! synced the entry (ARCHITECTURE.md §7.3). When all of them share one disk, as on a
//! laptop, in CI, or in `distlock dev`, their syncs queue behind each
//! other, and the majority's last sync, not one sync, is the least a
//! commit can take before any network hop. This measures exactly that,
//! with the same pattern as the write-ahead log: each writer overwrites
//! `--bytes` in a preallocated file and calls `fdatasync`.
//!
//! ```sh
//! cargo run --release -p distlock-server --example commit_floor -- --dir /var/lib/distlock
//! ```
//!
//! It prints, for k = 1..N, the time until the k-th writer's sync returned
//! (p50 and p99 over the rounds), and marks the majority.

use clap::Parser;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    about = "How long until a majority of N concurrent write + fdatasync calls on one disk return"
)]
struct Args {
    /// Directory on the disk to measure (files are created and removed there).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Concurrent writers, one per server sharing the disk.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=16))]
    writers: u16,
    /// Rounds; each writer writes and syncs once per round.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    rounds: u32,
    /// Bytes each writer writes per round (one small log entry by default).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=65536))]
    bytes: u32,
}

/// Each file's preallocated size: writes overwrite real zeros inside it, as
/// the log's preallocated segments do, so a sync carries no size change.
const FILE_SIZE: u64 = 1 << 20;

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let writers = usize::from(args.writers);
    let paths: Vec<PathBuf> = (0..writers)
        .map(|i| {
            args.dir
                .join(format!("distlock-commit-floor-{}-{i}", std::process::id()))
        })
        .collect();
    let files = paths
        .iter()
        .map(|p| preallocated(p))
        .collect::<std::io::Result<Vec<File>>>();
    let result = files.and_then(|files| measure(files, &args));
    for p in &paths {
        let _ = std::fs::remove_file(p);
    }
    let finish_times = result?;
    report(&args, finish_times);
    Ok(())
}

fn preallocated(path: &Path) -> std::io::Result<File> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    let zeros = vec![0u8; 64 * 1024];
    for _ in 0..FILE_SIZE / zeros.len() as u64 {
        f.write_all(&zeros)?;
    }
    f.sync_all()?;
    Ok(f)
}

/// Runs the rounds; returns, per round, each writer's time from the round's
/// start to its sync's return.
fn measure(files: Vec<File>, args: &Args) -> std::io::Result<Vec<Vec<Duration>>> {
    let writers = files.len();
    let rounds = args.rounds as usize;
    let record = vec![0x5au8; args.bytes as usize];
    let slots = FILE_SIZE / u64::from(args.bytes);
    // Both barriers hold every writer: one releases a round's writes at
    // once, the other keeps a fast writer from starting the next round
    // while slower ones still sync.
    let start = Arc::new(SpinBarrier::new(writers));
    let end = Arc::new(SpinBarrier::new(writers));
    // Set by a writer whose write or sync failed, before the end barrier:
    // past it every writer sees it and stops, none waits for ever at the
    // next round's start for the one that left.
    let failed = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = files
        .into_iter()
        .map(|file| {
            let (start, end, failed, record) =
                (start.clone(), end.clone(), failed.clone(), record.clone());
            // `Ok(None)`: stopped because another writer failed.
            std::thread::spawn(
                move || -> std::io::Result<Option<Vec<(Instant, Instant)>>> {
                    let mut times = Vec::with_capacity(rounds);
                    for round in 0..rounds {
                        start.wait();
                        let began = Instant::now();
                        let offset = (round as u64 % slots) * record.len() as u64;
                        let outcome = file
                            .write_all_at(&record, offset)
                            .and_then(|()| file.sync_data());
                        let synced = Instant::now();
                        if outcome.is_err() {
                            failed.store(true, Ordering::Release);
                        }
                        end.wait();
                        outcome?;
                        if failed.load(Ordering::Acquire) {
                            return Ok(None);
                        }
                        times.push((began, synced));
                    }
                    Ok(Some(times))
                },
            )
        })
        .collect();
    let mut per_writer = Vec::with_capacity(writers);
    let mut first_error = None;
    for h in handles {
        match h.join() {
            Ok(Ok(Some(times))) => per_writer.push(times),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert(std::io::Error::other("a writer panicked"));
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok((0..rounds)
        .map(|round| {
            let began = per_writer
                .iter()
                .map(|t| t[round].0)
                .min()
                .expect("at least one writer");
            let mut done: Vec<Duration> = per_writer.iter().map(|t| t[round].1 - began).collect();
            done.sort();
            done
        })
        .collect())
}

/// A barrier whose waiters spin (yielding the core) instead of sleeping:
/// waking a sleeping thread takes tens of microseconds on some machines,
/// which would stagger the writes this measures.
struct SpinBarrier {
    parties: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    fn new(parties: usize) -> Self {
        Self {
            parties,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }

    fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.parties {
            self.arrived.store(0, Ordering::Release);
            self.generation.fetch_add(1, Ordering::AcqRel);
            return;
        }
        while self.generation.load(Ordering::Acquire) == generation {
            std::thread::yield_now();
        }
    }
}

fn report(args: &Args, rounds: Vec<Vec<Duration>>) {
    let writers = usize::from(args.writers);
    let majority = writers / 2 + 1;
    println!(
        "{} writers, {} B write + fdatasync each, {} rounds, in {}",
        writers,
        args.bytes,
        rounds.len(),
        args.dir.display()
    );
    for k in 1..=writers {
        let mut kth: Vec<Duration> = rounds.iter().map(|r| r[k - 1]).collect();
        kth.sort();
        let at = |q: f64| kth[((kth.len() - 1) as f64 * q).round() as usize];
        println!(
            "{k}{} sync returned after: p50 {:>6.0} µs  p99 {:>6.0} µs{}",
            ordinal(k),
            at(0.5).as_secs_f64() * 1e6,
            at(0.99).as_secs_f64() * 1e6,
            if k == majority {
                "   <- a majority: the least a commit can take on this disk"
            } else {
                ""
            }
        );
    }
}

fn ordinal(k: usize) -> &'static str {
    match k {
        1 => "st",
        2 => "nd",
        3 => "rd",
        _ => "th",
    }
}
