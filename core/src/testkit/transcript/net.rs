//! The hand-driven network behind every transcript: servers (Raft alone,
//! or whole nodes) whose messages wait in flight until `deliver`, whose
//! writes are durable only after `persist`, and whose timers fire only on
//! `tick-to`. It prints each server's outputs as they happen and its state
//! line whenever that changes.
//!
//! The commands it runs, shared by every transcript (servers are numbers;
//! `*` or nothing means all):
//!
//! - `tick-to MS [server…]`: time moves to MS; every timer due by then
//!   fires, in time order (only the listed servers' timers, if any);
//! - `deliver [from=A] [to=B]`: delivers the messages in flight now (the
//!   ones matching), in the order they were sent; what they cause waits
//!   for the next `deliver`;
//! - `persist [server…]`: every write issued so far is durable;
//! - `stabilize`: `persist` and `deliver` until nothing is in flight;
//! - `run-to MS`: time moves to MS with a working network and disks:
//!   `stabilize`, then the next timer due by MS fires, and so on;
//! - `quiet` / `verbose`: stop or resume printing (for set-up steps);
//! - `cut A B` (both ways), `isolate A`, `heal`: the network;
//! - `crash S`: writes not persisted are lost, messages to it dropped;
//! - `state [server…]`: prints the servers' state.
//!
//! and, with the [`World`] of each transcript, which knows how to build a
//! server from its disk:
//!
//! - `boot 1 2 3 [option…]`: a new cluster of these voters (the options
//!   are the world's);
//! - `join 4`: a server with an empty disk, which learns its configuration
//!   from the leader;
//! - `restart S`: starts S again from its disk.

use crate::ids::NodeId;
use crate::raft::{Membership, Persist, PersistSeq, Stored};
use crate::testkit::Disk;
use crate::testkit::links::Links;
use crate::time::{Duration, Instant};
use std::collections::BTreeMap;

/// What a server under a transcript hands the network.
pub(crate) enum Output<M, C> {
    /// A message to another server.
    Send { to: NodeId, msg: M },
    /// A write to make durable (on `persist`).
    Persist(Persist<C>),
    /// Anything else worth a line (an applied entry, a client's answer).
    Note(String),
}

/// A server the network can drive.
pub(crate) trait Server {
    /// Its log's commands.
    type Command: Clone;
    /// What it sends other servers.
    type Message;

    /// Its next output, if any.
    fn poll_output(&mut self) -> Option<Output<Self::Message, Self::Command>>;
    /// A message from `from`.
    fn receive(&mut self, from: NodeId, msg: Self::Message, now: Instant);
    /// When its next timer is due.
    fn next_timeout(&self) -> Option<Instant>;
    /// Its timers due at `now` fire.
    fn timeout(&mut self, now: Instant);
    /// Its writes up to `seq` are durable.
    fn persisted(&mut self, seq: PersistSeq, now: Instant);
    /// Its state, on one line.
    fn state_line(&self) -> String;
    /// A message, without its ends (the network prints `A->B` before it).
    fn message_text(msg: &Self::Message) -> String;
}

/// One server's place on the network: the server while it runs, and its
/// disk, which outlives crashes.
pub(crate) struct Slot<S: Server> {
    pub(crate) server: Option<S>,
    pub(crate) disk: Disk<S::Command>,
    /// Writes issued and not yet durable.
    pending: Vec<Persist<S::Command>>,
    /// The state line last printed.
    shown: String,
    /// How many times it started (seeds each start differently).
    starts: u64,
    /// Whether it starts with the first configuration (else it learns it).
    bootstrap: bool,
}

struct Envelope<M> {
    from: NodeId,
    to: NodeId,
    msg: M,
}

/// The network, the clock and the transcript's output.
pub(crate) struct Net<S: Server> {
    slots: BTreeMap<NodeId, Slot<S>>,
    /// The first configuration's voters.
    voters: Vec<NodeId>,
    pub(crate) now: Instant,
    in_flight: Vec<Envelope<S::Message>>,
    links: Links,
    out: Vec<String>,
    quiet: bool,
}

/// A server's number on a command line.
pub(crate) fn id(word: &str) -> NodeId {
    NodeId(
        word.parse()
            .unwrap_or_else(|_| panic!("not a server: {word:?}")),
    )
}

/// Milliseconds since the start, as transcripts print time.
pub(crate) fn ms(t: Instant) -> u64 {
    t.as_micros() / 1000
}

impl<S: Server> Net<S> {
    pub(crate) fn new() -> Self {
        Self {
            slots: BTreeMap::new(),
            voters: Vec::new(),
            now: Instant::ZERO,
            in_flight: Vec::new(),
            links: Links::default(),
            out: Vec::new(),
            quiet: false,
        }
    }

    /// Prints a line (unless quiet).
    pub(crate) fn say(&mut self, line: String) {
        if !self.quiet {
            self.out.push(line);
        }
    }

    /// The lines printed since the last call.
    pub(crate) fn take_output(&mut self) -> Vec<String> {
        std::mem::take(&mut self.out)
    }

    /// A server with an empty disk, not running.
    fn add(&mut self, sid: NodeId, bootstrap: bool) {
        self.slots.insert(
            sid,
            Slot {
                server: None,
                disk: Disk::default(),
                pending: Vec::new(),
                shown: String::new(),
                starts: 0,
                bootstrap,
            },
        );
    }

    /// The first configuration's voters.
    pub(crate) fn voters(&self) -> &[NodeId] {
        &self.voters
    }

    /// Starts `sid` from its disk, built by `world`, and prints what it
    /// does on starting.
    fn start<W: World<Server = S>>(world: &mut W, sid: NodeId) {
        let net = world.net();
        let initial = if net.slot(sid).bootstrap {
            Membership::with_voters(net.voters.iter().copied())
        } else {
            Membership::default()
        };
        let slot = net.slot(sid);
        let stored = Stored {
            hard_state: slot.disk.hard_state,
            snapshot: slot.disk.snapshot.clone(),
            entries: slot.disk.entries.clone(),
            initial_membership: initial,
        };
        let seed = sid.0 * 7919 + slot.starts;
        slot.starts += 1;
        let now = net.now;
        let server = world.build(sid, stored, seed, now);
        let net = world.net();
        let slot = net.slot(sid);
        slot.server = Some(server);
        slot.shown.clear();
        net.drain(sid);
    }

    fn slot(&mut self, sid: NodeId) -> &mut Slot<S> {
        self.slots
            .get_mut(&sid)
            .unwrap_or_else(|| panic!("no server {}", sid.0))
    }

    /// The servers named on a command line (all for none or `*`).
    pub(crate) fn targets(&self, words: &[&str]) -> Vec<NodeId> {
        if words.is_empty() || words == ["*"] {
            self.slots.keys().copied().collect()
        } else {
            words.iter().map(|w| id(w)).collect()
        }
    }

    pub(crate) fn up(&self, sid: NodeId) -> bool {
        self.slots.get(&sid).is_some_and(|s| s.server.is_some())
    }

    /// The running server `sid`.
    pub(crate) fn server(&mut self, sid: NodeId) -> &mut S {
        self.slots
            .get_mut(&sid)
            .and_then(|s| s.server.as_mut())
            .unwrap_or_else(|| panic!("server {} is down", sid.0))
    }

    /// Takes every output of `sid`, printing it, then its state if changed.
    pub(crate) fn drain(&mut self, sid: NodeId) {
        loop {
            let Some(slot) = self.slots.get_mut(&sid) else {
                return;
            };
            let Some(server) = slot.server.as_mut() else {
                return;
            };
            let Some(output) = server.poll_output() else {
                break;
            };
            let line = match output {
                Output::Persist(p) => {
                    let line = super::raft_text::persist(&p);
                    slot.pending.push(p);
                    line
                }
                Output::Send { to, msg } => {
                    let line = format!("send {}->{} {}", sid.0, to.0, S::message_text(&msg));
                    self.in_flight.push(Envelope { from: sid, to, msg });
                    line
                }
                Output::Note(line) => line,
            };
            self.say(format!("{}: {line}", sid.0));
        }
        self.show(sid, false);
    }

    /// Prints `sid`'s state line, if it changed since last printed (or
    /// `always`).
    pub(crate) fn show(&mut self, sid: NodeId, always: bool) {
        let Some(slot) = self.slots.get_mut(&sid) else {
            return;
        };
        let line = slot
            .server
            .as_ref()
            .map_or_else(|| "down".to_owned(), S::state_line);
        if always || line != slot.shown {
            slot.shown.clone_from(&line);
            self.say(format!("{}: {line}", sid.0));
        }
    }

    /// Runs one of the shared commands; `false` if `cmd` is not one.
    pub(crate) fn exec(&mut self, cmd: &str, args: &[&str]) -> bool {
        match cmd {
            "tick-to" => self.tick_to(args),
            "deliver" => self.deliver(args),
            "persist" => {
                for sid in self.targets(args) {
                    self.persist(sid);
                }
            }
            "stabilize" => self.stabilize(),
            "run-to" => self.run_to(args),
            "quiet" => self.quiet = true,
            "verbose" => self.quiet = false,
            "cut" => self.cut(id(args[0]), id(args[1])),
            "isolate" => self.isolate(id(args[0])),
            "heal" => self.heal(),
            "crash" => {
                for sid in self.targets(args) {
                    self.crash(sid);
                }
            }
            "state" => {
                for sid in self.targets(args) {
                    self.show(sid, true);
                }
            }
            _ => return false,
        }
        true
    }

    /// Time moves to `args[0]` ms; the timers due by then fire in order.
    fn tick_to(&mut self, args: &[&str]) {
        let until = Instant::ZERO + Duration::from_millis(args[0].parse().expect("ms"));
        let only = if args.len() > 1 {
            self.targets(&args[1..])
        } else {
            self.slots.keys().copied().collect()
        };
        while self.fire_next_timer(&only, until) {}
        self.now = self.now.max(until);
    }

    /// Time moves to `args[0]` ms, every message delivered and every
    /// write made durable as soon as it is issued.
    fn run_to(&mut self, args: &[&str]) {
        let until = Instant::ZERO + Duration::from_millis(args[0].parse().expect("ms"));
        let all: Vec<NodeId> = self.slots.keys().copied().collect();
        loop {
            self.stabilize();
            if !self.fire_next_timer(&all, until) {
                break;
            }
        }
        self.now = self.now.max(until);
    }

    /// Fires the earliest timer of `only` due by `until`; whether there
    /// was one.
    fn fire_next_timer(&mut self, only: &[NodeId], until: Instant) -> bool {
        let next = only
            .iter()
            .filter_map(|&sid| Some((self.slots.get(&sid)?.server.as_ref()?.next_timeout()?, sid)))
            .filter(|(t, _)| *t <= until)
            .min();
        let Some((t, sid)) = next else {
            return false;
        };
        self.now = self.now.max(t);
        self.say(format!("{}: timeout at {}ms", sid.0, ms(self.now)));
        let now = self.now;
        self.server(sid).timeout(now);
        self.drain(sid);
        true
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
            let text = format!("{}->{} {}", m.from.0, m.to.0, S::message_text(&m.msg));
            if self.links.is_cut(m.from, m.to) || !self.up(m.to) || !self.up(m.from) {
                self.say(format!("dropped {text}"));
                continue;
            }
            self.say(format!("{}: receive {text}", m.to.0));
            let now = self.now;
            self.server(m.to).receive(m.from, m.msg, now);
            self.drain(m.to);
        }
    }

    /// Every write `sid` issued so far is durable.
    pub(crate) fn persist(&mut self, sid: NodeId) {
        let Some(slot) = self.slots.get_mut(&sid) else {
            return;
        };
        if slot.server.is_none() {
            return;
        }
        let Some(last) = slot.pending.last().map(|p| p.seq) else {
            return;
        };
        for p in slot.pending.drain(..) {
            slot.disk
                .apply(&p, usize::MAX)
                .unwrap_or_else(|e| panic!("server {} broke the contract: {e}", sid.0));
        }
        self.say(format!("{}: durable up to #{}", sid.0, last.0));
        let now = self.now;
        self.server(sid).persisted(last, now);
        self.drain(sid);
    }

    fn stabilize(&mut self) {
        for _ in 0..100 {
            let pending = self
                .slots
                .values()
                .any(|s| s.server.is_some() && !s.pending.is_empty());
            if self.in_flight.is_empty() && !pending {
                break;
            }
            for sid in self.targets(&[]) {
                self.persist(sid);
            }
            self.deliver(&[]);
        }
    }

    /// Cuts the link between `a` and `b`, both ways.
    pub(crate) fn cut(&mut self, a: NodeId, b: NodeId) {
        self.links.cut(a, b);
        self.drop_cut();
    }

    /// Cuts every link of `a`.
    pub(crate) fn isolate(&mut self, a: NodeId) {
        self.links.isolate(a, self.slots.keys().copied());
        self.drop_cut();
    }

    /// Restores every link.
    pub(crate) fn heal(&mut self) {
        self.links.heal();
    }

    /// Stops `sid`: what it had not made durable is lost.
    pub(crate) fn crash(&mut self, sid: NodeId) {
        let slot = self.slot(sid);
        let lost: Vec<String> = slot
            .pending
            .drain(..)
            .map(|p| format!("#{}", p.seq.0))
            .collect();
        slot.server = None;
        let lost = if lost.is_empty() {
            String::new()
        } else {
            format!(", losing {}", lost.join(" "))
        };
        self.say(format!("{}: crashed{lost}", sid.0));
    }

    /// Messages in flight on a link just cut are lost.
    fn drop_cut(&mut self) {
        let (lost, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|m| self.links.is_cut(m.from, m.to));
        self.in_flight = kept;
        for m in lost {
            let text = format!("{}->{} {}", m.from.0, m.to.0, S::message_text(&m.msg));
            self.say(format!("dropped {text}"));
        }
    }
}

/// A transcript's world: the shared network, and how to build one of its
/// servers and run the commands that are not the network's.
pub(crate) trait World {
    type Server: Server;

    fn net(&mut self) -> &mut Net<Self::Server>;

    /// Server `sid`, from what its disk holds, seeded with `seed`.
    fn build(
        &mut self,
        sid: NodeId,
        stored: Stored<<Self::Server as Server>::Command>,
        seed: u64,
        now: Instant,
    ) -> Self::Server;

    /// A word of `boot` that is not a server.
    fn boot_option(&mut self, word: &str) {
        panic!("unknown boot option {word:?}");
    }

    /// A command that is neither the network's nor `boot`, `join` or
    /// `restart`.
    fn command(&mut self, cmd: &str, args: &[&str]);
}

/// Runs `core/testdata/<dir>/<name>.txt` against `world`.
pub(crate) fn run<W: World>(dir: &str, name: &str, mut world: W) {
    super::run_file(&super::testdata(dir, name), |line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (cmd, args) = words.split_first().expect("an empty command");
        if !world.net().exec(cmd, args) {
            match *cmd {
                "boot" => {
                    for a in args {
                        match a.parse() {
                            Ok(n) => world.net().voters.push(NodeId(n)),
                            Err(_) => world.boot_option(a),
                        }
                    }
                    for sid in world.net().voters.clone() {
                        world.net().add(sid, true);
                        Net::start(&mut world, sid);
                    }
                }
                "join" => {
                    for sid in world.net().targets(args) {
                        world.net().add(sid, false);
                        Net::start(&mut world, sid);
                    }
                }
                "restart" => {
                    for sid in world.net().targets(args) {
                        Net::start(&mut world, sid);
                    }
                }
                _ => world.command(cmd, args),
            }
        }
        world.net().take_output()
    });
}
