//! The bounded checks: every configuration explored exhaustively within
//! the CI bounds. They take minutes, so a plain `cargo test` skips them;
//! `scripts/mc-check` runs them in release with debug assertions on.

use distlock_mc::check::{Limits, explore};
use distlock_mc::{configs, trace, world::World};

fn exhaustive(name: &str) {
    let setup = configs::by_name(name, configs::bounds_for(name)).expect("a configuration");
    let mut world = World::new(setup);
    world.warm_up();
    let report = explore(&world, Limits { time: None });
    eprintln!(
        "{name}: {} states, {} transitions, depth {}, {:.1} s",
        report.states,
        report.transitions,
        report.max_depth,
        report.elapsed.as_secs_f64()
    );
    if let Some(cx) = report.counterexample {
        panic!("{}", trace::render(&world, &cx.steps, &cx.violation));
    }
    assert!(!report.truncated);
    assert_eq!(report.max_depth, world.setup.bounds.depth);
    assert!(report.states > 10_000, "the bounds explore almost nothing");
}

#[test]
#[ignore = "minutes: scripts/mc-check runs it in release"]
fn three_voters() {
    exhaustive("three-voters");
}

#[test]
#[ignore = "minutes: scripts/mc-check runs it in release"]
fn learner_promoted() {
    exhaustive("learner-promoted");
}

#[test]
#[ignore = "minutes: scripts/mc-check runs it in release"]
fn voter_removed() {
    exhaustive("voter-removed");
}

#[test]
#[ignore = "minutes: scripts/mc-check runs it in release"]
fn figure_eight() {
    exhaustive("figure-8");
}
