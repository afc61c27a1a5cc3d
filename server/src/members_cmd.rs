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

use crate::admin::{AskError, ask};
use crate::lock_cmd::EXIT_UNAVAILABLE;
use distlock_core::ids::{LogIndex, NodeId};
use distlock_core::proto::{MemberRole, ProtoError, RequestBody, ResponseBody};
use distlock_core::raft::{MemberAddrs, MembershipChange, MembershipError};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;

/// Exit status when the cluster refused the change for good.
pub const EXIT_REFUSED: i32 = 1;

/// What `distlock members` was asked.
#[derive(Clone, Debug)]
pub struct MembersRequest {
    /// The servers to try, in order.
    pub servers: Vec<SocketAddr>,
    /// The change.
    pub change: MembershipChange,
    /// Give up after this long.
    pub timeout: Duration,
    /// Print one JSON object instead of text.
    pub json: bool,
}

/// How one attempt ended.
#[derive(Debug)]
enum Attempt {
    /// The configuration committed (`None`: it already was in effect).
    Done(Option<LogIndex>),
    /// Worth asking again (no leader, change in progress, catching up).
    Retry(String),
    /// Refused for good.
    Refused(String),
}

/// Runs `distlock members ...`; returns the process exit status.
pub async fn run(req: MembersRequest) -> i32 {
    let deadline = tokio::time::Instant::now() + req.timeout;
    let mut servers = req.servers.clone();
    let mut last_said = String::new();
    loop {
        let mut why = String::new();
        let mut next = 0;
        while let Some(&addr) = servers.get(next) {
            next += 1;
            match attempt(addr, &req).await {
                Attempt::Done(index) => {
                    report(&req, index);
                    return 0;
                }
                Attempt::Refused(reason) => {
                    if req.json {
                        println!("{}", json!({ "ok": false, "error": reason }));
                    }
                    eprintln!("distlock members: {reason}");
                    return EXIT_REFUSED;
                }
                Attempt::Retry(reason) => {
                    why = format!("{addr}: {reason}");
                    // Servers removed since the list was written answer
                    // without a leader; the members they name may not.
                    discover(addr, &mut servers).await;
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
async fn discover(addr: SocketAddr, servers: &mut Vec<SocketAddr>) {
    let Ok((welcome, _)) = ask(addr, Vec::new()).await else {
        return;
    };
    for member in welcome.members {
        if let Ok(a) = member.client_addr.parse::<SocketAddr>() {
            if !servers.contains(&a) {
                servers.push(a);
            }
        }
    }
}

async fn attempt(addr: SocketAddr, req: &MembersRequest) -> Attempt {
    let body = RequestBody::ChangeMembership(req.change.clone());
    match ask(addr, vec![body]).await {
        Ok((_, answers)) => match answers.first() {
            Some(ResponseBody::MembershipChanged { index }) => Attempt::Done(Some(*index)),
            _ => Attempt::Retry(AskError::Unexpected.to_string()),
        },
        Err(AskError::Refused(ProtoError::Membership(e))) => refused(addr, &req.change, e).await,
        Err(AskError::Refused(e)) if e.is_retryable() => Attempt::Retry(e.to_string()),
        Err(AskError::Refused(e)) => Attempt::Refused(e.to_string()),
        Err(e) => Attempt::Retry(e.to_string()),
    }
}

/// Sorts a refusal into done (already in effect), retry or final.
async fn refused(addr: SocketAddr, change: &MembershipChange, e: MembershipError) -> Attempt {
    match (change, e) {
        (_, MembershipError::ChangeInProgress | MembershipError::NotCaughtUp { .. }) => {
            Attempt::Retry(e.to_string())
        }
        (_, MembershipError::NotLeader { .. }) => Attempt::Retry(e.to_string()),
        (MembershipChange::AddLearner(..), MembershipError::AlreadyMember(_))
        | (MembershipChange::Remove(_), MembershipError::NotMember(_)) => Attempt::Done(None),
        (MembershipChange::Promote(id), MembershipError::NotLearner(_)) => {
            // Done if it already votes; refused if it is not a member.
            match role_of(addr, *id).await {
                Some(role) if role != MemberRole::Learner => Attempt::Done(None),
                Some(_) => Attempt::Retry(e.to_string()),
                None => Attempt::Refused(format!(
                    "{id} is not a member: add it first with `distlock members add`"
                )),
            }
        }
        _ => Attempt::Refused(e.to_string()),
    }
}

async fn role_of(addr: SocketAddr, id: NodeId) -> Option<MemberRole> {
    let (_, answers) = ask(addr, vec![RequestBody::ClusterStatus]).await.ok()?;
    match answers.first()? {
        ResponseBody::ClusterStatus(view) => {
            view.members.iter().find(|m| m.id == id).map(|m| m.role)
        }
        _ => None,
    }
}

fn report(req: &MembersRequest, index: Option<LogIndex>) {
    let (verb, id) = match &req.change {
        MembershipChange::AddLearner(id, _) => ("added as a learner", id),
        MembershipChange::Promote(id) => ("promoted to voter", id),
        MembershipChange::Remove(id) => ("removed", id),
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
pub fn add(
    id: NodeId,
    peer_addr: SocketAddr,
    client_addr: SocketAddr,
    ws_addr: Option<SocketAddr>,
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
