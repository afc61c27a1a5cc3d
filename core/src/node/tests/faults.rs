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
