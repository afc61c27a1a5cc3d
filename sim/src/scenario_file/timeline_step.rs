//! One step of a scenario file's timeline, as written and as checked: the
//! time (or range) it happens at, exactly one action, the label it binds,
//! and the election it may wait for.

use crate::cli::parse_duration;
use crate::faults::{Action, AskedChange, CLASSES, Target};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawAt {
    One(String),
    Range([String; 2]),
}

/// A step as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    at: RawAt,
    start: Option<String>,
    kill: Option<Vec<u64>>,
    restart: Option<Vec<u64>>,
    resume: Option<u64>,
    cut: Option<Vec<(u64, u64)>>,
    heal: Option<String>,
    clear_disk: Option<u64>,
    restart_client: Option<usize>,
    resume_client: Option<usize>,
    isolate: Option<String>,
    with: Option<Vec<String>>,
    label: Option<String>,
    cut_appends: Option<String>,
    join: Option<String>,
    ask: Option<String>,
    promote: Option<String>,
    remove: Option<String>,
    elected: Option<[String; 2]>,
}

impl RawStep {
    /// The label this step binds, if it binds one.
    pub(super) fn binds(&self) -> Option<&str> {
        let binder = self.isolate.is_some()
            || self.join.is_some()
            || self.cut_appends.as_deref().is_some_and(|c| c != "all");
        self.label.as_deref().filter(|_| binder)
    }
}

const ACTIONS: &str = "start, kill, restart, resume, cut, heal, clear_disk, restart_client, resume_client, isolate, cut_appends, join, ask";

pub(super) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn class(name: &str) -> Option<&'static str> {
    CLASSES.iter().copied().find(|c| *c == name)
}

/// The label a step binds, checked: a word that cannot be confused with
/// a role (`leader`, `other`) or with `all`.
fn label_name(name: &str) -> Result<String, String> {
    if ["leader", "other", "all", ""].contains(&name) {
        return Err(format!(
            "label = {name:?}: a label names a server, not a role"
        ));
    }
    Ok(name.to_owned())
}

/// The server `name` means in `key = name`: `leader`, `other` (a running
/// server neither leading nor labelled), or a label some step binds.
fn target(key: &str, name: &str, labels: &[String]) -> Result<Target, String> {
    match name {
        "leader" => Ok(Target::Leader),
        "other" => Ok(Target::Other),
        l if labels.iter().any(|x| x == l) => Ok(Target::Label(l.to_owned())),
        _ => Err(format!(
            "{key} = {name:?}: \"leader\", \"other\" or a label some step sets (label = {name:?})"
        )),
    }
}

/// `with = [...]`: labels some step binds.
fn with_labels(with: Option<Vec<String>>, labels: &[String]) -> Result<Vec<String>, String> {
    let with = with.unwrap_or_default();
    if let Some(w) = with.iter().find(|w| !labels.contains(w)) {
        return Err(format!("with = [{w:?}]: a label some step sets"));
    }
    Ok(with)
}

/// The step's single action, `label`, `with` and `ask`'s change checked
/// against what it does.
fn action(raw: RawStep, lo: u64, labels: &[String]) -> Result<Option<Action>, String> {
    let label = match raw.binds() {
        Some(l) => Some(label_name(l)?),
        None => match &raw.label {
            Some(l) => {
                return Err(format!(
                    "label = {l:?} on a step at {lo}ms that binds none: only isolate, join and cut_appends (but \"all\") bind a label"
                ));
            }
            None => None,
        },
    };
    if raw.with.is_some() && raw.isolate.is_none() {
        return Err(format!("with on a step at {lo}ms without isolate"));
    }
    if (raw.promote.is_some() || raw.remove.is_some()) && raw.ask.is_none() {
        return Err(format!(
            "promote or remove on a step at {lo}ms without ask: ask names the server asked"
        ));
    }
    let mut actions = Vec::new();
    if let Some(c) = &raw.start {
        let c = class(c).ok_or_else(|| format!("unknown fault class {c:?} in start"))?;
        actions.push(Action::Start(c));
    }
    if let Some(ids) = raw.kill {
        actions.push(Action::Kill(ids));
    }
    if let Some(ids) = raw.restart {
        actions.push(Action::Restart(ids));
    }
    if let Some(id) = raw.resume {
        actions.push(Action::ResumeServer(id));
    }
    if let Some(pairs) = raw.cut {
        actions.push(Action::Cut(pairs));
    }
    if let Some(what) = &raw.heal {
        if what != "network" {
            return Err(format!("heal = {what:?}: only \"network\" can be healed"));
        }
        actions.push(Action::HealNetwork);
    }
    if let Some(id) = raw.clear_disk {
        actions.push(Action::ClearDisk(id));
    }
    if let Some(i) = raw.restart_client {
        actions.push(Action::RestartClient(i));
    }
    if let Some(i) = raw.resume_client {
        actions.push(Action::ResumeClient(i));
    }
    if let Some(what) = &raw.isolate {
        actions.push(Action::Isolate {
            who: target("isolate", what, labels)?,
            label: label.clone(),
            with: with_labels(raw.with, labels)?,
        });
    }
    if let Some(what) = &raw.cut_appends {
        actions.push(if what == "all" {
            Action::CutAllAppends
        } else {
            Action::CutAppendsInto {
                who: target("cut_appends", what, labels)?,
                label: label.clone(),
            }
        });
    }
    if let Some(kind) = &raw.join {
        let voter = match kind.as_str() {
            "voter" => true,
            "learner" => false,
            _ => return Err(format!("join = {kind:?}: \"voter\" or \"learner\"")),
        };
        actions.push(Action::Join { voter, label });
    }
    if let Some(of) = &raw.ask {
        let (change, subject) = match (&raw.promote, &raw.remove) {
            (Some(s), None) => (AskedChange::Promote, target("promote", s, labels)?),
            (None, Some(s)) => (AskedChange::Remove, target("remove", s, labels)?),
            _ => {
                return Err(format!(
                    "ask on a step at {lo}ms needs exactly one change: promote or remove"
                ));
            }
        };
        actions.push(Action::Ask {
            change,
            subject,
            of: target("ask", of, labels)?,
        });
    }
    match <[Action; 1]>::try_from(actions) {
        Ok([a]) => Ok(Some(a)),
        Err(a) if a.is_empty() => Ok(None),
        Err(a) => Err(format!(
            "a timeline step at {lo}ms needs exactly one action ({ACTIONS}), not {}",
            a.len()
        )),
    }
}

/// Checks one step: (earliest ms, latest ms, action).
pub(super) fn step(raw: RawStep, labels: &[String]) -> Result<(u64, u64, Action), String> {
    let (lo, hi) = match &raw.at {
        RawAt::One(t) => {
            let t = ms(parse_duration(t)?);
            (t, t)
        }
        RawAt::Range([a, b]) => (ms(parse_duration(a)?), ms(parse_duration(b)?)),
    };
    if lo > hi {
        return Err(format!("a step's time range {lo}ms..{hi}ms is empty"));
    }
    let elected = raw.elected.clone();
    let Some(action) = action(raw, lo, labels)? else {
        return Err(if elected.is_some() {
            format!("elected on a step at {lo}ms without an action: it holds one until an election")
        } else {
            format!("a timeline step at {lo}ms needs exactly one action ({ACTIONS}), not 0")
        });
    };
    let Some([a, b]) = &elected else {
        return Ok((lo, hi, action));
    };
    let delay_us = (micros(parse_duration(a)?), micros(parse_duration(b)?));
    if delay_us.0 > delay_us.1 {
        return Err(format!("elected = [{a:?}, {b:?}] is empty"));
    }
    Ok((
        lo,
        hi,
        Action::OnElection {
            delay_us,
            then: Box::new(action),
        },
    ))
}
