//! Targeted scenarios (`sim/scenarios/targeted/*.toml`): fault schedules
//! aimed at bugs that random seeds rarely hit, each one paired with a
//! canary in `canaries/` that it catches within 200 seeds (sim/CANARIES.md
//! gives the seed counts; `./scripts/sim-canary` reproduces them). Here,
//! without any canary, every file runs over a batch of seeds on its own
//! server count (3 and 5 when it fixes none): no property may break, and
//! its coverage counters must be positive over the batch, so the schedule
//! really produced the situation it is aimed at.
//!
//! `SIM_SEEDS` sets the seeds per file and size (default 20);
//! `SIM_SEED_BASE` the first seed (default 1).

#![cfg(madsim)]

use distlock_sim::batch;
use distlock_sim::scenario_file::ScenarioFile;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/targeted")
}

fn run_file(stem: &str) {
    let path = dir().join(format!("{stem}.toml"));
    let file = ScenarioFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let seeds = batch::seeds_from_env();
    let sizes = file.fixed_nodes().map_or(vec![3, 5], |n| vec![n]);
    let configs = sizes
        .into_iter()
        .flat_map(|nodes| seeds.clone().map(move |seed| (seed, nodes)))
        .map(|(seed, nodes)| file.config(seed, nodes));
    let coverage: Vec<&str> = file.coverage.iter().map(String::as_str).collect();
    batch::assert_passes(stem, &file.title, configs, &coverage);
}

macro_rules! targeted_tests {
    ($($name:ident => $stem:literal,)*) => {
        $(
            #[test]
            fn $name() {
                run_file($stem);
            }
        )*
        /// Every file in sim/scenarios/targeted has a test here.
        #[test]
        fn every_targeted_file_has_a_test() {
            let tested = [$($stem),*];
            let entries = std::fs::read_dir(dir()).expect("sim/scenarios/targeted");
            for entry in entries {
                let path = entry.expect("a directory entry").path();
                if path.extension().is_some_and(|e| e == "toml") {
                    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                    assert!(tested.contains(&stem), "{} has no test", path.display());
                }
            }
        }
    };
}

targeted_tests! {
    lease_drift_edge => "lease_drift_edge",
    snapshot_retry => "snapshot_retry",
    leader_unsynced_commit => "leader_unsynced_commit",
    figure_8 => "figure_8",
    membership_overlap => "membership_overlap",
    membership_overlap_six_voters => "membership_overlap_six_voters",
}
