//! The fenced resource the workload protects: the client library's own
//! [`FencedResource`] check, with every write recorded in the history in
//! the resource's serial order (SIMULATION.md §4).

use crate::clock::TrueTime;
use crate::history::{Ev, History};
use distlock_client::FencedResource;
use distlock_core::locks::FencingToken;
use std::sync::Arc;

/// A resource shared by every client node (calls to it are instantaneous).
#[derive(Clone, Debug)]
pub struct Resource {
    fenced: Arc<FencedResource>,
    history: History,
    time: TrueTime,
}

impl Resource {
    /// A resource that has accepted nothing yet.
    #[must_use]
    pub fn new(history: History, time: TrueTime) -> Self {
        Self {
            fenced: Arc::new(FencedResource::new()),
            history,
            time,
        }
    }

    /// A write by `client` (session `session`) under `lock` with `token`:
    /// whether the resource accepted it.
    pub fn write(&self, client: u64, session: u64, lock: &str, token: u64) -> bool {
        let accepted = self
            .fenced
            .check_and_record(lock, FencingToken(token))
            .is_ok();
        self.history.push(
            self.time.now_us(),
            Ev::Write {
                client,
                session,
                lock: lock.to_owned(),
                token,
                accepted,
            },
        );
        accepted
    }
}
