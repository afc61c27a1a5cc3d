//! What a seed runs with, as the command line spells it: the options every
//! subcommand shares ([`SeedOptions`]), their resolution into a
//! [`SimConfig`], their canonical spelling back into arguments (for the
//! worker processes of a parallel swarm and for the replay command a
//! failing seed prints), and the JSON line a seed's result is written as.

use crate::faults::FaultSet;
use crate::run::{SimConfig, Summary, duration_name as duration_arg};
use crate::scenario_file::ScenarioFile;
use crate::scenarios::{self, Scenario};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The options that decide what a seed runs (shared by `run`, `swarm`).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SeedOptions {
    /// Servers in the cluster: 3 or 5.
    #[arg(long, default_value_t = 3, value_parser = parse_nodes)]
    pub nodes: u64,
    /// Length of the safety phase in true time (`600s`, `2m`, `1500ms`);
    /// default 600s, or the scenario's own.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Fault classes: `all`, `none`, or a comma list (see `explain`);
    /// default all, or the scenario's own.
    #[arg(long, value_parser = parse_faults)]
    pub faults: Option<FaultSet>,
    /// Client nodes doing lock work; default 5, or the scenario's own.
    #[arg(long)]
    pub clients: Option<usize>,
    /// A named scenario (S1..S20, see `explain`): its fault classes,
    /// scripted steps and knobs; --duration/--faults/--clients override.
    #[arg(long, value_parser = parse_scenario, conflicts_with = "scenario_file")]
    pub scenario: Option<&'static Scenario>,
    /// A scenario file (TOML, see sim/scenarios/ and sim/README.md);
    /// --duration/--faults/--clients override it too.
    #[arg(long, value_name = "FILE.toml", value_parser = parse_scenario_file)]
    pub scenario_file: Option<ScenarioArg>,
}

/// A `--scenario-file` as given and as loaded.
#[derive(Clone, Debug)]
pub struct ScenarioArg {
    /// The path as typed.
    pub path: String,
    /// Its contents.
    pub file: Arc<ScenarioFile>,
}

fn parse_scenario_file(s: &str) -> Result<ScenarioArg, String> {
    let file = ScenarioFile::load(Path::new(s)).map_err(|e| e.to_string())?;
    Ok(ScenarioArg {
        path: s.to_owned(),
        file: Arc::new(file),
    })
}

fn parse_nodes(s: &str) -> Result<u64, String> {
    match s {
        "3" => Ok(3),
        "5" => Ok(5),
        _ => Err(format!("{s:?} is not 3 or 5")),
    }
}

/// Reads `600s`, `600`, `2m` or `1500ms`.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration like 600s, 2m or 1500ms");
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.parse().map(Duration::from_millis).map_err(|_| bad());
    }
    if let Some(m) = s.strip_suffix('m') {
        return m
            .parse::<u64>()
            .ok()
            .and_then(|m| m.checked_mul(60))
            .map(Duration::from_secs)
            .ok_or_else(bad);
    }
    s.strip_suffix('s')
        .unwrap_or(s)
        .parse()
        .map(Duration::from_secs)
        .map_err(|_| bad())
}

fn parse_faults(s: &str) -> Result<FaultSet, String> {
    FaultSet::parse(s).map_err(|e| e.to_string())
}

fn parse_scenario(s: &str) -> Result<&'static Scenario, String> {
    scenarios::by_id(s).ok_or_else(|| {
        let ids: Vec<&str> = scenarios::ALL.iter().map(|s| s.id).collect();
        format!("unknown scenario {s:?}; known: {}", ids.join(", "))
    })
}

impl SeedOptions {
    /// The configuration of `seed`.
    #[must_use]
    pub fn config(&self, seed: u64) -> SimConfig {
        let mut cfg = match (self.scenario, &self.scenario_file) {
            (Some(s), _) => s.config(seed, self.nodes),
            (None, Some(f)) => f.file.config(seed, self.nodes),
            (None, None) => {
                let mut cfg = SimConfig::new(seed);
                cfg.nodes = self.nodes;
                cfg.duration = Duration::from_secs(600);
                cfg
            }
        };
        if let Some(d) = self.duration {
            cfg.duration = d;
        }
        if let Some(f) = &self.faults {
            cfg.faults = f.clone();
        }
        if let Some(c) = self.clients {
            cfg.clients = c;
        }
        cfg
    }

    /// Every option spelled out with the value it resolves to, so the
    /// arguments mean the same run whatever the defaults.
    #[must_use]
    pub fn to_args(&self) -> Vec<String> {
        let cfg = self.config(0);
        let mut args = Vec::new();
        if let Some(s) = self.scenario {
            args.extend(["--scenario".to_owned(), s.id.to_owned()]);
        }
        if let Some(f) = &self.scenario_file {
            args.extend(["--scenario-file".to_owned(), f.path.clone()]);
        }
        args.extend([
            "--nodes".to_owned(),
            cfg.nodes.to_string(),
            "--duration".to_owned(),
            duration_arg(cfg.duration),
            "--faults".to_owned(),
            cfg.faults.name(),
            "--clients".to_owned(),
            cfg.clients.to_string(),
        ]);
        args
    }

    /// The command that replays `seed` alone, writing its history and its
    /// HTML timeline next to where it is typed.
    #[must_use]
    pub fn replay_command(&self, seed: u64) -> String {
        format!(
            "./scripts/sim run --seed {seed} {} --history seed-{seed}.jsonl --report seed-{seed}.html",
            self.to_args().join(" ")
        )
    }

    /// The scenario as a results line records it: `S14`, or
    /// `file:PATH` for a scenario file.
    fn scenario_name(&self) -> Option<String> {
        self.scenario.map(|s| s.id.to_owned()).or_else(|| {
            self.scenario_file
                .as_ref()
                .map(|f| format!("file:{}", f.path))
        })
    }

    /// What a results line records of the options, to tell whether a line
    /// belongs to this configuration.
    #[must_use]
    pub fn key(&self) -> ConfigKey {
        let cfg = self.config(0);
        ConfigKey {
            nodes: cfg.nodes,
            duration: duration_arg(cfg.duration),
            faults: cfg.faults.name(),
            clients: cfg.clients,
            scenario: self.scenario_name(),
        }
    }
}

/// The options a results line was run with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigKey {
    /// Servers.
    pub nodes: u64,
    /// Safety phase, as `--duration` takes it.
    pub duration: String,
    /// Fault classes, canonical.
    pub faults: String,
    /// Client nodes.
    pub clients: usize,
    /// The scenario, if any.
    pub scenario: Option<String>,
}

/// One seed's line: the summary, plus the scenario and client count so a
/// line alone says how to run the seed again.
#[derive(Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    summary: &'a Summary,
    scenario: Option<String>,
    clients: usize,
}

/// The JSON line printed (and appended to a results file) for a seed.
#[must_use]
pub fn result_line(opts: &SeedOptions, summary: &Summary) -> String {
    let cfg = opts.config(summary.seed);
    let line = Line {
        summary,
        scenario: opts.scenario_name(),
        clients: cfg.clients,
    };
    serde_json::to_string(&line).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// A results line read back: enough to skip, judge and replay the seed.
#[derive(Clone, Debug, Deserialize)]
pub struct Recorded {
    /// The seed.
    pub seed: u64,
    /// Servers.
    pub nodes: u64,
    /// Safety phase as the summary spells it.
    pub duration: String,
    /// Fault classes.
    pub faults: String,
    /// Client nodes.
    pub clients: usize,
    /// The scenario, if any.
    #[serde(default)]
    pub scenario: Option<String>,
    /// The run's hash ("" when the run panicked).
    pub trace_hash: String,
    /// Broken properties.
    pub violations: Vec<serde_json::Value>,
}

impl Recorded {
    /// Whether this line was run with `key`'s options.
    #[must_use]
    pub fn matches(&self, key: &ConfigKey) -> bool {
        self.nodes == key.nodes
            && self.duration == key.duration
            && self.faults == key.faults
            && self.clients == key.clients
            && self.scenario == key.scenario
    }

    /// The options that run this line's seed again.
    ///
    /// # Errors
    /// A message when the line names an unknown scenario, fault class or
    /// an unreadable duration.
    pub fn options(&self) -> Result<SeedOptions, String> {
        Ok(SeedOptions {
            nodes: parse_nodes(&self.nodes.to_string())?,
            duration: Some(parse_duration(&self.duration)?),
            faults: Some(parse_faults(&self.faults)?),
            clients: Some(self.clients),
            scenario: match self.scenario.as_deref() {
                Some(s) if s.starts_with("file:") => None,
                other => other.map(parse_scenario).transpose()?,
            },
            scenario_file: self
                .scenario
                .as_deref()
                .and_then(|s| s.strip_prefix("file:"))
                .map(parse_scenario_file)
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_read_back_to_the_same_configuration() {
        let opts = SeedOptions {
            nodes: 5,
            duration: Some(Duration::from_millis(1500)),
            faults: Some(FaultSet::parse("kill,disk").unwrap_or_default()),
            clients: None,
            scenario: scenarios::by_id("S14"),
            scenario_file: None,
        };
        let args = opts.to_args();
        assert_eq!(
            args.join(" "),
            "--scenario S14 --nodes 5 --duration 1500ms --faults kill,disk --clients 8"
        );
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            o: SeedOptions,
        }
        let back = <P as clap::Parser>::try_parse_from(
            std::iter::once("p".to_owned()).chain(args.iter().cloned()),
        )
        .map(|p| p.o);
        let back = back.unwrap_or_default();
        assert_eq!(back.key(), opts.key());
        assert_eq!(back.to_args(), args);
    }

    #[test]
    fn durations_in_every_spelling() {
        assert_eq!(parse_duration("600s"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("600"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(duration_arg(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration_arg(Duration::from_secs(60)), "60s");
    }
}
