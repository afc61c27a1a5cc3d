//! What a client connection passes before the node sees its requests:
//! authentication (the access its `Hello` proves), the connection limits
//! (in all and per source address), and per connection the in-flight
//! limit, the request rate and the deadline of a frame under way.

use crate::auth::AuthHandle;
use crate::limits::Limits;
use distlock_core::proto::ProtoError;
use distlock_transport_tcp::Meter;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Shared by every client connection task of a server.
#[derive(Debug)]
pub(super) struct Gate {
    pub(super) auth: AuthHandle,
    pub(super) limits: Limits,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: u32,
    by_source: HashMap<IpAddr, u32>,
}

/// A connection counted against the limits until it is dropped.
#[derive(Debug)]
pub(super) struct Ticket {
    gate: Arc<Gate>,
    source: IpAddr,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Ok(mut c) = self.gate.counts.lock() {
            c.total = c.total.saturating_sub(1);
            if let Some(n) = c.by_source.get_mut(&self.source) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.by_source.remove(&self.source);
                }
            }
        }
    }
}

impl Gate {
    pub(super) fn new(auth: AuthHandle, limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            auth,
            limits,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Counts a new connection from `source`, or refuses it.
    pub(super) fn enter(self: &Arc<Self>, source: IpAddr) -> Result<Ticket, ProtoError> {
        let mut c = self
            .counts
            .lock()
            .map_err(|_| ProtoError::TooManyConnections { max: 0 })?;
        if c.total >= self.limits.connections {
            return Err(ProtoError::TooManyConnections {
                max: self.limits.connections,
            });
        }
        let from_source = c.by_source.entry(source).or_insert(0);
        if *from_source >= self.limits.connections_per_source {
            return Err(ProtoError::TooManyConnections {
                max: self.limits.connections_per_source,
            });
        }
        *from_source += 1;
        c.total += 1;
        drop(c);
        Ok(Ticket {
            gate: Arc::clone(self),
            source,
        })
    }
}

/// Unanswered requests of one connection: counted up as they are read,
/// down as their responses are written.
#[derive(Clone, Debug, Default)]
pub(super) struct InFlight(Arc<AtomicU32>);

impl InFlight {
    pub(super) fn answered(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

/// The per-request checks of one connection.
#[derive(Debug)]
pub(super) struct RequestGate {
    in_flight: InFlight,
    max_in_flight: u32,
    rate: u32,
    tokens: f64,
    refilled: Instant,
}

impl RequestGate {
    pub(super) fn new(limits: &Limits, in_flight: InFlight) -> Self {
        Self {
            in_flight,
            max_in_flight: limits.in_flight,
            rate: limits.rate,
            tokens: f64::from(limits.rate),
            refilled: Instant::now(),
        }
    }

    /// Admits one request, or says why not. Every request read is
    /// counted in flight, refused or not: each is answered exactly once,
    /// and the answer counts it down.
    pub(super) fn admit(&mut self) -> Result<(), ProtoError> {
        let before = self.in_flight.0.fetch_add(1, Ordering::Relaxed);
        if before >= self.max_in_flight {
            return Err(ProtoError::TooManyInFlight {
                max: self.max_in_flight,
            });
        }
        let now = Instant::now();
        let rate = f64::from(self.rate);
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = elapsed.mul_add(rate, self.tokens).min(rate);
        self.refilled = now;
        if self.tokens < 1.0 {
            return Err(ProtoError::RateLimited {
                per_second: self.rate,
            });
        }
        self.tokens -= 1.0;
        Ok(())
    }
}

/// What a reading task does after a wait that produced no frame.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Tick {
    /// Keep reading.
    Wait,
    /// A frame has been arriving for longer than the deadline: cut it.
    Overdue(ProtoError),
    /// Nothing arrived for the idle limit: the client is gone.
    Idle,
}

/// The deadline of the frame under way, and the idle limit.
#[derive(Debug)]
pub(super) struct FrameClock {
    meter: Arc<Meter>,
    deadline: Duration,
    idle: Duration,
    started: Option<Instant>,
    last_frame: Instant,
}

impl FrameClock {
    pub(super) fn new(meter: Arc<Meter>, deadline: Duration, idle: Duration) -> Self {
        Self {
            meter,
            deadline,
            idle,
            started: None,
            last_frame: Instant::now(),
        }
    }

    /// How long to wait for a frame before looking again.
    pub(super) fn period(&self) -> Duration {
        (self.deadline / 2).max(Duration::from_millis(10))
    }

    /// A complete frame arrived.
    pub(super) fn frame_done(&mut self) {
        self.meter.frame_done();
        self.started = None;
        self.last_frame = Instant::now();
    }

    /// A wait of [`Self::period`] ended without a frame.
    pub(super) fn tick(&mut self) -> Tick {
        let now = Instant::now();
        if self.meter.mid_frame() {
            let started = *self.started.get_or_insert(now);
            if now.saturating_duration_since(started) >= self.deadline {
                return Tick::Overdue(ProtoError::FrameTimeout {
                    secs: u32::try_from(self.deadline.as_secs().max(1)).unwrap_or(u32::MAX),
                });
            }
            return Tick::Wait;
        }
        self.started = None;
        if now.saturating_duration_since(self.last_frame) >= self.idle {
            Tick::Idle
        } else {
            Tick::Wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthConfig;

    fn gate(limits: Limits) -> Arc<Gate> {
        Gate::new(
            AuthHandle::new(&AuthConfig::default()).expect("no file"),
            limits,
        )
    }

    #[test]
    fn connections_are_limited_in_all_and_per_source() {
        let g = gate(Limits {
            connections: 3,
            connections_per_source: 2,
            ..Limits::default()
        });
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let t1 = g.enter(a).expect("first");
        let _t2 = g.enter(a).expect("second");
        assert_eq!(
            g.enter(a).unwrap_err(),
            ProtoError::TooManyConnections { max: 2 }
        );
        let _t3 = g.enter(b).expect("other source");
        assert_eq!(
            g.enter(b).unwrap_err(),
            ProtoError::TooManyConnections { max: 3 }
        );
        drop(t1);
        assert!(g.enter(b).is_ok());
    }

    #[test]
    fn in_flight_requests_are_limited_until_answered() {
        let limits = Limits {
            in_flight: 2,
            ..Limits::default()
        };
        let flight = InFlight::default();
        let mut r = RequestGate::new(&limits, flight.clone());
        assert!(r.admit().is_ok());
        assert!(r.admit().is_ok());
        assert_eq!(r.admit(), Err(ProtoError::TooManyInFlight { max: 2 }));
        // Three answers: the refusal is answered too.
        flight.answered();
        flight.answered();
        flight.answered();
        assert!(r.admit().is_ok());
    }

    #[test]
    fn the_rate_is_limited_to_a_burst_of_one_second() {
        let limits = Limits {
            rate: 5,
            ..Limits::default()
        };
        let flight = InFlight::default();
        let mut r = RequestGate::new(&limits, flight.clone());
        for _ in 0..5 {
            assert!(r.admit().is_ok());
            flight.answered();
        }
        assert_eq!(r.admit(), Err(ProtoError::RateLimited { per_second: 5 }));
    }
}
