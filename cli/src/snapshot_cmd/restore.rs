//! `distlock snapshot restore`: seeds the data directory of one server of
//! a new cluster with a backup, so that `distlock serve` starts from its
//! state.
//!
//! The directory receives what a server that had installed the backup as
//! a Raft snapshot would hold: the snapshot at the backup's index and
//! term, a hard state of that term with no vote, and no log. So the new
//! cluster's log starts right after the backup's index: every entry it
//! appends, and so every fencing token it grants, is above every token in
//! the backup (tokens are log indexes). The backup's configuration is
//! replaced by the one `--peers` names, all voters; every server of the
//! new cluster must be restored from the same file with the same
//! `--peers`, so that they agree on the snapshot they all start from
//! (a server started empty instead could win an election with an empty
//! log and contradict it). Sessions in the backup are kept: every new
//! leader gives every session its full TTL again (lease rules 4 and 6,
//! docs/ARCHITECTURE.md §4), so a lock held by a client that never
//! reaches the new cluster is freed by its lease running out.
//!
//! The directory is claimed as `serve` claims it, recording the cluster id
//! and node id it belongs to (`serve` refuses it under other ones), and
//! held locked while it is written.

use super::file::Backup;
use distlock_core::ids::NodeId;
use distlock_core::locks::Command;
use distlock_core::raft::{
    HardState, MemberAddrs, Membership, Persist, PersistSeq, Snapshot, SnapshotMeta,
};
use distlock_server::storage::{
    DataDir, DataDirError, FileStorage, FileStorageOptions, Storage, StorageError,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a data directory could not be seeded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RestoreError {
    /// The directory holds something already.
    #[error("{} is not empty: restore seeds the data directory of a new server only (move it away, or pick another)", .0.display())]
    NotEmpty(PathBuf),
    /// The directory cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `--id` is not among `--peers`.
    #[error("--peers must name this server's id {0}")]
    NotAPeer(u64),
    /// The directory cannot be claimed (another server runs on it).
    #[error(transparent)]
    Claim(#[from] DataDirError),
    /// Writing the directory failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Writes `backup` into the empty (or missing) data directory `dir` of
/// server `id` of cluster `cluster`, whose members are `peers` (every
/// member's peer address).
///
/// # Errors
/// [`RestoreError`]; a directory that is not empty is left untouched.
pub(crate) fn seed_data_dir(
    backup: &Backup,
    dir: &Path,
    cluster: &str,
    id: NodeId,
    peers: &BTreeMap<NodeId, String>,
) -> Result<Snapshot, RestoreError> {
    if !peers.contains_key(&id) {
        return Err(RestoreError::NotAPeer(id.0));
    }
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(RestoreError::NotEmpty(dir.to_owned()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(RestoreError::Io {
                path: dir.to_owned(),
                source,
            });
        }
    }
    let mut membership = Membership::with_voters(peers.keys().copied());
    // Client addresses are not known here; each server publishes its own.
    membership.addrs = peers
        .iter()
        .map(|(&id, peer)| {
            let addrs = MemberAddrs {
                peer: peer.clone(),
                client: String::new(),
                ws: None,
            };
            (id, addrs)
        })
        .collect();
    let snapshot = Snapshot {
        meta: SnapshotMeta {
            last_index: backup.meta.index,
            last_term: backup.meta.term,
            membership,
        },
        data: Arc::from(backup.state.as_slice()),
    };
    let _claim = DataDir::claim(dir, cluster, id.0)?;
    let mut storage: FileStorage<Command> = FileStorage::open(dir, FileStorageOptions::default())?;
    let stored = storage.load()?;
    debug_assert!(stored.snapshot.is_none() && stored.entries.is_empty());
    storage.write(&Persist {
        seq: PersistSeq(1),
        hard_state: Some(HardState {
            term: backup.meta.term,
            voted_for: None,
        }),
        truncate_from: None,
        entries: Vec::new(),
        snapshot: Some(Box::new(snapshot.clone())),
    })?;
    storage.sync()?;
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::super::file::BackupMeta;
    use super::*;
    use distlock_core::ids::{LogIndex, Term};
    use distlock_core::locks::{ClientCommand, LockState};
    use distlock_core::raft::StateMachine;

    fn backup() -> Backup {
        let mut s = LockState::default();
        s.apply(
            LogIndex(5),
            &Command::Client(ClientCommand::OpenSession {
                nonce: 1,
                ttl_ms: 10_000,
            }),
        );
        Backup {
            meta: BackupMeta {
                index: LogIndex(70),
                term: Term(6),
                membership: Membership::with_voters([NodeId(7)]),
                taken_unix_ms: 0,
            },
            state: s.snapshot(),
        }
    }

    fn peers(ids: &[u64]) -> BTreeMap<NodeId, String> {
        ids.iter()
            .map(|&i| (NodeId(i), format!("127.0.0.1:{}", 7100 + i)))
            .collect()
    }

    #[test]
    fn a_seeded_directory_loads_as_the_snapshot_with_the_new_members() {
        let home = tempfile::tempdir().expect("temp dir");
        let dir = home.path().join("data");
        seed_data_dir(&backup(), &dir, "restored", NodeId(2), &peers(&[1, 2, 3])).expect("seeded");
        // Claimed for node 2 of "restored", as `serve` claims it.
        assert!(DataDir::claim(&dir, "distlock", 2).is_err());
        drop(DataDir::claim(&dir, "restored", 2).expect("its own identity"));
        let mut storage: FileStorage<Command> =
            FileStorage::open(&dir, FileStorageOptions::default()).expect("opens");
        let stored = storage.load().expect("loads");
        let snap = stored.snapshot.expect("a snapshot");
        assert_eq!(snap.meta.last_index, LogIndex(70));
        assert_eq!(snap.meta.last_term, Term(6));
        assert_eq!(
            snap.meta
                .membership
                .voters
                .iter()
                .map(|i| i.0)
                .collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(
            snap.meta.membership.addrs[&NodeId(3)].peer,
            "127.0.0.1:7103"
        );
        assert_eq!(stored.hard_state.term, Term(6));
        assert!(stored.entries.is_empty());
        assert_eq!(&snap.data[..], &backup().state[..]);
    }

    #[test]
    fn a_directory_in_use_or_a_stranger_id_is_refused() {
        let home = tempfile::tempdir().expect("temp dir");
        std::fs::write(home.path().join("wal-000000000001.log"), b"x").expect("write");
        let e = seed_data_dir(&backup(), home.path(), "distlock", NodeId(1), &peers(&[1]))
            .expect_err("not empty");
        assert!(matches!(e, RestoreError::NotEmpty(_)), "{e}");
        let e = seed_data_dir(
            &backup(),
            &home.path().join("d"),
            "distlock",
            NodeId(4),
            &peers(&[1, 2]),
        )
        .expect_err("not a peer");
        assert!(matches!(e, RestoreError::NotAPeer(4)), "{e}");
        assert!(!home.path().join("d").exists());
    }
}
