//! The status line `distlock lock` and `distlock elect` keep on stderr
//! while they wait: who holds the lock (name, host, pid), for how long at
//! least, and our place in its queue, rewritten in place every half
//! second.
//!
//! Only when stderr is a terminal, as other tools' progress lines: in a
//! log file, rewritten lines are noise. `--quiet` turns it off on a
//! terminal too. Nothing is shown for a lock granted within the first
//! half second, and the line is erased once the wait ends.

use distlock_client::{ClientError, LockEntryView, Session, SessionId};
use std::future::Future;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often the line is read and redrawn (and how long before it first
/// appears).
const EVERY: Duration = Duration::from_millis(500);

/// Waits for `grant`, keeping the status line of lock `name` on stderr
/// meanwhile unless `quiet` or stderr is not a terminal.
pub(crate) async fn showing<T>(
    session: &Session,
    name: &str,
    quiet: bool,
    grant: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    if quiet || !std::io::stderr().is_terminal() {
        return grant.await;
    }
    tokio::pin!(grant);
    let mut seen = Seen::default();
    let mut drawn = false;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
    let result = loop {
        tokio::select! {
            result = &mut grant => break result,
            _ = tick.tick() => {
                // A failed read leaves the last line up; the wait goes on.
                if let Ok(page) = session.client().list_locks(name, None, 1).await {
                    let entry = page.locks.iter().find(|l| l.name == name);
                    let text = line(name, entry, session.id(), seen.held_for(entry));
                    let mut err = std::io::stderr().lock();
                    let _ = write!(err, "\r\x1b[K{text}");
                    let _ = err.flush();
                    drawn = true;
                }
            }
        }
    };
    if drawn {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K");
        let _ = err.flush();
    }
    result
}

/// The first holder's grant we saw, and since when.
#[derive(Default)]
struct Seen {
    first: Option<(u64, Instant)>,
}

impl Seen {
    /// How long the current first holder has held the lock at least (since
    /// we first saw its grant).
    fn held_for(&mut self, entry: Option<&LockEntryView>) -> Duration {
        let Some(token) = entry.and_then(|e| e.holders.first()).map(|h| h.token.0) else {
            self.first = None;
            return Duration::ZERO;
        };
        match self.first {
            Some((t, since)) if t == token => since.elapsed(),
            _ => {
                self.first = Some((token, Instant::now()));
                Duration::ZERO
            }
        }
    }
}

/// The status line: who holds `name`, for how long at least, and where
/// session `me` stands in its queue.
pub(crate) fn line(
    name: &str,
    entry: Option<&LockEntryView>,
    me: SessionId,
    held_for: Duration,
) -> String {
    let Some(entry) = entry else {
        return format!("waiting for {name:?}: free, being granted");
    };
    let holder = match entry.holders.as_slice() {
        [] if entry.delay.is_some() => "in lock-delay after its holder was lost".to_owned(),
        [] => "not held".to_owned(),
        [h, rest @ ..] => {
            let who = match &h.owner {
                Some(o) => {
                    let mut who = o.name.clone();
                    if !o.host.is_empty() && !o.name.contains(&o.host) {
                        who.push_str(&format!(" on {}", o.host));
                    }
                    if let Some(pid) = o.pid.filter(|p| !o.name.contains(&p.to_string())) {
                        who.push_str(&format!(" pid {pid}"));
                    }
                    who
                }
                None => format!("session {}", h.session.0),
            };
            let others = if rest.is_empty() {
                String::new()
            } else {
                format!(" and {} more", rest.len())
            };
            format!("held by {who}{others} for {}s or more", held_for.as_secs())
        }
    };
    let place = match entry.waiters.iter().position(|w| w.session == me) {
        Some(0) => "next in line".to_owned(),
        Some(n) => format!("{} in line, {n} ahead", ordinal(n + 1)),
        None => "joining the queue".to_owned(),
    };
    format!("waiting for {name:?}: {holder}; {place}")
}

fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use distlock_client::{HolderEntryView, Mode, SessionMeta, WaiterEntryView};
    use distlock_core::ids::LogIndex;
    use distlock_core::locks::{FencingToken, LockKind};

    fn entry(waiters: &[u64]) -> LockEntryView {
        LockEntryView {
            name: "db".to_owned(),
            kind: LockKind::ReadWrite,
            mode: Some(Mode::Exclusive),
            holders: vec![HolderEntryView {
                session: SessionId(3),
                token: FencingToken(9),
                since: LogIndex(9),
                owner: Some(SessionMeta {
                    name: "alice@db1 42".to_owned(),
                    host: "db1".to_owned(),
                    pid: Some(42),
                    labels: Default::default(),
                }),
            }],
            waiters: waiters
                .iter()
                .map(|&s| WaiterEntryView {
                    session: SessionId(s),
                    mode: Mode::Exclusive,
                    timeout_ms: None,
                    owner: None,
                })
                .collect(),
            delay: None,
        }
    }

    #[test]
    fn the_line_names_the_holder_and_our_place() {
        let e = entry(&[5, 7, 8]);
        assert_eq!(
            line("db", Some(&e), SessionId(8), Duration::from_secs(12)),
            "waiting for \"db\": held by alice@db1 42 for 12s or more; 3rd in line, 2 ahead"
        );
        assert_eq!(
            line("db", Some(&e), SessionId(5), Duration::ZERO),
            "waiting for \"db\": held by alice@db1 42 for 0s or more; next in line"
        );
        let mut anonymous = entry(&[]);
        anonymous.holders[0].owner = None;
        assert!(line("db", Some(&anonymous), SessionId(5), Duration::ZERO).contains("session 3"));
        assert!(line("db", None, SessionId(5), Duration::ZERO).contains("free"));
        assert_eq!(ordinal(11), "11th");
        assert_eq!(ordinal(22), "22nd");
        assert_eq!(ordinal(1), "1st");
    }

    #[test]
    fn the_holding_time_counts_from_the_first_sight_of_a_grant() {
        let mut seen = Seen::default();
        let e = entry(&[]);
        assert_eq!(seen.held_for(Some(&e)), Duration::ZERO);
        assert!(seen.first.is_some());
        let mut next = entry(&[]);
        next.holders[0].token = FencingToken(10);
        assert_eq!(seen.held_for(Some(&next)), Duration::ZERO);
        assert_eq!(seen.first.map(|(t, _)| t), Some(10));
        assert_eq!(seen.held_for(None), Duration::ZERO);
        assert!(seen.first.is_none());
    }
}
