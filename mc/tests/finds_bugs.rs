//! The checker finds a planted bug, and its counterexample replays: the
//! driver's disk reports writes durable without keeping them (what a
//! runtime acknowledging before its fsync does), so a server acknowledges
//! entries its disk does not hold.

use distlock_mc::check::{Limits, explore};
use distlock_mc::setup::Setup;
use distlock_mc::{configs, trace, world::World};

#[test]
fn a_lying_disk_is_found_and_its_trace_replays() {
    let mut bounds = configs::ci_bounds();
    bounds.disk_lies = true;
    bounds.depth = 8;
    let mut world = World::new(configs::three_voters(bounds));
    world.warm_up();
    let report = explore(&world, Limits { time: None });
    let cx = report.counterexample.expect("the planted bug is found");
    assert!(
        cx.violation.starts_with("durability:") || cx.violation.starts_with("persistence:"),
        "{}",
        cx.violation
    );
    let text = trace::render(&world, &cx.steps, &cx.violation);
    assert!(text.contains("  violation: "), "{text}");
    // The rendered transcript replays as written.
    let dir = std::env::temp_dir().join(format!("distlock-mc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("lying_disk.txt");
    std::fs::write(&path, &text).expect("written");
    trace::replay(&path);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn committed_traces_replay() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("traces");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("mc/traces") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "txt") {
            trace::replay(&path);
            seen += 1;
        }
    }
    assert!(seen > 0, "no trace in {}", dir.display());
}

/// Explores `setup` with its clients told to assume no drift at all and
/// returns the trace of what it finds, which must be an early release.
fn early_release_assuming_no_drift(mut setup: Setup) -> String {
    if let Some(clocks) = &mut setup.clocks {
        clocks.max_drift_ppm = 0;
    }
    let mut world = World::new(setup);
    world.warm_up();
    let report = explore(&world, Limits { time: None });
    let cx = report.counterexample.expect("the early release is found");
    assert!(
        cx.violation.starts_with("no early release:"),
        "{}",
        cx.violation
    );
    trace::render(&world, &cx.steps, &cx.violation)
}

/// A client that assumes no drift at all, while the servers' clocks run
/// 1 % fast and its own 1 % slow, still counts on its lease when the
/// leader's expiry of it commits: the checker finds the early release.
/// (The client library's own margin is what `lease-expiry` checks
/// clean; `canaries/client_no_drift_margin.patch` takes it out.)
#[test]
fn a_client_assuming_no_drift_is_found_counting_on_an_expired_lease() {
    let text =
        early_release_assuming_no_drift(configs::lease_expiry(configs::bounds_for("lease-expiry")));
    assert!(text.contains("> pause 1"), "{text}");
}

/// The same with the client library's own session machine as the holder
/// (`library-lease`): told to assume no drift, its lease, which the
/// checker reads from the machine, outlives the leader's count of it.
#[test]
fn a_library_client_assuming_no_drift_is_found_counting_on_an_expired_lease() {
    let text = early_release_assuming_no_drift(configs::library_lease(configs::bounds_for(
        "library-lease",
    )));
    assert!(text.contains("client 0: #3 KeepAliveAck"), "{text}");
}
