//! `distlock snapshot save|inspect|restore`: backups of the lock state and
//! the recovery of a cluster from one.
//!
//! - `save` fetches a consistent snapshot through the leader (a
//!   linearizable read: the state as applied at an index at or after a
//!   ReadIndex the leader confirmed), in chunks ([`fetch`]), and writes it
//!   atomically to a file with its index, term, configuration and a
//!   checksum ([`file`]).
//! - `inspect` verifies a file and shows what it holds; `--json` prints
//!   one object whose field names scripts may rely on (see
//!   [`inspect_json`]).
//! - `restore` seeds the data directory of a server of a new cluster with
//!   a backup ([`restore`]).
//!
//! Exit status: 0 on success; 1 when a file is unreadable, corrupt or
//! cannot be written, or the cluster refused; 69 when no leader answered
//! `save` in time.

pub(crate) mod fetch;
pub(crate) mod file;
pub(crate) mod restore;

use crate::exit::{EXIT_FAILED, EXIT_UNAVAILABLE, parse_duration};
use crate::status_cmd::lock_json;
use distlock_core::ids::NodeId;
use distlock_core::locks::{LockState, Mode};
use distlock_core::proto::LockStatusView;
use distlock_core::raft::{Membership, StateMachine};
use distlock_transport_tcp::HostPort;
use file::{Backup, BackupMeta, FORMAT_VERSION};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The text after `distlock snapshot --help`.
const HELP: &str = "\
Backup and disaster recovery:

  distlock snapshot save backup.snap --servers 10.0.0.1:7001,10.0.0.2:7001
  distlock snapshot inspect backup.snap [--json]
  distlock snapshot restore backup.snap --data-dir D --id 1 --peers 1=H1:P1,2=H2:P2,3=H3:P3

A snapshot is taken by the leader as a linearizable read and holds the lock
state (sessions, holders with their fencing tokens, waiters, lock-delays),
the log index and term it was taken at, and the configuration in force
there. The file ends in a CRC-32 of everything in it; `inspect` and
`restore` refuse a file that is truncated or damaged (exit status 1).

`inspect --json` prints one object: format, checksum, index, term,
taken_unix_ms, members [id, role (voter|learner), peer_addr, client_addr,
ws_addr], session_count, lock_count, max_token (the highest fencing token
held, or null), and locks [lock, mode, kind, holders [session, token],
waiters [session, mode, timeout_ms], lock_delay_ms], the lock fields being
those of `status NAME --json`.

`restore` seeds the empty data directory of one server of a NEW cluster,
recording its cluster id (--cluster-id, default distlock) and node id as
`serve` does; restore every server of it from the same file with the same
--peers, then start each with `distlock serve --id N --data-dir D --peers
... --cluster-id C`. The new
cluster's log starts after the snapshot's index, so every fencing token it
grants is higher than every token in the snapshot; every session in it gets
its full TTL again from the first leader's election, so a lock held by a
client that never reaches the new cluster is freed when that lease runs
out. Everything after the snapshot is lost: give the new cluster its own
--cluster-id, or addresses the old cluster's clients do not use.

A cluster that lost its quorum for good but kept one server needs no
backup: see `distlock serve --force-new-cluster`.";

/// `distlock snapshot`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = HELP)]
pub(crate) struct SnapshotArgs {
    #[command(subcommand)]
    action: SnapshotAction,
}

#[derive(clap::Subcommand, Debug)]
enum SnapshotAction {
    /// Saves a consistent snapshot of the lock state, taken through the
    /// leader, to FILE (written to FILE.tmp, synced and renamed).
    Save {
        /// Where to write the snapshot.
        file: PathBuf,
        /// Servers to ask, HOST:PORT comma-separated (else $DISTLOCK_SERVERS,
        /// else 127.0.0.1:7001).
        #[arg(
            long,
            env = "DISTLOCK_SERVERS",
            default_value = "127.0.0.1:7001",
            value_delimiter = ','
        )]
        servers: Vec<HostPort>,
        #[command(flatten)]
        tls: crate::tls_args::ClientTlsArgs,
        /// Give up (exit 69) when no leader has answered within this long.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: Duration,
        #[command(flatten)]
        credentials: crate::credentials::CredentialArgs,
    },
    /// Verifies FILE's checksum and shows its index, term, members,
    /// sessions, locks with their holders and tokens.
    Inspect {
        /// The snapshot file.
        file: PathBuf,
        /// Print one JSON object (fields in `distlock snapshot --help`).
        #[arg(long)]
        json: bool,
    },
    /// Seeds the empty data directory of a server of a NEW cluster with
    /// FILE; run it for every server of that cluster, with the same --peers.
    Restore {
        /// The snapshot file.
        file: PathBuf,
        /// The new server's data directory (must be empty or missing).
        #[arg(long)]
        data_dir: PathBuf,
        /// The new server's id (its `serve --id`).
        #[arg(long)]
        id: u64,
        /// Every member's peer address in the new cluster, this server's
        /// included: 1=HOST:PORT,2=... (its `serve --peers`); it replaces
        /// the snapshot's members.
        #[arg(long)]
        peers: String,
        /// The new cluster's name (its `serve --cluster-id`): the data
        /// directory is recorded as belonging to it [default: distlock].
        #[arg(long)]
        cluster_id: Option<String>,
    },
}

impl SnapshotArgs {
    /// The credential flags (those of `save`; none for the others).
    pub(crate) fn credentials(&self) -> crate::credentials::CredentialArgs {
        match &self.action {
            SnapshotAction::Save { credentials, .. } => credentials.clone(),
            _ => crate::credentials::CredentialArgs::default(),
        }
    }
}

/// Runs `distlock snapshot ...`; returns the process exit status.
pub(crate) async fn run(args: SnapshotArgs) -> i32 {
    match args.action {
        SnapshotAction::Save {
            file,
            servers,
            tls,
            timeout,
            ..
        } => match tls.load() {
            Ok(tls) => save(&file, &servers, tls.as_ref(), timeout).await,
            Err(e) => {
                eprintln!("distlock: {e:#}");
                crate::exit::EXIT_FAILED
            }
        },
        SnapshotAction::Inspect { file, json } => inspect(&file, json),
        SnapshotAction::Restore {
            file,
            data_dir,
            id,
            peers,
            cluster_id,
        } => restore(&file, &data_dir, id, &peers, cluster_id.as_deref()),
    }
}

async fn save(
    path: &Path,
    servers: &[HostPort],
    tls: Option<&distlock_client::ClientTls>,
    timeout: Duration,
) -> i32 {
    let fetched = match fetch::fetch(servers, tls, timeout).await {
        Ok(f) => f,
        Err(e @ fetch::FetchError::Unavailable { .. }) => {
            eprintln!("distlock snapshot save: {e}");
            return EXIT_UNAVAILABLE;
        }
        Err(e) => {
            eprintln!("distlock snapshot save: {e}");
            return EXIT_FAILED;
        }
    };
    let snapshot = fetched.snapshot;
    let mut state = LockState::default();
    if let Err(e) = state.restore(&snapshot.data) {
        eprintln!(
            "distlock snapshot save: {} sent a lock state this build cannot read: {e}",
            fetched.from
        );
        return EXIT_FAILED;
    }
    let backup = Backup {
        meta: BackupMeta {
            index: snapshot.meta.last_index,
            term: snapshot.meta.last_term,
            membership: snapshot.meta.membership,
            taken_unix_ms: unix_ms_now(),
        },
        state: snapshot.data.to_vec(),
    };
    if let Err(e) = backup.write_atomic(path) {
        eprintln!("distlock snapshot save: cannot write the snapshot: {e}");
        return EXIT_FAILED;
    }
    println!(
        "saved the lock state at index {} (term {}) to {}: {} (through {}, {} chunks)",
        backup.meta.index.0,
        backup.meta.term.0,
        path.display(),
        contents(&state),
        fetched.from,
        fetched.chunks,
    );
    0
}

/// `N sessions, M locks, highest token T` (or `none`).
fn contents(state: &LockState) -> String {
    format!(
        "{} sessions, {} locks, highest token {}",
        state.session_count(),
        state.lock_count(),
        state
            .max_token()
            .map_or_else(|| "none".to_owned(), |t| t.0.to_string())
    )
}

fn inspect(path: &Path, as_json: bool) -> i32 {
    let (backup, state) = match Backup::read(path) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("distlock snapshot inspect: {e}");
            return EXIT_FAILED;
        }
    };
    if as_json {
        println!("{}", inspect_json(&backup, &state));
    } else {
        print!("{}", inspect_text(path, &backup, &state));
    }
    0
}

fn restore(path: &Path, data_dir: &Path, id: u64, peers: &str, cluster_id: Option<&str>) -> i32 {
    let fail = |what: String| {
        eprintln!("distlock snapshot restore: {what}");
        EXIT_FAILED
    };
    let peer_map = match distlock_server::config::parse_members("--peers", peers) {
        Ok(m) => m,
        Err(e) => return fail(e.to_string()),
    };
    let peer_map = peer_map
        .into_iter()
        .map(|(id, addr)| (id, addr.to_string()))
        .collect();
    let (backup, state) = match Backup::read(path) {
        Ok(read) => read,
        Err(e) => return fail(e.to_string()),
    };
    let cluster = cluster_id.unwrap_or("distlock");
    if let Err(e) = restore::seed_data_dir(&backup, data_dir, cluster, NodeId(id), &peer_map) {
        return fail(e.to_string());
    }
    println!(
        "restored the lock state at index {} (term {}) into {}: {}; the new cluster's tokens start above {}",
        backup.meta.index.0,
        backup.meta.term.0,
        data_dir.display(),
        contents(&state),
        backup.meta.index.0,
    );
    let cluster = cluster_id.map_or_else(String::new, |c| format!(" --cluster-id {c}"));
    println!(
        "start it with: distlock serve --id {id} --data-dir {} --peers {peers}{cluster} (and its address flags)",
        data_dir.display()
    );
    0
}

/// The wall clock, for the record only.
fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Every member with its role and addresses, in id order.
fn members_json(m: &Membership) -> Vec<Value> {
    m.members()
        .map(|id| {
            let addrs = m.addrs.get(&id);
            let text = |s: Option<&String>| s.filter(|s| !s.is_empty()).cloned();
            json!({
                "id": id.0,
                "role": if m.is_voter(id) { "voter" } else { "learner" },
                "peer_addr": text(addrs.map(|a| &a.peer)),
                "client_addr": text(addrs.map(|a| &a.client)),
                "ws_addr": addrs.and_then(|a| a.ws.clone()),
            })
        })
        .collect()
}

/// `snapshot inspect --json`: one object whose field names are a public
/// contract (listed in `distlock snapshot --help`).
#[must_use]
pub(crate) fn inspect_json(backup: &Backup, state: &LockState) -> Value {
    let locks: Vec<Value> = state
        .locks()
        .map(|(name, status)| lock_json(name, Some(&LockStatusView::from(status))))
        .collect();
    json!({
        "format": FORMAT_VERSION,
        "checksum": format!("crc32:{:08x}", backup.checksum()),
        "index": backup.meta.index.0,
        "term": backup.meta.term.0,
        "taken_unix_ms": backup.meta.taken_unix_ms,
        "members": members_json(&backup.meta.membership),
        "session_count": state.session_count(),
        "lock_count": state.lock_count(),
        "max_token": state.max_token().map(|t| t.0),
        "locks": locks,
    })
}

fn mode_text(mode: Mode) -> String {
    match mode {
        Mode::Exclusive => "exclusive".to_owned(),
        Mode::Shared => "shared".to_owned(),
        Mode::Semaphore(n) => format!("semaphore of {n}"),
    }
}

fn inspect_text(path: &Path, backup: &Backup, state: &LockState) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let m = &backup.meta;
    let _ = writeln!(
        out,
        "{}: distlock snapshot format {FORMAT_VERSION}, checksum crc32:{:08x} verified",
        path.display(),
        backup.checksum()
    );
    let _ = writeln!(
        out,
        "index {}, term {}, saved {}",
        m.index.0,
        m.term.0,
        utc_text(m.taken_unix_ms)
    );
    for member in members_json(&m.membership) {
        let field = |k: &str| member[k].as_str().unwrap_or("-").to_owned();
        let _ = writeln!(
            out,
            "  member {:>3} {:<8} peer {}  client {}",
            member["id"],
            field("role"),
            field("peer_addr"),
            field("client_addr"),
        );
    }
    let held = if state.max_token().is_none() {
        " (no lock is held)"
    } else {
        ""
    };
    let _ = writeln!(out, "{}{held}", contents(state));
    for (name, status) in state.locks() {
        let held = status.mode.map_or_else(
            || "not held".to_owned(),
            |mode| format!("held {}", mode_text(mode)),
        );
        let _ = write!(out, "  lock {name:?}: {held}");
        for (session, token) in &status.holders {
            let _ = write!(out, "; session {} with token {}", session.0, token.0);
        }
        if !status.waiters.is_empty() {
            let _ = write!(out, "; {} waiting", status.waiters.len());
        }
        if let Some(d) = status.delay {
            let _ = write!(out, "; in a lock-delay of {} ms", d.delay_ms);
        }
        let _ = writeln!(out);
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS UTC` for milliseconds since the Unix epoch
/// (proleptic Gregorian calendar, days to civil date after Howard
/// Hinnant's algorithm).
fn utc_text(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use distlock_core::ids::{LogIndex, Term};
    use distlock_core::locks::{ClientCommand, Command, Seq, SessionId, Wait};
    use distlock_core::raft::MemberAddrs;

    fn backup_and_state() -> (Backup, LockState) {
        let mut s = LockState::default();
        let open = |nonce| {
            Command::Client(ClientCommand::OpenSession {
                nonce,
                ttl_ms: 10_000,
            })
        };
        let acquire = |session, seq, lock: &str, mode| {
            Command::Client(ClientCommand::Acquire {
                session: SessionId(session),
                seq: Seq(seq),
                ack: Seq(1),
                lock: lock.to_owned(),
                mode,
                wait: Wait::Forever,
                lock_delay_ms: 0,
            })
        };
        s.apply(LogIndex(2), &open(1));
        s.apply(LogIndex(3), &open(2));
        s.apply(LogIndex(4), &acquire(2, 1, "db", Mode::Exclusive));
        s.apply(LogIndex(5), &acquire(3, 1, "db", Mode::Exclusive));
        s.apply(LogIndex(6), &acquire(3, 2, "pool", Mode::Semaphore(2)));
        let mut membership = Membership::with_voters([NodeId(1), NodeId(2)]);
        membership.learners.insert(NodeId(3));
        membership.addrs.insert(
            NodeId(1),
            MemberAddrs {
                peer: "10.0.0.1:7101".to_owned(),
                client: "10.0.0.1:7001".to_owned(),
                ws: None,
            },
        );
        let backup = Backup {
            meta: BackupMeta {
                index: LogIndex(8),
                term: Term(2),
                membership,
                taken_unix_ms: 1_709_294_400_000,
            },
            state: s.snapshot(),
        };
        (backup, s)
    }

    #[test]
    fn inspect_json_has_the_documented_fields() {
        let (backup, state) = backup_and_state();
        let v = inspect_json(&backup, &state);
        assert_eq!(v["format"], 1);
        assert!(
            v["checksum"]
                .as_str()
                .is_some_and(|c| c.starts_with("crc32:"))
        );
        assert_eq!(
            (v["index"].clone(), v["term"].clone()),
            (json!(8), json!(2))
        );
        assert_eq!(v["taken_unix_ms"], 1_709_294_400_000_u64);
        assert_eq!(v["session_count"], 2);
        assert_eq!(v["lock_count"], 2);
        assert_eq!(v["max_token"], 6);
        assert_eq!(v["members"][0]["role"], "voter");
        assert_eq!(v["members"][0]["peer_addr"], "10.0.0.1:7101");
        assert_eq!(v["members"][1]["peer_addr"], Value::Null);
        assert_eq!(v["members"][2]["role"], "learner");
        let db = &v["locks"][0];
        assert_eq!(db["lock"], "db");
        assert_eq!(db["mode"], "exclusive");
        assert_eq!(db["holders"][0]["session"], 2);
        assert_eq!(db["holders"][0]["token"], 4);
        assert_eq!(db["waiters"][0]["session"], 3);
        assert_eq!(v["locks"][1]["kind"], json!({ "semaphore": 2 }));
    }

    #[test]
    fn inspect_text_names_holders_and_tokens() {
        let (backup, state) = backup_and_state();
        let text = inspect_text(Path::new("b.snap"), &backup, &state);
        assert!(
            text.contains("index 8, term 2, saved 2024-03-01 12:00:00 UTC"),
            "{text}"
        );
        assert!(
            text.contains("lock \"db\": held exclusive; session 2 with token 4; 1 waiting"),
            "{text}"
        );
        assert!(
            text.contains("2 sessions, 2 locks, highest token 6"),
            "{text}"
        );
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc_text(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_text(951_825_600_000), "2000-02-29 12:00:00 UTC");
        assert_eq!(utc_text(4_102_444_799_000), "2099-12-31 23:59:59 UTC");
    }
}
