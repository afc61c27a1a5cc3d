//! Lease edge cases on the leader: keepalives racing the session's expiry.

use super::{Net, acquire, granted};
use crate::locks::{LockError, Wait};
use crate::node::ConnId;
use crate::proto::{ProtoError, RequestBody};
use crate::time::Duration;

/// A keepalive that arrived before its session's deadline, but whose quorum
/// round is confirmed only after the leader proposed the session's expiry,
/// is answered `SessionExpired`, never acknowledged: the expiry applies
/// whatever the answer, and a client told its lease was renewed would go on
/// using locks already handed on.
#[test]
fn a_keepalive_confirmed_after_the_expiry_was_proposed_is_answered_expired() {
    let mut net = Net::new(3);
    let leader = net.settle();
    let c = ConnId(1);
    net.hello(leader, c);
    let opened_at = net.now;
    let s = net.open(leader, c, 1, 1_000);
    granted(net.ask(leader, c, acquire(s, 1, "l", Wait::Try)));
    net.run_to(opened_at + Duration::from_millis(985));
    // Nothing confirms the keepalive's round: one follower is down and the
    // other's answers are lost, until after the session's deadline.
    let (down, slow) = {
        let mut others = net.nodes.keys().copied().filter(|&i| i != leader);
        (
            others.next().expect("two followers"),
            others.next().expect("two followers"),
        )
    };
    net.crash(down);
    net.delay = Some((slow, leader));
    let ka = net.request(leader, c, RequestBody::KeepAlive { session: s });
    assert!(
        net.now < opened_at + Duration::from_millis(1_000),
        "it arrived in time"
    );
    assert_eq!(net.answer(ka), None, "no quorum has confirmed it yet");
    net.run_for(Duration::from_millis(30));
    assert_eq!(net.answer(ka), None, "no quorum has confirmed it yet");
    // The follower's answer to the keepalive's round arrives now, after the
    // leader proposed the expiry, and before the expiry commits.
    net.release_delayed();
    assert_eq!(
        net.answer(ka),
        Some(Err(ProtoError::Lock(LockError::SessionExpired)))
    );
    net.delay = None;
    net.delayed.clear();
    net.run_for(Duration::from_millis(300));
    let again = net.ask(leader, c, RequestBody::KeepAlive { session: s });
    assert_eq!(
        again,
        Some(Err(ProtoError::UnknownSession)),
        "the session ended"
    );
}
