/**
 * Shared pieces of the reliability scenarios (tests/reliability_*_test.ts run them small,
 * reliability/run.ts runs them full size): a result that collects every failed expectation
 * instead of stopping at the first, bounded concurrency, deterministic byte streams with their
 * digests, and socket reads with deadlines.
 *
 * @module
 */

import { createCipheriv, createHash, type Hash } from "node:crypto";
import { serveTcp } from "./backends.ts";
import type { HostedEdgemux, HostStats } from "./edgemux_process.ts";

/** A figure in the report: a number, or a short text such as a distribution. */
export type Figure = number | string;

/** What one scenario run found. */
export interface ScenarioResult {
  name: string;
  /** Inputs tried, connections held, bytes checked, fds and RSS before and after, … */
  figures: Record<string, Figure>;
  /** Every expectation that did not hold, in words; empty when the scenario passed. */
  problems: string[];
  /** Wall-clock time of the whole run. */
  ms: number;
}

/** Collects figures and failed expectations for one scenario. */
export class Findings {
  readonly figures: Record<string, Figure> = {};
  readonly problems: string[] = [];
  readonly #started = performance.now();

  constructor(readonly name: string) {}

  /** Records `message` as a problem unless `ok`. Returns `ok`. */
  check(ok: boolean, message: string): boolean {
    if (!ok) this.problems.push(message);
    return ok;
  }

  figure(key: string, value: Figure): void {
    this.figures[key] = value;
  }

  /** Figures and problems of an edgemux child's final state, with its leftovers checked. */
  hostHealth(host: HostedEdgemux, stats: HostStats): void {
    this.check(
      stats.uncaught.length === 0,
      `edgemux had unhandled errors:\n${stats.uncaught.join("\n")}`,
    );
    const internal = stats.accessEnds["internal-error"] ?? 0;
    this.check(
      internal === 0,
      `${internal} connections ended with internal-error:\n${
        stats.problems.filter((p) => p.startsWith("internal-error")).join("\n")
      }\nstderr:\n${host.stderr().slice(-4000)}`,
    );
  }

  result(): ScenarioResult {
    return {
      name: this.name,
      figures: this.figures,
      problems: this.problems,
      ms: Math.round(performance.now() - this.#started),
    };
  }
}

/** Prints a result's figures under the running test, one per line. */
export function printFigures(result: ScenarioResult): void {
  const lines = Object.entries(result.figures).map(([k, v]) => `    ${k}: ${v}`);
  console.log(`  ${result.name} (${result.ms} ms)\n${lines.join("\n")}`);
}

/** Runs `task(0)` … `task(count - 1)` with at most `concurrency` in flight. */
export async function runBounded(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The value at quantile `q` (0..1) of `values` (nearest rank); NaN when empty. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** `p50 / p99 / max` of a list of milliseconds, for the report. */
export function spread(values: readonly number[]): string {
  const f = (v: number) => Number.isNaN(v) ? "-" : String(Math.round(v));
  return `${f(quantile(values, 0.5))} / ${f(quantile(values, 0.99))} / ${
    f(values.length ? Math.max(...values) : NaN)
  } ms`;
}

export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** A loopback port nothing listens on: bound, then closed. */
export function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export function closeQuietly(c: { close(): void } | null | undefined): void {
  try {
    c?.close();
  } catch {
    // Already closed.
  }
}

/** Writes all of `data`, looping over partial writes. */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let o = 0; o < data.length;) o += await conn.write(data.subarray(o));
}

/** How a read-until-close ended. */
export type CloseKind = "eof" | "reset" | "timeout";

/** What {@linkcode readUntilClose} saw. */
export interface Closed {
  how: CloseKind;
  bytes: Uint8Array;
  /** performance.now() when the close (or the timeout) was seen. */
  at: number;
}

/** Errors that only say the connection is gone. */
export function isGone(e: unknown): boolean {
  return e instanceof Deno.errors.ConnectionReset || e instanceof Deno.errors.BrokenPipe ||
    e instanceof Deno.errors.UnexpectedEof || e instanceof Deno.errors.ConnectionAborted ||
    e instanceof Deno.errors.NotConnected || e instanceof Deno.errors.BadResource ||
    e instanceof Deno.errors.Interrupted;
}

/**
 * Reads until the peer closes (EOF or reset) or `timeoutMs` passes, keeping at most `keep`
 * bytes. On a timeout the connection is closed here (a Deno read cannot be cancelled).
 */
export async function readUntilClose(
  conn: Deno.Conn,
  timeoutMs: number,
  keep = 1 << 20,
): Promise<Closed> {
  const chunks: Uint8Array[] = [];
  let kept = 0;
  const buf = new Uint8Array(16 * 1024);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), timeoutMs));
  const collect = (): Uint8Array => {
    const out = new Uint8Array(kept);
    let o = 0;
    for (const c of chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  };
  try {
    for (;;) {
      const read = conn.read(buf).then((n) => n, (e) => isGone(e) ? "reset" as const : e);
      const n = await Promise.race([read, expired]);
      if (n === "timeout") {
        closeQuietly(conn);
        await read.catch(() => {});
        return { how: "timeout", bytes: collect(), at: performance.now() };
      }
      if (n === "reset") return { how: "reset", bytes: collect(), at: performance.now() };
      if (n instanceof Error) throw n;
      if (n === null) return { how: "eof", bytes: collect(), at: performance.now() };
      if (kept < keep) {
        const piece = buf.slice(0, Math.min(n, keep - kept));
        chunks.push(piece);
        kept += piece.length;
      }
    }
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A deterministic byte stream (AES-128-CTR keystream of `seed`), generated piece by piece so a
 * gigabyte is never held in memory, with the SHA-256 of what has been produced.
 */
export class ByteSource {
  readonly #cipher;
  readonly #zeros: Uint8Array;
  readonly #hash: Hash = createHash("sha256");
  #left: number;

  constructor(readonly size: number, seed: number, readonly chunk = 256 * 1024) {
    const key = new Uint8Array(16);
    new DataView(key.buffer).setUint32(0, seed);
    this.#cipher = createCipheriv("aes-128-ctr", key, new Uint8Array(16));
    this.#zeros = new Uint8Array(chunk);
    this.#left = size;
  }

  /** The next piece (at most `chunk` bytes), or null when `size` bytes have been produced. */
  next(): Uint8Array | null {
    if (this.#left === 0) return null;
    const n = Math.min(this.chunk, this.#left);
    this.#left -= n;
    const piece = new Uint8Array(this.#cipher.update(this.#zeros.subarray(0, n)));
    this.#hash.update(piece);
    return piece;
  }

  /** Hex SHA-256 of everything produced; call once, after the last piece. */
  digest(): string {
    return this.#hash.digest("hex");
  }
}

/** Counts and hashes bytes as they arrive. */
export class ByteSink {
  readonly #hash: Hash = createHash("sha256");
  bytes = 0;

  add(piece: Uint8Array): void {
    this.#hash.update(piece);
    this.bytes += piece.length;
  }

  digest(): string {
    return this.#hash.digest("hex");
  }
}

/** Sends every piece of `source` to `conn`. */
export async function sendSource(conn: Deno.Conn, source: ByteSource): Promise<void> {
  for (let piece = source.next(); piece !== null; piece = source.next()) {
    await writeAll(conn, piece);
  }
}

/** Reads `conn` to EOF into `sink`; a reset ends it too and is returned as "reset". */
export async function receiveAll(conn: Deno.Conn, sink: ByteSink): Promise<"eof" | "reset"> {
  const buf = new Uint8Array(256 * 1024);
  for (;;) {
    let n: number | null;
    try {
      n = await conn.read(buf);
    } catch (e) {
      if (isGone(e)) return "reset";
      throw e;
    }
    if (n === null) return "eof";
    sink.add(buf.subarray(0, n));
  }
}

/** edgemux's state before a load: figures, and what each descriptor is. */
export interface Baseline extends HostStats {
  fdList: string[];
}

/** A fresh baseline: active connections 0 and fds steady, after garbage collection. */
export async function baseline(host: HostedEdgemux): Promise<Baseline> {
  // Five reads in a row that agree on the descriptor count: startup work is over (the runtime
  // opens a pair of unix sockets of its own a few hundred ms after start; certificates load).
  let last = await host.stats(true);
  for (let i = 0, same = 0; i < 40 && same < 5; i++) {
    await sleep(150);
    const now = await host.stats(true);
    same = now.fds === last.fds && now.active === 0 ? same + 1 : 0;
    last = now;
  }
  return { ...last, fdList: await host.describeFds() };
}

/**
 * Waits (up to `timeoutMs`) until edgemux is back to `base`: no active connection and at most
 * `tolerance` descriptors more than before. A failure names the descriptors that stayed open.
 */
export async function checkSettled(
  f: Findings,
  host: HostedEdgemux,
  base: Baseline,
  timeoutMs: number,
  tolerance = 0,
): Promise<{ stats: HostStats; ms: number }> {
  const settled = await host.settle(base.fds + tolerance, timeoutMs);
  const { stats, ms } = settled;
  f.check(stats.active === 0, `activeConnections is ${stats.active} ${ms} ms after the load`);
  if (stats.fds > base.fds + tolerance) {
    const before = new Set(base.fdList.map((l) => l.replace(/^\d+: /, "")));
    const extra = (await host.describeFds()).filter((l) => !before.has(l.replace(/^\d+: /, "")));
    f.check(
      false,
      `edgemux holds ${stats.fds} descriptors ${ms} ms after the load, baseline ${base.fds}` +
        (tolerance ? ` (+${tolerance} allowed)` : "") + `; not in the baseline:\n` +
        extra.join("\n"),
    );
  }
  return settled;
}

/** A running backend of the test process. */
export interface TestServer extends AsyncDisposable {
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
}

/**
 * A plain HTTP/1.1 backend that answers every request with `200 ok` and `Connection: close`
 * and closes, so edgemux pools none of its connections and edgemux's descriptor count is back
 * at its baseline as soon as the clients are gone (a pooled idle connection would stay for up
 * to two pool sweeps, 8 s).
 */
export function startClosingHttpBackend(): TestServer {
  const reply = new TextEncoder().encode(
    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n" +
      "connection: close\r\n\r\nok\n",
  );
  // A read that fails means the proxy went away first: nothing to answer.
  const server = serveTcp(Deno.listen({ hostname: "127.0.0.1", port: 0 }), async (conn) => {
    const buf = new Uint8Array(8192);
    let seen = "";
    while (!seen.includes("\r\n\r\n")) {
      const n = await conn.read(buf);
      if (n === null) return;
      seen += new TextDecoder().decode(buf.subarray(0, n));
    }
    await writeAll(conn, reply);
  });
  return {
    port: server.port,
    accepted: () => server.connections,
    [Symbol.asyncDispose]: server.close,
  };
}

/**
 * A TLS server with `certPem`/`keyPem` (a passthrough backend) that echoes what it reads until
 * the client closes.
 */
export function startTlsEchoBackend(certPem: string, keyPem: string): TestServer {
  const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: certPem, key: keyPem });
  const open = new Set<Deno.Conn>();
  let accepted = 0;
  const serve = async (conn: Deno.TlsConn) => {
    try {
      await conn.handshake();
      const buf = new Uint8Array(16 * 1024);
      for (let n; (n = await conn.read(buf)) !== null;) await writeAll(conn, buf.subarray(0, n));
    } catch {
      // A client that resets or gives up in the handshake is part of the load.
    } finally {
      open.delete(conn);
      closeQuietly(conn);
    }
  };
  const loop = (async () => {
    for (;;) {
      let conn: Deno.TlsConn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (e instanceof Deno.errors.BadResource) return;
        continue; // A failed handshake surfaces here on some versions; keep accepting.
      }
      accepted++;
      open.add(conn);
      serve(conn);
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    accepted: () => accepted,
    async [Symbol.asyncDispose]() {
      closeQuietly(listener);
      await loop;
      for (const c of open) closeQuietly(c);
    },
  };
}

/** `a → b` for the report. */
export function change(a: number, b: number, unit = ""): string {
  return `${a}${unit} → ${b}${unit}`;
}

/** RSS as MiB with one decimal. */
export function rssMiB(kib: number): string {
  return `${(kib / 1024).toFixed(1)} MiB`;
}

/** A compact `key=count` list of a count map, largest first. */
export function counts(map: Record<string, number>): string {
  return Object.entries(map).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}=${v}`).join(", ");
}
