"""Integration tests against a real 3-server cluster (tests/cluster.py)."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

import pytest

import distlock
from distlock import NotGranted, SessionLostError

from cluster import Cluster, run, wait_until


def test_contention_gives_strictly_increasing_tokens(cluster: Cluster) -> None:
    async def body() -> None:
        servers = cluster.servers()
        # Each client starts at another server.
        clients = [await distlock.connect(servers[i % 3 :] + servers[: i % 3], ttl=10) for i in range(4)]
        tokens: List[int] = []
        holder: List[Optional[int]] = [None]

        async def worker(n: int, client: distlock.Client) -> None:
            for _ in range(3):
                async with client.lock("contended", timeout=60) as guard:
                    assert holder[0] is None, f"client {n} granted while client {holder[0]} holds"
                    holder[0] = n
                    tokens.append(guard.token)
                    # A round trip while holding: the grant is current.
                    assert await client.check_token("contended", guard.token)
                    holder[0] = None

        await asyncio.gather(*(worker(n, c) for n, c in enumerate(clients)))
        assert len(tokens) == 12
        assert all(a < b for a, b in zip(tokens, tokens[1:])), tokens
        for c in clients:
            await c.close()

    run(body, cluster)


def test_modes_try_timeout_and_check_token(cluster: Cluster) -> None:
    async def body() -> None:
        a = await distlock.connect(cluster.servers(), ttl=10)
        b = await distlock.connect(cluster.servers(), ttl=10)
        # Shared: many readers, no writer.
        c = await distlock.connect(cluster.servers(), ttl=10)
        r1 = await a.shared("doc", 0)
        r2 = await b.shared("doc", 0)
        assert await c.try_lock("doc") is None
        with pytest.raises(NotGranted) as busy:
            await c.lock("doc", 0)
        assert busy.value.reason == "Busy" and not busy.value.delayed
        with pytest.raises(distlock.ServerError) as held:
            await a.lock("doc", 0)
        assert held.value.lock == "AlreadyHeld"
        await r1.release()
        await r2.release()
        # A semaphore of 2 permits.
        s1 = await a.semaphore("pool", 2, 0)
        s2 = await b.semaphore("pool", 2, 0)
        assert await c.try_lock("pool", mode=distlock.semaphore_mode(2)) is None
        with pytest.raises(distlock.ServerError) as mismatch:
            await c.lock("pool", 0)  # a reader-writer acquire of a semaphore
        assert mismatch.value.lock == "ModeMismatch"
        # A timed wait that runs out, then one granted by a release.
        with pytest.raises(NotGranted) as timed_out:
            await c.semaphore("pool", 2, 0.3)
        assert timed_out.value.reason == "TimedOut"
        waiting = asyncio.ensure_future(c.semaphore("pool", 2, 30))
        await wait_until(lambda: _has_waiter(b, "pool"), 10, "the acquire queues")
        await s2.release()
        s3 = await waiting
        assert s3.token > s2.token
        assert not await b.check_token("pool", s2.token)
        assert await b.check_token("pool", s3.token)
        await s1.release()
        await s3.release()
        # A waiting acquire given up by its caller is withdrawn.
        solo = await b.lock("solo")
        given_up = asyncio.ensure_future(a.lock("solo"))
        await wait_until(lambda: _has_waiter(b, "solo"), 10, "the acquire queues")
        given_up.cancel()
        await wait_until(lambda: _no_waiters(b, "solo"), 10, "the abandoned wait is cancelled")
        await solo.release()
        assert await b.lock_status("solo") is None
        for client in (a, b, c):
            await client.close()

    run(body, cluster)


async def _has_waiter(client: distlock.Client, name: str) -> bool:
    status = await client.lock_status(name)
    return status is not None and len(status["waiters"]) > 0


async def _no_waiters(client: distlock.Client, name: str) -> bool:
    status = await client.lock_status(name)
    return status is not None and not status["waiters"]


def test_watch_follows_a_lock(cluster: Cluster) -> None:
    async def body() -> None:
        client = await distlock.connect(cluster.servers(), ttl=10)
        async with client.watch("watched") as events:
            guard = await client.lock("watched")
            await guard.release()
            acquired = await asyncio.wait_for(events.__anext__(), 10)
            released = await asyncio.wait_for(events.__anext__(), 10)
        assert (acquired.kind, acquired.token, acquired.session) == ("Acquired", guard.token, client.session_id)
        assert (released.kind, released.token) == ("Released", guard.token)
        assert acquired.index is not None and released.index is not None and acquired.index < released.index
        await client.close()

    run(body, cluster)


HOLDER = """
import asyncio, sys, distlock
async def main():
    client = await distlock.connect(sys.argv[1:], ttl=1)
    guard = await client.lock("delayed", lock_delay=5)
    print(guard.token, flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def test_lock_delay_holds_a_lost_lock_back(cluster: Cluster) -> None:
    async def body() -> None:
        # The holder's process dies (kill -9): no close, no more keepalives.
        holder = subprocess.Popen([sys.executable, "-c", HOLDER, *cluster.servers()], stdout=subprocess.PIPE)
        assert holder.stdout is not None
        token = int(holder.stdout.readline())
        holder.kill()
        holder.wait()
        other = await distlock.connect(cluster.servers(), ttl=10)
        await wait_until(lambda: _delayed(other, "delayed"), 30, "the session expires into a lock-delay")
        with pytest.raises(NotGranted) as busy:
            await other.lock("delayed", 0)
        assert busy.value.reason == "Busy" and busy.value.delayed
        after = await other.lock("delayed", 30)
        assert after.token > token
        await other.close()

    run(body, cluster)


async def _delayed(client: distlock.Client, name: str) -> bool:
    status = await client.lock_status(name)
    return status is not None and status["delay"] is not None


def test_failover_after_kill_9_keeps_the_session_and_its_lock(cluster: Cluster) -> None:
    async def body() -> None:
        ttl = 5.0
        probe = await distlock.connect([cluster.ws[1]], ttl=None)
        leader = (await probe.cluster_status())["leader"]
        await probe.close()
        # Given one follower only: the client follows its leader hint, and
        # knows the others from the addresses the members publish, which
        # every Welcome lists.
        follower = next(i for i in cluster.ids if i != leader)
        client = await distlock.connect([cluster.ws[follower]], ttl=ttl)
        assert {m.id for m in client.members() if m.ws_addr} == set(cluster.ids)
        await wait_until(lambda: client.server == leader, 10, "the client follows the leader hint")
        guard = await client.lock("failover")
        first = client.server
        assert first == leader
        killed_at = time.monotonic()
        cluster.kill(first)

        def renewed_elsewhere() -> bool:
            # A keepalive sent after the kill was acknowledged by another server.
            remaining = client.lease_remaining()
            return (
                client.server not in (None, first)
                and remaining is not None
                and time.monotonic() + remaining > killed_at + ttl * 0.98
            )

        await wait_until(renewed_elsewhere, 30, "the client fails over and renews its lease")
        assert not guard.lost.is_set() and guard.valid
        assert await client.check_token("failover", guard.token)
        other = await distlock.connect([cluster.ws[i] for i in cluster.ids if i != first], ttl=10)
        assert await other.try_lock("failover") is None
        await guard.release()
        taken = await other.lock("failover", 10)
        assert taken.token > guard.token
        await other.close()
        await client.close()

    run(body, cluster)


def test_the_session_is_lost_once_when_the_cluster_is_gone(cluster: Cluster) -> None:
    blocking = distlock.sync.connect(cluster.servers(), ttl=2)
    blocking_guard = blocking.lock("doomed-too")

    async def body() -> None:
        client = await distlock.connect(cluster.servers(), ttl=2)
        guard = await client.lock("doomed")
        calls: List[distlock.LostReason] = []
        client.on_session_lost(calls.append)
        for i in cluster.ids:
            cluster.kill(i)
        await asyncio.wait_for(guard.lost.wait(), 20)
        assert client.lost_reason is not None and client.lost_reason.kind == "lease_expired"
        assert not guard.valid and not client.is_alive()
        with pytest.raises(SessionLostError):
            await client.lock("doomed", 0)
        with pytest.raises(SessionLostError):
            await guard.release()
        assert len(calls) == 1
        await client.close()

    run(body, cluster)
    # The synchronous client's threading.Event tells the same.
    assert blocking_guard.lost.wait(20)
    assert blocking.lost_reason is not None and not blocking_guard.valid
    with pytest.raises(SessionLostError):
        blocking.lock("doomed-too", 0)
    blocking.close()


def test_the_synchronous_wrapper(cluster: Cluster) -> None:
    with distlock.sync.connect(cluster.servers(), ttl=10) as client:
        with client.lock("sync-job", timeout=10) as guard:
            assert client.check_token("sync-job", guard.token)
            assert not guard.lost.is_set() and guard.valid
        assert not client.check_token("sync-job", guard.token)
        again = client.try_lock("sync-job")
        assert again is not None and again.token > guard.token
        again.release()


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fenced_cron.py"


def test_the_fenced_cron_example(cluster: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "report.txt"
    servers = ",".join(cluster.servers())

    def cron() -> "subprocess.CompletedProcess[str]":
        return subprocess.run(
            [sys.executable, str(EXAMPLE), "--servers", servers, "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    first = cron()
    assert first.returncode == 0, first.stderr
    first_token = int((tmp_path / "report.txt.fence").read_text())
    assert f"under token {first_token}" in out.read_text()
    second = cron()
    assert second.returncode == 0, second.stderr
    assert int((tmp_path / "report.txt.fence").read_text()) > first_token

    # While another holds the lock, a run skips with 75 and writes nothing.
    async def while_held() -> None:
        client = await distlock.connect(cluster.servers(), ttl=10)
        async with client.lock("nightly-report"):
            before = out.read_text()
            skipped = await asyncio.get_running_loop().run_in_executor(None, cron)
            assert skipped.returncode == 75, skipped.stderr
            assert out.read_text() == before
        await client.close()

    run(while_held, cluster)

    # The file refuses a stale token.
    spec = importlib.util.spec_from_file_location("fenced_cron", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(module.StaleToken):
        module.FencedFile(out).write(first_token, "late write from a paused run\n")
    assert "late write" not in out.read_text()
