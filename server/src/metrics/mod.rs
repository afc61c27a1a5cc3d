//! The server's metrics: one [`Metrics`] per server (several servers share
//! a process under `distlock dev` and the simulator), each with its own
//! Prometheus registry, served at `/metrics` by [`http`].
//!
//! Cost: every handle here is an atomic (counters, gauges; histograms
//! observe with atomics only), fetched once at start, so the request path
//! never looks a metric up, allocates or takes a lock. What the core knows
//! (Raft's indexes, the lock table's sizes, the lock service's counters)
//! is copied in by the node task at most every [`PUBLISH_EVERY`], not per
//! request; directory sizes are read when scraped.

mod collectors;
pub mod http;
mod publish;

use collectors::{CoreHistograms, DataDirSizes};
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
pub(crate) use publish::Publisher;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// How often the node task copies the core's state into the metrics (and
/// so how stale `/metrics` and `/readyz` may be).
pub const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// A server is ready only if it has applied its log to within this many
/// entries of its commit index (`/readyz`, `distlock status --check`).
pub const READY_MAX_APPLY_LAG: u64 = 1000;

/// A refused connection's reason, as the `reason` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The handshake failed (wrong cluster, bad protocol version, a broken
    /// or slow hello).
    Handshake,
    /// A peer that is not a member.
    NotMember,
    /// A WebSocket request refused before the upgrade (origin, host,
    /// not a WebSocket).
    Http,
    /// A broken frame after the handshake.
    BadFrame,
    /// Authentication failed (no or a wrong token or certificate).
    Auth,
    /// Over a connection limit (global or per source address).
    Limit,
}

const REFUSALS: [(Refusal, &str); 6] = [
    (Refusal::Handshake, "handshake"),
    (Refusal::NotMember, "not_member"),
    (Refusal::Http, "http"),
    (Refusal::BadFrame, "bad_frame"),
    (Refusal::Auth, "auth"),
    (Refusal::Limit, "limit"),
];

/// Every metric of one server. Cloning an `Arc<Metrics>` is how tasks get
/// their handles.
pub struct Metrics {
    registry: Registry,

    // Raft.
    pub(crate) term: IntGauge,
    pub(crate) role: [IntGauge; 4],
    pub(crate) leader_id: IntGauge,
    pub(crate) commit_index: IntGauge,
    pub(crate) applied_index: IntGauge,
    pub(crate) last_index: IntGauge,
    pub(crate) leader_changes: IntCounter,
    pub(crate) elections: IntCounter,
    pub(crate) pre_votes: IntCounter,
    pub(crate) append_batch: Histogram,
    pub(crate) peer_lag: IntGaugeVec,
    pub(crate) snapshots_taken: IntCounter,
    pub(crate) snapshot_taken_bytes: IntCounter,
    pub(crate) snapshots_installed: IntCounter,
    pub(crate) snapshot_installed_bytes: IntCounter,
    pub(crate) members: IntGauge,
    pub(crate) removed: IntGauge,

    // Storage.
    pub(crate) fsync_seconds: Histogram,
    pub(crate) storage_errors: IntCounter,
    /// Bytes the store wrote; bumped by the store itself (see
    /// [`crate::storage::Storage::written_bytes`]).
    pub(crate) written_bytes: Arc<AtomicU64>,

    // Locks.
    pub(crate) sessions: IntGauge,
    pub(crate) locks_held: [IntGauge; 3],
    pub(crate) waiters: IntGauge,
    pub(crate) lock_delays_active: IntGauge,
    pub(crate) grants: IntCounter,
    pub(crate) releases: IntCounter,
    pub(crate) expiries: IntCounter,
    pub(crate) timeouts: IntCounter,
    pub(crate) sessions_opened: IntCounter,
    pub(crate) sessions_closed: IntCounter,
    pub(crate) sessions_expired: IntCounter,
    pub(crate) lock_delays: IntCounter,
    pub(crate) core_histograms: Arc<CoreHistograms>,

    // Connections.
    pub(crate) clients_tcp: IntGauge,
    pub(crate) clients_ws: IntGauge,
    pub(crate) peers_connected: IntGauge,
    pub(crate) frames_in_client: IntCounter,
    pub(crate) frames_in_peer: IntCounter,
    pub(crate) frames_out_client: IntCounter,
    pub(crate) frames_out_peer: IntCounter,
    refusals: [IntCounter; REFUSALS.len()],
    pub(crate) census: http::CensusRequest,
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("a valid metric name");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("a valid metric name");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn gauge_vec(r: &Registry, name: &str, help: &str, label: &str) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), &[label]).expect("a valid metric name");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn counter_vec(r: &Registry, name: &str, help: &str, label: &str) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("a valid metric name");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("a valid metric name");
    r.register(Box::new(h.clone())).expect("registered once");
    h
}

impl Metrics {
    /// The metrics of a server whose data directory is `data_dir` (its
    /// sizes are read when scraped; `None`: a store that is no directory).
    #[must_use]
    pub fn new(data_dir: Option<PathBuf>) -> Arc<Self> {
        let r = Registry::new();
        let role = gauge_vec(
            &r,
            "distlock_raft_role",
            "1 for this server's current Raft role, 0 for the others",
            "role",
        );
        let held = gauge_vec(
            &r,
            "distlock_locks_held",
            "Locks held, by how they are held (exclusive, shared, semaphore)",
            "mode",
        );
        let clients = gauge_vec(
            &r,
            "distlock_clients_connected",
            "Client connections open, by transport",
            "transport",
        );
        let frames_in = counter_vec(
            &r,
            "distlock_frames_received_total",
            "Frames received, from clients or peers",
            "from",
        );
        let frames_out = counter_vec(
            &r,
            "distlock_frames_sent_total",
            "Frames sent, to clients or peers",
            "to",
        );
        let refusals = counter_vec(
            &r,
            "distlock_connections_refused_total",
            "Connections refused, by reason",
            "reason",
        );
        let core_histograms = Arc::new(CoreHistograms::default());
        r.register(Box::new(collectors::CoreHistogramCollector::new(
            Arc::clone(&core_histograms),
        )))
        .expect("registered once");
        if let Some(dir) = data_dir {
            r.register(Box::new(DataDirSizes::new(dir)))
                .expect("registered once");
        }
        if !cfg!(madsim) {
            // process_cpu_seconds_total, process_resident_memory_bytes,
            // process_open_fds, process_start_time_seconds...
            #[cfg(target_os = "linux")]
            r.register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("registered once");
        }
        let m = Self {
            term: gauge(&r, "distlock_raft_term", "This server's current Raft term"),
            role: ["follower", "pre_candidate", "candidate", "leader"]
                .map(|name| role.with_label_values(&[name])),
            leader_id: gauge(
                &r,
                "distlock_raft_leader_id",
                "The id of the leader this server knows, 0 when none",
            ),
            commit_index: gauge(
                &r,
                "distlock_raft_commit_index",
                "The highest log index known committed",
            ),
            applied_index: gauge(
                &r,
                "distlock_raft_applied_index",
                "The highest log index applied to the lock state",
            ),
            last_index: gauge(
                &r,
                "distlock_raft_last_index",
                "The last index in this server's log",
            ),
            leader_changes: counter(
                &r,
                "distlock_raft_leader_changes_total",
                "Times the leader this server knows changed (to another server or to none)",
            ),
            elections: counter(
                &r,
                "distlock_raft_elections_total",
                "Elections this server started (as a candidate)",
            ),
            pre_votes: counter(
                &r,
                "distlock_raft_pre_votes_total",
                "Pre-vote rounds this server started",
            ),
            append_batch: histogram(
                &r,
                "distlock_raft_append_entries_batch_size",
                "Entries per AppendEntries message this server sent",
                vec![
                    0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
                ],
            ),
            peer_lag: gauge_vec(
                &r,
                "distlock_raft_peer_replication_lag_entries",
                "Entries of the leader's log not yet known replicated on each peer (leader only)",
                "peer",
            ),
            snapshots_taken: counter(
                &r,
                "distlock_raft_snapshots_taken_total",
                "Snapshots of the lock state taken",
            ),
            snapshot_taken_bytes: counter(
                &r,
                "distlock_raft_snapshot_taken_bytes_total",
                "Bytes of the snapshots taken",
            ),
            snapshots_installed: counter(
                &r,
                "distlock_raft_snapshots_installed_total",
                "Snapshots received from a leader and installed",
            ),
            snapshot_installed_bytes: counter(
                &r,
                "distlock_raft_snapshot_installed_bytes_total",
                "Bytes of the snapshots installed",
            ),
            members: gauge(
                &r,
                "distlock_raft_members",
                "Members (voters and learners) in the configuration in force",
            ),
            removed: gauge(
                &r,
                "distlock_raft_removed",
                "1 when this server was removed from the cluster",
            ),
            fsync_seconds: histogram(
                &r,
                "distlock_storage_fsync_duration_seconds",
                "How long each fsync of the log took",
                vec![
                    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
                    0.25, 0.5, 1.0,
                ],
            ),
            storage_errors: counter(
                &r,
                "distlock_storage_errors_total",
                "Storage write or fsync failures (the server stops at the first)",
            ),
            written_bytes: Arc::new(AtomicU64::new(0)),
            sessions: gauge(&r, "distlock_sessions", "Sessions open"),
            locks_held: ["exclusive", "shared", "semaphore"].map(|m| held.with_label_values(&[m])),
            waiters: gauge(&r, "distlock_lock_waiters", "Acquires queued on a lock"),
            lock_delays_active: gauge(&r, "distlock_lock_delays_active", "Locks in lock-delay"),
            grants: counter(&r, "distlock_lock_grants_total", "Locks granted"),
            releases: counter(
                &r,
                "distlock_lock_releases_total",
                "Grants ended by their holder",
            ),
            expiries: counter(
                &r,
                "distlock_lock_expiries_total",
                "Grants ended because the holder's session expired",
            ),
            timeouts: counter(
                &r,
                "distlock_lock_wait_timeouts_total",
                "Queued acquires that timed out",
            ),
            sessions_opened: counter(&r, "distlock_sessions_opened_total", "Sessions opened"),
            sessions_closed: counter(
                &r,
                "distlock_sessions_closed_total",
                "Sessions closed by their client",
            ),
            sessions_expired: counter(
                &r,
                "distlock_sessions_expired_total",
                "Sessions whose lease ran out",
            ),
            lock_delays: counter(&r, "distlock_lock_delays_total", "Lock-delays started"),
            core_histograms,
            clients_tcp: clients.with_label_values(&["tcp"]),
            clients_ws: clients.with_label_values(&["websocket"]),
            peers_connected: gauge(
                &r,
                "distlock_peers_connected",
                "Peers this server has a link to",
            ),
            frames_in_client: frames_in.with_label_values(&["client"]),
            frames_in_peer: frames_in.with_label_values(&["peer"]),
            frames_out_client: frames_out.with_label_values(&["client"]),
            frames_out_peer: frames_out.with_label_values(&["peer"]),
            refusals: REFUSALS.map(|(_, name)| refusals.with_label_values(&[name])),
            census: http::CensusRequest::default(),
            registry: r,
        };
        let written = Arc::clone(&m.written_bytes);
        m.registry
            .register(Box::new(collectors::CounterFromAtomic::new(
                "distlock_storage_written_bytes_total",
                "Bytes written to the log and snapshots",
                written,
            )))
            .expect("registered once");
        Arc::new(m)
    }

    /// Counts a refused connection.
    pub fn refused(&self, why: Refusal) {
        if let Some(i) = REFUSALS.iter().position(|(r, _)| *r == why) {
            self.refusals[i].inc();
        }
    }

    /// Every metric in the Prometheus text format (version 0.0.4).
    #[must_use]
    pub fn render(&self) -> String {
        use prometheus::Encoder;
        let mut out = Vec::new();
        // Encoding into memory fails only on a malformed family, which the
        // constructors above rule out.
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Whether this server is ready to serve (`/readyz`): it knows a
    /// leader, is still a member, and has applied to within
    /// [`READY_MAX_APPLY_LAG`] of its commit index. `Err` says why not.
    ///
    /// # Errors
    /// The reason it is not ready.
    pub fn readiness(&self) -> Result<(), String> {
        if self.removed.get() != 0 {
            return Err("removed from the cluster".into());
        }
        if self.leader_id.get() == 0 {
            return Err("no leader known".into());
        }
        let lag = self.commit_index.get() - self.applied_index.get();
        if lag > i64::try_from(READY_MAX_APPLY_LAG).unwrap_or(i64::MAX) {
            return Err(format!(
                "applied index {lag} entries behind the commit index"
            ));
        }
        Ok(())
    }
}
