/**
 * The running proxy: binds every listener of a prepared config (./bind.ts), accepts connections,
 * hands each to {@link handleConnection}, reloads by building a whole new generation
 * (./generation.ts) and swapping one reference, and stops gracefully. What it reports about
 * itself (gauges, the status report) is ./report.ts.
 *
 * A generation is everything derived from one config: route tables, backend pools, the
 * internal TLS listener, the listener contexts. An accepted connection takes the context of the
 * generation current at accept time and keeps it to the end, so a reload never changes the rules
 * under an open connection. The swap is one assignment, in `install()`.
 *
 * @module
 */

import type { Config } from "../config/types.ts";
import { formatHostPort, type HostPort } from "../config/address.ts";
import type { CidrSet } from "../routing/cidr.ts";
import { FileWatcher } from "./tls/certs/watch.ts";
import { handleConnection, refuseConnection } from "./connection.ts";
import type { ListenerContext } from "./context.ts";
import type {
  AccessObserver,
  AccessRecord,
  RequestObserver,
  RequestRecord,
} from "./observe/records.ts";
import { ConnectionLimiter } from "./limits.ts";
import { accessLog, log } from "./observe/log.ts";
import { localCause, noteLocalError } from "./backends/local_errors.ts";
import { ProxyMetrics } from "./observe/proxy_metrics.ts";
import { DeadlineSet } from "./deadlines.ts";
import type { StatusReport } from "./observe/status.ts";
import { closeQuietly, type PeerAddress, peerAddress } from "./net.ts";
import { readProxyHeader } from "./sniff/proxy_protocol.ts";
import { prepareConfig, type PreparedConfig } from "./prepare.ts";
import { AcmeChallenges } from "./tls/acme_challenges.ts";
import { AcmeState } from "./tls/certs/acme_state.ts";
import type { AcmeManager } from "./tls/certs/acme.ts";
import { bindOne } from "./bind.ts";
import { buildGeneration, type Generation, type Shared, TERMINATOR_GRACE } from "./generation.ts";
import { collectGauges, type RuntimeView, statusReport } from "./report.ts";

/** Options for {@link startProxy}. */
export interface StartOptions {
  /** Called with every connection's access record, in addition to the access log. */
  onAccess?: AccessObserver;
  /** Called with every HTTP request's record, in addition to the access log. */
  onRequest?: RequestObserver;
  /** Bind with SO_REUSEPORT, so several processes share the listeners (`workers`). */
  reusePort?: boolean;
}

/** A running proxy. */
export interface ProxyHandle {
  /** The bound addresses of each listener, by listener name (useful with port 0). */
  readonly addrs: ReadonlyMap<string, Deno.NetAddr[]>;
  /** Connections being handled right now. */
  readonly activeConnections: number;
  /** The config in force. */
  readonly config: Config;
  /**
   * The process's metrics (counters survive reloads), read by edgemux's own admin listener.
   * Hidden from the library docs: its shape follows the admin listener's needs and may change.
   *
   * @ignore
   */
  readonly metrics: ProxyMetrics;
  /**
   * Replaces the config: listeners are added, removed or re-pointed, and new connections use
   * the new rules while open ones finish on the old. On any error the old config stays. Given
   * a function, it is called to load the next config, and its time and failure count as the
   * reload's.
   *
   * @throws {ConfigError} or {@link BindError}; nothing has changed then.
   */
  reload(next: PreparedConfig | (() => Promise<PreparedConfig>)): Promise<void>;
  /** What the status page shows: listeners, routes, backends and their servers, problems. */
  status(): StatusReport;
  /**
   * Stops accepting, lets open connections finish for up to `timeout` ms (the config's
   * `shutdown_timeout` by default), then closes the rest.
   */
  shutdown(timeout?: number): Promise<void>;
}

interface Socket {
  key: string;
  listener: string;
  bind: HostPort;
  socket: Deno.TcpListener;
  loop: Promise<void>;
}

/**
 * Binds every listener and starts serving.
 *
 * @throws {BindError} When an address cannot be bound; nothing is left bound then.
 */
export async function startProxy(
  prepared: PreparedConfig,
  opts: StartOptions = {},
): Promise<ProxyHandle> {
  const proxy = new RunningProxy(opts);
  await proxy.install(prepared);
  return proxy;
}

function logAccess(record: AccessRecord): void {
  accessLog.info("connection", { ...record });
}

function logRequest(record: RequestRecord): void {
  accessLog.info("request", { ...record });
}

/** The pause after a failed accept (out of descriptors): short, so service resumes quickly. */
const ACCEPT_BACKOFF = 100;

class RunningProxy implements ProxyHandle {
  readonly #sockets = new Map<string, Socket>();
  readonly #active = new Set<Deno.Conn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #softStop = new AbortController();
  readonly #deadlines = new DeadlineSet();
  readonly #hardStop = new AbortController();
  readonly #onAccess: AccessObserver;
  readonly #onRequest: RequestObserver;
  readonly #retired: Generation[] = [];
  /** What every generation shares with this proxy. */
  readonly #shared: Shared;
  /** This proxy as its report (gauges, status page) reads it. */
  readonly #view: RuntimeView;
  #gen: Generation | null = null;
  #limiter: ConnectionLimiter | null = null;
  #watcher: FileWatcher | null = null;
  #stopping: Promise<void> | null = null;
  /** ACME (`certificates.acme`): the challenges answered here, and the ordering schedule. */
  #challenges: AcmeChallenges | null = null;
  #acme: AcmeManager | null = null;

  readonly metrics: ProxyMetrics = new ProxyMetrics();
  readonly #reusePort: boolean;

  constructor(opts: StartOptions) {
    this.#reusePort = opts.reusePort ?? false;
    const access = opts.onAccess;
    this.#onAccess = (r) => {
      logAccess(r);
      this.metrics.connection(r);
      access?.(r);
    };
    const request = opts.onRequest;
    this.#onRequest = (r) => {
      logRequest(r);
      this.metrics.request(r);
      request?.(r);
    };
    this.#shared = {
      deadlines: this.#deadlines,
      onAccess: this.#onAccess,
      onRequest: this.#onRequest,
      softStop: this.#softStop.signal,
      hardStop: this.#hardStop.signal,
      boundPort: (name) => this.addrs.get(name)?.[0]?.port ?? null,
    };
    this.#view = {
      metrics: this.metrics,
      generation: () => this.#gen,
      acme: () => this.#acme,
      inListener: (name) => this.#limiter?.inListener(name) ?? 0,
      addrs: () => this.addrs,
      activeConnections: () => this.#active.size,
    };
    collectGauges(this.#view);
  }

  /** What the status page shows. */
  status(): StatusReport {
    return statusReport(this.#view);
  }

  get config(): Config {
    return this.#gen!.prepared.config;
  }

  get activeConnections(): number {
    return this.#active.size;
  }

  get addrs(): Map<string, Deno.NetAddr[]> {
    const out = new Map<string, Deno.NetAddr[]>();
    for (const l of this.config.listeners) out.set(l.name, []);
    for (const s of this.#sockets.values()) {
      out.get(s.listener)?.push(s.socket.addr as Deno.NetAddr);
    }
    return out;
  }

  /** Binds what `prepared` needs and makes it the current generation (first start or reload). */
  async install(prepared: PreparedConfig): Promise<void> {
    const config = prepared.config;
    // Bind every new address first; if one fails, undo and keep the old state.
    const fresh: Socket[] = [];
    const keep = new Map<string, { listener: string; bind: HostPort }>();
    try {
      for (const l of config.listeners) {
        for (const bind of l.binds) {
          const key = formatHostPort(bind);
          const existing = bind.port !== 0 ? this.#sockets.get(key) : undefined;
          if (existing) {
            keep.set(key, { listener: l.name, bind });
            continue;
          }
          const socket = bindOne(l.name, bind, this.#reusePort);
          const actualKey = formatHostPort({
            host: bind.host,
            port: (socket.addr as Deno.NetAddr).port,
          });
          fresh.push({ key: actualKey, listener: l.name, bind, socket, loop: Promise.resolve() });
        }
      }
    } catch (e) {
      for (const s of fresh) closeQuietly(s.socket);
      throw e;
    }
    const acmeConfig = config.certificates?.acme ?? null;
    if (acmeConfig === null) this.#challenges = null;
    else if (this.#challenges?.state.dir !== acmeConfig.stateDirectory) {
      this.#challenges = new AcmeChallenges(new AcmeState(acmeConfig.stateDirectory));
    }
    const gen = buildGeneration(prepared, this.#gen, this.#shared, this.#challenges);
    // A listener closed while an accept is pending keeps listening until that accept settles;
    // waiting for its loop means a removed address refuses connections once reload() returns.
    const closing: Promise<void>[] = [];
    const old = this.#gen;
    // The swap: the one place the current generation changes. An accept after this line takes
    // the new generation's context; a connection already accepted keeps the old one's.
    this.#gen = gen;
    this.metrics.configure(config);
    if (this.#limiter === null) this.#limiter = new ConnectionLimiter(config.limits);
    else this.#limiter.update(config.limits);
    for (const c of gen.checkers) c.start();
    // Sockets that stay are re-pointed by name; the accept loop looks up the context per accept.
    for (const [key, s] of this.#sockets) {
      const still = keep.get(key);
      if (still) {
        s.listener = still.listener;
        continue;
      }
      closeQuietly(s.socket);
      this.#sockets.delete(key);
      closing.push(s.loop);
      log.info("listener closed", { listener: s.listener, address: key });
    }
    for (const s of fresh) {
      this.#sockets.set(s.key, s);
      s.loop = this.#acceptLoop(s);
      log.info("listening", { listener: s.listener, address: s.key });
    }
    if (old !== null) this.#retire(old);
    this.#watchCertificates(prepared);
    await this.#scheduleAcme(prepared);
    await Promise.all(closing);
    for (const name of prepared.devNames) {
      log.warn("serving a self-signed development certificate (browsers will warn)", {
        name,
        file: prepared.devCert?.origin.cert ?? null,
      });
    }
  }

  async reload(next: PreparedConfig | (() => Promise<PreparedConfig>)): Promise<void> {
    if (this.#stopping !== null) throw new Error("edgemux is stopping");
    const started = Date.now();
    try {
      await this.install(typeof next === "function" ? await next() : next);
      this.metrics.reload(null, Date.now() - started);
    } catch (e) {
      this.metrics.reload(e instanceof Error ? e.message : String(e), Date.now() - started);
      throw e;
    }
  }

  #retire(old: Generation): void {
    this.#retired.push(old);
    for (const c of old.checkers) void c.stop();
    setTimeout(() => {
      void old.terminator.current?.close();
      for (const p of old.pools.values()) p.close();
      this.#retired.splice(this.#retired.indexOf(old), 1);
    }, TERMINATOR_GRACE);
  }

  #watchCertificates(prepared: PreparedConfig): void {
    void this.#watcher?.stop();
    this.#watcher = null;
    const certs = prepared.config.certificates;
    if (certs === null || certs.watchInterval === 0) return;
    // The loader lists every directory, certbot folder and candidate file it looked at, so a
    // renewal that swaps symlinks inside live/NAME/ is seen too.
    const paths = prepared.watched;
    this.#watcher = new FileWatcher(() => paths, certs.watchInterval, () => {
      void this.#reloadCertificates();
    });
    this.#watcher.start();
  }

  /** Starts, updates or stops the ACME schedule for the names `prepared` orders for. */
  async #scheduleAcme(prepared: PreparedConfig): Promise<void> {
    const cfg = prepared.config.certificates?.acme ?? null;
    if (cfg === null || this.#challenges === null) {
      const old = this.#acme;
      this.#acme = null;
      await old?.stop();
      return;
    }
    if (this.#acme === null || this.#acme.state !== this.#challenges.state) {
      await this.#acme?.stop();
      // Loaded only when ACME is configured: the client library is large.
      const { AcmeManager } = await import("./tls/certs/acme.ts");
      this.#acme = new AcmeManager(cfg, this.#challenges, {
        onCertificate: () => void this.#reloadCertificates(),
        serving: (fingerprint) =>
          this.#gen?.prepared.certs?.certs.some((c) => c.fingerprint === fingerprint) ?? false,
      });
    }
    this.#acme.update(cfg, prepared.acmeNames);
  }

  async #reloadCertificates(): Promise<void> {
    const current = this.#gen!.prepared;
    try {
      const next = await prepareConfig(current.config, { warnings: [] });
      if (this.#stopping !== null) return;
      await this.install(next);
      log.info("certificates reloaded", {
        certificates: next.certs?.certs.length ?? 0,
      });
    } catch (e) {
      log.error("certificates changed on disk but cannot be used; keeping the current ones", {
        error: e instanceof Error ? e.message : String(e),
      });
    }
  }

  async #acceptLoop(s: Socket): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await s.socket.accept();
      } catch (e) {
        if (this.#stopping !== null || e instanceof Deno.errors.BadResource) return;
        // Out of file descriptors and the like: the pending connection stays in the kernel's
        // backlog, so accepting again at once would fail again at once. Say so (once per
        // interval, local_errors.ts), wait a moment, keep serving.
        const cause = localCause(e);
        if (cause !== null) noteLocalError(cause, "accept", { listener: s.listener });
        else {
          log.error("accept failed", {
            listener: s.listener,
            error: e instanceof Error ? e.message : String(e),
          });
        }
        await new Promise((r) => setTimeout(r, ACCEPT_BACKOFF));
        continue;
      }
      const ctx = this.#gen!.contexts.get(s.listener);
      if (ctx === undefined) {
        closeQuietly(conn);
        continue;
      }
      const client = peerAddress(conn.remoteAddr);
      if (ctx.proxySources !== null) {
        this.#acceptProxied(conn, ctx, ctx.proxySources, client);
        continue;
      }
      const admitted = this.#limiter!.admit(s.listener, ctx.listener.maxConnections, client.ip);
      if (typeof admitted === "string") {
        // Over a cap: close at once, never queue. The access line says which cap.
        refuseConnection(conn, ctx, client, admitted);
        continue;
      }
      this.#active.add(conn);
      const task = handleConnection(conn, ctx, client).finally(() => {
        admitted();
        this.#active.delete(conn);
        this.#tasks.delete(task);
      });
      this.#tasks.add(task);
    }
  }

  /**
   * A connection to a listener with `proxy_protocol`: only the configured sources may connect,
   * and each must send a PROXY header first, within the timeout; anything else is refused, never
   * served as if the proxy were the client. The header's client is then the client everywhere,
   * so the per-client caps are applied once it is known (the shared caps at once).
   */
  #acceptProxied(
    conn: Deno.TcpConn,
    ctx: ListenerContext,
    sources: CidrSet,
    peer: PeerAddress,
  ): void {
    const listener = ctx.listener;
    if (!sources.contains(peer.ip)) {
      refuseConnection(
        conn,
        ctx,
        peer,
        "proxy-untrusted",
        `${peer.ip} is not in proxy_protocol.accept_from`,
      );
      return;
    }
    const shared = this.#limiter!.admitShared(listener.name, listener.maxConnections);
    if (typeof shared === "string") {
      refuseConnection(conn, ctx, peer, shared);
      return;
    }
    this.#active.add(conn);
    const task = (async () => {
      const got = await readProxyHeader(conn, listener.proxyProtocol!.timeout, this.#deadlines);
      if (got.kind === "refused") {
        refuseConnection(conn, ctx, peer, got.end, got.detail, got.bytes);
        if (got.end.startsWith("proxy-")) {
          // A trusted proxy that sends no header, or a broken one, is misconfigured: say so.
          log.warn("PROXY header refused", {
            listener: listener.name,
            peer: formatHostPort({ host: peer.ip, port: peer.port }),
            end: got.end,
            detail: got.detail,
          });
        }
        return;
      }
      const origin = got.origin;
      const client = origin.kind === "proxied" ? origin.source : peer;
      const leave = this.#limiter!.admitClient(client.ip);
      if (typeof leave === "string") {
        refuseConnection(conn, ctx, client, leave);
        return;
      }
      try {
        await handleConnection(
          conn,
          ctx,
          client,
          origin.kind === "proxied" ? origin.destination : undefined,
        );
      } finally {
        leave();
      }
    })().finally(() => {
      shared();
      this.#active.delete(conn);
      this.#tasks.delete(task);
    });
    this.#tasks.add(task);
  }

  shutdown(timeout = this.config.shutdownTimeout): Promise<void> {
    if (this.#stopping !== null) {
      // Asked again, with a shorter deadline ("stop now" on a second signal): cut the drain,
      // or, when the drain has not begun yet, shorten it before it does.
      if (timeout < this.#drainLeft()) {
        this.#drainEnds = Date.now() + timeout;
        this.#endDrain?.();
      }
      return this.#stopping;
    }
    this.#drainEnds = Date.now() + timeout;
    this.#stopping = this.#shutdown(timeout);
    return this.#stopping;
  }

  #drainEnds = 0;
  #endDrain: (() => void) | null = null;

  #drainLeft(): number {
    return this.#drainEnds - Date.now();
  }

  async #shutdown(timeout: number): Promise<void> {
    await this.#watcher?.stop();
    await this.#acme?.stop();
    for (const c of this.#gen!.checkers) await c.stop();
    for (const s of this.#sockets.values()) closeQuietly(s.socket);
    await Promise.all([...this.#sockets.values()].map((s) => s.loop));
    this.#softStop.abort();
    this.#deadlines.stopIdle();
    // A second request to stop may have shortened the drain while the steps above ran.
    const left = Math.min(timeout, Math.max(0, this.#drainLeft()));
    if (this.#tasks.size > 0 && left > 0) {
      log.info("draining", { connections: this.#tasks.size, timeout_ms: left });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<void>((r) => {
        timer = setTimeout(r, left);
        this.#endDrain = r;
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
    for (const g of [this.#gen!, ...this.#retired]) {
      await g.terminator.current?.close();
      g.terminator.current?.closeConnections();
      for (const p of g.pools.values()) p.close();
    }
  }
}
