//! `distlock-sim swarm`: a range of seeds, one after another in this
//! process or spread over worker processes (`--jobs`), printed and
//! appended to a results file in seed order either way, so a parallel
//! swarm's output is the serial one's byte for byte. A results file makes
//! the swarm resumable: seeds it already holds (with the same options) are
//! not run again.

use super::config::{Recorded, SeedOptions};
use super::{CliError, EXIT_OK, EXIT_VIOLATION, report_failure, run_one};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::num::NonZeroUsize;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

/// Runs a range of seeds: one JSON line each on stdout, in seed order.
#[derive(Debug, clap::Args)]
pub(super) struct SwarmArgs {
    /// The seeds, inclusive: `1..200` (or `1..=200`).
    #[arg(long, value_parser = parse_seeds)]
    seeds: RangeInclusive<u64>,
    #[command(flatten)]
    options: SeedOptions,
    /// Worker processes running seeds at once (each seed runs alone in
    /// its process, exactly as `run --seed` would); the output is the
    /// same as with 1.
    #[arg(long, default_value = "1", value_name = "N")]
    jobs: NonZeroUsize,
    /// Write each seed's history to DIR/seed-<seed>.jsonl.
    #[arg(long, value_name = "DIR")]
    history_dir: Option<PathBuf>,
    /// Append each seed's line to this JSON-lines file, and skip the
    /// seeds it already holds for the same options (resume an
    /// interrupted swarm by running the same command again).
    #[arg(long, value_name = "FILE")]
    results: Option<PathBuf>,
}

fn parse_seeds(s: &str) -> Result<RangeInclusive<u64>, String> {
    let bad = || format!("{s:?} is not a seed range like 1..200");
    let (a, b) = s.split_once("..").ok_or_else(bad)?;
    let a: u64 = a.parse().map_err(|_| bad())?;
    let b: u64 = b.trim_start_matches('=').parse().map_err(|_| bad())?;
    if a > b {
        return Err(format!("{s:?} is empty: {a} is after {b}"));
    }
    Ok(a..=b)
}

/// Reads a results file; a missing file is an empty one. A last line cut
/// short (the swarm was killed while writing it) is dropped.
///
/// # Errors
/// [`CliError::Io`] when it cannot be read, [`CliError::Results`] for a
/// line (other than a cut-short last one) that is not a results line.
pub(super) fn read_results(path: &Path) -> Result<Vec<Recorded>, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CliError::io(path)(e)),
    };
    let complete = if text.ends_with('\n') {
        text.as_str()
    } else {
        text.rfind('\n').map_or("", |i| &text[..=i])
    };
    complete
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| CliError::Results {
                path: path.to_owned(),
                line: i + 1,
                detail: e.to_string(),
            })
        })
        .collect()
}

/// The results file opened for appending, with a cut-short last line
/// removed first so the next line starts on a line of its own.
fn open_results(path: &Path) -> Result<std::fs::File, CliError> {
    if let Ok(text) = std::fs::read(path)
        && !text.is_empty()
        && !text.ends_with(b"\n")
    {
        let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        std::fs::write(path, &text[..keep]).map_err(CliError::io(path))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(CliError::io(path))
}

/// One finished seed: its line and whether it broke a property.
type Done = Result<(String, bool), CliError>;

/// Runs the swarm; the exit code.
pub(super) fn swarm(a: &SwarmArgs) -> Result<i32, CliError> {
    let key = a.options.key();
    let mut failed: BTreeSet<u64> = BTreeSet::new();
    let mut done: BTreeSet<u64> = BTreeSet::new();
    if let Some(path) = &a.results {
        for (i, r) in read_results(path)?.into_iter().enumerate() {
            if !r.matches(&key) {
                return Err(CliError::Results {
                    path: path.clone(),
                    line: i + 1,
                    detail: format!(
                        "seed {} was run with other options ({:?}); use another results file for {key:?}",
                        r.seed,
                        r.options()
                            .map(|o| o.to_args().join(" "))
                            .unwrap_or_default()
                    ),
                });
            }
            if a.seeds.contains(&r.seed) {
                done.insert(r.seed);
                if !r.violations.is_empty() {
                    failed.insert(r.seed);
                }
            }
        }
        if !done.is_empty() {
            eprintln!(
                "resuming: {} of the seeds are already in {}",
                done.len(),
                path.display()
            );
        }
    }
    if let Some(dir) = &a.history_dir {
        std::fs::create_dir_all(dir).map_err(CliError::io(dir))?;
    }
    let mut results = a.results.as_deref().map(open_results).transpose()?;
    let todo: Vec<u64> = a.seeds.clone().filter(|s| !done.contains(s)).collect();
    let history = |seed: u64| {
        a.history_dir
            .as_ref()
            .map(|d| d.join(format!("seed-{seed}.jsonl")))
    };
    let mut emit = |seed: u64, finished: Done| -> Result<(), CliError> {
        let (line, broke) = finished?;
        println!("{line}");
        if let (Some(f), Some(path)) = (results.as_mut(), &a.results) {
            writeln!(f, "{line}")
                .and_then(|()| f.flush())
                .map_err(CliError::io(path))?;
        }
        if broke {
            failed.insert(seed);
            report_failure(&a.options, seed);
        }
        Ok(())
    };
    if a.jobs.get() == 1 {
        for &seed in &todo {
            let finished = run_one(&a.options, seed, history(seed).as_deref(), None, None)
                .map(|(summary, line)| (line, !summary.violations.is_empty()));
            emit(seed, finished)?;
        }
    } else {
        let (tx, rx) = mpsc::channel();
        let queue = Arc::new(Mutex::new(todo.clone().into_iter()));
        let exe = std::env::current_exe().map_err(CliError::io(Path::new("distlock-sim")))?;
        let workers: Vec<_> = (0..a.jobs.get().min(todo.len()))
            .map(|_| {
                let (tx, queue, exe) = (tx.clone(), queue.clone(), exe.clone());
                let args = a.options.to_args();
                let dir = a.history_dir.clone();
                std::thread::spawn(move || {
                    loop {
                        let next = queue.lock().map(|mut q| q.next()).unwrap_or(None);
                        let Some(seed) = next else { break };
                        let hist = dir.as_ref().map(|d| d.join(format!("seed-{seed}.jsonl")));
                        if tx.send((seed, worker(&exe, seed, &args, hist))).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        // Lines come back in any order; they go out in seed order.
        let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
        let mut next = todo.iter().copied().peekable();
        for (seed, finished) in rx {
            pending.insert(seed, finished);
            while let Some(finished) = next.peek().and_then(|s| pending.remove(s)) {
                let seed = next.next().unwrap_or(seed);
                emit(seed, finished)?;
            }
        }
        for w in workers {
            let _ = w.join();
        }
    }
    Ok(if failed.is_empty() {
        EXIT_OK
    } else {
        if !done.is_empty() {
            for &seed in failed.intersection(&done) {
                report_failure(&a.options, seed);
            }
        }
        EXIT_VIOLATION
    })
}

/// Runs `seed` in a process of its own (`distlock-sim run`) and returns
/// its line.
fn worker(exe: &Path, seed: u64, args: &[String], history: Option<PathBuf>) -> Done {
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("run")
        .arg("--seed")
        .arg(seed.to_string())
        .args(args);
    if let Some(h) = &history {
        cmd.arg("--history").arg(h);
    }
    // The worker's stderr holds only the replay command of a failing
    // seed, which the swarm prints itself, in seed order.
    let out = cmd.output().map_err(|e| CliError::Worker {
        seed,
        detail: e.to_string(),
    })?;
    let code = out.status.code();
    if !matches!(code, Some(EXIT_OK | EXIT_VIOLATION)) {
        return Err(CliError::Worker {
            seed,
            detail: format!(
                "exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    let line = out
        .stdout
        .lines()
        .next()
        .and_then(Result::ok)
        .ok_or_else(|| CliError::Worker {
            seed,
            detail: "printed no line".to_owned(),
        })?;
    Ok((line, code == Some(EXIT_VIOLATION)))
}
