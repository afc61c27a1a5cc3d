//! Transcript tests of the Raft core (`core/testdata/raft/*.txt`): a few
//! servers driven by hand, command by command, printing every [`Action`]
//! and every change of a server's state, so that reading a transcript shows
//! the protocol at work and a change of behaviour shows up in review.
//!
//! Nothing happens by itself: messages wait until `deliver`, writes are
//! durable only after `persist`, timers fire only on `tick-to`.
//!
//! Besides the shared commands (`boot`, `join`, `restart`, `tick-to`,
//! `run-to`, `deliver`, `persist`, `stabilize`, `quiet`, `verbose`, `cut`,
//! `isolate`, `heal`, `crash`, `state`: see `testkit::transcript::net`),
//! servers being numbers:
//!
//! - `boot`'s options `no-pre-vote`, `no-check-quorum`, `snapshot=N` (the
//!   snapshot threshold) and `max-append=N`;
//! - `propose S VALUE`, `read S ID`, `add-learner S ID`, `promote S ID`,
//!   `remove S ID`: requests to server S.

use super::DigestMachine;
use crate::ids::NodeId;
use crate::raft::{
    Action, Config, MemberAddrs, MembershipChange, Message, PersistSeq, Raft, Stored,
};
use crate::testkit::transcript::net::{self, Net, Output, Server, id};
use crate::testkit::transcript::raft_text;
use crate::time::Instant;

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
    net: Net<Raft<DigestMachine>>,
}

fn addrs(id: NodeId) -> MemberAddrs {
    MemberAddrs {
        peer: format!("10.0.0.{}:7100", id.0),
        client: format!("10.0.0.{}:7000", id.0),
        ws: None,
    }
}

impl net::World for World {
    type Server = Raft<DigestMachine>;

    fn net(&mut self) -> &mut Net<Raft<DigestMachine>> {
        &mut self.net
    }

    fn build(&mut self, sid: NodeId, stored: Stored<u64>, seed: u64, now: Instant) -> Self::Server {
        let mut cfg = self.cfg.clone();
        cfg.id = sid;
        Raft::new(cfg, DigestMachine::default(), stored, seed, now)
            .unwrap_or_else(|e| panic!("{} cannot start: {e}", sid.0))
    }

    fn boot_option(&mut self, word: &str) {
        match word {
            "no-pre-vote" => self.cfg.pre_vote = false,
            "no-check-quorum" => self.cfg.check_quorum = false,
            _ if word.starts_with("max-append=") => {
                self.cfg.max_append_entries = word[11..].parse().expect("a number");
            }
            _ if word.starts_with("snapshot=") => {
                self.cfg.snapshot_threshold = word[9..].parse().expect("a number");
                self.cfg.compaction_margin = 0;
            }
            _ => panic!("unknown boot option {word:?}"),
        }
    }

    fn command(&mut self, cmd: &str, args: &[&str]) {
        let net = &mut self.net;
        match cmd {
            "propose" => {
                let sid = id(args[0]);
                let value: u64 = args[1].parse().expect("a number");
                let line = match net.server(sid).propose(value) {
                    Ok((index, term)) => format!("proposed at {}/{}", index.0, term.0),
                    Err(e) => format!("refused: {e:?}"),
                };
                net.say(format!("{}: {line}", sid.0));
                net.drain(sid);
            }
            "read" => {
                let sid = id(args[0]);
                let rid: u64 = args[1].parse().expect("a number");
                let now = net.now;
                if let Err(e) = net.server(sid).read_index(rid, now) {
                    net.say(format!("{}: read {rid} refused: {e:?}", sid.0));
                }
                net.drain(sid);
            }
            "add-learner" | "promote" | "remove" => {
                let (sid, who) = (id(args[0]), id(args[1]));
                let change = match cmd {
                    "add-learner" => MembershipChange::AddLearner(who, addrs(who)),
                    "promote" => MembershipChange::Promote(who),
                    _ => MembershipChange::Remove(who),
                };
                let now = net.now;
                match net.server(sid).change_membership(change, now) {
                    Ok(index) => net.say(format!("{}: {cmd} {} at {}", sid.0, who.0, index.0)),
                    Err(e) => net.say(format!("{}: {cmd} {} refused: {e:?}", sid.0, who.0)),
                }
                net.drain(sid);
            }
            other => panic!("unknown command {other:?}"),
        }
    }
}

fn run(name: &str) {
    let world = World {
        cfg: Config::new(NodeId(1)),
        net: Net::new(),
    };
    net::run("raft", name, world);
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
