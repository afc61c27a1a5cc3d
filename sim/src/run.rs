//! One seed, one run: builds the world (servers, client nodes, workload,
//! resource), plays the fault timeline drawn from the seed for the safety
//! phase, heals everything for the liveness phase and probes every lock,
//! then runs the checkers and returns a [`Summary`].

use crate::chaos::ChaosNet;
use crate::checks::{self, Violation};
use crate::clock::TrueTime;
use crate::cluster::{Cluster, RoleLayer, Roles, client_addr, ws_addr};
use crate::faults::{Action, ClientNode, FaultSet, Timeline, World};
use crate::history::{AcquireResult, Ev, History, Record};
use crate::resource::Resource;
use crate::tls::SimTls;
use crate::workload::{LockKind, Workload};
use distlock_client::{Client, ClientOptions};
use distlock_core::locks::{Mode, Wait};
use distlock_core::proto::{ClusterStatusView, MemberRole};
use distlock_server::config::RaftTuning;
use madsim::runtime::{Handle, Runtime};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;

/// The note a run with TLS starts with: every session opened after it
/// went through a TLS handshake (the servers speak nothing else).
const TLS_NOTE: &str = "tls on every link";

/// What to run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed: everything else is drawn from it.
    pub seed: u64,
    /// 3 or 5 servers.
    pub nodes: u64,
    /// Length of the safety phase (true time).
    pub duration: Duration,
    /// Fault classes in play.
    pub faults: FaultSet,
    /// Client nodes.
    pub clients: usize,
    /// Session TTL range, ms.
    pub ttl_ms: (u64, u64),
    /// Mean gap between fault starts, ms.
    pub fault_gap_ms: u64,
    /// Largest clock drift within the bound, ppm (the client library
    /// assumes 10 000).
    pub max_drift_ppm: i64,
    /// Chance (per mille) that a holder writes without checking its lease.
    pub careless_per_mille: u64,
    /// Each disk's own fsync latency is drawn from this range (µs).
    pub fsync_us: (u64, u64),
    /// Kills wait for a server with unsynced writes (see [`World`]).
    pub kill_when_dirty: bool,
    /// A scripted schedule to play instead of (or besides) random faults:
    /// `(true ms, action)`.
    pub script: Vec<(u64, Action)>,
    /// The servers' Raft tuning (snapshot threshold, compaction margin,
    /// entries and bytes per append).
    pub raft: RaftTuning,
    /// The lock-delay every acquire asks for, ms (0: none).
    pub lock_delay_ms: u64,
    /// TLS on every listener and link: servers' ports, peer links (mutual
    /// TLS) and every client, with certificates made at the start.
    pub tls: bool,
    /// Every server's starting drift drawn within the bound, or pinned at
    /// one end of it.
    pub server_drift: DriftPin,
}

/// Where the servers' starting drift rates lie within the bound. Pinning
/// them at an end puts the lease arithmetic at its edge: a fast leader
/// ends a lease sooner in true time than a client counting true time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DriftPin {
    /// Each drawn from the seed within `±max_drift_ppm`.
    #[default]
    Drawn,
    /// Every server runs `max_drift_ppm` fast.
    Fast,
    /// Every server runs `max_drift_ppm` slow.
    Slow,
}

impl SimConfig {
    /// Defaults for `seed`: 3 nodes, 60 s, every fault class.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            nodes: 3,
            duration: Duration::from_secs(60),
            faults: FaultSet::all(),
            clients: 5,
            ttl_ms: (1_500, 4_000),
            fault_gap_ms: 3_000,
            max_drift_ppm: 4_000,
            careless_per_mille: 100,
            fsync_us: (50, 3_000),
            lock_delay_ms: 0,
            tls: false,
            server_drift: DriftPin::Drawn,
            kill_when_dirty: false,
            script: Vec::new(),
            raft: RaftTuning::default(),
        }
    }
}

/// The outcome of a run: the one JSON line `./scripts/sim` prints.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The seed.
    pub seed: u64,
    /// Servers.
    pub nodes: u64,
    /// Safety-phase length, e.g. `"60s"`.
    pub duration: String,
    /// Fault classes.
    pub faults: String,
    /// Acquires invoked.
    pub ops: u64,
    /// Broken properties (empty on a good run).
    pub violations: Vec<Violation>,
    /// No-early-release findings under clocks beyond the bound (not bugs).
    pub assumption_breaches: Vec<Violation>,
    /// Hash of the whole history (hex); equal seeds give equal hashes.
    pub trace_hash: String,
    /// How often interesting things happened (a pass must not be vacuous).
    pub coverage: BTreeMap<&'static str, u64>,
    /// True seconds simulated.
    pub sim_seconds: f64,
    /// The history, when asked for.
    #[serde(skip)]
    pub history: Option<String>,
}

/// Runs one seed in a fresh simulator on a fresh thread.
///
/// A fresh thread, because thread-local random generators (the one
/// tungstenite masks WebSocket frames with) are seeded from the simulator
/// on first use only: a second seed on the same thread would find one
/// already seeded, draw differently from the simulator, and not replay
/// the way the same seed does alone.
#[must_use]
pub fn run_seed(cfg: &SimConfig, keep_history: bool) -> Summary {
    let cfg = cfg.clone();
    let run = std::thread::Builder::new()
        .name(format!("sim-seed-{}", cfg.seed))
        .spawn(move || {
            let rt = Runtime::with_seed_and_config(cfg.seed, madsim::Config::default());
            rt.block_on(async move { simulate(cfg, keep_history).await })
        });
    match run.map(std::thread::JoinHandle::join) {
        Ok(Ok(summary)) => summary,
        // The simulation panicked: let the caller see the panic as if it
        // had happened here.
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(e) => panic!("cannot start a thread for the seed: {e}"),
    }
}

/// [`run_seed`], but a panic anywhere in the simulated world (a debug
/// assertion in the core, say) becomes a `panic` violation of the seed
/// instead of ending the process.
#[must_use]
pub fn run_seed_catching(cfg: &SimConfig, keep_history: bool) -> Summary {
    let run =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_seed(cfg, keep_history)));
    run.unwrap_or_else(|payload| {
        let detail = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic without a message".to_owned());
        Summary {
            seed: cfg.seed,
            nodes: cfg.nodes,
            duration: duration_name(cfg.duration),
            faults: cfg.faults.name(),
            ops: 0,
            violations: vec![Violation {
                property: "panic",
                t: 0,
                detail,
            }],
            assumption_breaches: Vec::new(),
            trace_hash: String::new(),
            coverage: BTreeMap::new(),
            sim_seconds: 0.0,
            history: None,
        }
    })
}

/// A duration as `--duration` takes it back: whole seconds as `60s`,
/// anything finer in milliseconds (`1500ms`).
#[must_use]
pub fn duration_name(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn range(rng: &mut ChaCha8Rng, lo: u64, hi: u64) -> u64 {
    lo + rng.next_u64() % (hi.saturating_sub(lo) + 1)
}

fn locks() -> Vec<(String, LockKind)> {
    vec![
        ("x0".to_owned(), LockKind::Exclusive),
        ("x1".to_owned(), LockKind::Exclusive),
        ("rw".to_owned(), LockKind::ReadWrite),
        ("sem".to_owned(), LockKind::Semaphore(2)),
    ]
}

#[allow(clippy::too_many_lines)]
async fn simulate(cfg: SimConfig, keep_history: bool) -> Summary {
    let time = TrueTime::start();
    let history = History::new();
    let roles: Roles = Arc::new(Mutex::new(BTreeMap::new()));
    let nodes = Arc::new(Mutex::new(Vec::new()));
    let layer = RoleLayer {
        nodes: nodes.clone(),
        roles: roles.clone(),
        history: history.clone(),
        time,
    };
    let _trace = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    // The harness's own stream: independent of madsim's scheduler draws.
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed_d157_10c4);
    let bound = if cfg.faults.clock_breach {
        cfg.max_drift_ppm * 15
    } else {
        cfg.max_drift_ppm
    };
    let clocks: Vec<(u64, i64)> = (0..cfg.nodes)
        .map(|_| {
            let offset = range(&mut rng, 0, 1_000_000_000);
            let drawn =
                i64::try_from(range(&mut rng, 0, 2 * bound.unsigned_abs())).unwrap_or(0) - bound;
            // Drawn either way, so that pinning leaves every later draw as it was.
            let drift = match cfg.server_drift {
                DriftPin::Drawn => drawn,
                DriftPin::Fast => bound,
                DriftPin::Slow => -bound,
            };
            (offset, drift)
        })
        .collect();
    let fsync_us: Vec<u64> = (0..cfg.nodes)
        .map(|_| range(&mut rng, cfg.fsync_us.0, cfg.fsync_us.1))
        .collect();
    // Certificates for every server a run may start (joins add ids).
    let tls = if cfg.tls {
        let made = SimTls::new(cfg.nodes + 4).expect("development certificates");
        history.push(
            time.now_us(),
            Ev::Fault {
                what: TLS_NOTE.to_owned(),
            },
        );
        Some(Arc::new(made))
    } else {
        None
    };
    let client_tls = tls.as_ref().map(|t| t.client().expect("the clients' TLS"));
    let cluster = Cluster::start(
        cfg.nodes,
        &clocks,
        &fsync_us,
        cfg.raft,
        history.clone(),
        time,
        roles,
        nodes.clone(),
        Arc::new(ChaosNet::new(cfg.seed ^ 0xc4a0_5eed)),
        tls,
    );
    let end = u64::try_from(cfg.duration.as_micros()).unwrap_or(u64::MAX);
    let workload = Arc::new(Workload {
        history: history.clone(),
        time,
        resource: Resource::new(history.clone(), time),
        servers: (1..=cfg.nodes).map(client_addr).collect(),
        ws_servers: (1..=cfg.nodes).map(ws_addr).collect(),
        locks: locks(),
        ttl_ms: cfg.ttl_ms,
        stop_at: AtomicU64::new(end),
        next_op: AtomicU64::new(1),
        next_client: AtomicU64::new(1),
        careless_per_mille: cfg.careless_per_mille,
        lock_delay_ms: cfg.lock_delay_ms,
        tls: client_tls,
    });
    if cfg.lock_delay_ms > 0 {
        history.push(
            time.now_us(),
            Ev::LockDelaySetting {
                ms: cfg.lock_delay_ms,
            },
        );
    }
    let handle = Handle::current();
    let clients = (0..cfg.clients)
        .map(|i| ClientNode {
            node: handle
                .create_node()
                .name(format!("c{i}"))
                .ip(IpAddr::V4(Ipv4Addr::new(
                    10,
                    0,
                    2,
                    u8::try_from(i + 1).unwrap_or(255),
                )))
                .build(),
            up: true,
            paused: false,
        })
        .collect();
    let mut world = World {
        cluster,
        clients,
        workload: workload.clone(),
        rng: ChaCha8Rng::seed_from_u64(rng.next_u64()),
        ttl_max_ms: cfg.ttl_ms.1,
        max_drift_ppm: bound,
        kill_when_dirty: cfg.kill_when_dirty,
        dirty_wait_ms: 0,
        operator: None,
        rogue: None,
        labels: BTreeMap::new(),
    };
    for i in 0..cfg.clients {
        world.spawn_client(i);
    }

    // Safety phase: random faults from the set, plus the script.
    let mut tl = Timeline::default();
    for (ms, action) in &cfg.script {
        tl.at(ms * 1000, action.clone());
    }
    if !cfg.faults.classes.is_empty() {
        let mut t = 1_000_000;
        loop {
            t += range(&mut rng, 1, 2 * cfg.fault_gap_ms) * 1000;
            if t >= end {
                break;
            }
            let class = cfg.faults.classes
                [usize::try_from(rng.next_u64() % cfg.faults.classes.len() as u64).unwrap_or(0)];
            tl.at(t, Action::Start(class));
        }
    }
    loop {
        let next = tl.next_at().unwrap_or(u64::MAX).min(end);
        // Fail-stopped servers come back within a second, like under a
        // service manager.
        let wake = next.min(time.now_us() + 1_000_000);
        let now = time.now_us();
        if wake > now {
            tokio::time::sleep(Duration::from_micros(wake - now)).await;
        }
        for id in world.cluster.exited() {
            world.cluster.restart(id);
        }
        if time.now_us() >= end {
            break;
        }
        if tl.next_at().is_some_and(|t| t <= time.now_us()) {
            if let Some((_, action)) = tl.pop() {
                world.apply(action, &mut tl);
            }
        }
    }

    // Liveness phase: clients die (their locks must come free), every
    // fault ends, and a probe must get every lock within the bound.
    for c in &mut world.clients {
        if c.up {
            handle.kill(c.node.id());
            c.up = false;
        }
    }
    world.heal_all();
    let healed = time.now_us();
    let bound_us = (2 * cfg.ttl_ms.1 + 15_000) * 1000;
    let probe_node = handle
        .create_node()
        .name("probe")
        .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 3, 1)))
        .build();
    let w = workload.clone();
    let servers: Vec<(u64, bool)> = world
        .cluster
        .servers
        .iter()
        .map(|s| (s.id, s.disk.faults().corrupt))
        .collect();
    // Newest first: like an operator who lists the servers the cluster
    // runs now, not the ones it started with (after dense membership
    // changes those are all removed, and a client that knows only them
    // never learns of members added after their removal: seed 576 of
    // the dense membership schedule on 3 servers).
    let probe_seeds: Vec<SocketAddr> = servers
        .iter()
        .rev()
        .map(|(id, _)| client_addr(*id))
        .collect();
    let probe = probe_node.spawn(async move {
        probe_locks(w.clone(), probe_seeds, healed, bound_us).await;
        probe_catch_up(&w, &servers, healed, bound_us).await;
    });
    let _ = probe.await;
    world.cluster.record_disk_breaches();
    if let Some(log) =
        crate::witness::replay_committed_log(world.cluster.servers.iter().map(|s| &s.disk))
    {
        history.push(time.now_us(), log);
    }

    let records = history.records();
    let mut coverage = coverage(&records);
    let chaos = world.cluster.chaos.counts();
    for (key, v) in [
        ("frames_dropped", chaos.dropped),
        ("frames_duplicated", chaos.duplicated),
        ("frames_delayed", chaos.delayed),
        ("appends_cut", chaos.appends_cut),
    ] {
        if v > 0 {
            *coverage.entry(key).or_default() += v;
        }
    }
    for s in &world.cluster.servers {
        let n = s.disk.snapshot_counts();
        for (key, v) in [
            ("snapshots_taken", n.taken),
            ("snapshots_installed", n.installed),
            ("snapshot_restores", n.restores),
        ] {
            if v > 0 {
                *coverage.entry(key).or_default() += v;
            }
        }
    }
    let mut violations = checks::check_all(&records);
    let fidelity = crate::snapshot_fidelity::check(
        world.cluster.servers.iter().map(|s| (s.id, &s.disk)),
        time.now_us(),
    );
    violations.extend(fidelity.violations);
    if fidelity.compared > 0 {
        coverage.insert("snapshots_compared", fidelity.compared);
    }
    let mut breaches = Vec::new();
    if cfg.faults.clock_breach {
        let (b, v): (Vec<_>, Vec<_>) = violations
            .into_iter()
            .partition(|v| v.property == "no_early_release");
        breaches = b;
        violations = v;
        if !breaches.is_empty() {
            coverage.insert("assumption_breaches", breaches.len() as u64);
        }
    }
    Summary {
        seed: cfg.seed,
        nodes: cfg.nodes,
        duration: duration_name(cfg.duration),
        faults: cfg.faults.name(),
        ops: workload.next_op.load(Ordering::Relaxed) - 1,
        violations,
        assumption_breaches: breaches,
        trace_hash: format!("{:016x}", history.hash()),
        coverage,
        sim_seconds: time.now_us() as f64 / 1e6,
        history: keep_history.then(|| history.to_jsonl()),
    }
}

/// After the heal: a fresh client, given every server ever started
/// (`seeds`, newest first), takes every lock in turn, retrying until
/// `bound_us` after the heal.
///
/// The probe opens a new session whenever the one it has is lost. The
/// client counts a session's lease from the open's first send, so an open
/// that took longer than the TTL (after dense membership changes most
/// servers the probe can reach are removed: each answers `NoLeader` or
/// `ShuttingDown` and costs the client about a second) hands back a
/// session already lost; asking locks with it is
/// answered `SessionLost` for ever, and the probe would report locks
/// unavailable that any live session could take (dense membership schedule,
/// seeds 161 on 3 servers and 41, 57, 112 on 5).
async fn probe_locks(w: Arc<Workload>, seeds: Vec<SocketAddr>, healed: u64, bound_us: u64) {
    let give_up = healed + bound_us;
    let left = |w: &Workload| Duration::from_micros(give_up.saturating_sub(w.time.now_us()));
    let mut client = None;
    let mut session: Option<distlock_client::Session> = None;
    for (lock, kind) in &w.locks {
        let mode = match kind {
            LockKind::Semaphore(n) => Mode::Semaphore(*n),
            _ => Mode::Exclusive,
        };
        let mut granted = false;
        while !granted && w.time.now_us() < give_up {
            if session
                .as_ref()
                .is_none_or(distlock_client::Session::is_lost)
            {
                session = open_probe_session(&w, &seeds, &mut client, give_up).await;
            }
            let Some(s) = &session else { break };
            let wait_ms = u64::try_from(left(&w).as_millis()).unwrap_or(0);
            match tokio::time::timeout(left(&w), s.lock_with(lock, mode, Wait::For(wait_ms))).await
            {
                Ok(Ok(g)) => {
                    granted = true;
                    let _ = g.release().await;
                }
                Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(_) => break,
            }
        }
        w.history.push(
            w.time.now_us(),
            Ev::Probe {
                lock: lock.clone(),
                granted,
                after_us: w.time.now_us() - healed,
            },
        );
    }
}

/// Opens a probe session that is not already lost, connecting `client`
/// first if it is not connected, retrying until `give_up`; records each
/// session it opens. `None` when none opened in time.
async fn open_probe_session(
    w: &Workload,
    seeds: &[SocketAddr],
    client: &mut Option<Client>,
    give_up: u64,
) -> Option<distlock_client::Session> {
    let left = |w: &Workload| Duration::from_micros(give_up.saturating_sub(w.time.now_us()));
    while w.time.now_us() < give_up {
        if client.is_none() {
            let options = ClientOptions {
                tls: w.tls.clone(),
                ..ClientOptions::default()
            };
            if let Ok(Ok(c)) =
                tokio::time::timeout(left(w), Client::connect(seeds.to_vec(), options)).await
            {
                *client = Some(c);
            }
        }
        if let Some(c) = client.as_ref() {
            match tokio::time::timeout(left(w), c.open_session(Duration::from_secs(10))).await {
                Ok(Ok(s)) => {
                    w.history
                        .push(w.time.now_us(), Ev::ProbeSession { session: s.id().0 });
                    if !s.is_lost() {
                        return Some(s);
                    }
                    // Born lost: the same client, which found the leader
                    // on the way, asks again and is answered in time.
                }
                // Connected anew on the next try, as the probe always did.
                _ => *client = None,
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// After the lock probes: waits, until `bound_us` after the heal, for
/// every voter of the leader's configuration to replicate what was
/// committed when first asked, and records those that did not. `servers`
/// are every server started, with whether its disk was destroyed (such a
/// voter cannot catch up, and is not asked to).
async fn probe_catch_up(w: &Workload, servers: &[(u64, bool)], healed: u64, bound_us: u64) {
    let give_up = healed + bound_us;
    let addrs: Vec<std::net::SocketAddr> = servers.iter().map(|&(id, _)| client_addr(id)).collect();
    let wrecked = |id: u64| servers.iter().any(|&(s, corrupt)| s == id && corrupt);
    let mut target = None;
    let mut lagging = Vec::new();
    loop {
        if let Some(view) = leader_view(&addrs, w.tls.as_ref()).await {
            let target = *target.get_or_insert(view.commit_index);
            lagging = view
                .members
                .iter()
                .filter(|m| matches!(m.role, MemberRole::Leader | MemberRole::Follower))
                .filter(|m| !wrecked(m.id.0))
                .filter(|m| m.match_index.is_none_or(|i| i < target))
                .map(|m| m.id.0)
                .collect();
            if lagging.is_empty() {
                break;
            }
        }
        if w.time.now_us() >= give_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.history.push(
        w.time.now_us(),
        Ev::CatchUp {
            lagging,
            after_us: w.time.now_us() - healed,
        },
    );
}

/// The cluster's status as its leader reports it (with each member's
/// match index), asked of the leader any of `addrs` names.
async fn leader_view(
    addrs: &[std::net::SocketAddr],
    tls: Option<&distlock_client::ClientTls>,
) -> Option<ClusterStatusView> {
    for &addr in addrs {
        let Ok(view) = distlock_client::admin::cluster_status_with(&addr.into(), tls, None).await
        else {
            continue;
        };
        // A server that knows no leader (or not its address) may be
        // behind: ask the next.
        let Some(leader) = view.leader else {
            continue;
        };
        let Some(Ok(at)) = view
            .members
            .iter()
            .find(|m| m.id == leader)
            .map(|m| m.client_addr.parse::<distlock_transport_tcp::HostPort>())
        else {
            continue;
        };
        if let Ok(view) = distlock_client::admin::cluster_status_with(&at, tls, None).await
            && view.leader == Some(leader)
            && view
                .members
                .iter()
                .all(|m| m.match_index.is_some() || m.id == leader)
        {
            return Some(view);
        }
    }
    None
}

/// Whether the server `change` ("remove sN") removes was the latest
/// leader the logs named before `t`.
fn removed_leader(records: &[Record], t: u64, change: &str) -> bool {
    let id: Option<u64> = change
        .strip_prefix("remove s")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    let leader = records
        .iter()
        .take_while(|r| r.t <= t)
        .filter_map(|r| match &r.ev {
            Ev::Role { node, role, term } if role == "Leader" => Some((*term, *node)),
            _ => None,
        })
        .max()
        .map(|(_, node)| node);
    id.is_some() && id == leader
}

/// Counts of the events a scenario's coverage assertions look at.
#[must_use]
pub fn coverage(records: &[Record]) -> BTreeMap<&'static str, u64> {
    let holds = checks::holds(records);
    let held_at = |t: u64| holds.iter().any(|h| h.returned <= t && t < h.released);
    let mut c: BTreeMap<&'static str, u64> = BTreeMap::new();
    let inc = |c: &mut BTreeMap<&'static str, u64>, k: &'static str| *c.entry(k).or_default() += 1;
    let mut tls = false;
    for r in records {
        match &r.ev {
            Ev::Fault { what } if what == TLS_NOTE => tls = true,
            Ev::AcquireReturn { result, .. } => match result {
                AcquireResult::Granted { .. } => inc(&mut c, "grants"),
                AcquireResult::NotGranted => inc(&mut c, "not_granted"),
                AcquireResult::Failed { .. } => inc(&mut c, "ambiguous"),
            },
            Ev::Fault { what } => {
                let first = what.split_whitespace().next().unwrap_or("");
                let key = match first {
                    "kill" => Some("server_kills"),
                    "pause" => Some("server_pauses"),
                    "partition" => Some("partitions"),
                    "isolate" => Some("leader_isolations"),
                    "elected:" => Some("election_triggers"),
                    "one-way" => Some("oneway_cuts"),
                    "crash" => Some("client_crashes"),
                    "cut" => Some("client_cuts"),
                    "packet" => Some("lossy_periods"),
                    _ => None,
                };
                if let Some(k) = key {
                    inc(&mut c, k);
                }
                if first == "kill" && held_at(r.t) {
                    inc(&mut c, "kills_while_held");
                }
                if first == "pause" && what.contains("client") && held_at(r.t) {
                    inc(&mut c, "client_pauses_while_held");
                }
                if first == "kill" && !what.contains("unsynced 0,") {
                    inc(&mut c, "unsynced_at_kill");
                }
                if what.contains("torn true") {
                    inc(&mut c, "torn_writes");
                }
                if what.contains("fsync fails") {
                    inc(&mut c, "fsync_errors");
                }
                if what.contains("disk full") {
                    inc(&mut c, "disk_full");
                }
                if what.contains("fsync takes") {
                    inc(&mut c, "slow_disks");
                }
                if what.contains("clock drift") {
                    inc(&mut c, "drift_changes");
                }
                if what.contains("joining") {
                    inc(&mut c, "joins");
                }
                if what.starts_with("rogue") && what.contains("linked to") {
                    inc(&mut c, "rogue_links");
                }
            }
            Ev::ClusterRestart => inc(&mut c, "cluster_restarts"),
            Ev::SessionOpened { ws, .. } => {
                if *ws {
                    inc(&mut c, "ws_sessions");
                }
                if tls {
                    inc(&mut c, "tls_sessions");
                }
            }
            Ev::LockDelaySetting { .. } => {
                let checked = checks::lock_delay_handoffs(records).1;
                if checked > 0 {
                    *c.entry("lock_delay_handoffs").or_default() += checked;
                }
            }
            Ev::CommittedLog {
                grants,
                release_handoffs,
                retries_answered,
                ..
            } => {
                if *retries_answered > 0 {
                    *c.entry("retries_answered").or_default() += retries_answered;
                }
                *c.entry("witness_log_grants").or_default() += grants.len() as u64;
                if *release_handoffs > 0 {
                    *c.entry("release_handoffs").or_default() += release_handoffs;
                }
            }
            Ev::TokenCheck {
                valid: Some(valid), ..
            } => inc(
                &mut c,
                if *valid {
                    "token_checks_valid"
                } else {
                    "token_checks_invalid"
                },
            ),
            Ev::Membership {
                change,
                outcome,
                island,
                ..
            } => {
                if *island {
                    inc(&mut c, "island_minority_attempts");
                }
                if change.contains("via isolated") {
                    inc(&mut c, "island_attempts");
                } else if outcome.starts_with("committed at") {
                    inc(&mut c, "membership_changes");
                    if change.starts_with("remove") && removed_leader(records, r.t, change) {
                        inc(&mut c, "leader_removals");
                    }
                }
            }
            Ev::Role { role, .. } if role == "Leader" => inc(&mut c, "leader_elections"),
            Ev::Exit { why, .. } => {
                inc(&mut c, "fail_stops");
                if why.contains("corrupt") {
                    inc(&mut c, "corruptions_detected");
                }
            }
            Ev::Write { accepted, .. } => {
                inc(
                    &mut c,
                    if *accepted {
                        "writes_accepted"
                    } else {
                        "writes_rejected"
                    },
                );
            }
            Ev::Belief { deadline: None, .. } => inc(&mut c, "lost_while_holding"),
            _ => {}
        }
    }
    c.extend(checks::linearizability_stats(records).coverage());
    c
}
