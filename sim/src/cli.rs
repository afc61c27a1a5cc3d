//! The `distlock-sim` command line (wrapped by `./scripts/sim`):
//! `run` one seed, `swarm` over a range (in parallel processes, resumable),
//! `replay` a seed recorded in a results file, `explain` the scenarios and
//! fault classes. The older spelling without a subcommand
//! (`--seed N`, `--seeds A..B`) still works: it means `run` or `swarm`.

mod config;
mod explain;
mod swarm;

pub use config::{ConfigKey, Recorded, SeedOptions, parse_duration, result_line};

use crate::run::{Summary, run_seed_catching};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

/// Exit code: every seed kept every property.
pub const EXIT_OK: i32 = 0;
/// Exit code: a seed broke a property.
pub const EXIT_VIOLATION: i32 = 1;
/// Exit code: the command line or a file it names cannot be used.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: `replay` ran the seed and got another trace hash than the
/// results file recorded (the run is not deterministic).
pub const EXIT_DIVERGED: i32 = 3;

/// Deterministic simulation of distlock: the real server runtime and
/// client library under madsim, faults drawn from a seed, checkers over
/// the recorded history. Every seed prints one JSON line; the exit code is
/// 0 when every property held, 1 when a seed broke one (stderr then prints
/// the command that replays it), 2 on a usage error.
#[derive(Debug, Parser)]
#[command(name = "distlock-sim", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Run(RunArgs),
    Swarm(swarm::SwarmArgs),
    Replay(ReplayArgs),
    Explain(explain::ExplainArgs),
}

/// Runs one seed and prints its JSON line.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The seed: faults, workload, scheduling and clocks all follow from it.
    #[arg(long)]
    seed: u64,
    #[command(flatten)]
    options: SeedOptions,
    /// Also write the seed's history (JSON lines, see sim/README.md).
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    /// Also write a self-contained HTML timeline of the seed (roles,
    /// faults, grants, leases, violations) to look at in a browser.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
    /// Also write the operations on the exclusive locks as a Jepsen
    /// history (EDN, one map a line; docs/SIMULATION.md §8).
    #[arg(long, value_name = "FILE.edn")]
    export_edn: Option<PathBuf>,
}

/// Runs a seed of a results file again (with the options recorded on its
/// line) and checks it gives the recorded trace hash: exit 0 when it does
/// and the seed kept every property, 1 when it reproduces a violation, 3
/// when the hash differs.
#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// The seed to replay.
    #[arg(long)]
    seed: u64,
    /// The JSON-lines results file a `swarm --results` wrote.
    #[arg(long, value_name = "FILE")]
    results: PathBuf,
    /// Also write the seed's history (JSON lines).
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    /// Also write the seed's HTML timeline.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
}

/// A command line that cannot be carried out.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A results file holds something else than results lines.
    #[error("{path} line {line}: {detail}")]
    Results {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        detail: String,
    },
    /// A worker process of a parallel swarm failed.
    #[error("seed {seed}: the worker process failed: {detail}")]
    Worker {
        /// Its seed.
        seed: u64,
        /// How.
        detail: String,
    },
}

impl CliError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Turns the older spelling (`--seed N ...`, `--seeds A..B ...`) into
/// `run`/`swarm`; anything else is left to clap.
fn with_subcommand(args: &[String]) -> Vec<String> {
    let legacy = args
        .first()
        .is_some_and(|a| a.starts_with("--") && !matches!(a.as_str(), "--help" | "--version"));
    let mut out = Vec::with_capacity(args.len() + 2);
    out.push("distlock-sim".to_owned());
    if legacy {
        let sweep = args.iter().any(|a| a == "--seeds");
        out.push(if sweep { "swarm" } else { "run" }.to_owned());
    }
    out.extend(args.iter().cloned());
    out
}

/// Runs the command line; the process exit code.
#[must_use]
pub fn main(args: &[String]) -> i32 {
    let cli = match Cli::try_parse_from(with_subcommand(args)) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are errors to clap but not to the user.
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        }
    };
    let result = match cli.command {
        Command::Run(a) => run(&a),
        Command::Swarm(a) => swarm::swarm(&a),
        Command::Replay(a) => replay(&a),
        Command::Explain(a) => Ok(explain::explain(&a)),
    };
    result.unwrap_or_else(|e| {
        eprintln!("distlock-sim: {e}");
        EXIT_USAGE
    })
}

/// Runs `seed` in this process, writes its history when asked, prints its
/// line, and on a violation the command that replays it.
fn run_one(
    options: &SeedOptions,
    seed: u64,
    history: Option<&Path>,
    report: Option<&Path>,
    edn: Option<&Path>,
) -> Result<(Summary, String), CliError> {
    let cfg = options.config(seed);
    let keep = history.is_some() || report.is_some() || edn.is_some();
    let summary = run_seed_catching(&cfg, keep);
    if let (Some(path), Some(h)) = (history, &summary.history) {
        std::fs::write(path, h).map_err(CliError::io(path))?;
    }
    let line = result_line(options, &summary);
    if let Some(path) = report {
        let header = crate::report::Header {
            title: format!("distlock-sim seed {seed}: {}", options.to_args().join(" ")),
            summary: line.clone(),
            violations: summary.violations.clone(),
        };
        let html = crate::report::render(&header, summary.history.as_deref().unwrap_or(""));
        std::fs::write(path, html).map_err(CliError::io(path))?;
    }
    if let Some(path) = edn {
        let ops = crate::export::jepsen_edn(summary.history.as_deref().unwrap_or(""));
        std::fs::write(path, ops).map_err(CliError::io(path))?;
    }
    Ok((summary, line))
}

/// Prints the replay command of a seed that broke a property.
fn report_failure(options: &SeedOptions, seed: u64) {
    eprintln!(
        "seed {seed} violated a property; replay: {}",
        options.replay_command(seed)
    );
}

fn run(a: &RunArgs) -> Result<i32, CliError> {
    let (summary, line) = run_one(
        &a.options,
        a.seed,
        a.history.as_deref(),
        a.report.as_deref(),
        a.export_edn.as_deref(),
    )?;
    println!("{line}");
    if summary.violations.is_empty() {
        Ok(EXIT_OK)
    } else {
        report_failure(&a.options, a.seed);
        Ok(EXIT_VIOLATION)
    }
}

fn replay(a: &ReplayArgs) -> Result<i32, CliError> {
    let recorded = swarm::read_results(&a.results)?;
    let Some(line) = recorded.iter().rev().find(|r| r.seed == a.seed) else {
        return Err(CliError::Results {
            path: a.results.clone(),
            line: recorded.len(),
            detail: format!("no line for seed {}", a.seed),
        });
    };
    let options = line.options().map_err(|detail| CliError::Results {
        path: a.results.clone(),
        line: 0,
        detail,
    })?;
    let (summary, out) = run_one(
        &options,
        a.seed,
        a.history.as_deref(),
        a.report.as_deref(),
        None,
    )?;
    println!("{out}");
    if !line.trace_hash.is_empty() && summary.trace_hash != line.trace_hash {
        eprintln!(
            "seed {} replayed with trace hash {} but {} recorded {}",
            a.seed,
            summary.trace_hash,
            a.results.display(),
            line.trace_hash
        );
        return Ok(EXIT_DIVERGED);
    }
    if summary.violations.is_empty() {
        Ok(EXIT_OK)
    } else {
        report_failure(&options, a.seed);
        Ok(EXIT_VIOLATION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn the_older_spelling_means_run_or_swarm() {
        assert_eq!(
            with_subcommand(&args("--seed 4 --nodes 5")),
            args("distlock-sim run --seed 4 --nodes 5")
        );
        assert_eq!(
            with_subcommand(&args("--duration 60s --seeds 1..3")),
            args("distlock-sim swarm --duration 60s --seeds 1..3")
        );
        assert_eq!(
            with_subcommand(&args("--help")),
            args("distlock-sim --help")
        );
        assert_eq!(
            with_subcommand(&args("swarm --seeds 1..3")),
            args("distlock-sim swarm --seeds 1..3")
        );
    }

    #[test]
    fn every_subcommand_parses_and_bad_input_is_refused() {
        for ok in [
            "distlock-sim run --seed 1",
            "distlock-sim swarm --seeds 1..9 --jobs 2 --history-dir h --results r.jsonl",
            "distlock-sim replay --seed 3 --results r.jsonl",
            "distlock-sim explain S14",
            "distlock-sim explain",
        ] {
            assert!(Cli::try_parse_from(args(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "distlock-sim run",
            "distlock-sim run --seed 1 --nodes 4",
            "distlock-sim run --seed 1 --faults fire",
            "distlock-sim run --seed 1 --scenario S99",
            "distlock-sim swarm --seeds 9..1",
            "distlock-sim swarm --seeds 1..3 --jobs 0",
            "distlock-sim swarm --seeds 1..3 --history h.jsonl",
        ] {
            assert!(Cli::try_parse_from(args(bad)).is_err(), "{bad}");
        }
    }
}
