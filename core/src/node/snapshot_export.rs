//! Backups: consistent snapshots of the lock state handed to an operator
//! (`distlock snapshot save`) in chunks.
//!
//! A `TakeSnapshot` is a linearizable read like `LockStatus`: the leader
//! registers a ReadIndex and, once it is confirmed and applied, encodes
//! the state as applied then (at an index at or after the read's), with
//! the log position and the configuration in force there
//! ([`crate::raft::Raft::export_snapshot`]). The encoding may exceed a
//! frame, so the answer carries its first chunk and the leader keeps the
//! bytes, keyed by their log index, for the `SnapshotChunk` requests that
//! fetch the rest. Kept snapshots are dropped [`KEEP_FOR`] after they were
//! last read, beyond [`MAX_KEPT`] of them (oldest first), and when this
//! server stops leading; a request for one that is gone is answered
//! `SnapshotUnavailable`, and the operator's tool takes a new snapshot.

use super::{Node, Origin};
use crate::ids::{LogIndex, Term};
use crate::proto::{ProtoError, RequestBody, ResponseBody, SNAPSHOT_CHUNK_MAX};
use crate::time::{Duration, Instant};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How long a kept snapshot outlives its last read: long enough for a
/// slow transfer to fetch its next chunk, short enough that the memory of
/// an abandoned one comes back soon.
pub(super) const KEEP_FOR: Duration = Duration::from_millis(60_000);

/// How many snapshots a leader keeps at once (a few operators saving at
/// the same time); a new one beyond drops the least recently read.
pub(super) const MAX_KEPT: usize = 2;

/// One encoded snapshot waiting to be fetched.
#[derive(Debug)]
#[cfg_attr(feature = "testkit", derive(Clone))]
struct Kept {
    term: Term,
    bytes: Arc<[u8]>,
    /// When it was last taken or read.
    used: Instant,
}

/// The snapshots a leader keeps for transfer, by log index.
#[derive(Debug, Default)]
#[cfg_attr(feature = "testkit", derive(Clone))]
pub(super) struct Exports {
    kept: BTreeMap<LogIndex, Kept>,
}

impl Exports {
    /// Forgets every kept snapshot (leadership was lost).
    pub(super) fn clear(&mut self) {
        self.kept.clear();
    }

    /// Forgets the snapshots nobody read for [`KEEP_FOR`].
    pub(super) fn expire(&mut self, now: Instant) {
        self.kept.retain(|_, k| now < k.used + KEEP_FOR);
    }

    /// Keeps `bytes` as the snapshot at `index`; returns its first chunk.
    fn keep(
        &mut self,
        index: LogIndex,
        term: Term,
        bytes: Arc<[u8]>,
        max_len: u32,
        now: Instant,
    ) -> ResponseBody {
        self.expire(now);
        let kept = Kept {
            term,
            bytes,
            used: now,
        };
        let first = kept.slice(index, 0, max_len);
        self.kept.insert(index, kept);
        while self.kept.len() > MAX_KEPT {
            let oldest = self
                .kept
                .iter()
                .filter(|(i, _)| **i != index)
                .min_by_key(|(_, k)| k.used)
                .map(|(i, _)| *i);
            match oldest {
                Some(i) => self.kept.remove(&i),
                None => break,
            };
        }
        debug_assert!(self.kept.len() <= MAX_KEPT);
        first
    }

    /// Bytes `offset..` of the snapshot at `index`, as [`Kept::slice`]
    /// bounds them.
    ///
    /// # Errors
    /// [`ProtoError::SnapshotUnavailable`] when it is not kept (any more).
    pub(super) fn chunk(
        &mut self,
        index: LogIndex,
        offset: u64,
        max_len: u32,
        now: Instant,
    ) -> Result<ResponseBody, ProtoError> {
        self.expire(now);
        let Some(kept) = self.kept.get_mut(&index) else {
            return Err(ProtoError::SnapshotUnavailable { index });
        };
        kept.used = now;
        Ok(kept.slice(index, offset, max_len))
    }

    /// How many snapshots are kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.kept.len()
    }
}

impl Kept {
    /// Bytes `offset..` of the snapshot, at most `max_len` of them, and at
    /// most [`SNAPSHOT_CHUNK_MAX`] but at least one (a zero-length chunk
    /// before the end would let a client loop for ever).
    fn slice(&self, index: LogIndex, offset: u64, max_len: u32) -> ResponseBody {
        let total = self.bytes.len();
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(total);
        let want = usize::try_from(max_len.clamp(1, SNAPSHOT_CHUNK_MAX)).unwrap_or(usize::MAX);
        let end = start.saturating_add(want).min(total);
        ResponseBody::SnapshotChunk {
            index,
            term: self.term,
            offset: start as u64,
            total_len: total as u64,
            data: self.bytes[start..end].to_vec(),
        }
    }
}

impl Node {
    /// `TakeSnapshot`, once its ReadIndex is confirmed and applied: the
    /// state as applied now, kept for its other chunks.
    pub(super) fn take_snapshot(&mut self, max_len: u32) -> ResponseBody {
        let snapshot = self.raft.export_snapshot();
        let (index, term) = (snapshot.meta.last_index, snapshot.meta.last_term);
        debug_assert!(
            self.raft.state_machine().last_applied() <= index,
            "the lock state was applied beyond the index it is exported at"
        );
        // postcard fails only on a full buffer or a sequence of unknown
        // length; a Vec grows, and every sequence here knows its length.
        let bytes = postcard::to_stdvec(&snapshot).expect("encoding into a Vec cannot fail");
        self.exports
            .keep(index, term, Arc::from(bytes), max_len, self.now)
    }

    /// `SnapshotChunk`: served by the leader that keeps the snapshot;
    /// another server forwards it to the leader, which answers
    /// `SnapshotUnavailable` if it is not the one that took it.
    pub(super) fn serve_snapshot_chunk(
        &mut self,
        origin: Origin,
        index: LogIndex,
        offset: u64,
        max_len: u32,
    ) {
        if !self.raft.is_leader() {
            let body = RequestBody::SnapshotChunk {
                index,
                offset,
                max_len,
            };
            self.forward(origin, body);
            return;
        }
        let result = self.exports.chunk(index, offset, max_len, self.now);
        self.answer(origin, result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NodeId;
    use crate::locks::{ClientCommand, LockState, Mode, Outcome, Seq, SessionId, Wait};
    use crate::node::{ConnId, NodeAction, NodeConfig};
    use crate::proto::{
        ClientFrame, MemberInfo, PROTOCOL_VERSION, Request, RequestId, ServerFrame,
    };
    use crate::raft::{Config, Membership, Snapshot, StateMachine, Stored};

    /// One server that is a cluster of its own, with an instant disk.
    struct Solo {
        node: Node,
        now: Instant,
        next_id: u64,
        replies: Vec<ServerFrame>,
    }

    const CONN: ConnId = ConnId(1);

    impl Solo {
        fn new() -> Self {
            Self::start(
                Stored::fresh(Membership::with_voters([NodeId(1)])),
                Instant::ZERO,
            )
        }

        /// Server 1 started at `at` from `stored`, once it leads.
        fn start(stored: Stored<crate::locks::Command>, at: Instant) -> Self {
            let id = NodeId(1);
            let cfg = NodeConfig {
                raft: Config::new(id),
                members: vec![MemberInfo {
                    id,
                    client_addr: "127.0.0.1:7001".to_owned(),
                    ws_addr: None,
                }],
                advertise: None,
            };
            let node = Node::new(cfg, LockState::default(), stored, 7, at).expect("starts");
            let mut solo = Self {
                node,
                now: at,
                next_id: 0,
                replies: Vec::new(),
            };
            for _ in 0..100 {
                solo.advance(Duration::from_millis(50));
                if solo.node.raft().has_committed_own_term() {
                    break;
                }
            }
            assert!(solo.node.raft().has_committed_own_term(), "leads");
            solo.node.handle_client(
                CONN,
                ClientFrame::Hello {
                    protocol_version: PROTOCOL_VERSION,
                    cluster_id: None,
                    auth: None,
                },
                solo.now,
            );
            solo.drain();
            solo
        }

        fn drain(&mut self) {
            loop {
                let mut persisted = None;
                while let Some(action) = self.node.poll_action() {
                    match action {
                        NodeAction::Persist(p) => persisted = Some(p.seq),
                        NodeAction::Send { .. } => {}
                        NodeAction::Reply { frame, .. } => self.replies.push(frame),
                    }
                }
                match persisted {
                    Some(seq) => self.node.persisted(seq, self.now),
                    None => return,
                }
            }
        }

        fn advance(&mut self, by: Duration) {
            self.now = self.now + by;
            self.node.handle_timeout(self.now);
            self.drain();
        }

        fn ask(&mut self, body: RequestBody) -> Result<ResponseBody, ProtoError> {
            self.next_id += 1;
            let id = RequestId(self.next_id);
            self.node
                .handle_client(CONN, ClientFrame::Request(Request { id, body }), self.now);
            self.drain();
            // A read waits for a heartbeat round, which a single voter
            // confirms on its own at the next tick.
            for _ in 0..20 {
                let answer = self.replies.iter().find_map(|f| match f {
                    ServerFrame::Response(r) if r.id == id => Some(r.result.clone()),
                    _ => None,
                });
                if let Some(answer) = answer {
                    return answer;
                }
                self.advance(Duration::from_millis(10));
            }
            panic!("no answer to request {id}");
        }

        fn open(&mut self, nonce: u128) -> SessionId {
            let body = RequestBody::Log(ClientCommand::OpenSession {
                nonce,
                ttl_ms: 10_000,
            });
            match self.ask(body) {
                Ok(ResponseBody::SessionOpened { session, .. }) => session,
                other => panic!("open: {other:?}"),
            }
        }

        fn acquire(&mut self, session: SessionId, lock: &str) -> u64 {
            let body = RequestBody::Log(ClientCommand::Acquire {
                session,
                seq: Seq(1),
                ack: Seq(1),
                lock: lock.to_owned(),
                mode: Mode::Exclusive,
                wait: Wait::Try,
                lock_delay_ms: 0,
            });
            match self.ask(body) {
                Ok(ResponseBody::Lock(Outcome::Granted { token })) => token.0,
                other => panic!("acquire: {other:?}"),
            }
        }
    }

    /// Fetches a whole snapshot `max_len` bytes at a time.
    fn fetch(solo: &mut Solo, max_len: u32) -> (LogIndex, Term, Vec<u8>, usize) {
        let first = solo.ask(RequestBody::TakeSnapshot { max_len });
        let Ok(ResponseBody::SnapshotChunk {
            index,
            term,
            offset: 0,
            total_len,
            mut data,
        }) = first
        else {
            panic!("take: {first:?}");
        };
        let mut chunks = 1;
        while (data.len() as u64) < total_len {
            let body = RequestBody::SnapshotChunk {
                index,
                offset: data.len() as u64,
                max_len,
            };
            match solo.ask(body) {
                Ok(ResponseBody::SnapshotChunk {
                    index: i,
                    term: t,
                    offset,
                    total_len: len,
                    data: more,
                }) => {
                    assert_eq!(
                        (i, t, offset, len),
                        (index, term, data.len() as u64, total_len)
                    );
                    assert!(!more.is_empty() && more.len() <= max_len as usize);
                    data.extend_from_slice(&more);
                }
                other => panic!("chunk: {other:?}"),
            }
            chunks += 1;
        }
        (index, term, data, chunks)
    }

    #[test]
    fn a_snapshot_travels_in_chunks_and_decodes_to_the_leaders_state() {
        let mut solo = Solo::new();
        let mut tokens = Vec::new();
        for n in 0..40u32 {
            let s = solo.open(u128::from(n) + 1);
            tokens.push(solo.acquire(s, &format!("lock-{n:03}")));
        }
        let (index, term, bytes, chunks) = fetch(&mut solo, 97);
        assert!(chunks > 3, "a small max_len splits it: {chunks} chunks");
        let snapshot: Snapshot = postcard::from_bytes(&bytes).expect("a raft snapshot");
        assert_eq!(snapshot.meta.last_index, index);
        assert_eq!(snapshot.meta.last_term, term);
        assert_eq!(index, solo.node.raft().applied_index());
        assert_eq!(
            snapshot
                .meta
                .membership
                .voters
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            [NodeId(1)]
        );
        let mut state = LockState::default();
        state.restore(&snapshot.data).expect("a lock state");
        assert_eq!(&state, solo.node.raft().state_machine());
        assert_eq!(state.session_count(), 40);
        assert_eq!(state.lock_count(), 40);
        assert_eq!(state.max_token().map(|t| t.0), tokens.iter().copied().max());
        assert!(state.max_token().is_some_and(|t| t.0 <= index.0));
    }

    /// What `distlock snapshot restore` does, on one server: started long
    /// after the snapshot from it alone, it gives its session a full TTL
    /// from its election (lease rules 4 and 6, docs/ARCHITECTURE.md §4), then expires it, and
    /// grants tokens above the snapshot's index.
    #[test]
    fn a_restored_server_gives_sessions_a_full_ttl_and_higher_tokens() {
        let mut solo = Solo::new();
        let s = solo.open(1);
        let token = solo.acquire(s, "a");
        let (index, term, bytes, _) = fetch(&mut solo, SNAPSHOT_CHUNK_MAX);
        let snapshot: Snapshot = postcard::from_bytes(&bytes).expect("a raft snapshot");
        let stored = Stored {
            hard_state: crate::raft::HardState {
                term,
                voted_for: None,
            },
            snapshot: Some(snapshot),
            entries: Vec::new(),
            initial_membership: Membership::default(),
        };
        // An hour later: the session's lease is long over by the old clock.
        let mut restored = Solo::start(stored, solo.now + Duration::from_millis(3_600_000));
        let elected = restored.now;
        assert_eq!(restored.node.lease_timer_count(), 1);
        let lock = || RequestBody::LockStatus {
            lock: "a".to_owned(),
        };
        restored.advance(Duration::from_millis(9_500));
        match restored.ask(lock()) {
            Ok(ResponseBody::LockStatus(Some(view))) => {
                assert_eq!(view.holders[0].session, s);
                assert_eq!(view.holders[0].token.0, token);
            }
            other => panic!("a is still held: {other:?}"),
        }
        while restored.now < elected + Duration::from_millis(10_500) {
            restored.advance(Duration::from_millis(100));
        }
        assert_eq!(restored.ask(lock()), Ok(ResponseBody::LockStatus(None)));
        let s2 = restored.open(2);
        let next = restored.acquire(s2, "a");
        assert!(
            next > index.0,
            "token {next} above the snapshot's index {index}"
        );
        assert!(s2.0 > index.0);
    }

    #[test]
    fn chunks_are_bounded_and_kept_snapshots_expire() {
        let mut solo = Solo::new();
        let s = solo.open(1);
        solo.acquire(s, "a");
        // Asking for more than the limit gets the limit; asking for none
        // gets one byte, so a client always moves on.
        let Ok(ResponseBody::SnapshotChunk {
            index,
            data,
            total_len,
            ..
        }) = solo.ask(RequestBody::TakeSnapshot { max_len: 0 })
        else {
            panic!("take");
        };
        assert_eq!(data.len(), 1);
        assert!(total_len > 1);
        let past_end = solo.ask(RequestBody::SnapshotChunk {
            index,
            offset: u64::MAX,
            max_len: u32::MAX,
        });
        assert!(
            matches!(&past_end, Ok(ResponseBody::SnapshotChunk { data, offset, .. }) if data.is_empty() && *offset == total_len),
            "{past_end:?}"
        );
        assert_eq!(
            solo.ask(RequestBody::SnapshotChunk {
                index: LogIndex(index.0 + 1),
                offset: 0,
                max_len: 10,
            }),
            Err(ProtoError::SnapshotUnavailable {
                index: LogIndex(index.0 + 1)
            })
        );
        // Unread for KEEP_FOR, it is dropped.
        solo.advance(KEEP_FOR + Duration::from_millis(1));
        assert_eq!(solo.node.exports.len(), 0);
        assert_eq!(
            solo.ask(RequestBody::SnapshotChunk {
                index,
                offset: 1,
                max_len: 10,
            }),
            Err(ProtoError::SnapshotUnavailable { index })
        );
    }

    #[test]
    fn a_leader_keeps_a_few_snapshots_at_most() {
        let mut solo = Solo::new();
        let mut taken = Vec::new();
        for n in 0..(MAX_KEPT as u128 + 2) {
            solo.open(n + 1);
            let Ok(ResponseBody::SnapshotChunk { index, .. }) =
                solo.ask(RequestBody::TakeSnapshot { max_len: 8 })
            else {
                panic!("take");
            };
            taken.push(index);
        }
        assert_eq!(solo.node.exports.len(), MAX_KEPT);
        // The newest are kept, the oldest dropped.
        let newest = taken[taken.len() - 1];
        assert!(matches!(
            solo.ask(RequestBody::SnapshotChunk {
                index: newest,
                offset: 8,
                max_len: 8
            }),
            Ok(ResponseBody::SnapshotChunk { .. })
        ));
        assert_eq!(
            solo.ask(RequestBody::SnapshotChunk {
                index: taken[0],
                offset: 8,
                max_len: 8
            }),
            Err(ProtoError::SnapshotUnavailable { index: taken[0] })
        );
    }
}
