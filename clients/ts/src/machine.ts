/**
 * The client's session state machine, sans I/O: a port of the Rust
 * `distlock_core::client::ClientSession`, so that browsers get the same
 * guarantees as Rust clients.
 *
 * - Every session request carries `(session, seq)` and the lowest seq not
 *   yet answered (`ack`); a retry (after a timeout, a failover or a
 *   retryable error) re-sends the same seq, which the cluster applies at
 *   most once.
 * - Keepalives go every ttl/3. The local lease ends at
 *   `send time of the last acknowledged keepalive + ttl × (1 − 2·max_drift)`
 *   on this client's clock; past it the session is lost for good, even if
 *   the cluster later answers.
 * - Failover goes round every member that servers' `Welcome`s listed.
 *
 * The driver ({@link Client}) feeds it connections, frames and timer
 * expiries with the current time (milliseconds on a monotonic clock), and
 * drains {@link SessionMachine.pollFrame}, {@link SessionMachine.pollEvent}
 * and {@link SessionMachine.pollTimeout}.
 *
 * @module
 */

import {
  type ClientCommand,
  type ClientFrame,
  type MemberInfo,
  type Mode,
  type Outcome,
  type ProtoError,
  type RequestBody,
  type Response,
  type ResponseBody,
  type ServerFrame,
  type Wait,
  PROTOCOL_VERSION,
  isRetryable,
  isSessionGone,
  tagOf,
  type SessionMeta,
} from "./protocol.js";

/** Settings of the state machine (times in milliseconds). */
export interface MachineConfig {
  /** How long a request may stay unanswered before failing over (1000). */
  requestTimeoutMs: number;
  /** Added to a timed wait to get its request timeout (1000). */
  waitSlackMs: number;
  /** The largest clock drift assumed, in parts per million (10 000 = 1 %). */
  maxDriftPpm: number;
  /** The first reconnect/retry backoff (100). */
  backoffMinMs: number;
  /** The longest backoff (1000). */
  backoffMaxMs: number;
  /** The cluster expected, sent in every `Hello`. */
  clusterId: string | null;
  /** Credentials, sent in every `Hello`. */
  auth: string | null;
  /** Move to the leader a follower's `Welcome` names (true). */
  followLeader: boolean;
  /**
   * How long the connected server may keep answering that it knows no
   * leader before the client moves to another server (1000): a server cut
   * off from the majority, or removed, cannot serve while others can. A
   * server shutting down is left at once.
   */
  leaderlessPatienceMs: number;
}

export const DEFAULT_MACHINE_CONFIG: MachineConfig = {
  requestTimeoutMs: 1000,
  waitSlackMs: 1000,
  maxDriftPpm: 10_000,
  backoffMinMs: 100,
  backoffMaxMs: 1000,
  clusterId: null,
  auth: null,
  followLeader: true,
  leaderlessPatienceMs: 1000,
};

/** Why an operation failed, as the machine sees it. */
export type MachineError =
  | { kind: "server"; error: ProtoError }
  | { kind: "sessionLost" }
  | { kind: "closed" }
  | { kind: "noSession" }
  | { kind: "sessionExists" }
  | { kind: "unexpectedAnswer" };

/** Why a session was lost. */
export type LostReason = { kind: "leaseExpired" } | { kind: "rejected"; error: ProtoError };

export type MachineEvent =
  | { kind: "sessionOpened"; op: number; result: { ok: number } | { err: MachineError } }
  | { kind: "completed"; op: number; result: { ok: Outcome } | { err: MachineError } }
  | { kind: "sessionLost"; reason: LostReason }
  | { kind: "reconnect"; to: MemberInfo | null };

type SessionState =
  | { s: "none" }
  | { s: "opening"; op: number }
  | { s: "open"; id: number; ttlMs: number; leaseUntil: number; secret: bigint }
  | { s: "closed" }
  | { s: "lost" };

type ConnState = { c: "connecting" } | { c: "connected" } | { c: "backoff"; until: number };

interface Op {
  body: RequestBody;
  seq: number | null;
  rid: number | null;
  firstSent: number | null;
  deadline: number | null;
  retryAt: number | null;
  backoff: number;
}

type InFlight =
  | { k: "op"; op: number }
  | { k: "keepalive"; sentAt: number; deadline: number }
  | { k: "attach" };

export class SessionMachine {
  private session: SessionState = { s: "none" };
  private conn: ConnState = { c: "connecting" };
  private members: MemberInfo[] = [];
  private nextMember = 0;
  private reconnectBackoff: number;
  private followedHint = false;
  /** Since when the connected server has answered only that it knows no leader. */
  private leaderlessSince: number | null = null;
  private nextOp = 1;
  private nextRid = 1;
  private nextSeq = 1;
  private readonly ops = new Map<number, Op>();
  private readonly inFlight = new Map<number, InFlight>();
  private nextKeepalive: number | null = null;
  private frames: ClientFrame[] = [];
  private readonly events: MachineEvent[] = [];

  constructor(readonly config: MachineConfig = DEFAULT_MACHINE_CONFIG) {
    this.reconnectBackoff = config.backoffMinMs;
  }

  // ----- queries -----

  sessionId(): number | null {
    return this.session.s === "open" ? this.session.id : null;
  }

  /** The local lease's end, or null when no session is open. */
  leaseUntil(): number | null {
    return this.session.s === "open" ? this.session.leaseUntil : null;
  }

  isAlive(now: number): boolean {
    return this.session.s === "open" && now < this.session.leaseUntil;
  }

  knownMembers(): readonly MemberInfo[] {
    return this.members;
  }

  /** A request id for a request outside the session (watches, status). */
  takeRequestId(): number {
    return this.nextRid++;
  }

  // ----- outputs -----

  pollFrame(): ClientFrame | undefined {
    return this.frames.shift();
  }

  pollEvent(): MachineEvent | undefined {
    return this.events.shift();
  }

  pollTimeout(): number | null {
    let next: number | null = null;
    const add = (t: number | null) => {
      if (t !== null) next = next === null ? t : Math.min(next, t);
    };
    add(this.leaseUntil());
    if (this.conn.c === "backoff") add(this.conn.until);
    else if (this.conn.c === "connected") {
      add(this.nextKeepalive);
      for (const op of this.ops.values()) {
        add(op.deadline);
        add(op.retryAt);
      }
      for (const f of this.inFlight.values()) if (f.k === "keepalive") add(f.deadline);
    }
    return next;
  }

  // ----- commands -----

  openSession(ttlMs: number, nonce: bigint, now: number, meta?: SessionMeta): number | MachineError {
    this.checkLease(now);
    switch (this.session.s) {
      case "opening":
      case "open":
        return { kind: "sessionExists" };
      case "closed":
        return { kind: "closed" };
      case "lost":
        return { kind: "sessionLost" };
      case "none":
        break;
    }
    const open: ClientCommand = meta
      ? { OpenSessionWithMeta: { nonce, ttl_ms: ttlMs, meta } }
      : { OpenSession: { nonce, ttl_ms: ttlMs } };
    const op = this.start({ Log: open }, null, now);
    this.session = { s: "opening", op };
    return op;
  }

  acquire(lock: string, mode: Mode, wait: Wait, lockDelayMs: number, now: number): number | MachineError {
    const session = this.liveSession(now);
    if (typeof session !== "number") return session;
    const seq = this.nextSeq++;
    const body: RequestBody = {
      Log: { Acquire: { session, seq, ack: seq, lock, mode, wait, lock_delay_ms: lockDelayMs } },
    };
    return this.start(body, seq, now);
  }

  campaign(election: string, value: string, wait: Wait, lockDelayMs: number, now: number): number | MachineError {
    const session = this.liveSession(now);
    if (typeof session !== "number") return session;
    const seq = this.nextSeq++;
    const body: RequestBody = {
      Log: { Campaign: { session, seq, ack: seq, election, value, wait, lock_delay_ms: lockDelayMs } },
    };
    return this.start(body, seq, now);
  }

  proclaim(election: string, token: number, value: string, now: number): number | MachineError {
    const session = this.liveSession(now);
    if (typeof session !== "number") return session;
    const seq = this.nextSeq++;
    return this.start({ Log: { Proclaim: { session, seq, ack: seq, election, token, value } } }, seq, now);
  }

  release(lock: string, token: number, now: number): number | MachineError {
    const session = this.liveSession(now);
    if (typeof session !== "number") return session;
    const seq = this.nextSeq++;
    return this.start({ Log: { Release: { session, seq, ack: seq, lock, token } } }, seq, now);
  }

  cancelWait(lock: string, now: number): number | MachineError {
    const session = this.liveSession(now);
    if (typeof session !== "number") return session;
    const seq = this.nextSeq++;
    return this.start({ Log: { CancelWait: { session, seq, ack: seq, lock } } }, seq, now);
  }

  close(now: number): number | MachineError {
    const session = this.liveSession(now);
    if (typeof session !== "number") return session;
    const seq = this.nextSeq++;
    return this.start({ Log: { CloseSession: { session, seq, ack: seq } } }, seq, now);
  }

  // ----- inputs -----

  connected(server: number | null, now: number): void {
    // A connection made to follow a leader hint leaves the round robin's
    // place alone (see learnMembers).
    if (server !== null && !this.followedHint) {
      const pos = this.members.findIndex((m) => m.id === server);
      if (pos >= 0) this.nextMember = pos + 1;
    }
    this.checkLease(now);
    this.conn = { c: "connected" };
    this.inFlight.clear();
    this.frames = [
      {
        Hello: {
          protocol_version: PROTOCOL_VERSION,
          cluster_id: this.config.clusterId,
          auth: this.config.auth,
        },
      },
    ];
    // Before anything that acts on the session: the proof that this
    // client opened it, checked in arrival order.
    if (this.session.s === "open") {
      const rid = this.nextRid++;
      this.inFlight.set(rid, { k: "attach" });
      this.frames.push({
        Request: { id: rid, body: { Attach: { session: this.session.id, secret: this.session.secret } } },
      });
    }
    for (const id of [...this.ops.keys()]) this.sendOp(id, now);
    if (this.session.s === "open") this.sendKeepalive(now);
  }

  connectionLost(now: number): void {
    this.checkLease(now);
    if (this.conn.c === "backoff") return;
    this.forgetConnection();
    this.followedHint = false;
    this.conn = { c: "backoff", until: now + this.reconnectBackoff };
    this.reconnectBackoff = Math.min(this.reconnectBackoff * 2, this.config.backoffMaxMs);
  }

  handleFrame(frame: ServerFrame, now: number): void {
    this.checkLease(now);
    if (this.conn.c !== "connected") return;
    if ("Welcome" in frame) {
      const { node_id, members, leader_hint } = frame.Welcome;
      this.learnMembers(node_id, leader_hint, members);
      this.reconnectBackoff = this.config.backoffMinMs;
      this.followLeaderHint(node_id, leader_hint);
    } else if ("Response" in frame) {
      this.onResponse(frame.Response, now);
    } else if ("Error" in frame) {
      this.connectionLost(now);
    }
  }

  handleTimeout(now: number): void {
    this.checkLease(now);
    if (this.conn.c === "backoff") {
      if (now >= this.conn.until) {
        this.conn = { c: "connecting" };
        this.events.push({ kind: "reconnect", to: this.nextTarget() });
      }
      return;
    }
    if (this.conn.c !== "connected") return;
    const opTimedOut = [...this.ops.values()].some((op) => op.deadline !== null && now >= op.deadline);
    const kaTimedOut = [...this.inFlight.values()].some((f) => f.k === "keepalive" && now >= f.deadline);
    if (opTimedOut || kaTimedOut) {
      this.connectionLost(now);
      return;
    }
    for (const [id, op] of [...this.ops.entries()]) {
      if (op.retryAt === null || now < op.retryAt) continue;
      // Re-asking a waiting acquire on the same connection keeps its
      // deadline: the wait does not start over.
      const keep = waits(op.body) ? op.deadline : null;
      this.sendOp(id, now);
      if (keep !== null) op.deadline = keep;
    }
    if (this.nextKeepalive !== null && now >= this.nextKeepalive) this.sendKeepalive(now);
  }

  // ----- internals -----

  private liveSession(now: number): number | MachineError {
    this.checkLease(now);
    switch (this.session.s) {
      case "open":
        return this.session.id;
      case "none":
      case "opening":
        return { kind: "noSession" };
      case "closed":
        return { kind: "closed" };
      case "lost":
        return { kind: "sessionLost" };
    }
  }

  private ack(): number {
    let min: number | null = null;
    for (const op of this.ops.values()) if (op.seq !== null) min = min === null ? op.seq : Math.min(min, op.seq);
    return min ?? this.nextSeq;
  }

  private start(body: RequestBody, seq: number | null, now: number): number {
    const id = this.nextOp++;
    this.ops.set(id, {
      body,
      seq,
      rid: null,
      firstSent: null,
      deadline: null,
      retryAt: null,
      backoff: this.config.backoffMinMs,
    });
    if (this.conn.c === "connected") this.sendOp(id, now);
    return id;
  }

  private timeoutOf(body: RequestBody): number | null {
    const wait = waitOf(body);
    if (wait !== null) {
      if (wait === "Try") return this.config.requestTimeoutMs;
      if (wait === "Forever") return null;
      return wait.For === 0 ? this.config.requestTimeoutMs : wait.For + this.config.waitSlackMs;
    }
    return this.config.requestTimeoutMs;
  }

  private sendOp(id: number, now: number): void {
    const op = this.ops.get(id);
    if (!op) return;
    const ack = this.ack();
    const rid = this.nextRid++;
    if (op.rid !== null) this.inFlight.delete(op.rid);
    op.rid = rid;
    setAck(op.body, ack);
    op.firstSent ??= now;
    const timeout = this.timeoutOf(op.body);
    op.deadline = timeout === null ? null : now + timeout;
    // A waiting acquire is asked again now and then: its answer may be
    // lost with a forward, and the cluster answers a retry from its dedupe
    // table (or not at all while still queued), so re-sending is harmless.
    op.retryAt = waits(op.body) ? now + this.config.requestTimeoutMs : null;
    this.inFlight.set(rid, { k: "op", op: id });
    this.frames.push({ Request: { id: rid, body: structuredClone(op.body) } });
  }

  private sendKeepalive(now: number): void {
    if (this.session.s !== "open") return;
    this.nextKeepalive = now + this.session.ttlMs / 3;
    const rid = this.nextRid++;
    this.inFlight.set(rid, { k: "keepalive", sentAt: now, deadline: now + this.config.requestTimeoutMs });
    this.frames.push({ Request: { id: rid, body: { KeepAlive: { session: this.session.id } } } });
  }

  private followLeaderHint(nodeId: number, leaderHint: number | null): void {
    if (leaderHint === null || leaderHint === nodeId) return;
    if (this.followedHint || !this.config.followLeader) return;
    // A leader whose WebSocket address is not known yet cannot be dialled:
    // the follower forwards meanwhile.
    const target = this.members.find((m) => m.id === leaderHint && m.ws_addr);
    if (!target) return;
    this.followedHint = true;
    this.forgetConnection();
    this.conn = { c: "connecting" };
    this.events.push({ kind: "reconnect", to: target });
  }

  /**
   * Drops what belonged to the current connection: requests in flight and
   * queued frames. Operations stay and are re-sent, with the same seqs, on
   * the next connection.
   */
  private forgetConnection(): void {
    this.leaderlessSince = null;
    this.inFlight.clear();
    this.frames = [];
    for (const op of this.ops.values()) {
      op.rid = null;
      op.deadline = null;
      op.retryAt = null;
    }
  }

  /**
   * Takes in the members a `Welcome` from `nodeId` named. Only a leader's
   * list is the whole truth (the newest configuration while it leads); a
   * server that lags behind or was removed names an old one, and taking
   * that for the whole list would let two stale servers send the client
   * back and forth between themselves. So other lists only add members,
   * the list keeps its order, and the round robin reaches every server
   * heard of.
   */
  private learnMembers(nodeId: number, leaderHint: number | null, members: MemberInfo[]): void {
    if (members.length === 0) return;
    const current = this.members[this.nextMember]?.id;
    if (leaderHint === nodeId) {
      this.members = this.members.filter((m) => members.some((n) => n.id === m.id));
    }
    for (const member of members) {
      const i = this.members.findIndex((m) => m.id === member.id);
      const known = this.members[i];
      if (known) {
        // A server that has not learned a member's published address yet
        // says nothing about it: keep what is known.
        this.members[i] = {
          id: member.id,
          client_addr: member.client_addr !== "" ? member.client_addr : known.client_addr,
          ws_addr: member.ws_addr ?? known.ws_addr,
        };
      } else this.members.push(member);
    }
    // Fail over to the server after this one first; if this one is no
    // member, or a leader hint brought the client here, keep the place the
    // round robin had reached, so that a stale hint cannot send the client
    // back and forth between two servers.
    const here = this.members.findIndex((m) => m.id === nodeId);
    let next: number;
    if (here >= 0 && !this.followedHint) {
      next = here + 1;
    } else {
      const p = current === undefined ? -1 : this.members.findIndex((m) => m.id === current);
      next = p >= 0 ? p : this.nextMember;
    }
    this.nextMember = next % this.members.length;
  }

  private nextTarget(): MemberInfo | null {
    if (this.members.length === 0) return null;
    const i = this.nextMember % this.members.length;
    this.nextMember = (i + 1) % this.members.length;
    return this.members[i] ?? null;
  }

  private leaseLen(ttlMs: number): number {
    const ppm = Math.min(this.config.maxDriftPpm, 499_999);
    return (ttlMs * (1_000_000 - 2 * ppm)) / 1_000_000;
  }

  private extendLease(sentAt: number): void {
    if (this.session.s !== "open") return;
    this.session.leaseUntil = Math.max(this.session.leaseUntil, sentAt + this.leaseLen(this.session.ttlMs));
  }

  private checkLease(now: number): void {
    if (this.session.s === "open" && now >= this.session.leaseUntil) this.lose({ kind: "leaseExpired" });
  }

  private lose(reason: LostReason): void {
    if (this.session.s === "lost" || this.session.s === "closed") return;
    this.session = { s: "lost" };
    this.failAll({ kind: "sessionLost" });
    this.events.push({ kind: "sessionLost", reason });
  }

  private failAll(error: MachineError): void {
    this.nextKeepalive = null;
    this.inFlight.clear();
    this.frames = this.frames.filter((f) => "Hello" in f);
    const ops = [...this.ops.entries()];
    this.ops.clear();
    for (const [id, op] of ops) this.events.push(failure(id, op.body, error));
  }

  /**
   * Whether to leave the connected server: it is shutting down, or it has
   * answered for `leaderlessPatienceMs` that it knows no leader.
   */
  private serverCannotServe(response: Response, now: number): boolean {
    const r = response.result;
    const tag = "Err" in r ? tagOf(r.Err) : null;
    if (tag === "ShuttingDown" || tag === "LeaderUnreachable" || tag === "NotAttached") return true;
    const leaderless =
      "Err" in r &&
      (tag === "NoLeader" ||
        (typeof r.Err === "object" && "NotLeader" in r.Err && r.Err.NotLeader.leader_hint === null));
    if (!leaderless) {
      this.leaderlessSince = null;
      return false;
    }
    if (this.leaderlessSince === null) this.leaderlessSince = now;
    return now - this.leaderlessSince >= this.config.leaderlessPatienceMs;
  }

  private retryLater(id: number, now: number): void {
    const op = this.ops.get(id);
    if (!op) return;
    if (op.rid !== null) this.inFlight.delete(op.rid);
    op.rid = null;
    op.deadline = null;
    op.retryAt = now + op.backoff;
    op.backoff = Math.min(op.backoff * 2, this.config.backoffMaxMs);
  }

  private onResponse(response: Response, now: number): void {
    const what = this.inFlight.get(response.id);
    if (!what) return;
    this.inFlight.delete(response.id);
    if (this.serverCannotServe(response, now)) {
      // What was in flight is re-sent, same seqs, to the next server.
      this.connectionLost(now);
      return;
    }
    if (what.k === "attach") {
      const r = response.result;
      if ("Err" in r && isSessionGone(r.Err) && this.session.s === "open") {
        this.lose({ kind: "rejected", error: r.Err });
      }
      // Attached, or refused for now: the requests after it are then
      // refused NotAttached, which moves the client on.
      return;
    }
    if (what.k === "keepalive") {
      const r = response.result;
      if ("Ok" in r && tagOf(r.Ok) === "KeepAliveAck") this.extendLease(what.sentAt);
      else if ("Err" in r && isSessionGone(r.Err)) {
        if (this.session.s === "open") this.lose({ kind: "rejected", error: r.Err });
      } else {
        // Retryable or odd: bring the next keepalive forward.
        const soon = now + this.config.backoffMinMs;
        if (this.nextKeepalive !== null) this.nextKeepalive = Math.min(this.nextKeepalive, soon);
      }
      return;
    }
    const op = this.ops.get(what.op);
    if (op) {
      op.rid = null;
      op.deadline = null;
    }
    this.onOpAnswer(what.op, response.result, now);
  }

  private onOpAnswer(id: number, result: Response["result"], now: number): void {
    const isOpen = this.session.s === "opening" && this.session.op === id;
    if ("Err" in result) {
      const e = result.Err;
      if (isRetryable(e)) return this.retryLater(id, now);
      if (isOpen) {
        this.ops.delete(id);
        this.session = { s: "none" };
        this.events.push({ kind: "sessionOpened", op: id, result: { err: { kind: "server", error: e } } });
        return;
      }
      if (isSessionGone(e) && tagOf(e) === "Lock") {
        this.ops.delete(id);
        this.events.push({ kind: "completed", op: id, result: { err: { kind: "sessionLost" } } });
        this.lose({ kind: "rejected", error: e });
        return;
      }
      const op = this.ops.get(id);
      this.ops.delete(id);
      if (op) this.events.push(failure(id, op.body, { kind: "server", error: e }));
      return;
    }
    const ok: ResponseBody = result.Ok;
    if (typeof ok === "object" && "Lock" in ok && ok.Lock === "Pending") return this.retryLater(id, now);
    if (typeof ok === "object" && "SessionOpened" in ok && isOpen) {
      const op = this.ops.get(id);
      this.ops.delete(id);
      if (!op) return;
      const ttlMs = ok.SessionOpened.ttl_ms;
      const from = op.firstSent ?? now;
      const open = op.body;
      const log = typeof open === "object" && "Log" in open ? open.Log : null;
      const nonce =
        log && "OpenSession" in log
          ? log.OpenSession.nonce
          : log && "OpenSessionWithMeta" in log
            ? log.OpenSessionWithMeta.nonce
            : 0n;
      this.session = {
        s: "open",
        id: ok.SessionOpened.session,
        ttlMs,
        leaseUntil: from + this.leaseLen(ttlMs),
        secret: BigInt(nonce),
      };
      this.nextKeepalive = from + ttlMs / 3;
      this.events.push({ kind: "sessionOpened", op: id, result: { ok: ok.SessionOpened.session } });
      this.checkLease(now);
      return;
    }
    if (typeof ok === "object" && "Lock" in ok) {
      const op = this.ops.get(id);
      this.ops.delete(id);
      if (!op) return;
      const closing = typeof op.body === "object" && "Log" in op.body && "CloseSession" in op.body.Log;
      this.events.push({ kind: "completed", op: id, result: { ok: ok.Lock } });
      if (closing && this.session.s === "open") {
        this.session = { s: "closed" };
        this.failAll({ kind: "closed" });
      }
      return;
    }
    const op = this.ops.get(id);
    this.ops.delete(id);
    if (op) this.events.push(failure(id, op.body, { kind: "unexpectedAnswer" }));
    if (isOpen) this.session = { s: "none" };
  }
}

function failure(op: number, body: RequestBody, error: MachineError): MachineEvent {
  const opening =
    typeof body === "object" && "Log" in body && ("OpenSession" in body.Log || "OpenSessionWithMeta" in body.Log);
  return opening
    ? { kind: "sessionOpened", op, result: { err: error } }
    : { kind: "completed", op, result: { err: error } };
}

function setAck(body: RequestBody, ack: number): void {
  if (typeof body !== "object" || !("Log" in body)) return;
  const cmd = body.Log;
  if ("CloseSession" in cmd) cmd.CloseSession.ack = ack;
  else if ("Acquire" in cmd) cmd.Acquire.ack = ack;
  else if ("Release" in cmd) cmd.Release.ack = ack;
  else if ("CancelWait" in cmd) cmd.CancelWait.ack = ack;
  else if ("Campaign" in cmd) cmd.Campaign.ack = ack;
  else if ("Proclaim" in cmd) cmd.Proclaim.ack = ack;
}

/** How an acquire or a campaign may wait; null for other requests. */
function waitOf(body: RequestBody): Wait | null {
  if (typeof body !== "object" || !("Log" in body)) return null;
  if ("Acquire" in body.Log) return body.Log.Acquire.wait;
  if ("Campaign" in body.Log) return body.Log.Campaign.wait;
  return null;
}

function waits(body: RequestBody): boolean {
  const w = waitOf(body);
  return w === "Forever" || (typeof w === "object" && w !== null && w.For > 0);
}
