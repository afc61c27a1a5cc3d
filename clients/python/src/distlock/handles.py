"""What the client hands out: lock modes, :class:`LockRequest` (an
acquire to await or to use with ``async with``), :class:`Guard` (a granted
lock with its fencing token) and :class:`Watch` (a lock's events as an
async iterator)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, AsyncIterator, Dict, Generator, Optional, Union

from .errors import ClosedError, SessionLostError
from .protocol import Json, LockEvent

if TYPE_CHECKING:
    from .client import Client


#: A lock mode as the protocol spells it: :data:`EXCLUSIVE`, :data:`SHARED`
#: or :func:`semaphore_mode`.
Mode = Union[str, Dict[str, int]]
EXCLUSIVE: Mode = "Exclusive"
SHARED: Mode = "Shared"


def semaphore_mode(permits: int) -> Mode:
    """The mode of one permit of a semaphore of ``permits`` (its first
    acquirer fixes the count)."""
    if permits < 1:
        raise ValueError("a semaphore has at least one permit")
    return {"Semaphore": permits}


def wait_of(timeout: Optional[float]) -> Json:
    """``None`` waits for ever, 0 (or less) tries, else waits that long."""
    if timeout is None:
        return "Forever"
    ms = round(timeout * 1000)
    return "Try" if ms <= 0 else {"For": ms}


class LockRequest:
    """An acquire about to be made: await it for a :class:`Guard`, or use
    it as ``async with`` to release the lock on leaving the block."""

    def __init__(self, client: Client, name: str, mode: Mode, wait: Json, lock_delay_ms: int) -> None:
        self._client = client
        self._name = name
        self._mode = mode
        self._wait = wait
        self._lock_delay_ms = lock_delay_ms
        self._guard: Optional[Guard] = None

    def __await__(self) -> Generator[Any, None, "Guard"]:
        return self._client._acquire(self._name, self._mode, self._wait, self._lock_delay_ms).__await__()

    async def __aenter__(self) -> "Guard":
        self._guard = await self
        return self._guard

    async def __aexit__(self, *exc: object) -> None:
        if self._guard is not None:
            await self._guard._release_on_exit()


class Guard:
    """A granted lock. Present ``token`` (the fencing token) to the
    protected resource with every write. ``lost`` is an
    :class:`asyncio.Event` set if the session, and so the lock, is lost:
    ``await guard.lost.wait()``. ``async with guard:`` releases it on
    leaving the block."""

    def __init__(self, client: Client, name: str, token: int, mode: Mode) -> None:
        self._client = client
        #: The lock's name.
        self.name = name
        #: The grant's fencing token; tokens of a lock only ever increase.
        self.token = token
        #: How it is held.
        self.mode = mode
        #: Set once if the session is lost.
        self.lost = client.lost
        self.released = False

    @property
    def valid(self) -> bool:
        """Whether the lock is surely still held: not released, and the
        session's local lease runs."""
        return not self.released and self._client.is_alive()

    async def release(self) -> None:
        """Releases the lock and waits for the cluster's answer."""
        if self.released:
            return
        await self._client.release(self.name, self.token)
        self.released = True

    async def _release_on_exit(self) -> None:
        # A lost session has lost the lock already: nothing to release,
        # and guard.lost told the block.
        if self.released or self.lost.is_set():
            return
        try:
            await self.release()
        except (SessionLostError, ClosedError):
            pass

    async def __aenter__(self) -> "Guard":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._release_on_exit()

    def __repr__(self) -> str:
        return f"Guard(name={self.name!r}, token={self.token}, mode={self.mode!r})"


class Watch:
    """An async iterator of a lock's :class:`~distlock.protocol.LockEvent`\\ s."""

    def __init__(self, client: Client, name: str, queue: "asyncio.Queue[Optional[LockEvent]]") -> None:
        self._client = client
        self._name = name
        self._queue = queue
        self._done = False

    def __aiter__(self) -> AsyncIterator[LockEvent]:
        return self

    async def __anext__(self) -> LockEvent:
        if self._done:
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is None:
            self._done = True
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        """Stops the watch."""
        self._done = True
        self._client._unwatch(self._name, self._queue)

    async def __aenter__(self) -> "Watch":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
