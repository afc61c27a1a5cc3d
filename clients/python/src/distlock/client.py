"""The asyncio client: a driver of the :class:`~distlock.machine.SessionMachine`
over WebSocket text (JSON) frames, with the ``websockets`` library.

The driver holds no protocol logic: it dials what the machine asks for,
feeds it frames, connection changes and timer expiries, and hands the
machine's answers to the coroutines waiting for them. Reads outside the
session (token checks, lock and cluster status) and watches are re-sent on
every new connection until answered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from dataclasses import dataclass
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    List,
    Optional,
    Sequence,
    Set,
    Union,
)

from websockets.asyncio.client import ClientConnection, connect as ws_connect

from . import protocol as p
from .errors import (
    ClosedError,
    ConnectError,
    NotGranted,
    UnexpectedAnswer,
    from_failure,
)
from .handles import EXCLUSIVE, SHARED, Guard, LockRequest, Mode, Watch, semaphore_mode, wait_of
from .machine import (
    Completed,
    Failure,
    LostReason,
    MachineConfig,
    Reconnect,
    SessionLost,
    SessionMachine,
    SessionOpened,
)
from .protocol import DistlockError, Json, LockEvent, MemberInfo, ProtocolError, ServerError


def _url(server: str) -> str:
    """``host:port`` (the server's ``--ws-addr``) or a ``ws://``/``wss://`` URL."""
    if server.startswith(("ws://", "wss://")):
        return server
    return f"ws://{server}/"


@dataclass
class _Query:
    body: Json
    future: "asyncio.Future[Json]"


class _Conn:
    """One WebSocket connection, numbered so that late events of an old one
    are ignored."""

    def __init__(self, generation: int, url: str, server: Optional[int]) -> None:
        self.generation = generation
        self.url = url
        self.server = server
        self.ws: Optional[ClientConnection] = None
        self.outbox: "asyncio.Queue[Optional[str]]" = asyncio.Queue()
        self.open = False
        self.task: Optional["asyncio.Task[None]"] = None


class Client:
    """A connection to a distlock cluster over WebSocket, holding at most
    one session. Make one with :func:`connect` (or :meth:`Client.connect`).

    ``lost`` is an :class:`asyncio.Event` set once, when the session is
    lost (its local lease ran out, or the cluster said it ended); every lock
    the session held must then be considered gone.
    """

    def __init__(
        self,
        servers: Sequence[str],
        *,
        config: Optional[MachineConfig] = None,
        connect_timeout: float = 1.0,
        clock: Optional[Callable[[], float]] = None,
    ) -> None:
        if not servers:
            raise ConnectError("no server addresses were given")
        self._urls = [_url(s) for s in servers]
        self._machine = SessionMachine(config or MachineConfig())
        self._connect_timeout = connect_timeout
        self._clock = clock or (lambda: time.monotonic() * 1000)
        self._conn: Optional[_Conn] = None
        self._generation = 0
        self._next_url = 0
        self._timer: Optional[asyncio.TimerHandle] = None
        self._ops: Dict[int, "asyncio.Future[Any]"] = {}
        self._queries: Dict[int, _Query] = {}
        self._watchers: Dict[str, Set["asyncio.Queue[Optional[LockEvent]]"]] = {}
        self._lost_listeners: List[Callable[[LostReason], None]] = []
        self._first: Optional["asyncio.Future[None]"] = None
        self._closed = False
        self._background: Set["asyncio.Task[Any]"] = set()
        self.lost = asyncio.Event()
        #: Why the session was lost, once it was.
        self.lost_reason: Optional[LostReason] = None
        #: The server this client talks to now, as its ``Welcome`` said.
        self.server: Optional[int] = None

    # ----- opening and closing -----

    @classmethod
    async def connect(
        cls,
        servers: Sequence[str],
        *,
        ttl: Optional[float] = 10.0,
        cluster_id: Optional[str] = None,
        auth: Optional[str] = None,
        config: Optional[MachineConfig] = None,
        connect_timeout: float = 1.0,
    ) -> "Client":
        """Connects to the first of ``servers`` that accepts (each a
        server's WebSocket address, ``host:port``, or a ``ws://`` URL) and,
        unless ``ttl`` is None, opens the session with a lease of ``ttl``
        seconds. Later failovers go to every member the cluster lists."""
        cfg = dataclasses.replace(config) if config is not None else MachineConfig()
        if cluster_id is not None:
            cfg.cluster_id = cluster_id
        if auth is not None:
            cfg.auth = auth
        client = cls(servers, config=cfg, connect_timeout=connect_timeout)
        try:
            last: BaseException = ConnectError("no server accepted")
            for i, url in enumerate(client._urls):
                try:
                    await client._dial_first(url)
                    client._next_url = i + 1
                    break
                except (DistlockError, ProtocolError, OSError) as e:
                    last = e
            else:
                raise ConnectError(f"could not connect to any distlock server: {last}") from last
            if ttl is not None:
                await client.open_session(ttl)
        except BaseException:
            # Failed or cancelled: nothing may keep running.
            client._shut()
            raise
        return client

    async def open_session(self, ttl: float = 10.0) -> int:
        """Opens this client's session with a lease of ``ttl`` seconds (1 to
        300); returns its id."""
        nonce = secrets.randbits(128)
        ms = round(ttl * 1000)
        session = await self._run(lambda now: self._machine.open_session(ms, nonce, now))
        return int(session)

    async def close_session(self) -> None:
        """Closes the session, releasing every lock it holds at once."""
        outcome = await self._run(self._machine.close)
        if outcome != "Closed":
            raise UnexpectedAnswer(outcome)

    async def close(self) -> None:
        """Closes the session if it is open (releasing its locks), then the
        connection; what is still outstanding fails with :class:`ClosedError`."""
        if self._closed:
            return
        if self._machine.is_alive(self._clock()):
            try:
                await asyncio.wait_for(self.close_session(), self._machine.config.request_timeout_ms / 1000 * 3)
            except (DistlockError, asyncio.TimeoutError):
                pass  # the session's lease ends it anyway
        task = self._conn.task if self._conn is not None else None
        self._shut()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    def _shut(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._drop_connection()
        for fut in self._ops.values():
            if not fut.done():
                fut.set_exception(ClosedError("the client is closed"))
        self._ops.clear()
        for q in self._queries.values():
            if not q.future.done():
                q.future.set_exception(ClosedError("the client is closed"))
        self._queries.clear()
        for queues in self._watchers.values():
            for queue in queues:
                queue.put_nowait(None)
        self._watchers.clear()
        for task in list(self._background):
            task.cancel()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ----- the session's state -----

    @property
    def session_id(self) -> Optional[int]:
        return self._machine.session_id()

    def is_alive(self) -> bool:
        """Whether the session's local lease runs now: act on a lock only
        while it does."""
        return self._machine.is_alive(self._clock())

    def lease_remaining(self) -> Optional[float]:
        """Seconds left on the local lease, or None with no open session."""
        until = self._machine.lease_until()
        return None if until is None else max(0.0, (until - self._clock()) / 1000)

    def members(self) -> List[MemberInfo]:
        """The cluster's members as last listed."""
        return self._machine.known_members()

    def on_session_lost(self, listener: Callable[[LostReason], None]) -> None:
        """Calls ``listener`` once, if the session is lost."""
        if self.lost_reason is not None:
            listener(self.lost_reason)
        else:
            self._lost_listeners.append(listener)

    # ----- locks -----

    def lock(
        self,
        name: str,
        timeout: Optional[float] = None,
        *,
        mode: Mode = EXCLUSIVE,
        lock_delay: float = 0.0,
    ) -> "LockRequest":
        """Takes ``name`` in ``mode``, waiting at most ``timeout`` seconds
        (None: for as long as it takes; 0: only if free now). Use it as
        ``async with client.lock(name) as guard:`` (released on leaving) or
        ``guard = await client.lock(name)``. Raises :class:`NotGranted` when
        the lock is busy, the wait timed out or was cancelled.
        ``lock_delay`` (seconds, at most 60) keeps the lock unavailable that
        long if this session expires while holding it."""
        return LockRequest(self, name, mode, wait_of(timeout), round(lock_delay * 1000))

    def shared(self, name: str, timeout: Optional[float] = None, *, lock_delay: float = 0.0) -> "LockRequest":
        """Takes ``name`` shared (many readers, no writer)."""
        return self.lock(name, timeout, mode=SHARED, lock_delay=lock_delay)

    def semaphore(
        self, name: str, permits: int, timeout: Optional[float] = None, *, lock_delay: float = 0.0
    ) -> "LockRequest":
        """Takes one of ``permits`` permits of the semaphore ``name``."""
        return self.lock(name, timeout, mode=semaphore_mode(permits), lock_delay=lock_delay)

    async def try_lock(self, name: str, *, mode: Mode = EXCLUSIVE, lock_delay: float = 0.0) -> Optional["Guard"]:
        """Takes ``name`` if it can be granted now; None if not."""
        try:
            return await self.lock(name, 0, mode=mode, lock_delay=lock_delay)
        except NotGranted:
            return None

    async def release(self, name: str, token: int) -> None:
        """Releases ``name`` held with ``token``."""
        outcome = await self._run(lambda now: self._machine.release(name, token, now))
        if outcome != "Released":
            raise UnexpectedAnswer(outcome)

    async def cancel_wait(self, name: str) -> None:
        """Stops waiting for ``name`` (the waiting acquire fails with
        :class:`NotGranted`, reason ``Cancelled``)."""
        await self._run(lambda now: self._machine.cancel_wait(name, now))

    async def _acquire(self, name: str, mode: Mode, wait: Json, lock_delay_ms: int) -> "Guard":
        fut = self._start(lambda now: self._machine.acquire(name, mode, wait, lock_delay_ms, now))
        try:
            outcome = await asyncio.shield(fut)
        except asyncio.CancelledError:
            # The caller gave up: withdraw the wait, and give back a grant
            # that raced the withdrawal.
            self._spawn(self._abandon(name, fut))
            raise
        except ServerError as e:
            if e.lock in ("Busy", "TimedOut", "Cancelled"):
                raise NotGranted(name, e) from None
            raise
        granted = outcome.get("Granted") if isinstance(outcome, dict) else None
        if not isinstance(granted, dict) or not isinstance(granted.get("token"), int):
            raise UnexpectedAnswer(outcome)
        return Guard(self, name, int(granted["token"]), mode)

    async def _abandon(self, name: str, fut: "asyncio.Future[Any]") -> None:
        try:
            if not fut.done():
                await self.cancel_wait(name)
            outcome = await fut
        except DistlockError:
            return
        granted = outcome.get("Granted") if isinstance(outcome, dict) else None
        if isinstance(granted, dict):
            try:
                await self.release(name, int(granted["token"]))
            except DistlockError:
                pass

    # ----- reads -----

    async def check_token(self, name: str, token: int) -> bool:
        """Whether ``token`` is a current grant of ``name`` (a linearizable
        read through the leader): a resource may ask before a write."""
        r = await self._query(p.request_body("CheckToken", lock=name, token=token))
        if isinstance(r, dict) and isinstance(r.get("TokenValid"), bool):
            return bool(r["TokenValid"])
        raise UnexpectedAnswer(r)

    async def lock_status(self, name: str) -> Optional[Dict[str, Any]]:
        """The lock's mode, kind, holders, waiters and lock-delay as the
        protocol spells them (PROTOCOL.md §5.5); None for a free lock."""
        r = await self._query(p.request_body("LockStatus", lock=name))
        if isinstance(r, dict) and "LockStatus" in r:
            view = r["LockStatus"]
            if view is None or isinstance(view, dict):
                return view
        raise UnexpectedAnswer(r)

    async def cluster_status(self) -> Dict[str, Any]:
        """The leader, term, commit index and members, as the connected
        server sees them (PROTOCOL.md §5.5)."""
        r = await self._query(p.request_body("ClusterStatus"))
        if isinstance(r, dict) and isinstance(r.get("ClusterStatus"), dict):
            view: Dict[str, Any] = r["ClusterStatus"]
            return view
        raise UnexpectedAnswer(r)

    def watch(self, name: str) -> "Watch":
        """The events of ``name`` (acquired, released, expired) as they are
        applied, as an async iterator::

            async with client.watch(name) as events:
                async for event in events:
                    ...

        The watch follows the client across failovers (events applied while
        it reconnects are not replayed). Leaving the ``async with`` block,
        or :meth:`Watch.aclose`, ends it; closing the client ends the
        iteration."""
        if self._closed:
            raise ClosedError("the client is closed")
        queue: "asyncio.Queue[Optional[LockEvent]]" = asyncio.Queue()
        queues = self._watchers.setdefault(name, set())
        if not queues:
            self._send_raw(p.request(self._machine.take_request_id(), p.request_body("Watch", lock=name)))
        queues.add(queue)
        return Watch(self, name, queue)

    def _unwatch(self, name: str, queue: "asyncio.Queue[Optional[LockEvent]]") -> None:
        queues = self._watchers.get(name)
        if queues is None or queue not in queues:
            return
        queues.discard(queue)
        if not queues:
            del self._watchers[name]
            self._send_raw(p.request(self._machine.take_request_id(), p.request_body("Unwatch", lock=name)))

    # ----- operations on the machine -----

    def _start(self, start: Callable[[float], Union[int, Failure]]) -> "asyncio.Future[Any]":
        fut: "asyncio.Future[Any]" = asyncio.get_running_loop().create_future()
        if self._closed:
            fut.set_exception(ClosedError("the client is closed"))
            return fut
        op = start(self._clock())
        if isinstance(op, Failure):
            fut.set_exception(from_failure(op, self.lost_reason))
        else:
            self._ops[op] = fut
        self._pump()
        return fut

    async def _run(self, start: Callable[[float], Union[int, Failure]]) -> Any:
        return await self._start(start)

    async def _query(self, body: Json) -> Json:
        if self._closed:
            raise ClosedError("the client is closed")
        fut: "asyncio.Future[Json]" = asyncio.get_running_loop().create_future()
        query = _Query(body, fut)
        timeout = self._machine.config.request_timeout_ms / 1000
        try:
            while True:
                self._send_query(query)
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), timeout)
                except asyncio.TimeoutError:
                    # No answer: the connection is broken or the server
                    # cannot serve; move on, and ask again there.
                    self._forget_query(query)
                    if self._conn is not None and self._conn.open:
                        self._connection_failed(self._conn.generation, ConnectionError("a read timed out"))
        finally:
            self._forget_query(query)
            if not fut.done():
                fut.cancel()

    def _forget_query(self, query: _Query) -> None:
        for rid in [rid for rid, q in self._queries.items() if q is query]:
            del self._queries[rid]

    def _send_query(self, query: _Query) -> int:
        rid = self._machine.take_request_id()
        self._queries[rid] = query
        self._send_raw(p.request(rid, query.body))
        return rid

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task: "asyncio.Task[Any]" = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ----- connections -----

    async def _dial_first(self, url: str) -> None:
        self._first = asyncio.get_running_loop().create_future()
        self._dial(url, None)
        try:
            await self._first
        finally:
            self._first = None

    def _dial(self, url: str, server: Optional[int]) -> None:
        self._generation += 1
        conn = _Conn(self._generation, url, server)
        self._conn = conn
        conn.task = asyncio.ensure_future(self._run_connection(conn))

    async def _run_connection(self, conn: _Conn) -> None:
        why: BaseException
        try:
            ws = await ws_connect(
                conn.url,
                open_timeout=self._connect_timeout,
                max_size=p.MAX_MESSAGE_BYTES,
                ping_interval=None,
                close_timeout=self._connect_timeout,
                compression=None,
            )
        except asyncio.CancelledError:
            raise
        except Exception as e:  # any failure to connect: failover handles it
            self._connection_failed(conn.generation, ConnectError(f"cannot connect to {conn.url}: {e}"))
            return
        if self._conn is not conn:
            await ws.close()
            return
        conn.ws = ws
        conn.open = True
        writer = asyncio.ensure_future(self._write(conn, ws))
        self._machine.connected(conn.server, self._clock())
        # The machine's Hello goes first, then the Attach and what it
        # re-sends; watches and reads concern the connection: ask again.
        self._pump()
        for name in self._watchers:
            self._send_raw(p.request(self._machine.take_request_id(), p.request_body("Watch", lock=name)))
        for rid, query in list(self._queries.items()):
            del self._queries[rid]
            self._send_query(query)
        try:
            async for message in ws:
                if self._conn is not conn:
                    break
                if not isinstance(message, str):
                    raise ProtocolError("a binary message on a connection that speaks JSON")
                self._on_frame(p.decode(message))
            why = ConnectionError("the server closed the connection")
        except ProtocolError as e:
            why = e
        except asyncio.CancelledError:
            writer.cancel()
            await ws.close()
            raise
        except Exception as e:  # the connection broke
            why = ConnectionError(f"the connection failed: {e}")
        writer.cancel()
        await ws.close()
        self._connection_failed(conn.generation, why)

    async def _write(self, conn: _Conn, ws: ClientConnection) -> None:
        try:
            while True:
                text = await conn.outbox.get()
                if text is None:
                    return
                await ws.send(text)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._connection_failed(conn.generation, ConnectionError(f"sending failed: {e}"))

    def _connection_failed(self, generation: int, why: BaseException) -> None:
        conn = self._conn
        if conn is None or conn.generation != generation:
            return
        self._drop_connection()
        if self._first is not None and not self._first.done():
            self._first.set_exception(why)
            return
        if self._closed:
            return
        self._machine.connection_lost(self._clock())
        self._pump()

    def _drop_connection(self) -> None:
        conn = self._conn
        self._conn = None
        if conn is None:
            return
        conn.open = False
        if conn.task is not None and conn.task is not asyncio.current_task():
            conn.task.cancel()
        elif conn.ws is not None:
            ws = conn.ws
            self._spawn(ws.close())

    def _on_frame(self, frame: p.ServerFrame) -> None:
        if isinstance(frame, p.Welcome):
            self.server = frame.node_id
            if self._first is not None and not self._first.done():
                self._first.set_result(None)
        elif isinstance(frame, LockEvent):
            for queue in self._watchers.get(frame.lock, ()):
                queue.put_nowait(frame)
            return
        elif isinstance(frame, p.Response):
            query = self._queries.pop(frame.id, None)
            if query is not None:
                self._answer_query(query, frame)
                return
        elif isinstance(frame, p.ErrorFrame):
            if self._first is not None and not self._first.done():
                self._first.set_exception(frame.error)
        self._machine.handle_frame(frame, self._clock())
        self._pump()

    def _answer_query(self, query: _Query, response: p.Response) -> None:
        if query.future.done():
            return
        if response.err is None:
            query.future.set_result(response.ok)
        elif response.err.category in ("retry", "elsewhere"):
            loop = asyncio.get_running_loop()
            loop.call_later(self._machine.config.backoff_min_ms / 1000, self._resend_query, query)
        else:
            query.future.set_exception(response.err)

    def _resend_query(self, query: _Query) -> None:
        if not query.future.done() and not self._closed:
            self._send_query(query)

    def _send_raw(self, frame: Json) -> None:
        """Sends a frame if connected (the Hello has gone first); dropped
        otherwise, and re-sent on the next connection."""
        conn = self._conn
        if conn is None or not conn.open:
            return
        text = p.encode(frame)
        if len(text.encode()) > p.MAX_MESSAGE_BYTES:
            raise DistlockError("a request over the 1 MiB frame limit")
        conn.outbox.put_nowait(text)

    def _pump(self) -> None:
        """Sends the machine's frames, delivers its events, re-arms the timer."""
        while True:
            frame = self._machine.poll_frame()
            while frame is not None:
                self._send_raw(frame)
                frame = self._machine.poll_frame()
            event = self._machine.poll_event()
            if event is None:
                break
            if isinstance(event, (SessionOpened, Completed)):
                fut = self._ops.pop(event.op, None)
                if fut is None or fut.done():
                    continue
                if event.failure is not None:
                    fut.set_exception(from_failure(event.failure, self.lost_reason))
                elif isinstance(event, SessionOpened):
                    fut.set_result(event.session)
                else:
                    fut.set_result(event.outcome)
            elif isinstance(event, SessionLost):
                self.lost_reason = event.reason
                self.lost.set()
                listeners, self._lost_listeners = self._lost_listeners, []
                for listener in listeners:
                    listener(event.reason)
            elif isinstance(event, Reconnect):
                self._drop_connection()
                if self._closed:
                    continue
                to = event.to
                if to is not None and to.ws_addr:
                    scheme = "wss" if self._urls[0].startswith("wss:") else "ws"
                    self._dial(f"{scheme}://{to.ws_addr}/", to.id)
                else:
                    url = self._urls[self._next_url % len(self._urls)]
                    self._next_url += 1
                    self._dial(url, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        at = self._machine.poll_timeout()
        if at is not None and not self._closed:
            delay = max(0.0, at - self._clock()) / 1000 + 0.001
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._closed:
            return
        self._machine.handle_timeout(self._clock())
        self._pump()


#: Connects and opens a session: :meth:`Client.connect`. Use as
#: ``async with await distlock.connect([...]) as client:``.
connect = Client.connect
