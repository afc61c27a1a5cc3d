//! Tests of the Raft core: a deterministic in-memory cluster harness with
//! fault injection and invariant checks after every step, randomized
//! schedules over it, and scenario tests named after the thesis sections
//! they exercise.

mod cluster;
mod durability;
mod invariants;
mod scenarios;
mod schedules;
mod transcript;
mod unit;

use super::{SnapshotError, StateMachine};
use crate::ids::LogIndex;

/// A small replicated state machine for tests: a running digest of every
/// applied (index, command), so two replicas that agree on the digest at an
/// index agree on the whole prefix.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct DigestMachine {
    digest: u64,
    applied: u64,
}

/// Bytes of filler in every snapshot, so snapshots take several chunks.
const SNAPSHOT_FILLER: usize = 700;

pub(crate) fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser: a cheap, well-spread hash.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl StateMachine for DigestMachine {
    type Command = u64;
    /// (the command, the digest after applying it)
    type Output = (u64, u64);

    fn apply(&mut self, index: LogIndex, command: &u64) -> (u64, u64) {
        self.digest = mix(self.digest ^ mix(index.0) ^ command.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        self.applied += 1;
        (*command, self.digest)
    }

    fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + SNAPSHOT_FILLER);
        out.extend_from_slice(&self.digest.to_le_bytes());
        out.extend_from_slice(&self.applied.to_le_bytes());
        out.extend((0..SNAPSHOT_FILLER).map(|i| (mix(self.digest ^ i as u64) & 0xff) as u8));
        out
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), SnapshotError> {
        let bad = SnapshotError {
            reason: "digest machine snapshot has the wrong shape",
        };
        if data.len() != 16 + SNAPSHOT_FILLER {
            return Err(bad);
        }
        let digest = u64::from_le_bytes(data[0..8].try_into().map_err(|_| bad.clone())?);
        let applied = u64::from_le_bytes(data[8..16].try_into().map_err(|_| bad.clone())?);
        let filler_ok = data[16..]
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (mix(digest ^ i as u64) & 0xff) as u8);
        if !filler_ok {
            return Err(bad);
        }
        self.digest = digest;
        self.applied = applied;
        Ok(())
    }
}
