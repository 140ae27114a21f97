/**
 * Scenario 3, backend faults: backends that refuse, accept and never answer, reset in the middle
 * of a response, or close in the middle of an upload, and clients that give up in the middle of
 * an upload or a download; each through a TCP `forward` route, a `passthrough` route and an
 * `edge` route (HTTP/1.1). For each: the client gets the right status or a close and never
 * hangs, the access or request record says how it ended, the backend sees its connection closed
 * when the client is gone, and in the end edgemux holds no more descriptors than before.
 *
 * The backends are raw TCP servers, one per fault, that record what happened to each
 * connection. A passthrough client sends a ClientHello (for the SNI route) and then plain bytes:
 * edgemux relays them without looking, so a TLS stack on either end adds nothing to the test.
 *
 * Long because it is one scenario: five fault backends written as raw TCP servers, three route
 * kinds, and the checks of every pairing, which read only together.
 *
 * @module
 */

import net from "node:net";
import { type HttpServer, serveHttp } from "./backends.ts";
import { EDGE_CERTIFICATES, readCert } from "./certs.ts";
import { startHostedEdgemux } from "./edgemux_process.ts";
import {
  baseline,
  checkSettled,
  closedPort,
  closeQuietly,
  counts,
  Findings,
  isGone,
  readUntilClose,
  type ScenarioResult,
  sleep,
  startClosingHttpBackend,
  writeAll,
} from "./reliability_kit.ts";
import { connectTlsByName, ConnReader, parseResponseHead } from "./websocket.ts";
import { buildClientHello } from "../../proxy/_testing/hello_builder.ts";

/** Sizes of one run. */
export interface BackendFaultSizes {
  /** How many times each case runs. */
  repeat: number;
  /** Bytes a client tries to upload (the faults cut it short). */
  uploadBytes: number;
}

export const SHORT: BackendFaultSizes = { repeat: 1, uploadBytes: 4 * 1024 * 1024 };
export const FULL: BackendFaultSizes = { repeat: 10, uploadBytes: 64 * 1024 * 1024 };

/** The faults, each served by its own backend. */
const FAULTS = ["hang", "reset", "closeup", "sink", "download"] as const;
type Fault = typeof FAULTS[number];
const PATHS = ["tcp", "passthrough", "edge"] as const;
type Path = typeof PATHS[number];

const RESPONSE_TIMEOUT = 1000;
/**
 * The sink backend's response_timeout: well past CLOSE_WITHIN, so that an upstream held until
 * the response timeout (instead of closed when the client goes) shows.
 */
const SINK_RESPONSE_TIMEOUT = 5000;
/** The slow backend answers after this long: past the listener's idle_timeout, within its
 * response_timeout. */
const SLOW_ANSWER = 1500;
const SLOW_RESPONSE_TIMEOUT = 5000;
const IDLE_TIMEOUT = 1000;
/** How long after the client leaves the backend may still see its connection open. */
const CLOSE_WITHIN = 2000;
/** Body bytes sent before a reset, and the length the response claims. */
const PARTIAL = 10_000;
const CLAIMED = 100_000;
/** What the `closeup` backend reads before it closes. */
const READ_BEFORE_CLOSE = 64 * 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What a fault backend saw of one connection. */
interface BackendConn {
  accepted: number;
  /** When the backend saw the proxy close (EOF, reset, or a failed write); 0 while open. */
  closedAt: number;
  bytesIn: number;
  bytesOut: number;
}

interface FaultBackend extends AsyncDisposable {
  port: number;
  conns: BackendConn[];
}

/** How a fault backend behaves on one connection. */
async function behave(fault: Fault, conn: Deno.Conn, seen: BackendConn): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  const readOnce = async (into = buf) => {
    const n = await conn.read(into);
    if (n !== null) seen.bytesIn += n;
    return n;
  };
  const drain = async () => {
    while (await readOnce() !== null);
  };
  const isHttp = async () => {
    // The first bytes decide: a proxied HTTP request, or a relayed stream (which opens with a
    // ClientHello on passthrough routes, or raw bytes on forward routes).
    const n = await readOnce();
    return n !== null && decoder.decode(buf.subarray(0, Math.min(n, 8))).match(/^[A-Z]+ \//);
  };
  switch (fault) {
    case "hang":
      await drain();
      return;
    case "closeup":
      while (seen.bytesIn < READ_BEFORE_CLOSE) if (await readOnce() === null) return;
      return;
    case "sink":
      await drain();
      return;
    case "download": {
      const http = await isHttp();
      if (http) {
        const head = encoder.encode(`HTTP/1.1 200 OK\r\ncontent-length: ${2 ** 40}\r\n\r\n`);
        await writeAll(conn, head);
      }
      const chunk = new Uint8Array(64 * 1024).fill(0x62);
      for (;;) {
        await writeAll(conn, chunk);
        seen.bytesOut += chunk.length;
      }
    }
  }
}

/**
 * The `reset` backend, on node:net: Deno offers no way to send RST (closing with unread input
 * sends FIN there), node's `resetAndDestroy()` does. It answers the first bytes with part of a
 * response (an HTTP head claiming more, or raw bytes) and resets 150 ms later.
 */
function startResetBackend(): FaultBackend {
  const conns: BackendConn[] = [];
  const open = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    const seen: BackendConn = { accepted: performance.now(), closedAt: 0, bytesIn: 0, bytesOut: 0 };
    conns.push(seen);
    open.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => {
      seen.closedAt ||= performance.now();
      open.delete(socket);
    });
    socket.once("data", (data: Uint8Array) => {
      seen.bytesIn += data.length;
      const line = decoder.decode(data.subarray(0, 64));
      let head = "";
      let tail = "";
      if (/^[A-Z]+ \//.test(line)) {
        const chunked = line.includes("chunked");
        head = chunked
          ? `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${PARTIAL.toString(16)}\r\n`
          : `HTTP/1.1 200 OK\r\ncontent-length: ${CLAIMED}\r\n\r\n`;
        tail = chunked ? "\r\n" : "";
      }
      const body = new Uint8Array(PARTIAL).fill(0x61);
      const bytes = new Uint8Array([...encoder.encode(head), ...body, ...encoder.encode(tail)]);
      seen.bytesOut += bytes.length;
      socket.write(bytes, () => setTimeout(() => socket.resetAndDestroy(), 150));
    });
  });
  const listening = new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const backend: FaultBackend = {
    port: 0,
    conns,
    async [Symbol.asyncDispose]() {
      for (const s of open) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  return Object.assign(backend, {
    ready: listening.then(() => {
      backend.port = (server.address() as net.AddressInfo).port;
    }),
  });
}

function startFaultBackend(fault: Fault): FaultBackend {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: BackendConn[] = [];
  const open = new Set<Deno.Conn>();
  const loop = (async () => {
    try {
      for await (const conn of listener) {
        const seen: BackendConn = {
          accepted: performance.now(),
          closedAt: 0,
          bytesIn: 0,
          bytesOut: 0,
        };
        conns.push(seen);
        open.add(conn);
        behave(fault, conn, seen).catch((e) => {
          if (!isGone(e)) throw e;
        }).finally(() => {
          seen.closedAt ||= performance.now();
          open.delete(conn);
          closeQuietly(conn);
        });
      }
    } catch {
      // Closed.
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    conns,
    async [Symbol.asyncDispose]() {
      closeQuietly(listener);
      await loop;
      for (const c of open) closeQuietly(c);
    },
  };
}

/** An HTTP backend that answers every request after SLOW_ANSWER ms. */
function startSlowBackend(): HttpServer {
  return serveHttp(async () => {
    await sleep(SLOW_ANSWER);
    return new Response("slow but fine\n");
  });
}

function config(
  all: Record<Path, Record<Fault, FaultBackend>>,
  other: { refused: number; ok: number; slow: number },
): string {
  const backend = (path: Path, fault: Fault) => {
    const timeout = path !== "edge"
      ? ""
      : fault === "hang"
      ? `, response_timeout: ${RESPONSE_TIMEOUT}ms`
      : fault === "sink"
      ? `, response_timeout: ${SINK_RESPONSE_TIMEOUT}ms`
      : "";
    return `
  ${path}-${fault}: { servers: ["127.0.0.1:${all[path][fault].port}"]${timeout} }`;
  };
  const backends = PATHS.flatMap((path) => FAULTS.map((fault) => backend(path, fault))).join("");
  const tcpListeners = (["refused", ...FAULTS] as const).map((name) => `
  tcp-${name}:
    bind: "127.0.0.1:0"
    idle_timeout: ${IDLE_TIMEOUT}ms
    routes:
      - forward: ${name === "refused" ? name : `tcp-${name}`}`).join("");
  const ptRoutes = (["refused", ...FAULTS] as const).map((name) => `
      - name: pt-${name}
        sni: pt-${name}.example.test
        passthrough: ${name === "refused" ? name : `passthrough-${name}`}`).join("");
  const httpRoutes = (["refused", ...FAULTS, "ok"] as const).map((name) => `
          - path_prefix: /${name}
            backend: ${name === "refused" || name === "ok" ? name : `edge-${name}`}`).join("");
  return `
version: 1
${EDGE_CERTIFICATES}
backends:
  refused: { servers: ["127.0.0.1:${other.refused}"], retries: 0 }
  ok: { servers: ["127.0.0.1:${other.ok}"] }
  slow: { servers: ["127.0.0.1:${other.slow}"], response_timeout: ${SLOW_RESPONSE_TIMEOUT}ms }${backends}
listeners:${tcpListeners}
  tls:
    bind: "127.0.0.1:0"
    idle_timeout: ${IDLE_TIMEOUT}ms
    routes:${ptRoutes}
  edge:
    bind: "127.0.0.1:0"
    routes:
      - name: edge
        sni: app.example.test
        edge:
          http:${httpRoutes}
  edge-idle:
    bind: "127.0.0.1:0"
    idle_timeout: ${IDLE_TIMEOUT}ms
    routes:
      - { name: slow, sni: app.example.test, edge: slow }
`;
}

/** A client connection on one of the three paths, with the bytes a relayed stream opens with. */
async function openClient(
  path: Path,
  fault: Fault | "refused",
  ports: Readonly<Record<string, number>>,
): Promise<Deno.Conn> {
  if (path === "edge") {
    return (await connectTlsByName({
      port: ports.edge,
      serverName: "app.example.test",
      caCerts: [readCert("ca")],
    })).conn;
  }
  if (path === "tcp") {
    return await Deno.connect({ hostname: "127.0.0.1", port: ports[`tcp-${fault}`] });
  }
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: ports.tls });
  await writeAll(conn, buildClientHello({ sni: `pt-${fault}.example.test` }));
  return conn;
}

/** Sends up to `bytes` in the background; resolves with what was written and why it stopped. */
function upload(conn: Deno.Conn, bytes: number): Promise<{ sent: number; stopped: string }> {
  return (async () => {
    const chunk = new Uint8Array(64 * 1024).fill(0x75);
    let sent = 0;
    try {
      while (sent < bytes) {
        const n = await conn.write(chunk.subarray(0, Math.min(chunk.length, bytes - sent)));
        sent += n;
      }
      return { sent, stopped: "done" };
    } catch (e) {
      return { sent, stopped: e instanceof Error ? e.name : String(e) };
    }
  })();
}

/** What a raw HTTP client received: the head, and whether the body it announced is whole. */
interface Received {
  status: number;
  length: number | null;
  chunked: boolean;
  /** Body bytes received (framing included for a chunked body). */
  body: number;
  /** The body is complete: as long as announced, or ending with the last chunk. */
  whole: boolean;
}

function response(bytes: Uint8Array): Received {
  const text = decoder.decode(bytes.subarray(0, Math.min(bytes.length, 4096)));
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return { status: 0, length: null, chunked: false, body: 0, whole: false };
  const head = parseResponseHead(bytes.subarray(0, end + 4));
  const length = head.headers["content-length"];
  const chunked = head.headers["transfer-encoding"] === "chunked";
  const body = bytes.length - end - 4;
  const tail = decoder.decode(bytes.subarray(bytes.length - 5));
  return {
    status: head.status,
    length: length === undefined ? null : Number(length),
    chunked,
    body,
    whole: chunked ? tail === "0\r\n\r\n" : body === Number(length ?? 0),
  };
}

/** Runs the scenario; never throws for a failed expectation (see `problems`). */
export async function runBackendFaults(sizes: BackendFaultSizes): Promise<ScenarioResult> {
  const f = new Findings("backend faults");
  const all = {} as Record<Path, Record<Fault, FaultBackend>>;
  for (const path of PATHS) {
    const set = {} as Record<Fault, FaultBackend>;
    for (const fault of FAULTS) {
      if (fault === "reset") {
        const reset = startResetBackend() as FaultBackend & { ready: Promise<void> };
        await reset.ready;
        set[fault] = reset;
      } else set[fault] = startFaultBackend(fault);
    }
    all[path] = set;
  }
  await using ok = startClosingHttpBackend();
  await using slow = startSlowBackend();
  await using _cleanup = {
    async [Symbol.asyncDispose]() {
      for (const set of Object.values(all)) {
        for (const b of Object.values(set)) await b[Symbol.asyncDispose]();
      }
    },
  };
  await using host = await startHostedEdgemux(
    config(all, { refused: closedPort(), ok: ok.port, slow: slow.port }),
    { stream: true },
  );
  const P = host.ports;

  const normalGet = async () => {
    const conn = await openClient("edge", "hang", P);
    try {
      await writeAll(
        conn,
        encoder.encode("GET /ok HTTP/1.1\r\nHost: app.example.test\r\nConnection: close\r\n\r\n"),
      );
      return response((await readUntilClose(conn, 5000, 4096)).bytes).status;
    } finally {
      closeQuietly(conn);
    }
  };
  await normalGet();
  const base = await baseline(host);
  let cases = 0;
  const ends: Record<string, number> = {};
  const timings: Record<string, number[]> = {};
  const note = (key: string, ms: number) => (timings[key] ??= []).push(ms);

  /** The access record of the next connection on `path` for `fault`. */
  const accessRecord = (path: Path, fault: string, after: number) =>
    host.waitForRecord(
      (r) =>
        r.conn > after &&
        (path === "tcp" ? r.listener === `tcp-${fault}` : r.sni === `pt-${fault}.example.test`),
      CLOSE_WITHIN + 10_000,
    );
  const lastConn = () => host.records.at(-1)?.conn ?? 0;
  const requestRecord = (path: string, after: number) =>
    host.waitForRequest((r) => r.conn > after && r.path === path, SINK_RESPONSE_TIMEOUT + 10_000);
  /** The backend's connection number `index` (waiting for it to be accepted). */
  const backendConn = async (b: FaultBackend, index: number) => {
    for (let i = 0; i < 100 && b.conns.length <= index; i++) await sleep(20);
    return b.conns[index];
  };
  const backendClosedWithin = async (
    b: FaultBackend,
    index: number,
    from: number,
    what: string,
  ) => {
    const conn = await backendConn(b, index);
    if (!f.check(conn !== undefined, `${what}: the backend saw no connection`)) return;
    // Wait past the limit, up to the longest response_timeout, to report when it did close.
    const deadline = from + SINK_RESPONSE_TIMEOUT + 1000;
    while (conn!.closedAt === 0 && performance.now() < deadline) await sleep(20);
    const took = (conn!.closedAt || performance.now()) - from;
    note(`${what}: backend sees the close`, took);
    f.check(
      conn!.closedAt !== 0 && took <= CLOSE_WITHIN,
      `${what}: the backend's connection was still open ${Math.round(took)} ms after the ` +
        `client left (limit ${CLOSE_WITHIN} ms)`,
    );
  };
  const expectEnd = (what: string, end: string, allowed: string[]) => {
    ends[`${what} → ${end}`] = (ends[`${what} → ${end}`] ?? 0) + 1;
    f.check(allowed.includes(end), `${what}: ended as "${end}", expected ${allowed.join(" or ")}`);
  };

  /** Forward and passthrough routes: the same faults, seen as bytes and closes. */
  const relayedCases = async (path: "tcp" | "passthrough") => {
    const backends = all[path];
    const what = (x: string) => `${path} ${x}`;
    cases += 6;
    {
      const after = lastConn();
      const started = performance.now();
      const conn = await openClient(path, "refused", P);
      const c = await readUntilClose(conn, 5000);
      closeQuietly(conn);
      note(what("refused: client sees the close"), c.at - started);
      f.check(
        c.how !== "timeout" && c.bytes.length === 0,
        `${what("refused")}: ${c.how}, ${c.bytes.length} bytes`,
      );
      // After passive_health.failures refusals in a row the server rests (backoff), and the
      // next connections are refused at once as no-server-up without a connect attempt.
      expectEnd(what("refused"), (await accessRecord(path, "refused", after)).end, [
        "upstream-refused",
        "no-server-up",
      ]);
    }
    {
      const after = lastConn();
      const index = backends.hang.conns.length;
      const conn = await openClient(path, "hang", P);
      await writeAll(conn, encoder.encode("hello?\n"));
      const sent = performance.now();
      const c = await readUntilClose(conn, IDLE_TIMEOUT + 5000);
      closeQuietly(conn);
      note(what("hang: closed after"), c.at - sent);
      f.check(
        c.how !== "timeout" && c.at - sent >= IDLE_TIMEOUT - 50 &&
          c.at - sent <= IDLE_TIMEOUT + 1000,
        `${what("hang")}: ${c.how} after ${
          Math.round(c.at - sent)
        } ms (idle_timeout ${IDLE_TIMEOUT})`,
      );
      expectEnd(what("hang"), (await accessRecord(path, "hang", after)).end, ["idle-timeout"]);
      await backendClosedWithin(backends.hang, index, c.at, what("hang"));
    }
    {
      const after = lastConn();
      const conn = await openClient(path, "reset", P);
      await writeAll(conn, new Uint8Array(1024).fill(0x71));
      const c = await readUntilClose(conn, 5000);
      closeQuietly(conn);
      f.check(
        c.how !== "timeout" && c.bytes.length === PARTIAL,
        `${what("reset mid-response")}: ${c.how} after ${c.bytes.length} of the ${PARTIAL} ` +
          `bytes sent before the reset`,
      );
      expectEnd(what("reset mid-response"), (await accessRecord(path, "reset", after)).end, [
        "upstream-reset",
      ]);
    }
    {
      const after = lastConn();
      const conn = await openClient(path, "closeup", P);
      const started = performance.now();
      const up = upload(conn, sizes.uploadBytes);
      const c = await readUntilClose(conn, 5000);
      closeQuietly(conn);
      const u = await up;
      note(what("backend closes mid-upload: client sees the close"), c.at - started);
      // Whether the upload finishes depends on socket buffers (a few MiB on loopback); what
      // matters is that the client learns of the close and is not left waiting.
      f.check(
        c.how !== "timeout",
        `${what("backend closes mid-upload")}: the client was not closed (upload ${u.stopped} ` +
          `after ${u.sent} bytes)`,
      );
      expectEnd(
        what("backend closes mid-upload"),
        (await accessRecord(path, "closeup", after)).end,
        ["upstream-closed", "upstream-reset"],
      );
    }
    {
      const after = lastConn();
      const index = backends.sink.conns.length;
      const conn = await openClient(path, "sink", P);
      await writeAll(conn, new Uint8Array(256 * 1024).fill(0x73));
      closeQuietly(conn);
      const left = performance.now();
      expectEnd(what("client aborts mid-upload"), (await accessRecord(path, "sink", after)).end, [
        "client-closed",
        "client-reset",
      ]);
      await backendClosedWithin(backends.sink, index, left, what("client aborts mid-upload"));
    }
    {
      const after = lastConn();
      const index = backends.download.conns.length;
      const conn = await openClient(path, "download", P);
      await writeAll(conn, encoder.encode("go\n"));
      const buf = new Uint8Array(64 * 1024);
      for (let got = 0; got < 1024 * 1024;) {
        const n = await conn.read(buf);
        if (n === null) break;
        got += n;
      }
      closeQuietly(conn);
      const left = performance.now();
      expectEnd(
        what("client aborts mid-download"),
        (await accessRecord(path, "download", after)).end,
        ["client-closed", "client-reset"],
      );
      await backendClosedWithin(
        backends.download,
        index,
        left,
        what("client aborts mid-download"),
      );
    }
  };

  /** HTTP through an edge route: statuses, truncation, request records. */
  const edgeCases = async () => {
    const backends = all.edge;
    const what = (x: string) => `edge ${x}`;
    cases += 8;
    const request = async (
      path: string,
      extra = "",
    ): Promise<{ conn: Deno.Conn; after: number; sent: number }> => {
      const after = host.requests.at(-1)?.conn ?? 0;
      const conn = await openClient("edge", "hang", P);
      await writeAll(
        conn,
        encoder.encode(`GET ${path} HTTP/1.1\r\nHost: app.example.test\r\n${extra}\r\n`),
      );
      return { conn, after, sent: performance.now() };
    };
    {
      const { conn, after } = await request("/refused");
      const c = await readUntilClose(conn, 5000, 4096);
      closeQuietly(conn);
      const r = response(c.bytes);
      f.check(
        r.status === 502 || r.status === 503,
        `${what("refused")}: status ${r.status}, expected 502 (or 503 once passive health ` +
          `has taken the server out); the client saw ${c.how} after ` +
          `${JSON.stringify(decoder.decode(c.bytes))}`,
      );
      expectEnd(what("refused"), (await requestRecord("/refused", after)).end, [
        "upstream-refused",
        "no-server-up",
      ]);
    }
    {
      const index = backends.hang.conns.length;
      const { conn, after, sent } = await request("/hang");
      const c = await readUntilClose(conn, RESPONSE_TIMEOUT + 5000, 4096);
      closeQuietly(conn);
      const r = response(c.bytes);
      note(what("hang: 504 after"), c.at - sent);
      f.check(
        r.status === 504,
        `${what("hang")}: status ${r.status}, expected 504; the client saw ${c.how} after ` +
          `${JSON.stringify(decoder.decode(c.bytes))}`,
      );
      expectEnd(what("hang"), (await requestRecord("/hang", after)).end, ["upstream-timeout"]);
      await backendClosedWithin(backends.hang, index, c.at, what("hang"));
    }
    for (const framing of ["length", "chunked"] as const) {
      // Twice in a row: the reset connection must not go back to the pool, so each request
      // reaches the backend on a connection of its own.
      const accepted = backends.reset.conns.length;
      const { conn, after } = await request(`/reset/${framing}`);
      const c = await readUntilClose(conn, 5000, 1 << 20);
      closeQuietly(conn);
      const r = response(c.bytes);
      f.check(
        c.how !== "timeout" && r.status === 200 && !r.whole &&
          (framing === "chunked" ? r.chunked : r.length === CLAIMED),
        `${what(`reset mid-response (${framing})`)}: the client saw ${c.how}, status ` +
          `${r.status}, ${r.chunked ? "chunked" : `length ${r.length}`}, ${r.body} body bytes, ` +
          `whole: ${r.whole} (a truncation must be detectable)`,
      );
      const rec = await requestRecord(`/reset/${framing}`, after);
      expectEnd(what(`reset mid-response (${framing})`), rec.end, [
        "upstream-reset",
        "upstream-closed",
      ]);
      f.check(
        backends.reset.conns.length === accepted + 1,
        `${what("reset mid-response")}: the backend saw ${
          backends.reset.conns.length - accepted
        } connections for one request`,
      );
    }
    {
      const next = await normalGet();
      f.check(next === 200, `${what("after the faults")}: a normal request got ${next}`);
    }
    {
      const after = host.requests.at(-1)?.conn ?? 0;
      const conn = await openClient("edge", "closeup", P);
      const started = performance.now();
      await writeAll(
        conn,
        encoder.encode(
          `POST /closeup HTTP/1.1\r\nHost: app.example.test\r\n` +
            `Content-Length: ${sizes.uploadBytes}\r\n\r\n`,
        ),
      );
      const up = upload(conn, sizes.uploadBytes);
      const c = await readUntilClose(conn, 10_000, 4096);
      closeQuietly(conn);
      await up;
      const r = response(c.bytes);
      note(what("backend closes mid-upload: client answered after"), c.at - started);
      f.check(
        c.how !== "timeout" && (r.status === 502 || r.status === 0),
        `${what("backend closes mid-upload")}: the client saw ${c.how}, status ${r.status}`,
      );
      const rec = await requestRecord("/closeup", after);
      f.check(rec.end !== "ok", `${what("backend closes mid-upload")}: logged as ok`);
      const key = `${what("backend closes mid-upload")} → ${rec.end}`;
      ends[key] = (ends[key] ?? 0) + 1;
    }
    {
      const after = host.requests.at(-1)?.conn ?? 0;
      const index = backends.sink.conns.length;
      const conn = await openClient("edge", "sink", P);
      await writeAll(
        conn,
        encoder.encode(
          `POST /sink HTTP/1.1\r\nHost: app.example.test\r\n` +
            `Content-Length: ${sizes.uploadBytes}\r\n\r\n`,
        ),
      );
      await writeAll(conn, new Uint8Array(256 * 1024).fill(0x73));
      closeQuietly(conn);
      const left = performance.now();
      await backendClosedWithin(backends.sink, index, left, what("client aborts mid-upload"));
      const rec = await requestRecord("/sink", after);
      expectEnd(what("client aborts mid-upload"), rec.end, ["client-closed"]);
    }
    {
      const index = backends.download.conns.length;
      const { conn, after } = await request("/download");
      const reader = new ConnReader(conn);
      const head = await reader.readUntil("\r\n\r\n", 5000);
      f.check(head !== null, `${what("download")}: no response head`);
      for (let got = 0; got < 1024 * 1024;) {
        const piece = await reader.readSome(5000);
        if (piece === null) break;
        got += piece.length;
      }
      closeQuietly(conn);
      const left = performance.now();
      await backendClosedWithin(
        backends.download,
        index,
        left,
        what("client aborts mid-download"),
      );
      const rec = await requestRecord("/download", after);
      expectEnd(what("client aborts mid-download"), rec.end, ["client-closed"]);
    }
  };

  /**
   * A slow answer: later than the listener's idle_timeout, well within the backend's
   * response_timeout. The client must get it; the idle timeout is for relayed bytes.
   */
  const slowCase = async () => {
    cases += 1;
    const after = host.requests.at(-1)?.conn ?? 0;
    const { conn } = await connectTlsByName({
      port: P["edge-idle"],
      serverName: "app.example.test",
      caCerts: [readCert("ca")],
    });
    const sent = performance.now();
    await writeAll(
      conn,
      encoder.encode("GET /slow HTTP/1.1\r\nHost: app.example.test\r\nConnection: close\r\n\r\n"),
    );
    const c = await readUntilClose(conn, SLOW_RESPONSE_TIMEOUT + 3000, 4096);
    closeQuietly(conn);
    const r = response(c.bytes);
    const rec = await requestRecord("/slow", after);
    ends[
      `edge slow answer past idle_timeout → client ${
        r.status || c.how
      }, logged ${rec.status} ${rec.end}`
    ] = 1;
    f.check(
      r.status === 200 && r.whole,
      `edge, a backend answering after ${SLOW_ANSWER} ms on a listener with idle_timeout ` +
        `${IDLE_TIMEOUT} ms (response_timeout ${SLOW_RESPONSE_TIMEOUT} ms): the client saw ` +
        `${c.how} after ${Math.round(c.at - sent)} ms with ${c.bytes.length} bytes, status ` +
        `${r.status}; the request record says ${rec.status} ${rec.end}`,
    );
  };

  for (let round = 0; round < sizes.repeat; round++) {
    // The three paths (and the slow answer) have backends of their own: they run side by side.
    await Promise.all([
      relayedCases("tcp"),
      relayedCases("passthrough"),
      edgeCases(),
      round === 0 ? slowCase() : Promise.resolve(),
    ]);
  }

  const settled = await checkSettled(f, host, base, 10_000);
  const end = await host.stats(true);
  f.hostHealth(host, end);
  f.figure("cases run", cases);
  f.figure("how each ended", counts(ends));
  for (const [key, values] of Object.entries(timings)) {
    f.figure(`${key} (max)`, `${Math.round(Math.max(...values))} ms`);
  }
  f.figure("edgemux fds: baseline → after", `${base.fds} → ${settled.stats.fds}`);
  return f.result();
}
