/**
 * Scenario 4, data integrity: bulk data both ways through a TCP `forward` route and a TLS
 * `passthrough` route (real TLS between the client and the backend), with the SHA-256 of every
 * byte sent compared with the SHA-256 of every byte received, at both ends.
 *
 * Two shapes per route:
 * - `half-close`: the client sends everything and closes its write side; the backend reads to
 *   EOF and only then sends its reply and closes. Every byte of the reply travels after the
 *   client's FIN, so a proxy that treats the first FIN as the end loses it.
 * - `duplex`: both ends send at once, then close their write sides.
 *
 * `edge` and `reencrypt` carry 1 GiB each way over HTTP in tests/edge_bulk_test.ts; this
 * scenario covers the relayed routes.
 *
 * @module
 */

import { readCert, readKey } from "./certs.ts";
import { startHostedEdgemux } from "./edgemux_process.ts";
import {
  baseline,
  ByteSink,
  ByteSource,
  checkSettled,
  closeQuietly,
  Findings,
  mib,
  receiveAll,
  rssMiB,
  type ScenarioResult,
  sendSource,
} from "./reliability_kit.ts";
import { connectTlsByName } from "./websocket.ts";

/** Sizes of one run. */
export interface IntegritySizes {
  /** Bytes each way, for every route and shape. */
  bytes: number;
}

export const SHORT: IntegritySizes = { bytes: 64 * 1024 * 1024 };
export const FULL: IntegritySizes = { bytes: 1024 * 1024 * 1024 };

type Shape = "half-close" | "duplex";
type Route = "forward" | "passthrough";

/** What the backend is to do with its next connection. */
interface Job {
  shape: Shape;
  bytes: number;
  seed: number;
}

/** What one end of a transfer saw. */
interface Tally {
  sent: number;
  sentSha: string;
  received: number;
  receivedSha: string;
  /** How the receiving side ended: EOF, or a reset (a loss). */
  ended: "eof" | "reset";
}

/** Runs one transfer's end on `conn` (either side: the shape is symmetric up to who waits). */
async function transfer(
  conn: Deno.Conn,
  shape: Shape,
  source: ByteSource,
  waitForEof: boolean,
): Promise<Tally> {
  const sink = new ByteSink();
  let ended: "eof" | "reset";
  const send = async () => {
    await sendSource(conn, source);
    await conn.closeWrite();
  };
  if (shape === "duplex") {
    [ended] = await Promise.all([receiveAll(conn, sink), send()]);
  } else if (waitForEof) {
    // The backend: everything from the client first, then the reply.
    ended = await receiveAll(conn, sink);
    await send();
  } else {
    // The client: everything out, write side closed, then the whole reply.
    await send();
    ended = await receiveAll(conn, sink);
  }
  return {
    sent: source.size,
    sentSha: source.digest(),
    received: sink.bytes,
    receivedSha: sink.digest(),
    ended,
  };
}

/** A backend (plain TCP or TLS) that runs the job it was given for each connection. */
function startIntegrityBackend(tls: boolean): AsyncDisposable & {
  port: number;
  next: Job | null;
  results: Promise<Tally>[];
} {
  const listener = tls
    ? Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: readCert("vault"),
      key: readKey("vault"),
    })
    : Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const state = {
    port: (listener.addr as Deno.NetAddr).port,
    next: null as Job | null,
    results: [] as Promise<Tally>[],
    async [Symbol.asyncDispose]() {
      closeQuietly(listener);
      await loop;
      for (const c of open) closeQuietly(c);
    },
  };
  const loop = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (e instanceof Deno.errors.BadResource) return;
        continue;
      }
      const job = state.next!;
      open.add(conn);
      state.results.push(
        transfer(conn, job.shape, new ByteSource(job.bytes, job.seed + 1), true).finally(() => {
          open.delete(conn);
          closeQuietly(conn);
        }),
      );
    }
  })();
  return state;
}

/** Runs the scenario; never throws for a failed expectation (see `problems`). */
export async function runIntegrity(sizes: IntegritySizes): Promise<ScenarioResult> {
  const f = new Findings("integrity");
  await using plain = startIntegrityBackend(false);
  await using vault = startIntegrityBackend(true);
  await using host = await startHostedEdgemux(
    `
version: 1
backends:
  plain: { servers: ["127.0.0.1:${plain.port}"] }
  vault: { servers: ["127.0.0.1:${vault.port}"] }
listeners:
  tcp:
    bind: "127.0.0.1:0"
    routes:
      - forward: plain
  tls:
    bind: "127.0.0.1:0"
    routes:
      - { sni: vault.example.test, passthrough: vault }
`,
    { stream: true },
  );
  const base = await baseline(host);
  let checked = 0;
  let peakRss = base.rssKiB;
  let seed = 1;

  for (const route of ["forward", "passthrough"] as const satisfies readonly Route[]) {
    for (const shape of ["half-close", "duplex"] as const satisfies readonly Shape[]) {
      const what = `${route} ${shape}`;
      const backend = route === "forward" ? plain : vault;
      seed += 2;
      backend.next = { shape, bytes: sizes.bytes, seed };
      const started = performance.now();
      const conn = route === "forward"
        ? await Deno.connect({ hostname: "127.0.0.1", port: host.port("tcp") })
        : (await connectTlsByName({
          port: host.port("tls"),
          serverName: "vault.example.test",
          caCerts: [readCert("ca")],
          timeoutMs: 10_000,
        })).conn;
      let client: Tally;
      try {
        client = await transfer(conn, shape, new ByteSource(sizes.bytes, seed), false);
      } catch (e) {
        f.check(false, `${what}: the client failed: ${e}`);
        closeQuietly(conn);
        continue;
      } finally {
        closeQuietly(conn);
      }
      const server = await backend.results.at(-1)!;
      const seconds = (performance.now() - started) / 1000;
      const stats = await host.stats(false);
      peakRss = Math.max(peakRss, stats.rssKiB);
      f.check(
        client.ended === "eof" && server.ended === "eof",
        `${what}: a side ended with a reset (client ${client.ended}, backend ${server.ended})`,
      );
      f.check(
        server.received === client.sent && server.receivedSha === client.sentSha,
        `${what}: up: the client sent ${client.sent} bytes (${client.sentSha.slice(0, 16)}…), ` +
          `the backend got ${server.received} (${server.receivedSha.slice(0, 16)}…)`,
      );
      f.check(
        client.received === server.sent && client.receivedSha === server.sentSha,
        `${what}: down: the backend sent ${server.sent} bytes (${server.sentSha.slice(0, 16)}…), ` +
          `the client got ${client.received} (${client.receivedSha.slice(0, 16)}…)`,
      );
      const record = await host.waitForRecord(
        (r) => r.listener === (route === "forward" ? "tcp" : "tls") && r.up >= sizes.bytes,
      );
      if (route === "forward") {
        f.check(
          record.up === sizes.bytes && record.down === sizes.bytes,
          `${what}: the access record counts ${record.up} up and ${record.down} down`,
        );
      }
      f.check(
        record.end === "client-closed" || record.end === "upstream-closed",
        `${what}: the access record ends "${record.end}"`,
      );
      host.records.length = 0;
      checked += client.received + server.received;
      f.figure(
        `${what}: ${mib(sizes.bytes)} each way`,
        `${(2 * sizes.bytes / 1024 / 1024 / seconds).toFixed(0)} MiB/s both ways together, ` +
          `sha256 ${client.sentSha.slice(0, 12)}… up, ${server.sentSha.slice(0, 12)}… down`,
      );
    }
  }
  const settled = await checkSettled(f, host, base, 10_000);
  const end = await host.stats(true);
  f.hostHealth(host, end);
  f.figure("bytes checked", `${mib(checked)} (${checked} bytes)`);
  f.figure("edgemux fds: baseline → after", `${base.fds} → ${settled.stats.fds}`);
  f.figure(
    "edgemux RSS: baseline → peak → after",
    `${rssMiB(base.rssKiB)} → ${rssMiB(peakRss)} → ${rssMiB(end.rssKiB)}`,
  );
  return f.result();
}
