//! Directed starts: a configuration may name steps to take after the
//! warm-up, so that the exhaustive search starts from a chosen state (two
//! servers holding divergent uncommitted entries, say) instead of the
//! quiet cluster. Bugs that need a long, exact schedule (Figure 8 of the
//! Raft paper) are deeper than any exhaustive bound from the quiet start;
//! from a directed start the search explores every interleaving of the
//! part that matters.
//!
//! Commands are those of traces (`timer N`, `persist N`, `crash N`,
//! `send CLIENT SERVER`, `deliver TEXT`), plus six that stand for many
//! steps:
//! - `settle N...`: the servers named run until quiet among themselves:
//!   every message between them is delivered and every write made
//!   durable; messages to or from anyone else are lost;
//! - `elect N among M...`: server N's election timer fires and only
//!   election messages between N and M... are delivered (writes made
//!   durable) until N leads; whatever else is in flight is then lost and
//!   N's writes made durable, so N leads with entries nobody else has;
//! - `depose N`: leader N hears from nobody until it steps down
//!   (CheckQuorum), its heartbeats lost;
//! - `sync N...`: every pending write of those servers becomes durable;
//! - `drop-between A B`: every message between A and B is lost;
//! - `drop-all`: every message in flight is lost.

use crate::trace;
use crate::world::{Step, World};
use distlock_core::ids::NodeId;
use distlock_core::raft::Role;

/// Steps a bound on how long one `settle` or `elect` may run, so that a
/// prefix that cannot finish fails instead of spinning.
const MAX_STEPS: usize = 10_000;

fn ids(words: &str) -> Result<Vec<NodeId>, String> {
    words
        .split_whitespace()
        .map(|w| w.parse().map(NodeId).map_err(|e| format!("{w:?}: {e}")))
        .collect()
}

fn drop_all(world: &mut World) {
    while !world.net.is_empty() {
        world.apply(&Step::Drop(0));
    }
}

fn persist_all(world: &mut World, among: &[NodeId]) -> bool {
    let pending = world
        .servers
        .iter()
        .find(|s| among.contains(&s.id) && !s.pending.is_empty())
        .map(|s| s.id);
    if let Some(id) = pending {
        world.apply(&Step::Persist(id));
    }
    pending.is_some()
}

/// Delivers the first message between `among` that `wanted` accepts, and
/// loses every message that touches a server outside `among`.
fn deliver_among(world: &mut World, among: &[NodeId], wanted: impl Fn(&str) -> bool) -> bool {
    while let Some(i) = world
        .net
        .iter()
        .position(|e| !among.contains(&e.from) || !among.contains(&e.to))
    {
        world.apply(&Step::Drop(i));
    }
    let next = world.net.iter().position(|e| wanted(&e.text()));
    if let Some(i) = next {
        world.apply(&Step::Deliver(i));
    }
    next.is_some()
}

fn settle(world: &mut World, among: &[NodeId]) -> Result<(), String> {
    for _ in 0..MAX_STEPS {
        if !deliver_among(world, among, |_| true) && !persist_all(world, among) {
            return Ok(());
        }
    }
    Err(format!("settle {among:?} did not end"))
}

/// Whether `text` is a message of `id`'s campaign: its (pre-)vote
/// requests, and the answers to them.
fn is_campaign_of(text: &str, id: NodeId) -> bool {
    let ends = text.split_whitespace().next().unwrap_or("");
    let request = ends.starts_with(&format!("{}->", id.0))
        && (text.contains(" PreVote last=") || text.contains(" Vote last="));
    let answer = ends.ends_with(&format!("->{}", id.0)) && text.contains("VoteResponse");
    request || answer
}

/// A leader that hears from nobody steps down by itself once it misses a
/// quorum's answers for an election timeout (CheckQuorum): its timer fires
/// and its heartbeats are lost until it does.
fn depose(world: &mut World, id: NodeId) -> Result<(), String> {
    let Some(p) = world.servers.iter().position(|s| s.id == id) else {
        return Err(format!("no server {}", id.0));
    };
    for _ in 0..MAX_STEPS {
        if world.servers[p].node.raft().role() != Role::Leader {
            return Ok(());
        }
        world.apply(&Step::Timer(id));
        drop_all(world);
    }
    Err(format!("server {} did not step down", id.0))
}

fn elect(world: &mut World, id: NodeId, among: &[NodeId]) -> Result<(), String> {
    let server = |w: &World| w.servers.iter().position(|s| s.id == id);
    let Some(p) = server(world) else {
        return Err(format!("no server {}", id.0));
    };
    let start = world.servers[p].node.raft().term();
    depose(world, id)?;
    let leads = |w: &World| {
        let raft = w.servers[p].node.raft();
        raft.role() == Role::Leader && raft.term() > start
    };
    world.apply(&Step::Timer(id));
    let mut timed_out = Vec::new();
    // A campaign may end in a higher term learnt and nothing won: the
    // candidate then campaigns again, in that term.
    let mut campaigns = 1;
    for _ in 0..MAX_STEPS {
        if leads(world) {
            drop_all(world);
            while persist_all(world, &[id]) {}
            return Ok(());
        }
        if deliver_among(world, among, |t| is_campaign_of(t, id)) || persist_all(world, among) {
            continue;
        }
        // A voter that still hears from a leader refuses pre-votes: its
        // own election timer fires first (its campaign is not helped
        // along), then the candidate campaigns again.
        let sticky = world
            .servers
            .iter()
            .find(|s| {
                s.id != id
                    && among.contains(&s.id)
                    && !timed_out.contains(&s.id)
                    && s.node.raft().leader().is_some()
            })
            .map(|s| s.id);
        if let Some(other) = sticky {
            timed_out.push(other);
            world.apply(&Step::Timer(other));
            world.apply(&Step::Timer(id));
        } else if campaigns < 3 {
            campaigns += 1;
            world.apply(&Step::Timer(id));
        } else {
            let states: Vec<String> = world
                .servers
                .iter()
                .map(|s| crate::describe::server(&s.node))
                .collect();
            return Err(format!(
                "server {} could not win among {among:?}: {}",
                id.0,
                states.join("; ")
            ));
        }
    }
    Err(format!("the election of {} did not end", id.0))
}

/// Carries out one command of a directed start.
///
/// # Errors
/// When the command is malformed or cannot be carried out here.
pub fn run(world: &mut World, cmd: &str) -> Result<(), String> {
    let (verb, rest) = cmd.split_once(' ').unwrap_or((cmd, ""));
    match verb {
        "drop-all" => {
            drop_all(world);
            Ok(())
        }
        "sync" => {
            let who = ids(rest)?;
            while persist_all(world, &who) {}
            Ok(())
        }
        "drop-between" => {
            let pair = ids(rest)?;
            let [a, b] = pair.as_slice() else {
                return Err("drop-between A B: two servers".into());
            };
            while let Some(i) = world
                .net
                .iter()
                .position(|e| (e.from, e.to) == (*a, *b) || (e.from, e.to) == (*b, *a))
            {
                world.apply(&Step::Drop(i));
            }
            Ok(())
        }
        "settle" => settle(world, &ids(rest)?),
        "depose" => {
            let who = ids(rest)?;
            let [id] = who.as_slice() else {
                return Err("depose N: one server".into());
            };
            depose(world, *id)
        }
        "elect" => {
            let (who, among) = rest.split_once(" among ").ok_or("elect N among M...")?;
            let who = ids(who)?;
            let [id] = who.as_slice() else {
                return Err("elect N among M...: one server".into());
            };
            elect(world, *id, &ids(among)?)
        }
        _ => {
            let step = trace::parse(world, cmd)?;
            world.apply(&step);
            Ok(())
        }
    }
}
