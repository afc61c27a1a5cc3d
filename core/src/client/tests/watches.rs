//! Tests of watches across reconnections, and of the jittered reconnect
//! backoff.

use super::*;
use crate::ids::LogIndex;
use crate::proto::{LockEvent, WatchEvent};

fn watch_frame(lock: &str, event: LockEvent) -> ServerFrame {
    ServerFrame::Watch(WatchEvent {
        lock: lock.into(),
        event,
    })
}

fn acquired(index: u64, session: u64, token: u64) -> LockEvent {
    LockEvent::Acquired {
        index: LogIndex(index),
        session: SessionId(session),
        token: FencingToken(token),
        mode: Mode::Exclusive,
    }
}

fn released(index: u64, session: u64, token: u64) -> LockEvent {
    LockEvent::Released {
        index: LogIndex(index),
        session: SessionId(session),
        token: FencingToken(token),
    }
}

fn watch_requests(c: &mut ClientSession) -> Vec<RequestBody> {
    requests(c)
        .into_iter()
        .map(|r| r.body)
        .filter(|b| matches!(b, RequestBody::Watch { .. } | RequestBody::Unwatch { .. }))
        .collect()
}

fn updates(c: &mut ClientSession) -> Vec<(String, WatchUpdate)> {
    events(c)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Watch { lock, update } => Some((lock, update)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_watch_is_asked_again_after_a_failover_and_repeats_nothing() {
    let mut c = open_client();
    c.watch("db");
    c.watch("db");
    assert_eq!(
        watch_requests(&mut c),
        [RequestBody::Watch { lock: "db".into() }],
        "one Watch however often the lock is watched"
    );
    c.handle_frame(watch_frame("db", acquired(10, 7, 10)), ms(20));
    c.handle_frame(watch_frame("other", acquired(11, 7, 11)), ms(20));
    c.handle_frame(watch_frame("db", released(12, 7, 10)), ms(20));
    c.handle_frame(watch_frame("db", acquired(12, 8, 12)), ms(20));
    assert_eq!(
        updates(&mut c),
        [
            ("db".into(), WatchUpdate::Event(acquired(10, 7, 10))),
            ("db".into(), WatchUpdate::Event(released(12, 7, 10))),
            ("db".into(), WatchUpdate::Event(acquired(12, 8, 12))),
        ],
        "only the watched lock's events, in order"
    );

    c.connection_lost(ms(30));
    // No events flow while disconnected.
    c.handle_frame(watch_frame("db", released(13, 8, 12)), ms(31));
    let t = c.poll_timeout().expect("backoff");
    c.handle_timeout(t);
    assert!(matches!(
        events(&mut c).as_slice(),
        [ClientEvent::Reconnect { .. }]
    ));
    c.connected(Some(NodeId(2)), t);
    assert_eq!(
        watch_requests(&mut c),
        [RequestBody::Watch { lock: "db".into() }],
        "the watch is asked again on the new connection"
    );
    assert_eq!(updates(&mut c), [("db".into(), WatchUpdate::Resumed)]);
    // The new server lags: it sends again what was reported already.
    c.handle_frame(watch_frame("db", released(12, 7, 10)), t);
    c.handle_frame(watch_frame("db", acquired(12, 8, 12)), t);
    c.handle_frame(watch_frame("db", released(13, 8, 12)), t);
    assert_eq!(
        updates(&mut c),
        [("db".into(), WatchUpdate::Event(released(13, 8, 12)))]
    );
}

#[test]
fn unwatch_stops_the_events_and_tells_the_server() {
    let mut c = open_client();
    c.watch("db");
    let _ = watch_requests(&mut c);
    c.unwatch("db");
    c.unwatch("db");
    assert_eq!(
        watch_requests(&mut c),
        [RequestBody::Unwatch { lock: "db".into() }]
    );
    c.handle_frame(watch_frame("db", acquired(10, 7, 10)), ms(20));
    assert_eq!(updates(&mut c), []);
    assert_eq!(c.watched().count(), 0);
    // Not asked again after a reconnection either.
    c.connected(Some(NodeId(2)), ms(30));
    assert_eq!(watch_requests(&mut c), []);
}

#[test]
fn a_watch_asked_while_disconnected_goes_out_with_the_connection() {
    let mut c = ClientSession::new(Config::default());
    c.watch("db");
    assert_eq!(c.poll_frame(), None);
    c.connected(None, ms(0));
    let frames: Vec<ClientFrame> = std::iter::from_fn(|| c.poll_frame()).collect();
    assert!(matches!(frames[0], ClientFrame::Hello { .. }), "{frames:?}");
    assert!(
        frames.iter().any(|f| matches!(
            f,
            ClientFrame::Request(Request { body: RequestBody::Watch { lock }, .. }) if lock == "db"
        )),
        "{frames:?}"
    );
    // The first ask is no resumption.
    assert_eq!(updates(&mut c), []);
    // Watches need no session.
    c.handle_frame(watch_frame("db", acquired(3, 1, 3)), ms(1));
    assert_eq!(
        updates(&mut c),
        [("db".into(), WatchUpdate::Event(acquired(3, 1, 3)))]
    );
}

/// The backoffs one machine waits through, failing `n` times in a row.
fn backoffs(mut c: ClientSession, n: usize) -> Vec<Duration> {
    c.connected(None, ms(0));
    let mut now = ms(0);
    let mut out = Vec::new();
    for _ in 0..n {
        c.connection_lost(now);
        let t = c.poll_timeout().expect("backoff");
        out.push(t - now);
        now = t;
        c.handle_timeout(now);
        let _ = events(&mut c);
    }
    out
}

#[test]
fn jittered_backoffs_stay_between_half_and_all_of_the_nominal_one() {
    let n = 40;
    let nominal: Vec<Duration> = backoffs(ClientSession::new(Config::default()), n);
    let a = backoffs(ClientSession::with_jitter(Config::default(), 1), n);
    let b = backoffs(ClientSession::with_jitter(Config::default(), 2), n);
    for (i, (j, nom)) in a.iter().chain(&b).zip(nominal.iter().cycle()).enumerate() {
        assert!(
            *j >= *nom / 2 && j <= nom,
            "backoff {i}: {j:?} outside [{:?}, {nom:?}]",
            *nom / 2
        );
    }
    assert_eq!(
        a,
        backoffs(ClientSession::with_jitter(Config::default(), 1), n),
        "the same seed, the same backoffs"
    );
    assert_ne!(a, b, "other seeds spread the dials");
    assert_ne!(a, nominal);
    // Still exponential: the first is at most 100 ms, later ones at least
    // half of the 1 s cap.
    assert!(a[0] <= Duration::from_millis(100));
    assert!(a[n - 1] >= Duration::from_millis(500));
}
