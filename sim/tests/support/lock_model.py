#!/usr/bin/env python3
"""Checks a Jepsen history of distlock's exclusive locks (the EDN lines
`distlock-sim run --export-edn` writes, docs/SIMULATION.md section 8)
against a model of a fenced lock, with only the standard library.

The model, per lock: state (holder token or none, last token granted).
  acquire :ok token T   legal when nobody holds it and T > last; then T holds it
  release T, expire T   T no longer holds it (nothing when T does not hold it)
:fail operations did not happen and are dropped (as Knossos does). An
acquire that stayed :info is dropped too: it could only ever block later
grants, since no release or expiry of its unknown token is recorded.
:info releases and expiries may take effect at any time after their
invocation, or never.

The search is Wing and Gong's with Lowe's memoisation: it looks for an
order of the operations, each placed between its invocation and its
completion, that the model accepts. Exit 0 (and "ok") when every lock has
one, 1 (and the lock and the operations it could not place) when one does
not, 2 when the file cannot be read.

usage: lock_model.py HISTORY.edn
"""
import re
import sys

LINE = re.compile(r":(\w+) (\"[^\"]*\"|:[\w-]+|-?\d+|nil)")
INF = float("inf")


def parse(path):
    ops = {}
    for n, line in enumerate(open(path), 1):
        line = line.strip()
        if not line:
            continue
        if not (line.startswith("{") and line.endswith("}")):
            raise ValueError(f"line {n} is not an operation map: {line!r}")
        m = {}
        for k, v in LINE.findall(line):
            if v.startswith('"'):
                v = v[1:-1]
            elif v.startswith(":"):
                v = v[1:]
            elif v == "nil":
                v = None
            else:
                v = int(v)
            m[k] = v
        for k in ("type", "process", "f", "lock", "time"):
            if k not in m:
                raise ValueError(f"line {n} lacks :{k}")
        op = ops.setdefault(m["process"], {"lock": m["lock"], "f": m["f"]})
        if m["type"] == "invoke":
            op["call"] = m["time"]
        else:
            op["type"] = m["type"]
            op["ret"] = m["time"] if m["type"] != "info" else INF
            op["value"] = m["value"]
        if m["f"] != "acquire" and m["value"] is not None:
            op["value"] = m["value"]
    return ops


def check_lock(ops):
    """ops: [(call, ret, f, token)]; returns None or the stuck ops."""
    ops.sort(key=lambda o: (o[0], o[1]))
    n = len(ops)
    must = [i for i in range(n) if ops[i][1] != INF]
    full = 0
    for i in must:
        full |= 1 << i
    seen = set()
    sys.setrecursionlimit(100000)
    best = [0]

    def search(done, holder, last):
        if done & full == full:
            return True
        key = (done, holder, last)
        if key in seen:
            return False
        seen.add(key)
        if bin(done & full).count("1") > bin(best[0] & full).count("1"):
            best[0] = done
        # An operation can go next if it was invoked before every
        # operation still to place had completed.
        horizon = min(ops[i][1] for i in must if not done >> i & 1)
        for i in range(n):
            if done >> i & 1:
                continue
            call, ret, f, token = ops[i]
            if call > horizon:
                break
            if f == "acquire":
                if holder is None and token > last:
                    if search(done | 1 << i, token, token):
                        return True
            elif holder == token:
                if search(done | 1 << i, None, last):
                    return True
        return False

    if search(0, None, 0):
        return None
    return [ops[i] for i in must if not best[0] >> i & 1][:5]


def main():
    try:
        ops = parse(sys.argv[1])
    except (OSError, ValueError, IndexError) as e:
        print(f"cannot read the history: {e}", file=sys.stderr)
        return 2
    locks = {}
    for op in ops.values():
        if "call" not in op or "type" not in op:
            print(f"an operation lacks its invocation or completion: {op}", file=sys.stderr)
            return 2
        if op["type"] == "fail" or (op["f"] == "acquire" and op["type"] == "info"):
            continue
        locks.setdefault(op["lock"], []).append(
            (op["call"], op["ret"], op["f"], op["value"])
        )
    for lock, lock_ops in sorted(locks.items()):
        stuck = check_lock(lock_ops)
        if stuck is not None:
            print(f"lock {lock}: not linearizable; cannot place {stuck}")
            return 1
    count = sum(len(v) for v in locks.values())
    print(f"ok: {len(locks)} locks, {count} operations")
    return 0


sys.exit(main())
