//! Transcript tests of the Raft core (`core/testdata/raft/*.txt`): a few
//! servers driven by hand, command by command, printing every [`Action`]
//! and every change of a server's state, so that reading a transcript shows
//! the protocol at work and a change of behaviour shows up in review.
//!
//! Nothing happens by itself: messages wait until `deliver`, writes are
//! durable only after `persist`, timers fire only on `tick-to`.
//!
//! Besides the network's commands (`tick-to`, `run-to`, `deliver`, `persist`,
//! `stabilize`, `quiet`, `verbose`, `cut`, `isolate`, `heal`, `crash`,
//! `state`: see `testkit::transcript::net`), servers being numbers:
//!
//! - `boot 1 2 3 [no-pre-vote] [no-check-quorum] [snapshot=N]
//!   [max-append=N]`: a new cluster of these voters;
//! - `join 4`: a server with an empty disk that learns its configuration
//!   from the leader;
//! - `propose S VALUE`, `read S ID`, `add-learner S ID`, `promote S ID`,
//!   `remove S ID`: requests to server S;
//! - `restart S`: starts S again from its disk.

use super::DigestMachine;
use crate::ids::NodeId;
use crate::raft::{
    Action, Config, MemberAddrs, Membership, MembershipChange, Message, PersistSeq, Raft, Stored,
};
use crate::testkit::transcript::net::{Net, Output, Server, id};
use crate::testkit::transcript::{self, raft_text};
use crate::time::Instant;
use std::collections::BTreeSet;

impl Server for Raft<DigestMachine> {
    type Command = u64;
    type Message = Message<u64>;

    fn poll_output(&mut self) -> Option<Output<Message<u64>, u64>> {
        Some(match self.poll_action()? {
            Action::Persist(p) => Output::Persist(p),
            Action::Send(m) => Output::Send { to: m.to, msg: m },
            Action::Applied {
                index,
                term,
                output,
            } => Output::Note(format!("applied {}/{} value={}", index.0, term.0, output.0)),
            Action::ReadReady { id, index } => {
                Output::Note(format!("read {id} ready at {}", index.0))
            }
            Action::ReadFailed { id } => Output::Note(format!("read {id} failed")),
        })
    }

    fn receive(&mut self, _from: NodeId, msg: Message<u64>, now: Instant) {
        self.handle_message(msg, now);
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.poll_timeout()
    }

    fn timeout(&mut self, now: Instant) {
        self.handle_timeout(now);
    }

    fn persisted(&mut self, seq: PersistSeq, now: Instant) {
        Self::persisted(self, seq, now);
    }

    fn state_line(&self) -> String {
        raft_text::state(self)
    }

    fn message_text(msg: &Message<u64>) -> String {
        raft_text::message(msg, raft_text::entry_position)
    }
}

struct World {
    cfg: Config,
    voters: Vec<NodeId>,
    /// Servers that start with the first configuration (the others learn
    /// theirs from the leader).
    bootstrap: BTreeSet<NodeId>,
    net: Net<Raft<DigestMachine>>,
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
            bootstrap: BTreeSet::new(),
            net: Net::new(),
        }
    }

    /// Starts `sid` from its disk.
    fn start(&mut self, sid: NodeId) {
        let initial = if self.bootstrap.contains(&sid) {
            Membership::with_voters(self.voters.iter().copied())
        } else {
            Membership::default()
        };
        let Some(slot) = self.net.slots.get(&sid) else {
            return;
        };
        let stored = Stored {
            hard_state: slot.disk.hard_state,
            snapshot: slot.disk.snapshot.clone(),
            entries: slot.disk.entries.clone(),
            initial_membership: initial,
        };
        let mut cfg = self.cfg.clone();
        cfg.id = sid;
        let seed = sid.0 * 7919 + slot.starts;
        let raft = Raft::new(cfg, DigestMachine::default(), stored, seed, self.net.now)
            .unwrap_or_else(|e| panic!("{} cannot start: {e}", sid.0));
        self.net.install(sid, raft);
    }

    fn exec(&mut self, line: &str) -> Vec<String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (cmd, args) = words.split_first().expect("an empty command");
        if !self.net.exec(cmd, args) {
            self.request(cmd, args);
        }
        self.net.take_output()
    }

    fn request(&mut self, cmd: &str, args: &[&str]) {
        match cmd {
            "boot" => self.boot(args),
            "join" => {
                for sid in self.net.targets(args) {
                    self.net.add(sid);
                    self.start(sid);
                }
            }
            "restart" => {
                for sid in self.net.targets(args) {
                    self.start(sid);
                }
            }
            "propose" => {
                let sid = id(args[0]);
                let value: u64 = args[1].parse().expect("a number");
                let line = match self.net.server(sid).propose(value) {
                    Ok((index, term)) => format!("proposed at {}/{}", index.0, term.0),
                    Err(e) => format!("refused: {e:?}"),
                };
                self.net.say(format!("{}: {line}", sid.0));
                self.net.drain(sid);
            }
            "read" => {
                let sid = id(args[0]);
                let rid: u64 = args[1].parse().expect("a number");
                let now = self.net.now;
                if let Err(e) = self.net.server(sid).read_index(rid, now) {
                    self.net
                        .say(format!("{}: read {rid} refused: {e:?}", sid.0));
                }
                self.net.drain(sid);
            }
            "add-learner" | "promote" | "remove" => {
                let (sid, who) = (id(args[0]), id(args[1]));
                let change = match cmd {
                    "add-learner" => MembershipChange::AddLearner(who, addrs(who)),
                    "promote" => MembershipChange::Promote(who),
                    _ => MembershipChange::Remove(who),
                };
                let now = self.net.now;
                match self.net.server(sid).change_membership(change, now) {
                    Ok(index) => self
                        .net
                        .say(format!("{}: {cmd} {} at {}", sid.0, who.0, index.0)),
                    Err(e) => self
                        .net
                        .say(format!("{}: {cmd} {} refused: {e:?}", sid.0, who.0)),
                }
                self.net.drain(sid);
            }
            other => panic!("unknown command {other:?}"),
        }
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
            self.bootstrap.insert(sid);
            self.net.add(sid);
            self.start(sid);
        }
    }
}

fn run(name: &str) {
    let mut world = World::new();
    transcript::run_file(&transcript::testdata("raft", name), |cmd| world.exec(cmd));
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
