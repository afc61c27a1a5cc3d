//! `distlock locks [PREFIX]`, `distlock sessions` and `distlock revoke
//! SESSION`: who holds and waits for what, who is connected, and ending a
//! stuck session as its expiry would.
//!
//! The listings are linearizable reads, page after page (a lock that
//! exists throughout is listed once; one taken or freed meanwhile may or
//! may not be). `--json` prints the objects of the protocol's `Locks` and
//! `Sessions` answers (docs/PROTOCOL.md), every page's entries in one
//! list.

use crate::exit::{EXIT_FAILED, EXIT_UNAVAILABLE};
use crate::status_cmd::mode_text;
use distlock_client::ClientTls;
use distlock_client::admin::{AskError, ask_with};
use distlock_core::locks::{SessionId, SessionMeta};
use distlock_core::proto::{
    LockEntryView, ProtoError, RequestBody, ResponseBody, SessionEntryView,
};
use distlock_transport_tcp::HostPort;
use serde_json::json;
use std::time::Duration;

/// How long to keep asking while no server can answer (an election under
/// way, or servers still starting).
const PATIENCE: Duration = Duration::from_secs(5);

/// The servers to ask, and the TLS to reach them with.
#[derive(Clone, Copy)]
pub(crate) struct Cluster<'a> {
    servers: &'a [HostPort],
    tls: Option<&'a ClientTls>,
}

impl<'a> Cluster<'a> {
    pub(crate) const fn new(servers: &'a [HostPort], tls: Option<&'a ClientTls>) -> Self {
        Self { servers, tls }
    }
}

/// Asks the first server that answers, again while the answer says to
/// retry, for up to [`PATIENCE`].
///
/// # Errors
/// The last failure, when no answer came in time, or a final refusal.
pub(crate) async fn ask_cluster(
    cluster: Cluster<'_>,
    body: &RequestBody,
) -> Result<ResponseBody, AskError> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut last = AskError::Timeout(PATIENCE);
        for addr in cluster.servers {
            let token = crate::credentials::token();
            match ask_with(addr, cluster.tls, token, vec![body.clone()]).await {
                Ok((_, answers)) => return answers.into_iter().next().ok_or(AskError::Unexpected),
                Err(AskError::Refused(e)) if !e.is_retryable() => {
                    return Err(AskError::Refused(e));
                }
                Err(e) => last = e,
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every lock under `prefix`, page after page.
async fn all_locks(cluster: Cluster<'_>, prefix: &str) -> Result<Vec<LockEntryView>, AskError> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let body = RequestBody::ListLocks {
            prefix: prefix.to_owned(),
            after: after.take(),
            limit: 0,
        };
        let ResponseBody::Locks(page) = ask_cluster(cluster, &body).await? else {
            return Err(AskError::Unexpected);
        };
        all.extend(page.locks);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(all),
        }
    }
}

/// Every live session, page after page.
async fn all_sessions(cluster: Cluster<'_>) -> Result<Vec<SessionEntryView>, AskError> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let body = RequestBody::ListSessions { after, limit: 0 };
        let ResponseBody::Sessions(page) = ask_cluster(cluster, &body).await? else {
            return Err(AskError::Unexpected);
        };
        all.extend(page.sessions);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(all),
        }
    }
}

/// Runs `distlock locks`; returns the exit status.
pub(crate) async fn locks(cluster: Cluster<'_>, prefix: &str, as_json: bool) -> i32 {
    let locks = match all_locks(cluster, prefix).await {
        Ok(locks) => locks,
        Err(e) => return failed("locks", &e),
    };
    if as_json {
        println!("{}", json!({ "locks": locks }));
        return 0;
    }
    if locks.is_empty() {
        println!("no lock is held, waited for or delayed{}", under(prefix));
        return 0;
    }
    for lock in &locks {
        print!("{}", lock_text(lock));
    }
    0
}

fn under(prefix: &str) -> String {
    if prefix.is_empty() {
        String::new()
    } else {
        format!(" under {prefix:?}")
    }
}

/// Who opened a session, in a few words.
pub(crate) fn owner_text(session: SessionId, owner: Option<&SessionMeta>) -> String {
    match owner {
        Some(meta) => {
            let mut text = format!("session {} ({}", session.0, meta.name);
            if !meta.host.is_empty() && !meta.name.contains(&meta.host) {
                text.push_str(&format!(" on {}", meta.host));
            }
            if let Some(pid) = meta.pid.filter(|p| !meta.name.contains(&p.to_string())) {
                text.push_str(&format!(", pid {pid}"));
            }
            text.push(')');
            text
        }
        None => format!("session {}", session.0),
    }
}

fn lock_text(lock: &LockEntryView) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let state = match lock.mode {
        Some(mode) => format!("held {}", mode_text(mode)),
        None if lock.delay.is_some() => "in lock-delay".to_owned(),
        None => "not held".to_owned(),
    };
    let _ = writeln!(out, "{}: {state}", lock.name);
    for h in &lock.holders {
        let _ = writeln!(
            out,
            "  holder: {} with token {}",
            owner_text(h.session, h.owner.as_ref()),
            h.token.0
        );
    }
    if let Some(d) = lock.delay {
        let _ = writeln!(out, "  lock-delay of {} ms", d.delay_ms);
    }
    for (place, w) in (1..).zip(&lock.waiters) {
        let _ = writeln!(
            out,
            "  waiter {place}: {} for {}",
            owner_text(w.session, w.owner.as_ref()),
            mode_text(w.mode)
        );
    }
    out
}

/// Runs `distlock sessions`; returns the exit status.
pub(crate) async fn sessions(cluster: Cluster<'_>, as_json: bool) -> i32 {
    let sessions = match all_sessions(cluster).await {
        Ok(sessions) => sessions,
        Err(e) => return failed("sessions", &e),
    };
    if as_json {
        println!("{}", json!({ "sessions": sessions }));
        return 0;
    }
    println!(
        "{:>8}  {:>8}  {:>4}  {:>7}  name",
        "session", "ttl", "held", "waiting"
    );
    for s in &sessions {
        let name = s.owner.as_ref().map_or("-", |m| m.name.as_str());
        println!(
            "{:>8}  {:>7}s  {:>4}  {:>7}  {name}",
            s.session.0,
            s.ttl_ms / 1000,
            s.held,
            s.waiting
        );
    }
    0
}

/// Parses a session id as `distlock sessions` prints it (`12`) or as
/// logs show it (`s12`).
pub(crate) fn parse_session(text: &str) -> Result<SessionId, String> {
    text.strip_prefix('s')
        .unwrap_or(text)
        .parse()
        .map(SessionId)
        .map_err(|_| {
            format!("{text:?} is not a session id (a number, as `distlock sessions` shows)")
        })
}

/// Runs `distlock revoke`; returns the exit status.
pub(crate) async fn revoke(cluster: Cluster<'_>, session: SessionId) -> i32 {
    match ask_cluster(cluster, &RequestBody::RevokeSession { session }).await {
        Ok(ResponseBody::Revoked { .. }) => {
            println!(
                "session {} revoked: its locks are free, or in lock-delay where asked",
                session.0
            );
            0
        }
        Ok(_) => failed("revoke", &AskError::Unexpected),
        Err(AskError::Refused(ProtoError::UnknownSession)) => {
            eprintln!(
                "distlock revoke: session {} is not live (it ended, or never existed)",
                session.0
            );
            EXIT_FAILED
        }
        Err(e) => failed("revoke", &e),
    }
}

fn failed(what: &str, e: &AskError) -> i32 {
    eprintln!("distlock {what}: {e}");
    match e {
        AskError::Refused(p) if !p.is_retryable() => EXIT_FAILED,
        _ => EXIT_UNAVAILABLE,
    }
}
