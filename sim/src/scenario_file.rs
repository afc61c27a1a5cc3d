//! Scenario files (`--scenario-file F.toml`): a scenario written in TOML
//! instead of Rust — the knobs of a [`SimConfig`] (servers, duration,
//! fault classes and their pace, clients, session TTLs, clock drift,
//! careless writes, fsync latency, lock-delay, snapshot tuning, entries
//! and bytes per append, appends in flight) and a
//! timeline of scripted faults whose times may be ranges drawn from the
//! seed. `sim/scenarios/` holds the named scenarios S1–S21 as files;
//! `tests/scenario_files.rs` checks each gives the built-in's config.
//! sim/README.md walks through one.

mod timeline_step;

use crate::cli::parse_duration;
use crate::faults::{Action, FaultSet};
use crate::run::{DriftPin, SimConfig};
use distlock_server::config::RaftTuning;
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;
use timeline_step::ms;

/// A scenario file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioFileError {
    /// It cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// It is not TOML of the expected shape (an unknown key, say).
    #[error("{path}: {source}")]
    Toml {
        /// The file.
        path: String,
        /// The parser's message, with the line.
        source: toml::de::Error,
    },
    /// A value is out of range or unreadable.
    #[error("{path}: {detail}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    id: Option<String>,
    title: Option<String>,
    nodes: Option<u64>,
    duration: Option<String>,
    faults: Option<String>,
    fault_gap: Option<String>,
    clients: Option<usize>,
    ttl_ms: Option<(u64, u64)>,
    fsync_us: Option<(u64, u64)>,
    max_drift_ppm: Option<i64>,
    server_drift: Option<String>,
    careless_per_mille: Option<u64>,
    kill_when_dirty: Option<bool>,
    lock_delay: Option<String>,
    tls: Option<bool>,
    #[serde(default)]
    coverage: Vec<String>,
    raft: Option<RawRaft>,
    #[serde(default)]
    timeline: Vec<timeline_step::RawStep>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRaft {
    snapshot_threshold: Option<u64>,
    compaction_margin: Option<u64>,
    max_append_entries: Option<usize>,
    max_append_bytes: Option<usize>,
    max_inflight: Option<usize>,
}

/// A loaded, checked scenario file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioFile {
    /// Its name (`id`), or the file's stem.
    pub id: String,
    /// What it is about.
    pub title: String,
    /// Coverage counters a batch of its seeds should make positive.
    pub coverage: Vec<String>,
    nodes: Option<u64>,
    base: Knobs,
    /// (earliest ms, latest ms, action), in file order.
    timeline: Vec<(u64, u64, Action)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct Knobs {
    duration: Option<Duration>,
    faults: Option<FaultSet>,
    fault_gap_ms: Option<u64>,
    clients: Option<usize>,
    ttl_ms: Option<(u64, u64)>,
    fsync_us: Option<(u64, u64)>,
    max_drift_ppm: Option<i64>,
    server_drift: Option<DriftPin>,
    careless_per_mille: Option<u64>,
    kill_when_dirty: Option<bool>,
    lock_delay_ms: Option<u64>,
    raft: Option<RaftTuning>,
    tls: Option<bool>,
}

fn drift_pin(name: &str) -> Result<DriftPin, String> {
    match name {
        "drawn" => Ok(DriftPin::Drawn),
        "fast" => Ok(DriftPin::Fast),
        "slow" => Ok(DriftPin::Slow),
        _ => Err(format!(
            "server_drift = {name:?}: \"drawn\", \"fast\" or \"slow\""
        )),
    }
}

fn check(raw: Raw, stem: &str) -> Result<ScenarioFile, String> {
    if let Some(n) = raw.nodes
        && n != 3
        && n != 5
    {
        return Err(format!("nodes = {n}: 3 or 5"));
    }
    let duration = raw.duration.as_deref().map(parse_duration).transpose()?;
    let faults = raw
        .faults
        .as_deref()
        .map(FaultSet::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    let pair = |name: &str, p: Option<(u64, u64)>| match p {
        Some((a, b)) if a > b => Err(format!("{name} = [{a}, {b}] is empty")),
        _ => Ok(p),
    };
    let base = Knobs {
        duration,
        faults,
        fault_gap_ms: raw
            .fault_gap
            .as_deref()
            .map(parse_duration)
            .transpose()?
            .map(ms),
        clients: raw.clients,
        ttl_ms: pair("ttl_ms", raw.ttl_ms)?,
        fsync_us: pair("fsync_us", raw.fsync_us)?,
        max_drift_ppm: raw.max_drift_ppm,
        server_drift: raw.server_drift.as_deref().map(drift_pin).transpose()?,
        careless_per_mille: raw.careless_per_mille,
        kill_when_dirty: raw.kill_when_dirty,
        lock_delay_ms: raw
            .lock_delay
            .as_deref()
            .map(parse_duration)
            .transpose()?
            .map(ms),
        raft: raw.raft.map(|r| RaftTuning {
            snapshot_threshold: r.snapshot_threshold,
            compaction_margin: r.compaction_margin,
            max_append_entries: r.max_append_entries,
            max_append_bytes: r.max_append_bytes,
            max_inflight: r.max_inflight,
        }),
        tls: raw.tls,
    };
    if let Some(r) = &base.raft
        && [r.max_append_entries, r.max_append_bytes, r.max_inflight].contains(&Some(0))
    {
        return Err(
            "max_append_entries, max_append_bytes and max_inflight are at least 1".to_owned(),
        );
    }
    if base.careless_per_mille.is_some_and(|c| c > 1000) {
        return Err("careless_per_mille is at most 1000".to_owned());
    }
    // A label may be named by any step of the file, before or after the
    // one that binds it in the file's order: steps' times may be drawn.
    let labels: Vec<String> = raw
        .timeline
        .iter()
        .filter_map(|s| s.binds().map(str::to_owned))
        .collect();
    let timeline = raw
        .timeline
        .into_iter()
        .map(|s| timeline_step::step(s, &labels))
        .collect::<Result<_, _>>()?;
    Ok(ScenarioFile {
        id: raw.id.unwrap_or_else(|| stem.to_owned()),
        title: raw.title.unwrap_or_default(),
        coverage: raw.coverage,
        nodes: raw.nodes,
        base,
        timeline,
    })
}

impl ScenarioFile {
    /// Reads and checks `path`.
    ///
    /// # Errors
    /// [`ScenarioFileError`] when it cannot be read, is not the expected
    /// TOML, or holds a value out of range.
    pub fn load(path: &Path) -> Result<Self, ScenarioFileError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioFileError::Io {
            path: name.clone(),
            source,
        })?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        Self::parse(&text, stem.as_deref().unwrap_or("scenario")).map_err(|e| match e {
            ScenarioFileError::Toml { source, .. } => {
                ScenarioFileError::Toml { path: name, source }
            }
            ScenarioFileError::Invalid { detail, .. } => {
                ScenarioFileError::Invalid { path: name, detail }
            }
            io @ ScenarioFileError::Io { .. } => io,
        })
    }

    /// Checks the text of a file named `stem`.
    ///
    /// # Errors
    /// As [`ScenarioFile::load`].
    pub fn parse(text: &str, stem: &str) -> Result<Self, ScenarioFileError> {
        let raw: Raw = toml::from_str(text).map_err(|source| ScenarioFileError::Toml {
            path: stem.to_owned(),
            source,
        })?;
        check(raw, stem).map_err(|detail| ScenarioFileError::Invalid {
            path: stem.to_owned(),
            detail,
        })
    }

    /// The number of servers, when the file fixes it.
    #[must_use]
    pub fn fixed_nodes(&self) -> Option<u64> {
        self.nodes
    }

    /// The configuration of `seed` on `nodes` servers (unless the file
    /// fixes the count); ranges in the timeline are drawn from the seed,
    /// from a stream of their own (the run's other draws stay as they
    /// were).
    #[must_use]
    pub fn config(&self, seed: u64, nodes: u64) -> SimConfig {
        let mut c = SimConfig::new(seed);
        c.nodes = self.nodes.unwrap_or(nodes);
        let k = &self.base;
        // Each knob the file sets replaces the default.
        macro_rules! set {
            ($($knob:ident),*) => {$(
                if let Some(v) = k.$knob.clone() {
                    c.$knob = v;
                }
            )*};
        }
        set!(
            duration,
            faults,
            fault_gap_ms,
            clients,
            ttl_ms,
            fsync_us,
            max_drift_ppm,
            server_drift,
            careless_per_mille,
            kill_when_dirty,
            lock_delay_ms,
            raft,
            tls
        );
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5ce4_a410_f11e);
        c.script = self
            .timeline
            .iter()
            .map(|(lo, hi, a)| {
                let t = if lo == hi {
                    *lo
                } else {
                    lo + rng.next_u64() % (hi - lo + 1)
                };
                (t, a.clone())
            })
            .collect();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{AskedChange, Target};

    const FILE: &str = r#"
title = "a ring, drawn"
duration = "40s"
faults = "kill"
[[timeline]]
at = ["2s", "4s"]
cut = [[1, 2]]
[[timeline]]
at = "10s"
heal = "network"
"#;

    #[test]
    fn ranges_are_drawn_from_the_seed() {
        let f = ScenarioFile::parse(FILE, "ring").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.id, "ring");
        let times: Vec<u64> = (1..=20).map(|s| f.config(s, 3).script[0].0).collect();
        assert!(
            times.iter().all(|t| (2_000..=4_000).contains(t)),
            "{times:?}"
        );
        assert!(times.iter().any(|t| *t != times[0]), "{times:?}");
        assert_eq!(f.config(7, 3).script, f.config(7, 3).script);
        assert_eq!(f.config(7, 3).script[1], (10_000, Action::HealNetwork));
        assert_eq!(f.config(7, 5).nodes, 5);
        assert_eq!(f.config(7, 5).duration, Duration::from_secs(40));
        assert_eq!(f.config(7, 5).server_drift, DriftPin::Drawn);
    }

    #[test]
    fn server_drift_pins_the_clocks() {
        let f = ScenarioFile::parse("server_drift = \"fast\"\nmax_drift_ppm = 10000", "fast")
            .unwrap_or_else(|e| panic!("{e}"));
        let c = f.config(3, 3);
        assert_eq!((c.server_drift, c.max_drift_ppm), (DriftPin::Fast, 10_000));
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        for (text, says) in [
            ("nodez = 3", "unknown field"),
            ("nodes = 4", "3 or 5"),
            ("faults = \"fire\"", "unknown fault class"),
            ("duration = \"soon\"", "not a duration"),
            (
                "[[timeline]]\nat = \"1s\"\nkill = [1]\nrestart = [1]",
                "exactly one action",
            ),
            ("[[timeline]]\nat = \"1s\"", "exactly one action"),
            (
                "[[timeline]]\nat = [\"4s\", \"1s\"]\nkill = [1]",
                "is empty",
            ),
            (
                "[[timeline]]\nat = \"1s\"\nheal = \"disk\"",
                "only \"network\"",
            ),
            (
                "[[timeline]]\nat = \"1s\"\nstart = \"fire\"",
                "unknown fault class",
            ),
            ("server_drift = \"fastest\"", "\"fast\" or \"slow\""),
            ("[raft]\nmax_append_entries = 0", "at least 1"),
            ("[raft]\nmax_append_bytes = 0", "at least 1"),
            ("[raft]\nmax_inflight = 0", "at least 1"),
            ("[raft]\nmax_append = 1", "unknown field"),
            (
                "[[timeline]]\nat = \"1s\"\nisolate = \"b\"",
                "a label some step sets",
            ),
            (
                "[[timeline]]\nat = \"1s\"\nkill = [1]\nlabel = \"b\"",
                "only isolate, join and cut_appends",
            ),
            (
                "[[timeline]]\nat = \"1s\"\nisolate = \"leader\"\nlabel = \"leader\"",
                "not a role",
            ),
            (
                "[[timeline]]\nat = \"1s\"\nelected = [\"0ms\", \"1ms\"]",
                "without an action",
            ),
            (
                "[[timeline]]\nat = \"1s\"\nelected = [\"9ms\", \"1ms\"]\nheal = \"network\"",
                "is empty",
            ),
            (
                "[[timeline]]\nat = \"1s\"\ncut_appends = \"s1\"",
                "\"leader\", \"other\" or a label",
            ),
            (
                "[[timeline]]\nat = \"1s\"\njoin = \"voter\"\nlabel = \"other\"",
                "not a role",
            ),
            (
                "[[timeline]]\nat = \"1s\"\njoin = \"observer\"",
                "\"voter\" or \"learner\"",
            ),
            (
                "[[timeline]]\nat = \"1s\"\nask = \"leader\"",
                "exactly one change",
            ),
            (
                "[[timeline]]\nat = \"1s\"\nremove = \"leader\"",
                "without ask",
            ),
            (
                "[[timeline]]\nat = \"1s\"\nask = \"leader\"\npromote = \"e\"",
                "a label some step sets",
            ),
            (
                "[[timeline]]\nat = \"1s\"\nheal = \"network\"\nwith = [\"e\"]",
                "without isolate",
            ),
        ] {
            let e = ScenarioFile::parse(text, "bad").map(|_| ()).err();
            let e = e.map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn role_steps_are_read_with_their_labels_and_triggers() {
        let text = r#"
[[timeline]]
at = "3s"
isolate = "leader"
label = "a"
[[timeline]]
at = "3s"
cut_appends = "all"
[[timeline]]
at = "5s"
elected = ["2ms", "30ms"]
isolate = "a"
"#;
        let f = ScenarioFile::parse(text, "roles").unwrap_or_else(|e| panic!("{e}"));
        let script = f.config(1, 3).script;
        assert_eq!(
            script[0],
            (
                3_000,
                Action::Isolate {
                    who: Target::Leader,
                    label: Some("a".to_owned()),
                    with: Vec::new(),
                }
            )
        );
        assert_eq!(script[1], (3_000, Action::CutAllAppends));
        assert_eq!(
            script[2],
            (
                5_000,
                Action::OnElection {
                    delay_us: (2_000, 30_000),
                    then: Box::new(Action::Isolate {
                        who: Target::Label("a".to_owned()),
                        label: None,
                        with: Vec::new(),
                    })
                }
            )
        );
    }

    #[test]
    fn membership_steps_are_read_with_their_labels() {
        let text = r#"
[[timeline]]
at = "1s"
join = "learner"
label = "e"
[[timeline]]
at = "2s"
cut_appends = "other"
label = "d"
[[timeline]]
at = "3s"
isolate = "leader"
label = "a"
with = ["e"]
[[timeline]]
at = "3s"
ask = "a"
promote = "e"
[[timeline]]
at = "3s"
elected = ["0ms", "0ms"]
ask = "leader"
remove = "a"
"#;
        let f = ScenarioFile::parse(text, "steps").unwrap_or_else(|e| panic!("{e}"));
        let script: Vec<Action> = f.config(1, 3).script.into_iter().map(|(_, a)| a).collect();
        let label = |l: &str| Target::Label(l.to_owned());
        assert_eq!(
            script,
            [
                Action::Join {
                    voter: false,
                    label: Some("e".to_owned())
                },
                Action::CutAppendsInto {
                    who: Target::Other,
                    label: Some("d".to_owned())
                },
                Action::Isolate {
                    who: Target::Leader,
                    label: Some("a".to_owned()),
                    with: vec!["e".to_owned()],
                },
                Action::Ask {
                    change: AskedChange::Promote,
                    subject: label("e"),
                    of: label("a"),
                },
                Action::OnElection {
                    delay_us: (0, 0),
                    then: Box::new(Action::Ask {
                        change: AskedChange::Remove,
                        subject: label("a"),
                        of: Target::Leader,
                    }),
                },
            ]
        );
    }

    #[test]
    fn raft_knobs_reach_the_servers_config() {
        let text = "[raft]\nmax_append_entries = 1\nmax_append_bytes = 4096\nmax_inflight = 1\n";
        let f = ScenarioFile::parse(text, "one").unwrap_or_else(|e| panic!("{e}"));
        let raft = f.config(1, 3).raft;
        assert_eq!(raft.max_append_entries, Some(1));
        assert_eq!(raft.max_append_bytes, Some(4096));
        assert_eq!(raft.snapshot_threshold, None);
        let core = raft.apply(distlock_core::ids::NodeId(2));
        assert_eq!(core.max_append_entries, 1);
        assert_eq!(core.max_append_bytes, 4096);
        assert_eq!(core.max_inflight, 1);
        // Unset, the core's defaults stay.
        let f = ScenarioFile::parse("[raft]\nsnapshot_threshold = 9\n", "s")
            .unwrap_or_else(|e| panic!("{e}"));
        let core = f.config(1, 3).raft.apply(distlock_core::ids::NodeId(2));
        let default = distlock_core::raft::Config::new(distlock_core::ids::NodeId(2));
        assert_eq!(core.max_append_entries, default.max_append_entries);
        assert_eq!(core.max_append_bytes, default.max_append_bytes);
        assert_eq!(core.max_inflight, default.max_inflight);
    }
}
