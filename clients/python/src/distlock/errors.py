"""The exceptions the client raises, all :class:`DistlockError`s (and
:class:`ProtocolError` for a server message it cannot read)."""

from __future__ import annotations

from typing import Optional

from .machine import Failure, LostReason
from .protocol import DistlockError, Json, ProtocolError, ServerError, encode


class ConnectError(DistlockError):
    """No server could be reached (or each refused the connection); the
    last reason is the exception's ``__cause__``."""


class SessionLostError(DistlockError):
    """The session is lost: its local lease ran out, or the cluster said it
    ended. Every lock it held must be considered gone. Final."""

    def __init__(self, reason: Optional[LostReason] = None) -> None:
        self.reason = reason
        why = ""
        if reason is not None:
            why = ": its lease ran out" if reason.kind == "lease_expired" else f": {reason.error}"
        super().__init__("the session is lost" + why)


class ClosedError(DistlockError):
    """The session or the client was closed."""


class NoSessionError(DistlockError):
    """No session is open (or one is already open, for ``open_session``)."""


class UnexpectedAnswer(DistlockError):
    """The server answered with something this client does not expect
    (possibly a kind added to the protocol after this client was built)."""

    def __init__(self, answer: Json) -> None:
        self.answer = answer
        super().__init__(f"the server answered something unexpected: {encode(answer)}")


class NotGranted(DistlockError):
    """An acquire was not granted: ``reason`` is ``Busy`` (a try found it
    held; ``delayed`` when a lock-delay was the reason), ``TimedOut`` or
    ``Cancelled``."""

    def __init__(self, lock: str, error: ServerError) -> None:
        self.lock = lock
        self.error = error
        self.reason = error.lock or error.kind
        detail = error.detail.get(self.reason) if isinstance(error.detail, dict) else None
        self.delayed = bool(isinstance(detail, dict) and detail.get("delayed"))
        super().__init__(f"{lock!r} was not granted ({self.reason})")


def from_failure(failure: Failure, lost: Optional[LostReason] = None) -> DistlockError:
    """The exception for a failed machine operation."""
    if failure.kind == "server" and failure.error is not None:
        return failure.error
    if failure.kind == "session_lost":
        return SessionLostError(lost)
    if failure.kind == "closed":
        return ClosedError("the session is closed")
    if failure.kind == "no_session":
        return NoSessionError("no session is open")
    if failure.kind == "session_exists":
        return NoSessionError("this client has a session already")
    return UnexpectedAnswer(failure.answer)


__all__ = [
    "DistlockError",
    "ProtocolError",
    "ServerError",
    "ConnectError",
    "SessionLostError",
    "ClosedError",
    "NoSessionError",
    "UnexpectedAnswer",
    "NotGranted",
    "from_failure",
]
