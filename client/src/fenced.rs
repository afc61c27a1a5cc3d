//! [`FencedResource`]: the check a protected resource makes on fencing
//! tokens.

use distlock_core::locks::FencingToken;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// A token was lower than one already accepted for the same lock: its
/// holder has lost the lock since (or a newer holder has written already).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stale fencing token {token} for lock {lock:?}: {highest} was accepted already")]
pub struct StaleToken {
    /// The lock.
    pub lock: String,
    /// The token presented.
    pub token: FencingToken,
    /// The highest token accepted so far for the lock.
    pub highest: FencingToken,
}

/// The fencing check of a protected resource (ARCHITECTURE.md §1.4: fencing tokens): it
/// remembers, per lock, the highest token it accepted and rejects any
/// lower one, so that a holder whose lock expired while it was paused
/// cannot overwrite the work of the next holder.
///
/// ```
/// use distlock_client::{FencedResource, FencingToken};
///
/// let resource = FencedResource::new();
/// resource.check_and_record("orders-db", FencingToken(10))?;
/// resource.check_and_record("orders-db", FencingToken(12))?; // the next holder
/// // The first holder, paused past its lease, wakes up and tries to write:
/// let stale = resource.check_and_record("orders-db", FencingToken(10)).unwrap_err();
/// assert_eq!(stale.highest, FencingToken(12));
/// assert_eq!(resource.highest("orders-db"), Some(FencingToken(12)));
/// # Ok::<(), distlock_client::StaleToken>(())
/// ```
#[derive(Debug, Default)]
pub struct FencedResource {
    highest: Mutex<BTreeMap<String, FencingToken>>,
}

impl FencedResource {
    /// A resource that has accepted no token yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts `token` for `lock` if it is at least the highest accepted so
    /// far (an equal token is the same holder writing again), and records
    /// it.
    ///
    /// # Errors
    /// [`StaleToken`] if a higher token was accepted for `lock` before.
    pub fn check_and_record(&self, lock: &str, token: FencingToken) -> Result<(), StaleToken> {
        let mut highest = self
            .highest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match highest.get_mut(lock) {
            Some(h) if token < *h => Err(StaleToken {
                lock: lock.to_owned(),
                token,
                highest: *h,
            }),
            Some(h) => {
                *h = token;
                Ok(())
            }
            None => {
                highest.insert(lock.to_owned(), token);
                Ok(())
            }
        }
    }

    /// The highest token accepted for `lock`, if any.
    #[must_use]
    pub fn highest(&self, lock: &str) -> Option<FencingToken> {
        self.highest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(lock)
            .copied()
    }
}
