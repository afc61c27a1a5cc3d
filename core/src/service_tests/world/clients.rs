//! The world's clients: connecting them, draining their sessions, the
//! random workload, and the scripted steps scenarios drive by hand.

use super::*;

impl World {
    pub(super) fn client_now(&self, c: usize) -> Instant {
        self.clients[c].clock.local(self.now)
    }

    pub(super) fn connect(&mut self, c: usize, server: NodeId) {
        self.next_conn += 1;
        let conn = ConnId(self.next_conn);
        let now = self.client_now(c);
        if self.servers[Self::slot(server)].node.is_none() {
            self.clients[c].conn = None;
            self.clients[c].session.connection_lost(now);
        } else {
            self.clients[c].conn = Some((server, conn));
            self.clients[c].session.connected(Some(server), now);
        }
        self.drain_client(c);
    }

    /// Sends the client's frames and reacts to its events.
    pub(super) fn drain_client(&mut self, c: usize) {
        loop {
            let mut progressed = false;
            while let Some(frame) = self.clients[c].session.poll_frame() {
                progressed = true;
                if let Some((server, conn)) = self.clients[c].conn {
                    if self.trace {
                        println!(
                            "t={:.6} client {c} -> {server}: {frame:?}",
                            self.now as f64 / 1e6
                        );
                    }
                    self.enqueue(Msg::ToServer {
                        client: c,
                        server,
                        conn,
                        frame,
                    });
                }
            }
            while let Some(event) = self.clients[c].session.poll_event() {
                progressed = true;
                self.on_client_event(c, event);
            }
            if !progressed {
                return;
            }
        }
    }

    pub(super) fn on_client_event(&mut self, c: usize, event: ClientEvent) {
        if self.trace {
            println!("t={:.6} client {c}: {event:?}", self.now as f64 / 1e6);
        }
        match event {
            ClientEvent::Reconnect { to } => {
                let server = to.map_or_else(
                    || NodeId(1 + self.rng.next_u64() % self.cfg.servers),
                    |m| m.id,
                );
                self.connect(c, server);
            }
            ClientEvent::SessionOpened { op, result } => {
                if self.clients[c].work == Work::Opening(op) {
                    if let Ok(s) = result {
                        self.clients[c].sessions.push(s);
                    }
                    self.clients[c].work = Work::Idle { until: self.now };
                }
            }
            ClientEvent::Completed { op, result } => match self.clients[c].work.clone() {
                Work::Acquiring { lock, op: o } if o == op => {
                    if let Ok(Outcome::Granted { token }) = result {
                        self.clients[c].grants += 1;
                        self.checks
                            .on_grant(self.now, c, &lock, token, &self.servers);
                        let hold = 50_000 + self.rng.next_u64() % 700_000;
                        let release_at = if self.clients[c].scripted {
                            u64::MAX
                        } else {
                            self.now + hold
                        };
                        self.clients[c].work = Work::Holding {
                            lock: lock.clone(),
                            token,
                            release_at,
                        };
                        self.write(c, &lock, token);
                    } else {
                        let pause = self.rng.next_u64() % 200_000;
                        let until = if self.clients[c].scripted {
                            u64::MAX
                        } else {
                            self.now + pause
                        };
                        self.clients[c].work = Work::Idle { until };
                    }
                }
                Work::Releasing(o) if o == op => {
                    let pause = self.rng.next_u64() % 200_000;
                    let until = if self.clients[c].scripted {
                        u64::MAX
                    } else {
                        self.now + pause
                    };
                    self.clients[c].work = Work::Idle { until };
                }
                _ => {}
            },
            // This world's clients do not read.
            ClientEvent::Read { .. } | ClientEvent::Watch { .. } => {}
            ClientEvent::SessionLost { .. } => {
                // The process notices and starts over with a new session.
                let cl = &mut self.clients[c];
                cl.session = ClientSession::new(client::Config::default());
                cl.work = Work::Idle {
                    until: self.now + 100_000,
                };
                let server = cl.conn.map_or(NodeId(1), |(s, _)| s);
                self.connect(c, server);
            }
        }
    }

    /// The client writes to the fenced resource, if its lease says it holds the lock.
    pub(super) fn write(&mut self, c: usize, lock: &str, token: FencingToken) {
        let now = self.client_now(c);
        if !self.clients[c].session.is_alive(now) {
            return;
        }
        self.write_unchecked(c, lock, token);
    }

    /// A write that does not look at the lease first (a zombie, S1).
    pub(crate) fn write_unchecked(&mut self, c: usize, lock: &str, token: FencingToken) {
        let accepted = self.resource.write(lock, token, c);
        self.checks
            .on_write(self.now, c, lock, token, accepted, &self.clients);
    }

    /// Starts the client's next piece of work if it is due.
    pub(super) fn step_workload(&mut self, c: usize) {
        let cl = &self.clients[c];
        if cl.dead || cl.paused_until.is_some() {
            return;
        }
        let now = self.client_now(c);
        match cl.work.clone() {
            _ if cl.scripted => {}
            Work::Idle { until } if self.now >= until && self.workload => {
                if cl.session.session_id().is_none() {
                    let ttl = range(&mut self.rng, self.cfg.ttl_ms);
                    let nonce =
                        u128::from(self.rng.next_u64()) << 64 | u128::from(self.rng.next_u64());
                    if let Ok(op) =
                        self.clients[c]
                            .session
                            .open_session(Duration::from_millis(ttl), nonce, now)
                    {
                        self.clients[c].work = Work::Opening(op);
                    }
                } else {
                    let lock = format!("lock-{}", self.rng.next_u64() % self.cfg.locks as u64);
                    let wait = match self.rng.next_u64() % 3 {
                        0 => Wait::Try,
                        1 => Wait::For(500 + self.rng.next_u64() % 2_500),
                        _ => Wait::Forever,
                    };
                    let delay = Duration::from_millis(self.cfg.lock_delay_ms);
                    match self.clients[c].session.acquire(
                        lock.clone(),
                        Mode::Exclusive,
                        wait,
                        delay,
                        now,
                    ) {
                        Ok(op) => self.clients[c].work = Work::Acquiring { lock, op },
                        Err(_) => {
                            self.clients[c].work = Work::Idle {
                                until: self.now + 100_000,
                            }
                        }
                    }
                }
            }
            Work::Holding {
                lock,
                token,
                release_at,
            } if self.now >= release_at => {
                self.write(c, &lock, token);
                match self.clients[c].session.release(lock, token, now) {
                    Ok(op) => self.clients[c].work = Work::Releasing(op),
                    Err(_) => self.clients[c].work = Work::Idle { until: self.now },
                }
            }
            _ => {}
        }
        self.drain_client(c);
    }

    /// Adds a client driven by the test, connected to `server`.
    pub(crate) fn add_scripted_client(&mut self, server: NodeId) -> usize {
        let c = self.clients.len();
        let offset = self.rng.next_u64() % 1_000_000_000;
        self.clients.push(Client {
            name: c,
            // It stays where the test put it.
            session: ClientSession::new(client::Config {
                follow_leader: false,
                ..client::Config::default()
            }),
            clock: DriftClock {
                offset_us: offset,
                drift_ppm: 0,
            },
            conn: None,
            work: Work::Idle { until: u64::MAX },
            paused_until: None,
            dead: false,
            sessions: Vec::new(),
            grants: 0,
            inbox: VecDeque::new(),
            scripted: true,
        });
        self.connect(c, server);
        c
    }

    /// A scripted client opens a session; returns whether it opened within `limit`.
    pub(crate) fn open(&mut self, c: usize, ttl: Duration, limit: Duration) -> bool {
        let nonce = u128::from(self.rng.next_u64()) << 64 | u128::from(self.rng.next_u64()) | 1;
        let now = self.client_now(c);
        let Ok(op) = self.clients[c].session.open_session(ttl, nonce, now) else {
            return false;
        };
        self.clients[c].work = Work::Opening(op);
        self.drain_client(c);
        self.run_until(limit, |w| w.clients[c].session.session_id().is_some())
    }

    /// A scripted client asks for `lock`; returns the token if granted within `limit`.
    pub(crate) fn acquire(
        &mut self,
        c: usize,
        lock: &str,
        wait: Wait,
        lock_delay: Duration,
        limit: Duration,
    ) -> Option<FencingToken> {
        let now = self.client_now(c);
        let op = self.clients[c]
            .session
            .acquire(lock, Mode::Exclusive, wait, lock_delay, now)
            .ok()?;
        self.clients[c].work = Work::Acquiring {
            lock: lock.to_owned(),
            op,
        };
        self.drain_client(c);
        self.run_until(limit, |w| {
            !matches!(w.clients[c].work, Work::Acquiring { .. })
        });
        match self.clients[c].work {
            Work::Holding { token, .. } => Some(token),
            _ => None,
        }
    }

    /// A scripted client releases what it holds.
    pub(crate) fn release(&mut self, c: usize, limit: Duration) -> bool {
        let Work::Holding { lock, token, .. } = self.clients[c].work.clone() else {
            return false;
        };
        let now = self.client_now(c);
        let Ok(op) = self.clients[c].session.release(lock, token, now) else {
            return false;
        };
        self.clients[c].work = Work::Releasing(op);
        self.drain_client(c);
        self.run_until(limit, |w| !matches!(w.clients[c].work, Work::Releasing(_)))
    }

    pub(super) fn client_deadline(&self, c: usize) -> Option<u64> {
        let cl = &self.clients[c];
        if cl.dead {
            return None;
        }
        if let Some(p) = cl.paused_until {
            return Some(p);
        }
        let session = cl
            .session
            .poll_timeout()
            .map(|t| cl.clock.true_time_of(t, self.now));
        let work = match &cl.work {
            Work::Idle { until } if self.workload && !cl.scripted => Some(*until),
            Work::Holding { release_at, .. } if *release_at < u64::MAX => Some(*release_at),
            _ => None,
        };
        [session, work].into_iter().flatten().min()
    }

    // ---- running --------------------------------------------------------
}
