//! The storage task: writes every `Persist` request as it comes, then one
//! fsync for all that arrived meanwhile (group commit), and reports the
//! highest sequence number made durable. A failure is reported once and
//! ends the task: the node stops (fail-stop), it never retries an fsync.
//!
//! In production the loop runs on a blocking thread, because file IO
//! blocks. Under the simulator (`cfg(madsim)`) there are no OS threads and
//! a blocking receive would stall the single scheduler thread, so the same
//! batch logic runs as an ordinary task that awaits its requests and the
//! simulated device's fsync latency.

use crate::storage::{Storage, StorageError};
use distlock_core::locks::Command;
use distlock_core::raft::{Persist, PersistSeq};
use tokio::sync::mpsc;

/// Runs the storage loop on a blocking thread (file IO blocks).
#[cfg(not(madsim))]
pub(super) fn spawn<S: Storage<Command> + Send + 'static>(
    mut storage: S,
    mut requests: mpsc::UnboundedReceiver<Persist<Command>>,
    synced: mpsc::UnboundedSender<Result<PersistSeq, StorageError>>,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        while let Some(first) = requests.blocking_recv() {
            let result = write_batch(&mut storage, &first, &mut requests)
                .and_then(|last| storage.sync().map(|()| last));
            if !report(&synced, result) {
                return;
            }
        }
    })
}

/// Runs the storage loop as a simulated task: the simulated device's fsync
/// takes [`Storage::sync_latency`] of virtual time, during which a crash of
/// the node loses the batch.
#[cfg(madsim)]
pub(super) fn spawn<S: Storage<Command> + Send + 'static>(
    mut storage: S,
    mut requests: mpsc::UnboundedReceiver<Persist<Command>>,
    synced: mpsc::UnboundedSender<Result<PersistSeq, StorageError>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(first) = requests.recv().await {
            let mut result = write_batch(&mut storage, &first, &mut requests);
            if result.is_ok() {
                let latency = storage.sync_latency();
                if !latency.is_zero() {
                    tokio::time::sleep(latency).await;
                }
                result = result.and_then(|last| storage.sync().map(|()| last));
            }
            if !report(&synced, result) {
                return;
            }
        }
    })
}

/// Writes `first` and every request already waiting behind it; the
/// highest sequence number written, or the first error.
fn write_batch<S: Storage<Command>>(
    storage: &mut S,
    first: &Persist<Command>,
    requests: &mut mpsc::UnboundedReceiver<Persist<Command>>,
) -> Result<PersistSeq, StorageError> {
    storage.write(first)?;
    let mut last = first.seq;
    while let Ok(p) = requests.try_recv() {
        storage.write(&p)?;
        last = p.seq;
    }
    Ok(last)
}

/// Hands the batch's outcome to the node task; whether the loop goes on
/// (not after a failure: fail-stop, nor once the node task is gone).
fn report(
    synced: &mpsc::UnboundedSender<Result<PersistSeq, StorageError>>,
    result: Result<PersistSeq, StorageError>,
) -> bool {
    let failed = result.is_err();
    synced.send(result).is_ok() && !failed
}
