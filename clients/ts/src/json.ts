/**
 * Exact JSON for the distlock protocol.
 *
 * The server's JSON is serde_json's: integers are written as plain digits
 * of any size (a session nonce is a u128). `JSON.parse` would silently
 * round integers above 2^53, and `JSON.stringify` cannot write a bigint, so
 * this module does both exactly:
 *
 * - {@link stringify} writes `bigint` values as plain digits;
 * - {@link parse} reads integers within ±(2^53 − 1) as `number` and larger
 *   ones as `bigint`, never rounding.
 *
 * @module
 */

/** A JSON value as {@link parse} returns it. */
export type Json =
  | null
  | boolean
  | number
  | bigint
  | string
  | Json[]
  | { [key: string]: Json };

/** Why a text is not JSON. */
export class JsonSyntaxError extends Error {
  constructor(message: string, readonly at: number) {
    super(`${message} at offset ${at}`);
    this.name = "JsonSyntaxError";
  }
}

/** Serialises `value` as compact JSON; bigints become plain digits. */
export function stringify(value: unknown): string {
  if (value === null || value === undefined) return "null";
  switch (typeof value) {
    case "bigint":
      return value.toString();
    case "number":
      if (!Number.isFinite(value)) throw new TypeError(`cannot encode ${value} as JSON`);
      return JSON.stringify(value);
    case "string":
    case "boolean":
      return JSON.stringify(value);
    case "object": {
      if (Array.isArray(value)) return "[" + value.map(stringify).join(",") + "]";
      const parts: string[] = [];
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (v === undefined) continue;
        parts.push(JSON.stringify(k) + ":" + stringify(v));
      }
      return "{" + parts.join(",") + "}";
    }
    default:
      throw new TypeError(`cannot encode a ${typeof value} as JSON`);
  }
}

/** Parses JSON text exactly (see the module's documentation). */
export function parse(text: string): Json {
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  const fail = (what: string): never => {
    throw new JsonSyntaxError(what, i);
  };
  const value = (depth: number): Json => {
    if (depth > 128) fail("nesting too deep");
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const out: { [key: string]: Json } = {};
      ws();
      if (text[i] === "}") {
        i++;
        return out;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a key");
        const key = str();
        ws();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        out[key] = value(depth + 1);
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          return out;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const out: Json[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return out;
      }
      for (;;) {
        out.push(value(depth + 1));
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return out;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return str();
    if (text.startsWith("true", i)) {
      i += 4;
      return true;
    }
    if (text.startsWith("false", i)) {
      i += 5;
      return false;
    }
    if (text.startsWith("null", i)) {
      i += 4;
      return null;
    }
    return num();
  };
  const str = (): string => {
    // Find the closing quote, then let JSON.parse decode the escapes.
    const start = i;
    i++;
    while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    if (i >= text.length) fail("unterminated string");
    i++;
    try {
      return JSON.parse(text.slice(start, i)) as string;
    } catch {
      return fail("bad string");
    }
  };
  const num = (): number | bigint => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) return fail("unexpected character");
    i += m[0].length;
    if (m[2] === undefined && m[3] === undefined) {
      const n = Number(m[0]);
      return Number.isSafeInteger(n) ? n : BigInt(m[0]);
    }
    return Number(m[0]);
  };
  const out = value(0);
  ws();
  if (i !== text.length) fail("trailing characters");
  return out;
}
