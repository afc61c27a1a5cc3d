"""The JSON codec against the samples the Rust tests pin, so that the
encodings cannot drift apart."""

from __future__ import annotations

import json

import pytest

from distlock import protocol as p
from distlock.protocol import ProtocolError, ServerError

from conftest import load_samples, sample


def test_every_client_sample_encodes_to_serde_jsons_exact_text() -> None:
    clients = [s for s in load_samples() if s["type"] == "ClientFrame"]
    assert len(clients) >= 15
    for s in clients:
        assert p.encode(json.loads(s["json"])) == s["json"], s["name"]


def test_the_builders_make_the_sample_frames() -> None:
    by_name = {s["name"]: s["json"] for s in load_samples() if s["type"] == "ClientFrame"}
    built = {
        "hello": p.hello(None, None),
        "hello_with_cluster_and_auth": p.hello("prod-locks", "s3cret"),
        "open_session": p.request(1, p.command("OpenSession", nonce=(1 << 128) - 1, ttl_ms=10000)),
        "keepalive": p.request(2, p.request_body("KeepAlive", session=42)),
        "acquire_exclusive_try": p.request(
            3,
            p.command(
                "Acquire", session=42, seq=1, ack=1, lock="orders-db", mode="Exclusive", wait="Try", lock_delay_ms=0
            ),
        ),
        "acquire_shared_wait": p.request(
            4,
            p.command(
                "Acquire",
                session=42,
                seq=2,
                ack=1,
                lock="jobs/ü",
                mode="Shared",
                wait={"For": 30000},
                lock_delay_ms=5000,
            ),
        ),
        "acquire_semaphore_forever": p.request(
            5,
            p.command(
                "Acquire",
                session=42,
                seq=3,
                ack=3,
                lock="pool",
                mode={"Semaphore": 4},
                wait="Forever",
                lock_delay_ms=0,
            ),
        ),
        "release": p.request(6, p.command("Release", session=42, seq=4, ack=4, lock="orders-db", token=17)),
        "cancel_wait": p.request(7, p.command("CancelWait", session=42, seq=5, ack=5, lock="pool")),
        "close_session": p.request(8, p.command("CloseSession", session=42, seq=6, ack=6)),
        "check_token": p.request(9, p.request_body("CheckToken", lock="orders-db", token=17)),
        "lock_status": p.request(10, p.request_body("LockStatus", lock="orders-db")),
        "cluster_status": p.request(11, p.request_body("ClusterStatus")),
        "watch": p.request(12, p.request_body("Watch", lock="orders-db")),
        "unwatch": p.request(13, p.request_body("Unwatch", lock="orders-db")),
        "attach": p.request(17, p.request_body("Attach", session=42, secret=1512366075204170929049582354406559215)),
        "take_snapshot": p.request(17, p.request_body("TakeSnapshot", max_len=131072)),
        "snapshot_chunk": p.request(18, p.request_body("SnapshotChunk", index=900, offset=131072, max_len=131072)),
    }
    for name, frame in built.items():
        assert p.encode(frame) == by_name[name], name


def test_builders_refuse_missing_or_unknown_fields() -> None:
    with pytest.raises(TypeError, match="Watch takes the fields"):
        p.request_body("Watch")
    with pytest.raises(TypeError, match="Release takes the fields"):
        p.command("Release", session=1, seq=1, ack=1, lock="a", token=1, extra=2)
    with pytest.raises(TypeError, match="unknown request"):
        p.request_body("Frobnicate")


def test_every_server_sample_decodes() -> None:
    servers = [s for s in load_samples() if s["type"] == "ServerFrame"]
    assert len(servers) >= 30
    for s in servers:
        frame = p.decode(s["json"])
        raw = json.loads(s["json"])
        tag = p.tag_of(raw)
        if tag == "Response":
            assert isinstance(frame, p.Response), s["name"]
            result = raw["Response"]["result"]
            if "Ok" in result:
                assert frame.ok == result["Ok"] and frame.err is None, s["name"]
            else:
                assert frame.err is not None and frame.err.value == result["Err"], s["name"]
                assert frame.err.known, s["name"]
        elif tag == "Welcome":
            assert isinstance(frame, p.Welcome)
            assert [m.id for m in frame.members] == [m["id"] for m in raw["Welcome"]["members"]]
        elif tag == "Watch":
            assert isinstance(frame, p.LockEvent)
            assert frame.kind == p.tag_of(raw["Watch"]["event"])
        else:
            assert isinstance(frame, p.ErrorFrame)
            assert frame.error.category == "connection", s["name"]


def test_the_welcome_sample_in_detail() -> None:
    frame = p.decode(sample("welcome"))
    assert frame == p.Welcome(
        1,
        2,
        [p.MemberInfo(1, "127.0.0.1:7001", "127.0.0.1:7201"), p.MemberInfo(2, "127.0.0.1:7002", None)],
    )
    event = p.decode(sample("watch_acquired"))
    assert event == p.LockEvent("orders-db", "Acquired", 17, 42, 17, {"Semaphore": 4})


def err(name: str) -> ServerError:
    frame = p.decode(sample(name))
    assert isinstance(frame, p.Response) and frame.err is not None
    return frame.err


def test_errors_classify_as_in_rust() -> None:
    assert err("not_leader").category == "retry"
    assert err("no_leader").category == "retry"
    assert err("leader_unreachable").category == "elsewhere"
    assert err("not_attached").category == "elsewhere"
    assert err("unknown_session").category == "session"
    assert err("session_expired").category == "session"
    assert err("busy").category == "final"
    assert err("busy").lock == "Busy"
    assert err("already_held").kind == "Lock"
    assert err("snapshot_unavailable").category == "final"
    assert p.decode(sample("wrong_cluster")) == p.ErrorFrame(ServerError("WrongCluster"))
    assert "LeaderUnreachable" in str(err("leader_unreachable"))


def test_unknown_kinds_decode_into_typed_values() -> None:
    # An error a newer server may send: typed, named, final.
    frame = p.decode('{"Response":{"id":3,"result":{"Err":{"QuotaExceeded":{"limit":3}}}}}')
    assert isinstance(frame, p.Response) and frame.err is not None
    assert frame.err.kind == "QuotaExceeded" and not frame.err.known
    assert frame.err.category == "final"
    assert "QuotaExceeded" in str(frame.err) and "does not know" in str(frame.err)
    lock_err = p.decode('{"Response":{"id":3,"result":{"Err":{"Lock":"Frozen"}}}}')
    assert isinstance(lock_err, p.Response) and lock_err.err is not None
    assert lock_err.err.lock == "Frozen" and not lock_err.err.known
    # An unknown answer is kept as it came; the machine reports it.
    ok = p.decode('{"Response":{"id":3,"result":{"Ok":{"LockList":[]}}}}')
    assert isinstance(ok, p.Response) and ok.ok == {"LockList": []}
    # An unknown event kind of a watch is passed on, named.
    ev = p.decode('{"Watch":{"lock":"a","event":{"Renamed":{"to":"b"}}}}')
    assert isinstance(ev, p.LockEvent) and ev.kind == "Renamed" and ev.token is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("not json", "not JSON"),
        ('{"Nope":1}', "unknown server frame 'Nope'"),
        ("[1,2]", "unknown server frame"),
        ('{"Response":{"id":-1,"result":{"Ok":"Watching"}}}', "unsigned integer"),
        ('{"Response":{"id":1,"result":{"Maybe":1}}}', "Ok or Err"),
        ('{"Welcome":{"node_id":1}}', "Welcome frame of the wrong shape"),
    ],
)
def test_bad_frames_are_protocol_errors(text: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        p.decode(text)


def test_big_integers_are_exact() -> None:
    frame = p.decode('{"Response":{"id":18446744073709551615,"result":{"Ok":"Watching"}}}')
    assert isinstance(frame, p.Response) and frame.id == 2**64 - 1
