//! Waiting on conditions with deadlines. A test polls the condition it
//! needs (a file exists, a lock has a waiter, a process exited) until a
//! deadline, and fails naming what it waited for; it never sleeps a fixed
//! time and hopes.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(20);

/// Polls `probe` (every 20 ms, on this thread) until it gives `Some`.
///
/// # Panics
/// When `within` passes first; the message names `what`.
pub fn wait_until<T>(what: &str, within: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting until {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// Polls the future `probe` makes (every 20 ms) until it gives `Some`.
///
/// # Panics
/// When `within` passes first; the message names `what`.
pub async fn wait_until_async<T, F>(what: &str, within: Duration, mut probe: impl FnMut() -> F) -> T
where
    F: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(Some(v)) = tokio::time::timeout(left.max(POLL), probe()).await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting until {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Awaits `fut`, failing the test if it takes longer than `limit`.
///
/// # Panics
/// When `limit` passes first; the message names `what`.
pub async fn within<T>(what: &str, limit: Duration, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
}
