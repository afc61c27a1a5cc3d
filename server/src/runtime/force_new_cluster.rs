//! `distlock serve --force-new-cluster`: the way out of a quorum lost for
//! good. Run on the most up-to-date surviving server, it makes that server
//! the only voter of a new cluster with the state it holds, before Raft
//! starts (see [`distlock_core::raft::ForcedCluster`] for what that does
//! to the log and why it is safe only if the old members never return).
//!
//! The rewrite is durable: a restart without the flag keeps the new
//! configuration. So is the retirement of the old members: the data
//! directory keeps a record, [`RECORD`], naming them, and on every start
//! they are struck from `--peers`, so this server neither dials them nor
//! admits their peer links (peer admission only admits configured peers,
//! members, and members of newer configurations vouched for by those), even
//! when its configuration file still names them. Operators then grow the
//! cluster again with new servers (`serve --join`, `members add`,
//! `members promote`), under new ids.
//!
//! The record is written before the configuration entry, so that a crash
//! between the two leaves the record, and the flag given again completes
//! the job. Given once the cluster has grown again (a flag left in a unit
//! file), the flag would split it: the server refuses to start instead.

use crate::config::ServerConfig;
use crate::storage::{Storage, StorageError};
use distlock_core::ids::{LogIndex, NodeId};
use distlock_core::locks::Command;
use distlock_core::raft::{MemberAddrs, Membership, Stored};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The record of a forced new cluster, in the data directory.
pub const RECORD: &str = "forced-new-cluster.toml";

/// Why a server could not start as asked.
#[derive(Debug, thiserror::Error)]
pub enum ForceNewClusterError {
    /// The stored state has no cluster to recover.
    #[error("--force-new-cluster: {0}")]
    Core(#[from] distlock_core::raft::ForceError),
    /// Writing the new configuration failed.
    #[error("--force-new-cluster: {0}")]
    Storage(#[from] StorageError),
    /// The record cannot be read or written.
    #[error("{}: {reason}", path.display())]
    Record {
        /// The record.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The flag was left on after the new cluster grew.
    #[error(
        "--force-new-cluster was carried out already (configuration entry {index}, see {}) and \
         the cluster has changed since: forcing it again would split it. Remove the flag. (To \
         force a new cluster again after another loss of quorum, delete that file first.)",
        path.display()
    )]
    AlreadyForced {
        /// The forced configuration's index.
        index: u64,
        /// The record.
        path: PathBuf,
    },
}

/// What the record holds.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    /// The server that was made the only voter.
    server: u64,
    /// The log index of its one-voter configuration.
    index: u64,
    /// The term of that entry.
    term: u64,
    /// The members of the old configuration, never to be linked with.
    retired: Vec<u64>,
}

impl Record {
    fn text(&self) -> String {
        let retired: Vec<String> = self.retired.iter().map(ToString::to_string).collect();
        format!(
            "# Written by `distlock serve --force-new-cluster`: server {server} was made the only\n\
             # voter of a new cluster by the configuration entry at index {index} (term {term}).\n\
             # The servers below belonged to the old configuration. They are retired: this\n\
             # server never links with them, whatever its --peers say. Never start them again\n\
             # with their old data; add new servers under new ids.\n\
             server = {server}\nindex = {index}\nterm = {term}\nretired = [{}]\n",
            retired.join(", "),
            server = self.server,
            index = self.index,
            term = self.term,
        )
    }
}

/// Runs before Raft starts on `stored` (loaded from `storage`): forces a
/// new cluster if `cfg` asks for it, and strikes the retired servers from
/// `cfg`'s peers.
///
/// # Errors
/// [`ForceNewClusterError`]; nothing is changed on an error before the
/// record is written.
pub(super) fn prepare<S: Storage<Command>>(
    cfg: &mut ServerConfig,
    advertise: &MemberAddrs,
    storage: &mut S,
    stored: &mut Stored<Command>,
) -> Result<(), ForceNewClusterError> {
    let path = cfg.data_dir.join(RECORD);
    let mut record = read_record(&path)?;
    if cfg.force_new_cluster {
        if !cfg.join && stored.initial_membership.is_empty() {
            // What the runtime would start from when nothing is logged.
            stored.initial_membership = Membership::with_voters(cfg.peers.keys().copied());
        }
        record = force(cfg, advertise, storage, stored, record, &path)?;
    }
    if let Some(record) = record {
        let named: Vec<u64> = record
            .retired
            .iter()
            .copied()
            .filter(|id| cfg.peers.remove(&NodeId(*id)).is_some())
            .collect();
        for id in &record.retired {
            cfg.client_addrs.remove(&NodeId(*id));
        }
        if !named.is_empty() {
            tracing::warn!(
                retired = ?named,
                "--peers names servers retired by --force-new-cluster (see {}): they are ignored",
                path.display()
            );
        }
    }
    Ok(())
}

/// Makes this server the only voter, unless it is already. Returns the
/// record in force.
fn force<S: Storage<Command>>(
    cfg: &ServerConfig,
    advertise: &MemberAddrs,
    storage: &mut S,
    stored: &mut Stored<Command>,
    record: Option<Record>,
    path: &Path,
) -> Result<Option<Record>, ForceNewClusterError> {
    if stored.is_sole_voter(cfg.id) {
        tracing::warn!(
            id = cfg.id.0,
            "--force-new-cluster: this server is already the only voter of its cluster; nothing to \
             do (remove the flag)"
        );
        return Ok(record);
    }
    let last = stored.last_index();
    // A record whose entry is in the log: the force took effect, and the
    // cluster has changed since (it is no longer this server alone).
    if let Some(done) = record.as_ref().filter(|done| last.0 >= done.index) {
        return Err(ForceNewClusterError::AlreadyForced {
            index: done.index,
            path: path.to_owned(),
        });
    }
    let snapshot_index = stored
        .snapshot
        .as_ref()
        .map_or(LogIndex(0), |s| s.meta.last_index);
    // In memory only until the record is durable.
    let forced = stored.force_single_voter(cfg.id, advertise.clone())?;
    let retired: BTreeSet<u64> = forced
        .previous
        .members()
        .chain(cfg.peers.keys().copied())
        .filter(|&id| id != cfg.id)
        .map(|id| id.0)
        .collect();
    let planned = Record {
        server: cfg.id.0,
        index: forced.index.0,
        term: forced.term.0,
        retired: retired.into_iter().collect(),
    };
    write_record(path, &planned)?;
    storage.write(&forced.persist)?;
    storage.sync()?;
    // Raft does not record its commit index: everything after the last
    // snapshot may or may not have been committed by the old cluster.
    let uncertain = if last > snapshot_index {
        format!(
            "entries {}..={} of its log, whose commitment it did not record (some the old \
             cluster may never have committed), commit with it",
            snapshot_index.0 + 1,
            last.0
        )
    } else {
        "its log holds nothing after its last snapshot".to_owned()
    };
    tracing::warn!(
        id = cfg.id.0,
        index = forced.index.0,
        term = forced.term.0,
        retired = ?planned.retired,
        "FORCED A NEW CLUSTER: server {} is now the only voter, by the configuration entry at \
         index {} (term {}), written durably: a restart without --force-new-cluster keeps it; \
         {uncertain}. The old members {:?} are retired: this server refuses their peer links \
         for good; never start them again with their old data (they would still follow the \
         old configuration). Remove the flag, then add new servers under new ids: `serve \
         --join`, `distlock members add`, `distlock members promote`.",
        cfg.id.0,
        forced.index.0,
        forced.term.0,
        planned.retired,
    );
    Ok(Some(planned))
}

fn read_record(path: &Path) -> Result<Option<Record>, ForceNewClusterError> {
    let bad = |reason: String| ForceNewClusterError::Record {
        path: path.to_owned(),
        reason,
    };
    match fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map(Some)
            .map_err(|e| bad(e.to_string().trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Writes the record atomically (temporary file, fsync, rename, fsync of
/// the directory): it must be durable before the configuration entry is.
fn write_record(path: &Path, record: &Record) -> Result<(), ForceNewClusterError> {
    let bad = |e: std::io::Error| ForceNewClusterError::Record {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let tmp = path.with_extension("toml.tmp");
    File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(record.text().as_bytes())
                .and_then(|()| f.sync_all())
        })
        .map_err(bad)?;
    fs::rename(&tmp, path).map_err(bad)?;
    if let Some(dir) = path.parent() {
        File::open(dir).and_then(|d| d.sync_all()).map_err(bad)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{FileStorage, FileStorageOptions};
    use distlock_core::ids::Term;
    use distlock_core::raft::{Entry, EntryPayload, HardState, Persist, PersistSeq};

    fn cfg(dir: &Path, force: bool) -> ServerConfig {
        let mut c = ServerConfig::single(dir.to_owned());
        for id in [2u64, 3] {
            let addr = format!("127.0.0.1:{}", 7100 + id).parse().expect("addr");
            c.peers.insert(NodeId(id), addr);
        }
        c.force_new_cluster = force;
        c
    }

    fn open(dir: &Path) -> (FileStorage<Command>, Stored<Command>) {
        let mut s = FileStorage::open(dir, FileStorageOptions::default()).expect("opens");
        let stored = s.load().expect("loads");
        (s, stored)
    }

    /// A member of {1, 2, 3} with three entries of term 2.
    fn seeded(dir: &Path) {
        let (mut s, _) = open(dir);
        let entries = (1..=3)
            .map(|i| Entry {
                index: LogIndex(i),
                term: Term(2),
                payload: EntryPayload::Noop,
            })
            .collect();
        s.write(&Persist {
            seq: PersistSeq(1),
            hard_state: Some(HardState {
                term: Term(2),
                voted_for: Some(NodeId(2)),
            }),
            truncate_from: None,
            entries,
            snapshot: None,
        })
        .expect("writes");
        s.sync().expect("syncs");
    }

    fn start(
        dir: &Path,
        force: bool,
    ) -> Result<(ServerConfig, Stored<Command>), ForceNewClusterError> {
        let mut c = cfg(dir, force);
        let (mut s, mut stored) = open(dir);
        let advertise = c
            .advertised(&crate::config::WsConfig::default())
            .expect("addresses");
        prepare(&mut c, &advertise, &mut s, &mut stored)?;
        Ok((c, stored))
    }

    #[test]
    fn forcing_is_durable_and_retires_the_old_members() {
        let home = tempfile::tempdir().expect("temp dir");
        seeded(home.path());
        let (c, stored) = start(home.path(), true).expect("forced");
        assert!(stored.is_sole_voter(NodeId(1)));
        assert_eq!(c.peers.keys().map(|i| i.0).collect::<Vec<_>>(), [1]);
        let record = read_record(&home.path().join(RECORD)).expect("reads");
        assert_eq!(
            record,
            Some(Record {
                server: 1,
                index: 4,
                term: 3,
                retired: vec![2, 3],
            })
        );
        // Restarted without the flag, with the old --peers: still alone,
        // and the old members are still struck out.
        let (c, stored) = start(home.path(), false).expect("restarts");
        assert!(stored.is_sole_voter(NodeId(1)));
        assert_eq!(stored.last_index(), LogIndex(4));
        assert_eq!(stored.hard_state.term, Term(3));
        assert_eq!(c.peers.len(), 1);
        // The flag given again changes nothing.
        let (_, stored) = start(home.path(), true).expect("a no-op");
        assert_eq!(stored.last_index(), LogIndex(4));
    }

    #[test]
    fn a_flag_left_on_after_the_cluster_grew_refuses_to_start() {
        let home = tempfile::tempdir().expect("temp dir");
        seeded(home.path());
        start(home.path(), true).expect("forced");
        // The new cluster adds server 4.
        let (mut s, stored) = open(home.path());
        let mut grown = stored.membership().clone();
        grown.learners.insert(NodeId(4));
        s.write(&Persist {
            seq: PersistSeq(1),
            hard_state: None,
            truncate_from: None,
            entries: vec![Entry {
                index: LogIndex(5),
                term: Term(3),
                payload: EntryPayload::Membership(grown),
            }],
            snapshot: None,
        })
        .expect("writes");
        s.sync().expect("syncs");
        drop(s);
        let e = start(home.path(), true).expect_err("refused");
        assert!(
            matches!(e, ForceNewClusterError::AlreadyForced { index: 4, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("Remove the flag"), "{e}");
        start(home.path(), false).expect("starts without the flag");
    }

    #[test]
    fn a_record_without_its_entry_is_completed() {
        let home = tempfile::tempdir().expect("temp dir");
        seeded(home.path());
        // A crash after the record was written, before the entry was.
        write_record(
            &home.path().join(RECORD),
            &Record {
                server: 1,
                index: 4,
                term: 3,
                retired: vec![2, 3],
            },
        )
        .expect("written");
        let (_, stored) = start(home.path(), true).expect("completed");
        assert!(stored.is_sole_voter(NodeId(1)));
        assert_eq!(stored.last_index(), LogIndex(4));
    }

    #[test]
    fn a_server_without_the_flag_and_record_is_left_alone() {
        let home = tempfile::tempdir().expect("temp dir");
        seeded(home.path());
        let (c, stored) = start(home.path(), false).expect("starts");
        assert_eq!(c.peers.len(), 3);
        assert_eq!(stored.last_index(), LogIndex(3));
        assert!(!home.path().join(RECORD).exists());
        std::fs::write(home.path().join(RECORD), "server = \"x\"\n").expect("write");
        assert!(matches!(
            start(home.path(), false),
            Err(ForceNewClusterError::Record { .. })
        ));
    }
}
