/**
 * The distlock wire protocol as JSON (WebSocket text messages): the exact
 * serde_json encoding of the Rust `ClientFrame` and `ServerFrame` types.
 * Enums are externally tagged: a unit variant is its name as a string
 * (`"ClusterStatus"`), any other variant an object with one key
 * (`{"Watch": {"lock": "a"}}`). Field names are part of the protocol; the
 * Rust and TypeScript tests pin the same samples (test/samples.json).
 *
 * Ids, sequence numbers, fencing tokens and log indexes are u64 on the
 * wire; they are `number` here, exact up to 2^53 − 1 (they are log indexes
 * and counters, which never get near that). The session nonce is a random
 * u128 and travels as a `bigint`.
 *
 * @module
 */

import { type Json, parse, stringify } from "./json.js";

/** The protocol version this client speaks. */
export const PROTOCOL_VERSION = 1;

/** The largest message either side sends (1 MiB), as the servers enforce. */
export const MAX_MESSAGE_BYTES = 1 << 20;

export type Mode = "Exclusive" | "Shared" | { Semaphore: number };
export type LockKind = "ReadWrite" | { Semaphore: number };
export type Wait = "Try" | { For: number } | "Forever";

export type ClientCommand =
  | { OpenSession: { nonce: bigint | number; ttl_ms: number } }
  | { CloseSession: { session: number; seq: number; ack: number } }
  | {
      Acquire: {
        session: number;
        seq: number;
        ack: number;
        lock: string;
        mode: Mode;
        wait: Wait;
        lock_delay_ms: number;
      };
    }
  | { Release: { session: number; seq: number; ack: number; lock: string; token: number } }
  | { CancelWait: { session: number; seq: number; ack: number; lock: string } }
  | { OpenSessionWithMeta: { nonce: bigint | number; ttl_ms: number; meta: SessionMeta } }
  | {
      Campaign: {
        session: number;
        seq: number;
        ack: number;
        election: string;
        value: string;
        wait: Wait;
        lock_delay_ms: number;
      };
    }
  | { Proclaim: { session: number; seq: number; ack: number; election: string; token: number; value: string } };

/** Who opened a session (bounded: name 128 bytes, host 255, 16 labels of 64/256 bytes; no control characters). */
export interface SessionMeta {
  name: string;
  host: string;
  pid: number | null;
  labels: Record<string, string>;
}
export type MetaField = "Name" | "Host" | "LabelKey" | "LabelValue";
export type MetaError =
  | { Length: { field: MetaField; len: number; max: number } }
  | { TooManyLabels: { count: number; max: number } }
  | { ControlCharacter: { field: MetaField } };

export type RequestBody =
  | { Log: ClientCommand }
  | { KeepAlive: { session: number } }
  | { CheckToken: { lock: string; token: number } }
  | { LockStatus: { lock: string } }
  | "ClusterStatus"
  | { Watch: { lock: string } }
  | { Unwatch: { lock: string } }
  | { ChangeMembership: MembershipChange }
  | { TakeSnapshot: { max_len: number } }
  | { SnapshotChunk: { index: number; offset: number; max_len: number } }
  | { Attach: { session: number; secret: bigint | number } }
  | { ListLocks: { prefix: string; after: string | null; limit: number } }
  | { ListSessions: { after: number | null; limit: number } }
  | { RevokeSession: { session: number } }
  | { Leader: { election: string } };

/** An operator's membership change (`distlock members`). */
export type MembershipChange =
  | { AddLearner: [number, { peer: string; client: string; ws: string | null }] }
  | { Promote: number }
  | { Remove: number }
  | { SetAddrs: [number, { peer: string; client: string; ws: string | null }] };

/** Why a membership change was refused. */
export type MembershipError =
  | { NotLeader: { leader: number | null } }
  | "ChangeInProgress"
  | { AlreadyMember: number }
  | { NotLearner: number }
  | { NotMember: number }
  | { NotCaughtUp: { id: number; match_index: number; last_index: number } }
  | "LastVoter"
  | "ZeroId"
  | { QuorumUnreachable: { reachable: number; needed: number } };

export type ClientFrame =
  | { Hello: { protocol_version: number; cluster_id: string | null; auth: string | null } }
  | { Request: { id: number; body: RequestBody } };

export interface MemberInfo {
  id: number;
  client_addr: string;
  ws_addr: string | null;
}

export type Outcome =
  | { Granted: { token: number } }
  | "Released"
  | "WaitCancelled"
  | "Closed"
  | "Pending"
  | "Proclaimed";

export type LockError =
  | "SessionNotFound"
  | "SessionExpired"
  | "SessionClosed"
  | { StaleSequence: { floor: number } }
  | { TooManyUnacknowledged: { max: number } }
  | { InvalidName: { len: number; max: number } }
  | { InvalidTtl: { ttl_ms: number; min_ms: number; max_ms: number } }
  | { InvalidLockDelay: { delay_ms: number; max_ms: number } }
  | "InvalidSemaphore"
  | { TooManySessions: { max: number } }
  | { TooManyLocks: { max: number } }
  | { TooManyWaiters: { max: number } }
  | { Busy: { delayed: boolean } }
  | { AlreadyHeld: { token: number } }
  | "AlreadyWaiting"
  | { ModeMismatch: { kind: LockKind } }
  | { SemaphoreMismatch: { n: number } }
  | "NotHolder"
  | "NotWaiting"
  | "TimedOut"
  | "Cancelled"
  | { InvalidSessionMeta: MetaError }
  | { InvalidValue: { len: number; max: number } };

export type ProtoError =
  | { UnsupportedVersion: { server: number; client: number } }
  | "WrongCluster"
  | "Unauthorized"
  | "HelloRequired"
  | { FrameTooLarge: { len: number; max: number } }
  | { Malformed: { reason: string } }
  | { NotLeader: { leader_hint: number | null } }
  | "NoLeader"
  | { Lock: LockError }
  | "ShuttingDown"
  | "Overloaded"
  | "Timeout"
  | "UnknownSession"
  | { Membership: MembershipError }
  | { LeaderUnreachable: { leader: number } }
  | { SnapshotUnavailable: { index: number } }
  | "NotAttached"
  | "NotSessionOwner"
  | { Forbidden: { right: Right; lock: string | null } }
  | { TooManyConnections: { max: number } }
  | { TooManySessions: { max: number } }
  | { TooManyWatches: { max: number } }
  | { TooManyInFlight: { max: number } }
  | { RateLimited: { per_second: number } }
  | { FrameTimeout: { secs: number } };

/** A right granted on lock-name prefixes (see docs/SECURITY.md). */
export type Right = "Lock" | "Read" | "Admin";

export interface HolderView {
  session: number;
  token: number;
}
export interface WaiterView {
  session: number;
  mode: Mode;
  timeout_ms: number | null;
}
export interface LockStatusView {
  mode: Mode | null;
  kind: LockKind;
  holders: HolderView[];
  waiters: WaiterView[];
  delay: { since: number; delay_ms: number } | null;
}
export type MemberRole = "Leader" | "Follower" | "Candidate" | "Learner";
export interface MemberStatus {
  id: number;
  client_addr: string;
  ws_addr: string | null;
  role: MemberRole;
  match_index: number | null;
}
export interface ClusterStatusView {
  leader: number | null;
  term: number;
  commit_index: number;
  members: MemberStatus[];
}

export type ResponseBody =
  | { SessionOpened: { session: number; ttl_ms: number } }
  | { KeepAliveAck: { session: number } }
  | { Lock: Outcome }
  | { TokenValid: boolean }
  | { LockStatus: LockStatusView | null }
  | { ClusterStatus: ClusterStatusView }
  | "Watching"
  | "Unwatched"
  | { MembershipChanged: { index: number } }
  | {
      SnapshotChunk: { index: number; term: number; offset: number; total_len: number; data: number[] };
    }
  | { Attached: { session: number } }
  | { Locks: LockListView }
  | { Sessions: SessionListView }
  | { Revoked: { session: number } }
  | { Leader: LeaderView | null };

/** An election's leader: its session, term of office (token) and value. */
export interface LeaderView {
  session: number;
  token: number;
  value: string | null;
  owner: SessionMeta | null;
}

/** A page of `ListLocks`: locks with holders, waiters or a lock-delay, by name. */
export interface LockListView {
  index: number;
  locks: LockEntryView[];
  /** Pass as `after` for the next page; null on the last one. */
  next: string | null;
}
export interface LockEntryView {
  name: string;
  kind: LockKind;
  mode: Mode | null;
  holders: { session: number; token: number; since: number; owner: SessionMeta | null }[];
  waiters: { session: number; mode: Mode; timeout_ms: number | null; owner: SessionMeta | null }[];
  delay: { since: number; delay_ms: number } | null;
}
/** A page of `ListSessions`: live sessions, by id. */
export interface SessionListView {
  index: number;
  sessions: { session: number; ttl_ms: number; held: number; waiting: number; owner: SessionMeta | null }[];
  /** Pass as `after` for the next page; null on the last one. */
  next: number | null;
}

export type LockEvent =
  | { Acquired: { index: number; session: number; token: number; mode: Mode } }
  | { Released: { index: number; session: number; token: number } }
  | { Expired: { index: number; session: number; token: number } }
  | { Proclaimed: { index: number; session: number; token: number } };

export interface WatchEvent {
  lock: string;
  event: LockEvent;
}

export type Result<T, E> = { Ok: T } | { Err: E };

export interface Response {
  id: number;
  result: Result<ResponseBody, ProtoError>;
}

export type ServerFrame =
  | { Welcome: { node_id: number; leader_hint: number | null; members: MemberInfo[] } }
  | { Response: Response }
  | { Watch: WatchEvent }
  | { Error: ProtoError };

/** The variant name of an externally tagged enum value. */
export function tagOf(value: string | object): string {
  return typeof value === "string" ? value : (Object.keys(value)[0] ?? "");
}

/** The frame as the server expects it in a text message. */
export function encodeClientFrame(frame: ClientFrame): string {
  return stringify(frame);
}

/** Why a server message could not be understood. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

/**
 * Reads a server's text message. Checks the frame's outer shape (enough
 * to route it); integers above 2^53 − 1 in it are refused rather than
 * rounded.
 */
export function decodeServerFrame(text: string): ServerFrame {
  let value: Json;
  try {
    value = parse(text);
  } catch (e) {
    throw new ProtocolError(`not JSON: ${(e as Error).message}`);
  }
  if (containsBigInt(value)) {
    throw new ProtocolError("an integer above 2^53 - 1: this client cannot represent it exactly");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ProtocolError("a frame must be a JSON object");
  }
  const tag = tagOf(value);
  if (!["Welcome", "Response", "Watch", "Error"].includes(tag)) {
    throw new ProtocolError(`unknown frame ${JSON.stringify(tag)}`);
  }
  return value as unknown as ServerFrame;
}

function containsBigInt(v: Json): boolean {
  if (typeof v === "bigint") return true;
  if (v === null || typeof v !== "object") return false;
  return (Array.isArray(v) ? v : Object.values(v)).some(containsBigInt);
}

/** Whether the error says "try again (elsewhere or later)". */
export function isRetryable(e: ProtoError): boolean {
  return ["NotLeader", "NoLeader", "ShuttingDown", "Overloaded", "Timeout", "LeaderUnreachable", "NotAttached", "TooManyInFlight", "RateLimited"].includes(
    tagOf(e),
  );
}

/** Whether the error says the session is gone for good. */
export function isSessionGone(e: ProtoError): boolean {
  if (tagOf(e) === "UnknownSession" || tagOf(e) === "NotSessionOwner") return true;
  if (typeof e === "object" && "Lock" in e) {
    return ["SessionExpired", "SessionNotFound", "SessionClosed"].includes(tagOf(e.Lock));
  }
  return false;
}

/** A readable description of a protocol error. */
export function describe(e: ProtoError): string {
  const tag = tagOf(e);
  if (typeof e === "string") return tag;
  if ("Lock" in e) return `${tag}: ${describe(e.Lock as ProtoError)}`;
  return `${tag} ${JSON.stringify((e as Record<string, unknown>)[tag])}`;
}
