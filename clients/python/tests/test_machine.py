"""The session machine against scripted frames and a virtual clock: the
same rules as the Rust ``ClientSession`` and the TypeScript machine."""

from __future__ import annotations

import json
from typing import Any, List, Optional, Tuple

from distlock import protocol as p
from distlock.machine import (
    Completed,
    Event,
    MachineConfig,
    Reconnect,
    SessionLost,
    SessionMachine,
    SessionOpened,
)

from conftest import sample

NONCE = 1512366075204170929049582354406559215
TTL = 9000  # keepalives every 3 s; lease 9000 × 0.98 = 8820 ms


def frames(m: SessionMachine) -> List[Any]:
    out = []
    f = m.poll_frame()
    while f is not None:
        out.append(f)
        f = m.poll_frame()
    return out


def events(m: SessionMachine) -> List[Event]:
    out = []
    e = m.poll_event()
    while e is not None:
        out.append(e)
        e = m.poll_event()
    return out


def answer(m: SessionMachine, rid: int, result: str, now: float) -> None:
    """Feeds the machine a Response, through the JSON codec."""
    m.handle_frame(p.decode('{"Response":{"id":%d,"result":%s}}' % (rid, result)), now)


def welcome(m: SessionMachine, node: int, hint: Optional[int], members: List[int], now: float) -> None:
    ms = [{"id": i, "client_addr": f"127.0.0.1:700{i}", "ws_addr": f"127.0.0.1:720{i}"} for i in members]
    m.handle_frame(p.decode(json.dumps({"Welcome": {"node_id": node, "leader_hint": hint, "members": ms}})), now)


def body(frame: Any) -> Any:
    return frame["Request"]["body"]


def rid_of(frame: Any) -> int:
    return int(frame["Request"]["id"])


def opened(now: float = 0) -> SessionMachine:
    """A machine connected to server 1 of {1, 2, 3}, its session 42 open."""
    m = SessionMachine()
    m.connected(None, now)
    welcome(m, 1, 1, [1, 2, 3], now)
    assert p.encode(frames(m)[0]) == sample("hello", "ClientFrame")
    op = m.open_session(TTL, NONCE, now)
    assert isinstance(op, int)
    [open_frame] = frames(m)
    assert body(open_frame) == {"Log": {"OpenSession": {"nonce": NONCE, "ttl_ms": TTL}}}
    answer(m, rid_of(open_frame), '{"Ok":{"SessionOpened":{"session":42,"ttl_ms":%d}}}' % TTL, now + 10)
    assert events(m) == [SessionOpened(op, session=42)]
    return m


def test_the_lease_counts_from_the_send_time_conservatively() -> None:
    m = opened(now=1000)
    # From when the open was sent, not answered: 1000 + 9000 × 0.98.
    assert m.lease_until() == 1000 + 8820
    assert m.poll_timeout() == 1000 + 3000  # the first keepalive, at ttl/3


def test_keepalives_every_third_of_the_ttl_extend_from_their_send_time() -> None:
    m = opened()
    m.handle_timeout(3000)
    [ka] = frames(m)
    assert p.encode(ka) == p.encode(p.request(rid_of(ka), p.request_body("KeepAlive", session=42)))
    # Answered 500 ms later: the lease counts from 3000, not 3500.
    answer(m, rid_of(ka), '{"Ok":{"KeepAliveAck":{"session":42}}}', 3500)
    assert m.lease_until() == 3000 + 8820
    m.handle_timeout(6000)
    assert [p.tag_of(body(f)) for f in frames(m)] == ["KeepAlive"]


def test_the_lease_runs_out_once_and_for_good() -> None:
    m = opened()
    op = m.acquire("a", "Exclusive", "Forever", 0, 100)
    frames(m)
    m.connection_lost(200)
    # No keepalive is acknowledged: the session is lost at 8820, once.
    m.handle_timeout(8819)
    assert m.is_alive(8819)
    assert all(not isinstance(e, SessionLost) for e in events(m))
    m.handle_timeout(8820)
    evs = events(m)
    assert [type(e) for e in evs].count(SessionLost) == 1
    lost = [e for e in evs if isinstance(e, SessionLost)][0]
    assert lost.reason.kind == "lease_expired"
    failed = [e for e in evs if isinstance(e, Completed)]
    assert failed and failed[0].op == op and failed[0].failure is not None
    assert failed[0].failure.kind == "session_lost"
    # A late answer, another timeout or a new connection change nothing.
    m.connected(2, 9000)
    answer(m, 1, '{"Ok":{"KeepAliveAck":{"session":42}}}', 9001)
    m.handle_timeout(20000)
    assert not any(isinstance(e, SessionLost) for e in events(m))
    assert not m.is_alive(9000)
    f = m.acquire("a", "Exclusive", "Try", 0, 9002)
    assert not isinstance(f, int) and f.kind == "session_lost"


def test_unknown_session_on_a_keepalive_loses_the_session() -> None:
    m = opened()
    m.handle_timeout(3000)
    [ka] = frames(m)
    answer(m, rid_of(ka), '{"Err":"UnknownSession"}', 3010)
    [lost] = events(m)
    assert isinstance(lost, SessionLost) and lost.reason.kind == "rejected"
    assert lost.reason.error is not None and lost.reason.error.kind == "UnknownSession"


def test_a_retry_after_failover_attaches_first_and_keeps_its_seq() -> None:
    m = opened()
    m.acquire("orders", "Exclusive", {"For": 5000}, 0, 100)
    [first] = frames(m)
    seq = body(first)["Log"]["Acquire"]["seq"]
    m.connection_lost(200)
    assert m.poll_timeout() == 300  # the first backoff, 100 ms
    m.handle_timeout(300)
    [reconnect] = events(m)
    assert isinstance(reconnect, Reconnect) and reconnect.to is not None
    assert reconnect.to.id == 2 and reconnect.to.ws_addr == "127.0.0.1:7202"
    m.connected(2, 310)
    sent = frames(m)
    assert [p.tag_of(f) for f in sent[:1]] == ["Hello"]
    assert body(sent[1]) == {"Attach": {"session": 42, "secret": NONCE}}
    retry = body(sent[2])["Log"]["Acquire"]
    assert retry["seq"] == seq and rid_of(sent[2]) != rid_of(first)
    assert p.tag_of(body(sent[3])) == "KeepAlive"
    answer(m, rid_of(sent[1]), '{"Ok":{"Attached":{"session":42}}}', 320)
    answer(m, rid_of(sent[2]), '{"Ok":{"Lock":{"Granted":{"token":17}}}}', 330)
    [done] = events(m)
    assert isinstance(done, Completed) and done.outcome == {"Granted": {"token": 17}}


def test_ack_is_the_lowest_unanswered_seq() -> None:
    m = opened()
    m.acquire("a", "Exclusive", "Forever", 0, 100)
    m.acquire("b", "Exclusive", "Try", 0, 100)
    a, b = frames(m)
    assert body(b)["Log"]["Acquire"]["ack"] == body(a)["Log"]["Acquire"]["seq"] == 1
    answer(m, rid_of(a), '{"Ok":{"Lock":{"Granted":{"token":3}}}}', 150)
    m.release("a", 3, 160)
    [r] = frames(m)
    assert body(r)["Log"]["Release"]["seq"] == 3
    assert body(r)["Log"]["Release"]["ack"] == 2  # b is still unanswered


def test_leader_unreachable_and_not_attached_move_on_at_once() -> None:
    for error in ('{"LeaderUnreachable":{"leader":3}}', '"NotAttached"', '"ShuttingDown"'):
        m = opened()
        m.acquire("a", "Exclusive", "Try", 0, 100)
        [f] = frames(m)
        answer(m, rid_of(f), '{"Err":%s}' % error, 110)
        m.handle_timeout(210)
        [reconnect] = events(m)
        assert isinstance(reconnect, Reconnect) and reconnect.to is not None and reconnect.to.id == 2, error
        m.connected(2, 220)
        retried = [body(x) for x in frames(m) if "Request" in x and p.tag_of(body(x)) == "Log"]
        assert retried[0]["Log"]["Acquire"]["seq"] == 1, error


def test_no_leader_is_retried_on_the_same_server_then_left() -> None:
    m = opened()
    m.acquire("a", "Exclusive", "Try", 0, 0)
    now = 0.0
    [f] = frames(m)
    answer(m, rid_of(f), '{"Err":"NoLeader"}', now)
    # Retried here after the backoff, same seq, while patience lasts.
    m.handle_timeout(now + 100)
    [again] = frames(m)
    assert body(again) == body(f) and rid_of(again) != rid_of(f)
    answer(m, rid_of(again), '{"Err":{"NotLeader":{"leader_hint":null}}}', 1000)
    assert not any(isinstance(e, Reconnect) for e in events(m))
    m.handle_timeout(1100)
    assert any(isinstance(e, Reconnect) for e in events(m))


def test_a_followers_leader_hint_is_followed_once() -> None:
    m = SessionMachine()
    m.connected(None, 0)
    welcome(m, 1, 3, [1, 2, 3], 0)
    [reconnect] = events(m)
    assert isinstance(reconnect, Reconnect) and reconnect.to is not None and reconnect.to.id == 3
    m.connected(3, 10)
    welcome(m, 3, 2, [1, 2, 3], 10)  # a stale hint: not followed again
    assert events(m) == []
    off = SessionMachine(MachineConfig(follow_leader=False))
    off.connected(None, 0)
    welcome(off, 1, 3, [1, 2, 3], 0)
    assert events(off) == []


def test_failover_goes_round_every_member_heard_of() -> None:
    m = opened()
    # A member added later, named by another server's Welcome.
    welcome(m, 1, 1, [1, 2, 3, 4], 50)
    seen = []
    now = 100.0
    for _ in range(4):
        m.connection_lost(now)
        now += 1000
        m.handle_timeout(now)
        [r] = [e for e in events(m) if isinstance(e, Reconnect)]
        assert r.to is not None
        seen.append(r.to.id)
        m.connected(r.to.id, now)
        frames(m)
        m.handle_frame(p.decode(sample("keepalive_ack").replace('"id":2', '"id":999')), now)
        m.handle_timeout(now)
        for f in frames(m):
            if p.tag_of(body(f)) == "KeepAlive":
                answer(m, rid_of(f), '{"Ok":{"KeepAliveAck":{"session":42}}}', now)
    assert seen == [2, 3, 4, 1]


def test_a_timed_out_request_fails_over() -> None:
    m = opened()
    m.acquire("a", "Exclusive", "Try", 0, 100)
    frames(m)
    m.handle_timeout(1099)
    assert events(m) == []
    m.handle_timeout(1100)
    m.handle_timeout(1200)
    assert [type(e) for e in events(m)] == [Reconnect]


def test_a_waiting_acquire_is_asked_again_every_second_and_pending_waits() -> None:
    m = opened()
    m.acquire("a", "Exclusive", "Forever", 0, 100)
    [f] = frames(m)
    m.handle_timeout(1100)
    [again] = [x for x in frames(m) if p.tag_of(body(x)) == "Log"]
    assert body(again) == body(f)
    answer(m, rid_of(again), '{"Ok":{"Lock":"Pending"}}', 1150)
    assert events(m) == []
    m.handle_timeout(1250)
    [third] = [x for x in frames(m) if p.tag_of(body(x)) == "Log"]
    assert body(third)["Log"]["Acquire"]["seq"] == 1


def test_final_errors_and_unknown_answers_fail_the_operation() -> None:
    m = opened()
    op = m.acquire("a", "Exclusive", "Try", 0, 100)
    [f] = frames(m)
    m.handle_frame(p.decode(sample("busy").replace('"id":20', '"id":%d' % rid_of(f))), 110)
    [done] = events(m)
    assert isinstance(done, Completed) and done.op == op and done.failure is not None
    assert done.failure.kind == "server" and done.failure.error is not None
    assert done.failure.error.lock == "Busy"
    # An error kind this client does not know: final, named.
    op = m.acquire("b", "Exclusive", "Try", 0, 200)
    [f] = frames(m)
    answer(m, rid_of(f), '{"Err":{"QuotaExceeded":{"limit":3}}}', 210)
    [done] = events(m)
    assert isinstance(done, Completed) and done.failure is not None and done.failure.error is not None
    assert done.failure.error.kind == "QuotaExceeded" and not done.failure.error.known
    # An answer of a kind it does not expect.
    op = m.release("a", 1, 300)
    [f] = frames(m)
    answer(m, rid_of(f), '{"Ok":{"LockList":[]}}', 310)
    [done] = events(m)
    assert isinstance(done, Completed) and done.failure is not None
    assert done.failure.kind == "unexpected_answer" and done.failure.answer == {"LockList": []}
    assert m.is_alive(320)


def test_a_session_error_on_a_request_loses_the_session() -> None:
    m = opened()
    op = m.acquire("a", "Exclusive", "Try", 0, 100)
    [f] = frames(m)
    m.handle_frame(p.decode(sample("session_expired").replace('"id":20', '"id":%d' % rid_of(f))), 110)
    done, lost = events(m)
    assert isinstance(done, Completed) and done.op == op and done.failure is not None
    assert done.failure.kind == "session_lost" and isinstance(lost, SessionLost)


def test_closing_ends_the_session_without_a_loss() -> None:
    m = opened()
    op = m.close(100)
    assert isinstance(op, int)
    [f] = frames(m)
    assert p.tag_of(body(f)["Log"]) == "CloseSession"
    answer(m, rid_of(f), '{"Ok":{"Lock":"Closed"}}', 110)
    assert events(m) == [Completed(op, outcome="Closed")]
    m.handle_timeout(20000)
    assert events(m) == []
    f2 = m.acquire("a", "Exclusive", "Try", 0, 20001)
    assert not isinstance(f2, int) and f2.kind == "closed"


def reconnected() -> Tuple[SessionMachine, Any]:
    """An open session's machine failed over to server 2, and its Attach."""
    m = opened()
    m.connection_lost(100)
    m.handle_timeout(200)
    events(m)
    m.connected(2, 210)
    attach = [f for f in frames(m) if "Request" in f and p.tag_of(body(f)) == "Attach"][0]
    return m, attach


def test_an_attach_refused_as_not_the_owner_loses_the_session() -> None:
    m, attach = reconnected()
    answer(m, rid_of(attach), '{"Err":"NotSessionOwner"}', 220)
    [lost] = events(m)
    assert isinstance(lost, SessionLost) and lost.reason.error is not None
    assert lost.reason.error.kind == "NotSessionOwner"


def test_an_attach_refused_for_now_moves_on() -> None:
    m, attach = reconnected()
    m.handle_frame(p.decode(sample("not_attached").replace('"id":4', '"id":%d' % rid_of(attach))), 220)
    m.handle_timeout(1000)
    [r] = events(m)
    assert isinstance(r, Reconnect) and r.to is not None and r.to.id == 3
    assert m.is_alive(1000)


def test_an_unanswered_keepalive_fails_over() -> None:
    m = opened()
    m.handle_timeout(3000)
    frames(m)
    m.handle_timeout(3999)
    assert events(m) == []
    m.handle_timeout(4000)
    m.handle_timeout(4100)
    assert [type(e) for e in events(m)] == [Reconnect]


def test_an_open_is_retried_with_its_nonce() -> None:
    m = SessionMachine()
    m.connected(None, 0)
    welcome(m, 1, 1, [1, 2], 0)
    frames(m)
    op = m.open_session(TTL, NONCE, 10)
    assert isinstance(op, int)
    [first] = frames(m)
    m.connection_lost(20)
    m.handle_timeout(120)
    events(m)
    m.connected(2, 130)
    hello, again = frames(m)  # no session yet: nothing to attach
    assert p.tag_of(hello) == "Hello" and body(again) == body(first)
    answer(m, rid_of(again), '{"Ok":{"SessionOpened":{"session":7,"ttl_ms":%d}}}' % TTL, 140)
    assert events(m) == [SessionOpened(op, session=7)]
    assert m.lease_until() == 10 + 8820  # from the first send


def test_members_merge_and_only_the_leader_drops_them() -> None:
    m = SessionMachine(MachineConfig(follow_leader=False))
    m.connected(None, 0)
    welcome(m, 1, 1, [1, 2, 3], 0)
    # A server that has not learned member 3's WebSocket address yet.
    m.handle_frame(
        p.decode(
            json.dumps(
                {
                    "Welcome": {
                        "node_id": 2,
                        "leader_hint": 1,
                        "members": [{"id": 3, "client_addr": "", "ws_addr": None}],
                    }
                }
            )
        ),
        1,
    )
    assert [(x.id, x.ws_addr) for x in m.known_members()] == [
        (1, "127.0.0.1:7201"),
        (2, "127.0.0.1:7202"),
        (3, "127.0.0.1:7203"),
    ]
    assert m.known_members()[2].client_addr == "127.0.0.1:7003"
    # A follower's older list does not drop member 3; the leader's does.
    welcome(m, 2, 1, [1, 2], 2)
    assert [x.id for x in m.known_members()] == [1, 2, 3]
    welcome(m, 1, 1, [1, 2], 3)
    assert [x.id for x in m.known_members()] == [1, 2]
