/**
 * distlock for browsers and edge runtimes: sessions with keepalives and a
 * conservative local lease, failover across the cluster's servers with
 * exactly-once retries, locks (exclusive, shared, semaphore) with fencing
 * tokens, and watches, over the servers' WebSocket endpoint (JSON text
 * frames).
 *
 * ```ts
 * import { Client } from "distlock-client";
 * const client = await Client.connect(["ws://127.0.0.1:7201/"]);
 * const session = await client.openSession(10_000);
 * const lock = await session.lock("orders-db");
 * await writeWithToken(lock.token);
 * await lock.release();
 * ```
 *
 * @module
 */

export { Client, DistlockError, Leadership, Lock, Session } from "./client.js";
export type { AcquireOptions, ClientOptions, WebSocketFactory, WebSocketLike } from "./client.js";
export { DEFAULT_MACHINE_CONFIG, SessionMachine } from "./machine.js";
export type { LostReason, MachineConfig, MachineError, MachineEvent } from "./machine.js";
export * from "./protocol.js";
export { JsonSyntaxError, parse as parseJson, stringify as stringifyJson } from "./json.js";
export type { Json } from "./json.js";
