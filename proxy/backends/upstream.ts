/**
 * Connecting a TCP-level route (forward, passthrough) to a backend: pick a server, dial it
 * under the backend's connect timeout, and after a connect failure move on to another server, up
 * to the backend's `retries`. The dial itself is shared with the HTTP pools and health checks.
 *
 * @module
 */

import type { Backend, NoServer, ServerState } from "./backend.ts";
import { Deadline, type DeadlineSet } from "../deadlines.ts";
import { type LocalCause, localCause, noteLocalError } from "./local_errors.ts";
import { noDelay } from "../net.ts";
import { log } from "../observe/log.ts";
import type { OpenAccessRecord } from "../observe/records.ts";

/** Why no server took the connection, as logged. */
export type ConnectFailure =
  | "upstream-refused"
  | "upstream-timeout"
  | "upstream-unreachable"
  | "upstream-tls"
  | "local-resource"
  | "no-server-up"
  | "server-full";

/**
 * A dialled connection, not yet counted against its server. A failure with `local` set was this
 * machine's (out of descriptors, ports, buffers: local_errors.ts) and says nothing about the
 * server, so it must never count against it.
 */
export type Dialled<C> =
  | { conn: C }
  | { failure: ConnectFailure; detail: string; local?: LocalCause };

/** The outcome of {@link connectUpstream}. */
export type ConnectResult =
  | { ok: true; conn: Deno.TcpConn; server: ServerState; release: () => void }
  | { ok: false; failure: ConnectFailure; server: ServerState | null; detail: string };

/** The log word for "no server could be picked". */
export function noServerFailure(why: NoServer): ConnectFailure {
  return why === "all-down" ? "no-server-up" : "server-full";
}

/**
 * Dials one server over plain TCP under the backend's connect timeout, kept in `deadlines`
 * (or, without them, in a timer of its own).
 */
export async function dialTcp(
  server: ServerState,
  connectTimeout: number,
  deadlines?: DeadlineSet,
): Promise<Dialled<Deno.TcpConn>> {
  const ac = new AbortController();
  const deadline = new Deadline(() => ac.abort());
  let timer: ReturnType<typeof setTimeout> | undefined;
  if (deadlines) deadlines.arm(deadline, connectTimeout);
  else {
    timer = setTimeout(() => {
      deadline.expired = true;
      ac.abort();
    }, connectTimeout);
  }
  try {
    const conn = await Deno.connect({
      hostname: server.config.address.host,
      port: server.config.address.port,
      signal: ac.signal,
    });
    noDelay(conn);
    return { conn };
  } catch (e) {
    if (deadline.expired) return { failure: "upstream-timeout", detail: "connect timed out" };
    const local = localDialFailure(e, server);
    if (local !== null) return local;
    if (e instanceof Deno.errors.ConnectionRefused) {
      return { failure: "upstream-refused", detail: "connection refused" };
    }
    return { failure: "upstream-unreachable", detail: e instanceof Error ? e.message : String(e) };
  } finally {
    if (deadlines) deadlines.disarm(deadline);
    clearTimeout(timer);
  }
}

/**
 * The failure to report when a dial failed for a local reason (see local_errors.ts), counted
 * and logged as such; null when the error may be the server's.
 */
export function localDialFailure(
  e: unknown,
  server: ServerState,
): { failure: "local-resource"; detail: string; local: LocalCause } | null {
  const local = localCause(e);
  if (local === null) return null;
  noteLocalError(local, "connect", { server: server.config.label });
  return {
    failure: "local-resource",
    detail: `cannot open a connection here (${local}); the server was not reached`,
    local,
  };
}

/**
 * Connects a TCP-level route to a server of `backend` over plain TCP: picks and dials servers
 * until one accepts, trying at most `retries + 1` servers. The returned `release` must be called
 * when the connection ends (it frees the server's slot).
 */
export async function connectUpstream(
  backend: Backend,
  deadlines: DeadlineSet,
  signal?: AbortSignal,
): Promise<ConnectResult> {
  const tried = new Set<ServerState>();
  let last: { failure: ConnectFailure; server: ServerState | null; detail: string } | null = null;
  for (let attempt = 0; attempt <= backend.config.retries; attempt++) {
    if (signal?.aborted) break;
    const server = backend.pick(tried);
    if (typeof server === "string") {
      last ??= {
        failure: noServerFailure(server),
        server: null,
        detail: server === "all-down"
          ? "every server is down"
          : "every server is at max_connections",
      };
      break;
    }
    tried.add(server);
    server.active++;
    const result = await dialTcp(server, backend.config.connectTimeout, deadlines);
    if ("conn" in result) {
      backend.connectSucceeded(server);
      let released = false;
      return {
        ok: true,
        conn: result.conn,
        server,
        release: () => {
          if (!released) {
            released = true;
            server.active--;
          }
        },
      };
    }
    server.active--;
    // A local failure (out of descriptors or ports) is not the server's: it keeps its health.
    // Another server is still tried, since port exhaustion can be per destination.
    if (result.local === undefined) backend.connectFailed(server, result.detail);
    last = { failure: result.failure, server, detail: result.detail };
  }
  return {
    ok: false,
    failure: last?.failure ?? "upstream-unreachable",
    server: last?.server ?? null,
    detail: last?.detail ?? "stopping",
  };
}

/**
 * A server that refused, timed out or could not be reached is an operator's problem, not only a
 * line in the access log: it is logged at warn, so it also shows under "recent problems" on the
 * status page. Not for `no-server-up` and `server-full` (the backend said so once, when its
 * servers went down or filled up) nor `local-resource` (local_errors.ts logs it).
 */
export function warnUpstreamFailure(
  record: OpenAccessRecord,
  failure: ConnectFailure | "upstream-limit",
): void {
  if (!UPSTREAM_FAULTS.has(failure)) return;
  log.warn("upstream connect failed", {
    conn: record.conn,
    listener: record.listener,
    client: record.client,
    route: record.route,
    backend: record.backend,
    server: record.server,
    end: failure,
    detail: record.detail,
  });
}

/** The connect failures that are the server's, seen by the dial itself. */
const UPSTREAM_FAULTS: ReadonlySet<string> = new Set<ConnectFailure>([
  "upstream-refused",
  "upstream-timeout",
  "upstream-unreachable",
  "upstream-tls",
]);
