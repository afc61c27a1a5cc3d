//! One-line descriptions of messages, answers and server states, in the
//! vocabulary of the core's Raft transcripts (core/testdata/raft/*.txt):
//! `1->2 t3 Append prev=4/2 entries=[5/3] commit=4 round=2`.

use distlock_core::client::ClientEvent;
use distlock_core::locks::{ClientCommand, Command, Mode, Wait};
use distlock_core::node::Node;
use distlock_core::proto::{
    ClientFrame, LockStatusView, PeerFrame, RequestBody, ResponseBody, ServerFrame,
};
use distlock_core::raft::{Entry, EntryPayload, Membership, MessageBody, Role};
use std::fmt::Write as _;

/// A lock mode, short.
#[must_use]
pub fn mode(m: Mode) -> String {
    match m {
        Mode::Exclusive => "exclusive".into(),
        Mode::Shared => "shared".into(),
        Mode::Semaphore(n) => format!("semaphore({n})"),
    }
}

/// A lock's status as a status read answers it: `free`, or its mode, its
/// holders with their tokens, its waiters and its delay.
#[must_use]
pub fn status(view: Option<&LockStatusView>) -> String {
    let Some(v) = view else {
        return "free".into();
    };
    let holders: Vec<String> = v
        .holders
        .iter()
        .map(|h| format!("s{}/{}", h.session.0, h.token.0))
        .collect();
    let waiters: Vec<String> = v
        .waiters
        .iter()
        .map(|w| format!("s{} {}", w.session.0, mode(w.mode)))
        .collect();
    format!(
        "{} holders=[{}] waiters=[{}]{}",
        v.mode.map_or_else(|| "unheld".into(), mode),
        holders.join(", "),
        waiters.join(", "),
        if v.delay.is_some() { " delayed" } else { "" }
    )
}

fn ids(set: &std::collections::BTreeSet<distlock_core::ids::NodeId>) -> String {
    if set.is_empty() {
        return "-".into();
    }
    set.iter()
        .map(|id| id.0.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// A configuration: `voters=1,2 learners=3`.
#[must_use]
pub fn membership(m: &Membership) -> String {
    if m.learners.is_empty() {
        format!("voters={}", ids(&m.voters))
    } else {
        format!("voters={} learners={}", ids(&m.voters), ids(&m.learners))
    }
}

fn entries(list: &[Entry<Command>]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|e| match &e.payload {
            EntryPayload::Membership(m) => format!("{}/{} {}", e.index.0, e.term.0, membership(m)),
            _ => format!("{}/{}", e.index.0, e.term.0),
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// A request body, short.
#[must_use]
pub fn request(body: &RequestBody) -> String {
    match body {
        RequestBody::Log(cmd) => match cmd {
            ClientCommand::OpenSession { nonce, .. } => format!("OpenSession nonce={nonce}"),
            ClientCommand::Acquire {
                session,
                seq,
                lock,
                mode: m,
                wait,
                ..
            } => {
                let wait = match wait {
                    Wait::Try => String::new(),
                    Wait::For(ms) => format!(" wait={ms}ms"),
                    Wait::Forever => " wait".to_owned(),
                };
                format!(
                    "Acquire s{} #{} {lock} {}{wait}",
                    session.0,
                    seq.0,
                    mode(*m)
                )
            }
            ClientCommand::Release {
                session,
                seq,
                lock,
                token,
                ..
            } => format!("Release s{} #{} {lock} token={}", session.0, seq.0, token.0),
            other => format!("{other:?}"),
        },
        RequestBody::KeepAlive { session } => format!("KeepAlive s{}", session.0),
        RequestBody::CheckToken { lock, token } => format!("CheckToken {lock} token={}", token.0),
        RequestBody::LockStatus { lock } => format!("LockStatus {lock}"),
        RequestBody::ChangeMembership(change) => format!("ChangeMembership {change:?}"),
        other => format!("{other:?}"),
    }
}

/// An answer, short.
#[must_use]
pub fn response(result: &Result<ResponseBody, distlock_core::proto::ProtoError>) -> String {
    match result {
        Ok(ResponseBody::SessionOpened { session, .. }) => format!("SessionOpened s{}", session.0),
        Ok(ResponseBody::Lock(outcome)) => format!("{outcome:?}"),
        Ok(ResponseBody::TokenValid(v)) => format!("TokenValid({v})"),
        Ok(ResponseBody::LockStatus(v)) => format!("LockStatus({})", status(v.as_ref())),
        Ok(ResponseBody::KeepAliveAck { session }) => format!("KeepAliveAck s{}", session.0),
        Ok(ResponseBody::MembershipChanged { index }) => {
            format!("MembershipChanged at {}", index.0)
        }
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("Err({e:?})"),
    }
}

/// A frame a library client sends.
#[must_use]
pub fn client_frame(frame: &ClientFrame) -> String {
    match frame {
        ClientFrame::Hello { .. } => "Hello".to_owned(),
        ClientFrame::Request(r) => match &r.body {
            RequestBody::Attach { session, .. } => format!("#{} Attach s{}", r.id.0, session.0),
            body => format!("#{} {}", r.id.0, request(body)),
        },
    }
}

/// A frame a server sends to a library client.
#[must_use]
pub fn server_frame(frame: &ServerFrame) -> String {
    match frame {
        ServerFrame::Welcome {
            node_id,
            leader_hint,
            ..
        } => format!(
            "Welcome from {} leader={}",
            node_id.0,
            leader_hint.map_or("-".into(), |l| l.0.to_string())
        ),
        ServerFrame::Response(r) => format!("#{} {}", r.id.0, response(&r.result)),
        ServerFrame::Watch(w) => format!("{w:?}"),
        ServerFrame::Error(e) => format!("Error({e:?})"),
    }
}

/// What a library client's session machine tells its driver.
#[must_use]
pub fn client_event(event: &ClientEvent) -> String {
    match event {
        ClientEvent::SessionOpened { result: Ok(s), .. } => format!("session s{} open", s.0),
        ClientEvent::Completed {
            result: Ok(outcome),
            ..
        } => format!("{outcome:?}"),
        ClientEvent::Reconnect { to } => format!(
            "asks to reconnect, to {}",
            to.as_ref()
                .map_or("any server".into(), |m| m.id.0.to_string())
        ),
        ClientEvent::SessionLost { reason } => format!("session lost: {reason:?}"),
        other => format!("{other:?}"),
    }
}

/// A peer frame from `from` to `to`.
#[must_use]
pub fn frame(from: u64, to: u64, frame: &PeerFrame) -> String {
    let mut s = format!("{from}->{to}");
    match frame {
        PeerFrame::Raft(msg) => {
            let _ = write!(s, " t{} ", msg.term.0);
            match &msg.body {
                MessageBody::PreVote {
                    last_index,
                    last_term,
                } => {
                    let _ = write!(s, "PreVote last={}/{}", last_index.0, last_term.0);
                }
                MessageBody::PreVoteResponse { granted } => {
                    let _ = write!(s, "PreVoteResponse granted={granted}");
                }
                MessageBody::Vote {
                    last_index,
                    last_term,
                    transfer,
                } => {
                    let _ = write!(s, "Vote last={}/{}", last_index.0, last_term.0);
                    if *transfer {
                        s.push_str(" transfer");
                    }
                }
                MessageBody::VoteResponse { granted } => {
                    let _ = write!(s, "VoteResponse granted={granted}");
                }
                MessageBody::Append {
                    prev_index,
                    prev_term,
                    entries: list,
                    commit,
                    round,
                } => {
                    let _ = write!(
                        s,
                        "Append prev={}/{} entries={} commit={} round={round}",
                        prev_index.0,
                        prev_term.0,
                        entries(list),
                        commit.0
                    );
                }
                MessageBody::AppendResponse { result, round } => match result {
                    Ok(m) => {
                        let _ = write!(s, "AppendResponse match={} round={round}", m.0);
                    }
                    Err(c) => {
                        let _ = write!(
                            s,
                            "AppendResponse reject={} hint={} round={round}",
                            c.rejected.0, c.hint_index.0
                        );
                    }
                },
                MessageBody::Heartbeat { commit, round } => {
                    let _ = write!(s, "Heartbeat commit={} round={round}", commit.0);
                }
                MessageBody::HeartbeatResponse { round } => {
                    let _ = write!(s, "HeartbeatResponse round={round}");
                }
                MessageBody::InstallSnapshot {
                    meta, offset, done, ..
                } => {
                    let _ = write!(
                        s,
                        "InstallSnapshot {}/{} offset={offset} done={done}",
                        meta.last_index.0, meta.last_term.0
                    );
                }
                MessageBody::InstallSnapshotResponse {
                    last_index,
                    next_offset,
                    ..
                } => {
                    let _ = write!(
                        s,
                        "InstallSnapshotResponse {} next={next_offset:?}",
                        last_index.0
                    );
                }
                MessageBody::TimeoutNow => s.push_str("TimeoutNow"),
            }
        }
        PeerFrame::Forward { request: r, .. } => {
            let _ = write!(s, " Forward #{} {}", r.id.0, request(&r.body));
        }
        PeerFrame::ForwardReply { id, result } => {
            let _ = write!(s, " ForwardReply #{} {}", id.0, response(result));
        }
        other => {
            let _ = write!(s, " {other:?}");
        }
    }
    s
}

/// A server's state, as the transcripts print it.
#[must_use]
pub fn server(node: &Node) -> String {
    let raft = node.raft();
    let role = match raft.role() {
        Role::Follower => "Follower",
        Role::PreCandidate => "PreCandidate",
        Role::Candidate => "Candidate",
        Role::Leader => "Leader",
    };
    let last = raft.last_index();
    let last_term = raft.term_at(last).map_or(0, |t| t.0);
    let vote = raft
        .status()
        .voted_for
        .map_or("-".into(), |v| v.0.to_string());
    let leader = raft.leader().map_or("-".into(), |v| v.0.to_string());
    // Only a log that was compacted says where it starts.
    let base = match raft.log_base().0 {
        0 => String::new(),
        b => format!(" base={b}"),
    };
    format!(
        "{}: {role} term={} vote={vote} leader={leader}{base} last={}/{last_term} commit={} applied={} stable={} {}",
        raft.id().0,
        raft.term().0,
        last.0,
        raft.commit_index().0,
        raft.applied_index().0,
        raft.stable_index().0,
        membership(raft.membership())
    )
}
