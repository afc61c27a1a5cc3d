"""distlock: a Python client for the distlock lock service, over the
WebSocket JSON protocol.

Sessions keep themselves alive (a keepalive every ttl/3) and count a
conservative local lease; requests fail over between every member the
cluster lists and are retried exactly once by ``(session, seq)``; every
lock grant carries a fencing token that only ever increases.

    async with await distlock.connect(["127.0.0.1:7201"]) as client:
        async with client.lock("orders-db", timeout=5) as guard:
            await write(record, fencing_token=guard.token)

:mod:`distlock.sync` wraps the same client for code without asyncio.
"""

from __future__ import annotations

from . import sync
from .client import Client, connect
from .handles import EXCLUSIVE, SHARED, Guard, LockRequest, Mode, Watch, semaphore_mode
from .errors import (
    ClosedError,
    ConnectError,
    DistlockError,
    NoSessionError,
    NotGranted,
    ProtocolError,
    ServerError,
    SessionLostError,
    UnexpectedAnswer,
)
from .machine import LostReason, MachineConfig
from .protocol import LockEvent, MemberInfo

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ClosedError",
    "ConnectError",
    "DistlockError",
    "EXCLUSIVE",
    "Guard",
    "LockEvent",
    "LockRequest",
    "LostReason",
    "MachineConfig",
    "MemberInfo",
    "Mode",
    "NoSessionError",
    "NotGranted",
    "ProtocolError",
    "SHARED",
    "ServerError",
    "SessionLostError",
    "UnexpectedAnswer",
    "Watch",
    "connect",
    "semaphore_mode",
    "sync",
]
