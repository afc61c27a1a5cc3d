// The JSON codec against the samples the Rust test pins
// (transport-ws/tests/json_samples.rs writes and checks test/samples.json):
// every client frame this package would send encodes to exactly serde_json's
// text, and every server frame decodes.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { parse, stringify } from "../src/json.js";
import { type ClientFrame, decodeServerFrame, encodeClientFrame, isRetryable, isSessionGone, tagOf } from "../src/protocol.js";

interface Sample {
  name: string;
  type: "ClientFrame" | "ServerFrame";
  json: string;
}

const samples = JSON.parse(
  readFileSync(new URL("../../test/samples.json", import.meta.url), "utf8"),
) as Sample[];

test("every client frame encodes to serde_json's exact text", () => {
  const clients = samples.filter((s) => s.type === "ClientFrame");
  assert.ok(clients.length >= 15);
  for (const s of clients) {
    const frame = parse(s.json) as unknown as ClientFrame;
    assert.equal(encodeClientFrame(frame), s.json, s.name);
  }
});

test("the client builds the same frames the samples show", () => {
  const byName = new Map(samples.filter((s) => s.type === "ClientFrame").map((s) => [s.name, s.json]));
  const open: ClientFrame = {
    Request: { id: 1, body: { Log: { OpenSession: { nonce: (1n << 128n) - 1n, ttl_ms: 10000 } } } },
  };
  assert.equal(encodeClientFrame(open), byName.get("open_session"));
  const acquire: ClientFrame = {
    Request: {
      id: 5,
      body: {
        Log: {
          Acquire: { session: 42, seq: 3, ack: 3, lock: "pool", mode: { Semaphore: 4 }, wait: "Forever", lock_delay_ms: 0 },
        },
      },
    },
  };
  assert.equal(encodeClientFrame(acquire), byName.get("acquire_semaphore_forever"));
  assert.equal(encodeClientFrame({ Request: { id: 11, body: "ClusterStatus" } }), byName.get("cluster_status"));
  assert.equal(
    encodeClientFrame({ Request: { id: 19, body: { ListLocks: { prefix: "jobs/", after: "jobs/a", limit: 100 } } } }),
    byName.get("list_locks"),
  );
  const meta = { name: "alice@db1 4242", host: "db1", pid: 4242, labels: { role: "backup" } };
  assert.equal(
    encodeClientFrame({
      Request: { id: 18, body: { Log: { OpenSessionWithMeta: { nonce: 7, ttl_ms: 10000, meta } } } },
    }),
    byName.get("open_session_with_meta"),
  );
});

test("every server frame decodes, and errors classify as in Rust", () => {
  for (const s of samples.filter((s) => s.type === "ServerFrame")) {
    const frame = decodeServerFrame(s.json);
    assert.deepEqual(frame, JSON.parse(s.json), s.name);
  }
  const err = (name: string) => {
    const f = decodeServerFrame(samples.find((s) => s.name === name)!.json);
    assert.ok("Response" in f && "Err" in f.Response.result, name);
    return f.Response.result.Err;
  };
  assert.ok(isRetryable(err("not_leader")));
  assert.ok(isRetryable(err("no_leader")));
  assert.ok(!isRetryable(err("busy")));
  assert.ok(isSessionGone(err("unknown_session")));
  assert.ok(isSessionGone(err("session_expired")));
  assert.ok(!isSessionGone(err("busy")));
  assert.equal(tagOf(err("already_held")), "Lock");
});

test("JSON integers are exact: big ones are bigints, never rounded", () => {
  const v = parse('{"a":340282366920938463463374607431768211455,"b":9007199254740991,"c":-1.5e3,"d":"\\u00fc"}');
  assert.deepEqual(v, { a: (1n << 128n) - 1n, b: 9007199254740991, c: -1500, d: "ü" });
  assert.equal(stringify(v), '{"a":340282366920938463463374607431768211455,"b":9007199254740991,"c":-1500,"d":"ü"}');
  assert.throws(() => decodeServerFrame('{"Response":{"id":18446744073709551615,"result":{"Ok":"Watching"}}}'));
  assert.throws(() => parse('{"a":1'));
  assert.throws(() => parse("[1,]"));
  assert.throws(() => decodeServerFrame('{"Nope":1}'));
});
