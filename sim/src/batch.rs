//! A batch of seeds run in one process, as the scenario suites run them.
//! A batch passes when no seed broke a property and every coverage counter
//! it names happened at least once over the batch: a scenario whose
//! schedule never produced what it is about would pass vacuously.

use crate::run::{SimConfig, run_seed_catching};
use std::collections::BTreeMap;
use std::ops::Range;

/// The seeds a suite runs: `SIM_SEEDS` of them (default 20) from
/// `SIM_SEED_BASE` (default 1).
#[must_use]
pub fn seeds_from_env() -> Range<u64> {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let base = var("SIM_SEED_BASE", 1);
    base..base + var("SIM_SEEDS", 20)
}

/// Runs every configuration of `configs` (its seeds and sizes) and panics
/// with every seed that broke a property, or with the first counter of
/// `coverage` that stayed at zero. `label` and `title` name the scenario
/// in the messages.
///
/// # Panics
/// When the batch does not pass.
pub fn assert_passes(
    label: &str,
    title: &str,
    configs: impl IntoIterator<Item = SimConfig>,
    coverage: &[&str],
) {
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures = Vec::new();
    for cfg in configs {
        let summary = run_seed_catching(&cfg, false);
        for (k, v) in &summary.coverage {
            *seen.entry((*k).to_owned()).or_default() += v;
        }
        if !summary.violations.is_empty() {
            failures.push(format!(
                "{label} seed {} nodes {}: {:?}",
                cfg.seed, cfg.nodes, summary.violations
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for key in coverage {
        assert!(
            seen.get(*key).copied().unwrap_or(0) > 0,
            "{label} ({title}) is vacuous: {key} never happened; coverage {seen:?}"
        );
    }
}
