//! The search: depth-first over every step of every state, within the
//! bounds, remembering each state's fingerprint with the depth it was
//! reached at (a state reached again with more steps left is explored
//! again, so the depth bound is exact).
//!
//! Depth-first keeps only the current path in memory (worlds are cloned
//! along it), and the path is the counterexample when a property breaks.

use crate::world::{Step, World};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

/// What a search found.
#[derive(Debug)]
pub struct Report {
    /// Distinct states (fingerprints) explored.
    pub states: u64,
    /// Steps taken (transitions), including into known states.
    pub transitions: u64,
    /// The deepest step count reached.
    pub max_depth: usize,
    /// Whether the search stopped early (time limit); otherwise it was
    /// exhaustive within the bounds.
    pub truncated: bool,
    /// How long it took.
    pub elapsed: Duration,
    /// The first broken property, with the steps from the initial state.
    pub counterexample: Option<Counterexample>,
}

/// A broken property and the steps that break it.
#[derive(Debug, Clone)]
pub struct Counterexample {
    /// What broke.
    pub violation: String,
    /// The steps from the initial state.
    pub steps: Vec<Step>,
}

/// Limits of one run beyond the setup's bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Stop (reporting a truncated search) after this long.
    pub time: Option<Duration>,
}

/// Applies `step`, turning a panic in the core into a violation.
fn step(world: &mut World, s: &Step) -> Option<String> {
    match catch_unwind(AssertUnwindSafe(|| world.apply(s))) {
        Ok(()) => world.check(),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic".into());
            Some(format!("the core panicked: {msg}"))
        }
    }
}

/// Explores every state reachable from `initial` within its setup's
/// bounds; stops at the first broken property.
#[must_use]
pub fn explore(initial: &World, limits: Limits) -> Report {
    let start = Instant::now();
    let depth = initial.setup.bounds.depth;
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let mut report = Report {
        states: 0,
        transitions: 0,
        max_depth: 0,
        truncated: false,
        elapsed: Duration::ZERO,
        counterexample: None,
    };
    let mut root = initial.clone();
    if let Some(v) = root.check() {
        report.counterexample = Some(Counterexample {
            violation: v,
            steps: Vec::new(),
        });
        return report;
    }
    seen.insert(root.fingerprint(), 0);
    report.states = 1;
    // The path: each frame is a world and the steps still to try from it.
    let first = root.steps();
    let mut stack: Vec<(World, Vec<Step>, Option<Step>)> = vec![(root, first, None)];
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    while let Some((world, todo, _)) = stack.last_mut() {
        let Some(next) = todo.pop() else {
            stack.pop();
            continue;
        };
        let mut child = world.clone();
        if report.transitions.is_multiple_of(4096)
            && limits.time.is_some_and(|t| start.elapsed() > t)
        {
            report.truncated = true;
            break;
        }
        report.transitions += 1;
        let level = stack.len();
        if let Some(v) = step(&mut child, &next) {
            let mut steps: Vec<Step> = stack.iter().filter_map(|f| f.2.clone()).collect();
            steps.push(next);
            report.counterexample = Some(Counterexample {
                violation: v,
                steps,
            });
            break;
        }
        let fp = child.fingerprint();
        match seen.get(&fp) {
            Some(&at) if at <= level => continue,
            Some(_) => {}
            None => report.states += 1,
        }
        seen.insert(fp, level);
        report.max_depth = report.max_depth.max(level);
        if level < depth {
            let todo = child.steps();
            stack.push((child, todo, Some(next)));
        }
    }
    std::panic::set_hook(previous);
    report.elapsed = start.elapsed();
    report
}
