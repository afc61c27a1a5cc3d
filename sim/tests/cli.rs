//! The `distlock-sim` command line as a researcher types it: `--help`
//! everywhere, a parallel swarm printing exactly what a serial one prints,
//! one history file per seed, a swarm resumed from its results file, the
//! replay of a recorded seed, and the older `--seed`/`--seeds` spelling.

#![cfg(madsim)]

use distlock_sim::cli::SeedOptions;
use distlock_sim::scenarios;
use std::path::Path;
use std::process::{Command, Output};

const SIM: &str = env!("CARGO_BIN_EXE_distlock-sim");
/// Short runs: the command line is under test, not the cluster.
const OPTS: &[&str] = &["--duration", "8s", "--faults", "kill,partition"];

fn sim(args: &[&str]) -> Output {
    Command::new(SIM)
        .args(args)
        .output()
        .expect("distlock-sim starts")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

fn with_opts<'a>(args: &[&'a str]) -> Vec<&'a str> {
    args.iter().chain(OPTS).copied().collect()
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

#[test]
fn help_everywhere() {
    for (args, wants) in [
        (vec!["--help"], vec!["run", "swarm", "replay", "explain"]),
        (
            vec!["run", "--help"],
            vec!["--seed", "--scenario", "--history"],
        ),
        (
            vec!["swarm", "--help"],
            vec!["--seeds", "--jobs", "--history-dir", "--results"],
        ),
        (vec!["replay", "--help"], vec!["--seed", "--results"]),
        (vec!["explain", "--help"], vec!["SCENARIO"]),
        (vec!["help", "swarm"], vec!["--jobs"]),
    ] {
        let text = stdout(&sim(&args));
        for w in wants {
            assert!(text.contains(w), "{args:?} lacks {w}: {text}");
        }
    }
    let bad = sim(&["run", "--seed", "1", "--nodes", "4"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not 3 or 5"));
}

#[test]
fn parallel_swarm_prints_what_a_serial_one_prints() {
    let serial = stdout(&sim(&with_opts(&["swarm", "--seeds", "1..6"])));
    let parallel = stdout(&sim(&with_opts(&[
        "swarm", "--seeds", "1..6", "--jobs", "3",
    ])));
    assert_eq!(serial.lines().count(), 6, "{serial}");
    assert_eq!(serial, parallel);
    // Each line is the seed's own, as `run` prints it alone.
    let alone = stdout(&sim(&with_opts(&["run", "--seed", "4"])));
    assert_eq!(serial.lines().nth(3), alone.lines().next());
    // And the older spelling is the same command.
    let legacy = stdout(&sim(&with_opts(&["--seeds", "1..6"])));
    assert_eq!(legacy, serial);
    let legacy_one = stdout(&sim(&with_opts(&["--seed", "4"])));
    assert_eq!(legacy_one, alone);
}

#[test]
fn history_dir_holds_one_file_per_seed() {
    let dir = tempdir();
    let hist = dir.path().join("h");
    let h = hist.to_str().expect("utf-8 path");
    stdout(&sim(&with_opts(&[
        "swarm",
        "--seeds",
        "3..5",
        "--jobs",
        "2",
        "--history-dir",
        h,
    ])));
    let one = dir.path().join("one.jsonl");
    stdout(&sim(&with_opts(&[
        "run",
        "--seed",
        "4",
        "--history",
        one.to_str().expect("utf-8 path"),
    ])));
    let mut names: Vec<String> = std::fs::read_dir(&hist)
        .expect("the history dir exists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["seed-3.jsonl", "seed-4.jsonl", "seed-5.jsonl"]);
    let four = std::fs::read(hist.join("seed-4.jsonl")).expect("seed 4");
    assert!(!four.is_empty());
    assert_eq!(four, std::fs::read(one).expect("run's history"));
    assert_ne!(
        four,
        std::fs::read(hist.join("seed-3.jsonl")).expect("seed 3")
    );
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("results file")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_swarm_resumes_from_its_results_file() {
    let dir = tempdir();
    let full = dir.path().join("full.jsonl");
    let part = dir.path().join("part.jsonl");
    let (f, p) = (full.to_str().expect("utf-8"), part.to_str().expect("utf-8"));
    stdout(&sim(&with_opts(&[
        "swarm",
        "--seeds",
        "1..5",
        "--results",
        f,
    ])));
    // An interrupted swarm: two seeds done, a third cut short mid-line.
    stdout(&sim(&with_opts(&[
        "swarm",
        "--seeds",
        "1..2",
        "--results",
        p,
    ])));
    let cut = &lines(&full)[2];
    let mut text = std::fs::read_to_string(&part).expect("part");
    text.push_str(&cut[..cut.len() / 2]);
    std::fs::write(&part, text).expect("write");
    let resumed = sim(&with_opts(&[
        "swarm",
        "--seeds",
        "1..5",
        "--results",
        p,
        "--jobs",
        "2",
    ]));
    let printed = stdout(&resumed);
    assert!(String::from_utf8_lossy(&resumed.stderr).contains("resuming: 2 of the seeds"));
    assert_eq!(
        printed.lines().count(),
        3,
        "only seeds 3..5 run again: {printed}"
    );
    assert_eq!(lines(&part), lines(&full));
    // Nothing left to do: nothing runs, nothing is added.
    assert_eq!(
        stdout(&sim(&with_opts(&[
            "swarm",
            "--seeds",
            "1..5",
            "--results",
            p
        ]))),
        ""
    );
    assert_eq!(lines(&part), lines(&full));
    // Other options may not be mixed into the same file.
    let other = sim(&[
        "swarm",
        "--seeds",
        "1..5",
        "--results",
        p,
        "--duration",
        "9s",
    ]);
    assert_eq!(other.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&other.stderr).contains("other options"));
    assert_eq!(lines(&part), lines(&full));
}

#[test]
fn replay_runs_a_recorded_seed_again_and_checks_its_hash() {
    let dir = tempdir();
    let results = dir.path().join("r.jsonl");
    let r = results.to_str().expect("utf-8");
    stdout(&sim(&[
        "swarm",
        "--seeds",
        "7..8",
        "--scenario",
        "S2",
        "--duration",
        "8s",
        "--results",
        r,
    ]));
    let recorded = lines(&results);
    let again = stdout(&sim(&["replay", "--seed", "8", "--results", r]));
    assert_eq!(again.trim_end(), recorded[1]);
    // A tampered hash is a divergence (exit 3), not a pass.
    let tampered = recorded[1].replace("\"trace_hash\":\"", "\"trace_hash\":\"00");
    std::fs::write(&results, format!("{}\n{tampered}\n", recorded[0])).expect("write");
    let diverged = sim(&["replay", "--seed", "8", "--results", r]);
    assert_eq!(diverged.status.code(), Some(3));
    let missing = sim(&["replay", "--seed", "9", "--results", r]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn the_replay_command_a_failing_seed_prints_replays_it() {
    let options = SeedOptions {
        nodes: 5,
        duration: Some(std::time::Duration::from_secs(8)),
        scenario: scenarios::by_id("S9"),
        ..SeedOptions::default()
    };
    let command = options.replay_command(11);
    let args: Vec<&str> = command
        .strip_prefix("./scripts/sim ")
        .expect("a ./scripts/sim command")
        .split(' ')
        .collect();
    let dir = tempdir();
    let out = Command::new(SIM)
        .args(&args)
        .current_dir(dir.path())
        .output()
        .expect("distlock-sim starts");
    let line = stdout(&out);
    let swarm = stdout(&sim(&[
        "swarm",
        "--seeds",
        "10..11",
        "--scenario",
        "S9",
        "--nodes",
        "5",
        "--duration",
        "8s",
    ]));
    assert_eq!(Some(line.trim_end()), swarm.lines().nth(1));
    assert!(dir.path().join("seed-11.jsonl").exists());
    assert!(dir.path().join("seed-11.html").exists());
}

#[test]
fn explain_lists_scenarios_and_shows_one() {
    let all = stdout(&sim(&["explain"]));
    assert!(all.contains("S14") && all.contains("client_cut"), "{all}");
    let s10 = stdout(&sim(&["explain", "S10", "--nodes", "5"]));
    assert!(
        s10.contains("scripted steps") && s10.contains("servers                5"),
        "{s10}"
    );
}
