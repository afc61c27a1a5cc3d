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
//!
//! A server that does not lead may instead write and sync on the node task
//! itself ([`PersistRoute`]): a follower has nothing to do while its log is
//! not durable but wait, and the two hand-offs to the storage thread and
//! back are two wake-ups, often across cores, on the path of every commit.

use super::busy_poll::BusyPoll;
use crate::metrics::Metrics;
use crate::storage::{Storage, StorageError};
use distlock_core::locks::Command;
use distlock_core::raft::{Persist, PersistSeq};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

/// The store, shared by the storage task and, when it is idle, the node
/// task. Never locked across an await.
pub(super) type SharedStorage<S> = Arc<Mutex<S>>;

fn lock<S>(storage: &Mutex<S>) -> MutexGuard<'_, S> {
    // A panic while holding the lock ends the server anyway; the store
    // itself refuses further calls once poisoned by an IO error.
    storage
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs the storage loop on a blocking thread (file IO blocks).
#[cfg(not(madsim))]
pub(super) fn spawn<S: Storage<Command> + Send + 'static>(
    storage: SharedStorage<S>,
    mut requests: mpsc::UnboundedReceiver<Persist<Command>>,
    synced: mpsc::UnboundedSender<Result<PersistSeq, StorageError>>,
    busy_poll: Option<Arc<BusyPoll>>,
    metrics: Arc<Metrics>,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        loop {
            let next = match &busy_poll {
                Some(poll) => poll.recv(&mut requests),
                None => requests.blocking_recv(),
            };
            let Some(first) = next else { return };
            let mut storage = lock(&storage);
            let result = write_batch(&mut *storage, &first, &mut requests)
                .and_then(|last| timed_sync(&mut *storage, &metrics).map(|()| last));
            drop(storage);
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
    storage: SharedStorage<S>,
    mut requests: mpsc::UnboundedReceiver<Persist<Command>>,
    synced: mpsc::UnboundedSender<Result<PersistSeq, StorageError>>,
    _busy_poll: Option<Arc<BusyPoll>>,
    metrics: Arc<Metrics>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(first) = requests.recv().await {
            let result = write_batch(&mut *lock(&storage), &first, &mut requests);
            let result = match result {
                Ok(last) => simulated_sync(&storage, &metrics).await.map(|()| last),
                Err(e) => Err(e),
            };
            if !report(&synced, result) {
                return;
            }
        }
    })
}

/// Waits out the simulated device's fsync latency, then syncs.
#[cfg(madsim)]
async fn simulated_sync<S: Storage<Command>>(
    storage: &Mutex<S>,
    metrics: &Metrics,
) -> Result<(), StorageError> {
    let started = tokio::time::Instant::now();
    let latency = lock(storage).sync_latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let result = lock(storage).sync();
    metrics
        .fsync_seconds
        .observe(started.elapsed().as_secs_f64());
    result
}

/// Syncs, timing it into the fsync histogram (an atomic update).
#[cfg(not(madsim))]
fn timed_sync<S: Storage<Command>>(storage: &mut S, metrics: &Metrics) -> Result<(), StorageError> {
    let started = std::time::Instant::now();
    let result = storage.sync();
    metrics
        .fsync_seconds
        .observe(started.elapsed().as_secs_f64());
    result
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

/// Where the node task's `Persist` requests go: to the storage task, or,
/// on a server that does not lead and while the storage task has nothing
/// outstanding (so the order of writes is kept), written on the node task
/// and synced once for all of a drain.
pub(super) struct PersistRoute<S> {
    storage: SharedStorage<S>,
    to_task: mpsc::UnboundedSender<Persist<Command>>,
    /// The last request handed to the storage task, and the last it synced.
    sent: Option<PersistSeq>,
    synced: Option<PersistSeq>,
    /// Requests written here and not yet synced: the last one's seq.
    written_here: Option<PersistSeq>,
    metrics: Arc<Metrics>,
}

impl<S: Storage<Command>> PersistRoute<S> {
    pub(super) fn new(
        storage: SharedStorage<S>,
        to_task: mpsc::UnboundedSender<Persist<Command>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            storage,
            to_task,
            sent: None,
            synced: None,
            written_here: None,
            metrics,
        }
    }

    /// Records what the storage task reported durable.
    pub(super) fn task_synced(&mut self, seq: PersistSeq) {
        self.synced = Some(seq);
    }

    /// Takes one request: writes it here if `inline` is allowed and the
    /// storage task is idle (or this drain already wrote here), else hands
    /// it to the storage task (`Ok(false)` once that task is gone).
    ///
    /// # Errors
    /// When writing it here failed (fail-stop, as for the storage task).
    pub(super) fn persist(
        &mut self,
        p: Persist<Command>,
        inline: bool,
    ) -> Result<bool, StorageError> {
        if self.written_here.is_some() || (inline && self.sent <= self.synced) {
            lock(&self.storage).write(&p)?;
            self.written_here = Some(p.seq);
            return Ok(true);
        }
        self.sent = Some(p.seq);
        Ok(self.to_task.send(p).is_ok())
    }

    /// Syncs what was written here; the seq now durable, if any.
    ///
    /// # Errors
    /// When the sync failed (fail-stop).
    pub(super) async fn sync_here(&mut self) -> Result<Option<PersistSeq>, StorageError> {
        let Some(seq) = self.written_here.take() else {
            return Ok(None);
        };
        #[cfg(madsim)]
        simulated_sync(&self.storage, &self.metrics).await?;
        #[cfg(not(madsim))]
        timed_sync(&mut *lock(&self.storage), &self.metrics)?;
        Ok(Some(seq))
    }
}
