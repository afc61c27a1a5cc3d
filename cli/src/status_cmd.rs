//! `distlock status [NAME] [--json]`: the cluster as its leader sees it
//! (leader, term, commit index, members with their match index), or one
//! lock's holders, tokens and waiters (ARCHITECTURE.md §12).
//!
//! It asks the first server that answers; when that server is not the
//! leader it asks the leader again, because only the leader knows how far
//! each member's log has been replicated.

use crate::exit::{EXIT_NOT_READY, EXIT_UNAVAILABLE};
use crate::listing_cmd::owner_text;
use distlock_client::ClientTls;
use distlock_client::admin::{AskError, ask_with};
use distlock_core::ids::NodeId;
use distlock_core::locks::{LockKind, Mode};
use distlock_core::locks::{SessionId, SessionMeta};
use distlock_core::proto::{
    ClusterStatusView, HolderView, LockEntryView, LockStatusView, MemberRole, RequestBody,
    ResponseBody, WaiterView,
};
use distlock_transport_tcp::HostPort;
use distlock_transport_tcp::WelcomeInfo;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// What `distlock status` was asked.
#[derive(Clone, Debug)]
pub(crate) struct StatusRequest {
    /// The servers to try, in order.
    pub(crate) servers: Vec<HostPort>,
    /// TLS to reach them with (`None`: plain TCP).
    pub(crate) tls: Option<distlock_client::ClientTls>,
    /// A lock to report on, or `None` for the cluster.
    pub(crate) lock: Option<String>,
    /// Print one JSON object instead of text.
    pub(crate) json: bool,
    /// Only say whether the server is ready, by the exit status.
    pub(crate) check: bool,
}

/// `status --check`: the same answer as the server's `/readyz`, as an exit
/// status: 0 when the first server that answers knows a leader and is a
/// member, [`EXIT_NOT_READY`] when it answers but is not ready,
/// [`EXIT_UNAVAILABLE`] when none answers. (A server applies what it
/// learns committed before it answers anything else, so its applied index
/// is never behind the commit index it reports.)
async fn check(req: &StatusRequest) -> i32 {
    let mut failures = Vec::new();
    for addr in &req.servers {
        let token = crate::credentials::token();
        let body = vec![RequestBody::ClusterStatus];
        let (welcome, answers) = match ask_with(addr, req.tls.as_ref(), token, body).await {
            Ok(found) => found,
            Err(e) => {
                failures.push(format!("{addr}: {e}"));
                continue;
            }
        };
        let Some(ResponseBody::ClusterStatus(view)) = answers.into_iter().next() else {
            failures.push(format!("{addr}: {}", AskError::Unexpected));
            continue;
        };
        let me = welcome.node_id;
        let member = view.members.iter().any(|m| m.id == me);
        let verdict = match view.leader {
            _ if !member => Err("removed from the cluster".to_owned()),
            None => Err("no leader known".to_owned()),
            Some(leader) => Ok(leader),
        };
        let code = if verdict.is_ok() { 0 } else { EXIT_NOT_READY };
        if req.json {
            println!(
                "{}",
                json!({
                    "ready": verdict.is_ok(),
                    "server": addr.to_string(),
                    "node": me.0,
                    "leader": view.leader.map(|l| l.0),
                    "term": view.term.0,
                    "reason": verdict.as_ref().err(),
                })
            );
        } else {
            match &verdict {
                Ok(leader) => println!(
                    "ready: node {} at {addr} follows leader {} in term {}",
                    me.0, leader.0, view.term.0
                ),
                Err(why) => println!("not ready: node {} at {addr}: {why}", me.0),
            }
        }
        return code;
    }
    eprintln!(
        "distlock status: no server answered ({})",
        failures.join("; ")
    );
    EXIT_UNAVAILABLE
}

/// The cluster's status from the first server that answers, refined by the
/// leader's own view when another server answered first.
async fn cluster_status(
    servers: &[HostPort],
    tls: Option<&ClientTls>,
) -> Result<(HostPort, ClusterStatusView), String> {
    let mut failures = Vec::new();
    for addr in servers {
        let token = crate::credentials::token();
        match ask_with(addr, tls, token, vec![RequestBody::ClusterStatus]).await {
            Ok((welcome, answers)) => {
                let Some(ResponseBody::ClusterStatus(view)) = answers.into_iter().next() else {
                    failures.push(format!("{addr}: {}", AskError::Unexpected));
                    continue;
                };
                if let Some(better) = from_leader(&welcome, &view, tls).await {
                    return Ok(better);
                }
                return Ok((addr.clone(), view));
            }
            Err(e) => failures.push(format!("{addr}: {e}")),
        }
    }
    Err(failures.join("; "))
}

/// The leader's view, if `view` names a leader other than the server that
/// gave it and the leader answers.
async fn from_leader(
    welcome: &WelcomeInfo,
    view: &ClusterStatusView,
    tls: Option<&ClientTls>,
) -> Option<(HostPort, ClusterStatusView)> {
    let leader = view.leader.filter(|&l| l != welcome.node_id)?;
    let addr: HostPort = view
        .members
        .iter()
        .find(|m| m.id == leader)?
        .client_addr
        .parse()
        .ok()?;
    let token = crate::credentials::token();
    match ask_with(&addr, tls, token, vec![RequestBody::ClusterStatus]).await {
        Ok((_, answers)) => match answers.into_iter().next() {
            Some(ResponseBody::ClusterStatus(v)) => Some((addr, v)),
            _ => None,
        },
        Err(_) => None,
    }
}

/// How long `status NAME` keeps asking while the cluster has no leader to
/// answer a lock read: an election takes well under a second, and a person
/// asking in the middle of one wants the answer, not the election.
const LEADER_PATIENCE: Duration = Duration::from_secs(5);

/// Runs `distlock status`; returns the process exit status.
pub(crate) async fn run(req: StatusRequest) -> i32 {
    if req.check {
        return check(&req).await;
    }
    let Some(name) = req.lock else {
        let (addr, cluster) = match cluster_status(&req.servers, req.tls.as_ref()).await {
            Ok(found) => found,
            Err(why) => {
                eprintln!("distlock status: no server answered ({why})");
                return EXIT_UNAVAILABLE;
            }
        };
        if req.json {
            println!("{}", cluster_json(&cluster));
        } else {
            print!("{}", cluster_text(addr, &cluster));
        }
        return 0;
    };
    let (cluster, entry) = match read_lock(&req.servers, req.tls.as_ref(), &name).await {
        Ok(found) => found,
        Err(why) => {
            eprintln!("distlock status: {why}");
            return EXIT_UNAVAILABLE;
        }
    };
    let lock = entry.as_ref().map(status_view);
    let owners = entry.as_ref().map(owners_of).unwrap_or_default();
    if req.json {
        let mut out = cluster_json(&cluster);
        if let Value::Object(fields) = &mut out {
            if let Value::Object(lock_fields) = lock_json(&name, lock.as_ref()) {
                fields.extend(lock_fields);
            }
            add_owners(fields, &owners);
        }
        println!("{out}");
    } else {
        print!("{}", lock_text(&name, lock.as_ref(), &owners));
    }
    0
}

/// The lock's status as `LockStatus` gives it.
fn status_view(entry: &LockEntryView) -> LockStatusView {
    LockStatusView {
        mode: entry.mode,
        kind: entry.kind,
        holders: entry
            .holders
            .iter()
            .map(|h| HolderView {
                session: h.session,
                token: h.token,
            })
            .collect(),
        waiters: entry
            .waiters
            .iter()
            .map(|w| WaiterView {
                session: w.session,
                mode: w.mode,
                timeout_ms: w.timeout_ms,
            })
            .collect(),
        delay: entry.delay,
    }
}

/// Who opened each session holding or waiting for the lock.
fn owners_of(entry: &LockEntryView) -> BTreeMap<SessionId, SessionMeta> {
    let holders = entry.holders.iter().map(|h| (h.session, h.owner.as_ref()));
    let waiters = entry.waiters.iter().map(|w| (w.session, w.owner.as_ref()));
    holders
        .chain(waiters)
        .filter_map(|(id, owner)| Some((id, owner?.clone())))
        .collect()
}

/// Adds `"owner"` (the protocol's `SessionMeta` object, or null) to every
/// holder and waiter of the lock's JSON.
fn add_owners(
    fields: &mut serde_json::Map<String, Value>,
    owners: &BTreeMap<SessionId, SessionMeta>,
) {
    for list in ["holders", "waiters"] {
        let Some(Value::Array(items)) = fields.get_mut(list) else {
            continue;
        };
        for item in items {
            let id = item["session"].as_u64().map(SessionId);
            let owner = id.and_then(|id| owners.get(&id));
            if let Value::Object(item) = item {
                item.insert("owner".to_owned(), json!(owner));
            }
        }
    }
}

/// The cluster's status (the answering server's local view) and `name`'s
/// holders and waiters, read through the leader (a linearizable read).
/// While no leader can answer, it asks again
/// for up to [`LEADER_PATIENCE`].
async fn read_lock(
    servers: &[HostPort],
    tls: Option<&ClientTls>,
    name: &str,
) -> Result<(ClusterStatusView, Option<LockEntryView>), String> {
    let deadline = tokio::time::Instant::now() + LEADER_PATIENCE;
    loop {
        let (addr, cluster) = cluster_status(servers, tls)
            .await
            .map_err(|why| format!("no server answered ({why})"))?;
        // The first lock whose name starts with `name` is `name` itself,
        // if it is held, waited for or delayed.
        let body = RequestBody::ListLocks {
            prefix: name.to_owned(),
            after: None,
            limit: 1,
        };
        // The cluster's status again after the read, which may have waited
        // out an election: the report names the leader that answered it.
        let token = crate::credentials::token();
        let why = match ask_with(&addr, tls, token, vec![body, RequestBody::ClusterStatus]).await {
            Ok((welcome, answers)) => {
                let mut answers = answers.into_iter();
                let (Some(ResponseBody::Locks(page)), Some(ResponseBody::ClusterStatus(now))) =
                    (answers.next(), answers.next())
                else {
                    return Err(format!("{addr} gave an unexpected answer"));
                };
                let view = page.locks.into_iter().find(|l| l.name == name);
                if now.leader == cluster.leader {
                    return Ok((cluster, view));
                }
                let now = match from_leader(&welcome, &now, tls).await {
                    Some((_, better)) => better,
                    None => now,
                };
                return Ok((now, view));
            }
            Err(AskError::Refused(e)) if e.is_retryable() => e.to_string(),
            Err(e) => return Err(format!("cannot read lock {name:?} from {addr}: {e}")),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "cannot read lock {name:?} from {addr}: {why} (still after {LEADER_PATIENCE:?})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn role_name(role: MemberRole) -> &'static str {
    match role {
        MemberRole::Leader => "leader",
        MemberRole::Follower => "follower",
        MemberRole::Candidate => "candidate",
        MemberRole::Learner => "learner",
    }
}

fn mode_json(mode: Mode) -> Value {
    match mode {
        Mode::Exclusive => json!("exclusive"),
        Mode::Shared => json!("shared"),
        Mode::Semaphore(n) => json!({ "semaphore": n }),
    }
}

pub(crate) fn mode_text(mode: Mode) -> String {
    match mode {
        Mode::Exclusive => "exclusive".to_owned(),
        Mode::Shared => "shared".to_owned(),
        Mode::Semaphore(n) => format!("semaphore of {n}"),
    }
}

/// The cluster as one JSON object (field names are a public contract,
/// ARCHITECTURE.md §12).
#[must_use]
pub(crate) fn cluster_json(view: &ClusterStatusView) -> Value {
    json!({
        "leader": view.leader.map(|NodeId(id)| id),
        "term": view.term.0,
        "commit_index": view.commit_index.0,
        "members": view.members.iter().map(|m| json!({
            "id": m.id.0,
            "client_addr": m.client_addr,
            "ws_addr": m.ws_addr,
            "role": role_name(m.role),
            "match_index": m.match_index.map(|i| i.0),
        })).collect::<Vec<_>>(),
    })
}

/// A lock's fields, to merge into the cluster's object.
#[must_use]
pub(crate) fn lock_json(name: &str, view: Option<&LockStatusView>) -> Value {
    let Some(v) = view else {
        return json!({ "lock": name, "mode": null, "kind": null, "holders": [], "waiters": [], "lock_delay_ms": null });
    };
    json!({
        "lock": name,
        "mode": v.mode.map(mode_json),
        "kind": match v.kind {
            LockKind::ReadWrite => json!("read_write"),
            LockKind::Semaphore(n) => json!({ "semaphore": n }),
        },
        "holders": v.holders.iter().map(|h| json!({ "session": h.session.0, "token": h.token.0 })).collect::<Vec<_>>(),
        "waiters": v.waiters.iter().map(|w| json!({
            "session": w.session.0,
            "mode": mode_json(w.mode),
            "timeout_ms": w.timeout_ms,
        })).collect::<Vec<_>>(),
        "lock_delay_ms": v.delay.map(|d| d.delay_ms),
    })
}

fn cluster_text(addr: HostPort, v: &ClusterStatusView) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let leader = v
        .leader
        .map_or_else(|| "none known".to_owned(), |l| format!("server {}", l.0));
    let _ = writeln!(
        out,
        "leader: {leader}   term: {}   commit index: {}   (asked {addr})",
        v.term.0, v.commit_index.0
    );
    let _ = writeln!(
        out,
        "{:>4}  {:<10} {:<22} {:>11}",
        "id", "role", "client address", "match index"
    );
    for m in &v.members {
        let matched = m
            .match_index
            .map_or_else(|| "-".to_owned(), |i| i.0.to_string());
        let _ = writeln!(
            out,
            "{:>4}  {:<10} {:<22} {:>11}",
            m.id.0,
            role_name(m.role),
            m.client_addr,
            matched
        );
    }
    out
}

fn lock_text(
    name: &str,
    view: Option<&LockStatusView>,
    owners: &BTreeMap<SessionId, SessionMeta>,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let Some(v) = view else {
        let _ = writeln!(out, "lock {name:?} is free; nobody waits for it");
        return out;
    };
    match v.mode {
        Some(mode) => {
            let _ = writeln!(out, "lock {name:?} is held {}", mode_text(mode));
        }
        None => {
            let _ = writeln!(out, "lock {name:?} is not held");
        }
    }
    for h in &v.holders {
        let _ = writeln!(
            out,
            "  holder: {} with token {}",
            owner_text(h.session, owners.get(&h.session)),
            h.token.0
        );
    }
    if let Some(d) = v.delay {
        let _ = writeln!(
            out,
            "  in lock-delay of {} ms after its holder was lost: nobody is granted it until then",
            d.delay_ms
        );
    }
    if v.waiters.is_empty() {
        let _ = writeln!(out, "  nobody waits");
    }
    for (place, w) in (1..).zip(&v.waiters) {
        let wait = w
            .timeout_ms
            .map_or_else(|| "for ever".to_owned(), |ms| format!("up to {ms} ms"));
        let _ = writeln!(
            out,
            "  waiter {place}: {} for {} ({wait})",
            owner_text(w.session, owners.get(&w.session)),
            mode_text(w.mode)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use distlock_core::ids::{LogIndex, Term};
    use distlock_core::locks::{FencingToken, SessionId};
    use distlock_core::proto::{HolderView, MemberStatus, WaiterView};

    fn cluster() -> ClusterStatusView {
        ClusterStatusView {
            leader: Some(NodeId(2)),
            term: Term(7),
            commit_index: LogIndex(42),
            members: vec![MemberStatus {
                id: NodeId(2),
                client_addr: "127.0.0.1:7002".to_owned(),
                ws_addr: None,
                role: MemberRole::Leader,
                match_index: Some(LogIndex(42)),
            }],
        }
    }

    #[test]
    fn cluster_json_has_the_documented_fields() {
        let v = cluster_json(&cluster());
        assert_eq!(v["leader"], 2);
        assert_eq!(v["term"], 7);
        assert_eq!(v["commit_index"], 42);
        assert_eq!(v["members"][0]["role"], "leader");
        assert_eq!(v["members"][0]["match_index"], 42);
        assert_eq!(v["members"][0]["client_addr"], "127.0.0.1:7002");
    }

    #[test]
    fn lock_json_lists_holders_and_waiters_in_order() {
        let view = LockStatusView {
            mode: Some(Mode::Exclusive),
            kind: LockKind::ReadWrite,
            holders: vec![HolderView {
                session: SessionId(5),
                token: FencingToken(17),
            }],
            waiters: vec![
                WaiterView {
                    session: SessionId(6),
                    mode: Mode::Shared,
                    timeout_ms: None,
                },
                WaiterView {
                    session: SessionId(9),
                    mode: Mode::Exclusive,
                    timeout_ms: Some(500),
                },
            ],
            delay: None,
        };
        let v = lock_json("db", Some(&view));
        assert_eq!(v["mode"], "exclusive");
        assert_eq!(v["holders"][0]["session"], 5);
        assert_eq!(v["holders"][0]["token"], 17);
        assert_eq!(v["waiters"][0]["session"], 6);
        assert_eq!(v["waiters"][1]["timeout_ms"], 500);
        let text = lock_text("db", Some(&view), &BTreeMap::new());
        assert!(text.contains("session 5 with token 17"), "{text}");
        assert!(text.contains("waiter 2: session 9"), "{text}");
    }

    #[test]
    fn a_free_lock_reports_no_holders() {
        let v = lock_json("db", None);
        assert_eq!(v["mode"], Value::Null);
        assert_eq!(v["holders"], json!([]));
        assert!(lock_text("db", None, &BTreeMap::new()).contains("free"));
    }
}
