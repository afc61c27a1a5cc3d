//! Transcript tests of the node (`core/testdata/node/*.txt`): whole
//! servers (Raft, the lock state machine, lease timers, forwarding) and
//! their clients, driven by hand on the same network as the Raft
//! transcripts (`testkit::transcript::net`: `boot`, `join`, `restart`,
//! `tick-to`, `run-to`, `deliver`, `persist`, `stabilize`, `quiet`,
//! `verbose`, `cut`, `isolate`, `heal`, `crash`, `state`). Every peer frame, write and client answer is
//! printed; a server's state line adds to Raft's its sessions (with the
//! leader's deadline for each, and whether it proposed the expiry) and
//! its locks.
//!
//! The node's own commands (servers and sessions are numbers; `cN` is
//! client connection N of that server):
//!
//! - `hello S cN`: the client's handshake;
//! - `open S cN NONCE TTL_MS`, `close S cN SESSION SEQ`;
//! - `acquire S cN SESSION SEQ LOCK [forever]`, `release S cN SESSION SEQ
//!   LOCK TOKEN`;
//! - `keepalive S cN SESSION`, `status S cN LOCK`, `attach S cN SESSION
//!   SECRET`;
//! - `add-learner S cN ID`, `promote S cN ID`, `remove S cN ID`: requests
//!   to server S, numbered `#1`, `#2`… in the order they are made.

use crate::ids::NodeId;
use crate::locks::{
    ClientCommand, Command, FencingToken, LockState, Mode, Outcome, Seq, SessionId, Wait,
};
use crate::node::{ConnId, Node, NodeAction, NodeConfig};
use crate::proto::{
    ClientFrame, MemberInfo, PROTOCOL_VERSION, PeerFrame, ProtoError, Request, RequestBody,
    RequestId, ResponseBody, ServerFrame,
};
use crate::raft::{Config, Entry, EntryPayload, MemberAddrs, MembershipChange, PersistSeq, Stored};
use crate::testkit::transcript::net::{self, Net, Output, Server, id, ms};
use crate::testkit::transcript::raft_text;
use crate::time::Instant;
use std::collections::BTreeSet;

fn session_text(c: &ClientCommand) -> String {
    match c {
        ClientCommand::OpenSession { nonce, ttl_ms } => {
            format!("OpenSession nonce={nonce} ttl={ttl_ms}")
        }
        ClientCommand::CloseSession { session, seq, .. } => {
            format!("CloseSession {session} seq={}", seq.0)
        }
        ClientCommand::Acquire {
            session,
            seq,
            lock,
            wait,
            ..
        } => format!("Acquire {session} seq={} {lock} {wait:?}", seq.0),
        ClientCommand::Release {
            session,
            seq,
            lock,
            token,
            ..
        } => format!("Release {session} seq={} {lock} token={}", seq.0, token.0),
        other => format!("{other:?}"),
    }
}

fn command_text(c: &Command) -> String {
    match c {
        Command::Client(c) => session_text(c),
        Command::ExpireSession { session } => format!("ExpireSession {session}"),
        other => format!("{other:?}"),
    }
}

/// An entry as `index/term:what`.
fn entry_text(e: &Entry<Command>) -> String {
    let what = match &e.payload {
        EntryPayload::Noop => "Noop".to_owned(),
        EntryPayload::Command(c) => command_text(c),
        EntryPayload::Membership(m) => {
            let ids = |s: &BTreeSet<NodeId>| {
                s.iter()
                    .map(|v| v.0.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            if m.learners.is_empty() {
                format!("Membership voters={}", ids(&m.voters))
            } else {
                format!(
                    "Membership voters={} learners={}",
                    ids(&m.voters),
                    ids(&m.learners)
                )
            }
        }
    };
    format!("{}/{}:{what}", e.index.0, e.term.0)
}

fn request_text(b: &RequestBody) -> String {
    match b {
        RequestBody::Log(c) => session_text(c),
        RequestBody::KeepAlive { session } => format!("KeepAlive {session}"),
        RequestBody::LockStatus { lock } => format!("LockStatus {lock}"),
        RequestBody::Attach { session, secret } => format!("Attach {session} secret={secret}"),
        RequestBody::ChangeMembership(change) => match change {
            MembershipChange::AddLearner(who, _) => format!("AddLearner {}", who.0),
            MembershipChange::Promote(who) => format!("Promote {}", who.0),
            MembershipChange::Remove(who) => format!("Remove {}", who.0),
            other => format!("{other:?}"),
        },
        other => format!("{other:?}"),
    }
}

fn result_text(r: &Result<ResponseBody, ProtoError>) -> String {
    match r {
        Ok(ResponseBody::SessionOpened { session, ttl_ms }) => {
            format!("SessionOpened {session} ttl={ttl_ms}")
        }
        Ok(ResponseBody::KeepAliveAck { session }) => format!("KeepAliveAck {session}"),
        Ok(ResponseBody::Attached { session }) => format!("Attached {session}"),
        Ok(ResponseBody::MembershipChanged { index }) => {
            format!("MembershipChanged index={}", index.0)
        }
        Ok(ResponseBody::Lock(Outcome::Granted { token })) => format!("Granted token={token}"),
        Ok(ResponseBody::Lock(o)) => format!("{o:?}"),
        Ok(ResponseBody::LockStatus(Some(v))) => {
            let holders: Vec<String> = v
                .holders
                .iter()
                .map(|h| format!("{} token={}", h.session, h.token))
                .collect();
            format!("LockStatus holders=[{}]", holders.join(", "))
        }
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("Err({e:?})"),
    }
}

fn reply_text(f: &ServerFrame) -> String {
    match f {
        ServerFrame::Welcome { .. } => "Welcome".to_owned(),
        ServerFrame::Response(r) => format!("#{} {}", r.id.0, result_text(&r.result)),
        other => format!("{other:?}"),
    }
}

impl Server for Node {
    type Command = Command;
    type Message = PeerFrame;

    fn poll_output(&mut self) -> Option<Output<PeerFrame, Command>> {
        Some(match self.poll_action()? {
            NodeAction::Persist(p) => Output::Persist(p),
            NodeAction::Send { to, frame } => Output::Send { to, msg: frame },
            NodeAction::Reply { conn, frame } => {
                Output::Note(format!("reply c{} {}", conn.0, reply_text(&frame)))
            }
        })
    }

    fn receive(&mut self, from: NodeId, msg: PeerFrame, now: Instant) {
        self.handle_peer(from, msg, now);
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

    /// Raft's state, then each session (`ttl`; on the leader, `until` its
    /// deadline and `expiring` once it proposed the expiry) and each lock
    /// (its holders and waiters).
    fn state_line(&self) -> String {
        let mut line = raft_text::state(self.raft());
        let state = self.raft().state_machine();
        for (session, ttl) in state.sessions() {
            line.push_str(&format!(" | {session} ttl={ttl}"));
            if let Some((until, expiring)) = self.timers.session_deadline(session) {
                line.push_str(&format!(" until={}ms", ms(until)));
                if expiring {
                    line.push_str(" expiring");
                }
            }
        }
        for (lock, status) in state.locks() {
            let holders: Vec<String> = status
                .holders
                .iter()
                .map(|(s, t)| format!("{s}#{t}"))
                .collect();
            if holders.is_empty() {
                line.push_str(&format!(" | {lock} free"));
            } else {
                line.push_str(&format!(" | {lock} held by {}", holders.join(",")));
            }
            if status.delay.is_some() {
                line.push_str(" in lock-delay");
            }
            for w in &status.waiters {
                line.push_str(&format!(" waiting {}", w.session));
            }
        }
        line
    }

    fn message_text(msg: &PeerFrame) -> String {
        match msg {
            PeerFrame::Raft(m) => raft_text::message(m, entry_text),
            PeerFrame::Forward { origin, request } => format!(
                "Forward from={} {} {}",
                origin.0,
                request.id,
                request_text(&request.body)
            ),
            PeerFrame::ForwardReply { id, result } => {
                format!("ForwardReply {id} {}", result_text(result))
            }
            other => format!("{other:?}"),
        }
    }
}

struct World {
    next_request: u64,
    net: Net<Node>,
}

fn member(id: NodeId) -> MemberInfo {
    MemberInfo {
        id,
        client_addr: format!("10.0.0.{}:7000", id.0),
        ws_addr: None,
    }
}

fn conn(word: &str) -> ConnId {
    ConnId(
        word.strip_prefix('c')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a connection: {word:?}")),
    )
}

fn num(word: &str) -> u64 {
    word.parse()
        .unwrap_or_else(|_| panic!("not a number: {word:?}"))
}

impl net::World for World {
    type Server = Node;

    fn net(&mut self) -> &mut Net<Node> {
        &mut self.net
    }

    fn build(&mut self, sid: NodeId, stored: Stored<Command>, seed: u64, now: Instant) -> Node {
        let cfg = NodeConfig {
            raft: Config::new(sid),
            members: self.net.voters().iter().copied().map(member).collect(),
            advertise: None,
        };
        Node::new(cfg, LockState::default(), stored, seed, now)
            .unwrap_or_else(|e| panic!("{} cannot start: {e}", sid.0))
    }

    fn command(&mut self, cmd: &str, args: &[&str]) {
        if cmd == "hello" {
            let hello = ClientFrame::Hello {
                protocol_version: PROTOCOL_VERSION,
                cluster_id: None,
                auth: None,
            };
            self.client_frame(id(args[0]), conn(args[1]), hello);
            return;
        }
        let (sid, c) = (id(args[0]), conn(args[1]));
        let body = request_body(cmd, &args[2..]);
        self.next_request += 1;
        let rid = RequestId(self.next_request);
        self.net.say(format!(
            "{}: c{} asks #{} {}",
            sid.0,
            c.0,
            rid.0,
            request_text(&body)
        ));
        self.client_frame(sid, c, ClientFrame::Request(Request { id: rid, body }));
    }
}

fn request_body(cmd: &str, args: &[&str]) -> RequestBody {
    let session = |w: &str| SessionId(num(w));
    let log = RequestBody::Log;
    match cmd {
        "open" => log(ClientCommand::OpenSession {
            nonce: u128::from(num(args[0])),
            ttl_ms: num(args[1]),
        }),
        "close" => log(ClientCommand::CloseSession {
            session: session(args[0]),
            seq: Seq(num(args[1])),
            ack: Seq(num(args[1])),
        }),
        "acquire" => log(ClientCommand::Acquire {
            session: session(args[0]),
            seq: Seq(num(args[1])),
            ack: Seq(num(args[1])),
            lock: args[2].to_owned(),
            mode: Mode::Exclusive,
            wait: if args.get(3) == Some(&"forever") {
                Wait::Forever
            } else {
                Wait::Try
            },
            lock_delay_ms: 0,
        }),
        "release" => log(ClientCommand::Release {
            session: session(args[0]),
            seq: Seq(num(args[1])),
            ack: Seq(num(args[1])),
            lock: args[2].to_owned(),
            token: FencingToken(num(args[3])),
        }),
        "keepalive" => RequestBody::KeepAlive {
            session: session(args[0]),
        },
        "status" => RequestBody::LockStatus {
            lock: args[0].to_owned(),
        },
        "attach" => RequestBody::Attach {
            session: session(args[0]),
            secret: u128::from(num(args[1])),
        },
        "add-learner" => {
            let who = id(args[0]);
            RequestBody::ChangeMembership(MembershipChange::AddLearner(
                who,
                MemberAddrs {
                    peer: format!("10.0.0.{}:7100", who.0),
                    client: format!("10.0.0.{}:7000", who.0),
                    ws: None,
                },
            ))
        }
        "promote" => RequestBody::ChangeMembership(MembershipChange::Promote(id(args[0]))),
        "remove" => RequestBody::ChangeMembership(MembershipChange::Remove(id(args[0]))),
        other => panic!("unknown command {other:?}"),
    }
}

impl World {
    fn client_frame(&mut self, sid: NodeId, c: ConnId, frame: ClientFrame) {
        let now = self.net.now;
        self.net.server(sid).handle_client(c, frame, now);
        self.net.drain(sid);
    }
}

fn run(name: &str) {
    let world = World {
        next_request: 0,
        net: Net::new(),
    };
    net::run("node", name, world);
}

#[test]
fn keepalive_acknowledged_after_its_quorum_round() {
    run("keepalive");
}

#[test]
fn keepalive_whose_expiry_is_proposed_is_answered_expired() {
    run("keepalive_expiring");
}

#[test]
fn a_new_leader_restarts_every_lease() {
    run("lease_reset");
}

#[test]
fn membership_change_around_a_leader_change() {
    run("membership");
}

#[test]
fn a_new_leader_proposes_no_expiry_before_its_own_term_commits() {
    run("expiry_waits_for_own_term");
}
