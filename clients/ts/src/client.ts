/**
 * The distlock client for browsers and other JavaScript runtimes with a
 * `WebSocket`: a driver of the {@link SessionMachine} over JSON text
 * frames.
 *
 * @module
 */

import { type LostReason, type MachineConfig, type MachineError, DEFAULT_MACHINE_CONFIG, SessionMachine } from "./machine.js";
import {
  type ClientFrame,
  type ClusterStatusView,
  type LockEvent,
  type LeaderView,
  type LockListView,
  type LockStatusView,
  type MemberInfo,
  type Mode,
  type Outcome,
  type ProtoError,
  type RequestBody,
  type ResponseBody,
  type ServerFrame,
  type SessionListView,
  type SessionMeta,
  type Wait,
  MAX_MESSAGE_BYTES,
  ProtocolError,
  decodeServerFrame,
  describe,
  encodeClientFrame,
  isRetryable,
  tagOf,
} from "./protocol.js";

/** The subset of the standard `WebSocket` this client uses. */
export interface WebSocketLike {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

/** A `WebSocket` constructor (the browser's, or one for other runtimes). */
export type WebSocketFactory = new (url: string) => WebSocketLike;

/** Settings of a {@link Client}. */
export interface ClientOptions extends Partial<MachineConfig> {
  /** The WebSocket to use (default: `globalThis.WebSocket`). */
  WebSocket?: WebSocketFactory;
  /** How long one connection attempt may take (1000 ms). */
  connectTimeoutMs?: number;
  /** The clock, in milliseconds, monotonic (default `performance.now`). */
  now?: () => number;
}

/** Why an operation failed. */
export class DistlockError extends Error {
  constructor(
    message: string,
    /** What failed: the server's protocol error, or the client's state. */
    readonly code:
      | "server"
      | "sessionLost"
      | "closed"
      | "noSession"
      | "sessionExists"
      | "unexpectedAnswer"
      | "connect"
      | "notGranted",
    /** The server's error, when `code` is `"server"` or `"notGranted"`. */
    readonly serverError?: ProtoError,
  ) {
    super(message);
    this.name = "DistlockError";
  }
}

function toError(e: MachineError): DistlockError {
  switch (e.kind) {
    case "server":
      return new DistlockError(`the cluster refused: ${describe(e.error)}`, "server", e.error);
    case "sessionLost":
      return new DistlockError("the session is lost", "sessionLost");
    case "closed":
      return new DistlockError("the session is closed", "closed");
    case "noSession":
      return new DistlockError("no session is open", "noSession");
    case "sessionExists":
      return new DistlockError("this client has a session already", "sessionExists");
    case "unexpectedAnswer":
      return new DistlockError("the server answered something unexpected", "unexpectedAnswer");
  }
}

/** Options of an acquire. */
export interface AcquireOptions {
  /** Wait at most this long (ms); omitted: wait for as long as it takes. */
  waitMs?: number;
  /** The lock-delay (ms, Chubby's) if this session expires holding it. */
  lockDelayMs?: number;
}

/** A one-shot request outside the session (watch, status), re-sent on every new connection until answered. */
interface Query {
  body: RequestBody;
  resolve: (r: ResponseBody) => void;
  reject: (e: Error) => void;
}

/** A live connection, numbered so late events of old ones are ignored. */
interface Conn {
  ws: WebSocketLike;
  generation: number;
  open: boolean;
  server: number | null;
}

/**
 * A connection to a distlock cluster over WebSocket (JSON text frames),
 * holding at most one session.
 */
export class Client {
  private readonly machine: SessionMachine;
  private readonly WS: WebSocketFactory;
  private readonly now: () => number;
  private readonly connectTimeoutMs: number;
  private conn: Conn | null = null;
  private generation = 0;
  private nextUrl = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly ops = new Map<number, { resolve: (v: Outcome | number) => void; reject: (e: Error) => void }>();
  private readonly queries = new Map<number, Query>();
  private readonly watchers = new Map<string, Set<(e: LockEvent | null) => void>>();
  private readonly lostListeners = new Set<(reason: LostReason) => void>();
  private closed = false;
  private firstWelcome: { resolve: () => void; reject: (e: Error) => void } | null = null;
  /** The server this client talks to now, as its `Welcome` said. */
  server: number | null = null;

  private constructor(
    private readonly urls: string[],
    options: ClientOptions,
  ) {
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketFactory }).WebSocket;
    if (!WS) throw new DistlockError("no WebSocket implementation: pass options.WebSocket", "connect");
    this.WS = WS;
    this.now = options.now ?? (() => performance.now());
    this.connectTimeoutMs = options.connectTimeoutMs ?? 1000;
    const config: MachineConfig = { ...DEFAULT_MACHINE_CONFIG };
    for (const k of Object.keys(DEFAULT_MACHINE_CONFIG) as (keyof MachineConfig)[]) {
      if (options[k] !== undefined) (config as unknown as Record<string, unknown>)[k] = options[k];
    }
    this.machine = new SessionMachine(config);
  }

  /**
   * Connects to the first of `urls` (`ws://host:port/`) that accepts;
   * later failovers follow the members the cluster lists, or go round
   * `urls` while none are known.
   */
  static async connect(urls: string[], options: ClientOptions = {}): Promise<Client> {
    if (urls.length === 0) throw new DistlockError("no server URLs were given", "connect");
    const client = new Client(urls, options);
    let last: Error = new DistlockError("no server accepted", "connect");
    for (let i = 0; i < urls.length; i++) {
      try {
        await client.dialFirst(urls[i]!);
        client.nextUrl = i + 1;
        return client;
      } catch (e) {
        last = e as Error;
      }
    }
    client.closed = true;
    throw new DistlockError(`could not connect to any distlock server: ${last.message}`, "connect");
  }

  /**
   * Opens this client's session with a lease of `ttlMs`; `meta` tells
   * operators who opened it (shown by `distlock locks`, `sessions` and
   * `status NAME`).
   */
  async openSession(ttlMs = 10_000, meta?: SessionMeta): Promise<Session> {
    const nonce = randomNonce();
    const id = await this.run((now) => this.machine.openSession(ttlMs, nonce, now, meta));
    return new Session(this, id as number);
  }

  /** The cluster's status (a linearizable read), retried across failovers. */
  async clusterStatus(): Promise<ClusterStatusView> {
    const r = await this.query("ClusterStatus");
    if (typeof r === "object" && "ClusterStatus" in r) return r.ClusterStatus;
    throw new DistlockError("unexpected answer to ClusterStatus", "unexpectedAnswer");
  }

  /** A lock's holders, waiters and lock-delay; null for a free lock. */
  async lockStatus(lock: string): Promise<LockStatusView | null> {
    const r = await this.query({ LockStatus: { lock } });
    if (typeof r === "object" && "LockStatus" in r) return r.LockStatus;
    throw new DistlockError("unexpected answer to LockStatus", "unexpectedAnswer");
  }

  /**
   * One page of the locks whose names start with `prefix` (with holders,
   * waiters or a lock-delay), after `after` (the previous page's `next`).
   * A linearizable read; paging on never skips or repeats a lock that
   * exists throughout.
   */
  async listLocks(prefix = "", after: string | null = null, limit = 100): Promise<LockListView> {
    const r = await this.query({ ListLocks: { prefix, after, limit } });
    if (typeof r === "object" && "Locks" in r) return r.Locks;
    throw new DistlockError("unexpected answer to ListLocks", "unexpectedAnswer");
  }

  /** One page of the live sessions after `after`, with who opened them. */
  async listSessions(after: number | null = null, limit = 100): Promise<SessionListView> {
    const r = await this.query({ ListSessions: { after, limit } });
    if (typeof r === "object" && "Sessions" in r) return r.Sessions;
    throw new DistlockError("unexpected answer to ListSessions", "unexpectedAnswer");
  }

  /**
   * Ends `session` as the expiry of its lease would (an operator's act):
   * its locks go into lock-delay where asked. Refused with
   * `UnknownSession` if it is not live.
   */
  async revokeSession(session: number): Promise<void> {
    const r = await this.query({ RevokeSession: { session } });
    if (typeof r === "object" && "Revoked" in r) return;
    throw new DistlockError("unexpected answer to RevokeSession", "unexpectedAnswer");
  }

  /** The leader of `election` (a linearizable read); null when nobody leads. */
  async leader(election: string): Promise<LeaderView | null> {
    const r = await this.query({ Leader: { election } });
    if (typeof r === "object" && "Leader" in r) return r.Leader;
    throw new DistlockError("unexpected answer to Leader", "unexpectedAnswer");
  }

  /**
   * The successive leaders of `election`: the current one at once, then
   * each time it changes (session, term of office or value). Each is
   * read on every event of the election's watch, and every second.
   */
  async *observe(election: string): AsyncIterableIterator<LeaderView | null> {
    let last: string | undefined;
    const events = this.watch(election);
    let pending: Promise<IteratorResult<LockEvent>> | null = null;
    try {
      for (;;) {
        const now = await this.leader(election);
        const key = JSON.stringify(now);
        if (key !== last) {
          last = key;
          yield now;
        }
        pending ??= events.next();
        const tick = new Promise<"tick">((r) => setTimeout(() => r("tick"), 1_000));
        const woke = await Promise.race([pending, tick]);
        if (woke !== "tick") {
          if (woke.done) return;
          pending = null;
        }
      }
    } finally {
      await events.return?.();
    }
  }

  /** Whether `token` is the current grant of `lock`. */
  async checkToken(lock: string, token: number): Promise<boolean> {
    const r = await this.query({ CheckToken: { lock, token } });
    if (typeof r === "object" && "TokenValid" in r) return r.TokenValid;
    throw new DistlockError("unexpected answer to CheckToken", "unexpectedAnswer");
  }

  /**
   * The events of `lock` (acquired, released, expired) as they are
   * applied, for as long as the iteration goes on. The watch follows the
   * client across failovers (events applied while it was reconnecting
   * are not replayed). End it with `break` or `return()`.
   */
  watch(lock: string): AsyncIterableIterator<LockEvent> {
    const queue: LockEvent[] = [];
    let wake: (() => void) | null = null;
    let done = false;
    const push = (e: LockEvent | null) => {
      if (e === null) done = true;
      else queue.push(e);
      wake?.();
    };
    let set = this.watchers.get(lock);
    const first = !set;
    if (!set) {
      set = new Set();
      this.watchers.set(lock, set);
    }
    set.add(push);
    if (first) this.sendWatch(lock);
    const finish = () => {
      done = true;
      const s = this.watchers.get(lock);
      s?.delete(push);
      if (s && s.size === 0) {
        this.watchers.delete(lock);
        this.sendRaw({ Request: { id: this.machine.takeRequestId(), body: { Unwatch: { lock } } } });
      }
    };
    const it: AsyncIterableIterator<LockEvent> = {
      next: async () => {
        while (queue.length === 0 && !done) await new Promise<void>((r) => (wake = r));
        wake = null;
        const value = queue.shift();
        if (value !== undefined) return { value, done: false };
        finish();
        return { value: undefined, done: true };
      },
      return: async () => {
        finish();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  /** Calls `listener` once if the session is lost (its local lease ran out, or the cluster ended it). */
  onSessionLost(listener: (reason: LostReason) => void): () => void {
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }

  /** The local lease's end (on this client's clock, `now()`), or null. */
  leaseUntil(): number | null {
    return this.machine.leaseUntil();
  }

  /** Whether the session's local lease runs now. */
  isSessionAlive(): boolean {
    return this.machine.isAlive(this.now());
  }

  /** The cluster's members as last listed. */
  members(): readonly MemberInfo[] {
    return this.machine.knownMembers();
  }

  /** Stops: closes the connection and fails what is outstanding (close the session first to release its locks at once). */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.conn?.ws.close(1000);
    this.conn = null;
    for (const op of this.ops.values()) op.reject(new DistlockError("the client is closed", "closed"));
    this.ops.clear();
    for (const q of this.queries.values()) q.reject(new DistlockError("the client is closed", "closed"));
    this.queries.clear();
    for (const set of this.watchers.values()) for (const w of set) w(null);
    this.watchers.clear();
  }

  // ----- internals used by Session -----

  /** @internal Starts a machine operation and resolves with its answer. */
  run(start: (now: number) => number | MachineError): Promise<Outcome | number> {
    if (this.closed) return Promise.reject(new DistlockError("the client is closed", "closed"));
    const op = start(this.now());
    if (typeof op !== "number") return Promise.reject(toError(op));
    const p = new Promise<Outcome | number>((resolve, reject) => this.ops.set(op, { resolve, reject }));
    this.pump();
    return p;
  }

  /** @internal */
  get sessionMachine(): SessionMachine {
    return this.machine;
  }

  /** @internal */
  clock(): number {
    return this.now();
  }

  // ----- connection handling -----

  private dialFirst(url: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.firstWelcome = { resolve, reject };
      this.dial(url, null);
    });
  }

  private dial(url: string, server: number | null): void {
    const generation = ++this.generation;
    let ws: WebSocketLike;
    try {
      ws = new this.WS(url);
    } catch (e) {
      queueMicrotask(() => this.lost(generation, `cannot open ${url}: ${(e as Error).message}`));
      return;
    }
    const conn: Conn = { ws, generation, open: false, server };
    this.conn = conn;
    const timeout = setTimeout(() => {
      if (!conn.open) {
        ws.close();
        this.lost(generation, `connecting to ${url} timed out`);
      }
    }, this.connectTimeoutMs);
    ws.onopen = () => {
      if (this.conn?.generation !== generation) return;
      clearTimeout(timeout);
      conn.open = true;
      this.machine.connected(server, this.now());
      // The machine's Hello must be the connection's first frame.
      this.pump();
      // Watches and queries concern the connection: ask again on the new one.
      for (const lock of this.watchers.keys()) this.sendWatch(lock);
      for (const [id, q] of [...this.queries.entries()]) {
        this.queries.delete(id);
        this.sendQuery(q);
      }
    };
    ws.onmessage = (ev) => {
      if (this.conn?.generation !== generation) return;
      if (typeof ev.data !== "string") return;
      let frame: ServerFrame;
      try {
        frame = decodeServerFrame(ev.data);
      } catch (e) {
        ws.close(1002, "bad frame");
        this.lost(generation, (e as ProtocolError).message);
        return;
      }
      this.onFrame(frame);
    };
    ws.onerror = () => undefined;
    ws.onclose = () => {
      clearTimeout(timeout);
      this.lost(generation, "the connection closed");
    };
  }

  private lost(generation: number, why: string): void {
    if (this.conn?.generation !== generation) return;
    this.conn = null;
    if (this.firstWelcome) {
      const first = this.firstWelcome;
      this.firstWelcome = null;
      first.reject(new DistlockError(why, "connect"));
      return;
    }
    if (this.closed) return;
    this.machine.connectionLost(this.now());
    this.pump();
  }

  private onFrame(frame: ServerFrame): void {
    if ("Welcome" in frame) {
      this.server = frame.Welcome.node_id;
      if (this.firstWelcome) {
        const first = this.firstWelcome;
        this.firstWelcome = null;
        first.resolve();
      }
    }
    if ("Watch" in frame) {
      for (const w of this.watchers.get(frame.Watch.lock) ?? []) w(frame.Watch.event);
      return;
    }
    if ("Response" in frame) {
      const q = this.queries.get(frame.Response.id);
      if (q) {
        this.queries.delete(frame.Response.id);
        const r = frame.Response.result;
        if ("Ok" in r) q.resolve(r.Ok);
        else if (isRetryable(r.Err)) setTimeout(() => this.sendQuery(q), this.machine.config.backoffMinMs);
        else q.reject(new DistlockError(`the cluster refused: ${describe(r.Err)}`, "server", r.Err));
        return;
      }
    }
    this.machine.handleFrame(frame, this.now());
    this.pump();
  }

  private query(body: RequestBody): Promise<ResponseBody> {
    if (this.closed) return Promise.reject(new DistlockError("the client is closed", "closed"));
    return new Promise((resolve, reject) => this.sendQuery({ body, resolve, reject }));
  }

  private sendQuery(q: Query): void {
    const id = this.machine.takeRequestId();
    this.queries.set(id, q);
    this.sendRaw({ Request: { id, body: q.body } });
  }

  private sendWatch(lock: string): void {
    const id = this.machine.takeRequestId();
    this.sendRaw({ Request: { id, body: { Watch: { lock } } } });
  }

  /** Sends a frame if connected (the Hello has gone first); dropped otherwise, and re-sent on the next connection. */
  private sendRaw(frame: ClientFrame): void {
    const c = this.conn;
    if (!c || !c.open || c.ws.readyState !== 1) return;
    const text = encodeClientFrame(frame);
    if (text.length > MAX_MESSAGE_BYTES) throw new DistlockError("request too large", "unexpectedAnswer");
    c.ws.send(text);
  }

  /** Sends the machine's frames, delivers its events, and re-arms the timer. */
  private pump(): void {
    for (;;) {
      for (let f = this.machine.pollFrame(); f; f = this.machine.pollFrame()) this.sendRaw(f);
      const ev = this.machine.pollEvent();
      if (!ev) break;
      switch (ev.kind) {
        case "sessionOpened":
        case "completed": {
          const waiter = this.ops.get(ev.op);
          this.ops.delete(ev.op);
          if (!waiter) break;
          if ("ok" in ev.result) waiter.resolve(ev.result.ok);
          else waiter.reject(toError(ev.result.err));
          break;
        }
        case "sessionLost":
          for (const l of [...this.lostListeners]) l(ev.reason);
          this.lostListeners.clear();
          break;
        case "reconnect": {
          this.conn?.ws.close(1000);
          this.conn = null;
          if (this.closed) break;
          const scheme = this.urls[0]?.startsWith("wss:") ? "wss" : "ws";
          const to = ev.to;
          let url: string;
          if (to?.ws_addr) url = `${scheme}://${to.ws_addr}/`;
          else {
            url = this.urls[this.nextUrl % this.urls.length]!;
            this.nextUrl++;
          }
          this.dial(url, to?.ws_addr ? to.id : null);
          break;
        }
      }
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const at = this.machine.pollTimeout();
    if (at !== null && !this.closed) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.machine.handleTimeout(this.now());
        this.pump();
      }, Math.max(0, at - this.now()) + 1);
    }
  }
}

/** A granted lock: present `token` to the protected resource with every write. */
export class Lock {
  constructor(
    private readonly session: Session,
    /** The lock's name. */
    readonly name: string,
    /** The grant's fencing token. */
    readonly token: number,
    /** How it is held. */
    readonly mode: Mode,
  ) {}

  /** Releases the lock and waits for the cluster's answer. */
  release(): Promise<void> {
    return this.session.release(this.name, this.token);
  }
}

/** This session's term of office as an election's leader. */
export class Leadership {
  constructor(
    private readonly session: Session,
    /** The election. */
    readonly election: string,
    /** The term of office: the grant's fencing token. */
    readonly token: number,
  ) {}

  /** Leads with `value` from now on. */
  proclaim(value: string): Promise<void> {
    return this.session.proclaim(this.election, this.token, value);
  }

  /** Resigns: the next campaigner in line is elected. */
  resign(): Promise<void> {
    return this.session.release(this.election, this.token);
  }
}

/** An open session: the owner of locks. */
export class Session {
  constructor(
    private readonly client: Client,
    /** The session's id. */
    readonly id: number,
  ) {}

  /** Takes `name` exclusively, waiting as `options` says (default: for ever). */
  lock(name: string, options: AcquireOptions = {}): Promise<Lock> {
    return this.acquire(name, "Exclusive", options);
  }

  /** Takes `name` exclusively if it is free now; null if it is held. */
  async tryLock(name: string, options: Omit<AcquireOptions, "waitMs"> = {}): Promise<Lock | null> {
    return this.orNull(this.acquire(name, "Exclusive", { ...options, waitMs: 0 }));
  }

  /** Takes `name` shared (many readers, no writer). */
  shared(name: string, options: AcquireOptions = {}): Promise<Lock> {
    return this.acquire(name, "Shared", options);
  }

  /** Takes one of `permits` permits of the semaphore `name` (its first acquirer fixes `permits`). */
  semaphore(name: string, permits: number, options: AcquireOptions = {}): Promise<Lock> {
    return this.acquire(name, { Semaphore: permits }, options);
  }

  /** Takes `name` in `mode`; rejects with code `"notGranted"` when busy, timed out or cancelled. */
  async acquire(name: string, mode: Mode, options: AcquireOptions = {}): Promise<Lock> {
    const wait: Wait = options.waitMs === undefined ? "Forever" : options.waitMs <= 0 ? "Try" : { For: Math.round(options.waitMs) };
    const m = this.client.sessionMachine;
    let outcome: Outcome | number;
    try {
      outcome = await this.client.run((now) => m.acquire(name, mode, wait, options.lockDelayMs ?? 0, now));
    } catch (e) {
      const err = e as DistlockError;
      const lockErr = err.serverError && typeof err.serverError === "object" && "Lock" in err.serverError ? tagOf(err.serverError.Lock) : "";
      if (["Busy", "TimedOut", "Cancelled"].includes(lockErr)) {
        throw new DistlockError(`${name} was not granted (${lockErr})`, "notGranted", err.serverError);
      }
      throw e;
    }
    if (typeof outcome === "object" && "Granted" in outcome) return new Lock(this, name, outcome.Granted.token, mode);
    throw new DistlockError(`unexpected answer ${JSON.stringify(outcome)}`, "unexpectedAnswer");
  }

  /**
   * Campaigns in `election` with `value` and resolves once elected: the
   * leadership's token is its term of office (a later leader's is higher).
   * Rejects with code `"notGranted"` when another leads and the wait ran out.
   */
  async campaign(election: string, value: string, options: AcquireOptions = {}): Promise<Leadership> {
    const wait: Wait = options.waitMs === undefined ? "Forever" : options.waitMs <= 0 ? "Try" : { For: Math.round(options.waitMs) };
    const m = this.client.sessionMachine;
    let outcome: Outcome | number;
    try {
      outcome = await this.client.run((now) => m.campaign(election, value, wait, options.lockDelayMs ?? 0, now));
    } catch (e) {
      const err = e as DistlockError;
      const lockErr = err.serverError && typeof err.serverError === "object" && "Lock" in err.serverError ? tagOf(err.serverError.Lock) : "";
      if (["Busy", "TimedOut", "Cancelled"].includes(lockErr)) {
        throw new DistlockError(`${election}: not elected (${lockErr})`, "notGranted", err.serverError);
      }
      throw e;
    }
    if (typeof outcome === "object" && "Granted" in outcome) return new Leadership(this, election, outcome.Granted.token);
    throw new DistlockError(`unexpected answer ${JSON.stringify(outcome)}`, "unexpectedAnswer");
  }

  /** As the leader of `election` with term of office `token`, leads with `value` from now on. */
  async proclaim(election: string, token: number, value: string): Promise<void> {
    const m = this.client.sessionMachine;
    const outcome = await this.client.run((now) => m.proclaim(election, token, value, now));
    if (outcome !== "Proclaimed") throw new DistlockError(`unexpected answer ${JSON.stringify(outcome)}`, "unexpectedAnswer");
  }

  /** Releases `name` held with `token`. */
  async release(name: string, token: number): Promise<void> {
    const m = this.client.sessionMachine;
    const outcome = await this.client.run((now) => m.release(name, token, now));
    if (outcome !== "Released") throw new DistlockError(`unexpected answer ${JSON.stringify(outcome)}`, "unexpectedAnswer");
  }

  /** Stops waiting for `name`. */
  async cancelWait(name: string): Promise<void> {
    const m = this.client.sessionMachine;
    await this.client.run((now) => m.cancelWait(name, now));
  }

  /** Closes the session, releasing every lock it holds. */
  async close(): Promise<void> {
    const m = this.client.sessionMachine;
    const outcome = await this.client.run((now) => m.close(now));
    if (outcome !== "Closed") throw new DistlockError(`unexpected answer ${JSON.stringify(outcome)}`, "unexpectedAnswer");
  }

  /** Whether the local lease runs now: act on a lock only while it does. */
  isValid(): boolean {
    return this.client.isSessionAlive();
  }

  /** Calls `listener` once when the session is lost. */
  onLost(listener: (reason: LostReason) => void): () => void {
    return this.client.onSessionLost(listener);
  }

  private async orNull(p: Promise<Lock>): Promise<Lock | null> {
    try {
      return await p;
    } catch (e) {
      if (e instanceof DistlockError && e.code === "notGranted") return null;
      throw e;
    }
  }
}

/** A random 128-bit nonce (OpenSession is deduplicated by it). */
function randomNonce(): bigint {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}
