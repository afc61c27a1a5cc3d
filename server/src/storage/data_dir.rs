//! Claiming a data directory: one server at a time, and always the same
//! one.
//!
//! Two servers writing one log would each overwrite what the other
//! acknowledged, and a directory started under another node id or cluster
//! would hand that server another member's votes and log. So a server
//! takes an exclusive lock on `LOCK` (held by the open file, released by
//! the kernel when the process dies, however it dies) and writes its pid
//! there for the operator; and `IDENTITY` records the cluster id and node
//! id the directory belongs to, checked at every start. The directory is
//! created readable by its owner only (0700): the log holds every lock
//! name and session.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

const LOCK_FILE: &str = "LOCK";
const IDENTITY_FILE: &str = "IDENTITY";

/// A claimed data directory; the claim ends when this is dropped.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

/// Why a data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Another process holds the directory.
    #[error(
        "data directory {path} is in use by another distlock server (pid {pid}); \
         each server needs its own --data-dir"
    )]
    InUse {
        /// The directory.
        path: PathBuf,
        /// The holder's pid, as it wrote it (`unknown` if unreadable).
        pid: String,
    },
    /// The directory belongs to another node or cluster.
    #[error(
        "data directory {path} belongs to node {found_node} of cluster {found_cluster:?}, \
         not node {node} of cluster {cluster:?}: start it with its own --id and --cluster-id, \
         or give this server an empty --data-dir"
    )]
    WrongIdentity {
        /// The directory.
        path: PathBuf,
        /// The node id it was created for.
        found_node: u64,
        /// The cluster it was created for.
        found_cluster: String,
        /// The node id asked for.
        node: u64,
        /// The cluster asked for.
        cluster: String,
    },
    /// `IDENTITY` is not what this module writes.
    #[error(
        "data directory {path}: {IDENTITY_FILE} is unreadable ({reason}); it is not a distlock data directory, or it was damaged"
    )]
    BadIdentity {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An I/O error.
    #[error("data directory {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl DataDir {
    /// Creates `path` (mode 0700) if needed, locks it, and checks or
    /// records that it belongs to node `node` of cluster `cluster`.
    ///
    /// # Errors
    /// [`DataDirError::InUse`] when another process holds it,
    /// [`DataDirError::WrongIdentity`] when it belongs to another node or
    /// cluster, or an I/O error.
    pub fn claim(path: &Path, cluster: &str, node: u64) -> Result<Self, DataDirError> {
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| DataDirError::Io { path: p, source }
        };
        create_private_dir(path).map_err(io(path))?;
        let lock_path = path.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = lock.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(DataDirError::InUse {
                    path: path.to_path_buf(),
                    pid: if pid.is_empty() { "unknown" } else { pid }.to_owned(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        lock.set_len(0).map_err(io(&lock_path))?;
        lock.rewind().map_err(io(&lock_path))?;
        writeln!(lock, "{}", std::process::id()).map_err(io(&lock_path))?;
        check_identity(path, cluster, node)?;
        Ok(Self {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(unix)]
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

#[cfg(not(unix))]
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    fs::create_dir_all(path)
}

/// The identity file's text: `cluster = "..."` and `node = N` lines.
fn identity_text(cluster: &str, node: u64) -> String {
    format!(
        "# Written by distlock: this directory belongs to this node of this cluster.\n\
         cluster = {cluster:?}\nnode = {node}\n"
    )
}

fn parse_identity(text: &str) -> Option<(String, u64)> {
    let mut cluster = None;
    let mut node = None;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("cluster = ") {
            cluster = Some(
                v.strip_prefix('"')?
                    .strip_suffix('"')?
                    .replace("\\\"", "\""),
            );
        } else if let Some(v) = line.strip_prefix("node = ") {
            node = Some(v.parse().ok()?);
        }
    }
    Some((cluster?, node?))
}

/// Checks `IDENTITY` against (cluster, node), or writes it (durably) for a
/// directory that has none yet.
fn check_identity(dir: &Path, cluster: &str, node: u64) -> Result<(), DataDirError> {
    let path = dir.join(IDENTITY_FILE);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| DataDirError::Io { path: p, source }
    };
    match fs::read_to_string(&path) {
        Ok(text) => {
            let (found_cluster, found_node) =
                parse_identity(&text).ok_or_else(|| DataDirError::BadIdentity {
                    path: dir.to_path_buf(),
                    reason: "expected cluster = \"...\" and node = N".to_owned(),
                })?;
            if found_cluster != cluster || found_node != node {
                return Err(DataDirError::WrongIdentity {
                    path: dir.to_path_buf(),
                    found_node,
                    found_cluster,
                    node,
                    cluster: cluster.to_owned(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let tmp = dir.join(format!("{IDENTITY_FILE}.tmp"));
            let mut f = File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(identity_text(cluster, node).as_bytes())
                .map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
            fs::rename(&tmp, &path).map_err(io(&path))?;
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(dir))?;
            Ok(())
        }
        Err(e) => Err(io(&path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_is_refused_and_names_the_holder() {
        let home = tempfile::tempdir().expect("dir");
        let dir = home.path().join("data");
        let first = DataDir::claim(&dir, "c", 1).expect("first claim");
        let e = DataDir::claim(&dir, "c", 1).expect_err("second claim");
        let text = e.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        DataDir::claim(&dir, "c", 1).expect("claimed again once released");
    }

    #[cfg(unix)]
    #[test]
    fn the_directory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().expect("dir");
        let dir = home.path().join("data");
        let _claim = DataDir::claim(&dir, "c", 1).expect("claim");
        let mode = fs::metadata(&dir).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn another_node_or_cluster_is_refused() {
        let home = tempfile::tempdir().expect("dir");
        let dir = home.path().join("data");
        drop(DataDir::claim(&dir, "prod", 2).expect("claim"));
        let e = DataDir::claim(&dir, "prod", 3).expect_err("other node");
        assert!(
            matches!(e, DataDirError::WrongIdentity { found_node: 2, .. }),
            "{e}"
        );
        let e = DataDir::claim(&dir, "test", 2).expect_err("other cluster");
        assert!(e.to_string().contains("cluster \"prod\""), "{e}");
        DataDir::claim(&dir, "prod", 2).expect("its own identity");
    }

    #[test]
    fn a_damaged_identity_is_refused() {
        let home = tempfile::tempdir().expect("dir");
        let dir = home.path().join("data");
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join(IDENTITY_FILE), "garbage").expect("write");
        let e = DataDir::claim(&dir, "c", 1).expect_err("damaged");
        assert!(matches!(e, DataDirError::BadIdentity { .. }), "{e}");
    }

    #[test]
    fn identities_round_trip_with_quotes() {
        let text = identity_text("a \"b\"", 7);
        assert_eq!(parse_identity(&text), Some(("a \"b\"".to_owned(), 7)));
    }
}
