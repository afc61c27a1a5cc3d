//! Self-tests of the per-lock linearizability check: hand-built good
//! histories that must pass, bad ones that must be flagged (with the right
//! label), the window and budget limits, and a differential test against a
//! direct greedy check on random exclusive-lock histories.

use super::*;
use crate::checks::check_all;
use crate::checks::history_builder::H;
use crate::history::{AcquireResult, ModeKind, Record};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

const X: ModeKind = ModeKind::Exclusive;
const S: ModeKind = ModeKind::Shared;
const SEM: ModeKind = ModeKind::Semaphore(2);

fn props(records: &[Record]) -> Vec<&'static str> {
    linearizability(records)
        .iter()
        .map(|v| v.property)
        .collect()
}

fn failed() -> AcquireResult {
    AcquireResult::Failed {
        error: "no answer in time".into(),
    }
}

#[test]
fn sequential_hand_over_passes() {
    let h = H::default()
        .l_grant(1, X, (0, 10), 5, 3_000)
        .l_release(100, 1, 5)
        .l_grant(2, X, (50, 150), 9, 4_000)
        .l_release(200, 2, 9)
        .l_grant(1, X, (300, 310), 12, 5_000)
        .sorted();
    assert_eq!(linearizability(&h), vec![]);
    let stats = linearizability_stats(&h);
    assert_eq!(stats.grants_checked, 3);
    assert_eq!(stats.windows_unchecked, 0);
    // A lease that ran out frees the lock without a release.
    let lapsed = H::default()
        .l_grant(1, X, (0, 10), 5, 2_000)
        .l_grant(2, X, (100, 2_500), 9, 6_000)
        .sorted();
    assert_eq!(linearizability(&lapsed), vec![]);
}

#[test]
fn overlapping_acquires_pass_when_one_order_works() {
    // A asks first but is answered last, with the higher token: B's whole
    // hold fits inside A's wait.
    let h = H::default()
        .l_grant(1, X, (0, 100), 9, 5_000)
        .l_grant(2, X, (10, 50), 5, 5_000)
        .l_release(60, 2, 5)
        .sorted();
    assert_eq!(linearizability(&h), vec![]);
    // Three concurrent waiters served in token order, each release
    // letting the next one in before it is answered.
    let h = H::default()
        .l_grant(1, X, (0, 20), 3, 9_000)
        .l_grant(2, X, (5, 40), 4, 9_000)
        .l_grant(3, X, (6, 60), 6, 9_000)
        .l_release(25, 1, 3)
        .l_release(45, 2, 4)
        .sorted();
    assert_eq!(linearizability(&h), vec![]);
}

#[test]
fn ambiguous_and_refused_acquires_never_fail_a_window() {
    let h = H::default()
        // May have been granted (and then leaked): it must not block B.
        .acquire(1, "L", X, (0, 40), failed(), Some(9_000))
        .l_grant(2, X, (10, 30), 5, 9_000)
        .acquire(3, "L", X, (12, 14), AcquireResult::NotGranted, Some(9_000))
        .l_release(45, 2, 5)
        .l_grant(3, X, (50, 60), 7, 9_000)
        .sorted();
    assert_eq!(linearizability(&h), vec![]);
}

#[test]
fn two_exclusive_holds_at_once_are_flagged() {
    // B is granted while A holds and believes its lease: only an early
    // expiry could explain it.
    let h = H::default()
        .l_grant(1, X, (0, 10), 5, 3_000)
        .l_grant(2, X, (20, 30), 9, 3_000)
        .sorted();
    assert_eq!(props(&h), vec!["no_early_release"]);
    // Concurrent grants of one token: no lease can explain that.
    let h = H::default()
        .l_grant(1, X, (0, 10), 5, 3_000)
        .l_grant(2, X, (5, 12), 5, 3_000)
        .sorted();
    assert_eq!(props(&h), vec!["linearizability"]);
}

#[test]
fn a_token_not_above_an_earlier_grant_is_flagged() {
    let h = H::default()
        .l_grant(1, X, (0, 10), 9, 1_000)
        .l_release(20, 1, 9)
        .l_grant(2, X, (30, 40), 7, 1_000)
        .sorted();
    assert_eq!(props(&h), vec!["linearizability"]);
    // Also through everything check_all runs, next to the pairwise check.
    let all: Vec<_> = check_all(&h).iter().map(|v| v.property).collect();
    assert!(all.contains(&"fencing") && all.contains(&"linearizability"));
    // Equal tokens for two exclusive grants in sequence.
    let h = H::default()
        .l_grant(1, X, (0, 10), 9, 1_000)
        .l_release(20, 1, 9)
        .l_grant(2, X, (30, 40), 9, 1_000)
        .sorted();
    assert_eq!(props(&h), vec!["linearizability"]);
}

#[test]
fn a_grant_answered_before_the_release_it_needs_is_flagged() {
    // B could only follow A's release, but was answered before A started
    // releasing, while A's lease still ran.
    let h = H::default()
        .l_grant(1, X, (0, 10), 5, 3_000)
        .l_grant(2, X, (5, 15), 9, 3_000)
        .l_release(20, 1, 5)
        .sorted();
    assert_eq!(props(&h), vec!["no_early_release"]);
    // The same with A's lease already over at 12: fine.
    let h = H::default()
        .l_grant(1, X, (0, 10), 5, 12)
        .l_grant(2, X, (5, 15), 9, 3_000)
        .l_release(20, 1, 5)
        .sorted();
    assert_eq!(linearizability(&h), vec![]);
}

#[test]
fn a_hold_is_carried_into_later_windows() {
    // A's grant and B's are in separate windows; A still holds (release at
    // 4 000, lease to 5 000) when B is answered.
    let h = H::default()
        .l_grant(1, X, (0, 10), 5, 5_000)
        .l_release(4_000, 1, 5)
        .l_grant(2, X, (1_000, 1_100), 9, 9_000)
        .sorted();
    assert_eq!(props(&h), vec!["no_early_release"]);
    assert_eq!(linearizability_stats(&h).windows_checked, 2);
    // Answered after A's release began: fine.
    let h = H::default()
        .l_grant(1, X, (0, 10), 5, 5_000)
        .l_release(4_000, 1, 5)
        .l_grant(2, X, (1_000, 4_100), 9, 9_000)
        .sorted();
    assert_eq!(linearizability(&h), vec![]);
    // A token below one of an earlier window.
    let h = H::default()
        .l_grant(1, X, (0, 10), 5, 50)
        .l_grant(2, X, (1_000, 1_100), 4, 9_000)
        .sorted();
    assert_eq!(props(&h), vec!["linearizability"]);
}

#[test]
fn readers_and_semaphores_follow_their_modes() {
    // Two readers granted by one entry share its token; a third joins.
    let h = H::default()
        .l_grant(1, S, (0, 10), 7, 5_000)
        .l_grant(2, S, (0, 12), 7, 5_000)
        .l_grant(3, S, (20, 30), 8, 5_000)
        .sorted();
    assert_eq!(linearizability(&h), vec![]);
    // A writer while a reader holds.
    let h = H::default()
        .l_grant(1, S, (0, 10), 7, 5_000)
        .l_grant(2, X, (20, 30), 8, 5_000)
        .sorted();
    assert_eq!(props(&h), vec!["no_early_release"]);
    // Two permits: two holders fit, a third does not.
    let two = H::default()
        .l_grant(1, SEM, (0, 10), 3, 5_000)
        .l_grant(2, SEM, (20, 30), 4, 5_000)
        .sorted();
    assert_eq!(linearizability(&two), vec![]);
    let three = H::default()
        .l_grant(1, SEM, (0, 10), 3, 5_000)
        .l_grant(2, SEM, (20, 30), 4, 5_000)
        .l_grant(3, SEM, (40, 50), 6, 5_000)
        .sorted();
    assert_eq!(props(&three), vec!["no_early_release"]);
}

#[test]
fn big_windows_and_long_searches_are_left_unchecked() {
    // Twenty mutually overlapping grants in token order, each released.
    let mut b = H::default();
    for k in 0..20 {
        b.l_grant(k + 1, X, (k, 1_000 + k), 100 + k, 9_000);
        b.l_release(1_100 + k, k + 1, 100 + k);
    }
    let h = b.sorted();
    // Sorted by time, grants are answered in token order only if each
    // release may come before the next answer: they do not here, so the
    // window is bad; a tiny window cap or budget must hide that.
    let (v, stats) = check(&h, 10, STEP_BUDGET);
    assert_eq!(
        (v.len(), stats.windows_unchecked, stats.windows_checked),
        (0, 1, 0)
    );
    let (v, stats) = check(&h, MAX_WINDOW_OPS, 5);
    assert_eq!((v.len(), stats.windows_unchecked), (0, 1));
    let (v, stats) = check(&h, MAX_WINDOW_OPS, STEP_BUDGET);
    assert_eq!((v.len(), stats.windows_checked), (1, 1));
}

/// One random exclusive hold: times are distinct multiples of 100.
#[derive(Clone, Copy, Debug)]
struct G {
    inv: u64,
    ret: u64,
    rel: Option<u64>,
    deadline: Option<u64>,
    token: u64,
}

/// The direct check for exclusive holds: in token order, each grant at the
/// earliest point after its invoke, after the previous grant and after the
/// previous hold could end (points step by 2 between events 100 apart).
fn greedy(gs: &[G], trust_leases: bool) -> bool {
    let mut gs = gs.to_vec();
    gs.sort_by_key(|g| g.token);
    if gs.windows(2).any(|w| w[0].token == w[1].token) {
        return false;
    }
    let mut after: Option<u64> = None;
    for g in gs {
        let p = after.map_or(g.inv, |a| g.inv.max(a + 2));
        if p > g.ret {
            return false;
        }
        let free = if trust_leases {
            g.rel
                .unwrap_or(u64::MAX)
                .min(g.deadline.unwrap_or(g.inv))
                .max(g.inv)
        } else {
            g.inv
        };
        after = Some(p.max(free));
    }
    true
}

#[test]
fn agrees_with_a_direct_check_on_random_histories() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (mut bad, mut lease_bad) = (0, 0);
    for _ in 0..4_000 {
        let n = 1 + rng.next_u64() % 7;
        let mut used = BTreeSet::new();
        let mut time = |rng: &mut ChaCha8Rng| loop {
            let t = (1 + rng.next_u64() % 400) * 100;
            if used.insert(t) {
                return t;
            }
        };
        let mut gs = Vec::new();
        for k in 0..n {
            let mut three = [time(&mut rng), time(&mut rng), time(&mut rng)];
            three.sort_unstable();
            gs.push(G {
                inv: three[0],
                ret: three[1],
                rel: (rng.next_u64() % 3 != 0).then_some(three[2]),
                deadline: (rng.next_u64() % 4 != 0).then(|| time(&mut rng)),
                // Mostly increasing with the index, sometimes not.
                token: 10 * k + rng.next_u64() % 25,
            });
        }
        let mut b = H::default();
        for (k, g) in gs.iter().enumerate() {
            let session = k as u64 + 1;
            let result = AcquireResult::Granted { token: g.token };
            b.acquire(session, "L", X, (g.inv, g.ret), result, g.deadline);
            if let Some(r) = g.rel {
                b.l_release(r, session, g.token);
            }
        }
        let h = b.sorted();
        let v = linearizability(&h);
        let ok = greedy(&gs, true);
        assert_eq!(v.is_empty(), ok, "{gs:?}: {v:?}");
        let lease_free_ok = greedy(&gs, false);
        let flagged = v.iter().any(|v| v.property == "linearizability");
        assert_eq!(flagged, !lease_free_ok, "{gs:?}: {v:?}");
        bad += u32::from(!ok);
        lease_bad += u32::from(!lease_free_ok);
    }
    // Both verdicts came up often enough to mean something.
    assert!(
        bad > 500 && lease_bad > 200 && bad < 3_500,
        "{bad} {lease_bad}"
    );
}
