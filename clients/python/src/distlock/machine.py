"""The client's session state machine, sans I/O: a port of the Rust
``distlock_core::client::ClientSession`` (and of the TypeScript client's
``SessionMachine``), so that Python programs get the same guarantees.

- Every session request carries ``(session, seq)`` and the lowest seq not
  yet answered (``ack``); a retry (after a timeout, a failover or a
  retryable error) re-sends the same seq, which the cluster applies at
  most once (PROTOCOL.md §9).
- Keepalives go every ttl/3. The local lease ends at
  ``send time of the last acknowledged keepalive + ttl × (1 − 2·max_drift)``
  on this client's clock; past it the session is lost for good, even if the
  cluster later answers (ARCHITECTURE.md §4, lease rule 5).
- Every new connection sends ``Hello``, then ``Attach {session, secret}``
  before anything that acts on the session.
- Failover goes round every member that servers' ``Welcome`` frames listed,
  and follows a follower's leader hint once per connection chain.

The driver (:class:`distlock.Client`) feeds it connections, frames and
timer expiries with the current time (milliseconds on a monotonic clock),
and drains :meth:`SessionMachine.poll_frame`,
:meth:`SessionMachine.poll_event` and :meth:`SessionMachine.poll_timeout`
after each input.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Dict, List, Optional, Union

from . import protocol as p
from .protocol import Json, MemberInfo, Response, ServerError, ServerFrame


@dataclass
class MachineConfig:
    """Settings of the state machine (times in milliseconds)."""

    #: How long a request may stay unanswered before failing over.
    request_timeout_ms: float = 1000
    #: Added to a timed wait to get its request timeout.
    wait_slack_ms: float = 1000
    #: The largest clock drift assumed, in parts per million (1 %).
    max_drift_ppm: int = 10_000
    #: The first reconnect/retry backoff.
    backoff_min_ms: float = 100
    #: The longest backoff; backoffs double up to it.
    backoff_max_ms: float = 1000
    #: The cluster expected, sent in every ``Hello``.
    cluster_id: Optional[str] = None
    #: Credentials, sent in every ``Hello``.
    auth: Optional[str] = None
    #: Move to the leader a follower's ``Welcome`` names.
    follow_leader: bool = True
    #: How long the connected server may keep answering that it knows no
    #: leader before the client moves to another server: a server cut off
    #: from the majority, or removed, cannot serve while others can.
    leaderless_patience_ms: float = 1000


# ----- why an operation failed -----


@dataclass(frozen=True)
class Failure:
    """Why an operation failed: ``kind`` is ``server`` (with ``error``),
    ``session_lost``, ``closed``, ``no_session``, ``session_exists`` or
    ``unexpected_answer`` (with the answer in ``answer``)."""

    kind: str
    error: Optional[ServerError] = None
    answer: Json = None


@dataclass(frozen=True)
class LostReason:
    """Why the session was lost: its local lease ran out
    (``lease_expired``) or the cluster said it is gone (``rejected``, with
    the server's error)."""

    kind: str
    error: Optional[ServerError] = None


# ----- events for the driver -----


@dataclass(frozen=True)
class SessionOpened:
    """The answer to :meth:`SessionMachine.open_session`: the session id,
    or why it failed."""

    op: int
    session: Optional[int] = None
    failure: Optional[Failure] = None


@dataclass(frozen=True)
class Completed:
    """The answer to an operation: the ``Outcome`` JSON, or why it failed."""

    op: int
    outcome: Json = None
    failure: Optional[Failure] = None


@dataclass(frozen=True)
class SessionLost:
    """The session is lost; sent once, and nothing follows for it."""

    reason: LostReason


@dataclass(frozen=True)
class Reconnect:
    """The driver MUST drop the current connection, if any, and connect to
    ``to`` (its ``ws_addr``), or to any server it knows when ``to`` is
    None or has no WebSocket address; then call
    :meth:`SessionMachine.connected` or
    :meth:`SessionMachine.connection_lost`."""

    to: Optional[MemberInfo]


Event = Union[SessionOpened, Completed, SessionLost, Reconnect]


@dataclass
class _Op:
    body: Json
    seq: Optional[int]
    rid: Optional[int] = None
    first_sent: Optional[float] = None
    deadline: Optional[float] = None
    retry_at: Optional[float] = None
    backoff: float = 0


@dataclass
class _InFlight:
    kind: str  # "op", "keepalive" or "attach"
    op: int = 0
    sent_at: float = 0
    deadline: float = 0


@dataclass
class _Session:
    state: str = "none"  # none, opening, open, closed, lost
    op: int = 0
    id: int = 0
    ttl_ms: float = 0
    lease_until: float = 0
    secret: int = 0


@dataclass
class _Conn:
    state: str = "connecting"  # connecting, connected, backoff
    until: float = 0


def _command(body: Json) -> str:
    """The log command's name of a request body, "" for others."""
    if isinstance(body, dict) and "Log" in body:
        return p.tag_of(body["Log"])
    return ""


def _waits(body: Json) -> bool:
    if _command(body) != "Acquire":
        return False
    w = body["Log"]["Acquire"]["wait"]
    return w == "Forever" or (isinstance(w, dict) and int(w.get("For", 0)) > 0)


def _failure_event(op: int, body: Json, failure: Failure) -> Event:
    if _command(body) == "OpenSession":
        return SessionOpened(op, failure=failure)
    return Completed(op, failure=failure)


class SessionMachine:
    """One client's session and connection state; see the module doc."""

    def __init__(self, config: Optional[MachineConfig] = None) -> None:
        self.config = config or MachineConfig()
        self._session = _Session()
        self._conn = _Conn()
        self._members: List[MemberInfo] = []
        self._next_member = 0
        self._reconnect_backoff = self.config.backoff_min_ms
        self._followed_hint = False
        self._leaderless_since: Optional[float] = None
        self._next_op = 1
        self._next_rid = 1
        self._next_seq = 1
        self._ops: Dict[int, _Op] = {}
        self._in_flight: Dict[int, _InFlight] = {}
        self._next_keepalive: Optional[float] = None
        self._frames: List[Json] = []
        self._events: List[Event] = []

    # ----- queries -----

    def session_id(self) -> Optional[int]:
        return self._session.id if self._session.state == "open" else None

    def lease_until(self) -> Optional[float]:
        """The local lease's end, or None when no session is open."""
        return self._session.lease_until if self._session.state == "open" else None

    def is_alive(self, now: float) -> bool:
        return self._session.state == "open" and now < self._session.lease_until

    def known_members(self) -> List[MemberInfo]:
        return list(self._members)

    def take_request_id(self) -> int:
        """A request id for a request outside the session (watches, reads)."""
        rid = self._next_rid
        self._next_rid += 1
        return rid

    # ----- outputs -----

    def poll_frame(self) -> Optional[Json]:
        return self._frames.pop(0) if self._frames else None

    def poll_event(self) -> Optional[Event]:
        return self._events.pop(0) if self._events else None

    def poll_timeout(self) -> Optional[float]:
        """When :meth:`handle_timeout` must be called next, if ever."""
        times: List[Optional[float]] = [self.lease_until()]
        if self._conn.state == "backoff":
            times.append(self._conn.until)
        elif self._conn.state == "connected":
            times.append(self._next_keepalive)
            for op in self._ops.values():
                times += [op.deadline, op.retry_at]
            times += [f.deadline for f in self._in_flight.values() if f.kind == "keepalive"]
        present = [t for t in times if t is not None]
        return min(present) if present else None

    # ----- commands: each returns an operation id or a Failure -----

    def open_session(self, ttl_ms: int, nonce: int, now: float) -> Union[int, Failure]:
        self._check_lease(now)
        state = self._session.state
        if state in ("opening", "open"):
            return Failure("session_exists")
        if state == "closed":
            return Failure("closed")
        if state == "lost":
            return Failure("session_lost")
        op = self._start(p.command("OpenSession", nonce=nonce, ttl_ms=ttl_ms), None, now)
        self._session = _Session(state="opening", op=op)
        return op

    def acquire(self, lock: str, mode: Json, wait: Json, lock_delay_ms: int, now: float) -> Union[int, Failure]:
        return self._session_command(
            "Acquire", now, lock=lock, mode=mode, wait=wait, lock_delay_ms=lock_delay_ms
        )

    def release(self, lock: str, token: int, now: float) -> Union[int, Failure]:
        return self._session_command("Release", now, lock=lock, token=token)

    def cancel_wait(self, lock: str, now: float) -> Union[int, Failure]:
        return self._session_command("CancelWait", now, lock=lock)

    def close(self, now: float) -> Union[int, Failure]:
        return self._session_command("CloseSession", now)

    # ----- inputs -----

    def connected(self, server: Optional[int], now: float) -> None:
        """A connection is up (to ``server``, if the driver knows which)."""
        # A connection made to follow a leader hint leaves the round
        # robin's place alone (see _learn_members).
        if server is not None and not self._followed_hint:
            for i, m in enumerate(self._members):
                if m.id == server:
                    self._next_member = i + 1
        self._check_lease(now)
        self._conn = _Conn("connected")
        self._in_flight.clear()
        self._frames = [p.hello(self.config.cluster_id, self.config.auth)]
        # Before anything that acts on the session: the proof that this
        # client opened it, checked in arrival order.
        if self._session.state == "open":
            rid = self.take_request_id()
            self._in_flight[rid] = _InFlight("attach")
            body = p.request_body("Attach", session=self._session.id, secret=self._session.secret)
            self._frames.append(p.request(rid, body))
        for op_id in list(self._ops):
            self._send_op(op_id, now)
        if self._session.state == "open":
            self._send_keepalive(now)

    def connection_lost(self, now: float) -> None:
        """The connection failed, closed, or could not be made."""
        self._check_lease(now)
        if self._conn.state == "backoff":
            return
        self._forget_connection()
        self._followed_hint = False
        self._conn = _Conn("backoff", now + self._reconnect_backoff)
        self._reconnect_backoff = min(self._reconnect_backoff * 2, self.config.backoff_max_ms)

    def handle_frame(self, frame: ServerFrame, now: float) -> None:
        self._check_lease(now)
        if self._conn.state != "connected":
            return
        if isinstance(frame, p.Welcome):
            self._learn_members(frame.node_id, frame.leader_hint, frame.members)
            self._reconnect_backoff = self.config.backoff_min_ms
            self._follow_leader_hint(frame.node_id, frame.leader_hint)
        elif isinstance(frame, Response):
            self._on_response(frame, now)
        elif isinstance(frame, p.ErrorFrame):
            self.connection_lost(now)

    def handle_timeout(self, now: float) -> None:
        self._check_lease(now)
        if self._conn.state == "backoff":
            if now >= self._conn.until:
                self._conn = _Conn("connecting")
                self._events.append(Reconnect(self._next_target()))
            return
        if self._conn.state != "connected":
            return
        op_timed_out = any(op.deadline is not None and now >= op.deadline for op in self._ops.values())
        ka_timed_out = any(f.kind == "keepalive" and now >= f.deadline for f in self._in_flight.values())
        if op_timed_out or ka_timed_out:
            self.connection_lost(now)
            return
        for op_id, op in list(self._ops.items()):
            if op.retry_at is None or now < op.retry_at:
                continue
            # Re-asking a waiting acquire on the same connection keeps its
            # deadline: the wait does not start over.
            keep = op.deadline if _waits(op.body) else None
            self._send_op(op_id, now)
            if keep is not None:
                op.deadline = keep
        if self._next_keepalive is not None and now >= self._next_keepalive:
            self._send_keepalive(now)

    # ----- internals -----

    def _session_command(self, name: str, now: float, **fields: Json) -> Union[int, Failure]:
        session = self._live_session(now)
        if isinstance(session, Failure):
            return session
        seq = self._next_seq
        self._next_seq += 1
        body = p.command(name, session=session, seq=seq, ack=seq, **fields)
        return self._start(body, seq, now)

    def _live_session(self, now: float) -> Union[int, Failure]:
        self._check_lease(now)
        state = self._session.state
        if state == "open":
            return self._session.id
        if state == "closed":
            return Failure("closed")
        if state == "lost":
            return Failure("session_lost")
        return Failure("no_session")

    def _ack(self) -> int:
        seqs = [op.seq for op in self._ops.values() if op.seq is not None]
        return min(seqs) if seqs else self._next_seq

    def _start(self, body: Json, seq: Optional[int], now: float) -> int:
        op_id = self._next_op
        self._next_op += 1
        self._ops[op_id] = _Op(body, seq, backoff=self.config.backoff_min_ms)
        if self._conn.state == "connected":
            self._send_op(op_id, now)
        return op_id

    def _timeout_of(self, body: Json) -> Optional[float]:
        if _command(body) == "Acquire":
            wait = body["Log"]["Acquire"]["wait"]
            if wait == "Try":
                return self.config.request_timeout_ms
            if wait == "Forever":
                return None
            ms = float(wait["For"])
            return self.config.request_timeout_ms if ms == 0 else ms + self.config.wait_slack_ms
        return self.config.request_timeout_ms

    def _send_op(self, op_id: int, now: float) -> None:
        op = self._ops.get(op_id)
        if op is None:
            return
        ack = self._ack()
        rid = self.take_request_id()
        if op.rid is not None:
            self._in_flight.pop(op.rid, None)
        op.rid = rid
        name = _command(op.body)
        if name and "ack" in op.body["Log"][name]:
            op.body["Log"][name]["ack"] = ack
        if op.first_sent is None:
            op.first_sent = now
        timeout = self._timeout_of(op.body)
        op.deadline = None if timeout is None else now + timeout
        # A waiting acquire is asked again now and then: its answer may be
        # lost with a forward, and the cluster answers a retry from its
        # dedupe table (or not at all while still queued).
        op.retry_at = now + self.config.request_timeout_ms if _waits(op.body) else None
        self._in_flight[rid] = _InFlight("op", op=op_id)
        self._frames.append(p.request(rid, copy.deepcopy(op.body)))

    def _send_keepalive(self, now: float) -> None:
        if self._session.state != "open":
            return
        self._next_keepalive = now + self._session.ttl_ms / 3
        rid = self.take_request_id()
        self._in_flight[rid] = _InFlight(
            "keepalive", sent_at=now, deadline=now + self.config.request_timeout_ms
        )
        self._frames.append(p.request(rid, p.request_body("KeepAlive", session=self._session.id)))

    def _follow_leader_hint(self, node_id: int, leader_hint: Optional[int]) -> None:
        if leader_hint is None or leader_hint == node_id:
            return
        if self._followed_hint or not self.config.follow_leader:
            return
        # A leader whose WebSocket address is not known yet cannot be
        # dialled: the follower forwards meanwhile.
        target = next((m for m in self._members if m.id == leader_hint and m.ws_addr), None)
        if target is None:
            return
        self._followed_hint = True
        self._forget_connection()
        self._conn = _Conn("connecting")
        self._events.append(Reconnect(target))

    def _forget_connection(self) -> None:
        """Drops what belonged to the current connection; operations stay
        and are re-sent, with the same seqs, on the next one."""
        self._leaderless_since = None
        self._in_flight.clear()
        self._frames = []
        for op in self._ops.values():
            op.rid = None
            op.deadline = None
            op.retry_at = None

    def _learn_members(self, node_id: int, leader_hint: Optional[int], members: List[MemberInfo]) -> None:
        """Takes in the members a ``Welcome`` from ``node_id`` named. Only a
        leader's list is the whole truth; a server that lags behind or was
        removed names an old one, so other lists only add members, the list
        keeps its order, and the round robin reaches every server heard of."""
        if not members:
            return
        current = self._members[self._next_member].id if self._next_member < len(self._members) else None
        if leader_hint == node_id:
            ids = {m.id for m in members}
            self._members = [m for m in self._members if m.id in ids]
        for member in members:
            i = next((i for i, m in enumerate(self._members) if m.id == member.id), None)
            if i is None:
                self._members.append(member)
            else:
                known = self._members[i]
                # A server that has not learned a member's published address
                # yet says nothing about it: keep what is known.
                self._members[i] = MemberInfo(
                    member.id,
                    member.client_addr if member.client_addr else known.client_addr,
                    member.ws_addr if member.ws_addr is not None else known.ws_addr,
                )
        # Fail over to the server after this one first; if this one is no
        # member, or a leader hint brought the client here, keep the place
        # the round robin had reached, so that a stale hint cannot send the
        # client back and forth between two servers.
        here = next((i for i, m in enumerate(self._members) if m.id == node_id), None)
        if here is not None and not self._followed_hint:
            nxt = here + 1
        else:
            pos = next((i for i, m in enumerate(self._members) if m.id == current), None)
            nxt = pos if pos is not None else self._next_member
        self._next_member = nxt % len(self._members)

    def _next_target(self) -> Optional[MemberInfo]:
        if not self._members:
            return None
        i = self._next_member % len(self._members)
        self._next_member = (i + 1) % len(self._members)
        return self._members[i]

    def _lease_len(self, ttl_ms: float) -> float:
        ppm = min(self.config.max_drift_ppm, 499_999)
        return ttl_ms * (1_000_000 - 2 * ppm) / 1_000_000

    def _extend_lease(self, sent_at: float) -> None:
        s = self._session
        if s.state == "open":
            s.lease_until = max(s.lease_until, sent_at + self._lease_len(s.ttl_ms))

    def _check_lease(self, now: float) -> None:
        if self._session.state == "open" and now >= self._session.lease_until:
            self._lose(LostReason("lease_expired"))

    def _lose(self, reason: LostReason) -> None:
        if self._session.state in ("lost", "closed"):
            return
        self._session = _Session(state="lost")
        self._fail_all(Failure("session_lost"))
        self._events.append(SessionLost(reason))

    def _fail_all(self, failure: Failure) -> None:
        self._next_keepalive = None
        self._in_flight.clear()
        self._frames = [f for f in self._frames if "Hello" in f]
        ops = list(self._ops.items())
        self._ops.clear()
        for op_id, op in ops:
            self._events.append(_failure_event(op_id, op.body, failure))

    def _server_cannot_serve(self, err: Optional[ServerError], now: float) -> bool:
        """Whether to leave the connected server: it says so at once
        (shutting down, no link to the leader, session not attached), or
        has answered for ``leaderless_patience_ms`` that it knows no leader."""
        if err is not None and err.category == "elsewhere":
            return True
        leaderless = err is not None and (
            err.kind == "NoLeader"
            or (err.kind == "NotLeader" and isinstance(err.detail, dict) and err.detail.get("leader_hint") is None)
        )
        if not leaderless:
            self._leaderless_since = None
            return False
        if self._leaderless_since is None:
            self._leaderless_since = now
        return now - self._leaderless_since >= self.config.leaderless_patience_ms

    def _retry_later(self, op_id: int, now: float) -> None:
        op = self._ops.get(op_id)
        if op is None:
            return
        if op.rid is not None:
            self._in_flight.pop(op.rid, None)
        op.rid = None
        op.deadline = None
        op.retry_at = now + op.backoff
        op.backoff = min(op.backoff * 2, self.config.backoff_max_ms)

    def _on_response(self, response: Response, now: float) -> None:
        what = self._in_flight.pop(response.id, None)
        if what is None:
            return
        if self._server_cannot_serve(response.err, now):
            # What was in flight is re-sent, same seqs, to the next server.
            self.connection_lost(now)
            return
        err = response.err
        if what.kind == "attach":
            # Attached, or refused for now: the requests after it are then
            # refused NotAttached, which moves the client on.
            if err is not None and err.category == "session":
                self._lose(LostReason("rejected", err))
            return
        if what.kind == "keepalive":
            if err is None and p.tag_of(response.ok) == "KeepAliveAck":
                self._extend_lease(what.sent_at)
            elif err is not None and err.category == "session":
                self._lose(LostReason("rejected", err))
            elif self._next_keepalive is not None:
                # Retryable or odd: bring the next keepalive forward.
                self._next_keepalive = min(self._next_keepalive, now + self.config.backoff_min_ms)
            return
        op = self._ops.get(what.op)
        if op is not None:
            op.rid = None
            op.deadline = None
        self._on_op_answer(what.op, response, now)

    def _on_op_answer(self, op_id: int, response: Response, now: float) -> None:
        is_open = self._session.state == "opening" and self._session.op == op_id
        err = response.err
        if err is not None:
            if err.category in ("retry", "elsewhere"):
                self._retry_later(op_id, now)
                return
            op = self._ops.pop(op_id, None)
            if is_open:
                self._session = _Session()
                self._events.append(SessionOpened(op_id, failure=Failure("server", err)))
                return
            if err.category == "session" and err.kind == "Lock":
                self._events.append(Completed(op_id, failure=Failure("session_lost")))
                self._lose(LostReason("rejected", err))
                return
            if op is not None:
                self._events.append(_failure_event(op_id, op.body, Failure("server", err)))
            return
        ok = response.ok
        kind = p.tag_of(ok)
        if kind == "Lock" and ok["Lock"] == "Pending":
            self._retry_later(op_id, now)
            return
        op = self._ops.pop(op_id, None)
        if op is None:
            return
        if kind == "SessionOpened" and is_open:
            opened = ok["SessionOpened"]
            ttl_ms = float(opened["ttl_ms"])
            start = op.first_sent if op.first_sent is not None else now
            self._session = _Session(
                state="open",
                id=int(opened["session"]),
                ttl_ms=ttl_ms,
                lease_until=start + self._lease_len(ttl_ms),
                secret=int(op.body["Log"]["OpenSession"]["nonce"]),
            )
            self._next_keepalive = start + ttl_ms / 3
            self._events.append(SessionOpened(op_id, session=self._session.id))
            self._check_lease(now)
            return
        if kind == "Lock" and not is_open:
            self._events.append(Completed(op_id, outcome=ok["Lock"]))
            if _command(op.body) == "CloseSession" and self._session.state == "open":
                self._session = _Session(state="closed")
                self._fail_all(Failure("closed"))
            return
        self._events.append(_failure_event(op_id, op.body, Failure("unexpected_answer", answer=ok)))
        if is_open:
            self._session = _Session()


__all__ = [
    "MachineConfig",
    "SessionMachine",
    "Failure",
    "LostReason",
    "SessionOpened",
    "Completed",
    "SessionLost",
    "Reconnect",
    "Event",
]
