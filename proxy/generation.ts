/**
 * A generation: everything derived from one config that connections run under (route tables,
 * backend pools and health checks, the internal TLS listener, one context per listener), built
 * whole from a prepared config. proxy/runtime.ts makes one current by swapping one reference;
 * what lives across generations (deadlines, observers, the stop signals) comes in as
 * {@link Shared}.
 *
 * @module
 */

import { isTerminating, type ListenerConfig, type RouteConfig } from "../config/types.ts";
import { certNameCovers } from "../routing/hosts.ts";
import { CidrSet } from "../routing/cidr.ts";
import { HttpRouter } from "../routing/http_router.ts";
import { RouteTable } from "../routing/route_table.ts";
import type { CertifiedKey } from "./_deno_internals.ts";
import type { ListenerContext, TerminatedInfo } from "./context.ts";
import type { AccessObserver, RequestObserver } from "./observe/records.ts";
import { HealthChecker } from "./backends/health.ts";
import { BackendPool } from "./http/pool.ts";
import { log } from "./observe/log.ts";
import type { DeadlineSet } from "./deadlines.ts";
import type { PreparedConfig } from "./prepare.ts";
import { serveTerminated } from "./tls/terminate.ts";
import { HANDSHAKE_BACKSTOP, Terminator } from "./tls/terminator.ts";
import { Backend } from "./backends/backend.ts";
import type { AcmeChallenges } from "./tls/acme_challenges.ts";

/** Everything derived from one config; see the module doc. */
export interface Generation {
  readonly prepared: PreparedConfig;
  readonly contexts: ReadonlyMap<string, ListenerContext>;
  readonly backends: ReadonlyMap<string, Backend>;
  readonly pools: ReadonlyMap<string, BackendPool>;
  readonly checkers: readonly HealthChecker[];
  /** The internal TLS listener, null when no route terminates; see {@link TerminatorSlot}. */
  readonly terminator: TerminatorSlot;
}

/**
 * Where a generation keeps its internal TLS listener: the one part of a generation that changes
 * after it is built, because a listener that has cached too many server names replaces itself.
 * Connections read `current` when they start; everything else in a generation is fixed.
 */
export interface TerminatorSlot {
  current: Terminator<TerminatedInfo> | null;
}

/** What every generation shares with the running proxy, made once at start. */
export interface Shared {
  /** The timers of every connection. */
  deadlines: DeadlineSet;
  /** Where every connection's access record goes. */
  onAccess: AccessObserver;
  /** Where every HTTP request's record goes. */
  onRequest: RequestObserver;
  /** Aborted when the proxy starts to stop (idle connections close). */
  softStop: AbortSignal;
  /** Aborted when the stop's drain runs out (every connection closes). */
  hardStop: AbortSignal;
  /** The port a listener is bound to now (its first address's), null when it has none. */
  boundPort(listener: string): number | null;
}

/** How long a replaced internal TLS listener keeps accepting, for connects already under way. */
export const TERMINATOR_GRACE = 5_000;

/**
 * Builds the generation of `prepared`: its backends (each server's health carried over from
 * `previous`), pools, health checkers, internal TLS listener and listener contexts. Nothing in
 * it is started or bound here.
 */
export function buildGeneration(
  prepared: PreparedConfig,
  previous: Generation | null,
  shared: Shared,
  acme: AcmeChallenges | null,
): Generation {
  const config = prepared.config;
  const backends = new Map<string, Backend>();
  const pools = new Map<string, BackendPool>();
  for (const b of config.backends.values()) {
    // Server health carries over a reload for servers that stay.
    const state = new Backend(b, previous?.backends.get(b.name));
    backends.set(b.name, state);
    pools.set(
      b.name,
      new BackendPool(state, prepared.backendTls.get(b.name) ?? null, shared.deadlines),
    );
  }
  const checkers: HealthChecker[] = [];
  for (const b of config.backends.values()) {
    if (b.healthCheck === null) continue;
    checkers.push(
      new HealthChecker(
        backends.get(b.name)!,
        b.healthCheck,
        prepared.healthTls.get(b.name) ?? null,
      ),
    );
  }
  const slot: TerminatorSlot = { current: null };
  if (config.listeners.some((l) => l.routes.some((r) => isTerminating(r.action)))) {
    slot.current = newTerminator(prepared, slot);
  }
  const trustedProxies = new CidrSet(config.http.trustedProxies);
  const contexts = new Map<string, ListenerContext>();
  for (const l of config.listeners) {
    contexts.set(l.name, {
      listener: l,
      table: new RouteTable(l),
      backends,
      pools,
      http: config.http,
      boundPort: shared.boundPort,
      onAccess: shared.onAccess,
      onRequest: shared.onRequest,
      terminator: () => slot.current,
      routers: routersOf(l),
      trustedProxies,
      proxySources: l.proxyProtocol === null ? null : new CidrSet(l.proxyProtocol.acceptFrom),
      deadlines: shared.deadlines,
      softStop: shared.softStop,
      hardStop: shared.hardStop,
      acme,
    });
  }
  return { prepared, contexts, backends, pools, checkers, terminator: slot };
}

/**
 * The internal TLS listener of a generation, choosing each connection's certificate by SNI; when
 * it has cached too many names, it replaces itself in `slot` with a fresh one.
 */
function newTerminator(prepared: PreparedConfig, slot: TerminatorSlot): Terminator<TerminatedInfo> {
  const pem = (c: { certPem: string; keyPem: string } | null): CertifiedKey | null =>
    c === null ? null : { cert: c.certPem, key: c.keyPem };
  const dev = prepared.devCert;
  const choose = (sni: string | null) => {
    const real = prepared.certs?.select(sni) ?? null;
    if (real !== null) return pem(real);
    // The development certificate answers only names no real certificate covers.
    if (dev !== null && (sni === null || prepared.devNames.some((n) => certNameCovers(n, sni)))) {
      return pem(dev);
    }
    return null;
  };
  // Only a backstop: each connection's own handshake deadline is kept at the edge, on the
  // client's socket (terminate.ts), and must be the one that fires and is logged.
  const handshakeTimeout = Math.max(...prepared.config.listeners.map((l) => l.sniff.timeout)) +
    HANDSHAKE_BACKSTOP;
  return new Terminator<TerminatedInfo>(choose, handshakeTimeout, serveTerminated, () => {
    // Too many distinct names have been cached by the TLS listener: start a fresh one.
    log.warn("internal TLS listener saw too many distinct server names; replacing it", {});
    const old = slot.current;
    slot.current = newTerminator(prepared, slot);
    if (old) setTimeout(() => void old.close(), TERMINATOR_GRACE);
  });
}

/** Compiled HTTP routes for each terminating route of a listener. */
function routersOf(listener: ListenerConfig): Map<RouteConfig, HttpRouter> {
  const out = new Map<RouteConfig, HttpRouter>();
  for (const r of listener.routes) {
    if (isTerminating(r.action) && r.action.upstream.kind === "http") {
      out.set(r, new HttpRouter(r.action.upstream.routes));
    }
  }
  return out;
}
