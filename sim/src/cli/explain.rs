//! `distlock-sim explain`: what the named scenarios and fault classes are,
//! and every knob a scenario sets, so a researcher can see what a seed of
//! it will run before running it.

use crate::faults::CLASSES;
use crate::scenarios::{self, Scenario};

/// Lists the scenarios and fault classes, or shows one scenario in full.
#[derive(Debug, clap::Args)]
pub(super) struct ExplainArgs {
    /// A scenario (S1..S20) to show in full; without it, lists them all.
    #[arg(value_parser = parse_scenario)]
    scenario: Option<&'static Scenario>,
    /// Servers the shown configuration is for: 3 or 5.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
}

fn parse_scenario(s: &str) -> Result<&'static Scenario, String> {
    scenarios::by_id(s).ok_or_else(|| format!("unknown scenario {s:?}"))
}

/// Prints the explanation; the exit code (always 0).
pub(super) fn explain(a: &ExplainArgs) -> i32 {
    match a.scenario {
        Some(s) => print!("{}", scenario_text(s, a.nodes)),
        None => print!("{}", overview()),
    }
    super::EXIT_OK
}

fn overview() -> String {
    let mut out = String::from("scenarios (distlock-sim explain S<n> shows one in full):\n");
    for s in scenarios::ALL {
        out.push_str(&format!("  {:<4} {}\n", s.id, s.title));
    }
    out.push_str(
        "\nfault classes (--faults all, none, or a comma list; sim/README.md describes each):\n  ",
    );
    out.push_str(&CLASSES.join(", "));
    out.push_str("\n  clock_breach (added to a list: clocks drift 15x beyond the bound)\n");
    out
}

fn scenario_text(s: &Scenario, nodes: u64) -> String {
    let c = s.config(0, nodes);
    let mut out = format!("{}: {}\n", s.id, s.title);
    let mut field = |k: &str, v: String| out.push_str(&format!("  {k:<22} {v}\n"));
    field("servers", c.nodes.to_string());
    field("duration", crate::run::duration_name(c.duration));
    field("faults", c.faults.name());
    field("clients", c.clients.to_string());
    field("session ttl ms", format!("{}..{}", c.ttl_ms.0, c.ttl_ms.1));
    field("mean fault gap ms", c.fault_gap_ms.to_string());
    field("max clock drift ppm", c.max_drift_ppm.to_string());
    field("careless writes ‰", c.careless_per_mille.to_string());
    field("fsync µs", format!("{}..{}", c.fsync_us.0, c.fsync_us.1));
    field("kill when dirty", c.kill_when_dirty.to_string());
    field("lock delay ms", c.lock_delay_ms.to_string());
    field(
        "snapshot every",
        c.raft
            .snapshot_threshold
            .map_or_else(|| "default".to_owned(), |n| format!("{n} entries")),
    );
    field(
        "compaction margin",
        c.raft
            .compaction_margin
            .map_or_else(|| "default".to_owned(), |n| format!("{n} entries")),
    );
    field(
        "entries per append",
        c.raft
            .max_append_entries
            .map_or_else(|| "default".to_owned(), |n| n.to_string()),
    );
    field(
        "bytes per append",
        c.raft
            .max_append_bytes
            .map_or_else(|| "default".to_owned(), |n| n.to_string()),
    );
    field(
        "appends in flight",
        c.raft
            .max_inflight
            .map_or_else(|| "default".to_owned(), |n| n.to_string()),
    );
    field("must happen", s.coverage.join(", "));
    if !c.script.is_empty() {
        out.push_str("  scripted steps (true time):\n");
        for (ms, action) in &c.script {
            out.push_str(&format!("    {:>8} ms  {action:?}\n", ms));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_is_explained() {
        let all = overview();
        for s in scenarios::ALL {
            assert!(all.contains(s.title), "{}", s.id);
            let text = scenario_text(s, 5);
            assert!(text.starts_with(&format!("{}: ", s.id)));
            assert!(text.contains("servers                5"), "{text}");
        }
        assert!(scenario_text(scenarios::by_id("S10").expect("S10"), 3).contains("Cut("));
    }
}
