//! Elections: a campaign is an exclusive acquire carrying a value, the
//! leader proclaims new values, and leadership passes in queue order with
//! ever higher tokens.

use super::harness::{Harness, reply_to, same_state, single};
use crate::locks::{
    ClientCommand, Command, Event, FencingToken, LockError, MAX_ELECTION_VALUE, Outcome, Seq,
    SessionId, Wait,
};

fn campaign(h: &mut Harness, session: SessionId, value: &str, wait: Wait) -> (Seq, Command) {
    let seq = h.seq(session);
    let command = Command::Client(ClientCommand::Campaign {
        session,
        seq,
        ack: seq,
        election: "e".to_owned(),
        value: value.to_owned(),
        wait,
        lock_delay_ms: 0,
    });
    (seq, command)
}

fn proclaim(h: &mut Harness, session: SessionId, token: FencingToken, value: &str) -> Command {
    let seq = h.seq(session);
    Command::Client(ClientCommand::Proclaim {
        session,
        seq,
        ack: seq,
        election: "e".to_owned(),
        token,
        value: value.to_owned(),
    })
}

fn leader(h: &Harness) -> Option<(SessionId, FencingToken, String)> {
    let l = h.sm.leader("e")?;
    Some((l.session, l.token, l.value?.to_string()))
}

#[test]
fn the_first_campaign_leads_and_the_next_takes_over_with_a_higher_token() {
    let mut h = Harness::new();
    let a = h.open();
    let b = h.open();
    let (_, cmd) = campaign(&mut h, a, "a:80", Wait::Forever);
    let Ok(Outcome::Granted { token: first }) = single(&h.apply(&cmd)) else {
        panic!("a leads");
    };
    assert_eq!(leader(&h), Some((a, first, "a:80".to_owned())));
    let (b_seq, cmd) = campaign(&mut h, b, "b:80", Wait::Forever);
    assert!(h.apply(&cmd).replies.is_empty(), "b waits");
    assert_eq!(leader(&h), Some((a, first, "a:80".to_owned())));

    let cmd = proclaim(&mut h, a, first, "a:81");
    let out = h.apply(&cmd);
    assert_eq!(single(&out), Ok(Outcome::Proclaimed));
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, Event::Proclaimed { session, .. } if *session == a))
    );
    assert_eq!(leader(&h), Some((a, first, "a:81".to_owned())));

    // a's session dies: b leads, with its own value and a higher token.
    let out = h.expire(a);
    let Some(Ok(Outcome::Granted { token: second })) = reply_to(&out, b, b_seq) else {
        panic!("b is elected: {out:?}");
    };
    assert!(second > first);
    assert_eq!(leader(&h), Some((b, second, "b:80".to_owned())));

    // Resigning is a release: nobody leads.
    h.release(b, "e", second);
    assert_eq!(h.sm.leader("e"), None);
}

#[test]
fn only_the_leader_proclaims_and_bad_values_change_nothing() {
    let mut h = Harness::new();
    let a = h.open();
    let b = h.open();
    let (_, cmd) = campaign(&mut h, a, "a", Wait::Try);
    let Ok(Outcome::Granted { token }) = single(&h.apply(&cmd)) else {
        panic!("a leads");
    };
    // Someone else, or a stale term of office, is refused.
    let cmd = proclaim(&mut h, b, token, "b");
    assert_eq!(single(&h.apply(&cmd)), Err(LockError::NotHolder));
    let cmd = proclaim(&mut h, a, FencingToken(token.0 + 1), "a2");
    assert_eq!(single(&h.apply(&cmd)), Err(LockError::NotHolder));
    assert_eq!(leader(&h), Some((a, token, "a".to_owned())));
    // A campaign on a busy election with Try is Busy.
    let (_, cmd) = campaign(&mut h, b, "b", Wait::Try);
    assert_eq!(
        single(&h.apply(&cmd)),
        Err(LockError::Busy { delayed: false })
    );

    let long = "x".repeat(MAX_ELECTION_VALUE as usize + 1);
    let too_long = Err(LockError::InvalidValue {
        len: long.len() as u64,
        max: MAX_ELECTION_VALUE,
    });
    for cmd in [
        proclaim(&mut h, a, token, &long),
        campaign(&mut h, b, &long, Wait::Forever).1,
    ] {
        let Command::Client(request) = &cmd else {
            unreachable!()
        };
        assert_eq!(h.sm.precheck(request).map(|()| Outcome::Pending), too_long);
        let before = h.sm.clone();
        assert_eq!(single(&h.apply(&cmd)), too_long);
        assert!(same_state(&before, &h.sm), "a refused value changed state");
    }
    // A plain exclusive holder leads with no value; a shared one does not lead.
    h.release(a, "e", token);
    let t = h.hold(b, "e", crate::locks::Mode::Exclusive);
    let l = h.sm.leader("e").expect("b leads");
    assert_eq!((l.session, l.token, l.value), (b, t, None));
    h.release(b, "e", t);
    h.hold(b, "e", crate::locks::Mode::Shared);
    assert_eq!(h.sm.leader("e"), None);
}

#[test]
fn values_survive_snapshots() {
    let mut h = Harness::new();
    let a = h.open();
    let b = h.open();
    let (_, cmd) = campaign(&mut h, a, "a", Wait::Forever);
    h.apply(&cmd);
    let (_, cmd) = campaign(&mut h, b, "b", Wait::Forever);
    h.apply(&cmd);
    let mut restored = crate::locks::LockState::default();
    crate::raft::StateMachine::restore(&mut restored, &crate::raft::StateMachine::snapshot(&h.sm))
        .expect("restores");
    assert_eq!(restored, h.sm);
    h.sm = restored;
    let out = h.expire(a);
    assert!(out.replies.iter().any(|r| matches!(
        r,
        crate::locks::Reply::To { session, response: Ok(Outcome::Granted { .. }), .. } if *session == b
    )));
    assert_eq!(leader(&h).map(|(_, _, v)| v), Some("b".to_owned()));
}
