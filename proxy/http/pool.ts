/**
 * Connections to HTTP backends. A {@link BackendPool} picks a server (backend.ts) and dials it
 * (plain TCP, or TLS for reencrypt), counting each connection against its server's
 * `max_connections` while it carries a request. Idle keep-alive connections are never shared
 * between client connections: each client connection keeps its own in an {@link UpstreamSet},
 * closed with it. A backend that misframes a response (a late second response, bytes after the
 * body, a body on a HEAD answer) can then only confuse the client whose request it answered,
 * never hand one client's response to another. docs/security.md says why and what it costs.
 *
 * @module
 */

import type { BackendConfig } from "../../config/types.ts";
import { connectTlsTo, type TlsDialOptions } from "../_deno_internals.ts";
import type { Backend, ServerState } from "../backends/backend.ts";
import { closeQuietly } from "../net.ts";
import {
  type ConnectFailure,
  type Dialled,
  dialTcp,
  localDialFailure,
  noServerFailure,
} from "../backends/upstream.ts";
import type { DeadlineSet } from "../deadlines.ts";
import { BufferedReader } from "./reader.ts";

/** An upstream connection with its read buffer. */
export interface UpstreamConn {
  conn: Deno.Conn;
  reader: BufferedReader;
  server: ServerState;
  /** The pool it was dialled by. */
  pool: BackendPool;
  /** Requests sent on it so far. */
  uses: number;
}

/** Why no connection could be had. */
export interface DialFailure {
  failure: ConnectFailure | "upstream-limit";
  detail: string;
  server: ServerState | null;
}

/**
 * An idle connection is closed after this long without a request: many servers drop idle
 * keep-alive connections after about 5 s, and a request sent on a connection the server is
 * closing fails.
 */
export const POOL_IDLE_TIMEOUT = 4_000;

/**
 * Upstream connections one client connection may have carrying requests at once. An HTTP/1.1
 * client needs one; an HTTP/2 client one per stream in flight, and without a bound a single
 * connection could open hundreds. Browsers keep far fewer requests in flight per origin.
 */
export const UPSTREAMS_PER_CONNECTION = 32;

/** Dials the servers of one backend. */
export class BackendPool {
  #closed = false;

  constructor(
    readonly backend: Backend,
    readonly tls: TlsDialOptions | null,
    readonly deadlines: DeadlineSet,
  ) {}

  get config(): BackendConfig {
    return this.backend.config;
  }

  /** Closed by a reload or a stop: connections it dialled are not kept idle any more. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * A connection for one request: `idle`'s connection to the picked server when it has one,
   * else a new one; after a connect failure another server, up to the backend's `retries`.
   *
   * @param idle Takes an idle connection to a server, or null (no reuse).
   * @param tried Servers to skip (already failed for this request); updated with each failure.
   */
  async acquire(
    idle: ((server: ServerState) => UpstreamConn | null) | null,
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
      const pooled = idle?.(server) ?? null;
      if (pooled !== null) {
        server.active++;
        return { up: pooled, reused: true };
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
            pool: this,
            uses: 0,
          },
          reused: false,
        };
      }
      server.active--;
      // A dial that edgemux itself gave up (out of descriptors, or stopping) says nothing of the server.
      if (dialled.local === undefined && !signal?.aborted) {
        this.backend.connectFailed(server, dialled.detail);
      }
      tried.add(server);
      last = { failure: dialled.failure, detail: dialled.detail, server };
    }
    return last ?? { failure: "upstream-unreachable", detail: "stopping", server: null };
  }

  /** Ends a connection's request: it stops counting against its server. */
  release(up: UpstreamConn): void {
    up.server.active--;
  }

  /** Stops keeping this pool's connections idle (reload, shutdown). */
  close(): void {
    this.#closed = true;
  }

  /** Dials one server: plain TCP, or TLS when the backend has `tls`. */
  #dial(server: ServerState, signal?: AbortSignal): Promise<Dialled<Deno.Conn>> {
    return this.tls === null
      ? dialTcp(server, this.config.connectTimeout, this.deadlines)
      : dialTls(server, this.tls, this.config.connectTimeout, signal);
  }
}

/**
 * The upstream connections of one client connection: at most `limit` carrying requests at once
 * (an HTTP/2 client's further streams wait for one, up to the backend's connect timeout), and
 * the idle ones kept for that client's next requests only.
 *
 * An idle connection is watched: bytes or an end of stream from the server while no request is
 * outstanding mean it misframed a response or is closing, and the connection is dropped
 * (nginx and Go's HTTP client do the same). A connection is kept only when its request was sent
 * in full and its response read in full with nothing after it.
 */
export class UpstreamSet {
  readonly #idle = new Map<ServerState, UpstreamConn[]>();
  #busy = 0;
  readonly #waiters: (() => void)[] = [];
  #closed = false;

  /** @param limit Connections that may carry requests at once. */
  constructor(readonly limit: number) {}

  /** Connections carrying a request now. */
  get busy(): number {
    return this.#busy;
  }

  /** Idle connections kept now. */
  get idle(): number {
    let n = 0;
    for (const list of this.#idle.values()) n += list.length;
    return n;
  }

  /**
   * A connection to a server of `pool`'s backend for one request (see
   * {@link BackendPool.acquire}); `reuse` allows one of this client's idle connections.
   */
  async acquire(
    pool: BackendPool,
    reuse: boolean,
    signal: AbortSignal | undefined,
    tried?: Set<ServerState>,
  ): Promise<{ up: UpstreamConn; reused: boolean } | DialFailure> {
    if (!await this.#slot(pool.config.connectTimeout, signal)) {
      return {
        failure: "upstream-limit",
        detail: `${this.limit} upstream connections of this client connection are busy`,
        server: null,
      };
    }
    const got = await pool.acquire(reuse ? (server) => this.#take(server) : null, signal, tried);
    if ("failure" in got) this.#free();
    return got;
  }

  /**
   * Gives a connection back after its request. `reusable` says the request was sent in full,
   * the response read in full and both sides keep the connection open; anything else, or bytes
   * already waiting after the response, closes it.
   */
  release(up: UpstreamConn, reusable: boolean): void {
    this.#free();
    up.pool.release(up);
    if (!reusable || up.reader.available > 0 || this.#closed || up.pool.closed) {
      closeQuietly(up.conn);
      return;
    }
    let list = this.#idle.get(up.server);
    if (!list) this.#idle.set(up.server, list = []);
    list.push(up);
    up.reader.watchIdle(POOL_IDLE_TIMEOUT, () => this.#drop(up));
  }

  /** Closes every idle connection; later releases close theirs (the client connection ended). */
  close(): void {
    this.#closed = true;
    for (const list of this.#idle.values()) for (const up of list) closeQuietly(up.conn);
    this.#idle.clear();
    // Waiters take themselves off the list when woken without a slot.
    for (const wake of [...this.#waiters]) wake();
  }

  #take(server: ServerState): UpstreamConn | null {
    const list = this.#idle.get(server);
    while (list !== undefined && list.length > 0) {
      const up = list.pop()!;
      if (up.reader.claim()) return up;
      closeQuietly(up.conn);
    }
    return null;
  }

  /** The idle connection woke up (the server spoke, closed or timed out): drop it. */
  #drop(up: UpstreamConn): void {
    closeQuietly(up.conn);
    const list = this.#idle.get(up.server);
    const at = list?.indexOf(up) ?? -1;
    if (at >= 0) list!.splice(at, 1);
  }

  async #slot(waitMs: number, signal: AbortSignal | undefined): Promise<boolean> {
    if (this.#busy < this.limit && this.#waiters.length === 0) {
      this.#busy++;
      return true;
    }
    if (this.#closed || signal?.aborted) return false;
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => wake = resolve);
    this.#waiters.push(wake);
    const timer = setTimeout(wake, waitMs);
    const onAbort = () => wake();
    signal?.addEventListener("abort", onAbort, { once: true });
    await woken;
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    const at = this.#waiters.indexOf(wake);
    if (at >= 0) {
      // Woken by the timer, a stop or close, not handed a slot.
      this.#waiters.splice(at, 1);
      return false;
    }
    return true;
  }

  /** A request's connection is done: the slot goes to the first waiter, if any. */
  #free(): void {
    const next = this.#waiters.shift();
    if (next !== undefined) next();
    else this.#busy--;
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
