//! True time in the checked world (configurations with
//! [`crate::setup::Clocks`]): clocks that drift at the bound off it,
//! timers that fire on time or, for a leader, late to its next lease
//! deadline, the clients' leases by the client library's rule, and the
//! no-early-release property checked when an expiry commits.

use super::{Server, World};
use crate::setup::Clocks;
use distlock_core::client::lease_length;
use distlock_core::locks::SessionId;
use distlock_core::proto::{ProtoError, RequestId, ResponseBody};
use distlock_core::raft::Role;
use distlock_core::time::{Duration, Instant};

impl World {
    /// A pause differs from a timer only for a leader whose next lease
    /// timer falls after its next heartbeat.
    pub(super) fn pause_allowed(&self, s: &Server) -> bool {
        self.setup.clocks.is_some()
            && s.node.raft().role() == Role::Leader
            && s.node.lease_deadline() > s.node.poll_timeout()
    }

    /// With true time: moves it on to `t` (never back) and every server's
    /// clock with it.
    pub(super) fn advance_to(&mut self, t: Instant) {
        let Some(clocks) = &self.setup.clocks else {
            return;
        };
        if t <= self.now {
            return;
        }
        self.now = t;
        for (s, &ppm) in self.servers.iter_mut().zip(&clocks.server_ppm) {
            s.clock = s.clock.max(Clocks::local(ppm, t));
            s.fp = None;
        }
    }

    /// What client clocks read now.
    #[must_use]
    pub fn client_clock(&self) -> Instant {
        self.setup
            .clocks
            .as_ref()
            .map_or(Instant::ZERO, |c| Clocks::local(c.client_ppm, self.now))
    }

    /// Fires server `p`'s timers at `deadline` on its clock (or at once,
    /// when its clock is past it): true time moves to when its clock reads
    /// the deadline.
    pub(super) fn fire(&mut self, p: usize, deadline: Option<Instant>) {
        let s = &self.servers[p];
        let id = s.id;
        if s.node.raft().role() == Role::Leader {
            self.budget.leader_ticks -= 1;
        } else {
            self.budget.elections = self.budget.elections.saturating_sub(1);
        }
        if let Some(t) = deadline {
            match &self.setup.clocks {
                Some(clocks) => {
                    let ppm = clocks.server_ppm[p];
                    self.advance_to(Clocks::true_time(ppm, t));
                }
                None => {
                    let s = &mut self.servers[p];
                    s.clock = s.clock.max(t);
                }
            }
        }
        let s = &mut self.servers[p];
        let now = s.clock;
        s.node.handle_timeout(now);
        self.note(|w| {
            let at = format!("{}: timer at {} ms", id.0, now.as_micros() / 1000);
            match w.setup.clocks {
                Some(_) => format!("{at} (true time {} ms)", w.now.as_micros() / 1000),
                None => at,
            }
        });
        self.drain(p);
    }

    /// No early release: when a session's expiry commits (its locks are
    /// free from then on), its client, holding locks, must already count
    /// its lease as run out on its own clock. Only true time relates the
    /// two clocks, so only configurations that keep it check this.
    pub(super) fn check_no_early_release(&mut self, session: SessionId) {
        if self.setup.clocks.is_none() {
            return;
        }
        let clock = self.client_clock();
        if self.verbose {
            for k in self.clients.iter().filter(|k| k.session == Some(session)) {
                self.out.push(format!(
                    "session {}'s expiry committed at true time {} ms; client {} counts its lease until {} ms on its clock, which reads {} ms",
                    session.0,
                    self.now.as_micros() / 1000,
                    k.index,
                    k.lease_until.map_or(0, |u| u.as_micros() / 1000),
                    clock.as_micros() / 1000
                ));
            }
        }
        let early = self
            .clients
            .iter()
            .find(|k| k.session == Some(session) && !k.held.is_empty() && k.lease_runs(clock));
        if let Some(k) = early {
            let what = format!(
                "no early release: session {}'s expiry committed at true time {} ms, while client {} holds {} and counts its lease until {} ms on its clock, which reads {} ms",
                session.0,
                self.now.as_micros() / 1000,
                k.index,
                k.held
                    .iter()
                    .map(|(l, t, _)| format!("{l} (token {})", t.0))
                    .collect::<Vec<_>>()
                    .join(", "),
                k.lease_until.map_or(0, |u| u.as_micros() / 1000),
                clock.as_micros() / 1000
            );
            self.ghost.violate(what);
        }
    }

    /// With true time: an acknowledged open or keepalive extends client
    /// `c`'s lease, by the client library's rule.
    pub(super) fn lease_answered(
        &mut self,
        c: usize,
        id: RequestId,
        result: &Result<ResponseBody, ProtoError>,
    ) {
        let Some(clocks) = &self.setup.clocks else {
            return;
        };
        let ttl_ms = match result {
            Ok(ResponseBody::SessionOpened { ttl_ms, .. }) => *ttl_ms,
            Ok(ResponseBody::KeepAliveAck { .. }) => clocks.ttl_ms,
            _ => return,
        };
        let len = lease_length(Duration::from_millis(ttl_ms), clocks.max_drift_ppm);
        let now = self.client_clock();
        let client = &mut self.clients[c];
        client.lease_acknowledged(id, len);
        let until = client.lease_until.map_or(0, |u| u.as_micros() / 1000);
        self.note(|_| {
            format!(
                "client {c}: counts its lease until {until} ms on its clock, which reads {} ms",
                now.as_micros() / 1000
            )
        });
    }
}
