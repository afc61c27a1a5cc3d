// The TypeScript client in headless Chromium against a real 3-server
// distlock cluster (started here from $DISTLOCK_BIN), including failover
// when the server the page talks to is killed, and a screenshot of the
// dashboard showing a held lock; and the client over wss:// to a TLS
// server, trusted only when Chromium trusts the server's certificate.
//
// Run by scripts/browser-test, which installs Chromium (Debian's) and
// playwright-core first; nothing is downloaded here. Prints
// "N passed, N failed" and exits non-zero on a failure.

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { createServer } from "node:http";
import { createServer as netServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, "..");
const bin = process.env.DISTLOCK_BIN;
const browserPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const outDir = resolve(process.env.BROWSER_TEST_OUT ?? join(pkg, "../../target/browser-test"));
const PATIENCE = 30_000;

if (!bin || !existsSync(bin)) throw new Error(`DISTLOCK_BIN must name the distlock binary (got ${bin})`);
mkdirSync(outDir, { recursive: true });

/** A free loopback port (the kernel's pick). */
function freePort() {
  return new Promise((ok, fail) => {
    const s = netServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** Polls `probe` until it returns a truthy value, failing after `limit`. */
async function until(what, probe, limit = PATIENCE) {
  const deadline = Date.now() + limit;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ---- the page's origin: a static server for the test page and dist/ ----
const web = createServer((req, res) => {
  const path = (req.url ?? "/").split("?")[0];
  if (path === "/") {
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<!doctype html><title>distlock browser test</title><p>distlock browser test</p>");
    return;
  }
  const file = join(pkg, path);
  if (!path.startsWith("/dist/") || !file.startsWith(join(pkg, "dist")) || !existsSync(file)) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { "content-type": "text/javascript" });
  res.end(readFileSync(file));
});
const webPort = await freePort();
await new Promise((r) => web.listen(webPort, "127.0.0.1", r));
const origin = `http://127.0.0.1:${webPort}`;

// ---- the cluster ----
const n = 3;
const ports = [];
for (let i = 0; i < 3 * n; i++) ports.push(await freePort());
const addr = (p) => `127.0.0.1:${p}`;
const clients = ports.slice(0, n).map(addr);
const peers = ports.slice(n, 2 * n).map(addr);
const wss = ports.slice(2 * n).map(addr);
const list = (a) => a.map((x, i) => `${i + 1}=${x}`).join(",");
const home = mkdtempSync(join(tmpdir(), "distlock-browser-"));
const servers = new Map();
function start(id) {
  const i = id - 1;
  const child = spawn(
    bin,
    [
      "serve", "--id", String(id), "--data-dir", join(home, `n${id}`),
      "--client-addr", clients[i], "--peer-addr", peers[i], "--peers", list(peers),
      "--ws-addr", wss[i], "--ws-allow-origin", origin,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  child.stderr.on("data", (d) => (log = (log + d).slice(-4000)));
  servers.set(id, { child, log: () => log });
}
for (let id = 1; id <= n; id++) start(id);

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}\n  ${String(e?.stack ?? e).split("\n").join("\n  ")}`);
  }
}
function assert(cond, what) {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}

const browser = await chromium.launch({
  executablePath: browserPath,
  // Without the background-networking flags Chromium keeps dialling out,
  // which a closed network refuses.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  page.on("console", (m) => process.env.VERBOSE && console.log(`[page] ${m.text()}`));
  await page.goto(origin + "/");
  const urls = wss.map((w) => `ws://${w}/`);
  let killed = 0;
  let first = null;

  await check("the page opens a session and takes a lock over WebSocket", async () => {
    first = await page.evaluate(
      async ({ urls, patience }) => {
        const { Client } = await import("/dist/index.js");
        const deadline = Date.now() + patience;
        for (;;) {
          try {
            window.client = await Client.connect(urls, { requestTimeoutMs: 1000 });
            window.session = await window.client.openSession(10_000);
            break;
          } catch (e) {
            if (Date.now() > deadline) throw e;
            await new Promise((r) => setTimeout(r, 100));
          }
        }
        window.lost = 0;
        window.session.onLost((r) => {
          window.lost++;
          console.log(`session lost: ${JSON.stringify(r)}`);
        });
        window.events = [];
        (async () => {
          for await (const e of window.client.watch("browser-a")) window.events.push(e);
        })();
        window.lockA = await window.session.lock("browser-a");
        return { server: window.client.server, token: window.lockA.token };
      },
      { urls, patience: PATIENCE },
    );
    assert(first.token > 0, `a token (${JSON.stringify(first)})`);
    assert(first.server >= 1 && first.server <= n, "a server id");
  });

  await check("shared, semaphore and tryLock with fencing tokens", async () => {
    const r = await page.evaluate(async ({ urls }) => {
      const { Client } = await import("/dist/index.js");
      const other = await Client.connect(urls);
      const s2 = await other.openSession(10_000);
      const busy = await s2.tryLock("browser-a");
      const r1 = await window.session.shared("browser-r");
      const r2 = await s2.shared("browser-r");
      const p1 = await window.session.semaphore("browser-sem", 2);
      const p2 = await s2.semaphore("browser-sem", 2);
      await Promise.all([r1.release(), r2.release(), p1.release(), p2.release()]);
      await s2.close();
      other.close();
      return { busy, tokens: [r1.token, r2.token, p1.token, p2.token] };
    }, { urls });
    assert(r.busy === null, "tryLock of a held lock answers null");
    assert(r.tokens.every((t, i) => i === 0 || t > r.tokens[i - 1]), `increasing tokens ${r.tokens}`);
  });

  await check("failover: the server the page talks to is killed, the session and its lock survive", async () => {
    assert(first, "the first check ran");
    killed = first.server;
    servers.get(killed).child.kill("SIGKILL");
    const r = await page.evaluate(async () => {
      await window.lockA.release();
      const again = await window.session.lock("browser-a");
      return {
        server: window.client.server,
        token: again.token,
        valid: window.session.isValid(),
        lost: window.lost,
        events: window.events.map((e) => Object.keys(e)[0]),
      };
    });
    assert(r.server !== killed, `moved off server ${killed} (now ${r.server})`);
    assert(r.token > first.token, `a newer token (${r.token} > ${first.token})`);
    assert(r.valid && r.lost === 0, "the session is still valid and was never lost");
    assert(r.events.includes("Acquired"), `the watch saw events: ${r.events}`);
  });

  await check("the dashboard shows the cluster and every lock, live (screenshot)", async () => {
    try {
      await dashboardChecks();
    } finally {
      // The waiter's session must not outlive this check, whatever failed.
      await page.evaluate(async () => {
        if (window.s2) await window.s2.close().catch(() => {});
        if (window.other) window.other.close();
        window.s2 = window.other = null;
      });
    }
  });

  async function dashboardChecks() {
    // A grant, a release and a grant again of browser-held, then a waiter
    // queued behind the holder, so the lock has a timeline and a queue.
    const r = await page.evaluate(async ({ urls }) => {
      const first = await window.session.lock("browser-held");
      await first.release();
      window.held = await window.session.lock("browser-held");
      const { Client } = await import("/dist/index.js");
      window.other = await Client.connect(urls);
      window.s2 = await window.other.openSession(10_000);
      window.waiting = window.s2.lock("browser-held");
      return { first: first.token, held: window.held.token };
    }, { urls });
    // The leader's dashboard: only the leader knows how far each member
    // has replicated (a follower's page links to it).
    const live = await page.evaluate(async () => (await window.client.clusterStatus()).leader);
    assert(live && live !== killed, `a live leader (${live})`);
    const dash = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await dash.goto(`http://${wss[live - 1]}/`);
    const listing = await until("the dashboard knows whether it can list every lock", async () => {
      const l = await dash.evaluate(() => document.body.dataset.listing);
      return l === "all" || l === "named" ? l : null;
    });
    // A failover just happened: the new leader's first answers may be
    // errors, which must not make the page give up listing.
    assert(listing === "all", "the dashboard lists every lock");
    await until("the dashboard shows the lock held, with its token and its waiter", async () => {
      const row = await dash.locator('tr[data-lock="browser-held"]').innerText();
      return row.includes("held") && row.includes(String(r.held)) && row.includes("Exclusive") && /session \d+ Exclusive/.test(row);
    });
    const rows = await dash.locator("tr[data-lock]").count();
    assert(rows >= 2, `every held lock is listed (${rows} rows)`);
    await until("the dashboard shows a leader and every member", async () => {
      const leader = await dash.locator("#leader").innerText();
      const members = await dash.locator("tr[data-member]").count();
      return leader.startsWith("node ") && members === n;
    });
    await until("the leader reports a replication lag per member", async () =>
      (await dash.locator("#members").innerText()).includes("entries"));
    const shot = join(outDir, "dashboard.png");
    await dash.screenshot({ path: shot, fullPage: true });
    console.log(`  screenshot: ${shot}`);

    // The lock's own page: holders and waiters, and the timeline of
    // grants with their tokens as they happen.
    await dash.click('tr[data-lock="browser-held"] a');
    await until("the lock page shows its holder and waiter", async () =>
      (await dash.locator("#l-people").innerText()).includes("waiter 1"));
    await page.evaluate(async () => {
      await window.held.release();
      window.next = await window.waiting;
      await window.next.release();
      window.held = await window.session.lock("browser-held");
    });
    const grants = await until("the timeline shows the grants that happened since", async () => {
      const cells = await dash.locator('#l-events tr[data-event="Acquired"] td.token').allInnerTexts();
      return cells.length >= 2 ? cells : null;
    });
    assert(await dash.locator("#l-events").isVisible(), "the lock page is shown");
    const tokens = grants.map(Number);
    // Newest first: every token on the timeline is newer than the grants
    // made before the page opened, and they increase with time.
    assert(tokens.every((t, i) => t > r.held && (i === 0 || t < tokens[i - 1])), `increasing tokens on the timeline: ${tokens}`);
    assert((await dash.locator("#l-events").innerText()).includes("released"), "releases are on the timeline");
    const lockShot = join(outDir, "dashboard-lock.png");
    await dash.screenshot({ path: lockShot, fullPage: true });
    console.log(`  screenshot: ${lockShot}`);
  }

  await check("the session closes and its locks are released", async () => {
    const r = await page.evaluate(async () => {
      await window.session.close();
      const st = await window.client.lockStatus("browser-held");
      window.client.close();
      return st;
    });
    assert(r === null, `browser-held is free (${JSON.stringify(r)})`);
  });

  await check("wss: the client takes a lock from a TLS server only when the browser trusts its certificate", tlsChecks);
} finally {
  await browser.close();
  for (const { child } of servers.values()) child.kill("SIGKILL");
  web.close();
  if (failed) for (const [id, s] of servers) console.log(`--- server ${id} log tail ---\n${s.log().slice(-1500)}`);
  rmSync(home, { recursive: true, force: true });
}

/**
 * One server with TLS on every port (`distlock tls dev-ca`, as the README
 * shows). The browser's own trust decides: a Chromium that does not know
 * the development CA refuses the connection; one whose trust store (the
 * NSS database Chromium reads on Linux) holds the CA gets a session and a
 * lock over wss://.
 */
async function tlsChecks() {
  const dir = join(home, "tls");
  const made = spawnSync(bin, ["tls", "dev-ca", dir, "--nodes", "1"], { encoding: "utf8" });
  assert(made.status === 0, `tls dev-ca: ${made.stderr}`);
  const [client, peer, ws] = [await freePort(), await freePort(), await freePort()];
  const child = spawn(
    bin,
    [
      "serve", "--id", "1", "--data-dir", join(home, "tls-data"),
      "--client-addr", addr(client), "--peer-addr", addr(peer), "--ws-addr", addr(ws),
      "--ws-allow-origin", origin,
      "--tls-cert", join(dir, "node-1.pem"), "--tls-key", join(dir, "node-1.key"), "--tls-ca", join(dir, "ca.pem"),
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  child.stderr.on("data", (d) => (log = (log + d).slice(-4000)));
  servers.set("tls", { child, log: () => log });
  const url = `wss://localhost:${ws}/`;
  const takeLock = async (page) =>
    page.evaluate(
      async ({ url, patience }) => {
        const { Client } = await import("/dist/index.js");
        const deadline = Date.now() + patience;
        for (;;) {
          try {
            const c = await Client.connect([url], { requestTimeoutMs: 1000 });
            const s = await c.openSession(10_000);
            const g = await s.lock("browser-tls");
            const token = g.token;
            await s.close();
            c.close();
            return { token };
          } catch (e) {
            if (Date.now() > deadline) return { error: String(e) };
            await new Promise((r) => setTimeout(r, 200));
          }
        }
      },
      { url, patience: PATIENCE },
    );
  // The platform's trust store: Chromium on Linux trusts the CAs of the
  // NSS database in $HOME/.pki/nssdb; this browser gets the development
  // CA there (certutil, from Debian's libnss3-tools).
  const trustHome = join(home, "trusting-home");
  const nssdb = join(trustHome, ".pki", "nssdb");
  mkdirSync(nssdb, { recursive: true });
  for (const args of [
    ["-N", "-d", `sql:${nssdb}`, "--empty-password"],
    ["-A", "-d", `sql:${nssdb}`, "-t", "C,,", "-n", "distlock development CA", "-i", join(dir, "ca.pem")],
  ]) {
    const r = spawnSync("certutil", args, { encoding: "utf8" });
    assert(r.status === 0, `certutil ${args.join(" ")}: ${r.error ?? r.stderr}`);
  }
  const trusting = await chromium.launch({
    executablePath: browserPath,
    env: { ...process.env, HOME: trustHome },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await trusting.newPage();
    await page.goto(origin + "/");
    const r = await takeLock(page);
    assert(r.token > 0, `a lock over wss:// (${JSON.stringify(r)})`);
  } finally {
    await trusting.close();
  }
  // The browser of the other checks has no reason to trust the dev CA.
  const page = await browser.newPage();
  await page.goto(origin + "/");
  const refused = await page.evaluate(async ({ url }) => {
    const { Client } = await import("/dist/index.js");
    try {
      const c = await Client.connect([url], { requestTimeoutMs: 1000, connectTimeoutMs: 3000 });
      c.close();
      return "connected";
    } catch (e) {
      return String(e);
    }
  }, { url });
  assert(refused !== "connected", "a browser that does not trust the certificate cannot connect");
  await page.close();
}

console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
