//! Per-lock linearizability: the black-box check of SIMULATION.md §5.7,
//! which cross-checks the pairwise checkers (`token_order`,
//! `no_early_release`) with a search for a legal sequential order.
//!
//! A history is linearizable iff the sub-history of every lock is
//! (P-compositionality), so each lock is checked alone. Its granted
//! acquires are cut into windows at quiescent points (no grant in flight),
//! and each window is searched with the Wing–Gong–Lowe algorithm as
//! porcupine runs it: call and return entries in a doubly linked list in
//! time order, an op is "lifted" out of the list when it is linearized and
//! put back on backtracking, and a cache of (linearized set, model state)
//! pairs already explored keeps the search from repeating itself. A window
//! starts from what the earlier ones must have left: the highest earlier
//! token, and as holders every earlier hold that cannot have ended yet.
//!
//! **The model** of one lock: the set of current holders and the last
//! token granted. `Grant` (an acquire answered `Granted { token }`) is legal
//! iff the mode fits beside the holders (exclusive: none; shared: readers
//! only; semaphore of `n`: fewer than `n`) and the token is above the last
//! one, or equal to it when neither grant is exclusive (several waiters
//! granted by one log entry share its index as their token). `Free` ends a
//! hold: it stands for the holder's release and for its session's expiry,
//! whichever comes first, so it may take effect at any time after the
//! earlier of the release invoke and the latest lease deadline the holder
//! believed (the cluster may not expire a session before that, SIMULATION.md §5.3). A
//! free has no return: it may also happen after everything else.
//!
//! **Left out, soundly:** an acquire answered `NotGranted` changes nothing
//! in any state; an ambiguous (`Failed`) one may have done nothing, and a
//! state where it did nothing is at least as permissive as any state where
//! it granted (fewer holders, a lower last token). Neither can make a
//! window fail, so they are not searched. Neither are writes: the resource
//! has its own checker.
//!
//! **Labels:** a window that fails is searched again with leases not
//! trusted (any hold may end right after its grant). If that passes, the
//! only way out was an expiry before a believed deadline, which is the
//! no-early-release property (SIMULATION.md §5.3) and is reported under that name, so
//! that runs with clocks beyond their bound file it as an assumption
//! breach; otherwise it is reported as `linearizability`.
//!
//! **Bounds:** windows of more than [`MAX_WINDOW_OPS`] operations, and
//! searches that take more than [`STEP_BUDGET`] steps, are skipped and
//! counted as unchecked in [`LinStats`], never reported.

use super::{Hold, Violation, holds, violation};
use crate::history::{ModeKind, Record};
use std::collections::{BTreeMap, BTreeSet};

/// Largest window searched, in operations (grants, frees, and frees of
/// holds carried in from earlier windows). The linearized set is a `u128`.
pub(super) const MAX_WINDOW_OPS: usize = 60;

/// Most search steps spent on one window before it is left unchecked.
pub(super) const STEP_BUDGET: u64 = 200_000;

/// What the check covered: runs report it in their coverage, so that a
/// pass with every window skipped shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinStats {
    /// Windows searched to a verdict.
    pub windows_checked: u64,
    /// Windows skipped: too many operations, or out of steps.
    pub windows_unchecked: u64,
    /// Grants inside checked windows.
    pub grants_checked: u64,
}

impl LinStats {
    /// The non-zero counts, under coverage keys.
    #[must_use]
    pub fn coverage(&self) -> Vec<(&'static str, u64)> {
        [
            ("lin_windows_checked", self.windows_checked),
            ("lin_windows_unchecked", self.windows_unchecked),
            ("lin_grants_checked", self.grants_checked),
        ]
        .into_iter()
        .filter(|(_, v)| *v > 0)
        .collect()
    }
}

/// The per-lock linearizability check: its violations.
#[must_use]
pub fn linearizability(records: &[Record]) -> Vec<Violation> {
    check(records, MAX_WINDOW_OPS, STEP_BUDGET).0
}

/// What [`linearizability`] checked and skipped.
#[must_use]
pub fn linearizability_stats(records: &[Record]) -> LinStats {
    check(records, MAX_WINDOW_OPS, STEP_BUDGET).1
}

/// One hold as the search sees it.
#[derive(Clone, Copy, Debug)]
struct WHold {
    session: u64,
    mode: ModeKind,
    token: u64,
    invoked: u64,
    returned: u64,
    /// When its `Free` may first take effect.
    free_at: u64,
}

/// An operation of a window, naming its hold by index.
#[derive(Clone, Copy, Debug)]
enum Op {
    Grant(usize),
    Free(usize),
}

/// The model's state. `held` is a bit set over the window's holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct State {
    held: u128,
    last: Option<u64>,
    /// Whether the grant that set `last` was not exclusive (a later
    /// non-exclusive grant may then share its token).
    last_shared: bool,
}

/// When a hold's `Free` may first happen: at its release invoke, or when
/// its session may have expired; `trust_leases` off means at any time.
fn free_at(h: &Hold, trust_leases: bool) -> u64 {
    if !trust_leases {
        return h.invoked;
    }
    // No deadline ever seen: the session may lapse at any time.
    let lapse = h.max_deadline.unwrap_or(h.invoked);
    h.released.min(lapse).max(h.invoked)
}

fn bit(j: usize) -> u128 {
    1u128
        .checked_shl(u32::try_from(j).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

/// Whether a grant of `mode` fits beside the holders in `held`.
fn fits(holds: &[WHold], held: u128, mode: ModeKind) -> bool {
    let mut count = 0u64;
    for (j, h) in holds.iter().enumerate() {
        if held & bit(j) == 0 {
            continue;
        }
        count += 1;
        let together = matches!(
            (mode, h.mode),
            (ModeKind::Shared, ModeKind::Shared) | (ModeKind::Semaphore(_), ModeKind::Semaphore(_))
        );
        if !together {
            return false;
        }
    }
    match mode {
        ModeKind::Semaphore(n) => count < u64::from(n),
        _ => true,
    }
}

/// The model's transition, or `None` when `op` is illegal in `s`.
fn step(holds: &[WHold], s: State, op: Op) -> Option<State> {
    match op {
        Op::Free(j) => {
            // Only a current hold can end; a free placed before its grant
            // would be a wasted no-op, so it is not offered.
            (s.held & bit(j) != 0).then_some(State {
                held: s.held & !bit(j),
                ..s
            })
        }
        Op::Grant(j) => {
            let h = holds.get(j)?;
            let shared = h.mode != ModeKind::Exclusive;
            let newer = s
                .last
                .is_none_or(|l| h.token > l || (h.token == l && shared && s.last_shared));
            (newer && fits(holds, s.held, h.mode)).then_some(State {
                held: s.held | bit(j),
                last: Some(h.token),
                last_shared: shared,
            })
        }
    }
}

/// The outcome of one window's search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Linearizable,
    /// No order exists; the deepest the search got, and the operation
    /// whose return it could not get past there.
    Not {
        depth: u32,
        stuck: Option<usize>,
    },
    GaveUp,
}

/// Wing–Gong–Lowe with memoization over `ops`, starting from `init`.
fn search(holds: &[WHold], ops: &[Op], init: State, budget: u64) -> Verdict {
    let n = ops.len();
    if n > 128 {
        return Verdict::GaveUp;
    }
    // Node 2i is the call of op i, 2i+1 its return; then head and tail.
    let (head, tail) = (2 * n, 2 * n + 1);
    let time = |node: usize| -> (u64, bool, usize) {
        let i = node / 2;
        let is_return = node % 2 == 1;
        let t = match ops.get(i) {
            Some(Op::Grant(j)) => holds
                .get(*j)
                .map_or(0, |h| if is_return { h.returned } else { h.invoked }),
            Some(Op::Free(j)) if !is_return => holds.get(*j).map_or(0, |h| h.free_at),
            _ => u64::MAX,
        };
        // At equal times calls come first: ops that touch are concurrent.
        (t, is_return, i)
    };
    let mut order: Vec<usize> = (0..2 * n).collect();
    order.sort_by_key(|&node| time(node));
    let mut next = vec![tail; 2 * n + 2];
    let mut prev = vec![head; 2 * n + 2];
    let mut before = head;
    for &node in &order {
        next[before] = node;
        prev[node] = before;
        before = node;
    }
    next[before] = tail;
    prev[tail] = before;

    let unlink = |next: &mut [usize], prev: &mut [usize], x: usize| {
        let (p, q) = (prev[x], next[x]);
        next[p] = q;
        prev[q] = p;
    };
    let relink = |next: &mut [usize], prev: &mut [usize], x: usize| {
        let (p, q) = (prev[x], next[x]);
        next[p] = x;
        prev[q] = x;
    };

    let mut state = init;
    let mut linearized: u128 = 0;
    let mut choices: Vec<(usize, State)> = Vec::new();
    let mut seen: BTreeSet<(u128, State)> = BTreeSet::new();
    let mut best: Option<(u32, Option<usize>)> = None;
    let mut steps = 0u64;
    let mut entry = next[head];
    while next[head] != tail {
        steps += 1;
        if steps > budget {
            return Verdict::GaveUp;
        }
        let is_call = entry != tail && entry % 2 == 0;
        if is_call {
            let i = entry / 2;
            if let Some(s) = ops.get(i).and_then(|op| step(holds, state, *op)) {
                let lin = linearized | bit(i);
                if seen.insert((lin, s)) {
                    choices.push((entry, state));
                    state = s;
                    linearized = lin;
                    // Lift: the call, then its return (restored in reverse).
                    unlink(&mut next, &mut prev, entry);
                    unlink(&mut next, &mut prev, entry + 1);
                    entry = next[head];
                    continue;
                }
            }
            entry = next[entry];
        } else {
            // A return (or the end) reached with its op not linearized:
            // undo the most recent choice and try the next one.
            let depth = linearized.count_ones();
            if best.is_none_or(|(d, _)| depth > d) {
                best = Some((depth, (entry != tail).then_some(entry / 2)));
            }
            let Some((call, s)) = choices.pop() else {
                let (depth, stuck) = best.unwrap_or((0, None));
                return Verdict::Not { depth, stuck };
            };
            relink(&mut next, &mut prev, call + 1);
            relink(&mut next, &mut prev, call);
            state = s;
            linearized &= !bit(call / 2);
            entry = next[call];
        }
    }
    Verdict::Linearizable
}

/// One window, ready to search.
struct Window {
    /// Holds carried in from earlier windows first, then the window's own.
    holds: Vec<WHold>,
    carried: usize,
    ops: Vec<Op>,
    init: State,
}

impl Window {
    fn build(own: &[&Hold], carried: &[&Hold], start: State, trust: bool) -> Self {
        let mut w = Self {
            holds: Vec::new(),
            carried: carried.len(),
            ops: Vec::new(),
            init: start,
        };
        for (j, h) in carried.iter().chain(own).enumerate() {
            w.holds.push(WHold {
                session: h.session,
                mode: h.mode,
                token: h.token,
                invoked: h.invoked,
                returned: h.returned,
                free_at: free_at(h, trust),
            });
            if j < carried.len() {
                w.init.held |= bit(j);
            } else {
                w.ops.push(Op::Grant(j));
            }
            w.ops.push(Op::Free(j));
        }
        w
    }

    fn search(&self, budget: u64) -> Verdict {
        search(&self.holds, &self.ops, self.init, budget)
    }
}

/// Checks every lock; the violations and what was covered.
pub(super) fn check(records: &[Record], max_ops: usize, budget: u64) -> (Vec<Violation>, LinStats) {
    let all = holds(records);
    let mut by_lock: BTreeMap<&str, Vec<&Hold>> = BTreeMap::new();
    for h in &all {
        by_lock.entry(&h.lock).or_default().push(h);
    }
    let mut out = Vec::new();
    let mut stats = LinStats::default();
    for (lock, hs) in by_lock {
        check_lock(lock, hs, max_ops.min(128), budget, &mut out, &mut stats);
    }
    (out, stats)
}

fn check_lock(
    lock: &str,
    mut hs: Vec<&Hold>,
    max_ops: usize,
    budget: u64,
    out: &mut Vec<Violation>,
    stats: &mut LinStats,
) {
    hs.sort_by_key(|h| (h.invoked, h.returned, h.token, h.session));
    // Earlier holds that may still be held, and what the earlier grants
    // left as the last token.
    let mut live: Vec<&Hold> = Vec::new();
    let mut start = State {
        held: 0,
        last: None,
        last_shared: false,
    };
    let mut i = 0;
    while i < hs.len() {
        let first = i;
        let mut end = hs[i].returned;
        i += 1;
        while let Some(h) = hs.get(i) {
            if h.invoked > end {
                break;
            }
            end = end.max(h.returned);
            i += 1;
        }
        let window = &hs[first..i];
        let tau = hs[first].invoked;
        // Every earlier grant returned before `tau`, so it is linearized
        // before the window. One whose free may come before `tau` is taken
        // as freed (fewer holders only admit more); one whose free cannot
        // is surely still held and enters the window as a holder.
        live.retain(|h| free_at(h, true) >= tau);
        let strict = Window::build(window, &live, start, true);
        if strict.ops.len() > max_ops {
            stats.windows_unchecked += 1;
        } else {
            match strict.search(budget) {
                Verdict::Linearizable => {
                    stats.windows_checked += 1;
                    stats.grants_checked += window.len() as u64;
                }
                Verdict::GaveUp => stats.windows_unchecked += 1,
                Verdict::Not { depth, stuck } => {
                    stats.windows_checked += 1;
                    stats.grants_checked += window.len() as u64;
                    // Out of steps counts as passing: the safe side when
                    // clocks may be beyond their bound.
                    let lenient = Window::build(window, &[], start, false);
                    let lease_only = !matches!(lenient.search(budget), Verdict::Not { .. });
                    out.push(report(lock, &strict, (depth, stuck), end, lease_only));
                }
            }
        }
        for h in window {
            let shared = h.mode != ModeKind::Exclusive;
            match start.last {
                Some(l) if l > h.token => {}
                Some(l) if l == h.token => start.last_shared |= shared,
                _ => {
                    start.last = Some(h.token);
                    start.last_shared = shared;
                }
            }
        }
        live.extend(window);
    }
}

fn describe(holds: &[WHold], op: Op) -> String {
    match op {
        Op::Grant(j) => holds.get(j).map_or_else(String::new, |h| {
            format!(
                "the grant of token {} to session {} ({:?}, t={}..{})",
                h.token, h.session, h.mode, h.invoked, h.returned
            )
        }),
        Op::Free(j) => holds.get(j).map_or_else(String::new, |h| {
            format!(
                "the end of session {}'s hold of token {} (possible from t={})",
                h.session, h.token, h.free_at
            )
        }),
    }
}

/// The violation for a window with no legal order: where the search got
/// stuck, and the holds involved.
fn report(
    lock: &str,
    w: &Window,
    (depth, stuck): (u32, Option<usize>),
    end: u64,
    lease_only: bool,
) -> Violation {
    let stuck_op = stuck.and_then(|i| w.ops.get(i).copied());
    let t = match stuck_op {
        Some(Op::Grant(j)) => w.holds.get(j).map_or(end, |h| h.returned),
        _ => end,
    };
    let listed: Vec<String> = w
        .holds
        .iter()
        .take(8)
        .enumerate()
        .map(|(j, h)| {
            format!(
                "{}s{} #{} {}..{} free from {}",
                if j < w.carried { "held: " } else { "" },
                h.session,
                h.token,
                h.invoked,
                h.returned,
                h.free_at
            )
        })
        .collect();
    let more = if w.holds.len() > 8 { ", ..." } else { "" };
    let stuck_text = stuck_op.map_or_else(|| "the end".to_owned(), |op| describe(&w.holds, op));
    let before = w
        .init
        .last
        .map_or_else(String::new, |l| format!(" after token {l} was granted"));
    let (property, why) = if lease_only {
        (
            "no_early_release",
            " (it has one only if a session lost the lock before its believed lease deadline)",
        )
    } else {
        ("linearizability", "")
    };
    violation(
        property,
        t,
        format!(
            "per-lock linearizability: {lock}: {} operations{before} have no legal order{why}; the search placed {depth} and could not get past {stuck_text}; holds: [{}{more}]",
            w.ops.len(),
            listed.join(", ")
        ),
    )
}

#[cfg(test)]
#[path = "linearizable_tests.rs"]
mod tests;
