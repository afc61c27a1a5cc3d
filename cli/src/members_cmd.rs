//! `distlock members add|promote|remove`: changes the cluster's membership
//! one server at a time (Raft's single-server changes), for rolling
//! updates: start a new server with `serve --join`, `add` it as a learner,
//! `promote` it once it has caught up, then `remove` the server it replaces.
//!
//! Each command asks the servers in turn (those given, then the members
//! they name) until one relays the change to the leader and the new
//! configuration commits. It retries while the cluster has no leader, while
//! an earlier change is still committing and, for `promote`, while the
//! learner catches up, up to `--timeout`. A change that is already in
//! effect (a retry after an unclear answer, or a second run of the same
//! command) counts as done.

use crate::exit::EXIT_UNAVAILABLE;
use distlock_client::ClientTls;
use distlock_client::admin::{AskError, ask_with, cluster_status_with};
use distlock_core::ids::{LogIndex, NodeId};
use distlock_core::proto::{MemberRole, ProtoError, RequestBody, ResponseBody};
use distlock_core::raft::{MemberAddrs, MembershipChange, MembershipError, Refusal};
use distlock_transport_tcp::HostPort;
use serde_json::json;
use std::time::Duration;

/// What `distlock members` was asked.
#[derive(Clone, Debug)]
pub(crate) struct MembersRequest {
    /// The servers to try, in order.
    pub(crate) servers: Vec<HostPort>,
    /// TLS to reach them with (`None`: plain TCP).
    pub(crate) tls: Option<ClientTls>,
    /// The change.
    pub(crate) change: MembershipChange,
    /// Give up after this long.
    pub(crate) timeout: Duration,
    /// Print one JSON object instead of text.
    pub(crate) json: bool,
}

/// How one attempt ended.
#[derive(Debug)]
enum Attempt {
    /// The configuration committed (`None`: it already was in effect).
    Done(Option<LogIndex>),
    /// The cluster is on it (a change still committing, the learner
    /// catching up, an election): ask again after a while.
    Wait(String),
    /// This server cannot help (unreachable, removed, shutting down, no
    /// leader in sight): ask the next one.
    Elsewhere(String),
    /// Refused for good.
    Refused(String),
}

/// Runs `distlock members ...`; returns the process exit status.
pub(crate) async fn run(req: MembersRequest) -> i32 {
    let deadline = tokio::time::Instant::now() + req.timeout;
    let mut servers = req.servers.clone();
    let mut last_said = String::new();
    loop {
        let mut why = String::new();
        let mut next = 0;
        while let Some(addr) = servers.get(next).cloned() {
            next += 1;
            match attempt(&addr, &req).await {
                Attempt::Done(index) => {
                    report(&req, index);
                    return 0;
                }
                Attempt::Refused(reason) => {
                    if req.json {
                        println!("{}", json!({ "ok": false, "error": reason }));
                    }
                    eprintln!("distlock members: {reason}");
                    return crate::exit::EXIT_FAILED;
                }
                Attempt::Wait(reason) => {
                    why = format!("{addr}: {reason}");
                    break;
                }
                Attempt::Elsewhere(reason) => {
                    why = format!("{addr}: {reason}");
                    // Servers removed since the list was written cannot
                    // help; the members they name may.
                    discover(&addr, req.tls.as_ref(), &mut servers).await;
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!("distlock members: gave up after {:?}: {why}", req.timeout);
            return EXIT_UNAVAILABLE;
        }
        if why != last_said && !req.json {
            eprintln!("distlock members: waiting: {why}");
            last_said = why;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Appends the client addresses of the members `addr` names.
async fn discover(addr: &HostPort, tls: Option<&ClientTls>, servers: &mut Vec<HostPort>) {
    let token = crate::credentials::token();
    let Ok((welcome, _)) = ask_with(addr, tls, token, Vec::new()).await else {
        return;
    };
    for member in welcome.members {
        if let Ok(a) = member.client_addr.parse::<HostPort>() {
            if !servers.contains(&a) {
                servers.push(a);
            }
        }
    }
}

async fn attempt(addr: &HostPort, req: &MembersRequest) -> Attempt {
    let body = RequestBody::ChangeMembership(req.change.clone());
    match ask_with(
        addr,
        req.tls.as_ref(),
        crate::credentials::token(),
        vec![body],
    )
    .await
    {
        Ok((_, answers)) => match answers.first() {
            Some(ResponseBody::MembershipChanged { index }) => Attempt::Done(Some(*index)),
            _ => Attempt::Elsewhere(AskError::Unexpected.to_string()),
        },
        Err(AskError::Refused(ProtoError::Membership(e))) => {
            refused(addr, req.tls.as_ref(), &req.change, e).await
        }
        Err(AskError::Refused(e)) if e.is_retryable() => Attempt::Elsewhere(e.to_string()),
        Err(AskError::Refused(e)) => Attempt::Refused(e.to_string()),
        Err(e) => Attempt::Elsewhere(e.to_string()),
    }
}

/// Sorts a refusal into done (already in effect), wait or final.
async fn refused(
    addr: &HostPort,
    tls: Option<&ClientTls>,
    change: &MembershipChange,
    e: MembershipError,
) -> Attempt {
    match e.meaning(change) {
        Refusal::Wait => Attempt::Wait(e.to_string()),
        Refusal::Final => Attempt::Refused(e.to_string()),
        Refusal::InEffect => {
            let MembershipChange::Promote(id) = change else {
                return Attempt::Done(None);
            };
            // "Not a learner": done if it votes, refused if no member.
            let role = cluster_status_with(addr, tls, crate::credentials::token())
                .await
                .ok()
                .and_then(|v| v.members.iter().find(|m| m.id == *id).map(|m| m.role));
            match role {
                Some(MemberRole::Learner) => Attempt::Wait(e.to_string()),
                Some(_) => Attempt::Done(None),
                None => Attempt::Refused(format!(
                    "{id} is not a member: add it first with `distlock members add`"
                )),
            }
        }
    }
}

fn report(req: &MembersRequest, index: Option<LogIndex>) {
    let (verb, id) = match &req.change {
        MembershipChange::AddLearner(id, _) => ("added as a learner", id),
        MembershipChange::Promote(id) => ("promoted to voter", id),
        MembershipChange::Remove(id) => ("removed", id),
        MembershipChange::SetAddrs(id, _) => ("addresses published", id),
    };
    if req.json {
        println!(
            "{}",
            json!({
                "ok": true,
                "id": id.0,
                "change": verb,
                "index": index.map(|i| i.0),
                "already": index.is_none(),
            })
        );
        return;
    }
    match index {
        Some(i) => println!("{id} {verb} (configuration committed at log index {})", i.0),
        None => println!("{id} was already {verb}: nothing to do"),
    }
}

/// The change `distlock members add` asks for.
#[must_use]
pub(crate) fn add(
    id: NodeId,
    peer_addr: HostPort,
    client_addr: HostPort,
    ws_addr: Option<HostPort>,
) -> MembershipChange {
    MembershipChange::AddLearner(
        id,
        MemberAddrs {
            peer: peer_addr.to_string(),
            client: client_addr.to_string(),
            ws: ws_addr.map(|a| a.to_string()),
        },
    )
}
