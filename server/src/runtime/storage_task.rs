//! The storage task: writes every `Persist` request as it comes, then one
//! fsync for all that arrived meanwhile (group commit), and reports the
//! highest sequence number made durable. A failure is reported once and
//! ends the task: the node stops (fail-stop), it never retries an fsync.

use crate::storage::{Storage, StorageError};
use distlock_core::locks::Command;
use distlock_core::raft::{Persist, PersistSeq};
use tokio::sync::mpsc;

/// Runs the storage loop on a blocking thread (file IO blocks).
pub(super) fn spawn<S: Storage<Command> + Send + 'static>(
    mut storage: S,
    mut requests: mpsc::UnboundedReceiver<Persist<Command>>,
    synced: mpsc::UnboundedSender<Result<PersistSeq, StorageError>>,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        while let Some(first) = requests.blocking_recv() {
            let mut last = first.seq;
            let mut result = storage.write(&first);
            while result.is_ok() {
                match requests.try_recv() {
                    Ok(p) => {
                        last = p.seq;
                        result = storage.write(&p);
                    }
                    Err(_) => break,
                }
            }
            let result = result.and_then(|()| storage.sync()).map(|()| last);
            let failed = result.is_err();
            if synced.send(result).is_err() || failed {
                return;
            }
        }
    })
}
