//! Bounds on what clients may ask of the lock state machine, so that its
//! memory stays bounded whatever they send.
//!
//! The limits are part of the replicated state (they travel in snapshots):
//! every replica must refuse exactly the same requests.

use super::command::Mode;
use super::response::LockError;
use serde::{Deserialize, Serialize};

/// Configurable limits, fixed at construction and carried by snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Longest lock name in bytes (names are at least 1 byte).
    pub max_name_len: u32,
    /// Shortest session TTL.
    pub min_ttl_ms: u64,
    /// Longest session TTL.
    pub max_ttl_ms: u64,
    /// Longest lock-delay an acquirer may choose.
    pub max_lock_delay_ms: u64,
    /// Most queued acquires per lock.
    pub max_waiters_per_lock: u32,
    /// Most locks a session may hold and wait for, together.
    pub max_locks_per_session: u32,
    /// Most live sessions.
    pub max_sessions: u32,
    /// Most remembered answers (and pending waits) per session: a client
    /// that never acknowledges cannot grow its dedupe table without end.
    pub max_unacked_per_session: u32,
    /// How many ended sessions are remembered, so that requests of a session
    /// that ended recently are told `SessionExpired`/`SessionClosed` rather
    /// than `SessionNotFound`, and a retried open is not applied twice.
    pub max_ended_sessions: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_name_len: 512,
            min_ttl_ms: 1_000,
            max_ttl_ms: 300_000,
            max_lock_delay_ms: 60_000,
            max_waiters_per_lock: 10_000,
            max_locks_per_session: 10_000,
            max_sessions: 100_000,
            max_unacked_per_session: 1_024,
            max_ended_sessions: 100_000,
        }
    }
}

impl Limits {
    pub(super) fn check_ttl(&self, ttl_ms: u64) -> Result<(), LockError> {
        if (self.min_ttl_ms..=self.max_ttl_ms).contains(&ttl_ms) {
            Ok(())
        } else {
            Err(LockError::InvalidTtl {
                ttl_ms,
                min_ms: self.min_ttl_ms,
                max_ms: self.max_ttl_ms,
            })
        }
    }

    pub(super) fn check_name(&self, name: &str) -> Result<(), LockError> {
        let len = name.len();
        if len == 0 || len > self.max_name_len as usize {
            return Err(LockError::InvalidName {
                len: len as u64,
                max: self.max_name_len,
            });
        }
        Ok(())
    }

    /// Checks the parts of an acquire that depend on nothing but the request:
    /// refusing them changes no state, and a retry gets the same refusal.
    pub(super) fn check_acquire(
        &self,
        name: &str,
        mode: Mode,
        lock_delay_ms: u64,
    ) -> Result<(), LockError> {
        self.check_name(name)?;
        if lock_delay_ms > self.max_lock_delay_ms {
            return Err(LockError::InvalidLockDelay {
                delay_ms: lock_delay_ms,
                max_ms: self.max_lock_delay_ms,
            });
        }
        if mode == Mode::Semaphore(0) {
            return Err(LockError::InvalidSemaphore);
        }
        Ok(())
    }

    pub(super) fn check_unacked(&self, unacked: usize) -> Result<(), LockError> {
        if unacked >= self.max_unacked_per_session as usize {
            return Err(LockError::TooManyUnacknowledged {
                max: self.max_unacked_per_session,
            });
        }
        Ok(())
    }

    pub(super) fn check_session_locks(&self, count: usize) -> Result<(), LockError> {
        if count >= self.max_locks_per_session as usize {
            return Err(LockError::TooManyLocks {
                max: self.max_locks_per_session,
            });
        }
        Ok(())
    }

    pub(super) fn check_waiters(&self, count: usize) -> Result<(), LockError> {
        if count >= self.max_waiters_per_lock as usize {
            return Err(LockError::TooManyWaiters {
                max: self.max_waiters_per_lock,
            });
        }
        Ok(())
    }

    pub(super) fn check_sessions(&self, count: usize) -> Result<(), LockError> {
        if count >= self.max_sessions as usize {
            return Err(LockError::TooManySessions {
                max: self.max_sessions,
            });
        }
        Ok(())
    }
}
