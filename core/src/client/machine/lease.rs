//! The session's lease as the client sees it: its length, shortened by
//! the drift bound so that it ends before the cluster's; its extension by
//! each acknowledged keepalive, from when that keepalive was sent; and the
//! session's loss, final, when it runs out or the cluster says it is gone.

use super::{ClientSession, SessionState, failure};
use crate::client::{ClientError, ClientEvent, LostReason};
use crate::proto::ClientFrame;
use crate::time::{Duration, Instant};

/// How long a session's lease runs at the client, from the send of the
/// request the cluster acknowledged: `ttl × (1 − 2·max_drift)` (lease rule
/// 5), so that it ends before the cluster's own count of `ttl` from the
/// request's arrival even when the two clocks drift apart at the bound.
/// Public so that checkers hold a client's view of its lease to the same
/// rule the client follows.
#[must_use]
pub fn lease_length(ttl: Duration, max_drift_ppm: u32) -> Duration {
    let ppm = u128::from(max_drift_ppm.min(499_999));
    let us = ttl.as_micros() * (1_000_000 - 2 * ppm) / 1_000_000;
    Duration::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
}

impl ClientSession {
    pub(super) fn lease_len(&self, ttl: Duration) -> Duration {
        lease_length(ttl, self.config.max_drift_ppm)
    }

    pub(super) fn extend_lease(&mut self, sent_at: Instant) {
        let len = match self.session {
            SessionState::Open { ttl, .. } => self.lease_len(ttl),
            _ => return,
        };
        if let SessionState::Open { lease_until, .. } = &mut self.session {
            *lease_until = (*lease_until).max(sent_at + len);
        }
    }

    pub(super) fn check_lease(&mut self, now: Instant) {
        if let SessionState::Open { lease_until, .. } = self.session
            && now >= lease_until
        {
            self.lose(LostReason::LeaseExpired);
        }
    }

    /// Ends the session for good: fails every outstanding operation and
    /// emits [`ClientEvent::SessionLost`] (once: the state is final).
    pub(super) fn lose(&mut self, reason: LostReason) {
        if matches!(self.session, SessionState::Lost | SessionState::Closed) {
            return;
        }
        self.session = SessionState::Lost;
        self.fail_all(&ClientError::SessionLost);
        self.events.push_back(ClientEvent::SessionLost { reason });
    }

    pub(super) fn fail_all(&mut self, error: &ClientError) {
        self.next_keepalive = None;
        self.in_flight.clear();
        self.frames
            .retain(|f| matches!(f, ClientFrame::Hello { .. }));
        for (op, o) in std::mem::take(&mut self.ops) {
            self.events.push_back(failure(op, &o.body, error.clone()));
        }
    }
}
