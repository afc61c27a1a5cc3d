//! A message-level chaos network between the simulated servers: madsim's
//! TCP delivers every byte in order, so this layer, installed in each
//! runtime as its [`PeerChaos`], drops, duplicates, delays and thereby
//! reorders whole peer frames, from the run's seed.
//!
//! Modes, set by the faults and cleared when the network heals:
//! - `storm`: every frame on every link may be dropped, duplicated or held
//!   back up to a bound (SIMULATION.md, S6 and S20);
//! - `append_cut`: every `Append`/`Heartbeat` from one server to another is
//!   dropped while votes and replies still flow (S11 variant a);
//! - `all_appends_cut`: the same on every link (a scenario file's
//!   `cut_appends = "all"`): elections still succeed, but a new leader's
//!   entries stay on its own disk;
//! - `appends_cut_into`: the same on every link into the given servers (a
//!   scenario file's `cut_appends = "other"` or a label): they still vote,
//!   and lag behind whoever leads.

use distlock_core::ids::NodeId;
use distlock_core::proto::PeerFrame;
use distlock_core::raft::MessageBody;
use distlock_server::runtime::PeerChaos;
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

/// Rates of a storm, in ‰ of frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Storm {
    /// Frames lost.
    pub drop_per_mille: u64,
    /// Frames delivered twice (the copy after its own delay).
    pub dup_per_mille: u64,
    /// Frames held back, up to `max_delay`.
    pub delay_per_mille: u64,
    /// The longest hold-back.
    pub max_delay: Duration,
}

/// What the chaos did, for coverage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChaosCounts {
    /// Frames dropped by a storm.
    pub dropped: u64,
    /// Frames duplicated.
    pub duplicated: u64,
    /// Frames delayed (possibly overtaken).
    pub delayed: u64,
    /// Appends and heartbeats dropped by an append cut.
    pub appends_cut: u64,
}

#[derive(Debug)]
struct State {
    rng: ChaCha8Rng,
    storm: Option<Storm>,
    append_cut: Option<(NodeId, NodeId)>,
    all_appends_cut: bool,
    appends_cut_into: BTreeSet<NodeId>,
    counts: ChaosCounts,
}

/// The chaos layer every simulated server shares.
#[derive(Debug)]
pub struct ChaosNet {
    state: Mutex<State>,
}

impl ChaosNet {
    /// A calm network whose draws come from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            state: Mutex::new(State {
                rng: ChaCha8Rng::seed_from_u64(seed),
                storm: None,
                append_cut: None,
                all_appends_cut: false,
                appends_cut_into: BTreeSet::new(),
                counts: ChaosCounts::default(),
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut state)
    }

    /// Starts a storm on every link.
    pub fn storm(&self, storm: Storm) {
        self.with(|s| s.storm = Some(storm));
    }

    /// Drops appends and heartbeats from `from` to `to`.
    pub fn cut_appends(&self, from: u64, to: u64) {
        self.with(|s| s.append_cut = Some((NodeId(from), NodeId(to))));
    }

    /// Drops appends and heartbeats on every link.
    pub fn cut_all_appends(&self) {
        self.with(|s| s.all_appends_cut = true);
    }

    /// Drops appends and heartbeats from every server to `to`.
    pub fn cut_appends_into(&self, to: u64) {
        self.with(|s| s.appends_cut_into.insert(NodeId(to)));
    }

    /// Ends every mode.
    pub fn calm(&self) {
        self.with(|s| {
            s.storm = None;
            s.append_cut = None;
            s.all_appends_cut = false;
            s.appends_cut_into.clear();
        });
    }

    /// What it did so far.
    #[must_use]
    pub fn counts(&self) -> ChaosCounts {
        self.with(|s| s.counts)
    }
}

fn is_append(frame: &PeerFrame) -> bool {
    matches!(
        frame,
        PeerFrame::Raft(m) if matches!(m.body, MessageBody::Append { .. } | MessageBody::Heartbeat { .. })
    )
}

impl PeerChaos for ChaosNet {
    fn deliveries(&self, from: NodeId, to: NodeId, frame: &PeerFrame) -> Vec<Duration> {
        self.with(|s| {
            let cut = s.all_appends_cut
                || s.append_cut == Some((from, to))
                || s.appends_cut_into.contains(&to);
            if cut && is_append(frame) {
                s.counts.appends_cut += 1;
                return Vec::new();
            }
            let Some(storm) = s.storm else {
                return vec![Duration::ZERO];
            };
            let max_us = u64::try_from(storm.max_delay.as_micros())
                .unwrap_or(0)
                .max(1);
            let mut draw = |bound: u64| s.rng.next_u64() % bound;
            if draw(1000) < storm.drop_per_mille {
                s.counts.dropped += 1;
                return Vec::new();
            }
            let mut out = Vec::with_capacity(2);
            let delayed = draw(1000) < storm.delay_per_mille;
            out.push(if delayed {
                Duration::from_micros(draw(max_us))
            } else {
                Duration::ZERO
            });
            let duplicated = draw(1000) < storm.dup_per_mille;
            if duplicated {
                out.push(Duration::from_micros(draw(max_us)));
            }
            s.counts.delayed += u64::from(delayed);
            s.counts.duplicated += u64::from(duplicated);
            out
        })
    }
}
