//! Transcript tests of the Raft core (`core/testdata/raft/*.txt`): a few
//! servers driven by hand, command by command, printing every [`Action`]
//! and every change of a server's state, so that reading a transcript shows
//! the protocol at work and a change of behaviour shows up in review.
//!
//! Nothing happens by itself: messages wait until `deliver`, writes are
//! durable only after `persist`, timers fire only on `tick-to`.
//!
//! Commands (servers are numbers; `*` or nothing means all):
//!
//! - `boot 1 2 3 [no-pre-vote] [no-check-quorum] [snapshot=N]
//!   [max-append=N]`: a new cluster of these voters;
//! - `join 4`: a server with an empty disk that learns its configuration
//!   from the leader;
//! - `tick-to MS [server…]`: time moves to MS; every timer due by then
//!   fires, in time order (only the listed servers' timers, if any);
//! - `deliver [from=A] [to=B]`: delivers the messages in flight now
//!   (the ones matching), in the order they were sent; what they cause
//!   waits for the next `deliver`;
//! - `persist [server…]`: every write issued so far is durable;
//! - `stabilize`: `persist` and `deliver` until nothing is in flight;
//! - `quiet` / `verbose`: stop or resume printing (for the set-up steps);
//! - `propose S VALUE`, `read S ID`, `add-learner S ID`, `promote S ID`,
//!   `remove S ID`: requests to server S;
//! - `cut A B` (both ways), `isolate A`, `heal`: the network;
//! - `crash S` (writes not persisted are lost, messages to it dropped),
//!   `restart S` (from its disk);
//! - `state [server…]`: prints the servers' state.

use super::DigestMachine;
use crate::ids::NodeId;
use crate::raft::{
    Action, Config, MemberAddrs, Membership, MembershipChange, Message, MessageBody, Persist, Raft,
    Stored,
};
use crate::testkit::{Disk, transcript};
use crate::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

struct Server {
    raft: Option<Raft<DigestMachine>>,
    disk: Disk<u64>,
    /// Writes issued and not yet durable.
    pending: Vec<Persist<u64>>,
    /// The state line last printed.
    shown: String,
    bootstrap: bool,
    restarts: u64,
}

struct World {
    cfg: Config,
    voters: Vec<NodeId>,
    servers: BTreeMap<NodeId, Server>,
    now: Instant,
    in_flight: Vec<Message<u64>>,
    cut: BTreeSet<(NodeId, NodeId)>,
    out: Vec<String>,
    quiet: bool,
}

fn ms(t: Instant) -> u64 {
    t.as_micros() / 1000
}

fn body(b: &MessageBody<u64>) -> String {
    match b {
        MessageBody::PreVote {
            last_index,
            last_term,
        } => format!("PreVote last={}/{}", last_index.0, last_term.0),
        MessageBody::PreVoteResponse { granted } => format!("PreVoteResponse granted={granted}"),
        MessageBody::Vote {
            last_index,
            last_term,
            transfer,
        } => format!(
            "Vote last={}/{}{}",
            last_index.0,
            last_term.0,
            if *transfer { " transfer" } else { "" }
        ),
        MessageBody::VoteResponse { granted } => format!("VoteResponse granted={granted}"),
        MessageBody::Append {
            prev_index,
            prev_term,
            entries,
            commit,
            round,
        } => {
            let es: Vec<String> = entries
                .iter()
                .map(|e| format!("{}/{}", e.index.0, e.term.0))
                .collect();
            format!(
                "Append prev={}/{} entries=[{}] commit={} round={round}",
                prev_index.0,
                prev_term.0,
                es.join(" "),
                commit.0
            )
        }
        MessageBody::AppendResponse { result, round } => match result {
            Ok(m) => format!("AppendResponse ok match={} round={round}", m.0),
            Err(c) => format!(
                "AppendResponse reject at={} conflict_term={:?} hint={} round={round}",
                c.rejected.0,
                c.conflict_term.map(|t| t.0),
                c.hint_index.0
            ),
        },
        MessageBody::Heartbeat { commit, round } => {
            format!("Heartbeat commit={} round={round}", commit.0)
        }
        MessageBody::HeartbeatResponse { round } => format!("HeartbeatResponse round={round}"),
        MessageBody::InstallSnapshot {
            meta,
            offset,
            data,
            done,
            round,
        } => format!(
            "InstallSnapshot at={}/{} offset={offset} len={} done={done} round={round}",
            meta.last_index.0,
            meta.last_term.0,
            data.len()
        ),
        MessageBody::InstallSnapshotResponse {
            last_index,
            next_offset,
            round,
        } => format!(
            "InstallSnapshotResponse at={} next={next_offset:?} round={round}",
            last_index.0
        ),
        MessageBody::TimeoutNow => "TimeoutNow".to_owned(),
    }
}

fn message(m: &Message<u64>) -> String {
    format!("{}->{} t{} {}", m.from.0, m.to.0, m.term.0, body(&m.body))
}

fn persist_line(p: &Persist<u64>) -> String {
    let mut parts = vec![format!("persist #{}", p.seq.0)];
    if let Some(hs) = p.hard_state {
        parts.push(format!(
            "term={} vote={}",
            hs.term.0,
            hs.voted_for.map_or("-".to_owned(), |v| v.0.to_string())
        ));
    }
    if let Some(t) = p.truncate_from {
        parts.push(format!("truncate-from={}", t.0));
    }
    if let Some(s) = &p.snapshot {
        parts.push(format!(
            "snapshot={}/{}",
            s.meta.last_index.0, s.meta.last_term.0
        ));
    }
    if let (Some(a), Some(b)) = (p.entries.first(), p.entries.last()) {
        parts.push(format!(
            "entries={}..{} (last term {})",
            a.index.0, b.index.0, b.term.0
        ));
    }
    parts.join(" ")
}

fn state_line(r: &Raft<DigestMachine>) -> String {
    let s = r.status();
    let voters: Vec<String> = s
        .membership
        .voters
        .iter()
        .map(|v| v.0.to_string())
        .collect();
    let learners: Vec<String> = s
        .membership
        .learners
        .iter()
        .map(|v| v.0.to_string())
        .collect();
    format!(
        "{:?} term={} vote={} leader={} last={}/{} commit={} applied={} stable={} voters={}{}",
        s.role,
        s.term.0,
        s.voted_for.map_or("-".to_owned(), |v| v.0.to_string()),
        s.leader.map_or("-".to_owned(), |v| v.0.to_string()),
        s.last_index.0,
        s.last_term.0,
        s.commit_index.0,
        s.applied_index.0,
        s.stable_index.0,
        voters.join(","),
        if learners.is_empty() {
            String::new()
        } else {
            format!(" learners={}", learners.join(","))
        }
    )
}

fn id(word: &str) -> NodeId {
    NodeId(
        word.parse()
            .unwrap_or_else(|_| panic!("not a server: {word:?}")),
    )
}

fn addrs(id: NodeId) -> MemberAddrs {
    MemberAddrs {
        peer: format!("10.0.0.{}:7100", id.0),
        client: format!("10.0.0.{}:7000", id.0),
        ws: None,
    }
}

impl World {
    fn new() -> Self {
        Self {
            cfg: Config::new(NodeId(1)),
            voters: Vec::new(),
            servers: BTreeMap::new(),
            now: Instant::ZERO,
            in_flight: Vec::new(),
            cut: BTreeSet::new(),
            out: Vec::new(),
            quiet: false,
        }
    }

    fn say(&mut self, line: String) {
        if !self.quiet {
            self.out.push(line);
        }
    }

    fn start(&mut self, sid: NodeId) {
        let Some(srv) = self.servers.get_mut(&sid) else {
            return;
        };
        let initial = if srv.bootstrap {
            Membership::with_voters(self.voters.iter().copied())
        } else {
            Membership::default()
        };
        let stored = Stored {
            hard_state: srv.disk.hard_state,
            snapshot: srv.disk.snapshot.clone(),
            entries: srv.disk.entries.clone(),
            initial_membership: initial,
        };
        let mut cfg = self.cfg.clone();
        cfg.id = sid;
        let seed = sid.0 * 7919 + srv.restarts;
        srv.restarts += 1;
        let raft = Raft::new(cfg, DigestMachine::default(), stored, seed, self.now)
            .unwrap_or_else(|e| panic!("{} cannot start: {e}", sid.0));
        srv.raft = Some(raft);
        srv.shown.clear();
        self.drain(sid);
    }

    /// Takes every action of `sid`, printing it, then its state if changed.
    fn drain(&mut self, sid: NodeId) {
        loop {
            let Some(srv) = self.servers.get_mut(&sid) else {
                return;
            };
            let Some(raft) = srv.raft.as_mut() else {
                return;
            };
            let Some(action) = raft.poll_action() else {
                break;
            };
            let line = match action {
                Action::Persist(p) => {
                    let line = persist_line(&p);
                    srv.pending.push(p);
                    line
                }
                Action::Send(m) => {
                    let line = format!("send {}", message(&m));
                    self.in_flight.push(m);
                    line
                }
                Action::Applied {
                    index,
                    term,
                    output,
                } => format!("applied {}/{} value={}", index.0, term.0, output.0),
                Action::ReadReady { id, index } => format!("read {id} ready at {}", index.0),
                Action::ReadFailed { id } => format!("read {id} failed"),
            };
            self.say(format!("{}: {line}", sid.0));
        }
        self.show(sid, false);
    }

    fn show(&mut self, sid: NodeId, always: bool) {
        let Some(srv) = self.servers.get_mut(&sid) else {
            return;
        };
        let line = srv
            .raft
            .as_ref()
            .map_or_else(|| "down".to_owned(), state_line);
        if always || line != srv.shown {
            srv.shown.clone_from(&line);
            self.say(format!("{}: {line}", sid.0));
        }
    }

    fn targets(&self, words: &[&str]) -> Vec<NodeId> {
        if words.is_empty() || words == ["*"] {
            self.servers.keys().copied().collect()
        } else {
            words.iter().map(|w| id(w)).collect()
        }
    }

    fn up(&self, sid: NodeId) -> bool {
        self.servers.get(&sid).is_some_and(|s| s.raft.is_some())
    }

    fn raft(&mut self, sid: NodeId) -> &mut Raft<DigestMachine> {
        self.servers
            .get_mut(&sid)
            .and_then(|s| s.raft.as_mut())
            .unwrap_or_else(|| panic!("server {} is down", sid.0))
    }

    fn exec(&mut self, line: &str) -> Vec<String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (cmd, args) = words.split_first().expect("an empty command");
        match *cmd {
            "boot" => self.boot(args),
            "join" => {
                for sid in self.targets(args) {
                    self.add_server(sid, false);
                    self.start(sid);
                }
            }
            "tick-to" => self.tick_to(args),
            "deliver" => self.deliver(args),
            "persist" => {
                for sid in self.targets(args) {
                    self.persist(sid);
                }
            }
            "propose" => {
                let sid = id(args[0]);
                let value: u64 = args[1].parse().expect("a number");
                let r = self.raft(sid).propose(value);
                let line = match r {
                    Ok((index, term)) => format!("proposed at {}/{}", index.0, term.0),
                    Err(e) => format!("refused: {e:?}"),
                };
                self.say(format!("{}: {line}", sid.0));
                self.drain(sid);
            }
            "read" => {
                let sid = id(args[0]);
                let rid: u64 = args[1].parse().expect("a number");
                let now = self.now;
                if let Err(e) = self.raft(sid).read_index(rid, now) {
                    self.say(format!("{}: read {rid} refused: {e:?}", sid.0));
                }
                self.drain(sid);
            }
            "add-learner" | "promote" | "remove" => {
                let (sid, who) = (id(args[0]), id(args[1]));
                let change = match *cmd {
                    "add-learner" => MembershipChange::AddLearner(who, addrs(who)),
                    "promote" => MembershipChange::Promote(who),
                    _ => MembershipChange::Remove(who),
                };
                let now = self.now;
                match self.raft(sid).change_membership(change, now) {
                    Ok(index) => self.say(format!("{}: {cmd} {} at {}", sid.0, who.0, index.0)),
                    Err(e) => self.say(format!("{}: {cmd} {} refused: {e:?}", sid.0, who.0)),
                }
                self.drain(sid);
            }
            "cut" => {
                let (a, b) = (id(args[0]), id(args[1]));
                self.cut.insert((a, b));
                self.cut.insert((b, a));
                self.drop_cut();
            }
            "isolate" => {
                let a = id(args[0]);
                for &b in self.servers.keys() {
                    if b != a {
                        self.cut.insert((a, b));
                        self.cut.insert((b, a));
                    }
                }
                self.drop_cut();
            }
            "heal" => self.cut.clear(),
            "quiet" => self.quiet = true,
            "verbose" => self.quiet = false,
            "stabilize" => {
                for _ in 0..100 {
                    let pending = self
                        .servers
                        .values()
                        .any(|s| s.raft.is_some() && !s.pending.is_empty());
                    if self.in_flight.is_empty() && !pending {
                        break;
                    }
                    for sid in self.targets(&[]) {
                        self.persist(sid);
                    }
                    self.deliver(&[]);
                }
            }
            "crash" => {
                for sid in self.targets(args) {
                    if let Some(srv) = self.servers.get_mut(&sid) {
                        let lost: Vec<String> = srv
                            .pending
                            .drain(..)
                            .map(|p| format!("#{}", p.seq.0))
                            .collect();
                        srv.raft = None;
                        let lost = if lost.is_empty() {
                            String::new()
                        } else {
                            format!(", losing {}", lost.join(" "))
                        };
                        self.say(format!("{}: crashed{lost}", sid.0));
                    }
                }
            }
            "restart" => {
                for sid in self.targets(args) {
                    self.start(sid);
                }
            }
            "state" => {
                for sid in self.targets(args) {
                    self.show(sid, true);
                }
            }
            other => panic!("unknown command {other:?}"),
        }
        std::mem::take(&mut self.out)
    }

    fn add_server(&mut self, sid: NodeId, bootstrap: bool) {
        self.servers.insert(
            sid,
            Server {
                raft: None,
                disk: Disk::default(),
                pending: Vec::new(),
                shown: String::new(),
                bootstrap,
                restarts: 0,
            },
        );
    }

    fn boot(&mut self, args: &[&str]) {
        for a in args {
            match *a {
                "no-pre-vote" => self.cfg.pre_vote = false,
                "no-check-quorum" => self.cfg.check_quorum = false,
                _ if a.starts_with("max-append=") => {
                    self.cfg.max_append_entries = a[11..].parse().expect("a number");
                }
                _ if a.starts_with("snapshot=") => {
                    self.cfg.snapshot_threshold = a[9..].parse().expect("a number");
                    self.cfg.compaction_margin = 0;
                }
                _ => self.voters.push(id(a)),
            }
        }
        for sid in self.voters.clone() {
            self.add_server(sid, true);
            self.start(sid);
        }
    }

    fn tick_to(&mut self, args: &[&str]) {
        let until = Instant::ZERO + Duration::from_millis(args[0].parse().expect("ms"));
        let only = if args.len() > 1 {
            self.targets(&args[1..])
        } else {
            self.servers.keys().copied().collect()
        };
        loop {
            let next = only
                .iter()
                .filter_map(|&sid| {
                    let r = self.servers.get(&sid)?.raft.as_ref()?;
                    r.poll_timeout().map(|t| (t, sid))
                })
                .filter(|(t, _)| *t <= until)
                .min();
            let Some((t, sid)) = next else { break };
            self.now = self.now.max(t);
            self.say(format!("{}: timeout at {}ms", sid.0, ms(self.now)));
            let now = self.now;
            self.raft(sid).handle_timeout(now);
            self.drain(sid);
        }
        self.now = self.now.max(until);
    }

    /// Messages in flight on a link just cut are lost.
    fn drop_cut(&mut self) {
        let (lost, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|m| self.cut.contains(&(m.from, m.to)));
        self.in_flight = kept;
        for m in lost {
            self.say(format!("dropped {}", message(&m)));
        }
    }

    fn deliver(&mut self, args: &[&str]) {
        let mut from = None;
        let mut to = None;
        for a in args {
            if let Some(v) = a.strip_prefix("from=") {
                from = Some(id(v));
            } else if let Some(v) = a.strip_prefix("to=") {
                to = Some(id(v));
            }
        }
        let (go, stay): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|m| from.is_none_or(|f| m.from == f) && to.is_none_or(|t| m.to == t));
        self.in_flight = stay;
        for m in go {
            if self.cut.contains(&(m.from, m.to)) || !self.up(m.to) || !self.up(m.from) {
                self.say(format!("dropped {}", message(&m)));
                continue;
            }
            self.say(format!("{}: receive {}", m.to.0, message(&m)));
            let (sid, now) = (m.to, self.now);
            self.raft(sid).handle_message(m, now);
            self.drain(sid);
        }
    }

    fn persist(&mut self, sid: NodeId) {
        let Some(srv) = self.servers.get_mut(&sid) else {
            return;
        };
        if srv.raft.is_none() {
            return;
        }
        let Some(last) = srv.pending.last().map(|p| p.seq) else {
            return;
        };
        for p in srv.pending.drain(..) {
            srv.disk
                .apply(&p, usize::MAX)
                .unwrap_or_else(|e| panic!("server {} broke the contract: {e}", sid.0));
        }
        self.say(format!("{}: durable up to #{}", sid.0, last.0));
        let now = self.now;
        self.raft(sid).persisted(last, now);
        self.drain(sid);
    }
}

fn run(name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/raft")
        .join(format!("{name}.txt"));
    let mut world = World::new();
    transcript::run_file(&path, |cmd| world.exec(cmd));
}

#[test]
fn election_with_pre_vote_and_check_quorum() {
    run("election");
}

#[test]
fn vote_held_until_durable() {
    run("vote_durable");
}

#[test]
fn figure_8_commit_rule() {
    run("figure_8");
}

#[test]
fn read_index() {
    run("read_index");
}

#[test]
fn membership_change_around_a_leader_change() {
    run("membership");
}

#[test]
fn snapshot_over_a_divergent_tail() {
    run("snapshot_divergent");
}
