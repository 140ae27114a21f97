/**
 * Active health checks: every `interval`, each server of a backend is probed (TCP connect, TLS
 * handshake, or an HTTP request whose status must fall in a range). `fall` failures in a row
 * take a server out of rotation, `rise` successes bring it back; each change is logged once
 * (backend.ts).
 *
 * @module
 */

import type { HealthCheckConfig } from "../../config/types.ts";
import type { TlsDialOptions } from "../_deno_internals.ts";
import type { Backend, ServerState } from "./backend.ts";
import { TIMED_OUT } from "../deadlines.ts";
import { parseResponseHead } from "../http/wire/head.ts";
import { dialTls } from "../http/pool.ts";
import type { LocalCause } from "./local_errors.ts";
import { closeQuietly, readWithin, writeAll } from "../net.ts";
import { dialTcp } from "./upstream.ts";

/**
 * The outcome of one probe. A failure with `local` set never reached the server (edgemux was out
 * of descriptors or ports, local_errors.ts): it is no verdict on the server and is ignored.
 */
export type ProbeResult = { ok: true } | { ok: false; reason: string; local?: LocalCause };

/** Runs the checks of one backend until stopped. */
export class HealthChecker {
  readonly #timers = new Map<ServerState, ReturnType<typeof setTimeout>>();
  readonly #running = new Set<Promise<void>>();
  #stopped = false;

  /**
   * @param tls How to speak TLS to the servers for `tls` and `http` checks (the backend's own
   *   `tls`, or the check's `ca`/`server_name`); null for plain TCP.
   */
  constructor(
    readonly backend: Backend,
    readonly check: HealthCheckConfig,
    readonly tls: TlsDialOptions | null,
  ) {}

  /** Starts checking; the first round runs at once so a dead server is found quickly. */
  start(): void {
    for (const server of this.backend.servers) this.#schedule(server, 0);
  }

  /** Stops checking and waits for probes in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    await Promise.all([...this.#running]);
  }

  #schedule(server: ServerState, delay: number): void {
    if (this.#stopped) return;
    this.#timers.set(
      server,
      setTimeout(() => {
        const run = this.#round(server).finally(() => this.#running.delete(run));
        this.#running.add(run);
      }, delay),
    );
  }

  async #round(server: ServerState): Promise<void> {
    const result = await probe(server, this.check, this.tls);
    if (this.#stopped) return;
    if (!result.ok && result.local !== undefined) {
      // Logged and counted where the dial failed; the server keeps its verdict and its streak.
      this.#schedule(server, this.check.interval);
      return;
    }
    // A server passive health took out counts as down here too, so passing checks bring it
    // back before its backoff ends.
    const wasUp = server.up(Date.now());
    // `streak` counts results that disagree with the current verdict.
    if (result.ok === wasUp) {
      server.streak = 0;
    } else {
      server.streak++;
      const needed = wasUp ? this.check.fall : this.check.rise;
      if (server.streak >= needed) {
        server.streak = 0;
        this.backend.setChecked(
          server,
          result.ok,
          result.ok ? "" : `health check failed ${needed} times: ${result.reason}`,
        );
      }
    }
    this.#schedule(server, this.check.interval);
  }
}

/** Probes one server once, within the check's timeout. Never throws. */
export async function probe(
  server: ServerState,
  check: HealthCheckConfig,
  tls: TlsDialOptions | null,
): Promise<ProbeResult> {
  const started = Date.now();
  const left = () => check.timeout - (Date.now() - started);
  const dialled = check.kind === "tcp" || tls === null
    ? await dialTcp(server, check.timeout)
    : await dialTls(server, tls, check.timeout);
  if ("failure" in dialled) {
    return dialled.local === undefined
      ? { ok: false, reason: dialled.detail }
      : { ok: false, reason: dialled.detail, local: dialled.local };
  }
  const conn: Deno.Conn = dialled.conn;
  try {
    if (check.kind !== "http" || check.http === null) return { ok: true };
    const { method, path, host, expect } = check.http;
    const request = `${method} ${path} HTTP/1.1\r\nhost: ${host ?? server.config.label}\r\n` +
      "user-agent: edgemux-health-check\r\naccept: */*\r\nconnection: close\r\n\r\n";
    await writeAll(conn, new TextEncoder().encode(request));
    let buf = new Uint8Array(2048);
    let length = 0;
    for (;;) {
      if (length === buf.length) {
        if (buf.length >= 65536) return { ok: false, reason: "response head too large" };
        const bigger = new Uint8Array(buf.length * 2);
        bigger.set(buf);
        buf = bigger;
      }
      const n = await readWithin(conn, buf.subarray(length), left());
      if (n === TIMED_OUT) return { ok: false, reason: "no response within the check timeout" };
      if (n === null) return { ok: false, reason: "connection closed before a response" };
      length += n;
      const parsed = parseResponseHead(buf.subarray(0, length), method);
      if (parsed.kind === "incomplete") continue;
      if (parsed.kind === "error") {
        return { ok: false, reason: `invalid response: ${parsed.reason}` };
      }
      const status = parsed.head.status;
      if (status >= expect[0] && status <= expect[1]) return { ok: true };
      return { ok: false, reason: `status ${status}, expected ${expect[0]}-${expect[1]}` };
    }
  } catch (e) {
    return { ok: false, reason: e instanceof Error ? e.message : String(e) };
  } finally {
    closeQuietly(conn);
  }
}
