/**
 * Keep-alive connections to HTTP backends: pick a server (backend.ts), hand out an idle pooled
 * connection to it or dial a new one (plain TCP, or TLS for reencrypt), take it back, and close
 * connections that sat idle too long. A connection carries one request at a time, and counts
 * against its server's `max_connections` while it does.
 *
 * @module
 */

import type { BackendConfig } from "../../config/types.ts";
import { connectTlsTo, type TlsDialOptions } from "../_deno_internals.ts";
import type { Backend, ServerState } from "../backend.ts";
import { closeQuietly } from "../net.ts";
import {
  type ConnectFailure,
  type Dialled,
  dialTcp,
  localDialFailure,
  noServerFailure,
} from "../upstream.ts";
import type { DeadlineSet } from "../deadlines.ts";
import { BufferedReader } from "./reader.ts";

/** An upstream connection with its read buffer. */
export interface UpstreamConn {
  conn: Deno.Conn;
  reader: BufferedReader;
  server: ServerState;
  /** When it was last given back to the pool (Date.now()). */
  idleSince: number;
  /** Requests sent on it so far. */
  uses: number;
}

/** Why no connection could be had. */
export interface DialFailure {
  failure: ConnectFailure;
  detail: string;
  server: ServerState | null;
}

/**
 * Idle connections older than this are closed instead of reused: many servers drop idle
 * keep-alive connections after about 5 s, and a request sent on a connection the server is
 * closing fails.
 */
const POOL_IDLE_TIMEOUT = 4_000;
/**
 * Idle connections kept per server. High enough for an HTTP/2 client with hundreds of streams
 * in flight (each takes its own upstream connection): a lower cap would close and re-dial on
 * every request. The idle timeout bounds how long they stay.
 */
const MAX_IDLE_PER_SERVER = 1024;

/** The connection pool of one backend. */
export class BackendPool {
  readonly #idle = new Map<ServerState, UpstreamConn[]>();
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  constructor(
    readonly backend: Backend,
    readonly tls: TlsDialOptions | null,
    readonly deadlines: DeadlineSet,
  ) {}

  get config(): BackendConfig {
    return this.backend.config;
  }

  /**
   * A connection for one request: an idle pooled one to the picked server when `reuse` allows,
   * else a new one; after a connect failure another server, up to the backend's `retries`.
   *
   * @param tried Servers to skip (already failed for this request); updated with each failure.
   */
  async acquire(
    reuse: boolean,
    signal: AbortSignal | undefined,
    tried: Set<ServerState> = new Set(),
  ): Promise<{ up: UpstreamConn; reused: boolean } | DialFailure> {
    let last: DialFailure | null = null;
    for (let attempt = 0; attempt <= this.config.retries; attempt++) {
      if (signal?.aborted) break;
      const server = this.backend.pick(tried);
      if (typeof server === "string") {
        return last ?? {
          failure: noServerFailure(server),
          detail: server === "all-down"
            ? "every server is down"
            : "every server is at max_connections",
          server: null,
        };
      }
      if (reuse) {
        const pooled = this.#takeIdle(server);
        if (pooled !== null) {
          server.active++;
          return { up: pooled, reused: true };
        }
      }
      server.active++;
      const dialled = await this.#dial(server, signal);
      if ("conn" in dialled) {
        this.backend.connectSucceeded(server);
        return {
          up: {
            conn: dialled.conn,
            reader: new BufferedReader(dialled.conn, this.deadlines),
            server,
            idleSince: 0,
            uses: 0,
          },
          reused: false,
        };
      }
      server.active--;
      if (dialled.local === undefined) this.backend.connectFailed(server, dialled.detail);
      tried.add(server);
      last = { failure: dialled.failure, detail: dialled.detail, server };
    }
    return last ?? { failure: "upstream-unreachable", detail: "stopping", server: null };
  }

  /** Takes a connection back; `reusable` false (or a full pool) closes it. */
  release(up: UpstreamConn, reusable: boolean): void {
    up.server.active--;
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
    up.idleSince = Date.now();
    list.push(up);
    this.#sweeper ??= setInterval(() => this.#sweep(), POOL_IDLE_TIMEOUT);
  }

  /** Closes every idle connection and stops pooling (reload, shutdown). */
  close(): void {
    this.#closed = true;
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    for (const list of this.#idle.values()) for (const up of list) closeQuietly(up.conn);
    this.#idle.clear();
  }

  #takeIdle(server: ServerState): UpstreamConn | null {
    const list = this.#idle.get(server);
    const now = Date.now();
    while (list && list.length > 0) {
      const up = list.pop()!;
      if (now - up.idleSince < POOL_IDLE_TIMEOUT) return up;
      closeQuietly(up.conn);
    }
    return null;
  }

  #sweep(): void {
    const now = Date.now();
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

  /** Dials one server: plain TCP, or TLS when the backend has `tls`. */
  #dial(server: ServerState, signal?: AbortSignal): Promise<Dialled<Deno.Conn>> {
    return this.tls === null
      ? dialTcp(server, this.config.connectTimeout, this.deadlines)
      : dialTls(server, this.tls, this.config.connectTimeout, signal);
  }
}

/**
 * TLS to a server. `connectTls` is the one Deno call that sends a client certificate
 * (`startTls` ignores one) and, with the server-name symbol, checks a name other than the
 * address dialled; it takes no abort signal, so the timeout races it and a late connection is
 * closed when it arrives.
 */
export async function dialTls(
  server: ServerState,
  tls: TlsDialOptions,
  connectTimeout: number,
  signal?: AbortSignal,
): Promise<Dialled<Deno.TlsConn>> {
  const connecting = connectTlsTo(server.config, tls).then(async (conn) => {
    try {
      await conn.handshake();
      return conn;
    } catch (e) {
      closeQuietly(conn);
      throw e;
    }
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const expired = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), connectTimeout);
    onAbort = () => resolve("timeout");
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  try {
    const result = await Promise.race([connecting, expired]);
    if (result === "timeout") {
      connecting.then(closeQuietly, () => {});
      return { failure: "upstream-timeout", detail: "connect or TLS handshake timed out" };
    }
    return { conn: result };
  } catch (e) {
    const local = localDialFailure(e, server);
    if (local !== null) return local;
    if (e instanceof Deno.errors.ConnectionRefused) {
      return { failure: "upstream-refused", detail: "connection refused" };
    }
    return {
      failure: "upstream-tls",
      detail: `TLS to the server failed: ${e instanceof Error ? e.message : String(e)}`,
    };
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}
