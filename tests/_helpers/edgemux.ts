/**
 * Starts edgemux in-process from a YAML config (listeners on port 0) and records every access
 * record, so a test can wait for "the connection ended, and how".
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
  stop(): Promise<void>;
}

/** Parses `yaml` and starts edgemux on it. */
export function startEdgemux(yaml: string): Promise<TestProxy>;
/** Starts edgemux on an already parsed (and perhaps rewired) config. */
export function startEdgemux(config: Config): Promise<TestProxy>;
export async function startEdgemux(source: string | Config): Promise<TestProxy> {
  const config = typeof source === "string" ? parseConfig(source, TEST_CONFIG_FILE).config : source;
  const records: AccessRecord[] = [];
  const requests: RequestRecord[] = [];
  const waiters: { match: (r: AccessRecord) => boolean; resolve: (r: AccessRecord) => void }[] = [];
  const proxy = await start(config, {
    onRequest: (r) => requests.push(r),
    onAccess: (r) => {
      records.push(r);
      for (const w of [...waiters]) {
        if (w.match(r)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(r);
        }
      }
    },
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
    records,
    requests,
    port(listener: string): number {
      const addrs = proxy.addrs.get(listener);
      if (!addrs || addrs.length === 0) throw new Error(`no listener named "${listener}"`);
      return addrs[0].port;
    },
    waitForRecord(match, timeoutMs = 10_000) {
      const found = records.find(match);
      if (found) return Promise.resolve(found);
      return new Promise<AccessRecord>((resolve, reject) => {
        const waiter = {
          match,
          resolve: (r: AccessRecord) => {
            clearTimeout(timer);
            resolve(r);
          },
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(
            new Error(
              `no matching access record within ${timeoutMs} ms; records so far:\n` +
                records.map((r) => JSON.stringify(r)).join("\n"),
            ),
          );
        }, timeoutMs);
        waiters.push(waiter);
      });
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * The file name test configs are parsed as: inside the repository, so relative paths in a test
 * config (certificates, CAs) resolve against the repository root.
 */
export const TEST_CONFIG_FILE: string = new URL("../../test.yaml", import.meta.url).pathname;

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

/** Hex SHA-256 of bytes. */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
