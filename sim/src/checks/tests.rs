//! Checker self-tests: for every property a hand-built bad history that
//! must be flagged, and good histories that must pass (SIMULATION.md §5.9).

use super::history_builder::H;
use super::*;
use crate::history::{Ev, ModeKind, Record};

const X: ModeKind = ModeKind::Exclusive;
const S: ModeKind = ModeKind::Shared;

fn props(v: &[Violation]) -> Vec<&'static str> {
    v.iter().map(|v| v.property).collect()
}

/// A clean hand-over: A holds, releases, B gets a higher token.
fn good() -> Vec<Record> {
    H::default()
        .grant(1, "L", X, 0, 10, 5, 3_000)
        .write(20, 1, "L", 5, true)
        .release(100, 1, "L", 5)
        .grant(2, "L", X, 50, 150, 9, 4_000)
        .write(160, 2, "L", 9, true)
        .write(170, 1, "L", 5, false)
        .release(200, 2, "L", 9)
        .sorted()
}

#[test]
fn good_histories_pass_every_checker() {
    assert_eq!(check_all(&good()), vec![]);
    // Two readers share one token (one release granted both).
    let shared = H::default()
        .grant(1, "L", S, 0, 10, 7, 5_000)
        .grant(2, "L", S, 0, 12, 7, 5_000)
        .sorted();
    assert_eq!(check_all(&shared), vec![]);
    // A holder whose lease ran out before the next grant.
    let expired = H::default()
        .grant(1, "L", X, 0, 10, 5, 2_000)
        .grant(2, "L", X, 100, 2_500, 9, 6_000)
        .sorted();
    assert_eq!(check_all(&expired), vec![]);
}

#[test]
fn resource_checker_flags_a_stale_accepted_write_and_a_shared_token() {
    let stale = H::default()
        .write(10, 2, "L", 9, true)
        .write(20, 1, "L", 5, true)
        .sorted();
    assert_eq!(props(&resource_exclusion(&stale)), vec!["mutual_exclusion"]);
    let two_owners = H::default()
        .write(10, 1, "L", 9, true)
        .write(20, 2, "L", 9, true)
        .sorted();
    assert_eq!(
        props(&resource_exclusion(&two_owners)),
        vec!["mutual_exclusion"]
    );
}

#[test]
fn token_checker_flags_reuse_regression_and_regression_across_restart() {
    let reuse = H::default()
        .grant(1, "L", X, 0, 10, 5, 1_000)
        .release(20, 1, "L", 5)
        .grant(2, "L", X, 0, 30, 5, 1_000)
        .sorted();
    assert!(props(&token_order(&reuse)).contains(&"fencing"));
    let regression = H::default()
        .grant(1, "L", X, 0, 10, 9, 1_000)
        .release(20, 1, "L", 9)
        .grant(2, "L", X, 30, 40, 7, 1_000)
        .sorted();
    assert_eq!(props(&token_order(&regression)), vec!["fencing"]);
    let across = H::default()
        .grant(1, "L", X, 0, 10, 9, 1_000)
        .release(20, 1, "L", 9)
        .ev(25, Ev::ClusterRestart)
        .grant(2, "L", X, 30, 40, 3, 1_000)
        .sorted();
    assert_eq!(props(&token_order(&across)), vec!["durability"]);
}

#[test]
fn early_release_checker_flags_a_grant_inside_a_believed_lease() {
    let early = H::default()
        .grant(1, "L", X, 0, 10, 5, 3_000)
        .grant(2, "L", X, 20, 1_000, 9, 6_000)
        .sorted();
    assert_eq!(props(&no_early_release(&early)), vec!["no_early_release"]);
    // The belief may come from a later keepalive sample.
    let sampled = H::default()
        .grant(1, "L", X, 0, 10, 5, 500)
        .ev(
            400,
            Ev::Belief {
                session: 1,
                lock: "L".into(),
                token: 5,
                deadline: Some(3_000),
            },
        )
        .grant(2, "L", X, 20, 1_000, 9, 6_000)
        .sorted();
    assert_eq!(props(&no_early_release(&sampled)), vec!["no_early_release"]);
    // Readers do not conflict with readers.
    let readers = H::default()
        .grant(1, "L", S, 0, 10, 5, 3_000)
        .grant(2, "L", S, 20, 1_000, 9, 6_000)
        .sorted();
    assert_eq!(no_early_release(&readers), vec![]);
}

#[test]
fn liveness_raft_and_health_checkers_flag_their_records() {
    let mut h = H::default();
    h.ev(
        10,
        Ev::Probe {
            lock: "L".into(),
            granted: false,
            after_us: 30_000_000,
        },
    );
    assert_eq!(props(&liveness(&h.sorted())), vec!["liveness"]);
    let mut h = H::default();
    for node in [1, 2] {
        h.ev(
            node,
            Ev::Role {
                node,
                role: "Leader".into(),
                term: 4,
            },
        );
    }
    assert_eq!(props(&raft_baseline(&h.sorted())), vec!["election_safety"]);
    let mut h = H::default();
    h.ev(
        1,
        Ev::Exit {
            node: 1,
            why: "cannot start from the stored state: x".into(),
        },
    )
    .ev(
        2,
        Ev::Exit {
            node: 2,
            why: "storage failed, stopping: fsync".into(),
        },
    )
    .ev(
        3,
        Ev::DiskContract {
            node: 3,
            what: "hard state term went back".into(),
        },
    );
    assert_eq!(
        props(&server_health(&h.sorted())),
        vec!["server_stopped", "persistence_contract"]
    );
}

#[test]
fn island_checker_flags_a_minority_commit_but_not_one_after_the_heal() {
    let fault = |what: &str| Ev::Fault { what: what.into() };
    let answer = |change: &str, outcome: &str, asked: u64| Ev::Membership {
        change: change.into(),
        outcome: outcome.into(),
        island: true,
        asked,
    };
    let mut h = H::default();
    h.ev(
        1,
        fault("isolate leader s2, island: ask it to remove [1, 3]"),
    )
    .ev(
        2,
        answer("remove s1 via isolated s2", "not done: no leader", 1),
    )
    .ev(3, answer("remove s3 via isolated s2", "committed at 40", 2))
    .ev(4, fault("heal network"))
    .ev(5, answer("remove s3 via isolated s2", "committed at 41", 3))
    // Asked while healed, answered once a second island began: its
    // majority may have acknowledged it before that cut.
    .ev(6, answer("remove s1 via isolated s2", "committed at 42", 5))
    .ev(
        7,
        fault("isolate leader s2, island: ask it to remove [1, 3]"),
    )
    .ev(8, answer("remove s3 via isolated s2", "committed at 43", 6))
    .ev(9, answer("remove s1 via isolated s2", "committed at 44", 7));
    let v = island_changes(&h.sorted());
    assert_eq!(props(&v), vec!["membership", "membership"]);
    assert_eq!((v[0].t, v[1].t), (3, 9));
}

#[test]
fn witness_checker_flags_lost_and_phantom_grants() {
    let log = |grants: &[(&str, u64, u64)]| Ev::CommittedLog {
        from_index: 5,
        to_index: 100,
        grants: grants
            .iter()
            .map(|(l, s, t)| ((*l).to_owned(), *s, *t))
            .collect(),
        release_handoffs: 0,
        delayed_releases: Vec::new(),
        retries_answered: 0,
        answer_conflicts: Vec::new(),
    };
    let mut h = H::default();
    h.grant(1, "L", ModeKind::Exclusive, 10, 20, 12, 1_000)
        .grant(2, "L", ModeKind::Exclusive, 30, 40, 17, 1_000)
        // Inside the snapshot: not checked.
        .grant(3, "M", ModeKind::Exclusive, 30, 40, 4, 1_000)
        .ev(50, log(&[("L", 1, 12), ("L", 2, 17)]));
    assert_eq!(witness(&h.sorted()), vec![]);

    let mut h = H::default();
    h.grant(1, "L", ModeKind::Exclusive, 10, 20, 12, 1_000)
        .grant(2, "L", ModeKind::Exclusive, 30, 40, 17, 1_000)
        .ev(50, log(&[("L", 1, 12), ("L", 2, 18), ("L", 9, 30)]));
    assert_eq!(
        props(&witness(&h.sorted())),
        vec!["lost_grant", "phantom_grant"]
    );
}

#[test]
fn release_delay_checker_flags_a_delay_started_by_an_explicit_release() {
    let log = |delayed: &[(&str, u64, u64)]| Ev::CommittedLog {
        from_index: 0,
        to_index: 100,
        grants: Vec::new(),
        release_handoffs: 3,
        delayed_releases: delayed
            .iter()
            .map(|(l, s, i)| ((*l).to_owned(), *s, *i))
            .collect(),
        retries_answered: 0,
        answer_conflicts: Vec::new(),
    };
    let mut h = H::default();
    h.ev(50, log(&[]));
    assert_eq!(release_delays(&h.sorted()), vec![]);
    let mut h = H::default();
    h.ev(50, log(&[("L", 4, 17)]));
    let v = release_delays(&h.sorted());
    assert_eq!(props(&v), vec!["lock_delay"]);
    assert!(v[0].detail.contains("index 17"), "{}", v[0].detail);
}

#[test]
fn exactly_once_checker_flags_a_retry_answered_differently() {
    let log = |conflicts: &[(u64, u64, &str, &str)]| Ev::CommittedLog {
        from_index: 0,
        to_index: 100,
        grants: Vec::new(),
        release_handoffs: 0,
        delayed_releases: Vec::new(),
        retries_answered: 2,
        answer_conflicts: conflicts
            .iter()
            .map(|(s, q, a, b)| (*s, *q, (*a).to_owned(), (*b).to_owned()))
            .collect(),
    };
    let mut h = H::default();
    h.ev(50, log(&[]));
    assert_eq!(exactly_once(&h.sorted()), vec![]);
    let mut h = H::default();
    h.ev(50, log(&[(3, 9, "Ok(Granted)", "Err(AlreadyHeld)")]));
    let v = exactly_once(&h.sorted());
    assert_eq!(props(&v), vec!["exactly_once"]);
    assert!(
        v[0].detail.contains("request 9 of session 3"),
        "{}",
        v[0].detail
    );
}
