"""A fake server that sends bad or unknown frames: the client raises a
clear, typed exception instead of crashing or hanging."""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Callable, Coroutine, Optional, Sequence

import pytest
from websockets.asyncio.server import ServerConnection, serve

import distlock
from distlock import ConnectError, ProtocolError, ServerError, UnexpectedAnswer

WELCOME = '{"Welcome":{"node_id":1,"leader_hint":1,"members":[]}}'


def fake(*scripts: Sequence[Optional[str]]) -> Callable[[ServerConnection], Coroutine[Any, Any, None]]:
    """A server that answers the n-th frame of its client's k-th
    connection with ``scripts[k][n]`` (the last script for later ones; a
    request's id is put in place of ``ID``), and nothing when None."""
    connections = [0]

    async def handler(ws: ServerConnection) -> None:
        answers = scripts[min(connections[0], len(scripts) - 1)]
        connections[0] += 1
        for answer in answers:
            message = await ws.recv()
            if answer is None:
                continue
            frame = json.loads(message)
            rid = frame["Request"]["id"] if "Request" in frame else 0
            await ws.send(answer.replace("ID", str(rid)))
        await ws.wait_closed()

    return handler


async def serving(*scripts: Sequence[Optional[str]]) -> AsyncIterator[str]:
    async with serve(fake(*scripts), "127.0.0.1", 0) as server:
        sock = next(iter(server.sockets))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def run(body: Callable[[str], Coroutine[Any, Any, None]], *scripts: Sequence[Optional[str]]) -> None:
    async def main() -> None:
        async for addr in serving(*scripts):
            await asyncio.wait_for(body(addr), 10)

    asyncio.run(main())


@pytest.mark.parametrize(
    "reply, message",
    [
        ('{"Nope":1}', "unknown server frame 'Nope'"),
        ("this is not JSON", "not JSON"),
        ('{"Welcome":{"node_id":"one","leader_hint":null,"members":[]}}', "node_id: expected an unsigned integer"),
    ],
)
def test_a_bad_first_frame_is_a_connect_error_naming_it(reply: str, message: str) -> None:
    async def body(addr: str) -> None:
        with pytest.raises(ConnectError, match=message) as e:
            await distlock.connect([addr], ttl=None)
        assert isinstance(e.value.__cause__, ProtocolError)

    run(body, [reply])


def test_a_refused_hello_names_the_servers_error() -> None:
    async def body(addr: str) -> None:
        with pytest.raises(ConnectError, match="WrongCluster") as e:
            await distlock.connect([addr], ttl=None, cluster_id="prod")
        assert isinstance(e.value.__cause__, ServerError)
        assert e.value.__cause__.kind == "WrongCluster"

    run(body, ['{"Error":"WrongCluster"}'])


def test_an_unknown_answer_is_an_unexpected_answer() -> None:
    async def body(addr: str) -> None:
        with pytest.raises(UnexpectedAnswer, match="Frobnicated") as e:
            await distlock.connect([addr], ttl=10)
        assert e.value.answer == {"Frobnicated": {"x": 1}}

    run(body, [WELCOME, '{"Response":{"id":ID,"result":{"Ok":{"Frobnicated":{"x":1}}}}}'])


def test_an_unknown_error_is_a_typed_server_error() -> None:
    async def body(addr: str) -> None:
        with pytest.raises(ServerError, match="QuotaExceeded") as e:
            await distlock.connect([addr], ttl=10)
        assert e.value.kind == "QuotaExceeded" and not e.value.known
        assert e.value.detail == {"limit": 3}

    run(body, [WELCOME, '{"Response":{"id":ID,"result":{"Err":{"QuotaExceeded":{"limit":3}}}}}'])


def test_a_bad_frame_mid_session_drops_the_connection_and_the_read_is_asked_again() -> None:
    status = '{"leader":1,"term":3,"commit_index":9,"members":[]}'

    async def body(addr: str) -> None:
        client = await distlock.connect([addr], ttl=None)
        # The first answer is cut short: the client drops that connection,
        # connects again and asks again.
        assert await client.cluster_status() == json.loads(status)
        await client.close()

    first = [WELCOME, '{"Response":{"id":ID,"result":']
    # On the second connection: Hello (answered Welcome), then the read.
    second = [WELCOME, '{"Response":{"id":ID,"result":{"Ok":{"ClusterStatus":%s}}}}' % status]
    run(body, first, second)
