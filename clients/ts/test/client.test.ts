// The client against an in-memory fake cluster reached through a fake
// WebSocket: sessions, locks with tokens, watches, the local lease,
// exactly-once retries across a failover, and the session-lost event.
// (The real servers are exercised by scripts/browser-test.)

import assert from "node:assert/strict";
import { test } from "node:test";
import { Client, DistlockError } from "../src/client.js";
import { parse, stringify } from "../src/json.js";
import { SessionMachine } from "../src/machine.js";
import type { ClientFrame, RequestBody, ResponseBody, ServerFrame } from "../src/protocol.js";

/** A toy lock table with the cluster's dedupe: a retried (session, seq) is answered, not applied again. */
class FakeCluster {
  nextIndex = 1;
  sessions = new Map<number, { ttl: number }>();
  holders = new Map<string, { session: number; token: number }>();
  applied: string[] = [];
  dedupe = new Map<string, ResponseBody | { err: unknown }>();
  sockets = new Set<FakeSocket>();
  down = new Set<string>();
  /** When false, keepalives go unanswered (the cluster is unreachable for them). */
  ackKeepalives = true;

  answer(body: RequestBody, watcher: FakeSocket): { Ok: ResponseBody } | { Err: unknown } {
    if (body === "ClusterStatus") {
      return { Ok: { ClusterStatus: { leader: 1, term: 1, commit_index: this.nextIndex - 1, members: [] } } };
    }
    if ("KeepAlive" in body) return { Ok: { KeepAliveAck: { session: body.KeepAlive.session } } };
    if ("Watch" in body) {
      watcher.watching.add(body.Watch.lock);
      return { Ok: "Watching" };
    }
    if ("Unwatch" in body) return { Ok: "Unwatched" };
    if ("LockStatus" in body) {
      const h = this.holders.get(body.LockStatus.lock);
      return {
        Ok: {
          LockStatus: h
            ? { mode: "Exclusive", kind: "ReadWrite", holders: [h], waiters: [], delay: null }
            : null,
        },
      };
    }
    if ("CheckToken" in body) return { Ok: { TokenValid: false } };
    if ("ChangeMembership" in body) return { Err: "NoLeader" };
    if ("TakeSnapshot" in body || "SnapshotChunk" in body) return { Err: "NoLeader" };
    if ("Attach" in body) {
      const known = this.sessions.has(body.Attach.session);
      return known ? { Ok: { Attached: { session: body.Attach.session } } } : { Err: "UnknownSession" };
    }
    if ("ListLocks" in body) return { Ok: { Locks: { index: this.nextIndex, locks: [], next: null } } };
    if ("ListSessions" in body || "RevokeSession" in body || "Leader" in body) return { Err: "NoLeader" };
    const cmd = body.Log;
    if ("OpenSession" in cmd) {
      const key = `open-${cmd.OpenSession.nonce}`;
      const seen = this.dedupe.get(key);
      if (seen) return { Ok: seen as ResponseBody };
      const session = this.nextIndex++;
      this.sessions.set(session, { ttl: cmd.OpenSession.ttl_ms });
      const r: ResponseBody = { SessionOpened: { session, ttl_ms: cmd.OpenSession.ttl_ms } };
      this.dedupe.set(key, r);
      return { Ok: r };
    }
    const inner = Object.values(cmd)[0] as { session: number; seq: number };
    const key = `${inner.session}/${inner.seq}`;
    const seen = this.dedupe.get(key);
    if (seen) return typeof seen === "object" && "err" in seen ? { Err: seen.err } : { Ok: seen as ResponseBody };
    const index = this.nextIndex++;
    let result: { Ok: ResponseBody } | { Err: unknown };
    if ("Acquire" in cmd) {
      const { lock, session } = cmd.Acquire;
      const held = this.holders.get(lock);
      if (held) result = { Err: { Lock: { Busy: { delayed: false } } } };
      else {
        this.holders.set(lock, { session, token: index });
        this.applied.push(`acquire ${lock} by ${session} at ${index}`);
        this.emit(lock, { Acquired: { index, session, token: index, mode: cmd.Acquire.mode } });
        result = { Ok: { Lock: { Granted: { token: index } } } };
      }
    } else if ("Release" in cmd) {
      const { lock, token, session } = cmd.Release;
      if (this.holders.get(lock)?.token !== token) result = { Err: { Lock: "NotHolder" } };
      else {
        this.holders.delete(lock);
        this.applied.push(`release ${lock} at ${index}`);
        this.emit(lock, { Released: { index, session, token } });
        result = { Ok: { Lock: "Released" } };
      }
    } else if ("CloseSession" in cmd) {
      result = { Ok: { Lock: "Closed" } };
    } else {
      result = { Ok: { Lock: "WaitCancelled" } };
    }
    this.dedupe.set(key, "Ok" in result ? result.Ok : { err: result.Err });
    return result;
  }

  emit(lock: string, event: unknown): void {
    for (const s of this.sockets) if (s.watching.has(lock)) s.deliver({ Watch: { lock, event } } as ServerFrame);
  }
}

const cluster = new FakeCluster();
const hosts = ["a:1", "b:2", "c:3"];

/** A WebSocket whose server is the fake cluster; `ws://HOST/` picks the member. */
class FakeSocket {
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  watching = new Set<string>();
  readonly host: string;
  readonly sent: ClientFrame[] = [];

  constructor(url: string) {
    this.host = url.replace(/^wss?:\/\//, "").replace(/\/$/, "");
    cluster.sockets.add(this);
    setTimeout(() => {
      if (cluster.down.has(this.host)) return this.close();
      this.readyState = 1;
      this.onopen?.({});
    }, 1);
  }

  send(text: string): void {
    const frame = parse(text) as unknown as ClientFrame;
    this.sent.push(frame);
    // As the servers do: a connection must open with Hello.
    if (this.sent.length === 1 && !("Hello" in frame)) {
      this.deliver({ Error: "HelloRequired" });
      setTimeout(() => this.close(), 2);
      return;
    }
    if ("Hello" in frame) {
      const members = hosts.map((h, i) => ({ id: i + 1, client_addr: h, ws_addr: h }));
      this.deliver({ Welcome: { node_id: hosts.indexOf(this.host) + 1, leader_hint: null, members } });
      return;
    }
    const { id, body } = frame.Request;
    if (typeof body === "object" && "KeepAlive" in body && !cluster.ackKeepalives) return;
    const result = cluster.answer(body, this);
    this.deliver({ Response: { id, result } } as ServerFrame);
  }

  deliver(frame: ServerFrame): void {
    const text = stringify(frame);
    setTimeout(() => this.readyState === 1 && this.onmessage?.({ data: text }), 1);
  }

  close(): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    cluster.sockets.delete(this);
    setTimeout(() => this.onclose?.({}), 1);
  }
}

const fast = { WebSocket: FakeSocket, requestTimeoutMs: 300, backoffMinMs: 5, backoffMaxMs: 20 };

test("locks with fencing tokens, shared, semaphore, watch and close", async () => {
  const client = await Client.connect(["ws://a:1/"], fast);
  const session = await client.openSession(10_000);
  assert.ok(session.isValid());
  const events = client.watch("w");
  const lock = await session.lock("w");
  assert.ok(lock.token > 0);
  assert.equal(await session.tryLock("w"), null, "held: tryLock answers null");
  const first = await events.next();
  assert.deepEqual(first.value, { Acquired: { index: lock.token, session: session.id, token: lock.token, mode: "Exclusive" } });
  await lock.release();
  const second = await events.next();
  assert.ok(second.value && "Released" in second.value);
  await events.return!();
  const shared = await session.shared("s");
  const permit = await session.semaphore("p", 3);
  assert.ok(permit.token > shared.token, "tokens increase");
  assert.equal((await client.lockStatus("p"))?.holders[0]?.token, permit.token);
  await session.close();
  await assert.rejects(session.lock("x"), (e: DistlockError) => e.code === "closed");
  client.close();
});

test("a failover retries with the same seq and the cluster applies it once", async () => {
  const client = await Client.connect(["ws://a:1/", "ws://b:2/"], fast);
  const session = await client.openSession(10_000);
  // A watch is re-sent on every new connection, after the Hello.
  const events = client.watch("once");
  const before = cluster.applied.length;
  // Server a dies after receiving the acquire but before answering it.
  const socket = [...cluster.sockets].find((s) => s.host === "a:1")!;
  const realDeliver = socket.deliver.bind(socket);
  socket.deliver = (frame) => {
    if ("Response" in frame) {
      cluster.down.add("a:1");
      socket.close();
      return;
    }
    realDeliver(frame);
  };
  const lock = await session.lock("once");
  cluster.down.delete("a:1");
  assert.ok(client.server !== 1, "moved to another server");
  const applied = cluster.applied.slice(before).filter((a) => a.startsWith("acquire once"));
  assert.equal(applied.length, 1, applied.join("; "));
  const sent = [...cluster.sockets].flatMap((s) => s.sent);
  const retried = sent.filter((f) => "Request" in f && JSON.stringify(stringify(f)).includes('\\"once\\"'));
  assert.ok(retried.length >= 1);
  await lock.release();
  const seen = await events.next();
  assert.ok(seen.value && "Released" in seen.value, "the watch followed the failover");
  await events.return!();
  client.close();
});

test("the session is lost when keepalives stop being acknowledged, and says so once", async () => {
  const client = await Client.connect(["ws://c:3/"], { ...fast, requestTimeoutMs: 10_000 });
  const session = await client.openSession(1_000);
  const lease = client.leaseUntil();
  assert.ok(lease !== null);
  let lost = 0;
  const gone = new Promise<void>((resolve) =>
    session.onLost((reason) => {
      lost++;
      assert.equal(reason.kind, "leaseExpired");
      resolve();
    }),
  );
  cluster.ackKeepalives = false;
  await gone;
  cluster.ackKeepalives = true;
  assert.equal(lost, 1);
  assert.ok(!session.isValid());
  await assert.rejects(session.lock("late"), (e: DistlockError) => e.code === "sessionLost");
  client.close();
});

test("the local lease is ttl × (1 − 2·max_drift) from the keepalive's send time", () => {
  const m = new SessionMachine();
  m.connected(null, 0);
  m.pollFrame(); // Hello
  const op = m.openSession(10_000, 7n, 100);
  assert.equal(typeof op, "number");
  const open = m.pollFrame()!;
  assert.ok("Request" in open);
  m.handleFrame({ Response: { id: open.Request.id, result: { Ok: { SessionOpened: { session: 5, ttl_ms: 10_000 } } } } }, 400);
  // Counted from the send (100), not the answer (400): 100 + 10 000 × 0.98.
  assert.equal(m.leaseUntil(), 100 + 9_800);
  m.handleTimeout(100 + 10_000 / 3);
  const ka = m.pollFrame()!;
  assert.ok("Request" in ka && typeof ka.Request.body === "object" && "KeepAlive" in ka.Request.body);
  m.handleFrame({ Response: { id: ka.Request.id, result: { Ok: { KeepAliveAck: { session: 5 } } } } }, 5_000);
  assert.equal(m.leaseUntil(), 100 + 10_000 / 3 + 9_800);
  m.handleTimeout(100 + 10_000 / 3 + 9_800);
  assert.equal(m.leaseUntil(), null);
  const events = [];
  for (let e = m.pollEvent(); e; e = m.pollEvent()) events.push(e.kind);
  assert.ok(events.includes("sessionLost"));
});

test("connect fails over the URL list and reports when none accepts", async () => {
  cluster.down.add("a:1");
  const client = await Client.connect(["ws://a:1/", "ws://b:2/"], fast);
  assert.equal(client.server, 2);
  client.close();
  cluster.down.add("b:2");
  await assert.rejects(Client.connect(["ws://a:1/", "ws://b:2/"], fast), (e: DistlockError) => e.code === "connect");
  cluster.down.clear();
});

/** A machine with session 5 open on server 1 of three. */
function openMachine(): SessionMachine {
  const m = new SessionMachine();
  m.connected(null, 0);
  m.pollFrame(); // Hello
  const members = [1, 2, 3].map((id) => ({ id, client_addr: `10.0.0.${id}:7001`, ws_addr: `10.0.0.${id}:7201` }));
  m.handleFrame({ Welcome: { node_id: 1, leader_hint: 1, members } }, 0);
  m.openSession(10_000, 7n, 0);
  const open = m.pollFrame()!;
  assert.ok("Request" in open);
  m.handleFrame({ Response: { id: open.Request.id, result: { Ok: { SessionOpened: { session: 5, ttl_ms: 10_000 } } } } }, 10);
  return m;
}

/** Answers every request with `err` until the machine asks to reconnect; returns when, and to whom. */
function answerUntilReconnect(m: SessionMachine, err: unknown, start: number): { at: number; to: number | null } {
  let now = start;
  for (let i = 0; i < 200; i++) {
    for (let f = m.pollFrame(); f; f = m.pollFrame()) {
      if ("Request" in f) m.handleFrame({ Response: { id: f.Request.id, result: { Err: err } } } as ServerFrame, now);
    }
    for (let e = m.pollEvent(); e; e = m.pollEvent()) {
      if (e.kind === "reconnect") return { at: now, to: e.to?.id ?? null };
    }
    now = Math.max(now, m.pollTimeout() ?? now + 50);
    m.handleTimeout(now);
  }
  throw new Error("the machine never left the server");
}

test("a server that knows no leader is left after the patience, one shutting down at once", () => {
  const m = openMachine();
  m.handleTimeout(10_000 / 3 + 10); // a keepalive is due
  const slow = answerUntilReconnect(m, "NoLeader", 10_000 / 3 + 10);
  assert.ok(slow.at >= 10_000 / 3 + 10 + 1000, `left at ${slow.at}`);
  assert.ok(slow.at <= 10_000 / 3 + 10 + 2500, `left at ${slow.at}`);
  assert.equal(slow.to, 2);

  const n = openMachine();
  n.handleTimeout(10_000 / 3 + 10);
  const fast = answerUntilReconnect(n, "ShuttingDown", 10_000 / 3 + 10);
  assert.ok(fast.at <= 10_000 / 3 + 10 + 200, `left at ${fast.at}`);
  assert.equal(fast.to, 2);
});

const member = (id: number) => ({ id, client_addr: `10.0.0.${id}:7001`, ws_addr: `10.0.0.${id}:7201` });

/** Connects the machine to `server`, which greets with `members` (naming itself leader if `leads`, or `hint`) and refuses everything as shutting down; returns where the machine goes next, and when. */
function greetAndRefuse(
  m: SessionMachine,
  server: number,
  members: number[],
  now: number,
  hint: number | null = null,
): { at: number; to: number | null } {
  m.connected(server, now);
  m.handleFrame({ Welcome: { node_id: server, leader_hint: hint, members: members.map(member) } }, now);
  return answerUntilReconnect(m, "ShuttingDown", now);
}

test("stale servers cannot keep the client from newer members", () => {
  // 1 and 3 were removed and 2 lags behind; 4, 5 and 6 were added since.
  const m = openMachine();
  m.handleTimeout(10_000 / 3 + 10);
  assert.equal(answerUntilReconnect(m, "ShuttingDown", 10_000 / 3 + 10).to, 2);
  assert.equal(greetAndRefuse(m, 2, [1, 2, 3], 4_000).to, 3);
  assert.equal(greetAndRefuse(m, 3, [2, 4, 5], 4_300).to, 4);
  assert.equal(greetAndRefuse(m, 4, [4, 5, 6], 4_600).to, 5);
  assert.deepEqual(m.knownMembers().map((x) => x.id), [1, 2, 3, 4, 5, 6]);
  // A leader's list is the newest there is: the others are dropped.
  assert.equal(greetAndRefuse(m, 5, [5, 6], 4_900, 5).to, 6);
  assert.deepEqual(m.knownMembers().map((x) => x.id), [5, 6]);
});

test("a stale leader hint does not send the client back and forth", () => {
  // Removed server 6 names removed server 5 as leader; 5 shuts down.
  const m = openMachine();
  m.handleTimeout(10_000 / 3 + 10);
  assert.equal(answerUntilReconnect(m, "ShuttingDown", 10_000 / 3 + 10).to, 2);
  let now = 4_000;
  let at = greetAndRefuse(m, 2, [1, 2, 3, 4, 5, 6, 7], now).to!;
  const visited: number[] = [];
  for (let i = 0; i < 8; i++) {
    visited.push(at);
    now += 300;
    const next = greetAndRefuse(m, at, [1, 2, 3, 4, 5, 6, 7], now, at === 6 ? 5 : null);
    at = next.to!;
    now = next.at;
  }
  assert.deepEqual(visited, [3, 4, 5, 6, 5, 7, 1, 2]);
});
