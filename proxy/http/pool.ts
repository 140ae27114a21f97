/**
 * Keep-alive connections to HTTP backends: dial (plain TCP or TLS for reencrypt), hand out,
 * take back, and forget connections that sat idle too long. A connection is only ever used by
 * one request at a time.
 *
 * @module
 */

import type { BackendConfig, ServerConfig } from "../../config/types.ts";
import { connectTlsTo, type TlsDialOptions } from "../_deno_internals.ts";
import { closeQuietly, noDelay } from "../net.ts";
import type { BackendState } from "../upstream.ts";
import { BufferedReader } from "./reader.ts";

/** An upstream connection with its read buffer. */
export interface UpstreamConn {
  conn: Deno.Conn;
  reader: BufferedReader;
  server: ServerConfig;
  /** When it was last given back to the pool (performance.now()). */
  idleSince: number;
  /** Requests sent on it so far. */
  uses: number;
}

/** Why no connection could be had. */
export interface DialFailure {
  failure: "upstream-refused" | "upstream-timeout" | "upstream-unreachable" | "upstream-tls";
  detail: string;
  server: ServerConfig | null;
}

/** TLS material for a backend, read once when the config is prepared. */
export type { TlsDialOptions as BackendTlsMaterial } from "../_deno_internals.ts";

/**
 * Idle connections older than this are closed instead of reused: many servers drop idle
 * keep-alive connections after about 5 s, and a request sent on a connection the server is
 * closing fails.
 */
export const POOL_IDLE_TIMEOUT = 4_000;
const MAX_IDLE_PER_SERVER = 64;

/** The connection pool of one backend. */
export class BackendPool {
  readonly #idle = new Map<ServerConfig, UpstreamConn[]>();
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  constructor(
    readonly backend: BackendState,
    readonly tls: TlsDialOptions | null,
  ) {}

  get config(): BackendConfig {
    return this.backend.config;
  }

  /**
   * A connection to one of the backend's servers: an idle pooled one when `reuse` allows, else
   * a new one, trying each server in turn.
   */
  async acquire(
    reuse: boolean,
    signal?: AbortSignal,
  ): Promise<{ up: UpstreamConn; reused: boolean; attempts: number } | DialFailure> {
    const order = this.backend.order();
    if (reuse) {
      const now = performance.now();
      for (const server of order) {
        const list = this.#idle.get(server);
        while (list && list.length > 0) {
          const up = list.pop()!;
          if (now - up.idleSince < POOL_IDLE_TIMEOUT) return { up, reused: true, attempts: 0 };
          closeQuietly(up.conn);
        }
      }
    }
    let last: DialFailure = { failure: "upstream-unreachable", detail: "no server", server: null };
    let attempts = 0;
    for (const server of order) {
      if (signal?.aborted) break;
      attempts++;
      const result = await this.#dial(server, signal);
      if ("failure" in result) {
        last = result;
        continue;
      }
      return { up: result, reused: false, attempts };
    }
    return last;
  }

  /** Takes a connection back; `reusable` false (or a full pool) closes it. */
  release(up: UpstreamConn, reusable: boolean): void {
    if (!reusable || up.reader.available > 0 || this.#closed) {
      closeQuietly(up.conn);
      return;
    }
    let list = this.#idle.get(up.server);
    if (!list) this.#idle.set(up.server, list = []);
    if (list.length >= MAX_IDLE_PER_SERVER) {
      closeQuietly(up.conn);
      return;
    }
    up.idleSince = performance.now();
    list.push(up);
    this.#sweeper ??= setInterval(() => this.#sweep(), POOL_IDLE_TIMEOUT);
  }

  /** Closes every idle connection (reload, shutdown). */
  close(): void {
    this.#closed = true;
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    for (const list of this.#idle.values()) for (const up of list) closeQuietly(up.conn);
    this.#idle.clear();
  }

  #sweep(): void {
    const now = performance.now();
    let left = 0;
    for (const [server, list] of this.#idle) {
      const keep = list.filter((up) => {
        if (now - up.idleSince < POOL_IDLE_TIMEOUT) return true;
        closeQuietly(up.conn);
        return false;
      });
      this.#idle.set(server, keep);
      left += keep.length;
    }
    if (left === 0) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  #dial(server: ServerConfig, signal?: AbortSignal): Promise<UpstreamConn | DialFailure> {
    return this.tls === null
      ? this.#dialTcp(server, signal)
      : this.#dialTls(server, this.tls, signal);
  }

  async #dialTcp(server: ServerConfig, signal?: AbortSignal): Promise<UpstreamConn | DialFailure> {
    const timeout = AbortSignal.timeout(this.config.connectTimeout);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    try {
      const tcp = await Deno.connect({
        hostname: server.address.host,
        port: server.address.port,
        signal: combined,
      });
      noDelay(tcp);
      return { conn: tcp, reader: new BufferedReader(tcp), server, idleSince: 0, uses: 0 };
    } catch (e) {
      if (timeout.aborted) {
        return { failure: "upstream-timeout", detail: "connect timed out", server };
      }
      if (e instanceof Deno.errors.ConnectionRefused) {
        return { failure: "upstream-refused", detail: "connection refused", server };
      }
      return { failure: "upstream-unreachable", detail: errorText(e), server };
    }
  }

  /**
   * TLS to a server. `connectTls` is the one Deno call that sends a client certificate
   * (`startTls` ignores one) and, with the server-name symbol, checks a name other than the
   * address dialled; it takes no abort signal, so the timeout races it and a late connection
   * is closed when it arrives.
   */
  async #dialTls(
    server: ServerConfig,
    tls: TlsDialOptions,
    signal?: AbortSignal,
  ): Promise<UpstreamConn | DialFailure> {
    const connecting = connectTlsTo(server, tls).then(async (conn) => {
      await conn.handshake();
      return conn;
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), this.config.connectTimeout);
      signal?.addEventListener("abort", () => resolve("timeout"), { once: true });
    });
    try {
      const result = await Promise.race([connecting, expired]);
      if (result === "timeout") {
        connecting.then(closeQuietly, () => {});
        return {
          failure: "upstream-timeout",
          detail: "connect or TLS handshake timed out",
          server,
        };
      }
      return { conn: result, reader: new BufferedReader(result), server, idleSince: 0, uses: 0 };
    } catch (e) {
      if (e instanceof Deno.errors.ConnectionRefused) {
        return { failure: "upstream-refused", detail: "connection refused", server };
      }
      return {
        failure: "upstream-tls",
        detail: `TLS to the server failed: ${errorText(e)}`,
        server,
      };
    } finally {
      clearTimeout(timer);
    }
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
