"""A real 3-server cluster for the integration tests, started with the
command lines the README documents (``distlock serve --id --data-dir
--client-addr --peer-addr --peers``, plus ``--ws-addr`` for WebSocket).

The binary is ``$DISTLOCK_BIN``, else the workspace's ``target/debug/distlock``
(``scripts/python-test`` builds it)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Coroutine, Dict, List, Optional, Union

import distlock

ROOT = Path(__file__).resolve().parents[3]


def distlock_bin() -> str:
    path = os.environ.get("DISTLOCK_BIN") or str(ROOT / "target" / "debug" / "distlock")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"no distlock binary at {path}: build it with `cargo build -p distlock` or set DISTLOCK_BIN")
    return path


def free_ports(n: int) -> List[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Cluster:
    """Three ``distlock serve`` processes on free local ports."""

    def __init__(self, n: int = 3) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="distlock-py-")
        ports = free_ports(3 * n)
        self.ids = list(range(1, n + 1))
        self.client = {i: f"127.0.0.1:{ports[i - 1]}" for i in self.ids}
        self.peer = {i: f"127.0.0.1:{ports[n + i - 1]}" for i in self.ids}
        self.ws = {i: f"127.0.0.1:{ports[2 * n + i - 1]}" for i in self.ids}
        self.procs: Dict[int, subprocess.Popen[bytes]] = {}
        peers = ",".join(f"{i}={self.peer[i]}" for i in self.ids)
        for i in self.ids:
            log = open(Path(self.dir.name) / f"n{i}.log", "wb")
            self.procs[i] = subprocess.Popen(
                [
                    distlock_bin(),
                    "serve",
                    "--id",
                    str(i),
                    "--data-dir",
                    str(Path(self.dir.name) / f"d{i}"),
                    "--client-addr",
                    self.client[i],
                    "--peer-addr",
                    self.peer[i],
                    "--peers",
                    peers,
                    "--ws-addr",
                    self.ws[i],
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()

    def servers(self) -> List[str]:
        """Every server's WebSocket address."""
        return [self.ws[i] for i in self.ids]

    def kill(self, node: int) -> None:
        """kill -9."""
        proc = self.procs[node]
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def logs(self) -> str:
        out = []
        for i in self.ids:
            path = Path(self.dir.name) / f"n{i}.log"
            if path.exists():
                out.append(f"--- server {i} ---\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(out)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        self.dir.cleanup()

    async def wait_ready(self, deadline: float = 60.0) -> None:
        """Until a leader is elected and every member's WebSocket address
        is published (so clients can fail over to each)."""

        async def ready() -> bool:
            try:
                client = await distlock.connect(self.servers(), ttl=None)
            except distlock.DistlockError:
                return False
            try:
                status = await asyncio.wait_for(client.cluster_status(), 2)
                published = {m.id for m in client.members() if m.ws_addr}
                return status.get("leader") is not None and published == set(self.ids)
            except (distlock.DistlockError, asyncio.TimeoutError):
                return False
            finally:
                await client.close()

        await wait_until(ready, deadline, "the cluster elects a leader")


async def wait_until(check: Callable[[], Union[bool, Awaitable[bool]]], deadline: float, what: str) -> None:
    """Polls ``check`` (sync or async) until true; fails after ``deadline`` s."""
    end = time.monotonic() + deadline
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


def run(body: Callable[[], Coroutine[Any, Any, None]], cluster: Optional[Cluster] = None) -> None:
    """Runs an async test body; shows the servers' logs if it fails."""
    try:
        asyncio.run(body())
    except BaseException:
        if cluster is not None:
            print(cluster.logs())
        raise
