/**
 * Scenario 6, reloads under load: a keep-alive HTTPS load (`wrk -t1 -c10`, bounded in time)
 * against an `edge` route and several long TCP streams through a `forward` route, data flowing
 * both ways all the time, while edgemux reloads again and again with two equivalent configs in
 * turn (the route and an unused backend change name, so each reload builds and swaps a new route
 * table). Not one request may fail (wrk's socket errors and non-2xx responses are 0) and not one
 * stream may lose a byte (SHA-256 at both ends, both ways).
 *
 * wrk sends no SNI when the URL's host is an IP address, so the TLS route has no `sni` and the
 * certificate comes from `certificates.default`.
 *
 * @module
 */

import { type HttpServer, serveHttp, serveTcp } from "./backends.ts";
import { readCert } from "./certs.ts";
import { startHostedEdgemux } from "./edgemux_process.ts";
import {
  baseline,
  ByteSink,
  ByteSource,
  checkSettled,
  closeQuietly,
  Findings,
  mib,
  readUntilClose,
  receiveAll,
  rssMiB,
  type ScenarioResult,
  sleep,
  spread,
  writeAll,
} from "./reliability_kit.ts";
import { run } from "./process.ts";
import { requireTool } from "./tools.ts";
import { connectTlsByName } from "./websocket.ts";

/** Sizes of one run. */
export interface ReloadSizes {
  /** wrk's duration, s; the streams last as long. */
  seconds: number;
  reloads: number;
  /** Long TCP streams open through the whole run. */
  streams: number;
  /** Each stream's rate each way, bytes per second. */
  streamRate: number;
}

export const SHORT: ReloadSizes = {
  seconds: 4,
  reloads: 20,
  streams: 4,
  streamRate: 1024 * 1024,
};

export const FULL: ReloadSizes = {
  seconds: 60,
  reloads: 20,
  streams: 8,
  streamRate: 2 * 1024 * 1024,
};

const CHUNK = 32 * 1024;

function config(
  ports: { https: number; tcp: number; app: number; streams: number },
  variant: number,
) {
  // Equivalent configs: only names differ, so every reload builds a new generation.
  const v = variant % 2 === 0 ? "a" : "b";
  return `
version: 1
certificates:
  files: [{ cert: testdata/certs/edge-wildcard.pem, key: testdata/certs/edge-wildcard.key }]
  default: example.test
  watch_interval: 0s
backends:
  app: { servers: ["127.0.0.1:${ports.app}"] }
  streams: { servers: ["127.0.0.1:${ports.streams}"] }
  unused-${v}: { servers: ["127.0.0.1:${ports.app}"] }
listeners:
  https:
    bind: "127.0.0.1:${ports.https}"
    routes:
      - { name: web-${v}, edge: app }
  tcp:
    bind: "127.0.0.1:${ports.tcp}"
    routes:
      - { name: streams-${v}, forward: streams }
`;
}

/** A small keep-alive HTTP backend for wrk. */
function startAppBackend(): HttpServer {
  const body = "reload load ok\n";
  return serveHttp(() => new Response(body, { headers: { "content-type": "text/plain" } }));
}

/** What one end of a stream sent and received. */
interface StreamEnd {
  sent: number;
  sentSha: string;
  received: number;
  receivedSha: string;
  ended: "eof" | "reset";
}

/** Sends `source` at `rate` bytes per second, then closes the write side. */
async function paced(conn: Deno.Conn, source: ByteSource, rate: number): Promise<void> {
  const started = performance.now();
  let sent = 0;
  for (let piece = source.next(); piece !== null; piece = source.next()) {
    await writeAll(conn, piece);
    sent += piece.length;
    const due = started + sent / rate * 1000;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
  }
  await conn.closeWrite();
}

/** Both directions of one stream end: paced sending, receiving to EOF. */
async function streamEnd(
  conn: Deno.Conn,
  bytes: number,
  seed: number,
  rate: number,
): Promise<StreamEnd> {
  const source = new ByteSource(bytes, seed, CHUNK);
  const sink = new ByteSink();
  const [ended] = await Promise.all([receiveAll(conn, sink), paced(conn, source, rate)]);
  return {
    sent: source.size,
    sentSha: source.digest(),
    received: sink.bytes,
    receivedSha: sink.digest(),
    ended,
  };
}

/** A TCP backend whose every connection is the far end of a paced stream. */
function startStreamBackend(bytes: number, rate: number): AsyncDisposable & {
  port: number;
  ends: Promise<StreamEnd>[];
} {
  const ends: Promise<StreamEnd>[] = [];
  let seed = 1000;
  const server = serveTcp(Deno.listen({ hostname: "127.0.0.1", port: 0 }), async (conn) => {
    // The test reads each end's figures, or its failure, from `ends`.
    const end = streamEnd(conn, bytes, seed++, rate);
    ends.push(end);
    await end;
  });
  return { port: server.port, ends, [Symbol.asyncDispose]: server.close };
}

/** The figures wrk prints. */
interface WrkResult {
  requests: number;
  errors: { connect: number; read: number; write: number; timeout: number };
  non2xx: number;
  latency: string;
  rps: number;
  raw: string;
}

function parseWrk(out: string): WrkResult {
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? "0");
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    requests: num(/(\d+) requests in/),
    errors: {
      connect: Number(socket?.[1] ?? 0),
      read: Number(socket?.[2] ?? 0),
      write: Number(socket?.[3] ?? 0),
      timeout: Number(socket?.[4] ?? 0),
    },
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
    latency: /Latency\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out)?.slice(1, 4).join(" / ") ?? "?",
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    raw: out,
  };
}

/** Runs the scenario; never throws for a failed expectation (see `problems`). */
export async function runReload(sizes: ReloadSizes): Promise<ScenarioResult> {
  const f = new Findings("reload under load");
  const wrk = requireTool("wrk", "wrk");
  const streamBytes = Math.floor(sizes.streamRate * sizes.seconds);
  await using app = startAppBackend();
  await using streams = startStreamBackend(streamBytes, sizes.streamRate);
  const first = { https: 0, tcp: 0, app: app.port, streams: streams.port };
  await using host = await startHostedEdgemux(config(first, 0));
  const ports = { ...first, https: host.port("https"), tcp: host.port("tcp") };
  const base = await baseline(host);

  // The streams first, so that they are open across every reload.
  const clients: Promise<StreamEnd>[] = [];
  for (let i = 0; i < sizes.streams; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: ports.tcp });
    clients.push(
      streamEnd(conn, streamBytes, 1 + i, sizes.streamRate).finally(() => closeQuietly(conn)),
    );
  }

  const load = run(wrk, [
    "-t1",
    "-c10",
    `-d${sizes.seconds}s`,
    "--timeout",
    "5s",
    `https://127.0.0.1:${ports.https}/`,
  ], { timeoutMs: (sizes.seconds + 30) * 1000 });

  // wrk keeps its 10 connections for the whole run, so they all stay on the first generation;
  // this client opens a new connection for every request, so new connections meet every
  // generation (and the moment of each swap).
  let loading = true;
  const fresh = { ok: 0, failed: [] as string[] };
  const freshLoop = (async () => {
    while (loading) {
      try {
        const { conn } = await connectTlsByName({
          port: ports.https,
          serverName: "app.example.test",
          caCerts: [readCert("ca")],
        });
        try {
          await writeAll(
            conn,
            new TextEncoder().encode(
              "GET /fresh HTTP/1.1\r\nHost: app.example.test\r\nConnection: close\r\n\r\n",
            ),
          );
          const answer = await readUntilClose(conn, 5000, 4096);
          const text = new TextDecoder().decode(answer.bytes);
          if (text.startsWith("HTTP/1.1 200 ") && text.endsWith("reload load ok\n")) fresh.ok++;
          else fresh.failed.push(`${answer.how}: ${JSON.stringify(text.slice(0, 80))}`);
        } finally {
          closeQuietly(conn);
        }
      } catch (e) {
        fresh.failed.push(String(e));
      }
    }
  })();

  // Reloads spread over the load, starting once it runs.
  const reloadMs: number[] = [];
  const reloadErrors: string[] = [];
  const gap = sizes.seconds * 1000 / (sizes.reloads + 2);
  await sleep(gap);
  let peak = base;
  for (let i = 1; i <= sizes.reloads; i++) {
    try {
      reloadMs.push(await host.reload(config(ports, i)));
    } catch (e) {
      reloadErrors.push(String(e));
    }
    if (i === Math.ceil(sizes.reloads / 2)) peak = { ...peak, ...(await host.stats(false)) };
    await sleep(gap);
  }
  const result = await load;
  loading = false;
  await freshLoop;
  const w = parseWrk(result.stdout);
  const clientEnds = await Promise.all(clients);
  const backendEnds = await Promise.all(streams.ends);

  f.check(result.code === 0, `wrk exited with ${result.code}: ${result.stderr}`);
  f.check(w.requests > 0, `wrk made no request:\n${w.raw}`);
  const socketErrors = w.errors.connect + w.errors.read + w.errors.write + w.errors.timeout;
  f.check(socketErrors === 0, `wrk saw socket errors during the reloads:\n${w.raw}`);
  f.check(w.non2xx === 0, `wrk saw ${w.non2xx} non-2xx responses during the reloads`);
  f.check(
    fresh.failed.length === 0,
    `${fresh.failed.length} requests on fresh connections failed during the reloads, e.g. ` +
      fresh.failed.slice(0, 3).join("; "),
  );
  f.check(
    reloadErrors.length === 0,
    `${reloadErrors.length} reloads failed: ${reloadErrors.slice(0, 3).join("; ")}`,
  );
  f.check(
    backendEnds.length === sizes.streams,
    `the stream backend saw ${backendEnds.length} connections for ${sizes.streams} streams`,
  );
  // Streams are matched by what they carried: each client's upload is some backend's download.
  let intact = 0;
  for (const [i, c] of clientEnds.entries()) {
    const b = backendEnds.find((x) => x.receivedSha === c.sentSha);
    const whole = c.ended === "eof" && b !== undefined && b.ended === "eof" &&
      b.received === c.sent && c.received === b.sent && c.receivedSha === b.sentSha &&
      c.received === streamBytes;
    if (whole) intact++;
    f.check(
      whole,
      `stream ${i}: the client sent ${c.sent} and received ${c.received} of ${streamBytes} ` +
        `(${c.ended}); ${
          b
            ? `its backend end received ${b.received} (${b.ended})`
            : "no backend end received its bytes"
        }`,
    );
  }
  const settled = await checkSettled(f, host, base, 15_000);
  const end = await host.stats(true);
  f.hostHealth(host, end);

  f.figure("reloads done", `${reloadMs.length} of ${sizes.reloads}`);
  f.figure("reload time (p50 / p99 / max)", spread(reloadMs));
  f.figure(
    "wrk (-t1 -c10)",
    `${w.requests} requests in ${sizes.seconds} s (${
      Math.round(w.rps)
    }/s), latency avg / stdev / max ${w.latency}`,
  );
  f.figure(
    "fresh-connection requests (one TLS connection each)",
    `${fresh.ok} ok, ${fresh.failed.length} failed`,
  );
  f.figure(
    "failed wrk requests",
    `socket errors ${socketErrors}, non-2xx ${w.non2xx}`,
  );
  f.figure(
    "TCP streams",
    `${intact} of ${sizes.streams} intact, ${mib(streamBytes)} each way each at ${
      mib(sizes.streamRate)
    }/s`,
  );
  f.figure("stream bytes checked", mib(2 * streamBytes * sizes.streams));
  f.figure(
    "edgemux fds: baseline → mid-run → after",
    `${base.fds} → ${peak.fds} → ${settled.stats.fds}`,
  );
  f.figure(
    "edgemux RSS: baseline → mid-run → after",
    `${rssMiB(base.rssKiB)} → ${rssMiB(peak.rssKiB)} → ${rssMiB(end.rssKiB)}`,
  );
  return f.result();
}
