//! Session metadata at open, and the paged listings of locks and sessions.

use super::harness::{Harness, same_state};
use crate::locks::{
    ClientCommand, Command, LockError, MetaError, MetaField, Mode, Reply, SessionId, SessionMeta,
};

fn meta(name: &str) -> SessionMeta {
    SessionMeta {
        name: name.to_owned(),
        host: "db1".to_owned(),
        pid: Some(42),
        labels: [("role".to_owned(), "backup".to_owned())].into(),
    }
}

fn open_with(h: &mut Harness, nonce: u128, meta: SessionMeta) -> Result<SessionId, LockError> {
    let out = h.apply(&Command::Client(ClientCommand::OpenSessionWithMeta {
        nonce,
        ttl_ms: 10_000,
        meta,
    }));
    match out.replies.as_slice() {
        [Reply::SessionOpened { result, .. }] => *result,
        other => panic!("one answer expected: {other:?}"),
    }
}

#[test]
fn a_session_keeps_who_opened_it_until_it_ends() {
    let mut h = Harness::new();
    let plain = h.open();
    let named = open_with(&mut h, 100, meta("alice@db1 42")).expect("opens");
    assert_eq!(h.sm.session_meta(plain), None);
    assert_eq!(h.sm.session_meta(named), Some(&meta("alice@db1 42")));
    // A retried open answers the same session and keeps the first metadata.
    assert_eq!(open_with(&mut h, 100, meta("other")), Ok(named));
    assert_eq!(h.sm.session_meta(named), Some(&meta("alice@db1 42")));
    h.expire(named);
    assert_eq!(h.sm.session_meta(named), None);
}

#[test]
fn bad_metadata_is_refused_with_a_typed_error_and_changes_nothing() {
    let mut h = Harness::new();
    h.open();
    let cases = [
        (
            SessionMeta {
                name: "x".repeat(1 << 16),
                ..meta("")
            },
            MetaError::Length {
                field: MetaField::Name,
                len: 1 << 16,
                max: 128,
            },
        ),
        (
            SessionMeta {
                host: "h".repeat(256),
                ..meta("a")
            },
            MetaError::Length {
                field: MetaField::Host,
                len: 256,
                max: 255,
            },
        ),
        (
            SessionMeta {
                labels: (0..100).map(|i| (format!("k{i}"), String::new())).collect(),
                ..meta("a")
            },
            MetaError::TooManyLabels {
                count: 100,
                max: 16,
            },
        ),
        (
            SessionMeta {
                labels: [("k".to_owned(), "v".repeat(300))].into(),
                ..meta("a")
            },
            MetaError::Length {
                field: MetaField::LabelValue,
                len: 300,
                max: 256,
            },
        ),
        (
            meta("evil\u{1b}[2J"),
            MetaError::ControlCharacter {
                field: MetaField::Name,
            },
        ),
    ];
    for (nonce, (bad, why)) in (200..).zip(cases) {
        let command = ClientCommand::OpenSessionWithMeta {
            nonce,
            ttl_ms: 10_000,
            meta: bad.clone(),
        };
        assert_eq!(
            h.sm.precheck(&command),
            Err(LockError::InvalidSessionMeta(why))
        );
        let before = h.sm.clone();
        assert_eq!(
            open_with(&mut h, nonce, bad),
            Err(LockError::InvalidSessionMeta(why))
        );
        assert!(same_state(&before, &h.sm), "a refused open changed state");
    }
}

#[test]
fn lock_pages_follow_the_names_and_their_cursor() {
    let mut h = Harness::new();
    let s = open_with(&mut h, 100, meta("alice")).expect("opens");
    let w = h.open();
    for name in ["a/1", "a/2", "a/3", "b/1", "a"] {
        h.hold(s, name, Mode::Exclusive);
    }
    h.wait(w, "a/2", Mode::Shared);
    let names = |page: &crate::locks::LockPage| {
        page.locks
            .iter()
            .map(|(n, _)| n.to_string())
            .collect::<Vec<_>>()
    };
    let page = h.sm.list_locks("a/", None, 2);
    assert_eq!(names(&page), ["a/1", "a/2"]);
    assert_eq!(page.next.as_deref(), Some("a/2"));
    assert_eq!(page.locks[1].1.waiters.len(), 1);
    let page = h.sm.list_locks("a/", page.next.as_deref(), 2);
    assert_eq!(names(&page), ["a/3"]);
    assert_eq!(page.next, None);
    // Everything, with a cursor before the prefix.
    let page = h.sm.list_locks("", Some(""), 10);
    assert_eq!(names(&page), ["a", "a/1", "a/2", "a/3", "b/1"]);
    assert_eq!(page.next, None);
    // A cursor sorting before the prefix starts at the prefix.
    assert_eq!(names(&h.sm.list_locks("b", Some("a/9"), 10)), ["b/1"]);
    // An exact page has no next.
    assert_eq!(h.sm.list_locks("a/", None, 3).next, None);
    // A limit of 0 is served as 1.
    assert_eq!(names(&h.sm.list_locks("", None, 0)), ["a"]);
    assert!(h.sm.list_locks("zzz", None, 10).locks.is_empty());

    // A lock freed between pages is not shown; the others are not skipped.
    let page = h.sm.list_locks("a/", None, 1);
    let token = h.holders("a/2")[0].1;
    h.release(s, "a/2", token);
    assert_eq!(h.holders("a/2")[0].0, w);
    h.expire(w);
    let page = h.sm.list_locks("a/", page.next.as_deref(), 1);
    assert_eq!(names(&page), ["a/3"]);
}

#[test]
fn session_pages_follow_the_ids() {
    let mut h = Harness::new();
    let ids: Vec<SessionId> = (0..5).map(|_| h.open()).collect();
    h.expire(ids[1]);
    let page = h.sm.list_sessions(None, 2);
    assert_eq!(
        page.sessions.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [ids[0], ids[2]]
    );
    assert_eq!(page.next, Some(ids[2]));
    let page = h.sm.list_sessions(page.next, 10);
    assert_eq!(
        page.sessions.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [ids[3], ids[4]]
    );
    assert_eq!(page.next, None);
}
