//! How transcripts print Raft's messages, writes and state: one line each,
//! the same for Raft alone and for Raft inside a node.

use crate::raft::{Entry, Message, MessageBody, Persist, Raft, StateMachine};

/// A message, without its ends: its term and body. `entry` prints the
/// entries an `Append` carries.
pub(crate) fn message<C>(m: &Message<C>, entry: impl Fn(&Entry<C>) -> String) -> String {
    format!("t{} {}", m.term.0, body(&m.body, entry))
}

/// An entry as `index/term`, what it carries left out.
pub(crate) fn entry_position<C>(e: &Entry<C>) -> String {
    format!("{}/{}", e.index.0, e.term.0)
}

fn body<C>(b: &MessageBody<C>, entry: impl Fn(&Entry<C>) -> String) -> String {
    match b {
        MessageBody::PreVote {
            last_index,
            last_term,
        } => format!("PreVote last={}/{}", last_index.0, last_term.0),
        MessageBody::PreVoteResponse { granted } => format!("PreVoteResponse granted={granted}"),
        MessageBody::Vote {
            last_index,
            last_term,
            transfer,
        } => format!(
            "Vote last={}/{}{}",
            last_index.0,
            last_term.0,
            if *transfer { " transfer" } else { "" }
        ),
        MessageBody::VoteResponse { granted } => format!("VoteResponse granted={granted}"),
        MessageBody::Append {
            prev_index,
            prev_term,
            entries,
            commit,
            round,
        } => {
            let es: Vec<String> = entries.iter().map(entry).collect();
            format!(
                "Append prev={}/{} entries=[{}] commit={} round={round}",
                prev_index.0,
                prev_term.0,
                es.join(" "),
                commit.0
            )
        }
        MessageBody::AppendResponse { result, round } => match result {
            Ok(m) => format!("AppendResponse ok match={} round={round}", m.0),
            Err(c) => format!(
                "AppendResponse reject at={} conflict_term={:?} hint={} round={round}",
                c.rejected.0,
                c.conflict_term.map(|t| t.0),
                c.hint_index.0
            ),
        },
        MessageBody::Heartbeat { commit, round } => {
            format!("Heartbeat commit={} round={round}", commit.0)
        }
        MessageBody::HeartbeatResponse { round } => format!("HeartbeatResponse round={round}"),
        MessageBody::InstallSnapshot {
            meta,
            offset,
            data,
            done,
            round,
        } => format!(
            "InstallSnapshot at={}/{} offset={offset} len={} done={done} round={round}",
            meta.last_index.0,
            meta.last_term.0,
            data.len()
        ),
        MessageBody::InstallSnapshotResponse {
            last_index,
            next_offset,
            round,
        } => format!(
            "InstallSnapshotResponse at={} next={next_offset:?} round={round}",
            last_index.0
        ),
        MessageBody::TimeoutNow => "TimeoutNow".to_owned(),
    }
}

/// A write: its sequence number and what it makes durable.
pub(crate) fn persist<C>(p: &Persist<C>) -> String {
    let mut parts = vec![format!("persist #{}", p.seq.0)];
    if let Some(hs) = p.hard_state {
        parts.push(format!(
            "term={} vote={}",
            hs.term.0,
            hs.voted_for.map_or("-".to_owned(), |v| v.0.to_string())
        ));
    }
    if let Some(t) = p.truncate_from {
        parts.push(format!("truncate-from={}", t.0));
    }
    if let Some(s) = &p.snapshot {
        parts.push(format!(
            "snapshot={}/{}",
            s.meta.last_index.0, s.meta.last_term.0
        ));
    }
    if let (Some(a), Some(b)) = (p.entries.first(), p.entries.last()) {
        parts.push(format!(
            "entries={}..{} (last term {})",
            a.index.0, b.index.0, b.term.0
        ));
    }
    parts.join(" ")
}

/// A server's Raft state: role, term, vote, leader, log marks and
/// configuration.
pub(crate) fn state<S: StateMachine>(r: &Raft<S>) -> String {
    let s = r.status();
    let voters: Vec<String> = s
        .membership
        .voters
        .iter()
        .map(|v| v.0.to_string())
        .collect();
    let learners: Vec<String> = s
        .membership
        .learners
        .iter()
        .map(|v| v.0.to_string())
        .collect();
    format!(
        "{:?} term={} vote={} leader={} last={}/{} commit={} applied={} stable={} voters={}{}",
        s.role,
        s.term.0,
        s.voted_for.map_or("-".to_owned(), |v| v.0.to_string()),
        s.leader.map_or("-".to_owned(), |v| v.0.to_string()),
        s.last_index.0,
        s.last_term.0,
        s.commit_index.0,
        s.applied_index.0,
        s.stable_index.0,
        voters.join(","),
        if learners.is_empty() {
            String::new()
        } else {
            format!(" learners={}", learners.join(","))
        }
    )
}
