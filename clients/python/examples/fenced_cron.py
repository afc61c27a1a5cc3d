"""A cron job guarded by a distlock lock, writing to a fenced file.

Run it from cron on several machines; one run at a time does the work:

    */5 * * * * python fenced_cron.py --servers node1:7201,node2:7201,node3:7201 \\
                    --lock nightly-report --out /shared/report.txt

A run that finds the lock held exits 75 at once (as ``distlock lock --try``
does). A run whose session is lost while it works (a network cut, a long
pause) exits 70 without writing. And because a pause can strike between
the check and the write, the file fences itself: it keeps the highest
fencing token that wrote it and refuses a write with a lower one, so a
run that lost the lock without knowing can never overwrite the work of
the run that took it next.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import sys
import time
from pathlib import Path
from typing import List

import distlock

EX_TEMPFAIL = 75  # the lock is held by another run
EX_SOFTWARE = 70  # the session (so the lock) was lost


class StaleToken(Exception):
    """A write carried a lower fencing token than one already accepted."""


class FencedFile:
    """A file that accepts a write only with a fencing token at least as
    high as every token it accepted before (kept in ``PATH.fence``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fence = path.with_name(path.name + ".fence")

    def write(self, token: int, data: str) -> None:
        with open(self.fence, "a+") as fence:
            # One writer at a time checks and writes (on this host).
            fcntl.flock(fence, fcntl.LOCK_EX)
            fence.seek(0)
            text = fence.read().strip()
            last = int(text) if text else 0
            if token < last:
                raise StaleToken(f"token {token} is older than {last}, which already wrote {self.path}")
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(data)
            os.replace(tmp, self.path)
            fence.seek(0)
            fence.truncate()
            fence.write(str(token))


async def job(servers: List[str], lock: str, out: Path) -> int:
    async with await distlock.connect(servers, ttl=10) as client:
        guard = await client.try_lock(lock)
        if guard is None:
            print(f"{lock} is held by another run: skipping", file=sys.stderr)
            return EX_TEMPFAIL
        async with guard:
            report = f"report written at {time.time():.0f} under token {guard.token}\n"
            if guard.lost.is_set():
                print("the lock was lost: not writing", file=sys.stderr)
                return EX_SOFTWARE
            FencedFile(out).write(guard.token, report)
            print(f"wrote {out} with token {guard.token}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", required=True, help="WebSocket addresses, HOST:PORT,...")
    parser.add_argument("--lock", default="nightly-report")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        return asyncio.run(job(args.servers.split(","), args.lock, args.out))
    except distlock.SessionLostError as e:
        print(e, file=sys.stderr)
        return EX_SOFTWARE
    except StaleToken as e:
        print(e, file=sys.stderr)
        return EX_SOFTWARE


if __name__ == "__main__":
    sys.exit(main())
