//! `--export-edn FILE`: a seed's operations on its exclusive locks as a
//! Jepsen history (EDN, one operation map per line), the form Knossos and
//! Elle read. SIMULATION.md §8 specifies it; `tests/export.rs` checks an
//! exported history against a model of a fenced lock written in Python
//! (`tests/support/lock_model.py`), and a tampered one against it too.
//!
//! Operations, each an `:invoke` and a completion by the same `:process`
//! (the session):
//! - `:acquire` — completes `:ok` with the fencing token as `:value`,
//!   `:fail` when not granted, `:info` when the answer never came
//!   (ambiguous: it may or may not have taken effect);
//! - `:release` of a token — only its invocation is recorded, so it
//!   completes `:info`;
//! - `:expire` of a token — invoked at the holder's last believed lease
//!   deadline (no server may expire the session earlier, SIMULATION.md
//!   §5.3) and completing `:info`: the session may expire then or later,
//!   or never.

use crate::report::{s, u};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The locks exported: the exclusive ones (shared and semaphore modes
/// need another model).
pub const LOCKS: &[&str] = &["x0", "x1"];

struct Op {
    time: u64,
    /// One per operation (its invocation and completion share it): a
    /// process whose operation stays `:info` is never reused, as Jepsen
    /// requires.
    process: u64,
    session: u64,
    kind: &'static str,
    f: &'static str,
    lock: String,
    value: Option<u64>,
}

/// The history's exclusive-lock operations as EDN lines, in time order
/// (an operation's invocation before its completion).
#[must_use]
pub fn jepsen_edn(history: &str) -> String {
    let mut ops: Vec<Op> = Vec::new();
    // acquire op id → (process, session, lock)
    let mut pending: BTreeMap<u64, (u64, u64, String)> = BTreeMap::new();
    // (session, lock, token) → believed deadline
    let mut leases: BTreeMap<(u64, String, u64), u64> = BTreeMap::new();
    let mut end = 0;
    let mut next_process = 0;
    let mut process = || {
        next_process += 1;
        next_process
    };
    let op = |time, (process, session): (u64, u64), kind, f, lock: &str, value| Op {
        time,
        process,
        session,
        kind,
        f,
        lock: lock.to_owned(),
        value,
    };
    for r in history
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        let t = u(&r, "t");
        end = end.max(t);
        let lock = s(&r, "lock");
        match s(&r, "ev") {
            "acquire_invoke" if LOCKS.contains(&lock) => {
                let p = (process(), u(&r, "session"));
                pending.insert(u(&r, "op"), (p.0, p.1, lock.to_owned()));
                ops.push(op(t, p, "invoke", "acquire", lock, None));
            }
            "acquire_return" => {
                let Some((pid, session, lock)) = pending.remove(&u(&r, "op")) else {
                    continue;
                };
                let p = (pid, session);
                let result = r.get("result").unwrap_or(&Value::Null);
                match s(result, "is") {
                    "granted" => {
                        let token = u(result, "token");
                        ops.push(op(t, p, "ok", "acquire", &lock, Some(token)));
                        let deadline = u(&r, "deadline").max(t);
                        leases.insert((session, lock, token), deadline);
                    }
                    "not_granted" => ops.push(op(t, p, "fail", "acquire", &lock, None)),
                    _ => ops.push(op(t, p, "info", "acquire", &lock, None)),
                }
            }
            "belief" if LOCKS.contains(&lock) => {
                let key = (u(&r, "session"), lock.to_owned(), u(&r, "token"));
                if let Some(d) = leases.get_mut(&key) {
                    *d = (*d).max(u(&r, "deadline"));
                }
            }
            "release_invoke" if LOCKS.contains(&lock) => {
                let (p, token) = ((process(), u(&r, "session")), u(&r, "token"));
                ops.push(op(t, p, "invoke", "release", lock, Some(token)));
                ops.push(op(t, p, "info", "release", lock, Some(token)));
            }
            _ => {}
        }
    }
    // Acquires never answered: ambiguous.
    for (pid, session, lock) in pending.into_values() {
        ops.push(op(end, (pid, session), "info", "acquire", &lock, None));
    }
    for ((session, lock, token), deadline) in leases {
        let p = (process(), session);
        ops.push(op(deadline, p, "invoke", "expire", &lock, Some(token)));
        ops.push(op(deadline, p, "info", "expire", &lock, Some(token)));
    }
    // Completions of :info operations come last (they never completed);
    // otherwise by time, invocations before completions at equal times
    // only for the same operation (the sort is stable).
    ops.sort_by_key(|o| (o.kind == "info", o.time));
    let mut out = String::new();
    for (index, o) in ops.iter().enumerate() {
        let value = o.value.map_or_else(|| "nil".to_owned(), |v| v.to_string());
        let _ = writeln!(
            out,
            "{{:index {index}, :time {}, :type :{}, :process {}, :session {}, :f :{}, :lock \"{}\", :value {value}}}",
            o.time * 1_000,
            o.kind,
            o.process,
            o.session,
            o.f,
            o.lock
        );
    }
    out
}
