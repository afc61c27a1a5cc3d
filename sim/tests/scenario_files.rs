//! Scenario files: each named scenario S1–S21 written as a file in
//! sim/scenarios/ gives exactly the built-in's configuration for every
//! seed and size, the command line runs a file as it runs the built-in,
//! and the walkthrough example loads and runs.

#![cfg(madsim)]

use distlock_sim::scenario_file::ScenarioFile;
use distlock_sim::scenarios;
use std::path::{Path, PathBuf};
use std::process::Command;

const SIM: &str = env!("CARGO_BIN_EXE_distlock-sim");

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

#[test]
fn every_named_scenario_is_a_file_with_the_same_configuration() {
    for s in scenarios::ALL {
        let path = dir().join(format!("{}.toml", s.id));
        let file = ScenarioFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(file.id, s.id);
        assert_eq!(file.title, s.title);
        assert_eq!(file.coverage, s.coverage);
        for nodes in [3, 5] {
            for seed in [1, 2, 99] {
                assert_eq!(
                    format!("{:?}", file.config(seed, nodes)),
                    format!("{:?}", s.config(seed, nodes)),
                    "{} seed {seed} on {nodes}",
                    s.id
                );
            }
        }
    }
}

fn line(args: &[&str]) -> serde_json::Value {
    let out = Command::new(SIM)
        .args(args)
        .output()
        .expect("distlock-sim starts");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

#[test]
fn a_file_runs_as_the_built_in_does() {
    let file = dir().join("S13.toml");
    let f = file.to_str().expect("utf-8");
    let from_file = line(&[
        "run",
        "--seed",
        "4",
        "--scenario-file",
        f,
        "--duration",
        "20s",
    ]);
    let built_in = line(&[
        "run",
        "--seed",
        "4",
        "--scenario",
        "S13",
        "--duration",
        "20s",
    ]);
    assert_eq!(from_file["trace_hash"], built_in["trace_hash"]);
    assert_eq!(from_file["scenario"], format!("file:{f}"));
    let bad = Command::new(SIM)
        .args(["run", "--seed", "1", "--scenario-file", "/nonexistent.toml"])
        .output()
        .expect("distlock-sim starts");
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn the_walkthrough_example_runs_and_draws_its_times_from_the_seed() {
    let path = dir().join("examples/split-brain-attempt.toml");
    let file = ScenarioFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let cut_at: Vec<u64> = (1..=10)
        .map(|seed| file.config(seed, 3).script[0].0)
        .collect();
    assert!(
        cut_at.iter().all(|t| (4_000..=9_000).contains(t)),
        "{cut_at:?}"
    );
    assert!(cut_at.iter().any(|t| *t != cut_at[0]), "{cut_at:?}");
    let run = line(&[
        "run",
        "--seed",
        "3",
        "--scenario-file",
        path.to_str().expect("utf-8"),
    ]);
    assert_eq!(run["nodes"], 5);
    assert_eq!(run["violations"], serde_json::json!([]));
    assert!(
        run["coverage"]["partitions"].as_u64().unwrap_or(0) > 0,
        "{run}"
    );
}
