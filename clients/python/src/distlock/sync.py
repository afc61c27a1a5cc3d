"""A synchronous wrapper for scripts that do not use asyncio: the asyncio
:class:`~distlock.client.Client` runs on an event loop in a background
thread, and each call here waits for its result.

    with distlock.sync.connect(["127.0.0.1:7201"]) as client:
        with client.lock("nightly-report", timeout=30) as guard:
            write_report(fencing_token=guard.token)
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Awaitable, Dict, List, Optional, Sequence, TypeVar

from .client import Client
from .handles import EXCLUSIVE, SHARED, Guard, Mode, semaphore_mode
from .machine import LostReason, MachineConfig
from .protocol import MemberInfo

T = TypeVar("T")


class SyncClient:
    """A :class:`~distlock.client.Client` for synchronous code. ``lost`` is
    a :class:`threading.Event` set once if the session is lost."""

    def __init__(self, loop: asyncio.AbstractEventLoop, thread: threading.Thread, client: Client) -> None:
        self._loop = loop
        self._thread = thread
        self._client = client
        self.lost = threading.Event()
        self._call(self._watch_lost())

    async def _watch_lost(self) -> None:
        self._client.on_session_lost(lambda _reason: self.lost.set())

    def _call(self, coro: Awaitable[T], timeout: Optional[float] = None) -> T:
        return asyncio.run_coroutine_threadsafe(_as_coro(coro), self._loop).result(timeout)

    @property
    def lost_reason(self) -> Optional[LostReason]:
        return self._client.lost_reason

    @property
    def session_id(self) -> Optional[int]:
        return self._client.session_id

    @property
    def server(self) -> Optional[int]:
        return self._client.server

    def is_alive(self) -> bool:
        """Whether the session's local lease runs now."""
        return self._client.is_alive()

    def members(self) -> List[MemberInfo]:
        return self._client.members()

    def lock(
        self, name: str, timeout: Optional[float] = None, *, mode: Mode = EXCLUSIVE, lock_delay: float = 0.0
    ) -> "SyncGuard":
        """Takes ``name``, as :meth:`Client.lock`; a context manager that
        releases it on leaving the ``with`` block."""
        guard = self._call(_acquire(self._client, name, timeout, mode, lock_delay))
        return SyncGuard(self, guard)

    def shared(self, name: str, timeout: Optional[float] = None, *, lock_delay: float = 0.0) -> "SyncGuard":
        return self.lock(name, timeout, mode=SHARED, lock_delay=lock_delay)

    def semaphore(
        self, name: str, permits: int, timeout: Optional[float] = None, *, lock_delay: float = 0.0
    ) -> "SyncGuard":
        return self.lock(name, timeout, mode=semaphore_mode(permits), lock_delay=lock_delay)

    def try_lock(self, name: str, *, mode: Mode = EXCLUSIVE, lock_delay: float = 0.0) -> Optional["SyncGuard"]:
        """Takes ``name`` if it can be granted now; None if not."""
        guard = self._call(self._client.try_lock(name, mode=mode, lock_delay=lock_delay))
        return None if guard is None else SyncGuard(self, guard)

    def check_token(self, name: str, token: int) -> bool:
        return self._call(self._client.check_token(name, token))

    def lock_status(self, name: str) -> Optional[Dict[str, Any]]:
        return self._call(self._client.lock_status(name))

    def cluster_status(self) -> Dict[str, Any]:
        return self._call(self._client.cluster_status())

    def close(self) -> None:
        """Closes the session (releasing its locks) and the connection, and
        stops the background thread."""
        if not self._thread.is_alive():
            return
        try:
            self._call(self._client.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> "SyncClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncGuard:
    """A granted lock (see :class:`~distlock.client.Guard`); ``lost`` is the
    client's :class:`threading.Event`."""

    def __init__(self, client: SyncClient, guard: Guard) -> None:
        self._client = client
        self._guard = guard
        self.name = guard.name
        self.token = guard.token
        self.mode = guard.mode
        self.lost = client.lost

    @property
    def valid(self) -> bool:
        return self._guard.valid

    def release(self) -> None:
        self._client._call(self._guard.release())

    def __enter__(self) -> "SyncGuard":
        return self

    def __exit__(self, *exc: object) -> None:
        self._client._call(self._guard._release_on_exit())


async def _as_coro(aw: Awaitable[T]) -> T:
    return await aw


async def _acquire(client: Client, name: str, timeout: Optional[float], mode: Mode, lock_delay: float) -> Guard:
    return await client.lock(name, timeout, mode=mode, lock_delay=lock_delay)


def connect(
    servers: Sequence[str],
    *,
    ttl: Optional[float] = 10.0,
    cluster_id: Optional[str] = None,
    auth: Optional[str] = None,
    config: Optional[MachineConfig] = None,
    connect_timeout: float = 1.0,
) -> SyncClient:
    """Connects and opens a session (see :meth:`Client.connect`), with the
    client's event loop on a background thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="distlock", daemon=True)
    thread.start()
    future = asyncio.run_coroutine_threadsafe(
        Client.connect(
            servers, ttl=ttl, cluster_id=cluster_id, auth=auth, config=config, connect_timeout=connect_timeout
        ),
        loop,
    )
    try:
        client = future.result()
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        raise
    return SyncClient(loop, thread, client)
