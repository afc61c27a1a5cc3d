//! Clients driven by the client library's own session machine
//! ([`ClientSession`], unchanged): it opens the session, sends keepalives
//! on its own timers, counts its lease from each acknowledged keepalive,
//! attaches its session on every new connection and sends again what is
//! outstanding there. The checker chooses when its next timer fires (true
//! time moves to when the client's clock reads the deadline), when it
//! starts its script's next request, and, when it asks to reconnect, to
//! which server (the one it names, or any when it names none). Frames go
//! over the connection at once, both ways. The lease the client-side
//! properties read is the machine's own ([`ClientSession::lease_until`]).

use super::{World, conn};
use crate::describe;
use crate::setup::Op;
use distlock_core::client::{ClientEvent, ClientSession, Config, OpId};
use distlock_core::ids::NodeId;
use distlock_core::locks::{FencingToken, Outcome};
use distlock_core::proto::ServerFrame;
use distlock_core::time::{Duration, Instant};

/// A client run by the library's session machine.
#[derive(Clone, Debug)]
pub struct Machine {
    /// The real machine.
    pub session: ClientSession,
    /// The server it is connected to.
    pub server: Option<NodeId>,
    /// It asked to (re)connect: to this server, or to any (`Some(None)`).
    pub dial: Option<Option<NodeId>>,
    /// The operation started for a script position, not answered yet.
    pub waiting: Option<Waiting>,
}

/// An operation of the script the machine is carrying out.
#[derive(Clone, Copy, Debug)]
pub struct Waiting {
    /// The machine's id for it.
    pub op: OpId,
    /// Its script position.
    pub pos: usize,
    /// For a release, the token released.
    pub token: Option<FencingToken>,
}

impl Machine {
    /// A machine that has not dialled yet, with the library's defaults
    /// and the configuration's drift bound.
    #[must_use]
    pub fn new(max_drift_ppm: u32) -> Self {
        let config = Config {
            max_drift_ppm,
            ..Config::default()
        };
        Self {
            session: ClientSession::new(config),
            server: None,
            dial: Some(None),
            waiting: None,
        }
    }
}

/// Whether a library client can run `op` (the machine opens its session
/// and keeps it alive itself; reads and membership changes are the
/// scripted clients').
#[must_use]
pub fn runs(op: &Op) -> bool {
    matches!(
        op,
        Op::Open | Op::Acquire { .. } | Op::Wait { .. } | Op::Release { .. }
    )
}

impl World {
    pub(super) fn machine(&mut self, c: usize) -> &mut Machine {
        self.machines[c].as_mut().expect("a library client")
    }

    /// Whether library client `c` may start its script's next request.
    pub(super) fn may_issue(&self, c: usize) -> bool {
        let Some(m) = &self.machines[c] else {
            return false;
        };
        m.waiting.is_none()
            && !m.session.is_ended()
            && self.setup.clients[c].get(self.clients[c].pc).is_some()
    }

    /// Library client `c` starts its script's next request.
    pub(super) fn issue(&mut self, c: usize) {
        let now = self.client_clock();
        let pos = self.clients[c].pc;
        let op = self.setup.clients[c][pos].clone();
        let ttl = self.setup.clocks.as_ref().map_or(0, |k| k.ttl_ms);
        let nonce = self.clients[c].nonce();
        let mut token = None;
        let started = match &op {
            Op::Open => {
                self.machine(c)
                    .session
                    .open_session(Duration::from_millis(ttl), nonce, now)
            }
            Op::Acquire { lock, mode } | Op::Wait { lock, mode } => {
                let delay = Duration::from_millis(self.setup.lock_delay_ms);
                self.machine(c)
                    .session
                    .acquire(*lock, *mode, op.wait(), delay, now)
            }
            Op::Release { lock } => {
                let held = self.clients[c].held.iter().find(|(l, ..)| l == lock);
                let Some(&(_, t, _)) = held else {
                    self.note(|_| format!("client {c}: skips {} (nothing to ask)", op.describe()));
                    self.clients[c].pc += 1;
                    return;
                };
                token = Some(t);
                self.clients[c].held.retain(|(_, h, _)| *h != t);
                self.ghost.release_sent(t);
                self.machine(c).session.release(*lock, t, now)
            }
            other => panic!("a library client cannot run {other:?}"),
        };
        match started {
            Ok(id) => {
                self.note(|_| format!("client {c}: starts {}", op.describe()));
                self.machine(c).waiting = Some(Waiting { op: id, pos, token });
            }
            Err(e) => {
                self.note(|_| format!("client {c}: cannot start {}: {e}", op.describe()));
                self.clients[c].pc += 1;
            }
        }
        self.machine_events(c);
    }

    /// Library client `c`'s next timer fires.
    pub(super) fn client_timer(&mut self, c: usize) {
        self.budget.client_ticks -= 1;
        let deadline = self.machine(c).session.poll_timeout();
        if let (Some(t), Some(clocks)) = (deadline, &self.setup.clocks) {
            let at = crate::setup::Clocks::true_time(clocks.client_ppm, t);
            self.advance_to(at);
        }
        let now = self.client_clock();
        self.machine(c).session.handle_timeout(now);
        self.note(|w| {
            format!(
                "client {c}: timer at {} ms (true time {} ms)",
                now.as_micros() / 1000,
                w.now.as_micros() / 1000
            )
        });
        self.machine_events(c);
    }

    /// Library client `c` connects to `server`.
    pub(super) fn dial(&mut self, c: usize, server: NodeId) {
        let now = self.client_clock();
        let m = self.machine(c);
        m.dial = None;
        m.server = Some(server);
        m.session.connected(Some(server), now);
        self.note(|_| format!("client {c}: connected to {}", server.0));
        self.machine_events(c);
    }

    /// Library client `c`'s connection broke (its server crashed).
    pub(super) fn disconnect(&mut self, c: usize) {
        let now = self.client_clock();
        let m = self.machine(c);
        m.server = None;
        m.session.connection_lost(now);
        self.machine_events(c);
    }

    /// A frame from `server` reaches library client `c`, on its current
    /// connection or none (a reply on a connection it has left is lost).
    pub(super) fn machine_frame(&mut self, c: usize, server: NodeId, frame: ServerFrame) {
        if self.machine(c).server != Some(server) {
            return;
        }
        let now = self.client_clock();
        if self.verbose {
            let text = describe::server_frame(&frame);
            self.out
                .push(format!("client {c}: {text} from {}", server.0));
        }
        self.machine(c).session.handle_frame(frame, now);
        self.machine_events(c);
    }

    /// Sends every frame the library clients have queued, until none has
    /// any left (an answer may queue more).
    pub(super) fn pump(&mut self) {
        loop {
            let mut sent = false;
            for c in 0..self.machines.len() {
                while let Some(m) = self.machines[c].as_mut() {
                    let Some(frame) = m.session.poll_frame() else {
                        break;
                    };
                    // Frames of a connection that is gone are lost with it.
                    let Some(server) = m.server else {
                        continue;
                    };
                    sent = true;
                    if self.verbose {
                        let text = describe::client_frame(&frame);
                        self.out
                            .push(format!("client {c}: sends {text} to {}", server.0));
                    }
                    let p = self.pos(server);
                    let now = self.servers[p].clock;
                    self.servers[p]
                        .node
                        .handle_client(conn(c, server), frame, now);
                    self.drain(p);
                }
            }
            if !sent {
                return;
            }
        }
    }

    /// What library client `c` made of its last input: its operations'
    /// answers feed the client-side properties, a reconnection is asked,
    /// and its lease, as it counts it, is what the properties read.
    fn machine_events(&mut self, c: usize) {
        while let Some(event) = self.machine(c).session.poll_event() {
            self.note(|_| format!("client {c}: {}", describe::client_event(&event)));
            match event {
                ClientEvent::Reconnect { to } => {
                    let m = self.machine(c);
                    m.server = None;
                    m.dial = Some(to.map(|t| t.id));
                }
                ClientEvent::SessionOpened { op, result } => {
                    if let Ok(session) = result {
                        self.clients[c].session = Some(session);
                    }
                    self.finish(c, op);
                }
                ClientEvent::Completed { op, result } => {
                    let waiting = self.machine(c).waiting.filter(|w| w.op == op);
                    if let (Some(w), Ok(outcome)) = (waiting, result) {
                        match (&self.setup.clients[c][w.pos], outcome) {
                            (
                                Op::Acquire { lock, mode } | Op::Wait { lock, mode },
                                Outcome::Granted { token },
                            ) => {
                                let (lock, mode) = ((*lock).to_owned(), *mode);
                                self.granted(c, &lock, mode, token);
                            }
                            (Op::Release { .. }, Outcome::Released) => {
                                if let Some(t) = w.token {
                                    self.ghost.release_answered_now(t);
                                }
                            }
                            _ => {}
                        }
                    }
                    self.finish(c, op);
                }
                ClientEvent::SessionLost { .. } => self.clients[c].held.clear(),
                ClientEvent::Read { op, .. } => self.finish(c, op),
                ClientEvent::Watch { .. } => {}
            }
        }
        let m = self.machine(c);
        let until = m.session.lease_until();
        let opened = self.clients[c].session.is_some();
        // Once open, a session that is no longer open has no lease left.
        let until = opened.then(|| until.unwrap_or(Instant::ZERO));
        if until != self.clients[c].lease_until {
            self.clients[c].lease_until = until;
            let now = self.client_clock();
            self.note(|_| {
                format!(
                    "client {c}: counts its lease until {} ms on its clock, which reads {} ms",
                    until.map_or(0, |u| u.as_micros() / 1000),
                    now.as_micros() / 1000
                )
            });
        }
    }

    /// Operation `op` of library client `c` was answered: its script moves on.
    fn finish(&mut self, c: usize, op: OpId) {
        let m = self.machine(c);
        if let Some(w) = m.waiting.filter(|w| w.op == op) {
            m.waiting = None;
            self.clients[c].pc = w.pos + 1;
        }
    }
}
