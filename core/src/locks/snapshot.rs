//! The snapshot format of the lock state: a magic number, a format version,
//! then the postcard encoding of the state's primary data.
//!
//! Tables derived from the primary data (what each session holds and waits
//! for, the nonce index) are not written; restore rebuilds them and then
//! checks every invariant, so a snapshot that decodes but is inconsistent is
//! refused like garbage. The bytes are deterministic: every table is a
//! `BTreeMap` or a queue, written in order.

use super::LockState;
use super::invariants::Invariant;
use super::lock::{Holder, Lock, Waiter};
use super::session::{Claim, Claims, Ended, Session, Sessions};
use super::{Limits, SessionId};
use crate::ids::LogIndex;
use crate::raft::SnapshotError;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Marks lock-state snapshots.
const MAGIC: [u8; 4] = *b"DLks";
/// The format written. Version 2 added each session's metadata and each
/// holder's and waiter's election value; restore also reads version 1,
/// which has neither.
const VERSION: u16 = 2;
/// The format before session metadata.
const VERSION_1: u16 = 1;

/// The state as written, borrowed from the live state.
#[derive(Serialize)]
struct BodyRef<'a> {
    limits: &'a Limits,
    last_applied: LogIndex,
    sessions: &'a BTreeMap<SessionId, Session>,
    ended: EndedRef<'a>,
    locks: &'a BTreeMap<Arc<str>, Lock>,
}

/// The state as read; must mirror [`BodyRef`] field for field. Maps are
/// read as lists (the same bytes in postcard) so that restore can insist on
/// sorted keys and build each map in one pass; names are borrowed from the
/// input and allocated once.
#[derive(Deserialize)]
struct Body<'a, S, L> {
    limits: Limits,
    last_applied: LogIndex,
    sessions: Vec<(SessionId, S)>,
    /// In the order the sessions ended.
    ended: Vec<(SessionId, Ended)>,
    #[serde(borrow)]
    locks: Vec<(&'a str, L)>,
}

/// A lock as version 1 wrote it: holders and waiters without values.
#[derive(Deserialize)]
struct LockV1 {
    kind: super::LockKind,
    holders: Vec<(SessionId, (super::FencingToken, super::Mode, u64))>,
    /// Session, seq, mode, lock-delay, timeout.
    queue: Vec<(SessionId, super::Seq, super::Mode, u64, Option<u64>)>,
    delay: Option<super::LockDelay>,
}

impl From<LockV1> for Lock {
    fn from(old: LockV1) -> Self {
        let mut lock = Self::new(old.kind);
        lock.holders = old
            .holders
            .into_iter()
            .map(|(id, (token, mode, delay))| (id, Holder::from_v1(token, mode, delay)))
            .collect();
        lock.queue = old
            .queue
            .into_iter()
            .map(|(session, seq, mode, lock_delay_ms, timeout_ms)| Waiter {
                session,
                seq,
                mode,
                lock_delay_ms,
                timeout_ms,
                value: None,
            })
            .collect();
        lock.delay = old.delay;
        lock
    }
}

/// A session as version 1 wrote it: [`Session`] without metadata.
#[derive(Deserialize)]
struct SessionV1 {
    ttl_ms: u64,
    nonce: u128,
    dedupe: super::dedupe::Dedupe,
}

impl From<SessionV1> for Session {
    fn from(old: SessionV1) -> Self {
        let mut session = Self::new(old.nonce, old.ttl_ms, None);
        session.dedupe = old.dedupe;
        session
    }
}

/// Writes ended sessions in the order they ended (the order they are
/// forgotten in), each with what is remembered of it.
struct EndedRef<'a>(&'a Sessions);

impl Serialize for EndedRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.ended_order.len()))?;
        for id in &self.0.ended_order {
            // The order and the map hold the same ids (an invariant).
            if let Some(ended) = self.0.ended.get(id) {
                seq.serialize_element(&(id, ended))?;
            }
        }
        seq.end()
    }
}

const fn invalid(reason: &'static str) -> SnapshotError {
    SnapshotError { reason }
}

pub(super) fn encode(state: &LockState) -> Vec<u8> {
    let body = BodyRef {
        limits: &state.limits,
        last_applied: state.last_applied,
        sessions: &state.sessions.live,
        ended: EndedRef(&state.sessions),
        locks: &state.locks,
    };
    let mut out = Vec::with_capacity(64 + 64 * (state.sessions.live.len() + state.locks.len()));
    out.extend_from_slice(&MAGIC);
    // Postcard fails only on a full buffer or a sequence of unknown length;
    // a Vec grows, and every sequence here knows its length.
    let out = postcard::to_extend(&VERSION, out).expect("encoding into a Vec cannot fail");
    postcard::to_extend(&body, out).expect("encoding into a Vec cannot fail")
}

pub(super) fn decode(data: &[u8]) -> Result<LockState, SnapshotError> {
    let rest = data
        .strip_prefix(&MAGIC)
        .ok_or(invalid("not a lock state snapshot"))?;
    let (version, rest) =
        postcard::take_from_bytes::<u16>(rest).map_err(|_| invalid("truncated header"))?;
    let body = match version {
        VERSION => read_body::<Session, Lock>(rest)?,
        VERSION_1 => {
            let old = read_body::<SessionV1, LockV1>(rest)?;
            Body {
                limits: old.limits,
                last_applied: old.last_applied,
                sessions: old
                    .sessions
                    .into_iter()
                    .map(|(id, s)| (id, Session::from(s)))
                    .collect(),
                ended: old.ended,
                locks: old
                    .locks
                    .into_iter()
                    .map(|(name, lock)| (name, Lock::from(lock)))
                    .collect(),
            }
        }
        _ => return Err(invalid("unknown lock state snapshot version")),
    };
    rebuild(body).map_err(|Invariant(reason)| invalid(reason))
}

fn read_body<'a, S: Deserialize<'a>, L: Deserialize<'a>>(
    rest: &'a [u8],
) -> Result<Body<'a, S, L>, SnapshotError> {
    let (body, rest) = postcard::take_from_bytes::<Body<'a, S, L>>(rest)
        .map_err(|_| invalid("malformed lock state"))?;
    if !rest.is_empty() {
        return Err(invalid("trailing bytes after the lock state"));
    }
    Ok(body)
}

/// Builds the state from its primary data, rebuilding the derived tables,
/// and checks it. Sessions and locks agree by construction (each claim of a
/// session is derived from the lock that has it), so only the local
/// invariants of each are left to check.
fn rebuild(body: Body<'_, Session, Lock>) -> Result<LockState, Invariant> {
    let Body {
        limits,
        last_applied,
        mut sessions,
        ended: ended_list,
        locks,
    } = body;
    let ensure = |ok: bool, what| if ok { Ok(()) } else { Err(Invariant(what)) };
    ensure(
        sessions.windows(2).all(|w| w[0].0 < w[1].0),
        "sessions out of order",
    )?;
    ensure(
        locks.windows(2).all(|w| w[0].0 < w[1].0),
        "locks out of order",
    )?;
    ensure(
        sessions.len() <= limits.max_sessions as usize,
        "more live sessions than allowed",
    )?;
    ensure(
        ended_list.len() <= limits.max_ended_sessions as usize,
        "more ended sessions than allowed",
    )?;

    // Every claim, gathered from the locks in name order, then grouped by
    // session (a stable sort keeps each session's claims in name order).
    let claim_count = locks
        .iter()
        .map(|(_, lock)| lock.holders.len() + lock.queue.len())
        .sum();
    let mut claims: Vec<(SessionId, Arc<str>, Claim)> = Vec::with_capacity(claim_count);
    let mut named = Vec::with_capacity(locks.len());
    for (name, lock) in locks {
        lock.check(name, &limits, last_applied)?;
        let name: Arc<str> = Arc::from(name);
        claims.extend(
            lock.holders
                .iter()
                .map(|(id, holder)| (*id, Arc::clone(&name), Claim::Held(holder.token))),
        );
        claims.extend(
            lock.queue
                .iter()
                .map(|w| (w.session, Arc::clone(&name), Claim::Waiting(w.seq))),
        );
        named.push((name, lock));
    }
    claims.sort_by_key(|(id, _, _)| *id);
    let mut claims = claims.into_iter().peekable();
    for (id, session) in &mut sessions {
        let mut own = Vec::new();
        while let Some((_, name, claim)) = claims.next_if(|(of, _, _)| of == id) {
            if own.is_empty() {
                own.reserve_exact(1); // most sessions claim one lock: no spare room
            }
            own.push((name, claim));
        }
        // The same name twice is one `Arc`: waiting twice, or holding and waiting.
        ensure(
            own.windows(2).all(|w| !Arc::ptr_eq(&w[0].0, &w[1].0)),
            "a session claims a lock twice",
        )?;
        session.claims = Claims::from_sorted(own);
        session.check(*id, &limits, last_applied)?;
    }
    ensure(
        claims.next().is_none(),
        "a holder or waiter whose session is not live",
    )?;

    let mut nonces: Vec<(u128, SessionId)> = sessions
        .iter()
        .map(|(id, session)| (session.nonce, *id))
        .collect();
    nonces.extend(ended_list.iter().map(|(id, end)| (end.nonce, *id)));
    nonces.sort_unstable();
    ensure(
        nonces.windows(2).all(|w| w[0].0 != w[1].0),
        "two sessions share a nonce",
    )?;
    // Sorted input: `collect` builds each map in linear time.
    let live: BTreeMap<SessionId, Session> = sessions.into_iter().collect();
    let ended_order: VecDeque<SessionId> = ended_list.iter().map(|(id, _)| *id).collect();
    let ended: BTreeMap<SessionId, Ended> = ended_list.into_iter().collect();
    ensure(ended.len() == ended_order.len(), "a session ended twice")?;
    ensure(
        ended.keys().all(|id| !live.contains_key(id)),
        "a session both live and ended",
    )?;
    let sessions = Sessions {
        live,
        ended,
        ended_order,
        nonces: nonces.into_iter().collect(),
    };
    Ok(LockState {
        limits,
        last_applied,
        sessions,
        locks: named.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locks::{ClientCommand, Command, SessionMeta};

    /// The state as version 1 wrote it: sessions without metadata.
    fn encode_v1(state: &LockState) -> Vec<u8> {
        #[derive(Serialize)]
        struct BodyV1<'a> {
            limits: &'a Limits,
            last_applied: LogIndex,
            sessions: Vec<(SessionId, (u64, u128, &'a super::super::dedupe::Dedupe))>,
            ended: EndedRef<'a>,
            locks: Vec<(&'a str, LockV1Ref)>,
        }
        #[derive(Serialize)]
        struct LockV1Ref {
            kind: crate::locks::LockKind,
            holders: Vec<(
                SessionId,
                (crate::locks::FencingToken, crate::locks::Mode, u64),
            )>,
            queue: Vec<(
                SessionId,
                crate::locks::Seq,
                crate::locks::Mode,
                u64,
                Option<u64>,
            )>,
            delay: Option<crate::locks::LockDelay>,
        }
        let body = BodyV1 {
            limits: &state.limits,
            last_applied: state.last_applied,
            sessions: state
                .sessions
                .live
                .iter()
                .map(|(id, s)| (*id, (s.ttl_ms, s.nonce, &s.dedupe)))
                .collect(),
            ended: EndedRef(&state.sessions),
            locks: state
                .locks
                .iter()
                .map(|(name, lock)| {
                    let v1 = LockV1Ref {
                        kind: lock.kind,
                        holders: lock
                            .holders
                            .iter()
                            .map(|(id, h)| (*id, (h.token, h.mode, h.lock_delay_ms)))
                            .collect(),
                        queue: lock
                            .queue
                            .iter()
                            .map(|w| (w.session, w.seq, w.mode, w.lock_delay_ms, w.timeout_ms))
                            .collect(),
                        delay: lock.delay,
                    };
                    (&**name, v1)
                })
                .collect(),
        };
        let mut out = MAGIC.to_vec();
        out = postcard::to_extend(&VERSION_1, out).expect("encodes");
        postcard::to_extend(&body, out).expect("encodes")
    }

    #[test]
    fn version_1_snapshots_still_restore_without_metadata() {
        let mut state = LockState::default();
        let mut out = crate::locks::Applied::default();
        let open = |nonce| {
            Command::Client(ClientCommand::OpenSession {
                nonce,
                ttl_ms: 10_000,
            })
        };
        state.apply_into(LogIndex(1), &open(1), &mut out);
        state.apply_into(LogIndex(2), &open(2), &mut out);
        state.apply_into(
            LogIndex(3),
            &Command::ExpireSession {
                session: SessionId(2),
            },
            &mut out,
        );
        let acquire = |session, wait| {
            Command::Client(ClientCommand::Acquire {
                session: SessionId(session),
                seq: crate::locks::Seq(1),
                ack: crate::locks::Seq(1),
                lock: "a".to_owned(),
                mode: crate::locks::Mode::Exclusive,
                wait,
                lock_delay_ms: 5,
            })
        };
        state.apply_into(LogIndex(4), &acquire(1, crate::locks::Wait::Try), &mut out);
        state.apply_into(LogIndex(5), &open(5), &mut out);
        let waits = acquire(5, crate::locks::Wait::For(9_000));
        state.apply_into(LogIndex(6), &waits, &mut out);
        assert_eq!(state.lock_status("a").map(|s| s.waiters.len()), Some(1));
        let old = encode_v1(&state);
        assert_eq!(decode(&old), Ok(state.clone()));
        // Written again, it is version 2, with the same state.
        assert_eq!(decode(&encode(&state)), Ok(state.clone()));

        let meta = SessionMeta {
            name: "n".to_owned(),
            ..SessionMeta::default()
        };
        let command = Command::Client(ClientCommand::OpenSessionWithMeta {
            nonce: 3,
            ttl_ms: 10_000,
            meta: meta.clone(),
        });
        state.apply_into(LogIndex(7), &command, &mut out);
        let restored = decode(&encode(&state)).expect("restores");
        assert_eq!(restored.session_meta(SessionId(7)), Some(&meta));
        assert_eq!(restored, state);
    }
}
