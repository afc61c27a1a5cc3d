//! The bounded checks as a test: every configuration explored
//! exhaustively within its CI bounds, none of them truncated or shallow.
//! It takes minutes, so a plain `cargo test` skips it; `scripts/mc-check`
//! explores the same through the `distlock-mc` binary (release, debug
//! assertions on), and `cargo test --release -p distlock-mc -- --ignored`
//! runs this test.

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
#[ignore = "minutes: scripts/mc-check runs every configuration in release"]
fn every_configuration() {
    for name in configs::NAMES {
        exhaustive(name);
    }
}
