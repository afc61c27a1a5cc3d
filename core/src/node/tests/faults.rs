//! Servers crashing, restarting and losing links: a restarted server
//! starts from its disk and catches up; an isolated leader is replaced and
//! follows once healed; a cut between two followers costs their clients
//! nothing.

use super::{Net, acquire, granted};
use crate::ids::NodeId;
use crate::locks::{FencingToken, Wait};
use crate::node::ConnId;
use crate::time::Duration;

#[test]
fn a_restarted_server_starts_from_its_disk_and_catches_up() {
    let mut net = Net::new(3);
    let (leader, follower, _, s, token) = net.holder_on_a_follower("x");
    let before = net.nodes[&follower].raft().last_index();
    net.crash(follower);
    let c = ConnId(7);
    net.hello(leader, c);
    let later = net.open(leader, c, 5, 10_000);
    net.restart(follower);
    assert!(
        net.nodes[&follower].raft().last_index() >= before,
        "the log it wrote is back before it hears from anyone"
    );
    assert!(net.run_until(Duration::from_secs(2), |net| {
        let state = net.nodes[&follower].raft().state_machine();
        state.session(s).is_some()
            && state.session(later).is_some()
            && state.check_token("x", FencingToken(token))
    }));
    assert_eq!(net.leader(), Some(leader));
}

#[test]
fn an_isolated_leader_is_replaced_and_follows_once_healed() {
    let mut net = Net::new(3);
    let old = net.settle();
    net.isolate(old);
    assert!(net.run_until(Duration::from_secs(5), |net| {
        net.leader()
            .is_some_and(|l| l != old && net.nodes[&l].raft().has_committed_own_term())
    }));
    let new = net.leader().expect("a leader");
    net.heal();
    assert!(net.run_until(Duration::from_secs(2), |net| {
        let (o, n) = (net.nodes[&old].raft(), net.nodes[&new].raft());
        !o.is_leader() && o.term() == n.term() && o.leader() == Some(new)
    }));
    // Two followers that cannot talk to each other both serve clients.
    let followers: Vec<NodeId> = net.nodes.keys().copied().filter(|&i| i != new).collect();
    net.cut(followers[0], followers[1]);
    for (n, &server) in (1_u64..).zip(&followers) {
        let c = ConnId(n);
        net.hello(server, c);
        let s = net.open(server, c, u128::from(n), 10_000);
        granted(net.ask(server, c, acquire(s, 1, &format!("lock{n}"), Wait::Try)));
    }
}

/// A keepalive a follower forwarded just before it crashed reaches the
/// leader only after the restarted follower forwarded requests of its own
/// (it waited behind a partition): the leader's answer to it names the
/// follower and the old forward's id, and must not be taken for the
/// answer to the new start's forward of the same number. Here that is a
/// queued acquire, which stays queued and is granted when the lock comes
/// free. With forward ids counted from 1 at every start, the acquire was
/// answered with the old session's keepalive acknowledgement (the
/// simulator's dense membership schedule, seed 103: the liveness probe
/// gave up on its acquire and the grant went to nobody who knew of it).
#[test]
fn a_late_answer_to_a_forward_of_an_earlier_start_reaches_no_new_request() {
    use crate::locks::{ClientCommand, Seq};
    use crate::proto::{PeerFrame, RequestBody};

    let mut net = Net::new(3);
    let leader = net.settle();
    let follower = net.follower_of(leader);
    // The lock the new start's client will queue for, held on the leader.
    let holder = ConnId(10);
    net.hello(leader, holder);
    let h = net.open(leader, holder, 1, 60_000);
    let token = granted(net.ask(leader, holder, acquire(h, 1, "x", Wait::Try)));

    // The follower's first start: a session, then a keepalive forwarded
    // on a link that holds it back.
    let old = ConnId(1);
    net.hello(follower, old);
    let s1 = net.open(follower, old, 2, 60_000);
    net.delay = Some((follower, leader));
    let _ = net.request(follower, old, RequestBody::KeepAlive { session: s1 });
    let late: Vec<PeerFrame> = net
        .delayed
        .drain(..)
        .filter(|f| matches!(f, PeerFrame::Forward { .. }))
        .collect();
    net.delay = None;
    assert_eq!(late.len(), 1, "the keepalive was forwarded: {late:?}");

    net.crash(follower);
    net.restart(follower);
    assert!(net.run_until(Duration::from_secs(2), |net| {
        net.nodes[&follower].raft().leader() == Some(leader)
    }));
    // The second start: a session and an acquire that queues behind the
    // holder, forwarded as the first start's session and keepalive were.
    let new = ConnId(2);
    net.hello(follower, new);
    let s2 = net.open(follower, new, 3, 60_000);
    let queued = net.request(follower, new, acquire(s2, 1, "x", Wait::Forever));
    assert_eq!(net.answer(queued), None, "queued behind the holder");

    // The first start's keepalive arrives now; the leader answers it.
    for frame in late {
        if let Some(node) = net.nodes.get_mut(&leader) {
            node.handle_peer(follower, frame, net.now);
        }
        net.drain(leader);
    }
    net.run_for(Duration::from_millis(50));
    assert_eq!(
        net.answer(queued),
        None,
        "the answer to the old start's keepalive is not the acquire's"
    );

    let release = RequestBody::Log(ClientCommand::Release {
        session: h,
        seq: Seq(2),
        ack: Seq(2),
        lock: "x".to_owned(),
        token: FencingToken(token),
    });
    assert!(matches!(net.ask(leader, holder, release), Some(Ok(_))));
    net.run_for(Duration::from_millis(50));
    assert!(granted(net.answer(queued)) > token, "granted once free");
}
