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

/// The node corpus reaches deep states: a leader commits, sessions open
/// and locks are granted (a harness that never got there would fuzz
/// nothing but the election).
#[test]
fn the_node_corpus_reaches_grants() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/node");
    let (mut commit, mut grants) = (0, 0);
    for entry in std::fs::read_dir(dir).expect("the node corpus") {
        let data = std::fs::read(entry.expect("an entry").path()).expect("an input");
        let reach = distlock_fuzz::node::reach(&data);
        commit = commit.max(reach.commit);
        grants = grants.max(reach.grants);
    }
    assert!(commit >= 5, "highest commit index {commit}");
    assert!(grants >= 2, "most grants in one input {grants}");
}
