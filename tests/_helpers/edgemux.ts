/**
 * Starts edgemux in-process from a YAML config (listeners on port 0) and records every access
 * and request record, so a test can wait for "the connection ended, and how".
 *
 * @module
 */

import {
  type AccessRecord,
  parseConfig,
  type ProxyHandle,
  type RequestRecord,
  start,
} from "../../mod.ts";
import type { Config } from "../../config/types.ts";
import { EDGE_CERTIFICATES } from "./certs.ts";
import { RecordLog } from "./record_log.ts";

/** A running edgemux for one test. */
export interface TestProxy extends AsyncDisposable {
  readonly proxy: ProxyHandle;
  readonly config: Config;
  /** Every access record so far, in the order connections ended. */
  readonly records: AccessRecord[];
  /** Every HTTP request record so far, in the order requests ended. */
  readonly requests: RequestRecord[];
  /** The port of a listener's first bind. */
  port(listener: string): number;
  /** Resolves with the first record (past or future) that satisfies `match`. */
  waitForRecord(match: (r: AccessRecord) => boolean, timeoutMs?: number): Promise<AccessRecord>;
  /** Resolves with the first request record (past or future) that satisfies `match`. */
  waitForRequest(match: (r: RequestRecord) => boolean, timeoutMs?: number): Promise<RequestRecord>;
  stop(): Promise<void>;
}

/** Parses `yaml` and starts edgemux on it. */
export function startEdgemux(yaml: string): Promise<TestProxy>;
/** Starts edgemux on an already parsed (and perhaps rewired) config. */
export function startEdgemux(config: Config): Promise<TestProxy>;
export async function startEdgemux(source: string | Config): Promise<TestProxy> {
  const config = typeof source === "string" ? parseConfig(source, TEST_CONFIG_FILE).config : source;
  const records = new RecordLog<AccessRecord>("access");
  const requests = new RecordLog<RequestRecord>("request");
  const proxy = await start(config, {
    onRequest: (r) => requests.push(r),
    onAccess: (r) => records.push(r),
  });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await proxy.shutdown(1000);
  };
  return {
    proxy,
    config,
    records: records.items,
    requests: requests.items,
    port(listener: string): number {
      const addrs = proxy.addrs.get(listener);
      if (!addrs || addrs.length === 0) throw new Error(`no listener named "${listener}"`);
      return addrs[0].port;
    },
    waitForRecord: (match, timeoutMs = 10_000) => records.waitFor(match, timeoutMs),
    waitForRequest: (match, timeoutMs = 10_000) => requests.waitFor(match, timeoutMs),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * The file name test configs are parsed as: inside the repository, so relative paths in a test
 * config (certificates, CAs) resolve against the repository root.
 */
export const TEST_CONFIG_FILE: string = new URL("../../test.yaml", import.meta.url).pathname;

/**
 * Starts edgemux with one listener, `https`, whose one route `name` terminates TLS for `sni`
 * with {@linkcode EDGE_CERTIFICATES} and proxies HTTP to a backend, also named `name`, at
 * 127.0.0.1:`backendPort`.
 */
export function startSingleEdge(
  backendPort: number,
  route: { name: string; sni: string },
): Promise<TestProxy> {
  return startEdgemux(`
version: 1
${EDGE_CERTIFICATES}
backends:
  ${route.name}: { servers: ["127.0.0.1:${backendPort}"] }
listeners:
  https:
    bind: "127.0.0.1:0"
    routes:
      - { name: ${route.name}, sni: "${route.sni}", edge: ${route.name} }
`);
}

/** Reads from `conn` until EOF (or `limit` bytes) and returns the bytes. */
export async function readAll(conn: Deno.Conn, limit = 1 << 24): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(16 * 1024);
  for (;;) {
    let n: number | null;
    try {
      n = await conn.read(buf);
    } catch (e) {
      if (e instanceof Deno.errors.ConnectionReset) break;
      throw e;
    }
    if (n === null) break;
    chunks.push(buf.slice(0, n));
    total += n;
    if (total >= limit) break;
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** Writes all of `data`, looping over partial writes. */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let o = 0;
  while (o < data.length) o += await conn.write(data.subarray(o));
}

/**
 * Sends `text` on a new connection to 127.0.0.1:`port`, half-closes, and returns everything that
 * comes back until the other side closes: through an echo server, `text` itself.
 */
export async function echoThrough(port: number, text: string): Promise<string> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(conn, new TextEncoder().encode(text));
  await conn.closeWrite();
  return new TextDecoder().decode(await readAll(conn));
}

/** Hex SHA-256 of bytes. */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
