//! `--report out.html`: one seed's history as a self-contained timeline
//! to look at (SIMULATION.md §8). This module reads the history (its JSON
//! lines, the same a `--history` file holds) into lanes of intervals and
//! markers: servers' roles and terms, down, paused and faulty-disk
//! periods, network faults, client-node faults, and every lock's grants
//! with token and holder, the holder's believed lease, its writes and
//! token checks (the servers' answer on whether the grant still stood).
//! [`svg`] draws the lanes; violations become red lines at their time.

mod holds;
mod svg;

use crate::checks::Violation;
use serde_json::Value;
use std::collections::BTreeMap;

/// What a bar or marker stands for (its colour, in [`svg`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A server role (`Leader`, `Follower`, `Candidate`...).
    Leader,
    /// Following.
    Follower,
    /// Campaigning (pre-vote or vote).
    Candidate,
    /// Any other role (a learner, say).
    OtherRole,
    /// A server or client node is down (killed, crashed, exited).
    Down,
    /// Paused.
    Paused,
    /// A disk fault is in force.
    Disk,
    /// A network fault is in force.
    Network,
    /// A grant, from its return to the release (or to the lease's end).
    Hold,
    /// A grant its holder never released (it lost the lock).
    LostHold,
    /// The holder's believed lease (until its last known deadline).
    Lease,
    /// A token check the servers answered "still valid".
    CheckValid,
    /// A token check the servers answered "no longer valid".
    CheckInvalid,
    /// A write the fenced resource accepted.
    WriteOk,
    /// A write the fenced resource refused (a stale token).
    WriteRefused,
    /// Anything else worth a tick (clock drift, membership changes).
    Note,
}

/// A bar from `from` to `to` (µs) or, when `from == to`, a marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    /// Start, true µs.
    pub from: u64,
    /// End, true µs.
    pub to: u64,
    /// What it is.
    pub kind: Kind,
    /// Short text drawn on the bar when it fits.
    pub label: String,
    /// Full text shown on hover.
    pub tip: String,
}

/// A row of the timeline.
#[derive(Clone, Debug, Default)]
pub struct Lane {
    /// Its name at the left.
    pub name: String,
    /// Its bars and markers.
    pub marks: Vec<Mark>,
}

/// A group of rows under a heading.
#[derive(Clone, Debug, Default)]
pub struct Section {
    /// The heading.
    pub title: String,
    /// The rows.
    pub lanes: Vec<Lane>,
}

/// What the report shows of a seed besides its history.
#[derive(Clone, Debug)]
pub struct Header {
    /// `seed 7 · 3 servers · 60s · faults all ...`.
    pub title: String,
    /// The run's summary line.
    pub summary: String,
    /// Broken properties.
    pub violations: Vec<Violation>,
}

/// A record's unsigned field (0 when absent): histories are read as JSON
/// so any `--history` file can be drawn or exported.
pub(crate) fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

/// A record's string field ("" when absent).
pub(crate) fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn secs(us: u64) -> String {
    // Lossless enough for display: µs to seconds with 3 decimals.
    #[allow(clippy::cast_precision_loss)]
    let s = us as f64 / 1e6;
    format!("{s:.3}s")
}

/// A lane keyed by name, in first-seen order within its section.
#[derive(Default)]
struct Lanes {
    order: Vec<String>,
    by_name: BTreeMap<String, Vec<Mark>>,
}

impl Lanes {
    fn add(&mut self, lane: &str, mark: Mark) {
        if !self.by_name.contains_key(lane) {
            self.order.push(lane.to_owned());
        }
        self.by_name.entry(lane.to_owned()).or_default().push(mark);
    }

    fn into_section(mut self, title: &str) -> Section {
        let lanes = self
            .order
            .iter()
            .map(|n| Lane {
                name: n.clone(),
                marks: self.by_name.remove(n).unwrap_or_default(),
            })
            .collect();
        Section {
            title: title.to_owned(),
            lanes,
        }
    }
}

/// Open intervals waiting for their end: lane → (start, kind, label).
#[derive(Default)]
struct Open(BTreeMap<(String, &'static str), (u64, Kind, String)>);

impl Open {
    fn start(&mut self, lane: &str, slot: &'static str, t: u64, kind: Kind, label: &str) {
        self.0
            .entry((lane.to_owned(), slot))
            .or_insert((t, kind, label.to_owned()));
    }

    fn end(&mut self, lanes: &mut Lanes, lane: &str, slot: &'static str, t: u64) {
        if let Some((from, kind, label)) = self.0.remove(&(lane.to_owned(), slot)) {
            let tip = format!("{lane}: {label} ({} to {})", secs(from), secs(t));
            lanes.add(
                lane,
                Mark {
                    from,
                    to: t,
                    kind,
                    label,
                    tip,
                },
            );
        }
    }

    fn end_all(&mut self, lanes: &mut Lanes, slot: &'static str, t: u64) {
        let keys: Vec<_> = self.0.keys().filter(|k| k.1 == slot).cloned().collect();
        for (lane, slot) in keys {
            self.end(lanes, &lane, slot, t);
        }
    }
}

/// The server (`s3`) or client node (`c2`) a fault text names after `prefix`.
fn node_after(text: &str, prefix: &str) -> Option<String> {
    let rest = text.strip_prefix(prefix)?;
    let id: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!id.is_empty()).then_some(id)
}

/// Ends the role a server was in at `t` (killed, exited, or a new role).
fn close_role(lanes: &mut Lanes, roles: &mut BTreeMap<u64, (u64, String, u64)>, node: u64, t: u64) {
    let Some((from, name, term)) = roles.remove(&node) else {
        return;
    };
    let kind = match name.as_str() {
        "Leader" => Kind::Leader,
        "Follower" => Kind::Follower,
        "Candidate" | "PreCandidate" => Kind::Candidate,
        _ => Kind::OtherRole,
    };
    let label = if kind == Kind::Leader {
        format!("T{term}")
    } else {
        String::new()
    };
    lanes.add(
        &format!("s{node}"),
        Mark {
            from,
            to: t,
            kind,
            label,
            tip: format!(
                "s{node} {name} in term {term} ({} to {})",
                secs(from),
                secs(t)
            ),
        },
    );
}

fn note(lanes: &mut Lanes, lane: &str, t: u64, tip: String) {
    lanes.add(
        lane,
        Mark {
            from: t,
            to: t,
            kind: Kind::Note,
            label: String::new(),
            tip: format!("{} {tip}", secs(t)),
        },
    );
}

/// Opens or closes the intervals a fault text (`Ev::Fault`'s `what`)
/// starts or ends; returns the server it kills, if any.
fn fault(what: &str, t: u64, open: &mut Open, lanes: &mut Lanes) -> Option<u64> {
    let server = |p: &str| node_after(what, p).map(|n| format!("s{n}"));
    let client = |p: &str| node_after(what, p).map(|n| format!("c{n}"));
    if let Some(l) = server("kill s") {
        open.start(&l, "down", t, Kind::Down, what);
        return l[1..].parse().ok();
    }
    if let Some(l) = server("restart s") {
        open.end(lanes, &l, "down", t);
    } else if let Some(l) = server("pause s") {
        open.start(&l, "paused", t, Kind::Paused, what);
    } else if let Some(l) = server("resume s") {
        open.end(lanes, &l, "paused", t);
    } else if let Some(l) = server("disk of s") {
        open.end(lanes, &l, "disk", t);
    } else if let Some(l) = server("corrupt the disk of s") {
        open.start(&l, "disk", t, Kind::Disk, what);
    } else if let Some(l) = server("s").filter(|_| what.contains(": ")) {
        open.start(&l, "disk", t, Kind::Disk, what);
    } else if let Some(l) = server("start s") {
        note(lanes, &l, t, what.to_owned());
    } else if let Some(l) = server("s").filter(|_| what.contains("clock drift")) {
        note(lanes, &l, t, what.to_owned());
    } else if let Some(l) = client("crash client node c") {
        open.start(&l, "down", t, Kind::Down, what);
    } else if let Some(l) = client("client node c") {
        open.end(lanes, &l, "down", t);
    } else if let Some(l) = client("pause client c") {
        open.start(&l, "paused", t, Kind::Paused, what);
    } else if let Some(l) = client("resume client c") {
        open.end(lanes, &l, "paused", t);
    } else if let Some(l) = client("cut client c") {
        open.start(&l, "cut", t, Kind::Network, what);
    } else if what == "heal network" || what == "heal all" {
        open.end_all(lanes, "net", t);
        open.end_all(lanes, "cut", t);
        if what == "heal all" {
            for slot in ["down", "paused", "disk"] {
                open.end_all(lanes, slot, t);
            }
        }
    } else if what.starts_with("membership") {
        note(lanes, "operator", t, what.to_owned());
    } else {
        // Partitions, cuts, isolations, loss, chaos, appends cut, rogue:
        // in force until the network heals. Each kind keeps its own lane
        // so overlapping faults stay visible.
        let lane = what
            .split([' ', ':'])
            .next()
            .filter(|w| !w.is_empty())
            .unwrap_or("network");
        let lane = match lane {
            "isolate" => "isolation",
            "one-way" | "cut" | "appends" => "cuts",
            "packet" => "loss",
            "message" => "chaos",
            "rogue" => "rogue",
            other => other,
        };
        open.start(lane, "net", t, Kind::Network, what);
        if lane == "rogue" {
            open.end(lanes, lane, "net", t);
        }
    }
    None
}

/// Reads the history (JSON lines) into the timeline's sections; also
/// returns the last time in it (µs).
#[must_use]
pub fn sections(history: &str) -> (Vec<Section>, u64) {
    let records: Vec<Value> = history
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let end = records.iter().map(|r| u(r, "t")).max().unwrap_or(0).max(1);
    let mut lanes = Lanes::default();
    let mut open = Open::default();
    let mut roles: BTreeMap<u64, (u64, String, u64)> = BTreeMap::new();
    let mut holds = holds::Holds::default();
    for r in &records {
        let t = u(r, "t");
        match s(r, "ev") {
            "role" => {
                let node = u(r, "node");
                close_role(&mut lanes, &mut roles, node, t);
                roles.insert(node, (t, s(r, "role").to_owned(), u(r, "term")));
            }
            "exit" => {
                let node = u(r, "node");
                close_role(&mut lanes, &mut roles, node, t);
                let why = format!("s{node} exited: {}", s(r, "why"));
                open.start(&format!("s{node}"), "down", t, Kind::Down, &why);
            }
            "fault" => {
                if let Some(node) = fault(s(r, "what"), t, &mut open, &mut lanes) {
                    close_role(&mut lanes, &mut roles, node, t);
                }
            }
            "membership" => {
                let island = if r.get("island").and_then(Value::as_bool) == Some(true) {
                    " (asked of an isolated leader)"
                } else {
                    ""
                };
                let tip = format!("{}: {}{island}", s(r, "change"), s(r, "outcome"));
                note(&mut lanes, "operator", t, tip);
            }
            "cluster_restart" => note(&mut lanes, "cuts", t, "whole cluster restarted".to_owned()),
            _ => holds.record(r, t),
        }
    }
    for node in roles.keys().copied().collect::<Vec<_>>() {
        close_role(&mut lanes, &mut roles, node, end);
    }
    for slot in ["down", "paused", "disk", "net", "cut"] {
        open.end_all(&mut lanes, slot, end);
    }
    let mut servers = Lanes::default();
    let mut clients = Lanes::default();
    let mut network = Lanes::default();
    let mut names = lanes.order.clone();
    names.sort_by_key(|n| (n.len(), n.clone()));
    for name in names {
        let marks = lanes.by_name.remove(&name).unwrap_or_default();
        let is_node = |p: char| {
            name.starts_with(p) && name[1..].chars().all(|c| c.is_ascii_digit()) && name.len() > 1
        };
        let target = if is_node('s') {
            &mut servers
        } else if is_node('c') {
            &mut clients
        } else {
            &mut network
        };
        for m in marks {
            target.add(&name, m);
        }
    }
    let mut out = vec![
        servers.into_section("servers: role (Tn: leader in term n), down, paused, disk fault"),
    ];
    for (lanes, title) in [
        (network, "network faults and the operator"),
        (clients, "client nodes: crashed, paused, cut off"),
    ] {
        let section = lanes.into_section(title);
        if !section.lanes.is_empty() {
            out.push(section);
        }
    }
    out.extend(holds.sections(end));
    (out, end)
}

/// The whole report: a self-contained HTML page.
#[must_use]
pub fn render(header: &Header, history: &str) -> String {
    let (sections, end) = sections(history);
    svg::page(header, &sections, end)
}

#[cfg(test)]
mod tests;
