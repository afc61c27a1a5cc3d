//! Checkers over a recorded [`History`](crate::history::History)
//! (SIMULATION.md §5): each takes the records in order and returns the
//! violations it finds. They only trust what clients saw (invoke and return
//! times, tokens, their own lease deadlines) and what the resource saw, so
//! a buggy server cannot hide a violation by lying in its own logs.
//!
//! * [`resource_exclusion`] — SIMULATION.md §5.1 at the fenced resource.
//! * [`token_order`] — SIMULATION.md §5.2: one exclusive holder per token; tokens of a
//!   lock strictly increase in real-time order, also across whole-cluster
//!   restarts (reported as `durability`, SIMULATION.md §5.2).
//! * [`no_early_release`] — SIMULATION.md §5.3: no conflicting grant returns while an
//!   earlier holder still claims the lock and its lease deadline (counted
//!   from a keepalive the cluster acknowledged) lies after that return.
//! * [`liveness`] — SIMULATION.md §5.5: every probe after the heal was granted in time.
//! * [`catch_up`] — after the heal, every voter (but one whose disk was
//!   destroyed) replicates the log again.
//! * [`raft_baseline`] — at most one leader per term.
//! * [`server_health`] — no disk-contract breach; no server stopped for a
//!   reason other than an injected storage failure.
//! * [`island_changes`] — no membership change asked of an isolated
//!   leader is reported committed (S12).
//! * [`rogue_term`] — no server adopts the term of a rogue peer (S19).
//! * [`corrupt_servers`] — a server that found its disk corrupt never
//!   runs Raft again (S15).
//! * [`exactly_once`] — a retried request gets its first answer again
//! * [`release_delays`] — an explicit release starts no lock-delay
//! * [`lock_delay_handoffs`] — a lock lost by expiry is not granted again
//!   within the lock-delay (S18).
//! * [`stale_reads`] — token checks answer as a linearizable read would
//!   (S3).
//! * [`witness`] — SIMULATION.md §5.4: the committed log (replayed after the run) holds
//!   every grant clients were told of, and only grants someone asked for.
//! * [`linearizability`] — §4: per lock, a Wing–Gong–Lowe search for a
//!   legal order of the grants and their ends (`linearizable.rs`).

use crate::history::{AcquireResult, Ev, ModeKind, Record};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

mod linearizable;
pub use linearizable::{LinStats, linearizability, linearizability_stats};

/// One broken property.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Which property (`mutual_exclusion`, `fencing`, `no_early_release`...).
    pub property: &'static str,
    /// True time (µs) of the record that showed it.
    pub t: u64,
    /// What happened.
    pub detail: String,
}

fn violation(property: &'static str, t: u64, detail: String) -> Violation {
    Violation {
        property,
        t,
        detail,
    }
}

/// A granted acquire and what its holder did and believed.
#[derive(Clone, Debug)]
pub struct Hold {
    /// The session.
    pub session: u64,
    /// The lock.
    pub lock: String,
    /// The mode.
    pub mode: ModeKind,
    /// The token.
    pub token: u64,
    /// When the acquire was sent.
    pub invoked: u64,
    /// When the grant came back.
    pub returned: u64,
    /// When the holder stopped claiming the lock (`u64::MAX`: never).
    pub released: u64,
    /// The latest lease deadline the holder saw while claiming the lock.
    pub max_deadline: Option<u64>,
}

/// Joins acquires, beliefs and releases into [`Hold`]s, in grant order.
#[must_use]
pub fn holds(records: &[Record]) -> Vec<Hold> {
    let mut invokes: BTreeMap<u64, (u64, u64, String, ModeKind)> = BTreeMap::new();
    let mut out: Vec<Hold> = Vec::new();
    // (session, lock, token) → index into `out` of the open claim.
    let mut open: BTreeMap<(u64, String, u64), usize> = BTreeMap::new();
    for r in records {
        match &r.ev {
            Ev::AcquireInvoke {
                op,
                session,
                lock,
                mode,
                ..
            } => {
                invokes.insert(*op, (r.t, *session, lock.clone(), *mode));
            }
            Ev::AcquireReturn {
                op,
                result: AcquireResult::Granted { token },
                deadline,
            } => {
                if let Some((invoked, session, lock, mode)) = invokes.remove(op) {
                    open.insert((session, lock.clone(), *token), out.len());
                    out.push(Hold {
                        session,
                        lock,
                        mode,
                        token: *token,
                        invoked,
                        returned: r.t,
                        released: u64::MAX,
                        max_deadline: *deadline,
                    });
                }
            }
            Ev::Belief {
                session,
                lock,
                token,
                deadline,
            } => {
                if let Some(&i) = open.get(&(*session, lock.clone(), *token)) {
                    out[i].max_deadline = out[i].max_deadline.max(*deadline);
                }
            }
            Ev::ReleaseInvoke {
                session,
                lock,
                token,
            } => {
                if let Some(i) = open.remove(&(*session, lock.clone(), *token)) {
                    out[i].released = r.t;
                }
            }
            _ => {}
        }
    }
    out
}

/// SIMULATION.md §5.1: the resource accepts a token only if it is at least the highest
/// it accepted for the lock, and one token is used by one session only.
#[must_use]
pub fn resource_exclusion(records: &[Record]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut highest: BTreeMap<&str, u64> = BTreeMap::new();
    let mut owner: BTreeMap<(&str, u64), u64> = BTreeMap::new();
    for r in records {
        let Ev::Write {
            session,
            lock,
            token,
            accepted: true,
            ..
        } = &r.ev
        else {
            continue;
        };
        if let Some(&h) = highest.get(lock.as_str()) {
            if *token < h {
                out.push(violation(
                    "mutual_exclusion",
                    r.t,
                    format!("resource accepted {lock} token {token} after token {h}"),
                ));
            }
        }
        let h = highest.entry(lock).or_insert(*token);
        *h = (*h).max(*token);
        match owner.get(&(lock.as_str(), *token)) {
            Some(&o) if o != *session => out.push(violation(
                "mutual_exclusion",
                r.t,
                format!("resource accepted {lock} token {token} from sessions {o} and {session}"),
            )),
            _ => {
                owner.insert((lock, *token), *session);
            }
        }
    }
    out
}

/// SIMULATION.md §5.2 and SIMULATION.md §5.2: an exclusive token belongs to one session; a grant
/// invoked after another returned carries a higher token (labelled
/// `durability` when a whole-cluster restart lies between them).
#[must_use]
pub fn token_order(records: &[Record]) -> Vec<Violation> {
    let holds = holds(records);
    let restarts: Vec<u64> = records
        .iter()
        .filter(|r| matches!(r.ev, Ev::ClusterRestart))
        .map(|r| r.t)
        .collect();
    let mut out = Vec::new();
    let mut by_lock: BTreeMap<&str, Vec<&Hold>> = BTreeMap::new();
    for h in &holds {
        by_lock.entry(&h.lock).or_default().push(h);
    }
    for (lock, hs) in by_lock {
        let mut sessions: BTreeMap<u64, (BTreeSet<u64>, bool)> = BTreeMap::new();
        for h in &hs {
            let e = sessions.entry(h.token).or_default();
            e.0.insert(h.session);
            e.1 |= h.mode == ModeKind::Exclusive;
        }
        for (token, (s, exclusive)) in &sessions {
            if *exclusive && s.len() > 1 {
                out.push(violation(
                    "fencing",
                    0,
                    format!("{lock} token {token} granted to sessions {s:?}, one exclusively"),
                ));
            }
        }
        // Real-time order: sweep invokes, folding in every grant that
        // returned before each invoke.
        let mut returned: Vec<&Hold> = hs.clone();
        returned.sort_by_key(|h| h.returned);
        let mut invoked: Vec<&Hold> = hs;
        invoked.sort_by_key(|h| h.invoked);
        let mut best: Option<&Hold> = None;
        let mut i = 0;
        for g in invoked {
            while i < returned.len() && returned[i].returned < g.invoked {
                if best.is_none_or(|b| returned[i].token > b.token) {
                    best = Some(returned[i]);
                }
                i += 1;
            }
            if let Some(b) = best {
                if b.token >= g.token {
                    let across = restarts.iter().any(|&r| b.returned < r && r < g.invoked);
                    out.push(violation(
                        if across { "durability" } else { "fencing" },
                        g.returned,
                        format!(
                            "{lock}: token {} (session {}, invoked t={}) is not above token {} returned earlier (session {}, t={}){}",
                            g.token,
                            g.session,
                            g.invoked,
                            b.token,
                            b.session,
                            b.returned,
                            if across { " across a whole-cluster restart" } else { "" }
                        ),
                    ));
                }
            }
        }
    }
    out
}

fn conflict(a: ModeKind, b: ModeKind) -> bool {
    match (a, b) {
        (ModeKind::Shared, ModeKind::Shared) => false,
        // Semaphores admit several holders; pairs cannot tell.
        (ModeKind::Semaphore(_), _) | (_, ModeKind::Semaphore(_)) => false,
        _ => true,
    }
}

/// SIMULATION.md §5.3: a conflicting grant to another session must not come back while
/// the earlier holder still claims the lock and believes its lease runs
/// past that moment. The belief comes from acknowledged keepalives counted
/// from their send time, so a correct cluster cannot have expired the
/// session before it.
#[must_use]
pub fn no_early_release(records: &[Record]) -> Vec<Violation> {
    let holds = holds(records);
    let mut out = Vec::new();
    let mut by_lock: BTreeMap<&str, Vec<&Hold>> = BTreeMap::new();
    for h in &holds {
        by_lock.entry(&h.lock).or_default().push(h);
    }
    for (lock, mut hs) in by_lock {
        hs.sort_by_key(|h| h.token);
        for (j, b) in hs.iter().enumerate() {
            for a in hs[..j].iter().rev() {
                if a.token >= b.token || a.session == b.session || !conflict(a.mode, b.mode) {
                    continue;
                }
                let Some(d) = a.max_deadline else { continue };
                if b.returned < a.released && d > b.returned {
                    out.push(violation(
                        "no_early_release",
                        b.returned,
                        format!(
                            "{lock}: session {} got token {} at t={} while session {} still held token {} with a lease believed valid until t={d}",
                            b.session, b.token, b.returned, a.session, a.token
                        ),
                    ));
                }
            }
        }
    }
    out
}

/// SIMULATION.md §5.5: every probe after the heal was granted within the bound.
#[must_use]
pub fn liveness(records: &[Record]) -> Vec<Violation> {
    records
        .iter()
        .filter_map(|r| match &r.ev {
            Ev::Probe {
                lock,
                granted: false,
                after_us,
            } => Some(violation(
                "liveness",
                r.t,
                format!(
                    "{lock} not acquirable {} ms after the heal",
                    after_us / 1000
                ),
            )),
            _ => None,
        })
        .collect()
}

/// After the heal every voter catches up: a server that restarted behind,
/// or missed configuration changes, gets the log again (rolling updates).
#[must_use]
pub fn catch_up(records: &[Record]) -> Vec<Violation> {
    records
        .iter()
        .filter_map(|r| match &r.ev {
            Ev::CatchUp { lagging, after_us } if !lagging.is_empty() => Some(violation(
                "catch_up",
                r.t,
                format!(
                    "voters {lagging:?} still behind the commit index {} ms after the heal",
                    after_us / 1000
                ),
            )),
            _ => None,
        })
        .collect()
}

/// Raft: at most one leader per term.
#[must_use]
pub fn raft_baseline(records: &[Record]) -> Vec<Violation> {
    let mut leaders: BTreeMap<u64, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for r in records {
        if let Ev::Role { node, role, term } = &r.ev {
            if role != "Leader" {
                continue;
            }
            match leaders.get(term) {
                Some(&other) if other != *node => out.push(violation(
                    "election_safety",
                    r.t,
                    format!("s{other} and s{node} both led term {term}"),
                )),
                _ => {
                    leaders.insert(*term, *node);
                }
            }
        }
    }
    out
}

/// Disk-contract breaches; servers that stopped for anything but a storage
/// failure (an injected fault makes those expected: fail-stop).
#[must_use]
pub fn server_health(records: &[Record]) -> Vec<Violation> {
    records
        .iter()
        .filter_map(|r| match &r.ev {
            Ev::DiskContract { node, what } => Some(violation(
                "persistence_contract",
                r.t,
                format!("s{node}: {what}"),
            )),
            Ev::Exit { node, why } if !why.starts_with("storage failed") => Some(violation(
                "server_stopped",
                r.t,
                format!("s{node} stopped: {why}"),
            )),
            _ => None,
        })
        .collect()
}

/// S3 / SIMULATION.md §5.4 for reads: a token check is a linearizable read. It must not
/// call a token valid when a conflicting newer grant of the lock had
/// already returned before the check was sent (a stale leader answering
/// from old state), nor call the holder's own token invalid while the
/// holder certainly still held it: the check was sent after the grant
/// returned and answered before the holder let go and before its lease
/// deadline (the cluster cannot have expired it earlier, SIMULATION.md §5.3). Semaphore
/// grants coexist, so only exclusive and shared grants are compared.
#[must_use]
pub fn stale_reads(records: &[Record]) -> Vec<Violation> {
    let all = holds(records);
    let conflicts = |a: ModeKind, b: ModeKind| {
        matches!(
            (a, b),
            (ModeKind::Exclusive, ModeKind::Exclusive | ModeKind::Shared)
                | (ModeKind::Shared, ModeKind::Exclusive)
        )
    };
    let mut out = Vec::new();
    for r in records {
        let Ev::TokenCheck {
            session,
            lock,
            token,
            invoked,
            valid: Some(valid),
        } = &r.ev
        else {
            continue;
        };
        let Some(own) = all
            .iter()
            .find(|h| h.session == *session && h.lock == *lock && h.token == *token)
        else {
            continue;
        };
        if *valid {
            let newer = all.iter().find(|h| {
                h.lock == *lock
                    && h.token > *token
                    && h.returned < *invoked
                    && conflicts(own.mode, h.mode)
            });
            if let Some(h) = newer {
                out.push(violation(
                    "stale_read",
                    r.t,
                    format!(
                        "{lock}: token {token} of session {session} checked valid, though token {} (session {}) was granted at {} before the check at {invoked}",
                        h.token, h.session, h.returned
                    ),
                ));
            }
        } else {
            let certainly_held = *invoked > own.returned
                && r.t < own.released
                && own.max_deadline.is_some_and(|d| r.t < d);
            if certainly_held {
                // An early release seen through a read: with clocks beyond
                // their bound it is an assumption breach, so it carries
                // that property's name.
                out.push(violation(
                    "no_early_release",
                    r.t,
                    format!(
                        "{lock}: token {token} checked invalid while session {session} still held it within its lease"
                    ),
                ));
            }
        }
    }
    out
}

/// SIMULATION.md §5.4 (a)-(c), the witness check: every grant a client was told of is a
/// grant of the committed log, to that session, with that token (no lost
/// grant, no token the log did not give); every grant of the log went to
/// a session that asked for that lock (no phantom). A request granted
/// twice with different tokens is an [`exactly_once`] violation. Grants
/// inside the snapshot the replay started from cannot be checked and are
/// skipped.
#[must_use]
pub fn witness(records: &[Record]) -> Vec<Violation> {
    let Some((from, grants)) = records.iter().rev().find_map(|r| match &r.ev {
        Ev::CommittedLog {
            from_index, grants, ..
        } => Some((*from_index, grants)),
        _ => None,
    }) else {
        return Vec::new();
    };
    let logged: BTreeSet<(&str, u64, u64)> = grants
        .iter()
        .map(|(lock, session, token)| (lock.as_str(), *session, *token))
        .collect();
    let mut invoked: BTreeMap<u64, (u64, &str)> = BTreeMap::new();
    let mut asked: BTreeSet<(&str, u64)> = BTreeSet::new();
    let probes: BTreeSet<u64> = records
        .iter()
        .filter_map(|r| match r.ev {
            Ev::ProbeSession { session } => Some(session),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for r in records {
        match &r.ev {
            Ev::AcquireInvoke {
                op, session, lock, ..
            } => {
                invoked.insert(*op, (*session, lock.as_str()));
                asked.insert((lock.as_str(), *session));
            }
            Ev::AcquireReturn {
                op,
                result: AcquireResult::Granted { token },
                ..
            } if *token > from => {
                if let Some(&(session, lock)) = invoked.get(op) {
                    if !logged.contains(&(lock, session, *token)) {
                        out.push(violation(
                            "lost_grant",
                            r.t,
                            format!("{lock}: session {session} was granted token {token}, which the committed log does not hold"),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    for &(lock, session, token) in &logged {
        if !asked.contains(&(lock, session)) && !probes.contains(&session) {
            out.push(violation(
                "phantom_grant",
                0,
                format!("{lock}: the committed log grants token {token} to session {session}, which never asked for it"),
            ));
        }
    }
    out
}

/// S18: after a holder lost its lock without releasing it (its session
/// expired: the client crashed, was cut off or paused), the next
/// conflicting grant comes no sooner than the lock-delay after the
/// expiry. The expiry commits no earlier than the holder's last believed
/// lease deadline (SIMULATION.md §5.3), and the leader counts the delay on its clock
/// (drift at most 1 %), so a grant returned before deadline + 0.98 × delay
/// broke it. Returns the violations and how many hand-offs were checked.
#[must_use]
pub fn lock_delay_handoffs(records: &[Record]) -> (Vec<Violation>, u64) {
    let Some(delay) = records.iter().find_map(|r| match r.ev {
        Ev::LockDelaySetting { ms } => Some(ms * 1000),
        _ => None,
    }) else {
        return (Vec::new(), 0);
    };
    let all = holds(records);
    let conflicts = |a: ModeKind, b: ModeKind| {
        !matches!(
            (a, b),
            (ModeKind::Shared, ModeKind::Shared) | (ModeKind::Semaphore(_), ModeKind::Semaphore(_))
        )
    };
    let mut out = Vec::new();
    let mut checked = 0;
    for h in all.iter().filter(|h| h.released == u64::MAX) {
        let Some(deadline) = h.max_deadline else {
            continue;
        };
        let next = all
            .iter()
            .filter(|g| {
                g.lock == h.lock
                    && g.session != h.session
                    && g.returned > h.returned
                    && conflicts(h.mode, g.mode)
            })
            .min_by_key(|g| g.returned);
        let Some(g) = next else {
            continue;
        };
        checked += 1;
        let earliest = deadline + delay * 98 / 100;
        if g.returned < earliest {
            out.push(violation(
                "lock_delay",
                g.returned,
                format!(
                    "{}: session {} was granted token {} at {}, within the lock-delay after session {} lost token {} (lease to {deadline}, delay {} ms)",
                    h.lock, g.session, g.token, g.returned, h.session, h.token, delay / 1000
                ),
            ));
        }
    }
    (out, checked)
}

/// Exactly once (SIMULATION.md §5.4): a request the committed log answered more than
/// once, because a retry reached it again, got the same answer every
/// time (read from the log's replay, [`crate::witness`]).
#[must_use]
pub fn exactly_once(records: &[Record]) -> Vec<Violation> {
    from_committed_log(records, |ev| match ev {
        Ev::CommittedLog {
            answer_conflicts, ..
        } => Some(answer_conflicts),
        _ => None,
    })
    .map(|(t, (session, seq, first, later))| {
        violation(
            "exactly_once",
            t,
            format!(
                "request {seq} of session {session} was answered {first} and, retried, {later}"
            ),
        )
    })
    .collect()
}

/// S18, the other half: an explicit release (or close) hands the lock
/// over at once; only an expiry starts a lock-delay. Read from the
/// committed log's replay ([`crate::witness`]), which notes every release
/// whose entry started a delay on its lock.
#[must_use]
pub fn release_delays(records: &[Record]) -> Vec<Violation> {
    from_committed_log(records, |ev| match ev {
        Ev::CommittedLog {
            delayed_releases, ..
        } => Some(delayed_releases),
        _ => None,
    })
    .map(|(t, (lock, session, index))| {
        violation(
            "lock_delay",
            t,
            format!("{lock}: session {session} released it explicitly at log index {index}, and that entry started a lock-delay"),
        )
    })
    .collect()
}

/// Every fact `pick` takes from the committed log's replay, with the
/// replay record's time.
fn from_committed_log<'a, T: 'a>(
    records: &'a [Record],
    pick: impl Fn(&'a Ev) -> Option<&'a Vec<T>> + 'a,
) -> impl Iterator<Item = (u64, &'a T)> + 'a {
    records
        .iter()
        .filter_map(move |r| pick(&r.ev).map(|facts| (r.t, facts)))
        .flat_map(|(t, facts)| facts.iter().map(move |f| (t, f)))
}

/// S15: a server whose disk was found corrupt never takes part in Raft
/// again (it logs no role) until it gets a new disk.
#[must_use]
pub fn corrupt_servers(records: &[Record]) -> Vec<Violation> {
    let mut corrupt: BTreeSet<u64> = BTreeSet::new();
    let mut out = Vec::new();
    for r in records {
        match &r.ev {
            Ev::Fault { what } => {
                if let Some(id) = what
                    .strip_prefix("corrupt the disk of s")
                    .and_then(|n| n.parse().ok())
                {
                    corrupt.insert(id);
                }
            }
            Ev::Role { node, role, term } if corrupt.contains(node) => out.push(violation(
                "corrupt_server_ran",
                r.t,
                format!("s{node} became {role} in term {term} on a corrupt disk"),
            )),
            _ => {}
        }
    }
    out
}

/// S19: no server ever adopts the rogue peer's term.
#[must_use]
pub fn rogue_term(records: &[Record]) -> Vec<Violation> {
    records
        .iter()
        .filter_map(|r| match &r.ev {
            Ev::Role { node, role, term } if *term >= crate::rogue::ROGUE_TERM => Some(violation(
                "rogue_term",
                r.t,
                format!("s{node} became {role} in the rogue peer's term {term}"),
            )),
            _ => None,
        })
        .collect()
}

/// S12: a membership change asked of a leader cut off from the majority
/// must never be reported committed while it is cut off. (Once the network
/// heals, the server may relay the request to the majority's leader, which
/// legitimately commits it.) Only a request asked while an island
/// isolation was in force, and answered before any heal, counts: one asked
/// before, whose majority may have acknowledged it before the cut, can
/// rightly commit after it.
#[must_use]
pub fn island_changes(records: &[Record]) -> Vec<Violation> {
    // When the island isolations began and when the network healed.
    let mut cuts: Vec<(u64, bool)> = Vec::new();
    let mut answers = Vec::new();
    for r in records {
        match &r.ev {
            Ev::Fault { what } if what.starts_with("isolate leader") && what.contains("island") => {
                cuts.push((r.t, true));
            }
            Ev::Fault { what } if what == "heal network" || what == "heal all" => {
                cuts.push((r.t, false));
            }
            Ev::Membership {
                change,
                outcome,
                island: true,
                asked,
            } if outcome.starts_with("committed") => {
                // A history without ask times: judged at the answer.
                let asked = if *asked == 0 { r.t } else { *asked };
                answers.push((r.t, asked, change, outcome));
            }
            _ => {}
        }
    }
    let cut_off = |asked: u64, t: u64| {
        let at_ask = cuts.iter().rev().find(|(when, _)| *when <= asked);
        let healed = cuts
            .iter()
            .any(|(when, isolated)| !isolated && asked < *when && *when <= t);
        at_ask.is_some_and(|(_, isolated)| *isolated) && !healed
    };
    answers
        .into_iter()
        .filter(|(t, asked, _, _)| cut_off(*asked, *t))
        .map(|(t, _, change, outcome)| {
            violation(
                "membership",
                t,
                format!("{change} answered {outcome} by a minority"),
            )
        })
        .collect()
}

/// Every checker, in a fixed order.
#[must_use]
pub fn check_all(records: &[Record]) -> Vec<Violation> {
    let mut v = resource_exclusion(records);
    v.extend(token_order(records));
    v.extend(no_early_release(records));
    v.extend(liveness(records));
    v.extend(catch_up(records));
    v.extend(raft_baseline(records));
    v.extend(server_health(records));
    v.extend(island_changes(records));
    v.extend(rogue_term(records));
    v.extend(corrupt_servers(records));
    v.extend(lock_delay_handoffs(records).0);
    v.extend(release_delays(records));
    v.extend(exactly_once(records));
    v.extend(stale_reads(records));
    v.extend(witness(records));
    v.extend(linearizability(records));
    v
}

#[cfg(test)]
mod history_builder;
#[cfg(test)]
mod tests;
