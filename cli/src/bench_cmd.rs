//! `distlock bench`: the lock workload of the anchors harness, against a
//! running cluster. C clients, each with its own connection and session;
//! client *i* repeatedly acquires and releases key *i* mod K. It reports
//! acquire+release pairs per second and acquire latency percentiles, with
//! a progress line while it runs, and checks every grant as it goes: no
//! two clients hold a key at once, and a key's tokens strictly increase.

use distlock_client::{Client, ClientError, ClientOptions, Session, Transport};
use distlock_transport_tcp::HostPort;
use hdrhistogram::Histogram;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// What `distlock bench` was asked to do.
#[derive(Clone, Debug)]
pub(crate) struct BenchRequest {
    /// The servers to talk to.
    pub(crate) servers: Vec<HostPort>,
    /// TLS to reach them with (`None`: plain TCP).
    pub(crate) tls: Option<distlock_client::ClientTls>,
    /// Concurrent clients, each with its own connection and session.
    pub(crate) clients: usize,
    /// Distinct locks; client *i* uses key *i* mod `keys`.
    pub(crate) keys: usize,
    /// How long to measure.
    pub(crate) duration: Duration,
    /// How long to run before measuring.
    pub(crate) warmup: Duration,
    /// Print one JSON object instead of text.
    pub(crate) json: bool,
    /// TCP, or WebSocket (then `servers` are WebSocket addresses).
    pub(crate) transport: Transport,
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    /// The request makes no sense.
    #[error("{0}")]
    Invalid(&'static str),
    /// Sessions could not be opened.
    #[error("cannot open the benchmark's sessions: {0}")]
    Setup(#[from] ClientError),
}

/// The in-process safety check of one key.
#[derive(Default)]
struct KeyState {
    holder: Option<usize>,
    last_token: u64,
}

/// What the clients share.
struct Shared {
    keys: Vec<Mutex<KeyState>>,
    /// Pairs completed in the measured window.
    pairs: AtomicU64,
    errors: AtomicU64,
    violations: Mutex<Vec<String>>,
    measuring: AtomicBool,
    stop: AtomicBool,
}

impl Shared {
    fn violation(&self, what: String) {
        if let Ok(mut v) = self.violations.lock() {
            if v.len() < 20 {
                v.push(what);
            }
        }
    }

    fn granted(&self, key: usize, client: usize, token: u64) {
        let Ok(mut k) = self.keys[key].lock() else {
            return;
        };
        if let Some(other) = k.holder {
            self.violation(format!(
                "mutual exclusion: client {client} was granted key {key} held by client {other}"
            ));
        }
        if token <= k.last_token {
            self.violation(format!(
                "fencing: key {key} granted token {token} after {}",
                k.last_token
            ));
        }
        k.holder = Some(client);
        k.last_token = k.last_token.max(token);
    }

    fn releasing(&self, key: usize) {
        if let Ok(mut k) = self.keys[key].lock() {
            k.holder = None;
        }
    }
}

/// One client's latencies, in microseconds.
struct Latencies {
    acquire: Histogram<u64>,
    release: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    // Three significant digits from 1 µs to 10 min.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant histogram bounds are valid")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Opens one session, retrying for a while (servers may still be starting).
async fn open(servers: &[HostPort], options: ClientOptions) -> Result<Session, ClientError> {
    let patience = Duration::from_secs(10);
    let client = Client::connect_within(servers.to_vec(), options, patience).await?;
    client.open_session(patience).await
}

async fn client_loop(
    id: usize,
    mut session: Session,
    servers: Vec<HostPort>,
    options: ClientOptions,
    key: usize,
    name: String,
    shared: Arc<Shared>,
) -> Latencies {
    let mut lat = Latencies {
        acquire: histogram(),
        release: histogram(),
    };
    while !shared.stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let guard = match session.lock(&name).await {
            Ok(g) => g,
            Err(e) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                if session.is_lost() || matches!(e, ClientError::Closed) {
                    if let Ok(s) = open(&servers, options.clone()).await {
                        session = s;
                    }
                }
                continue;
            }
        };
        let acquired = Instant::now();
        shared.granted(key, id, guard.token().0);
        shared.releasing(key);
        let released = guard.release().await;
        let done = Instant::now();
        if released.is_err() {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if shared.measuring.load(Ordering::Relaxed) {
            let _ = lat.acquire.record(micros(acquired - started));
            let _ = lat.release.record(micros(done - acquired));
            shared.pairs.fetch_add(1, Ordering::Relaxed);
        }
    }
    let _ = session.close().await;
    lat
}

/// The outcome of a run.
#[derive(Debug)]
pub(crate) struct BenchReport {
    /// Pairs completed in the measured window.
    pub(crate) pairs: u64,
    /// Pairs per second.
    pub(crate) pairs_per_sec: f64,
    /// Acquire latency percentiles (p50, p99, p99.9), milliseconds.
    pub(crate) acquire_ms: [f64; 3],
    /// Release latency p50, milliseconds.
    pub(crate) release_p50_ms: f64,
    /// Failed operations.
    pub(crate) errors: u64,
    /// Safety violations seen by the clients (should be none).
    pub(crate) violations: Vec<String>,
}

/// Runs the benchmark and prints its report; returns the exit status (1 on
/// a safety violation).
pub(crate) async fn run(req: BenchRequest) -> Result<i32, BenchError> {
    let report = measure(&req).await?;
    let ms = |v: f64| (v * 1000.0).round() / 1000.0;
    if req.json {
        println!(
            "{}",
            json!({
                "system": "distlock",
                "transport": match req.transport {
                    Transport::Tcp => "tcp",
                    Transport::WebSocket => "websocket",
                },
                "clients": req.clients,
                "keys": req.keys,
                "duration_s": req.duration.as_secs_f64(),
                "pairs": report.pairs,
                "pairs_per_sec": report.pairs_per_sec.round(),
                "acquire_p50_ms": ms(report.acquire_ms[0]),
                "acquire_p99_ms": ms(report.acquire_ms[1]),
                "acquire_p999_ms": ms(report.acquire_ms[2]),
                "release_p50_ms": ms(report.release_p50_ms),
                "errors": report.errors,
                "violations": report.violations,
            })
        );
    } else {
        println!(
            "{} clients, {} keys, {:.0} s: {:.0} acquire+release pairs/s ({} pairs)",
            req.clients,
            req.keys,
            req.duration.as_secs_f64(),
            report.pairs_per_sec,
            report.pairs
        );
        println!(
            "acquire latency: p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms; release p50 {:.3} ms",
            report.acquire_ms[0], report.acquire_ms[1], report.acquire_ms[2], report.release_p50_ms
        );
        println!(
            "{} errors, {} safety violations",
            report.errors,
            report.violations.len()
        );
        for v in &report.violations {
            println!("  VIOLATION: {v}");
        }
    }
    Ok(i32::from(!report.violations.is_empty()))
}

/// Runs the workload and returns what it measured.
///
/// # Errors
/// On nonsensical arguments, or when the sessions cannot be opened.
pub(crate) async fn measure(req: &BenchRequest) -> Result<BenchReport, BenchError> {
    if req.clients == 0 || req.keys == 0 || req.keys > 100_000 {
        return Err(BenchError::Invalid(
            "--clients must be at least 1 and --keys between 1 and 100000",
        ));
    }
    if req.duration.is_zero() {
        return Err(BenchError::Invalid("--duration must be more than zero"));
    }
    let shared = Arc::new(Shared {
        keys: (0..req.keys).map(|_| Mutex::default()).collect(),
        pairs: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        violations: Mutex::new(Vec::new()),
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    });
    let options = ClientOptions {
        transport: req.transport,
        tls: req.tls.clone(),
        session: distlock_core::client::Config {
            auth: crate::credentials::token(),
            ..distlock_core::client::Config::default()
        },
        ..ClientOptions::default()
    };
    eprintln!("opening {} sessions...", req.clients);
    let mut sessions = Vec::with_capacity(req.clients);
    for _ in 0..req.clients {
        sessions.push(open(&req.servers, options.clone()).await?);
    }
    // A run-specific prefix keeps concurrent or earlier runs' locks apart.
    let prefix = format!(
        "bench-{}-{}",
        std::process::id(),
        micros(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
        ) % 1_000_000
    );
    let mut tasks = tokio::task::JoinSet::new();
    for (id, session) in sessions.into_iter().enumerate() {
        let key = id % req.keys;
        tasks.spawn(client_loop(
            id,
            session,
            req.servers.clone(),
            options.clone(),
            key,
            format!("{prefix}-k{key}"),
            shared.clone(),
        ));
    }
    eprintln!("warming up for {:.0} s...", req.warmup.as_secs_f64());
    tokio::time::sleep(req.warmup).await;
    shared.measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    let end = start + req.duration;
    let mut last = 0;
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    while Instant::now() < end {
        tokio::select! {
            _ = tick.tick() => {
                let now = shared.pairs.load(Ordering::Relaxed);
                eprint!(
                    "\r{:>5.1} s  {:>8} pairs/s  {:>10} pairs  {} errors   ",
                    start.elapsed().as_secs_f64(),
                    now - last,
                    now,
                    shared.errors.load(Ordering::Relaxed)
                );
                last = now;
            }
            () = tokio::time::sleep_until(end) => {}
        }
    }
    shared.measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed();
    let pairs = shared.pairs.load(Ordering::Relaxed);
    shared.stop.store(true, Ordering::Relaxed);
    eprintln!();
    let mut acquire = histogram();
    let mut release = histogram();
    while let Some(done) = tasks.join_next().await {
        if let Ok(lat) = done {
            let _ = acquire.add(&lat.acquire);
            let _ = release.add(&lat.release);
        }
    }
    let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    let violations = shared
        .violations
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    Ok(BenchReport {
        pairs,
        pairs_per_sec: pairs as f64 / elapsed.as_secs_f64(),
        acquire_ms: [q(&acquire, 0.5), q(&acquire, 0.99), q(&acquire, 0.999)],
        release_p50_ms: q(&release, 0.5),
        errors: shared.errors.load(Ordering::Relaxed),
        violations,
    })
}
