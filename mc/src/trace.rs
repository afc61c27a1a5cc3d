//! Counterexamples as transcripts (the format of core/testdata/raft/*.txt,
//! run by `distlock_core::testkit::transcript`): one command per step, each
//! followed by what it printed and the servers' states after it. A trace
//! file replays as a test: the same commands must print the same lines.
//!
//! Commands: `setup NAME` (with the bounds given by `bounds` keys),
//! `warm-up`, `deliver TEXT`, `duplicate TEXT`, `drop TEXT` (TEXT as the
//! message prints), `timer N`, `pause N`, `persist N`, `crash N`,
//! `send CLIENT SERVER`; for library clients `issue CLIENT`,
//! `client-timer CLIENT` and `dial CLIENT SERVER`; and `net`, which lists the messages in flight
//! and the writes not yet durable.

use crate::configs;
use crate::setup::Bounds;
use crate::world::{Step, World};
use distlock_core::ids::NodeId;
use std::fmt::Write as _;

/// The command that replays `step` in `world` (before it is applied).
#[must_use]
pub fn command(world: &World, step: &Step) -> String {
    match step {
        Step::Deliver(i) => format!("deliver {}", world.net[*i].text()),
        Step::Duplicate(i) => format!("duplicate {}", world.net[*i].text()),
        Step::Drop(i) => format!("drop {}", world.net[*i].text()),
        Step::Timer(id) => format!("timer {}", id.0),
        Step::Pause(id) => format!("pause {}", id.0),
        Step::Persist(id) => format!("persist {}", id.0),
        Step::Crash(id) => format!("crash {}", id.0),
        Step::Send { client, server } => format!("send {client} {}", server.0),
        Step::ClientTimer(c) => format!("client-timer {c}"),
        Step::Dial { client, server } => format!("dial {client} {}", server.0),
        Step::Issue(c) => format!("issue {c}"),
    }
}

/// The step a command names in `world`.
///
/// # Errors
/// When the command is malformed or names nothing possible here.
pub fn parse(world: &World, cmd: &str) -> Result<Step, String> {
    let (verb, rest) = cmd.split_once(' ').unwrap_or((cmd, ""));
    let find = |text: &str| {
        world
            .net
            .iter()
            .position(|e| e.text() == text)
            .ok_or_else(|| {
                let texts: Vec<String> = world.net.iter().map(|e| e.text()).collect();
                format!(
                    "no message in flight reads {text:?} (in flight: {})",
                    texts.join("; ")
                )
            })
    };
    let server = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map(NodeId)
            .map_err(|e| format!("{s:?}: {e}"))
    };
    Ok(match verb {
        "deliver" => Step::Deliver(find(rest)?),
        "duplicate" => Step::Duplicate(find(rest)?),
        "drop" => Step::Drop(find(rest)?),
        "timer" => Step::Timer(server(rest)?),
        "pause" => Step::Pause(server(rest)?),
        "persist" => Step::Persist(server(rest)?),
        "crash" => Step::Crash(server(rest)?),
        "send" | "dial" => {
            let (c, s) = rest.split_once(' ').ok_or("send|dial CLIENT SERVER")?;
            let client = c.parse().map_err(|e| format!("{c:?}: {e}"))?;
            let server = server(s)?;
            if verb == "send" {
                Step::Send { client, server }
            } else {
                Step::Dial { client, server }
            }
        }
        "client-timer" | "issue" => {
            let c = rest.trim();
            let client = c.parse().map_err(|e| format!("{c:?}: {e}"))?;
            if verb == "issue" {
                Step::Issue(client)
            } else {
                Step::ClientTimer(client)
            }
        }
        _ => return Err(format!("unknown command {verb:?}")),
    })
}

/// Renders the bounds as the `setup` command's arguments.
#[must_use]
pub fn bounds_args(b: &Bounds) -> String {
    let lies = if b.disk_lies { " disk-lies=1" } else { "" };
    let snapshots = match b.snapshot_every {
        0 => String::new(),
        n => format!(" snapshot={n}"),
    };
    let client_ticks = match b.client_ticks {
        0 => String::new(),
        n => format!(" client-ticks={n}"),
    };
    format!(
        "depth={} max-term={} crashes={} duplicates={} drops={} in-flight={} leader-ticks={} elections={} sends={} append={}{snapshots}{client_ticks}{lies}",
        b.depth,
        b.max_term,
        b.crashes,
        b.duplicates,
        b.drops,
        b.in_flight,
        b.leader_ticks,
        b.elections,
        b.sends_per_op,
        b.append_entries
    )
}

/// Parses `key=value` bound arguments over `base` (`deeper=N` adds N to
/// its depth).
///
/// # Errors
/// An unknown key or a value that is not a number.
pub fn parse_bounds<'a>(
    mut b: Bounds,
    args: impl Iterator<Item = &'a str>,
) -> Result<Bounds, String> {
    for arg in args {
        let (k, v) = arg
            .split_once('=')
            .ok_or_else(|| format!("{arg:?}: KEY=N"))?;
        let n: u64 = v.parse().map_err(|e| format!("{arg:?}: {e}"))?;
        let small = || u32::try_from(n).map_err(|e| format!("{arg:?}: {e}"));
        match k {
            "depth" => b.depth = usize::try_from(n).map_err(|e| e.to_string())?,
            // Relative to the configuration's own depth, so that one
            // command deepens every configuration.
            "deeper" => {
                b.depth = usize::try_from(n)
                    .ok()
                    .and_then(|n| b.depth.checked_add(n))
                    .ok_or_else(|| format!("{arg:?}: too deep"))?;
            }
            "max-term" => b.max_term = n,
            "crashes" => b.crashes = small()?,
            "duplicates" => b.duplicates = small()?,
            "drops" => b.drops = small()?,
            "in-flight" => b.in_flight = usize::try_from(n).map_err(|e| e.to_string())?,
            "leader-ticks" => b.leader_ticks = small()?,
            "elections" => b.elections = small()?,
            "disk-lies" => b.disk_lies = n != 0,
            "sends" => b.sends_per_op = small()?,
            "append" => b.append_entries = usize::try_from(n).map_err(|e| e.to_string())?,
            "snapshot" => b.snapshot_every = n,
            "client-ticks" => b.client_ticks = small()?,
            _ => return Err(format!("unknown bound {k:?}")),
        }
    }
    Ok(b)
}

/// The whole transcript of `steps` from `initial` (already warmed up):
/// a comment naming the violation, the setup, the warm-up, each step.
#[must_use]
pub fn render(initial: &World, steps: &[Step], violation: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}: {violation}", initial.setup.name);
    let _ = writeln!(
        out,
        "> setup {} {}",
        initial.setup.name,
        bounds_args(&initial.setup.bounds)
    );
    let mut world = World::new((*initial.setup).clone());
    world.verbose = true;
    let _ = writeln!(out, "\n> warm-up");
    world.warm_up();
    for line in world
        .servers
        .iter()
        .map(|s| crate::describe::server(&s.node))
    {
        let _ = writeln!(out, "  {line}");
    }
    for step in steps {
        let _ = writeln!(out, "\n> {}", command(&world, step));
        world.apply(step);
        let broken = world.check();
        for line in &world.out {
            let _ = writeln!(out, "  {line}");
        }
        if let Some(v) = broken {
            let _ = writeln!(out, "  violation: {v}");
        }
    }
    out
}

/// Replays a transcript file through the transcript runner: it panics
/// with a diff when the core now prints something else.
///
/// # Panics
/// When the file does not replay as written.
pub fn replay(path: &std::path::Path) {
    let mut world: Option<World> = None;
    distlock_core::testkit::transcript::run_file(path, |cmd| {
        let mut words = cmd.split_whitespace();
        match words.next() {
            Some("setup") => {
                let name = words.next().unwrap_or_default();
                let bounds = parse_bounds(configs::bounds_for(name), words).expect("valid bounds");
                let setup = configs::by_name(name, bounds).expect("a known setup");
                let mut w = World::new(setup);
                w.verbose = true;
                world = Some(w);
                Vec::new()
            }
            // What is in flight, for writing directed starts by hand.
            Some("net") => {
                let w = world.as_ref().expect("setup first");
                let writes = w
                    .servers
                    .iter()
                    .filter(|s| !s.pending.is_empty())
                    .map(|s| format!("{}: {} writes pending", s.id.0, s.pending.len()));
                w.net
                    .iter()
                    .map(|e| format!("in flight: {}", e.text()))
                    .chain(writes)
                    .collect()
            }
            Some("warm-up") => {
                let w = world.as_mut().expect("setup first");
                w.warm_up();
                w.servers
                    .iter()
                    .map(|s| crate::describe::server(&s.node))
                    .collect()
            }
            _ => {
                let w = world.as_mut().expect("setup first");
                match parse(w, cmd) {
                    Ok(step) => {
                        w.apply(&step);
                        let broken = w.check();
                        let mut out = w.out.clone();
                        if let Some(v) = broken {
                            out.push(format!("violation: {v}"));
                        }
                        out
                    }
                    Err(e) => vec![format!("error: {e}")],
                }
            }
        }
    });
}
