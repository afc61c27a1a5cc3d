//! The `distlock-sim` command line (wrapped by `./scripts/sim`): runs one
//! seed or a range, prints one JSON summary line per seed, writes the
//! history as JSON lines on request, and prints the exact command that
//! replays a failing seed.

use crate::faults::FaultSet;
use crate::run::{SimConfig, run_seed_catching};
use std::time::Duration;

/// A command line that cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// An option is unknown or lacks its value.
    #[error(
        "{0}\nusage: sim --seed N | --seeds A..B [--nodes 3|5] [--duration 600s] [--faults all|none|LIST] [--clients N] [--scenario S1..S20] [--history FILE.jsonl]"
    )]
    Usage(String),
    /// The fault list names an unknown class.
    #[error(transparent)]
    Faults(#[from] crate::faults::UnknownFault),
    /// The history file cannot be written.
    #[error("cannot write the history to {path}: {source}")]
    History {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Parsed options.
#[derive(Debug)]
struct Options {
    seeds: std::ops::RangeInclusive<u64>,
    nodes: u64,
    duration: Duration,
    faults: FaultSet,
    clients: usize,
    history: Option<String>,
    scenario: Option<&'static crate::scenarios::Scenario>,
    /// Whether `--duration`/`--faults`/`--clients` were given (they
    /// override a scenario's own).
    duration_set: bool,
    faults_set: bool,
    clients_set: bool,
}

fn parse_duration(s: &str) -> Option<Duration> {
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    if let Some(m) = s.strip_suffix('m') {
        return m.parse::<u64>().ok().map(|m| Duration::from_secs(m * 60));
    }
    s.strip_suffix('s')
        .unwrap_or(s)
        .parse()
        .ok()
        .map(Duration::from_secs)
}

fn parse(args: &[String]) -> Result<Options, UsageError> {
    let mut o = Options {
        seeds: 0..=0,
        nodes: 3,
        duration: Duration::from_secs(600),
        faults: FaultSet::all(),
        clients: 5,
        history: None,
        scenario: None,
        duration_set: false,
        faults_set: false,
        clients_set: false,
    };
    let mut seeded = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| UsageError::Usage(format!("{flag} needs a value")))
        };
        let bad = |what: &str| UsageError::Usage(format!("cannot read {flag} {what}"));
        match flag.as_str() {
            "--seed" => {
                let v = value()?;
                let n = v.parse().map_err(|_| bad(&v))?;
                o.seeds = n..=n;
                seeded = true;
            }
            "--seeds" => {
                let v = value()?;
                let (a, b) = v.split_once("..").ok_or_else(|| bad(&v))?;
                let a: u64 = a.parse().map_err(|_| bad(&v))?;
                let b: u64 = b.trim_start_matches('=').parse().map_err(|_| bad(&v))?;
                o.seeds = a..=b;
                seeded = true;
            }
            "--nodes" => {
                let v = value()?;
                o.nodes = match v.as_str() {
                    "3" => 3,
                    "5" => 5,
                    _ => return Err(bad(&v)),
                };
            }
            "--duration" => {
                let v = value()?;
                o.duration = parse_duration(&v).ok_or_else(|| bad(&v))?;
                o.duration_set = true;
            }
            "--faults" => {
                o.faults = FaultSet::parse(&value()?)?;
                o.faults_set = true;
            }
            "--clients" => {
                let v = value()?;
                o.clients = v.parse().map_err(|_| bad(&v))?;
                o.clients_set = true;
            }
            "--scenario" => {
                let v = value()?;
                o.scenario = Some(crate::scenarios::by_id(&v).ok_or_else(|| bad(&v))?);
            }
            "--history" => o.history = Some(value()?),
            other => return Err(UsageError::Usage(format!("unknown option {other}"))),
        }
    }
    if !seeded {
        return Err(UsageError::Usage(
            "--seed or --seeds is required".to_owned(),
        ));
    }
    Ok(o)
}

/// Runs the command line; the process exit code (0 good, 1 a violation,
/// 2 a usage error).
#[must_use]
pub fn main(args: &[String]) -> i32 {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let mut failed = false;
    for seed in o.seeds.clone() {
        let mut cfg = match o.scenario {
            Some(s) => s.config(seed, o.nodes),
            None => {
                let mut cfg = SimConfig::new(seed);
                cfg.nodes = o.nodes;
                cfg
            }
        };
        if o.scenario.is_none() || o.duration_set {
            cfg.duration = o.duration;
        }
        if o.scenario.is_none() || o.faults_set {
            cfg.faults = o.faults.clone();
        }
        if o.scenario.is_none() || o.clients_set {
            cfg.clients = o.clients;
        }
        let summary = run_seed_catching(&cfg, o.history.is_some());
        if let (Some(path), Some(h)) = (&o.history, &summary.history) {
            if let Err(source) = std::fs::write(path, h) {
                eprintln!(
                    "{}",
                    UsageError::History {
                        path: path.clone(),
                        source
                    }
                );
                return 2;
            }
        }
        println!(
            "{}",
            serde_json::to_string(&summary).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
        if !summary.violations.is_empty() {
            failed = true;
            let scenario = o
                .scenario
                .map(|s| format!(" --scenario {}", s.id))
                .unwrap_or_default();
            eprintln!(
                "seed {seed} violated a property; replay: ./scripts/sim --seed {seed}{scenario} --nodes {} --duration {}s --faults {} --clients {} --history seed-{seed}.jsonl",
                cfg.nodes,
                cfg.duration.as_secs(),
                cfg.faults.name(),
                cfg.clients
            );
        }
    }
    i32::from(failed)
}
