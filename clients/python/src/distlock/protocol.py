"""The distlock wire protocol as JSON (WebSocket text messages).

Frames are the exact serde_json encoding of the Rust ``ClientFrame`` and
``ServerFrame`` types (docs/PROTOCOL.md §12): enums are externally tagged,
a unit variant is its name as a string (``"ClusterStatus"``), any other
variant an object with one key (``{"Watch": {"lock": "a"}}``). Python's
``json`` reads and writes integers of any size exactly, so the 128-bit
session nonce needs no special care.

Frames are kept as plain JSON values (``dict``/``str``/``int``...). What
the client builds goes through two tables (:data:`REQUESTS`,
:data:`COMMANDS`) naming each variant's fields in wire order, and what the
server says about errors goes through one (:data:`ERRORS`), so that a new
protocol variant is one line here. A server frame, answer or error of a
kind this client does not know is decoded into a typed value naming it
(:class:`ServerError` with ``known=False``, :class:`ProtocolError`), never
a crash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

#: The protocol version this client speaks.
PROTOCOL_VERSION = 1

#: The largest message either side sends (1 MiB), as the servers enforce.
MAX_MESSAGE_BYTES = 1 << 20

#: A JSON value as the frames hold it.
Json = Any

#: Client requests outside the log: variant name -> its fields, in wire
#: order. An empty tuple is a unit variant (written as its name).
REQUESTS: Dict[str, Tuple[str, ...]] = {
    "KeepAlive": ("session",),
    "CheckToken": ("lock", "token"),
    "LockStatus": ("lock",),
    "ClusterStatus": (),
    "Watch": ("lock",),
    "Unwatch": ("lock",),
    "TakeSnapshot": ("max_len",),
    "SnapshotChunk": ("index", "offset", "max_len"),
    "Attach": ("session", "secret"),
}

#: Commands that go through the log (``RequestBody::Log``), same shape.
COMMANDS: Dict[str, Tuple[str, ...]] = {
    "OpenSession": ("nonce", "ttl_ms"),
    "CloseSession": ("session", "seq", "ack"),
    "Acquire": ("session", "seq", "ack", "lock", "mode", "wait", "lock_delay_ms"),
    "Release": ("session", "seq", "ack", "lock", "token"),
    "CancelWait": ("session", "seq", "ack", "lock"),
}

#: What each ``ProtoError`` (and, under ``Lock``, each ``LockError``)
#: means to a client: ``connection`` (sent as an ``Error`` frame, then the
#: server closes), ``retry`` (try again, here or elsewhere), ``elsewhere``
#: (leave this server at once), ``session`` (the session is gone for good)
#: or ``final`` (the request's one answer). Kinds not listed are final.
ERRORS: Dict[str, str] = {
    "UnsupportedVersion": "connection",
    "WrongCluster": "connection",
    "Unauthorized": "connection",
    "HelloRequired": "connection",
    "FrameTooLarge": "connection",
    "Malformed": "connection",
    "NotLeader": "retry",
    "NoLeader": "retry",
    "Lock": "final",
    "ShuttingDown": "elsewhere",
    "Overloaded": "retry",
    "Timeout": "retry",
    "UnknownSession": "session",
    "Membership": "final",
    "LeaderUnreachable": "elsewhere",
    "SnapshotUnavailable": "final",
    "NotAttached": "elsewhere",
    "NotSessionOwner": "session",
    "Forbidden": "final",
    "TooManyConnections": "connection",
    "TooManySessions": "final",
    "TooManyWatches": "final",
    "TooManyInFlight": "retry",
    "RateLimited": "retry",
    "FrameTimeout": "connection",
}

#: ``LockError`` kinds, same meanings; the rest of them are final.
LOCK_ERRORS: Dict[str, str] = {
    "SessionNotFound": "session",
    "SessionExpired": "session",
    "SessionClosed": "session",
    "StaleSequence": "final",
    "TooManyUnacknowledged": "final",
    "InvalidName": "final",
    "InvalidTtl": "final",
    "InvalidLockDelay": "final",
    "InvalidSemaphore": "final",
    "TooManySessions": "final",
    "TooManyLocks": "final",
    "TooManyWaiters": "final",
    "Busy": "final",
    "AlreadyHeld": "final",
    "AlreadyWaiting": "final",
    "ModeMismatch": "final",
    "SemaphoreMismatch": "final",
    "NotHolder": "final",
    "NotWaiting": "final",
    "TimedOut": "final",
    "Cancelled": "final",
    "InvalidSessionMeta": "final",
    "InvalidValue": "final",
}

#: The server frames a client can route, by tag.
SERVER_FRAMES = ("Welcome", "Response", "Watch", "Error")


class ProtocolError(Exception):
    """A server's message could not be understood: not JSON, not a frame,
    or a frame of an unknown kind or shape. The client drops the
    connection that carried it."""


class DistlockError(Exception):
    """The base of every error this package raises on purpose."""


class ServerError(DistlockError):
    """The cluster's answer was an error (a ``ProtoError``).

    ``kind`` is its variant name (``"NoLeader"``, ``"Lock"``...), ``detail``
    its fields, and ``lock`` the inner ``LockError`` when ``kind`` is
    ``"Lock"``. ``known`` is false for a kind this client does not know
    (a newer server's): such an error is treated as final.
    """

    def __init__(self, value: Json) -> None:
        self.value = value
        self.kind = tag_of(value)
        self.detail: Json = _payload(value)
        self.lock: Optional[str] = None
        if self.kind == "Lock":
            self.lock = tag_of(self.detail)
            self.known = self.lock in LOCK_ERRORS
        else:
            self.known = self.kind in ERRORS
        super().__init__(describe(value) + ("" if self.known else " (an error this client does not know)"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ServerError) and other.value == self.value

    def __hash__(self) -> int:
        return hash(encode(self.value))

    @property
    def category(self) -> str:
        """``connection``, ``retry``, ``elsewhere``, ``session`` or ``final``."""
        return classify(self.value)


def tag_of(value: Json) -> str:
    """The variant name of an externally tagged enum value ("" if none)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value)))
    return ""


def _payload(value: Json) -> Json:
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value.values()))
    return None


def variant(name: str, fields: Tuple[str, ...], values: Mapping[str, Json]) -> Json:
    """Builds variant ``name`` whose fields, in wire order, are ``fields``;
    refuses a missing or an unexpected field."""
    if set(values) != set(fields):
        raise TypeError(f"{name} takes the fields {list(fields)}, not {sorted(values)}")
    if not fields:
        return name
    return {name: {f: values[f] for f in fields}}


def request_body(name: str, **values: Json) -> Json:
    """A ``RequestBody`` outside the log, e.g. ``request_body("Watch", lock="a")``."""
    try:
        fields = REQUESTS[name]
    except KeyError:
        raise TypeError(f"unknown request {name!r}") from None
    return variant(name, fields, values)


def command(name: str, **values: Json) -> Json:
    """A ``RequestBody::Log`` command, e.g. ``command("Release", session=1, ...)``."""
    try:
        fields = COMMANDS[name]
    except KeyError:
        raise TypeError(f"unknown command {name!r}") from None
    return {"Log": variant(name, fields, values)}


def hello(cluster_id: Optional[str], auth: Optional[str]) -> Json:
    """The first frame of every connection."""
    return {"Hello": {"protocol_version": PROTOCOL_VERSION, "cluster_id": cluster_id, "auth": auth}}


def request(rid: int, body: Json) -> Json:
    """A ``ClientFrame::Request``."""
    return {"Request": {"id": rid, "body": body}}


def encode(frame: Json) -> str:
    """The frame as serde_json writes it: compact, UTF-8 left unescaped."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class MemberInfo:
    """A member as a ``Welcome`` lists it."""

    id: int
    client_addr: str
    ws_addr: Optional[str]


@dataclass(frozen=True)
class Welcome:
    node_id: int
    leader_hint: Optional[int]
    members: List[MemberInfo]


@dataclass(frozen=True)
class Response:
    """The answer to request ``id``: ``ok`` (a ``ResponseBody``) or ``err``."""

    id: int
    ok: Json = None
    err: Optional[ServerError] = None


@dataclass(frozen=True)
class LockEvent:
    """An event of a watched lock: ``kind`` is ``Acquired``, ``Released``
    or ``Expired`` (or a kind this client does not know, with its fields
    in ``detail``)."""

    lock: str
    kind: str
    index: Optional[int]
    session: Optional[int]
    token: Optional[int]
    mode: Json = None
    detail: Json = field(default=None, compare=False)


@dataclass(frozen=True)
class ErrorFrame:
    """A connection-level error; the server closes after it."""

    error: ServerError


ServerFrame = Union[Welcome, Response, LockEvent, ErrorFrame]


def _int(v: Json, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ProtocolError(f"{what}: expected an unsigned integer, got {v!r}")
    return int(v)


def _opt_int(v: Json, what: str) -> Optional[int]:
    return None if v is None else _int(v, what)


def _obj(v: Json, what: str) -> Dict[str, Json]:
    if not isinstance(v, dict):
        raise ProtocolError(f"{what}: expected an object, got {v!r}")
    return v


def _str(v: Json, what: str) -> str:
    if not isinstance(v, str):
        raise ProtocolError(f"{what}: expected a string, got {v!r}")
    return v


def decode(text: str) -> ServerFrame:
    """Reads a server's text message; :class:`ProtocolError` when it is not
    a frame this client can route."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ProtocolError(f"not JSON: {e}") from None
    tag = tag_of(value)
    if not isinstance(value, dict) or tag not in SERVER_FRAMES:
        shown = tag if tag else text[:80]
        raise ProtocolError(f"unknown server frame {shown!r}")
    body = value[tag]
    try:
        if tag == "Welcome":
            w = _obj(body, "Welcome")
            members = []
            for m in w["members"]:
                m = _obj(m, "member")
                ws = m.get("ws_addr")
                members.append(
                    MemberInfo(
                        _int(m["id"], "member id"),
                        _str(m["client_addr"], "client_addr"),
                        None if ws is None else _str(ws, "ws_addr"),
                    )
                )
            return Welcome(_int(w["node_id"], "node_id"), _opt_int(w["leader_hint"], "leader_hint"), members)
        if tag == "Response":
            r = _obj(body, "Response")
            rid = _int(r["id"], "response id")
            result = _obj(r["result"], "result")
            if "Ok" in result and len(result) == 1:
                return Response(rid, ok=result["Ok"])
            if "Err" in result and len(result) == 1:
                return Response(rid, err=ServerError(result["Err"]))
            raise ProtocolError(f"a result must be Ok or Err, got {sorted(result)}")
        if tag == "Watch":
            w = _obj(body, "Watch")
            ev = w["event"]
            detail = _obj(_payload(ev), "watch event")
            return LockEvent(
                lock=_str(w["lock"], "lock"),
                kind=tag_of(ev),
                index=_opt_int(detail.get("index"), "index"),
                session=_opt_int(detail.get("session"), "session"),
                token=_opt_int(detail.get("token"), "token"),
                mode=detail.get("mode"),
                detail=detail,
            )
        return ErrorFrame(ServerError(body))
    except (KeyError, TypeError, AttributeError) as e:
        raise ProtocolError(f"a {tag} frame of the wrong shape ({e!r})") from None


def classify(err: Json) -> str:
    """What an error means to the client (see :data:`ERRORS`)."""
    kind = tag_of(err)
    if kind == "Lock":
        return LOCK_ERRORS.get(tag_of(_payload(err)), "final")
    return ERRORS.get(kind, "final")


def is_retryable(err: Json) -> bool:
    """Whether the error says "try again, here or elsewhere"."""
    return classify(err) in ("retry", "elsewhere")


def is_session_gone(err: Json) -> bool:
    """Whether the error says the session is gone for good."""
    return classify(err) == "session"


def describe(err: Json) -> str:
    """A readable description of a protocol error."""
    kind = tag_of(err)
    payload = _payload(err)
    if isinstance(err, str) or payload is None:
        return kind or repr(err)
    if kind == "Lock":
        return f"Lock: {describe(payload)}"
    return f"{kind} {encode(payload)}"
