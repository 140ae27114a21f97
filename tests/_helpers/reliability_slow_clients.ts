/**
 * Scenario 1, slow clients: many connections send part of what they must send and stall, while
 * a normal client is served. Four kinds, in equal shares:
 *
 * - `hello`: 100 bytes of a ClientHello on a TLS listener, then nothing (closed at sniff.timeout);
 * - `silent`: nothing at all on the same listener, which has no `silent` route (sniff.timeout);
 * - `plain-head`: part of an HTTP head on a plain-HTTP redirect listener (request_head_timeout,
 *   answered with 408);
 * - `tls-head`: a finished TLS handshake on an `edge` route, then part of an HTTP head
 *   (request_head_timeout, 408).
 *
 * A terminated connection's first request head is due `request_head_timeout` after its TLS
 * handshake ends, so each `tls-head` client writes its partial head right after its handshake,
 * and its deadline counts from the end of the handshake. Every stalled connection is held at the
 * same time while the normal clients are measured.
 *
 * @module
 */

import { EDGE_CERTIFICATES, readCert } from "./certs.ts";
import { startHostedEdgemux } from "./edgemux_process.ts";
import {
  baseline,
  change,
  checkSettled,
  type Closed,
  closeQuietly,
  Findings,
  readUntilClose,
  rssMiB,
  runBounded,
  type ScenarioResult,
  spread,
  startClosingHttpBackend,
  writeAll,
} from "./reliability_kit.ts";
import { connectTlsByName, ConnReader, parseResponseHead } from "./websocket.ts";
import { buildClientHello } from "../../proxy/_testing/hello_builder.ts";

/** Sizes of one run. */
export interface SlowClientSizes {
  /** Stalled connections, split evenly over the four kinds. */
  connections: number;
  /** sniff.timeout and request_head_timeout, ms. */
  deadlineMs: number;
  /** How late a close may be seen after its deadline, beyond edgemux's 100 ms tick. */
  slackMs: number;
  /** Normal requests made while the stalled connections are held (half TLS, half plain). */
  probes: number;
  /** The slowest a normal request may be, ms. */
  probeLimitMs: number;
}

export const SHORT: SlowClientSizes = {
  connections: 300,
  deadlineMs: 1000,
  slackMs: 400,
  probes: 6,
  probeLimitMs: 500,
};

export const FULL: SlowClientSizes = {
  connections: 2000,
  // Opening 2,000 connections (500 of them with a TLS handshake) takes 1–2 s on a busy 2-core
  // machine; every one must still be held when the normal clients are measured.
  deadlineMs: 3000,
  slackMs: 600,
  probes: 20,
  probeLimitMs: 500,
};

const KINDS = ["hello", "silent", "plain-head", "tls-head"] as const;
type Kind = typeof KINDS[number];
/** edgemux checks HTTP read deadlines on a 100 ms tick (proxy/deadlines.ts). */
const TICK = 100;
/** A deadline may fire up to one tick before its time, measured against a cached clock. */
const EARLY_BY = 110;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const PARTIAL_HEAD = encoder.encode("GET /stall HTTP/1.1\r\nHost: app.example.test\r\nX-Stall: ");

interface Stalled {
  kind: Kind;
  conn: Deno.Conn;
  /** When the last byte was written (or the connection was made, for `silent`). */
  sentAt: number;
  closed?: Promise<Closed>;
  /** Set once the close has been seen. */
  done?: boolean;
}

function watch(s: Stalled, timeoutMs: number): Stalled {
  s.closed = readUntilClose(s.conn, timeoutMs, 4096).then((c) => {
    s.done = true;
    return c;
  });
  return s;
}

function config(appPort: number, deadlineMs: number, connections: number): string {
  return `
version: 1
limits:
  max_connections: ${connections * 2 + 1000}
  per_client: { max_connections: ${connections * 2 + 1000} }
http:
  request_head_timeout: ${deadlineMs}ms
${EDGE_CERTIFICATES}
backends:
  app: { servers: ["127.0.0.1:${appPort}"] }
listeners:
  tls:
    bind: "127.0.0.1:0"
    sniff: { timeout: ${deadlineMs}ms }
    routes:
      - { name: app, sni: app.example.test, edge: app }
  plain:
    bind: "127.0.0.1:0"
    sniff: { timeout: ${deadlineMs}ms }
    routes:
      - redirect: https
`;
}

/** One normal request, start to last byte: TLS edge GET, or a plain GET answered with 308. */
async function probe(kind: "tls" | "plain", port: number): Promise<{ ms: number; status: number }> {
  const started = performance.now();
  const conn = kind === "tls"
    ? (await connectTlsByName({ port, serverName: "app.example.test", caCerts: [readCert("ca")] }))
      .conn
    : await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(
      conn,
      encoder.encode("GET /probe HTTP/1.1\r\nHost: app.example.test\r\nConnection: close\r\n\r\n"),
    );
    const reader = new ConnReader(conn);
    const head = await reader.readUntil("\r\n\r\n", 5000);
    if (head === null) throw new Error(`${kind} probe: closed without a response`);
    const parsed = parseResponseHead(head);
    const length = Number(parsed.headers["content-length"] ?? 0);
    if (length > 0) await reader.readExactly(length, 5000);
    return { ms: performance.now() - started, status: parsed.status };
  } finally {
    closeQuietly(conn);
  }
}

/** Runs the scenario; never throws for a failed expectation (see `problems`). */
export async function runSlowClients(sizes: SlowClientSizes): Promise<ScenarioResult> {
  const f = new Findings("slow clients");
  await using app = startClosingHttpBackend();
  await using host = await startHostedEdgemux(
    config(app.port, sizes.deadlineMs, sizes.connections),
  );
  const tlsPort = host.port("tls");
  const plainPort = host.port("plain");
  const T = sizes.deadlineMs;
  const hello = buildClientHello({ sni: "app.example.test", alpn: ["http/1.1"] });
  const perKind = Math.floor(sizes.connections / KINDS.length);
  const total = perKind * KINDS.length;

  // Warm up every path once (certificate, internal TLS listener, pools), then take the baseline.
  await probe("tls", tlsPort);
  await probe("plain", plainPort);
  const base = await baseline(host);

  const stalled: Stalled[] = [];
  const openedFrom = performance.now();
  const firstDeadlineStart = performance.now();
  // The head deadline of a terminated connection starts when its handshake ends.
  await runBounded(perKind, 20, async () => {
    const { conn } = await connectTlsByName({
      port: tlsPort,
      serverName: "app.example.test",
      caCerts: [readCert("ca")],
    });
    const handshaken = performance.now();
    await writeAll(conn, PARTIAL_HEAD);
    stalled.push(watch({ kind: "tls-head", conn, sentAt: handshaken }, T + 10_000));
  });
  const plainKinds: Kind[] = ["hello", "silent", "plain-head"];
  await runBounded(perKind * 3, 50, async (i) => {
    const kind = plainKinds[i % 3];
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: kind === "plain-head" ? plainPort : tlsPort,
    });
    if (kind === "hello") await writeAll(conn, hello.subarray(0, 100));
    if (kind === "plain-head") await writeAll(conn, PARTIAL_HEAD);
    stalled.push(watch({ kind, conn, sentAt: performance.now() }, T + 10_000));
  });
  const openMs = performance.now() - openedFrom;
  const window = performance.now() - firstDeadlineStart;
  f.figure("stalled connections", total);
  f.figure("deadline (sniff.timeout = request_head_timeout)", `${T} ms`);
  f.figure(
    "time to open them all (of which under a deadline)",
    `${Math.round(openMs)} ms (${Math.round(window)} ms)`,
  );

  const held = await host.stats(true);
  const closedEarly = stalled.filter((s) => s.done).length;
  f.check(
    closedEarly === 0,
    `${closedEarly} stalled connections were already closed when the normal clients started ` +
      `(their deadlines started over ${Math.round(window)} ms, against a ${T} ms deadline)`,
  );

  // Normal clients while everything is held.
  const latencies: number[] = [];
  for (let i = 0; i < sizes.probes; i++) {
    const kind = i % 2 === 0 ? "tls" : "plain";
    try {
      const r = await probe(kind, kind === "tls" ? tlsPort : plainPort);
      latencies.push(r.ms);
      f.check(
        r.status === (kind === "tls" ? 200 : 308),
        `a normal ${kind} request got ${r.status}`,
      );
    } catch (e) {
      f.check(false, `a normal ${kind} request failed next to the stalled ones: ${e}`);
    }
  }
  const worst = Math.max(...latencies);
  f.figure("normal request latency while held (p50 / p99 / max)", spread(latencies));
  f.check(
    worst < sizes.probeLimitMs,
    `a normal request took ${Math.round(worst)} ms next to ${total} stalled connections ` +
      `(limit ${sizes.probeLimitMs} ms)`,
  );

  // Every stalled connection is closed at its deadline, with the right answer.
  const lateness = new Map<Kind, number[]>(KINDS.map((k) => [k, []]));
  const wrongAnswers: string[] = [];
  const notClosed = new Map<Kind, number>();
  for (const s of stalled) {
    const c = await s.closed!;
    closeQuietly(s.conn);
    if (c.how === "timeout") {
      notClosed.set(s.kind, (notClosed.get(s.kind) ?? 0) + 1);
      continue;
    }
    lateness.get(s.kind)!.push(c.at - s.sentAt - T);
    const text = decoder.decode(c.bytes);
    const headKind = s.kind === "plain-head" || s.kind === "tls-head";
    if (headKind && !text.startsWith("HTTP/1.1 408 ")) {
      wrongAnswers.push(`${s.kind}: ${JSON.stringify(text.slice(0, 80))} (${c.how})`);
    }
    if (!headKind && c.bytes.length > 0) {
      wrongAnswers.push(`${s.kind}: ${c.bytes.length} bytes before the close`);
    }
  }
  for (const [kind, n] of notClosed) {
    f.check(false, `${n} ${kind} connections were still open ${T + 10_000} ms after stalling`);
  }
  f.check(
    wrongAnswers.length === 0,
    `${wrongAnswers.length} stalled connections got a wrong answer, e.g.\n` +
      wrongAnswers.slice(0, 5).join("\n"),
  );
  for (const kind of KINDS) {
    const late = lateness.get(kind)!;
    f.figure(`close after deadline, ${kind} (p50 / p99 / max)`, spread(late));
    const early = late.filter((l) => l < -EARLY_BY).length;
    const tooLate = late.filter((l) => l > TICK + sizes.slackMs).length;
    f.check(early === 0, `${early} ${kind} connections were closed before their deadline`);
    f.check(
      tooLate === 0,
      `${tooLate} ${kind} connections were closed more than ${TICK + sizes.slackMs} ms ` +
        `after their deadline (worst ${Math.round(Math.max(...late))} ms)`,
    );
  }

  const after = await checkSettled(f, host, base, 10_000);
  const end = await host.stats(true);
  f.hostHealth(host, end);
  const sniffTimeouts = end.accessEnds["sniff-timeout"] ?? 0;
  const plain408 = end.accessEnds["request-timeout"] ?? 0;
  const head408 = end.requestEnds["408 request-timeout"] ?? 0;
  f.check(
    sniffTimeouts === perKind * 2,
    `sniff-timeout records: ${sniffTimeouts}, expected ${perKind * 2}`,
  );
  f.check(plain408 === perKind, `request-timeout records: ${plain408}, expected ${perKind}`);
  // One per `tls-head` and one per `plain-head`: the redirect listener records its requests too.
  f.check(head408 === perKind * 2, `408 request records: ${head408}, expected ${perKind * 2}`);

  const fdsPer = (held.fds - base.fds) / total;
  const rssPer = (held.rssKiB - base.rssKiB) / total;
  f.figure("edgemux fds: baseline → held → after", `${base.fds} → ${held.fds} → ${end.fds}`);
  f.figure(
    "edgemux RSS: baseline → held → after",
    `${rssMiB(base.rssKiB)} → ${rssMiB(held.rssKiB)} → ${rssMiB(end.rssKiB)}`,
  );
  f.figure("fds per stalled connection", fdsPer.toFixed(2));
  f.figure("RSS growth per stalled connection", `${rssPer.toFixed(1)} KiB`);
  f.figure("V8 heap: baseline → held", change(base.heapUsedKiB, held.heapUsedKiB, " KiB"));
  f.figure("settle time to baseline fds", `${after.ms} ms`);
  return f.result();
}
