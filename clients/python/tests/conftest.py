"""Shared helpers: the protocol samples the Rust tests pin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

#: Written and checked by transport-ws/tests/json_samples.rs
#: (`DISTLOCK_WRITE_SAMPLES=1 cargo test -p distlock-transport-ws --test json_samples`).
SAMPLES_PATH = Path(__file__).resolve().parents[2] / "ts" / "test" / "samples.json"


def load_samples() -> List[Dict[str, str]]:
    samples: List[Dict[str, str]] = json.loads(SAMPLES_PATH.read_text(encoding="utf-8"))
    return samples


def sample(name: str, kind: str = "ServerFrame") -> str:
    for s in load_samples():
        if s["name"] == name and s["type"] == kind:
            return s["json"]
    raise KeyError(name)


import asyncio  # noqa: E402
from typing import Iterator  # noqa: E402

import pytest  # noqa: E402

from cluster import Cluster  # noqa: E402


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A fresh 3-server cluster, ready (a leader, every address published)."""
    c = Cluster()
    try:
        asyncio.run(c.wait_ready())
    except BaseException:
        print(c.logs())
        c.stop()
        raise
    yield c
    c.stop()
