/**
 * The running proxy: binds every listener of a config, accepts connections, hands each to
 * {@link handleConnection}, and stops gracefully.
 *
 * @module
 */

import type { Config, ListenerConfig } from "../config/types.ts";
import { formatHostPort, type HostPort } from "../config/address.ts";
import { RouteTable } from "../routing/route_table.ts";
import { handleConnection } from "./connection.ts";
import type { AccessObserver, AccessRecord, ListenerContext } from "./context.ts";
import { accessLog, log } from "./log.ts";
import { closeQuietly } from "./net.ts";
import { BackendState } from "./upstream.ts";

/** Raised when a listener cannot bind its address. */
export class BindError extends Error {
  constructor(
    readonly listener: string,
    readonly address: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "BindError";
  }
}

/** Options for {@link startProxy}. */
export interface StartOptions {
  /** Called with every access record, in addition to the access log. */
  onAccess?: AccessObserver;
}

/** A running proxy. */
export interface ProxyHandle {
  /** The bound addresses of each listener, by listener name (useful with port 0). */
  readonly addrs: ReadonlyMap<string, Deno.NetAddr[]>;
  /** Connections being handled right now. */
  readonly activeConnections: number;
  /**
   * Stops accepting, lets open connections finish for up to `timeout` ms (the config's
   * `shutdown_timeout` by default), then closes the rest.
   */
  shutdown(timeout?: number): Promise<void>;
}

interface BoundListener {
  config: ListenerConfig;
  sockets: Deno.TcpListener[];
}

/**
 * Binds every listener and starts serving.
 *
 * @throws {BindError} When an address cannot be bound; nothing is left bound then.
 */
export function startProxy(config: Config, opts: StartOptions = {}): ProxyHandle {
  const bound: BoundListener[] = [];
  try {
    for (const listener of config.listeners) {
      const sockets: Deno.TcpListener[] = [];
      bound.push({ config: listener, sockets });
      for (const bind of listener.binds) sockets.push(bindOne(listener.name, bind));
    }
  } catch (e) {
    for (const b of bound) for (const s of b.sockets) closeQuietly(s);
    throw e;
  }
  return new RunningProxy(config, bound, opts);
}

function bindOne(listener: string, bind: HostPort): Deno.TcpListener {
  const address = formatHostPort(bind);
  try {
    return Deno.listen({ hostname: bind.host, port: bind.port, transport: "tcp" });
  } catch (e) {
    let message: string;
    if (e instanceof Deno.errors.AddrInUse) {
      message =
        `cannot bind ${address} for listener "${listener}": the address is already in use ` +
        `(another process, or another edgemux, is listening there)`;
    } else if (e instanceof Deno.errors.PermissionDenied) {
      message = `cannot bind ${address} for listener "${listener}": permission denied. ` +
        `Ports below 1024 need root or the CAP_NET_BIND_SERVICE capability ` +
        `(systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE; or setcap cap_net_bind_service=+ep on the binary)`;
    } else if (e instanceof Deno.errors.AddrNotAvailable) {
      message =
        `cannot bind ${address} for listener "${listener}": that address is not on this host`;
    } else if (e instanceof Deno.errors.NotCapable) {
      message =
        `cannot bind ${address} for listener "${listener}": Deno's --allow-net permission does not include it`;
    } else {
      message = `cannot bind ${address} for listener "${listener}": ${
        e instanceof Error ? e.message : String(e)
      }`;
    }
    throw new BindError(listener, address, message, { cause: e });
  }
}

function logAccess(record: AccessRecord): void {
  accessLog.info("access", { ...record });
}

class RunningProxy implements ProxyHandle {
  readonly addrs: Map<string, Deno.NetAddr[]>;
  readonly #bound: BoundListener[];
  readonly #active = new Set<Deno.Conn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #acceptLoops: Promise<void>[] = [];
  readonly #softStop = new AbortController();
  readonly #hardStop = new AbortController();
  readonly #config: Config;
  #stopping: Promise<void> | null = null;

  constructor(config: Config, bound: BoundListener[], opts: StartOptions) {
    this.#config = config;
    this.#bound = bound;
    this.addrs = new Map(
      bound.map((b) => [b.config.name, b.sockets.map((s) => s.addr as Deno.NetAddr)]),
    );
    const backends = new Map(
      [...config.backends.values()].map((b) => [b.name, new BackendState(b)]),
    );
    const onAccess: AccessObserver = opts.onAccess
      ? (r) => {
        logAccess(r);
        opts.onAccess!(r);
      }
      : logAccess;
    const boundPort = (name: string) => this.addrs.get(name)?.[0]?.port ?? null;
    for (const b of bound) {
      const ctx: ListenerContext = {
        listener: b.config,
        table: new RouteTable(b.config),
        backends,
        http: config.http,
        boundPort,
        onAccess,
        softStop: this.#softStop.signal,
        hardStop: this.#hardStop.signal,
      };
      for (const socket of b.sockets) {
        log.info("listening", {
          listener: b.config.name,
          address: formatHostPort({
            host: (socket.addr as Deno.NetAddr).hostname,
            port: (socket.addr as Deno.NetAddr).port,
          }),
          routes: b.config.routes.length,
        });
        this.#acceptLoops.push(this.#acceptLoop(socket, ctx));
      }
    }
  }

  get activeConnections(): number {
    return this.#active.size;
  }

  async #acceptLoop(socket: Deno.TcpListener, ctx: ListenerContext): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await socket.accept();
      } catch (e) {
        if (this.#stopping !== null || e instanceof Deno.errors.BadResource) return;
        // Out of file descriptors and the like: say so, wait a moment, keep serving.
        log.error("accept failed", {
          listener: ctx.listener.name,
          error: e instanceof Error ? e.message : String(e),
        });
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      this.#active.add(conn);
      const task = handleConnection(conn, ctx).finally(() => {
        this.#active.delete(conn);
        this.#tasks.delete(task);
      });
      this.#tasks.add(task);
    }
  }

  shutdown(timeout = this.#config.shutdownTimeout): Promise<void> {
    this.#stopping ??= this.#shutdown(timeout);
    return this.#stopping;
  }

  async #shutdown(timeout: number): Promise<void> {
    for (const b of this.#bound) for (const s of b.sockets) closeQuietly(s);
    await Promise.all(this.#acceptLoops);
    this.#softStop.abort();
    if (this.#tasks.size > 0) {
      log.info("draining", { connections: this.#tasks.size, timeout_ms: timeout });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<void>((r) => {
        timer = setTimeout(r, timeout);
      });
      await Promise.race([Promise.all([...this.#tasks]), deadline]);
      clearTimeout(timer);
    }
    if (this.#tasks.size > 0) {
      log.warn("closing connections still open at the shutdown deadline", {
        connections: this.#tasks.size,
      });
      this.#hardStop.abort();
      for (const c of this.#active) closeQuietly(c);
      await Promise.all([...this.#tasks]);
    }
  }
}
