//! Which peer messages a server may act on at all.
//!
//! A message that no correct server could send is dropped before it
//! touches any state: above all a term or index near 2^64. Adopting one
//! would persist a term that can never be exceeded (no later election
//! could win, restarts included), or make index arithmetic overflow. A
//! correct cluster gains one term per election, and no more than one
//! index per entry: neither comes near [`Term::LIMIT`] or
//! [`LogIndex::LIMIT`] in any lifetime. Entries must also be contiguous
//! after `prev_index` and no newer than the message's term, as a correct
//! leader's always are.

use super::types::{Message, MessageBody};
use crate::ids::{LogIndex, Term};

impl Term {
    /// No correct server reaches this term (2^62): messages at or above it
    /// are refused.
    pub const LIMIT: Self = Self(1 << 62);
}

impl LogIndex {
    /// No correct log reaches this index (2^62).
    pub const LIMIT: Self = Self(1 << 62);
}

/// Why a peer message is refused outright.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Implausible {
    /// A term at or beyond [`Term::LIMIT`].
    Term,
    /// An index at or beyond [`LogIndex::LIMIT`].
    Index,
    /// Entries out of order, or newer than the message's term.
    Entries,
}

/// Checks what a correct sender guarantees about `msg`.
///
/// # Errors
/// The first thing no correct server would send.
pub(super) fn check<C>(msg: &Message<C>) -> Result<(), Implausible> {
    let term_ok = |t: Term| t < Term::LIMIT;
    let index_ok = |i: LogIndex| i < LogIndex::LIMIT;
    if !term_ok(msg.term) {
        return Err(Implausible::Term);
    }
    let ok = match &msg.body {
        MessageBody::PreVote {
            last_index,
            last_term,
        }
        | MessageBody::Vote {
            last_index,
            last_term,
            ..
        } => index_ok(*last_index) && *last_term <= msg.term,
        MessageBody::Append {
            prev_index,
            prev_term,
            entries,
            commit,
            ..
        } => {
            if !index_ok(*prev_index) || !index_ok(*commit) || *prev_term > msg.term {
                return Err(Implausible::Index);
            }
            let in_order = entries.iter().zip(1..).all(|(e, k)| {
                e.index.0 == prev_index.0 + k && e.term <= msg.term && e.term >= *prev_term
            });
            let sorted = entries.windows(2).all(|w| w[0].term <= w[1].term);
            if !(in_order && sorted) || entries.len() as u64 >= LogIndex::LIMIT.0 {
                return Err(Implausible::Entries);
            }
            true
        }
        MessageBody::AppendResponse { result, .. } => match result {
            Ok(index) => index_ok(*index),
            Err(c) => {
                index_ok(c.rejected)
                    && index_ok(c.hint_index)
                    && c.conflict_term.is_none_or(term_ok)
            }
        },
        MessageBody::Heartbeat { commit, .. } => index_ok(*commit),
        MessageBody::InstallSnapshot { meta, offset, .. } => {
            index_ok(meta.last_index) && meta.last_term <= msg.term && *offset < 1 << 62
        }
        MessageBody::InstallSnapshotResponse { last_index, .. } => index_ok(*last_index),
        MessageBody::PreVoteResponse { .. }
        | MessageBody::VoteResponse { .. }
        | MessageBody::HeartbeatResponse { .. }
        | MessageBody::TimeoutNow => true,
    };
    if ok { Ok(()) } else { Err(Implausible::Index) }
}
