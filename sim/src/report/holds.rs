//! The locks' part of the report: every grant with its token and holder,
//! from the acquire's return to the release (or, when the holder never
//! released it, to its believed lease's end), the believed lease under
//! it, the holder's writes at the fenced resource and its token checks
//! (the servers' view of whether the grant still stood). Overlapping
//! holds of one lock (shared modes, semaphores, or a violation) get rows
//! of their own.

use super::{Kind, Lane, Mark, Section, s, secs, u};
use serde_json::Value;
use std::collections::BTreeMap;

/// One grant.
#[derive(Debug)]
struct Hold {
    lock: String,
    session: u64,
    client: u64,
    token: u64,
    mode: String,
    from: u64,
    released: Option<u64>,
    lease: u64,
    marks: Vec<Mark>,
}

/// The grants of a history, gathered record by record.
#[derive(Debug, Default)]
pub(super) struct Holds {
    invoked: BTreeMap<u64, (u64, u64, String, String)>,
    holds: Vec<Hold>,
    /// (session, lock, token) → index in `holds`.
    by_key: BTreeMap<(u64, String, u64), usize>,
    locks: Vec<String>,
}

fn mode_name(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(m)) => m.clone(),
        Some(Value::Object(o)) => o
            .iter()
            .next()
            .map(|(k, n)| format!("{k}({n})"))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

impl Holds {
    fn hold(&mut self, r: &Value) -> Option<&mut Hold> {
        let key = (u(r, "session"), s(r, "lock").to_owned(), u(r, "token"));
        self.by_key.get(&key).map(|&i| &mut self.holds[i])
    }

    /// Takes in one record that is about locks (others are ignored).
    pub(super) fn record(&mut self, r: &Value, t: u64) {
        match s(r, "ev") {
            "acquire_invoke" => {
                let lock = s(r, "lock").to_owned();
                if !self.locks.contains(&lock) {
                    self.locks.push(lock.clone());
                }
                self.invoked.insert(
                    u(r, "op"),
                    (
                        u(r, "session"),
                        u(r, "client"),
                        lock,
                        mode_name(r.get("mode")),
                    ),
                );
            }
            "acquire_return" => {
                let result = r.get("result").unwrap_or(&Value::Null);
                if s(result, "is") != "granted" {
                    return;
                }
                let Some((session, client, lock, mode)) = self.invoked.get(&u(r, "op")).cloned()
                else {
                    return;
                };
                let token = u(result, "token");
                self.by_key
                    .insert((session, lock.clone(), token), self.holds.len());
                self.holds.push(Hold {
                    lock,
                    session,
                    client,
                    token,
                    mode,
                    from: t,
                    released: None,
                    lease: u(r, "deadline").max(t),
                    marks: Vec::new(),
                });
            }
            "belief" => {
                let deadline = u(r, "deadline");
                if let Some(h) = self.hold(r) {
                    h.lease = h.lease.max(deadline);
                }
            }
            "release_invoke" => {
                if let Some(h) = self.hold(r) {
                    h.released.get_or_insert(t);
                }
            }
            "write" => {
                let ok = r.get("accepted").and_then(Value::as_bool) == Some(true);
                let (kind, what) = if ok {
                    (Kind::WriteOk, "accepted")
                } else {
                    (Kind::WriteRefused, "REFUSED (stale token)")
                };
                let token = u(r, "token");
                if let Some(h) = self.hold(r) {
                    h.marks.push(Mark {
                        from: t,
                        to: t,
                        kind,
                        label: String::new(),
                        tip: format!("{} write with token {token}: {what}", secs(t)),
                    });
                }
            }
            "token_check" => {
                let valid = r.get("valid").and_then(Value::as_bool);
                let (kind, what) = match valid {
                    Some(true) => (Kind::CheckValid, "servers: still valid"),
                    Some(false) => (Kind::CheckInvalid, "servers: no longer valid"),
                    None => return,
                };
                let (token, sent) = (u(r, "token"), u(r, "invoked"));
                if let Some(h) = self.hold(r) {
                    h.marks.push(Mark {
                        from: t,
                        to: t,
                        kind,
                        label: String::new(),
                        tip: format!(
                            "token check of {token} sent {}, answered {}: {what}",
                            secs(sent),
                            secs(t)
                        ),
                    });
                }
            }
            _ => {}
        }
    }

    /// One section per lock; holds packed into as few rows as overlap
    /// allows.
    pub(super) fn sections(self, end: u64) -> Vec<Section> {
        let mut out = Vec::new();
        for lock in &self.locks {
            let mut rows: Vec<(u64, Lane)> = Vec::new();
            for h in self.holds.iter().filter(|h| &h.lock == lock) {
                let to = h.released.unwrap_or(h.lease).min(end).max(h.from);
                let lost = h.released.is_none();
                let label = format!("{} s{}", h.token, h.session);
                let tip = format!(
                    "{lock}: token {} to session {} (client c{}, {}) granted {}, {}; believed lease until {}",
                    h.token,
                    h.session,
                    h.client,
                    h.mode,
                    secs(h.from),
                    match h.released {
                        Some(r) => format!("released {}", secs(r)),
                        None => "never released (lost)".to_owned(),
                    },
                    secs(h.lease)
                );
                let last = to.max(h.lease.min(end));
                let row = match rows.iter().position(|(free, _)| *free <= h.from) {
                    Some(i) => i,
                    None => {
                        rows.push((0, Lane::default()));
                        rows.len() - 1
                    }
                };
                let (free, lane) = &mut rows[row];
                *free = last + 1;
                lane.marks.push(Mark {
                    from: h.from,
                    to: h.lease.min(end).max(h.from),
                    kind: Kind::Lease,
                    label: String::new(),
                    tip: format!(
                        "believed lease of token {} until {}",
                        h.token,
                        secs(h.lease)
                    ),
                });
                lane.marks.push(Mark {
                    from: h.from,
                    to,
                    kind: if lost { Kind::LostHold } else { Kind::Hold },
                    label,
                    tip,
                });
                lane.marks.extend(h.marks.iter().cloned());
            }
            let lanes = rows
                .into_iter()
                .enumerate()
                .map(|(i, (_, mut lane))| {
                    lane.name = if i == 0 { lock.clone() } else { String::new() };
                    lane
                })
                .collect();
            out.push(Section {
                title: format!(
                    "lock {lock}: grants (token, session), believed lease beneath, writes and token checks"
                ),
                lanes,
            });
        }
        out
    }
}
