//! `distlock-mc`: runs the model checker on one configuration (or all) and
//! prints the states explored, the depth and the time; on a broken property
//! prints the counterexample as a transcript (and writes it with `--trace`).
//!
//! ```text
//! distlock-mc [CONFIG|all] [KEY=N ...] [--time SECS] [--trace FILE]
//! ```
//! KEYs: depth (or deeper, added to the configuration's own), max-term,
//! crashes, duplicates, drops, in-flight, leader-ticks, elections, sends,
//! append, snapshot, client-ticks. Defaults: each configuration's CI bounds (`--help` lists them).

use distlock_mc::check::{Limits, explore};
use distlock_mc::{configs, trace, world::World};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut names = Vec::new();
    let mut keys = Vec::new();
    let mut time = None;
    let mut out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--time" => {
                time = it
                    .next()
                    .and_then(|s| s.parse::<u64>().ok())
                    .map(Duration::from_secs)
            }
            "--trace" => out = it.next().cloned(),
            "-h" | "--help" => {
                println!(
                    "usage: distlock-mc [CONFIG|all] [KEY=N ...] [--time SECS] [--trace FILE]\n\
                     configs: {}\nkeys: depth deeper max-term crashes duplicates drops in-flight leader-ticks elections sends append snapshot client-ticks\n\
                     defaults: {}",
                    configs::NAMES.join(", "),
                    trace::bounds_args(&configs::ci_bounds()),
                );
                for name in configs::NAMES {
                    let own = configs::bounds_for(name);
                    if own != configs::ci_bounds() {
                        println!("{name} defaults: {}", trace::bounds_args(&own));
                    }
                }
                return ExitCode::SUCCESS;
            }
            s if s.contains('=') => keys.push(s.to_owned()),
            s => names.push(s.to_owned()),
        }
    }
    if names.is_empty() || names.iter().any(|n| n == "all") {
        names = configs::NAMES.iter().map(|s| (*s).to_owned()).collect();
    }
    let mut failed = false;
    for name in &names {
        let bounds =
            match trace::parse_bounds(configs::bounds_for(name), keys.iter().map(String::as_str)) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("distlock-mc: {e}");
                    return ExitCode::from(64);
                }
            };
        let Some(setup) = configs::by_name(name, bounds) else {
            eprintln!("distlock-mc: unknown configuration {name:?} (try --help)");
            return ExitCode::from(64);
        };
        let mut world = World::new(setup);
        world.warm_up();
        let report = explore(&world, Limits { time });
        println!(
            "{name}: {} states, {} transitions, depth {}{}, {:.1} s ({})",
            report.states,
            report.transitions,
            report.max_depth,
            if report.truncated {
                " (truncated by --time)"
            } else {
                " (exhaustive)"
            },
            report.elapsed.as_secs_f64(),
            trace::bounds_args(&world.setup.bounds)
        );
        if let Some(cx) = report.counterexample {
            failed = true;
            println!("VIOLATION after {} steps: {}", cx.steps.len(), cx.violation);
            let text = trace::render(&world, &cx.steps, &cx.violation);
            println!("{text}");
            if let Some(path) = &out
                && let Err(e) = std::fs::write(path, &text)
            {
                eprintln!("distlock-mc: cannot write {path}: {e}");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
