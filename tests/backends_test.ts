/**
 * Backends that stay up, end to end: real TCP and HTTP servers behind edgemux, real clients in
 * front. Servers are killed and restarted on the same port while traffic flows; the tests check
 * what clients saw (statuses, replies tagged with the server's name), what the servers saw, and
 * what edgemux wrote in its access and request records.
 * Long because its cases (balancing, health, retries, connection limits) share the clients and
 * servers defined at its top, and each runs real servers under changing conditions.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { prepareConfig } from "../mod.ts";
import { EDGE_CERTIFICATES, readCert } from "./_helpers/certs.ts";
import { startEdgemux, type TestProxy } from "./_helpers/edgemux.ts";
import { run } from "./_helpers/process.ts";
import {
  startStubHttp,
  startTaggedEcho,
  type StubHttpServer,
  type StubReply,
} from "./_helpers/stub_servers.ts";
import { requireTool } from "./_helpers/tools.ts";
import { connectTlsByName, ConnReader, parseResponseHead } from "./_helpers/websocket.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CA = readCert("ca");
/** The edge route's name; edge-wildcard.pem covers it. */
const NAME = "app.example.test";

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/** A response as the client saw it. */
interface HttpReply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * An HTTP/1.1 client over TLS to edgemux's edge route, keeping its connection alive between
 * requests and opening a new one when edgemux closed the last (error answers close).
 */
class HttpsClient implements AsyncDisposable {
  #conn: Deno.TlsConn | null = null;
  #reader: ConnReader | null = null;

  constructor(readonly port: number) {}

  async request(
    method: string,
    path: string,
    opts: { body?: string; close?: boolean; timeoutMs?: number } = {},
  ): Promise<HttpReply> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    if (this.#conn === null) {
      const { conn } = await connectTlsByName({
        port: this.port,
        serverName: NAME,
        caCerts: [CA],
        timeoutMs,
      });
      this.#conn = conn;
      this.#reader = new ConnReader(conn);
    }
    const conn = this.#conn;
    const reader = this.#reader!;
    const body = opts.body === undefined ? "" : opts.body;
    let head = `${method} ${path} HTTP/1.1\r\nhost: ${NAME}\r\n`;
    if (opts.body !== undefined) head += `content-length: ${encoder.encode(body).length}\r\n`;
    if (opts.close) head += "connection: close\r\n";
    try {
      await writeAll(conn, encoder.encode(`${head}\r\n${body}`));
      const raw = await reader.readUntil("\r\n\r\n", timeoutMs);
      if (raw === null) throw new Error(`edgemux closed the connection without answering`);
      const parsed = parseResponseHead(raw);
      const length = Number(parsed.headers["content-length"] ?? "0");
      const bytes = method === "HEAD" ? new Uint8Array(0) : await reader.readExactly(
        length,
        timeoutMs,
      );
      if (/close/i.test(parsed.headers["connection"] ?? "") || opts.close) this.close();
      return { status: parsed.status, headers: parsed.headers, body: decoder.decode(bytes) };
    } catch (e) {
      this.close();
      throw e;
    }
  }

  close(): void {
    if (this.#conn !== null) closeQuietly(this.#conn);
    this.#conn = null;
    this.#reader = null;
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

/** One request on a connection of its own. */
async function httpsOnce(
  port: number,
  method: string,
  path: string,
  opts: { body?: string; timeoutMs?: number } = {},
): Promise<HttpReply> {
  await using client = new HttpsClient(port);
  return await client.request(method, path, { ...opts, close: true });
}

/** A TCP connection through edgemux to a tagged echo server, held open. */
interface EchoConn extends Disposable {
  conn: Deno.TcpConn;
  /** The name of the server that answered the first line. */
  server: string;
}

/** Connects, sends one line and reads the answer, which names the server. */
async function openEcho(port: number, line = "hello", timeoutMs = 3000): Promise<EchoConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, encoder.encode(`${line}\n`));
    const reply = await new ConnReader(conn).readUntil("\n", timeoutMs);
    if (reply === null) throw new Error("edgemux closed the connection without an answer");
    const text = decoder.decode(reply).trimEnd();
    const space = text.indexOf(" ");
    equal(text.slice(space + 1), line, `the echo of ${line}`);
    return { conn, server: text.slice(0, space), [Symbol.dispose]: () => closeQuietly(conn) };
  } catch (e) {
    closeQuietly(conn);
    throw e;
  }
}

/** One line there and back on a connection of its own; the name of the server that answered. */
async function echoOnce(port: number, line = "hello"): Promise<string> {
  using c = await openEcho(port, line);
  return c.server;
}

/**
 * Connects and waits for edgemux to close the connection without a byte. Returns how long that
 * took; throws if data arrives or nothing happens within `timeoutMs`.
 */
async function expectRefused(port: number, timeoutMs = 2000): Promise<number> {
  const started = performance.now();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const got = await new ConnReader(conn).readSome(timeoutMs);
    if (got !== null) throw new Error(`expected a closed connection, got ${decoder.decode(got)}`);
    return performance.now() - started;
  } finally {
    closeQuietly(conn);
  }
}

// ---------------------------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------------------------

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let o = 0; o < data.length;) o += await conn.write(data.subarray(o));
}

function closeQuietly(c: { close(): void }): void {
  try {
    c.close();
  } catch {
    // Already closed.
  }
}

/** Resolves once `condition()` holds, polling every 10 ms; rejects after `timeoutMs`. */
async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!await condition()) {
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A port nobody listens on. */
function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

function countOf<T>(items: readonly T[], which: T): number {
  return items.filter((x) => x === which).length;
}

const addr = (s: { port: number }) => `"127.0.0.1:${s.port}"`;

/** A listener named `https` with one edge route for NAME to `backend`. */
function edgeListener(backend: string): string {
  return `  https:
    bind: "127.0.0.1:0"
    routes:
      - { sni: ${NAME}, edge: ${backend} }`;
}

/** A listener named `tcp` that forwards every connection to backend `tcp`. */
const TCP_LISTENER = `  tcp:
    bind: "127.0.0.1:0"
    routes:
      - forward: tcp`;

/** A config with `limits` whose `tcp` listener forwards to the one server `echo`. */
function limitedEchoConfig(limits: string, echo: { port: number }): string {
  return `
version: 1
${limits}
backends:
  tcp: { servers: [${addr(echo)}] }
listeners:
${TCP_LISTENER}
`;
}

/** Request records for `path`, waiting until `n` have arrived. */
async function requestRecords(edgemux: TestProxy, path: string, n = 1) {
  await waitFor(
    `${n} request records for ${path}`,
    () => edgemux.requests.filter((r) => r.path === path).length >= n,
    3000,
  );
  return edgemux.requests.filter((r) => r.path === path);
}

// ---------------------------------------------------------------------------------------------
// Health checks under load
// ---------------------------------------------------------------------------------------------

interface Attempt {
  kind: "tcp" | "http";
  start: number;
  end: number;
  /** The server that answered, or null on failure. */
  server: string | null;
  error: string | null;
}

Deno.test("a server killed under load is taken out of rotation, then back in when it returns", async () => {
  const INTERVAL = 200;
  const FALL = 2;
  const RISE = 2;
  await using t1 = startTaggedEcho("t1");
  await using t2 = startTaggedEcho("t2");
  await using h1 = startStubHttp("h1");
  await using h2 = startStubHttp("h2");
  const check = `{ interval: ${INTERVAL}ms, timeout: 100ms, fall: ${FALL}, rise: ${RISE} }`;
  await using edgemux = await startEdgemux(`
version: 1
${EDGE_CERTIFICATES}
backends:
  tcp:
    servers: [${addr(t1)}, ${addr(t2)}]
    health_check: ${check}
  web:
    servers: [${addr(h1)}, ${addr(h2)}]
    health_check: ${check}
listeners:
${TCP_LISTENER}
${edgeListener("web")}
`);
  const tcpPort = edgemux.port("tcp");
  const httpsPort = edgemux.port("https");

  const attempts: Attempt[] = [];
  let running = true;
  const tcpLoop = async () => {
    for (let i = 0; running && i < 20_000; i++) {
      const start = performance.now();
      try {
        const server = await echoOnce(tcpPort, `n${i}`);
        attempts.push({ kind: "tcp", start, end: performance.now(), server, error: null });
      } catch (e) {
        attempts.push({ kind: "tcp", start, end: performance.now(), server: null, error: `${e}` });
      }
      // Paced, so that the TLS handshakes of the HTTP loop get their share of the CPU.
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const httpLoop = async () => {
    for (let i = 0; running && i < 20_000; i++) {
      const start = performance.now();
      try {
        const r = await httpsOnce(httpsPort, "GET", `/n${i}`, { timeoutMs: 3000 });
        const server = r.status === 200 ? r.headers["x-backend"] : null;
        const error = r.status === 200 ? null : `status ${r.status}`;
        attempts.push({ kind: "http", start, end: performance.now(), server, error });
      } catch (e) {
        attempts.push({ kind: "http", start, end: performance.now(), server: null, error: `${e}` });
      }
    }
  };
  const loops = Promise.all([tcpLoop(), httpLoop()]);
  const served = (kind: "tcp" | "http", server: string, after: number) =>
    attempts.some((a) => a.kind === kind && a.server === server && a.start >= after);
  let killedAt = 0;
  let restartedAt = 0;
  try {
    await waitFor(
      "traffic on all four servers",
      () =>
        served("tcp", "t1", 0) && served("tcp", "t2", 0) && served("http", "h1", 0) &&
        served("http", "h2", 0) && attempts.filter((a) => a.kind === "http").length >= 20,
      8000,
    );

    await Promise.all([t1.stop(), h1.stop()]);
    killedAt = performance.now();
    // Well past detection (interval × fall), so that a stretch of traffic runs without them.
    const detected = killedAt + INTERVAL * FALL;
    await waitFor("traffic after detection", () => performance.now() > detected + 800, 5000);

    t1.start();
    h1.start();
    restartedAt = performance.now();
    await waitFor(
      "the restarted servers serving again",
      () => served("tcp", "t1", restartedAt) && served("http", "h1", restartedAt),
      INTERVAL * RISE + 2000,
    );
  } finally {
    running = false;
    await loops;
  }

  const detected = killedAt + INTERVAL * FALL;
  const failed = (a: Attempt) => a.error !== null;
  const beforeKill = attempts.filter((a) => a.end < killedAt);
  const beforeDetection = attempts.filter((a) => a.end >= killedAt && a.start < detected);
  const afterDetection = attempts.filter((a) => a.start >= detected);
  const summary = (list: Attempt[]) =>
    ["tcp", "http"].map((k) => {
      const of = list.filter((a) => a.kind === k);
      return `${k} ${of.filter(failed).length}/${of.length} failed`;
    }).join(", ");
  console.log(
    `before the kill: ${summary(beforeKill)}; kill to detection: ${
      summary(beforeDetection)
    }; after detection: ${summary(afterDetection)}`,
  );

  deepEqual(beforeKill.filter(failed), [], "failures while every server was up");
  deepEqual(
    afterDetection.filter(failed).map((a) => `${a.kind} at +${Math.round(a.start - killedAt)}ms`),
    [],
    "connections or requests that failed after the dead servers should have been detected",
  );
  ok(afterDetection.length >= 20, `only ${afterDetection.length} attempts after detection`);
  // Nothing reached the dead servers while they were down.
  const whileDown = attempts.filter((a) => a.start >= detected && a.end < restartedAt);
  equal(whileDown.filter((a) => a.server === "t1" || a.server === "h1").length, 0);
  // Back in rotation within interval × rise, plus slack for the probe already scheduled and
  // for the next attempt to be picked.
  for (const [kind, name] of [["tcp", "t1"], ["http", "h1"]] as const) {
    const first = attempts.find((a) =>
      a.kind === kind && a.server === name && a.start >= restartedAt
    );
    ok(first !== undefined);
    const back = first.end - restartedAt;
    ok(back <= INTERVAL * RISE + 500, `${name} served again ${Math.round(back)} ms after restart`);
  }
});

// ---------------------------------------------------------------------------------------------
// Balancing through edgemux
// ---------------------------------------------------------------------------------------------

Deno.test("round_robin with weights 1:3 sends 100 and 300 of 400 HTTP requests", async () => {
  await using light = startStubHttp("light");
  await using heavy = startStubHttp("heavy");
  await using edgemux = await startEdgemux(`
version: 1
${EDGE_CERTIFICATES}
backends:
  web:
    balance: round_robin
    servers:
      - { address: ${addr(light)}, weight: 1 }
      - { address: ${addr(heavy)}, weight: 3 }
listeners:
${edgeListener("web")}
`);
  await using client = new HttpsClient(edgemux.port("https"));
  const answeredBy: string[] = [];
  for (let i = 0; i < 400; i++) {
    const r = await client.request("GET", `/rr/${i}`);
    equal(r.status, 200);
    answeredBy.push(r.headers["x-backend"]);
  }
  const lightCount = countOf(answeredBy, "light");
  ok(Math.abs(lightCount - 100) <= 2, `the weight-1 server answered ${lightCount} of 400`);
  equal(countOf(answeredBy, "heavy"), 400 - lightCount);
  equal(light.requests.length, lightCount);
  // The request records name the same servers.
  await requestRecords(edgemux, "/rr/399");
  const recorded = edgemux.requests.filter((r) => r.path.startsWith("/rr/"));
  equal(recorded.filter((r) => r.server === light.label).length, lightCount);
  equal(recorded.filter((r) => r.server === heavy.label).length, 400 - lightCount);
});

Deno.test("least_conn sends new connections to the server holding fewer open ones", async () => {
  await using a = startTaggedEcho("a");
  await using b = startTaggedEcho("b");
  await using edgemux = await startEdgemux(`
version: 1
backends:
  tcp:
    balance: least_conn
    servers: [${addr(a)}, ${addr(b)}]
listeners:
${TCP_LISTENER}
`);
  const port = edgemux.port("tcp");
  const held: EchoConn[] = [];
  try {
    for (let i = 0; i < 4; i++) held.push(await openEcho(port, `long${i}`));
    deepEqual(held.map((c) => c.server).sort(), ["a", "a", "b", "b"], "even while all are open");
    // Close b's two: a holds two, b none.
    for (const c of held.filter((c) => c.server === "b")) closeQuietly(c.conn);
    await waitFor("b's connections closed", () => edgemux.proxy.activeConnections === 2, 3000);
    const next = [await openEcho(port, "new0"), await openEcho(port, "new1")];
    held.push(...next);
    deepEqual(next.map((c) => c.server), ["b", "b"]);
    // Now two each: the next two go one to each.
    const more = [await openEcho(port, "new2"), await openEcho(port, "new3")];
    held.push(...more);
    deepEqual(more.map((c) => c.server).sort(), ["a", "b"]);
  } finally {
    for (const c of held) closeQuietly(c.conn);
  }
});

Deno.test("first with a backup fails over in list order and back as servers stop and return", async () => {
  await using s1 = startTaggedEcho("s1");
  await using s2 = startTaggedEcho("s2");
  await using spare = startTaggedEcho("spare");
  await using edgemux = await startEdgemux(`
version: 1
backends:
  tcp:
    balance: first
    servers:
      - ${addr(s1)}
      - ${addr(s2)}
      - { address: ${addr(spare)}, backup: true }
    health_check: { interval: 100ms, timeout: 50ms, fall: 1, rise: 1 }
listeners:
${TCP_LISTENER}
`);
  const port = edgemux.port("tcp");
  /** Waits out two check intervals (fall: 1), the time the checks need to see a server down. */
  const downForChecks = () => new Promise((r) => setTimeout(r, 250));
  const five = async () => {
    const out: string[] = [];
    for (let i = 0; i < 5; i++) out.push(await echoOnce(port, `x${i}`));
    return out;
  };
  deepEqual(await five(), ["s1", "s1", "s1", "s1", "s1"]);

  await s1.stop();
  deepEqual(await five(), ["s2", "s2", "s2", "s2", "s2"], "the next server in the list");

  await s2.stop();
  deepEqual(await five(), ["spare", "spare", "spare", "spare", "spare"], "only then the backup");
  // Down for longer than a check interval, so that the checks see it down (a shorter outage
  // is the subject of the next test).
  await downForChecks();

  s2.start();
  await waitFor("s2 back in rotation", async () => await echoOnce(port) === "s2", 2000);
  deepEqual(await five(), ["s2", "s2", "s2", "s2", "s2"], "the backup is dropped again");

  s1.start();
  await waitFor("s1 back in rotation", async () => await echoOnce(port) === "s1", 2000);
  deepEqual(await five(), ["s1", "s1", "s1", "s1", "s1"]);
  const failures = edgemux.records.filter((r) => r.server === null || !r.end.startsWith("client"));
  deepEqual(failures.map((r) => r.end), [], "no connection failed along the way");
});

Deno.test("a server down for less than a check interval is back once its checks pass", async () => {
  // A quick restart: real connections are refused a few times (passive health takes the server
  // out for its backoff), but no active check ever sees it down. The checks then pass again and
  // again; the server should not stay out for the whole backoff.
  await using s1 = startTaggedEcho("s1");
  await using s2 = startTaggedEcho("s2");
  await using edgemux = await startEdgemux(`
version: 1
backends:
  tcp:
    balance: first
    servers: [${addr(s1)}, ${addr(s2)}]
    health_check: { interval: 100ms, timeout: 50ms, fall: 1, rise: 2 }
    passive_health: { failures: 3, backoff: 30s }
listeners:
${TCP_LISTENER}
`);
  const port = edgemux.port("tcp");
  equal(await echoOnce(port), "s1");
  // Right after a probe of s1, restart it well within the next interval.
  const before = s1.connections;
  await waitFor("a probe of s1", () => s1.connections > before, 1000);
  await s1.stop();
  for (let i = 0; i < 3; i++) equal(await echoOnce(port, `during${i}`), "s2");
  s1.start();
  const restarted = performance.now();
  const probesBefore = s1.connections;
  // rise: 2 at 100 ms: two passing probes, then some slack.
  await waitFor("s1 back in rotation", async () => await echoOnce(port) === "s1", 1500)
    .catch((e) => {
      throw new Error(
        `${e.message}: s1 has been listening for ${Math.round(performance.now() - restarted)} ` +
          `ms and passed ${s1.connections - probesBefore} probes, yet gets no traffic`,
      );
    });
});

// ---------------------------------------------------------------------------------------------
// HTTP health check
// ---------------------------------------------------------------------------------------------

Deno.test("an http health check expecting 200 takes a server answering 500 out of rotation", async () => {
  await using broken = startStubHttp("broken", () => ({ status: 500, body: "broken\n" }));
  await using good = startStubHttp("good");
  await using edgemux = await startEdgemux(`
version: 1
${EDGE_CERTIFICATES}
backends:
  web:
    servers: [${addr(broken)}, ${addr(good)}]
    health_check:
      type: http
      path: /health
      expect_status: 200
      interval: 100ms
      timeout: 50ms
      fall: 2
      rise: 2
listeners:
${edgeListener("web")}
`);
  const probes = () =>
    broken.requests.filter((r) => r.headers["user-agent"] === "edgemux-health-check");
  // Two failed probes take it down; a third shows that the second was acted on.
  await waitFor("three probes of the broken server", () => probes().length >= 3, 2000);
  equal(probes()[0].path, "/health");
  const proxiedBefore = broken.requests.length - probes().length;

  await using client = new HttpsClient(edgemux.port("https"));
  for (let i = 0; i < 20; i++) {
    const r = await client.request("GET", `/hc/${i}`);
    equal(r.status, 200, `request ${i}`);
    equal(r.headers["x-backend"], "good");
  }
  equal(broken.requests.length - probes().length, proxiedBefore, "no request reached it");
  const records = await requestRecords(edgemux, "/hc/19");
  ok(records.length >= 1);
  const all = edgemux.requests.filter((r) => r.path.startsWith("/hc/"));
  equal(all.length, 20);
  deepEqual(new Set(all.map((r) => r.server)), new Set([good.label]));
  deepEqual(new Set(all.map((r) => r.status)), new Set([200]));
});

// ---------------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------------

/** A backend of a server that closes the connection on every request, then a good one. */
async function resettingThenGood(retries: number) {
  const resetter = startStubHttp("resetter", () => "close");
  const good = startStubHttp("good");
  const edgemux = await startEdgemux(`
version: 1
${EDGE_CERTIFICATES}
backends:
  web:
    balance: first
    retries: ${retries}
    servers: [${addr(resetter)}, ${addr(good)}]
listeners:
${edgeListener("web")}
`);
  return {
    resetter,
    good,
    edgemux,
    async [Symbol.asyncDispose]() {
      await edgemux.stop();
      await resetter.stop();
      await good.stop();
    },
  };
}

Deno.test("a POST whose body reached a server that then closed is not retried: 502", async () => {
  await using setup = await resettingThenGood(2);
  const { resetter, good, edgemux } = setup;
  const r = await httpsOnce(edgemux.port("https"), "POST", "/submit", { body: "pay once" });
  equal(r.status, 502);
  equal(resetter.requests.length, 1);
  equal(resetter.requests[0].method, "POST");
  equal(resetter.requests[0].body, "pay once", "the server had the whole body");
  deepEqual(good.requests, [], "the POST must not be sent to a second server");
  const [record] = await requestRecords(edgemux, "/submit");
  equal(record.status, 502);
  equal(record.server, resetter.label);
  equal(record.end, "upstream-closed");
});

Deno.test("a GET to a server that closes without answering is retried on the next: 200", async () => {
  await using setup = await resettingThenGood(2);
  const { resetter, good, edgemux } = setup;
  const r = await httpsOnce(edgemux.port("https"), "GET", "/again");
  equal(r.status, 200);
  equal(r.headers["x-backend"], "good");
  equal(r.body, "good GET /again\n");
  deepEqual(resetter.requests.map((x) => x.path), ["/again"]);
  deepEqual(good.requests.map((x) => x.path), ["/again"]);
  const [record] = await requestRecords(edgemux, "/again");
  equal(record.status, 200);
  equal(record.server, good.label);
});

Deno.test("retries: 0 sends a GET to one server only", async () => {
  await using setup = await resettingThenGood(0);
  const { resetter, good, edgemux } = setup;
  const r = await httpsOnce(edgemux.port("https"), "GET", "/once");
  deepEqual(resetter.requests.map((x) => x.path), ["/once"]);
  deepEqual(
    good.requests.map((x) => x.path),
    [],
    "with retries: 0 the request went to a second server anyway",
  );
  equal(r.status, 502);
});

Deno.test("a GET that every server closes on gets 502, not 503 no-server-up", async () => {
  await using r1 = startStubHttp("r1", () => "close");
  await using r2 = startStubHttp("r2", () => "close");
  await using edgemux = await startEdgemux(`
version: 1
${EDGE_CERTIFICATES}
backends:
  web:
    retries: 2
    servers: [${addr(r1)}, ${addr(r2)}]
listeners:
${edgeListener("web")}
`);
  const r = await httpsOnce(edgemux.port("https"), "GET", "/nobody");
  equal(r1.requests.length, 1);
  equal(r2.requests.length, 1);
  const [record] = await requestRecords(edgemux, "/nobody");
  // Both servers are up (they accept connections); they answered nothing. Saying "no server
  // up" with Retry-After: 5 sends operators and clients the wrong way.
  deepEqual(
    { status: r.status, retryAfter: r.headers["retry-after"] ?? null, end: record.end },
    { status: 502, retryAfter: null, end: "upstream-closed" },
  );
});

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

Deno.test("limits.max_connections refuses the connection over the cap at once", async () => {
  await using echo = startTaggedEcho("echo");
  await using edgemux = await startEdgemux(
    limitedEchoConfig("limits: { max_connections: 2 }", echo),
  );
  const port = edgemux.port("tcp");
  using first = await openEcho(port, "one");
  using second = await openEcho(port, "two");
  equal(second.server, "echo");
  const ms = await expectRefused(port);
  ok(ms < 500, `refused after ${Math.round(ms)} ms`);
  const record = await edgemux.waitForRecord((r) => r.end === "limit-total", 2000);
  equal(record.backend, null, "a refused connection never reaches a backend");
  equal(echo.connections, 2);

  closeQuietly(first.conn);
  await waitFor("one connection closed", () => edgemux.proxy.activeConnections === 1, 3000);
  equal(await echoOnce(port, "three"), "echo", "a slot is free again");
});

Deno.test("a listener's max_connections caps that listener only", async () => {
  await using echo = startTaggedEcho("echo");
  await using edgemux = await startEdgemux(`
version: 1
backends:
  tcp: { servers: [${addr(echo)}] }
listeners:
  small:
    bind: "127.0.0.1:0"
    max_connections: 1
    routes:
      - forward: tcp
  big:
    bind: "127.0.0.1:0"
    routes:
      - forward: tcp
`);
  using held = await openEcho(edgemux.port("small"), "held");
  equal(held.server, "echo");
  await expectRefused(edgemux.port("small"));
  const record = await edgemux.waitForRecord((r) => r.end === "limit-listener", 2000);
  equal(record.listener, "small");
  using other = await openEcho(edgemux.port("big"), "other");
  equal(other.server, "echo", "the other listener still accepts");
});

Deno.test("per_client.max_connections refuses a second connection from 127.0.0.1, not from 127.0.0.2", async () => {
  const socat = requireTool("socat", "socat");
  await using echo = startTaggedEcho("echo");
  await using edgemux = await startEdgemux(
    limitedEchoConfig("limits: { per_client: { max_connections: 1 } }", echo),
  );
  const port = edgemux.port("tcp");
  using held = await openEcho(port, "held");
  equal(held.server, "echo");
  await expectRefused(port);
  const refused = await edgemux.waitForRecord((r) => r.end === "limit-client", 2000);
  ok(refused.client.startsWith("127.0.0.1:"), refused.client);

  const other = await run(socat, [
    "-t",
    "2",
    "-T",
    "5",
    "-",
    `TCP:127.0.0.1:${port},bind=127.0.0.2`,
  ], {
    stdin: "from two\n",
    timeoutMs: 10_000,
  });
  equal(other.code, 0, other.stderr);
  equal(other.stdout, "echo from two\n");
  const record = await edgemux.waitForRecord((r) => r.client.startsWith("127.0.0.2:"), 2000);
  equal(record.server, echo.label);
});

Deno.test("per_client.rate with burst refuses connections beyond the budget, then refills", async () => {
  await using echo = startTaggedEcho("echo");
  await using edgemux = await startEdgemux(
    limitedEchoConfig("limits: { per_client: { rate: 1, burst: 3 } }", echo),
  );
  const port = edgemux.port("tcp");
  for (let i = 0; i < 3; i++) equal(await echoOnce(port, `b${i}`), "echo", `burst ${i}`);
  await expectRefused(port);
  const refusedAt = performance.now();
  await edgemux.waitForRecord((r) => r.end === "rate-limited", 2000);
  // One token a second: a connection succeeds again after about a second, not before.
  let acceptedAfter = 0;
  await waitFor("a refilled token", async () => {
    try {
      await echoOnce(port, "later");
      acceptedAfter = performance.now() - refusedAt;
      return true;
    } catch {
      return false;
    }
  }, 3000);
  ok(acceptedAfter >= 700, `accepted again after ${Math.round(acceptedAfter)} ms`);
});

/** A server that holds a request for `/slow` until `release()`, and answers others at once. */
function startHeldServer(): StubHttpServer & { release(): void } {
  let release = () => {};
  const released = new Promise<void>((r) => release = r);
  const server = startStubHttp("slow", async (req): Promise<StubReply> => {
    if (req.path === "/slow") await released;
    return { status: 200, body: `slow ${req.path}\n` };
  });
  return Object.assign(server, { release });
}

/** An edge route to the one server `slow`, which takes one connection at a time. */
function oneSlotConfig(slow: StubHttpServer): string {
  return `
version: 1
${EDGE_CERTIFICATES}
backends:
  web:
    servers:
      - { address: ${addr(slow)}, max_connections: 1 }
listeners:
${edgeListener("web")}
`;
}

Deno.test("a server at its max_connections makes a concurrent request get 503 with Retry-After", async () => {
  await using slow = startHeldServer();
  await using edgemux = await startEdgemux(oneSlotConfig(slow));
  const port = edgemux.port("https");
  const first = httpsOnce(port, "GET", "/slow");
  try {
    await waitFor("the first request at the server", () => slow.requests.length === 1, 3000);
    const second = await httpsOnce(port, "GET", "/second");
    equal(second.status, 503);
    equal(second.headers["retry-after"], "1");
    const [record] = await requestRecords(edgemux, "/second");
    equal(record.end, "server-full");
    equal(slow.requests.length, 1, "the second request never reached the server");
  } finally {
    slow.release();
  }
  equal((await first).status, 200);
  const third = await httpsOnce(port, "GET", "/third");
  equal(third.status, 200, "the slot is free again");
});

Deno.test("a server's max_connections still holds after a reload", async () => {
  await using slow = startHeldServer();
  await using edgemux = await startEdgemux(oneSlotConfig(slow));
  const port = edgemux.port("https");
  const first = httpsOnce(port, "GET", "/slow");
  try {
    await waitFor("the first request at the server", () => slow.requests.length === 1, 3000);
    // Reload the very same config (as SIGHUP or a certificate change does).
    await edgemux.proxy.reload(await prepareConfig(edgemux.config));
    // The listener asked for port 0, so the reload bound a new port.
    const second = await httpsOnce(edgemux.port("https"), "GET", "/second");
    equal(
      second.status,
      503,
      "a second request reached a server at max_connections: 1 while the first was in flight",
    );
  } finally {
    slow.release();
  }
  equal((await first).status, 200);
});

Deno.test("with every server down, a TCP route closes at once and an HTTP route answers 503", async () => {
  const dead = [closedPort(), closedPort()];
  const servers = `[${dead.map((p) => `"127.0.0.1:${p}"`).join(", ")}]`;
  const check = "{ interval: 100ms, timeout: 50ms, fall: 1, rise: 1 }";
  await using edgemux = await startEdgemux(`
version: 1
${EDGE_CERTIFICATES}
backends:
  tcp: { servers: ${servers}, health_check: ${check} }
  web: { servers: ${servers}, health_check: ${check} }
listeners:
${TCP_LISTENER}
${edgeListener("web")}
`);
  const tcpPort = edgemux.port("tcp");
  // Until the first checks have run, connections fail by being refused; then no server is up.
  await waitFor("both servers checked down", async () => {
    await expectRefused(tcpPort);
    return edgemux.records.some((r) => r.end === "no-server-up");
  }, 3000);
  const ms = await expectRefused(tcpPort);
  ok(ms < 300, `closed after ${Math.round(ms)} ms`);
  const last = edgemux.records[edgemux.records.length - 1];
  equal(last.end, "no-server-up");
  equal(last.backend, "tcp");

  const r = await httpsOnce(edgemux.port("https"), "GET", "/down");
  equal(r.status, 503);
  equal(r.headers["retry-after"], "5");
  const [record] = await requestRecords(edgemux, "/down");
  equal(record.end, "no-server-up");
});
