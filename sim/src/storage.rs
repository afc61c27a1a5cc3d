//! The simulated disk of one server. [`SimDisk`] is the harness's handle
//! on it and outlives restarts; [`SimStorage`] is what the server's runtime
//! drives through the [`Storage`] trait. Writes sit in a volatile cache
//! until `sync`; [`SimDisk::crash`] keeps a random prefix of them (the
//! kernel may have flushed some) and may tear the next one part-way, as a
//! power cut can. On request it fails the next fsync, makes fsyncs slow, or
//! reports a full disk. The durable state is
//! [`distlock_core::testkit::Disk`], which checks the persistence contract
//! as requests are applied; breaches are reported to the checkers.

use distlock_core::locks::Command;
use distlock_core::raft::{Entry, Membership, Persist, Snapshot, Stored};
use distlock_core::testkit::Disk;
use distlock_server::storage::{Storage, StorageError};
use rand_chacha::ChaCha8Rng;
use rand_core::Rng;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Faults the harness can turn on.
#[derive(Clone, Debug, Default)]
pub struct DiskFaults {
    /// The next fsync fails with EIO (once).
    pub fail_next_sync: bool,
    /// Every write fails with ENOSPC while set.
    pub full: bool,
    /// Every fsync takes this long.
    pub sync_latency: Duration,
    /// A durable record fails its checksum: loading refuses, and the
    /// server must not start. Survives heals (only a new disk repairs it).
    pub corrupt: bool,
}

impl DiskFaults {
    /// No transient fault left; a corrupt disk stays corrupt.
    #[must_use]
    pub fn healed(&self) -> Self {
        Self {
            corrupt: self.corrupt,
            ..Self::default()
        }
    }
}

/// What a crash did to the volatile cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// Unsynced requests that were in the cache.
    pub unsynced: usize,
    /// How many of them survived whole.
    pub kept: usize,
    /// Whether the next one survived only in part.
    pub torn: bool,
}

#[derive(Debug, Default)]
struct DiskState {
    durable: Disk<Command>,
    cache: Vec<Persist<Command>>,
    /// Bumped by every crash: a store of an earlier life is dead.
    life: u64,
    faults: DiskFaults,
    /// Every fsync takes at least this long (the device's own latency).
    base_latency: Duration,
    contract: Vec<String>,
    syncs: u64,
    failed_syncs: u64,
    snapshots: SnapshotCounts,
}

/// How the server used snapshots on this disk (over all its lives).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotCounts {
    /// Snapshots written that the server took itself (they cover entries
    /// it had written to its log).
    pub taken: u64,
    /// Snapshots written that reach past every entry the server had
    /// written: received from a leader through InstallSnapshot.
    pub installed: u64,
    /// Starts (restarts) that found a snapshot on the disk to restore.
    pub restores: u64,
}

/// The harness's handle on one server's disk (cheap to clone).
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
}

impl SimDisk {
    /// An empty disk.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, DiskState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An empty disk whose fsyncs take `latency`.
    #[must_use]
    pub fn with_latency(latency: Duration) -> Self {
        let disk = Self::default();
        disk.state().base_latency = latency;
        disk
    }

    /// The store for a new life of the server (after a start or restart).
    #[must_use]
    pub fn storage(&self) -> SimStorage {
        SimStorage {
            disk: self.clone(),
            life: self.state().life,
            loaded: false,
            poisoned: false,
        }
    }

    /// Power cut: unsynced writes are lost except a random prefix (which
    /// the OS may have flushed), and the write after that prefix may be
    /// torn (only its first parts land). The store of this life dies.
    pub fn crash(&self, rng: &mut ChaCha8Rng, may_tear: bool) -> CrashReport {
        let mut s = self.state();
        s.life += 1;
        let cache = std::mem::take(&mut s.cache);
        let unsynced = cache.len();
        let kept = usize::try_from(rng.next_u64() % (unsynced as u64 + 1)).unwrap_or(0);
        let mut report = CrashReport {
            unsynced,
            kept,
            torn: false,
        };
        for p in &cache[..kept] {
            if let Err(e) = s.durable.apply(p, 4) {
                s.contract.push(e);
            }
        }
        if let Some(next) = cache.get(kept) {
            if may_tear && rng.next_u64() % 2 == 0 {
                let parts = usize::try_from(1 + rng.next_u64() % 3).unwrap_or(1);
                report.torn = true;
                if let Err(e) = s.durable.apply(next, parts) {
                    s.contract.push(e);
                }
            }
        }
        report
    }

    /// The faults now set.
    #[must_use]
    pub fn faults(&self) -> DiskFaults {
        self.state().faults.clone()
    }

    /// Sets the faults.
    pub fn set_faults(&self, faults: DiskFaults) {
        self.state().faults = faults;
    }

    /// Changes the faults in place.
    pub fn update_faults(&self, f: impl FnOnce(&mut DiskFaults)) {
        f(&mut self.state().faults);
    }

    /// Breaches of the persistence contract seen so far.
    #[must_use]
    pub fn contract_breaches(&self) -> Vec<String> {
        self.state().contract.clone()
    }

    /// (fsyncs done, fsyncs failed).
    #[must_use]
    pub fn sync_counts(&self) -> (u64, u64) {
        let s = self.state();
        (s.syncs, s.failed_syncs)
    }

    /// Whether writes are waiting for an fsync (a crash now loses them).
    #[must_use]
    pub fn dirty(&self) -> bool {
        !self.state().cache.is_empty()
    }

    /// How snapshots were taken, installed and restored on this disk.
    #[must_use]
    pub fn snapshot_counts(&self) -> SnapshotCounts {
        self.state().snapshots
    }

    /// The durable log's last index.
    #[must_use]
    pub fn durable_last_index(&self) -> u64 {
        self.state().durable.last_index().0
    }

    /// What survives a power cut now: the snapshot and the log after it.
    #[must_use]
    pub fn durable_log(&self) -> (Option<Snapshot>, Vec<Entry<Command>>) {
        let s = self.state();
        (s.durable.snapshot.clone(), s.durable.entries.clone())
    }
}

/// The server's view of its disk for one life.
#[derive(Debug)]
pub struct SimStorage {
    disk: SimDisk,
    life: u64,
    loaded: bool,
    poisoned: bool,
}

fn sim_path() -> PathBuf {
    PathBuf::from("/sim/wal")
}

impl SimStorage {
    /// A crashed life may still be scheduled for a moment; it must not
    /// touch the disk of the next one.
    fn check(&self, s: &DiskState) -> Result<(), StorageError> {
        if self.poisoned || s.life != self.life {
            return Err(StorageError::Poisoned);
        }
        if !self.loaded {
            return Err(StorageError::NotLoaded);
        }
        Ok(())
    }
}

impl Storage<Command> for SimStorage {
    fn load(&mut self) -> Result<Stored<Command>, StorageError> {
        let mut s = self.disk.state();
        if s.life != self.life {
            return Err(StorageError::Poisoned);
        }
        if s.faults.corrupt {
            return Err(StorageError::Corrupt {
                file: sim_path(),
                offset: 0,
                reason: "a record fails its checksum (injected)".to_owned(),
            });
        }
        if s.durable.snapshot.is_some() {
            s.snapshots.restores += 1;
        }
        let d = &s.durable;
        let stored = Stored {
            hard_state: d.hard_state,
            snapshot: d.snapshot.clone(),
            entries: d.entries.clone(),
            initial_membership: Membership::default(),
        };
        drop(s);
        self.loaded = true;
        Ok(stored)
    }

    fn write(&mut self, p: &Persist<Command>) -> Result<(), StorageError> {
        let mut s = self.disk.state();
        self.check(&s)?;
        if s.faults.full {
            return Err(StorageError::DiskFull { path: sim_path() });
        }
        if let Some(snap) = &p.snapshot {
            // A snapshot the server took covers an entry it had written
            // (earlier or in this request); one installed from a leader
            // reaches an entry it lacks, or has with another term.
            let at = snap.meta.last_index;
            let mut term = s.durable.term_at(at);
            for q in s.cache.iter().chain(std::iter::once(p)) {
                if q.truncate_from.is_some_and(|from| at >= from) {
                    term = None;
                }
                if let Some(qs) = q.snapshot.as_ref().filter(|_| !std::ptr::eq(q, p)) {
                    if qs.meta.last_index == at {
                        term = Some(qs.meta.last_term);
                    }
                }
                if let Some(e) = q.entries.iter().find(|e| e.index == at) {
                    term = Some(e.term);
                }
            }
            if term == Some(snap.meta.last_term) {
                s.snapshots.taken += 1;
            } else {
                s.snapshots.installed += 1;
            }
        }
        s.cache.push(p.clone());
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        let mut s = self.disk.state();
        self.check(&s)?;
        if std::mem::take(&mut s.faults.fail_next_sync) {
            // fsyncgate: the dirty pages may be gone; what happens to the
            // cache is unknown, so keep none of it and poison the store.
            s.cache.clear();
            s.failed_syncs += 1;
            self.poisoned = true;
            return Err(StorageError::Fsync {
                path: sim_path(),
                source: std::io::Error::other("simulated EIO"),
            });
        }
        let cache = std::mem::take(&mut s.cache);
        for p in &cache {
            if let Err(e) = s.durable.apply(p, 4) {
                s.contract.push(e);
            }
        }
        s.syncs += 1;
        Ok(())
    }

    fn sync_latency(&mut self) -> Duration {
        let s = self.disk.state();
        s.base_latency + s.faults.sync_latency
    }
}
