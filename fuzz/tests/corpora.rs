//! Replays every committed corpus file (and every crash reproducer)
//! through its target as a plain test: the short pass that needs no
//! fuzzing engine, and the regression tests of every finding.

use std::path::Path;

#[test]
fn every_corpus_runs_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut total = 0;
    for target in distlock_fuzz::TARGETS {
        for sub in ["corpus", "regressions"] {
            let dir = root.join(sub).join(target);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<_> = entries
                .map(|e| e.expect("a directory entry").path())
                .collect();
            files.sort();
            for file in files {
                let data = std::fs::read(&file).expect("a corpus file reads");
                eprintln!("{}", file.display());
                assert!(distlock_fuzz::run(target, &data));
                total += 1;
            }
        }
        assert!(
            root.join("corpus").join(target).is_dir(),
            "the {target} target has no corpus"
        );
    }
    println!("replayed {total} inputs");
}

/// The node target's seeds reach deep states: a leader commits, sessions
/// open and locks are granted (a harness that never got there would fuzz
/// nothing but the election).
#[test]
fn the_node_seeds_reach_grants() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for seed in ["seed-000", "seed-001"] {
        let data = std::fs::read(root.join("corpus/node").join(seed)).expect("the seed");
        let reach = distlock_fuzz::node::reach(&data);
        assert!(reach.commit >= 5, "{seed}: {reach:?}");
        assert!(reach.grants >= 2, "{seed}: {reach:?}");
    }
}
