//! [`WatchStream`]: the events of a watched lock as a [`Stream`].

use super::driver::Command;
use crate::commands::Commands;
use distlock_core::client::WatchUpdate;
use futures_core::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// The events of one lock, from [`Client::watch`](super::Client::watch):
/// a [`Stream`] of [`WatchUpdate`]s (or call [`WatchStream::next`]).
///
/// The watch follows the client's connection: after a failover it is asked
/// again of the next server, events reported already are not repeated,
/// and a [`WatchUpdate::Resumed`] marks the place where some may be
/// missing. The stream ends when the client's driver stops. Dropping it
/// stops the watch (in the background).
#[derive(Debug)]
pub struct WatchStream {
    lock: String,
    id: u64,
    updates: mpsc::UnboundedReceiver<WatchUpdate>,
    commands: Commands,
}

impl WatchStream {
    pub(super) const fn new(
        lock: String,
        id: u64,
        updates: mpsc::UnboundedReceiver<WatchUpdate>,
        commands: Commands,
    ) -> Self {
        Self {
            lock,
            id,
            updates,
            commands,
        }
    }

    /// The watched lock's name.
    #[must_use]
    pub fn lock_name(&self) -> &str {
        &self.lock
    }

    /// The next update; `None` once the client's driver has stopped.
    ///
    /// ```no_run
    /// # async fn example(client: distlock_client::Client) -> Result<(), distlock_client::ClientError> {
    /// use distlock_client::{LockEvent, WatchUpdate};
    ///
    /// let mut events = client.watch("orders-db")?;
    /// while let Some(update) = events.next().await {
    ///     match update {
    ///         WatchUpdate::Event(LockEvent::Acquired { session, token, .. }) => {
    ///             println!("{session} holds orders-db with token {token}");
    ///         }
    ///         WatchUpdate::Event(other) => println!("{other:?}"),
    ///         // Failed over: read where the lock stands now.
    ///         WatchUpdate::Resumed => println!("{:?}", client.lock_status("orders-db").await?),
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn next(&mut self) -> Option<WatchUpdate> {
        self.updates.recv().await
    }
}

impl Stream for WatchStream {
    type Item = WatchUpdate;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchUpdate>> {
        self.updates.poll_recv(cx)
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Unwatch {
            lock: std::mem::take(&mut self.lock),
            id: self.id,
        });
    }
}
