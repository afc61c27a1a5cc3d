//! Metrics read when scraped rather than updated as things happen: the
//! core's duration histograms (copied in by the node task), the data
//! directory's sizes, and counters kept as plain atomics elsewhere.

use distlock_core::node::{DURATION_BOUNDS_US, DurationBuckets};
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const BUCKETS: usize = DURATION_BOUNDS_US.len() + 1;

/// One core histogram mirrored into atomics.
#[derive(Debug, Default)]
pub(crate) struct AtomicBuckets {
    counts: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl AtomicBuckets {
    /// Copies the core's counts in (only the node task writes).
    pub(crate) fn set(&self, b: &DurationBuckets) {
        for (to, from) in self.counts.iter().zip(b.counts) {
            to.store(from, Ordering::Relaxed);
        }
        self.sum_us.store(b.sum_us, Ordering::Relaxed);
    }

    fn to_proto(&self) -> proto::Histogram {
        let mut h = proto::Histogram::default();
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(DURATION_BOUNDS_US.len());
        for (bound, count) in DURATION_BOUNDS_US.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let mut b = proto::Bucket::default();
            b.set_upper_bound(*bound as f64 / 1e6);
            b.set_cumulative_count(cumulative);
            buckets.push(b);
        }
        cumulative += self.counts[BUCKETS - 1].load(Ordering::Relaxed);
        h.set_bucket(buckets);
        h.set_sample_count(cumulative);
        h.set_sample_sum(self.sum_us.load(Ordering::Relaxed) as f64 / 1e6);
        h
    }
}

/// The lock service's duration histograms, measured by the core.
#[derive(Debug, Default)]
pub(crate) struct CoreHistograms {
    pub(crate) wait: AtomicBuckets,
    pub(crate) handoff: AtomicBuckets,
}

pub(crate) struct CoreHistogramCollector {
    h: Arc<CoreHistograms>,
    descs: Vec<Desc>,
}

const WAIT: (&str, &str) = (
    "distlock_lock_wait_duration_seconds",
    "How long queued acquires waited in the queue (granted, timed out or cancelled)",
);
const HANDOFF: (&str, &str) = (
    "distlock_lock_handoff_duration_seconds",
    "From the end of a grant on a lock with waiters to the next grant (lock-delays included)",
);

impl CoreHistogramCollector {
    pub(crate) fn new(h: Arc<CoreHistograms>) -> Self {
        let descs = [WAIT, HANDOFF]
            .iter()
            .map(|(n, help)| desc(n, help))
            .collect();
        Self { h, descs }
    }
}

fn desc(name: &str, help: &str) -> Desc {
    Desc::new(name.into(), help.into(), vec![], Default::default()).expect("a valid metric name")
}

fn family(name: &str, help: &str, kind: MetricType, metric: proto::Metric) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.into());
    f.set_help(help.into());
    f.set_field_type(kind);
    f.set_metric(vec![metric]);
    f
}

fn gauge_family(name: &str, help: &str, value: f64) -> MetricFamily {
    let mut g = proto::Gauge::default();
    g.set_value(value);
    family(name, help, MetricType::GAUGE, proto::Metric::from_gauge(g))
}

impl Collector for CoreHistogramCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        [(WAIT, &self.h.wait), (HANDOFF, &self.h.handoff)]
            .into_iter()
            .map(|((name, help), b)| {
                let mut m = proto::Metric::default();
                m.set_histogram(b.to_proto());
                family(name, help, MetricType::HISTOGRAM, m)
            })
            .collect()
    }
}

/// A counter kept as an atomic by code that does not know of metrics.
pub(crate) struct CounterFromAtomic {
    name: &'static str,
    help: &'static str,
    value: Arc<AtomicU64>,
    desc: Desc,
}

impl CounterFromAtomic {
    pub(crate) fn new(name: &'static str, help: &'static str, value: Arc<AtomicU64>) -> Self {
        Self {
            name,
            help,
            value,
            desc: desc(name, help),
        }
    }
}

impl Collector for CounterFromAtomic {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut c = proto::Counter::default();
        c.set_value(self.value.load(Ordering::Relaxed) as f64);
        let mut m = proto::Metric::default();
        m.set_counter(c);
        vec![family(self.name, self.help, MetricType::COUNTER, m)]
    }
}

const SEGMENTS: (&str, &str) = (
    "distlock_storage_wal_segments",
    "Log segment files in the data directory",
);
const WAL_BYTES: (&str, &str) = (
    "distlock_storage_wal_bytes",
    "Bytes of the log segment files",
);
const SNAPSHOT_BYTES: (&str, &str) = (
    "distlock_storage_snapshot_bytes",
    "Bytes of the snapshot files in the data directory",
);
const DIR_BYTES: (&str, &str) = (
    "distlock_storage_data_dir_bytes",
    "Bytes of every file in the data directory",
);

/// The data directory's files, listed when scraped (a directory listing
/// per scrape, nothing on the request path).
pub(crate) struct DataDirSizes {
    dir: PathBuf,
    descs: Vec<Desc>,
}

impl DataDirSizes {
    pub(crate) fn new(dir: PathBuf) -> Self {
        let descs = [SEGMENTS, WAL_BYTES, SNAPSHOT_BYTES, DIR_BYTES]
            .iter()
            .map(|(n, h)| desc(n, h))
            .collect();
        Self { dir, descs }
    }
}

impl Collector for DataDirSizes {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let (mut segments, mut wal, mut snapshots, mut all) = (0u64, 0u64, 0u64, 0u64);
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let Ok(meta) = e.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                let len = meta.len();
                all += len;
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with("wal-") && name.ends_with(".log") {
                    segments += 1;
                    wal += len;
                } else if name.starts_with("snapshot-") {
                    snapshots += len;
                }
            }
        }
        [
            (SEGMENTS, segments),
            (WAL_BYTES, wal),
            (SNAPSHOT_BYTES, snapshots),
            (DIR_BYTES, all),
        ]
        .into_iter()
        .map(|((n, h), v)| gauge_family(n, h, v as f64))
        .collect()
    }
}
